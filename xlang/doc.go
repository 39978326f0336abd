// Package xlang proves that clients in other languages, generated from
// idl/kv.thrift, interoperate with a Ballot cluster and with each other. It holds
// tests only.
//
// The tests build ballotd and the example clients in examples/ (Python, C++ and
// Java), start three replicas on loopback ports and pass one key between the
// languages and the Go client library: what one writes the others read, and every
// client follows NotLeader to the leader. They check that a missing key and an
// oversized value reach every language as the declared exceptions (NotFound,
// InvalidArgument naming the limit), not as transport errors, and that each client
// retries Unavailable, NotLeader without a leader and a dropped connection with the
// same client id and sequence number, against a scripted replica. A second cluster
// runs with mutual TLS between replicas and TLS on the client port that requires
// client certificates, all from internal/certs: the Python and C++ clients write
// and read over it with --cacert, --cert and --key, and are refused without TLS,
// without a certificate or with one from another CA.
//
// A language whose toolchain or Thrift library is missing is skipped with a message
// naming the Debian packages to install; .ci/run installs all of them. Set
// BALLOT_XLANG_BENCH=N to time N puts from each language (default 200); the median
// round trip is logged.
package xlang

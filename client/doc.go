// Package client is the Go client of a Ballot cluster: it speaks the KV service of
// idl/kv.thrift (framed transport, binary protocol) to the replicas' client addresses.
//
// A Client is safe for concurrent use. It promises:
//
//   - Exactly-once writes. Every Put and Delete carries a (client id, seq) pair from a
//     session taken from the client's pool for the whole operation, retries included.
//     A session has at most one write outstanding; its seq grows by one per new write
//     and a retry reuses the pair, so a replica applies a retried write at most once.
//     When a write ends without a definite answer (its deadline passed after
//     Unavailable or a lost connection) the session's seq still advances, so the pair
//     is never reused for a different command.
//   - Bounded calls. An operation retries until Config.Timeout (or the context's
//     earlier deadline) has passed, never longer: socket timeouts are set from the
//     time that remains. NotLeader with an address is followed at once; Unavailable,
//     NotLeader without an address and connection failures move to the next endpoint
//     after a short randomised backoff (10ms doubling to 200ms). InvalidArgument and
//     NotFound are final.
//   - Errors that say what failed and where, and wrap one of ErrNotFound,
//     ErrUnavailable, ErrInvalidArgument or ErrClosed (test with errors.Is). When the
//     deadline passes the error names the last endpoint tried and its failure.
//   - Pooled connections. Each endpoint keeps idle Thrift connections for reuse; a
//     connection is used by one call at a time and closed after a transport error.
//
// Get is linearizable: it is served by the leader, found by following NotLeader.
// GetStale is answered by the first reachable endpoint in Config.Endpoints order from
// its local copy, which may lag behind.
//
// Reconfigure changes the cluster's members. It goes to the leader like a write,
// but a request the leader may have acted on is never sent again: Unavailable or a
// connection lost after sending is returned at once, and the caller reads the
// replicas' status to learn which configuration is in force before asking again.
package client

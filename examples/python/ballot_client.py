#!/usr/bin/python3
"""A Ballot client in Python, built on stubs generated from idl/kv.thrift.

    make stubs LANG=py
    /usr/bin/python3 examples/python/ballot_client.py \\
        --endpoints 127.0.0.1:7001,127.0.0.1:7002 put colour blue

Plaintext by default. --cacert FILE turns TLS on and verifies each replica's
certificate against that CA and the host dialled; --cert FILE and --key FILE add
a client certificate, for replicas that require one (ballotd --client-ca). The
certificates of 'ballot certs' fit: --cacert certs/ca.pem --cert certs/client.pem
--key certs/client.key. A failed handshake is retried like any broken
connection; -v also prints the Thrift library's log, which says why it failed.

Commands: put KEY VALUE (VALUE "-" reads standard input), get KEY, delete KEY,
bench-put N. It needs the Thrift Python library: Debian's python3-thrift, which
imports only in Debian's own /usr/bin/python3.

Exit status: 0 success, 1 NotFound, 2 usage, 3 InvalidArgument, 4 anything else
(no answer before the deadline, an unexpected server error).
"""

import argparse
import logging
import os
import random
import ssl
import statistics
import sys
import time

EXIT_NOT_FOUND = 1
EXIT_USAGE = 2
EXIT_INVALID = 3
EXIT_FAILED = 4

BACKOFF_MIN = 0.01  # seconds; doubles up to BACKOFF_MAX between retries
BACKOFF_MAX = 0.2


def fail(msg):
    print("ballot_client: " + msg, file=sys.stderr)
    sys.exit(EXIT_FAILED)


def import_stubs(stubs_dir):
    """Imports the Thrift library and the generated stubs into this module."""
    sys.path.insert(0, stubs_dir)
    global TSocket, TSSLSocket, TTransport, TBinaryProtocol, TException, TTransportException
    global KV, ttypes
    try:
        from thrift.Thrift import TException
        from thrift.protocol import TBinaryProtocol
        from thrift.transport import TSocket, TSSLSocket, TTransport
        from thrift.transport.TTransport import TTransportException
    except ImportError as e:
        fail("cannot import the Thrift library (%s); install Debian's python3-thrift "
             "and run this with /usr/bin/python3" % e)
    try:
        from ballot.kv import KV, ttypes
    except ImportError as e:
        fail("no stubs in %s (%s); run 'make stubs LANG=py' or pass --stubs"
             % (stubs_dir, e))


def tls_context(cacert, cert=None, key=None):
    """Returns an SSL context that trusts the CA in cacert, checks that a
    replica's certificate names the host dialled, and presents cert and key if
    given. Raises ValueError naming the file that cannot be loaded."""
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_verify_locations(cafile=cacert)
    except OSError as e:  # ssl.SSLError is an OSError
        raise ValueError("--cacert %s: %s" % (cacert, e))
    if cert:
        try:
            ctx.load_cert_chain(cert, key)
        except OSError as e:
            raise ValueError("--cert %s, --key %s: %s" % (cert, key, e))
    return ctx


def _checked_in_handshake(cert, hostname):
    """TSSLSocket's check of the host name after the handshake. The context has
    already done it (check_hostname), and TSSLSocket's own check is
    ssl.match_hostname, which warns on stderr and is gone from Python 3.12, where
    thrift falls back to comparing the CommonName alone."""


def describe(e):
    """Returns the message of e and of the error it wraps, if any: the library
    wraps socket and TLS errors in a TTransportException that says only
    "unexpected exception"."""
    inner = getattr(e, "inner", None)
    return "%s: %s" % (e, inner) if inner is not None else str(e)


class GaveUp(Exception):
    """No replica completed the call before the deadline."""


class BallotClient:
    """Talks to a Ballot cluster: follows NotLeader to the leader and retries
    Unavailable and broken connections, with the same client_id and seq, until
    the deadline. NotFound and InvalidArgument are raised at once: they are final.

    One BallotClient is one writer (one client_id) with at most one write
    outstanding; it is not safe for concurrent use.
    """

    def __init__(self, endpoints, timeout=5.0, verbose=False, tls=None):
        self.endpoints = endpoints
        self.tls = tls  # an ssl.SSLContext, or None for plaintext
        self.timeout = timeout
        self.verbose = verbose
        self.client_id = random.randrange(1, 2**63)
        self.seq = 0  # seq of the last write; each new write takes the next
        self.addr = endpoints[0]
        self.next_endpoint = 1 % len(endpoints)
        self.transport = None
        self.kv = None

    def put(self, key, value):
        self.seq += 1
        seq = self.seq
        return self._call("put", seq, lambda kv: kv.put(self.client_id, seq, key, value))

    def delete(self, key):
        self.seq += 1
        seq = self.seq
        return self._call("delete", seq, lambda kv: kv.remove(self.client_id, seq, key))

    def get(self, key):
        consistency = ttypes.Consistency.LINEARIZABLE
        return self._call("get", None, lambda kv: kv.get(key, consistency)).value

    def close(self):
        # TSSLSocket.close fails on a socket that the library has closed itself
        # (it does after a reset while reading): close only an open one.
        if self.transport is not None and self.socket.handle is not None:
            self.transport.close()
        self.transport = self.kv = None

    def _connect(self, remaining):
        remaining = max(remaining, 0.001)
        if self.kv is None:
            host, _, port = self.addr.rpartition(":")
            if self.tls is None:
                self.socket = TSocket.TSocket(host, int(port))
            else:
                self.socket = TSSLSocket.TSSLSocket(
                    host, int(port), ssl_context=self.tls,
                    validate_callback=_checked_in_handshake)
            self.socket.setTimeout(remaining * 1000)
            self.transport = TTransport.TFramedTransport(self.socket)
            protocol = TBinaryProtocol.TBinaryProtocol(
                self.transport, strictRead=True, strictWrite=True)
            self.transport.open()
            self.kv = KV.Client(protocol)
        self.socket.setTimeout(remaining * 1000)  # no call outlives the deadline
        return self.kv

    def _log(self, what, seq, msg):
        if self.verbose:
            ident = "" if seq is None else " client_id=%d seq=%d" % (self.client_id, seq)
            print("%s%s: %s" % (what, ident, msg), file=sys.stderr)

    def _call(self, what, seq, call):
        deadline = time.monotonic() + self.timeout
        backoff = BACKOFF_MIN
        redirects = 0
        while True:
            remaining = deadline - time.monotonic()
            try:
                return call(self._connect(remaining))
            except ttypes.NotLeader as e:
                if e.leader_addr and e.leader_addr != self.addr and redirects < len(self.endpoints):
                    # Nothing was proposed: resend at once to the leader.
                    self._log(what, seq, "NotLeader from %s; following to %s" % (self.addr, e.leader_addr))
                    self.close()
                    self.addr = e.leader_addr
                    redirects += 1
                    continue
                last = "NotLeader from %s: %s" % (self.addr, e.message)
            except ttypes.Unavailable as e:
                last = "Unavailable from %s: %s" % (self.addr, e.message)
            except (TTransportException, OSError) as e:
                last = "%s from %s: %s" % (type(e).__name__, self.addr, describe(e))
            # The outcome is unknown: pause, then try the next endpoint with the
            # same client_id and seq, so the write takes effect at most once.
            self.close()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise GaveUp("%s: no answer within %gs; last: %s" % (what, self.timeout, last))
            self._log(what, seq, last + "; retrying")
            time.sleep(min(backoff * random.uniform(0.5, 1.0), remaining))
            backoff = min(2 * backoff, BACKOFF_MAX)
            redirects = 0
            self.addr = self.endpoints[self.next_endpoint]
            self.next_endpoint = (self.next_endpoint + 1) % len(self.endpoints)


def bench_put(client, n):
    """Times n puts of 100-byte values after one warm-up put (which finds the
    leader and opens the connection) and prints the round-trip percentiles."""
    value = b"v" * 100
    client.put("bench/warm-up", value)
    took = []
    for i in range(n):
        start = time.perf_counter()
        client.put("bench/%d" % i, value)
        took.append(time.perf_counter() - start)
    took.sort()
    us = lambda s: round(s * 1e6)
    print("bench-put: n=%d median_us=%d p99_us=%d min_us=%d max_us=%d" % (
        n, us(statistics.median(took)), us(took[min(n - 1, n * 99 // 100)]),
        us(took[0]), us(took[-1])))


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    parser = argparse.ArgumentParser(description="Ballot example client (Python).")
    parser.add_argument("--endpoints", required=True,
                        help="client addresses of replicas, host:port,...")
    parser.add_argument("--timeout", type=float, default=5.0,
                        help="seconds one command may take, retries included")
    parser.add_argument("--stubs", default=os.path.join(here, "..", "..", "build", "stubs", "py"),
                        help="directory of the generated Python stubs")
    parser.add_argument("--cacert", metavar="FILE",
                        help="use TLS, trusting the replicas' certificates issued by this CA")
    parser.add_argument("--cert", metavar="FILE",
                        help="with --cacert: present this client certificate (needs --key)")
    parser.add_argument("--key", metavar="FILE",
                        help="the private key of --cert")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="report every redirect and retry on standard error")
    parser.add_argument("command", choices=["put", "get", "delete", "bench-put"])
    parser.add_argument("args", nargs="*")
    opts = parser.parse_args()
    want = {"put": 2, "get": 1, "delete": 1, "bench-put": 1}[opts.command]
    if len(opts.args) != want:
        parser.error("%s takes %d arguments, got %d" % (opts.command, want, len(opts.args)))
    endpoints = [e.strip() for e in opts.endpoints.split(",") if e.strip()]
    if not endpoints or any(":" not in e for e in endpoints):
        parser.error("--endpoints wants host:port,...")
    if bool(opts.cert) != bool(opts.key):
        parser.error("--cert and --key go together")
    if opts.cert and not opts.cacert:
        parser.error("--cert needs --cacert: TLS is on only with --cacert")
    tls = None
    if opts.cacert:
        try:
            tls = tls_context(opts.cacert, opts.cert, opts.key)
        except ValueError as e:
            parser.error(str(e))

    import_stubs(opts.stubs)
    # The Thrift library logs failed connections itself, with the reason (a TLS
    # handshake's error among them) that its exception leaves out; the retries
    # above cover them, so show its log only with -v.
    if opts.verbose:
        logging.basicConfig(stream=sys.stderr, format="%(name)s: %(message)s")
    logging.getLogger("thrift").setLevel(logging.DEBUG if opts.verbose else logging.CRITICAL)
    client = BallotClient(endpoints, opts.timeout, opts.verbose, tls)
    try:
        if opts.command == "put":
            key, value = opts.args
            data = sys.stdin.buffer.read() if value == "-" else os.fsencode(value)
            res = client.put(key, data)
            print("OK slot=%d existed=%s" % (res.slot, str(res.existed).lower()))
        elif opts.command == "delete":
            res = client.delete(opts.args[0])
            print("OK slot=%d existed=%s" % (res.slot, str(res.existed).lower()))
        elif opts.command == "get":
            sys.stdout.buffer.write(client.get(opts.args[0]) + b"\n")
        else:
            n = int(opts.args[0]) if opts.args[0].isdigit() else 0
            if n < 1:
                parser.error("bench-put wants a positive count, got %r" % opts.args[0])
            bench_put(client, n)
    except ttypes.NotFound as e:
        print("NotFound: key %r holds no value" % e.key, file=sys.stderr)
        return EXIT_NOT_FOUND
    except ttypes.InvalidArgument as e:
        print("InvalidArgument: %s (field %s, limit %d)" % (e.message, e.field, e.limit),
              file=sys.stderr)
        return EXIT_INVALID
    except GaveUp as e:
        print("GaveUp: %s" % e, file=sys.stderr)
        return EXIT_FAILED
    except TException as e:
        print("%s: %s" % (type(e).__name__, e), file=sys.stderr)
        return EXIT_FAILED
    finally:
        client.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

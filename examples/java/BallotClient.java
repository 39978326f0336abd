// BallotClient: a Ballot client in Java, built on stubs generated from
// idl/kv.thrift and Debian's libthrift-java.
//
//   make -C examples/java
//   build/examples/java/ballot_client --endpoints 127.0.0.1:7001,127.0.0.1:7002 put colour blue
//
// Commands: put KEY VALUE (VALUE "-" reads standard input), get KEY, delete KEY,
// bench-put N. Exit status: 0 success, 1 NotFound, 2 usage, 3 InvalidArgument,
// 4 anything else (no answer before the deadline, an unexpected server error).

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.ThreadLocalRandom;

import org.apache.thrift.TApplicationException;
import org.apache.thrift.TException;
import org.apache.thrift.protocol.TBinaryProtocol;
import org.apache.thrift.transport.TSocket;
import org.apache.thrift.transport.TTransportException;
import org.apache.thrift.transport.layered.TFramedTransport;
import org.ballotkv.kv.Consistency;
import org.ballotkv.kv.InvalidArgument;
import org.ballotkv.kv.KV;
import org.ballotkv.kv.NotFound;
import org.ballotkv.kv.NotLeader;
import org.ballotkv.kv.Unavailable;
import org.ballotkv.kv.WriteResult;

/**
 * Talks to a Ballot cluster: follows NotLeader to the leader and retries Unavailable
 * and broken connections, with the same client_id and seq, until the deadline.
 * NotFound and InvalidArgument are thrown at once: they are final. One BallotClient
 * is one writer (one client_id) with at most one write outstanding; it is not safe
 * for concurrent use.
 */
public final class BallotClient implements AutoCloseable {
  static final int EXIT_NOT_FOUND = 1;
  static final int EXIT_USAGE = 2;
  static final int EXIT_INVALID = 3;
  static final int EXIT_FAILED = 4;

  private static final long BACKOFF_MIN_MS = 10; // doubles up to BACKOFF_MAX_MS between retries
  private static final long BACKOFF_MAX_MS = 200;

  /** No replica completed the call before the deadline. */
  static final class GaveUpException extends Exception {
    GaveUpException(String message) {
      super(message);
    }
  }

  /** One call of the KV service, repeated as it is for every retry. */
  @FunctionalInterface
  private interface Call<T> {
    T apply(KV.Client kv) throws TException;
  }

  private final List<String> endpoints;
  private final long timeoutMs;
  private final boolean verbose;
  private final long clientId = ThreadLocalRandom.current().nextLong(1, Long.MAX_VALUE);
  private long seq; // seq of the last write; each new write takes the next
  private String addr;
  private int nextEndpoint;
  private TSocket socket;
  private TFramedTransport transport;
  private KV.Client kv;

  BallotClient(List<String> endpoints, long timeoutMs, boolean verbose) {
    this.endpoints = endpoints;
    this.timeoutMs = timeoutMs;
    this.verbose = verbose;
    this.addr = endpoints.get(0);
    this.nextEndpoint = 1 % endpoints.size();
  }

  WriteResult put(String key, byte[] value) throws InvalidArgument, GaveUpException, TException {
    long s = ++seq;
    return call("put", s, kv -> kv.put(clientId, s, key, ByteBuffer.wrap(value)));
  }

  WriteResult delete(String key) throws InvalidArgument, GaveUpException, TException {
    long s = ++seq;
    return call("delete", s, kv -> kv.remove(clientId, s, key));
  }

  byte[] get(String key) throws NotFound, InvalidArgument, GaveUpException, TException {
    return call("get", 0, kv -> kv.get(key, Consistency.LINEARIZABLE)).getValue();
  }

  @Override
  public void close() {
    if (transport != null) {
      transport.close();
    }
    transport = null;
    socket = null;
    kv = null;
  }

  private KV.Client connect(long remainingMs) throws TTransportException {
    int ms = (int) Math.max(1, Math.min(remainingMs, Integer.MAX_VALUE));
    if (kv == null) {
      int colon = addr.lastIndexOf(':');
      socket = new TSocket(addr.substring(0, colon), Integer.parseInt(addr.substring(colon + 1)), ms);
      transport = new TFramedTransport(socket);
      transport.open();
      kv = new KV.Client(new TBinaryProtocol(transport, true, true));
    }
    socket.setTimeout(ms); // no call outlives the deadline
    return kv;
  }

  private void log(String what, long s, String msg) {
    if (verbose) {
      String ident = s == 0 ? "" : " client_id=" + clientId + " seq=" + s;
      System.err.println(what + ident + ": " + msg);
    }
  }

  private <T> T call(String what, long s, Call<T> call) throws GaveUpException, TException {
    long deadline = System.nanoTime() + timeoutMs * 1_000_000;
    long backoff = BACKOFF_MIN_MS;
    int redirects = 0;
    while (true) {
      String last;
      try {
        return call.apply(connect((deadline - System.nanoTime()) / 1_000_000));
      } catch (NotLeader e) {
        String leader = e.getLeader_addr();
        if (leader != null && !leader.isEmpty() && !leader.equals(addr)
            && redirects < endpoints.size()) {
          // Nothing was proposed: resend at once to the leader.
          log(what, s, "NotLeader from " + addr + "; following to " + leader);
          close();
          addr = leader;
          redirects++;
          continue;
        }
        last = "NotLeader from " + addr + ": " + e.getMessage();
      } catch (Unavailable e) {
        last = "Unavailable from " + addr + ": " + e.getMessage();
      } catch (TTransportException e) {
        last = "TTransportException from " + addr + ": " + e.getMessage();
      }
      // The outcome is unknown: pause, then try the next endpoint with the same
      // client_id and seq, so the write takes effect at most once.
      close();
      long remainingMs = (deadline - System.nanoTime()) / 1_000_000;
      if (remainingMs <= 0) {
        throw new GaveUpException(what + ": no answer within " + timeoutMs + "ms; last: " + last);
      }
      log(what, s, last + "; retrying");
      long pause = (long) (backoff * ThreadLocalRandom.current().nextDouble(0.5, 1.0));
      try {
        Thread.sleep(Math.min(pause, remainingMs));
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        throw new GaveUpException(what + ": interrupted; last: " + last);
      }
      backoff = Math.min(2 * backoff, BACKOFF_MAX_MS);
      redirects = 0;
      addr = endpoints.get(nextEndpoint);
      nextEndpoint = (nextEndpoint + 1) % endpoints.size();
    }
  }

  /**
   * Times n puts of 100-byte values after one warm-up put (which finds the leader and
   * opens the connection) and prints the round-trip percentiles.
   */
  void benchPut(int n) throws InvalidArgument, GaveUpException, TException {
    byte[] value = new byte[100];
    Arrays.fill(value, (byte) 'v');
    put("bench/warm-up", value);
    double[] tookUs = new double[n];
    for (int i = 0; i < n; i++) {
      long start = System.nanoTime();
      put("bench/" + i, value);
      tookUs[i] = (System.nanoTime() - start) / 1e3;
    }
    Arrays.sort(tookUs);
    double median = n % 2 == 1 ? tookUs[n / 2] : (tookUs[n / 2 - 1] + tookUs[n / 2]) / 2;
    System.out.printf("bench-put: n=%d median_us=%.0f p99_us=%.0f min_us=%.0f max_us=%.0f%n",
        n, median, tookUs[Math.min(n - 1, n * 99 / 100)], tookUs[0], tookUs[n - 1]);
  }

  private static final String USAGE =
      "usage: ballot_client --endpoints host:port,... [--timeout SECONDS] [-v] COMMAND\n"
          + "  put KEY VALUE    store VALUE (\"-\": standard input) under KEY\n"
          + "  get KEY          print the value stored under KEY\n"
          + "  delete KEY       delete KEY\n"
          + "  bench-put N      time N puts and print the median round trip";

  private static int usage(String problem) {
    System.err.println("ballot_client: " + problem);
    System.err.println(USAGE);
    return EXIT_USAGE;
  }

  static int run(String[] argv) throws IOException {
    String endpointList = null;
    double timeoutS = 5;
    boolean verbose = false;
    List<String> args = new ArrayList<>();
    for (int i = 0; i < argv.length; i++) {
      String a = argv[i];
      if (a.equals("--endpoints") && i + 1 < argv.length) {
        endpointList = argv[++i];
      } else if (a.equals("--timeout") && i + 1 < argv.length) {
        try {
          timeoutS = Double.parseDouble(argv[++i]);
        } catch (NumberFormatException e) {
          return usage("--timeout wants a number of seconds, got " + argv[i]);
        }
      } else if (a.equals("-v") || a.equals("--verbose")) {
        verbose = true;
      } else if (a.equals("-h") || a.equals("--help")) {
        System.out.println(USAGE);
        return 0;
      } else {
        args.add(a);
      }
    }
    if (endpointList == null) {
      return usage("--endpoints is required");
    }
    List<String> endpoints = new ArrayList<>();
    for (String ep : endpointList.split(",")) {
      if (ep.isEmpty()) {
        continue;
      }
      if (!ep.matches(".+:[0-9]+")) {
        return usage("--endpoints wants host:port,..., got " + ep);
      }
      endpoints.add(ep);
    }
    if (endpoints.isEmpty()) {
      return usage("--endpoints wants host:port,...");
    }
    if (!(timeoutS > 0)) {
      return usage("--timeout wants a positive number of seconds");
    }
    if (args.isEmpty()) {
      return usage("no command");
    }
    String cmd = args.get(0);
    int want;
    switch (cmd) {
      case "put":
        want = 3;
        break;
      case "get":
      case "delete":
      case "bench-put":
        want = 2;
        break;
      default:
        return usage("unknown command " + cmd);
    }
    if (args.size() != want) {
      return usage(cmd + " takes " + (want - 1) + " arguments");
    }

    try (BallotClient client = new BallotClient(endpoints, (long) (timeoutS * 1000), verbose)) {
      switch (cmd) {
        case "put": {
          String v = args.get(2);
          byte[] value = v.equals("-") ? System.in.readAllBytes() : v.getBytes(StandardCharsets.UTF_8);
          WriteResult res = client.put(args.get(1), value);
          System.out.println("OK slot=" + res.getSlot() + " existed=" + res.isExisted());
          break;
        }
        case "delete": {
          WriteResult res = client.delete(args.get(1));
          System.out.println("OK slot=" + res.getSlot() + " existed=" + res.isExisted());
          break;
        }
        case "get":
          System.out.write(client.get(args.get(1)));
          System.out.write('\n');
          System.out.flush();
          break;
        default:
          int n;
          try {
            n = Integer.parseInt(args.get(1));
          } catch (NumberFormatException e) {
            n = 0;
          }
          if (n < 1) {
            return usage("bench-put wants a positive count, got " + args.get(1));
          }
          client.benchPut(n);
      }
    } catch (NotFound e) {
      System.err.println("NotFound: key '" + e.getKey() + "' holds no value");
      return EXIT_NOT_FOUND;
    } catch (InvalidArgument e) {
      System.err.println("InvalidArgument: " + e.getMessage() + " (field " + e.getField()
          + ", limit " + e.getLimit() + ")");
      return EXIT_INVALID;
    } catch (GaveUpException e) {
      System.err.println("GaveUp: " + e.getMessage());
      return EXIT_FAILED;
    } catch (TApplicationException e) {
      System.err.println("TApplicationException: " + e.getMessage());
      return EXIT_FAILED;
    } catch (TException e) {
      System.err.println(e.getClass().getSimpleName() + ": " + e.getMessage());
      return EXIT_FAILED;
    }
    return 0;
  }

  public static void main(String[] argv) throws IOException {
    System.exit(run(argv));
  }
}

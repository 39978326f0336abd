// ballot_client: a Ballot client in C++, built on stubs generated from
// idl/kv.thrift and Debian's libthrift-dev.
//
//   make -C examples/cpp
//   build/examples/cpp/ballot_client --endpoints 127.0.0.1:7001,127.0.0.1:7002 put colour blue
//
// Commands: put KEY VALUE (VALUE "-" reads standard input), get KEY, delete KEY,
// bench-put N. Exit status: 0 success, 1 NotFound, 2 usage, 3 InvalidArgument,
// 4 anything else (no answer before the deadline, an unexpected server error).
//
// Plaintext by default. --cacert FILE turns TLS on and verifies each replica's
// certificate against that CA and the host dialled; --cert FILE and --key FILE add
// a client certificate, for replicas that require one (ballotd --client-ca), as
// the files of 'ballot certs' do: --cacert certs/ca.pem --cert certs/client.pem
// --key certs/client.key. TLS needs libssl-dev to build.

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <iostream>
#include <iterator>
#include <memory>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <thrift/protocol/TBinaryProtocol.h>
#include <thrift/transport/TBufferTransports.h>
#include <thrift/transport/TSSLSocket.h>
#include <thrift/transport/TSocket.h>
#include <thrift/transport/TTransportException.h>

#include "KV.h"

namespace {

using apache::thrift::TException;
using apache::thrift::protocol::TBinaryProtocol;
using apache::thrift::transport::DefaultClientAccessManager;
using apache::thrift::transport::TFramedTransport;
using apache::thrift::transport::TSocket;
using apache::thrift::transport::TSSLException;
using apache::thrift::transport::TSSLSocketFactory;
using apache::thrift::transport::TTransportException;
using ballot::kv::KVClient;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr int kExitNotFound = 1;
constexpr int kExitUsage = 2;
constexpr int kExitInvalid = 3;
constexpr int kExitFailed = 4;

constexpr milliseconds kBackoffMin{10};  // doubles up to kBackoffMax between retries
constexpr milliseconds kBackoffMax{200};

// GaveUp: no replica completed the call before the deadline.
struct GaveUp : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// TLSFactory returns a factory of TLS sockets that trust the CA in cacert and
// present cert and key when given. authenticate(true) makes the handshake verify
// the replica's certificate chain; the access manager then checks that the
// certificate names the host dialled (a DNS name) or the address connected to (an
// IP address). DefaultClientAccessManager is already the factory's default; it is
// set here because the check matters. A file that cannot be loaded is a usage
// error naming it.
std::shared_ptr<TSSLSocketFactory> TLSFactory(const std::string& cacert, const std::string& cert,
                                              const std::string& key) {
  // SSLTLS negotiates the highest version both sides have (TLS 1.3 with ballotd);
  // the other values of SSLProtocol pin a single version.
  auto factory = std::make_shared<TSSLSocketFactory>(apache::thrift::transport::SSLTLS);
  factory->authenticate(true);
  factory->access(std::make_shared<DefaultClientAccessManager>());
  const auto load = [](const char* flag, const std::string& path, const std::function<void()>& f) {
    try {
      f();
    } catch (const TSSLException& e) {
      throw UsageError(std::string(flag) + " " + path + ": " + e.what());
    }
  };
  load("--cacert", cacert, [&] { factory->loadTrustedCertificates(cacert.c_str()); });
  if (!cert.empty()) {
    load("--cert", cert, [&] { factory->loadCertificate(cert.c_str()); });
    load("--key", key, [&] { factory->loadPrivateKey(key.c_str()); });
  }
  return factory;
}

// BallotClient talks to a Ballot cluster: it follows NotLeader to the leader and
// retries Unavailable and broken connections, with the same client_id and seq,
// until the deadline. NotFound and InvalidArgument propagate at once: they are
// final. One BallotClient is one writer (one client_id) with at most one write
// outstanding; it is not safe for concurrent use.
class BallotClient {
 public:
  // tls makes the connections TLS; nullptr keeps them plaintext.
  BallotClient(std::vector<std::string> endpoints, milliseconds timeout, bool verbose,
               std::shared_ptr<TSSLSocketFactory> tls)
      : endpoints_(std::move(endpoints)),
        timeout_(timeout),
        verbose_(verbose),
        tls_(std::move(tls)),
        rng_(std::random_device{}()),
        client_id_(std::uniform_int_distribution<int64_t>(1, INT64_MAX)(rng_)),
        addr_(endpoints_.front()),
        next_endpoint_(1 % endpoints_.size()) {}

  ~BallotClient() { Close(); }

  ballot::kv::WriteResult Put(const std::string& key, const std::string& value) {
    const int64_t seq = ++seq_;
    ballot::kv::WriteResult res;
    Call("put", seq, [&](KVClient& kv) { kv.put(res, client_id_, seq, key, value); });
    return res;
  }

  ballot::kv::WriteResult Delete(const std::string& key) {
    const int64_t seq = ++seq_;
    ballot::kv::WriteResult res;
    Call("delete", seq, [&](KVClient& kv) { kv.remove(res, client_id_, seq, key); });
    return res;
  }

  std::string Get(const std::string& key) {
    ballot::kv::GetResult res;
    Call("get", 0, [&](KVClient& kv) { kv.get(res, key, ballot::kv::Consistency::LINEARIZABLE); });
    return res.value;
  }

 private:
  KVClient& Connect(milliseconds remaining) {
    const int ms = static_cast<int>(std::max<int64_t>(remaining.count(), 1));
    if (!kv_) {
      const auto colon = addr_.rfind(':');
      const std::string host = addr_.substr(0, colon);
      const int port = std::stoi(addr_.substr(colon + 1));
      // A TLS socket shakes hands on its first write, within the send and receive
      // timeouts set below.
      socket_ = tls_ ? tls_->createSocket(host, port) : std::make_shared<TSocket>(host, port);
      socket_->setConnTimeout(ms);
      transport_ = std::make_shared<TFramedTransport>(socket_);
      auto protocol = std::make_shared<TBinaryProtocol>(transport_, 0, 0, /*strict_read=*/true,
                                                        /*strict_write=*/true);
      transport_->open();
      kv_ = std::make_unique<KVClient>(protocol);
    }
    socket_->setRecvTimeout(ms);  // no call outlives the deadline
    socket_->setSendTimeout(ms);
    return *kv_;
  }

  void Close() {
    if (transport_) {
      try {
        transport_->close();
      } catch (const TException&) {
      }
    }
    kv_.reset();
    transport_.reset();
    socket_.reset();
  }

  void Log(const char* what, int64_t seq, const std::string& msg) const {
    if (!verbose_) return;
    std::cerr << what;
    if (seq != 0) std::cerr << " client_id=" << client_id_ << " seq=" << seq;
    std::cerr << ": " << msg << std::endl;
  }

  void Call(const char* what, int64_t seq, const std::function<void(KVClient&)>& call) {
    const auto deadline = Clock::now() + timeout_;
    milliseconds backoff = kBackoffMin;
    size_t redirects = 0;
    for (;;) {
      std::string last;
      try {
        call(Connect(std::chrono::duration_cast<milliseconds>(deadline - Clock::now())));
        return;
      } catch (const ballot::kv::NotLeader& e) {
        if (!e.leader_addr.empty() && e.leader_addr != addr_ && redirects < endpoints_.size()) {
          // Nothing was proposed: resend at once to the leader.
          Log(what, seq, "NotLeader from " + addr_ + "; following to " + e.leader_addr);
          Close();
          addr_ = e.leader_addr;
          ++redirects;
          continue;
        }
        last = "NotLeader from " + addr_ + ": " + e.message;
      } catch (const ballot::kv::Unavailable& e) {
        last = "Unavailable from " + addr_ + ": " + e.message;
      } catch (const TTransportException& e) {
        last = std::string("TTransportException from ") + addr_ + ": " + e.what();
      }
      // The outcome is unknown: pause, then try the next endpoint with the same
      // client_id and seq, so the write takes effect at most once.
      Close();
      const auto remaining = std::chrono::duration_cast<milliseconds>(deadline - Clock::now());
      if (remaining.count() <= 0) {
        std::ostringstream msg;
        msg << what << ": no answer within " << timeout_.count() << "ms; last: " << last;
        throw GaveUp(msg.str());
      }
      Log(what, seq, last + "; retrying");
      std::uniform_real_distribution<double> jitter(0.5, 1.0);
      const milliseconds pause(static_cast<int64_t>(backoff.count() * jitter(rng_)));
      std::this_thread::sleep_for(std::min(pause, remaining));
      backoff = std::min(2 * backoff, kBackoffMax);
      redirects = 0;
      addr_ = endpoints_[next_endpoint_];
      next_endpoint_ = (next_endpoint_ + 1) % endpoints_.size();
    }
  }

  const std::vector<std::string> endpoints_;
  const milliseconds timeout_;
  const bool verbose_;
  // tls_ outlives the sockets it made (members are destroyed in reverse order).
  const std::shared_ptr<TSSLSocketFactory> tls_;
  std::mt19937_64 rng_;
  const int64_t client_id_;
  int64_t seq_ = 0;  // seq of the last write; each new write takes the next
  std::string addr_;
  size_t next_endpoint_;
  std::shared_ptr<TSocket> socket_;
  std::shared_ptr<TFramedTransport> transport_;
  std::unique_ptr<KVClient> kv_;
};

// BenchPut times n puts of 100-byte values after one warm-up put (which finds the
// leader and opens the connection) and prints the round-trip percentiles.
void BenchPut(BallotClient& client, int64_t n) {
  const std::string value(100, 'v');
  client.Put("bench/warm-up", value);
  std::vector<double> took;  // microseconds
  took.reserve(n);
  for (int64_t i = 0; i < n; ++i) {
    const auto start = Clock::now();
    client.Put("bench/" + std::to_string(i), value);
    took.push_back(std::chrono::duration<double, std::micro>(Clock::now() - start).count());
  }
  std::sort(took.begin(), took.end());
  const double median = n % 2 ? took[n / 2] : (took[n / 2 - 1] + took[n / 2]) / 2;
  std::printf("bench-put: n=%lld median_us=%.0f p99_us=%.0f min_us=%.0f max_us=%.0f\n",
              static_cast<long long>(n), median, took[std::min(n - 1, n * 99 / 100)], took.front(),
              took.back());
}

std::vector<std::string> SplitEndpoints(const std::string& list) {
  std::vector<std::string> out;
  std::istringstream in(list);
  for (std::string ep; std::getline(in, ep, ',');) {
    if (ep.empty()) continue;
    const auto colon = ep.rfind(':');
    if (colon == std::string::npos || colon == 0 || colon + 1 == ep.size() ||
        ep.find_first_not_of("0123456789", colon + 1) != std::string::npos) {
      throw UsageError("--endpoints wants host:port,..., got " + ep);
    }
    out.push_back(ep);
  }
  if (out.empty()) throw UsageError("--endpoints wants host:port,...");
  return out;
}

constexpr const char* kUsage =
    "usage: ballot_client --endpoints host:port,... [--timeout SECONDS] [-v]\n"
    "                     [--cacert FILE [--cert FILE --key FILE]] COMMAND\n"
    "  --cacert FILE    use TLS, trusting the replicas' certificates issued by this CA\n"
    "  --cert FILE      with --cacert: present this client certificate (needs --key)\n"
    "  --key FILE       the private key of --cert\n"
    "  put KEY VALUE    store VALUE (\"-\": standard input) under KEY\n"
    "  get KEY          print the value stored under KEY\n"
    "  delete KEY       delete KEY\n"
    "  bench-put N      time N puts and print the median round trip\n";

int Run(int argc, char** argv) {
  std::string endpoints;
  double timeout_s = 5;
  bool verbose = false;
  std::string cacert, cert, key;
  std::vector<std::string> args;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--endpoints" && i + 1 < argc) {
      endpoints = argv[++i];
    } else if (a == "--timeout" && i + 1 < argc) {
      timeout_s = std::atof(argv[++i]);
    } else if (a == "--cacert" && i + 1 < argc) {
      cacert = argv[++i];
    } else if (a == "--cert" && i + 1 < argc) {
      cert = argv[++i];
    } else if (a == "--key" && i + 1 < argc) {
      key = argv[++i];
    } else if (a == "-v" || a == "--verbose") {
      verbose = true;
    } else if (a == "-h" || a == "--help") {
      std::cout << kUsage;
      return 0;
    } else {
      args.push_back(a);
    }
  }
  if (endpoints.empty()) throw UsageError("--endpoints is required");
  if (timeout_s <= 0) throw UsageError("--timeout wants a positive number of seconds");
  if (cert.empty() != key.empty()) throw UsageError("--cert and --key go together");
  if (!cert.empty() && cacert.empty()) throw UsageError("--cert needs --cacert: TLS is on only with --cacert");
  if (args.empty()) throw UsageError("no command");
  const std::string cmd = args.front();
  const size_t want = cmd == "put" ? 3 : (cmd == "get" || cmd == "delete" || cmd == "bench-put") ? 2 : 0;
  if (want == 0) throw UsageError("unknown command " + cmd);
  if (args.size() != want) throw UsageError(cmd + " takes " + std::to_string(want - 1) + " arguments");

  // The Thrift library prints failed connections itself; the retries cover them.
  apache::thrift::GlobalOutput.setOutputFunction(
      verbose ? +[](const char* msg) { std::cerr << msg << std::endl; } : +[](const char*) {});
  BallotClient client(SplitEndpoints(endpoints), milliseconds(static_cast<int64_t>(timeout_s * 1000)),
                      verbose, cacert.empty() ? nullptr : TLSFactory(cacert, cert, key));
  try {
    if (cmd == "put") {
      std::string value = args[2];
      if (value == "-") value.assign(std::istreambuf_iterator<char>(std::cin), {});
      const auto res = client.Put(args[1], value);
      std::cout << "OK slot=" << res.slot << " existed=" << (res.existed ? "true" : "false") << "\n";
    } else if (cmd == "delete") {
      const auto res = client.Delete(args[1]);
      std::cout << "OK slot=" << res.slot << " existed=" << (res.existed ? "true" : "false") << "\n";
    } else if (cmd == "get") {
      std::cout << client.Get(args[1]) << "\n";
    } else {
      const auto n = std::atoll(args[1].c_str());
      if (n < 1 || args[1].find_first_not_of("0123456789") != std::string::npos) {
        throw UsageError("bench-put wants a positive count, got " + args[1]);
      }
      BenchPut(client, n);
    }
  } catch (const ballot::kv::NotFound& e) {
    std::cerr << "NotFound: key '" << e.key << "' holds no value" << std::endl;
    return kExitNotFound;
  } catch (const ballot::kv::InvalidArgument& e) {
    std::cerr << "InvalidArgument: " << e.message << " (field " << e.field << ", limit " << e.limit
              << ")" << std::endl;
    return kExitInvalid;
  } catch (const GaveUp& e) {
    std::cerr << "GaveUp: " << e.what() << std::endl;
    return kExitFailed;
  } catch (const apache::thrift::TApplicationException& e) {
    std::cerr << "TApplicationException: " << e.what() << std::endl;
    return kExitFailed;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return Run(argc, argv);
  } catch (const UsageError& e) {
    std::cerr << "ballot_client: " << e.what() << "\n" << kUsage;
    return kExitUsage;
  } catch (const std::exception& e) {
    std::cerr << "ballot_client: " << e.what() << std::endl;
    return kExitFailed;
  }
}

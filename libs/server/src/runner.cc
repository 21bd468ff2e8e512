#include "ecrm/server/runner.h"

#include <google/protobuf/descriptor.h>
#include <grpc/grpc.h>
#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/server.h>
#include <grpcpp/server_builder.h>
#include <netdb.h>
#include <prometheus/exposer.h>
#include <prometheus/registry.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "ecrm/log/log.h"
#include "ecrm/server/drain.h"
#include "health_service.h"
#include "process_metrics.h"
#include "rpc_metrics.h"

#ifndef ECRM_VERSION
#define ECRM_VERSION "dev"
#endif

namespace ecrm::server {
namespace {

sigset_t ShutdownSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  return set;
}

// Writes "grpc_port=N\nmetrics_port=N\n" to a temporary file and renames it over `path`, so a
// reader polling for the file never sees it half-written.
absl::Status WritePortFile(const std::string& path, int grpc_port, int metrics_port) {
  const std::string tmp = absl::StrCat(path, ".tmp");
  std::FILE* f = std::fopen(tmp.c_str(), "w");
  if (f == nullptr) return absl::UnavailableError(absl::StrCat("cannot write ", tmp, ": ", std::strerror(errno)));
  const bool written = std::fprintf(f, "grpc_port=%d\nmetrics_port=%d\n", grpc_port, metrics_port) > 0;
  if (std::fclose(f) != 0 || !written || std::rename(tmp.c_str(), path.c_str()) != 0) {
    return absl::UnavailableError(absl::StrCat("cannot write ", path, ": ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

// Shutdown timing. Once no admitted RPC runs, the drain waits until no RPC has begun or ended
// for kQuiet (a client just answered sends its next call, which is held, within it), at most
// kQuietLimit. Once every client has been sent its GOAWAY, gRPC gets kClose to deliver the last
// answers before it closes the connections that have not acknowledged the GOAWAY (an idle
// client may acknowledge it only seconds later).
constexpr auto kQuiet = std::chrono::milliseconds(200);
constexpr auto kQuietLimit = std::chrono::milliseconds(500);
constexpr auto kClose = std::chrono::milliseconds(250);

std::chrono::system_clock::time_point SystemTime(Drain::Clock::time_point t) {
  return std::chrono::system_clock::now() +
         std::chrono::duration_cast<std::chrono::system_clock::duration>(t - Drain::Clock::now());
}

// Opens and closes a TCP connection to host:port, ignoring any failure.
void Knock(const std::string& host, int port) {
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* found = nullptr;
  if (getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &found) != 0) return;
  if (found != nullptr) {
    int fd = socket(found->ai_family, found->ai_socktype | SOCK_CLOEXEC, found->ai_protocol);
    if (fd >= 0) {
      (void)connect(fd, found->ai_addr, found->ai_addrlen);
      close(fd);
    }
  }
  freeaddrinfo(found);
}

// Stops the metrics endpoint. civetweb (under prometheus::Exposer) looks at its stop flag only
// between 2 s polls of its listening socket; a connection ends the poll at once. Without the
// knocks the process took up to 2 s more to exit.
void StopMetricsEndpoint(std::unique_ptr<prometheus::Exposer> exposer, const std::string& address) {
  const std::vector<int> ports = exposer->GetListeningPorts();
  std::string host = address.substr(0, address.rfind(':'));
  if (host.size() >= 2 && host.front() == '[') host = host.substr(1, host.size() - 2);
  if (host.empty() || host == "0.0.0.0") host = "127.0.0.1";
  if (host == "::") host = "::1";
  std::atomic<bool> stopped{false};
  std::thread knocker([&] {
    while (!ports.empty() && !stopped.load()) {
      Knock(host, ports.front());
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  });
  exposer.reset();
  stopped = true;
  knocker.join();
}

// The registry as the endpoint collects it: the OnScrape hooks first, so that what they set is
// read at the time of the scrape.
class ScrapedRegistry final : public prometheus::Collectable {
 public:
  ScrapedRegistry(std::shared_ptr<prometheus::Registry> registry, std::vector<std::function<void()>> hooks)
      : registry_(std::move(registry)), hooks_(std::move(hooks)) {}
  std::vector<prometheus::MetricFamily> Collect() const override {
    for (const auto& hook : hooks_) hook();
    return registry_->Collect();
  }

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  const std::vector<std::function<void()>> hooks_;
};

}  // namespace

Runner::Runner(ServiceInfo info)
    : info_(std::move(info)),
      flags_(info_.name, info_.summary),
      registry_(std::make_shared<prometheus::Registry>()),
      drain_(std::make_unique<Drain>()) {
  options_.max_message_bytes = info_.max_message_bytes;
  // Blocked here, before any thread exists, so every thread inherits the mask and only
  // Serve()'s sigwait receives the shutdown signals.
  sigset_t set = ShutdownSignals();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  // Debian builds Abseil without NDEBUG, which leaves absl::Mutex (gRPC's mutex) tracking a
  // lock graph on every acquisition; a measurable share of CPU in a serving process.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);

  options_.grpc_address = absl::StrCat("127.0.0.1:", info_.grpc_port);
  options_.metrics_address = absl::StrCat("127.0.0.1:", info_.metrics_port);
  options_.database_url = absl::StrCat("sqlite://data/", info_.engine, ".db");
  flags_.AddString("grpc-address", &options_.grpc_address, "host:port the gRPC server listens on (port 0 picks one)");
  flags_.AddString("metrics-address", &options_.metrics_address, "host:port of the Prometheus /metrics endpoint");
  flags_.AddString("port-file", &options_.port_file,
                   "once the gRPC and metrics servers listen, write the ports they got to this file as two lines, "
                   "grpc_port=N and metrics_port=N (replaced whole, never seen half-written), so that whoever "
                   "started the service on port 0 can find it; empty: no file");
  flags_.AddString("database-url", &options_.database_url,
                   "sqlite:///abs/path.db, sqlite://relative/path.db or postgresql://user@host:port/db");
  flags_.AddInt("database-pool-size", &options_.database_pool_size,
                "database connections (0: 4 for SQLite, 8 for PostgreSQL)");
  flags_.AddInt("sqlite-checkpoint-pages", &options_.sqlite_checkpoint_pages,
                "SQLite: WAL pages (4 KiB) after which a background thread copies the WAL back into the database; "
                "bounds the WAL's size");
  flags_.AddInt("worker-threads", &options_.worker_threads,
                absl::StrCat("threads running blocking (database) work off the gRPC threads (0: ", info_.sqlite_workers,
                             " on SQLite, ", info_.postgres_workers, " on PostgreSQL)"));
  flags_.AddInt("max-queue", &options_.max_queue, "requests that may wait for a worker before RESOURCE_EXHAUSTED");
  flags_.AddString("redis-url", &options_.redis_url,
                   "redis://host:port[/db] of the shared profile cache; empty disables it");
  flags_.AddDuration("redis-timeout", &options_.redis_timeout,
                     "per-command Redis timeout; slower answers count as misses");
  flags_.AddInt("redis-local-copies", &options_.redis_local_copies,
                "hot profiles this process keeps copies of, dropped when Redis announces a change (client-side "
                "caching); 0: every read goes to Redis");
  flags_.AddString("log-level", &options_.log_level, "debug, info, warn or error");
  flags_.AddString("log-format", &options_.log_format, "logfmt or json");
  flags_.AddDuration("shutdown-grace", &options_.shutdown_grace,
                     "on SIGTERM, how long in-flight RPCs may finish before they are cancelled");
  flags_.AddInt("max-message-bytes", &options_.max_message_bytes, "largest gRPC message received or sent");
  flags_.AddDuration("keepalive-time", &options_.keepalive_time, "interval of HTTP/2 keepalive pings to idle clients");
  flags_.AddDuration("keepalive-timeout", &options_.keepalive_timeout, "how long a keepalive ping may go unanswered");
}

Runner::~Runner() = default;

std::optional<int> Runner::Start(int argc, char** argv) {
  if (std::optional<int> exit_code = flags_.ParseCommandLine(argc, argv)) return exit_code;
  log::Level level;
  log::Format format;
  for (absl::Status check :
       {log::ParseLevel(options_.log_level, &level), log::ParseFormat(options_.log_format, &format)}) {
    if (!check.ok()) {
      std::fprintf(stderr, "%s: %s\n", info_.name.c_str(), std::string(check.message()).c_str());
      return 2;
    }
  }
  if (options_.max_message_bytes <= 0 || options_.max_message_bytes > (1LL << 31) - 1) {
    std::fprintf(stderr, "%s: --max-message-bytes must be between 1 and 2147483647\n", info_.name.c_str());
    return 2;
  }
  if (options_.worker_threads < 0 || options_.max_queue < 1) {
    std::fprintf(stderr, "%s: --worker-threads must be >= 0 and --max-queue >= 1\n", info_.name.c_str());
    return 2;
  }
  log::Configure(info_.name, level, format);
  log::Info("starting", {{"version", ECRM_VERSION},
                         {"grpc_address", options_.grpc_address},
                         {"metrics_address", options_.metrics_address}});
  return std::nullopt;
}

void Runner::AddService(grpc::Service* service, absl::string_view full_name) {
  services_.emplace_back(service, std::string(full_name));
}

int Runner::Fail(absl::string_view what, const absl::Status& status) {
  log::Error(absl::StrCat(what, " failed"),
             {{"code", absl::StatusCodeToString(status.code())}, {"error", std::string(status.message())}});
  return 1;
}

int Runner::Serve() {
  // Metrics endpoint first: a port clash is reported before the gRPC server starts.
  std::unique_ptr<prometheus::Exposer> exposer;
  try {
    exposer = std::make_unique<prometheus::Exposer>(options_.metrics_address, 2);
  } catch (const std::exception& e) {
    return Fail("metrics endpoint",
                absl::UnavailableError(absl::StrCat("cannot listen on ", options_.metrics_address, ": ", e.what())));
  }
  auto process = std::make_shared<ProcessMetrics>(info_.name, ECRM_VERSION);
  auto scraped = std::make_shared<ScrapedRegistry>(registry_, scrape_hooks_);
  exposer->RegisterCollectable(scraped);
  exposer->RegisterCollectable(process);

  auto rpc_metrics = std::make_unique<RpcMetrics>(*registry_);
  RpcMetrics* rpc_metrics_ptr = rpc_metrics.get();
  rpc_metrics_ptr->RegisterMethod("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo");

  HealthService health;  // NOT_SERVING until the warm-up hooks have run
  std::vector<std::pair<grpc::Service*, std::string>> services = {
      {&health, grpc::health::v1::Health::service_full_name()}};
  services.insert(services.end(), services_.begin(), services_.end());
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  builder.AddListeningPort(options_.grpc_address, grpc::InsecureServerCredentials(), &bound_grpc_port_);
  builder.SetMaxReceiveMessageSize(static_cast<int>(options_.max_message_bytes));
  builder.SetMaxSendMessageSize(static_cast<int>(options_.max_message_bytes));
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS,
                             static_cast<int>(absl::ToInt64Milliseconds(options_.keepalive_time)));
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS,
                             static_cast<int>(absl::ToInt64Milliseconds(options_.keepalive_timeout)));
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  // gRPC turns on SO_REUSEPORT by default: a second instance would silently share the port.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 10000);
  // Unlimited pings without data: the default (2) would stop keepalive from ever noticing a
  // dead idle client after its second ping.
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
  for (auto& [service, name] : services) {
    builder.RegisterService(service);
    if (const auto* d = google::protobuf::DescriptorPool::generated_pool()->FindServiceByName(name)) {
      for (int i = 0; i < d->method_count(); ++i) {
        rpc_metrics_ptr->RegisterMethod(absl::StrCat("/", name, "/", d->method(i)->name()));
      }
    }
  }
  std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> interceptors;
  interceptors.push_back(std::move(rpc_metrics));
  builder.experimental().SetInterceptorCreators(std::move(interceptors));

  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || bound_grpc_port_ == 0) {
    return Fail("gRPC server", absl::UnavailableError(absl::StrCat("cannot listen on ", options_.grpc_address,
                                                                   " (address in use or not valid)")));
  }
  if (!options_.port_file.empty()) {
    absl::Status written = WritePortFile(options_.port_file, bound_grpc_port_, exposer->GetListeningPorts().front());
    if (!written.ok()) {
      server->Shutdown(std::chrono::system_clock::now());
      return Fail("port file", written);
    }
  }
  for (auto& hook : ready_hooks_) {
    if (absl::Status s = hook(); !s.ok()) {
      server->Shutdown(std::chrono::system_clock::now());
      return Fail("warm-up", s);
    }
  }
  for (auto& [service, name] : services) health.Set(name, grpc::health::v1::HealthCheckResponse::SERVING);
  health.Set("", grpc::health::v1::HealthCheckResponse::SERVING);
  log::Info("serving", {{"grpc_port", bound_grpc_port_}, {"metrics_port", exposer->GetListeningPorts().front()}});

  sigset_t set = ShutdownSignals();
  int sig = 0;
  sigwait(&set, &sig);
  const absl::Time began = absl::Now();
  const Drain::Clock::time_point grace_end = Drain::Clock::now() + absl::ToChronoNanoseconds(options_.shutdown_grace);
  log::Info("shutting down", {{"signal", strsignal(sig)}, {"grace", options_.shutdown_grace}});
  Drain& drain = *drain_;
  drain.Start();      // RPCs that begin from now on are refused UNAVAILABLE (drain.h)
  health.Shutdown();  // every service NOT_SERVING, watchers told; load balancers stop sending
  for (auto& hook : drain_hooks_) hook();
  if (!drain.AwaitDrained(grace_end, kQuiet, kQuietLimit)) {
    log::Warn("shutdown grace spent; cancelling the RPCs still running", {{"running", drain.running()}});
  }
  // Only now does gRPC shut down: it sends every client a GOAWAY, and cancels any call that
  // reaches it after that. The held calls are answered after the GOAWAY, so a client reads it
  // before their answers and sends nothing more on this connection.
  grpc_completion_queue* shutdown_cq = grpc_completion_queue_create_for_next(nullptr);
  grpc_server_shutdown_and_notify(server->c_server(), shutdown_cq, nullptr);
  drain.Release();
  const Drain::Clock::time_point now = Drain::Clock::now();
  server->Shutdown(SystemTime(std::max(now, std::min(grace_end, now + kClose))));
  server->Wait();
  grpc_completion_queue_shutdown(shutdown_cq);
  while (grpc_completion_queue_next(shutdown_cq, gpr_inf_future(GPR_CLOCK_REALTIME), nullptr).type !=
         GRPC_QUEUE_SHUTDOWN) {
  }
  grpc_completion_queue_destroy(shutdown_cq);
  for (auto& hook : shutdown_hooks_) hook();
  StopMetricsEndpoint(std::move(exposer), options_.metrics_address);
  log::Info("stopped", {{"took", absl::Now() - began}, {"refused", drain.refused()}});
  return 0;
}

}  // namespace ecrm::server

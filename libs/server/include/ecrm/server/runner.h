// The runner every ecrm service's main() uses: configuration from flags and environment,
// structured logs, a gRPC server with the standard health service, reflection, keepalive and
// message-size limits, a Prometheus endpoint with RPC and process metrics, and a graceful
// shutdown on SIGTERM/SIGINT (health → NOT_SERVING, new RPCs refused UNAVAILABLE while those
// already admitted finish, up to --shutdown-grace; then gRPC shut down; exit 0 — drain.h).
//
//   int main(int argc, char** argv) {
//     ecrm::server::Runner runner({.name = "ecrm-infostore", .summary = "…", .grpc_port = 50051,
//                                  .metrics_port = 9101});
//     if (auto exit_code = runner.Start(argc, argv)) return *exit_code;
//     … open stores, build services, runner.AddService(&service, Service::service_full_name()) …
//     return runner.Serve();
//   }
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "ecrm/config/flags.h"

namespace grpc {
class Service;
}
namespace prometheus {
class Registry;
}

namespace ecrm::server {

class Drain;

struct ServiceInfo {
  std::string name;     // binary name, e.g. ecrm-infostore
  std::string engine;   // short name, e.g. infostore (database file, metrics label)
  std::string summary;  // one line for --help
  int grpc_port = 0;
  int metrics_port = 0;
  // Worker threads (--worker-threads 0) for blocking work on each database: SQLite serialises
  // writes, so an engine that mostly writes gains nothing from more threads than it has cores.
  int sqlite_workers = 8;
  int postgres_workers = 8;
  // Default of --max-message-bytes: what the engine's largest request needs (a broadcast's
  // listed audience of 1,000,000 ids is ~20 MB).
  int64_t max_message_bytes = 16 << 20;
};

// Settings every service shares; the runner registers their flags.
struct CommonOptions {
  std::string grpc_address;
  std::string metrics_address;
  std::string port_file;  // written with the bound ports once the servers listen; empty: none
  std::string database_url;
  int64_t database_pool_size = 0;
  int64_t sqlite_checkpoint_pages = 2000;
  int64_t worker_threads = 0;  // 0: the engine's default for its database (ServiceInfo)
  int64_t max_queue = 10000;
  std::string redis_url = "redis://127.0.0.1:6379";
  absl::Duration redis_timeout = absl::Milliseconds(100);
  int64_t redis_local_copies = 10000;
  std::string log_level = "info";
  std::string log_format = "logfmt";
  absl::Duration shutdown_grace = absl::Seconds(10);
  int64_t max_message_bytes = 16 << 20;
  absl::Duration keepalive_time = absl::Seconds(30);
  absl::Duration keepalive_timeout = absl::Seconds(10);
};

class Runner {
 public:
  explicit Runner(ServiceInfo info);
  ~Runner();
  Runner(const Runner&) = delete;
  Runner& operator=(const Runner&) = delete;

  // Add service-specific flags before Start().
  config::Flags& flags() { return flags_; }

  // Parses flags and sets up logging. Returns an exit code when main() should return at once:
  // 0 after --help, 2 after a configuration error (one clear line on stderr).
  std::optional<int> Start(int argc, char** argv);

  const CommonOptions& options() const { return options_; }
  const ServiceInfo& info() const { return info_; }
  prometheus::Registry& metrics() { return *registry_; }
  // Admits RPCs until shutdown begins, then refuses new ones while those admitted finish
  // (drain.h). Handlers reach it through their Executor; it outlives everything main() builds.
  Drain& drain() { return *drain_; }

  // Registers a service before Serve(); full_name (e.g. "ecrm.infostore.v1.InformationStore")
  // lets the RPC metrics be created up front for each of its methods.
  void AddService(grpc::Service* service, absl::string_view full_name);
  // Runs after the server listens and before health turns SERVING (warm-up); an error aborts.
  void OnReady(std::function<absl::Status()> hook) { ready_hooks_.push_back(std::move(hook)); }
  // Runs when shutdown begins, right after health turns NOT_SERVING and before the drain:
  // long-lived streams (change feeds) end themselves here so they do not hold the drain.
  void OnDrain(std::function<void()> hook) { drain_hooks_.push_back(std::move(hook)); }
  // Runs after the server has drained, before Serve() returns (flush, close).
  void OnShutdown(std::function<void()> hook) { shutdown_hooks_.push_back(std::move(hook)); }
  // Runs before every scrape of /metrics, on the endpoint's threads (two scrapes may run at
  // once), until Serve() returns: sets the gauges whose value is a matter of when they are read
  // (an age, a lag, free disk space). Add before Serve(); it must be quick and thread-safe.
  void OnScrape(std::function<void()> hook) { scrape_hooks_.push_back(std::move(hook)); }

  // Serves until SIGTERM or SIGINT, then shuts down gracefully. Returns the process exit code.
  int Serve();

  // Logs a start-up failure as one line and returns the exit code (1).
  int Fail(absl::string_view what, const absl::Status& status);

  // The port the gRPC server listens on (after Serve() has started it); 0 before.
  int grpc_port() const { return bound_grpc_port_; }

 private:
  struct Impl;
  ServiceInfo info_;
  CommonOptions options_;
  config::Flags flags_;
  std::shared_ptr<prometheus::Registry> registry_;
  std::unique_ptr<Drain> drain_;
  std::vector<std::pair<grpc::Service*, std::string>> services_;
  std::vector<std::function<absl::Status()>> ready_hooks_;
  std::vector<std::function<void()>> drain_hooks_;
  std::vector<std::function<void()>> shutdown_hooks_;
  std::vector<std::function<void()>> scrape_hooks_;
  int bound_grpc_port_ = 0;
};

}  // namespace ecrm::server

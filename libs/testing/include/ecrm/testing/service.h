// An ecrm service binary started for a test on ports it picks itself (port 0), ready once
// health says SERVING.
#pragma once

#include <grpcpp/channel.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "ecrm/testing/process.h"

namespace ecrm::testing {

// Polls grpc.health.v1.Health/Check until SERVING or the deadline.
absl::Status WaitForServing(const std::string& address, absl::Duration timeout);
// One health check: SERVING, NOT_SERVING… as text, or the RPC error.
absl::StatusOr<std::string> HealthStatus(const std::string& address, absl::Duration timeout = absl::Seconds(1));

class ServiceProcess {
 public:
  // Starts `binary` with --grpc-address and --metrics-address on 127.0.0.1:0, a SQLite database
  // in its own temp dir unless args name --database-url, and `args`; learns the ports it got
  // from its --port-file. An --grpc-address in args is used instead of port 0: a restarted
  // server a peer must find again passes the address it had; if another process has taken that
  // port since, the start is retried until the timeout.
  static absl::StatusOr<std::unique_ptr<ServiceProcess>> Start(const std::string& binary,
                                                               const std::vector<std::string>& args = {},
                                                               absl::Duration timeout = absl::Seconds(20));

  const std::string& grpc_address() const { return grpc_address_; }
  const std::string& metrics_address() const { return metrics_address_; }
  std::shared_ptr<grpc::Channel> channel() const;
  Process& process() { return *process_; }

 private:
  ServiceProcess() = default;
  TempDir dir_;
  std::string grpc_address_;
  std::string metrics_address_;
  std::unique_ptr<Process> process_;
};

}  // namespace ecrm::testing

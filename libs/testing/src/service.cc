#include "ecrm/testing/service.h"

#include <cstring>

#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>

#include <fstream>
#include <optional>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "grpc/health/v1/health.grpc.pb.h"

namespace ecrm::testing {

absl::StatusOr<std::string> HealthStatus(const std::string& address, absl::Duration timeout) {
  auto channel = grpc::CreateChannel(address, grpc::InsecureChannelCredentials());
  auto stub = grpc::health::v1::Health::NewStub(channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  grpc::health::v1::HealthCheckRequest req;
  grpc::health::v1::HealthCheckResponse resp;
  grpc::Status s = stub->Check(&ctx, req, &resp);
  if (!s.ok()) return absl::UnavailableError(absl::StrCat("health check: ", s.error_message()));
  return grpc::health::v1::HealthCheckResponse::ServingStatus_Name(resp.status());
}

absl::Status WaitForServing(const std::string& address, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  absl::Status last = absl::DeadlineExceededError("not yet checked");
  while (absl::Now() < deadline) {
    absl::StatusOr<std::string> s = HealthStatus(address, absl::Milliseconds(500));
    if (s.ok() && *s == "SERVING") return absl::OkStatus();
    last = s.ok() ? absl::UnavailableError(*s) : s.status();
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return absl::DeadlineExceededError(
      absl::StrCat(address, " not SERVING within ", absl::FormatDuration(timeout), ": ", last.message()));
}

namespace {

// The ports in a --port-file ("grpc_port=N\nmetrics_port=N\n"); false until it is complete.
bool ReadPortFile(const std::string& path, int* grpc_port, int* metrics_port) {
  std::ifstream in(path);
  std::string line;
  *grpc_port = 0;
  *metrics_port = 0;
  while (std::getline(in, line)) {
    absl::string_view rest = line;
    if (absl::ConsumePrefix(&rest, "grpc_port=")) (void)absl::SimpleAtoi(rest, grpc_port);
    if (absl::ConsumePrefix(&rest, "metrics_port=")) (void)absl::SimpleAtoi(rest, metrics_port);
  }
  return *grpc_port > 0 && *metrics_port > 0;
}

}  // namespace

absl::StatusOr<std::unique_ptr<ServiceProcess>> ServiceProcess::Start(const std::string& binary,
                                                                      const std::vector<std::string>& args,
                                                                      absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  std::unique_ptr<ServiceProcess> s(new ServiceProcess());
  const std::string port_file = s->dir_.path() + "/ports";
  bool has_db = false;
  std::string fixed_address;  // a caller's --grpc-address (the last one given wins)
  for (const std::string& a : args) {
    has_db |= absl::StartsWith(a, "--database-url");
    if (absl::StartsWith(a, "--grpc-address=")) fixed_address = a.substr(strlen("--grpc-address="));
  }
  std::vector<std::string> argv = {binary, "--grpc-address=127.0.0.1:0", "--metrics-address=127.0.0.1:0",
                                   "--port-file=" + port_file};
  if (!has_db) argv.push_back(absl::StrCat("--database-url=sqlite://", s->dir_.path(), "/service.db"));
  argv.insert(argv.end(), args.begin(), args.end());
  for (int attempt = 1;; ++attempt) {
    auto p = Process::Spawn(argv, absl::StrCat(s->dir_.path(), "/service-", attempt, ".log"));
    if (!p.ok()) return p.status();
    s->process_ = std::move(*p);
    int grpc_port = 0;
    int metrics_port = 0;
    bool listening = false;
    while (!(listening = ReadPortFile(port_file, &grpc_port, &metrics_port)) && s->process_->running() &&
           absl::Now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    if (listening) {
      s->grpc_address_ = absl::StrCat("127.0.0.1:", grpc_port);
      s->metrics_address_ = absl::StrCat("127.0.0.1:", metrics_port);
      break;
    }
    const std::string output = s->process_->Output();
    // The fixed port is held by another process (one binding port 0 may have been given it
    // since the server last ran): such holders are short-lived in a test run, so try again.
    const bool port_taken = !fixed_address.empty() && !s->process_->running() &&
                            absl::StrContains(output, absl::StrCat("cannot listen on ", fixed_address));
    if (!port_taken || absl::Now() >= deadline) {
      std::optional<int> exit_code = s->process_->Wait(absl::ZeroDuration());
      const std::string what = exit_code ? absl::StrCat(" exited with ", *exit_code, " before it listened")
                                         : absl::StrCat(" did not listen within ", absl::FormatDuration(timeout));
      return absl::UnavailableError(absl::StrCat(binary, what, "\n--- service output ---\n", output));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  if (absl::Status ready = WaitForServing(s->grpc_address_, deadline - absl::Now()); !ready.ok()) {
    return absl::Status(ready.code(),
                        absl::StrCat(ready.message(), "\n--- service output ---\n", s->process_->Output()));
  }
  return s;
}

std::shared_ptr<grpc::Channel> ServiceProcess::channel() const {
  return grpc::CreateChannel(grpc_address_, grpc::InsecureChannelCredentials());
}

}  // namespace ecrm::testing

#include "ecrm/testing/service.h"

#include <cstring>

#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>

#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
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

absl::StatusOr<std::unique_ptr<ServiceProcess>> ServiceProcess::Start(const std::string& binary,
                                                                      const std::vector<std::string>& args,
                                                                      absl::Duration timeout) {
  std::unique_ptr<ServiceProcess> s(new ServiceProcess());
  s->grpc_address_ = absl::StrCat("127.0.0.1:", FreePort());
  s->metrics_address_ = absl::StrCat("127.0.0.1:", FreePort());
  bool has_db = false;
  for (const std::string& a : args) {
    has_db |= absl::StartsWith(a, "--database-url");
    // A caller that needs a fixed address (a restart a peer must find again) names it.
    if (absl::StartsWith(a, "--grpc-address=")) s->grpc_address_ = a.substr(strlen("--grpc-address="));
  }
  std::vector<std::string> argv = {binary, "--grpc-address=" + s->grpc_address_,
                                   "--metrics-address=" + s->metrics_address_};
  if (!has_db) argv.push_back(absl::StrCat("--database-url=sqlite://", s->dir_.path(), "/service.db"));
  argv.insert(argv.end(), args.begin(), args.end());
  auto p = Process::Spawn(argv, s->dir_.path() + "/service.log");
  if (!p.ok()) return p.status();
  s->process_ = std::move(*p);
  if (absl::Status ready = WaitForServing(s->grpc_address_, timeout); !ready.ok()) {
    return absl::Status(ready.code(),
                        absl::StrCat(ready.message(), "\n--- service output ---\n", s->process_->Output()));
  }
  return s;
}

std::shared_ptr<grpc::Channel> ServiceProcess::channel() const {
  return grpc::CreateChannel(grpc_address_, grpc::InsecureChannelCredentials());
}

}  // namespace ecrm::testing

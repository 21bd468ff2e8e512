// ecrm-healthcheck: exits 0 once a gRPC server reports SERVING (for scripts, Docker and
// Kubernetes exec probes), 1 if it does not within --wait.
#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>

#include <cstdio>
#include <thread>

#include "ecrm/config/flags.h"
#include "grpc/health/v1/health.grpc.pb.h"

int main(int argc, char** argv) {
  std::string target = "127.0.0.1:50051";
  std::string service;
  absl::Duration wait = absl::ZeroDuration();
  ecrm::config::Flags flags("ecrm-healthcheck", "checks grpc.health.v1 of an ecrm service");
  flags.AddString("target", &target, "host:port of the service");
  flags.AddString("service", &service, "service name to ask about; empty means the whole server");
  flags.AddDuration("wait", &wait, "keep asking until SERVING for up to this long (0: ask once)");
  if (std::optional<int> exit_code = flags.ParseCommandLine(argc, argv)) return *exit_code;
  auto stub = grpc::health::v1::Health::NewStub(grpc::CreateChannel(target, grpc::InsecureChannelCredentials()));
  const absl::Time deadline = absl::Now() + wait;
  std::string last;
  do {
    grpc::ClientContext ctx;
    ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(1)));
    grpc::health::v1::HealthCheckRequest req;
    req.set_service(service);
    grpc::health::v1::HealthCheckResponse resp;
    grpc::Status s = stub->Check(&ctx, req, &resp);
    if (s.ok() && resp.status() == grpc::health::v1::HealthCheckResponse::SERVING) {
      std::printf("%s SERVING\n", target.c_str());
      return 0;
    }
    last = s.ok() ? grpc::health::v1::HealthCheckResponse::ServingStatus_Name(resp.status()) : s.error_message();
    if (absl::Now() < deadline) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  } while (absl::Now() < deadline);
  std::fprintf(stderr, "%s not serving: %s\n", target.c_str(), last.c_str());
  return 1;
}

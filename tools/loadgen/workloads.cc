// The workloads ecrm-load knows. Engine benchmarks add theirs here.
#include <grpcpp/client_context.h>

#include "grpc/health/v1/health.grpc.pb.h"
#include "loadgen.h"

namespace ecrm::loadgen {
namespace {

// grpc.health.v1.Health/Check: the baseline every engine benchmark is compared with.
class HealthCheck final : public Workload {
 public:
  void Call(int64_t, grpc::Channel& channel, absl::Duration timeout,
            std::function<void(const grpc::Status&)> done) override {
    struct Call {
      grpc::ClientContext ctx;
      grpc::health::v1::HealthCheckRequest req;
      grpc::health::v1::HealthCheckResponse resp;
    };
    auto* call = new Call();
    call->ctx.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
    grpc::health::v1::Health::NewStub(std::shared_ptr<grpc::Channel>(&channel, [](grpc::Channel*) {}))
        ->async()
        ->Check(&call->ctx, &call->req, &call->resp, [call, done = std::move(done)](grpc::Status status) {
          done(status);
          delete call;
        });
  }
};

}  // namespace

const std::map<std::string, WorkloadFactory>& Workloads() {
  static const auto* workloads = new std::map<std::string, WorkloadFactory>{
      {"health",
       [](const std::vector<std::shared_ptr<grpc::Channel>>&) -> absl::StatusOr<std::unique_ptr<Workload>> {
         return std::make_unique<HealthCheck>();
       }},
  };
  return *workloads;
}

}  // namespace ecrm::loadgen

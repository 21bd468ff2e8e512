// The workloads ecrm-load knows. Engine benchmarks add theirs here.
#include <grpcpp/client_context.h>

#include <atomic>
#include <random>

#include "absl/strings/str_cat.h"
#include "ecrm/infostore/v1/infostore.grpc.pb.h"
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

namespace infostore = ::ecrm::infostore::v1;

std::shared_ptr<grpc::Channel> Borrow(grpc::Channel& channel) {
  return std::shared_ptr<grpc::Channel>(&channel, [](grpc::Channel*) {});
}

// GetCustomer by id over a seeded population (created before the load; the warm-up fills
// the cache, so the measured window reads hot profiles).
class GetCustomer final : public Workload {
 public:
  explicit GetCustomer(std::vector<std::string> ids) : ids_(std::move(ids)) {}

  static absl::StatusOr<std::unique_ptr<Workload>> Create(const std::vector<std::shared_ptr<grpc::Channel>>& channels,
                                                          int population) {
    auto stub = infostore::InformationStore::NewStub(channels.front());
    std::vector<std::string> ids;
    for (int i = 0; i < population; ++i) {
      grpc::ClientContext ctx;
      ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
      infostore::UpsertCustomerRequest req;
      auto* id = req.add_identifiers();
      id->set_type(ecrm::common::v1::IDENTIFIER_TYPE_EMAIL);
      id->set_value(absl::StrCat("load-", i, "@example.com"));
      req.mutable_profile()->set_first_name(absl::StrCat("Customer ", i));
      req.mutable_profile()->mutable_address()->set_city("Leeds");
      infostore::UpsertCustomerResponse resp;
      grpc::Status s = stub->UpsertCustomer(&ctx, req, &resp);
      if (!s.ok()) return absl::UnavailableError(absl::StrCat("seeding customers: ", s.error_message()));
      ids.push_back(resp.customer().id());
    }
    return std::make_unique<GetCustomer>(std::move(ids));
  }

  void Call(int64_t n, grpc::Channel& channel, absl::Duration timeout,
            std::function<void(const grpc::Status&)> done) override {
    struct Call {
      grpc::ClientContext ctx;
      infostore::GetCustomerRequest req;
      infostore::Customer resp;
    };
    auto* call = new Call();
    call->ctx.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
    // A multiplicative hash spreads consecutive requests over the population.
    call->req.mutable_customer()->set_customer_id(ids_[static_cast<uint64_t>(n) * 2654435761u % ids_.size()]);
    infostore::InformationStore::NewStub(Borrow(channel))
        ->async()
        ->GetCustomer(&call->ctx, &call->req, &call->resp, [call, done = std::move(done)](grpc::Status status) {
          done(status);
          delete call;
        });
  }

 private:
  std::vector<std::string> ids_;
};

// UpsertCustomer creating a new customer each call (a unique email per request).
class UpsertCustomer final : public Workload {
 public:
  void Call(int64_t n, grpc::Channel& channel, absl::Duration timeout,
            std::function<void(const grpc::Status&)> done) override {
    struct Call {
      grpc::ClientContext ctx;
      infostore::UpsertCustomerRequest req;
      infostore::UpsertCustomerResponse resp;
    };
    auto* call = new Call();
    call->ctx.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
    auto* id = call->req.add_identifiers();
    id->set_type(ecrm::common::v1::IDENTIFIER_TYPE_EMAIL);
    id->set_value(absl::StrCat("upsert-", run_, "-", n, "@example.com"));
    call->req.mutable_profile()->set_first_name("Load");
    call->req.mutable_profile()->set_locale("en-GB");
    infostore::InformationStore::NewStub(Borrow(channel))
        ->async()
        ->UpsertCustomer(&call->ctx, &call->req, &call->resp, [call, done = std::move(done)](grpc::Status status) {
          done(status);
          delete call;
        });
  }

 private:
  const uint64_t run_ = std::random_device()();
};

}  // namespace

const std::map<std::string, WorkloadFactory>& Workloads() {
  static const auto* workloads = new std::map<std::string, WorkloadFactory>{
      {"health",
       [](const std::vector<std::shared_ptr<grpc::Channel>>&) -> absl::StatusOr<std::unique_ptr<Workload>> {
         return std::make_unique<HealthCheck>();
       }},
      {"infostore.get",
       [](const std::vector<std::shared_ptr<grpc::Channel>>& channels) { return GetCustomer::Create(channels, 2000); }},
      {"infostore.upsert",
       [](const std::vector<std::shared_ptr<grpc::Channel>>&) -> absl::StatusOr<std::unique_ptr<Workload>> {
         return std::make_unique<UpsertCustomer>();
       }},
  };
  return *workloads;
}

}  // namespace ecrm::loadgen

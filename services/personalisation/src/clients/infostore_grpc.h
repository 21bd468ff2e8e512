// CustomerDirectory over gRPC (ecrm.infostore.v1.InformationStore.BatchGetCustomers).
#pragma once

#include <grpcpp/channel.h>

#include <memory>

#include "absl/time/time.h"
#include "clients/infostore.h"

namespace ecrm::personalisation {

class GrpcCustomerDirectory final : public CustomerDirectory {
 public:
  // timeout: of each call, shortened to what is left of the caller's deadline.
  GrpcCustomerDirectory(std::shared_ptr<grpc::Channel> channel, absl::Duration timeout)
      : channel_(std::move(channel)), timeout_(timeout) {}
  absl::StatusOr<infostore::v1::BatchGetCustomersResponse> BatchGetCustomers(
      absl::Span<const std::string> ids) override;

 private:
  std::shared_ptr<grpc::Channel> channel_;
  absl::Duration timeout_;
};

}  // namespace ecrm::personalisation

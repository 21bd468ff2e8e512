// CustomerDirectory and ConsentUpdater over gRPC: ecrm.infostore.v1.InformationStore's
// GetCustomer and UpdateConsent.
#pragma once

#include <grpcpp/channel.h>

#include <memory>

#include "clients/infostore.h"

namespace ecrm::broadcast {

class GrpcCustomerDirectory final : public CustomerDirectory, public ConsentUpdater {
 public:
  GrpcCustomerDirectory(std::shared_ptr<grpc::Channel> channel, absl::Duration timeout)
      : channel_(std::move(channel)), timeout_(timeout) {}
  absl::StatusOr<infostore::v1::Customer> GetCustomer(const common::v1::CustomerRef& ref, absl::Time deadline) override;
  absl::Status UpdateConsent(const infostore::v1::UpdateConsentRequest& request, absl::Time deadline) override;

 private:
  std::shared_ptr<grpc::Channel> channel_;
  const absl::Duration timeout_;
};

}  // namespace ecrm::broadcast

// CustomerDirectory over gRPC: ecrm.infostore.v1.InformationStore/GetCustomer.
#pragma once

#include <grpcpp/channel.h>

#include <memory>

#include "clients/infostore.h"

namespace ecrm::broadcast {

class GrpcCustomerDirectory final : public CustomerDirectory {
 public:
  GrpcCustomerDirectory(std::shared_ptr<grpc::Channel> channel, absl::Duration timeout)
      : channel_(std::move(channel)), timeout_(timeout) {}
  absl::StatusOr<infostore::v1::Customer> GetCustomer(const common::v1::CustomerRef& ref, absl::Time deadline) override;

 private:
  std::shared_ptr<grpc::Channel> channel_;
  const absl::Duration timeout_;
};

}  // namespace ecrm::broadcast

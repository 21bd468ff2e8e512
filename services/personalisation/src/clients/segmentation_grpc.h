// SegmentDirectory over gRPC (ecrm.segmentation.v1.Segmentation.GetCustomerSegments).
#pragma once

#include <grpcpp/channel.h>

#include <memory>

#include "absl/time/time.h"
#include "clients/segmentation.h"

namespace ecrm::personalisation {

class GrpcSegmentDirectory final : public SegmentDirectory {
 public:
  // timeout: of each call, shortened to what is left of the caller's deadline.
  GrpcSegmentDirectory(std::shared_ptr<grpc::Channel> channel, absl::Duration timeout)
      : channel_(std::move(channel)), timeout_(timeout) {}
  absl::StatusOr<std::vector<std::string>> CustomerSegments(const std::string& customer_id) override;

 private:
  std::shared_ptr<grpc::Channel> channel_;
  absl::Duration timeout_;
};

}  // namespace ecrm::personalisation

// SegmentDirectory over gRPC: ecrm.segmentation.v1.Segmentation/StreamSegmentMembers.
#pragma once

#include <grpcpp/channel.h>

#include <memory>

#include "clients/segmentation.h"

namespace ecrm::broadcast {

class GrpcSegmentDirectory final : public SegmentDirectory {
 public:
  GrpcSegmentDirectory(std::shared_ptr<grpc::Channel> channel, absl::Duration timeout)
      : channel_(std::move(channel)), timeout_(timeout) {}
  absl::Status ForEachMember(const std::string& segment_id, absl::Time deadline,
                             const std::function<absl::Status(std::vector<std::string>)>& each) override;

 private:
  std::shared_ptr<grpc::Channel> channel_;
  const absl::Duration timeout_;
};

}  // namespace ecrm::broadcast

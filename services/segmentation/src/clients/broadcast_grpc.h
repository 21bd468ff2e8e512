// Broadcaster over gRPC: ecrm.broadcast.v1.Broadcast/CreateBroadcast.
#pragma once

#include <grpcpp/channel.h>

#include <memory>

#include "absl/time/time.h"
#include "clients/broadcast.h"

namespace ecrm::segmentation {

class GrpcBroadcaster final : public Broadcaster {
 public:
  GrpcBroadcaster(std::shared_ptr<grpc::Channel> channel, absl::Duration timeout)
      : channel_(std::move(channel)), timeout_(timeout) {}
  absl::StatusOr<std::string> Send(const BroadcastOrder& order) override;

 private:
  std::shared_ptr<grpc::Channel> channel_;
  const absl::Duration timeout_;
};

}  // namespace ecrm::segmentation

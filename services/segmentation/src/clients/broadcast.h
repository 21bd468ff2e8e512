// The broadcast engine as campaigns use it: a campaign's treatment group handed over to be
// messaged. No gRPC here (broadcast_grpc.h is the real one; tests use fakes).
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "ecrm/common/v1/common.pb.h"

namespace ecrm::segmentation {

struct BroadcastOrder {
  std::string campaign_id;
  std::vector<std::string> customer_ids;
  std::vector<common::v1::Channel> channels;  // in order of preference
  common::v1::Purpose purpose = common::v1::PURPOSE_MARKETING;
  std::string template_id;
  std::string offer_id;
  // With template_id: where each customer's offers are decided for; empty: none.
  std::string placement;
  // The same key hands the same order over once, however often it is retried.
  std::string idempotency_key;
};

class Broadcaster {
 public:
  virtual ~Broadcaster() = default;
  // The broadcast's id once broadcast has the order; UNAVAILABLE when it could not be reached
  // (retry the launch), another code when it refused the order.
  virtual absl::StatusOr<std::string> Send(const BroadcastOrder& order) = 0;
};

}  // namespace ecrm::segmentation

// Segmentation as the broadcast engine's domain needs it (no gRPC here: segmentation_grpc.h is
// the real one; tests use fakes): the members of a segment, for CreateBroadcast's segment_id.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"

namespace ecrm::broadcast {

class SegmentDirectory {
 public:
  virtual ~SegmentDirectory() = default;
  // Hands every member of segment `segment_id` to `each`, a batch at a time, by `deadline`;
  // stops at the first error `each` returns and returns it. NOT_FOUND for an unknown segment,
  // UNAVAILABLE or DEADLINE_EXCEEDED when segmentation did not answer (or stopped answering).
  virtual absl::Status ForEachMember(const std::string& segment_id, absl::Time deadline,
                                     const std::function<absl::Status(std::vector<std::string>)>& each) = 0;
};

}  // namespace ecrm::broadcast

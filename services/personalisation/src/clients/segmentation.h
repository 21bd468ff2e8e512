// Segmentation as the personalisation engine's domain needs it (no gRPC here:
// segmentation_grpc.h is the real one; tests use fakes): the segments a customer is in, for
// offers restricted to segments.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace ecrm::personalisation {

class SegmentDirectory {
 public:
  virtual ~SegmentDirectory() = default;
  // The ids of the segments the customer is a member of now (none for a customer segmentation
  // does not hold), within the caller's deadline. UNAVAILABLE / DEADLINE_EXCEEDED when
  // segmentation could not answer.
  virtual absl::StatusOr<std::vector<std::string>> CustomerSegments(const std::string& customer_id) = 0;
};

}  // namespace ecrm::personalisation

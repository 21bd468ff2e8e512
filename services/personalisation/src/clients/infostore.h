// The information store as the personalisation engine's domain needs it (no gRPC here:
// infostore_grpc.h is the real one; tests use fakes): customers read by id when the shared
// profile cache does not hold them.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "ecrm/infostore/v1/infostore.pb.h"

namespace ecrm::personalisation {

class CustomerDirectory {
 public:
  virtual ~CustomerDirectory() = default;
  // At most 1,000 ids, read in one call within the caller's deadline; a merged id answers its
  // survivor (whose merged_ids lists it). UNAVAILABLE when the store could not answer.
  virtual absl::StatusOr<infostore::v1::BatchGetCustomersResponse> BatchGetCustomers(
      absl::Span<const std::string> ids) = 0;
};

}  // namespace ecrm::personalisation

// The information store as the transaction engine's domain needs it for an order placed by
// identifier: the customer a reference names (no gRPC here; customer_resolver_grpc.h is the
// real one).
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "ecrm/common/v1/common.pb.h"

namespace ecrm::transaction {

class CustomerResolver {
 public:
  virtual ~CustomerResolver() = default;
  // The customer's id; NOT_FOUND when no customer has the identifier, UNAVAILABLE when the
  // information store could not answer.
  virtual absl::StatusOr<std::string> Resolve(const common::v1::CustomerRef& ref) = 0;
};

}  // namespace ecrm::transaction

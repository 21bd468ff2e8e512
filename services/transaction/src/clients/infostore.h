// The information store as the transaction engine's domain needs it (no gRPC here:
// infostore_grpc.h is the real one; tests use fakes): it names the customer an order placed by
// identifier belongs to. (The outbox's events reach it through libs/outbox's EventSink.)
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

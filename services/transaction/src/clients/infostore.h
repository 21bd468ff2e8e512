// The information store as the transaction engine's domain needs it (no gRPC here:
// infostore_grpc.h is the real one; tests use fakes): it names the customer an order placed by
// identifier belongs to, and it receives the outbox's events.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "ecrm/common/v1/common.pb.h"
#include "outbox.h"

namespace ecrm::transaction {

class CustomerResolver {
 public:
  virtual ~CustomerResolver() = default;
  // The customer's id; NOT_FOUND when no customer has the identifier, UNAVAILABLE when the
  // information store could not answer.
  virtual absl::StatusOr<std::string> Resolve(const common::v1::CustomerRef& ref) = 0;
};

class EventSink {
 public:
  virtual ~EventSink() = default;
  // Delivers the events as one RecordEvents batch; OK once the information store has them
  // durably. INVALID_ARGUMENT, NOT_FOUND, FAILED_PRECONDITION or OUT_OF_RANGE: it refused the
  // data itself (sending the same again cannot help); any other error may pass on a retry.
  virtual absl::Status Record(absl::Span<const OutboxEvent> events) = 0;
  // Cancels the call in flight, if any, and every later one (CANCELLED): shutdown must not wait
  // for a call to an information store that does not answer.
  virtual void Cancel() = 0;
};

}  // namespace ecrm::transaction

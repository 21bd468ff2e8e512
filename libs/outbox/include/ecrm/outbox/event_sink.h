// Where the relay delivers the outbox: the information store's RecordEvents, as an interface
// (no gRPC here: grpc_event_sink.h is the real one; tests use fakes).
#pragma once

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "ecrm/outbox/outbox.h"

namespace ecrm::outbox {

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

}  // namespace ecrm::outbox

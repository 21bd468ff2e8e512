// The deadline of the RPC a thread is working for, carried across the hand-off to a worker
// (server::Offload sets it for the call it runs), so that a call to another engine made on the
// way spends at most the caller's remaining budget (server::PrepareOutboundCall) instead of its
// own configured timeout. Domain code never sees it.
#pragma once

#include "absl/time/time.h"

namespace ecrm::server {

// absl::InfiniteFuture() when this thread works for no RPC, or for one without a deadline.
absl::Time CurrentDeadline();

// The deadline for a call to another engine: `timeout` from now, or CurrentDeadline() if that
// comes sooner.
absl::Time OutboundDeadline(absl::Duration timeout);

// Sets this thread's current deadline for its lifetime; restores the one before on exit.
class ScopedDeadline {
 public:
  explicit ScopedDeadline(absl::Time deadline);
  ~ScopedDeadline();
  ScopedDeadline(const ScopedDeadline&) = delete;
  ScopedDeadline& operator=(const ScopedDeadline&) = delete;

 private:
  absl::Time previous_;
};

}  // namespace ecrm::server

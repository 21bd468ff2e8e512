#include "ecrm/server/deadline.h"

#include <algorithm>

#include "absl/time/clock.h"

namespace ecrm::server {
namespace {

thread_local absl::Time current_deadline = absl::InfiniteFuture();

}  // namespace

absl::Time CurrentDeadline() { return current_deadline; }

absl::Time OutboundDeadline(absl::Duration timeout) { return std::min(absl::Now() + timeout, current_deadline); }

ScopedDeadline::ScopedDeadline(absl::Time deadline) : previous_(current_deadline) { current_deadline = deadline; }

ScopedDeadline::~ScopedDeadline() { current_deadline = previous_; }

}  // namespace ecrm::server

// Quiet hours in the customer's own time zone: a daily window (e.g. 21:00–08:00, which wraps
// midnight) during which marketing is not sent. Computed on civil time in the customer's zone
// (absl time zones), so the end of a window falls at the right instant across a DST change.
#pragma once

#include <optional>
#include <string>

#include "absl/time/time.h"

namespace ecrm::broadcast {

struct QuietWindow {
  int start_minute = 0;  // minutes after local midnight
  int end_minute = 0;    // equal to start: no window
};

// When `now` is inside the window in `zone`, the instant the window ends; nullopt outside it.
std::optional<absl::Time> QuietUntil(absl::Time now, const QuietWindow& window, const absl::TimeZone& zone);

// The customer's zone by IANA name; UTC for an empty or unknown name (a profile with a bad zone
// must not stop the message, only shift its window).
absl::TimeZone ZoneOrUtc(const std::string& name);

}  // namespace ecrm::broadcast

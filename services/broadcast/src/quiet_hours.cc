#include "quiet_hours.h"

namespace ecrm::broadcast {

std::optional<absl::Time> QuietUntil(absl::Time now, const QuietWindow& window, const absl::TimeZone& zone) {
  const int s = window.start_minute, e = window.end_minute;
  if (s == e) return std::nullopt;
  const absl::CivilSecond local = absl::ToCivilSecond(now, zone);
  const int m = local.hour() * 60 + local.minute();
  const bool wraps = s > e;
  const bool inside = wraps ? (m >= s || m < e) : (m >= s && m < e);
  if (!inside) return std::nullopt;
  absl::CivilDay day = absl::CivilDay(local);
  if (wraps && m >= s) day += 1;  // the window ends tomorrow morning
  const absl::CivilSecond end(day.year(), day.month(), day.day(), e / 60, e % 60, 0);
  // A local time skipped by a DST change maps to the instant of the change.
  const absl::TimeZone::TimeInfo info = zone.At(end);
  if (info.kind == absl::TimeZone::TimeInfo::SKIPPED) return info.trans;
  return info.pre;
}

absl::TimeZone ZoneOrUtc(const std::string& name) {
  absl::TimeZone tz;  // absl keeps each zone it loaded, so this reads the zone file once
  if (name.empty() || !absl::LoadTimeZone(name, &tz)) return absl::UTCTimeZone();
  return tz;
}

}  // namespace ecrm::broadcast

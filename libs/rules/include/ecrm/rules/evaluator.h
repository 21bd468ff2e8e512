// Evaluates a compiled rule over one customer, and says until when the answer holds.
#pragma once

#include <cstdint>
#include <optional>
#include "absl/strings/string_view.h"

#include "absl/time/time.h"
#include "ecrm/rules/rule.h"
#include "ecrm/rules/types.h"

namespace ecrm::rules {

// The caller's view of one customer. Every method is called during an evaluation only, on
// the evaluating thread; ids are those the Schema gave when the rule was compiled.
class CustomerView {
 public:
  virtual ~CustomerView() = default;

  // The field's value: of the field's type, or Missing (no value: an empty profile string,
  // no order yet, an attribute the customer lacks). Consent fields are never missing: a
  // consent is true only when its status is granted.
  virtual Value Field(const FieldRef& field) const = 0;
  // Whether a list field (interests) holds `item`.
  virtual bool ListContains(const FieldRef& field, absl::string_view item) const = 0;
  // Events of the type that occurred in (now - window, now]; every event when the window is
  // absl::InfiniteDuration().
  virtual int64_t EventCount(int32_t event_type, absl::Duration window, absl::Time now) const = 0;
  // When the latest event of the type occurred; nullopt if there is none.
  virtual std::optional<absl::Time> LastEventAt(int32_t event_type) const = 0;
  virtual bool InSegment(int32_t segment) const = 0;

  // For EvaluateWithNextChange: the earliest instant after `now` at which
  // EventCount(event_type, window, instant) <= at_most will hold with no new events — the
  // instant the (count - at_most)-th oldest event in the window leaves it (its time + window).
  // absl::InfiniteFuture() if it never will (an infinite window). An earlier instant is
  // acceptable (day buckets may answer the end of the bucket's first day); a later one is
  // not. A view holding events dated after `now` answers no later than the first of them.
  virtual absl::Time EventCountAtMostAt(int32_t event_type, absl::Duration window, absl::Time now,
                                        int64_t at_most) const = 0;
};

// The rule's value for the customer at `now`. kUnknown (a missing value decided it) is not a
// match. Allocates nothing.
Truth Evaluate(const Rule& rule, const CustomerView& customer, absl::Time now);
inline bool Matches(const Rule& rule, const CustomerView& customer, absl::Time now) {
  return Evaluate(rule, customer, now) == Truth::kTrue;
}

struct Evaluation {
  Truth truth = Truth::kFalse;
  // The rule's value is `truth` at every instant in [now, next_change) unless the customer's
  // data changes: re-evaluate at (or after) next_change. absl::InfiniteFuture() when only a
  // change of data can change it. Conservative: it may come before the value really changes,
  // never after. Memberships of referenced segments count as data.
  absl::Time next_change;
};
Evaluation EvaluateWithNextChange(const Rule& rule, const CustomerView& customer, absl::Time now);

}  // namespace ecrm::rules

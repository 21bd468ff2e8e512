// RFM quintile scores with named cells, and the engagement score. Pure functions of the values
// they are given; the table and formulas are in docs/scores.md.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include "absl/strings/string_view.h"

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace ecrm::segmentation {

// What RFM reads of a customer with at least one purchase.
struct RfmInput {
  absl::Time last_purchase;  // recency: later is better
  int64_t purchases = 0;     // frequency
  double spend = 0;          // monetary: total spend
};

enum class RfmCell {
  kChampions,
  kLoyal,
  kPotentialLoyalist,
  kNew,
  kPromising,
  kNeedAttention,
  kAboutToSleep,
  kAtRisk,
  kCannotLose,
  kHibernating,
  kLost,
};

// "champions", "loyal", "potential_loyalist", "new", "promising", "need_attention",
// "about_to_sleep", "at_risk", "cannot_lose", "hibernating", "lost".
absl::string_view RfmCellName(RfmCell cell);

// The cell of recency score r and combined score fm = ⌈(f + m) / 2⌉, all in 1..5 (the table in
// docs/scores.md). Scores outside 1..5 are clamped.
RfmCell RfmCellOf(int r, int fm);

struct RfmScore {
  int r = 0, f = 0, m = 0;  // 1..5, 5 best
  int fm = 0;               // ⌈(f + m) / 2⌉
  RfmCell cell = RfmCell::kLost;
};

// Quintile scores over a population. A value's score is 1 + ⌊5 · (population values strictly
// worse than it) / N⌋, so equal values always get the same score and a tie spanning a quintile
// boundary takes the lower score for all its members. The scorer keeps only the four cut
// points of each dimension, so it scores customers outside the population the same way.
class RfmScorer {
 public:
  // INVALID_ARGUMENT for an empty population or an input with purchases < 1 or a non-finite or
  // negative spend (naming "population[i].<field>").
  static absl::StatusOr<RfmScorer> Build(std::span<const RfmInput> population);

  RfmScore Score(const RfmInput& customer) const;

  int64_t population() const { return population_; }

 private:
  RfmScorer() = default;
  // cuts_[k] is the value a customer must exceed to score above k + 1.
  std::array<absl::Time, 4> recency_cuts_{};
  std::array<int64_t, 4> frequency_cuts_{};
  std::array<double, 4> monetary_cuts_{};
  int64_t population_ = 0;
};

// ---------------------------------------------------------------------------------------------
// Engagement: exponentially decayed, weighted counts of recent interactions squashed to 0–100.
//   raw = Σ weight(kind) · count · 2^(−age / half_life)      (age = now − at, at least 0)
//   score = 100 · (1 − e^(−raw / scale))

enum class EngagementKind {
  kEvent,         // a behavioural event recorded for the customer (page view, app event, …)
  kMessageOpen,   // a message of a campaign or journey was opened
  kMessageClick,  // a link in a message was clicked
  kPurchase,      // an order
};

struct EngagementEvent {
  EngagementKind kind = EngagementKind::kEvent;
  absl::Time at;
  int64_t count = 1;  // events of this kind at this time (a day bucket's count)
};

struct EngagementOptions {
  double event_weight = 1;
  double open_weight = 2;
  double click_weight = 4;
  double purchase_weight = 8;
  absl::Duration half_life = absl::Hours(24 * 30);
  double scale = 20;                               // raw = scale gives 63, 2·scale 86, 3·scale 95
  absl::Duration horizon = absl::Hours(24 * 180);  // older interactions are ignored
};

// In [0, 100]; 0 without interactions. Interactions dated after `now` count as happening now.
double EngagementScore(std::span<const EngagementEvent> events, absl::Time now, const EngagementOptions& options = {});

}  // namespace ecrm::segmentation

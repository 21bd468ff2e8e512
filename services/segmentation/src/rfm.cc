#include "rfm.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace ecrm::segmentation {

namespace {

constexpr int kScores = 5;

// Rows r = 1..5 (index r − 1), columns fm = 1..5: the widely used R × F segment map, read on
// R × ⌈(F+M)/2⌉, with its hibernating corner r = 1, fm = 1 split off as "lost".
using C = RfmCell;
constexpr RfmCell kTable[kScores][kScores] = {
    /* r=1 */ {C::kLost, C::kHibernating, C::kAtRisk, C::kAtRisk, C::kCannotLose},
    /* r=2 */ {C::kHibernating, C::kHibernating, C::kAtRisk, C::kAtRisk, C::kCannotLose},
    /* r=3 */ {C::kAboutToSleep, C::kAboutToSleep, C::kNeedAttention, C::kLoyal, C::kLoyal},
    /* r=4 */ {C::kPromising, C::kPotentialLoyalist, C::kPotentialLoyalist, C::kLoyal, C::kLoyal},
    /* r=5 */ {C::kNew, C::kPotentialLoyalist, C::kPotentialLoyalist, C::kChampions, C::kChampions},
};

// Cut points of a population for score = 1 + ⌊5 · less(v) / N⌋, less(v) = #{values < v}:
// score > k + 1 ⟺ 5 · less(v) ≥ (k + 1) · N ⟺ less(v) ≥ j with j = ⌈(k + 1) N / 5⌉
// ⟺ v > sorted[j − 1] (the j-th smallest value).
template <typename T>
std::array<T, 4> Cuts(std::vector<T> values) {
  std::sort(values.begin(), values.end());
  const auto n = static_cast<int64_t>(values.size());
  std::array<T, 4> cuts{};
  for (int64_t k = 0; k < 4; ++k) {
    const int64_t j = ((k + 1) * n + kScores - 1) / kScores;  // ≥ 1 for n ≥ 1
    cuts[k] = values[j - 1];
  }
  return cuts;
}

template <typename T>
int ScoreOf(const std::array<T, 4>& cuts, const T& v) {
  int score = 1;
  for (const T& cut : cuts) score += v > cut ? 1 : 0;
  return score;
}

}  // namespace

absl::string_view RfmCellName(RfmCell cell) {
  switch (cell) {
    case RfmCell::kChampions:
      return "champions";
    case RfmCell::kLoyal:
      return "loyal";
    case RfmCell::kPotentialLoyalist:
      return "potential_loyalist";
    case RfmCell::kNew:
      return "new";
    case RfmCell::kPromising:
      return "promising";
    case RfmCell::kNeedAttention:
      return "need_attention";
    case RfmCell::kAboutToSleep:
      return "about_to_sleep";
    case RfmCell::kAtRisk:
      return "at_risk";
    case RfmCell::kCannotLose:
      return "cannot_lose";
    case RfmCell::kHibernating:
      return "hibernating";
    case RfmCell::kLost:
      return "lost";
  }
  return "lost";
}

RfmCell RfmCellOf(int r, int fm) {
  r = std::clamp(r, 1, kScores);
  fm = std::clamp(fm, 1, kScores);
  return kTable[r - 1][fm - 1];
}

absl::StatusOr<RfmScorer> RfmScorer::Build(std::span<const RfmInput> population) {
  if (population.empty())
    return absl::InvalidArgumentError("population: at least one customer with a purchase is needed");
  std::vector<absl::Time> recency;
  std::vector<int64_t> frequency;
  std::vector<double> monetary;
  recency.reserve(population.size());
  frequency.reserve(population.size());
  monetary.reserve(population.size());
  for (size_t i = 0; i < population.size(); ++i) {
    const RfmInput& c = population[i];
    if (c.purchases < 1) return absl::InvalidArgumentError(absl::StrCat("population[", i, "].purchases: must be ≥ 1"));
    if (!std::isfinite(c.spend) || c.spend < 0) {
      return absl::InvalidArgumentError(absl::StrCat("population[", i, "].spend: must be a finite number ≥ 0"));
    }
    if (c.last_purchase == absl::InfinitePast() || c.last_purchase == absl::InfiniteFuture()) {
      return absl::InvalidArgumentError(absl::StrCat("population[", i, "].last_purchase: must be a finite time"));
    }
    recency.push_back(c.last_purchase);
    frequency.push_back(c.purchases);
    monetary.push_back(c.spend);
  }
  RfmScorer scorer;
  scorer.recency_cuts_ = Cuts(std::move(recency));
  scorer.frequency_cuts_ = Cuts(std::move(frequency));
  scorer.monetary_cuts_ = Cuts(std::move(monetary));
  scorer.population_ = static_cast<int64_t>(population.size());
  return scorer;
}

RfmScore RfmScorer::Score(const RfmInput& customer) const {
  RfmScore s;
  s.r = ScoreOf(recency_cuts_, customer.last_purchase);
  s.f = ScoreOf(frequency_cuts_, customer.purchases);
  s.m = ScoreOf(monetary_cuts_, customer.spend);
  s.fm = (s.f + s.m + 1) / 2;
  s.cell = RfmCellOf(s.r, s.fm);
  return s;
}

double EngagementScore(std::span<const EngagementEvent> events, absl::Time now, const EngagementOptions& options) {
  const double half_life = absl::ToDoubleSeconds(options.half_life);
  double raw = 0;
  for (const EngagementEvent& e : events) {
    if (e.count <= 0) continue;
    const absl::Duration age = std::max(absl::ZeroDuration(), now - e.at);
    if (age > options.horizon) continue;
    double weight = 0;
    switch (e.kind) {
      case EngagementKind::kEvent:
        weight = options.event_weight;
        break;
      case EngagementKind::kMessageOpen:
        weight = options.open_weight;
        break;
      case EngagementKind::kMessageClick:
        weight = options.click_weight;
        break;
      case EngagementKind::kPurchase:
        weight = options.purchase_weight;
        break;
    }
    const double decay = half_life > 0 ? std::exp2(-absl::ToDoubleSeconds(age) / half_life) : 1;
    raw += weight * static_cast<double>(e.count) * decay;
  }
  if (!(raw > 0) || !(options.scale > 0)) return 0;
  return std::clamp(-100 * std::expm1(-raw / options.scale), 0.0, 100.0);
}

}  // namespace ecrm::segmentation

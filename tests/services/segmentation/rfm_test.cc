// RFM quintiles (boundaries and ties), the cell table, and the engagement score.
#include "rfm.h"

#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <map>
#include <random>
#include <set>
#include <vector>

namespace seg = ecrm::segmentation;
using seg::RfmCell;
using seg::RfmInput;

namespace {

const absl::Time kNow = absl::FromUnixSeconds(1'800'000'000);

absl::Time DaysAgo(double days) { return kNow - absl::Hours(24 * days); }

// A population whose frequencies are `values` (recency and spend all equal).
std::vector<RfmInput> WithFrequencies(const std::vector<int64_t>& values) {
  std::vector<RfmInput> v;
  for (int64_t f : values) v.push_back({.last_purchase = kNow, .purchases = f, .spend = 100});
  return v;
}

std::vector<int> FrequencyScores(const std::vector<int64_t>& values) {
  const auto population = WithFrequencies(values);
  auto scorer = seg::RfmScorer::Build(population);
  REQUIRE(scorer.ok());
  std::vector<int> scores;
  for (const auto& c : population) scores.push_back(scorer->Score(c).f);
  return scores;
}

}  // namespace

TEST_CASE("RFM: quintile boundaries on distinct values") {
  CHECK(FrequencyScores({1, 2, 3, 4, 5}) == std::vector<int>{1, 2, 3, 4, 5});
  CHECK(FrequencyScores({1, 2, 3, 4, 5, 6, 7, 8, 9, 10}) == std::vector<int>{1, 1, 2, 2, 3, 3, 4, 4, 5, 5});
  // 7 values: score = 1 + ⌊5k/7⌋ for the k-th smallest (k from 0): 1 1 2 3 3 4 5.
  CHECK(FrequencyScores({10, 20, 30, 40, 50, 60, 70}) == std::vector<int>{1, 1, 2, 3, 3, 4, 5});
  // The order of the population does not matter.
  CHECK(FrequencyScores({7, 3, 9, 1, 5, 2, 10, 4, 8, 6}) == std::vector<int>{4, 2, 5, 1, 3, 1, 5, 2, 4, 3});
  // 100 distinct values: exactly 20 in each quintile.
  std::vector<int64_t> hundred(100);
  for (int i = 0; i < 100; ++i) hundred[i] = i + 1;
  std::map<int, int> counts;
  for (int s : FrequencyScores(hundred)) ++counts[s];
  CHECK(counts == std::map<int, int>{{1, 20}, {2, 20}, {3, 20}, {4, 20}, {5, 20}});
}

TEST_CASE("RFM: equal values get the same score, the lower one when a tie spans a boundary") {
  // Six customers bought once: none of them beats anyone, so all score 1; the customer with 2
  // purchases beats 6 of 10 (⌊5·6/10⌋ = 3, score 4): scores 2 and 3 are not used.
  CHECK(FrequencyScores({1, 1, 1, 1, 1, 1, 2, 3, 4, 5}) == std::vector<int>{1, 1, 1, 1, 1, 1, 4, 4, 5, 5});
  // A tie at the top spanning two quintiles: all of it takes the lower score.
  CHECK(FrequencyScores({1, 2, 3, 4, 9, 9, 9, 9, 9, 9}) == std::vector<int>{1, 1, 2, 2, 3, 3, 3, 3, 3, 3});
  // Everyone equal: nobody is better than anyone.
  CHECK(FrequencyScores({4, 4, 4, 4}) == std::vector<int>{1, 1, 1, 1});
  CHECK(FrequencyScores({4}) == std::vector<int>{1});
}

TEST_CASE("RFM: recency scores 5 for the most recent, monetary on total spend") {
  std::vector<RfmInput> population;
  for (int i = 0; i < 10; ++i) {
    population.push_back({.last_purchase = DaysAgo(10 * i), .purchases = 1 + i, .spend = 1000.0 - 100 * i});
  }
  auto scorer = seg::RfmScorer::Build(population);
  REQUIRE(scorer.ok());
  CHECK(scorer->population() == 10);
  const auto newest = scorer->Score(population[0]);
  CHECK(newest.r == 5);
  CHECK(newest.f == 1);
  CHECK(newest.m == 5);
  CHECK(newest.fm == 3);  // ⌈(1 + 5) / 2⌉
  const auto oldest = scorer->Score(population[9]);
  CHECK(oldest.r == 1);
  CHECK(oldest.f == 5);
  CHECK(oldest.m == 1);
  // A customer outside the population is scored against its cut points.
  const auto outside = scorer->Score({.last_purchase = kNow + absl::Hours(1), .purchases = 1000, .spend = 0});
  CHECK(outside.r == 5);
  CHECK(outside.f == 5);
  CHECK(outside.m == 1);
  // Equal to a cut value: the same score as the population's members with that value.
  const auto second = scorer->Score(population[1]);
  const auto same_values = scorer->Score({.last_purchase = DaysAgo(10), .purchases = 2, .spend = 900});
  CHECK(same_values.r == second.r);
  CHECK(same_values.f == second.f);
  CHECK(same_values.m == second.m);
}

TEST_CASE("RFM: the cell table covers every score pair with the eleven cells") {
  // Rows r = 1..5, columns fm = 1..5 (docs/scores.md).
  const std::vector<std::vector<std::string>> table = {
      {"lost", "hibernating", "at_risk", "at_risk", "cannot_lose"},
      {"hibernating", "hibernating", "at_risk", "at_risk", "cannot_lose"},
      {"about_to_sleep", "about_to_sleep", "need_attention", "loyal", "loyal"},
      {"promising", "potential_loyalist", "potential_loyalist", "loyal", "loyal"},
      {"new", "potential_loyalist", "potential_loyalist", "champions", "champions"},
  };
  std::set<std::string> seen;
  for (int r = 1; r <= 5; ++r) {
    for (int fm = 1; fm <= 5; ++fm) {
      INFO("r " << r << " fm " << fm);
      const std::string name(seg::RfmCellName(seg::RfmCellOf(r, fm)));
      CHECK(name == table[r - 1][fm - 1]);
      seen.insert(name);
    }
  }
  CHECK(seen.size() == 11);
  CHECK(seg::RfmCellOf(0, 9) == RfmCell::kCannotLose);  // clamped to r 1, fm 5
  // fm = ⌈(f + m) / 2⌉, and the cell follows it.
  std::vector<RfmInput> population;
  for (int i = 0; i < 5; ++i)
    population.push_back({.last_purchase = DaysAgo(i), .purchases = 1 + i, .spend = 10.0 * i});
  auto scorer = seg::RfmScorer::Build(population);
  REQUIRE(scorer.ok());
  const auto s = scorer->Score({.last_purchase = kNow, .purchases = 5, .spend = 30});  // r 5, f 5, m 4
  CHECK(s.fm == 5);
  CHECK(s.cell == RfmCell::kChampions);
}

TEST_CASE("RFM: bad populations are rejected naming the field") {
  CHECK(seg::RfmScorer::Build({}).status().code() == absl::StatusCode::kInvalidArgument);
  std::vector<RfmInput> population = WithFrequencies({1, 2, 3});
  population[2].purchases = 0;
  CHECK(seg::RfmScorer::Build(population).status().message() == "population[2].purchases: must be ≥ 1");
  population[2].purchases = 1;
  population[1].spend = std::nan("");
  CHECK(seg::RfmScorer::Build(population).status().message() == "population[1].spend: must be a finite number ≥ 0");
}

TEST_CASE("Engagement: decayed weighted counts squashed to 0-100") {
  using seg::EngagementKind;
  using seg::EngagementScore;
  CHECK(EngagementScore({}, kNow) == 0);
  // One purchase now: raw 8, 100 · (1 − e^(−8/20)).
  const std::vector<seg::EngagementEvent> purchase_now = {{.kind = EngagementKind::kPurchase, .at = kNow}};
  CHECK(EngagementScore(purchase_now, kNow) == Approx(100 * (1 - std::exp(-0.4))).epsilon(1e-12));
  // One half-life later it counts half.
  const std::vector<seg::EngagementEvent> purchase_30d = {{.kind = EngagementKind::kPurchase, .at = DaysAgo(30)}};
  CHECK(EngagementScore(purchase_30d, kNow) == Approx(100 * (1 - std::exp(-0.2))).epsilon(1e-12));
  // Counts, the four weights, and a dated-in-the-future interaction counted as now.
  const std::vector<seg::EngagementEvent> mixed = {
      {.kind = EngagementKind::kEvent, .at = kNow, .count = 3},
      {.kind = EngagementKind::kMessageOpen, .at = kNow, .count = 2},
      {.kind = EngagementKind::kMessageClick, .at = kNow + absl::Hours(5)},
      {.kind = EngagementKind::kPurchase, .at = DaysAgo(60)},  // two half-lives: 8/4
  };
  CHECK(EngagementScore(mixed, kNow) == Approx(100 * (1 - std::exp(-(3.0 + 4 + 4 + 2) / 20))).epsilon(1e-12));
  // Older than the horizon (180 days): ignored; zero or negative counts: ignored.
  const std::vector<seg::EngagementEvent> old = {{.kind = EngagementKind::kPurchase, .at = DaysAgo(181)},
                                                 {.kind = EngagementKind::kEvent, .at = kNow, .count = 0},
                                                 {.kind = EngagementKind::kEvent, .at = kNow, .count = -5}};
  CHECK(EngagementScore(old, kNow) == 0);
  // Bounded and monotone.
  const std::vector<seg::EngagementEvent> flood = {
      {.kind = EngagementKind::kEvent, .at = kNow, .count = 1'000'000'000}};
  CHECK(EngagementScore(flood, kNow) == 100);
  double previous = 0;
  for (int64_t n : {1, 2, 5, 10, 50, 100}) {
    const std::vector<seg::EngagementEvent> e = {{.kind = EngagementKind::kMessageOpen, .at = DaysAgo(3), .count = n}};
    const double score = EngagementScore(e, kNow);
    CHECK(score > previous);
    CHECK(score <= 100);
    previous = score;
  }
}

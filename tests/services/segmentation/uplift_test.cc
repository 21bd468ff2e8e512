// Campaign statistics against hand-computed and published cases, an A/A simulation, and the
// control-group hash against fixed vectors.
#include "uplift.h"

#include <catch2/catch.hpp>
#include <cmath>
#include <random>
#include <string>

#include "absl/strings/str_cat.h"

namespace seg = ecrm::segmentation;
using seg::GroupOutcome;

namespace {

seg::CampaignStatistics Stats(GroupOutcome t, GroupOutcome c) {
  auto s = seg::ComputeCampaignStatistics(t, c);
  INFO(s.status().ToString());
  REQUIRE(s.ok());
  return *s;
}

void CheckInterval(const std::optional<seg::Interval>& got, double low, double high, double margin = 5e-5) {
  REQUIRE(got.has_value());
  CHECK(got->low == Approx(low).margin(margin));
  CHECK(got->high == Approx(high).margin(margin));
}

}  // namespace

TEST_CASE("Uplift: a hand-computed case") {
  // Newcombe (1998), example (a): 56/70 against 48/80.
  //   p1 = 0.8, p2 = 0.6, difference 0.2, relative 0.2 / 0.6.
  //   Wilson, z = 1.959964: 56/70 → [0.691834, 0.876953]; 48/80 → [0.490455, 0.700382].
  //   Newcombe: 0.2 − √((0.8 − 0.691834)² + (0.700382 − 0.6)²) = 0.052431,
  //             0.2 + √((0.876953 − 0.8)² + (0.6 − 0.490455)²) = 0.333873.
  //   Wald: 0.2 ± 1.959964 · √(0.8·0.2/70 + 0.6·0.4/80) = 0.2 ± 0.142496.
  //   Pooled z-test: p = 104/150, se = √(p(1−p)(1/70 + 1/80)) = 0.075466, z = 2.650180,
  //   two-sided p = erfc(z/√2) = 0.0080451.
  const auto w1 = seg::WilsonInterval(56, 70, 1.959963984540054);
  CHECK(w1.low == Approx(0.691834).margin(1e-6));
  CHECK(w1.high == Approx(0.876953).margin(1e-6));
  const auto s =
      Stats({.size = 70, .conversions = 56, .revenue = 5600}, {.size = 80, .conversions = 48, .revenue = 4000});
  CHECK(*s.treatment_rate == 0.8);
  CHECK(*s.control_rate == 0.6);
  CHECK(*s.absolute_uplift == Approx(0.2).epsilon(1e-15));
  CHECK(*s.relative_uplift == Approx(1.0 / 3).epsilon(1e-14));
  CheckInterval(s.uplift_ci, 0.052431, 0.333873, 1e-6);
  CheckInterval(s.uplift_ci_wald, 0.2 - 0.142496, 0.2 + 0.142496, 1e-6);
  CHECK(*s.p_value == Approx(0.0080451).epsilon(1e-4));
  CHECK(s.attributed_revenue == 5600);
  CHECK(*s.incremental_revenue == 5600 - 3500);  // 4000 · 70/80
}

TEST_CASE("Uplift: Newcombe's method 10 reproduces his published table, zero cells included") {
  // Newcombe (1998), table II, method 10 (four decimals).
  struct Case {
    int64_t c1, n1, c2, n2;
    double low, high;
  };
  for (const Case& k :
       {Case{56, 70, 48, 80, 0.0524, 0.3339}, Case{9, 10, 3, 10, 0.1705, 0.8090}, Case{6, 7, 2, 7, 0.0582, 0.8062},
        Case{5, 56, 0, 29, -0.0381, 0.1926}, Case{0, 10, 0, 20, -0.1611, 0.2775}, Case{0, 10, 0, 10, -0.2775, 0.2775},
        Case{10, 10, 0, 20, 0.6791, 1.0000}, Case{10, 10, 0, 10, 0.6075, 1.0000}}) {
    INFO(k.c1 << "/" << k.n1 << " − " << k.c2 << "/" << k.n2);
    const auto s = Stats({.size = k.n1, .conversions = k.c1}, {.size = k.n2, .conversions = k.c2});
    CheckInterval(s.uplift_ci, k.low, k.high);
  }
}

TEST_CASE("Uplift: zero conversions, equal rates, and groups of zero are marked, never NaN") {
  // No conversions in the treatment group.
  auto s = Stats({.size = 1000, .conversions = 0}, {.size = 1000, .conversions = 10, .revenue = 500});
  CHECK(*s.absolute_uplift == -0.01);
  CHECK(*s.relative_uplift == -1);
  CHECK(s.uplift_ci->low < -0.01);
  CHECK(s.uplift_ci->high < 0);                           // significant: the interval excludes 0…
  CHECK(*s.p_value == Approx(0.00152327).epsilon(1e-5));  // …and z = 3.1702
  CHECK(*s.incremental_revenue == -500);

  // No conversions in the control group: the relative uplift divides by 0, so it is absent.
  s = Stats({.size = 1000, .conversions = 10}, {.size = 1000, .conversions = 0});
  CHECK(*s.absolute_uplift == 0.01);
  CHECK_FALSE(s.relative_uplift.has_value());
  CHECK(s.uplift_ci.has_value());
  CHECK(*s.p_value == Approx(0.00152327).epsilon(1e-5));

  // Nobody converts anywhere: difference 0, p = 1, Newcombe still gives an interval, Wald collapses.
  s = Stats({.size = 100, .conversions = 0}, {.size = 100, .conversions = 0});
  CHECK(*s.absolute_uplift == 0);
  CHECK(*s.p_value == 1);
  CheckInterval(s.uplift_ci, -0.036994, 0.036994, 1e-6);  // Wilson 0/100: [0, z²/(100 + z²)]
  CheckInterval(s.uplift_ci_wald, 0, 0, 0);
  // Everybody converts: also p = 1.
  CHECK(*Stats({.size = 10, .conversions = 10}, {.size = 20, .conversions = 20}).p_value == 1);

  // Equal rates: z = 0, p = 1 exactly.
  s = Stats({.size = 1000, .conversions = 50, .revenue = 1000}, {.size = 100, .conversions = 5, .revenue = 100});
  CHECK(*s.absolute_uplift == 0);
  CHECK(*s.relative_uplift == 0);
  CHECK(*s.p_value == 1);
  CHECK(*s.incremental_revenue == 0);

  // A control group of 0: everything comparing the groups is undefined and absent.
  s = Stats({.size = 500, .conversions = 25, .revenue = 12345}, {.size = 0, .conversions = 0, .revenue = 0});
  CHECK(*s.treatment_rate == 0.05);
  CHECK_FALSE(s.control_rate.has_value());
  CHECK_FALSE(s.absolute_uplift.has_value());
  CHECK_FALSE(s.relative_uplift.has_value());
  CHECK_FALSE(s.uplift_ci.has_value());
  CHECK_FALSE(s.uplift_ci_wald.has_value());
  CHECK_FALSE(s.p_value.has_value());
  CHECK(s.attributed_revenue == 12345);
  CHECK_FALSE(s.incremental_revenue.has_value());

  // A treatment group of 0 (everyone held out).
  s = Stats({.size = 0}, {.size = 100, .conversions = 3, .revenue = 300});
  CHECK_FALSE(s.treatment_rate.has_value());
  CHECK(*s.control_rate == 0.03);
  CHECK_FALSE(s.p_value.has_value());
  CHECK(*s.incremental_revenue == 0);
}

TEST_CASE("Uplift: incremental revenue scales the control group to the treatment size") {
  CHECK(*Stats({.size = 1000, .conversions = 50, .revenue = 50000}, {.size = 100, .conversions = 2, .revenue = 3000})
             .incremental_revenue == 20000);
  // 0 − 3 · 1/2 = −1.5: rounded half away from zero.
  CHECK(*Stats({.size = 1, .revenue = 0}, {.size = 2, .revenue = 3}).incremental_revenue == -2);
  CHECK(*Stats({.size = 3, .revenue = 0}, {.size = 7, .revenue = 10}).incremental_revenue == -4);  // −4.29
}

TEST_CASE("Uplift: invalid groups and confidence are rejected naming the field") {
  auto bad = seg::ComputeCampaignStatistics({.size = 10, .conversions = 11}, {.size = 10});
  CHECK(bad.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(bad.status().message() == "treatment.conversions: must lie in [0, treatment.size]");
  CHECK(seg::ComputeCampaignStatistics({.size = 10}, {.size = -1}).status().message() == "control.size: must be ≥ 0");
  CHECK(seg::ComputeCampaignStatistics({.size = 10}, {.size = 10, .conversions = -1}).status().message() ==
        "control.conversions: must lie in [0, control.size]");
  CHECK(seg::ComputeCampaignStatistics({.size = 10}, {.size = 10}, 1).status().message() ==
        "confidence: must lie in (0, 1)");
}

TEST_CASE("Uplift: the normal quantile") {
  CHECK(seg::NormalQuantile(0.975) == Approx(1.959963984540054).epsilon(1e-15));
  CHECK(seg::NormalQuantile(0.995) == Approx(2.5758293035489004).epsilon(1e-15));
  CHECK(seg::NormalQuantile(0.5) == 0);
  CHECK(seg::NormalQuantile(1e-10) == Approx(-6.361340902404056).epsilon(1e-13));
  CHECK(std::isnan(seg::NormalQuantile(1)));
  // A 99% interval is wider than the 95% one.
  auto s99 = seg::ComputeCampaignStatistics({.size = 70, .conversions = 56}, {.size = 80, .conversions = 48}, 0.99);
  REQUIRE(s99.ok());
  CHECK(s99->uplift_ci->low < 0.0524);
  CHECK(s99->uplift_ci->high > 0.3339);
}

TEST_CASE("A/A simulation: the 95% interval covers 0 in 93.5-96.5% of 2,000 campaigns") {
  // Both groups share the true conversion rate; each customer lands in the control group with
  // the campaign's fraction. Uniforms from the top 53 bits of mt19937_64, which the standard
  // fixes bit for bit, so the draw is the same on every platform.
  struct Setup {
    double rate, control_fraction;
    uint64_t seed;
  };
  for (const Setup& setup : {Setup{0.05, 0.5, 20260101}, Setup{0.02, 0.1, 20260102}, Setup{0.3, 0.2, 20260103}}) {
    std::mt19937_64 rng(setup.seed);
    auto uniform = [&] { return static_cast<double>(rng() >> 11) * 0x1p-53; };
    int covered = 0, wald_covered = 0, significant = 0;
    constexpr int kCampaigns = 2000, kCustomers = 5000;
    for (int k = 0; k < kCampaigns; ++k) {
      GroupOutcome treatment, control;
      for (int i = 0; i < kCustomers; ++i) {
        GroupOutcome& group = uniform() < setup.control_fraction ? control : treatment;
        ++group.size;
        group.conversions += uniform() < setup.rate ? 1 : 0;
      }
      const auto s = Stats(treatment, control);
      covered += s.uplift_ci->low <= 0 && 0 <= s.uplift_ci->high ? 1 : 0;
      wald_covered += s.uplift_ci_wald->low <= 0 && 0 <= s.uplift_ci_wald->high ? 1 : 0;
      significant += *s.p_value < 0.05 ? 1 : 0;
    }
    const double coverage = 100.0 * covered / kCampaigns;
    const double false_positives = 100.0 * significant / kCampaigns;
    INFO("rate " << setup.rate << " control " << setup.control_fraction << ": Newcombe covers 0 in " << coverage
                 << "%, Wald in " << 100.0 * wald_covered / kCampaigns << "%, p < 0.05 in " << false_positives << "%");
    CHECK(coverage >= 93.5);
    CHECK(coverage <= 96.5);
    CHECK(false_positives >= 3.5);
    CHECK(false_positives <= 6.5);
    WARN("rate " << setup.rate << " control " << setup.control_fraction << ": Newcombe covers 0 in " << coverage
                 << "%, Wald in " << 100.0 * wald_covered / kCampaigns << "%, p < 0.05 in " << false_positives << "%");
  }
}

TEST_CASE("Control group: SHA-256 fixed vectors") {
  // Computed independently (Python's hashlib): the first 8 bytes of
  // SHA-256(uint64_be(len(campaign)) ‖ campaign ‖ customer).
  CHECK(seg::ControlHash("campaign-1", "customer-1") == 0xfa7abb92d0a308b4ULL);
  CHECK(seg::ControlHash("campaign-1", "customer-2") == 0xc7e8397307e28232ULL);
  CHECK(seg::ControlHash("", "") == 0xaf5570f5a1810b7aULL);
  // The length prefix keeps "c" + "ustomer" apart from "cu" + "stomer".
  CHECK(seg::ControlHash("c", "ustomer") == 0x1ef15d51ac88f8c2ULL);
  CHECK(seg::ControlHash("cu", "stomer") == 0x757c425e2415c8abULL);
  CHECK(seg::ControlHash("spring-sale-2026", "4f1c2a9e-7d3b-4c1e-9a5f-2b8d6e0c1a37") == 0x0cd2b563c4228bb5ULL);
  // 0x0cd2… / 2^64 = 0.0501: in a 10% control group, not in a 5% one.
  CHECK(seg::InControl("spring-sale-2026", "4f1c2a9e-7d3b-4c1e-9a5f-2b8d6e0c1a37", 0.10));
  CHECK_FALSE(seg::InControl("spring-sale-2026", "4f1c2a9e-7d3b-4c1e-9a5f-2b8d6e0c1a37", 0.05));
  CHECK_FALSE(seg::InControl("campaign-1", "customer-1", 0));
  CHECK(seg::InControl("campaign-1", "customer-1", 1));
  CHECK_FALSE(seg::InControl("campaign-1", "customer-1", std::nan("")));
}

TEST_CASE("Control group: within 1% of the fraction on 100,000 customers, independent across campaigns") {
  for (double fraction : {0.05, 0.1, 0.2, 0.5}) {
    int in = 0, both = 0;
    constexpr int kCustomers = 100'000;
    for (int i = 0; i < kCustomers; ++i) {
      const std::string customer = absl::StrCat("customer-", i);
      const bool a = seg::InControl("campaign-a", customer, fraction);
      in += a ? 1 : 0;
      both += a && seg::InControl("campaign-b", customer, fraction) ? 1 : 0;
      if (i % 1000 == 0) CHECK(seg::InControl("campaign-a", customer, fraction) == a);  // a retry draws the same
    }
    const double share = static_cast<double>(in) / kCustomers;
    const double overlap = static_cast<double>(both) / kCustomers;
    INFO("fraction " << fraction << ": share " << share << ", in both campaigns' groups " << overlap);
    CHECK(std::abs(share - fraction) <= 0.01);
    CHECK(std::abs(overlap - fraction * fraction) <= 0.01);
  }
}

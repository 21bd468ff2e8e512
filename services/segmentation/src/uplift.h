// Campaign statistics: conversion uplift of a treatment group over its control group with a
// confidence interval and a test, revenue attribution, and the deterministic control-group
// draw. Methods and references: docs/scores.md.
#pragma once

#include <cstdint>
#include <optional>
#include "absl/strings/string_view.h"

#include "absl/status/statusor.h"

namespace ecrm::segmentation {

// One group of a campaign: its size, how many reached the goal in the attribution window, and
// the revenue of those goal events (minor units).
struct GroupOutcome {
  int64_t size = 0;
  int64_t conversions = 0;
  int64_t revenue = 0;
};

struct Interval {
  double low = 0;
  double high = 0;
};

// A value that is undefined for the data (a group of 0, a control rate of 0) is nullopt, never
// NaN or infinity.
struct CampaignStatistics {
  std::optional<double> treatment_rate;  // conversions / size; nullopt when size = 0
  std::optional<double> control_rate;
  std::optional<double> absolute_uplift;       // treatment rate − control rate
  std::optional<double> relative_uplift;       // absolute uplift / control rate; nullopt also when that rate is 0
  std::optional<Interval> uplift_ci;           // Newcombe's hybrid score interval (method 10 of Newcombe 1998)
  std::optional<Interval> uplift_ci_wald;      // the Wald interval, for comparison
  std::optional<double> p_value;               // two-sided, pooled two-proportion z-test; 1 when no group converts
                                               // or every member of both does (no evidence of a difference)
  int64_t attributed_revenue = 0;              // the treatment group's revenue
  std::optional<int64_t> incremental_revenue;  // treatment − control × size_t / size_c, rounded half away from 0
};

// INVALID_ARGUMENT naming the field ("treatment.conversions: …") unless 0 ≤ conversions ≤
// size; `confidence` must lie in (0, 1).
absl::StatusOr<CampaignStatistics> ComputeCampaignStatistics(const GroupOutcome& treatment, const GroupOutcome& control,
                                                             double confidence = 0.95);

// Wilson's score interval for conversions/size (size > 0) at the normal quantile z.
Interval WilsonInterval(int64_t conversions, int64_t size, double z);

// The standard normal quantile Φ⁻¹(p) for 0 < p < 1: Newton's method on Φ(x) = erfc(−x/√2)/2,
// safeguarded by bisection, to double precision.
double NormalQuantile(double p);

// The control-group draw. The first 8 bytes (big-endian) of
//   SHA-256( uint64_be(len(campaign_id)) ‖ campaign_id ‖ customer_id )
// — a hash that does not depend on platform, library version or process.
uint64_t ControlHash(absl::string_view campaign_id, absl::string_view customer_id);

// True when ControlHash < fraction · 2^64: a customer is in the control group of a campaign with
// probability `fraction` (clamped to [0, 1]), the same on every call, retry and machine.
bool InControl(absl::string_view campaign_id, absl::string_view customer_id, double fraction);

}  // namespace ecrm::segmentation

// Synthetic customers drawn from the BG/NBD and Gamma-Gamma models with known parameters: the
// test of a fit (it must recover them) and the data of the fit benchmark.
#pragma once

#include <cstdint>
#include <vector>

#include "clv.h"

namespace ecrm::segmentation {

struct SimulationOptions {
  int64_t customers = 0;
  double max_age_weeks = 52;  // T is drawn uniformly from whole days in [0, max_age_weeks]
  bool whole_days = true;     // t_x rounded to whole days (as summaries built from dates are)
  uint64_t seed = 1;
};

// Each customer: λ ~ Gamma(r, α), p ~ Beta(a, b); purchases at the events of a Poisson process
// of rate λ, after each repeat purchase the customer leaves with probability p; a repeat
// buyer's rate of spend ν ~ Gamma(q, γ) and mean spend of x transactions ~ Gamma(p x, ν x).
// Deterministic for a seed with a given standard library (std::mt19937_64 and the <random>
// distributions of libstdc++).
std::vector<CustomerSummary> SimulateCustomers(const BgNbdParams& purchases, const GammaGammaParams& spend,
                                               const SimulationOptions& options);

}  // namespace ecrm::segmentation

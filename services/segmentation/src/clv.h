// Customer lifetime value from fitted models: BG/NBD for the purchase process (Fader, Hardie &
// Lee 2005, "Counting your customers the easy way") and Gamma-Gamma for spend per transaction
// (Fader & Hardie 2013, "The Gamma-Gamma model of monetary value"), both fitted by maximum
// likelihood over the population. Time is in weeks throughout. Formulas: docs/scores.md.
#pragma once

#include <cstdint>
#include <span>
#include <utility>
#include <vector>
#include "absl/strings/string_view.h"

#include "absl/status/statusor.h"
#include "absl/time/civil_time.h"

namespace ecrm::segmentation {

// One customer's purchase history in the calibration period, as the models read it.
struct CustomerSummary {
  int64_t x = 0;        // repeat transactions (purchase days after the first)
  double t_x = 0;       // weeks from the first purchase to the last (0 when x = 0)
  double T = 0;         // weeks from the first purchase to the end of calibration
  double monetary = 0;  // mean spend of the repeat transactions (0 when x = 0)
};

// A purchase on a calendar day (in the company's time zone) by a customer.
struct DatedPurchase {
  int64_t customer = 0;
  absl::CivilDay day;
  double amount = 0;
};

// Summaries of every customer whose first purchase is on or before `calibration_end`, sorted by
// customer. Purchases on the same day count as one transaction whose amount is their sum;
// purchases after `calibration_end` are ignored (they are the holdout).
std::vector<std::pair<int64_t, CustomerSummary>> SummarizePurchases(std::vector<DatedPurchase> purchases,
                                                                    absl::CivilDay calibration_end);

// INVALID_ARGUMENT naming `field` (e.g. "summaries[3].t_x") unless x ≥ 0, 0 ≤ t_x ≤ T, t_x = 0
// when x = 0, every number finite, monetary ≥ 0.
absl::Status ValidateSummary(const CustomerSummary& s, absl::string_view field);

struct BgNbdParams {
  double r = 0;      // shape of the Gamma distribution of purchase rates λ
  double alpha = 0;  // its rate (weeks)
  double a = 0;      // Beta distribution of the drop-out probability p after each purchase
  double b = 0;
};

struct GammaGammaParams {
  double p = 0;      // shape of the Gamma distribution of one transaction's value
  double q = 0;      // shape of the Gamma distribution of its rate ν across customers
  double gamma = 0;  // rate of that distribution
};

struct FitOptions {
  // Fewer customers (BG/NBD) or repeat buyers (Gamma-Gamma) than this: FAILED_PRECONDITION.
  int64_t min_customers = 10;
  // Objective evaluations the optimiser may use.
  int max_evaluations = 2000;
};

struct BgNbdFit {
  BgNbdParams params;
  double log_likelihood = 0;       // of the whole population at `params`
  int64_t customers = 0;           // summaries fitted
  int64_t distinct_histories = 0;  // distinct (x, t_x, T) after aggregation
  int evaluations = 0;             // objective evaluations used
};

struct GammaGammaFit {
  GammaGammaParams params;
  double log_likelihood = 0;       // of the repeat buyers' mean spends at `params`
  int64_t customers = 0;           // repeat buyers fitted
  int64_t excluded = 0;            // repeat buyers left out: mean spend ≤ 0 (refunds), which the model cannot hold
  int64_t distinct_histories = 0;  // distinct (x, monetary)
  int evaluations = 0;
};

// Maximum-likelihood fits (NLopt's L-BFGS on log-parameters with the analytic gradient).
// Errors: a summary that fails ValidateSummary (INVALID_ARGUMENT naming it); too few customers,
// no repeat buyer, or data that does not identify the model — the optimum runs to a parameter's
// bound, as when every customer has the same history (FAILED_PRECONDITION naming the parameter);
// the optimiser failing (INTERNAL with NLopt's code).
absl::StatusOr<BgNbdFit> FitBgNbd(std::span<const CustomerSummary> summaries, const FitOptions& options = {});
absl::StatusOr<GammaGammaFit> FitGammaGamma(std::span<const CustomerSummary> summaries, const FitOptions& options = {});

// Per-customer quantities. The summary must pass ValidateSummary and the parameters be positive
// and finite; these functions do not check (LifetimeValueModel does).
double BgNbdLogLikelihood(const BgNbdParams& params, const CustomerSummary& s);
double GammaGammaLogLikelihood(const GammaGammaParams& params, const CustomerSummary& s);  // x ≥ 1, monetary > 0
// P(alive | x, t_x, T); 1 when x = 0 (BG/NBD customers only drop out after a repeat purchase).
double ProbabilityAlive(const BgNbdParams& params, const CustomerSummary& s);
// E[purchases in (T, T + t] | x, t_x, T]. OUT_OF_RANGE when the series cannot converge within 10^7
// terms, which takes t/(α + T) beyond about 3·10^5 — purchase rates far outside any retail data;
// INVALID_ARGUMENT for a t that is NaN or infinite; 0 for t ≤ 0.
absl::StatusOr<double> ConditionalExpectedPurchases(const BgNbdParams& params, const CustomerSummary& s, double t);
// E[spend per transaction | x, monetary] = p (γ + x m̄) / (p x + q − 1); needs p x + q > 1.
double ExpectedAverageSpend(const GammaGammaParams& params, const CustomerSummary& s);

struct CustomerValue {
  double probability_alive = 0;
  double expected_purchases = 0;  // in the next `purchases_horizon_weeks`
  double expected_spend = 0;      // per future transaction
  double value = 0;               // over the next `value_horizon_weeks`, undiscounted
};

struct ValueOptions {
  double purchases_horizon_weeks = 90.0 / 7;  // 90 days
  double value_horizon_weeks = 52;            // 12 months
};

// The two fitted models together. value = E[purchases in the value horizon] × E[spend per
// transaction], without discounting (the horizon is one year; see docs/scores.md).
class LifetimeValueModel {
 public:
  // INVALID_ARGUMENT unless every parameter is positive and finite; FAILED_PRECONDITION when
  // q ≤ 1 (the expected spend of a customer without repeat purchases is then infinite).
  static absl::StatusOr<LifetimeValueModel> Create(const BgNbdParams& purchases, const GammaGammaParams& spend,
                                                   const ValueOptions& options = {});

  // INVALID_ARGUMENT for a summary that fails ValidateSummary; OUT_OF_RANGE as
  // ConditionalExpectedPurchases.
  absl::StatusOr<CustomerValue> Predict(const CustomerSummary& s) const;

  const BgNbdParams& purchases() const { return purchases_; }
  const GammaGammaParams& spend() const { return spend_; }

 private:
  LifetimeValueModel(const BgNbdParams& purchases, const GammaGammaParams& spend, const ValueOptions& options)
      : purchases_(purchases), spend_(spend), options_(options) {}
  BgNbdParams purchases_;
  GammaGammaParams spend_;
  ValueOptions options_;
};

}  // namespace ecrm::segmentation

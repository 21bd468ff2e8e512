// Customer scores over the live population held in Features: RFM quintiles and cells, the
// engagement score, and the lifetime value from BG/NBD + Gamma-Gamma fitted on the population
// (rfm.h, clv.h; docs/scores.md says what is read and how). The scores are written into the
// features, where rules read them (rfm.r, rfm.f, rfm.m, rfm.cell, engagement, clv), and kept
// for GetCustomerScores.
//
// A refit has two steps so that the feed is held up as little as possible:
//   ScoreUpdate u = scores.Compute();   // reads under the shared lock, in batches; fits and
//                                       // predicts holding no lock
//   { std::unique_lock lock(features.mutex());
//     std::vector<CustomerNo> changed = scores.Write(u); }   // one pass
// FeedConsumer::ApplyScores does both and re-evaluates the segments that read scores.
// One refit at a time (the periodic task runs one at a time).
#pragma once

#include <cstdint>
#include <functional>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "clv.h"
#include "customer_features.h"
#include "rfm.h"

namespace ecrm::segmentation {

struct ScoreOptions {
  EngagementOptions engagement;
  // Expected purchases over 90 days, value over 52 weeks.
  ValueOptions value;
  FitOptions fit;
  // Event types that are not the customer's own doing (or are the engine's own): they do not
  // count towards engagement. purchase, message_opened and message_clicked are weighted as
  // orders, opens and clicks; every other type counts as a behavioural event.
  std::vector<std::string> not_engagement = {"segment_entered",    "segment_exited",       "message_sent",
                                             "message_delivered",  "message_failed",       "message_bounced",
                                             "message_complained", "message_unsubscribed", "refund",
                                             "order_cancelled",    "points_earned",        "inquiry_resolved",
                                             "offer_shown"};
  // Customers read per hold of the shared lock (the feed waits at most one batch).
  int64_t read_batch = 65536;
};

// One customer's scores, as GetCustomerScores reports them.
struct CustomerScoreReport {
  std::string customer_id;
  // The refit's clock; InfinitePast for a customer not scored yet (arrived since), who then has
  // no score at all.
  absl::Time computed_at = absl::InfinitePast();
  std::optional<RfmScore> rfm;       // at least one order
  std::optional<double> engagement;  // every scored customer
  // BG/NBD: at least one order and a fitted purchase model.
  std::optional<double> probability_alive, expected_purchases;
  // Gamma-Gamma as well: minor units of `currency`.
  std::optional<double> expected_order_value, value;
  std::string currency;
};

inline constexpr float kNoValue = std::numeric_limits<float>::quiet_NaN();

// What one refit computed, not yet written. Entries are by customer number.
struct ScoreUpdate {
  absl::Time computed_at;
  struct Entry {
    CustomerNo customer = 0;
    uint8_t r = 0, f = 0, m = 0;  // 0: no RFM (no order)
    RfmCell cell = RfmCell::kLost;
    double engagement = 0;
    // NaN: unset.
    float probability_alive = kNoValue, expected_purchases = kNoValue, expected_order_value = kNoValue;
    double value = std::numeric_limits<double>::quiet_NaN();
  };
  std::vector<Entry> customers;
  // The models the predictions used: this refit's fits, or the last good ones when a fit failed.
  std::optional<BgNbdParams> purchases;
  std::optional<GammaGammaParams> spend;
  // This refit's fits, or why they failed (too few customers or repeat buyers, a model the data
  // does not identify): the last good model, if any, is kept.
  absl::StatusOr<BgNbdFit> purchases_fit = absl::UnknownError("not fitted");
  absl::StatusOr<GammaGammaFit> spend_fit = absl::UnknownError("not fitted");
  int64_t buyers = 0;  // customers with an order: RFM scored
  int64_t valued = 0;  // with a predicted 12-month value
  absl::Duration read_time, fit_time, predict_time;
};

// A refit as saved (the `scores` table, written with the memberships it led to, read at a start
// so that rules on scores answer at once): part 0 is the refit (its time and models), parts 1…
// up to `per_part` customers each. `write` gets each part's bytes in order.
absl::Status SerializeScoreUpdate(const ScoreUpdate& update, size_t per_part,
                                  absl::FunctionRef<absl::Status(int64_t part, const std::string& bytes)> write);
// Back from the parts' bytes, in part order (the fits' statuses and timings are not saved).
absl::StatusOr<ScoreUpdate> ParseScoreUpdate(absl::Span<const absl::string_view> parts);

class Scores {
 public:
  using Clock = std::function<absl::Time()>;
  Scores(Features& features, Clock clock, ScoreOptions options = {});

  // Reads every live customer (under the shared lock, `read_batch` at a time) and computes
  // their scores holding no lock. Fit failures are in the update (and logged), never fatal.
  ScoreUpdate Compute() const;
  // Writes the update into the features and keeps it for Report: customers erased or merged
  // away since the read are skipped. Returns the customers whose rfm.*, clv or engagement
  // changed (what rules read). The caller holds the features' lock exclusively.
  std::vector<CustomerNo> Write(const ScoreUpdate& update);

  // GetCustomerScores: INVALID_ARGUMENT without an id, NOT_FOUND for a customer the features do
  // not hold (never seen, erased, merged into another). Takes the shared lock.
  absl::StatusOr<CustomerScoreReport> Report(absl::string_view customer_id) const;
  // The same for a live customer; the caller holds the lock.
  CustomerScoreReport ReportLocked(CustomerNo n) const;
  // Drops what is kept on an erased customer beyond the features (whose Remove clears the
  // rest); the caller holds the lock exclusively. A customer erased through the feed is dropped
  // by the next Write.
  void Forget(CustomerNo n);

 private:
  // The lifetime-value predictions kept per customer number (rules read the value from the
  // features); NaN: unset. Floats: seven digits are far more than the models know.
  struct Details {
    float probability_alive = kNoValue, expected_purchases = kNoValue, expected_order_value = kNoValue;
  };

  Features& features_;
  const Clock clock_;
  const ScoreOptions options_;
  // Guarded by the features' lock.
  std::vector<Details> details_;
  absl::Time computed_at_ = absl::InfinitePast();
  std::optional<BgNbdParams> purchases_;
  std::optional<GammaGammaParams> spend_;
};

}  // namespace ecrm::segmentation

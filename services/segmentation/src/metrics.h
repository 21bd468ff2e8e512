// The segmentation engine's metrics: registered once, at construction, from the registry it is
// given; the code then only moves the values.
#pragma once

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace ecrm::segmentation {

struct SegmentationMetrics {
  explicit SegmentationMetrics(prometheus::Registry& registry)
      : feed_messages(prometheus::BuildCounter()
                          .Name("ecrm_segmentation_feed_messages_total")
                          .Help("Change-feed messages applied (runs of changes and heartbeats)")
                          .Register(registry)
                          .Add({})),
        feed_changes(prometheus::BuildCounter()
                         .Name("ecrm_segmentation_feed_changes_total")
                         .Help("Changes from the information store applied to the features")
                         .Register(registry)
                         .Add({})),
        feed_resyncs(prometheus::BuildCounter()
                         .Name("ecrm_segmentation_feed_resyncs_total")
                         .Help("Full reads of the information store after the saved position fell out of its feed")
                         .Register(registry)
                         .Add({})),
        feed_position(prometheus::BuildGauge()
                          .Name("ecrm_segmentation_feed_position")
                          .Help("The information store's change sequence applied and saved")
                          .Register(registry)
                          .Add({})),
        feed_lag(prometheus::BuildGauge()
                     .Name("ecrm_segmentation_feed_lag_seconds")
                     .Help("How far behind the information store's change feed the saved features are: seconds "
                           "since the last instant before which every committed change is saved (the newest saved "
                           "change's commit time, or when a heartbeat said the feed had nothing newer); up to the "
                           "heartbeat interval (5 s) while idle")
                     .Register(registry)
                     .Add({})),
        customers_loaded(prometheus::BuildCounter()
                             .Name("ecrm_segmentation_customers_loaded_total")
                             .Help("Customers' features read from the database at start (not from the feed)")
                             .Register(registry)
                             .Add({})),
        memberships(prometheus::BuildCounter()
                        .Name("ecrm_segmentation_membership_changes_total")
                        .Help("Customers entering or leaving segments after the segments' first evaluation")
                        .Register(registry)),
        entered(memberships.Add({{"change", "entered"}})),
        exited(memberships.Add({{"change", "exited"}})),
        score_refits(prometheus::BuildCounter()
                         .Name("ecrm_segmentation_score_refits_total")
                         .Help("Refits of the scores over the population (RFM, engagement, lifetime value) written")
                         .Register(registry)
                         .Add({})),
        fit_failures(prometheus::BuildCounter()
                         .Name("ecrm_segmentation_score_fit_failures_total")
                         .Help("Lifetime-value model fits that failed (the last fitted model, if any, is kept)")
                         .Register(registry)),
        purchase_fit_failures(fit_failures.Add({{"model", "bg_nbd"}})),
        spend_fit_failures(fit_failures.Add({{"model", "gamma_gamma"}})),
        score_fit_seconds(prometheus::BuildGauge()
                              .Name("ecrm_segmentation_score_fit_seconds")
                              .Help("Time the last refit took to fit the BG/NBD and Gamma-Gamma models")
                              .Register(registry)
                              .Add({})),
        score_refit_seconds(prometheus::BuildGauge()
                                .Name("ecrm_segmentation_score_refit_seconds")
                                .Help("Time the last refit took from reading the population to saving its entries "
                                      "and exits")
                                .Register(registry)
                                .Add({})),
        score_write_seconds(prometheus::BuildGauge()
                                .Name("ecrm_segmentation_score_write_seconds")
                                .Help("Time the last refit held the features exclusively: writing the scores and "
                                      "evaluating the segments that read them")
                                .Register(registry)
                                .Add({})),
        scored(prometheus::BuildGauge()
                   .Name("ecrm_segmentation_scored_customers")
                   .Help("Customers the last refit scored, by what they have: engagement (every customer), rfm (an "
                         "order), value (a predicted 12-month value)")
                   .Register(registry)),
        scored_engagement(scored.Add({{"score", "engagement"}})),
        scored_rfm(scored.Add({{"score", "rfm"}})),
        scored_value(scored.Add({{"score", "value"}})),
        segment_members(prometheus::BuildGauge()
                            .Name("ecrm_segmentation_segment_members")
                            .Help("Customers in each segment, by segment name (set at each scrape)")
                            .Register(registry)),
        triggered(prometheus::BuildCounter()
                      .Name("ecrm_segmentation_triggered_messages_total")
                      .Help("Triggered campaigns' messages (one a customer) by what became of them: handed_over "
                            "to broadcast; refused by broadcast for good (never sent: the reason is logged and kept "
                            "with them); dropped (their campaign stopped first)")
                      .Register(registry)),
        triggered_handed_over(triggered.Add({{"outcome", "handed_over"}})),
        triggered_refused(triggered.Add({{"outcome", "refused"}})),
        triggered_dropped(triggered.Add({{"outcome", "dropped"}})),
        triggered_failures(prometheus::BuildCounter()
                               .Name("ecrm_segmentation_triggered_handover_failures_total")
                               .Help("Rounds of handing triggered messages over that failed for now (broadcast "
                                     "unreachable, overloaded, …); what they held is tried again")
                               .Register(registry)
                               .Add({})) {}

  // Sets the segment sizes from Segments::Sizes(): a segment deleted or renamed loses its
  // series. Thread-safe (two scrapes may run at once).
  void SetSegmentSizes(const std::vector<std::pair<std::string, uint64_t>>& sizes) {
    std::lock_guard lock(segment_members_mu_);
    std::map<std::string, prometheus::Gauge*> next;
    for (const auto& [name, members] : sizes) {
      auto it = segment_members_.find(name);
      prometheus::Gauge* g = it != segment_members_.end() ? it->second : &segment_members.Add({{"segment", name}});
      g->Set(static_cast<double>(members));
      next[name] = g;
    }
    for (const auto& [name, g] : segment_members_) {
      if (!next.contains(name)) segment_members.Remove(g);
    }
    segment_members_ = std::move(next);
  }

  prometheus::Counter& feed_messages;
  prometheus::Counter& feed_changes;
  prometheus::Counter& feed_resyncs;
  prometheus::Gauge& feed_position;
  prometheus::Gauge& feed_lag;
  prometheus::Counter& customers_loaded;
  prometheus::Family<prometheus::Counter>& memberships;
  prometheus::Counter& entered;
  prometheus::Counter& exited;
  prometheus::Counter& score_refits;
  prometheus::Family<prometheus::Counter>& fit_failures;
  prometheus::Counter& purchase_fit_failures;
  prometheus::Counter& spend_fit_failures;
  prometheus::Gauge& score_fit_seconds;
  prometheus::Gauge& score_refit_seconds;
  prometheus::Gauge& score_write_seconds;
  prometheus::Family<prometheus::Gauge>& scored;
  prometheus::Gauge& scored_engagement;
  prometheus::Gauge& scored_rfm;
  prometheus::Gauge& scored_value;
  prometheus::Family<prometheus::Gauge>& segment_members;
  prometheus::Family<prometheus::Counter>& triggered;
  prometheus::Counter& triggered_handed_over;
  prometheus::Counter& triggered_refused;
  prometheus::Counter& triggered_dropped;
  prometheus::Counter& triggered_failures;

 private:
  std::mutex segment_members_mu_;
  std::map<std::string, prometheus::Gauge*> segment_members_;
};

}  // namespace ecrm::segmentation

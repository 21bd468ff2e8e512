// The segmentation engine's metrics: registered once, at construction, from the registry it is
// given; the code then only moves the values.
#pragma once

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>

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
        exited(memberships.Add({{"change", "exited"}})) {}

  prometheus::Counter& feed_messages;
  prometheus::Counter& feed_changes;
  prometheus::Counter& feed_resyncs;
  prometheus::Gauge& feed_position;
  prometheus::Counter& customers_loaded;
  prometheus::Family<prometheus::Counter>& memberships;
  prometheus::Counter& entered;
  prometheus::Counter& exited;
};

}  // namespace ecrm::segmentation

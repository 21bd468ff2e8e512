// The transaction engine's metrics: each struct registers its families and series once, at
// construction, from the registry it is given; the code then only moves the values.
#pragma once

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

namespace ecrm::transaction {

// What the domain records.
struct TransactionMetrics {
  // Seconds: a minute up to a week.
  static inline const prometheus::Histogram::BucketBoundaries kResponseBuckets = {
      60, 300, 900, 1800, 3600, 4 * 3600, 8 * 3600, 24 * 3600, 48 * 3600, 7 * 24 * 3600};

  explicit TransactionMetrics(prometheus::Registry& registry)
      : inquiry_first_response(prometheus::BuildHistogram()
                                   .Name("ecrm_transaction_inquiry_first_response_seconds")
                                   .Help("Time from opening a service inquiry to the first agent reply")
                                   .Register(registry)
                                   .Add({}, kResponseBuckets)),
        inquiry_resolution(prometheus::BuildHistogram()
                               .Name("ecrm_transaction_inquiry_resolution_seconds")
                               .Help("Time from opening a service inquiry to its resolution")
                               .Register(registry)
                               .Add({}, kResponseBuckets)),
        orders_placed(prometheus::BuildCounter()
                          .Name("ecrm_transaction_orders_placed_total")
                          .Help("Orders placed (checkout and direct), not counting idempotent replays")
                          .Register(registry)
                          .Add({})),
        abandoned_carts(prometheus::BuildCounter()
                            .Name("ecrm_transaction_abandoned_carts_total")
                            .Help("cart_abandoned events raised, one per idle period of a cart")
                            .Register(registry)
                            .Add({})) {}

  prometheus::Histogram& inquiry_first_response;
  prometheus::Histogram& inquiry_resolution;
  prometheus::Counter& orders_placed;
  prometheus::Counter& abandoned_carts;
};

// What the outbox relay records; registered only when there is a relay (--infostore-address),
// so that a scrape never shows a pending count that nothing is delivering.
struct RelayMetrics {
  explicit RelayMetrics(prometheus::Registry& registry)
      : delivered(prometheus::BuildCounter()
                      .Name("ecrm_transaction_outbox_delivered_total")
                      .Help("Outbox events acknowledged by the information store")
                      .Register(registry)
                      .Add({})),
        parked(prometheus::BuildCounter()
                   .Name("ecrm_transaction_outbox_parked_total")
                   .Help("Outbox events the information store refused for good; kept in the outbox with the error")
                   .Register(registry)
                   .Add({})),
        delivery_failures(prometheus::BuildCounter()
                              .Name("ecrm_transaction_outbox_delivery_failures_total")
                              .Help("RecordEvents calls to the information store that failed and were retried")
                              .Register(registry)
                              .Add({})),
        pending(prometheus::BuildGauge()
                    .Name("ecrm_transaction_outbox_pending")
                    .Help("Outbox events waiting for delivery")
                    .Register(registry)
                    .Add({})) {}

  prometheus::Counter& delivered;
  prometheus::Counter& parked;
  prometheus::Counter& delivery_failures;
  prometheus::Gauge& pending;
};

}  // namespace ecrm::transaction

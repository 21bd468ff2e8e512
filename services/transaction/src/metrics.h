// The transaction engine's metrics: each struct registers its families and series once, at
// construction, from the registry it is given; the code then only moves the values.
#pragma once

#include <prometheus/counter.h>
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

}  // namespace ecrm::transaction

// Applies the information store's change feed to the recommendation model: the transaction
// engine's order events (services/transaction/src/orders.cc, Orders::OrderEvent) and erasures.
//
//   purchase         every SKU of the order ("skus" property, comma-separated) bought once by
//                    the event's customer at occurred_at; the order is remembered
//   order_cancelled  the order's SKUs returned, if the order's purchase was applied (an order
//                    cancelled before it was paid was never learnt)
//   refund           the order's SKUs returned once the refunds reach the order's total (the
//                    event id "refund:<order>:<refunded so far>" carries the running total in
//                    minor units). A partial refund takes nothing back: the event does not say
//                    which lines it refunds
//   ERASE change     ForgetCustomer (and the customer's remembered orders)
//
// Other changes and events are ignored. The events carry no quantities per line, so each SKU
// counts as one unit (the model counts customers per item, not units), and no categories (the
// catalogue's come through Recommender::SetCategory). A SKU list the transaction engine
// truncated (1,000 characters) loses the rest of the order's SKUs.
//
// Not thread-safe: one feed thread applies messages; the model takes readers meanwhile.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "ecrm/infostore/v1/infostore.pb.h"
#include "recommender.h"

namespace ecrm::personalisation {

// What one change does to the model (the pure part of RecommenderFeed::Apply).
struct FeedAction {
  std::vector<ModelUpdate> updates;
  // The customer to forget (an erasure), or empty.
  std::string forget;
};

class RecommenderFeed {
 public:
  explicit RecommenderFeed(Recommender& model) : model_(model) {}

  // The model updates of one change, given the orders learnt so far; remembers or forgets the
  // order it concerns. Applies nothing to the model.
  FeedAction Map(const infostore::v1::Change& change);

  // Maps every change of the message and applies the updates as one batch (erasures in order).
  absl::Status Apply(const infostore::v1::WatchChangesResponse& message);

  // Orders whose purchase was learnt and not yet taken back.
  int64_t orders() const { return static_cast<int64_t>(orders_.size()); }

 private:
  struct Order {
    std::string customer_id;
    std::vector<std::string> skus;
    int64_t total_minor = 0;
  };
  Recommender& model_;
  absl::flat_hash_map<std::string, Order> orders_;
};

}  // namespace ecrm::personalisation

// Applies the information store's change feed to the recommendation model: the transaction
// engine's order events (services/transaction/src/orders.cc, Orders::OrderEvent) and erasures.
//
//   purchase         every SKU of the order ("skus" property, comma-separated) bought once by
//                    the event's customer at occurred_at; the order is remembered
//   order_cancelled  the order's SKUs returned, if the order's purchase was applied (an order
//                    cancelled before it was paid was never learnt)
//   refund           the SKUs of the lines refunded in full so far ("refunded_skus", written by
//                    the transaction engine since 2026-12-01) returned; all of the order's SKUs
//                    once the refunds reach the order's total (the event id
//                    "refund:<order>:<refunded so far>" carries the running total in minor
//                    units). A line refunded in part stays learnt (the model counts holders, not
//                    units); an older refund event without "refunded_skus" takes back nothing
//                    until the total is reached
//   ERASE change     ForgetCustomer (and the customer's remembered orders)
//   MERGE change     the merged customers' orders move to the survivor: their SKUs returned by
//                    the merged customer and bought by the survivor at the order's time
//                    (popularity unchanged, co-purchases now counted in the survivor's history)
//
// An UNMERGE leaves the orders with the survivor (the change does not say which orders go back).
// The orders remembered are what the model is made of: a consumer that saves them (FeedAction
// says what changed) can learn the model again from them (Restore) instead of replaying the feed.
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
#include "absl/time/time.h"
#include "ecrm/infostore/v1/infostore.pb.h"
#include "recommender.h"

namespace ecrm::personalisation {

// An order whose purchase the model learnt and that was not taken back.
struct LearntOrder {
  std::string order_id;
  std::string customer_id;
  std::vector<std::string> skus;  // distinct, in the order's order
  int64_t total_minor = 0;
  absl::Time at;  // occurred_at of the purchase
};

// What one change does to the model (the pure part of RecommenderFeed::Apply), and to the
// orders remembered (for a consumer that saves them).
struct FeedAction {
  std::vector<ModelUpdate> updates;
  // The customer to forget (an erasure), or empty; their orders are dropped with them.
  std::string forget;
  // An order learnt.
  std::vector<LearntOrder> remembered;
  // Orders taken back (cancelled, refunded in full).
  std::vector<std::string> dropped;
  // Customers merged into `survivor`: their orders now belong to the survivor.
  std::vector<std::string> merged_ids;
  std::string survivor;
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

  // Remembers an order learnt before (a restart) without changing the model; the caller
  // applies its purchases (PurchasesOf).
  void Restore(const LearntOrder& order);
  // The model updates that learn `order` (what a purchase event of it gives).
  static std::vector<ModelUpdate> PurchasesOf(const LearntOrder& order);
  // Forgets every order (a resync).
  void Clear() { orders_.clear(); }
  // Every order remembered (saving them all after a resync).
  std::vector<LearntOrder> Orders() const;

 private:
  struct Order {
    std::string customer_id;
    std::vector<std::string> skus;
    int64_t total_minor = 0;
    absl::Time at;
  };
  Recommender& model_;
  absl::flat_hash_map<std::string, Order> orders_;
};

}  // namespace ecrm::personalisation

// Follows the information store's change feed into the recommendation model (the engine's side
// of RecommenderFeed: the stream, the saved state, the position).
//
// Each feed message is mapped by RecommenderFeed, applied to the model (visible to the next read
// at once) and then saved in one database transaction with the message's position: the orders
// it learnt (reco_orders), those taken back, erased or merged into another customer, and
// reco_feed_position. The orders saved are what the model is made of, so a restart reads them
// back in the order they were placed, learns them again (no feed replay: nothing before the saved
// position is read again) and rebuilds the neighbour lists, then watches from the saved position.
// A save that fails is tried again (every --retry) before the next message is read; stopping with
// the database down loses only what the feed gives again after the restart.
//
// When the saved position is older than the feed keeps (OUT_OF_RANGE), the consumer resyncs:
// every customer from ListCustomers and their order events (purchase, order_cancelled, refund)
// from ListEvents, applied in time order to an empty model; the saved orders are replaced and it
// watches from the sequence the listing reported.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "catalogue.h"
#include "ecrm/feed/infostore.h"
#include "ecrm/sql/sql.h"
#include "recommender.h"
#include "recommender_feed.h"

namespace ecrm::personalisation {

struct RecommendationFeedOptions {
  // How far back a resync reads order events.
  absl::Duration event_horizon = absl::Hours(24 * 400);
  // Wait before watching again after the information store failed, or saving again after the
  // database failed.
  absl::Duration retry_after = absl::Milliseconds(500);
};

class RecommendationFeed {
 public:
  // `catalogue` (may be null) gives purchases their product's category.
  RecommendationFeed(sql::Database& db, Recommender& model, feed::InformationStore& infostore,
                     const Catalogue* catalogue, RecommendationFeedOptions options = {});
  ~RecommendationFeed();
  RecommendationFeed(const RecommendationFeed&) = delete;
  RecommendationFeed& operator=(const RecommendationFeed&) = delete;

  // Reads the saved orders and position and learns the orders again. Call once before Start().
  absl::Status Load();
  // Follows the feed on a thread of its own until Stop().
  void Start();
  void Stop();

  // Applies one feed message to the model and saves it (the feed thread's step; tests drive
  // the consumer through it).
  absl::Status Apply(const infostore::v1::WatchChangesResponse& message);
  // Learns the model again from the information store's listings (see above).
  absl::Status Resync();

  // The customer's orders the model has learnt (privacy export).
  std::vector<LearntOrder> CustomerOrders(const std::string& customer_id) const;
  // Takes everything the customer contributed out of the model and the saved orders at once, as
  // the feed's ERASE change will (privacy erasure; the change then finds nothing left).
  absl::Status Forget(const std::string& customer_id);

  // The position saved (what a restart resumes from).
  int64_t position() const { return position_.load(); }
  // Changes read from the feed since this process started (a restart that replayed nothing
  // reads only what came after the saved position).
  int64_t changes_read() const { return changes_read_.load(); }
  // Orders loaded from the database by Load().
  int64_t orders_loaded() const { return orders_loaded_; }
  // Orders learnt and not taken back.
  int64_t orders() const;

  // Blocks until the saved position reaches `sequence` or `timeout` passes; true if reached.
  bool WaitForPosition(int64_t sequence, absl::Duration timeout);

 private:
  void Run();
  // Saves what `actions` changed and the position, in one transaction.
  absl::Status Save(const std::vector<FeedAction>& actions, int64_t position);
  void FillCategories(std::vector<ModelUpdate>& updates) const;

  sql::Database& db_;
  Recommender& model_;
  feed::InformationStore& infostore_;
  const Catalogue* const catalogue_;
  const RecommendationFeedOptions options_;
  mutable std::mutex apply_mu_;  // one Apply / Resync at a time; guards mapper_
  RecommenderFeed mapper_;
  std::atomic<int64_t> position_{0};
  std::atomic<int64_t> changes_read_{0};
  int64_t orders_loaded_ = 0;
  std::mutex mu_;  // guards stopping_; with cv_, the position
  std::condition_variable cv_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace ecrm::personalisation

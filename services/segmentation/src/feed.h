// Follows the information store's change feed into the features and the segments.
//
// Each feed message is applied whole: the changes go into the features, the changed customers
// are evaluated against the rules that read what changed, and then one database transaction
// saves the changed customers' features, drops the removed ones, queues the segment entries
// and exits for the information store, and moves the saved position. A restart loads what was
// saved and watches on from that position; nothing before it is read again. When the saved
// position is older than the feed keeps (OUT_OF_RANGE), the consumer resyncs: every customer
// from ListCustomers and its events from ListEvents, then watches from the sequence the
// listing reported.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "clients/infostore.h"
#include "ecrm/sql/sql.h"
#include "customer_features.h"
#include "segments.h"

namespace ecrm::segmentation {

struct FeedOptions {
  // How far back events are read on a resync or an unmerge (the features' event horizon).
  absl::Duration event_horizon = absl::Hours(24 * 400);
  // Wait before watching again after the information store failed.
  absl::Duration retry_after = absl::Milliseconds(500);
};

// What the consumer has done, for metrics and tests.
struct FeedCounters {
  std::atomic<int64_t> messages{0};
  std::atomic<int64_t> changes{0};
  std::atomic<int64_t> resyncs{0};
  std::atomic<int64_t> customers_loaded{0};  // from the database at start
  std::atomic<int64_t> memberships_changed{0};
};

class FeedConsumer {
 public:
  FeedConsumer(sql::Database& db, Features& features, Segments& segments, InformationStore& infostore,
               FeedOptions options = {});
  ~FeedConsumer();

  // Loads the saved features and position. Call once before Start() (and before the
  // segments' Load(), which evaluates over the features).
  absl::Status Load();
  // Follows the feed on a thread of its own until Stop().
  void Start();
  void Stop();

  // Applies one feed message as the thread does (tests drive the consumer through it).
  absl::Status Apply(const infostore::v1::WatchChangesResponse& message);
  // Reads every customer again and fills the segments anew (no entry events).
  absl::Status Resync();

  int64_t position() const { return position_.load(); }
  const FeedCounters& counters() const { return counters_; }
  // Blocks until the applied position reaches `sequence` or `timeout` passes; true if reached.
  bool WaitForPosition(int64_t sequence, absl::Duration timeout);

 private:
  void Run();
  // Reads back the events of customers an unmerge gave events to.
  absl::StatusOr<std::vector<infostore::v1::Event>> ReadEvents(const std::string& customer_id);
  // Saves the customers, removals, published events and position in one transaction.
  absl::Status Save(const std::vector<CustomerNo>& customers, const std::vector<std::string>& removed,
                    const std::vector<MembershipChange>& memberships, int64_t position);

  sql::Database& db_;
  Features& features_;
  Segments& segments_;
  InformationStore& infostore_;
  const FeedOptions options_;
  FeedCounters counters_;
  std::atomic<int64_t> position_{0};
  std::mutex mu_;
  std::condition_variable cv_;  // position moved, or stopping
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace ecrm::segmentation

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
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "campaigns.h"
#include "clients/infostore.h"
#include "customer_features.h"
#include "ecrm/outbox/outbox.h"
#include "ecrm/sql/sql.h"
#include "metrics.h"
#include "partition.h"
#include "scores.h"
#include "segments.h"

namespace ecrm::segmentation {

struct FeedOptions {
  // How far back events are read on a resync or an unmerge (the features' event horizon).
  absl::Duration event_horizon = absl::Hours(24 * 400);
  // Wait before watching again after the information store failed.
  absl::Duration retry_after = absl::Milliseconds(500);
  // The customers this replica keeps (--partition); the others' changes are skipped.
  Partition partition;
};

class FeedConsumer {
 public:
  // Entries and exits go to `outbox` (relayed to the information store by libs/outbox).
  FeedConsumer(sql::Database& db, Features& features, Segments& segments, InformationStore& infostore,
               outbox::Outbox& outbox, SegmentationMetrics& metrics, FeedOptions options = {});
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
  // Evaluates again the customers whose time-relative rules may have changed by now; saves and
  // publishes the entries and exits.
  absl::Status Tick();
  // Refits the scores (Scores::Compute, holding no lock), writes them into the features and
  // evaluates the customers whose scores changed against the rules that read scores (holding
  // the lock exclusively once), then saves and publishes the entries and exits. The first
  // refit after a start or a resync publishes nothing: scores are not saved, so until then the
  // segments that read them were empty for want of scores, not because customers had left.
  absl::Status ApplyScores(Scores& scores);

  int64_t position() const { return position_.load(); }
  // Campaigns to tell of every event (their delivery funnel and goals), saved with the feed
  // position. Set once, before Start().
  void SetCampaigns(Campaigns* campaigns) { campaigns_ = campaigns; }

  // Blocks until the applied position reaches `sequence` or `timeout` passes; true if reached.
  bool WaitForPosition(int64_t sequence, absl::Duration timeout);

 private:
  void Run();
  // Reads back the events of customers an unmerge gave events to.
  absl::StatusOr<std::vector<infostore::v1::Event>> ReadEvents(const std::string& customer_id);
  // Saves the customers, removals, published events and (when given) the position in one
  // transaction. `cause` makes the published events' ids: what led to them.
  absl::Status Save(const std::vector<CustomerNo>& customers, const std::vector<std::string>& removed,
                    const std::vector<MembershipChange>& memberships, std::optional<int64_t> position,
                    const std::string& cause, const std::vector<CampaignOutcome>& outcomes = {});

  sql::Database& db_;
  Features& features_;
  Segments& segments_;
  InformationStore& infostore_;
  outbox::Outbox& outbox_;
  Campaigns* campaigns_ = nullptr;
  SegmentationMetrics& metrics_;
  const FeedOptions options_;
  std::atomic<int64_t> position_{0};
  std::mutex mu_;
  std::condition_variable cv_;  // position moved, or stopping
  bool stopping_ = false;
  std::thread thread_;
  // No refit written since the start or the last resync (guarded by the features' lock).
  bool scores_cleared_ = true;
};

}  // namespace ecrm::segmentation

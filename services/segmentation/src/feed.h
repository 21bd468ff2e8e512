// Follows the information store's change feed into the features and the segments.
//
// Each feed message is applied whole: the changes go into the features and the changed customers
// are evaluated against the rules that read what changed (queries see the result at once), and
// what it changed is staged. A saver thread writes everything staged in one database
// transaction: the changed customers' features (under their numbers, never given out again), the
// removed ones dropped, the segment entries and exits queued for the information store, the
// segments' members (what changed since the last save, or all of them now and then), a refit's
// scores, the campaigns' outcomes and triggered entries, and the position — so the features and
// members saved are always those of the position saved with them, and the members those the
// events published led to. While one transaction is written the next messages are applied and
// staged, and the next transaction takes them all (group commit: under load fewer, larger
// transactions; idle, one per message). A restart loads what was saved, publishes what differs
// between the members saved and the rules evaluated now (time passed while it was down), and
// watches on from that position; nothing before it is read again.
//
// The events log. Most changes are events that change nothing of a customer but its event
// counts. Rewriting each such customer's row of customer_events in every transaction was most of
// the saver's work under load (a random row, and its page copied again by the checkpointer, per
// customer per transaction). Instead, a transaction appends the events themselves to
// customer_events_log, one row per transaction (a dozen bytes an event). Once the log holds
// `fold_logged_events` events, a round begins: the customers it has events of get their rows
// written anew, `fold_slice` a transaction, each row marked with the transaction's sequence
// (`logged_through`), and the round's last transaction deletes the log rows it covers. A start
// loads the rows, then replays the log rows later than each customer's. A customer saved whole
// (its record) has its row written at once. Erasing a customer deletes its events from the log
// in the same transaction.
//
// When the saved
// position is older than the feed keeps (OUT_OF_RANGE), the consumer resyncs: every customer
// from ListCustomers and its events from ListEvents, then watches from the sequence the
// listing reported.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
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
#include "ecrm/segmentation/internal/record.pb.h"
#include "ecrm/sql/sql.h"
#include "metrics.h"
#include "partition.h"
#include "scores.h"
#include "segments.h"

namespace ecrm::segmentation {

struct FeedOptions {
  // How far back events are read on a resync or an unmerge (the features' event horizon).
  absl::Duration event_horizon = absl::Hours(24 * 400);
  // Wait before watching again after the information store failed, or saving again after the
  // database failed.
  absl::Duration retry_after = absl::Milliseconds(500);
  // Changes applied and not yet saved past which the feed waits for the saver.
  int64_t max_unsaved_changes = 200'000;
  // Under load, the saver begins a transaction at most this often (what is staged meanwhile goes
  // into the next one, unless it reaches half of max_unsaved_changes first): fewer, larger
  // transactions write each changed database page once for many changes. A change after a
  // quiet spell (the last transaction began longer ago) is saved at once. Queries see changes
  // when applied, whatever this is; entries and exits are published when saved, so this bounds
  // what it adds to their publication. At 20,000 events/s (ecrm-segmentation-bench --feed-events)
  // 250 ms took the CPU per event from 44 to 33 µs (1 s: 29 µs).
  absl::Duration save_interval = absl::Milliseconds(250);
  // The customers this replica keeps (--partition); the others' changes are skipped.
  Partition partition;
  // Events in the log past which a round of writing its customers' rows begins (see "The events
  // log" above): a start replays at most about twice this many.
  int64_t fold_logged_events = 1'000'000;
  // Customers whose rows a round writes per transaction (the features' shared lock is held while
  // their events are encoded).
  size_t fold_slice = 20'000;
};

class FeedConsumer {
 public:
  // Entries and exits go to `outbox` (relayed to the information store by libs/outbox).
  FeedConsumer(sql::Database& db, Features& features, Segments& segments, InformationStore& infostore,
               outbox::Outbox& outbox, SegmentationMetrics& metrics, FeedOptions options = {});
  ~FeedConsumer();

  // Loads the saved features (each customer under its saved number) and position. Call once
  // before Start() (and before the segments' Load(), which evaluates over the features).
  absl::Status Load();
  // Writes the last refit's saved scores into the features (rules on scores answer from the
  // start). After Load(), before the segments' Load().
  absl::Status LoadScores(Scores& scores);
  // Publishes the entries and exits the segments' Load() found against the members saved (what
  // changed while the engine was down), and saves the members, before Start() (and after
  // SetCampaigns(): an entry triggers as any other). Published once: the events are saved with
  // the members they lead to.
  absl::Status PublishRestored(const std::vector<MembershipChange>& changes);
  // Follows the feed on a thread of its own, and saves on another, until Stop() (which saves
  // what was applied).
  void Start();
  void Stop();

  // Applies one feed message and saves it before returning (tests drive the consumer through
  // it; the feed thread saves in the background).
  absl::Status Apply(const infostore::v1::WatchChangesResponse& message);
  // Saves everything applied so far (the saver's step; also called by Apply, Tick, ApplyScores).
  absl::Status Flush();
  // Reads every customer again and fills the segments anew (no entry events).
  absl::Status Resync();
  // Evaluates again the customers whose time-relative rules may have changed by now; saves and
  // publishes the entries and exits.
  absl::Status Tick();
  // Refits the scores (Scores::Compute, holding no lock), writes them into the features and
  // evaluates the customers whose scores changed against the rules that read scores (holding
  // the lock exclusively once), then saves and publishes the entries and exits. The first
  // refit after a resync (or a start with no scores saved) publishes nothing: until then the
  // segments that read them were empty for want of scores, not because customers had left. The
  // refit is saved (one row per kScoresPerPart customers) with the memberships it led to.
  absl::Status ApplyScores(Scores& scores);
  static constexpr size_t kScoresPerPart = 1 << 20;

  // The position saved (what a restart resumes from).
  int64_t position() const { return position_.load(); }
  // When the members saved were evaluated (by the segments' clock), as Load() found it;
  // InfinitePast if not known. The segments' Load() dates what changed since from it.
  absl::Time saved_at() const { return saved_at_; }
  // Sets the feed-lag gauge as of `now` (call at each scrape): the time since the last instant
  // before which every change the information store committed is saved here. A message's
  // newest change moves that instant to its commit time; a heartbeat (a message without
  // changes: the store had nothing newer) to when it arrived; a resync to when its listing
  // began. Until the first of these it is the consumer's start, so a feed that cannot be
  // reached shows a growing lag. Idle, it grows up to the heartbeat interval between heartbeats.
  void RefreshLag(absl::Time now = absl::Now());
  // Drops event days past the event horizon from memory, one arena of customers at a time (the
  // features' lock held for one arena's pass: the feed and queries wait at most that long).
  // Windows never reach those days; the saved records lose them when their customer is next
  // saved.
  void PruneEvents(absl::Time now);
  // Campaigns to tell of every event (their delivery funnel and goals), saved with the feed
  // position. Set once, before Start().
  void SetCampaigns(Campaigns* campaigns) { campaigns_ = campaigns; }

  // What an erasure removed.
  struct Erased {
    int64_t memberships = 0;    // segment memberships (in memory)
    int64_t saved = 0;          // saved customer records
    int64_t queued = 0;         // segment entries and exits not yet delivered to the store
    int64_t campaign_rows = 0;  // campaign assignments, outcomes and sends
  };
  // Erases customers (the privacy API's erasure) as an erasure read from the feed is applied:
  // gone from the features, every segment's members and what is staged of them, and their
  // saved rows deleted before it returns. The saver is held off meanwhile, so a transaction that
  // read their records before cannot write them back after. `forget` is called with each
  // customer's number under the features' lock (what else holds it by number: the scores).
  absl::StatusOr<Erased> Erase(const std::vector<std::string>& ids, const std::function<void(CustomerNo)>& forget);
  // Deletes what is saved of a customer in `c` (its record, events row, queued segment events,
  // campaign rows), counted in `erased`.
  static absl::Status DeleteSaved(sql::Connection& c, const std::string& id, Erased& erased);
  // Deletes erased customers' events from the events log, rewriting the rows that had any.
  static absl::Status ScrubLog(sql::Connection& c, const std::vector<CustomerNo>& erased);

  // Blocks until the saved position reaches `sequence` or `timeout` passes; true if reached.
  bool WaitForPosition(int64_t sequence, absl::Duration timeout);

 private:
  // What has been applied and not saved yet (feed.cc).
  struct Unsaved;

  void Run();
  void Save();  // the saver thread
  // Applies a message to the features and the segments and stages what changed.
  absl::Status ApplyMessage(const infostore::v1::WatchChangesResponse& message);
  // Reads back the events of customers an unmerge gave events to.
  absl::StatusOr<std::vector<infostore::v1::Event>> ReadEvents(const std::string& customer_id);
  // Stages changed customers (true: more than their events changed) and removed ones, the entries and exits to publish
  // (their event ids made from `cause`: what led to them), the outcomes and the position. The caller holds the
  // features' lock exclusively.
  void Stage(const std::vector<std::pair<CustomerNo, bool>>& customers, const std::vector<std::string>& removed,
             const std::vector<MembershipChange>& memberships, const std::string& cause,
             const std::vector<CampaignOutcome>& outcomes, std::optional<int64_t> position, int64_t changes,
             std::optional<absl::Time> caught_up = std::nullopt);
  // A customer's saved row.
  struct Row {
    std::string id;
    CustomerNo number = 0;
    bool whole = false;  // the record written too (else the events alone)
    std::string record;  // CustomerFeaturesRecord without the events
    std::string events;  // Features::EventsToBytes
  };
  // What a transaction writes of the events log: its sequence, the events it appends, and the
  // log rows it deletes (a round's end).
  struct LogWrite {
    int64_t sequence = 0;
    internal::EventLogEntries entries;
    std::optional<int64_t> drop_through;
  };
  // Writes a staged batch in one transaction: its customers' rows, the events logged, the
  // segments' members, the number below which every number is given out.
  // `evaluated_at`: the segments' clock when the members were taken.
  absl::Status Write(const Unsaved& batch, const std::vector<Row>& rows, const LogWrite& log,
                     const std::vector<MembersSave>& members, int64_t next_number, absl::Time evaluated_at);
  // Replays the log rows later than each customer's row (Load; the features' lock held).
  absl::Status ReplayLog(const std::vector<int64_t>& logged_through);

  sql::Database& db_;
  Features& features_;
  Segments& segments_;
  InformationStore& infostore_;
  outbox::Outbox& outbox_;
  Campaigns* campaigns_ = nullptr;
  SegmentationMetrics& metrics_;
  const FeedOptions options_;
  std::atomic<int64_t> position_{0};            // saved
  absl::Time saved_at_ = absl::InfinitePast();  // Load()'s
  std::atomic<int64_t> applied_position_{0};    // applied in memory (the feed watches on from it)
  const int64_t started_us_;                    // RefreshLag's instant until caught_up_us_ is known
  std::atomic<int64_t> caught_up_us_{0};        // every change committed before it is saved; 0: not known yet
  std::mutex save_mu_;                          // one Flush at a time
  std::mutex mu_;                               // guards unsaved_, stopping_
  std::condition_variable cv_;                  // position saved, something staged, or stopping
  std::unique_ptr<Unsaved> unsaved_;
  bool stopping_ = false;
  bool saver_stopping_ = false;
  std::thread thread_, saver_;
  // No refit written (nor loaded) since the start or the last resync (guarded by the features'
  // lock).
  bool scores_cleared_ = true;
  // The events log (guarded by save_mu_).
  struct EventLog {
    int64_t sequence = 0;         // the last transaction's
    int64_t logged = 0;           // events logged since the round began (or the start)
    Roaring customers;            // with events logged since their rows were written
    Roaring folding;              // the round's customers whose rows are still to write
    int64_t folding_through = 0;  // the round covers the log rows up to this sequence
    bool folding_active = false;
  } log_;
};

}  // namespace ecrm::segmentation

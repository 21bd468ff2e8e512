// Segments: rule definitions (saved), their compiled rules and their members (Roaring bitmaps
// over customer numbers), kept exact as customers change and as time passes.
//
// Incremental: after the feed consumer applies a batch, each changed customer is evaluated
// against only the segments whose rules read what changed, in dependency order (a rule naming
// segment("x") after x). Time-relative rules (days_since, event windows, now) are evaluated
// again when their value can next change with no new data: each evaluation gives that instant
// (rules::EvaluateWithNextChange), and the customer is put in a per-day bitmap of its segment
// (woken at the start of that UTC day, early rather than late) or, for today, in an exact
// queue. Tick() wakes what is due. A first fill (a new or edited segment, a resync) decides the
// members over the whole population at once and leaves the customers who may change with time
// to Tick, which finds them (one segment a tick) and evaluates and schedules them a budget at a
// time before anything else.
//
// The Features lock guards the memberships too: the definition and query methods take it
// themselves; Apply, Refill, Forget and Tick are for the feed consumer, which holds it
// exclusively while it applies a batch.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <queue>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "customer_features.h"
#include "ecrm/rules/rule.h"
#include "ecrm/segmentation/v1/segmentation.pb.h"
#include "ecrm/sql/sql.h"
#include "roaring/roaring.hh"

namespace ecrm::segmentation {

// A customer entering or leaving a segment.
struct MembershipChange {
  std::string segment_id;
  CustomerNo customer = 0;
  bool entered = false;
  absl::Time at;
};

// A segment's members as saved (segment_members, segment_member_changes): all of them, or the
// customers whose membership changed since the last save.
struct MembersSave {
  std::string segment_id;
  bool snapshot = false;
  std::string rule;             // snapshot: the rule they are the members of
  std::string members;          // snapshot: Roaring, portable format
  int64_t seq = 0;              // changes: their order since the snapshot
  std::string entered, exited;  // changes: Roaring of members now, and of customers no longer members
};

// What changed for one customer, to find the rules that read it.
struct ChangedData {
  bool profile = false;   // profile, preferences, attributes, identity, anonymous, anything but below
  bool consents = false;  // consent.*
  bool orders = false;    // orders.*
  bool seen = false;      // first and last seen (moved by every event, an order or not)
  bool scores = false;    // rfm.*, clv, engagement (written by the scores' refit)
  std::vector<int32_t> event_types;
  bool all_event_types = false;  // a merge or unmerge moved events of any type
};

class Segments final : public Memberships {
 public:
  using Clock = std::function<absl::Time()>;
  Segments(sql::Database& db, Features& features, Clock clock, rules::Limits limits = {});
  ~Segments() override;
  // The segments' clock (time-relative rules are evaluated by it).
  absl::Time Now() const { return clock_(); }

  // Reads the saved definitions, compiles them and fills their members. A segment whose members
  // were saved (for the same rule) appends to `restored` the customers who entered or left it
  // since (time passed, scores, what the feed saved before them): the feed consumer publishes
  // them (FeedConsumer::PublishRestored). The others fill without events, as new ones do. Call
  // once, before serving, after the features (and scores) are loaded.
  // Each of those is dated when it happened: the first instant from `since` (when the members
  // were saved) at which the rule, evaluated over the features loaded, gave the new membership —
  // a time-relative rule's boundary, found by stepping from one next change to the next; the
  // start's clock when `since` is unknown (InfinitePast) or nothing earlier is found.
  absl::Status Load(std::vector<MembershipChange>* restored = nullptr, absl::Time since = absl::InfinitePast());

  // Definitions. Errors: INVALID_ARGUMENT (naming the field; a rule's error carries its line
  // and column), NOT_FOUND, ALREADY_EXISTS (name taken), ABORTED (expected_version is not the
  // current one), FAILED_PRECONDITION (a deletion or rename of a segment other rules name, a
  // change that would make rules name each other in a cycle).
  absl::StatusOr<v1::Segment> Create(const v1::Segment& segment);
  absl::StatusOr<v1::Segment> Get(const std::string& id) const;
  absl::StatusOr<v1::ListSegmentsResponse> List(const v1::ListSegmentsRequest& request) const;
  absl::StatusOr<v1::Segment> Update(const v1::UpdateSegmentRequest& request);
  absl::Status Delete(const std::string& id);

  // Evaluates a rule over every live customer without saving anything.
  absl::StatusOr<v1::PreviewSegmentResponse> Preview(const v1::PreviewSegmentRequest& request) const;

  // Members in customer-number order (stable: numbers are never reused).
  absl::StatusOr<v1::ListSegmentMembersResponse> ListMembers(const v1::ListSegmentMembersRequest& request) const;
  // The ids of the segments the customer belongs to, by name.
  absl::StatusOr<v1::GetCustomerSegmentsResponse> CustomerSegments(const std::string& customer_id) const;
  // The same if the features' lock can be had at once (shared), else nullopt: never waits (for
  // answering on a thread that must not block).
  std::optional<absl::StatusOr<v1::GetCustomerSegmentsResponse>> TryCustomerSegments(
      const std::string& customer_id) const;
  // A copy of the segment's members now (a stream's audience does not move under it).
  absl::StatusOr<Roaring> Snapshot(const std::string& id) const;
  // The ids of customer numbers, skipping those erased since; takes the lock.
  std::vector<std::string> Ids(absl::Span<const CustomerNo> numbers) const;
  // Every segment's name and member count (for /metrics), or nullopt while a writer holds the
  // features' lock (a resync or a refit can hold it for seconds: a scrape does not wait).
  std::optional<std::vector<std::pair<std::string, uint64_t>>> Sizes() const;
  // The caller holds the lock.
  const Roaring* Members(const std::string& id) const;
  // (id, name) of the segments the customer belongs to; the caller holds the lock.
  std::vector<std::pair<std::string, std::string>> MembershipsOf(CustomerNo n) const;

  // Evaluates changed customers against the rules that read what changed; appends the
  // entries and exits.
  void Apply(const std::vector<std::pair<CustomerNo, ChangedData>>& changed, std::vector<MembershipChange>& out);
  // The same for customers who all changed in the same way (the scores' refit: `what.scores`).
  void Apply(absl::Span<const CustomerNo> customers, const ChangedData& what, std::vector<MembershipChange>& out);
  // Fills every segment anew from the features (after a resync; no entry events).
  void Refill();
  // A customer gone (erased, merged into another) leaves every segment silently.
  void Forget(CustomerNo n);
  // Evaluates again every customer whose time-relative rules may have changed by now; first,
  // finds the customers one first fill left to schedule and schedules up to kScheduledPerTick
  // of those found.
  void Tick(std::vector<MembershipChange>& out);
  static constexpr int64_t kScheduledPerTick = 100'000;

  // Saving the memberships (the feed consumer's saver, in the transaction of the position, so
  // that what is saved is what was published). What changed since the last call, per segment:
  // all its members (a new or refilled segment, or when its changes since then outgrow them) or
  // the customers who entered and left. The caller holds the features' lock (shared is enough:
  // only the one saver touches what is unsaved) and takes the result into a transaction.
  std::vector<MembersSave> TakeUnsaved();
  bool HasUnsaved() const;
  // Those were not written: the segments are saved whole next time. The caller holds the lock.
  void SaveFailed(const std::vector<MembersSave>& saves);
  static absl::Status WriteMembers(sql::Connection& c, const std::vector<MembersSave>& saves);
  // Called, holding the features' lock exclusively, when a first fill (a new or edited segment)
  // left members to save.
  void SetOnUnsaved(std::function<void()> on_unsaved) { on_unsaved_ = std::move(on_unsaved); }
  // A segment is saved whole once its changes saved since exceed this many rows, or its members'
  // bytes (at least kSnapshotMinBytes).
  static constexpr int64_t kChangesPerSnapshot = 1024;
  static constexpr size_t kSnapshotMinBytes = 64 * 1024;

  // Memberships, for rules naming segment("…"): by the slot the schema gave.
  bool Contains(int32_t slot, CustomerNo n) const override;

 private:
  struct Slot;
  class Schema;

  absl::StatusOr<std::unique_ptr<Slot>> Compile(const v1::Segment& definition, int32_t slot_id) const;
  Slot* Find(const std::string& id);
  const Slot* Find(const std::string& id) const;
  // Slots in an order where every rule comes after the segments it names.
  void Reorder();
  // Fills a slot's members from scratch (no events) and schedules its time-relative customers.
  void Fill(Slot& slot);
  // When the customer's membership of the slot became `entered`, looking from `since` (Load).
  absl::Time ChangedSince(const Slot& slot, CustomerNo n, bool entered, absl::Time since) const;
  // Evaluates one customer against one slot; records a change (when `out`) and schedules.
  void Evaluate(Slot& slot, CustomerNo n, absl::Time now, std::vector<MembershipChange>* out);
  void Schedule(Slot& slot, CustomerNo n, absl::Time next, absl::Time now);
  bool Reads(const Slot& slot, const ChangedData& changed) const;
  // Apply's pass over the slots in dependency order: `evaluate` evaluates a slot's changed
  // customers, then those whose membership of a segment the slot names changed in this pass.
  void ApplyInOrder(const std::function<void(Slot&, absl::Time, std::vector<MembershipChange>&)>& evaluate,
                    std::vector<MembershipChange>& out);
  absl::Status Save(const v1::Segment& segment, bool create);
  // CustomerSegments with the lock held.
  absl::StatusOr<v1::GetCustomerSegmentsResponse> CustomerSegmentsLocked(const std::string& customer_id) const;
  v1::Segment Describe(const Slot& slot) const;

  sql::Database& db_;
  Features& features_;
  Clock clock_;
  const rules::Limits limits_;
  std::vector<std::unique_ptr<Slot>> slots_;  // by slot id; null once deleted
  absl::flat_hash_map<std::string, int32_t> by_id_, by_name_;
  std::vector<int32_t> order_;  // live slots, dependencies first
  std::function<void()> on_unsaved_;
};

}  // namespace ecrm::segmentation

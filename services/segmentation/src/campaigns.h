// Campaigns: an audience (include / exclude segments), a message (template or offer) sent
// through broadcast, a control group held out by a deterministic hash, a goal event and an
// attribution window — and the report that says whether it worked.
//
// Launch freezes the audience (the segments' members at that moment), draws the control group
// (uplift.h: the same customers on every retry and machine), saves every member with its group,
// and hands the treatment group to broadcast. A launch that saved its members but could not
// reach broadcast is finished by the next launch call; a launched campaign's launch returns it
// as it is.
//
// The report reads what the change feed brought back (Observe): delivery events of the
// campaign's messages (message_sent … message_unsubscribed, property campaign_id) and goal events
// of its members within the attribution window, each saved once by event id.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "clients/broadcast.h"
#include "customer_features.h"
#include "ecrm/infostore/v1/infostore.pb.h"
#include "ecrm/segmentation/internal/record.pb.h"
#include "ecrm/segmentation/v1/segmentation.pb.h"
#include "ecrm/sql/sql.h"
#include "partition.h"
#include "roaring/roaring.hh"
#include "segments.h"

namespace ecrm::segmentation {

// What a campaign's member did, as the feed told it: a delivery stage or the goal.
struct CampaignOutcome {
  std::string campaign_id;
  std::string customer_id;
  std::string stage;  // sent, delivered, failed, opened, clicked, unsubscribed, goal
  std::string event_id;
  int64_t at_us = 0;
  int64_t amount_minor = 0;  // goal events with an amount
};

// A customer's entry into the segment a running triggered campaign is triggered by.
struct TriggeredEntry {
  // Made from the published segment_entered event's id: an entry replayed after a crash is the
  // same entry, and triggers once.
  std::string id;
  std::string campaign_id;
  std::string customer_id;
  CustomerNo customer = 0;
  bool control = false;  // uplift.h's InControl: the same customer is always in the same group
  int64_t at_us = 0;
};

// What became of the triggered messages owed, in customers.
struct TriggeredSends {
  int64_t handed_over = 0;  // broadcast took them
  int64_t refused = 0;      // broadcast refused them for good
  int64_t dropped = 0;      // their campaign no longer runs
};

// Whether broadcast's answer refuses an order for good (the order itself is wrong: a template or
// offer that does not exist, …) rather than for now (unreachable, overloaded, an offer not active).
bool RefusedForGood(const absl::Status& status);

class Campaigns {
 public:
  using Clock = std::function<absl::Time()>;
  // `broadcaster` may be null (no broadcast engine configured): launching is then refused.
  // With a `partition` (--partition), hand-overs' idempotency keys name it: every replica hands
  // over its own customers.
  Campaigns(sql::Database& db, Segments& segments, Features& features, Broadcaster* broadcaster, Clock clock,
            Partition partition = {});

  // Reads the running campaigns' members into memory (Observe needs them). Once, before serving.
  absl::Status Load();

  // Errors name the field: INVALID_ARGUMENT, NOT_FOUND (a segment that does not exist),
  // FAILED_PRECONDITION (launching a campaign that is not a draft, or with no broadcast engine),
  // UNAVAILABLE (broadcast could not be reached: launch again).
  absl::StatusOr<v1::Campaign> Create(const v1::Campaign& campaign);
  absl::StatusOr<v1::Campaign> Get(const std::string& id);
  absl::StatusOr<v1::ListCampaignsResponse> List(const v1::ListCampaignsRequest& request);
  absl::StatusOr<v1::Campaign> Launch(const v1::LaunchCampaignRequest& request);
  absl::StatusOr<v1::CampaignReport> Report(const std::string& id);

  // The outcomes an event recorded in the information store is for. The caller holds the
  // features' lock (shared is enough) and saves them with SaveOutcomes in its transaction.
  std::vector<CampaignOutcome> Observe(const infostore::v1::Event& event) const;
  static absl::Status SaveOutcomes(sql::Connection& c, const std::vector<CampaignOutcome>& outcomes);
  // Triggered campaigns. Entries() gives the entries a membership change is for (the caller
  // holds the features' lock; `entry_event_id` is the id of the segment_entered event published
  // for it); the caller saves them with SaveEntries in the transaction that publishes the entry,
  // and calls Entered() once it committed (the report and Observe count the customer from then
  // on, and the sending task is woken).
  std::vector<TriggeredEntry> Entries(const MembershipChange& change, const std::string& customer_id,
                                      const std::string& entry_event_id) const;
  static absl::Status SaveEntries(sql::Connection& c, const std::vector<TriggeredEntry>& entries);
  void Entered(const std::vector<TriggeredEntry>& entries);
  // Called after Entered() saved entries to send (main.cc wakes the task calling SendTriggered).
  void SetOnEntries(std::function<void()> on_entries) { on_entries_ = std::move(on_entries); }
  // Hands the treatment-group entries not yet handed over to broadcast: a batch per campaign,
  // each batch numbered before it is sent and sent with its number as the idempotency key, so a
  // batch retried after a failure or a crash is taken once. Entries of a campaign no longer
  // running are dropped; a batch broadcast refuses for good (RefusedForGood) is kept with the
  // reason and never handed over again. Returns what became of the customers owed; the first
  // other error after trying every batch (UNAVAILABLE: broadcast could not be reached; call
  // again: those batches are tried again).
  absl::StatusOr<TriggeredSends> SendTriggered();

  // Deletes what campaigns hold on a customer (erasure, or merged into another); returns how
  // many rows (memberships and outcomes).
  static absl::StatusOr<int64_t> ForgetCustomer(sql::Connection& c, const std::string& customer_id);
  // What campaigns hold on a customer, for an export: [{"campaign_id", "group", "outcomes"}].
  static absl::StatusOr<std::vector<std::pair<std::string, bool>>> MembershipsOf(sql::Database& db,
                                                                                 const std::string& customer_id);

 private:
  // A running campaign, as Observe and Entries need it.
  struct Running {
    std::string goal_event_type;
    int64_t launched_at_us = 0;
    int64_t window_us = 0;
    Roaring members;  // customer numbers, treatment and control
    // Triggered campaigns: the segment, the control fraction, and each member's latest entry
    // (the attribution window opens with it).
    std::string trigger_segment_id;
    double control_fraction = 0;
    absl::flat_hash_map<CustomerNo, int64_t> entered_at_us;
  };

  absl::StatusOr<internal::CampaignRecord> Load(sql::Connection& c, const std::string& id);
  absl::Status Save(sql::Connection& c, const internal::CampaignRecord& record);
  absl::StatusOr<v1::Campaign> HandOver(internal::CampaignRecord record);
  // Starts following a campaign that is running (the caller holds mu_).
  Running& Track(const internal::CampaignRecord& record);
  // Hands one batch of triggered entries over; the number of customers it held.
  absl::Status SendBatch(const std::string& batch, const std::string& campaign_id,
                         std::vector<std::string> customer_ids, TriggeredSends& sends);

  sql::Database& db_;
  Segments& segments_;
  Features& features_;
  Broadcaster* broadcaster_;
  Clock clock_;
  const Partition partition_;
  mutable std::mutex mu_;  // guards running_
  std::map<std::string, Running> running_;
  std::function<void()> on_entries_;
};

// The API message of a stored campaign.
v1::Campaign ToCampaign(const internal::CampaignRecord& record);
// What broadcast is asked to send for a campaign (without audience or idempotency key).
BroadcastOrder OrderFor(const internal::CampaignRecord& record);

}  // namespace ecrm::segmentation

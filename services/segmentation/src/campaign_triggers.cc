// Campaigns triggered by segment entry: the entries a membership change is for, saved with the
// published entry, and handed to broadcast in numbered batches (campaigns.h).
#include <map>
#include <mutex>

#include "absl/strings/str_cat.h"
#include "campaigns.h"
#include "ecrm/log/log.h"
#include "ecrm/status/macros.h"
#include "ecrm/util/util.h"
#include "uplift.h"

namespace ecrm::segmentation {
namespace {

// Customers per hand-over: one CreateBroadcast each.
constexpr int kBatchSize = 5000;

}  // namespace

bool RefusedForGood(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kNotFound:
    case absl::StatusCode::kOutOfRange:
    case absl::StatusCode::kUnimplemented:
      return true;
    // Unreachable, overloaded, timed out, not allowed, or FAILED_PRECONDITION (an offer not
    // active: the operator activates it, docs/broadcast.md): for now.
    default:
      return false;
  }
}

std::vector<TriggeredEntry> Campaigns::Entries(const MembershipChange& change, const std::string& customer_id,
                                               const std::string& entry_event_id) const {
  std::vector<TriggeredEntry> out;
  if (!change.entered) return out;
  std::lock_guard lock(mu_);
  for (const auto& [id, running] : running_) {
    if (running.trigger_segment_id != change.segment_id) continue;
    out.push_back({absl::StrCat("trigger:", id, ":", entry_event_id), id, customer_id, change.customer,
                   InControl(id, customer_id, running.control_fraction), absl::ToUnixMicros(change.at)});
  }
  return out;
}

absl::Status Campaigns::SaveEntries(sql::Connection& c, const std::vector<TriggeredEntry>& entries) {
  for (const TriggeredEntry& e : entries) {
    // A member's latest entry opens its attribution window.
    ECRM_RETURN_IF_ERROR(c.Execute("INSERT INTO campaign_members (campaign_id, customer_id, control, entered_at) "
                                   "VALUES ($1, $2, $3, $4) ON CONFLICT (campaign_id, customer_id) DO UPDATE SET "
                                   "entered_at = excluded.entered_at",
                                   {e.campaign_id, e.customer_id, e.control ? 1 : 0, e.at_us})
                             .status());
    if (e.control) continue;
    ECRM_RETURN_IF_ERROR(c.Execute("INSERT INTO campaign_sends (id, campaign_id, customer_id, created_at) VALUES "
                                   "($1, $2, $3, $4) ON CONFLICT (id) DO NOTHING",
                                   {e.id, e.campaign_id, e.customer_id, e.at_us})
                             .status());
  }
  return absl::OkStatus();
}

void Campaigns::Entered(const std::vector<TriggeredEntry>& entries) {
  if (entries.empty()) return;
  bool to_send = false;
  {
    std::lock_guard lock(mu_);
    for (const TriggeredEntry& e : entries) {
      auto it = running_.find(e.campaign_id);
      if (it == running_.end()) continue;
      it->second.members.add(e.customer);
      it->second.entered_at_us[e.customer] = e.at_us;
      to_send = to_send || !e.control;
    }
  }
  if (to_send && on_entries_) on_entries_();
}

absl::StatusOr<TriggeredSends> Campaigns::SendTriggered() {
  TriggeredSends sends;
  if (broadcaster_ == nullptr) return sends;
  // Number the entries not in a batch yet: a batch per campaign.
  ECRM_RETURN_IF_ERROR(db_.InTransaction([&](sql::Connection& c) -> absl::Status {
    ECRM_ASSIGN_OR_RETURN(sql::Result rows, c.Execute("SELECT id, campaign_id FROM campaign_sends WHERE batch IS NULL "
                                                      "ORDER BY created_at, id LIMIT $1",
                                                      {kBatchSize}));
    std::map<std::string, std::string> batch_of;  // campaign → its new batch
    for (const sql::Row& row : rows) {
      std::string& batch = batch_of[std::string(row.Text(1))];
      if (batch.empty()) batch = util::NewId("trb_");
      ECRM_RETURN_IF_ERROR(
          c.Execute("UPDATE campaign_sends SET batch = $2 WHERE id = $1", {std::string(row.Text(0)), batch}).status());
    }
    return absl::OkStatus();
  }));
  // Hand over every batch broadcast has not taken yet (new ones, and any a failure left).
  ECRM_ASSIGN_OR_RETURN(sql::Result pending,
                        db_.Execute("SELECT batch, campaign_id, customer_id FROM campaign_sends WHERE batch IS NOT "
                                    "NULL AND broadcast_id IS NULL ORDER BY batch, customer_id"));
  std::map<std::pair<std::string, std::string>, std::vector<std::string>> batches;  // (batch, campaign) → customers
  for (const sql::Row& row : pending) {
    batches[{std::string(row.Text(0)), std::string(row.Text(1))}].emplace_back(row.Text(2));
  }
  absl::Status first_error;
  for (auto& [key, customers] : batches) {
    absl::Status s = SendBatch(key.first, key.second, std::move(customers), sends);
    if (!s.ok() && first_error.ok()) first_error = s;
  }
  if (!first_error.ok()) return first_error;
  return sends;
}

absl::Status Campaigns::SendBatch(const std::string& batch, const std::string& campaign_id,
                                  std::vector<std::string> customer_ids, TriggeredSends& sends) {
  internal::CampaignRecord record;
  {
    ECRM_ASSIGN_OR_RETURN(sql::Lease conn, db_.Acquire());
    ECRM_ASSIGN_OR_RETURN(record, Load(*conn, campaign_id));
  }
  const auto customers = static_cast<int64_t>(customer_ids.size());
  if (record.state() != v1::CAMPAIGN_STATE_RUNNING) {  // "" marks entries dropped
    ECRM_RETURN_IF_ERROR(db_.Execute("UPDATE campaign_sends SET broadcast_id = '' WHERE batch = $1", {batch}).status());
    sends.dropped += customers;
    return absl::OkStatus();
  }
  BroadcastOrder order = OrderFor(record);
  order.idempotency_key = absl::StrCat("campaign:", campaign_id, ":", batch, partition_.Suffix());
  order.customer_ids = std::move(customer_ids);
  absl::StatusOr<std::string> taken = broadcaster_->Send(order);
  if (taken.ok()) {
    ECRM_RETURN_IF_ERROR(
        db_.Execute("UPDATE campaign_sends SET broadcast_id = $2 WHERE batch = $1", {batch, *taken}).status());
    sends.handed_over += customers;
    return absl::OkStatus();
  }
  if (RefusedForGood(taken.status())) {
    log::Error("broadcast refused a campaign's triggered messages for good; they will not be sent",
               {{"campaign_id", campaign_id}, {"batch", batch}, {"customers", customers}, {"error", taken.status()}});
    ECRM_RETURN_IF_ERROR(db_.Execute("UPDATE campaign_sends SET broadcast_id = '', refused = $2 WHERE batch = $1",
                                     {batch, taken.status().ToString()})
                             .status());
    sends.refused += customers;
    return absl::OkStatus();
  }
  return absl::Status(taken.status().code(), absl::StrCat("triggered messages of campaign \"", campaign_id,
                                                          "\" wait for broadcast: ", taken.status().message()));
}

}  // namespace ecrm::segmentation

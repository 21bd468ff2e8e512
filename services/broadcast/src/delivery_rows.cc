#include "delivery_rows.h"

#include <algorithm>
#include <atomic>

#include "ecrm/status/macros.h"
#include "ecrm/util/util.h"

namespace ecrm::broadcast {

absl::StatusOr<DeliveryRow> ReadDelivery(const sql::Row& r) {
  DeliveryRow out;
  v1::Delivery& d = out.delivery;
  d.set_id(std::string(r.Text(0)));
  d.set_customer_id(std::string(r.Text(1)));
  d.set_broadcast_id(std::string(r.Text(2)));
  d.set_campaign_id(std::string(r.Text(3)));
  d.set_purpose(static_cast<common::v1::Purpose>(r.Int(4)));
  d.set_channel(static_cast<common::v1::Channel>(r.Int(5)));
  d.set_state(static_cast<v1::DeliveryState>(r.Int(6)));
  d.set_suppression_reason(static_cast<v1::SuppressionReason>(r.Int(7)));
  d.set_address(std::string(r.Text(8)));
  d.set_subject(std::string(r.Text(9)));
  d.set_attempts(static_cast<int32_t>(r.Int(10)));
  d.set_last_error(std::string(r.Text(11)));
  d.set_provider_message_id(std::string(r.Text(12)));
  *d.mutable_created_at() = util::Ts(r.Int(13));
  if (r.Int(14) != 0) *d.mutable_sent_at() = util::Ts(r.Int(14));
  if (r.Int(15) != 0) *d.mutable_opened_at() = util::Ts(r.Int(15));
  if (r.Int(16) != 0) *d.mutable_clicked_at() = util::Ts(r.Int(16));
  if (d.state() == v1::DELIVERY_STATE_QUEUED) *d.mutable_next_attempt_at() = util::Ts(r.Int(17));
  out.sending = r.Int(18) != 0;
  out.lease_owner = std::string(r.Text(19));
  out.seq = r.Int(21);
  absl::string_view body = r.Text(20);
  if (!out.message.ParseFromArray(body.data(), static_cast<int>(body.size()))) {
    return absl::DataLossError(absl::StrCat("stored delivery ", d.id(), " does not parse"));
  }
  return out;
}

absl::StatusOr<std::vector<std::string>> ClaimableGroups(sql::Connection& c) {
  ECRM_ASSIGN_OR_RETURN(
      sql::Result running,
      c.Execute(absl::StrCat("SELECT id FROM broadcasts WHERE state IN (", v1::BROADCAST_STATE_RUNNING, ", ",
                             v1::BROADCAST_STATE_CANCELLED, ") AND loaded = 1")));
  std::vector<std::string> groups = {""};
  for (sql::Row r : running) groups.emplace_back(r.Text(0));
  return groups;
}

absl::Status InsertDelivery(sql::Connection& c, const DeliveryRow& row, int64_t next_attempt_at_us) {
  const v1::Delivery& d = row.delivery;
  return c
      .Execute(
          "INSERT INTO deliveries (id, customer_id, broadcast_id, campaign_id, purpose, channel, state, "
          "suppression_reason, address, subject, attempts, last_error, provider_message_id, created_at, "
          "sent_at, opened_at, clicked_at, next_attempt_at, lease_until, lease_owner, sending, body) VALUES ($1, "
          "$2, $3, $4, $5, $6, $7, $8, $9, $10, 0, $11, '', $12, 0, 0, 0, $13, 0, '', 0, $14)",
          {d.id(), d.customer_id(), d.broadcast_id(), d.campaign_id(), static_cast<int>(d.purpose()),
           static_cast<int>(d.channel()), static_cast<int>(d.state()), static_cast<int>(d.suppression_reason()),
           d.address(), d.subject(), d.last_error(), util::Micros(d.created_at()), next_attempt_at_us,
           sql::Blob{row.message.SerializeAsString()}})
      .status();
}

absl::Status ProgressChanges::Write(sql::Connection& c) const {
  // Each thread adds to its own shard (of 16): on PostgreSQL a single counter row per state would
  // make concurrent workers wait for each other's commits.
  static std::atomic<int> next_shard{0};
  thread_local const int shard = next_shard.fetch_add(1) % 16;
  for (const auto& [key, n] : changes_) {
    if (n == 0) continue;
    const auto& [broadcast_id, state, reason] = key;
    ECRM_RETURN_IF_ERROR(c.Execute("INSERT INTO broadcast_progress (broadcast_id, state, suppression_reason, shard, n) "
                                   "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (broadcast_id, state, suppression_reason, "
                                   "shard) DO UPDATE SET n = broadcast_progress.n + excluded.n",
                                   {broadcast_id, state, reason, shard, n})
                             .status());
  }
  return absl::OkStatus();
}

infostore::v1::Event MessageEvent(const v1::Delivery& d, absl::string_view kind, int64_t at_us,
                                  absl::string_view detail) {
  infostore::v1::Event e;
  const std::string type = absl::StrCat("message_", kind);
  e.set_event_id(absl::StrCat(type, ":", d.id()));
  e.mutable_customer()->set_customer_id(d.customer_id());
  e.set_type(type);
  *e.mutable_occurred_at() = util::Ts(at_us);
  e.set_touchpoint(common::v1::TOUCHPOINT_MESSAGE);
  auto& props = *e.mutable_properties();
  props["channel"].set_string_value(common::v1::Channel_Name(d.channel()));
  props["delivery_id"].set_string_value(d.id());
  if (!d.campaign_id().empty()) props["campaign_id"].set_string_value(d.campaign_id());
  if (!d.broadcast_id().empty()) props["broadcast_id"].set_string_value(d.broadcast_id());
  if (!detail.empty()) props["detail"].set_string_value(std::string(detail.substr(0, 500)));
  return e;
}

std::string TypedValues(int first, int rows, std::initializer_list<absl::string_view> types) {
  std::string out;
  int p = first;
  for (int r = 0; r < rows; ++r) {
    absl::StrAppend(&out, r ? ", (" : "(");
    bool next = false;
    for (absl::string_view t : types) {
      absl::StrAppend(&out, next ? ", " : "", "CAST($", p++, " AS ", t, ")");
      next = true;
    }
    absl::StrAppend(&out, ")");
  }
  return out;
}

std::string MaskAddress(common::v1::Channel channel, const std::string& address) {
  if (address.empty() || channel == common::v1::CHANNEL_WEB) return address;
  if (channel == common::v1::CHANNEL_EMAIL) {
    const size_t at = address.find('@');
    if (at == std::string::npos || at == 0) return "***";
    return absl::StrCat(address.substr(0, 1), "***", address.substr(at));
  }
  if (address.size() <= 5) return "***";
  return absl::StrCat(address.substr(0, 3), std::string(address.size() - 5, '*'), address.substr(address.size() - 2));
}

}  // namespace ecrm::broadcast

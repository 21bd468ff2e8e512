#include "privacy.h"

#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "delivery_rows.h"
#include "ecrm/status/macros.h"
#include "ecrm/util/util.h"
#include "suppressions.h"

namespace ecrm::broadcast {
namespace {

std::vector<std::string> AllIds(const std::string& id, const google::protobuf::RepeatedPtrField<std::string>& merged) {
  std::vector<std::string> ids = {id};
  ids.insert(ids.end(), merged.begin(), merged.end());
  return ids;
}

absl::Status ValidateCustomerId(const std::string& id) {
  if (id.empty() || id.size() > 128) return util::Invalid("customer_id", "must be 1-128 bytes");
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::string> CustomerData::ExportCustomerData(const privacy::v1::ExportCustomerDataRequest& req) {
  ECRM_RETURN_IF_ERROR(ValidateCustomerId(req.customer_id()));
  std::vector<std::string> deliveries, inbox, suppressions;
  ECRM_ASSIGN_OR_RETURN(sql::Lease conn, db_.Acquire());
  for (const std::string& id : AllIds(req.customer_id(), req.merged_customer_ids())) {
    std::set<std::pair<int, std::string>> addresses;
    ECRM_ASSIGN_OR_RETURN(sql::Result d, conn->Execute(absl::StrCat("SELECT ", kDeliveryColumns,
                                                                    " FROM deliveries WHERE customer_id = $1 ORDER BY "
                                                                    "created_at, id"),
                                                       {id}));
    for (sql::Row row : d) {
      ECRM_ASSIGN_OR_RETURN(DeliveryRow r, ReadDelivery(row));
      if (!r.delivery.address().empty()) addresses.insert({r.delivery.channel(), r.delivery.address()});
      deliveries.push_back(util::ToJson(r.delivery));
    }
    ECRM_ASSIGN_OR_RETURN(sql::Result m, conn->Execute("SELECT delivery_id, subject, html_body, created_at, read_at, "
                                                       "expires_at FROM inbox WHERE customer_id = $1 ORDER BY "
                                                       "created_at, delivery_id",
                                                       {id}));
    for (sql::Row row : m) {
      v1::InboxMessage msg;
      msg.set_delivery_id(std::string(row.Text(0)));
      msg.set_subject(std::string(row.Text(1)));
      msg.set_html_body(std::string(row.Text(2)));
      *msg.mutable_created_at() = util::Ts(row.Int(3));
      if (row.Int(4) != 0) *msg.mutable_read_at() = util::Ts(row.Int(4));
      *msg.mutable_expires_at() = util::Ts(row.Int(5));
      inbox.push_back(util::ToJson(msg));
    }
    auto add_suppressions = [&](const sql::Result& r) {
      for (sql::Row row : r) {
        v1::Suppression s;
        s.set_channel(static_cast<common::v1::Channel>(row.Int(0)));
        s.set_address(std::string(row.Text(1)));
        s.set_customer_id(std::string(row.Text(2)));
        s.set_reason(std::string(row.Text(3)));
        *s.mutable_created_at() = util::Ts(row.Int(4));
        suppressions.push_back(util::ToJson(s));
      }
    };
    ECRM_ASSIGN_OR_RETURN(sql::Result s, conn->Execute("SELECT channel, address, customer_id, reason, created_at FROM "
                                                       "suppressions WHERE customer_id = $1",
                                                       {id}));
    add_suppressions(s);
    for (const auto& [channel, address] : addresses) {
      if (channel == common::v1::CHANNEL_WEB) continue;
      ECRM_ASSIGN_OR_RETURN(sql::Result a, conn->Execute("SELECT channel, address, customer_id, reason, created_at "
                                                         "FROM suppressions WHERE customer_id = '' AND address = $1",
                                                         {address}));
      add_suppressions(a);
    }
  }
  if (deliveries.empty() && inbox.empty() && suppressions.empty()) return std::string("{}");
  return absl::StrCat("{\"deliveries\":[", absl::StrJoin(deliveries, ","), "],\"inbox\":[", absl::StrJoin(inbox, ","),
                      "],\"suppressions\":[", absl::StrJoin(suppressions, ","), "]}");
}

absl::StatusOr<privacy::v1::EraseCustomerDataResponse> CustomerData::EraseCustomerData(
    const privacy::v1::EraseCustomerDataRequest& req) {
  ECRM_RETURN_IF_ERROR(ValidateCustomerId(req.customer_id()));
  privacy::v1::EraseCustomerDataResponse out;
  const int64_t now_us = util::NowMicros();
  ECRM_RETURN_IF_ERROR(db_.InTransaction([&](sql::Connection& c) -> absl::Status {
    out.Clear();
    int64_t deliveries = 0, inbox = 0, suppressions = 0, hashed = 0, caps = 0, events = 0, keys = 0;
    for (const std::string& id : AllIds(req.customer_id(), req.merged_customer_ids())) {
      auto count = [&](absl::string_view sql, int64_t& n) -> absl::Status {
        ECRM_ASSIGN_OR_RETURN(sql::Result r, c.Execute(sql, {id}));
        n += r.rows_affected();
        return absl::OkStatus();
      };
      ECRM_ASSIGN_OR_RETURN(sql::Result a, c.Execute("SELECT DISTINCT channel, address FROM deliveries WHERE "
                                                     "customer_id = $1 AND address <> ''",
                                                     {id}));
      for (sql::Row row : a) {
        const auto channel = static_cast<common::v1::Channel>(row.Int(0));
        if (channel == common::v1::CHANNEL_WEB) continue;
        const std::string address(row.Text(1));
        // The plain entry goes; a hashed one keeps the address from being messaged again.
        ECRM_ASSIGN_OR_RETURN(sql::Result d, c.Execute("DELETE FROM suppressions WHERE customer_id = '' AND address "
                                                       "= $1",
                                                       {address}));
        suppressions += d.rows_affected();
        ECRM_ASSIGN_OR_RETURN(sql::Result h,
                              c.Execute("INSERT INTO suppressions (channel, address, customer_id, reason, created_at) "
                                        "VALUES ($1, $2, '', 'erased', $3) ON CONFLICT (channel, address, customer_id) "
                                        "DO NOTHING",
                                        {static_cast<int>(channel), HashedAddress(address), now_us}));
        hashed += h.rows_affected();
      }
      ECRM_RETURN_IF_ERROR(count("DELETE FROM suppressions WHERE customer_id = $1", suppressions));
      ECRM_RETURN_IF_ERROR(count("DELETE FROM inbox WHERE customer_id = $1", inbox));
      {
        // Erased rows leave their broadcasts' progress counts too.
        ECRM_ASSIGN_OR_RETURN(sql::Result r, c.Execute("DELETE FROM deliveries WHERE customer_id = $1 RETURNING "
                                                       "broadcast_id, state, suppression_reason",
                                                       {id}));
        ProgressChanges progress;
        for (sql::Row row : r) {
          progress.Add(std::string(row.Text(0)), static_cast<int>(row.Int(1)), static_cast<int>(row.Int(2)), -1);
        }
        deliveries += static_cast<int64_t>(r.size());
        ECRM_RETURN_IF_ERROR(progress.Write(c));
      }
      ECRM_RETURN_IF_ERROR(count("DELETE FROM cap_sends WHERE customer_id = $1", caps));
      ECRM_RETURN_IF_ERROR(count("DELETE FROM cap_locks WHERE customer_id = $1", caps));
      // Undelivered events would re-create data about the person in the information store.
      ECRM_RETURN_IF_ERROR(count("DELETE FROM outbox WHERE customer_id = $1", events));
      // SendMessage's stored responses name the customer and their address.
      ECRM_RETURN_IF_ERROR(count("DELETE FROM idempotency_keys WHERE customer_id = $1", keys));
    }
    auto item = [&](const char* kind, int64_t n, const char* action) {
      privacy::v1::ErasedItem* i = out.add_items();
      i->set_kind(kind);
      i->set_count(n);
      i->set_action(action);
    };
    item("deliveries", deliveries, "deleted");
    item("inbox_messages", inbox, "deleted");
    item("suppressions", suppressions, "deleted");
    item("erased_address_suppressions", hashed, "kept as a SHA-256 hash");
    item("frequency_cap_records", caps, "deleted");
    item("undelivered_events", events, "deleted");
    item("idempotency_records", keys, "deleted");
    return absl::OkStatus();
  }));
  for (absl::string_view table : {"deliveries", "inbox", "suppressions", "cap_sends", "idempotency_keys"}) {
    (void)sql::Vacuum(db_, table);
  }
  out.set_engine("broadcast");
  *out.mutable_erased_at() = util::Ts(now_us);
  return out;
}

}  // namespace ecrm::broadcast

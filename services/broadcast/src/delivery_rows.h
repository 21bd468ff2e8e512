// Delivery rows as the broadcast engine's classes share them (not an API): the columns, the
// conversion to the API's Delivery, the events a delivery raises for the information store.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "ecrm/broadcast/internal/record.pb.h"
#include "ecrm/broadcast/v1/broadcast.pb.h"
#include "ecrm/infostore/v1/infostore.pb.h"
#include "ecrm/sql/sql.h"
#include "ecrm/util/page_token.h"

namespace ecrm::broadcast {

// The columns ReadDelivery reads, in its order.
inline constexpr absl::string_view kDeliveryColumns =
    "id, customer_id, broadcast_id, campaign_id, purpose, channel, state, suppression_reason, address, subject, "
    "attempts, last_error, provider_message_id, created_at, sent_at, opened_at, clicked_at, next_attempt_at, sending, "
    "lease_owner, body";

struct DeliveryRow {
  v1::Delivery delivery;  // with the full address
  internal::MessageRecord message;
  bool sending = false;
  std::string lease_owner;
};

absl::StatusOr<DeliveryRow> ReadDelivery(const sql::Row& r);

// Inserts a new delivery row (state, reason and times from `row.delivery`).
absl::Status InsertDelivery(sql::Connection& c, const DeliveryRow& row, int64_t next_attempt_at_us);

// message_<kind> for the information store: event id "message_<kind>:<delivery id>", so a retry
// never counts twice; properties channel, campaign_id, delivery_id (and broadcast_id, detail).
infostore::v1::Event MessageEvent(const v1::Delivery& d, absl::string_view kind, int64_t at_us,
                                  absl::string_view detail = "");

// `rows` rows of typed parameters, numbered from $first: "(CAST($1 AS TEXT), CAST($2 AS INTEGER)),
// (…)" for "UPDATE … FROM (VALUES …) AS v", whose columns both dialects name column1, column2, …
// (PostgreSQL needs the types; SQLite takes them as affinities).
std::string TypedValues(int first, int rows, std::initializer_list<absl::string_view> types);

// j***@example.com, +44*******89: what listings show of an address.
std::string MaskAddress(common::v1::Channel channel, const std::string& address);

// Row lock for read-modify-write on PostgreSQL; SQLite's write transaction already excludes
// every other writer.
inline absl::string_view ForUpdate(const sql::Connection& c) {
  return c.dialect() == sql::Dialect::kPostgres ? " FOR UPDATE" : "";
}

inline bool FinalState(v1::DeliveryState s) { return s != v1::DELIVERY_STATE_QUEUED; }

// Ends a listing's query with one page, newest first: the rows after `after` (a page token's
// cursor: created_at, id) in (created_at, id) descending order, `size` + 1 of them (the extra
// one says whether there is a next page).
inline void AppendNewestFirstPage(std::string& sql, std::vector<sql::Value>& params,
                                  const std::optional<util::PageCursor>& after, int size) {
  if (after) {
    params.emplace_back(after->number);
    params.emplace_back(after->text);
    absl::StrAppend(&sql, " AND (created_at < $", params.size() - 1, " OR (created_at = $", params.size() - 1,
                    " AND id < $", params.size(), "))");
  }
  params.emplace_back(size + 1);
  absl::StrAppend(&sql, " ORDER BY created_at DESC, id DESC LIMIT $", params.size());
}

}  // namespace ecrm::broadcast

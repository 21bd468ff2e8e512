// Delivery rows as the broadcast engine's classes share them (not an API): the columns, the
// conversion to the API's Delivery, the events a delivery raises for the information store.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <tuple>
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
    "lease_owner, body, seq";

struct DeliveryRow {
  v1::Delivery delivery;  // with the full address
  internal::MessageRecord message;
  bool sending = false;
  std::string lease_owner;
  int64_t seq = 0;  // the row's key in insertion order (workers address rows by it)
};

// Changes to broadcasts' progress counts (broadcast_progress: rows by state and suppression
// reason), gathered while a transaction changes delivery rows and written by Write in that same
// transaction, so that GetBroadcast reads exact counts without counting rows. Rows of no
// broadcast (SendMessage's) are not counted.
class ProgressChanges {
 public:
  void Add(const std::string& broadcast_id, int state, int reason, int64_t n) {
    if (!broadcast_id.empty() && n != 0) changes_[{broadcast_id, state, reason}] += n;
  }
  void Move(const std::string& broadcast_id, int from_state, int from_reason, int to_state, int to_reason) {
    if (from_state == to_state && from_reason == to_reason) return;
    Add(broadcast_id, from_state, from_reason, -1);
    Add(broadcast_id, to_state, to_reason, 1);
  }
  // Adds the changes to this thread's shard of the counters (in key order: two transactions
  // never wait for each other's counter rows crosswise).
  absl::Status Write(sql::Connection& c) const;

 private:
  std::map<std::tuple<std::string, int, int>, int64_t> changes_;
};

// The groups of deliveries workers claim from, each walked alone on deliveries_due (state,
// broadcast_id, next_attempt_at): '' (messages of no broadcast) and each loaded broadcast that
// runs or is being cancelled. A paused broadcast, or one still loading, is not claimed from.
absl::StatusOr<std::vector<std::string>> ClaimableGroups(sql::Connection& c);

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

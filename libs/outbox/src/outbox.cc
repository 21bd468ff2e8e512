#include "ecrm/outbox/outbox.h"

#include "absl/strings/str_cat.h"
#include "ecrm/status/macros.h"
#include "ecrm/util/util.h"

namespace ecrm::outbox {

absl::Status Outbox::Add(sql::Connection& c, const infostore::v1::Event& event) {
  return c
      .Execute(
          "INSERT INTO outbox (event_id, customer_id, body, created_at) VALUES ($1, $2, $3, $4) ON CONFLICT DO "
          "NOTHING",
          {event.event_id(), event.customer().customer_id(), sql::Blob{event.SerializeAsString()}, util::NowMicros()})
      .status();
}

absl::Status Outbox::AddMany(sql::Connection& c, const std::vector<infostore::v1::Event>& events) {
  static const std::vector<std::string> kColumns = {"event_id", "customer_id", "body", "created_at"};
  const int64_t now_us = util::NowMicros();
  std::vector<sql::Value> values;
  values.reserve(4 * events.size());
  for (const infostore::v1::Event& e : events) {
    values.emplace_back(sql::TextRef{e.event_id()});
    values.emplace_back(sql::TextRef{e.customer().customer_id()});
    values.emplace_back(sql::Blob{e.SerializeAsString()});
    values.emplace_back(now_us);
  }
  return c.InsertBatch("outbox", kColumns, values, "ON CONFLICT DO NOTHING", 250).status();
}

absl::StatusOr<std::vector<OutboxEvent>> Outbox::PendingEvents(int limit) {
  ECRM_ASSIGN_OR_RETURN(
      sql::Result r,
      db_.Execute("SELECT seq, body, created_at FROM outbox WHERE failed IS NULL ORDER BY seq LIMIT $1", {limit}));
  std::vector<OutboxEvent> out;
  out.reserve(r.size());
  for (sql::Row row : r) {
    const absl::string_view body = row.Text(1);
    OutboxEvent e{.seq = row.Int(0), .created_at_us = row.Int(2)};
    if (!e.event.ParseFromArray(body.data(), static_cast<int>(body.size()))) {
      return absl::DataLossError("stored outbox event does not parse");
    }
    out.push_back(std::move(e));
  }
  return out;
}

absl::Status Outbox::MarkDelivered(const std::vector<int64_t>& seqs) {
  if (seqs.empty()) return absl::OkStatus();
  std::vector<sql::Value> params(seqs.begin(), seqs.end());
  ECRM_ASSIGN_OR_RETURN(sql::Lease conn, db_.Acquire());
  return conn
      ->Execute(
          absl::StrCat("DELETE FROM outbox WHERE seq IN (", util::Placeholders(1, static_cast<int>(seqs.size())), ")"),
          params)
      .status();
}

absl::Status Outbox::MarkFailed(int64_t seq, absl::string_view error) {
  return db_.Execute("UPDATE outbox SET failed = $2 WHERE seq = $1", {seq, error.substr(0, 1000)}).status();
}

absl::StatusOr<int64_t> Outbox::PendingCount() {
  ECRM_ASSIGN_OR_RETURN(sql::Result r, db_.Execute("SELECT COUNT(*) FROM outbox WHERE failed IS NULL"));
  return r.front().Int(0);
}

}  // namespace ecrm::outbox

#include "change_feed.h"

#include "absl/strings/str_cat.h"
#include "ecrm/status/macros.h"
#include "ecrm/util/util.h"

namespace ecrm::infostore {

using util::NowMicros;
using util::Ts;

void ChangeFeed::Append(Pending& pending, v1::ChangeKind kind, const v1::Customer& customer,
                        const v1::MergeRecord* merge) const {
  v1::Change& change = pending.emplace_back();
  change.set_kind(kind);
  change.set_customer_id(customer.id());
  change.set_customer_version(customer.version());
  if (kind != v1::CHANGE_KIND_EVENT) *change.mutable_customer() = customer;
  if (merge != nullptr) *change.mutable_merge() = *merge;
}

void ChangeFeed::AppendEvent(Pending& pending, const std::string& customer_id) const {
  v1::Change& change = pending.emplace_back();
  change.set_kind(v1::CHANGE_KIND_EVENT);
  change.set_customer_id(customer_id);
}

absl::Status ChangeFeed::Flush(sql::Connection& c, Pending& pending, const std::vector<std::string>* tails) const {
  if (pending.empty()) return absl::OkStatus();
  if (c.dialect() == sql::Dialect::kPostgres) {
    // Sequences are drawn at insert, not at commit: feed writers are serialised until commit
    // so a consumer never sees sequence N+1 before N. Taken last, after every row lock the
    // transaction needs, so holding it never waits on another writer (no deadlock cycle).
    ECRM_RETURN_IF_ERROR(c.Execute("SELECT pg_advisory_xact_lock(70101)").status());
  }
  const int64_t now = NowMicros();
  std::vector<sql::Value> values;
  values.reserve(pending.size() * 4);
  for (size_t i = 0; i < pending.size(); ++i) {
    v1::Change& change = pending[i];
    // The customer id and commit time have columns, so the bytes leave them to Read.
    std::string customer_id;
    customer_id.swap(*change.mutable_customer_id());
    std::string bytes = change.SerializeAsString();
    customer_id.swap(*change.mutable_customer_id());
    values.emplace_back(static_cast<int>(change.kind()));
    values.emplace_back(sql::TextRef{change.customer_id()});  // `pending` outlives the insert
    values.emplace_back(now);
    if (tails != nullptr && i < tails->size()) bytes += (*tails)[i];
    values.emplace_back(sql::Blob{std::move(bytes)});
  }
  static const std::vector<std::string> kColumns = {"kind", "customer_id", "committed_at", "change"};
  ECRM_RETURN_IF_ERROR(c.InsertBatch("changes", kColumns, values).status());
  pending.clear();
  return absl::OkStatus();
}

absl::StatusOr<int64_t> ChangeFeed::Scrub(sql::Connection& c, const std::string& customer_id) const {
  v1::Change scrubbed;
  scrubbed.set_kind(v1::CHANGE_KIND_ERASE);
  scrubbed.set_customer_id(customer_id);
  ECRM_ASSIGN_OR_RETURN(sql::Result r, c.Execute("UPDATE changes SET change = $1 WHERE customer_id = $2",
                                                 {sql::Blob{scrubbed.SerializeAsString()}, customer_id}));
  return r.rows_affected();
}

absl::StatusOr<std::vector<v1::Change>> ChangeFeed::Read(int64_t after, int limit) {
  ECRM_ASSIGN_OR_RETURN(sql::Result r, db_.Execute("SELECT sequence, customer_id, committed_at, change FROM changes "
                                                   "WHERE sequence > $1 ORDER BY sequence LIMIT $2",
                                                   {after, limit}));
  std::vector<v1::Change> out;
  out.reserve(r.size());
  for (sql::Row row : r) {
    v1::Change& ch = out.emplace_back();
    const absl::string_view bytes = row.Text(3);
    if (!ch.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
      return absl::DataLossError(absl::StrCat("change ", row.Int(0), " is unreadable"));
    }
    ch.set_sequence(row.Int(0));
    ch.set_customer_id(std::string(row.Text(1)));
    *ch.mutable_committed_at() = Ts(row.Int(2));
    if (ch.has_event()) ch.mutable_event()->set_customer_id(ch.customer_id());
  }
  return out;
}

absl::StatusOr<int64_t> ChangeFeed::Prune(absl::Time before) {
  // committed_at has no index (every event writes a change; an index would slow ingestion), so
  // the first change to keep is found by walking the sequence from the oldest change: only what
  // is old enough to go is read. A single DELETE … WHERE committed_at < … scanned the whole
  // feed holding SQLite's write lock: a stall of seconds for every writer on a 10M-change feed.
  ECRM_ASSIGN_OR_RETURN(sql::Result young,
                        db_.Execute("SELECT sequence FROM changes WHERE committed_at >= $1 ORDER BY sequence LIMIT 1",
                                    {absl::ToUnixMicros(before)}));
  int64_t keep_from = 0;
  if (!young.empty()) {
    keep_from = young.front().Int(0);
  } else {
    ECRM_ASSIGN_OR_RETURN(auto bounds, Bounds());
    keep_from = bounds.second;  // the newest change always stays: it tells a consumer where the feed is
  }
  return db_.DeleteInBatches("changes", "sequence", "sequence < $1", {keep_from});
}

absl::StatusOr<std::pair<int64_t, int64_t>> ChangeFeed::Bounds() {
  ECRM_ASSIGN_OR_RETURN(sql::Result r, db_.Execute("SELECT MIN(sequence), MAX(sequence) FROM changes"));
  return std::make_pair(r.front().Int(0), r.front().Int(1));
}

}  // namespace ecrm::infostore

// Erasure and export of one person's data (this engine's part of a data-subject request),
// and the check that refuses to re-create an erased person's identifiers.
#include <algorithm>
#include <limits>
#include <map>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "customer_store.h"
#include "ecrm/log/log.h"
#include "ecrm/status/macros.h"
#include "store_helpers.h"

namespace ecrm::infostore {
namespace {

std::string IdentifierHash(const common::v1::Identifier& id) {
  return Sha256Hex(absl::StrCat("ecrm-erased:", static_cast<int>(id.type()), "|", id.source(), "|", id.value()));
}

}  // namespace

absl::Status CustomerStore::CheckNotErased(sql::Connection& c, const common::v1::Identifier& id,
                                           absl::string_view field) {
  ECRM_ASSIGN_OR_RETURN(sql::Result r,
                        c.Execute("SELECT 1 FROM erased_identifiers WHERE hash = $1", {IdentifierHash(id)}));
  if (!r.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat(field, ": this identifier belonged to a person whose data was erased; it is not re-created"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::optional<privacy::v1::EraseCustomerDataResponse>> CustomerStore::FindErasure(
    const std::string& request_id) {
  ECRM_ASSIGN_OR_RETURN(sql::Result r, db_.Execute("SELECT receipt FROM erasures WHERE request_id = $1", {request_id}));
  if (r.empty()) return std::nullopt;
  privacy::v1::EraseCustomerDataResponse receipt;
  if (!receipt.ParseFromString(std::string(r.front().Text(0)))) return absl::DataLossError("unreadable receipt");
  return receipt;
}

absl::StatusOr<std::string> CustomerStore::ExportLocal(const std::string& customer_id) {
  ECRM_ASSIGN_OR_RETURN(sql::Lease conn, db_.Acquire());
  common::v1::CustomerRef ref;
  ref.set_customer_id(customer_id);
  bool found = false;
  ECRM_ASSIGN_OR_RETURN(std::string id, ResolveId(*conn, ref, &found));
  if (!found) return std::string("{}");
  ECRM_ASSIGN_OR_RETURN(Loaded l, Load(*conn, id, false));
  std::vector<std::string> members = {id};
  members.insert(members.end(), l.record.customer().merged_ids().begin(), l.record.customer().merged_ids().end());
  std::vector<std::string> history, events, merges;
  for (const std::string& member : members) {
    ECRM_ASSIGN_OR_RETURN(
        sql::Result h,
        conn->Execute("SELECT change FROM consent_history WHERE customer_id = $1 ORDER BY id", {member}));
    for (sql::Row row : h) {
      v1::ConsentChange change;
      if (change.ParseFromString(std::string(row.Text(0)))) history.push_back(util::ToJson(change));
    }
    ECRM_ASSIGN_OR_RETURN(sql::Result m, conn->Execute("SELECT m.record FROM merges m JOIN merge_members mm "
                                                       "ON mm.merge_id = m.merge_id WHERE mm.customer_id = $1",
                                                       {member}));
    for (sql::Row row : m) {
      v1::MergeRecord merge;
      if (merge.ParseFromString(std::string(row.Text(0)))) merges.push_back(util::ToJson(merge));
    }
  }
  ECRM_ASSIGN_OR_RETURN(sql::Result ev, conn->Execute(absl::StrCat("SELECT ", kStoredEventColumns,
                                                                   " FROM events WHERE customer_id = $1 "
                                                                   "ORDER BY occurred_at"),
                                                      {id}));
  for (sql::Row row : ev) {
    absl::StatusOr<v1::Event> e = StoredEvent(row, 0);
    if (e.ok()) events.push_back(util::ToJson(*e));
  }
  std::sort(merges.begin(), merges.end());
  merges.erase(std::unique(merges.begin(), merges.end()), merges.end());
  return absl::StrCat("{\"customer\":", util::ToJson(l.record.customer()), ",\"consent_history\":[",
                      absl::StrJoin(history, ","), "],\"events\":[", absl::StrJoin(events, ","), "],\"merges\":[",
                      absl::StrJoin(merges, ","), "]}");
}

absl::StatusOr<privacy::v1::EraseCustomerDataResponse> CustomerStore::EraseLocal(const std::string& customer_id,
                                                                                 const std::string& reason,
                                                                                 const std::string& request_id) {
  if (customer_id.empty()) return Invalid("customer_id", "is required");
  privacy::v1::EraseCustomerDataResponse receipt;
  std::vector<std::string> gone;
  ECRM_RETURN_IF_ERROR(db_.InTransaction([&](sql::Connection& c) -> absl::Status {
    ChangeFeed::Pending pending;
    receipt.Clear();
    gone.clear();
    receipt.set_engine("infostore");
    if (!request_id.empty()) {
      ECRM_ASSIGN_OR_RETURN(sql::Result done,
                            c.Execute("SELECT receipt FROM erasures WHERE request_id = $1", {request_id}));
      if (!done.empty()) {
        receipt.ParseFromString(std::string(done.front().Text(0)));
        return absl::OkStatus();
      }
    }
    const int64_t now = NowMicros();
    *receipt.mutable_erased_at() = Ts(now);
    common::v1::CustomerRef ref;
    ref.set_customer_id(customer_id);
    bool found = false;
    ECRM_ASSIGN_OR_RETURN(std::string id, ResolveId(c, ref, &found));
    std::map<std::string, int64_t> counts;
    if (found) {
      ECRM_ASSIGN_OR_RETURN(Loaded l, LoadLive(c, id));
      std::vector<std::string> members = {id};
      members.insert(members.end(), l.record.customer().merged_ids().begin(), l.record.customer().merged_ids().end());
      for (const auto& ident : l.record.customer().identifiers()) {
        ECRM_RETURN_IF_ERROR(c.Execute("INSERT INTO erased_identifiers (hash, erased_at) VALUES ($1, $2) "
                                       "ON CONFLICT (hash) DO NOTHING",
                                       {IdentifierHash(ident), now})
                                 .status());
      }
      auto count = [&](const std::string& kind, absl::StatusOr<sql::Result> r) -> absl::Status {
        if (!r.ok()) return r.status();
        counts[kind] += r->rows_affected();
        return absl::OkStatus();
      };
      ECRM_RETURN_IF_ERROR(count("identifiers", c.Execute("DELETE FROM identifiers WHERE customer_id = $1", {id})));
      ECRM_RETURN_IF_ERROR(count("events", c.Execute("DELETE FROM events WHERE customer_id = $1", {id})));
      for (const std::string& member : members) {
        ECRM_RETURN_IF_ERROR(count("events", c.Execute("DELETE FROM events WHERE recorded_for = $1", {member})));
        ECRM_RETURN_IF_ERROR(
            count("consent_history", c.Execute("DELETE FROM consent_history WHERE customer_id = $1", {member})));
        ECRM_ASSIGN_OR_RETURN(sql::Result merges,
                              c.Execute("SELECT merge_id FROM merge_members WHERE customer_id = $1", {member}));
        for (sql::Row row : merges) {
          std::string merge_id(row.Text(0));
          ECRM_RETURN_IF_ERROR(count("merges", c.Execute("DELETE FROM merges WHERE merge_id = $1", {merge_id})));
          ECRM_RETURN_IF_ERROR(c.Execute("DELETE FROM merge_members WHERE merge_id = $1", {merge_id}).status());
        }
        ECRM_RETURN_IF_ERROR(count("customers", c.Execute("DELETE FROM customers WHERE id = $1", {member})));
        // A retried upsert then runs again and is refused: its identifiers are flagged erased.
        ECRM_RETURN_IF_ERROR(
            count("idempotency_keys", c.Execute("DELETE FROM idempotency_keys WHERE customer_id = $1", {member})));
        // Erased tombstones replace every past feed payload about them.
        ECRM_ASSIGN_OR_RETURN(int64_t scrubbed, feed_.Scrub(c, member));
        counts["feed entries scrubbed"] += scrubbed;
        gone.push_back(member);
      }
      v1::Customer tombstone;
      tombstone.set_id(id);
      tombstone.set_version(l.record.customer().version() + 1);
      feed_.Append(pending, v1::CHANGE_KIND_ERASE, tombstone);
    }
    for (const auto& [kind, n] : counts) {
      privacy::v1::ErasedItem* item = receipt.add_items();
      item->set_kind(kind);
      item->set_count(n);
      item->set_action(kind == "feed entries scrubbed" ? "pseudonymised" : "deleted");
    }
    if (!request_id.empty()) {
      ECRM_RETURN_IF_ERROR(c.Execute("INSERT INTO erasures (request_id, erased_at, receipt) VALUES ($1, $2, $3)",
                                     {request_id, now, sql::Blob{receipt.SerializeAsString()}})
                               .status());
    }
    return feed_.Flush(c, pending);
  }));
  if (!gone.empty()) feed_.NotifyCommitted();
  if (cache_ != nullptr) {  // tombstones no later fill can outrank, in one round trip
    std::vector<cache::ProfileWrite> tombstones;
    for (const std::string& id : gone) tombstones.push_back({id, std::numeric_limits<int64_t>::max() / 2, "", true});
    cache_->Write(tombstones);
  }
  if (!gone.empty()) {  // PostgreSQL: the deleted and scrubbed row versions leave the pages now
    for (absl::string_view table : {"customers", "identifiers", "events", "consent_history", "merges", "merge_members",
                                    "changes", "idempotency_keys"}) {
      // Only the identifiers' index holds personal data (the values) in its keys.
      if (absl::Status s = sql::Vacuum(db_, table, /*index_cleanup=*/table == "identifiers"); !s.ok()) {
        log::Warn("VACUUM after an erasure failed; autovacuum will remove the erased rows",
                  {{"table", table}, {"error", s}});
      }
    }
  }
  // The audit trail keeps ids and counts, never the erased data.
  int64_t items = 0;
  for (const auto& item : receipt.items()) items += item.count();
  log::Info("customer erased",
            {{"customer_id", customer_id}, {"reason", reason}, {"request_id", request_id}, {"records", items}});
  return receipt;
}

}  // namespace ecrm::infostore

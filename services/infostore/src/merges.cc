// Merges: MergeInto (the database side of a merge; survivorship.h decides what survives),
// MergeCustomers, ListMerges and UnmergeCustomers.
#include <algorithm>
#include <limits>
#include <set>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "customer_store.h"
#include "ecrm/status/macros.h"
#include "ecrm/util/page_token.h"
#include "identifiers.h"
#include "store_helpers.h"
#include "survivorship.h"

namespace ecrm::infostore {

using internal::CustomerRecord;

absl::StatusOr<v1::MergeRecord> CustomerStore::MergeInto(sql::Connection& c, CustomerRecord& survivor,
                                                         std::vector<CustomerRecord> others, const std::string& reason,
                                                         std::vector<v1::Customer>* merged) {
  const int64_t now = NowMicros();
  internal::MergeBeforeImages before;
  *before.add_records() = survivor;
  for (const CustomerRecord& o : others) *before.add_records() = o;

  const v1::Customer& s = survivor.customer();
  for (const v1::ConsentChange& change : MergeRecords(rules_, survivor, others)) {
    ECRM_RETURN_IF_ERROR(
        c.Execute("INSERT INTO consent_history (customer_id, channel, purpose, decided_at, change) "
                  "VALUES ($1, $2, $3, $4, $5)",
                  {s.id(), static_cast<int>(change.consent().channel()), static_cast<int>(change.consent().purpose()),
                   now, sql::Blob{change.SerializeAsString()}})
            .status());
  }
  std::vector<const CustomerRecord*> all = {&survivor};
  for (const CustomerRecord& o : others) all.push_back(&o);

  v1::MergeRecord record;
  record.set_merge_id(NewId("m_"));
  record.set_survivor_id(s.id());
  record.set_reason(reason);
  *record.mutable_merged_at() = Ts(now);
  for (CustomerRecord& o : others) {
    const std::string& id = o.customer().id();
    record.add_merged_ids(id);
    ECRM_RETURN_IF_ERROR(
        c.Execute("UPDATE identifiers SET customer_id = $1 WHERE customer_id = $2", {s.id(), id}).status());
    ECRM_RETURN_IF_ERROR(c.Execute("UPDATE events SET customer_id = $1 WHERE customer_id = $2", {s.id(), id}).status());
    ECRM_RETURN_IF_ERROR(c.Execute("UPDATE customers SET merged_into = $1 WHERE id = $2", {s.id(), id}).status());
    ECRM_RETURN_IF_ERROR(Save(c, o, false));  // bumps its version so its cache tombstone outranks old fills
    merged->push_back(o.customer());
  }
  for (const CustomerRecord* r : all) {
    ECRM_RETURN_IF_ERROR(c.Execute("INSERT INTO merge_members (merge_id, customer_id) VALUES ($1, $2)",
                                   {record.merge_id(), r->customer().id()})
                             .status());
  }
  ECRM_RETURN_IF_ERROR(c.Execute("INSERT INTO merges (merge_id, survivor_id, merged_at, record, before_images) "
                                 "VALUES ($1, $2, $3, $4, $5)",
                                 {record.merge_id(), s.id(), now, sql::Blob{record.SerializeAsString()},
                                  sql::Blob{before.SerializeAsString()}})
                           .status());
  return record;
}

absl::StatusOr<v1::MergeCustomersResponse> CustomerStore::Merge(const v1::MergeCustomersRequest& request) {
  std::set<std::string> unique(request.customer_ids().begin(), request.customer_ids().end());
  if (unique.size() < 2) return Invalid("customer_ids", "give at least two different customers");
  if (unique.size() > 20) return Invalid("customer_ids", "at most 20 per merge");
  v1::MergeCustomersResponse out;
  std::vector<v1::Customer> written, gone;
  ECRM_RETURN_IF_ERROR(db_.InTransaction([&](sql::Connection& c) -> absl::Status {
    ChangeFeed::Pending pending;
    written.clear();
    gone.clear();
    std::vector<std::string> live;
    for (const std::string& requested : unique) {
      common::v1::CustomerRef ref;
      ref.set_customer_id(requested);
      bool found = false;
      ECRM_ASSIGN_OR_RETURN(std::string id, ResolveId(c, ref, &found));
      if (!found) return absl::NotFoundError(absl::StrCat("customer_ids: customer \"", requested, "\" does not exist"));
      live.push_back(std::move(id));  // ids already merged together are locked once
    }
    ECRM_ASSIGN_OR_RETURN(auto locked, LoadLiveInOrder(c, live));
    std::vector<CustomerRecord> records;
    for (auto& [id, record] : locked) records.push_back(std::move(record));
    if (records.size() < 2) return absl::FailedPreconditionError("customer_ids: these customers are already merged");
    std::sort(records.begin(), records.end(), [](const CustomerRecord& a, const CustomerRecord& b) {
      int64_t ta = Micros(a.customer().created_at()), tb = Micros(b.customer().created_at());
      return ta != tb ? ta < tb : a.customer().id() < b.customer().id();
    });
    CustomerRecord survivor = records.front();
    std::vector<CustomerRecord> others(records.begin() + 1, records.end());
    ECRM_ASSIGN_OR_RETURN(
        v1::MergeRecord merge,
        MergeInto(c, survivor, std::move(others), request.reason().empty() ? "manual" : request.reason(), &gone));
    ECRM_RETURN_IF_ERROR(Save(c, survivor, false));
    feed_.Append(pending, v1::CHANGE_KIND_MERGE, survivor.customer(), &merge);
    *out.mutable_survivor() = survivor.customer();
    *out.mutable_merge() = merge;
    written.push_back(survivor.customer());
    return feed_.Flush(c, pending);
  }));
  CacheAfterCommit(written, gone);
  return out;
}

absl::StatusOr<v1::ListMergesResponse> CustomerStore::ListMerges(const v1::ListMergesRequest& request) {
  if (request.customer_id().empty()) return Invalid("customer_id", "is required");
  int limit = request.page_size() <= 0 ? 100 : std::min(request.page_size(), 1000);
  ECRM_ASSIGN_OR_RETURN(std::optional<util::PageCursor> cursor,
                        util::DecodePageToken("ListMerges", request.page_token()));
  const int64_t before = cursor ? cursor->number : std::numeric_limits<int64_t>::max();
  ECRM_ASSIGN_OR_RETURN(sql::Result r,
                        db_.Execute("SELECT m.merged_at, m.record FROM merges m JOIN merge_members mm "
                                    "ON mm.merge_id = m.merge_id WHERE mm.customer_id = $1 AND m.merged_at < $2 "
                                    "ORDER BY m.merged_at DESC LIMIT $3",
                                    {request.customer_id(), before, limit + 1}));
  v1::ListMergesResponse out;
  for (size_t i = 0; i < r.size() && static_cast<int>(i) < limit; ++i) {
    out.add_merges()->ParseFromString(std::string(r.row(i).Text(1)));
  }
  if (static_cast<int>(r.size()) > limit)
    out.set_next_page_token(util::EncodePageToken("ListMerges", {r.row(limit - 1).Int(0), ""}));
  return out;
}

absl::StatusOr<v1::UnmergeCustomersResponse> CustomerStore::Unmerge(const v1::UnmergeCustomersRequest& request) {
  if (request.merge_id().empty()) return Invalid("merge_id", "is required");
  v1::UnmergeCustomersResponse out;
  std::vector<v1::Customer> written;
  ECRM_RETURN_IF_ERROR(db_.InTransaction([&](sql::Connection& c) -> absl::Status {
    ChangeFeed::Pending pending;
    out.Clear();
    written.clear();
    ECRM_ASSIGN_OR_RETURN(sql::Result m, c.Execute("SELECT survivor_id, merged_at, unmerged_at, record, before_images "
                                                   "FROM merges WHERE merge_id = $1",
                                                   {request.merge_id()}));
    if (m.empty())
      return absl::NotFoundError(absl::StrCat("merge_id: merge \"", request.merge_id(), "\" does not exist"));
    if (!m.front().IsNull(2)) return absl::FailedPreconditionError("merge_id: this merge was already undone");
    const std::string survivor_id(m.front().Text(0));
    const int64_t merged_at = m.front().Int(1);
    v1::MergeRecord record;
    internal::MergeBeforeImages before;
    if (!record.ParseFromString(std::string(m.front().Text(3))) ||
        !before.ParseFromString(std::string(m.front().Text(4)))) {
      return absl::DataLossError("unreadable merge record");
    }
    // A later merge that touched any of these customers must be undone first.
    for (const CustomerRecord& r : before.records()) {
      ECRM_ASSIGN_OR_RETURN(
          sql::Result later,
          c.Execute("SELECT m.merge_id FROM merges m JOIN merge_members mm ON mm.merge_id = m.merge_id "
                    "WHERE mm.customer_id = $1 AND m.merged_at > $2 AND m.unmerged_at IS NULL",
                    {r.customer().id(), merged_at}));
      if (!later.empty()) {
        return absl::FailedPreconditionError(
            absl::StrCat("merge_id: merge \"", later.front().Text(0), "\" came later; undo it first"));
      }
    }
    ECRM_ASSIGN_OR_RETURN(Loaded current, Load(c, survivor_id));
    // Identifiers the survivor gained after the merge stay with it.
    std::set<IdKey> before_ids;
    for (const CustomerRecord& r : before.records()) {
      for (const auto& id : r.customer().identifiers()) before_ids.insert(KeyOf(id));
    }
    std::vector<common::v1::Identifier> gained;
    for (const auto& id : current.record.customer().identifiers()) {
      if (!before_ids.count(KeyOf(id))) gained.push_back(id);
    }
    const int64_t now = NowMicros();
    // First hand identifiers and events back, then rebuild each summary from what it owns.
    for (const CustomerRecord& image : before.records()) {
      const std::string& id = image.customer().id();
      for (const auto& ident : image.customer().identifiers()) {
        ECRM_RETURN_IF_ERROR(c.Execute("UPDATE identifiers SET customer_id = $1 WHERE type = $2 AND source = $3 "
                                       "AND value = $4",
                                       {id, static_cast<int>(ident.type()), ident.source(), ident.value()})
                                 .status());
      }
      if (id == survivor_id) continue;
      ECRM_RETURN_IF_ERROR(c.Execute("UPDATE events SET customer_id = $1 WHERE recorded_for = $1 AND customer_id = $2",
                                     {id, survivor_id})
                               .status());
      ECRM_RETURN_IF_ERROR(c.Execute("UPDATE customers SET merged_into = NULL WHERE id = $1", {id}).status());
    }
    for (const CustomerRecord& image : before.records()) {
      const std::string& id = image.customer().id();
      ECRM_ASSIGN_OR_RETURN(Loaded now_loaded, Load(c, id));
      CustomerRecord restored = image;
      restored.mutable_customer()->set_version(now_loaded.record.customer().version());  // Save bumps past both
      if (id == survivor_id) {
        for (const auto& g : gained) *restored.mutable_customer()->add_identifiers() = g;
      }
      // The summary follows the events the customer now owns (including any recorded since).
      v1::BehaviourSummary summary;
      ECRM_ASSIGN_OR_RETURN(
          sql::Result events,
          c.Execute(absl::StrCat("SELECT ", kStoredEventColumns, " FROM events WHERE customer_id = $1"), {id}));
      for (sql::Row row : events) {
        absl::StatusOr<v1::Event> e = StoredEvent(row, 0);
        if (e.ok()) ApplyEvent(*e, summary);
      }
      // First seen can predate every event (the customer was created first).
      const v1::BehaviourSummary& was = image.customer().behaviour();
      if (was.has_first_seen_at() &&
          (!summary.has_first_seen_at() || Micros(was.first_seen_at()) < Micros(summary.first_seen_at()))) {
        *summary.mutable_first_seen_at() = was.first_seen_at();
      }
      *restored.mutable_customer()->mutable_behaviour() = summary;
      ECRM_RETURN_IF_ERROR(Save(c, restored, false));
      feed_.Append(pending, v1::CHANGE_KIND_UNMERGE, restored.customer(), &record);
      *out.add_customers() = restored.customer();
      written.push_back(restored.customer());
    }
    *record.mutable_unmerged_at() = Ts(now);
    ECRM_RETURN_IF_ERROR(c.Execute("UPDATE merges SET unmerged_at = $1, record = $2 WHERE merge_id = $3",
                                   {now, sql::Blob{record.SerializeAsString()}, request.merge_id()})
                             .status());
    return feed_.Flush(c, pending);
  }));
  CacheAfterCommit(written, {});
  return out;
}

}  // namespace ecrm::infostore

// CustomerStore: loading, saving and resolving customers, reads through the profile cache,
// UpsertCustomer (identity resolution in identity.h, survivorship in survivorship.h) and
// ListCustomers. Consents, merges, erasure and events live in files of their own.
#include "customer_store.h"

#include <algorithm>
#include <map>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "ecrm/status/macros.h"
#include "ecrm/util/page_token.h"
#include "identifiers.h"
#include "identity.h"
#include "store_helpers.h"
#include "survivorship.h"

namespace ecrm::infostore {

using internal::CustomerRecord;

absl::StatusOr<CustomerStore::Loaded> CustomerStore::Load(sql::Connection& c, const std::string& id, bool for_update) {
  const bool lock = for_update && c.dialect() == sql::Dialect::kPostgres;
  ECRM_ASSIGN_OR_RETURN(sql::Result r,
                        c.Execute(lock ? "SELECT record, merged_into FROM customers WHERE id = $1 FOR UPDATE"
                                       : "SELECT record, merged_into FROM customers WHERE id = $1",
                                  {id}));
  if (r.empty()) return absl::NotFoundError(absl::StrCat("customer \"", id, "\" does not exist"));
  Loaded l;
  if (!l.record.ParseFromString(std::string(r.front().Text(0)))) {
    return absl::DataLossError(absl::StrCat("customer \"", id, "\" has an unreadable record"));
  }
  l.merged_into = std::string(r.front().Text(1));
  return l;
}

absl::StatusOr<CustomerStore::Loaded> CustomerStore::LoadLive(sql::Connection& c, const std::string& id) {
  ECRM_ASSIGN_OR_RETURN(Loaded l, Load(c, id));
  // Resolved before the lock was taken: a concurrent merge may have retired it since. Start the
  // transaction again, with fresh lookups.
  if (!l.merged_into.empty()) return absl::AbortedError(absl::StrCat("customer ", id, " was merged concurrently"));
  return l;
}

absl::StatusOr<std::map<std::string, CustomerRecord>> CustomerStore::LoadLiveInOrder(
    sql::Connection& c, absl::Span<const std::string> ids) {
  const std::set<std::string> ordered(ids.begin(), ids.end());
  std::map<std::string, CustomerRecord> records;
  for (const std::string& id : ordered) {
    ECRM_ASSIGN_OR_RETURN(Loaded l, LoadLive(c, id));
    records.emplace(id, std::move(l.record));
  }
  return records;
}

absl::StatusOr<CustomerStore::Loaded> CustomerStore::LoadRef(sql::Connection& c, const common::v1::CustomerRef& ref) {
  bool found = false;
  ECRM_ASSIGN_OR_RETURN(std::string id, ResolveId(c, ref, &found));
  if (!found) return absl::NotFoundError("customer: no such customer");
  return LoadLive(c, id);
}

absl::StatusOr<std::string> CustomerStore::ResolveId(sql::Connection& c, const common::v1::CustomerRef& ref,
                                                     bool* found) {
  *found = false;
  std::string id;
  if (ref.ref_case() == common::v1::CustomerRef::kCustomerId) {
    id = ref.customer_id();
  } else if (ref.ref_case() == common::v1::CustomerRef::kIdentifier) {
    ECRM_ASSIGN_OR_RETURN(common::v1::Identifier norm,
                          Normalize(ref.identifier(), "customer.identifier", options_.default_region));
    ECRM_ASSIGN_OR_RETURN(
        sql::Result r, c.Execute("SELECT customer_id FROM identifiers WHERE type = $1 AND source = $2 AND value = $3",
                                 {static_cast<int>(norm.type()), norm.source(), norm.value()}));
    if (r.empty()) return std::string();
    id = std::string(r.front().Text(0));
  } else {
    return Invalid("customer", "set customer_id or identifier");
  }
  // Merged ids redirect to their survivor (a survivor may itself have been merged later).
  for (int hop = 0; hop < 32; ++hop) {
    ECRM_ASSIGN_OR_RETURN(sql::Result r, c.Execute("SELECT merged_into FROM customers WHERE id = $1", {id}));
    if (r.empty()) return std::string();
    if (r.front().IsNull(0)) {
      *found = true;
      return id;
    }
    id = std::string(r.front().Text(0));
  }
  return absl::InternalError(absl::StrCat("merge redirects of \"", id, "\" form a cycle"));
}

absl::StatusOr<std::string> CustomerStore::Resolve(const common::v1::CustomerRef& ref) {
  ECRM_ASSIGN_OR_RETURN(sql::Lease conn, db_.Acquire());
  bool found = false;
  ECRM_ASSIGN_OR_RETURN(std::string id, ResolveId(*conn, ref, &found));
  if (!found) return absl::NotFoundError("customer: no such customer");
  return id;
}

absl::Status CustomerStore::Save(sql::Connection& c, CustomerRecord& record, bool create) {
  v1::Customer& cu = *record.mutable_customer();
  const int64_t now = NowMicros();
  const int64_t old_version = cu.version();
  cu.set_version(old_version + 1);
  *cu.mutable_updated_at() = Ts(now);
  if (create) *cu.mutable_created_at() = Ts(now);
  cu.set_anonymous(
      std::none_of(cu.identifiers().begin(), cu.identifiers().end(), [](const auto& i) { return IsStrong(i.type()); }));
  std::string bytes = record.SerializeAsString();
  if (create) {
    return c
        .Execute("INSERT INTO customers (id, version, created_at, updated_at, record) VALUES ($1, $2, $3, $3, $4)",
                 {cu.id(), cu.version(), now, sql::Blob{bytes}})
        .status();
  }
  ECRM_ASSIGN_OR_RETURN(sql::Result r, c.Execute("UPDATE customers SET version = $1, updated_at = $2, record = $3 "
                                                 "WHERE id = $4 AND version = $5",
                                                 {cu.version(), now, sql::Blob{bytes}, cu.id(), old_version}));
  if (r.rows_affected() != 1) return absl::AbortedError(absl::StrCat("customer ", cu.id(), " changed concurrently"));
  return absl::OkStatus();
}

std::optional<v1::Customer> CustomerStore::FromCache(const std::string& id) {
  if (cache_ == nullptr) return std::nullopt;
  std::optional<cache::CachedProfile> hit = cache_->Get(id);
  v1::Customer cu;
  if (hit && cu.ParseFromString(hit->data)) return cu;
  return std::nullopt;
}

absl::StatusOr<v1::Customer> CustomerStore::ReadResolved(const common::v1::CustomerRef& ref,
                                                         const std::string& missed) {
  ECRM_ASSIGN_OR_RETURN(sql::Lease conn, db_.Acquire());
  bool found = false;
  ECRM_ASSIGN_OR_RETURN(std::string id, ResolveId(*conn, ref, &found));
  if (!found) {
    return absl::NotFoundError(ref.ref_case() == common::v1::CustomerRef::kCustomerId
                                   ? absl::StrCat("customer \"", ref.customer_id(), "\" does not exist")
                                   : "no customer has this identifier");
  }
  if (id != missed) {  // an identifier or a merged id resolved to an id the cache was not asked for
    if (std::optional<v1::Customer> cached = FromCache(id)) return *cached;
  }
  ECRM_ASSIGN_OR_RETURN(Loaded l, Load(*conn, id, false));
  if (cache_ != nullptr) cache_->Put(id, l.record.customer().version(), l.record.customer().SerializeAsString());
  return l.record.customer();
}

void CustomerStore::CacheAfterCommit(const std::vector<v1::Customer>& written, const std::vector<v1::Customer>& gone) {
  if (!written.empty()) feed_.NotifyCommitted();
  if (cache_ == nullptr) return;
  std::vector<cache::ProfileWrite> writes;
  writes.reserve(written.size() + gone.size());
  for (const v1::Customer& cu : written) writes.push_back({cu.id(), cu.version(), cu.SerializeAsString(), false});
  // A merged id leaves a tombstone at its new version: reads of it go to the database, which
  // redirects to the survivor, and an older fill cannot bring it back.
  for (const v1::Customer& cu : gone) writes.push_back({cu.id(), cu.version(), "", true});
  cache_->Write(writes);  // one round trip
}

absl::StatusOr<v1::Customer> CustomerStore::Get(const common::v1::CustomerRef& ref) {
  if (ref.ref_case() != common::v1::CustomerRef::kCustomerId) return ReadResolved(ref, "");
  // The hot path: a live id is answered from the cache without touching the database.
  if (std::optional<v1::Customer> cached = FromCache(ref.customer_id())) return *cached;
  return ReadResolved(ref, ref.customer_id());
}

absl::StatusOr<v1::BatchGetCustomersResponse> CustomerStore::BatchGet(const std::vector<std::string>& ids) {
  if (ids.size() > 1000) return Invalid("customer_ids", "at most 1,000 per call");
  v1::BatchGetCustomersResponse out;
  std::vector<std::optional<cache::CachedProfile>> hits(ids.size());
  if (cache_ != nullptr) hits = cache_->MultiGet(ids);  // one round trip for all of them
  for (size_t i = 0; i < ids.size(); ++i) {
    v1::Customer cu;
    if (hits[i] && cu.ParseFromString(hits[i]->data)) {
      *out.add_customers() = std::move(cu);
      continue;
    }
    common::v1::CustomerRef ref;
    ref.set_customer_id(ids[i]);
    absl::StatusOr<v1::Customer> got = ReadResolved(ref, ids[i]);
    if (got.ok()) {
      *out.add_customers() = std::move(*got);
    } else if (got.status().code() == absl::StatusCode::kNotFound) {
      out.add_not_found(ids[i]);
    } else {
      return got.status();
    }
  }
  return out;
}

namespace {

constexpr idempotency::Operation kUpsert{"UpsertCustomer", "request_id"};

absl::string_view CaseName(int value_case) {
  switch (value_case) {
    case common::v1::AttributeValue::kStringValue:
      return "string_value";
    case common::v1::AttributeValue::kIntValue:
      return "int_value";
    case common::v1::AttributeValue::kDoubleValue:
      return "double_value";
    case common::v1::AttributeValue::kBoolValue:
      return "bool_value";
    case common::v1::AttributeValue::kTimeValue:
      return "time_value";
    default:
      return "no value";
  }
}

absl::Status ValidateAttributes(const google::protobuf::Map<std::string, common::v1::AttributeValue>& attributes,
                                int max_bytes) {
  for (const auto& [name, value] : attributes) {
    if (!ValidName(name, 64)) return Invalid(absl::StrCat("attributes[\"", name, "\"]"), "names are [a-z0-9_]{1,64}");
    ECRM_RETURN_IF_ERROR(ValidateValue(value, absl::StrCat("attributes[\"", name, "\"]"), max_bytes));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<int64_t> CustomerStore::PruneRequests(absl::Time before) { return idempotency_.Prune(before); }

absl::StatusOr<v1::UpsertCustomerResponse> CustomerStore::Upsert(const v1::UpsertCustomerRequest& request) {
  ECRM_RETURN_IF_ERROR(idempotency::ValidateKey(kUpsert, request.request_id(), /*required=*/false));
  if (request.identifiers_size() == 0 && request.customer_id().empty()) {
    return Invalid("identifiers", "give at least one identifier, or customer_id");
  }
  if (request.identifiers_size() > 50) return Invalid("identifiers", "at most 50 per call");
  std::vector<common::v1::Identifier> ids;
  std::set<IdKey> seen;
  for (int i = 0; i < request.identifiers_size(); ++i) {
    ECRM_ASSIGN_OR_RETURN(
        common::v1::Identifier id,
        Normalize(request.identifiers(i), absl::StrCat("identifiers[", i, "]"), options_.default_region));
    if (seen.insert(KeyOf(id)).second) ids.push_back(std::move(id));
  }
  ECRM_RETURN_IF_ERROR(ValidateProfile(request.profile()));
  ECRM_RETURN_IF_ERROR(ValidateAttributes(request.attributes(), options_.max_value_bytes));
  if (!common::v1::Touchpoint_IsValid(request.source())) return Invalid("source", "is not a known touchpoint");

  v1::UpsertCustomerResponse result;
  std::vector<v1::Customer> written, gone;
  std::map<std::string, int> declared;  // attribute types this upsert declares
  absl::Status status = db_.InTransaction([&](sql::Connection& c) -> absl::Status {
    ChangeFeed::Pending pending;
    result.Clear();
    written.clear();
    gone.clear();
    declared.clear();
    // A retry: the first response, as it was.
    ECRM_ASSIGN_OR_RETURN(std::optional<std::string> first,
                          idempotency_.Claim(c, kUpsert, request.request_id(), request));
    if (first) {
      if (!result.ParseFromString(*first)) return absl::DataLossError("stored UpsertCustomer response does not parse");
      return absl::OkStatus();
    }
    // Who already owns the request's identifiers, and the facts identity resolution needs of them.
    std::string by_id;
    if (!request.customer_id().empty()) {
      common::v1::CustomerRef ref;
      ref.set_customer_id(request.customer_id());
      bool found = false;
      ECRM_ASSIGN_OR_RETURN(by_id, ResolveId(c, ref, &found));
      if (!found)
        return absl::NotFoundError(
            absl::StrCat("customer_id: customer \"", request.customer_id(), "\" does not exist"));
    }
    std::vector<std::string> owners(ids.size());  // parallel to ids; "" when nobody owns it
    for (size_t i = 0; i < ids.size(); ++i) {
      const common::v1::Identifier& id = ids[i];
      ECRM_ASSIGN_OR_RETURN(
          sql::Result r, c.Execute("SELECT customer_id FROM identifiers WHERE type = $1 AND source = $2 AND value = $3",
                                   {static_cast<int>(id.type()), id.source(), id.value()}));
      if (!r.empty()) owners[i] = std::string(r.front().Text(0));
    }
    std::vector<std::string> named = owners;
    named.push_back(by_id);
    std::erase(named, std::string());
    ECRM_ASSIGN_OR_RETURN(auto records, LoadLiveInOrder(c, named));
    auto facts = [&](const std::string& id) {
      if (id.empty()) return NamedCustomer();
      const v1::Customer& cu = records[id].customer();
      return NamedCustomer{id, cu.anonymous(), Micros(cu.created_at())};
    };
    std::vector<RequestIdentifier> request_ids(ids.size());
    for (size_t i = 0; i < ids.size(); ++i) request_ids[i] = {&ids[i], facts(owners[i])};
    const IdentityPlan plan = ResolveIdentity(facts(by_id), request_ids);

    CustomerRecord survivor;
    const bool create = plan.create();
    if (create) {
      survivor.mutable_customer()->set_id(NewId("c_"));
      result.set_outcome(v1::UpsertCustomerResponse::OUTCOME_CREATED);
    } else {
      survivor = records[plan.participants[0]];
      result.set_outcome(v1::UpsertCustomerResponse::OUTCOME_UPDATED);
    }
    const std::string before = survivor.SerializeAsString();
    std::optional<v1::MergeRecord> merge;
    if (plan.merge()) {
      std::vector<CustomerRecord> others;
      for (size_t i = 1; i < plan.participants.size(); ++i) others.push_back(records[plan.participants[i]]);
      ECRM_ASSIGN_OR_RETURN(merge, MergeInto(c, survivor, std::move(others), "identity resolution", &gone));
      result.set_outcome(v1::UpsertCustomerResponse::OUTCOME_MERGED);
      for (size_t i = 1; i < plan.participants.size(); ++i) result.add_merged_ids(plan.participants[i]);
    }
    const std::string& sid = survivor.customer().id();
    // New identifiers are kept in the request's order and inserted in key order.
    for (size_t i : plan.new_identifiers) {
      ECRM_RETURN_IF_ERROR(CheckNotErased(c, ids[i], "identifiers"));
      *survivor.mutable_customer()->add_identifiers() = ids[i];
    }
    for (size_t i : plan.insert_order) {
      const common::v1::Identifier& id = ids[i];
      ECRM_RETURN_IF_ERROR(
          AsContention(c.Execute("INSERT INTO identifiers (type, source, value, customer_id) VALUES ($1, $2, $3, $4)",
                                 {static_cast<int>(id.type()), id.source(), id.value(), sid})
                           .status()));
    }
    const bool identity_changed = !plan.new_identifiers.empty();
    const int64_t now = NowMicros();
    ECRM_RETURN_IF_ERROR(CheckAttributeTypes(c, request.attributes(), declared));
    ECRM_RETURN_IF_ERROR(ApplyProfileUpdate(rules_, request, now, survivor));
    if (!create && !merge && survivor.SerializeAsString() == before) {
      result.set_outcome(v1::UpsertCustomerResponse::OUTCOME_UNCHANGED);
      *result.mutable_customer() = survivor.customer();
      return idempotency_.Complete(c, kUpsert, request.request_id(), result.SerializeAsString(), sid);
    }
    if (create) {
      *survivor.mutable_customer()->mutable_behaviour()->mutable_first_seen_at() = Ts(now);
    }
    ECRM_RETURN_IF_ERROR(AsContention(Save(c, survivor, create)));
    feed_.Append(pending,
                 merge              ? v1::CHANGE_KIND_MERGE
                 : identity_changed ? v1::CHANGE_KIND_IDENTITY
                                    : v1::CHANGE_KIND_PROFILE,
                 survivor.customer(), merge ? &*merge : nullptr);
    *result.mutable_customer() = survivor.customer();
    written.push_back(survivor.customer());
    ECRM_RETURN_IF_ERROR(
        idempotency_.Complete(c, kUpsert, request.request_id(), result.SerializeAsString(), survivor.customer().id()));
    return feed_.Flush(c, pending);
  });
  if (!status.ok()) return status;
  if (!declared.empty()) {
    std::lock_guard lock(attribute_types_mu_);
    attribute_types_.insert(declared.begin(), declared.end());
  }
  CacheAfterCommit(written, gone);
  return result;
}

absl::Status CustomerStore::CheckAttributeTypes(
    sql::Connection& c, const google::protobuf::Map<std::string, common::v1::AttributeValue>& attributes,
    std::map<std::string, int>& declared) {
  for (const auto& [name, value] : attributes) {
    const int got = value.value_case();
    if (got == common::v1::AttributeValue::VALUE_NOT_SET) continue;  // a removal
    int want = 0;
    {
      std::lock_guard lock(attribute_types_mu_);
      auto it = attribute_types_.find(name);
      if (it != attribute_types_.end()) want = it->second;
    }
    if (want == 0) {  // not seen by this process yet: declare it, or learn the declared type
      ECRM_RETURN_IF_ERROR(c.Execute("INSERT INTO attribute_types (name, value_case, declared_at) VALUES ($1, $2, $3) "
                                     "ON CONFLICT (name) DO NOTHING",
                                     {name, got, NowMicros()})
                               .status());
      ECRM_ASSIGN_OR_RETURN(sql::Result r, c.Execute("SELECT value_case FROM attribute_types WHERE name = $1", {name}));
      if (r.empty()) return absl::AbortedError("an attribute type was declared and removed concurrently");
      want = static_cast<int>(r.front().Int(0));
      declared[name] = want;
    }
    if (got != want) {
      return Invalid(absl::StrCat("attributes[\"", name, "\"]"),
                     absl::StrCat("holds ", CaseName(want), " (fixed by its first use), not ", CaseName(got)));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<v1::ListCustomersResponse> CustomerStore::ListCustomers(const v1::ListCustomersRequest& request) {
  const int limit = PageSize(request.page_size());
  ECRM_ASSIGN_OR_RETURN(std::optional<util::PageCursor> cursor,
                        util::DecodePageToken("ListCustomers", request.page_token()));
  const std::string after = cursor ? cursor->text : "";
  const int64_t since = request.has_updated_since() ? Micros(request.updated_since()) : 0;
  ECRM_ASSIGN_OR_RETURN(sql::Lease conn, db_.Acquire());
  ECRM_ASSIGN_OR_RETURN(sql::Result seq, conn->Execute("SELECT MAX(sequence) FROM changes"));
  ECRM_ASSIGN_OR_RETURN(sql::Result r,
                        conn->Execute("SELECT id, record FROM customers WHERE merged_into IS NULL AND id > $1 "
                                      "AND updated_at >= $2 ORDER BY id LIMIT $3",
                                      {after, since, limit + 1}));
  v1::ListCustomersResponse out;
  out.set_as_of_sequence(seq.front().Int(0));
  for (size_t i = 0; i < r.size() && static_cast<int>(i) < limit; ++i) {
    CustomerRecord record;
    if (!record.ParseFromString(std::string(r.row(i).Text(1)))) return absl::DataLossError("unreadable customer");
    *out.add_customers() = std::move(*record.mutable_customer());
  }
  if (static_cast<int>(r.size()) > limit)
    out.set_next_page_token(util::EncodePageToken("ListCustomers", {0, std::string(r.row(limit - 1).Text(0))}));
  return out;
}

}  // namespace ecrm::infostore

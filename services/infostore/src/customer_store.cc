#include "customer_store.h"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>

#include <algorithm>
#include <limits>
#include <map>
#include <set>
#include <tuple>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "ecrm/log/log.h"
#include "ecrm/status/macros.h"
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

namespace {

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

// SHA-256 of the request's deterministic serialization: what a request_id is bound to.
std::string RequestHash(const v1::UpsertCustomerRequest& request) {
  std::string bytes;
  google::protobuf::io::StringOutputStream stream(&bytes);
  google::protobuf::io::CodedOutputStream coded(&stream);
  coded.SetSerializationDeterministic(true);
  request.SerializeToCodedStream(&coded);
  coded.Trim();
  return Sha256Hex(bytes);
}

}  // namespace

absl::StatusOr<std::optional<v1::UpsertCustomerResponse>> CustomerStore::FindUpsert(
    sql::Connection& c, const v1::UpsertCustomerRequest& request, const std::string& request_hash) {
  ECRM_ASSIGN_OR_RETURN(sql::Result r, c.Execute("SELECT request_hash, response FROM upsert_requests "
                                                 "WHERE request_id = $1",
                                                 {request.request_id()}));
  if (r.empty()) return std::nullopt;
  if (r.front().Text(0) != request_hash) {
    return Invalid("request_id", absl::StrCat("\"", request.request_id(),
                                              "\" was already used for a different request; use a new request_id"));
  }
  v1::UpsertCustomerResponse first;
  if (!first.ParseFromString(std::string(r.front().Text(1)))) return absl::DataLossError("unreadable stored response");
  return first;
}

absl::StatusOr<int64_t> CustomerStore::PruneRequests(absl::Time before) {
  return db_.DeleteInBatches("upsert_requests", "request_id", "created_at < $1", {absl::ToUnixMicros(before)});
}

absl::StatusOr<v1::UpsertCustomerResponse> CustomerStore::Upsert(const v1::UpsertCustomerRequest& request) {
  std::string request_hash;  // empty without a request_id
  if (!request.request_id().empty()) {
    if (request.request_id().size() > 128) return Invalid("request_id", "must be at most 128 characters");
    request_hash = RequestHash(request);
  }
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
    if (!request_hash.empty()) {  // a retry: the first response, as it was
      ECRM_ASSIGN_OR_RETURN(std::optional<v1::UpsertCustomerResponse> first, FindUpsert(c, request, request_hash));
      if (first) {
        result = std::move(*first);
        return absl::OkStatus();
      }
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
      return RecordUpsert(c, request, request_hash, result);
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
    ECRM_RETURN_IF_ERROR(RecordUpsert(c, request, request_hash, result));
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

absl::Status CustomerStore::RecordUpsert(sql::Connection& c, const v1::UpsertCustomerRequest& request,
                                         const std::string& request_hash, const v1::UpsertCustomerResponse& response) {
  if (request.request_id().empty()) return absl::OkStatus();
  // A concurrent retry that committed first makes this a unique violation: the transaction
  // aborts, retries, and the retry finds the stored response.
  return AsContention(
      c.Execute("INSERT INTO upsert_requests (request_id, request_hash, created_at, response, customer_id) "
                "VALUES ($1, $2, $3, $4, $5)",
                {request.request_id(), request_hash, NowMicros(), sql::Blob{response.SerializeAsString()},
                 response.customer().id()})
          .status());
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

absl::StatusOr<v1::Customer> CustomerStore::UpdateConsent(const v1::UpdateConsentRequest& request) {
  if (request.channel() == common::v1::CHANNEL_UNSPECIFIED || !common::v1::Channel_IsValid(request.channel())) {
    return Invalid("channel", "must be a channel such as CHANNEL_EMAIL");
  }
  if (request.purpose() == common::v1::PURPOSE_UNSPECIFIED || !common::v1::Purpose_IsValid(request.purpose())) {
    return Invalid("purpose", "must be a purpose such as PURPOSE_MARKETING");
  }
  if (request.status() == v1::CONSENT_STATUS_UNSPECIFIED || !v1::ConsentStatus_IsValid(request.status())) {
    return Invalid("status", "must be GRANTED, PENDING_CONFIRMATION, DENIED or WITHDRAWN");
  }
  const int64_t now = NowMicros();
  int64_t decided = request.has_decided_at() ? Micros(request.decided_at()) : now;
  if (decided > now + absl::ToInt64Microseconds(options_.max_future_skew)) {
    return Invalid("decided_at", "is in the future");
  }
  if (request.evidence().size() > 4096) return Invalid("evidence", "is longer than 4096 bytes");
  v1::Customer out;
  std::vector<v1::Customer> written;
  ECRM_RETURN_IF_ERROR(db_.InTransaction([&](sql::Connection& c) -> absl::Status {
    ChangeFeed::Pending pending;
    written.clear();
    ECRM_ASSIGN_OR_RETURN(Loaded l, LoadRef(c, request.customer()));
    v1::Customer& cu = *l.record.mutable_customer();
    v1::Consent* consent = nullptr;
    for (auto& cons : *cu.mutable_consents()) {
      if (cons.channel() == request.channel() && cons.purpose() == request.purpose()) consent = &cons;
    }
    v1::ConsentStatus previous = consent ? consent->status() : v1::CONSENT_STATUS_UNSPECIFIED;
    if (consent == nullptr) consent = cu.add_consents();
    consent->set_channel(request.channel());
    consent->set_purpose(request.purpose());
    consent->set_status(request.status());
    consent->set_source(request.source());
    *consent->mutable_updated_at() = Ts(decided);
    consent->set_evidence(request.evidence());
    consent->set_policy_version(request.policy_version());
    v1::ConsentChange change;
    *change.mutable_consent() = *consent;
    change.set_previous_status(previous);
    ECRM_RETURN_IF_ERROR(c.Execute("INSERT INTO consent_history (customer_id, channel, purpose, decided_at, change) "
                                   "VALUES ($1, $2, $3, $4, $5)",
                                   {cu.id(), static_cast<int>(request.channel()), static_cast<int>(request.purpose()),
                                    decided, sql::Blob{change.SerializeAsString()}})
                             .status());
    ECRM_RETURN_IF_ERROR(Save(c, l.record, false));
    feed_.Append(pending, v1::CHANGE_KIND_CONSENT, cu);
    out = cu;
    written.push_back(cu);
    return feed_.Flush(c, pending);
  }));
  CacheAfterCommit(written, {});
  return out;
}

absl::StatusOr<v1::GetConsentHistoryResponse> CustomerStore::ConsentHistory(
    const v1::GetConsentHistoryRequest& request) {
  int limit = request.page_size() <= 0 ? 100 : std::min(request.page_size(), 1000);
  int64_t before = std::numeric_limits<int64_t>::max();
  if (!request.page_token().empty() && (!absl::SimpleAtoi(request.page_token(), &before) || before <= 0)) {
    return Invalid("page_token", "is not a token from a previous response");
  }
  ECRM_ASSIGN_OR_RETURN(sql::Lease conn, db_.Acquire());
  bool found = false;
  ECRM_ASSIGN_OR_RETURN(std::string id, ResolveId(*conn, request.customer(), &found));
  if (!found) return absl::NotFoundError("customer: no such customer");
  ECRM_ASSIGN_OR_RETURN(Loaded l, Load(*conn, id, false));
  // The survivor's history includes the history of every customer merged into it.
  std::vector<std::string> members = {id};
  members.insert(members.end(), l.record.customer().merged_ids().begin(), l.record.customer().merged_ids().end());
  std::vector<std::pair<int64_t, std::string>> rows;  // (history id, change)
  for (const std::string& member : members) {
    ECRM_ASSIGN_OR_RETURN(sql::Result r, conn->Execute("SELECT id, change FROM consent_history WHERE customer_id = $1 "
                                                       "AND id < $2 AND ($3 = 0 OR channel = $3) "
                                                       "AND ($4 = 0 OR purpose = $4) ORDER BY id DESC LIMIT $5",
                                                       {member, before, static_cast<int>(request.channel()),
                                                        static_cast<int>(request.purpose()), limit + 1}));
    for (sql::Row row : r) rows.emplace_back(row.Int(0), std::string(row.Text(1)));
  }
  std::sort(rows.begin(), rows.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
  v1::GetConsentHistoryResponse out;
  for (size_t i = 0; i < rows.size() && static_cast<int>(i) < limit; ++i)
    out.add_changes()->ParseFromString(rows[i].second);
  if (static_cast<int>(rows.size()) > limit) out.set_next_page_token(absl::StrCat(rows[limit - 1].first));
  return out;
}

absl::StatusOr<v1::Customer> CustomerStore::UpdatePreferences(const v1::UpdatePreferencesRequest& request) {
  const v1::Preferences& p = request.preferences();
  if (!common::v1::Channel_IsValid(p.preferred_channel()))
    return Invalid("preferences.preferred_channel", "unknown channel");
  if (!v1::ContactFrequency_IsValid(p.contact_frequency()))
    return Invalid("preferences.contact_frequency", "unknown value");
  if (p.interests_size() > 100) return Invalid("preferences.interests", "at most 100");
  for (int i = 0; i < p.interests_size(); ++i) {
    if (p.interests(i).empty() || p.interests(i).size() > 64) {
      return Invalid(absl::StrCat("preferences.interests[", i, "]"), "must be 1–64 characters");
    }
  }
  for (const auto* t : {&p.quiet_hours().start(), &p.quiet_hours().end()}) {
    if (t->hours() < 0 || t->hours() > 23 || t->minutes() < 0 || t->minutes() > 59) {
      return Invalid("preferences.quiet_hours", "times are hours 0–23 and minutes 0–59");
    }
  }
  static const std::set<std::string> kPaths = {"preferred_channel", "interests", "contact_frequency", "quiet_hours"};
  for (int i = 0; i < request.update_mask().paths_size(); ++i) {
    if (!kPaths.count(request.update_mask().paths(i))) {
      return Invalid(absl::StrCat("update_mask.paths[", i, "]"),
                     "must be preferred_channel, interests, contact_frequency or quiet_hours");
    }
  }
  v1::Customer out;
  std::vector<v1::Customer> written;
  ECRM_RETURN_IF_ERROR(db_.InTransaction([&](sql::Connection& c) -> absl::Status {
    ChangeFeed::Pending pending;
    written.clear();
    ECRM_ASSIGN_OR_RETURN(Loaded l, LoadRef(c, request.customer()));
    v1::Preferences& cur = *l.record.mutable_customer()->mutable_preferences();
    auto masked = [&](const std::string& path) {
      if (request.update_mask().paths_size() == 0) return true;
      return std::find(request.update_mask().paths().begin(), request.update_mask().paths().end(), path) !=
             request.update_mask().paths().end();
    };
    if (masked("preferred_channel")) cur.set_preferred_channel(p.preferred_channel());
    if (masked("interests")) *cur.mutable_interests() = p.interests();
    if (masked("contact_frequency")) cur.set_contact_frequency(p.contact_frequency());
    if (masked("quiet_hours")) {
      if (p.has_quiet_hours()) {
        *cur.mutable_quiet_hours() = p.quiet_hours();
      } else {
        cur.clear_quiet_hours();
      }
    }
    ECRM_RETURN_IF_ERROR(Save(c, l.record, false));
    feed_.Append(pending, v1::CHANGE_KIND_PROFILE, l.record.customer());
    out = l.record.customer();
    written.push_back(out);
    return feed_.Flush(c, pending);
  }));
  CacheAfterCommit(written, {});
  return out;
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
  int64_t before = std::numeric_limits<int64_t>::max();
  if (!request.page_token().empty() && (!absl::SimpleAtoi(request.page_token(), &before) || before <= 0)) {
    return Invalid("page_token", "is not a token from a previous response");
  }
  ECRM_ASSIGN_OR_RETURN(sql::Result r,
                        db_.Execute("SELECT m.merged_at, m.record FROM merges m JOIN merge_members mm "
                                    "ON mm.merge_id = m.merge_id WHERE mm.customer_id = $1 AND m.merged_at < $2 "
                                    "ORDER BY m.merged_at DESC LIMIT $3",
                                    {request.customer_id(), before, limit + 1}));
  v1::ListMergesResponse out;
  for (size_t i = 0; i < r.size() && static_cast<int>(i) < limit; ++i) {
    out.add_merges()->ParseFromString(std::string(r.row(i).Text(1)));
  }
  if (static_cast<int>(r.size()) > limit) out.set_next_page_token(absl::StrCat(r.row(limit - 1).Int(0)));
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

absl::StatusOr<v1::ListCustomersResponse> CustomerStore::ListCustomers(const v1::ListCustomersRequest& request) {
  const int limit = PageSize(request.page_size());
  std::string after;
  if (!request.page_token().empty()) {
    absl::string_view token = request.page_token();
    if (!absl::ConsumePrefix(&token, "c:") || token.empty()) {
      return Invalid("page_token", "is not a token from a previous ListCustomers response");
    }
    after = std::string(token);
  }
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
  if (static_cast<int>(r.size()) > limit) out.set_next_page_token(absl::StrCat("c:", r.row(limit - 1).Text(0)));
  return out;
}

}  // namespace ecrm::infostore

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

absl::StatusOr<std::string> CustomerStore::Resolve(const common::v1::CustomerRef& ref) {
  ECRM_ASSIGN_OR_RETURN(sql::Lease conn, db_.Acquire());
  bool found = false;
  ECRM_ASSIGN_OR_RETURN(std::string id, ResolveId(*conn, ref, &found));
  if (!found) return absl::NotFoundError("customer: no such customer");
  return id;
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
            count("upsert_requests", c.Execute("DELETE FROM upsert_requests WHERE customer_id = $1", {member})));
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
                                    "changes", "upsert_requests"}) {
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

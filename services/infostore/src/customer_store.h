// The information store's domain: identity resolution, profiles, consents, events, merges and
// erasure, over libs/sql, the change feed and the shared profile cache. No gRPC types here.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "change_feed.h"
#include "ecrm/cache/profile_cache.h"
#include "ecrm/idempotency/idempotency.h"
#include "ecrm/infostore/internal/record.pb.h"
#include "ecrm/infostore/internal/summary_view.pb.h"
#include "ecrm/infostore/v1/infostore.pb.h"
#include "ecrm/privacy/v1/privacy.pb.h"
#include "ecrm/server/customer_data_owner.h"
#include "ecrm/sql/sql.h"
#include "ecrm/util/work_queue.h"
#include "survivorship.h"

namespace ecrm::infostore {

namespace v1 = ::ecrm::infostore::v1;

struct StoreOptions {
  // Region for phone numbers written without a country code (ISO 3166-1, e.g. "GB").
  std::string default_region = "GB";
  // Survivorship of profile fields. Empty: the most recent non-empty value wins. Otherwise the
  // touchpoints in descending priority, e.g. {ERP, CALL_CENTRE, WEB}: a value from a
  // higher-priority source is never overwritten by a lower one; unlisted sources rank last.
  std::vector<common::v1::Touchpoint> source_priority;
  int max_attributes = 100;
  int max_value_bytes = 1024;
  absl::Duration max_future_skew = absl::Minutes(5);
  // SQLite: the page cache of the event writer's own connection. Events to random customers
  // touch a random customer row and a random leaf of the per-customer event index each; a cache
  // that holds them saves reading them back from the OS group after group.
  int event_writer_cache_mib = 256;
};

struct EventBatchResult {
  int64_t accepted = 0;
  int64_t duplicates = 0;
};
// Runs once a RecordEvents batch is durable (with its counts) or has failed.
using EventsDone = std::function<void(absl::StatusOr<EventBatchResult>)>;

// The information store's customers. One class, implemented in one file per concern:
//   customer_store.cc  loading, saving, resolving; reads through the cache; Upsert (identity.h,
//                      survivorship.h); ListCustomers; upsert request ids
//   consents.cc        UpdateConsent, ConsentHistory, UpdatePreferences
//   merges.cc          MergeInto, Merge, ListMerges, Unmerge
//   erasure.cc         CheckNotErased, FindErasure, ExportLocal, EraseLocal
//   events.cc          construction, RecordEvents (the event writer and acknowledger), ListEvents
// The change feed is a class of its own (change_feed.h), which every write appends to.
class CustomerStore final : public server::CustomerDataOwner {
 public:
  // Every write appends its changes to `feed`. `cache` may be null (no Redis configured).
  CustomerStore(sql::Database& db, ChangeFeed& feed, cache::ProfileCache* cache, StoreOptions options);
  // Commits the event batches still queued, then stops the event writer.
  ~CustomerStore();

  // customer_store.cc
  // With a request_id, a retry of the same request returns the first response (kept for
  // --request-retention) and the same id with a different request is FAILED_PRECONDITION, as
  // every engine's idempotency keys (libs/idempotency).
  absl::StatusOr<v1::UpsertCustomerResponse> Upsert(const v1::UpsertCustomerRequest& request);
  absl::StatusOr<v1::Customer> Get(const common::v1::CustomerRef& ref);
  absl::StatusOr<v1::BatchGetCustomersResponse> BatchGet(const std::vector<std::string>& ids);
  absl::StatusOr<v1::ListCustomersResponse> ListCustomers(const v1::ListCustomersRequest& request);
  // The cached customer, if the cache holds a readable one (no database access).
  std::optional<v1::Customer> FromCache(const std::string& id);
  // Resolves a reference to the live customer id (following merges); NOT_FOUND if none.
  absl::StatusOr<std::string> Resolve(const common::v1::CustomerRef& ref);
  // Forgets upsert request ids recorded before `before`. Returns how many.
  absl::StatusOr<int64_t> PruneRequests(absl::Time before);

  // consents.cc
  absl::StatusOr<v1::Customer> UpdateConsent(const v1::UpdateConsentRequest& request);
  absl::StatusOr<v1::GetConsentHistoryResponse> ConsentHistory(const v1::GetConsentHistoryRequest& request);
  absl::StatusOr<v1::Customer> UpdatePreferences(const v1::UpdatePreferencesRequest& request);

  // merges.cc
  absl::StatusOr<v1::MergeCustomersResponse> Merge(const v1::MergeCustomersRequest& request);
  absl::StatusOr<v1::ListMergesResponse> ListMerges(const v1::ListMergesRequest& request);
  // Restores every customer of a merge as it was before it; identifiers added to the survivor
  // since stay with it, events go back to the customer they were recorded for, and behaviour
  // summaries are recomputed from the events.
  absl::StatusOr<v1::UnmergeCustomersResponse> Unmerge(const v1::UnmergeCustomersRequest& request);

  // events.cc
  absl::StatusOr<v1::ListEventsResponse> ListEvents(const v1::ListEventsRequest& request);
  // Validates one RecordEvents batch — an error (INVALID_ARGUMENT naming the field) is returned
  // at once and `done` never runs — and queues it for the event writer thread. That thread
  // commits every batch queued while it was busy in one transaction, in queue order (a batch
  // that fails is retried alone, so it never fails another), and runs `done` on each once it
  // is durable or has failed: all or nothing per batch.
  absl::Status RecordEvents(std::shared_ptr<v1::RecordEventsRequest> batch, EventsDone done);
  // Events queued for the event writer and not yet acknowledged (streams read ahead while this
  // is small).
  int64_t QueuedEvents() const { return queued_events_.load(std::memory_order_relaxed); }

  // erasure.cc
  // This engine's part of a data-subject export: one JSON object (customer, consent history,
  // events, merges); "{}" when nothing is held.
  absl::StatusOr<std::string> ExportLocal(const std::string& customer_id);
  // Erases everything held on the customer (and the ids merged into it), scrubs its past feed
  // payloads, emits an erase tombstone and keeps only hashes of its identifiers, so a
  // re-import is refused. Idempotent by request_id.
  absl::StatusOr<privacy::v1::EraseCustomerDataResponse> EraseLocal(const std::string& customer_id,
                                                                    const std::string& reason,
                                                                    const std::string& request_id);
  // The receipt of an earlier erasure with this request id, if there was one.
  absl::StatusOr<std::optional<privacy::v1::EraseCustomerDataResponse>> FindErasure(const std::string& request_id);
  // CustomerData, for the shared service: ExportLocal and EraseLocal.
  absl::StatusOr<std::string> ExportCustomerData(const privacy::v1::ExportCustomerDataRequest& req) override {
    return ExportLocal(req.customer_id());
  }
  absl::StatusOr<privacy::v1::EraseCustomerDataResponse> EraseCustomerData(
      const privacy::v1::EraseCustomerDataRequest& req) override {
    return EraseLocal(req.customer_id(), req.reason(), req.request_id());
  }

 private:
  struct Loaded {
    internal::CustomerRecord record;
    std::string merged_into;
  };
  struct EventBatch;
  struct CommittedGroup;

  // customer_store.cc
  absl::StatusOr<std::string> ResolveId(sql::Connection& c, const common::v1::CustomerRef& ref, bool* found);
  // `for_update`: lock the row until commit (PostgreSQL; SQLite writers are serialised anyway),
  // so concurrent writers of one customer queue instead of failing their version check.
  absl::StatusOr<Loaded> Load(sql::Connection& c, const std::string& id, bool for_update = true);
  // Load for a write: ABORTED (retry) when the customer was merged after it was resolved.
  absl::StatusOr<Loaded> LoadLive(sql::Connection& c, const std::string& id);
  // LoadLive for several customers, locked in id order: two writers that touch overlapping
  // customers take their locks in the same order, so one queues behind the other instead of
  // deadlocking (PostgreSQL would abort one after deadlock_timeout).
  absl::StatusOr<std::map<std::string, internal::CustomerRecord>> LoadLiveInOrder(sql::Connection& c,
                                                                                  absl::Span<const std::string> ids);
  // Resolves `ref` (NOT_FOUND naming the field "customer") and loads it for a write.
  absl::StatusOr<Loaded> LoadRef(sql::Connection& c, const common::v1::CustomerRef& ref);
  absl::Status Save(sql::Connection& c, internal::CustomerRecord& record, bool create);
  // Resolves ref in the database (following merges) and reads the customer, from the cache
  // unless `missed` (an id the cache was just asked for) is where it resolved, then from the
  // database, filling the cache.
  absl::StatusOr<v1::Customer> ReadResolved(const common::v1::CustomerRef& ref, const std::string& missed);
  void CacheAfterCommit(const std::vector<v1::Customer>& written, const std::vector<v1::Customer>& gone);
  // INVALID_ARGUMENT when an attribute's value is of another type than the attribute's first
  // use; declares the types of attributes used for the first time (returned in `declared`).
  absl::Status CheckAttributeTypes(sql::Connection& c,
                                   const google::protobuf::Map<std::string, common::v1::AttributeValue>& attributes,
                                   std::map<std::string, int>& declared);

  // merges.cc
  // Merges `others` into `survivor` (all loaded in this transaction); the merged records are
  // saved as redirects and returned through `merged`.
  absl::StatusOr<v1::MergeRecord> MergeInto(sql::Connection& c, internal::CustomerRecord& survivor,
                                            std::vector<internal::CustomerRecord> others, const std::string& reason,
                                            std::vector<v1::Customer>* merged);

  // erasure.cc
  // FAILED_PRECONDITION when an identifier belongs to an erased person.
  absl::Status CheckNotErased(sql::Connection& c, const common::v1::Identifier& id, absl::string_view field);

  // events.cc
  // The event writer thread: takes the queued batches in groups and commits them.
  void WriteEventsLoop();
  // The event acknowledger thread: after each commit, writes the summaries to the cache, runs
  // the batches' callbacks and frees them, while the writer goes on with the next group.
  void AckEventsLoop();
  // Commits a group of batches in one transaction; when that fails, each batch alone. The
  // customers written are appended to `written`.
  void CommitGroup(absl::Span<EventBatch* const> group, std::vector<cache::ProfileWrite>& written);
  absl::Status WriteEvents(absl::Span<EventBatch* const> group, std::vector<cache::ProfileWrite>& written);
  // Runs fn in a transaction on the event writer's own connection (opened, or opened again after
  // it broke, here). The writer thread only.
  absl::Status InWriterTransaction(const std::function<absl::Status(sql::Connection&)>& fn);
  // Saves (updates) every record whose behaviour summary changed, each at the next version and
  // checked against the one it was loaded at; appends each customer's bytes to `written`.
  absl::Status SaveSummaries(sql::Connection& c, absl::Span<internal::CustomerRecordSummaryView* const> records,
                             std::vector<cache::ProfileWrite>& written);

  sql::Database& db_;
  idempotency::Store idempotency_;  // UpsertCustomer's request ids
  ChangeFeed& feed_;
  cache::ProfileCache* cache_;
  StoreOptions options_;
  SurvivorshipRules rules_;  // from options_
  // Attribute name → AttributeValue value case, as declared in the database (never changes).
  std::mutex attribute_types_mu_;
  std::map<std::string, int> attribute_types_;
  // RecordEvents batches waiting for the event writer, then committed groups waiting for the
  // acknowledger.
  util::WorkQueue<std::unique_ptr<EventBatch>> events_queue_;
  // The event writer's connection, outside the pool so that its page cache stays warm (see
  // sql::Database::OpenDedicated). The writer thread only.
  std::unique_ptr<sql::Connection> event_conn_;
  util::WorkQueue<CommittedGroup> acks_queue_;
  std::atomic<int64_t> queued_events_{0};  // from RecordEvents until acknowledged
  std::thread event_acker_;                // last: started once everything above exists
  std::thread event_writer_;
};

}  // namespace ecrm::infostore

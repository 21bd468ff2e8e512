// RecordEvents (group commit, bulk writes) and ListEvents.
#include <pthread.h>

#include <algorithm>
#include <map>
#include <utility>

#include <google/protobuf/arena.h>
#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <google/protobuf/wire_format_lite.h>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "customer_store.h"
#include "ecrm/status/macros.h"
#include "ecrm/util/page_token.h"
#include "identifiers.h"
#include "store_helpers.h"

namespace ecrm::infostore {

using internal::CustomerRecord;
using internal::CustomerRecordSummaryView;

namespace {
// Change.event (field 7) holding the event as stored plus its columns' fields (two serialised
// parts of one Event parse as their merge), encoded as a protobuf field: appended to a
// serialised Change it parses as that event. ChangeFeed::Read adds the customer.
std::string EventField(const std::string& stored, const std::string& columns) {
  std::string out;
  {
    google::protobuf::io::StringOutputStream buffer(&out);
    google::protobuf::io::CodedOutputStream os(&buffer);
    os.WriteTag(google::protobuf::internal::WireFormatLite::MakeTag(
        v1::Change::kEventFieldNumber, google::protobuf::internal::WireFormatLite::WIRETYPE_LENGTH_DELIMITED));
    os.WriteVarint32(static_cast<uint32_t>(stored.size() + columns.size()));
    os.WriteString(stored);
    os.WriteString(columns);
  }
  return out;
}

// A record's bytes from its view, into `record` (reused), and its customer's bytes (for the
// cache): the view writes its one parsed field, the customer, first — a tag and a length — and
// then every field it left unparsed, as read.
absl::Status RecordBytes(const CustomerRecordSummaryView& view, std::string& record, std::string& customer) {
  record.clear();
  if (!view.SerializeToString(&record)) return absl::InternalError("a customer record does not serialise");
  google::protobuf::io::CodedInputStream in(reinterpret_cast<const uint8_t*>(record.data()),
                                            static_cast<int>(record.size()));
  uint32_t size = 0;
  if (in.ReadTag() != google::protobuf::internal::WireFormatLite::MakeTag(
                          CustomerRecord::kCustomerFieldNumber,
                          google::protobuf::internal::WireFormatLite::WIRETYPE_LENGTH_DELIMITED) ||
      !in.ReadVarint32(&size) ||
      in.CurrentPosition() + static_cast<int64_t>(size) > static_cast<int64_t>(record.size())) {
    return absl::InternalError("a customer record does not begin with its customer");
  }
  customer.assign(record, in.CurrentPosition(), size);
  return absl::OkStatus();
}

// The most events one group commit takes: big groups spread the per-customer work (summary
// rows, index pages, cache writes) over many events; this bounds a commit's memory and time.
constexpr int kMaxGroupEvents = 40000;
// The most while SQLite's checkpointer waits for the writers (sql::Database::checkpoint_waiting):
// it holds them off once what is left to copy is short, which a whole group is not.
constexpr int kShortGroupEvents = 1000;
// The most ids (customers, or identifiers' parameters) one lookup statement takes: SQLite allows
// 32,766 parameters, PostgreSQL 65,535, and a group of random customers names up to 40,000.
constexpr size_t kMaxIdsPerStatement = 4096;
}  // namespace

// One RecordEvents batch waiting for, or in, a group commit.
struct CustomerStore::EventBatch {
  std::shared_ptr<v1::RecordEventsRequest> request;
  std::vector<common::v1::Identifier> refs;  // normalised identifiers, parallel to the events
  std::vector<std::string> stored;           // each event's bytes as stored (SplitStoredEvent)
  std::vector<std::string> columns;          // and its fields kept in columns, serialised
  EventsDone done;
  EventBatchResult result;
  absl::Status status;
};

// A group the writer has committed (or failed), for the acknowledger.
struct CustomerStore::CommittedGroup {
  std::vector<std::unique_ptr<EventBatch>> batches;
  std::vector<cache::ProfileWrite> written;  // the customers to write to the cache, serialised
};

CustomerStore::CustomerStore(sql::Database& db, ChangeFeed& feed, cache::ProfileCache* cache, StoreOptions options)
    : db_(db),
      idempotency_(db),
      feed_(feed),
      cache_(cache),
      options_(std::move(options)),
      rules_{options_.source_priority, options_.max_attributes},
      event_acker_([this] { AckEventsLoop(); }),
      event_writer_([this] { WriteEventsLoop(); }) {}

CustomerStore::~CustomerStore() {
  // The writer commits what is queued, then the acknowledger acknowledges it.
  events_queue_.Close();
  event_writer_.join();
  acks_queue_.Close();
  event_acker_.join();
}

absl::Status CustomerStore::RecordEvents(std::shared_ptr<v1::RecordEventsRequest> request, EventsDone done) {
  const v1::RecordEventsRequest& batch = *request;
  if (batch.events_size() == 0) return Invalid("events", "a batch needs at least one event");
  if (batch.events_size() > 1000) return Invalid("events", "at most 1,000 events per batch");
  const int64_t now = NowMicros();
  auto mine = std::make_unique<EventBatch>();
  mine->refs.resize(batch.events_size());
  for (int i = 0; i < batch.events_size(); ++i) {
    const v1::Event& e = batch.events(i);
    const std::string f = absl::StrCat("events[", i, "]");
    if (e.event_id().empty() || e.event_id().size() > 128) return Invalid(f + ".event_id", "must be 1–128 characters");
    if (!ValidName(e.type(), 64)) return Invalid(f + ".type", "must be [a-z0-9_]{1,64}, e.g. page_view");
    if (!e.has_occurred_at()) return Invalid(f + ".occurred_at", "is required");
    if (Micros(e.occurred_at()) > now + absl::ToInt64Microseconds(options_.max_future_skew)) {
      return Invalid(f + ".occurred_at", "is more than 5 minutes in the future");
    }
    if (e.properties_size() > 50) return Invalid(f + ".properties", "at most 50 properties");
    for (const auto& [name, value] : e.properties()) {
      if (!ValidName(name, 64))
        return Invalid(absl::StrCat(f, ".properties[\"", name, "\"]"), "names are [a-z0-9_]{1,64}");
      ECRM_RETURN_IF_ERROR(
          ValidateValue(value, absl::StrCat(f, ".properties[\"", name, "\"]"), options_.max_value_bytes));
    }
    if (e.customer().ref_case() == common::v1::CustomerRef::kIdentifier) {
      ECRM_ASSIGN_OR_RETURN(mine->refs[i],
                            Normalize(e.customer().identifier(), f + ".customer.identifier", options_.default_region));
    } else if (e.customer().ref_case() != common::v1::CustomerRef::kCustomerId) {
      return Invalid(f + ".customer", "set customer_id or identifier");
    }
  }
  // The stored forms are made here, beside the commits of other batches: the row's bytes, and
  // the columns' fields for the feed (a feed change has no such columns); the customer id is
  // resolved by the commit, and readers take it from a column.
  const google::protobuf::Timestamp received = Ts(now);
  mine->stored.reserve(batch.events_size());
  mine->columns.reserve(batch.events_size());
  for (v1::Event& e : *request->mutable_events()) {
    e.clear_customer_id();
    *e.mutable_recorded_at() = received;
    StoredEventParts parts = SplitStoredEvent(e);
    mine->stored.push_back(std::move(parts.bytes));
    mine->columns.push_back(std::move(parts.columns));
  }
  mine->request = std::move(request);
  mine->done = std::move(done);
  queued_events_ += batch.events_size();
  events_queue_.Push(std::move(mine));
  return absl::OkStatus();
}

void CustomerStore::WriteEventsLoop() {
  pthread_setname_np(pthread_self(), "event-writer");
  for (;;) {
    // Group commit: every batch queued while the last commit ran goes into the next one (one
    // transaction, one WAL write, each customer's summary and cache entry written once).
    int events = 0;
    std::vector<std::unique_ptr<EventBatch>> group = events_queue_.PopWhile([&](const auto& b) {
      events += b->request->events_size();
      return events <= (db_.checkpoint_waiting() ? kShortGroupEvents : kMaxGroupEvents);
    });
    if (group.empty()) return;  // closed, and every queued batch is committed
    CommittedGroup committed;
    std::vector<EventBatch*> batches;
    for (auto& b : group) batches.push_back(b.get());
    CommitGroup(batches, committed.written);
    committed.batches = std::move(group);
    acks_queue_.Push(std::move(committed));
  }
}

void CustomerStore::AckEventsLoop() {
  pthread_setname_np(pthread_self(), "event-acks");
  for (;;) {
    std::vector<CommittedGroup> groups = acks_queue_.PopWhile([](const CommittedGroup&) { return true; });
    if (groups.empty()) return;  // closed, and every committed group is acknowledged
    for (CommittedGroup& group : groups) {
      // The cache first, so a client that reads after its acknowledgement sees its events.
      if (!group.written.empty()) {
        feed_.NotifyCommitted();
        if (cache_ != nullptr) cache_->Write(group.written);  // one round trip
      }
      int64_t events = 0;
      for (auto& b : group.batches) {
        events += b->request->events_size();
        if (b->status.ok()) {
          b->done(b->result);
        } else {
          b->done(b->status);
        }
      }
      group.batches.clear();  // the requests are freed before the next group is taken
      queued_events_ -= events;
    }
  }
}

void CustomerStore::CommitGroup(absl::Span<EventBatch* const> group, std::vector<cache::ProfileWrite>& written) {
  absl::Status s = WriteEvents(group, written);
  if (!s.ok() && group.size() > 1) {
    // One batch's error (an unknown customer, say) must not fail the others: commit each alone.
    for (EventBatch* b : group) b->status = WriteEvents({b}, written);
    return;
  }
  for (EventBatch* b : group) b->status = s;
}

absl::Status CustomerStore::WriteEvents(absl::Span<EventBatch* const> group,
                                        std::vector<cache::ProfileWrite>& written) {
  // The group's events in order, with the batch each belongs to.
  struct Item {
    EventBatch* batch;
    int index;
    const v1::Event& event() const { return batch->request->events(index); }
    const common::v1::Identifier& ref() const { return batch->refs[index]; }
    const std::string& stored() const { return batch->stored[index]; }
    const std::string& columns() const { return batch->columns[index]; }
    bool by_identifier() const { return event().customer().ref_case() == common::v1::CustomerRef::kIdentifier; }
  };
  std::vector<Item> items;
  for (EventBatch* b : group) {
    for (int i = 0; i < b->request->events_size(); ++i) items.push_back({b, i});
  }
  const size_t written_before = written.size();
  absl::Status status = InWriterTransaction([&](sql::Connection& c) -> absl::Status {
    ChangeFeed::Pending pending;
    for (EventBatch* b : group) b->result = EventBatchResult();
    written.resize(written_before);  // a retried transaction starts again
    // Every customer concerned, by id, as a summary view: an event changes only the behaviour
    // summary (and version), so the rest of each record is neither parsed nor rebuilt — it is
    // written back as the bytes read. The views live on one arena, freed with the attempt.
    google::protobuf::ArenaOptions arena_options;
    arena_options.start_block_size = 64 << 10;
    arena_options.max_block_size = 1 << 20;
    google::protobuf::Arena arena(arena_options);
    absl::flat_hash_map<std::string, CustomerRecordSummaryView*> touched;
    auto view_of = [&](const std::string& id) -> CustomerRecordSummaryView*& { return touched[id]; };
    auto new_view = [&] { return google::protobuf::Arena::CreateMessage<CustomerRecordSummaryView>(&arena); };
    absl::flat_hash_set<const CustomerRecordSummaryView*> changed;  // those created or with a new event
    // Each distinct identifier and customer id the events name gets a slot, found by hash (no
    // per-event copies or tree lookups): a group holds tens of thousands of events over a few
    // thousand customers.
    struct Ident {
      const common::v1::Identifier* ref;
      int first_use;      // index (in its batch) of the first event naming it
      std::string owner;  // its customer ("" while unknown)
    };
    std::vector<Ident> idents;
    absl::flat_hash_map<std::tuple<int, absl::string_view, absl::string_view>, int> ident_slot;
    std::vector<int> ident_of(items.size(), -1);  // each event's identifier slot, -1 if by id
    for (size_t k = 0; k < items.size(); ++k) {
      if (!items[k].by_identifier()) continue;
      const common::v1::Identifier& ref = items[k].ref();
      auto [it, added] = ident_slot.try_emplace({ref.type(), ref.source(), ref.value()}, idents.size());
      if (added) idents.push_back({&ref, items[k].index, ""});
      ident_of[k] = it->second;
    }

    // 1. The owners of every identifier named, a few thousand per statement.
    for (size_t start = 0; start < idents.size(); start += kMaxIdsPerStatement / 3) {
      std::vector<IdKey> keys;
      for (size_t i = start; i < std::min(idents.size(), start + kMaxIdsPerStatement / 3); ++i) {
        keys.push_back(KeyOf(*idents[i].ref));
      }
      PadToPowerOfTwo(keys);
      std::string sql =
          "SELECT type, source, value, customer_id FROM identifiers WHERE (type, source, value) IN (VALUES ";
      std::vector<sql::Value> params;
      for (size_t i = 0; i < keys.size(); ++i) {
        absl::StrAppend(&sql, i ? ", " : "", "(CAST($", 3 * i + 1, " AS INTEGER), $", 3 * i + 2, ", $", 3 * i + 3, ")");
        params.emplace_back(std::get<0>(keys[i]));
        params.emplace_back(std::get<1>(keys[i]));
        params.emplace_back(std::get<2>(keys[i]));
      }
      sql += ")";
      ECRM_ASSIGN_OR_RETURN(sql::Result r, c.Execute(sql, params));
      for (sql::Row row : r) {
        auto it = ident_slot.find({static_cast<int>(row.Int(0)), row.Text(1), row.Text(2)});
        if (it != ident_slot.end()) idents[it->second].owner = std::string(row.Text(3));
      }
    }
    // 2. An unknown identifier creates its customer (anonymous for a device id); a later login
    //    with a strong identifier merges it into the identified customer.
    for (Ident& i : idents) {
      if (!i.owner.empty()) continue;
      const common::v1::Identifier& ident = *i.ref;
      ECRM_RETURN_IF_ERROR(CheckNotErased(c, ident, absl::StrCat("events[", i.first_use, "].customer.identifier")));
      CustomerRecord fresh;
      fresh.mutable_customer()->set_id(NewId("c_"));
      *fresh.mutable_customer()->add_identifiers() = ident;
      // A concurrent batch may claim the same new identifier first: then adopt its customer
      // instead of aborting this whole batch.
      ECRM_ASSIGN_OR_RETURN(
          sql::Result claimed,
          c.Execute("INSERT INTO identifiers (type, source, value, customer_id) "
                    "VALUES ($1, $2, $3, $4) ON CONFLICT (type, source, value) DO NOTHING",
                    {static_cast<int>(ident.type()), ident.source(), ident.value(), fresh.customer().id()}));
      if (claimed.rows_affected() == 0) {
        ECRM_ASSIGN_OR_RETURN(sql::Result winner,
                              c.Execute("SELECT customer_id FROM identifiers WHERE type = $1 AND source = $2 "
                                        "AND value = $3",
                                        {static_cast<int>(ident.type()), ident.source(), ident.value()}));
        if (winner.empty()) return absl::AbortedError("an identifier was claimed and released concurrently");
        i.owner = std::string(winner.front().Text(0));
        continue;
      }
      ECRM_RETURN_IF_ERROR(AsContention(Save(c, fresh, true)));
      feed_.Append(pending, v1::CHANGE_KIND_IDENTITY, fresh.customer());
      i.owner = fresh.customer().id();
      CustomerRecordSummaryView* view = new_view();
      if (!view->ParseFromString(fresh.SerializeAsString())) return absl::InternalError("a new record does not parse");
      view_of(i.owner) = view;
      changed.insert(view);
    }
    // 3. Every customer concerned, locked in id order, a few thousand per statement. An id
    //    merged since (a direct reference to a merged customer, or a concurrent merge) redirects
    //    to its survivor, loaded on its own.
    struct Named {
      absl::string_view id;               // as the events name it (a view of an owner or of a request)
      std::string live;                   // the live customer it resolves to
      CustomerRecordSummaryView* record;  // that customer's record, in `touched`
    };
    std::vector<Named> names;
    absl::flat_hash_map<absl::string_view, int> name_slot;
    std::vector<int> name_of(items.size());  // each event's slot in `names`
    for (size_t k = 0; k < items.size(); ++k) {
      absl::string_view id =
          ident_of[k] >= 0 ? absl::string_view(idents[ident_of[k]].owner) : items[k].event().customer().customer_id();
      auto [it, added] = name_slot.try_emplace(id, names.size());
      if (added) names.push_back({id, "", nullptr});
      name_of[k] = it->second;
    }
    // In id order, in statements of at most kMaxIdsPerStatement ids (a group of random customers
    // names tens of thousands: one statement would pass the databases' limits on parameters),
    // so the locks are still taken in id order.
    std::vector<absl::string_view> ids;
    for (const Named& n : names) {
      if (!touched.contains(n.id)) ids.push_back(n.id);
    }
    std::sort(ids.begin(), ids.end());
    for (size_t start = 0; start < ids.size(); start += kMaxIdsPerStatement) {
      std::vector<sql::Value> params;
      for (size_t i = start; i < std::min(ids.size(), start + kMaxIdsPerStatement); ++i) {
        params.emplace_back(sql::TextRef{ids[i]});
      }
      PadToPowerOfTwo(params);
      std::string sql = absl::StrCat("SELECT id, merged_into, record FROM customers WHERE id IN (",
                                     Placeholders(1, static_cast<int>(params.size())), ") ORDER BY id",
                                     c.dialect() == sql::Dialect::kPostgres ? " FOR UPDATE" : "");
      ECRM_ASSIGN_OR_RETURN(sql::Result r, c.Execute(sql, params));
      for (sql::Row row : r) {
        if (!row.IsNull(1)) continue;  // merged: resolved below
        const absl::string_view bytes = row.Text(2);
        CustomerRecordSummaryView* view = new_view();
        if (!view->ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
          return absl::DataLossError(absl::StrCat("customer \"", row.Text(0), "\" has an unreadable record"));
        }
        view_of(std::string(row.Text(0))) = view;
      }
    }
    for (Named& n : names) {
      const std::string named(n.id);
      if (auto it = touched.find(named); it != touched.end()) {
        n.live = named;
        n.record = it->second;
        continue;
      }
      common::v1::CustomerRef ref;
      ref.set_customer_id(named);
      bool found = false;
      ECRM_ASSIGN_OR_RETURN(n.live, ResolveId(c, ref, &found));
      if (!found) {
        for (size_t k = 0; k < items.size(); ++k) {
          if (ident_of[k] < 0 && items[k].event().customer().customer_id() == named) {
            return absl::NotFoundError(
                absl::StrCat("events[", items[k].index, "].customer: customer \"", named, "\" does not exist"));
          }
        }
        return absl::AbortedError(absl::StrCat("the owner of an identifier, ", named, ", was erased concurrently"));
      }
      CustomerRecordSummaryView*& live = view_of(n.live);
      if (live == nullptr) {
        ECRM_ASSIGN_OR_RETURN(Loaded l, LoadLive(c, n.live));
        live = new_view();
        if (!live->ParseFromString(l.record.SerializeAsString())) return absl::InternalError("a record does not parse");
      }
      n.record = live;
    }
    // 4. The events, in multi-row inserts; those already recorded come back as duplicates. An
    //    id repeated within the group is stored as its first use. The rows go in customer order,
    //    so the per-customer index is written leaf after leaf rather than at random.
    std::vector<const std::string*> owner(items.size());  // the live customer of each event
    std::vector<size_t> order;                            // the events to insert, in that order
    order.reserve(items.size());
    absl::flat_hash_set<absl::string_view> in_group;
    for (size_t k = 0; k < items.size(); ++k) {
      owner[k] = &names[name_of[k]].live;
      if (in_group.insert(items[k].event().event_id()).second) order.push_back(k);
    }
    std::vector<std::pair<absl::string_view, int64_t>> key(items.size());  // (customer, time)
    for (size_t k : order) key[k] = {*owner[k], Micros(items[k].event().occurred_at())};
    std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return key[a] < key[b]; });
    std::vector<sql::Value> rows;
    rows.reserve(order.size() * 6);
    for (size_t k : order) {
      const v1::Event& e = items[k].event();
      rows.emplace_back(sql::TextRef{e.event_id()});  // all live until the insert is done
      rows.emplace_back(sql::TextRef{*owner[k]});
      rows.emplace_back(sql::TextRef{*owner[k]});
      rows.emplace_back(sql::TextRef{e.type()});
      rows.emplace_back(Micros(e.occurred_at()));
      rows.emplace_back(sql::BlobRef{items[k].stored()});
    }
    static const std::vector<std::string> kEventColumns = {"event_id", "customer_id", "recorded_for",
                                                           "type",     "occurred_at", "event"};
    std::vector<std::string> inserted_ids;
    ECRM_RETURN_IF_ERROR(c.InsertBatch("events", kEventColumns, rows,
                                       "ON CONFLICT (event_id) DO NOTHING RETURNING event_id", 256, &inserted_ids)
                             .status());
    // The new ones: RETURNING lists them in the order inserted, a subsequence of `order` (ids
    // there are distinct, so a walk along both finds them); should a database not keep that
    // order, they are matched by id instead.
    std::vector<bool> is_new(items.size(), false);
    size_t matched = 0;
    for (size_t k : order) {
      if (matched < inserted_ids.size() && inserted_ids[matched] == items[k].event().event_id()) {
        is_new[k] = true;
        ++matched;
      }
    }
    if (matched != inserted_ids.size()) {
      absl::flat_hash_set<absl::string_view> ids(inserted_ids.begin(), inserted_ids.end());
      for (size_t k : order) is_new[k] = ids.contains(items[k].event().event_id());
    }
    // Each event change's event, encoded (for ChangeFeed::Flush; none for the changes before them),
    // and its customer, whose version after this commit it names.
    std::vector<std::string> event_fields(pending.size());
    std::vector<std::pair<size_t, const CustomerRecordSummaryView*>> event_changes;  // index in pending, customer
    for (size_t k = 0; k < items.size(); ++k) {
      const v1::Event& e = items[k].event();
      EventBatchResult& result = items[k].batch->result;
      if (!is_new[k]) {  // recorded before, or earlier in this group (not inserted)
        ++result.duplicates;
        continue;
      }
      ++result.accepted;
      CustomerRecordSummaryView* record = names[name_of[k]].record;
      changed.insert(record);
      ApplyEvent(e, *record->mutable_customer()->mutable_behaviour());
      feed_.AppendEvent(pending, record->customer().id());
      event_changes.emplace_back(pending.size() - 1, record);
      event_fields.push_back(EventField(items[k].stored(), items[k].columns()));
    }
    // 5. Every changed summary written back once, in id order (a replayed batch writes none);
    //    the customers' bytes written go to the cache.
    std::vector<CustomerRecordSummaryView*> save(changed.size());
    std::transform(changed.begin(), changed.end(), save.begin(),
                   [](const CustomerRecordSummaryView* v) { return const_cast<CustomerRecordSummaryView*>(v); });
    std::sort(save.begin(), save.end(),
              [](const auto* a, const auto* b) { return a->customer().id() < b->customer().id(); });
    ECRM_RETURN_IF_ERROR(SaveSummaries(c, save, written));
    for (const auto& [i, view] : event_changes) pending[i].set_customer_version(view->customer().version());
    return feed_.Flush(c, pending, &event_fields);
  });
  if (!status.ok()) written.resize(written_before);  // rolled back: nothing to cache
  return status;
}

absl::Status CustomerStore::InWriterTransaction(const std::function<absl::Status(sql::Connection&)>& fn) {
  if (event_conn_ == nullptr) {
    ECRM_ASSIGN_OR_RETURN(event_conn_, db_.OpenDedicated(options_.event_writer_cache_mib));
  }
  absl::Status s = sql::InTransaction(*event_conn_, fn);
  // A lost connection, or one whose rollback failed, is opened again for the next group.
  if (event_conn_->broken() || event_conn_->in_transaction()) event_conn_.reset();
  return s;
}

absl::Status CustomerStore::SaveSummaries(sql::Connection& c, absl::Span<CustomerRecordSummaryView* const> records,
                                          std::vector<cache::ProfileWrite>& written) {
  // Each customer's version and update time, then its bytes: the customer's for the cache,
  // and the record's for its row.
  const int64_t now = NowMicros();
  const google::protobuf::Timestamp now_ts = Ts(now);
  written.reserve(written.size() + records.size());
  auto next = [&](CustomerRecordSummaryView& view, std::string& record) -> absl::Status {
    internal::CustomerSummaryView& cu = *view.mutable_customer();
    cu.set_version(cu.version() + 1);
    *cu.mutable_updated_at() = now_ts;
    cache::ProfileWrite& w = written.emplace_back();
    w.id = cu.id();
    w.version = cu.version();
    return RecordBytes(view, record, w.data);
  };
  if (c.dialect() == sql::Dialect::kSqlite) {  // no round trips to save: a statement per customer
    std::string bytes;                         // reused
    for (CustomerRecordSummaryView* view : records) {
      ECRM_RETURN_IF_ERROR(next(*view, bytes));
      const internal::CustomerSummaryView& cu = view->customer();
      ECRM_ASSIGN_OR_RETURN(
          sql::Result r, c.Execute("UPDATE customers SET version = $1, updated_at = $2, record = $3 "
                                   "WHERE id = $4 AND version = $5",
                                   {cu.version(), now, sql::BlobRef{bytes}, sql::TextRef{cu.id()}, cu.version() - 1}));
      if (r.rows_affected() != 1)
        return absl::AbortedError(absl::StrCat("customer ", cu.id(), " changed concurrently"));
    }
    return absl::OkStatus();
  }
  // PostgreSQL: one UPDATE … FROM (VALUES …) per 500 customers, each row checked against the
  // version it was read at.
  std::vector<std::string> bytes;
  for (size_t start = 0; start < records.size(); start += 500) {
    const size_t n = std::min<size_t>(500, records.size() - start);
    std::string sql =
        "UPDATE customers AS c SET version = v.version, updated_at = v.updated_at, record = v.record "
        "FROM (VALUES ";
    std::vector<sql::Value> params;
    params.reserve(5 * n);
    bytes.resize(n);
    for (size_t i = 0; i < n; ++i) {
      CustomerRecordSummaryView& view = *records[start + i];
      ECRM_RETURN_IF_ERROR(next(view, bytes[i]));
      const internal::CustomerSummaryView& cu = view.customer();
      absl::StrAppend(&sql, i ? ", " : "", "($", 5 * i + 1, "::text, $", 5 * i + 2, "::bigint, $", 5 * i + 3,
                      "::bigint, $", 5 * i + 4, "::bytea, $", 5 * i + 5, "::bigint)");
      params.emplace_back(sql::TextRef{cu.id()});
      params.emplace_back(cu.version());
      params.emplace_back(now);
      params.emplace_back(sql::BlobRef{bytes[i]});
      params.emplace_back(cu.version() - 1);
    }
    sql += ") AS v(id, version, updated_at, record, old_version) WHERE c.id = v.id AND c.version = v.old_version";
    ECRM_ASSIGN_OR_RETURN(sql::Result r, c.Execute(sql, params));
    if (r.rows_affected() != static_cast<int64_t>(n)) return absl::AbortedError("customers changed concurrently");
  }
  return absl::OkStatus();
}

absl::StatusOr<v1::ListEventsResponse> CustomerStore::ListEvents(const v1::ListEventsRequest& request) {
  const int limit = PageSize(request.page_size());
  if (request.types_size() > 20) return Invalid("types", "at most 20");
  ECRM_ASSIGN_OR_RETURN(std::optional<util::PageCursor> cursor,
                        util::DecodePageToken("ListEvents", request.page_token()));
  const int64_t before_at = cursor ? cursor->number : std::numeric_limits<int64_t>::max();
  const std::string before_id = cursor ? cursor->text : "";
  const int64_t start = request.has_start_time() ? Micros(request.start_time()) : std::numeric_limits<int64_t>::min();
  const int64_t end = request.has_end_time() ? Micros(request.end_time()) : std::numeric_limits<int64_t>::max();
  ECRM_ASSIGN_OR_RETURN(sql::Lease conn, db_.Acquire());
  bool found = false;
  ECRM_ASSIGN_OR_RETURN(std::string id, ResolveId(*conn, request.customer(), &found));
  if (!found) return absl::NotFoundError("customer: no such customer");
  // Newest first; keyset pagination on (occurred_at, event_id).
  std::string sql = absl::StrCat("SELECT occurred_at, event_id, ", kStoredEventColumns,
                                 " FROM events WHERE customer_id = $1 AND occurred_at >= $2 AND occurred_at < $3");
  std::vector<sql::Value> params = {id, start, end};
  if (!before_id.empty()) {
    sql += " AND (occurred_at < $4 OR (occurred_at = $4 AND event_id < $5))";
    params.emplace_back(before_at);
    params.emplace_back(before_id);
  }
  if (request.types_size() > 0) {
    sql += " AND type IN (";
    for (int i = 0; i < request.types_size(); ++i) {
      absl::StrAppend(&sql, i ? ", $" : "$", params.size() + 1);
      params.emplace_back(request.types(i));
    }
    sql += ")";
  }
  absl::StrAppend(&sql, " ORDER BY occurred_at DESC, event_id DESC LIMIT $", params.size() + 1);
  params.emplace_back(limit + 1);
  ECRM_ASSIGN_OR_RETURN(sql::Result r, conn->Execute(sql, params));
  v1::ListEventsResponse out;
  for (size_t i = 0; i < r.size() && static_cast<int>(i) < limit; ++i) {
    ECRM_ASSIGN_OR_RETURN(*out.add_events(), StoredEvent(r.row(i), 2));
  }
  if (static_cast<int>(r.size()) > limit) {
    out.set_next_page_token(
        util::EncodePageToken("ListEvents", {r.row(limit - 1).Int(0), std::string(r.row(limit - 1).Text(1))}));
  }
  return out;
}

}  // namespace ecrm::infostore

#include "feed.h"

#include <pthread.h>

#include <chrono>
#include <iterator>
#include <limits>
#include <map>
#include <mutex>
#include <shared_mutex>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "ecrm/log/log.h"
#include "ecrm/status/macros.h"
#include "ecrm/util/util.h"

namespace ecrm::segmentation {
namespace {

using infostore::v1::Change;
using infostore::v1::ChangeKind;

// The event that tells the information store (and through it every engine) that a customer
// entered or left a segment. Its id is derived from what it is about, so a replay of the same
// change after a crash is recorded once.
infostore::v1::Event MembershipEvent(const MembershipChange& m, const std::string& customer_id,
                                     absl::string_view cause) {
  infostore::v1::Event e;
  e.set_type(m.entered ? "segment_entered" : "segment_exited");
  e.set_event_id(absl::StrCat(e.type(), ":", m.segment_id, ":", customer_id, ":", cause));
  e.mutable_customer()->set_customer_id(customer_id);
  *e.mutable_occurred_at() = util::Ts(absl::ToUnixMicros(m.at));
  (*e.mutable_properties())["segment_id"].set_string_value(m.segment_id);
  return e;
}

}  // namespace

namespace {
void Count(SegmentationMetrics& metrics, const std::vector<MembershipChange>& memberships) {
  for (const MembershipChange& m : memberships) (m.entered ? metrics.entered : metrics.exited).Increment();
}
}  // namespace

struct FeedConsumer::Unsaved {
  // Changed customers: true when more than their events changed (their record is written too),
  // false when their events alone (those events go to the events log, in `logged`).
  absl::flat_hash_map<CustomerNo, bool> customers;
  absl::flat_hash_set<std::string> removed;
  // Each event applied to a customer whose events alone changed (the events log), and the
  // customers erased (their events leave the log).
  struct Logged {
    CustomerNo customer;
    std::string type;
    int64_t seconds;
  };
  std::vector<Logged> logged;
  std::vector<CustomerNo> erased;
  std::vector<infostore::v1::Event> events;  // segment entries and exits
  std::vector<TriggeredEntry> entries;
  std::vector<CampaignOutcome> outcomes;
  std::optional<int64_t> position;
  std::optional<absl::Time> caught_up;  // every change committed before it is in this batch or saved
  int64_t changes = 0;
  size_t memberships_entered = 0, memberships_exited = 0;
  bool memberships = false;                   // members to save (Segments::TakeUnsaved) with no event
  std::shared_ptr<const ScoreUpdate> scores;  // a refit to save
  bool clear_scores = false;                  // the saved refit to drop (a resync cleared the scores)

  bool empty() const {
    return customers.empty() && removed.empty() && logged.empty() && erased.empty() && events.empty() &&
           entries.empty() && outcomes.empty() && !position && !memberships && scores == nullptr && !clear_scores;
  }
  // Forgets what was staged about a customer now removed (it is never published or counted).
  void Drop(const std::string& id) {
    std::erase_if(events, [&](const infostore::v1::Event& e) { return e.customer().customer_id() == id; });
    std::erase_if(entries, [&](const TriggeredEntry& e) { return e.customer_id == id; });
    std::erase_if(outcomes, [&](const CampaignOutcome& o) { return o.customer_id == id; });
  }
  // Takes in what was staged after this batch (a failed write put back in front of it).
  void Absorb(Unsaved&& newer) {
    for (const std::string& id : newer.removed) Drop(id);
    for (const auto& [n, whole] : newer.customers) customers[n] = customers[n] || whole;
    removed.insert(newer.removed.begin(), newer.removed.end());
    std::move(newer.logged.begin(), newer.logged.end(), std::back_inserter(logged));
    erased.insert(erased.end(), newer.erased.begin(), newer.erased.end());
    events.insert(events.end(), newer.events.begin(), newer.events.end());
    entries.insert(entries.end(), newer.entries.begin(), newer.entries.end());
    outcomes.insert(outcomes.end(), newer.outcomes.begin(), newer.outcomes.end());
    if (newer.position) position = newer.position;
    if (newer.caught_up) caught_up = std::max(caught_up.value_or(absl::InfinitePast()), *newer.caught_up);
    changes += newer.changes;
    memberships_entered += newer.memberships_entered;
    memberships_exited += newer.memberships_exited;
    memberships = memberships || newer.memberships;
    if (newer.clear_scores) {
      clear_scores = true;
      scores = nullptr;
    }
    if (newer.scores != nullptr) scores = newer.scores;
  }
};

FeedConsumer::FeedConsumer(sql::Database& db, Features& features, Segments& segments, InformationStore& infostore,
                           outbox::Outbox& outbox, SegmentationMetrics& metrics, FeedOptions options)
    : db_(db),
      features_(features),
      segments_(segments),
      infostore_(infostore),
      outbox_(outbox),
      metrics_(metrics),
      options_(options),
      started_us_(absl::ToUnixMicros(absl::Now())),
      unsaved_(std::make_unique<Unsaved>()) {
  // A new or edited segment's members are saved by the next transaction.
  segments_.SetOnUnsaved([this] {
    {
      std::lock_guard lock(mu_);
      unsaved_->memberships = true;
    }
    cv_.notify_all();
  });
}

FeedConsumer::~FeedConsumer() {
  Stop();
  segments_.SetOnUnsaved(nullptr);
}

absl::Status FeedConsumer::Load() {
  ECRM_ASSIGN_OR_RETURN(sql::Result pos,
                        db_.Execute("SELECT position, next_number, saved_at FROM feed_position WHERE id = 1"));
  int64_t next_number = 0;
  if (!pos.empty()) {
    position_ = pos.front().Int(0);
    next_number = pos.front().Int(1);
    if (pos.front().Int(2) != 0) saved_at_ = absl::FromUnixMicros(pos.front().Int(2));
  }
  applied_position_ = position_.load();
  metrics_.feed_position.Set(static_cast<double>(position_.load()));
  std::unique_lock lock(features_.mutex());
  // Each customer under the number it had (the saved memberships are bitmaps of numbers); rows
  // saved before numbers were (none yet) take the next ones, written back below.
  // Each customer's events are in customer_events when saved since they were split from the
  // record (the record then holds none); else in the record.
  ECRM_ASSIGN_OR_RETURN(
      sql::Result rows,
      db_.Execute("SELECT c.customer_id, c.record, c.number, e.events, e.logged_through FROM "
                  "customers c LEFT JOIN customer_events e ON e.number = c.number ORDER BY c.number"));
  std::vector<std::pair<std::string, int64_t>> numbered_now;
  std::vector<int64_t> logged_through;  // by number
  for (int pass = 0; pass < 2; ++pass) {
    for (size_t i = 0; i < rows.size(); ++i) {
      const sql::Row r = rows.row(i);
      if (r.IsNull(2) != (pass == 1)) continue;
      if (pass == 0) {
        const int64_t number = r.Int(2);
        if (number < int64_t{features_.end()} || number >= int64_t{std::numeric_limits<CustomerNo>::max()}) {
          return absl::DataLossError(
              absl::StrCat("saved customer \"", r.Text(0), "\" has number ", number, ", taken or out of range"));
        }
        features_.ReserveNumbers(static_cast<CustomerNo>(number));
      } else {
        numbered_now.emplace_back(std::string(r.Text(0)), int64_t{features_.end()});
      }
      internal::CustomerFeaturesRecord record;
      absl::string_view bytes = r.Text(1);
      if (!record.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
        return absl::DataLossError(absl::StrCat("saved features of customer \"", r.Text(0), "\" do not parse"));
      }
      if (!options_.partition.Holds(r.Text(0))) {
        return absl::FailedPreconditionError(
            "this database holds customers of another --partition: start a replica of a new partition on a "
            "database of its own");
      }
      const CustomerNo n = features_.FromRecord(r.Text(0), record);
      if (!r.IsNull(3)) ECRM_RETURN_IF_ERROR(features_.EventsFromBytes(n, r.Text(3)));
      if (!r.IsNull(4)) {
        if (logged_through.size() <= n) logged_through.resize(n + 1, 0);
        logged_through[n] = r.Int(4);
      }
    }
  }
  ECRM_RETURN_IF_ERROR(ReplayLog(logged_through));
  features_.ReserveNumbers(static_cast<CustomerNo>(std::max<int64_t>(next_number, 0)));
  if (!numbered_now.empty()) {
    ECRM_RETURN_IF_ERROR(db_.InTransaction([&](sql::Connection& c) -> absl::Status {
      for (const auto& [id, number] : numbered_now) {
        ECRM_RETURN_IF_ERROR(
            c.Execute("UPDATE customers SET number = $2 WHERE customer_id = $1", {id, number}).status());
      }
      return c.Execute("UPDATE feed_position SET next_number = $1", {static_cast<int64_t>(features_.end())}).status();
    }));
  }
  metrics_.customers_loaded.Increment(static_cast<double>(rows.size()));
  return absl::OkStatus();
}

absl::Status FeedConsumer::ReplayLog(const std::vector<int64_t>& logged_through) {
  log_ = EventLog();
  for (int64_t through : logged_through) log_.sequence = std::max(log_.sequence, through);
  ECRM_ASSIGN_OR_RETURN(sql::Result rows,
                        db_.Execute("SELECT sequence, entries FROM customer_events_log ORDER BY sequence"));
  infostore::v1::Event e;
  for (const sql::Row& row : rows) {
    const int64_t sequence = row.Int(0);
    log_.sequence = std::max(log_.sequence, sequence);
    internal::EventLogEntries entries;
    const absl::string_view bytes = row.Text(1);
    if (!entries.ParseFromArray(bytes.data(), static_cast<int>(bytes.size())) ||
        entries.type_indexes_size() != entries.numbers_size() || entries.seconds_size() != entries.numbers_size()) {
      return absl::DataLossError(absl::StrCat("events log row ", sequence, " does not parse"));
    }
    for (int i = 0; i < entries.numbers_size(); ++i) {
      const CustomerNo n = entries.numbers(i);
      // Erased or merged away; or its row was written after this.
      if (!features_.IsLive(n) || (n < logged_through.size() && logged_through[n] >= sequence)) continue;
      if (entries.type_indexes(i) >= static_cast<uint32_t>(entries.types_size())) {
        return absl::DataLossError(absl::StrCat("events log row ", sequence, " names a type it does not hold"));
      }
      e.set_customer_id(std::string(features_.Id(n)));
      e.set_type(entries.types(static_cast<int>(entries.type_indexes(i))));
      e.mutable_occurred_at()->set_seconds(entries.seconds(i));
      features_.AddEvent(e);
      log_.customers.add(n);
      ++log_.logged;
    }
  }
  return absl::OkStatus();
}

absl::Status FeedConsumer::ScrubLog(sql::Connection& c, const std::vector<CustomerNo>& erased) {
  if (erased.empty()) return absl::OkStatus();
  const absl::flat_hash_set<CustomerNo> gone(erased.begin(), erased.end());
  ECRM_ASSIGN_OR_RETURN(sql::Result rows, c.Execute("SELECT sequence, entries FROM customer_events_log"));
  for (const sql::Row& row : rows) {
    internal::EventLogEntries entries, kept;
    const absl::string_view bytes = row.Text(1);
    if (!entries.ParseFromArray(bytes.data(), static_cast<int>(bytes.size())) ||
        entries.type_indexes_size() != entries.numbers_size() || entries.seconds_size() != entries.numbers_size()) {
      return absl::DataLossError(absl::StrCat("events log row ", row.Int(0), " does not parse"));
    }
    *kept.mutable_types() = entries.types();
    for (int i = 0; i < entries.numbers_size(); ++i) {
      if (gone.contains(entries.numbers(i))) continue;
      kept.add_numbers(entries.numbers(i));
      kept.add_type_indexes(entries.type_indexes(i));
      kept.add_seconds(entries.seconds(i));
    }
    if (kept.numbers_size() == entries.numbers_size()) continue;
    const std::string body = kept.SerializeAsString();
    ECRM_RETURN_IF_ERROR((kept.numbers().empty()
                              ? c.Execute("DELETE FROM customer_events_log WHERE sequence = $1", {row.Int(0)})
                              : c.Execute("UPDATE customer_events_log SET entries = $2 WHERE sequence = $1",
                                          {row.Int(0), sql::BlobRef{body}}))
                             .status());
  }
  return absl::OkStatus();
}

absl::Status FeedConsumer::LoadScores(Scores& scores) {
  ECRM_ASSIGN_OR_RETURN(sql::Result rows, db_.Execute("SELECT part, body FROM scores ORDER BY part"));
  if (rows.empty()) return absl::OkStatus();
  std::vector<absl::string_view> parts;
  for (const sql::Row& r : rows) {
    if (r.Int(0) != static_cast<int64_t>(parts.size())) {
      return absl::DataLossError(absl::StrCat("saved scores: part ", parts.size(), " is missing"));
    }
    parts.push_back(r.Text(1));
  }
  ECRM_ASSIGN_OR_RETURN(ScoreUpdate update, ParseScoreUpdate(parts));
  std::unique_lock lock(features_.mutex());
  scores.Write(update);
  scores_cleared_ = false;
  log::Info("saved scores loaded", {{"customers", static_cast<int64_t>(update.customers.size())},
                                    {"computed_at", absl::FormatTime(update.computed_at)}});
  return absl::OkStatus();
}

absl::Status FeedConsumer::PublishRestored(const std::vector<MembershipChange>& changes) {
  {
    std::unique_lock lock(features_.mutex());
    if (!changes.empty()) {
      // What changed while the engine was down, against the members saved: the position and the
      // start's clock make the events' ids (a change published is saved with the members it
      // led to, so a later start does not find it again).
      Stage({}, {}, changes, absl::StrCat("restart-", position_.load(), "-", absl::ToUnixMicros(segments_.Now())), {},
            std::nullopt, 0);
    }
  }
  Count(metrics_, changes);
  log::Info("memberships restored", {{"changed_while_down", static_cast<int64_t>(changes.size())}});
  return Flush();
}

absl::StatusOr<std::vector<infostore::v1::Event>> FeedConsumer::ReadEvents(const std::string& customer_id) {
  std::vector<infostore::v1::Event> events;
  const absl::Time since = absl::Now() - options_.event_horizon;
  std::string token;
  do {
    ECRM_ASSIGN_OR_RETURN(infostore::v1::ListEventsResponse page, infostore_.ListEvents(customer_id, since, token));
    for (auto& e : *page.mutable_events()) {
      if (e.customer_id().empty()) e.set_customer_id(customer_id);
      events.push_back(std::move(e));
    }
    token = page.next_page_token();
  } while (!token.empty());
  return events;
}

absl::Status FeedConsumer::Apply(const infostore::v1::WatchChangesResponse& message) {
  ECRM_RETURN_IF_ERROR(ApplyMessage(message));
  return Flush();
}

absl::Status FeedConsumer::ApplyMessage(const infostore::v1::WatchChangesResponse& message) {
  // The changes come in commit order: with the newest applied, so is everything committed before
  // it. A heartbeat comes when the store has nothing newer (to within its transit).
  const absl::Time caught_up = message.changes().empty()
                                   ? absl::Now()
                                   : absl::FromUnixSeconds(message.changes().rbegin()->committed_at().seconds()) +
                                         absl::Nanoseconds(message.changes().rbegin()->committed_at().nanos());
  // An unmerge gives events back to the customers they were recorded for: read those
  // customers' events first, without holding the features.
  // With --partition, a survivor held here of customers merged in from other partitions reads
  // its events back too (the merged customers' events were never here).
  const Partition& partition = options_.partition;
  std::map<std::string, std::vector<infostore::v1::Event>> reread;
  for (const Change& c : message.changes()) {
    bool read_back = c.kind() == infostore::v1::CHANGE_KIND_UNMERGE && partition.Holds(c.customer_id());
    if (c.kind() == infostore::v1::CHANGE_KIND_MERGE && partition.Holds(c.customer_id())) {
      for (const std::string& id : c.merge().merged_ids()) read_back = read_back || !partition.Holds(id);
    }
    if (read_back && !reread.contains(c.customer_id())) {
      ECRM_ASSIGN_OR_RETURN(reread[c.customer_id()], ReadEvents(c.customer_id()));
    }
  }

  std::vector<std::pair<CustomerNo, bool>> dirty;
  std::vector<std::string> removed;
  std::vector<MembershipChange> memberships;
  std::vector<std::pair<CustomerNo, ChangedData>> changed;
  std::vector<CampaignOutcome> outcomes;
  std::vector<Unsaved::Logged> logged;
  std::vector<CustomerNo> erased;
  {
    std::unique_lock lock(features_.mutex());
    absl::flat_hash_map<CustomerNo, size_t> index;  // customer → its entry in `changed`
    absl::flat_hash_set<CustomerNo> whole;          // more than their events changed: saved whole
    auto mark = [&](CustomerNo n) -> ChangedData& {
      auto [it, added] = index.try_emplace(n, changed.size());
      if (added) changed.emplace_back(n, ChangedData());
      return changed[it->second].second;
    };
    auto everything = [&](CustomerNo n) {
      whole.insert(n);
      ChangedData& d = mark(n);
      d.profile = d.consents = d.orders = d.seen = true;
      d.all_event_types = true;
    };
    // A customer not live before this change: every rule may now hold for them (`!consent.email`
    // holds for one who gave no consent, whatever the change was), scores included.
    auto live = [&](const std::string& id) {
      const std::optional<CustomerNo> known = features_.Find(id);
      return known && features_.IsLive(*known);
    };
    auto fresh = [&](CustomerNo n) {
      everything(n);
      mark(n).scores = true;
    };
    for (const Change& c : message.changes()) {
      // Another partition's customer: only what it takes with it when merged away matters here.
      if (!partition.Holds(c.customer_id().empty() ? c.customer().id() : c.customer_id())) {
        if (c.kind() != infostore::v1::CHANGE_KIND_MERGE) continue;
        for (const std::string& id : c.merge().merged_ids()) {
          if (std::optional<CustomerNo> m = features_.Find(id)) {
            segments_.Forget(*m);
            features_.Remove(id);
            removed.push_back(id);
          }
        }
        continue;
      }
      switch (c.kind()) {
        case infostore::v1::CHANGE_KIND_PROFILE:
        case infostore::v1::CHANGE_KIND_IDENTITY: {
          const bool was_live = live(c.customer().id());
          const CustomerNo n = features_.SetCustomer(c.customer());
          whole.insert(n);
          ChangedData& d = mark(n);
          d.profile = d.orders = d.seen = true;  // the record's behaviour summary comes with it
          if (!was_live) fresh(n);
          break;
        }
        case infostore::v1::CHANGE_KIND_CONSENT: {
          const bool was_live = live(c.customer().id());
          const CustomerNo n = features_.SetCustomer(c.customer());
          whole.insert(n);
          mark(n).consents = true;
          if (!was_live) fresh(n);
          break;
        }
        case infostore::v1::CHANGE_KIND_EVENT: {
          infostore::v1::Event e = c.event();
          if (e.customer_id().empty()) e.set_customer_id(c.customer_id());
          const bool was_live = live(e.customer_id());
          const CustomerNo n = features_.AddEvent(e);
          // A customer first seen by this event has no record saved yet; an order moves the
          // order aggregates the record holds.
          if (!was_live || Features::ChangesOrders(e)) whole.insert(n);
          ChangedData& d = mark(n);
          // First and last seen move with every event; the order aggregates with orders only
          // (most rules read no event type an event has, so most segments skip it).
          d.seen = true;
          if (!was_live || Features::ChangesOrders(e)) d.orders = true;
          d.event_types.push_back(*features_.FindEventType(e.type()));
          if (!was_live) fresh(n);
          logged.push_back({n, e.type(), e.occurred_at().seconds()});
          if (campaigns_ != nullptr) {
            std::vector<CampaignOutcome> seen = campaigns_->Observe(e);
            outcomes.insert(outcomes.end(), seen.begin(), seen.end());
          }
          break;
        }
        case infostore::v1::CHANGE_KIND_MERGE: {
          std::vector<std::string> merged(c.merge().merged_ids().begin(), c.merge().merged_ids().end());
          for (const std::string& id : merged) {
            if (std::optional<CustomerNo> m = features_.Find(id)) segments_.Forget(*m);
          }
          features_.Merge(c.customer_id(), merged);
          removed.insert(removed.end(), merged.begin(), merged.end());
          if (auto events = reread.find(c.customer_id()); events != reread.end()) {
            const CustomerNo n = features_.Intern(c.customer_id());
            features_.ClearEvents(n);
            for (const infostore::v1::Event& e : events->second) features_.CountEvent(e);
          }
          everything(features_.SetCustomer(c.customer()));
          break;
        }
        case infostore::v1::CHANGE_KIND_UNMERGE: {
          const CustomerNo n = features_.Intern(c.customer_id());
          features_.ClearEvents(n);
          for (const infostore::v1::Event& e : reread[c.customer_id()]) features_.CountEvent(e);
          features_.SetCustomer(c.customer());  // its order aggregates, as the store recomputed them
          everything(n);
          break;
        }
        case infostore::v1::CHANGE_KIND_ERASE:
          if (std::optional<CustomerNo> n = features_.Find(c.customer_id())) {
            segments_.Forget(*n);
            features_.Remove(c.customer_id());
            removed.push_back(c.customer_id());
            erased.push_back(*n);
          }
          break;
        default:
          break;
      }
    }
    // A customer changed and then removed in the same message is only removed.
    changed.erase(
        std::remove_if(changed.begin(), changed.end(), [&](const auto& c) { return !features_.IsLive(c.first); }),
        changed.end());
    segments_.Apply(changed, memberships);
    dirty.reserve(changed.size());
    for (const auto& [n, what] : changed) dirty.emplace_back(n, whole.contains(n));
    {
      std::lock_guard staged(mu_);
      std::move(logged.begin(), logged.end(), std::back_inserter(unsaved_->logged));
      unsaved_->erased.insert(unsaved_->erased.end(), erased.begin(), erased.end());
    }
    Stage(dirty, removed, memberships, absl::StrCat("feed-", message.position()), outcomes, message.position(),
          message.changes_size(), caught_up);
  }
  applied_position_ = std::max(applied_position_.load(), message.position());
  metrics_.feed_messages.Increment();
  metrics_.feed_changes.Increment(message.changes_size());
  Count(metrics_, memberships);
  return absl::OkStatus();
}

void FeedConsumer::Stage(const std::vector<std::pair<CustomerNo, bool>>& customers,
                         const std::vector<std::string>& removed, const std::vector<MembershipChange>& memberships,
                         const std::string& cause, const std::vector<CampaignOutcome>& outcomes,
                         std::optional<int64_t> position, int64_t changes, std::optional<absl::Time> caught_up) {
  std::vector<infostore::v1::Event> events;
  std::vector<TriggeredEntry> entries;
  events.reserve(memberships.size());
  for (const MembershipChange& m : memberships) {
    events.push_back(MembershipEvent(m, std::string(features_.Id(m.customer)), cause));
    if (campaigns_ != nullptr) {
      std::vector<TriggeredEntry> e =
          campaigns_->Entries(m, events.back().customer().customer_id(), events.back().event_id());
      entries.insert(entries.end(), e.begin(), e.end());
    }
  }
  {
    std::lock_guard lock(mu_);
    Unsaved& u = *unsaved_;
    for (const std::string& id : removed) {
      u.Drop(id);
      u.removed.insert(id);
    }
    for (const auto& [n, whole] : customers) {
      auto [it, added] = u.customers.try_emplace(n, whole);
      if (!added) it->second = it->second || whole;
    }
    std::move(events.begin(), events.end(), std::back_inserter(u.events));
    std::move(entries.begin(), entries.end(), std::back_inserter(u.entries));
    // Outcomes of a customer removed by the same message are not kept.
    for (const CampaignOutcome& o : outcomes) {
      if (features_.Find(o.customer_id)) u.outcomes.push_back(o);
    }
    if (position) u.position = std::max(u.position.value_or(0), *position);
    if (caught_up) u.caught_up = std::max(u.caught_up.value_or(absl::InfinitePast()), *caught_up);
    u.changes += changes;
  }
  cv_.notify_all();
}

absl::Status FeedConsumer::Flush() {
  std::lock_guard saving(save_mu_);
  // Taken under the features' shared lock: nothing is applied meanwhile, so the records read are
  // exactly those of the position taken with them.
  std::unique_ptr<Unsaved> batch;
  std::vector<Row> rows;
  std::vector<CustomerNo> folded;  // the round's customers whose rows this transaction writes
  LogWrite log;
  log.sequence = log_.sequence + 1;
  std::vector<MembersSave> members;
  int64_t next_number = 0;
  absl::Time evaluated_at;
  {
    std::shared_lock features_lock(features_.mutex());
    {
      std::lock_guard lock(mu_);
      if (unsaved_->empty() && !segments_.HasUnsaved() && !log_.folding_active) return absl::OkStatus();
      batch = std::exchange(unsaved_, std::make_unique<Unsaved>());
    }
    cv_.notify_all();  // room for the feed again
    // Customers saved whole: their records and events rows.
    absl::flat_hash_set<CustomerNo> with_row;
    for (const auto& [n, whole] : batch->customers) {
      if (!whole || !features_.IsLive(n)) continue;
      rows.push_back({std::string(features_.Id(n)), n, true, features_.ToRecord(n, false).SerializeAsString(),
                      features_.EventsToBytes(n)});
      with_row.insert(n);
    }
    // A round of the events log: a slice of its customers' events rows.
    if (!log_.folding_active && log_.logged >= options_.fold_logged_events) {
      log_.folding = std::exchange(log_.customers, Roaring());
      log_.folding_through = log_.sequence;
      log_.folding_active = true;
      log_.logged = 0;
    }
    if (log_.folding_active) {
      for (CustomerNo n : log_.folding) {
        if (folded.size() == options_.fold_slice) break;
        folded.push_back(n);
        if (!features_.IsLive(n) || !with_row.insert(n).second) continue;
        rows.push_back({std::string(features_.Id(n)), n, false, "", features_.EventsToBytes(n)});
      }
      if (folded.size() == log_.folding.cardinality()) log.drop_through = log_.folding_through;
    }
    // The others' events, appended to the log.
    absl::flat_hash_map<absl::string_view, uint32_t> type_index;
    for (const Unsaved::Logged& e : batch->logged) {
      if (with_row.contains(e.customer) || !features_.IsLive(e.customer)) continue;
      auto [it, added] = type_index.try_emplace(e.type, log.entries.types_size());
      if (added) log.entries.add_types(e.type);
      log.entries.add_numbers(e.customer);
      log.entries.add_type_indexes(it->second);
      log.entries.add_seconds(e.seconds);
    }
    // The members as published: the entries and exits in this batch are the last they saw.
    members = segments_.TakeUnsaved();
    evaluated_at = segments_.Now();
    next_number = features_.end();
  }
  absl::Status written = Write(*batch, rows, log, members, next_number, evaluated_at);
  if (!written.ok()) {
    {
      std::shared_lock features_lock(features_.mutex());
      segments_.SaveFailed(members);
    }
    // Kept, in front of what was staged since: the next Flush writes both.
    std::lock_guard lock(mu_);
    batch->Absorb(std::move(*unsaved_));
    unsaved_ = std::move(batch);
    return written;
  }
  // The log as written: rows supersede what was logged of their customers.
  log_.sequence = log.sequence;
  for (const Row& r : rows) {
    log_.customers.remove(r.number);
    log_.folding.remove(r.number);
  }
  for (CustomerNo n : folded) log_.folding.remove(n);
  if (log.drop_through) {
    log_.folding = Roaring();
    log_.folding_active = false;
  }
  for (CustomerNo n : log.entries.numbers()) log_.customers.add(n);
  log_.logged += log.entries.numbers_size();
  if (!batch->events.empty()) outbox_.Notify();
  if (campaigns_ != nullptr) campaigns_->Entered(batch->entries);
  if (batch->position) {
    metrics_.feed_position.Set(static_cast<double>(*batch->position));
    std::lock_guard lock(mu_);
    position_ = std::max(position_.load(), *batch->position);
  }
  if (batch->caught_up) {
    const int64_t us = absl::ToUnixMicros(*batch->caught_up);
    int64_t seen = caught_up_us_.load();
    while (seen < us && !caught_up_us_.compare_exchange_weak(seen, us)) {
    }
  }
  cv_.notify_all();
  return absl::OkStatus();
}

absl::Status FeedConsumer::DeleteSaved(sql::Connection& c, const std::string& id, Erased& erased) {
  ECRM_RETURN_IF_ERROR(
      c.Execute("DELETE FROM customer_events WHERE number IN (SELECT number FROM customers WHERE customer_id = $1)",
                {id})
          .status());
  ECRM_ASSIGN_OR_RETURN(sql::Result record, c.Execute("DELETE FROM customers WHERE customer_id = $1", {id}));
  ECRM_ASSIGN_OR_RETURN(sql::Result queued, c.Execute("DELETE FROM outbox WHERE customer_id = $1", {id}));
  ECRM_ASSIGN_OR_RETURN(int64_t campaign_rows, Campaigns::ForgetCustomer(c, id));
  erased.saved += record.rows_affected();
  erased.queued += queued.rows_affected();
  erased.campaign_rows += campaign_rows;
  return absl::OkStatus();
}

absl::StatusOr<FeedConsumer::Erased> FeedConsumer::Erase(const std::vector<std::string>& ids,
                                                         const std::function<void(CustomerNo)>& forget) {
  // No transaction is under way while this holds, and the next one reads the features after
  // they are gone.
  std::lock_guard saving(save_mu_);
  Erased erased;
  std::vector<std::string> removed;
  std::vector<CustomerNo> numbers;
  {
    std::unique_lock lock(features_.mutex());
    for (const std::string& id : ids) {
      std::optional<CustomerNo> n = features_.Find(id);
      if (!n) continue;
      erased.memberships += static_cast<int64_t>(segments_.MembershipsOf(*n).size());
      segments_.Forget(*n);
      forget(*n);
      features_.Remove(id);
      removed.push_back(id);
      numbers.push_back(*n);
    }
    // Drops what is staged of them; the next transaction deletes their rows again (if the one
    // below fails, that one does it).
    Stage({}, removed, {}, "", {}, std::nullopt, 0);
  }
  ECRM_RETURN_IF_ERROR(db_.InTransaction([&](sql::Connection& c) -> absl::Status {
    erased = Erased{.memberships = erased.memberships};
    for (const std::string& id : ids) ECRM_RETURN_IF_ERROR(DeleteSaved(c, id, erased));
    return ScrubLog(c, numbers);
  }));
  return erased;
}

absl::Status FeedConsumer::Write(const Unsaved& batch, const std::vector<Row>& rows, const LogWrite& log,
                                 const std::vector<MembersSave>& members, int64_t next_number,
                                 absl::Time evaluated_at) {
  const std::string logged = log.entries.numbers().empty() ? "" : log.entries.SerializeAsString();
  return db_.InTransaction([&](sql::Connection& c) -> absl::Status {
    // Removals first: a customer removed and then seen again (an unmerge) is written anew.
    Erased erased;
    for (const std::string& id : batch.removed) ECRM_RETURN_IF_ERROR(DeleteSaved(c, id, erased));
    ECRM_RETURN_IF_ERROR(ScrubLog(c, batch.erased));
    for (const Row& row : rows) {
      if (row.whole) {
        ECRM_RETURN_IF_ERROR(c.Execute("INSERT INTO customers (customer_id, number, record) VALUES ($1, $2, $3) ON "
                                       "CONFLICT (customer_id) DO UPDATE SET number = excluded.number, record = "
                                       "excluded.record",
                                       {row.id, int64_t{row.number}, sql::BlobRef{row.record}})
                                 .status());
      }
      ECRM_RETURN_IF_ERROR(c.Execute("INSERT INTO customer_events (number, events, logged_through) VALUES ($1, $2, $3) "
                                     "ON CONFLICT (number) DO UPDATE SET events = excluded.events, logged_through = "
                                     "excluded.logged_through",
                                     {int64_t{row.number}, sql::BlobRef{row.events}, log.sequence})
                               .status());
    }
    if (!logged.empty()) {
      ECRM_RETURN_IF_ERROR(c.Execute("INSERT INTO customer_events_log (sequence, entries) VALUES ($1, $2)",
                                     {log.sequence, sql::BlobRef{logged}})
                               .status());
    }
    if (log.drop_through) {
      ECRM_RETURN_IF_ERROR(
          c.Execute("DELETE FROM customer_events_log WHERE sequence <= $1", {*log.drop_through}).status());
    }
    for (const infostore::v1::Event& e : batch.events) ECRM_RETURN_IF_ERROR(outbox_.Add(c, e));
    ECRM_RETURN_IF_ERROR(Campaigns::SaveOutcomes(c, batch.outcomes));
    ECRM_RETURN_IF_ERROR(Campaigns::SaveEntries(c, batch.entries));
    ECRM_RETURN_IF_ERROR(Segments::WriteMembers(c, members));
    if (batch.clear_scores || batch.scores != nullptr) {
      ECRM_RETURN_IF_ERROR(c.Execute("DELETE FROM scores").status());
    }
    if (batch.scores != nullptr) {
      ECRM_RETURN_IF_ERROR(SerializeScoreUpdate(
          *batch.scores, kScoresPerPart, [&](int64_t part, const std::string& bytes) -> absl::Status {
            return c.Execute("INSERT INTO scores (part, body) VALUES ($1, $2)", {part, sql::BlobRef{bytes}}).status();
          }));
    }
    const int64_t saved_at = absl::ToUnixMicros(evaluated_at);
    if (!batch.position) {
      if (members.empty()) return absl::OkStatus();
      return c.Execute("UPDATE feed_position SET saved_at = $1 WHERE id = 1", {saved_at}).status();
    }
    // The next number with the customers given numbers below it (never given out again).
    return c
        .Execute(
            "INSERT INTO feed_position (id, position, next_number, saved_at) VALUES (1, $1, $2, $3) ON CONFLICT (id) "
            "DO UPDATE SET position = excluded.position, next_number = excluded.next_number, saved_at = "
            "excluded.saved_at",
            {*batch.position, next_number, saved_at})
        .status();
  });
}

absl::Status FeedConsumer::Resync() {
  metrics_.feed_resyncs.Increment();
  log::Warn("resyncing from the information store: the saved feed position is older than its retention",
            {{"position", position_.load()}});
  // The listing's as_of_sequence is the feed's head when it began: everything committed before then.
  const absl::Time listed_from = absl::Now();
  std::string token;
  int64_t as_of = -1;
  std::vector<infostore::v1::Customer> customers;
  do {
    ECRM_ASSIGN_OR_RETURN(infostore::v1::ListCustomersResponse page, infostore_.ListCustomers(token, 1000));
    if (as_of < 0) as_of = page.as_of_sequence();
    for (auto& c : *page.mutable_customers()) {
      if (options_.partition.Holds(c.id())) customers.push_back(std::move(c));
    }
    token = page.next_page_token();
  } while (!token.empty());
  std::map<std::string, std::vector<infostore::v1::Event>> events;
  for (const auto& c : customers) {
    ECRM_ASSIGN_OR_RETURN(events[c.id()], ReadEvents(c.id()));
  }

  std::vector<std::pair<CustomerNo, bool>> all;
  std::vector<std::string> gone;
  {
    std::unique_lock lock(features_.mutex());
    for (CustomerNo n : features_.live()) gone.emplace_back(features_.Id(n));
    features_.Clear();
    for (const auto& c : customers) {
      const CustomerNo n = features_.Intern(c.id());
      for (const infostore::v1::Event& e : events[c.id()]) features_.CountEvent(e);
      features_.SetCustomer(c);
      all.emplace_back(n, true);
    }
    segments_.Refill();
    scores_cleared_ = true;  // Clear() took them with the rest
    // What was staged before is superseded: every customer is written anew, and the saved
    // scores go with the ones Clear() took.
    std::lock_guard staged(mu_);
    unsaved_ = std::make_unique<Unsaved>();
    unsaved_->clear_scores = true;
  }
  {
    std::lock_guard saving(save_mu_);  // no Flush between the deletion and the new rows
    ECRM_RETURN_IF_ERROR(db_.InTransaction([](sql::Connection& c) -> absl::Status {
      ECRM_RETURN_IF_ERROR(c.Execute("DELETE FROM customer_events").status());
      ECRM_RETURN_IF_ERROR(c.Execute("DELETE FROM customer_events_log").status());
      return c.Execute("DELETE FROM customers").status();
    }));
    log_ = EventLog{.sequence = log_.sequence};
    std::unique_lock lock(features_.mutex());
    Stage(all, {}, {}, "resync", {}, as_of, 0, listed_from);
  }
  applied_position_ = as_of;
  return Flush();
}

absl::Status FeedConsumer::Tick() {
  std::vector<MembershipChange> memberships;
  {
    std::unique_lock lock(features_.mutex());
    segments_.Tick(memberships);
    // A boundary crossed is what the change is about: the same crossing after a restart is
    // published once.
    if (!memberships.empty()) {
      Stage({}, {}, memberships, absl::StrCat("time-", absl::ToUnixSeconds(memberships.front().at) / 86400), {},
            std::nullopt, 0);
    }
  }
  if (memberships.empty()) return absl::OkStatus();
  Count(metrics_, memberships);
  return Flush();
}

absl::Status FeedConsumer::ApplyScores(Scores& scores) {
  const absl::Time start = absl::Now();
  const auto computed = std::make_shared<const ScoreUpdate>(scores.Compute());
  const ScoreUpdate& update = *computed;
  if (!update.purchases_fit.ok() && update.buyers > 0) metrics_.purchase_fit_failures.Increment();
  if (!update.spend_fit.ok() && update.buyers > 0) metrics_.spend_fit_failures.Increment();
  std::vector<MembershipChange> memberships;
  bool quiet = false;
  size_t changed = 0;
  absl::Duration held;
  {
    std::unique_lock lock(features_.mutex());
    const absl::Time locked = absl::Now();
    const std::vector<CustomerNo> customers = scores.Write(update);
    changed = customers.size();
    ChangedData what;
    what.scores = true;
    segments_.Apply(customers, what, memberships);
    quiet = scores_cleared_;
    scores_cleared_ = false;
    // The refit is what the change is about. Saved with the memberships it led to (published or,
    // the first time, not), so that a restart reads both as they were.
    Stage({}, {}, quiet ? std::vector<MembershipChange>() : memberships,
          absl::StrCat("scores-", absl::ToUnixMicros(update.computed_at)), {}, std::nullopt, 0);
    {
      std::lock_guard staged(mu_);
      unsaved_->scores = computed;
    }
    held = absl::Now() - locked;
  }
  metrics_.score_write_seconds.Set(absl::ToDoubleSeconds(held));
  metrics_.score_fit_seconds.Set(absl::ToDoubleSeconds(update.fit_time));
  metrics_.scored_engagement.Set(static_cast<double>(update.customers.size()));
  metrics_.scored_rfm.Set(static_cast<double>(update.buyers));
  metrics_.scored_value.Set(static_cast<double>(update.valued));
  log::Info("scores refitted", {{"customers", static_cast<int64_t>(update.customers.size())},
                                {"with_orders", update.buyers},
                                {"valued", update.valued},
                                {"changed", static_cast<int64_t>(changed)},
                                {"memberships_changed", static_cast<int64_t>(memberships.size())},
                                {"published", !quiet},
                                {"read", update.read_time},
                                {"fit", update.fit_time},
                                {"predict", update.predict_time},
                                {"locked", held}});
  if (!quiet) Count(metrics_, memberships);
  absl::Status saved = Flush();
  metrics_.score_refit_seconds.Set(absl::ToDoubleSeconds(absl::Now() - start));
  if (saved.ok()) metrics_.score_refits.Increment();
  return saved;
}

void FeedConsumer::Start() {
  {
    std::lock_guard lock(mu_);
    stopping_ = saver_stopping_ = false;
  }
  saver_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "feed-save");
    Save();
  });
  thread_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "feed-watch");
    Run();
  });
}

void FeedConsumer::Stop() {
  {
    std::lock_guard lock(mu_);
    if (stopping_ && !thread_.joinable() && !saver_.joinable()) return;
    stopping_ = true;
  }
  cv_.notify_all();
  infostore_.StopWatching();
  if (thread_.joinable()) thread_.join();
  // The saver writes what was applied, then ends.
  {
    std::lock_guard lock(mu_);
    saver_stopping_ = true;
  }
  cv_.notify_all();
  if (saver_.joinable()) saver_.join();
}

void FeedConsumer::Run() {
  for (;;) {
    {
      std::lock_guard lock(mu_);
      if (stopping_) return;
    }
    absl::Status s = infostore_.Watch(applied_position_.load(), [this](const infostore::v1::WatchChangesResponse& m) {
      ECRM_RETURN_IF_ERROR(ApplyMessage(m));
      // Past the bound, wait for the saver to take what was staged.
      std::unique_lock lock(mu_);
      cv_.wait(lock, [this] { return stopping_ || unsaved_->changes < options_.max_unsaved_changes; });
      return absl::OkStatus();
    });
    if (s.code() == absl::StatusCode::kOutOfRange) s = Resync();
    std::unique_lock lock(mu_);
    if (stopping_) return;
    if (!s.ok()) {
      log::Warn("change feed interrupted; watching again", {{"error", s}, {"position", applied_position_.load()}});
      cv_.wait_for(lock, absl::ToChronoNanoseconds(options_.retry_after), [this] { return stopping_; });
    }
  }
}

void FeedConsumer::Save() {
  std::chrono::steady_clock::time_point began;  // of the last transaction
  for (;;) {
    bool last = false;
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [this] { return saver_stopping_ || !unsaved_->empty(); });
      if (options_.save_interval > absl::ZeroDuration()) {
        cv_.wait_until(lock, began + absl::ToChronoNanoseconds(options_.save_interval),
                       [this] { return saver_stopping_ || unsaved_->changes >= options_.max_unsaved_changes / 2; });
      }
      last = saver_stopping_;
    }
    began = std::chrono::steady_clock::now();
    absl::Status s = Flush();
    if (s.ok() && last) return;
    if (!s.ok()) {
      log::Warn("saving the applied feed failed; saving again", {{"error", s}, {"position", position_.load()}});
      std::unique_lock lock(mu_);
      cv_.wait_for(lock, absl::ToChronoNanoseconds(options_.retry_after), [this] { return saver_stopping_; });
      if (saver_stopping_ && last) return;  // stopping with the database down: the feed replays it
    }
  }
}

void FeedConsumer::PruneEvents(absl::Time now) {
  size_t groups = 0;
  {
    std::shared_lock lock(features_.mutex());
    groups = features_.EventGroups();
  }
  for (size_t g = 0; g < groups; ++g) {
    std::unique_lock lock(features_.mutex());
    features_.PruneEvents(now, g);
  }
}

void FeedConsumer::RefreshLag(absl::Time now) {
  const int64_t known = caught_up_us_.load();
  const absl::Time caught_up = absl::FromUnixMicros(known != 0 ? known : started_us_);
  metrics_.feed_lag.Set(std::max(0.0, absl::ToDoubleSeconds(now - caught_up)));
}

bool FeedConsumer::WaitForPosition(int64_t sequence, absl::Duration timeout) {
  std::unique_lock lock(mu_);
  return cv_.wait_for(lock, absl::ToChronoNanoseconds(timeout), [&] { return position_.load() >= sequence; });
}

}  // namespace ecrm::segmentation

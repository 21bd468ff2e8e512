#include "segments.h"

#include <algorithm>
#include <mutex>
#include <set>
#include <shared_mutex>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "ecrm/rules/evaluator.h"
#include "ecrm/status/macros.h"
#include "ecrm/util/page_token.h"
#include "ecrm/util/util.h"
#include "population.h"

namespace ecrm::segmentation {
namespace {

using rules::Field;

constexpr int64_t kSecondsPerDay = 86400;

int64_t DayOf(absl::Time t) {
  const int64_t s = absl::ToUnixSeconds(t);
  return s >= 0 ? s / kSecondsPerDay : -((-s + kSecondsPerDay - 1) / kSecondsPerDay);
}

bool ValidName(const std::string& name) {
  if (name.empty() || name.size() > 64) return false;
  for (char c : name) {
    if (!absl::ascii_islower(c) && !absl::ascii_isdigit(c) && c != '-' && c != '_') return false;
  }
  return absl::ascii_islower(name[0]) || absl::ascii_isdigit(name[0]);
}

absl::Status Validate(const v1::Segment& s) {
  if (!ValidName(s.name())) {
    return util::Invalid("segment.name",
                         "must be 1-64 characters of a-z, 0-9, '-' and '_', starting with a letter or digit");
  }
  if (s.description().size() > 4096) return util::Invalid("segment.description", "must be at most 4,096 bytes");
  if (s.rule().empty()) return util::Invalid("segment.rule", "is required, e.g. profile.address.country == \"GB\"");
  return absl::OkStatus();
}

bool ReadsOrders(Field f) {
  switch (f) {
    case Field::kOrdersCount:
    case Field::kOrdersTotal:
    case Field::kOrdersFirstAt:
    case Field::kOrdersLastAt:
      return true;
    default:
      return false;
  }
}

bool ReadsSeen(Field f) { return f == Field::kFirstSeenAt || f == Field::kLastSeenAt; }

bool ReadsScores(Field f) {
  switch (f) {
    case Field::kRfmCell:
    case Field::kRfmR:
    case Field::kRfmF:
    case Field::kRfmM:
    case Field::kClv:
    case Field::kEngagement:
      return true;
    default:
      return false;
  }
}

}  // namespace

struct Segments::Slot {
  int32_t slot = 0;
  v1::Segment definition;
  rules::Rule rule;
  bool reads_profile = false, reads_consents = false, reads_orders = false, reads_seen = false, reads_scores = false;
  std::vector<int32_t> event_types;  // sorted
  std::vector<int32_t> references;   // slots this rule names
  bool time_relative = false;
  Roaring members;
  absl::Time evaluated_at;
  // Customers to evaluate again: from the start of a day (a bitmap per day), and today's at
  // their exact instant.
  std::map<int64_t, Roaring> due_days;
  std::priority_queue<std::pair<absl::Time, CustomerNo>, std::vector<std::pair<absl::Time, CustomerNo>>, std::greater<>>
      due_today;
  // Time-relative rules: customers whose membership the first fill decided but whose next
  // evaluation is not scheduled yet (Tick schedules them, a budget at a time, before anything
  // falls due), once Tick has found them (`find_unscheduled`, one slot a tick).
  Roaring unscheduled;
  bool find_unscheduled = false;
  // Saving (Segments::TakeUnsaved): the customers whose membership changed since the last save
  // (members now, and no longer), or all the members when `snapshot_due`; the changes saved
  // since the last snapshot.
  Roaring entered_unsaved, exited_unsaved;
  bool snapshot_due = true;
  int64_t next_seq = 1;
  int64_t changes_saved = 0;
  size_t change_bytes_saved = 0;
};

// What rules may name: the features' attributes and event types, and the live segments.
class Segments::Schema final : public rules::Schema {
 public:
  // `intern`: number event types not seen yet (a saved rule). A preview, which holds the lock
  // only to read, gives them an id no customer has events of.
  Schema(Features& features, const absl::flat_hash_map<std::string, int32_t>& segments, bool intern = true)
      : features_(features), segments_(segments), intern_(intern) {}
  std::optional<rules::AttributeInfo> FindAttribute(absl::string_view name) const override {
    return features_.FindAttribute(name);
  }
  std::vector<std::string> AttributeNames() const override { return features_.AttributeNames(); }
  // Any well-formed type: a rule may count events nobody has recorded yet.
  std::optional<int32_t> FindEventType(absl::string_view name) const override {
    if (!intern_) return features_.FindEventType(name).value_or(Features::kUnseenEventType);
    return features_.InternEventType(name);
  }
  std::optional<int32_t> FindSegment(absl::string_view name) const override {
    auto it = segments_.find(name);
    if (it == segments_.end()) return std::nullopt;
    return it->second;
  }

 private:
  Features& features_;
  const absl::flat_hash_map<std::string, int32_t>& segments_;
  const bool intern_;
};

Segments::Segments(sql::Database& db, Features& features, Clock clock, rules::Limits limits)
    : db_(db), features_(features), clock_(std::move(clock)), limits_(limits) {}

Segments::~Segments() = default;

absl::StatusOr<std::unique_ptr<Segments::Slot>> Segments::Compile(const v1::Segment& definition,
                                                                  int32_t slot_id) const {
  Schema schema(features_, by_name_);
  absl::StatusOr<rules::Rule> rule = rules::Compile(definition.rule(), schema, limits_);
  if (!rule.ok()) return util::Invalid("segment.rule", rule.status().message());
  auto slot = std::make_unique<Slot>();
  slot->slot = slot_id;
  slot->definition = definition;
  slot->rule = *std::move(rule);
  const rules::Dependencies& deps = slot->rule.dependencies();
  for (const rules::FieldRef& f : deps.fields) {
    switch (f.kind) {
      case rules::FieldRef::Kind::kConsent:
        slot->reads_consents = true;
        break;
      case rules::FieldRef::Kind::kAttribute:
        slot->reads_profile = true;
        break;
      case rules::FieldRef::Kind::kBuiltin:
        (ReadsOrders(f.builtin())   ? slot->reads_orders
         : ReadsSeen(f.builtin())   ? slot->reads_seen
         : ReadsScores(f.builtin()) ? slot->reads_scores
                                    : slot->reads_profile) = true;
        break;
    }
  }
  slot->event_types = deps.event_types;
  slot->references = deps.segments;
  slot->time_relative = deps.time_relative;
  return slot;
}

Segments::Slot* Segments::Find(const std::string& id) {
  auto it = by_id_.find(id);
  return it == by_id_.end() ? nullptr : slots_[it->second].get();
}
const Segments::Slot* Segments::Find(const std::string& id) const {
  auto it = by_id_.find(id);
  return it == by_id_.end() ? nullptr : slots_[it->second].get();
}

bool Segments::Contains(int32_t slot, CustomerNo n) const {
  return slot >= 0 && static_cast<size_t>(slot) < slots_.size() && slots_[slot] != nullptr &&
         slots_[slot]->members.contains(n);
}

void Segments::Reorder() {
  order_.clear();
  std::vector<int> state(slots_.size(), 0);  // 0 new, 1 visiting, 2 done
  std::function<void(int32_t)> visit = [&](int32_t s) {
    if (state[s] != 0) return;
    state[s] = 1;
    for (int32_t r : slots_[s]->references) {
      if (static_cast<size_t>(r) < slots_.size() && slots_[r] != nullptr) visit(r);
    }
    state[s] = 2;
    order_.push_back(s);
  };
  for (size_t s = 0; s < slots_.size(); ++s) {
    if (slots_[s] != nullptr) visit(static_cast<int32_t>(s));
  }
}

absl::Status Segments::Load(std::vector<MembershipChange>* restored, absl::Time since) {
  std::unique_lock lock(features_.mutex());
  ECRM_ASSIGN_OR_RETURN(sql::Result rows,
                        db_.Execute("SELECT id, name, description, rule, version, created_at, updated_at FROM "
                                    "segments ORDER BY created_at, id"));
  // A rule may name a segment created after it only if it was edited later: compile in
  // rounds until nothing more compiles.
  std::vector<v1::Segment> pending;
  for (const sql::Row& r : rows) {
    v1::Segment s;
    s.set_id(std::string(r.Text(0)));
    s.set_name(std::string(r.Text(1)));
    s.set_description(std::string(r.Text(2)));
    s.set_rule(std::string(r.Text(3)));
    s.set_version(r.Int(4));
    *s.mutable_created_at() = util::Ts(r.Int(5));
    *s.mutable_updated_at() = util::Ts(r.Int(6));
    pending.push_back(std::move(s));
  }
  while (!pending.empty()) {
    std::vector<v1::Segment> later;
    absl::Status last = absl::OkStatus();
    for (v1::Segment& s : pending) {
      const auto slot_id = static_cast<int32_t>(slots_.size());
      absl::StatusOr<std::unique_ptr<Slot>> slot = Compile(s, slot_id);
      if (!slot.ok()) {
        last = slot.status();
        later.push_back(std::move(s));
        continue;
      }
      by_id_[s.id()] = slot_id;
      by_name_[s.name()] = slot_id;
      slots_.push_back(*std::move(slot));
    }
    if (later.size() == pending.size()) {
      return absl::DataLossError(
          absl::StrCat("saved segment \"", later.front().name(), "\" no longer compiles: ", last.message()));
    }
    pending = std::move(later);
  }
  Reorder();
  // The members saved: each segment's snapshot, then its changes since, in order.
  struct Saved {
    std::string rule;
    Roaring members;
    int64_t seq = 0, changes = 0;
    size_t change_bytes = 0;
  };
  absl::flat_hash_map<std::string, Saved> saved;
  auto read = [](absl::string_view bytes, absl::string_view segment) -> absl::StatusOr<Roaring> {
    try {
      return Roaring::readSafe(bytes.data(), bytes.size());
    } catch (const std::exception&) {
      return absl::DataLossError(absl::StrCat("saved members of segment \"", segment, "\" do not parse"));
    }
  };
  {
    ECRM_ASSIGN_OR_RETURN(sql::Result snapshots, db_.Execute("SELECT segment_id, rule, members FROM segment_members"));
    for (const sql::Row& r : snapshots) {
      Saved& s = saved[std::string(r.Text(0))];
      s.rule = std::string(r.Text(1));
      ECRM_ASSIGN_OR_RETURN(s.members, read(r.Text(2), r.Text(0)));
    }
  }
  {
    ECRM_ASSIGN_OR_RETURN(sql::Result changes,
                          db_.Execute("SELECT segment_id, seq, entered, exited FROM segment_member_changes ORDER BY "
                                      "segment_id, seq"));
    for (const sql::Row& r : changes) {
      auto it = saved.find(r.Text(0));
      if (it == saved.end()) continue;
      ECRM_ASSIGN_OR_RETURN(Roaring entered, read(r.Text(2), r.Text(0)));
      ECRM_ASSIGN_OR_RETURN(Roaring exited, read(r.Text(3), r.Text(0)));
      Saved& s = it->second;
      s.members -= exited;
      s.members |= entered;
      s.seq = std::max(s.seq, r.Int(1));
      ++s.changes;
      s.change_bytes += r.Text(2).size() + r.Text(3).size();
    }
  }
  // Rows of segments deleted while their members were being saved.
  for (const auto& [id, s] : saved) {
    if (by_id_.contains(id)) continue;
    ECRM_RETURN_IF_ERROR(db_.Execute("DELETE FROM segment_members WHERE segment_id = $1", {id}).status());
    ECRM_RETURN_IF_ERROR(db_.Execute("DELETE FROM segment_member_changes WHERE segment_id = $1", {id}).status());
  }
  for (int32_t id : order_) {
    Slot& slot = *slots_[id];
    Fill(slot);
    auto it = saved.find(slot.definition.id());
    if (it == saved.end() || it->second.rule != slot.definition.rule()) continue;  // saved whole, no events
    // Customers erased or merged away since left silently (their numbers are not given out again).
    const Roaring was = it->second.members & features_.live();
    slot.entered_unsaved = slot.members - was;
    slot.exited_unsaved = was - slot.members;
    slot.snapshot_due = false;
    slot.next_seq = it->second.seq + 1;
    slot.changes_saved = it->second.changes;
    slot.change_bytes_saved = it->second.change_bytes;
    if (restored == nullptr) continue;
    for (CustomerNo n : slot.entered_unsaved) {
      restored->push_back({slot.definition.id(), n, true, ChangedSince(slot, n, true, since)});
    }
    for (CustomerNo n : slot.exited_unsaved) {
      restored->push_back({slot.definition.id(), n, false, ChangedSince(slot, n, false, since)});
    }
  }
  return absl::OkStatus();
}

absl::Time Segments::ChangedSince(const Slot& slot, CustomerNo n, bool entered, absl::Time since) const {
  if (!slot.time_relative || since == absl::InfinitePast()) return slot.evaluated_at;
  CustomerFeatures view(features_, n, this);
  absl::Time at = since;
  // Each step moves to the rule's next possible change (an earlier instant is allowed, so it may
  // take a few); a change that is not time's (a refit's scores) is found at `since`.
  for (int step = 0; step < 64 && at < slot.evaluated_at; ++step) {
    const rules::Evaluation e = rules::EvaluateWithNextChange(slot.rule, view, at);
    if ((e.truth == rules::Truth::kTrue) == entered) return at;
    if (e.next_change <= at) break;
    at = e.next_change;
  }
  return slot.evaluated_at;
}

void Segments::Fill(Slot& slot) {
  const absl::Time now = clock_();
  slot.due_days.clear();
  slot.due_today = {};
  slot.members = EvaluatePopulation(slot.rule, features_, this, now).members;
  // When each customer who may change with time is next evaluated is worked out by Tick.
  slot.unscheduled = Roaring();
  slot.find_unscheduled = slot.time_relative;
  slot.evaluated_at = now;
  // Saved whole next time (Load sets what changed since the members saved instead).
  slot.snapshot_due = true;
  slot.entered_unsaved = Roaring();
  slot.exited_unsaved = Roaring();
}

void Segments::Evaluate(Slot& slot, CustomerNo n, absl::Time now, std::vector<MembershipChange>* out) {
  CustomerFeatures view(features_, n, this);
  bool is;
  if (slot.time_relative) {
    if (!slot.unscheduled.isEmpty()) slot.unscheduled.remove(n);  // scheduled below
    rules::Evaluation e = rules::EvaluateWithNextChange(slot.rule, view, now);
    is = e.truth == rules::Truth::kTrue;
    if (e.next_change != absl::InfiniteFuture()) Schedule(slot, n, e.next_change, now);
  } else {
    is = rules::Matches(slot.rule, view, now);
  }
  if (is == slot.members.contains(n)) return;
  if (is) {
    slot.members.add(n);
  } else {
    slot.members.remove(n);
  }
  if (!slot.snapshot_due) {
    (is ? slot.entered_unsaved : slot.exited_unsaved).add(n);
    (is ? slot.exited_unsaved : slot.entered_unsaved).remove(n);
  }
  if (out != nullptr) out->push_back({slot.definition.id(), n, is, now});
}

void Segments::Schedule(Slot& slot, CustomerNo n, absl::Time next, absl::Time now) {
  // At a crossing instant itself (>= and == hold only there) the value changes right after:
  // look again at a later reading of the clock, not at this one.
  if (next <= now) next = now + absl::Seconds(1);
  const int64_t day = DayOf(next);
  if (day <= DayOf(now)) {
    slot.due_today.emplace(next, n);
  } else {
    slot.due_days[day].add(n);
  }
}

bool Segments::Reads(const Slot& slot, const ChangedData& changed) const {
  if ((changed.profile && slot.reads_profile) || (changed.consents && slot.reads_consents) ||
      (changed.orders && slot.reads_orders) || (changed.seen && slot.reads_seen) ||
      (changed.scores && slot.reads_scores)) {
    return true;
  }
  if (changed.all_event_types && !slot.event_types.empty()) return true;
  for (int32_t t : changed.event_types) {
    if (std::binary_search(slot.event_types.begin(), slot.event_types.end(), t)) return true;
  }
  return false;
}

void Segments::Apply(const std::vector<std::pair<CustomerNo, ChangedData>>& changed,
                     std::vector<MembershipChange>& out) {
  ApplyInOrder(
      [&](Slot& slot, absl::Time now, std::vector<MembershipChange>& changes) {
        for (const auto& [n, what] : changed) {
          if (features_.IsLive(n) && Reads(slot, what)) Evaluate(slot, n, now, &changes);
        }
      },
      out);
}

void Segments::Apply(absl::Span<const CustomerNo> customers, const ChangedData& what,
                     std::vector<MembershipChange>& out) {
  ApplyInOrder(
      [&](Slot& slot, absl::Time now, std::vector<MembershipChange>& changes) {
        if (!Reads(slot, what)) return;
        for (CustomerNo n : customers) {
          if (features_.IsLive(n)) Evaluate(slot, n, now, &changes);
        }
      },
      out);
}

void Segments::ApplyInOrder(const std::function<void(Slot&, absl::Time, std::vector<MembershipChange>&)>& evaluate,
                            std::vector<MembershipChange>& out) {
  const absl::Time now = clock_();
  // Customers whose membership changed in this pass, by slot: rules naming that slot see it.
  absl::flat_hash_map<int32_t, std::vector<CustomerNo>> moved;
  for (int32_t s : order_) {
    Slot& slot = *slots_[s];
    const size_t before = out.size();
    evaluate(slot, now, out);
    for (int32_t r : slot.references) {
      auto it = moved.find(r);
      if (it == moved.end()) continue;
      for (CustomerNo n : it->second) {
        if (features_.IsLive(n)) Evaluate(slot, n, now, &out);
      }
    }
    for (size_t i = before; i < out.size(); ++i) moved[s].push_back(out[i].customer);
  }
}

void Segments::Tick(std::vector<MembershipChange>& out) {
  const absl::Time now = clock_();
  const int64_t today = DayOf(now);
  absl::flat_hash_map<int32_t, std::vector<CustomerNo>> moved;
  int64_t budget = kScheduledPerTick;
  bool found = false;  // one slot's candidates found a tick
  for (int32_t s : order_) {
    Slot& slot = *slots_[s];
    const size_t before = out.size();
    if (slot.find_unscheduled && !found) {
      // The customers who may be members now or later without new data, and those who were
      // at the fill (they may have left since).
      slot.unscheduled = TimeCandidates(slot.rule, features_, this, now) | slot.members;
      slot.find_unscheduled = false;
      found = true;
    }
    // First fills' candidates not scheduled yet: evaluated now (a change since the fill is
    // published) and scheduled. Until every one is, time-driven changes may come late by that
    // much, never lost.
    while (budget > 0 && !slot.unscheduled.isEmpty()) {
      const CustomerNo n = slot.unscheduled.minimum();
      slot.unscheduled.remove(n);
      --budget;
      if (features_.IsLive(n)) Evaluate(slot, n, now, &out);
    }
    while (!slot.due_days.empty() && slot.due_days.begin()->first <= today) {
      Roaring due = std::move(slot.due_days.begin()->second);
      slot.due_days.erase(slot.due_days.begin());
      for (CustomerNo n : due) {
        if (features_.IsLive(n)) Evaluate(slot, n, now, &out);
      }
    }
    while (!slot.due_today.empty() && slot.due_today.top().first <= now) {
      const CustomerNo n = slot.due_today.top().second;
      slot.due_today.pop();
      if (features_.IsLive(n)) Evaluate(slot, n, now, &out);
    }
    for (int32_t r : slot.references) {
      auto it = moved.find(r);
      if (it == moved.end()) continue;
      for (CustomerNo n : it->second) {
        if (features_.IsLive(n)) Evaluate(slot, n, now, &out);
      }
    }
    for (size_t i = before; i < out.size(); ++i) moved[s].push_back(out[i].customer);
  }
}

void Segments::Refill() {
  for (int32_t s : order_) Fill(*slots_[s]);
}

void Segments::Forget(CustomerNo n) {
  for (const auto& slot : slots_) {
    if (slot == nullptr || !slot->members.contains(n)) continue;
    slot->members.remove(n);
    // Left silently, but the saved members lose it too.
    if (!slot->snapshot_due) {
      slot->exited_unsaved.add(n);
      slot->entered_unsaved.remove(n);
    }
  }
}

namespace {
std::string Serialize(const Roaring& r) {
  std::string out(r.getSizeInBytes(true), '\0');
  r.write(out.data(), true);
  return out;
}
}  // namespace

bool Segments::HasUnsaved() const {
  for (int32_t s : order_) {
    const Slot& slot = *slots_[s];
    if (slot.snapshot_due || !slot.entered_unsaved.isEmpty() || !slot.exited_unsaved.isEmpty()) return true;
  }
  return false;
}

std::vector<MembersSave> Segments::TakeUnsaved() {
  std::vector<MembersSave> out;
  for (int32_t s : order_) {
    Slot& slot = *slots_[s];
    if (!slot.snapshot_due && slot.entered_unsaved.isEmpty() && slot.exited_unsaved.isEmpty()) continue;
    MembersSave& save = out.emplace_back();
    save.segment_id = slot.definition.id();
    size_t bytes = 0;
    if (!slot.snapshot_due) {
      bytes = slot.entered_unsaved.getSizeInBytes(true) + slot.exited_unsaved.getSizeInBytes(true);
      slot.snapshot_due =
          slot.changes_saved >= kChangesPerSnapshot ||
          slot.change_bytes_saved + bytes > std::max(kSnapshotMinBytes, slot.members.getSizeInBytes(true));
    }
    if (slot.snapshot_due) {
      save.snapshot = true;
      save.rule = slot.definition.rule();
      Roaring members = slot.members;  // (readers share the lock: compressed on a copy)
      members.runOptimize();
      save.members = Serialize(members);
      slot.snapshot_due = false;
      slot.changes_saved = 0;
      slot.change_bytes_saved = 0;
    } else {
      save.seq = slot.next_seq++;
      save.entered = Serialize(slot.entered_unsaved);
      save.exited = Serialize(slot.exited_unsaved);
      ++slot.changes_saved;
      slot.change_bytes_saved += bytes;
    }
    slot.entered_unsaved = Roaring();
    slot.exited_unsaved = Roaring();
  }
  return out;
}

void Segments::SaveFailed(const std::vector<MembersSave>& saves) {
  for (const MembersSave& save : saves) {
    if (Slot* slot = Find(save.segment_id)) {
      slot->snapshot_due = true;
      slot->entered_unsaved = Roaring();
      slot->exited_unsaved = Roaring();
    }
  }
}

absl::Status Segments::WriteMembers(sql::Connection& c, const std::vector<MembersSave>& saves) {
  for (const MembersSave& save : saves) {
    if (save.snapshot) {
      ECRM_RETURN_IF_ERROR(
          c.Execute("DELETE FROM segment_member_changes WHERE segment_id = $1", {save.segment_id}).status());
      ECRM_RETURN_IF_ERROR(c.Execute("INSERT INTO segment_members (segment_id, rule, members) VALUES ($1, $2, $3) "
                                     "ON CONFLICT (segment_id) DO UPDATE SET rule = excluded.rule, members = "
                                     "excluded.members",
                                     {save.segment_id, save.rule, sql::BlobRef{save.members}})
                               .status());
    } else {
      ECRM_RETURN_IF_ERROR(c.Execute("INSERT INTO segment_member_changes (segment_id, seq, entered, exited) VALUES "
                                     "($1, $2, $3, $4)",
                                     {save.segment_id, save.seq, sql::BlobRef{save.entered}, sql::BlobRef{save.exited}})
                               .status());
    }
  }
  return absl::OkStatus();
}

v1::Segment Segments::Describe(const Slot& slot) const {
  v1::Segment s = slot.definition;
  s.set_size(static_cast<int64_t>(slot.members.cardinality()));
  *s.mutable_evaluated_at() = util::Ts(absl::ToUnixMicros(slot.evaluated_at));
  return s;
}

absl::Status Segments::Save(const v1::Segment& s, bool create) {
  if (create) {
    return db_
        .Execute(
            "INSERT INTO segments (id, name, description, rule, version, created_at, updated_at) VALUES ($1, $2, "
            "$3, $4, $5, $6, $7)",
            {s.id(), s.name(), s.description(), s.rule(), s.version(), util::Micros(s.created_at()),
             util::Micros(s.updated_at())})
        .status();
  }
  return db_
      .Execute(
          "UPDATE segments SET name = $2, description = $3, rule = $4, version = $5, updated_at = $6 WHERE id = $1",
          {s.id(), s.name(), s.description(), s.rule(), s.version(), util::Micros(s.updated_at())})
      .status();
}

absl::StatusOr<v1::Segment> Segments::Create(const v1::Segment& request) {
  std::unique_lock lock(features_.mutex());
  ECRM_RETURN_IF_ERROR(Validate(request));
  if (by_name_.contains(request.name())) {
    return absl::AlreadyExistsError(absl::StrCat("segment.name: \"", request.name(), "\" is taken"));
  }
  v1::Segment s;
  s.set_id(util::NewId("s_"));
  s.set_name(request.name());
  s.set_description(request.description());
  s.set_rule(request.rule());
  s.set_version(1);
  const int64_t now = absl::ToUnixMicros(clock_());
  *s.mutable_created_at() = util::Ts(now);
  *s.mutable_updated_at() = util::Ts(now);
  const auto slot_id = static_cast<int32_t>(slots_.size());
  ECRM_ASSIGN_OR_RETURN(std::unique_ptr<Slot> slot, Compile(s, slot_id));
  ECRM_RETURN_IF_ERROR(Save(s, true));
  by_id_[s.id()] = slot_id;
  by_name_[s.name()] = slot_id;
  slots_.push_back(std::move(slot));
  Reorder();
  Fill(*slots_[slot_id]);
  if (on_unsaved_) on_unsaved_();
  return Describe(*slots_[slot_id]);
}

absl::StatusOr<v1::Segment> Segments::Get(const std::string& id) const {
  std::shared_lock lock(features_.mutex());
  const Slot* slot = Find(id);
  if (slot == nullptr) return absl::NotFoundError(absl::StrCat("segment \"", id, "\" does not exist"));
  return Describe(*slot);
}

absl::StatusOr<v1::ListSegmentsResponse> Segments::List(const v1::ListSegmentsRequest& request) const {
  std::shared_lock lock(features_.mutex());
  ECRM_ASSIGN_OR_RETURN(std::optional<util::PageCursor> after,
                        util::DecodePageToken("ListSegments", request.page_token()));
  const int limit = util::PageSize(request.page_size());
  std::vector<const Slot*> sorted;
  for (const auto& [name, slot] : by_name_) {
    if (!after || name > after->text) sorted.push_back(slots_[slot].get());
  }
  std::sort(sorted.begin(), sorted.end(),
            [](const Slot* a, const Slot* b) { return a->definition.name() < b->definition.name(); });
  v1::ListSegmentsResponse out;
  for (size_t i = 0; i < sorted.size() && static_cast<int>(i) < limit; ++i) *out.add_segments() = Describe(*sorted[i]);
  if (static_cast<int>(sorted.size()) > limit) {
    out.set_next_page_token(util::EncodePageToken("ListSegments", {0, sorted[limit - 1]->definition.name()}));
  }
  return out;
}

absl::StatusOr<v1::Segment> Segments::Update(const v1::UpdateSegmentRequest& request) {
  std::unique_lock lock(features_.mutex());
  const std::string& id = request.segment().id();
  Slot* current = Find(id);
  if (current == nullptr) return absl::NotFoundError(absl::StrCat("segment \"", id, "\" does not exist"));
  if (request.expected_version() != 0 && request.expected_version() != current->definition.version()) {
    return absl::AbortedError(absl::StrCat("segment \"", id, "\" is at version ", current->definition.version(),
                                           ", not ", request.expected_version(), "; read it again and retry"));
  }
  v1::Segment s = current->definition;
  if (request.update_mask().paths_size() == 0) {
    return util::Invalid("update_mask", "name the fields to change: name, description, rule");
  }
  for (int i = 0; i < request.update_mask().paths_size(); ++i) {
    const std::string& path = request.update_mask().paths(i);
    if (path == "name") {
      s.set_name(request.segment().name());
    } else if (path == "description") {
      s.set_description(request.segment().description());
    } else if (path == "rule") {
      s.set_rule(request.segment().rule());
    } else {
      return util::Invalid(absl::StrCat("update_mask.paths[", i, "]"),
                           absl::StrCat("\"", path, "\" cannot be changed; name, description or rule can"));
    }
  }
  ECRM_RETURN_IF_ERROR(Validate(s));
  const int32_t slot_id = current->slot;
  std::vector<std::string> dependents;
  for (int32_t other : order_) {
    const auto& refs = slots_[other]->references;
    if (std::find(refs.begin(), refs.end(), slot_id) != refs.end())
      dependents.push_back(slots_[other]->definition.name());
  }
  if (s.name() != current->definition.name()) {
    if (by_name_.contains(s.name())) {
      return absl::AlreadyExistsError(absl::StrCat("segment.name: \"", s.name(), "\" is taken"));
    }
    if (!dependents.empty()) {
      return absl::FailedPreconditionError(absl::StrCat("segment \"", current->definition.name(),
                                                        "\" cannot be renamed while the rules of ",
                                                        absl::StrJoin(dependents, ", "), " name it"));
    }
  }
  s.set_version(s.version() + 1);
  *s.mutable_updated_at() = util::Ts(absl::ToUnixMicros(clock_()));
  ECRM_ASSIGN_OR_RETURN(std::unique_ptr<Slot> slot, Compile(s, slot_id));
  // A cycle: the new rule names, directly or not, this segment.
  std::vector<int32_t> stack = slot->references;
  std::set<int32_t> seen;
  while (!stack.empty()) {
    const int32_t r = stack.back();
    stack.pop_back();
    if (r == slot_id) {
      return absl::FailedPreconditionError(
          absl::StrCat("segment.rule: segment \"", s.name(), "\" would name itself through the segments it names"));
    }
    if (!seen.insert(r).second || slots_[r] == nullptr) continue;
    stack.insert(stack.end(), slots_[r]->references.begin(), slots_[r]->references.end());
  }
  ECRM_RETURN_IF_ERROR(Save(s, false));
  const bool refill = s.rule() != current->definition.rule();
  by_name_.erase(current->definition.name());
  by_name_[s.name()] = slot_id;
  if (refill) {
    slots_[slot_id] = std::move(slot);
    Reorder();
    Fill(*slots_[slot_id]);
    if (on_unsaved_) on_unsaved_();
  } else {
    current->definition = s;
  }
  return Describe(*slots_[slot_id]);
}

absl::Status Segments::Delete(const std::string& id) {
  std::unique_lock lock(features_.mutex());
  Slot* slot = Find(id);
  if (slot == nullptr) return absl::NotFoundError(absl::StrCat("segment \"", id, "\" does not exist"));
  std::vector<std::string> dependents;
  for (int32_t other : order_) {
    const auto& refs = slots_[other]->references;
    if (std::find(refs.begin(), refs.end(), slot->slot) != refs.end()) {
      dependents.push_back(slots_[other]->definition.name());
    }
  }
  if (!dependents.empty()) {
    return absl::FailedPreconditionError(absl::StrCat("segment \"", slot->definition.name(),
                                                      "\" cannot be deleted while the rules of ",
                                                      absl::StrJoin(dependents, ", "), " name it"));
  }
  ECRM_RETURN_IF_ERROR(db_.InTransaction([&](sql::Connection& c) -> absl::Status {
    ECRM_RETURN_IF_ERROR(c.Execute("DELETE FROM segments WHERE id = $1", {id}).status());
    ECRM_RETURN_IF_ERROR(c.Execute("DELETE FROM segment_members WHERE segment_id = $1", {id}).status());
    return c.Execute("DELETE FROM segment_member_changes WHERE segment_id = $1", {id}).status();
  }));
  by_name_.erase(slot->definition.name());
  by_id_.erase(id);
  slots_[slot->slot].reset();
  Reorder();
  return absl::OkStatus();
}

absl::StatusOr<v1::PreviewSegmentResponse> Segments::Preview(const v1::PreviewSegmentRequest& request) const {
  std::shared_lock lock(features_.mutex());
  if (request.rule().empty()) return util::Invalid("rule", "is required");
  if (request.sample_size() < 0 || request.sample_size() > 100) return util::Invalid("sample_size", "must be 0-100");
  const int sample = request.sample_size() == 0 ? 10 : request.sample_size();
  Schema schema(features_, by_name_, /*intern=*/false);
  absl::StatusOr<rules::Rule> rule = rules::Compile(request.rule(), schema, limits_);
  if (!rule.ok()) return util::Invalid("rule", rule.status().message());
  const absl::Time start = absl::Now();
  PopulationResult result = EvaluatePopulation(*rule, features_, this, clock_());
  v1::PreviewSegmentResponse out;
  out.set_count(static_cast<int64_t>(result.members.cardinality()));
  for (CustomerNo n : result.members) {
    if (out.sample_customer_ids_size() >= sample) break;
    out.add_sample_customer_ids(std::string(features_.Id(n)));
  }
  out.set_population(static_cast<int64_t>(features_.live().cardinality()));
  const absl::Duration took = absl::Now() - start;
  out.mutable_evaluation_time()->set_seconds(absl::ToInt64Seconds(took));
  out.mutable_evaluation_time()->set_nanos(
      static_cast<int32_t>(absl::ToInt64Nanoseconds(took - absl::Seconds(absl::ToInt64Seconds(took)))));
  return out;
}

absl::StatusOr<v1::ListSegmentMembersResponse> Segments::ListMembers(
    const v1::ListSegmentMembersRequest& request) const {
  std::shared_lock lock(features_.mutex());
  const Slot* slot = Find(request.segment_id());
  if (slot == nullptr)
    return absl::NotFoundError(absl::StrCat("segment \"", request.segment_id(), "\" does not exist"));
  ECRM_ASSIGN_OR_RETURN(std::optional<util::PageCursor> after,
                        util::DecodePageToken("ListSegmentMembers", request.page_token()));
  const int limit = util::PageSize(request.page_size(), 1000, 10000);
  v1::ListSegmentMembersResponse out;
  RoaringSetBitForwardIterator it = slot->members.begin();
  if (after) it.equalorlarger(static_cast<uint32_t>(after->number) + 1);
  CustomerNo last = 0;
  for (; it != slot->members.end() && out.customer_ids_size() < limit; ++it) {
    last = *it;
    out.add_customer_ids(std::string(features_.Id(last)));
  }
  if (it != slot->members.end()) {
    out.set_next_page_token(util::EncodePageToken("ListSegmentMembers", {static_cast<int64_t>(last), ""}));
  }
  return out;
}

absl::StatusOr<Roaring> Segments::Snapshot(const std::string& id) const {
  std::shared_lock lock(features_.mutex());
  const Slot* slot = Find(id);
  if (slot == nullptr) return absl::NotFoundError(absl::StrCat("segment \"", id, "\" does not exist"));
  return slot->members;
}

std::vector<std::string> Segments::Ids(absl::Span<const CustomerNo> numbers) const {
  std::shared_lock lock(features_.mutex());
  std::vector<std::string> ids;
  ids.reserve(numbers.size());
  for (CustomerNo n : numbers) {
    if (features_.IsLive(n)) ids.emplace_back(features_.Id(n));
  }
  return ids;
}

std::optional<std::vector<std::pair<std::string, uint64_t>>> Segments::Sizes() const {
  std::shared_lock lock(features_.mutex(), std::try_to_lock);
  if (!lock.owns_lock()) return std::nullopt;
  std::vector<std::pair<std::string, uint64_t>> out;
  out.reserve(by_name_.size());
  for (const auto& [name, slot] : by_name_) out.emplace_back(name, slots_[slot]->members.cardinality());
  return out;
}

const Roaring* Segments::Members(const std::string& id) const {
  const Slot* slot = Find(id);
  return slot == nullptr ? nullptr : &slot->members;
}

std::vector<std::pair<std::string, std::string>> Segments::MembershipsOf(CustomerNo n) const {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& slot : slots_) {
    if (slot != nullptr && slot->members.contains(n)) out.emplace_back(slot->definition.id(), slot->definition.name());
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.second < b.second; });
  return out;
}

absl::StatusOr<v1::GetCustomerSegmentsResponse> Segments::CustomerSegments(const std::string& customer_id) const {
  std::shared_lock lock(features_.mutex());
  return CustomerSegmentsLocked(customer_id);
}

std::optional<absl::StatusOr<v1::GetCustomerSegmentsResponse>> Segments::TryCustomerSegments(
    const std::string& customer_id) const {
  std::shared_lock lock(features_.mutex(), std::try_to_lock);
  if (!lock.owns_lock()) return std::nullopt;
  return CustomerSegmentsLocked(customer_id);
}

absl::StatusOr<v1::GetCustomerSegmentsResponse> Segments::CustomerSegmentsLocked(const std::string& customer_id) const {
  if (customer_id.empty()) return util::Invalid("customer_id", "is required");
  v1::GetCustomerSegmentsResponse out;
  std::optional<CustomerNo> n = features_.Find(customer_id);
  if (!n || !features_.IsLive(*n)) return out;  // unknown here yet: in no segment
  std::vector<const Slot*> in;
  for (const auto& slot : slots_) {
    if (slot != nullptr && slot->members.contains(*n)) in.push_back(slot.get());
  }
  std::sort(in.begin(), in.end(),
            [](const Slot* a, const Slot* b) { return a->definition.name() < b->definition.name(); });
  for (const Slot* slot : in) out.add_segment_ids(slot->definition.id());
  return out;
}

}  // namespace ecrm::segmentation

#include "customer_features.h"

#include <algorithm>
#include <cmath>
#include <tuple>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/time/civil_time.h"

namespace ecrm::segmentation {
namespace {

using rules::FieldRef;
using rules::Value;

constexpr int64_t kSecondsPerDay = 86400;

int64_t Seconds(const google::protobuf::Timestamp& t) { return t.seconds(); }
bool Has(const google::protobuf::Timestamp& t) { return t.seconds() != 0 || t.nanos() != 0; }

int64_t DayOf(int64_t seconds) {
  return seconds >= 0 ? seconds / kSecondsPerDay : -((-seconds + kSecondsPerDay - 1) / kSecondsPerDay);
}

// "YYYY-MM-DD" → midnight UTC, in seconds; kNoTime when empty or not a date.
int64_t ParseDate(const std::string& s) {
  absl::CivilDay day;
  if (s.empty() || !absl::ParseCivilTime(s, &day)) return kNoTime;
  return absl::ToUnixSeconds(absl::FromCivil(day, absl::UTCTimeZone()));
}

// The lower-case name of an enum value without its prefix: CHANNEL_DIRECT_MAIL → direct_mail.
std::string EnumName(const std::string& name, absl::string_view prefix) {
  if (name.empty() || absl::EndsWith(name, "_UNSPECIFIED")) return "";
  return absl::AsciiStrToLower(name.substr(std::min(prefix.size(), name.size())));
}

// Events are counted by UTC day, so a window is whole days: the `ceil(window / 1 day)` days
// ending today, today included (events.count("x", 30d) on day D counts days D-29 … D).
int64_t FirstDay(absl::Duration window, int64_t today) {
  if (window == absl::InfiniteDuration()) return std::numeric_limits<int64_t>::min();
  const int64_t span = std::max<int64_t>(1, absl::ToInt64Seconds(absl::Ceil(window, absl::Hours(24))) / kSecondsPerDay);
  return today - span + 1;
}

constexpr uint32_t ConsentBit(int channel, int purpose) { return 1u << ((channel - 1) * 4 + (purpose - 1)); }

// The string-valued built-in fields and how to read each from a customer.
struct StringSource {
  rules::Field field;
  std::string (*read)(const infostore::v1::Customer&);
};
const StringSource kStringSources[] = {
    {rules::Field::kFirstName, [](const infostore::v1::Customer& c) { return c.profile().first_name(); }},
    {rules::Field::kLastName, [](const infostore::v1::Customer& c) { return c.profile().last_name(); }},
    {rules::Field::kGender,
     [](const infostore::v1::Customer& c) {
       return EnumName(infostore::v1::Gender_Name(c.profile().gender()), "GENDER_");
     }},
    {rules::Field::kLocale, [](const infostore::v1::Customer& c) { return c.profile().locale(); }},
    {rules::Field::kTimeZone, [](const infostore::v1::Customer& c) { return c.profile().time_zone(); }},
    {rules::Field::kAddressLine1, [](const infostore::v1::Customer& c) { return c.profile().address().line1(); }},
    {rules::Field::kAddressLine2, [](const infostore::v1::Customer& c) { return c.profile().address().line2(); }},
    {rules::Field::kCity, [](const infostore::v1::Customer& c) { return c.profile().address().city(); }},
    {rules::Field::kRegion, [](const infostore::v1::Customer& c) { return c.profile().address().region(); }},
    {rules::Field::kPostalCode, [](const infostore::v1::Customer& c) { return c.profile().address().postal_code(); }},
    {rules::Field::kCountry, [](const infostore::v1::Customer& c) { return c.profile().address().country(); }},
    {rules::Field::kCompany, [](const infostore::v1::Customer& c) { return c.profile().business().company(); }},
    {rules::Field::kIndustrySector,
     [](const infostore::v1::Customer& c) { return c.profile().business().industry_sector(); }},
    {rules::Field::kCompanySize,
     [](const infostore::v1::Customer& c) { return c.profile().business().company_size(); }},
    {rules::Field::kRole, [](const infostore::v1::Customer& c) { return c.profile().business().role(); }},
    {rules::Field::kPurchasingInfluence,
     [](const infostore::v1::Customer& c) { return c.profile().business().purchasing_influence(); }},
    {rules::Field::kPreferredChannel,
     [](const infostore::v1::Customer& c) {
       return EnumName(common::v1::Channel_Name(c.preferences().preferred_channel()), "CHANNEL_");
     }},
    {rules::Field::kContactFrequency,
     [](const infostore::v1::Customer& c) {
       return EnumName(infostore::v1::ContactFrequency_Name(c.preferences().contact_frequency()), "CONTACT_FREQUENCY_");
     }},
};

struct TimeSource {
  rules::Field field;
  int64_t (*read)(const infostore::v1::Customer&);
};
int64_t TimeOrNone(const google::protobuf::Timestamp& t) { return Has(t) ? Seconds(t) : kNoTime; }
const TimeSource kTimeSources[] = {
    {rules::Field::kBirthDate, [](const infostore::v1::Customer& c) { return ParseDate(c.profile().birth_date()); }},
    {rules::Field::kOrdersFirstAt,
     [](const infostore::v1::Customer& c) { return TimeOrNone(c.behaviour().first_order_at()); }},
    {rules::Field::kOrdersLastAt,
     [](const infostore::v1::Customer& c) { return TimeOrNone(c.behaviour().last_order_at()); }},
    {rules::Field::kCreatedAt, [](const infostore::v1::Customer& c) { return TimeOrNone(c.created_at()); }},
    {rules::Field::kFirstSeenAt,
     [](const infostore::v1::Customer& c) { return TimeOrNone(c.behaviour().first_seen_at()); }},
    {rules::Field::kLastSeenAt,
     [](const infostore::v1::Customer& c) { return TimeOrNone(c.behaviour().last_seen_at()); }},
};

bool IsTimeField(rules::Field f) {
  for (const TimeSource& t : kTimeSources) {
    if (t.field == f) return true;
  }
  return false;
}

Value TimeValue(int64_t seconds) {
  return seconds == kNoTime ? Value::Missing() : Value::Time(absl::FromUnixSeconds(seconds));
}

rules::Type AttributeType(const common::v1::AttributeValue& v) {
  switch (v.value_case()) {
    case common::v1::AttributeValue::kIntValue:
    case common::v1::AttributeValue::kDoubleValue:
      return rules::Type::kNumber;
    case common::v1::AttributeValue::kBoolValue:
      return rules::Type::kBool;
    case common::v1::AttributeValue::kTimeValue:
      return rules::Type::kTime;
    default:
      return rules::Type::kString;
  }
}

}  // namespace

uint32_t Dictionary::Intern(absl::string_view s) {
  if (s.empty()) return 0;
  auto it = codes_.find(s);
  if (it != codes_.end()) return it->second;
  const uint32_t code = static_cast<uint32_t>(values_.size());
  codes_.emplace(values_.emplace_back(s), code);
  return code;
}

std::optional<uint32_t> Dictionary::Find(absl::string_view s) const {
  if (s.empty()) return 0;
  auto it = codes_.find(s);
  if (it == codes_.end()) return std::nullopt;
  return it->second;
}

size_t Dictionary::MemoryBytes() const {
  size_t bytes = codes_.capacity() * (sizeof(absl::string_view) + sizeof(uint32_t) + 1);
  for (const std::string& v : values_) bytes += sizeof(std::string) + (v.capacity() > 15 ? v.capacity() + 1 : 0);
  return bytes;
}

Features::Features(FeatureOptions options)
    : options_(std::move(options)),
      strings_(rules::kFieldCount),
      times_(rules::kFieldCount),
      currency_(options_.reporting_currency) {}

CustomerNo Features::Intern(absl::string_view customer_id) {
  auto it = numbers_.find(customer_id);
  if (it != numbers_.end()) return it->second;
  const CustomerNo n = static_cast<CustomerNo>(ids_.size());
  numbers_.emplace(ids_.emplace_back(customer_id), n);
  events_.emplace_back();
  return n;
}

std::optional<CustomerNo> Features::Find(absl::string_view customer_id) const {
  auto it = numbers_.find(customer_id);
  if (it == numbers_.end()) return std::nullopt;
  return it->second;
}

StringColumn& Features::MutableString(rules::Field f) { return strings_[static_cast<int>(f)]; }
TimeColumn& Features::MutableTime(rules::Field f) { return times_[static_cast<int>(f)]; }

CustomerNo Features::SetCustomer(const infostore::v1::Customer& c) {
  const CustomerNo n = Intern(c.id());
  live_.add(n);
  for (const StringSource& s : kStringSources) {
    StringColumn& column = MutableString(s.field);
    column.codes.Set(n, column.dictionary.Intern(s.read(c)));
  }
  for (const TimeSource& s : kTimeSources) MutableTime(s.field).Set(n, s.read(c));
  if (c.anonymous()) {
    anonymous_.add(n);
  } else {
    anonymous_.remove(n);
  }

  uint32_t consents = 0;
  for (const infostore::v1::Consent& consent : c.consents()) {
    if (consent.status() == infostore::v1::CONSENT_STATUS_GRANTED && consent.channel() >= 1 && consent.channel() <= 6 &&
        consent.purpose() >= 1 && consent.purpose() <= 4) {
      consents |= ConsentBit(consent.channel(), consent.purpose());
    }
  }
  consents_.Set(n, consents);

  for (auto& [interest, members] : interests_) members.remove(n);
  for (const std::string& interest : c.preferences().interests()) interests_[interest].add(n);

  const infostore::v1::BehaviourSummary& b = c.behaviour();
  order_count_.Set(n, static_cast<uint32_t>(std::max<int64_t>(b.order_count(), 0)));
  if (currency_.empty() && !b.total_spent().currency().empty()) currency_ = b.total_spent().currency();
  order_total_.Set(n, b.total_spent().currency() == currency_ ? b.total_spent().amount_minor() : 0);

  // Attributes: every column the customer is not in the map of loses its value.
  for (AttributeColumn& column : attributes_) {
    column.strings.codes.Set(n, 0);
    column.numbers.Set(n, std::numeric_limits<double>::quiet_NaN());
    column.has.remove(n);
    column.times.Set(n, kNoTime);
  }
  for (const auto& [name, value] : c.attributes()) {
    if (value.value_case() == common::v1::AttributeValue::VALUE_NOT_SET) continue;
    AttributeColumn& column = MutableAttribute(name, AttributeType(value));
    if (column.type != AttributeType(value)) continue;  // the information store keeps types fixed
    switch (value.value_case()) {
      case common::v1::AttributeValue::kStringValue:
        column.strings.codes.Set(n, column.strings.dictionary.Intern(value.string_value()));
        break;
      case common::v1::AttributeValue::kIntValue:
        column.numbers.Set(n, static_cast<double>(value.int_value()));
        break;
      case common::v1::AttributeValue::kDoubleValue:
        column.numbers.Set(n, value.double_value());
        break;
      case common::v1::AttributeValue::kBoolValue:
        column.has.add(n);
        if (value.bool_value()) {
          column.truth.add(n);
        } else {
          column.truth.remove(n);
        }
        break;
      case common::v1::AttributeValue::kTimeValue:
        column.times.Set(n, Seconds(value.time_value()));
        break;
      default:
        break;
    }
  }
  return n;
}

AttributeColumn& Features::MutableAttribute(absl::string_view name, rules::Type type) {
  auto it = attribute_ids_.find(name);
  if (it != attribute_ids_.end()) return attributes_[it->second];
  attribute_ids_.emplace(std::string(name), static_cast<int32_t>(attributes_.size()));
  AttributeColumn& column = attributes_.emplace_back();
  column.type = type;
  return column;
}

int32_t Features::InternEventType(absl::string_view name) {
  auto it = event_types_.find(name);
  if (it != event_types_.end()) return it->second;
  const int32_t id = static_cast<int32_t>(event_type_names_.size());
  event_type_names_.emplace_back(name);
  event_types_.emplace(std::string(name), id);
  return id;
}

std::optional<int32_t> Features::FindEventType(absl::string_view name) const {
  auto it = event_types_.find(name);
  if (it == event_types_.end()) return std::nullopt;
  return it->second;
}

CustomerNo Features::AddEvent(const infostore::v1::Event& e) {
  const CustomerNo n = CountEvent(e);
  ApplyOrder(n, e);
  return n;
}

CustomerNo Features::CountEvent(const infostore::v1::Event& e) {
  const CustomerNo n = Intern(e.customer_id());
  live_.add(n);
  const int32_t type = InternEventType(e.type());
  if (type > std::numeric_limits<uint16_t>::max()) return n;  // past 65,536 types: orders only
  NoteLast(n, static_cast<uint16_t>(type), Seconds(e.occurred_at()));
  AddDays(n, static_cast<uint16_t>(type), DayOf(Seconds(e.occurred_at())), 1);
  return n;
}

void Features::NoteLast(CustomerNo n, uint16_t type, int64_t at) {
  std::vector<LastEvent>& last = events_[n].last;
  auto it = std::lower_bound(last.begin(), last.end(), type, [](const LastEvent& l, uint16_t t) { return l.type < t; });
  if (it == last.end() || it->type != type) {
    last.insert(it, LastEvent{type, at});
  } else {
    it->at = std::max(it->at, at);
  }
}

void Features::AddDays(CustomerNo n, uint16_t type, int64_t day, uint32_t count) {
  if (day < 0 || day > std::numeric_limits<uint16_t>::max() || count == 0) return;
  std::vector<EventDay>& days = events_[n].days;
  const auto d = static_cast<uint16_t>(day);
  auto it = std::lower_bound(
      days.begin(), days.end(), std::make_pair(type, d),
      [](const EventDay& e, const std::pair<uint16_t, uint16_t>& k) { return std::make_pair(e.type, e.day) < k; });
  if (it != days.end() && it->type == type && it->day == d) {
    it->count += count;
  } else {
    days.insert(it, EventDay{type, d, count});
  }
}

void Features::PruneEvents(absl::Time now) {
  const int64_t horizon = DayOf(absl::ToUnixSeconds(now - options_.event_horizon));
  for (Events& ev : events_) {
    auto old = std::remove_if(ev.days.begin(), ev.days.end(), [&](const EventDay& d) { return d.day < horizon; });
    if (old != ev.days.end()) {
      ev.days.erase(old, ev.days.end());
      ev.days.shrink_to_fit();
    }
  }
}

// As the information store's behaviour summary: a purchase adds an order and its amount, a
// refund takes back its amount, a cancelled order its amount and the order.
void Features::ApplyOrder(CustomerNo n, const infostore::v1::Event& e) {
  const bool purchase = e.type() == "purchase", cancelled = e.type() == "order_cancelled";
  const bool refund = e.type() == "refund" || cancelled;
  if ((purchase || refund) && e.has_amount()) {
    if (currency_.empty()) currency_ = e.amount().currency();
    if (e.amount().currency() == currency_) {
      const int64_t delta = purchase ? e.amount().amount_minor() : -std::abs(e.amount().amount_minor());
      order_total_.Set(n, order_total_.Get(n) + delta);
    }
  }
  if (cancelled && order_count_.Get(n) > 0) order_count_.Set(n, order_count_.Get(n) - 1);
  if (purchase) {
    order_count_.Set(n, order_count_.Get(n) + 1);
    const int64_t at = Seconds(e.occurred_at());
    TimeColumn& first = MutableTime(rules::Field::kOrdersFirstAt);
    TimeColumn& last = MutableTime(rules::Field::kOrdersLastAt);
    if (first.Get(n) == kNoTime || at < first.Get(n)) first.Set(n, at);
    if (last.Get(n) == kNoTime || at > last.Get(n)) last.Set(n, at);
  }
  TimeColumn& first_seen = MutableTime(rules::Field::kFirstSeenAt);
  TimeColumn& last_seen = MutableTime(rules::Field::kLastSeenAt);
  const int64_t at = Seconds(e.occurred_at());
  if (first_seen.Get(n) == kNoTime || at < first_seen.Get(n)) first_seen.Set(n, at);
  if (last_seen.Get(n) == kNoTime || at > last_seen.Get(n)) last_seen.Set(n, at);
}

void Features::Merge(absl::string_view survivor_id, absl::Span<const std::string> merged_ids) {
  const CustomerNo s = Intern(survivor_id);
  live_.add(s);
  for (const std::string& id : merged_ids) {
    std::optional<CustomerNo> m = Find(id);
    if (!m || *m == s) continue;
    Events moved = std::move(events_[*m]);
    for (const LastEvent& l : moved.last) NoteLast(s, l.type, l.at);
    for (const EventDay& d : moved.days) AddDays(s, d.type, d.day, d.count);
    Remove(id);
  }
}

void Features::ClearEvents(CustomerNo n) { events_[n] = Events(); }

void Features::ClearProfile(CustomerNo n) {
  for (StringColumn& column : strings_) column.codes.Set(n, 0);
  for (TimeColumn& column : times_) column.Set(n, kNoTime);
  anonymous_.remove(n);
  consents_.Set(n, 0);
  for (auto& [interest, members] : interests_) members.remove(n);
  order_count_.Set(n, 0);
  order_total_.Set(n, 0);
  rfm_r_.Set(n, 0);
  rfm_f_.Set(n, 0);
  rfm_m_.Set(n, 0);
  rfm_cell_.codes.Set(n, 0);
  clv_.Set(n, std::numeric_limits<double>::quiet_NaN());
  engagement_.Set(n, std::numeric_limits<double>::quiet_NaN());
  for (AttributeColumn& column : attributes_) {
    column.strings.codes.Set(n, 0);
    column.numbers.Set(n, std::numeric_limits<double>::quiet_NaN());
    column.has.remove(n);
    column.truth.remove(n);
    column.times.Set(n, kNoTime);
  }
}

void Features::Remove(absl::string_view customer_id) {
  std::optional<CustomerNo> n = Find(customer_id);
  if (!n) return;
  ClearProfile(*n);
  ClearEvents(*n);
  live_.remove(*n);
  // The number is not given out again (bitmaps may still be read for it until they are
  // updated); the id is forgotten.
  numbers_.erase(customer_id);
  ids_[*n] = std::string();
}

internal::CustomerFeaturesRecord Features::ToRecord(CustomerNo n) const {
  internal::CustomerFeaturesRecord r;
  for (int i = 0; i < rules::kFieldCount; ++i) {
    const auto field = static_cast<rules::Field>(i);
    if (IsTimeField(field)) {
      if (int64_t t = times_[i].Get(n); t != kNoTime) {
        auto* time = r.add_times();
        time->set_field(rules::FieldName(FieldRef::Builtin(field)));
        time->set_seconds(t);
      }
    } else if (uint32_t code = strings_[i].codes.Get(n); code != 0) {
      auto* text = r.add_texts();
      text->set_field(rules::FieldName(FieldRef::Builtin(field)));
      text->set_value(std::string(strings_[i].dictionary.value(code)));
    }
  }
  r.set_consents(consents_.Get(n));
  for (const auto& [interest, members] : interests_) {
    if (members.contains(n)) r.add_interests(interest);
  }
  std::sort(r.mutable_interests()->begin(), r.mutable_interests()->end());
  r.set_order_count(order_count_.Get(n));
  r.set_order_total(order_total_.Get(n));
  r.set_anonymous(anonymous_.contains(n));
  for (const auto& [name, id] : attribute_ids_) {
    Value v = Field(n, FieldRef::Attribute(id));
    if (v.kind == Value::Kind::kMissing) continue;
    auto* a = r.add_attributes();
    a->set_name(name);
    switch (v.kind) {
      case Value::Kind::kString:
        a->set_text(std::string(v.string));
        break;
      case Value::Kind::kNumber:
        a->set_number(v.number);
        break;
      case Value::Kind::kBool:
        a->set_boolean(v.boolean);
        break;
      case Value::Kind::kTime:
        a->set_seconds(absl::ToUnixSeconds(v.time));
        break;
      default:
        break;
    }
  }
  std::sort(r.mutable_attributes()->begin(), r.mutable_attributes()->end(),
            [](const auto& a, const auto& b) { return a.name() < b.name(); });
  if (n < events_.size()) {
    for (const EventDay& d : events_[n].days) {
      auto* day = r.add_days();
      day->set_type(event_type_names_[d.type]);
      day->set_day(d.day);
      day->set_count(d.count);
    }
    for (const LastEvent& l : events_[n].last) {
      auto* last = r.add_last();
      last->set_type(event_type_names_[l.type]);
      last->set_seconds(l.at);
    }
  }
  // In name order, so that equal customers save equal bytes whatever the ids of their types.
  std::sort(r.mutable_days()->begin(), r.mutable_days()->end(), [](const auto& a, const auto& b) {
    return a.type() != b.type() ? a.type() < b.type() : a.day() < b.day();
  });
  std::sort(r.mutable_last()->begin(), r.mutable_last()->end(),
            [](const auto& a, const auto& b) { return a.type() < b.type(); });
  return r;
}

CustomerNo Features::FromRecord(absl::string_view customer_id, const internal::CustomerFeaturesRecord& r) {
  const CustomerNo n = Intern(customer_id);
  ClearProfile(n);
  ClearEvents(n);
  live_.add(n);
  for (const auto& text : r.texts()) {
    std::optional<rules::BuiltinField> f = rules::FindBuiltinField(text.field());
    if (!f || f->ref.kind != FieldRef::Kind::kBuiltin || IsTimeField(f->ref.builtin())) continue;
    StringColumn& column = MutableString(f->ref.builtin());
    column.codes.Set(n, column.dictionary.Intern(text.value()));
  }
  for (const auto& time : r.times()) {
    std::optional<rules::BuiltinField> f = rules::FindBuiltinField(time.field());
    if (!f || f->ref.kind != FieldRef::Kind::kBuiltin || !IsTimeField(f->ref.builtin())) continue;
    MutableTime(f->ref.builtin()).Set(n, time.seconds());
  }
  consents_.Set(n, r.consents());
  for (const std::string& interest : r.interests()) interests_[interest].add(n);
  order_count_.Set(n, r.order_count());
  order_total_.Set(n, r.order_total());
  if (r.anonymous()) anonymous_.add(n);
  for (const auto& a : r.attributes()) {
    using A = internal::CustomerFeaturesRecord::Attribute;
    switch (a.value_case()) {
      case A::kText: {
        AttributeColumn& column = MutableAttribute(a.name(), rules::Type::kString);
        if (column.type == rules::Type::kString)
          column.strings.codes.Set(n, column.strings.dictionary.Intern(a.text()));
        break;
      }
      case A::kNumber: {
        AttributeColumn& column = MutableAttribute(a.name(), rules::Type::kNumber);
        if (column.type == rules::Type::kNumber) column.numbers.Set(n, a.number());
        break;
      }
      case A::kBoolean: {
        AttributeColumn& column = MutableAttribute(a.name(), rules::Type::kBool);
        if (column.type != rules::Type::kBool) break;
        column.has.add(n);
        if (a.boolean()) column.truth.add(n);
        break;
      }
      case A::kSeconds: {
        AttributeColumn& column = MutableAttribute(a.name(), rules::Type::kTime);
        if (column.type == rules::Type::kTime) column.times.Set(n, a.seconds());
        break;
      }
      default:
        break;
    }
  }
  for (const auto& last : r.last()) NoteLast(n, static_cast<uint16_t>(InternEventType(last.type())), last.seconds());
  for (const auto& day : r.days())
    AddDays(n, static_cast<uint16_t>(InternEventType(day.type())), day.day(), day.count());
  return n;
}

void Features::Clear() {
  for (CustomerNo n : live_) {
    ClearProfile(n);
    ClearEvents(n);
  }
  live_ = Roaring();
}

void Features::SetRfm(CustomerNo n, uint8_t r, uint8_t f, uint8_t m, absl::string_view cell) {
  rfm_r_.Set(n, r);
  rfm_f_.Set(n, f);
  rfm_m_.Set(n, m);
  rfm_cell_.codes.Set(n, rfm_cell_.dictionary.Intern(cell));
}
void Features::SetClv(CustomerNo n, double value) { clv_.Set(n, value); }
void Features::SetEngagement(CustomerNo n, double score) { engagement_.Set(n, score); }

Value Features::Field(CustomerNo n, const FieldRef& f) const {
  switch (f.kind) {
    case FieldRef::Kind::kConsent:
      if (f.id < 1 || f.id > 6 || f.purpose < 1 || f.purpose > 4) return Value::Bool(false);
      return Value::Bool((consents_.Get(n) & ConsentBit(f.id, f.purpose)) != 0);
    case FieldRef::Kind::kAttribute: {
      if (f.id < 0 || static_cast<size_t>(f.id) >= attributes_.size()) return Value::Missing();
      const AttributeColumn& column = attributes_[f.id];
      switch (column.type) {
        case rules::Type::kString: {
          uint32_t code = column.strings.codes.Get(n);
          return code == 0 ? Value::Missing() : Value::String(column.strings.dictionary.value(code));
        }
        case rules::Type::kNumber: {
          double v = column.numbers.Get(n);
          return std::isnan(v) ? Value::Missing() : Value::Number(v);
        }
        case rules::Type::kBool:
          return column.has.contains(n) ? Value::Bool(column.truth.contains(n)) : Value::Missing();
        case rules::Type::kTime:
          return TimeValue(column.times.Get(n));
        default:
          return Value::Missing();
      }
    }
    case FieldRef::Kind::kBuiltin:
      break;
  }
  const rules::Field field = f.builtin();
  switch (field) {
    case rules::Field::kInterests:
      return Value::Missing();  // read through ListContains
    case rules::Field::kOrdersCount:
      return Value::Number(order_count_.Get(n));
    case rules::Field::kOrdersTotal:
      return Value::Number(static_cast<double>(order_total_.Get(n)));
    case rules::Field::kRfmCell: {
      uint32_t code = rfm_cell_.codes.Get(n);
      return code == 0 ? Value::Missing() : Value::String(rfm_cell_.dictionary.value(code));
    }
    case rules::Field::kRfmR:
    case rules::Field::kRfmF:
    case rules::Field::kRfmM: {
      const auto& column = field == rules::Field::kRfmR ? rfm_r_ : field == rules::Field::kRfmF ? rfm_f_ : rfm_m_;
      uint8_t v = column.Get(n);
      return v == 0 ? Value::Missing() : Value::Number(v);
    }
    case rules::Field::kClv:
    case rules::Field::kEngagement: {
      double v = (field == rules::Field::kClv ? clv_ : engagement_).Get(n);
      return std::isnan(v) ? Value::Missing() : Value::Number(v);
    }
    case rules::Field::kAnonymous:
      return Value::Bool(anonymous_.contains(n));
    default:
      break;
  }
  const int i = static_cast<int>(field);
  if (i < 0 || i >= rules::kFieldCount) return Value::Missing();
  if (IsTimeField(field)) return TimeValue(times_[i].Get(n));
  const StringColumn& s = strings_[i];
  const uint32_t code = s.codes.Get(n);
  return code == 0 ? Value::Missing() : Value::String(s.dictionary.value(code));
}

bool Features::ListContains(CustomerNo n, const FieldRef& f, absl::string_view item) const {
  if (f.kind != FieldRef::Kind::kBuiltin || f.builtin() != rules::Field::kInterests) return false;
  auto it = interests_.find(item);
  return it != interests_.end() && it->second.contains(n);
}

int64_t Features::EventCount(CustomerNo n, int32_t type, absl::Duration window, absl::Time now) const {
  if (n >= events_.size() || type < 0 || type > std::numeric_limits<uint16_t>::max()) return 0;
  const std::vector<EventDay>& days = events_[n].days;
  const int64_t today = DayOf(absl::ToUnixSeconds(now));
  const int64_t first_day = FirstDay(window, today);
  int64_t count = 0;
  auto it = std::lower_bound(days.begin(), days.end(), static_cast<uint16_t>(type),
                             [](const EventDay& e, uint16_t t) { return e.type < t; });
  for (; it != days.end() && it->type == type; ++it) {
    if (it->day >= first_day && it->day <= today) count += it->count;
  }
  return count;
}

void Features::ForEachEventDay(CustomerNo n,
                               absl::FunctionRef<void(int32_t type, int64_t day, int64_t count)> fn) const {
  if (n >= events_.size()) return;
  for (const EventDay& d : events_[n].days) fn(d.type, d.day, d.count);
}

std::optional<absl::Time> Features::LastEventAt(CustomerNo n, int32_t type) const {
  if (n >= events_.size() || type < 0 || type > std::numeric_limits<uint16_t>::max()) return std::nullopt;
  const Events& ev = events_[n];
  auto it = std::lower_bound(ev.last.begin(), ev.last.end(), static_cast<uint16_t>(type),
                             [](const LastEvent& l, uint16_t t) { return l.type < t; });
  if (it == ev.last.end() || it->type != type) return std::nullopt;
  return absl::FromUnixSeconds(it->at);
}

absl::Time Features::EventCountAtMostAt(CustomerNo n, int32_t type, absl::Duration window, absl::Time now,
                                        int64_t at_most) const {
  if (window == absl::InfiniteDuration()) return absl::InfiniteFuture();
  int64_t excess = EventCount(n, type, window, now) - at_most;
  if (excess <= 0) return now;
  if (n >= events_.size()) return absl::InfiniteFuture();  // (at_most < 0: never)
  const std::vector<EventDay>& days = events_[n].days;
  const int64_t today = DayOf(absl::ToUnixSeconds(now));
  const int64_t first_day = FirstDay(window, today);
  const int64_t span = today - first_day + 1;  // whole days the window covers
  auto it = std::lower_bound(days.begin(), days.end(), static_cast<uint16_t>(type),
                             [](const EventDay& e, uint16_t t) { return e.type < t; });
  for (; it != days.end() && it->type == type; ++it) {
    if (it->day < first_day || it->day > today) continue;
    excess -= it->count;
    // Day d leaves the window when the window's first day passes it: at the start of d + span.
    if (excess <= 0) return absl::FromUnixSeconds((it->day + span) * kSecondsPerDay);
  }
  return absl::InfiniteFuture();
}

std::optional<rules::AttributeInfo> Features::FindAttribute(absl::string_view name) const {
  auto it = attribute_ids_.find(name);
  if (it == attribute_ids_.end()) return std::nullopt;
  return rules::AttributeInfo{it->second, attributes_[it->second].type};
}

std::vector<std::string> Features::AttributeNames() const {
  std::vector<std::string> names;
  for (const auto& [name, id] : attribute_ids_) names.push_back(name);
  std::sort(names.begin(), names.end());
  return names;
}

const StringColumn* Features::StringField(rules::Field f) const { return &strings_[static_cast<int>(f)]; }
const TimeColumn* Features::TimeField(rules::Field f) const { return &times_[static_cast<int>(f)]; }
const AttributeColumn* Features::Attribute(int32_t id) const {
  return id >= 0 && static_cast<size_t>(id) < attributes_.size() ? &attributes_[id] : nullptr;
}
const Roaring* Features::Interest(absl::string_view item) const {
  auto it = interests_.find(item);
  return it == interests_.end() ? nullptr : &it->second;
}

size_t Features::MemoryBytes() const {
  size_t bytes = numbers_.capacity() * (sizeof(absl::string_view) + sizeof(CustomerNo) + 1);
  for (const std::string& id : ids_) bytes += sizeof(std::string) + (id.capacity() > 15 ? id.capacity() + 1 : 0);
  for (const StringColumn& c : strings_) bytes += c.codes.MemoryBytes() + c.dictionary.MemoryBytes();
  for (const TimeColumn& c : times_) bytes += c.MemoryBytes();
  bytes += order_count_.MemoryBytes() + order_total_.MemoryBytes() + consents_.MemoryBytes();
  bytes += rfm_r_.MemoryBytes() * 3 + rfm_cell_.codes.MemoryBytes() + clv_.MemoryBytes() + engagement_.MemoryBytes();
  bytes += live_.getSizeInBytes(false) + anonymous_.getSizeInBytes(false);
  for (const auto& [name, members] : interests_) bytes += members.getSizeInBytes(false) + name.size();
  for (const AttributeColumn& c : attributes_) {
    bytes += c.strings.codes.MemoryBytes() + c.strings.dictionary.MemoryBytes() + c.numbers.MemoryBytes() +
             c.times.MemoryBytes() + c.has.getSizeInBytes(false) + c.truth.getSizeInBytes(false);
  }
  bytes += events_.capacity() * sizeof(Events);
  for (const Events& e : events_) {
    bytes += e.days.capacity() * sizeof(EventDay) + e.last.capacity() * sizeof(LastEvent);
  }
  return bytes;
}

}  // namespace ecrm::segmentation

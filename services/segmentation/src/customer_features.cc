#include "customer_features.h"

#include <sys/mman.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <new>
#include <tuple>
#include <type_traits>

#include "absl/container/inlined_vector.h"
#include "absl/hash/hash.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
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

void TimeColumn::Set(CustomerNo n, int64_t seconds) {
  if (n >= values_.size()) {
    if (seconds == kNoTime) return;
    values_.resize(size_t{n} + 1, kMissing);
  }
  if (values_[n] == kWide) wide_.erase(n);
  if (seconds == kNoTime) {
    values_[n] = kMissing;
  } else if (seconds > kEpoch + kWide && seconds <= kEpoch + std::numeric_limits<int32_t>::max()) {
    values_[n] = static_cast<int32_t>(seconds - kEpoch);
  } else {
    values_[n] = kWide;
    wide_[n] = seconds;
  }
}

size_t TimeColumn::MemoryBytes() const {
  return values_.MemoryBytes() + wide_.capacity() * (sizeof(CustomerNo) + sizeof(int64_t) + 1);
}

namespace {
template <typename To, typename From>
void Widen(MappedVector<From>& from, MappedVector<To>& to) {
  to = MappedVector<To>();
  to.Append(from.size());
  std::copy(from.begin(), from.end(), to.data());
  from = MappedVector<From>();
}
}  // namespace

void CodeColumn::Set(CustomerNo n, uint32_t code) {
  const int width = code <= 0xff ? 1 : code <= 0xffff ? 2 : 4;
  if (width > width_) {
    if (width_ == 1 && width == 2) Widen(w1_, w2_);
    if (width_ == 1 && width == 4) Widen(w1_, w4_);
    if (width_ == 2) Widen(w2_, w4_);
    width_ = width;
  }
  auto set = [&](auto& values) {
    using T = std::decay_t<decltype(values[0])>;
    if (n >= values.size()) {
      if (code == 0) return;
      values.resize(size_t{n} + 1, T{0});
    }
    values[n] = static_cast<T>(code);
  };
  if (width_ == 1) {
    set(w1_);
  } else if (width_ == 2) {
    set(w2_);
  } else {
    set(w4_);
  }
}

size_t CustomerIds::Hash::operator()(absl::string_view id) const { return absl::Hash<absl::string_view>()(id); }

char* CustomerIds::At(CustomerNo n) const {
  const uint64_t at = runs_[n / 64] + offsets_[n];
  return chunks_[at / kChunk].get() + at % kChunk;
}

std::optional<CustomerNo> CustomerIds::Find(absl::string_view id) const {
  auto it = numbers_.find(id);
  if (it == numbers_.end()) return std::nullopt;
  return *it;
}

absl::string_view CustomerIds::Get(CustomerNo n) const {
  const char* p = At(n);
  const auto length = static_cast<uint8_t>(p[0]);
  if (length != kLong) return absl::string_view(p + 1, length);
  uint32_t index;
  std::memcpy(&index, p + 1, sizeof(index));
  return long_[index];
}

CustomerNo CustomerIds::Add(absl::string_view id) {
  const CustomerNo n = Append(id);
  numbers_.insert(n);
  return n;
}

void CustomerIds::Skip(CustomerNo end) {
  while (offsets_.size() < end) Append("");
}

CustomerNo CustomerIds::Append(absl::string_view id) {
  const auto n = static_cast<CustomerNo>(offsets_.size());
  const bool is_long = id.size() >= kLong;
  const size_t size = 1 + (is_long ? sizeof(uint32_t) : id.size());
  if (used_ + size > kChunk) {
    chunks_.push_back(std::make_unique_for_overwrite<char[]>(kChunk));
    used_ = 0;
  }
  const uint64_t at = (chunks_.size() - 1) * kChunk + used_;
  if (n % 64 == 0) runs_.resize(runs_.size() + 1, at);
  // A run's 64 ids (at most 255 bytes each with their length) and the unused end of a chunk
  // stay within 16 bits.
  offsets_.resize(offsets_.size() + 1, static_cast<uint16_t>(at - runs_[runs_.size() - 1]));
  char* p = chunks_.back().get() + used_;
  if (is_long) {
    p[0] = static_cast<char>(kLong);
    const auto index = static_cast<uint32_t>(long_.size());
    long_.emplace_back(id);
    std::memcpy(p + 1, &index, sizeof(index));
  } else {
    p[0] = static_cast<char>(id.size());
    std::memcpy(p + 1, id.data(), id.size());
  }
  used_ += size;
  return n;
}

void CustomerIds::Forget(CustomerNo n) {
  numbers_.erase(n);
  char* p = At(n);
  const auto length = static_cast<uint8_t>(p[0]);
  if (length == kLong) {
    uint32_t index;
    std::memcpy(&index, p + 1, sizeof(index));
    std::string().swap(long_[index]);
  } else {
    std::memset(p + 1, 0, length);
  }
  p[0] = 0;
}

size_t CustomerIds::MemoryBytes() const {
  size_t bytes = chunks_.size() * kChunk + runs_.MemoryBytes() + offsets_.MemoryBytes();
  bytes += numbers_.capacity() * (sizeof(CustomerNo) + 1);
  for (const std::string& id : long_) bytes += sizeof(std::string) + id.capacity();
  return bytes;
}

MappedBuffer::~MappedBuffer() {
  if (data_ != nullptr) munmap(data_, capacity_);
}

void MappedBuffer::Reserve(size_t bytes) {
  if (bytes <= capacity_) return;
  constexpr size_t kPage = 4096;
  size_t capacity = std::max(bytes, std::max(capacity_ * 2, kPage));
  capacity = (capacity + kPage - 1) / kPage * kPage;
  void* p = data_ == nullptr ? mmap(nullptr, capacity, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
                             : mremap(data_, capacity_, capacity, MREMAP_MAYMOVE);
  if (p == MAP_FAILED) throw std::bad_alloc();
  data_ = p;
  capacity_ = capacity;
}

void EventStore::Resize(CustomerNo end) {
  if (end <= offsets_.size()) return;
  offsets_.resize(end, kNoBlock);
  const size_t groups = ((size_t{end} - 1) >> kGroupBits) + 1;
  if (groups > groups_.size()) groups_.resize(groups);
}

int64_t EventStore::Last(CustomerNo n, const uint32_t* b, uint32_t i) const {
  const uint32_t at = b[2 + 2 * i];
  if (at < kWide) return at;
  return at == kNone ? kNoTime : wide_.at(Key(n, static_cast<uint16_t>(b[1 + 2 * i] >> 16)));
}

size_t EventStore::Used(const uint32_t* b) {
  const uint32_t types = b[0] & 0xffff;
  size_t words = 1 + 2 * size_t{types};
  for (uint32_t i = 0; i < types; ++i) words += b[1 + 2 * i] & 0xffff;
  return words;
}

uint32_t* EventStore::Grow(CustomerNo n, size_t used, size_t more) {
  uint32_t* b = Block(n);
  if (b != nullptr && (b[0] >> 16) >= more) {
    b[0] -= static_cast<uint32_t>(more) << 16;
    return b;
  }
  const size_t g = n >> kGroupBits;
  Group& group = groups_[g];
  if (b != nullptr) {
    // The block moves: compact first if that would leave a quarter of the arena behind.
    const size_t garbage = group.garbage + used + (b[0] >> 16);
    if (garbage > 4096 && garbage * 4 > group.arena.size()) Compact(g);
    b = Block(n);
  }
  const size_t free = b == nullptr ? 0 : b[0] >> 16;
  const size_t room = std::min<size_t>(0xffff, std::max<size_t>(2, (used + more) / 8));
  const size_t at = group.arena.Append(used + more + room);  // may move the arena
  uint32_t* moved = group.arena.data() + at;
  if (b == nullptr) {
    moved[0] = 0;
  } else {
    std::memcpy(moved, group.arena.data() + offsets_[n], used * sizeof(uint32_t));
    group.garbage += used + free;
  }
  moved[0] = (moved[0] & 0xffff) | static_cast<uint32_t>(room) << 16;
  offsets_[n] = static_cast<uint32_t>(at);
  return moved;
}

void EventStore::Compact(size_t g) {
  Group& group = groups_[g];
  MappedVector<uint32_t> fresh;
  const size_t first = g << kGroupBits;
  const size_t end = std::min(offsets_.size(), first + (size_t{1} << kGroupBits));
  for (size_t n = first; n < end; ++n) {
    if (offsets_[n] == kNoBlock) continue;
    const uint32_t* b = group.arena.data() + offsets_[n];
    const size_t used = Used(b);
    const size_t at = fresh.Append(used);
    std::memcpy(fresh.data() + at, b, used * sizeof(uint32_t));
    fresh.data()[at] &= 0xffff;
    offsets_[n] = static_cast<uint32_t>(at);
  }
  group.arena = std::move(fresh);
  group.garbage = 0;
}

uint32_t EventStore::TypeIndex(CustomerNo n, uint16_t type) {
  uint32_t* b = Block(n);
  const uint32_t types = b == nullptr ? 0 : b[0] & 0xffff;
  uint32_t i = 0;
  while (i < types && (b[1 + 2 * i] >> 16) < type) ++i;
  if (i < types && (b[1 + 2 * i] >> 16) == type) return i;
  const size_t used = b == nullptr ? 1 : Used(b);
  b = Grow(n, used, 2);
  uint32_t* at = b + 1 + 2 * i;
  std::memmove(at + 2, at, (used - (1 + 2 * i)) * sizeof(uint32_t));
  at[0] = uint32_t{type} << 16;
  at[1] = kNone;
  ++b[0];
  return i;
}

void EventStore::NoteLast(CustomerNo n, uint16_t type, int64_t at_seconds) {
  const uint32_t i = TypeIndex(n, type);
  uint32_t* b = Block(n);
  if (at_seconds <= Last(n, b, i)) return;
  if (b[2 + 2 * i] == kWide) wide_.erase(Key(n, type));
  if (at_seconds >= 0 && at_seconds < kWide) {
    b[2 + 2 * i] = static_cast<uint32_t>(at_seconds);
  } else {
    b[2 + 2 * i] = kWide;
    wide_[Key(n, type)] = at_seconds;
  }
}

void EventStore::AddDays(CustomerNo n, uint16_t type, uint16_t day, uint32_t count) {
  const uint32_t i = TypeIndex(n, type);
  while (count > 0) {
    uint32_t* b = Block(n);
    const uint32_t types = b[0] & 0xffff;
    size_t start = 1 + 2 * size_t{types};
    for (uint32_t k = 0; k < i; ++k) start += b[1 + 2 * k] & 0xffff;
    const uint32_t entries = b[1 + 2 * i] & 0xffff;
    // The last entry of the day, if any (a new event is most often of the latest day).
    size_t at = start + entries;
    while (at > start && (b[at - 1] >> 16) > day) --at;
    if (at > start && (b[at - 1] >> 16) == day && (b[at - 1] & 0xffff) < 0xffff) {
      const uint32_t add = std::min<uint32_t>(count, 0xffff - (b[at - 1] & 0xffff));
      b[at - 1] += add;
      count -= add;
      continue;
    }
    if (entries == 0xffff) return;  // the type's entries are full: not counted
    const size_t used = Used(b);
    b = Grow(n, used, 1);
    std::memmove(b + at + 1, b + at, (used - at) * sizeof(uint32_t));
    const uint32_t add = std::min<uint32_t>(count, 0xffff);
    b[at] = uint32_t{day} << 16 | add;
    ++b[1 + 2 * i];
    count -= add;
  }
}

void EventStore::Clear(CustomerNo n) {
  const uint32_t* b = Block(n);
  if (b == nullptr) return;
  const uint32_t types = b[0] & 0xffff;
  for (uint32_t i = 0; i < types; ++i) {
    if (b[2 + 2 * i] == kWide) wide_.erase(Key(n, static_cast<uint16_t>(b[1 + 2 * i] >> 16)));
  }
  groups_[n >> kGroupBits].garbage += Used(b) + (b[0] >> 16);
  offsets_[n] = kNoBlock;
}

void EventStore::Prune(int64_t first_day, size_t g) {
  const size_t begin = g << kGroupBits, end = std::min(offsets_.size(), (g + 1) << kGroupBits);
  for (size_t n = begin; n < end; ++n) {
    uint32_t* b = Block(static_cast<CustomerNo>(n));
    if (b == nullptr) continue;
    const uint32_t types = b[0] & 0xffff;
    const uint32_t* from = b + 1 + 2 * types;
    uint32_t* to = b + 1 + 2 * types;
    for (uint32_t i = 0; i < types; ++i) {
      const uint32_t entries = b[1 + 2 * i] & 0xffff;
      uint32_t kept = 0;
      for (uint32_t k = 0; k < entries; ++k, ++from) {
        if (static_cast<int64_t>(*from >> 16) < first_day) continue;
        *to++ = *from;
        ++kept;
      }
      b[1 + 2 * i] = (b[1 + 2 * i] & 0xffff0000) | kept;
    }
    // The words dropped are left behind until the arena is compacted.
    groups_[g].garbage += static_cast<size_t>(from - to);
  }
  if (groups_[g].garbage > 0) Compact(g);
}

std::optional<int64_t> EventStore::LastAt(CustomerNo n, uint16_t type) const {
  const uint32_t* b = Block(n);
  if (b == nullptr) return std::nullopt;
  const uint32_t types = b[0] & 0xffff;
  for (uint32_t i = 0; i < types; ++i) {
    if ((b[1 + 2 * i] >> 16) != type) continue;
    const int64_t at = Last(n, b, i);
    if (at == kNoTime) return std::nullopt;  // days read back without their latest time
    return at;
  }
  return std::nullopt;
}

std::vector<EventStore::TypeEvents> EventStore::Types(CustomerNo n) const {
  std::vector<TypeEvents> out;
  const uint32_t* b = Block(n);
  if (b == nullptr) return out;
  const uint32_t types = b[0] & 0xffff;
  const uint32_t* entries = b + 1 + 2 * types;
  for (uint32_t i = 0; i < types; ++i) {
    const uint32_t d = b[1 + 2 * i];
    out.push_back({static_cast<uint16_t>(d >> 16), Last(n, b, i), {entries, entries + (d & 0xffff)}});
    entries += d & 0xffff;
  }
  return out;
}

void EventStore::ForEachType(
    CustomerNo n, absl::FunctionRef<void(uint16_t type, int64_t last, absl::Span<const uint32_t> days)> fn) const {
  const uint32_t* b = Block(n);
  if (b == nullptr) return;
  const uint32_t types = b[0] & 0xffff;
  const uint32_t* entries = b + 1 + 2 * types;
  for (uint32_t i = 0; i < types; ++i) {
    const uint32_t d = b[1 + 2 * i];
    fn(static_cast<uint16_t>(d >> 16), Last(n, b, i), absl::Span<const uint32_t>(entries, d & 0xffff));
    entries += d & 0xffff;
  }
}

size_t EventStore::MemoryBytes() const {
  // The arenas' pages are resident as far as they were written.
  size_t bytes = offsets_.MemoryBytes() + groups_.capacity() * sizeof(Group);
  for (const Group& g : groups_) bytes += g.arena.MemoryBytes();
  return bytes + wide_.capacity() * (sizeof(uint64_t) + sizeof(int64_t) + 1);
}

Features::Features(FeatureOptions options)
    : options_(std::move(options)),
      strings_(rules::kFieldCount),
      times_(rules::kFieldCount),
      currency_(options_.reporting_currency) {}

CustomerNo Features::Intern(absl::string_view customer_id) {
  if (std::optional<CustomerNo> n = ids_.Find(customer_id)) return *n;
  const CustomerNo n = ids_.Add(customer_id);
  events_.Resize(n + 1);
  return n;
}

void Features::ReserveNumbers(CustomerNo end) {
  if (end <= ids_.end()) return;
  ids_.Skip(end);
  events_.Resize(end);
}

std::optional<CustomerNo> Features::Find(absl::string_view customer_id) const { return ids_.Find(customer_id); }

void Features::MarkLive(CustomerNo n) {
  live_.add(n);
  if (n / 64 >= live_words_.size()) live_words_.resize(size_t{n} / 64 + 1, 0);
  live_words_[n / 64] |= uint64_t{1} << (n % 64);
}

void Features::MarkGone(CustomerNo n) {
  live_.remove(n);
  if (n / 64 < live_words_.size()) live_words_[n / 64] &= ~(uint64_t{1} << (n % 64));
}

StringColumn& Features::MutableString(rules::Field f) { return strings_[static_cast<int>(f)]; }
TimeColumn& Features::MutableTime(rules::Field f) { return times_[static_cast<int>(f)]; }

CustomerNo Features::SetCustomer(const infostore::v1::Customer& c) {
  const CustomerNo n = Intern(c.id());
  MarkLive(n);
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
  MarkLive(n);
  const int32_t type = InternEventType(e.type());
  if (type > std::numeric_limits<uint16_t>::max()) return n;  // past 65,536 types: orders only
  events_.NoteLast(n, static_cast<uint16_t>(type), Seconds(e.occurred_at()));
  AddDays(n, static_cast<uint16_t>(type), DayOf(Seconds(e.occurred_at())), 1);
  return n;
}

void Features::AddDays(CustomerNo n, uint16_t type, int64_t day, uint32_t count) {
  if (day < 0 || day > std::numeric_limits<uint16_t>::max() || count == 0) return;
  events_.AddDays(n, type, static_cast<uint16_t>(day), count);
}

void Features::PruneEvents(absl::Time now) { events_.Prune(DayOf(absl::ToUnixSeconds(now - options_.event_horizon))); }
void Features::PruneEvents(absl::Time now, size_t group) {
  events_.Prune(DayOf(absl::ToUnixSeconds(now - options_.event_horizon)), group);
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
  MarkLive(s);
  for (const std::string& id : merged_ids) {
    std::optional<CustomerNo> m = Find(id);
    if (!m || *m == s) continue;
    for (const EventStore::TypeEvents& t : events_.Types(*m)) {
      events_.NoteLast(s, t.type, t.last);
      for (uint32_t d : t.days) events_.AddDays(s, t.type, static_cast<uint16_t>(d >> 16), d & 0xffff);
    }
    Remove(id);
  }
}

void Features::ClearEvents(CustomerNo n) { events_.Clear(n); }

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
  MarkGone(*n);
  // The number is not given out again (bitmaps may still be read for it until they are
  // updated); the id is forgotten.
  ids_.Forget(*n);
}

internal::CustomerFeaturesRecord Features::ToRecord(CustomerNo n, bool with_events) const {
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
  if (!with_events) return r;
  for (const EventStore::TypeEvents& t : events_.Types(n)) {
    for (size_t i = 0; i < t.days.size(); ++i) {
      // A day whose count went past 65,535 has several entries: saved as one.
      uint32_t count = t.days[i] & 0xffff;
      while (i + 1 < t.days.size() && (t.days[i + 1] >> 16) == (t.days[i] >> 16)) count += t.days[++i] & 0xffff;
      auto* day = r.add_days();
      day->set_type(event_type_names_[t.type]);
      day->set_day(static_cast<int32_t>(t.days[i] >> 16));
      day->set_count(count);
    }
    if (t.last == kNoTime) continue;
    auto* last = r.add_last();
    last->set_type(event_type_names_[t.type]);
    last->set_seconds(t.last);
  }
  // In name order, so that equal customers save equal bytes whatever the ids of their types.
  std::sort(r.mutable_days()->begin(), r.mutable_days()->end(), [](const auto& a, const auto& b) {
    return a.type() != b.type() ? a.type() < b.type() : a.day() < b.day();
  });
  std::sort(r.mutable_last()->begin(), r.mutable_last()->end(),
            [](const auto& a, const auto& b) { return a.type() < b.type(); });
  return r;
}

namespace {

void PutVarint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>(v | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}

bool GetVarint(absl::string_view& in, uint64_t& v) {
  v = 0;
  for (int shift = 0; shift < 64 && !in.empty(); shift += 7) {
    const auto byte = static_cast<uint8_t>(in.front());
    in.remove_prefix(1);
    v |= uint64_t{byte & 0x7fu} << shift;
    if ((byte & 0x80) == 0) return true;
  }
  return false;
}

uint64_t ZigZag(int64_t v) { return (static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63); }
int64_t UnZigZag(uint64_t v) { return static_cast<int64_t>(v >> 1) ^ -static_cast<int64_t>(v & 1); }

constexpr char kEventsVersion = 1;

}  // namespace

std::string Features::EventsToBytes(CustomerNo n) const {
  struct TypeRef {
    absl::string_view name;
    int64_t last;
    absl::Span<const uint32_t> days;
  };
  absl::InlinedVector<TypeRef, 8> types;
  size_t entries = 0;
  events_.ForEachType(n, [&](uint16_t type, int64_t last, absl::Span<const uint32_t> days) {
    types.push_back({event_type_names_[type], last, days});
    entries += days.size();
  });
  // In name order, so that equal customers save equal bytes whatever the ids of their types.
  std::sort(types.begin(), types.end(), [](const TypeRef& a, const TypeRef& b) { return a.name < b.name; });
  std::string out;
  out.reserve(21 + types.size() * 24 + entries * 3);
  out.push_back(kEventsVersion);
  // Every event moves these two (ApplyOrder).
  PutVarint(out, ZigZag(times_[static_cast<int>(rules::Field::kFirstSeenAt)].Get(n)) + 1);
  PutVarint(out, ZigZag(times_[static_cast<int>(rules::Field::kLastSeenAt)].Get(n)) + 1);
  for (const TypeRef& t : types) {
    PutVarint(out, t.name.size());
    out.append(t.name.data(), t.name.size());
    // kNoTime (the lowest int64) is the one value whose zigzag + 1 wraps to 0.
    PutVarint(out, ZigZag(t.last) + 1);
    // A day whose count went past 65,535 has several entries: saved as one.
    size_t days = 0;
    for (size_t i = 0; i < t.days.size(); ++i) {
      if (i == 0 || (t.days[i] >> 16) != (t.days[i - 1] >> 16)) ++days;
    }
    PutVarint(out, days);
    uint32_t previous = 0;
    for (size_t i = 0; i < t.days.size(); ++i) {
      uint64_t count = t.days[i] & 0xffff;
      while (i + 1 < t.days.size() && (t.days[i + 1] >> 16) == (t.days[i] >> 16)) count += t.days[++i] & 0xffff;
      const uint32_t day = t.days[i] >> 16;
      PutVarint(out, day - previous);
      PutVarint(out, count);
      previous = day;
    }
  }
  return out;
}

absl::Status Features::EventsFromBytes(CustomerNo n, absl::string_view in) {
  ClearEvents(n);
  auto corrupt = [&](absl::string_view what) {
    return absl::DataLossError(absl::StrCat("saved events of customer \"", Id(n), "\" do not decode: ", what));
  };
  if (in.empty() || in.front() != kEventsVersion) return corrupt("unknown version");
  in.remove_prefix(1);
  uint64_t first_seen = 0, last_seen = 0;
  if (!GetVarint(in, first_seen) || !GetVarint(in, last_seen)) return corrupt("first and last seen cut short");
  MutableTime(rules::Field::kFirstSeenAt).Set(n, UnZigZag(first_seen - 1));
  MutableTime(rules::Field::kLastSeenAt).Set(n, UnZigZag(last_seen - 1));
  while (!in.empty()) {
    uint64_t length = 0, last = 0, days = 0;
    if (!GetVarint(in, length) || length > in.size()) return corrupt("type name cut short");
    const absl::string_view name = in.substr(0, length);
    in.remove_prefix(length);
    if (!GetVarint(in, last) || !GetVarint(in, days)) return corrupt("type header cut short");
    const int32_t type = InternEventType(name);
    const bool kept = type <= std::numeric_limits<uint16_t>::max();  // past 65,536 types: not counted
    if (kept && last != 0) events_.NoteLast(n, static_cast<uint16_t>(type), UnZigZag(last - 1));
    uint64_t day = 0;
    for (uint64_t i = 0; i < days; ++i) {
      uint64_t delta = 0, count = 0;
      if (!GetVarint(in, delta) || !GetVarint(in, count)) return corrupt("day cut short");
      day += delta;
      if (day > std::numeric_limits<uint16_t>::max() || count > std::numeric_limits<uint32_t>::max()) {
        return corrupt("day or count out of range");
      }
      if (kept) AddDays(n, static_cast<uint16_t>(type), static_cast<int64_t>(day), static_cast<uint32_t>(count));
    }
  }
  return absl::OkStatus();
}

bool Features::ChangesOrders(const infostore::v1::Event& e) {
  return e.type() == "purchase" || e.type() == "refund" || e.type() == "order_cancelled";
}

CustomerNo Features::FromRecord(absl::string_view customer_id, const internal::CustomerFeaturesRecord& r) {
  const CustomerNo n = Intern(customer_id);
  ClearProfile(n);
  ClearEvents(n);
  MarkLive(n);
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
  for (const auto& last : r.last()) {
    const int32_t type = InternEventType(last.type());
    if (type <= std::numeric_limits<uint16_t>::max()) events_.NoteLast(n, static_cast<uint16_t>(type), last.seconds());
  }
  for (const auto& day : r.days()) {
    const int32_t type = InternEventType(day.type());
    if (type <= std::numeric_limits<uint16_t>::max()) AddDays(n, static_cast<uint16_t>(type), day.day(), day.count());
  }
  return n;
}

void Features::Clear() {
  for (CustomerNo n : live_) {
    ClearProfile(n);
    ClearEvents(n);
  }
  live_ = Roaring();
  live_words_ = MappedVector<uint64_t>();
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

Features::DayRange Features::WindowDays(absl::Duration window, absl::Time now) {
  const int64_t today = DayOf(absl::ToUnixSeconds(now));
  return {FirstDay(window, today), today};
}

int64_t Features::EventCountInDays(CustomerNo n, int32_t type, DayRange range) const {
  if (type < 0 || type > std::numeric_limits<uint16_t>::max()) return 0;
  int64_t count = 0;
  for (uint32_t d : events_.Days(n, static_cast<uint16_t>(type))) {
    const int64_t day = d >> 16;
    if (day > range.last) break;
    if (day >= range.first) count += d & 0xffff;
  }
  return count;
}

void Features::ForEachEventDay(CustomerNo n,
                               absl::FunctionRef<void(int32_t type, int64_t day, int64_t count)> fn) const {
  for (const EventStore::TypeEvents& t : events_.Types(n)) {
    for (uint32_t d : t.days) fn(t.type, d >> 16, d & 0xffff);
  }
}

int64_t Features::EventCount(CustomerNo n, int32_t type, absl::Duration window, absl::Time now) const {
  return EventCountInDays(n, type, WindowDays(window, now));
}

std::optional<absl::Time> Features::LastEventAt(CustomerNo n, int32_t type) const {
  if (type < 0 || type > std::numeric_limits<uint16_t>::max()) return std::nullopt;
  std::optional<int64_t> at = events_.LastAt(n, static_cast<uint16_t>(type));
  if (!at) return std::nullopt;
  return absl::FromUnixSeconds(*at);
}

absl::Time Features::EventCountAtMostAt(CustomerNo n, int32_t type, absl::Duration window, absl::Time now,
                                        int64_t at_most) const {
  if (window == absl::InfiniteDuration()) return absl::InfiniteFuture();
  int64_t excess = EventCount(n, type, window, now) - at_most;
  if (excess <= 0) return now;
  if (type < 0 || type > std::numeric_limits<uint16_t>::max()) return absl::InfiniteFuture();  // (at_most < 0)
  const DayRange range = WindowDays(window, now);
  const int64_t span = range.last - range.first + 1;  // whole days the window covers
  for (uint32_t d : events_.Days(n, static_cast<uint16_t>(type))) {
    const int64_t day = d >> 16;
    if (day < range.first || day > range.last) continue;
    excess -= d & 0xffff;
    // Day d leaves the window when the window's first day passes it: at the start of d + span.
    if (excess <= 0) return absl::FromUnixSeconds((day + span) * kSecondsPerDay);
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

const StringColumn* Features::StringField(rules::Field f) const {
  return f == rules::Field::kRfmCell ? &rfm_cell_ : &strings_[static_cast<int>(f)];
}
const TimeColumn* Features::TimeField(rules::Field f) const { return &times_[static_cast<int>(f)]; }
const AttributeColumn* Features::Attribute(int32_t id) const {
  return id >= 0 && static_cast<size_t>(id) < attributes_.size() ? &attributes_[id] : nullptr;
}
const Roaring* Features::Interest(absl::string_view item) const {
  auto it = interests_.find(item);
  return it == interests_.end() ? nullptr : &it->second;
}

size_t Features::MemoryBytes() const {
  size_t bytes = ids_.MemoryBytes() + live_words_.MemoryBytes();
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
  return bytes + events_.MemoryBytes();
}

}  // namespace ecrm::segmentation

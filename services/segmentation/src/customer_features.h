// What segmentation knows about each customer, held in memory in columns indexed by a dense
// customer number (DESIGN §4: the working state is rebuilt from the change feed, only the
// feed position and definitions are stored). Profile strings are dictionary-encoded, consents
// are bits, order aggregates plain numbers, events counted per type and UTC day within a
// horizon, interests one bitmap per interest. A column holds memory only up to the highest
// customer number that has a value in it, so fields nobody fills (B2B fields in a B2C
// business) cost nothing. Sized for tens of millions of customers: ids packed in an arena,
// times in 4 bytes, each customer's events in one allocation (docs/segmentation.md has the
// bytes per customer).
//
// One writer (the feed consumer) and many readers: callers hold the lock (mutex()) — shared
// to read, exclusive to apply.
#pragma once

#include <algorithm>
#include <cstdint>
#include <deque>
#include <limits>
#include <memory>
#include <optional>
#include <shared_mutex>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "ecrm/infostore/v1/infostore.pb.h"
#include "ecrm/rules/evaluator.h"
#include "ecrm/rules/schema.h"
#include "ecrm/rules/types.h"
#include "ecrm/segmentation/internal/record.pb.h"
#include "roaring/roaring.hh"

namespace ecrm::segmentation {

using CustomerNo = uint32_t;

// The strings of one column, each held once; code 0 is "no value".
class Dictionary {
 public:
  Dictionary() { values_.emplace_back(); }
  uint32_t Intern(absl::string_view s);
  std::optional<uint32_t> Find(absl::string_view s) const;
  absl::string_view value(uint32_t code) const { return values_[code]; }
  size_t size() const { return values_.size(); }
  size_t MemoryBytes() const;

 private:
  std::deque<std::string> values_;  // stable addresses: codes_ holds views into them
  absl::flat_hash_map<absl::string_view, uint32_t> codes_;
};

// Memory for columns of millions of values: an anonymous mapping of its own that grows by
// remapping (no copy, and nothing left behind in the heap, where the buffers a growing vector
// leaves stay resident), of which only the pages written are resident, returned to the system
// when dropped.
class MappedBuffer {
 public:
  MappedBuffer() = default;
  MappedBuffer(MappedBuffer&& other) noexcept { Swap(other); }
  MappedBuffer& operator=(MappedBuffer&& other) noexcept {
    MappedBuffer(std::move(other)).Swap(*this);
    return *this;
  }
  ~MappedBuffer();
  void* data() const { return data_; }
  // Makes room for at least `bytes` (at least doubling).
  void Reserve(size_t bytes);
  void Swap(MappedBuffer& other) noexcept {
    std::swap(data_, other.data_);
    std::swap(capacity_, other.capacity_);
  }

 private:
  void* data_ = nullptr;
  size_t capacity_ = 0;  // bytes
};

// A vector of trivially copyable values in a MappedBuffer.
template <typename T>
class MappedVector {
 public:
  MappedVector() = default;
  MappedVector(MappedVector&& other) noexcept
      : buffer_(std::move(other.buffer_)), size_(std::exchange(other.size_, 0)) {}
  MappedVector& operator=(MappedVector&& other) noexcept {
    buffer_ = std::move(other.buffer_);
    size_ = std::exchange(other.size_, 0);
    return *this;
  }

  size_t size() const { return size_; }
  T* data() { return static_cast<T*>(buffer_.data()); }
  const T* data() const { return static_cast<const T*>(buffer_.data()); }
  T& operator[](size_t i) { return data()[i]; }
  const T& operator[](size_t i) const { return data()[i]; }
  const T* begin() const { return data(); }
  const T* end() const { return data() + size_; }
  // Grows to `size` values, the new ones `fill`.
  void resize(size_t size, T fill) {
    if (size > size_) {
      const size_t at = Append(size - size_);
      std::fill(data() + at, data() + size, fill);
    }
    size_ = size;
  }
  // Adds `count` values, not initialised; returns the index of the first.
  size_t Append(size_t count) {
    buffer_.Reserve((size_ + count) * sizeof(T));
    const size_t at = size_;
    size_ += count;
    return at;
  }
  // Bytes written, as far as they are resident.
  size_t MemoryBytes() const { return size_ * sizeof(T); }

 private:
  MappedBuffer buffer_;
  size_t size_ = 0;
};

// A value per customer number, `kMissing` for numbers past the last one set.
template <typename T, T kMissing>
class Column {
 public:
  T Get(CustomerNo n) const { return n < values_.size() ? values_[n] : kMissing; }
  void Set(CustomerNo n, T v) {
    if (n >= values_.size()) {
      if (v == kMissing) return;
      values_.resize(size_t{n} + 1, kMissing);
    }
    values_[n] = v;
  }
  const MappedVector<T>& values() const { return values_; }
  size_t MemoryBytes() const { return values_.MemoryBytes(); }

 private:
  MappedVector<T> values_;
};

inline constexpr int64_t kNoTime = std::numeric_limits<int64_t>::min();

// Times, exactly, in seconds since the Unix epoch (UTC): 4 bytes each, as seconds from
// 2000-01-01 (1931-12-13 to 2068-01-19); the rare times outside that range are kept aside.
class TimeColumn {
 public:
  // kNoTime when there is none.
  int64_t Get(CustomerNo n) const {
    if (n >= values_.size()) return kNoTime;
    const int32_t v = values_[n];
    if (v > kWide) return kEpoch + v;
    return v == kMissing ? kNoTime : wide_.at(n);
  }
  void Set(CustomerNo n, int64_t seconds);
  size_t MemoryBytes() const;

 private:
  static constexpr int64_t kEpoch = 946684800;  // 2000-01-01T00:00:00Z
  static constexpr int32_t kMissing = std::numeric_limits<int32_t>::min();
  static constexpr int32_t kWide = kMissing + 1;  // in wide_
  MappedVector<int32_t> values_;
  absl::flat_hash_map<CustomerNo, int64_t> wide_;
};

// Dictionary codes per customer number, 0 for none: 1, 2 or 4 bytes each, as wide as the
// dictionary's codes need (a country takes a byte per customer, a postal code 4).
class CodeColumn {
 public:
  uint32_t Get(CustomerNo n) const {
    switch (width_) {
      case 1:
        return n < w1_.size() ? w1_[n] : 0;
      case 2:
        return n < w2_.size() ? w2_[n] : 0;
      default:
        return n < w4_.size() ? w4_[n] : 0;
    }
  }
  void Set(CustomerNo n, uint32_t code);
  // Calls f with the codes' vector (of uint8_t, uint16_t or uint32_t).
  template <typename F>
  decltype(auto) Visit(F f) const {
    return width_ == 1 ? f(w1_) : width_ == 2 ? f(w2_) : f(w4_);
  }
  size_t MemoryBytes() const { return w1_.MemoryBytes() + w2_.MemoryBytes() + w4_.MemoryBytes(); }

 private:
  int width_ = 1;
  MappedVector<uint8_t> w1_;
  MappedVector<uint16_t> w2_;
  MappedVector<uint32_t> w4_;
};

// A dictionary-encoded string column.
struct StringColumn {
  Dictionary dictionary;
  CodeColumn codes;
};

// A custom attribute's column, of the type the information store gave the attribute.
struct AttributeColumn {
  rules::Type type = rules::Type::kString;
  StringColumn strings;                                              // kString
  Column<double, std::numeric_limits<double>::quiet_NaN()> numbers;  // kNumber (NaN: missing)
  Roaring has, truth;                                                // kBool
  TimeColumn times;                                                  // kTime
};

// Customer ids and their numbers. The ids' text is packed in 1 MiB chunks (a length byte, then
// the bytes), found by number through the start of each 64 numbers' run and a 16-bit offset
// within it, and by text through a hash set of numbers that hashes and compares the text they
// point to: ~20 bytes of text, 2 bytes of offset and ~8 bytes of hash table per customer.
class CustomerIds {
 public:
  CustomerIds() : numbers_(0, Hash{this}, Eq{this}) {}
  CustomerIds(const CustomerIds&) = delete;
  CustomerIds& operator=(const CustomerIds&) = delete;

  std::optional<CustomerNo> Find(absl::string_view id) const;
  // A new number for an id not held.
  CustomerNo Add(absl::string_view id);
  // Numbers below `end` are given out (those not given yet: to no id, as if forgotten).
  void Skip(CustomerNo end);
  // "" once forgotten.
  absl::string_view Get(CustomerNo n) const;
  // The id is no longer found, and its text is overwritten.
  void Forget(CustomerNo n);
  CustomerNo end() const { return static_cast<CustomerNo>(offsets_.size()); }
  size_t MemoryBytes() const;

 private:
  static constexpr size_t kChunk = size_t{1} << 20;
  static constexpr uint8_t kLong = 255;  // length byte of an id of 255 bytes or more: in long_
  struct Hash {
    using is_transparent = void;
    const CustomerIds* ids;
    size_t operator()(absl::string_view id) const;
    size_t operator()(CustomerNo n) const { return (*this)(ids->Get(n)); }
  };
  struct Eq {
    using is_transparent = void;
    const CustomerIds* ids;
    bool operator()(CustomerNo a, CustomerNo b) const { return a == b; }
    bool operator()(CustomerNo a, absl::string_view b) const { return ids->Get(a) == b; }
    bool operator()(absl::string_view a, CustomerNo b) const { return a == ids->Get(b); }
    bool operator()(absl::string_view a, absl::string_view b) const { return a == b; }
  };
  char* At(CustomerNo n) const;
  // Adds the id's text under the next number (not found by it until inserted in numbers_).
  CustomerNo Append(absl::string_view id);

  std::vector<std::unique_ptr<char[]>> chunks_;
  size_t used_ = kChunk;            // bytes used in the last chunk
  MappedVector<uint64_t> runs_;     // where the ids of numbers 64k … 64k + 63 start
  MappedVector<uint16_t> offsets_;  // each id's offset from its run's start
  std::vector<std::string> long_;   // ids of 255 bytes or more
  absl::flat_hash_set<CustomerNo, Hash, Eq> numbers_;
};

// Each customer's events counted by type and UTC day, and the latest time of each type, in
// one block of 32-bit words (none for a customer without events):
//   [0]                 the words free after the block's end << 16 | T, the number of types
//   [1 + 2i]            type i's id << 16 | its number of day entries (types ascending)
//   [2 + 2i]            the latest time of type i: seconds since 1970 until 2106; kNone when
//                       only days were read back; kWide: kept aside (before 1970, after 2106)
//   [1 + 2T …]          the day entries of type 0, then type 1, …: day << 16 | count, by day
// Days are days since 1970-01-01 (16 bits: until 2149); a count past 65,535 goes on in another
// entry for the same day. A customer holds at most 65,535 types and 65,535 entries per type
// (179 years of days within the horizon); a day past that is not counted.
//
// The blocks of each 65,536 customer numbers share an arena, kept in customer order so that a
// scan over customers reads memory in order (a scan that chased one allocation per customer
// spent ~150 ns on each). A block that outgrows its room moves to the arena's end with an
// eighth more; when a quarter of the arena is left behind by moves, the arena is written anew
// in customer order without free words. About 4 bytes per type, 4 per day with events, 4 for
// the header and 4 for the customer's offset.
class EventStore {
 public:
  EventStore() = default;
  EventStore(const EventStore&) = delete;
  EventStore& operator=(const EventStore&) = delete;

  // Makes room for numbers below `end`.
  void Resize(CustomerNo end);
  void NoteLast(CustomerNo n, uint16_t type, int64_t at_seconds);
  void AddDays(CustomerNo n, uint16_t type, uint16_t day, uint32_t count);
  void Clear(CustomerNo n);
  // Drops the entries of days before `first_day` (the latest times stay), of every customer or of
  // group `g`'s (the customers of one arena: 65,536 numbers), compacting what changed.
  void Prune(int64_t first_day) {
    for (size_t g = 0; g < groups_.size(); ++g) Prune(first_day, g);
  }
  void Prune(int64_t first_day, size_t g);
  size_t groups() const { return groups_.size(); }
  // Writes every arena anew in customer order.
  void CompactAll() {
    for (size_t g = 0; g < groups_.size(); ++g) Compact(g);
  }

  // The entries of a type (day << 16 | count, by day); empty when none. Valid until the next
  // change.
  absl::Span<const uint32_t> Days(CustomerNo n, uint16_t type) const {
    const uint32_t* b = Block(n);
    if (b == nullptr) return {};
    const uint32_t types = b[0] & 0xffff;
    size_t start = 1 + 2 * size_t{types};
    for (uint32_t i = 0; i < types; ++i) {
      const uint32_t d = b[1 + 2 * i];
      if ((d >> 16) == type) return absl::Span<const uint32_t>(b + start, d & 0xffff);
      if ((d >> 16) > type) break;
      start += d & 0xffff;
    }
    return {};
  }
  // Starts loading the customer's block into the cache: a scan over scattered customers asks
  // for each a few customers ahead, so that the loads overlap.
  void Prefetch(CustomerNo n) const {
    if (const uint32_t* b = Block(n)) {
      // (GCC 12 dropped __builtin_prefetch here as dead code.)
      asm volatile("prefetcht0 %0" : : "m"(*b));
      asm volatile("prefetcht0 %0" : : "m"(b[16]));
    }
  }
  std::optional<int64_t> LastAt(CustomerNo n, uint16_t type) const;
  struct TypeEvents {
    uint16_t type;
    int64_t last;                // seconds, or kNoTime
    std::vector<uint32_t> days;  // day << 16 | count, by day
  };
  // The customer's events by type (a copy: for saving and merging).
  std::vector<TypeEvents> Types(CustomerNo n) const;
  // Calls fn(type, latest time or kNoTime, entries) for each type the customer has, in type id
  // order, without copying (the entries are valid until the next change).
  void ForEachType(CustomerNo n,
                   absl::FunctionRef<void(uint16_t type, int64_t last, absl::Span<const uint32_t> days)> fn) const;
  size_t MemoryBytes() const;

 private:
  static constexpr uint32_t kNone = 0xffffffff, kWide = 0xfffffffe;  // latest times
  static constexpr uint32_t kNoBlock = 0xffffffff;                   // offsets
  static constexpr int kGroupBits = 16;
  struct Group {
    MappedVector<uint32_t> arena;
    size_t garbage = 0;  // words left behind by blocks that moved or went
  };
  static uint64_t Key(CustomerNo n, uint16_t type) { return uint64_t{n} << 16 | type; }
  const uint32_t* Block(CustomerNo n) const {
    if (n >= offsets_.size() || offsets_[n] == kNoBlock) return nullptr;
    return groups_[n >> kGroupBits].arena.data() + offsets_[n];
  }
  uint32_t* Block(CustomerNo n) { return const_cast<uint32_t*>(std::as_const(*this).Block(n)); }
  static size_t Used(const uint32_t* b);
  int64_t Last(CustomerNo n, const uint32_t* b, uint32_t i) const;
  // The customer's block with `more` free words after its `used` words (a block of just the
  // header when it had none); it may have moved.
  uint32_t* Grow(CustomerNo n, size_t used, size_t more);
  // Type's descriptor index, inserting an empty one when missing.
  uint32_t TypeIndex(CustomerNo n, uint16_t type);
  // Writes the group's arena anew, in customer order, without free words.
  void Compact(size_t group);

  std::vector<Group> groups_;
  MappedVector<uint32_t> offsets_;               // by customer: the block's offset in its group's arena
  absl::flat_hash_map<uint64_t, int64_t> wide_;  // latest times outside 1970–2106, by Key
};

struct FeatureOptions {
  // Events older than this are no longer counted by day (windows reach back this far at most);
  // the latest time of each type is kept regardless.
  absl::Duration event_horizon = absl::Hours(24 * 400);
  // The currency orders.total is kept in; orders in others are counted but not summed.
  // Empty: the first currency seen, as the information store's behaviour summary does.
  std::string reporting_currency;
};

class Features {
 public:
  explicit Features(FeatureOptions options = {});

  std::shared_mutex& mutex() const { return mu_; }

  // Customers. Numbers are dense, given out in order and never again (not after a restart
  // either: the feed consumer saves each customer's number and the next one).
  CustomerNo Intern(absl::string_view customer_id);
  // Numbers below `end` are not given out any more (a start loading saved numbers: the next
  // customer interned gets `end`, or more).
  void ReserveNumbers(CustomerNo end);
  std::optional<CustomerNo> Find(absl::string_view customer_id) const;
  absl::string_view Id(CustomerNo n) const { return ids_.Get(n); }
  // Customers currently held (not erased, not merged into another).
  const Roaring& live() const { return live_; }
  // The same, as plain bits: bit n % 64 of word n / 64 (the population evaluator's start).
  const MappedVector<uint64_t>& live_words() const { return live_words_; }
  bool IsLive(CustomerNo n) const { return live_.contains(n); }
  // One past the highest number given out.
  CustomerNo end() const { return ids_.end(); }

  // Applying the information store's data. Each returns the customer's number.
  //
  // The customer's state after a change (profile, identity, consent, merge, unmerge): profile,
  // preferences, consents, attributes and the order aggregates of its behaviour summary
  // replace what was held; its event days are kept.
  CustomerNo SetCustomer(const infostore::v1::Customer& customer);
  // An event recorded for a customer (its customer_id set by the store): counted in its day
  // and type, and folded into the order aggregates as the information store folds it into the
  // behaviour summary (purchase, refund, order_cancelled).
  CustomerNo AddEvent(const infostore::v1::Event& event);
  // Counts an event in its day and type only (events read back after an unmerge, whose order
  // aggregates the customer's state already holds).
  CustomerNo CountEvent(const infostore::v1::Event& event);
  // The merged customers' event days move to the survivor, then they are removed.
  void Merge(absl::string_view survivor_id, absl::Span<const std::string> merged_ids);
  // Forgets a customer's event days (an unmerge gives events back: reload them with AddEvent).
  void ClearEvents(CustomerNo n);
  // Drops event days older than the horizon: of every customer, or of one arena's
  // (`group` < EventGroups(); a caller holding the lock per group lets others in between).
  void PruneEvents(absl::Time now);
  void PruneEvents(absl::Time now, size_t group);
  size_t EventGroups() const { return events_.groups(); }
  // Lays the customers' events out in customer order again (scans over many customers read
  // memory in order); done by PruneEvents too.
  void CompactEvents() { events_.CompactAll(); }
  // Erased, or merged into another: nothing is held on it and it is not live.
  void Remove(absl::string_view customer_id);
  // Forgets every customer (before a resync).
  void Clear();

  // The customer as saved, and back: a restart loads what was saved instead of reading every
  // customer from the information store again. Without `with_events`, the record leaves out the
  // event days and latest times (the feed saves those apart, as EventsToBytes).
  internal::CustomerFeaturesRecord ToRecord(CustomerNo n, bool with_events = true) const;
  CustomerNo FromRecord(absl::string_view customer_id, const internal::CustomerFeaturesRecord& record);
  // What events change of a customer but its order aggregates — each event type's name, latest
  // time, and days with their counts, and the customer's first and last seen times — in a
  // compact encoding of their own: version byte 1; first and last seen as varint zigzag(seconds)
  // + 1 (0: none); then per type, in name order: varint name length, name, varint latest time as
  // the first two, varint day entries, and per entry varint days since the previous entry (the
  // first: since 1970-01-01) and varint count. What the feed saves of a customer when only these
  // changed; a few bytes per event day, built without allocating but the string.
  std::string EventsToBytes(CustomerNo n) const;
  // Replaces the customer's events (and first and last seen times) with those encoded.
  // DATA_LOSS when they do not decode.
  absl::Status EventsFromBytes(CustomerNo n, absl::string_view bytes);
  // Whether AddEvent(event) changes more of the customer than its events (the order aggregates:
  // purchase, refund, order_cancelled).
  static bool ChangesOrders(const infostore::v1::Event& event);

  // Scores computed by the engine.
  void SetRfm(CustomerNo n, uint8_t r, uint8_t f, uint8_t m, absl::string_view cell);
  void SetClv(CustomerNo n, double value);
  void SetEngagement(CustomerNo n, double score);

  // Reading, for rules (the contract of rules::CustomerView). Events are counted by UTC day: a
  // window is the ceil(window / 1 day) days ending today, today included.
  rules::Value Field(CustomerNo n, const rules::FieldRef& field) const;
  bool ListContains(CustomerNo n, const rules::FieldRef& field, absl::string_view item) const;
  int64_t EventCount(CustomerNo n, int32_t type, absl::Duration window, absl::Time now) const;
  std::optional<absl::Time> LastEventAt(CustomerNo n, int32_t type) const;
  absl::Time EventCountAtMostAt(CustomerNo n, int32_t type, absl::Duration window, absl::Time now,
                                int64_t at_most) const;
  // Every (event type, UTC day as days since 1970-01-01, count) held for the customer, in no
  // promised order (the scores read a customer's recent activity in one pass).
  void ForEachEventDay(CustomerNo n, absl::FunctionRef<void(int32_t type, int64_t day, int64_t count)> fn) const;
  // The currency orders.total is in; empty until an order with an amount has been seen.
  const std::string& currency() const { return currency_; }
  // The UTC days [first, last] a window ending at `now` counts (as EventCount does).
  struct DayRange {
    int64_t first = 0, last = 0;
  };
  static DayRange WindowDays(absl::Duration window, absl::Time now);
  // Events of the type on days first … last (EventCount with its days worked out).
  int64_t EventCountInDays(CustomerNo n, int32_t type, DayRange days) const;
  void PrefetchEvents(CustomerNo n) const { events_.Prefetch(n); }

  // An event type id no customer has events of (a preview naming a type never recorded).
  static constexpr int32_t kUnseenEventType = std::numeric_limits<int32_t>::max();

  // What rules may name beyond the built-in fields.
  std::optional<rules::AttributeInfo> FindAttribute(absl::string_view name) const;
  std::vector<std::string> AttributeNames() const;
  std::optional<int32_t> FindEventType(absl::string_view name) const;
  // The id of an event type, numbered on first use.
  int32_t InternEventType(absl::string_view name);

  // Columns, for the whole-population evaluator.
  const StringColumn* StringField(rules::Field f) const;
  const TimeColumn* TimeField(rules::Field f) const;
  const AttributeColumn* Attribute(int32_t id) const;
  const Roaring* Interest(absl::string_view item) const;
  const Column<uint32_t, 0>& consents() const { return consents_; }  // bit (channel - 1) * 4 + (purpose - 1)
  const Column<uint32_t, 0>& order_counts() const { return order_count_; }
  const Column<int64_t, 0>& order_totals() const { return order_total_; }

  // Bytes held, roughly (the columns' and indexes' allocations).
  size_t MemoryBytes() const;

 private:
  void ClearProfile(CustomerNo n);
  StringColumn& MutableString(rules::Field f);
  TimeColumn& MutableTime(rules::Field f);
  AttributeColumn& MutableAttribute(absl::string_view name, rules::Type type);
  void AddDays(CustomerNo n, uint16_t type, int64_t day, uint32_t count);
  void MarkLive(CustomerNo n);
  void MarkGone(CustomerNo n);
  void ApplyOrder(CustomerNo n, const infostore::v1::Event& event);

  const FeatureOptions options_;
  mutable std::shared_mutex mu_;

  CustomerIds ids_;
  Roaring live_;
  MappedVector<uint64_t> live_words_;

  // Built-in fields, indexed by rules::Field (only the string and time ones are used).
  std::vector<StringColumn> strings_;
  std::vector<TimeColumn> times_;
  Column<uint32_t, 0> order_count_;
  Column<int64_t, 0> order_total_;
  std::string currency_;
  Column<uint32_t, 0> consents_;  // bit (channel - 1) * 4 + (purpose - 1): granted
  Roaring anonymous_;
  absl::flat_hash_map<std::string, Roaring> interests_;
  Column<uint8_t, 0> rfm_r_, rfm_f_, rfm_m_;
  StringColumn rfm_cell_;
  Column<double, std::numeric_limits<double>::quiet_NaN()> clv_, engagement_;

  std::deque<AttributeColumn> attributes_;  // by id; stable addresses
  absl::flat_hash_map<std::string, int32_t> attribute_ids_;

  std::vector<std::string> event_type_names_;
  absl::flat_hash_map<std::string, int32_t> event_types_;
  EventStore events_;
};

// Who belongs to which segment, for rules that name segment("…").
class Memberships {
 public:
  virtual ~Memberships() = default;
  virtual bool Contains(int32_t segment, CustomerNo n) const = 0;
};

// One customer of a Features, as the rule evaluator reads it. The caller holds the lock.
class CustomerFeatures final : public rules::CustomerView {
 public:
  CustomerFeatures(const Features& features, CustomerNo n, const Memberships* memberships = nullptr)
      : features_(features), n_(n), memberships_(memberships) {}
  rules::Value Field(const rules::FieldRef& field) const override { return features_.Field(n_, field); }
  bool ListContains(const rules::FieldRef& field, absl::string_view item) const override {
    return features_.ListContains(n_, field, item);
  }
  int64_t EventCount(int32_t type, absl::Duration window, absl::Time now) const override {
    return features_.EventCount(n_, type, window, now);
  }
  std::optional<absl::Time> LastEventAt(int32_t type) const override { return features_.LastEventAt(n_, type); }
  bool InSegment(int32_t segment) const override {
    return memberships_ != nullptr && memberships_->Contains(segment, n_);
  }
  absl::Time EventCountAtMostAt(int32_t type, absl::Duration window, absl::Time now, int64_t at_most) const override {
    return features_.EventCountAtMostAt(n_, type, window, now, at_most);
  }

 private:
  const Features& features_;
  CustomerNo n_;
  const Memberships* memberships_;
};

}  // namespace ecrm::segmentation

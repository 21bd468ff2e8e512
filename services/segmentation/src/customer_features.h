// What segmentation knows about each customer, held in memory in columns indexed by a dense
// customer number (DESIGN §4: the working state is rebuilt from the change feed, only the
// feed position and definitions are stored). Profile strings are dictionary-encoded, consents
// are bits, order aggregates plain numbers, events counted per type and UTC day within a
// horizon, interests one bitmap per interest. A column holds memory only up to the highest
// customer number that has a value in it, so fields nobody fills (B2B fields in a B2C
// business) cost nothing.
//
// One writer (the feed consumer) and many readers: callers hold the lock (mutex()) — shared
// to read, exclusive to apply.
#pragma once

#include <cstdint>
#include <deque>
#include <limits>
#include <optional>
#include <shared_mutex>
#include <string>
#include <vector>
#include "absl/strings/string_view.h"

#include "absl/container/flat_hash_map.h"
#include "absl/functional/function_ref.h"
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

// A value per customer number, `kMissing` for numbers past the last one set.
template <typename T, T kMissing>
class Column {
 public:
  T Get(CustomerNo n) const { return n < values_.size() ? values_[n] : kMissing; }
  void Set(CustomerNo n, T v) {
    if (n >= values_.size()) {
      if (v == kMissing) return;
      values_.resize(n + 1, kMissing);
    }
    values_[n] = v;
  }
  const std::vector<T>& values() const { return values_; }
  size_t MemoryBytes() const { return values_.capacity() * sizeof(T); }

 private:
  std::vector<T> values_;
};

inline constexpr int64_t kNoTime = std::numeric_limits<int64_t>::min();
using TimeColumn = Column<int64_t, kNoTime>;  // seconds since the Unix epoch, UTC
using CodeColumn = Column<uint32_t, 0>;       // Dictionary codes

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

  // Customers.
  CustomerNo Intern(absl::string_view customer_id);
  std::optional<CustomerNo> Find(absl::string_view customer_id) const;
  absl::string_view Id(CustomerNo n) const { return ids_[n]; }
  // Customers currently held (not erased, not merged into another).
  const Roaring& live() const { return live_; }
  bool IsLive(CustomerNo n) const { return live_.contains(n); }
  // One past the highest number given out.
  CustomerNo end() const { return static_cast<CustomerNo>(ids_.size()); }

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
  // Drops event days older than the horizon.
  void PruneEvents(absl::Time now);
  // Erased, or merged into another: nothing is held on it and it is not live.
  void Remove(absl::string_view customer_id);
  // Forgets every customer (before a resync).
  void Clear();

  // The customer as saved, and back: a restart loads what was saved instead of reading every
  // customer from the information store again.
  internal::CustomerFeaturesRecord ToRecord(CustomerNo n) const;
  CustomerNo FromRecord(absl::string_view customer_id, const internal::CustomerFeaturesRecord& record);

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

  // Bytes held, roughly (the columns' and indexes' allocations).
  size_t MemoryBytes() const;

 private:
  // Events of one type on one UTC day.
  struct EventDay {
    uint16_t type;
    uint16_t day;  // days since 1970-01-01 (until 2149)
    uint32_t count;
  };
  struct LastEvent {
    uint16_t type;
    int64_t at;  // seconds
  };
  struct Events {
    std::vector<EventDay> days;   // by (type, day)
    std::vector<LastEvent> last;  // by type
  };

  void ClearProfile(CustomerNo n);
  StringColumn& MutableString(rules::Field f);
  TimeColumn& MutableTime(rules::Field f);
  AttributeColumn& MutableAttribute(absl::string_view name, rules::Type type);
  void NoteLast(CustomerNo n, uint16_t type, int64_t at_seconds);
  void AddDays(CustomerNo n, uint16_t type, int64_t day, uint32_t count);
  void ApplyOrder(CustomerNo n, const infostore::v1::Event& event);

  const FeatureOptions options_;
  mutable std::shared_mutex mu_;

  std::deque<std::string> ids_;  // stable addresses: numbers_ holds views into them
  absl::flat_hash_map<absl::string_view, CustomerNo> numbers_;
  Roaring live_;

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
  std::vector<Events> events_;  // by customer number
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

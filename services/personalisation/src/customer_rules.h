// Offer eligibility rules (libs/rules) over one customer as the information store serves it
// (the Customer proto from the profile cache or BatchGetCustomers). Segmentation evaluates
// rules over its own columns; personalisation sees customers one at a time, so:
//   - attributes are typed by the rule's use of them (rules::AttributeInfo::inferred): the
//     engine has no registry of attribute types;
//   - events.count("x") reads the behaviour summary's all-time count; a window, and
//     events.last_at, need per-event history the summary does not hold, and rfm.*, clv and
//     engagement are segmentation's scores: a rule naming them is refused when saved
//     (CheckOfferRule), pointing at segments instead;
//   - segment("id") is membership of segmentation's segment with that id (read through
//     GetCustomerSegments when an offer needs it).
#pragma once

#include <deque>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "ecrm/infostore/v1/infostore.pb.h"
#include "ecrm/rules/evaluator.h"
#include "ecrm/rules/rule.h"
#include "ecrm/rules/schema.h"

namespace ecrm::personalisation {

// Names interned to ids, for the rules of this process's offers. Thread-safe; ids never change
// and names are never dropped (a few per distinct attribute, event type or segment named).
class OfferRuleSchema final : public rules::Schema {
 public:
  std::optional<rules::AttributeInfo> FindAttribute(absl::string_view name) const override;
  std::optional<int32_t> FindEventType(absl::string_view name) const override;
  std::optional<int32_t> FindSegment(absl::string_view name) const override;

  // The names behind ids this schema gave.
  absl::string_view AttributeName(int32_t id) const;
  absl::string_view EventTypeName(int32_t id) const;
  absl::string_view SegmentName(int32_t id) const;

 private:
  struct Names {
    absl::flat_hash_map<std::string, int32_t> ids;
    std::deque<std::string> names;  // stable addresses
  };
  int32_t Intern(Names& names, absl::string_view name) const;
  absl::string_view Name(const Names& names, int32_t id) const;

  mutable absl::Mutex mu_;
  mutable Names attributes_ ABSL_GUARDED_BY(mu_);
  mutable Names event_types_ ABSL_GUARDED_BY(mu_);
  mutable Names segments_ ABSL_GUARDED_BY(mu_);
};

// The names behind the ids one rule reads (from the schema, once when compiled): evaluation
// then takes no lock.
struct RuleNames {
  std::vector<std::pair<int32_t, std::string>> attributes, event_types, segments;
  static absl::string_view Find(const std::vector<std::pair<int32_t, std::string>>& names, int32_t id) {
    for (const auto& [i, name] : names) {
      if (i == id) return name;
    }
    return {};
  }
};
RuleNames NamesOf(const rules::Rule& rule, const OfferRuleSchema& schema);

// Compiles an offer's eligibility rule: INVALID_ARGUMENT "line:column: …" for a rule that does
// not parse or type-check, or that reads what one customer's record cannot answer (above).
absl::StatusOr<rules::Rule> CompileOfferRule(absl::string_view source, const OfferRuleSchema& schema);

// One customer as an offer's rule reads it. `segments` (segment ids the customer is in) may
// be null when no rule names a segment. Everything must outlive the evaluation.
class CustomerRuleView final : public rules::CustomerView {
 public:
  CustomerRuleView(const infostore::v1::Customer& customer, const RuleNames& names,
                   const absl::flat_hash_set<std::string>* segments)
      : customer_(customer), names_(names), segments_(segments) {}

  rules::Value Field(const rules::FieldRef& field) const override;
  bool ListContains(const rules::FieldRef& field, absl::string_view item) const override;
  int64_t EventCount(int32_t event_type, absl::Duration window, absl::Time now) const override;
  std::optional<absl::Time> LastEventAt(int32_t) const override { return std::nullopt; }
  bool InSegment(int32_t segment) const override;
  absl::Time EventCountAtMostAt(int32_t, absl::Duration, absl::Time, int64_t) const override {
    return absl::InfiniteFuture();
  }

 private:
  const infostore::v1::Customer& customer_;
  const RuleNames& names_;
  const absl::flat_hash_set<std::string>* segments_;
};

}  // namespace ecrm::personalisation

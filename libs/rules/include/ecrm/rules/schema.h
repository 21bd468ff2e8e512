// What a rule may name: the built-in fields (fixed), and what the engine knows — custom
// attributes and their types, event types, segments — through a Schema it implements.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>
#include "absl/strings/string_view.h"

#include "absl/container/flat_hash_map.h"
#include "ecrm/rules/types.h"

namespace ecrm::rules {

// A custom attribute as the engine knows it: an id of the engine's choosing (handed back in
// FieldRef::id) and its type (the information store fixes it by first use: string → kString,
// int and double → kNumber, bool → kBool, time → kTime).
struct AttributeInfo {
  int32_t id = 0;
  Type type = Type::kString;
  // The engine does not know the attribute's type (personalisation, which sees customers one
  // at a time): the rule's use of it decides — compared with a string it is a string, with a
  // number a number, a condition on its own a bool, after days_since a time … (`type` is then
  // ignored). Every use in one rule must agree; a customer whose value has another type has no
  // value for it (a missing value).
  bool inferred = false;
};

// The engine's side of checking a rule. Called only while a rule is compiled.
class Schema {
 public:
  virtual ~Schema() = default;
  // The attribute named `name`, or nullopt when no customer has had it (an error naming it).
  virtual std::optional<AttributeInfo> FindAttribute(absl::string_view name) const = 0;
  // Names to suggest from when an attribute is unknown ("did you mean"); may be empty.
  virtual std::vector<std::string> AttributeNames() const { return {}; }
  // An id for an event type (its name already matches [a-z0-9_]{1,64}); nullopt refuses it.
  // An engine that counts every type it sees may intern the name here.
  virtual std::optional<int32_t> FindEventType(absl::string_view name) const = 0;
  // The segment named `name`, or nullopt when there is none (an error naming it).
  virtual std::optional<int32_t> FindSegment(absl::string_view name) const = 0;
};

// A Schema held in maps: attributes and segments as added, every event type accepted and
// numbered in order of first use. For tests and for callers with a fixed vocabulary; not
// thread-safe (FindEventType may add a type).
class SimpleSchema : public Schema {
 public:
  // Returns the attribute's id (0, 1, … in order of addition; the same id if added again).
  int32_t AddAttribute(absl::string_view name, Type type);
  int32_t AddSegment(absl::string_view name);
  // The id an event type has (or gets).
  int32_t EventTypeId(absl::string_view name) const;

  std::optional<AttributeInfo> FindAttribute(absl::string_view name) const override;
  std::vector<std::string> AttributeNames() const override;
  std::optional<int32_t> FindEventType(absl::string_view name) const override;
  std::optional<int32_t> FindSegment(absl::string_view name) const override;

 private:
  absl::flat_hash_map<std::string, AttributeInfo> attributes_;
  absl::flat_hash_map<std::string, int32_t> segments_;
  mutable absl::flat_hash_map<std::string, int32_t> event_types_;
};

// A built-in field by its name in a rule ("profile.country", "consent.email.marketing", …),
// with its type; nullopt for anything else (attributes included).
struct BuiltinField {
  FieldRef ref;
  Type type;
};
std::optional<BuiltinField> FindBuiltinField(absl::string_view name);
// The canonical name of a built-in or consent field ("" for an attribute).
std::string FieldName(const FieldRef& field);
// Every name FindBuiltinField accepts, aliases included.
std::vector<std::string> BuiltinFieldNames();

}  // namespace ecrm::rules

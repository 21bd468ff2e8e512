// A rule compiled once — parsed into a typed AST and checked against the schema — and then
// evaluated many times (evaluator.h), or walked by another evaluator (the columnar one of
// segmentation). The language: docs/rules.md.
#pragma once

#include <cstdint>
#include <string>
#include <vector>
#include "absl/strings/string_view.h"

#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "ecrm/rules/schema.h"
#include "ecrm/rules/types.h"

namespace ecrm::rules {

// What a rule may cost. Every limit is checked while parsing, so no input runs unbounded.
struct Limits {
  size_t max_length = 16 * 1024;  // bytes of rule text
  int max_depth = 32;             // nesting of the AST (an n-ary && or || is one level)
  int max_list_size = 1000;       // elements of one list literal
  int max_nodes = 2000;           // AST nodes in all
};

// The operations of the AST. Children are in Rule::children(node), in source order.
enum class Op : uint8_t {
  // Literals. kList: children are its elements (literals of one type); aux indexes the
  // rule's lookup set for it.
  kBool,
  kNumber,
  kString,  // aux: Rule::string(aux)
  kTime,
  kDuration,
  kList,
  // Reads.
  kField,        // aux: Rule::field(aux)
  kNow,          // the evaluation's `now`
  kDaysSince,    // whole days from the child (a time) to now, rounded down
  kEventCount,   // events of type aux in the window `duration` ending now (infinite: all time)
  kEventLastAt,  // time of the last event of type aux, or missing
  kSegment,      // membership of segment aux
  kHas,          // the child (a field or events.last_at) has a value
  // Logic (Kleene three-valued).
  kNot,
  kAnd,
  kOr,
  // Comparisons of two children of one type.
  kEq,
  kNe,
  kLt,
  kLe,
  kGt,
  kGe,
  kInList,      // child 0 in the list literal child 1
  kInField,     // string child 0 is an element of the list field child 1
  kInString,    // string child 0 is a substring of child 1
  kStartsWith,  // child 0 starts with child 1
  kEndsWith,    // child 0 ends with child 1
  // Arithmetic: numbers, and time ± duration.
  kNeg,
  kAdd,
  kSub,
  kMul,
  kDiv,
  // Only between parsing and checking; never in a compiled rule.
  kPath,    // a dotted name, aux: string
  kCall,    // a function call, aux: name
  kMethod,  // a method call, aux: name, number: offset of the name; child 0 is the receiver
};

// Whether a comparison holds for operands in the order `order` (-1: left below, 0: equal, 1:
// left above).
inline bool Holds(Op op, int order) {
  switch (op) {
    case Op::kEq:
      return order == 0;
    case Op::kNe:
      return order != 0;
    case Op::kLt:
      return order < 0;
    case Op::kLe:
      return order <= 0;
    case Op::kGt:
      return order > 0;
    default:
      return order >= 0;  // kGe
  }
}

// The comparison with its operands swapped: 5 < x is x > 5.
inline Op Mirror(Op op) {
  switch (op) {
    case Op::kLt:
      return Op::kGt;
    case Op::kLe:
      return Op::kGe;
    case Op::kGt:
      return Op::kLt;
    case Op::kGe:
      return Op::kLe;
    default:
      return op;
  }
}

struct Node {
  Op op = Op::kBool;
  Type type = Type::kBool;
  bool boolean = false;
  int32_t begin = 0;  // byte offsets of the node's source text
  int32_t end = 0;
  int32_t first_child = 0;  // index into the rule's child list
  int32_t child_count = 0;
  int32_t aux = 0;  // per op, see Op
  int32_t depth = 1;
  double number = 0;
  absl::Time time;
  absl::Duration duration;
};

// What a rule reads: segmentation re-evaluates a changed customer only against rules reading
// what changed, orders segment() references, and schedules time-relative rules.
struct Dependencies {
  std::vector<FieldRef> fields;               // sorted, distinct
  std::vector<int32_t> event_types;           // schema ids, sorted, distinct
  std::vector<std::string> event_type_names;  // sorted, distinct
  std::vector<int32_t> segments;              // schema ids, sorted, distinct
  std::vector<std::string> segment_names;     // sorted, distinct
  // The value can change with time alone: it uses now, days_since or an event window.
  bool time_relative = false;
};

// A compiled rule: immutable, so any number of threads may evaluate it at once.
class Rule {
 public:
  // The rule `false`, so that a Rule that was never compiled still evaluates safely.
  Rule() { nodes_.push_back(Node{}); }

  absl::string_view source() const { return source_; }
  const Dependencies& dependencies() const { return dependencies_; }

  // The AST, children before parents; root() is the whole rule (a kBool expression).
  absl::Span<const Node> nodes() const { return nodes_; }
  int32_t root() const { return root_; }
  const Node& node(int32_t i) const { return nodes_[i]; }
  absl::Span<const int32_t> children(const Node& n) const {
    return absl::MakeConstSpan(children_.data() + n.first_child, n.child_count);
  }
  const FieldRef& field(int32_t aux) const { return fields_[aux]; }
  // The canonical name of field(aux), e.g. "profile.address.country", "attributes.tier".
  const std::string& field_name(int32_t aux) const { return field_names_[aux]; }
  const std::string& string(int32_t aux) const { return strings_[aux]; }
  // The lookup sets of kList literals (by aux): one of them holds the elements, per type.
  const absl::flat_hash_set<std::string>& string_set(int32_t aux) const { return string_sets_[aux]; }
  const std::vector<double>& number_set(int32_t aux) const { return number_sets_[aux]; }  // sorted

 private:
  friend class Compiler;

  std::string source_;
  std::vector<Node> nodes_;
  std::vector<int32_t> children_;
  int32_t root_ = 0;
  std::vector<FieldRef> fields_;
  std::vector<std::string> field_names_;
  std::vector<std::string> strings_;
  std::vector<absl::flat_hash_set<std::string>> string_sets_;
  std::vector<std::vector<double>> number_sets_;
  Dependencies dependencies_;
};

// Parses and checks a rule. Every error is INVALID_ARGUMENT "line:column: message", e.g.
// `1:17: expected a number after '>=', found "abc"` (columns count characters from 1).
absl::StatusOr<Rule> Compile(absl::string_view source, const Schema& schema, const Limits& limits = {});

// "line:column" of a byte offset of a rule's source (Node::begin), as errors name places
// (columns count characters from 1).
std::string Position(absl::string_view source, int32_t offset);

// The rule in a canonical form that compiles to the same AST: every binary operation
// parenthesised, aliases replaced by the canonical field names.
std::string Format(const Rule& rule);

}  // namespace ecrm::rules

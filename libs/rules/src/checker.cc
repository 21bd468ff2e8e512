// Types every node (children first: the parser built them first), resolves names against
// the built-in fields and the engine's Schema, and keeps only what the root reaches.
#include <algorithm>
#include <array>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/civil_time.h"
#include "compiler.h"
#include "ecrm/status/macros.h"

namespace ecrm::rules {
namespace {

struct Function {
  absl::string_view name;
  int min_args;
  int max_args;
};
constexpr Function kFunctions[] = {
    {"days_since", 1, 1}, {"has", 1, 1},          {"segment", 1, 1},        {"timestamp", 1, 1},
    {"date", 1, 1},       {"events.count", 1, 2}, {"events.last_at", 1, 1},
};
constexpr absl::string_view kMethods[] = {"startsWith", "endsWith", "contains"};

const Function* FindFunction(absl::string_view name) {
  for (const Function& f : kFunctions) {
    if (f.name == name) return &f;
  }
  return nullptr;
}
bool IsMethod(absl::string_view name) {
  return std::find(std::begin(kMethods), std::end(kMethods), name) != std::end(kMethods);
}

std::string Arguments(int n) { return absl::StrCat(n, n == 1 ? " argument" : " arguments"); }

// [a-z0-9_]{1,64}: the information store's rule for attribute names and event types.
bool ValidName(absl::string_view name) {
  if (name.empty() || name.size() > 64) return false;
  return std::all_of(name.begin(), name.end(),
                     [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'; });
}

bool IsLiteral(Op op) { return op == Op::kBool || op == Op::kNumber || op == Op::kString; }

absl::string_view OpText(Op op) {
  switch (op) {
    case Op::kEq:
      return "==";
    case Op::kNe:
      return "!=";
    case Op::kLt:
      return "<";
    case Op::kLe:
      return "<=";
    case Op::kGt:
      return ">";
    case Op::kGe:
      return ">=";
    case Op::kAnd:
      return "&&";
    case Op::kOr:
      return "||";
    case Op::kAdd:
      return "+";
    case Op::kSub:
      return "-";
    case Op::kMul:
      return "*";
    case Op::kDiv:
      return "/";
    default:
      return "in";
  }
}

// Times a rule may name: years 0001 to 9999, so they print as RFC 3339 and parse back.
bool InRange(absl::Time t) {
  return t >= absl::FromCivil(absl::CivilSecond(1, 1, 1, 0, 0, 0), absl::UTCTimeZone()) &&
         t < absl::FromCivil(absl::CivilSecond(10000, 1, 1, 0, 0, 0), absl::UTCTimeZone());
}

// Edits (insert, delete, replace, swap two neighbours) from a to b.
size_t EditDistance(absl::string_view a, absl::string_view b) {
  std::vector<size_t> before(b.size() + 1), previous(b.size() + 1), row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) previous[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      row[j] = std::min({previous[j] + 1, row[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) row[j] = std::min(row[j], before[j - 2] + 1);
    }
    std::swap(before, previous);
    std::swap(previous, row);
  }
  return previous[b.size()];
}

}  // namespace

std::string Suggest(absl::string_view name, const std::vector<std::string>& candidates) {
  if (name.size() > 80) return "";
  const size_t allowed = name.size() <= 4 ? 1 : 2;
  std::string best;
  size_t best_distance = allowed + 1;
  for (const std::string& c : candidates) {
    if (c.size() > name.size() + allowed || c.size() + allowed < name.size()) continue;
    const size_t d = EditDistance(name, c);
    if (d < best_distance) {
      best_distance = d;
      best = c;
    }
  }
  return best;
}

std::string DidYouMean(absl::string_view name, const std::vector<std::string>& candidates) {
  const std::string s = Suggest(name, candidates);
  return s.empty() ? "" : absl::StrCat("; did you mean '", s, "'?");
}

std::string Compiler::Describe(int32_t index) const {
  const Node& n = rule_.nodes_[index];
  const absl::string_view text = source_.substr(n.begin, n.end - n.begin);
  if (text.size() > 40 || absl::StrContains(text, '\n')) return std::string(TypeName(n.type));
  if (IsLiteral(n.op) || n.op == Op::kDuration || n.op == Op::kList) return std::string(text);
  return absl::StrCat(text, " (", TypeName(n.type), ")");
}

absl::Status Compiler::Infer(int32_t child, Type type) {
  const auto it = pending_.find(child);
  if (it == pending_.end()) return absl::OkStatus();
  const std::string name = it->second;
  pending_.erase(it);
  Node& node = rule_.nodes_[child];
  const auto [first, inserted] = inferred_.try_emplace(name, type, node.begin);
  if (!inserted && first->second.first != type) {
    return Error(node.begin,
                 absl::StrCat("attribute '", name, "' is used as ", TypeName(type), " here but as ",
                              TypeName(first->second.first), " at ", Position(source_, first->second.second)));
  }
  node.type = type;
  return absl::OkStatus();
}

absl::Status Compiler::ExpectType(int32_t child, Type want, absl::string_view what) {
  if (Pending(child) && want != Type::kDuration) ECRM_RETURN_IF_ERROR(Infer(child, want));
  if (rule_.nodes_[child].type == want) return absl::OkStatus();
  return Error(rule_.nodes_[child].begin,
               absl::StrCat("expected ", TypeName(want), " ", what, ", found ", Describe(child)));
}

absl::StatusOr<std::string> Compiler::LiteralString(int32_t child, absl::string_view what) const {
  const Node& n = rule_.nodes_[child];
  if (n.op != Op::kString) return Error(n.begin, absl::StrCat("expected ", what, ", found ", Describe(child)));
  return rule_.strings_[n.aux];
}

absl::Status Compiler::Check() {
  for (int32_t i = 0; i < static_cast<int32_t>(rule_.nodes_.size()); ++i) ECRM_RETURN_IF_ERROR(CheckNode(i));
  ECRM_RETURN_IF_ERROR(Infer(rule_.root_, Type::kBool));
  if (!pending_.empty()) {
    // Only where nothing says what it is: has(attributes.x), attributes.a == attributes.b.
    int32_t first = pending_.begin()->first;
    for (const auto& [node, name] : pending_) first = std::min(first, node);
    return Error(rule_.nodes_[first].begin,
                 absl::StrCat("cannot tell the type of attribute '", pending_[first],
                              "' from this rule: compare it with a value (attributes.", pending_[first],
                              " == \"gold\", > 3, == true …) somewhere in the rule"));
  }
  const Node& root = rule_.nodes_[rule_.root_];
  if (root.type != Type::kBool) {
    return Error(root.begin, absl::StrCat("expected a condition (a bool), found ", Describe(rule_.root_)));
  }
  Compact();
  CollectDependencies();
  return absl::OkStatus();
}

absl::Status Compiler::CheckNode(int32_t index) {
  Node& node = rule_.nodes_[index];
  const int32_t* kids = rule_.children_.data() + node.first_child;
  switch (node.op) {
    case Op::kBool:
    case Op::kNumber:
    case Op::kString:
    case Op::kDuration:
      return absl::OkStatus();
    case Op::kList:
      return CheckList(node);
    case Op::kPath:
      return CheckPath(node);
    case Op::kCall:
      return CheckCall(node);
    case Op::kMethod:
      return CheckMethod(node);
    case Op::kNot:
      node.type = Type::kBool;
      return ExpectType(kids[0], Type::kBool, "after '!'");
    case Op::kNeg:
      node.type = Type::kNumber;
      return ExpectType(kids[0], Type::kNumber, "after '-'");
    case Op::kAnd:
    case Op::kOr:
      node.type = Type::kBool;
      for (int32_t i = 0; i < node.child_count; ++i) {
        ECRM_RETURN_IF_ERROR(
            ExpectType(kids[i], Type::kBool, absl::StrCat(i == 0 ? "before '" : "after '", OpText(node.op), "'")));
      }
      return absl::OkStatus();
    case Op::kEq:
    case Op::kNe:
    case Op::kLt:
    case Op::kLe:
    case Op::kGt:
    case Op::kGe:
    case Op::kInList:
      return CheckComparison(node);
    case Op::kAdd:
    case Op::kSub:
    case Op::kMul:
    case Op::kDiv:
      return CheckArithmetic(node);
    default:
      return Error(node.begin, "internal error: a node the parser does not make");
  }
}

absl::Status Compiler::CheckList(Node& node) {
  const int32_t* kids = rule_.children_.data() + node.first_child;
  absl::flat_hash_set<std::string> strings;
  std::vector<double> numbers;
  for (int32_t i = 0; i < node.child_count; ++i) {
    const Node& e = rule_.nodes_[kids[i]];
    if (!IsLiteral(e.op)) {
      return Error(e.begin,
                   absl::StrCat("expected a literal bool, number or string in the list, found ", Describe(kids[i])));
    }
    if (i > 0 && e.type != rule_.nodes_[kids[0]].type) {
      return Error(e.begin, absl::StrCat("expected ", TypeName(rule_.nodes_[kids[0]].type),
                                         " in the list like its first element, found ", Describe(kids[i])));
    }
    if (e.op == Op::kString) strings.insert(rule_.strings_[e.aux]);
    if (e.op == Op::kNumber) numbers.push_back(e.number);
    if (e.op == Op::kBool) numbers.push_back(e.boolean ? 1 : 0);
  }
  std::sort(numbers.begin(), numbers.end());
  numbers.erase(std::unique(numbers.begin(), numbers.end()), numbers.end());
  node.aux = static_cast<int32_t>(rule_.string_sets_.size());
  rule_.string_sets_.push_back(std::move(strings));
  rule_.number_sets_.push_back(std::move(numbers));
  return absl::OkStatus();
}

absl::Status Compiler::CheckPath(Node& node) {
  const std::string name = rule_.strings_[node.aux];
  if (name == "now") {
    node.op = Op::kNow;
    node.type = Type::kTime;
    return absl::OkStatus();
  }
  FieldRef ref;
  std::string canonical;
  if (absl::StartsWith(name, "attributes.")) {
    const absl::string_view attribute = absl::string_view(name).substr(11);
    if (!ValidName(attribute)) {
      return Error(node.begin, absl::StrCat("expected an attribute name of 1 to 64 characters a-z, 0-9 and _, found '",
                                            attribute.substr(0, 80), "'"));
    }
    std::optional<AttributeInfo> info = schema_.FindAttribute(attribute);
    if (!info) {
      return Error(node.begin, absl::StrCat("unknown attribute '", attribute, "'",
                                            DidYouMean(attribute, schema_.AttributeNames())));
    }
    if (info->inferred) {
      const auto known = inferred_.find(attribute);
      if (known != inferred_.end()) {
        info->type = known->second.first;
      } else {
        pending_[static_cast<int32_t>(&node - rule_.nodes_.data())] = std::string(attribute);
        info->type = Type::kString;  // until its use says
      }
    }
    if (info->type != Type::kBool && info->type != Type::kNumber && info->type != Type::kString &&
        info->type != Type::kTime) {
      return Error(node.begin,
                   absl::StrCat("attribute '", attribute, "' is ", TypeName(info->type), ", which rules cannot read"));
    }
    ref = FieldRef::Attribute(info->id);
    node.type = info->type;
    const bool identifier = !(attribute[0] >= '0' && attribute[0] <= '9');
    canonical = identifier ? absl::StrCat("attributes.", attribute) : absl::StrCat("attributes[\"", attribute, "\"]");
  } else if (const std::optional<BuiltinField> builtin = FindBuiltinField(name)) {
    ref = builtin->ref;
    node.type = builtin->type;
    canonical = FieldName(ref);
  } else if (FindFunction(name) != nullptr) {
    return Error(node.begin, absl::StrCat("expected '(' after the function ", name, ", found ",
                                          node.end < static_cast<int32_t>(source_.size())
                                              ? absl::StrCat("'", source_.substr(node.end, 1), "'")
                                              : "end of rule"));
  } else {
    std::vector<std::string> candidates = BuiltinFieldNames();
    candidates.push_back("now");
    for (const std::string& a : schema_.AttributeNames()) candidates.push_back(absl::StrCat("attributes.", a));
    return Error(node.begin, absl::StrCat("unknown field '", name.substr(0, 80), "'", DidYouMean(name, candidates)));
  }
  node.op = Op::kField;
  const auto it = std::find(rule_.fields_.begin(), rule_.fields_.end(), ref);
  node.aux = static_cast<int32_t>(it - rule_.fields_.begin());
  if (it == rule_.fields_.end()) {
    rule_.fields_.push_back(ref);
    rule_.field_names_.push_back(std::move(canonical));
  }
  return absl::OkStatus();
}

absl::Status Compiler::CheckCall(Node& node) {
  const std::string name = rule_.strings_[node.aux];
  int32_t* kids = rule_.children_.data() + node.first_child;
  const Function* f = FindFunction(name);
  if (f == nullptr) {
    if (IsMethod(name)) {
      return Error(node.begin, absl::StrCat("unknown function '", name, "' (a method: write value.", name, "(…))"));
    }
    std::vector<std::string> names;
    for (const Function& g : kFunctions) names.emplace_back(g.name);
    return Error(node.begin, absl::StrCat("unknown function '", name.substr(0, 80), "'", DidYouMean(name, names)));
  }
  if (node.child_count < f->min_args || node.child_count > f->max_args) {
    const std::string takes =
        f->min_args == f->max_args ? Arguments(f->min_args) : absl::StrCat(f->min_args, " or ", Arguments(f->max_args));
    const int32_t at = node.child_count > f->max_args ? rule_.nodes_[kids[f->max_args]].begin : node.begin;
    return Error(at, absl::StrCat(name, " takes ", takes, ", found ", node.child_count));
  }
  if (name == "days_since") {
    node.op = Op::kDaysSince;
    node.type = Type::kNumber;
    return ExpectType(kids[0], Type::kTime, "as the argument of days_since");
  }
  if (name == "has") {
    const Node& arg = rule_.nodes_[kids[0]];
    if (!((arg.op == Op::kField && arg.type != Type::kStringList) || arg.op == Op::kEventLastAt)) {
      return Error(arg.begin, absl::StrCat("expected a field that can be missing or events.last_at(…) as the argument "
                                           "of has, found ",
                                           Describe(kids[0])));
    }
    // An inferred attribute needs no type to be present or not (the evaluator asks the view).
    pending_.erase(kids[0]);
    node.op = Op::kHas;
    node.type = Type::kBool;
    return absl::OkStatus();
  }
  if (name == "segment") {
    ECRM_ASSIGN_OR_RETURN(std::string segment,
                          LiteralString(kids[0], "a segment name in double quotes as the argument of segment"));
    const std::optional<int32_t> id = schema_.FindSegment(segment);
    if (!id) return Error(rule_.nodes_[kids[0]].begin, absl::StrCat("unknown segment '", segment.substr(0, 80), "'"));
    node.op = Op::kSegment;
    node.type = Type::kBool;
    node.aux = *id;
    return absl::OkStatus();
  }
  if (name == "events.count" || name == "events.last_at") {
    ECRM_ASSIGN_OR_RETURN(
        std::string type,
        LiteralString(kids[0], absl::StrCat("an event type in double quotes as the first argument of ", name)));
    if (!ValidName(type)) {
      return Error(
          rule_.nodes_[kids[0]].begin,
          absl::StrCat("expected an event type of 1 to 64 characters a-z, 0-9 and _, found ", Describe(kids[0])));
    }
    const std::optional<int32_t> id = schema_.FindEventType(type);
    if (!id) return Error(rule_.nodes_[kids[0]].begin, absl::StrCat("unknown event type '", type, "'"));
    node.aux = *id;
    if (name == "events.last_at") {
      node.op = Op::kEventLastAt;
      node.type = Type::kTime;
      return absl::OkStatus();
    }
    node.op = Op::kEventCount;
    node.type = Type::kNumber;
    node.duration = absl::InfiniteDuration();
    if (node.child_count == 2) {
      const Node& window = rule_.nodes_[kids[1]];
      if (window.op != Op::kDuration) {
        return Error(window.begin, absl::StrCat("expected a window such as 30d as the second argument of events.count, "
                                                "found ",
                                                Describe(kids[1])));
      }
      if (window.duration <= absl::ZeroDuration()) {
        return Error(window.begin, absl::StrCat("expected a window longer than 0, found ", Describe(kids[1])));
      }
      node.duration = window.duration;
      node.child_count = 1;  // the type name stays, for Format
    }
    return absl::OkStatus();
  }
  // timestamp("…") and date("…") are time literals.
  const bool is_date = name == "date";
  const absl::string_view example = is_date ? "\"2026-01-01\"" : "\"2026-01-01T00:00:00Z\"";
  const std::string what = absl::StrCat("a time such as ", example, " as the argument of ", name);
  ECRM_ASSIGN_OR_RETURN(std::string text, LiteralString(kids[0], what));
  absl::Time t;
  std::string error;
  const bool parsed = is_date ? absl::ParseTime("%Y-%m-%d", text, absl::UTCTimeZone(), &t, &error)
                              : absl::ParseTime(absl::RFC3339_full, text, &t, &error);
  if (!parsed || !InRange(t)) {
    return Error(rule_.nodes_[kids[0]].begin,
                 absl::StrCat("expected ", what, " (years 0001 to 9999), found ", Describe(kids[0])));
  }
  node.op = Op::kTime;
  node.type = Type::kTime;
  node.time = t;
  node.child_count = 0;
  return absl::OkStatus();
}

absl::Status Compiler::CheckMethod(Node& node) {
  const std::string name = rule_.strings_[node.aux];
  int32_t* kids = rule_.children_.data() + node.first_child;
  if (!IsMethod(name)) {
    std::vector<std::string> names(std::begin(kMethods), std::end(kMethods));
    return Error(static_cast<int32_t>(node.number),
                 absl::StrCat("unknown method '", name.substr(0, 80), "'", DidYouMean(name, names)));
  }
  const int args = node.child_count - 1;
  if (args != 1) {
    return Error(args > 1 ? rule_.nodes_[kids[2]].begin : node.begin,
                 absl::StrCat(name, " takes 1 argument, found ", args));
  }
  ECRM_RETURN_IF_ERROR(Infer(kids[0], Type::kString));
  const Node& receiver = rule_.nodes_[kids[0]];
  const std::string before = absl::StrCat("before '.", name, "'");
  if (name == "contains") {
    if (receiver.type != Type::kString && receiver.type != Type::kStringList) {
      return Error(receiver.begin,
                   absl::StrCat("expected a string or a list field ", before, ", found ", Describe(kids[0])));
    }
  } else {
    ECRM_RETURN_IF_ERROR(ExpectType(kids[0], Type::kString, before));
  }
  ECRM_RETURN_IF_ERROR(ExpectType(kids[1], Type::kString, absl::StrCat("as the argument of ", name)));
  node.type = Type::kBool;
  if (name == "startsWith") {
    node.op = Op::kStartsWith;
  } else if (name == "endsWith") {
    node.op = Op::kEndsWith;
  } else {
    // x.contains(y) is y in x.
    node.op = receiver.type == Type::kStringList ? Op::kInField : Op::kInString;
    std::swap(kids[0], kids[1]);
  }
  return absl::OkStatus();
}

absl::Status Compiler::CheckComparison(Node& node) {
  const int32_t* kids = rule_.children_.data() + node.first_child;
  const Node& a = rule_.nodes_[kids[0]];
  const Node& b = rule_.nodes_[kids[1]];
  const std::string op = absl::StrCat("'", OpText(node.op), "'");
  node.type = Type::kBool;
  if (Pending(kids[0]) && !Pending(kids[1])) {
    Type type = b.type;
    if (b.type == Type::kList) {
      type = b.child_count > 0 ? rule_.nodes_[rule_.children_[b.first_child]].type : Type::kString;
    } else if (b.type == Type::kStringList) {
      type = Type::kString;
    }
    ECRM_RETURN_IF_ERROR(Infer(kids[0], type));
  } else if (Pending(kids[1]) && !Pending(kids[0]) && node.op != Op::kInList) {
    ECRM_RETURN_IF_ERROR(Infer(kids[1], a.type));
  } else if (Pending(kids[1]) && node.op == Op::kInList) {
    ECRM_RETURN_IF_ERROR(Infer(kids[1], Type::kString));  // "x" in attributes.s: a substring
  }
  if (node.op == Op::kInList) {
    if (b.type == Type::kList) {
      if (a.type != Type::kBool && a.type != Type::kNumber && a.type != Type::kString) {
        return Error(a.begin, absl::StrCat("expected a bool, number or string before 'in', found ", Describe(kids[0])));
      }
      if (b.child_count > 0) {
        const int32_t first = rule_.children_[b.first_child];
        return ExpectType(first, a.type, "in the list after 'in'");
      }
      return absl::OkStatus();
    }
    if (b.type == Type::kStringList) {
      node.op = Op::kInField;
    } else if (b.type == Type::kString) {
      node.op = Op::kInString;
    } else {
      return Error(b.begin,
                   absl::StrCat("expected a list, a list field or a string after 'in', found ", Describe(kids[1])));
    }
    return ExpectType(kids[0], Type::kString, "before 'in'");
  }
  const bool equality = node.op == Op::kEq || node.op == Op::kNe;
  const bool comparable = a.type == Type::kNumber || a.type == Type::kString || a.type == Type::kTime ||
                          (equality && a.type == Type::kBool);
  if (!comparable) {
    return Error(a.begin,
                 absl::StrCat("expected ", equality ? "a bool, number, string or time" : "a number, string or time",
                              " before ", op, ", found ", Describe(kids[0])));
  }
  return ExpectType(kids[1], a.type, absl::StrCat("after ", op));
}

absl::Status Compiler::CheckArithmetic(Node& node) {
  const int32_t* kids = rule_.children_.data() + node.first_child;
  if (Pending(kids[0])) {
    const bool time = (node.op == Op::kAdd || node.op == Op::kSub) && rule_.nodes_[kids[1]].type == Type::kDuration;
    ECRM_RETURN_IF_ERROR(Infer(kids[0], time ? Type::kTime : Type::kNumber));
  }
  const Node& a = rule_.nodes_[kids[0]];
  const std::string after = absl::StrCat("after '", OpText(node.op), "'");
  if (node.op == Op::kAdd || node.op == Op::kSub) {
    if (a.type == Type::kTime) {
      node.type = Type::kTime;
      return ExpectType(kids[1], Type::kDuration, after);
    }
    if (a.type == Type::kDuration && node.op == Op::kAdd) {
      node.type = Type::kTime;
      return ExpectType(kids[1], Type::kTime, after);
    }
    if (a.type != Type::kNumber) {
      return Error(a.begin, absl::StrCat("expected a number or a time before '", OpText(node.op), "', found ",
                                         Describe(kids[0])));
    }
  } else if (a.type != Type::kNumber) {
    return Error(a.begin, absl::StrCat("expected a number before '", OpText(node.op), "', found ", Describe(kids[0])));
  }
  node.type = Type::kNumber;
  return ExpectType(kids[1], Type::kNumber, after);
}

int32_t Compiler::CopyNode(const Rule& from, int32_t index) {
  Node node = from.nodes_[index];
  std::vector<int32_t> kids;
  kids.reserve(node.child_count);
  for (int32_t i = 0; i < node.child_count; ++i) kids.push_back(CopyNode(from, from.children_[node.first_child + i]));
  node.first_child = static_cast<int32_t>(rule_.children_.size());
  rule_.children_.insert(rule_.children_.end(), kids.begin(), kids.end());
  rule_.nodes_.push_back(node);
  return static_cast<int32_t>(rule_.nodes_.size() - 1);
}

void Compiler::Compact() {
  // Drops what checking replaced (the arguments of timestamp(), windows of events.count):
  // every node of a compiled rule is reachable from the root.
  Rule from;
  from.nodes_ = std::move(rule_.nodes_);
  from.children_ = std::move(rule_.children_);
  rule_.nodes_.clear();
  rule_.children_.clear();
  rule_.nodes_.reserve(from.nodes_.size());
  rule_.root_ = CopyNode(from, rule_.root_);
}

void Compiler::CollectDependencies() {
  Dependencies& d = rule_.dependencies_;
  for (const Node& n : rule_.nodes_) {
    switch (n.op) {
      case Op::kField:
        d.fields.push_back(rule_.fields_[n.aux]);
        break;
      case Op::kNow:
      case Op::kDaysSince:
        d.time_relative = true;
        break;
      case Op::kEventCount:
        if (n.duration != absl::InfiniteDuration()) d.time_relative = true;
        [[fallthrough]];
      case Op::kEventLastAt:
        d.event_types.push_back(n.aux);
        d.event_type_names.push_back(rule_.strings_[rule_.nodes_[rule_.children_[n.first_child]].aux]);
        break;
      case Op::kSegment:
        d.segments.push_back(n.aux);
        d.segment_names.push_back(rule_.strings_[rule_.nodes_[rule_.children_[n.first_child]].aux]);
        break;
      default:
        break;
    }
  }
  auto distinct = [](auto& v) {
    std::sort(v.begin(), v.end());
    v.erase(std::unique(v.begin(), v.end()), v.end());
  };
  distinct(d.fields);
  distinct(d.event_types);
  distinct(d.event_type_names);
  distinct(d.segments);
  distinct(d.segment_names);
}

}  // namespace ecrm::rules

#include "population.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <vector>

#include "absl/strings/match.h"
#include "ecrm/rules/evaluator.h"

namespace ecrm::segmentation {
namespace {

using rules::Node;
using rules::Op;
using rules::Value;

// A set of customer numbers as plain bits: the working set while conjuncts narrow it.
class Bits {
 public:
  explicit Bits(CustomerNo end) : words_((end + 63) / 64, 0) {}
  void Set(CustomerNo n) { words_[n >> 6] |= uint64_t{1} << (n & 63); }
  // Keeps the customers for whom keep(n) holds.
  template <typename Keep>
  void Filter(Keep keep) {
    for (size_t w = 0; w < words_.size(); ++w) {
      uint64_t word = words_[w];
      while (word != 0) {
        const int bit = __builtin_ctzll(word);
        word &= word - 1;
        const auto n = static_cast<CustomerNo>(w * 64 + bit);
        if (!keep(n)) words_[w] &= ~(uint64_t{1} << bit);
      }
    }
  }
  Roaring ToRoaring() const {
    Roaring out;
    std::vector<uint32_t> chunk;
    chunk.reserve(4096);
    for (size_t w = 0; w < words_.size(); ++w) {
      uint64_t word = words_[w];
      while (word != 0) {
        chunk.push_back(static_cast<uint32_t>(w * 64 + __builtin_ctzll(word)));
        word &= word - 1;
        if (chunk.size() == chunk.capacity()) {
          out.addMany(chunk.size(), chunk.data());
          chunk.clear();
        }
      }
    }
    out.addMany(chunk.size(), chunk.data());
    out.runOptimize();
    return out;
  }
  int64_t Count() const {
    int64_t n = 0;
    for (uint64_t w : words_) n += __builtin_popcountll(w);
    return n;
  }

 private:
  std::vector<uint64_t> words_;
};

bool IsLiteral(const Node& n) {
  return n.op == Op::kNumber || n.op == Op::kString || n.op == Op::kTime || n.op == Op::kBool;
}

Op Mirror(Op op) {
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

bool Holds(Op op, int order) {
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
      return order >= 0;
  }
}

template <typename T>
int Order(const T& a, const T& b) {
  return a < b ? -1 : b < a ? 1 : 0;
}

bool IsComparison(Op op) {
  return op == Op::kEq || op == Op::kNe || op == Op::kLt || op == Op::kLe || op == Op::kGt || op == Op::kGe;
}

// Whether a present value compares with the literal as `op` says (the per-customer evaluator's
// rule: a value of another kind than the literal's, or a missing one, is never true).
bool CompareWithLiteral(const Value& v, Op op, const Node& lit, const rules::Rule& rule) {
  switch (lit.op) {
    case Op::kNumber:
      return v.kind == Value::Kind::kNumber && !std::isnan(v.number) && Holds(op, Order(v.number, lit.number));
    case Op::kString:
      return v.kind == Value::Kind::kString && Holds(op, Order(v.string, absl::string_view(rule.string(lit.aux))));
    case Op::kTime:
      return v.kind == Value::Kind::kTime && Holds(op, Order(v.time, lit.time));
    case Op::kBool:
      return v.kind == Value::Kind::kBool &&
             Holds(op, Order(static_cast<int>(v.boolean), static_cast<int>(lit.boolean)));
    default:
      return false;
  }
}

// Whole days from t to now, rounded down (as days_since).
int64_t DaysSince(absl::Time t, absl::Time now) {
  absl::Duration rem;
  int64_t days = absl::IDivDuration(now - t, absl::Hours(24), &rem);
  if (rem < absl::ZeroDuration()) --days;
  return days;
}

class Columnar {
 public:
  Columnar(const rules::Rule& rule, const Features& f, const Memberships* m, absl::Time now)
      : rule_(rule), f_(f), m_(m), now_(now) {}

  // Narrows `set` to the customers for whom the conjunct is true; false (set unchanged) when
  // the conjunct is not one of the simple shapes.
  bool Narrow(int32_t index, Bits& set) const {
    const Node& n = rule_.node(index);
    const auto kids = rule_.children(n);
    switch (n.op) {
      case Op::kField: {
        if (n.type != rules::Type::kBool) return false;
        const rules::FieldRef& ref = rule_.field(n.aux);
        set.Filter([&](CustomerNo c) {
          const Value v = f_.Field(c, ref);
          return v.kind == Value::Kind::kBool && v.boolean;
        });
        return true;
      }
      case Op::kBool:
        if (!n.boolean) set.Filter([](CustomerNo) { return false; });
        return true;
      case Op::kSegment:
        if (m_ == nullptr) return false;
        set.Filter([&](CustomerNo c) { return m_->Contains(n.aux, c); });
        return true;
      case Op::kInField: {
        const Node& item = rule_.node(kids[0]);
        const Node& list = rule_.node(kids[1]);
        if (item.op != Op::kString || list.op != Op::kField) return false;
        const rules::FieldRef& ref = rule_.field(list.aux);
        if (ref.kind != rules::FieldRef::Kind::kBuiltin || ref.builtin() != rules::Field::kInterests) return false;
        const Roaring* members = f_.Interest(rule_.string(item.aux));
        set.Filter([&](CustomerNo c) { return members != nullptr && members->contains(c); });
        return true;
      }
      case Op::kInList: {
        const Node& field = rule_.node(kids[0]);
        if (field.op != Op::kField) return false;
        const rules::FieldRef& ref = rule_.field(field.aux);
        const int32_t set_index = rule_.node(kids[1]).aux;
        if (field.type == rules::Type::kString) {
          const auto& strings = rule_.string_set(set_index);
          return FilterString(ref, set, [&](absl::string_view s) { return strings.contains(s); });
        }
        if (field.type != rules::Type::kNumber) return false;
        const std::vector<double>& numbers = rule_.number_set(set_index);
        set.Filter([&](CustomerNo c) {
          const Value v = f_.Field(c, ref);
          return v.kind == Value::Kind::kNumber && std::binary_search(numbers.begin(), numbers.end(), v.number);
        });
        return true;
      }
      case Op::kStartsWith:
      case Op::kEndsWith:
      case Op::kInString: {
        // field.startsWith("x"), field.endsWith("x"), "x" in field / field.contains("x").
        const Node& a = rule_.node(kids[0]);
        const Node& b = rule_.node(kids[1]);
        const bool field_first = n.op != Op::kInString;
        const Node& field = field_first ? a : b;
        const Node& lit = field_first ? b : a;
        if (field.op != Op::kField || lit.op != Op::kString) return false;
        const std::string& text = rule_.string(lit.aux);
        return FilterString(rule_.field(field.aux), set, [&](absl::string_view s) {
          return n.op == Op::kStartsWith ? absl::StartsWith(s, text)
                 : n.op == Op::kEndsWith ? absl::EndsWith(s, text)
                                         : absl::StrContains(s, text);
        });
      }
      default:
        break;
    }
    if (!IsComparison(n.op)) return false;
    int32_t other = kids[0], lit_index = kids[1];
    Op op = n.op;
    if (IsLiteral(rule_.node(other))) {
      std::swap(other, lit_index);
      op = Mirror(op);
    }
    const Node& lit = rule_.node(lit_index);
    const Node& x = rule_.node(other);
    if (!IsLiteral(lit)) return false;
    switch (x.op) {
      case Op::kField: {
        const rules::FieldRef& ref = rule_.field(x.aux);
        if (x.type == rules::Type::kString && lit.op == Op::kString) {
          const absl::string_view want = rule_.string(lit.aux);
          return FilterString(ref, set, [&](absl::string_view s) { return Holds(op, Order(s, want)); });
        }
        if (x.type == rules::Type::kTime && lit.op == Op::kTime && ref.kind == rules::FieldRef::Kind::kBuiltin) {
          const TimeColumn& times = *f_.TimeField(ref.builtin());
          set.Filter([&](CustomerNo c) {
            const int64_t s = times.Get(c);
            return s != kNoTime && Holds(op, Order(absl::FromUnixSeconds(s), lit.time));
          });
          return true;
        }
        set.Filter([&](CustomerNo c) { return CompareWithLiteral(f_.Field(c, ref), op, lit, rule_); });
        return true;
      }
      case Op::kDaysSince: {
        const Node& t = rule_.node(rule_.children(x)[0]);
        if (t.op != Op::kField || lit.op != Op::kNumber) return false;
        const rules::FieldRef& ref = rule_.field(t.aux);
        set.Filter([&](CustomerNo c) {
          const Value v = f_.Field(c, ref);
          if (v.kind != Value::Kind::kTime) return false;
          return Holds(op, Order(static_cast<double>(DaysSince(v.time, now_)), lit.number));
        });
        return true;
      }
      case Op::kEventCount: {
        if (lit.op != Op::kNumber) return false;
        set.Filter([&](CustomerNo c) {
          const int64_t count = std::clamp<int64_t>(f_.EventCount(c, x.aux, x.duration, now_), 0, int64_t{1} << 53);
          return Holds(op, Order(static_cast<double>(count), lit.number));
        });
        return true;
      }
      default:
        return false;
    }
  }

 private:
  // Keeps the customers whose string field satisfies `test`; a built-in profile field is tested
  // once per distinct value (its dictionary), not once per customer. rfm.cell is not among the
  // profile columns (Features keeps it with the scores): it is read per customer.
  template <typename Test>
  bool FilterString(const rules::FieldRef& ref, Bits& set, Test test) const {
    if (ref.kind == rules::FieldRef::Kind::kBuiltin && ref.builtin() != rules::Field::kRfmCell) {
      const StringColumn& column = *f_.StringField(ref.builtin());
      std::vector<uint8_t> pass(column.dictionary.size(), 0);
      for (uint32_t code = 1; code < pass.size(); ++code) pass[code] = test(column.dictionary.value(code)) ? 1 : 0;
      set.Filter([&](CustomerNo c) { return pass[column.codes.Get(c)] != 0; });
      return true;
    }
    set.Filter([&](CustomerNo c) {
      const Value v = f_.Field(c, ref);
      return v.kind == Value::Kind::kString && test(v.string);
    });
    return true;
  }

  const rules::Rule& rule_;
  const Features& f_;
  const Memberships* m_;
  const absl::Time now_;
};

}  // namespace

PopulationResult EvaluatePopulation(const rules::Rule& rule, const Features& features, const Memberships* memberships,
                                    absl::Time now) {
  Bits set(features.end());
  for (CustomerNo n : features.live()) set.Set(n);
  const Node& root = rule.node(rule.root());
  std::vector<int32_t> conjuncts;
  if (root.op == Op::kAnd) {
    const auto kids = rule.children(root);
    conjuncts.assign(kids.begin(), kids.end());
  } else {
    conjuncts.push_back(rule.root());
  }
  Columnar columnar(rule, features, memberships, now);
  bool exact = true;
  for (int32_t c : conjuncts) exact = columnar.Narrow(c, set) && exact;
  PopulationResult out;
  if (!exact) {
    out.evaluated_one_by_one = set.Count();
    set.Filter([&](CustomerNo n) { return rules::Matches(rule, CustomerFeatures(features, n, memberships), now); });
  }
  out.members = set.ToRoaring();
  return out;
}

}  // namespace ecrm::segmentation

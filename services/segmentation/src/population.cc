#include "population.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <new>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "ecrm/rules/evaluator.h"

namespace ecrm::segmentation {
namespace {

using rules::Node;
using rules::Op;
using rules::Value;

// A customer's value of a boolean node, in three-valued logic (kU: a missing value decided it).
enum Truth : uint8_t { kF = 0, kT = 1, kU = 2 };

constexpr uint64_t kAll = ~uint64_t{0};

// Sets of customer numbers as plain bits over one range of 64-number words: bit b of word w is
// customer (first_word + w) * 64 + b.
using Words = std::vector<uint64_t>;

bool IsLiteral(const Node& n) {
  return n.op == Op::kNumber || n.op == Op::kString || n.op == Op::kTime || n.op == Op::kBool;
}

template <typename T>
int Order(const T& a, const T& b) {
  return a < b ? -1 : b < a ? 1 : 0;
}

bool IsComparison(Op op) {
  return op == Op::kEq || op == Op::kNe || op == Op::kLt || op == Op::kLe || op == Op::kGt || op == Op::kGe;
}

// A present value against the literal, as the per-customer evaluator compares (a value of
// another kind than the literal's, or a missing one or NaN, is unknown).
Truth CompareWithLiteral(const Value& v, Op op, const Node& lit, const rules::Rule& rule) {
  switch (lit.op) {
    case Op::kNumber:
      if (v.kind != Value::Kind::kNumber || std::isnan(v.number)) return kU;
      return Holds(op, Order(v.number, lit.number)) ? kT : kF;
    case Op::kString:
      if (v.kind != Value::Kind::kString) return kU;
      return Holds(op, Order(v.string, absl::string_view(rule.string(lit.aux)))) ? kT : kF;
    case Op::kTime:
      if (v.kind != Value::Kind::kTime) return kU;
      return Holds(op, Order(v.time, lit.time)) ? kT : kF;
    case Op::kBool:
      if (v.kind != Value::Kind::kBool) return kU;
      return Holds(op, Order(static_cast<int>(v.boolean), static_cast<int>(lit.boolean))) ? kT : kF;
    default:
      return kU;
  }
}

// floor(a / b) for b > 0.
int64_t FloorDiv(int64_t a, int64_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }

// Calls classify(n) for each customer of `domain` and writes whom it found true to `t` and
// false to `f` (either may be null, or `domain` itself: each word is read before it is
// written). A full word is run through without branching on its bits.
template <typename Classify>
void Scan(const uint64_t* domain, size_t words, CustomerNo first, Classify classify, uint64_t* t, uint64_t* f) {
  for (size_t w = 0; w < words; ++w) {
    const uint64_t d = domain[w];
    uint64_t tm = 0, fm = 0;
    const CustomerNo base = first + static_cast<CustomerNo>(w * 64);
    if (d == kAll) {
      for (int b = 0; b < 64; ++b) {
        const Truth r = classify(base + b);
        tm |= uint64_t{r == kT} << b;
        fm |= uint64_t{r == kF} << b;
      }
    } else {
      for (uint64_t rest = d; rest != 0; rest &= rest - 1) {
        const int b = __builtin_ctzll(rest);
        const Truth r = classify(base + b);
        tm |= uint64_t{r == kT} << b;
        fm |= uint64_t{r == kF} << b;
      }
    }
    if (t != nullptr) t[w] = tm;
    if (f != nullptr) f[w] = fm;
  }
}

// Scan for a classify() that reads memory scattered by customer (events): each customer's
// memory is asked for kAhead customers before it is read, so that the loads overlap.
template <typename Classify, typename Prefetch>
void ScanAhead(const uint64_t* domain, size_t words, CustomerNo first, Classify classify, Prefetch prefetch,
               uint64_t* t, uint64_t* f) {
  constexpr size_t kAhead = 16;
  Words tm(words, 0), fm(words, 0);
  CustomerNo ring[kAhead];
  size_t pushed = 0, done = 0;
  auto finish = [&](CustomerNo c) {
    const Truth r = classify(c);
    const CustomerNo i = c - first;
    tm[i / 64] |= uint64_t{r == kT} << (i % 64);
    fm[i / 64] |= uint64_t{r == kF} << (i % 64);
  };
  for (size_t w = 0; w < words; ++w) {
    for (uint64_t rest = domain[w]; rest != 0; rest &= rest - 1) {
      const CustomerNo c = first + static_cast<CustomerNo>(w * 64 + __builtin_ctzll(rest));
      prefetch(c);
      if (pushed - done == kAhead) finish(ring[done++ % kAhead]);
      ring[pushed++ % kAhead] = c;
    }
  }
  while (done < pushed) finish(ring[done++ % kAhead]);
  for (size_t w = 0; w < words; ++w) {
    if (t != nullptr) t[w] = tm[w];
    if (f != nullptr) f[w] = fm[w];
  }
}

// The population evaluator over one range of words. Each boolean node of a simple shape (see
// population.h) is decided column by column into the sets of customers it is true and false
// for, the rest being unknown — &&, || and ! combine those sets as the per-customer evaluator
// combines values (Kleene's logic), so any boolean combination of simple shapes is decided
// without the per-customer evaluator.
class Columnar {
 public:
  Columnar(const rules::Rule& rule, const Features& f, const Memberships* m, absl::Time now, size_t first_word,
           size_t words)
      : rule_(rule),
        f_(f),
        m_(m),
        now_(now),
        now_seconds_(absl::ToUnixSeconds(now)),
        first_(static_cast<CustomerNo>(first_word * 64)),
        words_(words) {}

  // A rough relative cost of deciding the node for one customer; kUnsupported when it cannot
  // be decided here.
  static constexpr int kUnsupported = 1 << 20;
  int Cost(int32_t index) const {
    const Node& n = rule_.node(index);
    const auto kids = rule_.children(n);
    switch (n.op) {
      case Op::kBool:
        return 0;
      case Op::kAnd:
      case Op::kOr: {
        int cost = 1;
        for (int32_t k : kids) cost = std::min(kUnsupported, cost + Cost(k));
        return cost;
      }
      case Op::kNot:
        return Cost(kids[0]);
      case Op::kField:
        return n.type == rules::Type::kBool ? 1 : kUnsupported;
      case Op::kSegment:
        return m_ == nullptr ? kUnsupported : 4;
      case Op::kInField: {
        const Node& item = rule_.node(kids[0]);
        const Node& list = rule_.node(kids[1]);
        if (item.op != Op::kString || list.op != Op::kField) return kUnsupported;
        const rules::FieldRef& ref = rule_.field(list.aux);
        return ref.kind == rules::FieldRef::Kind::kBuiltin && ref.builtin() == rules::Field::kInterests ? 4
                                                                                                        : kUnsupported;
      }
      case Op::kInList: {
        const Node& field = rule_.node(kids[0]);
        if (field.op != Op::kField) return kUnsupported;
        return field.type == rules::Type::kString || field.type == rules::Type::kNumber ? 2 : kUnsupported;
      }
      case Op::kStartsWith:
      case Op::kEndsWith:
      case Op::kInString: {
        const bool field_first = n.op != Op::kInString;
        const Node& field = rule_.node(kids[field_first ? 0 : 1]);
        const Node& lit = rule_.node(kids[field_first ? 1 : 0]);
        return field.op == Op::kField && lit.op == Op::kString ? 2 : kUnsupported;
      }
      default:
        break;
    }
    if (!IsComparison(n.op)) return kUnsupported;
    int32_t other = kids[0], lit_index = kids[1];
    if (IsLiteral(rule_.node(other))) std::swap(other, lit_index);
    const Node& lit = rule_.node(lit_index);
    const Node& x = rule_.node(other);
    if (!IsLiteral(lit)) return kUnsupported;
    switch (x.op) {
      case Op::kField:
        return 2;
      case Op::kDaysSince:
        return rule_.node(rule_.children(x)[0]).op == Op::kField && lit.op == Op::kNumber ? 3 : kUnsupported;
      case Op::kEventCount:
        return lit.op == Op::kNumber ? 8 : kUnsupported;
      default:
        return kUnsupported;
    }
  }

  // Writes the customers of `domain` for whom the node is true to `t` and false to `f` (either
  // may be null, or `domain` itself). The node's Cost() is below kUnsupported.
  void Decide(int32_t index, const uint64_t* domain, uint64_t* t, uint64_t* f) const {
    const Node& n = rule_.node(index);
    const auto kids = rule_.children(n);
    switch (n.op) {
      case Op::kBool:
        Constant(domain, n.boolean ? t : f, n.boolean ? f : t);
        return;
      case Op::kNot:
        Decide(kids[0], domain, f, t);
        return;
      case Op::kAnd:
      case Op::kOr:
        Junction(n.op == Op::kOr, kids, domain, t, f);
        return;
      default:
        Leaf(index, domain, t, f);
        return;
    }
  }

  // For a conjunct whose truth time can only take away — days_since(field) < or <= a number
  // (days only pass), an event count > or >= a number (events only leave their window, unless
  // dated after now) — narrows `set` to the customers it is true for now or may become true
  // for without new data (an event count with events dated after now); false otherwise.
  bool NarrowToLasting(int32_t index, uint64_t* set) const {
    const Node& n = rule_.node(index);
    if (!IsComparison(n.op)) return false;
    const auto kids = rule_.children(n);
    int32_t other = kids[0], lit_index = kids[1];
    Op op = n.op;
    if (IsLiteral(rule_.node(other))) {
      std::swap(other, lit_index);
      op = Mirror(op);
    }
    const Node& lit = rule_.node(lit_index);
    const Node& x = rule_.node(other);
    if (lit.op != Op::kNumber) return false;
    if (x.op == Op::kDaysSince && rule_.node(rule_.children(x)[0]).op == Op::kField &&
        (op == Op::kLt || op == Op::kLe)) {
      Decide(index, set, set, nullptr);
      return true;
    }
    if (x.op != Op::kEventCount || x.duration == absl::InfiniteDuration() || (op != Op::kGt && op != Op::kGe)) {
      return false;
    }
    const Features::DayRange days = Features::WindowDays(x.duration, now_);
    Run(set, set, nullptr, [&](CustomerNo c) {
      const int64_t count = std::clamp<int64_t>(f_.EventCountInDays(c, x.aux, days), 0, int64_t{1} << 53);
      if (Holds(op, Order(static_cast<double>(count), lit.number))) return kT;
      return f_.EventCountInDays(c, x.aux, {days.last + 1, std::numeric_limits<int64_t>::max()}) > 0 ? kT : kF;
    });
    return true;
  }

 private:
  // A literal: `all` gets the domain, `none` nothing.
  void Constant(const uint64_t* domain, uint64_t* all, uint64_t* none) const {
    for (size_t w = 0; w < words_; ++w) {
      const uint64_t d = domain[w];
      if (all != nullptr) all[w] = d;
      if (none != nullptr) none[w] = 0;
    }
  }

  void Junction(bool is_or, absl::Span<const int32_t> kids, const uint64_t* domain, uint64_t* t, uint64_t* f) const;
  void Leaf(int32_t index, const uint64_t* domain, uint64_t* t, uint64_t* f) const;

  template <typename Classify>
  void Run(const uint64_t* domain, uint64_t* t, uint64_t* f, Classify classify) const {
    Scan(domain, words_, first_, classify, t, f);
  }

  // A string field tested by `test`: a built-in field's dictionary is tested once per distinct
  // value, not once per customer.
  template <typename Test>
  void StringLeaf(const rules::FieldRef& ref, const uint64_t* domain, uint64_t* t, uint64_t* f, Test test) const {
    if (ref.kind == rules::FieldRef::Kind::kBuiltin) {
      const StringColumn& column = *f_.StringField(ref.builtin());
      std::vector<Truth> pass(column.dictionary.size(), kU);
      for (uint32_t code = 1; code < pass.size(); ++code) pass[code] = test(column.dictionary.value(code)) ? kT : kF;
      column.codes.Visit([&](const auto& codes) {
        Run(domain, t, f, [&](CustomerNo c) { return c < codes.size() ? pass[codes[c]] : kU; });
      });
      return;
    }
    Run(domain, t, f, [&](CustomerNo c) {
      const Value v = f_.Field(c, ref);
      if (v.kind != Value::Kind::kString) return kU;
      return test(v.string) ? kT : kF;
    });
  }

  const rules::Rule& rule_;
  const Features& f_;
  const Memberships* m_;
  const absl::Time now_;
  const int64_t now_seconds_;
  const CustomerNo first_;
  const size_t words_;
};

void Columnar::Junction(bool is_or, absl::Span<const int32_t> kids, const uint64_t* domain, uint64_t* t,
                        uint64_t* f) const {
  // &&: false where any operand is false, true where every operand is true, unknown otherwise;
  // || the same with true and false exchanged. An operand that decides (false for &&, true for
  // ||) is "decisive", the other value "agreeing".
  uint64_t* decisive = is_or ? t : f;
  uint64_t* agreeing = is_or ? f : t;
  Words agreed(domain, domain + words_);  // every operand so far agreed
  Words decided;                          // an operand so far decided
  // Each operand is decided only where the result is still open: where no operand has decided
  // yet, or, when only the agreeing result is wanted, where every operand so far agreed.
  Words open;
  if (decisive != nullptr) {
    decided.assign(words_, 0);
    open.assign(domain, domain + words_);
  }
  Words kid_agreeing(words_), kid_decisive(decisive != nullptr ? words_ : 0);
  for (int32_t k : kids) {
    const uint64_t* where = decisive != nullptr ? open.data() : agreed.data();
    uint64_t* kd = decisive != nullptr ? kid_decisive.data() : nullptr;
    if (is_or) {
      Decide(k, where, kd, kid_agreeing.data());
    } else {
      Decide(k, where, kid_agreeing.data(), kd);
    }
    for (size_t w = 0; w < words_; ++w) agreed[w] &= kid_agreeing[w];
    if (decisive != nullptr) {
      for (size_t w = 0; w < words_; ++w) {
        decided[w] |= kid_decisive[w];
        open[w] &= ~kid_decisive[w];
      }
    }
  }
  for (size_t w = 0; w < words_; ++w) {
    if (decisive != nullptr) decisive[w] = decided[w];
    if (agreeing != nullptr) agreeing[w] = agreed[w];
  }
}

void Columnar::Leaf(int32_t index, const uint64_t* domain, uint64_t* t, uint64_t* f) const {
  const Node& n = rule_.node(index);
  const auto kids = rule_.children(n);
  switch (n.op) {
    case Op::kField: {  // a bool field
      const rules::FieldRef& ref = rule_.field(n.aux);
      if (ref.kind == rules::FieldRef::Kind::kConsent && ref.id >= 1 && ref.id <= 6 && ref.purpose >= 1 &&
          ref.purpose <= 4) {
        const MappedVector<uint32_t>& bits = f_.consents().values();
        const uint32_t bit = 1u << ((ref.id - 1) * 4 + (ref.purpose - 1));
        Run(domain, t, f, [&](CustomerNo c) { return c < bits.size() && (bits[c] & bit) != 0 ? kT : kF; });
        return;
      }
      Run(domain, t, f, [&](CustomerNo c) {
        const Value v = f_.Field(c, ref);
        if (v.kind != Value::Kind::kBool) return kU;
        return v.boolean ? kT : kF;
      });
      return;
    }
    case Op::kSegment:
      Run(domain, t, f, [&](CustomerNo c) { return m_->Contains(n.aux, c) ? kT : kF; });
      return;
    case Op::kInField: {
      const Roaring* members = f_.Interest(rule_.string(rule_.node(kids[0]).aux));
      Run(domain, t, f, [&](CustomerNo c) { return members != nullptr && members->contains(c) ? kT : kF; });
      return;
    }
    case Op::kInList: {
      const Node& field = rule_.node(kids[0]);
      const rules::FieldRef& ref = rule_.field(field.aux);
      const int32_t set_index = rule_.node(kids[1]).aux;
      if (field.type == rules::Type::kString) {
        const auto& strings = rule_.string_set(set_index);
        StringLeaf(ref, domain, t, f, [&](absl::string_view s) { return strings.contains(s); });
        return;
      }
      const std::vector<double>& numbers = rule_.number_set(set_index);
      Run(domain, t, f, [&](CustomerNo c) {
        const Value v = f_.Field(c, ref);
        if (v.kind != Value::Kind::kNumber || std::isnan(v.number)) return kU;
        return std::binary_search(numbers.begin(), numbers.end(), v.number) ? kT : kF;
      });
      return;
    }
    case Op::kStartsWith:
    case Op::kEndsWith:
    case Op::kInString: {
      // field.startsWith("x"), field.endsWith("x"), "x" in field / field.contains("x").
      const bool field_first = n.op != Op::kInString;
      const Node& field = rule_.node(kids[field_first ? 0 : 1]);
      const std::string& text = rule_.string(rule_.node(kids[field_first ? 1 : 0]).aux);
      StringLeaf(rule_.field(field.aux), domain, t, f, [&](absl::string_view s) {
        return n.op == Op::kStartsWith ? absl::StartsWith(s, text)
               : n.op == Op::kEndsWith ? absl::EndsWith(s, text)
                                       : absl::StrContains(s, text);
      });
      return;
    }
    default:
      break;
  }
  // A comparison with a literal.
  int32_t other = kids[0], lit_index = kids[1];
  Op op = n.op;
  if (IsLiteral(rule_.node(other))) {
    std::swap(other, lit_index);
    op = Mirror(op);
  }
  const Node& lit = rule_.node(lit_index);
  const Node& x = rule_.node(other);
  switch (x.op) {
    case Op::kField: {
      const rules::FieldRef& ref = rule_.field(x.aux);
      const bool builtin = ref.kind == rules::FieldRef::Kind::kBuiltin;
      if (x.type == rules::Type::kString && lit.op == Op::kString) {
        const absl::string_view want = rule_.string(lit.aux);
        StringLeaf(ref, domain, t, f, [&](absl::string_view s) { return Holds(op, Order(s, want)); });
        return;
      }
      if (builtin && lit.op == Op::kNumber && ref.builtin() == rules::Field::kOrdersCount) {
        const MappedVector<uint32_t>& counts = f_.order_counts().values();
        Run(domain, t, f, [&](CustomerNo c) {
          const double v = c < counts.size() ? counts[c] : 0;
          return Holds(op, Order(v, lit.number)) ? kT : kF;
        });
        return;
      }
      if (builtin && lit.op == Op::kNumber && ref.builtin() == rules::Field::kOrdersTotal) {
        const MappedVector<int64_t>& totals = f_.order_totals().values();
        Run(domain, t, f, [&](CustomerNo c) {
          const double v = c < totals.size() ? static_cast<double>(totals[c]) : 0;
          return Holds(op, Order(v, lit.number)) ? kT : kF;
        });
        return;
      }
      if (x.type == rules::Type::kTime && lit.op == Op::kTime && builtin) {
        const TimeColumn& times = *f_.TimeField(ref.builtin());
        Run(domain, t, f, [&](CustomerNo c) {
          const int64_t s = times.Get(c);
          if (s == kNoTime) return kU;
          return Holds(op, Order(absl::FromUnixSeconds(s), lit.time)) ? kT : kF;
        });
        return;
      }
      Run(domain, t, f, [&](CustomerNo c) { return CompareWithLiteral(f_.Field(c, ref), op, lit, rule_); });
      return;
    }
    case Op::kDaysSince: {
      // Whole days from t to now, rounded down: with t in whole seconds, floor((now - t) / 1 day)
      // is floor((floor(now) - t) / 1 day).
      const rules::FieldRef& ref = rule_.field(rule_.node(rule_.children(x)[0]).aux);
      auto days_since = [&](int64_t s) {
        return Holds(op, Order(static_cast<double>(FloorDiv(now_seconds_ - s, 86400)), lit.number)) ? kT : kF;
      };
      if (ref.kind == rules::FieldRef::Kind::kBuiltin) {
        const TimeColumn& times = *f_.TimeField(ref.builtin());
        Run(domain, t, f, [&](CustomerNo c) {
          const int64_t s = times.Get(c);
          return s == kNoTime ? kU : days_since(s);
        });
        return;
      }
      Run(domain, t, f, [&](CustomerNo c) {
        const Value v = f_.Field(c, ref);
        return v.kind != Value::Kind::kTime ? kU : days_since(absl::ToUnixSeconds(v.time));
      });
      return;
    }
    default: {  // an event count
      const Features::DayRange days = Features::WindowDays(x.duration, now_);
      ScanAhead(
          domain, words_, first_,
          [&](CustomerNo c) {
            const int64_t count = std::clamp<int64_t>(f_.EventCountInDays(c, x.aux, days), 0, int64_t{1} << 53);
            return Holds(op, Order(static_cast<double>(count), lit.number)) ? kT : kF;
          },
          [&](CustomerNo c) { f_.PrefetchEvents(c); }, t, f);
      return;
    }
  }
}

// Whether the node's value can change as time passes (as rules::Dependencies::time_relative).
bool DependsOnTime(const rules::Rule& rule, int32_t index) {
  const Node& n = rule.node(index);
  if (n.op == Op::kNow || n.op == Op::kDaysSince) return true;
  if (n.op == Op::kEventCount && n.duration != absl::InfiniteDuration()) return true;
  for (int32_t k : rule.children(n)) {
    if (DependsOnTime(rule, k)) return true;
  }
  return false;
}

// Evaluates the rule over words [first_word, first_word + words) of the live customers; with
// `timeless_only`, only to the customers TimeCandidates describes.
struct RangeResult {
  Words members;
  int64_t evaluated_one_by_one = 0;
};
RangeResult EvaluateRange(const rules::Rule& rule, const Features& features, const Memberships* memberships,
                          absl::Time now, size_t first_word, size_t words, bool timeless_only) {
  RangeResult out;
  const MappedVector<uint64_t>& live = features.live_words();
  out.members.assign(words, 0);
  for (size_t w = 0; w < words && first_word + w < live.size(); ++w) out.members[w] = live[first_word + w];

  const Node& root = rule.node(rule.root());
  std::vector<int32_t> conjuncts;
  if (root.op == Op::kAnd) {
    const auto kids = rule.children(root);
    conjuncts.assign(kids.begin(), kids.end());
  } else {
    conjuncts.push_back(rule.root());
  }
  Columnar columnar(rule, features, memberships, now, first_word, words);
  // Cheap columns first, each narrowing the customers the next is decided for; the order does
  // not change the answer.
  std::vector<std::pair<int, int32_t>> by_cost;
  for (int32_t c : conjuncts) by_cost.emplace_back(columnar.Cost(c), c);
  std::stable_sort(by_cost.begin(), by_cost.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  bool exact = true;
  for (const auto& [cost, c] : by_cost) {
    if (cost >= Columnar::kUnsupported) {
      exact = false;
      continue;
    }
    if (timeless_only && DependsOnTime(rule, c)) {
      columnar.NarrowToLasting(c, out.members.data());
      continue;
    }
    columnar.Decide(c, out.members.data(), out.members.data(), nullptr);
  }
  if (!exact && !timeless_only) {
    const auto first = static_cast<CustomerNo>(first_word * 64);
    for (size_t w = 0; w < words; ++w) {
      for (uint64_t rest = out.members[w]; rest != 0; rest &= rest - 1) {
        const int b = __builtin_ctzll(rest);
        const CustomerNo n = first + static_cast<CustomerNo>(w * 64 + b);
        ++out.evaluated_one_by_one;
        if (!rules::Matches(rule, CustomerFeatures(features, n, memberships), now)) {
          out.members[w] &= ~(uint64_t{1} << b);
        }
      }
    }
  }
  return out;
}

// Appends the customers of `words` (starting at a multiple of 65,536 customers, after
// everything `out` holds) to `out`, container by container: a 65,536-customer block of more
// than 4,096 members is copied as a bitset, a smaller one listed as an array. (CRoaring 0.2's
// container API; adding the members one by one cost ~4 ns each.)
void AppendTo(Roaring& out, const Words& words, size_t first_word) {
  constexpr size_t kBlockWords = 65536 / 64;
  for (size_t start = 0; start < words.size(); start += kBlockWords) {
    const size_t end = std::min(words.size(), start + kBlockWords);
    int32_t count = 0;
    for (size_t w = start; w < end; ++w) count += __builtin_popcountll(words[w]);
    if (count == 0) continue;
    const auto key = static_cast<uint16_t>((first_word + start) / kBlockWords);
    if (count > 4096) {
      bitset_container_t* c = bitset_container_create();
      if (c == nullptr) throw std::bad_alloc();
      std::copy(words.begin() + static_cast<ptrdiff_t>(start), words.begin() + static_cast<ptrdiff_t>(end), c->array);
      c->cardinality = count;
      ra_append(&out.roaring.high_low_container, key, c, BITSET_CONTAINER_TYPE_CODE);
    } else {
      array_container_t* c = array_container_create_given_capacity(count);
      if (c == nullptr) throw std::bad_alloc();
      for (size_t w = start; w < end; ++w) {
        for (uint64_t rest = words[w]; rest != 0; rest &= rest - 1) {
          c->array[c->cardinality++] = static_cast<uint16_t>((w - start) * 64 + __builtin_ctzll(rest));
        }
      }
      ra_append(&out.roaring.high_low_container, key, c, ARRAY_CONTAINER_TYPE_CODE);
    }
  }
}

// EvaluateRange over the words of every customer, on `threads` threads in ranges of whole
// 65,536-customer blocks (so that their members append in order).
PopulationResult Evaluate(const rules::Rule& rule, const Features& features, const Memberships* memberships,
                          absl::Time now, PopulationOptions options, bool timeless_only) {
  const size_t words = (size_t{features.end()} + 63) / 64;
  const size_t blocks = (words + 1023) / 1024;
  const size_t threads =
      std::clamp<size_t>(static_cast<size_t>(std::max(options.threads, 1)), 1, std::max<size_t>(blocks, 1));
  std::vector<RangeResult> parts(threads);
  std::vector<size_t> starts(threads + 1);
  for (size_t i = 0; i <= threads; ++i) starts[i] = std::min(words, blocks * i / threads * 1024);
  auto run = [&](size_t i) {
    parts[i] = EvaluateRange(rule, features, memberships, now, starts[i], starts[i + 1] - starts[i], timeless_only);
  };
  if (threads == 1) {
    run(0);
  } else {
    std::vector<std::thread> pool;
    for (size_t i = 1; i < threads; ++i) pool.emplace_back(run, i);
    run(0);
    for (std::thread& t : pool) t.join();
  }
  PopulationResult out;
  for (size_t i = 0; i < threads; ++i) {
    AppendTo(out.members, parts[i].members, starts[i]);
    out.evaluated_one_by_one += parts[i].evaluated_one_by_one;
  }
  out.members.runOptimize();
  return out;
}

}  // namespace

PopulationResult EvaluatePopulation(const rules::Rule& rule, const Features& features, const Memberships* memberships,
                                    absl::Time now, PopulationOptions options) {
  return Evaluate(rule, features, memberships, now, options, /*timeless_only=*/false);
}

Roaring TimeCandidates(const rules::Rule& rule, const Features& features, const Memberships* memberships,
                       absl::Time now, PopulationOptions options) {
  return Evaluate(rule, features, memberships, now, options, /*timeless_only=*/true).members;
}

}  // namespace ecrm::segmentation

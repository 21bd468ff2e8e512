// One evaluator, instantiated twice: plain (short-circuit, nothing but the value) and
// tracking (every operand evaluated, with the instant until which its value holds).
#include "ecrm/rules/evaluator.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/match.h"

namespace ecrm::rules {
namespace {

constexpr absl::Time kNever = absl::InfiniteFuture();

bool Finite(absl::Time t) { return t != absl::InfiniteFuture() && t != absl::InfinitePast(); }

// An operand's value. A bool's kMissing is Truth::kUnknown.
struct R {
  enum class K : uint8_t { kMissing, kBool, kNumber, kString, kTime, kDuration };
  K kind = K::kMissing;
  bool b = false;
  // Tracking only. step: 1 = days_since (t holds the time it counts from), 2 = an event count
  // whose next change is not computed yet. linear: a time that moves with now (now ± d).
  uint8_t step = 0;
  bool linear = false;
  double n = 0;
  absl::string_view s;
  absl::Time t;
  absl::Duration d;
  absl::Time next = kNever;  // tracking only: the value holds on [now, next)
};

R Missing(absl::Time next = kNever) {
  R r;
  r.next = next;
  return r;
}
R BoolR(bool b) {
  R r;
  r.kind = R::K::kBool;
  r.b = b;
  return r;
}
R NumberR(double n) {
  if (std::isnan(n)) return Missing();
  R r;
  r.kind = R::K::kNumber;
  r.n = n;
  return r;
}
R StringR(absl::string_view s) {
  R r;
  r.kind = R::K::kString;
  r.s = s;
  return r;
}
R TimeR(absl::Time t) {
  if (!Finite(t)) return Missing();
  R r;
  r.kind = R::K::kTime;
  r.t = t;
  return r;
}

// -1, 0 or 1; both present and of one kind.
int Order(const R& a, const R& b) {
  switch (a.kind) {
    case R::K::kNumber:
      return a.n < b.n ? -1 : a.n > b.n ? 1 : 0;
    case R::K::kString: {
      const int c = a.s.compare(b.s);
      return c < 0 ? -1 : c > 0 ? 1 : 0;
    }
    case R::K::kTime:
      return a.t < b.t ? -1 : a.t > b.t ? 1 : 0;
    case R::K::kBool:
      return static_cast<int>(a.b) - static_cast<int>(b.b);
    default:
      return 0;
  }
}

int Order(double a, double b) { return a < b ? -1 : a > b ? 1 : 0; }

template <bool kTrack>
class Evaluator {
 public:
  Evaluator(const Rule& rule, const CustomerView& view, absl::Time now) : rule_(rule), view_(view), now_(now) {}

  R Run(int32_t index) {
    const Node& n = rule_.node(index);
    const int32_t* kids = rule_.children(n).data();
    switch (n.op) {
      case Op::kBool:
        return BoolR(n.boolean);
      case Op::kNumber:
        return NumberR(n.number);
      case Op::kString:
        return StringR(rule_.string(n.aux));
      case Op::kTime:
        return TimeR(n.time);
      case Op::kDuration: {
        R r;
        r.kind = R::K::kDuration;
        r.d = n.duration;
        return r;
      }
      case Op::kField:
        return FieldValue(n);
      case Op::kNow: {
        R r = TimeR(now_);
        r.linear = true;
        return r;
      }
      case Op::kDaysSince:
        return DaysSince(kids[0]);
      case Op::kEventCount:
        return EventCount(n, /*with_next=*/true);
      case Op::kEventLastAt: {
        const std::optional<absl::Time> t = view_.LastEventAt(n.aux);
        return t ? TimeR(*t) : Missing();
      }
      case Op::kSegment:
        return BoolR(view_.InSegment(n.aux));
      case Op::kHas: {
        if (rule_.node(kids[0]).op == Op::kField &&
            rule_.field(rule_.node(kids[0]).aux).kind == FieldRef::Kind::kAttribute) {
          // Present with a value of any type: an attribute typed by the rule's use of it
          // (AttributeInfo::inferred) is present even when its value's type is another.
          const Value v = view_.Field(rule_.field(rule_.node(kids[0]).aux));
          return BoolR(v.kind != Value::Kind::kMissing && !(v.kind == Value::Kind::kNumber && std::isnan(v.number)) &&
                       !(v.kind == Value::Kind::kTime && !Finite(v.time)));
        }
        const R v = Run(kids[0]);
        R r = BoolR(v.kind != R::K::kMissing);
        r.next = v.next;
        return r;
      }
      case Op::kNot: {
        R r = Run(kids[0]);
        r.b = !r.b;
        return r;
      }
      case Op::kAnd:
        return Junction(n, kids, false);
      case Op::kOr:
        return Junction(n, kids, true);
      case Op::kEq:
      case Op::kNe:
      case Op::kLt:
      case Op::kLe:
      case Op::kGt:
      case Op::kGe:
        return Compare(n.op, kids[0], kids[1]);
      case Op::kInList: {
        const R v = Run(kids[0]);
        if (v.kind == R::K::kMissing) return Missing(v.next);
        const int32_t set = rule_.node(kids[1]).aux;
        bool found;
        if (v.kind == R::K::kString) {
          found = rule_.string_set(set).contains(v.s);
        } else {
          const std::vector<double>& numbers = rule_.number_set(set);
          const double x = v.kind == R::K::kBool ? (v.b ? 1 : 0) : v.n;
          found = std::binary_search(numbers.begin(), numbers.end(), x);
        }
        R r = BoolR(found);
        r.next = v.next;
        return r;
      }
      case Op::kInField: {
        const R v = Run(kids[0]);
        if (v.kind == R::K::kMissing) return Missing(v.next);
        R r = BoolR(view_.ListContains(rule_.field(rule_.node(kids[1]).aux), v.s));
        r.next = v.next;
        return r;
      }
      case Op::kInString:
      case Op::kStartsWith:
      case Op::kEndsWith: {
        const R a = Run(kids[0]);
        const R b = Run(kids[1]);
        if (a.kind == R::K::kMissing || b.kind == R::K::kMissing) return Missing(std::min(a.next, b.next));
        R r = BoolR(n.op == Op::kInString     ? absl::StrContains(b.s, a.s)
                    : n.op == Op::kStartsWith ? absl::StartsWith(a.s, b.s)
                                              : absl::EndsWith(a.s, b.s));
        r.next = std::min(a.next, b.next);
        return r;
      }
      case Op::kNeg: {
        const R a = Run(kids[0]);
        if (a.kind == R::K::kMissing) return a;
        R r = NumberR(-a.n);
        r.next = a.next;
        return r;
      }
      case Op::kAdd:
      case Op::kSub:
      case Op::kMul:
      case Op::kDiv:
        return Arithmetic(n.op, kids[0], kids[1]);
      default:
        return Missing();  // kList is read by its `in`; parser-only ops never reach here
    }
  }

  absl::Time now() const { return now_; }

 private:
  R FieldValue(const Node& n) {
    const Value v = view_.Field(rule_.field(n.aux));
    switch (n.type) {
      case Type::kBool:
        return v.kind == Value::Kind::kBool ? BoolR(v.boolean) : Missing();
      case Type::kNumber:
        return v.kind == Value::Kind::kNumber ? NumberR(v.number) : Missing();
      case Type::kString:
        return v.kind == Value::Kind::kString ? StringR(v.string) : Missing();
      case Type::kTime:
        return v.kind == Value::Kind::kTime ? TimeR(v.time) : Missing();
      default:
        return Missing();
    }
  }

  R DaysSince(int32_t child) {
    const R t = Run(child);
    if (t.kind == R::K::kMissing) return Missing(t.next);
    const absl::Duration since = now_ - t.t;
    if (since == absl::InfiniteDuration() || since == -absl::InfiniteDuration()) return Missing(t.next);
    absl::Duration rem;
    int64_t days = absl::IDivDuration(since, absl::Hours(24), &rem);
    if (rem < absl::ZeroDuration()) --days;  // round down, also before t
    R r = NumberR(static_cast<double>(days));
    if constexpr (kTrack) {
      if (!t.linear) {  // days_since(now - 3d) is constant
        r.step = 1;
        r.t = t.t;
        r.next = std::min(t.next, t.t + absl::Hours(24) * (days + 1));
      }
    }
    return r;
  }

  R EventCount(const Node& n, bool with_next) {
    // Within [0, 2^53], a count is exact as a double and converts back safely.
    const int64_t count = std::clamp<int64_t>(view_.EventCount(n.aux, n.duration, now_), 0, int64_t{1} << 53);
    R r = NumberR(static_cast<double>(count));
    if constexpr (kTrack) {
      if (n.duration != absl::InfiniteDuration() && count > 0) {
        if (with_next) {
          r.next = AtMostAt(n, count - 1);
        } else {
          r.step = 2;
        }
      }
    }
    return r;
  }

  absl::Time AtMostAt(const Node& n, int64_t at_most) {
    return std::max(now_, view_.EventCountAtMostAt(n.aux, n.duration, now_, at_most));
  }

  R Junction(const Node& n, const int32_t* kids, bool is_or) {
    // Kleene: for && a false operand decides, for || a true one; unknown otherwise wins.
    const bool decisive = is_or;
    bool unknown = false;
    bool decided = false;
    absl::Time min_next = kNever;
    absl::Time max_decisive = absl::InfinitePast();
    for (int32_t i = 0; i < n.child_count; ++i) {
      const R r = Run(kids[i]);
      if constexpr (!kTrack) {
        if (r.kind == R::K::kMissing) {
          unknown = true;
        } else if (r.b == decisive) {
          return BoolR(decisive);
        }
      } else {
        min_next = std::min(min_next, r.next);
        if (r.kind == R::K::kMissing) {
          unknown = true;
        } else if (r.b == decisive) {
          // The result holds until every decisive operand may have changed.
          if (r.next == kNever) return BoolR(decisive);
          decided = true;
          max_decisive = std::max(max_decisive, r.next);
        }
      }
    }
    if (decided) {
      R r = BoolR(decisive);
      r.next = max_decisive;
      return r;
    }
    R r = unknown ? Missing() : BoolR(!decisive);
    r.next = min_next;
    return r;
  }

  R Compare(Op op, int32_t left, int32_t right) {
    const R a = Operand(left);
    const R b = Operand(right);
    if (a.kind == R::K::kMissing || b.kind == R::K::kMissing) {
      R r = Missing();
      if constexpr (kTrack) r.next = std::min(Settle(a, left), Settle(b, right));
      return r;
    }
    R r = BoolR(Holds(op, Order(a, b)));
    if constexpr (kTrack) r.next = CompareNext(op, a, b, left, right, r.b);
    return r;
  }

  // A comparison's operand; an event count leaves its next change to CompareNext.
  R Operand(int32_t index) {
    const Node& n = rule_.node(index);
    if (n.op == Op::kEventCount) return EventCount(n, /*with_next=*/false);
    return Run(index);
  }
  absl::Time Settle(const R& r, int32_t index) {
    if (r.step == 2) return AtMostAt(rule_.node(index), static_cast<int64_t>(r.n) - 1);
    return r.next;
  }

  absl::Time CompareNext(Op op, const R& a, const R& b, int32_t left, int32_t right, bool holds) {
    if (a.kind == R::K::kTime && (a.linear || b.linear)) {
      if (a.linear && b.linear) return std::min(a.next, b.next);  // both move with now
      const R& moving = a.linear ? a : b;
      const R& fixed = a.linear ? b : a;
      // moving = now + o meets fixed at now + (fixed - moving); after that the order stays.
      const absl::Time meet = now_ + (fixed.t - moving.t);
      if (meet > now_) return std::min(meet, fixed.next);
      const int after = a.linear ? 1 : -1;                   // the order at every instant after now
      return Holds(op, after) == holds ? fixed.next : now_;  // >= and == hold only at the meeting instant
    }
    if (a.step != 0 && Settle(b, right) == kNever) return StepNext(op, a, b.n, left, holds);
    if (b.step != 0 && Settle(a, left) == kNever) return StepNext(Mirror(op), b, a.n, right, holds);
    return std::min(Settle(a, left), Settle(b, right));
  }

  // `step op c` where step only moves in whole steps (days_since up, an event count down):
  // the value can only change where the step crosses c, i.e. at ceil(c) or floor(c) + 1 (up),
  // floor(c) or ceil(c) - 1 (down).
  absl::Time StepNext(Op op, const R& step, double c, int32_t index, bool holds) {
    if (!std::isfinite(c) || std::abs(c) > 1e12) return kNever;
    const double v = step.n;
    if (step.step == 1) {
      double candidates[2] = {std::ceil(c), std::floor(c) + 1};
      std::sort(std::begin(candidates), std::end(candidates));
      for (double k : candidates) {
        if (k > v && Holds(op, Order(k, c)) != holds) return step.t + absl::Hours(24) * static_cast<int64_t>(k);
      }
      return kNever;
    }
    double candidates[2] = {std::floor(c), std::ceil(c) - 1};
    std::sort(std::begin(candidates), std::end(candidates), std::greater<>());
    for (double k : candidates) {
      if (k < v && k >= 0 && Holds(op, Order(k, c)) != holds) {
        return AtMostAt(rule_.node(index), static_cast<int64_t>(k));
      }
    }
    return kNever;
  }

  R Arithmetic(Op op, int32_t left, int32_t right) {
    const R a = Run(left);
    const R b = Run(right);
    const absl::Time next = std::min(a.next, b.next);
    if (a.kind == R::K::kMissing || b.kind == R::K::kMissing) return Missing(next);
    R r;
    if (a.kind == R::K::kNumber) {
      switch (op) {
        case Op::kAdd:
          r = NumberR(a.n + b.n);
          break;
        case Op::kSub:
          r = NumberR(a.n - b.n);
          break;
        case Op::kMul:
          r = NumberR(a.n * b.n);
          break;
        default:
          r = b.n == 0 ? Missing() : NumberR(a.n / b.n);
          break;
      }
    } else if (a.kind == R::K::kTime) {
      r = TimeR(op == Op::kAdd ? a.t + b.d : a.t - b.d);
      r.linear = a.linear && r.kind == R::K::kTime;
    } else {  // duration + time
      r = TimeR(b.t + a.d);
      r.linear = b.linear && r.kind == R::K::kTime;
    }
    r.next = next;
    return r;
  }

  const Rule& rule_;
  const CustomerView& view_;
  const absl::Time now_;
};

Truth ToTruth(const R& r) {
  if (r.kind != R::K::kBool) return Truth::kUnknown;
  return r.b ? Truth::kTrue : Truth::kFalse;
}

}  // namespace

Truth Evaluate(const Rule& rule, const CustomerView& customer, absl::Time now) {
  return ToTruth(Evaluator<false>(rule, customer, now).Run(rule.root()));
}

Evaluation EvaluateWithNextChange(const Rule& rule, const CustomerView& customer, absl::Time now) {
  const R r = Evaluator<true>(rule, customer, now).Run(rule.root());
  return {ToTruth(r), std::max(r.next, now)};
}

}  // namespace ecrm::rules

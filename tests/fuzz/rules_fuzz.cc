// libFuzzer target for the rule language (scripts/fuzz-rules.sh builds and runs it). For any
// input: Compile never crashes and fails only with INVALID_ARGUMENT "line:column: …"; a rule
// that compiles prints (Format) to text that compiles to the same print; both evaluators
// agree, and the value holds at instants before the next change they report.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "ecrm/rules/evaluator.h"
#include "ecrm/rules/rule.h"

namespace {

using namespace ecrm::rules;  // NOLINT

const absl::Time kNow = absl::FromUnixSeconds(1772366400);  // 2026-03-01T12:00:00Z
constexpr absl::Duration kDay = absl::Hours(24);

[[noreturn]] void Fail(const char* what, absl::string_view rule, absl::string_view detail) {
  std::fprintf(stderr, "%s\nrule: %.*s\ndetail: %.*s\n", what, static_cast<int>(rule.size()), rule.data(),
               static_cast<int>(detail.size()), detail.data());
  std::abort();
}

SimpleSchema* MakeSchema() {
  auto* s = new SimpleSchema();
  s->AddAttribute("tier", Type::kString);
  s->AddAttribute("vip", Type::kBool);
  s->AddAttribute("score", Type::kNumber);
  s->AddAttribute("signup", Type::kTime);
  s->AddAttribute("2fa", Type::kBool);
  s->AddSegment("vip");
  s->AddSegment("lapsed");
  for (const char* e : {"page_view", "purchase", "login"}) s->EventTypeId(e);
  return s;
}

// One customer with a value for about two thirds of the fields; events of three types.
class Customer : public CustomerView {
 public:
  explicit Customer(const SimpleSchema& schema) : types_(kFieldCount, Type::kString) {
    for (const std::string& name : BuiltinFieldNames()) {
      const std::optional<BuiltinField> b = FindBuiltinField(name);
      if (b && b->ref.kind == FieldRef::Kind::kBuiltin) types_[b->ref.id] = b->type;
    }
    const int32_t pv = schema.EventTypeId("page_view");
    const int32_t purchase = schema.EventTypeId("purchase");
    for (int i = 0; i < 8; ++i) events_[pv].push_back(kNow - (40 - 5 * i) * kDay - absl::Hours(i));
    events_[purchase] = {kNow - 95 * kDay, kNow - 3 * kDay};
  }
  Value Field(const FieldRef& f) const override {
    switch (f.kind) {
      case FieldRef::Kind::kConsent:
        return Value::Bool((f.id + f.purpose) % 2 == 0);
      case FieldRef::Kind::kAttribute:
        switch (f.id) {
          case 0:
            return Value::String("gold");
          case 1:
            return Value::Bool(true);
          case 2:
            return Value::Number(7.5);
          case 3:
            return Value::Time(kNow - 30 * kDay);
          default:
            return Value::Missing();
        }
      case FieldRef::Kind::kBuiltin:
        break;
    }
    const int id = f.id;
    if (id % 3 == 2) return Value::Missing();
    switch (types_[id]) {
      case Type::kNumber:
        return Value::Number(id * 1.5);
      case Type::kTime:
        return Value::Time(kNow - id * 7 * kDay - absl::Minutes(id));
      case Type::kBool:
        return Value::Bool(true);
      default:
        return Value::String(id % 2 ? "GB" : "London");
    }
  }
  bool ListContains(const FieldRef&, absl::string_view item) const override {
    return item == "cycling" || item == "running";
  }
  int64_t EventCount(int32_t type, absl::Duration window, absl::Time now) const override {
    int64_t n = 0;
    for (absl::Time t : Events(type)) n += t <= now && (window == absl::InfiniteDuration() || t > now - window);
    return n;
  }
  std::optional<absl::Time> LastEventAt(int32_t type) const override {
    const std::vector<absl::Time>& e = Events(type);
    if (e.empty()) return std::nullopt;
    return e.back();
  }
  bool InSegment(int32_t segment) const override { return segment == 0; }
  absl::Time EventCountAtMostAt(int32_t type, absl::Duration window, absl::Time now, int64_t at_most) const override {
    if (window == absl::InfiniteDuration()) return absl::InfiniteFuture();
    std::vector<absl::Time> in;
    for (absl::Time t : Events(type)) {
      if (t <= now && t > now - window) in.push_back(t);
    }
    const int64_t count = static_cast<int64_t>(in.size());
    if (at_most < 0) return absl::InfiniteFuture();
    if (count <= at_most) return now;
    return in[count - at_most - 1] + window;
  }

 private:
  const std::vector<absl::Time>& Events(int32_t type) const {
    static const std::vector<absl::Time> kNone;
    auto it = events_.find(type);
    return it == events_.end() ? kNone : it->second;
  }
  std::vector<Type> types_;
  std::map<int32_t, std::vector<absl::Time>> events_;
};

// A view at the edges: huge counts, times far from now, NaN and infinities, empty strings.
class Extreme : public CustomerView {
 public:
  Value Field(const FieldRef& f) const override {
    switch ((f.id + f.purpose + static_cast<int>(f.kind)) % 6) {
      case 0:
        return Value::Number(std::numeric_limits<double>::infinity());
      case 1:
        return Value::Number(std::nan(""));
      case 2:
        return Value::Time(absl::FromUnixSeconds(int64_t{-1} << 55));
      case 3:
        return Value::Time(absl::FromUnixSeconds(int64_t{1} << 55));
      case 4:
        return Value::String("");
      default:
        return Value::Bool(true);
    }
  }
  bool ListContains(const FieldRef&, absl::string_view item) const override { return item.empty(); }
  int64_t EventCount(int32_t, absl::Duration, absl::Time) const override { return std::numeric_limits<int64_t>::max(); }
  std::optional<absl::Time> LastEventAt(int32_t type) const override {
    return absl::FromUnixSeconds(type % 2 ? int64_t{1} << 60 : -(int64_t{1} << 60));
  }
  bool InSegment(int32_t) const override { return true; }
  absl::Time EventCountAtMostAt(int32_t, absl::Duration, absl::Time, int64_t) const override {
    return absl::InfiniteFuture();  // the counts never fall
  }
};

bool WellFormed(absl::string_view message) {
  // "line:column: " then a message.
  size_t i = 0;
  auto digits = [&] {
    const size_t start = i;
    while (i < message.size() && message[i] >= '0' && message[i] <= '9') ++i;
    return i > start;
  };
  if (!digits() || i >= message.size() || message[i++] != ':') return false;
  if (!digits() || i + 1 >= message.size() || message[i] != ':' || message[i + 1] != ' ') return false;
  return message.size() > i + 2;
}

// Both evaluators agree, the printed rule evaluates the same, and the value holds everywhere
// in [now, next change) (probed at a few instants).
void CheckEvaluation(absl::string_view text, const std::string& printed, const Rule& rule, const Rule& again,
                     const CustomerView& customer) {
  const Truth truth = Evaluate(rule, customer, kNow);
  if (Evaluate(again, customer, kNow) != truth) Fail("the printed rule evaluates differently", text, printed);
  const Evaluation tracked = EvaluateWithNextChange(rule, customer, kNow);
  if (tracked.truth != truth) Fail("the two evaluators disagree", text, printed);
  if (tracked.next_change < kNow) Fail("next change in the past", text, printed);
  if (tracked.next_change == kNow) return;
  const absl::Time last =
      tracked.next_change == absl::InfiniteFuture() ? kNow + 20000 * kDay : tracked.next_change - absl::Nanoseconds(1);
  for (absl::Time t : {last, kNow + (last - kNow) / 2, kNow + (last - kNow) / 7, kNow + absl::Nanoseconds(1)}) {
    if (t < kNow || t > last) continue;
    if (Evaluate(rule, customer, t) != truth) {
      Fail("the value changed before the next change", text,
           printed + "\nat " + absl::FormatTime(t) + ", next change " + absl::FormatTime(tracked.next_change));
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const SimpleSchema* schema = MakeSchema();
  static const Customer* customer = new Customer(*schema);
  static const Extreme* extreme = new Extreme();
  const absl::string_view text(reinterpret_cast<const char*>(data), size);
  const absl::StatusOr<Rule> rule = Compile(text, *schema);
  if (!rule.ok()) {
    if (rule.status().code() != absl::StatusCode::kInvalidArgument || !WellFormed(rule.status().message())) {
      Fail("malformed error", text, rule.status().ToString());
    }
    return 0;
  }
  const std::string printed = Format(*rule);
  const absl::StatusOr<Rule> again = Compile(printed, *schema);
  if (!again.ok()) Fail("the printed rule does not compile", text, again.status().ToString() + "\n" + printed);
  if (Format(*again) != printed) Fail("printing is not a fixed point", text, printed + "\n" + Format(*again));
  CheckEvaluation(text, printed, *rule, *again, *customer);
  CheckEvaluation(text, printed, *rule, *again, *extreme);
  return 0;
}

// The rule language: parsing (every construct, precedence), every error with its exact
// line:column message, limits, evaluation of each field kind with missing values, what a
// rule reads, the instant until which a value holds, and seeded property tests.
#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <cstdlib>
#include <map>
#include <new>
#include <random>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "ecrm/rules/evaluator.h"
#include "ecrm/rules/rule.h"

// Counts heap allocations while `g_counting` is set: evaluation must make none. Under
// AddressSanitizer (ECRM_SANITIZE=ON), which owns operator new, nothing is counted.
#if defined(__SANITIZE_ADDRESS__)
#define ECRM_COUNTS_ALLOCATIONS 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define ECRM_COUNTS_ALLOCATIONS 0
#endif
#endif
#ifndef ECRM_COUNTS_ALLOCATIONS
#define ECRM_COUNTS_ALLOCATIONS 1
#endif
namespace {
std::atomic<bool> g_counting{false};
std::atomic<long> g_allocations{0};
}  // namespace
#if ECRM_COUNTS_ALLOCATIONS
// GCC 12 takes the free() below for a mismatch with the replaced operator new.
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
void* operator new(std::size_t n) {
  if (g_counting.load(std::memory_order_relaxed)) g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
#endif

namespace {

using namespace ecrm::rules;  // NOLINT

const absl::Time kNow = absl::FromCivil(absl::CivilSecond(2026, 3, 1, 12, 0, 0), absl::UTCTimeZone());
constexpr absl::Duration kDay = absl::Hours(24);

SimpleSchema MakeSchema() {
  SimpleSchema s;
  s.AddAttribute("tier", Type::kString);
  s.AddAttribute("vip", Type::kBool);
  s.AddAttribute("score", Type::kNumber);
  s.AddAttribute("signup", Type::kTime);
  s.AddAttribute("2fa", Type::kBool);
  s.AddSegment("vip");
  s.AddSegment("lapsed");
  for (const char* e : {"page_view", "purchase", "login", "message_opened"}) s.EventTypeId(e);
  return s;
}

const SimpleSchema& TestSchema() {
  static const SimpleSchema* schema = new SimpleSchema(MakeSchema());
  return *schema;
}

Rule MustCompile(absl::string_view text, const Limits& limits = {}) {
  absl::StatusOr<Rule> rule = Compile(text, TestSchema(), limits);
  INFO(text);
  REQUIRE(rule.ok());
  return *std::move(rule);
}

std::string ErrorOf(absl::string_view text, const Limits& limits = {}) {
  absl::StatusOr<Rule> rule = Compile(text, TestSchema(), limits);
  if (rule.ok()) return "compiled: " + Format(*rule);
  CHECK(rule.status().code() == absl::StatusCode::kInvalidArgument);
  return std::string(rule.status().message());
}

std::string Canonical(absl::string_view text) { return Format(MustCompile(text)); }

// A customer held in maps; events as their times per type id.
class FakeCustomer : public CustomerView {
 public:
  FakeCustomer& Set(ecrm::rules::Field f, Value v) {
    builtin_[f] = v;
    return *this;
  }
  FakeCustomer& Consent(Channel c, Purpose p) {
    consents_.insert({static_cast<int>(c), static_cast<int>(p)});
    return *this;
  }
  FakeCustomer& Attribute(absl::string_view name, Value v) {
    attributes_[TestSchema().FindAttribute(name)->id] = v;
    return *this;
  }
  FakeCustomer& Interest(std::string s) {
    interests_.push_back(std::move(s));
    return *this;
  }
  FakeCustomer& Event(absl::string_view type, absl::Time at) {
    events_[TestSchema().EventTypeId(type)].push_back(at);
    std::sort(events_[TestSchema().EventTypeId(type)].begin(), events_[TestSchema().EventTypeId(type)].end());
    return *this;
  }
  FakeCustomer& Segment(absl::string_view name) {
    segments_.insert(*TestSchema().FindSegment(name));
    return *this;
  }

  Value Field(const FieldRef& f) const override {
    switch (f.kind) {
      case FieldRef::Kind::kBuiltin: {
        auto it = builtin_.find(f.builtin());
        return it == builtin_.end() ? Value::Missing() : it->second;
      }
      case FieldRef::Kind::kConsent:
        return Value::Bool(consents_.count({f.id, f.purpose}) > 0);
      case FieldRef::Kind::kAttribute: {
        auto it = attributes_.find(f.id);
        return it == attributes_.end() ? Value::Missing() : it->second;
      }
    }
    return Value::Missing();
  }
  bool ListContains(const FieldRef&, absl::string_view item) const override {
    return std::find(interests_.begin(), interests_.end(), item) != interests_.end();
  }
  int64_t EventCount(int32_t type, absl::Duration window, absl::Time now) const override {
    ++event_count_calls;
    int64_t n = 0;
    auto it = events_.find(type);
    if (it == events_.end()) return 0;
    for (absl::Time t : it->second) {
      if (t <= now && (window == absl::InfiniteDuration() || t > now - window)) ++n;
    }
    return n;
  }
  std::optional<absl::Time> LastEventAt(int32_t type) const override {
    auto it = events_.find(type);
    if (it == events_.end() || it->second.empty()) return std::nullopt;
    return it->second.back();
  }
  bool InSegment(int32_t segment) const override { return segments_.count(segment) > 0; }
  absl::Time EventCountAtMostAt(int32_t type, absl::Duration window, absl::Time now, int64_t at_most) const override {
    if (window == absl::InfiniteDuration()) return absl::InfiniteFuture();
    std::vector<absl::Time> in;
    auto it = events_.find(type);
    if (it != events_.end()) {
      for (absl::Time t : it->second) {
        if (t <= now && t > now - window) in.push_back(t);
      }
    }
    const int64_t count = static_cast<int64_t>(in.size());
    if (count <= at_most) return now;
    return in[count - at_most - 1] + window;  // the (count - at_most)-th oldest leaves
  }

  mutable int event_count_calls = 0;

 private:
  std::map<ecrm::rules::Field, Value> builtin_;
  std::set<std::pair<int, int>> consents_;
  std::map<int32_t, Value> attributes_;
  std::vector<std::string> interests_;
  std::map<int32_t, std::vector<absl::Time>> events_;
  std::set<int32_t> segments_;
};

Truth Eval(absl::string_view text, const FakeCustomer& c, absl::Time now = kNow) {
  const Rule rule = MustCompile(text);
  const Truth t = Evaluate(rule, c, now);
  // The tracking evaluator always agrees on the value.
  CHECK(EvaluateWithNextChange(rule, c, now).truth == t);
  return t;
}

absl::Time NextChange(absl::string_view text, const FakeCustomer& c, absl::Time now = kNow) {
  return EvaluateWithNextChange(MustCompile(text), c, now).next_change;
}

}  // namespace

TEST_CASE("rules: every construct parses to its canonical form", "[rules]") {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {R"(profile.country == "GB")", R"((profile.address.country == "GB"))"},
      {R"(profile.address.city != "Leeds")", R"((profile.address.city != "Leeds"))"},
      {"orders.count >= 2", "(orders.count >= 2)"},
      {"orders.total > 1999.5", "(orders.total > 1999.5)"},
      {"clv < 1e6 && rfm.r <= 5 && rfm.f > 0.25", "((clv < 1e+06) && (rfm.r <= 5) && (rfm.f > 0.25))"},
      {"consent.email", "consent.email.marketing"},
      {"consent.sms.service", "consent.sms.service"},
      {"consent.direct_mail.transactional", "consent.direct_mail.transactional"},
      {"!consent.push", "!consent.push.marketing"},
      {"customer.anonymous == false", "(customer.anonymous == false)"},
      {R"("cycling" in interests)", R"(("cycling" in interests))"},
      {R"(interests.contains("cycling"))", R"(("cycling" in interests))"},
      {R"("run" in preferences.interests)", R"(("run" in interests))"},
      {R"(profile.city in ["London", "Leeds",])", R"((profile.address.city in ["London", "Leeds"]))"},
      {"rfm.m in [1, -2, 3.5]", "(rfm.m in [1, -2, 3.5])"},
      {"consent.web in [true]", "(consent.web.marketing in [true])"},
      {R"("on" in profile.city)", R"(("on" in profile.address.city))"},
      {R"(profile.city.startsWith("Lon"))", R"(profile.address.city.startsWith("Lon"))"},
      {R"(profile.city.endsWith("don"))", R"(profile.address.city.endsWith("don"))"},
      {R"(profile.city.contains("ond"))", R"(("ond" in profile.address.city))"},
      {R"("London".startsWith(profile.city))", R"("London".startsWith(profile.address.city))"},
      {"days_since(orders.last_at) <= 90", "(days_since(orders.last_at) <= 90)"},
      {R"(events.count("page_view", 30d) > 5)", R"((events.count("page_view", 30d) > 5))"},
      {R"(events.count("purchase") >= 1)", R"((events.count("purchase") >= 1))"},
      {R"(events.count("login", 12h) + events.count("login", 15m) + events.count("login", 90s) > 0)",
       R"((((events.count("login", 12h) + events.count("login", 15m)) + events.count("login", 90s)) > 0))"},
      {R"(events.count("login", 1440m) > 0)", R"((events.count("login", 1d) > 0))"},
      {R"(events.last_at("purchase") > timestamp("2026-01-01T00:00:00Z"))",
       R"((events.last_at("purchase") > timestamp("2026-01-01T00:00:00+00:00")))"},
      {R"(orders.first_at < date("2025-12-31"))", R"((orders.first_at < timestamp("2025-12-31T00:00:00+00:00")))"},
      {R"(orders.last_at >= timestamp("2026-01-01T10:30:00.25+02:00"))",
       R"((orders.last_at >= timestamp("2026-01-01T08:30:00.25+00:00")))"},
      {"orders.last_at >= now - 30d", "(orders.last_at >= (now - 30d))"},
      {"30d + orders.last_at > now", "((30d + orders.last_at) > now)"},
      {"has(orders.last_at)", "has(orders.last_at)"},
      {R"(has(events.last_at("purchase")))", R"(has(events.last_at("purchase")))"},
      {R"(segment("vip") || segment("lapsed"))", R"((segment("vip") || segment("lapsed")))"},
      {R"(attributes.tier == "gold")", R"((attributes.tier == "gold"))"},
      {R"(attributes["tier"] == "gold")", R"((attributes.tier == "gold"))"},
      {R"(attributes["2fa"])", R"(attributes["2fa"])"},
      {"attributes.score * 2 / 4 - 1 > 0", "((((attributes.score * 2) / 4) - 1) > 0)"},
      {"attributes.signup < now", "(attributes.signup < now)"},
      {"attributes.vip == true", "(attributes.vip == true)"},
      {R"(profile.first_name == "a\"b\\c\n\t\r\u00e9\u0001")", R"((profile.first_name == "a\"b\\c\n\t\ré\u0001"))"},
      {"profile.gender == \"female\" // a comment\n  && profile.locale == \"en-GB\"",
       R"(((profile.gender == "female") && (profile.locale == "en-GB")))"},
      {R"(profile.birth_date < date("2000-01-01") && profile.time_zone == "Europe/London")",
       R"(((profile.birth_date < timestamp("2000-01-01T00:00:00+00:00")) && (profile.time_zone == "Europe/London")))"},
      {R"(profile.company == "Acme" && profile.business.industry_sector == "retail" && profile.company_size == "11-50" && profile.role == "cto" && profile.purchasing_influence == "decision_maker")",
       R"(((profile.business.company == "Acme") && (profile.business.industry_sector == "retail") && (profile.business.company_size == "11-50") && (profile.business.role == "cto") && (profile.business.purchasing_influence == "decision_maker")))"},
      {R"(preferences.preferred_channel == "email" && preferences.contact_frequency == "weekly")",
       R"(((preferences.preferred_channel == "email") && (preferences.contact_frequency == "weekly")))"},
      {R"(rfm.cell == "champions" || engagement > 50)", R"(((rfm.cell == "champions") || (engagement > 50)))"},
      {"customer.created_at < customer.first_seen_at || customer.last_seen_at > now - 7d",
       "((customer.created_at < customer.first_seen_at) || (customer.last_seen_at > (now - 7d)))"},
      {"--orders.count > 0", "(--orders.count > 0)"},
      {"-(5) < - -3", "(-5 < 3)"},
      {"!!(consent.email)", "!!consent.email.marketing"},
      {"profile.address.line1 == \"1 High St\" && profile.address.line2 == \"\" && profile.region == \"Kent\" && "
       "profile.postal_code.startsWith(\"CT\")",
       R"(((profile.address.line1 == "1 High St") && (profile.address.line2 == "") && (profile.address.region == "Kent") && profile.address.postal_code.startsWith("CT")))"},
  };
  for (const auto& [in, out] : cases) {
    INFO(in);
    CHECK(Canonical(in) == out);
    CHECK(Canonical(out) == out);  // the canonical form is a fixed point
  }
}

TEST_CASE("rules: precedence and grouping", "[rules]") {
  CHECK(Canonical("consent.email || consent.sms && consent.push") ==
        "(consent.email.marketing || (consent.sms.marketing && consent.push.marketing))");
  CHECK(Canonical("consent.email && consent.sms || consent.push") ==
        "((consent.email.marketing && consent.sms.marketing) || consent.push.marketing)");
  CHECK(Canonical("(consent.email || consent.sms) && consent.push") ==
        "((consent.email.marketing || consent.sms.marketing) && consent.push.marketing)");
  CHECK(Canonical("consent.email || consent.sms || consent.push") ==
        "(consent.email.marketing || consent.sms.marketing || consent.push.marketing)");
  CHECK(Canonical("!consent.email && consent.sms") == "(!consent.email.marketing && consent.sms.marketing)");
  CHECK(Canonical("!(consent.email && consent.sms)") == "!(consent.email.marketing && consent.sms.marketing)");
  CHECK(Canonical("orders.count + 1 * 2 >= 3 - 1 - 1") == "((orders.count + (1 * 2)) >= ((3 - 1) - 1))");
  CHECK(Canonical("orders.count / 2 * 3 == 1") == "(((orders.count / 2) * 3) == 1)");
  CHECK(Canonical("-orders.count * 2 < 0") == "((-orders.count * 2) < 0)");
}

TEST_CASE("rules: every error names line, column, what was expected and what was found", "[rules]") {
  const std::vector<std::pair<std::string, std::string>> cases = {
      // Syntax.
      {"", "1:1: expected a value, found end of rule"},
      {"orders.count >=", "1:16: expected a value after '>=', found end of rule"},
      {"orders.count >= )", "1:17: expected a value after '>=', found ')'"},
      {"(orders.count > 1", "1:18: expected ')' to close the '(' at 1:1, found end of rule"},
      {"orders.count > 1)", "1:17: expected an operator such as '&&' or the end of the rule, found ')'"},
      {"orders.count 5", "1:14: expected an operator such as '&&' or the end of the rule, found '5'"},
      {"orders.count = 5", "1:14: expected '==' (equality), found '='"},
      {"consent.email & consent.sms", "1:15: expected '&&', found '&'"},
      {"consent.email | consent.sms", "1:15: expected '||', found '|'"},
      {"orders.count > 1 @", "1:18: unexpected character '@'"},
      {"profile.city == 'x'", "1:17: expected a value, found ''' (strings are written in double quotes)"},
      {R"(profile.city == "abc)", R"(1:17: expected '"' to close the string, found end of rule)"},
      {"profile.city == \"a\nb\"", "1:17: expected '\"' to close the string, found end of line"},
      {R"(profile.city == "a\qb")", R"(1:19: expected an escape such as \" \\ \n \t \r or \uXXXX, found '\q')"},
      {R"(profile.city == "\u12")", R"(1:18: expected four hexadecimal digits after '\u', found fewer)"},
      {R"(profile.city == "\ud800")", R"(1:18: expected a character after '\u', found a UTF-16 surrogate)"},
      {"orders.count > 30days", "1:16: expected a number or a duration such as 30d, 12h, 15m or 90s, found '30days'"},
      {"orders.last_at > now - 1.5d", "1:24: expected a whole number of days, hours, minutes or seconds, found '1.5d'"},
      {"orders.last_at > now - 36501d", "1:24: expected a duration of at most 36500d, found '36501d'"},
      {"orders.count > 1e999", "1:16: expected a number a double can hold, found '1e999'"},
      {"orders.count > 1 < 2", "1:18: expected '&&' or '||' between two comparisons, found '<'"},
      {R"(consent.email == "x" in interests)", "1:22: expected '&&' or '||' between two comparisons, found 'in'"},
      {"days_since(orders.last_at", "1:26: expected ',' or ')' in the arguments of days_since, found end of rule"},
      {"days_since(,)", "1:12: expected a value in the arguments of days_since, found ','"},
      {"profile.city in [\"a\" \"b\"]", "1:22: expected ',' or ']' in the list, found \"b\""},
      {"profile.city.", "1:14: expected a field or method name after '.', found end of rule"},
      {R"("x".length > 1)", "1:12: expected '(' after the method name 'length', found '>'"},
      {R"(attributes[tier])", "1:12: expected an attribute name in double quotes after '[', found 'tier'"},
      {"!", "1:2: expected a value after '!', found end of rule"},
      {"orders.count > 1 &&\n  && consent.email", "2:3: expected a value after '&&', found '&&'"},
      {"consent.email &&\n\n   profile.contry == \"GB\"",
       "3:4: unknown field 'profile.contry'; did you mean 'profile.country'?"},
      // Names.
      {R"(profile.contry == "GB")", "1:1: unknown field 'profile.contry'; did you mean 'profile.country'?"},
      {"order.count > 1", "1:1: unknown field 'order.count'; did you mean 'orders.count'?"},
      {"consent.mail", "1:1: unknown field 'consent.mail'; did you mean 'consent.email'?"},
      {"consent.email.marketting",
       "1:1: unknown field 'consent.email.marketting'; did you mean 'consent.email.marketing'?"},
      {"wibble > 1", "1:1: unknown field 'wibble'"},
      {R"(attributes.teir == "gold")", "1:1: unknown attribute 'teir'; did you mean 'tier'?"},
      {"attributes.nothing_like_it", "1:1: unknown attribute 'nothing_like_it'"},
      {R"(attributes["Bad Name"])",
       "1:1: expected an attribute name of 1 to 64 characters a-z, 0-9 and _, found 'Bad Name'"},
      {"day_since(orders.last_at) < 3", "1:1: unknown function 'day_since'; did you mean 'days_since'?"},
      {R"(events.cnt("x") > 1)", "1:1: unknown function 'events.cnt'; did you mean 'events.count'?"},
      {R"(startsWith(profile.city, "a"))", "1:1: unknown function 'startsWith' (a method: write value.startsWith(…))"},
      {R"(profile.city.startWith("L"))", "1:14: unknown method 'startWith'; did you mean 'startsWith'?"},
      {"days_since > 3", "1:1: expected '(' after the function days_since, found ' '"},
      {R"(segment("nope"))", "1:9: unknown segment 'nope'"},
      {R"(events.count("Page View", 30d) > 1)",
       R"(1:14: expected an event type of 1 to 64 characters a-z, 0-9 and _, found "Page View")"},
      // Argument counts.
      {"days_since(orders.last_at, now) < 3", "1:28: days_since takes 1 argument, found 2"},
      {"days_since() < 3", "1:1: days_since takes 1 argument, found 0"},
      {R"(events.count("a", 1d, 2d) > 1)", "1:23: events.count takes 1 or 2 arguments, found 3"},
      {R"(profile.city.startsWith("a", "b"))", R"(1:30: startsWith takes 1 argument, found 2)"},
      {"profile.city.endsWith()", "1:1: endsWith takes 1 argument, found 0"},
      // Types.
      {R"(orders.count >= "abc")", R"(1:17: expected a number after '>=', found "abc")"},
      {R"(profile.country == 3)", "1:20: expected a string after '==', found 3"},
      {"orders.count > profile.city", "1:16: expected a number after '>', found profile.city (a string)"},
      {"consent.email < true", "1:1: expected a number, string or time before '<', found consent.email (a bool)"},
      {"interests == 1",
       "1:1: expected a bool, number, string or time before '==', found interests (a list of strings)"},
      {"orders.count", "1:1: expected a condition (a bool), found orders.count (a number)"},
      {"orders.count && consent.email", "1:1: expected a bool before '&&', found orders.count (a number)"},
      {"consent.email || 1", "1:18: expected a bool after '||', found 1"},
      {R"(!"x" in interests)", R"(1:2: expected a bool after '!', found "x")"},
      {"-consent.email", "1:2: expected a number after '-', found consent.email (a bool)"},
      {R"(profile.city + 1 > 2)", "1:1: expected a number or a time before '+', found profile.city (a string)"},
      {"orders.last_at - 1 > now", "1:18: expected a duration after '-', found 1"},
      {"orders.count * 1d > 1", "1:16: expected a number after '*', found 1d"},
      {"days_since(orders.count) > 1",
       "1:12: expected a time as the argument of days_since, found orders.count (a number)"},
      {"has(1)", "1:5: expected a field that can be missing or events.last_at(…) as the argument of has, found 1"},
      {"has(interests)",
       "1:5: expected a field that can be missing or events.last_at(…) as the argument of has, found interests (a "
       "list of strings)"},
      {"segment(profile.city)",
       "1:9: expected a segment name in double quotes as the argument of segment, found profile.city (a string)"},
      {R"(events.count("login", 5) > 1)",
       "1:23: expected a window such as 30d as the second argument of events.count, found 5"},
      {R"(events.count("login", 0d) > 1)", "1:23: expected a window longer than 0, found 0d"},
      {R"(orders.last_at > timestamp("yesterday"))",
       R"(1:28: expected a time such as "2026-01-01T00:00:00Z" as the argument of timestamp (years 0001 to 9999), found "yesterday")"},
      {R"(orders.last_at > date("2026-13-01"))",
       R"(1:23: expected a time such as "2026-01-01" as the argument of date (years 0001 to 9999), found "2026-13-01")"},
      {R"(profile.city in [1, 2])", "1:18: expected a string in the list after 'in', found 1"},
      {R"(profile.city in ["a", 2])", "1:23: expected a string in the list like its first element, found 2"},
      {R"(profile.city in ["a", profile.country])",
       "1:23: expected a literal bool, number or string in the list, found profile.country (a string)"},
      {"orders.last_at in [1]", "1:1: expected a bool, number or string before 'in', found orders.last_at (a time)"},
      {"1 in interests", "1:1: expected a string before 'in', found 1"},
      {R"("a" in orders.count)",
       "1:8: expected a list, a list field or a string after 'in', found orders.count (a number)"},
      {"[1, 2] == 1", "1:1: expected a bool, number, string or time before '==', found [1, 2]"},
      {"orders.count.startsWith(\"1\")", "1:1: expected a string before '.startsWith', found orders.count (a number)"},
      {"orders.count.contains(\"1\")",
       "1:1: expected a string or a list field before '.contains', found orders.count (a number)"},
      {"profile.city.endsWith(1)", "1:23: expected a string as the argument of endsWith, found 1"},
      {"30d > 1", "1:1: expected a number, string or time before '>', found 30d"},
      // Multi-byte characters count as one column.
      {"profile.city == \"Zürich\" && profile.city > 1", "1:44: expected a string after '>', found 1"},
  };
  for (const auto& [in, message] : cases) {
    INFO(in);
    CHECK(ErrorOf(in) == message);
  }
}

TEST_CASE("rules: limits bound length, nesting, lists and size", "[rules]") {
  CHECK(ErrorOf("orders.count > 1", {.max_length = 10}) == "1:11: expected a rule of at most 10 bytes, found 16");
  CHECK(ErrorOf("orders.count > 1", {.max_length = 16}) == "compiled: (orders.count > 1)");

  const std::string parens32 = std::string(32, '(') + "orders.count > 1" + std::string(32, ')');
  CHECK(ErrorOf(parens32) == "compiled: (orders.count > 1)");
  const std::string parens33 = std::string(33, '(') + "orders.count > 1" + std::string(33, ')');
  CHECK(ErrorOf(parens33) == "1:33: expected at most 32 levels of nesting, found more");
  CHECK(ErrorOf(std::string(40, '!') + "consent.email") == "1:33: expected at most 32 levels of nesting, found more");
  CHECK(ErrorOf(std::string(40, '-') + "orders.count > 1") ==
        "1:33: expected at most 32 levels of nesting, found more");
  CHECK(ErrorOf(std::string(40, '[') + "1") == "1:33: expected at most 32 levels of nesting, found more");
  CHECK(ErrorOf("days_since(" + std::string(40, '(')) == "1:43: expected at most 32 levels of nesting, found more");

  // A left-deep sum nests one level per term; a long conjunction is one n-ary node.
  std::string sum = "1";
  for (int i = 0; i < 40; ++i) sum += " + 1";
  CHECK(ErrorOf(sum + " > 0") == "1:1: expected at most 32 levels of nesting, found more");
  std::vector<std::string> terms(500, "orders.count > 1");
  const Rule long_and = MustCompile(absl::StrJoin(terms, " && "));
  CHECK(long_and.node(long_and.root()).depth == 3);

  CHECK(ErrorOf(R"(profile.city in ["a", "b", "c", "d"])", {.max_list_size = 3}) ==
        "1:33: expected at most 3 elements in a list, found more");
  CHECK(ErrorOf(R"(profile.city in ["a", "b", "c"])", {.max_list_size = 3}) ==
        R"(compiled: (profile.address.city in ["a", "b", "c"]))");
  CHECK(ErrorOf("orders.count > 1 && orders.count < 5", {.max_nodes = 5}) ==
        "1:21: expected at most 5 operations and values in a rule, found more");

  // No input can make the parser recurse past the ceiling, whatever the limits say.
  const Limits huge{.max_length = 1 << 22, .max_depth = 1 << 30, .max_list_size = 1 << 30, .max_nodes = 1 << 30};
  CHECK(ErrorOf(std::string(1 << 20, '('), huge) == "1:257: expected at most 256 levels of nesting, found more");
  CHECK(ErrorOf(std::string(1 << 20, '!'), huge) == "1:257: expected at most 256 levels of nesting, found more");
  CHECK(ErrorOf(std::string(1 << 20, '['), huge) == "1:257: expected at most 256 levels of nesting, found more");
  std::string chain = R"("a")";
  for (int i = 0; i < 10000; ++i) chain += R"(.startsWith("b"))";
  CHECK(ErrorOf(chain, huge) == "1:1: expected at most 256 levels of nesting, found more");
}

// A schema that knows no attribute's type (as personalisation's): the rule's use decides.
class InferringSchema : public SimpleSchema {
 public:
  std::optional<AttributeInfo> FindAttribute(absl::string_view name) const override {
    auto it = ids_.find(std::string(name));
    if (it == ids_.end()) it = ids_.emplace(std::string(name), static_cast<int32_t>(ids_.size())).first;
    return AttributeInfo{.id = it->second, .type = Type::kString, .inferred = true};
  }
  mutable std::map<std::string, int32_t> ids_;
};

TEST_CASE("rules: an attribute the schema cannot type takes its type from the rule's use of it", "[rules]") {
  InferringSchema schema;
  auto compile = [&](absl::string_view text) { return Compile(text, schema); };
  auto error = [&](absl::string_view text) {
    absl::StatusOr<Rule> r = compile(text);
    return r.ok() ? "compiled: " + Format(*r) : std::string(r.status().message());
  };
  auto type_of = [&](const Rule& r, absl::string_view attribute) {
    for (const Node& n : r.nodes()) {
      if (n.op == Op::kField && r.field_name(n.aux) == absl::StrCat("attributes.", attribute)) return n.type;
    }
    FAIL("no such field");
    return Type::kList;
  };
  absl::StatusOr<Rule> r = compile(
      R"(attributes.tier == "gold" && attributes.score >= 3 && attributes.vip && days_since(attributes.signup) < 30 )"
      R"(&& attributes.city.startsWith("Lo") && attributes.band in [1, 2] && 5 < attributes.level)");
  REQUIRE(r.ok());
  CHECK(type_of(*r, "tier") == Type::kString);
  CHECK(type_of(*r, "score") == Type::kNumber);
  CHECK(type_of(*r, "vip") == Type::kBool);
  CHECK(type_of(*r, "signup") == Type::kTime);
  CHECK(type_of(*r, "city") == Type::kString);
  CHECK(type_of(*r, "band") == Type::kNumber);
  CHECK(type_of(*r, "level") == Type::kNumber);
  CHECK(compile("!attributes.vip || attributes.vip == false").ok());
  CHECK(compile("has(attributes.vip)").ok());
  CHECK(error(R"(attributes.tier == "gold" || attributes.tier > 3)") == "1:48: expected a string after '>', found 3");
  CHECK(error(R"(attributes.tier > 3 || attributes.tier == "gold")") ==
        "1:43: expected a number after '==', found \"gold\"");
  CHECK(error("attributes.a == attributes.b") ==
        "1:1: cannot tell the type of attribute 'a' from this rule: compare it with a value (attributes.a == "
        "\"gold\", > 3, == true …) somewhere in the rule");

  // A value of another type than the rule's is missing; has() sees any type.
  struct View : CustomerView {
    Value Field(const FieldRef& f) const override {
      return f.kind == FieldRef::Kind::kAttribute ? Value::String("gold") : Value::Missing();
    }
    bool ListContains(const FieldRef&, absl::string_view) const override { return false; }
    int64_t EventCount(int32_t, absl::Duration, absl::Time) const override { return 0; }
    std::optional<absl::Time> LastEventAt(int32_t) const override { return std::nullopt; }
    bool InSegment(int32_t) const override { return false; }
    absl::Time EventCountAtMostAt(int32_t, absl::Duration, absl::Time, int64_t) const override {
      return absl::InfiniteFuture();
    }
  } view;
  CHECK(Evaluate(*compile(R"(attributes.tier == "gold")"), view, kNow) == Truth::kTrue);
  CHECK(Evaluate(*compile("attributes.tier > 3"), view, kNow) == Truth::kUnknown);
  CHECK(Evaluate(*compile("has(attributes.tier)"), view, kNow) == Truth::kTrue);
}

TEST_CASE("rules: a rule never compiled is false", "[rules]") {
  const Rule rule;
  CHECK(Format(rule) == "false");
  CHECK(Evaluate(rule, FakeCustomer(), kNow) == Truth::kFalse);
  CHECK(EvaluateWithNextChange(rule, FakeCustomer(), kNow).next_change == absl::InfiniteFuture());
  CHECK(rule.dependencies().fields.empty());
}

TEST_CASE("rules: the design brief's example evaluates over one customer", "[rules]") {
  const std::string rule =
      R"(profile.country == "GB" && orders.count >= 2 && days_since(orders.last_at) <= 90 && consent.email && )"
      R"("cycling" in interests && events.count("page_view", 30d) > 5)";
  FakeCustomer c;
  c.Set(Field::kCountry, Value::String("GB"))
      .Set(Field::kOrdersCount, Value::Number(2))
      .Set(Field::kOrdersLastAt, Value::Time(kNow - 90 * kDay))
      .Consent(Channel::kEmail, Purpose::kMarketing)
      .Interest("cycling");
  for (int i = 1; i <= 6; ++i) c.Event("page_view", kNow - i * kDay);
  CHECK(Eval(rule, c) == Truth::kTrue);
  CHECK(Matches(MustCompile(rule), c, kNow));
  CHECK(Eval(rule, c, kNow + kDay) == Truth::kFalse);  // day 91
  FakeCustomer service_only = FakeCustomer(c).Consent(Channel::kEmail, Purpose::kService);
  CHECK(Eval(rule, service_only) == Truth::kTrue);  // marketing consent is still there
  FakeCustomer no_marketing;
  no_marketing.Set(Field::kCountry, Value::String("GB"))
      .Set(Field::kOrdersCount, Value::Number(2))
      .Set(Field::kOrdersLastAt, Value::Time(kNow - 90 * kDay))
      .Consent(Channel::kEmail, Purpose::kService)
      .Interest("cycling");
  for (int i = 1; i <= 6; ++i) no_marketing.Event("page_view", kNow - i * kDay);
  CHECK(Eval(rule, no_marketing) == Truth::kFalse);  // consent.email means marketing on email
  no_marketing.Consent(Channel::kEmail, Purpose::kMarketing);
  CHECK(Eval(rule, no_marketing) == Truth::kTrue);
  // With a recent order, the oldest of the six page views leaving the window 24 days from now
  // is what ends the match.
  FakeCustomer recent = FakeCustomer(c).Set(Field::kOrdersLastAt, Value::Time(kNow - kDay));
  CHECK(Eval(rule, recent, kNow + 24 * kDay - absl::Nanoseconds(1)) == Truth::kTrue);
  CHECK(Eval(rule, recent, kNow + 24 * kDay) == Truth::kFalse);
  CHECK(NextChange(rule, recent) == kNow + 24 * kDay);
  CHECK(NextChange(rule, c) == kNow + kDay);
}

TEST_CASE("rules: evaluation reads every kind of field", "[rules]") {
  FakeCustomer c;
  c.Set(Field::kFirstName, Value::String("Ada"))
      .Set(Field::kCity, Value::String("London"))
      .Set(Field::kCountry, Value::String("GB"))
      .Set(Field::kBirthDate, Value::Time(absl::FromCivil(absl::CivilDay(1990, 5, 17), absl::UTCTimeZone())))
      .Set(Field::kGender, Value::String("female"))
      .Set(Field::kCompany, Value::String("Acme"))
      .Set(Field::kPurchasingInfluence, Value::String("decision_maker"))
      .Set(Field::kPreferredChannel, Value::String("email"))
      .Set(Field::kOrdersCount, Value::Number(3))
      .Set(Field::kOrdersTotal, Value::Number(12999))
      .Set(Field::kOrdersFirstAt, Value::Time(kNow - 400 * kDay))
      .Set(Field::kOrdersLastAt, Value::Time(kNow - 10 * kDay))
      .Set(Field::kRfmCell, Value::String("champions"))
      .Set(Field::kRfmR, Value::Number(5))
      .Set(Field::kRfmF, Value::Number(4))
      .Set(Field::kRfmM, Value::Number(3))
      .Set(Field::kClv, Value::Number(54321.5))
      .Set(Field::kEngagement, Value::Number(70))
      .Set(Field::kAnonymous, Value::Bool(false))
      .Set(Field::kLastSeenAt, Value::Time(kNow - absl::Hours(2)))
      .Consent(Channel::kEmail, Purpose::kMarketing)
      .Consent(Channel::kSms, Purpose::kService)
      .Attribute("tier", Value::String("gold"))
      .Attribute("vip", Value::Bool(true))
      .Attribute("score", Value::Number(7.5))
      .Attribute("signup", Value::Time(kNow - 30 * kDay))
      .Interest("cycling")
      .Interest("running")
      .Event("purchase", kNow - 10 * kDay)
      .Event("purchase", kNow - 40 * kDay)
      .Event("login", kNow - absl::Hours(2))
      .Segment("vip");
  const std::vector<std::pair<std::string, Truth>> cases = {
      {R"(profile.first_name == "Ada")", Truth::kTrue},
      {R"(profile.country == "GB" && profile.city != "Leeds")", Truth::kTrue},
      {R"(profile.city < "Leeds")", Truth::kFalse},  // strings order bytewise
      {R"(profile.city in ["Leeds", "London"])", Truth::kTrue},
      {R"(profile.city in ["Leeds"])", Truth::kFalse},
      {R"("ond" in profile.city && profile.city.startsWith("Lon") && profile.city.endsWith("don"))", Truth::kTrue},
      {R"(profile.city.contains("x"))", Truth::kFalse},
      {R"(profile.birth_date < date("2000-01-01") && days_since(profile.birth_date) > 365 * 18)", Truth::kTrue},
      {R"(profile.gender == "female")", Truth::kTrue},
      {R"(profile.company == "Acme" && profile.purchasing_influence == "decision_maker")", Truth::kTrue},
      {R"(preferences.preferred_channel == "email")", Truth::kTrue},
      {R"("cycling" in interests && interests.contains("running") && !("golf" in interests))", Truth::kTrue},
      {"orders.count == 3 && orders.total >= 12999 && orders.total / orders.count > 4000", Truth::kTrue},
      {"days_since(orders.first_at) == 400 && days_since(orders.last_at) == 10", Truth::kTrue},
      {"orders.last_at > now - 30d && orders.first_at < now - 30d", Truth::kTrue},
      {R"(rfm.cell == "champions" && rfm.r == 5 && rfm.f in [4, 5] && rfm.m < 4)", Truth::kTrue},
      {"clv > 54321 && clv < 54322 && engagement >= 70", Truth::kTrue},
      {"customer.anonymous", Truth::kFalse},
      {"customer.last_seen_at > now - 3h", Truth::kTrue},
      {"consent.email && consent.email.marketing && !consent.sms && consent.sms.service", Truth::kTrue},
      {"consent.push || consent.email.profiling", Truth::kFalse},
      {R"(attributes.tier == "gold" && attributes.vip && attributes.score > 7 && attributes.signup < now - 29d)",
       Truth::kTrue},
      {R"(events.count("purchase", 30d) == 1 && events.count("purchase", 41d) == 2 && events.count("purchase") == 2)",
       Truth::kTrue},
      {R"(events.count("page_view", 30d) == 0)", Truth::kTrue},
      {R"(events.last_at("purchase") == orders.last_at && events.last_at("login") > now - 1d)", Truth::kTrue},
      {R"(segment("vip") && !segment("lapsed"))", Truth::kTrue},
      {R"(-orders.count < -2 && 1 - 2 * 3 == -5)", Truth::kTrue},
      {"orders.last_at + 10d == now && 10d + orders.last_at == now", Truth::kTrue},
  };
  for (const auto& [rule, want] : cases) {
    INFO(rule);
    CHECK(Eval(rule, c) == want);
  }
}

TEST_CASE("rules: a missing value makes its comparison unknown, and unknown is not a match", "[rules]") {
  FakeCustomer nobody;  // no profile, no orders, no attributes, no events, no consent
  const std::vector<std::pair<std::string, Truth>> cases = {
      {R"(profile.country == "GB")", Truth::kUnknown},
      {R"(profile.country != "GB")", Truth::kUnknown},
      {R"(!(profile.country == "GB"))", Truth::kUnknown},  // ! keeps unknown: never a back door
      {R"(!has(profile.country) || profile.country != "GB")", Truth::kTrue},
      {"orders.last_at > now - 90d", Truth::kUnknown},
      {"!(orders.last_at > now - 90d)", Truth::kUnknown},
      {"days_since(orders.last_at) <= 90", Truth::kUnknown},
      {"days_since(orders.last_at) > 90", Truth::kUnknown},
      {"!has(orders.last_at) || days_since(orders.last_at) > 90", Truth::kTrue},
      {"has(orders.last_at)", Truth::kFalse},
      // Kleene: false && unknown is false, true || unknown is true, otherwise unknown.
      {R"(profile.country == "GB" && consent.email)", Truth::kFalse},
      {R"(consent.email && profile.country == "GB")", Truth::kFalse},
      {R"(profile.country == "GB" || !consent.email)", Truth::kTrue},
      {R"(profile.country == "GB" && !consent.email)", Truth::kUnknown},
      {R"(profile.country == "GB" || consent.email)", Truth::kUnknown},
      {"attributes.vip", Truth::kUnknown},
      {"!attributes.vip", Truth::kUnknown},
      {"has(attributes.vip)", Truth::kFalse},
      {"attributes.vip == false", Truth::kUnknown},
      {R"(events.count("purchase", 30d) == 0)", Truth::kTrue},  // counts are never missing
      {R"(has(events.last_at("purchase")))", Truth::kFalse},
      {R"(events.last_at("purchase") < now)", Truth::kUnknown},
      {R"("x" in interests)", Truth::kFalse},  // an empty list is not missing
      {R"(profile.city in ["a"])", Truth::kUnknown},
      {R"("a" in profile.city)", Truth::kUnknown},
      {R"(profile.city.startsWith("a"))", Truth::kUnknown},
      {"orders.count + 1 > 0", Truth::kUnknown},
      {"-orders.count < 0", Truth::kUnknown},
      {R"(segment("vip"))", Truth::kFalse},
      {"consent.email", Truth::kFalse},
  };
  for (const auto& [rule, want] : cases) {
    INFO(rule);
    CHECK(Eval(rule, nobody) == want);
    CHECK(Matches(MustCompile(rule), nobody, kNow) == (want == Truth::kTrue));
  }

  FakeCustomer odd;
  odd.Set(Field::kOrdersCount, Value::Number(0))
      .Set(Field::kOrdersTotal, Value::Number(100))
      .Set(Field::kClv, Value::Number(std::nan("")))                       // NaN: missing
      .Set(Field::kRfmR, Value::String("5"))                               // the wrong kind: missing
      .Set(Field::kOrdersLastAt, Value::Time(absl::InfiniteFuture()));     // not a time: missing
  CHECK(Eval("orders.total / orders.count > 0", odd) == Truth::kUnknown);  // division by zero
  CHECK(Eval("orders.total / orders.count <= 0", odd) == Truth::kUnknown);
  CHECK(Eval("clv != 0", odd) == Truth::kUnknown);
  CHECK(Eval("rfm.r == 5", odd) == Truth::kUnknown);
  CHECK(Eval("has(orders.last_at)", odd) == Truth::kFalse);
}

TEST_CASE("rules: days, windows and now are exact at their boundaries", "[rules]") {
  FakeCustomer c;
  c.Set(Field::kOrdersLastAt, Value::Time(kNow - 90 * kDay));
  CHECK(Eval("days_since(orders.last_at) == 90", c) == Truth::kTrue);
  CHECK(Eval("days_since(orders.last_at) == 90", c, kNow + kDay - absl::Nanoseconds(1)) == Truth::kTrue);
  CHECK(Eval("days_since(orders.last_at) == 91", c, kNow + kDay) == Truth::kTrue);
  CHECK(Eval("days_since(orders.last_at) == 0", c, kNow - 90 * kDay) == Truth::kTrue);
  CHECK(Eval("days_since(orders.last_at) == -1", c, kNow - 90 * kDay - absl::Nanoseconds(1)) == Truth::kTrue);

  c.Event("login", kNow - 30 * kDay).Event("login", kNow - 30 * kDay + absl::Seconds(1));
  CHECK(Eval(R"(events.count("login", 30d) == 1)", c) == Truth::kTrue);  // (now - 30d, now]
  CHECK(Eval(R"(events.count("login", 31d) == 2)", c) == Truth::kTrue);

  CHECK(Eval("orders.last_at >= now - 90d", c) == Truth::kTrue);
  CHECK(Eval("orders.last_at > now - 90d", c) == Truth::kFalse);
}

TEST_CASE("rules: dependencies name every field, event type and segment a rule reads", "[rules]") {
  const Rule rule =
      MustCompile(R"(profile.country == "GB" && consent.email && attributes.tier == "gold" && )"
                  R"(events.count("page_view", 30d) > 5 && has(events.last_at("purchase")) && segment("vip") && )"
                  R"("x" in interests && (profile.city == "a" || profile.address.city == "b"))");
  const Dependencies& d = rule.dependencies();
  const std::vector<FieldRef> fields = {FieldRef::Builtin(Field::kCity), FieldRef::Builtin(Field::kCountry),
                                        FieldRef::Builtin(Field::kInterests),
                                        FieldRef::Consent(Channel::kEmail, Purpose::kMarketing),
                                        FieldRef::Attribute(TestSchema().FindAttribute("tier")->id)};
  CHECK(d.fields == fields);
  const std::vector<std::string> event_type_names = {"page_view", "purchase"};
  CHECK(d.event_type_names == event_type_names);
  const std::vector<int32_t> event_types = {TestSchema().EventTypeId("page_view"),
                                            TestSchema().EventTypeId("purchase")};
  CHECK(d.event_types == event_types);
  CHECK(d.segment_names == std::vector<std::string>(1, "vip"));
  CHECK(d.segments == std::vector<int32_t>(1, *TestSchema().FindSegment("vip")));
  CHECK(d.time_relative);

  CHECK_FALSE(MustCompile(R"(events.count("purchase") > 1 && profile.country == "GB")").dependencies().time_relative);
  CHECK_FALSE(MustCompile(R"(events.last_at("purchase") > date("2026-01-01"))").dependencies().time_relative);
  CHECK(MustCompile("orders.last_at > now - 1d").dependencies().time_relative);
  CHECK(MustCompile("days_since(orders.last_at) > 1").dependencies().time_relative);
  CHECK(MustCompile(R"(events.count("login", 1h) > 1)").dependencies().time_relative);
  const Rule segments = MustCompile(R"(segment("lapsed") && !segment("vip") || segment("lapsed"))");
  const std::vector<std::string> segment_names = {"lapsed", "vip"};
  CHECK(segments.dependencies().segment_names == segment_names);
  CHECK(segments.dependencies().fields.empty());
}

TEST_CASE("rules: the next change of a days_since rule is the first instant of day 91", "[rules]") {
  const absl::Time last = kNow - 10 * kDay - absl::Hours(5);
  FakeCustomer c;
  c.Set(Field::kOrdersLastAt, Value::Time(last));
  const std::string rule = "days_since(orders.last_at) <= 90";
  CHECK(NextChange(rule, c) == last + 91 * kDay);
  CHECK(Eval(rule, c, last + 91 * kDay - absl::Nanoseconds(1)) == Truth::kTrue);
  CHECK(Eval(rule, c, last + 91 * kDay) == Truth::kFalse);
  CHECK(NextChange(rule, c, last + 91 * kDay) == absl::InfiniteFuture());  // it never comes back
  CHECK(NextChange("90 >= days_since(orders.last_at)", c) == last + 91 * kDay);
  CHECK(NextChange("days_since(orders.last_at) < 90.5", c) == last + 91 * kDay);
  CHECK(NextChange("days_since(orders.last_at) > 90", c) == last + 91 * kDay);
  CHECK(NextChange("!(days_since(orders.last_at) > 90)", c) == last + 91 * kDay);
  CHECK(NextChange("days_since(orders.last_at) == 12", c) == last + 12 * kDay);
  CHECK(NextChange("days_since(orders.last_at) == 12", c, last + 12 * kDay) == last + 13 * kDay);
  CHECK(NextChange("days_since(orders.last_at) == 12", c, last + 13 * kDay) == absl::InfiniteFuture());
  CHECK(NextChange("days_since(orders.last_at) != 10", c) == last + 11 * kDay);
  // Not a plain comparison: conservative, the next day boundary.
  CHECK(NextChange("days_since(orders.last_at) * 2 > 100", c) == last + 11 * kDay);
  // A customer without orders never changes by time alone.
  CHECK(NextChange(rule, FakeCustomer()) == absl::InfiniteFuture());
}

TEST_CASE("rules: the next change of a comparison with now is where the two meet", "[rules]") {
  const absl::Time last = kNow - 10 * kDay;
  FakeCustomer c;
  c.Set(Field::kOrdersLastAt, Value::Time(last));
  CHECK(NextChange("orders.last_at > now - 30d", c) == last + 30 * kDay);
  CHECK(Eval("orders.last_at > now - 30d", c, last + 30 * kDay - absl::Nanoseconds(1)) == Truth::kTrue);
  CHECK(Eval("orders.last_at > now - 30d", c, last + 30 * kDay) == Truth::kFalse);
  CHECK(NextChange("orders.last_at > now - 30d", c, last + 30 * kDay) == absl::InfiniteFuture());
  // >= still holds at the meeting instant and changes right after it.
  CHECK(NextChange("orders.last_at >= now - 30d", c) == last + 30 * kDay);
  CHECK(Eval("orders.last_at >= now - 30d", c, last + 30 * kDay) == Truth::kTrue);
  CHECK(NextChange("orders.last_at >= now - 30d", c, last + 30 * kDay) == last + 30 * kDay);
  CHECK(Eval("orders.last_at >= now - 30d", c, last + 30 * kDay + absl::Nanoseconds(1)) == Truth::kFalse);
  CHECK(NextChange("now - 30d < orders.last_at", c) == last + 30 * kDay);
  CHECK(NextChange("now < orders.last_at + 30d", c) == last + 30 * kDay);
  CHECK(NextChange("now > timestamp(\"2026-06-01T00:00:00Z\")", c) ==
        absl::FromCivil(absl::CivilDay(2026, 6, 1), absl::UTCTimeZone()));
  CHECK(NextChange("now - 1d < now", c) == absl::InfiniteFuture());
  CHECK(NextChange("days_since(now - 3d) == 3", c) == absl::InfiniteFuture());
}

TEST_CASE("rules: the next change of an event window comes from the view's hook", "[rules]") {
  FakeCustomer c;
  for (int i = 1; i <= 8; ++i) c.Event("page_view", kNow - i * kDay);  // 8 in the window
  const std::string rule = R"(events.count("page_view", 30d) > 5)";
  // It falls to 5 when the third oldest (8, 7, 6 days ago) leaves: 24 days from now.
  CHECK(NextChange(rule, c) == kNow + 24 * kDay);
  CHECK(Eval(rule, c, kNow + 24 * kDay - absl::Nanoseconds(1)) == Truth::kTrue);
  CHECK(Eval(rule, c, kNow + 24 * kDay) == Truth::kFalse);
  CHECK(NextChange(rule, c, kNow + 24 * kDay) == absl::InfiniteFuture());
  CHECK(NextChange(R"(events.count("page_view", 30d) == 0)", c) == kNow + 29 * kDay);
  CHECK(NextChange(R"(events.count("page_view", 30d) == 3)", c) == kNow + 26 * kDay);
  CHECK(NextChange(R"(events.count("page_view", 30d) == 3)", c, kNow + 26 * kDay) == kNow + 27 * kDay);
  CHECK(NextChange(R"(2 < events.count("page_view", 30d))", c) == kNow + 27 * kDay);
  CHECK(NextChange(R"(events.count("page_view", 30d) > 100)", c) == absl::InfiniteFuture());
  CHECK(NextChange(R"(events.count("page_view") > 5)", c) == absl::InfiniteFuture());
  CHECK(NextChange(R"(events.count("page_view", 30d) * 1 > 5)", c) == kNow + 22 * kDay);  // any change
  // No login in the window: that count cannot change, so the threshold is exact.
  CHECK(NextChange(R"(events.count("page_view", 30d) > events.count("login", 30d))", c) == kNow + 29 * kDay);
  FakeCustomer both = c;
  both.Event("login", kNow - 2 * kDay);
  CHECK(NextChange(R"(events.count("page_view", 30d) > events.count("login", 30d))", both) == kNow + 22 * kDay);
}

TEST_CASE("rules: an operand that decides && or || for good ends the schedule", "[rules]") {
  FakeCustomer c;
  c.Set(Field::kOrdersLastAt, Value::Time(kNow - 10 * kDay));
  const std::string days = "days_since(orders.last_at) <= 90";
  CHECK(NextChange(days + " && consent.email", c) == absl::InfiniteFuture());  // no consent: false for good
  CHECK(NextChange("consent.email && " + days, c) == absl::InfiniteFuture());
  CHECK(NextChange(days + " || !consent.email", c) == absl::InfiniteFuture());  // true for good
  CHECK(NextChange(days + " && !consent.email", c) == kNow + 81 * kDay);
  CHECK(NextChange("profile.country == \"GB\" && " + days, c) == kNow + 81 * kDay);  // unknown: may change
  // Two false operands: false until both may have changed.
  CHECK(NextChange("days_since(orders.last_at) > 20 && days_since(orders.last_at) > 30", c) == kNow + 21 * kDay);
  CHECK(NextChange("days_since(orders.last_at) < 5 || days_since(orders.last_at) > 30", c) == kNow + 21 * kDay);
}

TEST_CASE("rules: evaluation allocates nothing", "[rules]") {
  const Rule rule = MustCompile(
      R"(profile.country == "GB" && orders.count >= 2 && days_since(orders.last_at) <= 90 && consent.email && )"
      R"("cycling" in interests && events.count("page_view", 30d) > 5 && profile.city in ["London", "Leeds"] && )"
      R"(profile.city.startsWith("Lon") && orders.last_at > now - 90d)");
  FakeCustomer c;
  c.Set(Field::kCountry, Value::String("GB"))
      .Set(Field::kCity, Value::String("London"))
      .Set(Field::kOrdersCount, Value::Number(2))
      .Set(Field::kOrdersLastAt, Value::Time(kNow - 9 * kDay))
      .Consent(Channel::kEmail, Purpose::kMarketing)
      .Interest("cycling");
  for (int i = 1; i <= 6; ++i) c.Event("page_view", kNow - i * kDay);
  std::vector<absl::Time> in_window;  // the fake's hook allocates; warm nothing else up
  g_allocations = 0;
  g_counting = true;
  int matches = 0;
  for (int i = 0; i < 1000; ++i) matches += Evaluate(rule, c, kNow) == Truth::kTrue;
  g_counting = false;
  CHECK(matches == 1000);
  CHECK(g_allocations == 0);
  if (!ECRM_COUNTS_ALLOCATIONS) WARN("allocations are not counted under AddressSanitizer");
}

namespace {

// Random well-typed rules over every construct, from a seeded generator.
class RuleGenerator {
 public:
  explicit RuleGenerator(uint32_t seed) : rng_(seed) {}

  std::string Bool(int depth) {
    if (depth > 0) {
      switch (Pick(5)) {
        case 0:
          return "!(" + Bool(depth - 1) + ")";
        case 1:
          return "(" + Bool(depth - 1) + " && " + Bool(depth - 1) + ")";
        case 2:
          return "(" + Bool(depth - 1) + " || " + Bool(depth - 1) + " || " + Bool(depth - 1) + ")";
        default:
          break;
      }
    }
    static const char* kCompare[] = {" == ", " != ", " < ", " <= ", " > ", " >= "};
    switch (Pick(9)) {
      case 0:
        return Choose({"consent.email", "consent.sms.service", "attributes.vip", R"(segment("vip"))",
                       "customer.anonymous", "true", "false"});
      case 1:
      case 2:
        return Num(depth) + kCompare[Pick(6)] + Num(depth > 0 ? depth - 1 : 0);
      case 3:
        return Time(depth) + kCompare[Pick(6)] + Time(0);
      case 4:
        return Str() + Choose({" == ", " != ", " < "}) + Str();
      case 5:
        return Choose({Str() + ".startsWith(" + Str() + ")", Str() + ".endsWith(" + Str() + ")", Str() + " in " + Str(),
                       Str() + R"( in ["GB", "London", "gold"])", Str() + " in interests",
                       "interests.contains(" + Str() + ")"});
      case 6:
        return Choose({"has(orders.last_at)", "has(profile.country)", "has(attributes.score)",
                       R"(has(events.last_at("purchase")))"});
      case 7:
        return Num(0) + " in [1, 2.5, 3, -4]";
      default:
        return "days_since(" + Time(0) + ")" + kCompare[Pick(6)] + std::to_string(Pick(70) - 5);
    }
  }

 private:
  std::string Num(int depth) {
    if (depth > 0 && Pick(3) == 0) {
      static const char* kOps[] = {" + ", " - ", " * ", " / "};
      return "(" + Num(depth - 1) + kOps[Pick(4)] + Num(depth - 1) + ")";
    }
    switch (Pick(7)) {
      case 0:
        return Choose({"orders.count", "orders.total", "rfm.r", "clv", "attributes.score"});
      case 1:
        return std::to_string(Pick(12) - 2);
      case 2:
        return absl::StrCat(Pick(1000) / 8.0);
      case 3:
        return "days_since(" + Time(0) + ")";
      case 4:
        return absl::StrCat(R"(events.count("page_view", )", 1 + Pick(40), Choose({"d", "h"}), ")");
      case 5:
        return Choose({R"(events.count("purchase"))", R"(events.count("login", 2d))"});
      default:
        return "-" + Choose({"orders.count", "3"});
    }
  }
  std::string Time(int depth) {
    switch (Pick(depth > 0 ? 6 : 5)) {
      case 0:
        return Choose({"orders.last_at", "orders.first_at", "attributes.signup", R"(events.last_at("purchase"))"});
      case 1:
        return "now";
      case 2:
        return absl::StrCat("now - ", 1 + Pick(60), Choose({"d", "h", "m"}));
      case 3:
        return absl::StrCat(R"(timestamp("2026-02-)", 10 + Pick(18), R"(T06:30:00Z"))");
      case 4:
        return absl::StrCat("orders.last_at + ", 1 + Pick(100), "h");
      default:
        return absl::StrCat(1 + Pick(30), "d + (", Time(depth - 1), ")");
    }
  }
  std::string Str() {
    return Choose({"profile.country", "profile.city", "attributes.tier", R"("GB")", R"("Lon")", R"("")", R"("gold")"});
  }
  int Pick(int n) { return std::uniform_int_distribution<int>(0, n - 1)(rng_); }
  std::string Choose(std::initializer_list<std::string> options) {
    return *(options.begin() + Pick(static_cast<int>(options.size())));
  }

  std::mt19937 rng_;
};

FakeCustomer RandomCustomer(std::mt19937& rng) {
  auto pick = [&](int n) { return std::uniform_int_distribution<int>(0, n - 1)(rng); };
  auto when = [&] { return kNow - absl::Seconds(pick(60 * 86400)); };
  FakeCustomer c;
  if (pick(3)) c.Set(Field::kCountry, Value::String(pick(2) ? "GB" : "FR"));
  if (pick(3)) c.Set(Field::kCity, Value::String(pick(2) ? "London" : "Lyon"));
  if (pick(3)) c.Set(Field::kOrdersCount, Value::Number(pick(6)));
  if (pick(3)) c.Set(Field::kOrdersTotal, Value::Number(pick(50000)));
  if (pick(3)) c.Set(Field::kOrdersLastAt, Value::Time(when()));
  if (pick(3)) c.Set(Field::kOrdersFirstAt, Value::Time(when()));
  if (pick(3)) c.Set(Field::kRfmR, Value::Number(1 + pick(5)));
  if (pick(3)) c.Set(Field::kClv, Value::Number(pick(1000) / 3.0));
  if (pick(2)) c.Set(Field::kAnonymous, Value::Bool(pick(2)));
  if (pick(2)) c.Consent(Channel::kEmail, Purpose::kMarketing);
  if (pick(2)) c.Consent(Channel::kSms, Purpose::kService);
  if (pick(2)) c.Attribute("tier", Value::String(pick(2) ? "gold" : "silver"));
  if (pick(2)) c.Attribute("vip", Value::Bool(pick(2)));
  if (pick(2)) c.Attribute("score", Value::Number(pick(20) - 5));
  if (pick(2)) c.Attribute("signup", Value::Time(when()));
  if (pick(2)) c.Interest("cycling");
  if (pick(2)) c.Segment("vip");
  for (int i = pick(12); i > 0; --i) c.Event("page_view", when());
  for (int i = pick(3); i > 0; --i) c.Event("purchase", when());
  for (int i = pick(4); i > 0; --i) c.Event("login", kNow - absl::Minutes(pick(4 * 24 * 60)));
  return c;
}

}  // namespace

TEST_CASE("rules: random rules round-trip, and their values hold until the next change", "[rules][property]") {
  std::mt19937 rng(20260301);
  int compiled = 0, time_relative = 0, scheduled = 0, probes = 0;
  for (uint32_t seed = 0; seed < 1500; ++seed) {
    RuleGenerator gen(seed);
    const std::string text = gen.Bool(3);
    INFO(text);
    const absl::StatusOr<Rule> rule = Compile(text, TestSchema());
    REQUIRE(rule.ok());
    ++compiled;
    time_relative += rule->dependencies().time_relative;
    const std::string printed = Format(*rule);
    const absl::StatusOr<Rule> again = Compile(printed, TestSchema());
    REQUIRE(again.ok());
    CHECK(Format(*again) == printed);
    for (int k = 0; k < 4; ++k) {
      const FakeCustomer c = RandomCustomer(rng);
      const Evaluation e = EvaluateWithNextChange(*rule, c, kNow);
      REQUIRE(e.truth == Evaluate(*rule, c, kNow));
      REQUIRE(Evaluate(*again, c, kNow) == e.truth);
      REQUIRE(e.next_change >= kNow);
      if (!rule->dependencies().time_relative) REQUIRE(e.next_change == absl::InfiniteFuture());
      if (e.next_change == kNow) continue;
      scheduled += e.next_change != absl::InfiniteFuture();
      // The value holds at every probed instant before the next change (up to 200 days out).
      const absl::Time end = std::min(e.next_change, kNow + 200 * kDay);
      std::vector<absl::Time> at = {kNow + absl::Nanoseconds(1), end - absl::Nanoseconds(1)};
      for (int p = 0; p < 6; ++p) {
        at.push_back(kNow +
                     absl::Seconds(std::uniform_int_distribution<int64_t>(0, absl::ToInt64Seconds(end - kNow))(rng)));
      }
      for (absl::Time t : at) {
        if (t < kNow || t >= end) continue;
        ++probes;
        INFO("at " << absl::FormatTime(t) << ", next change " << absl::FormatTime(e.next_change));
        REQUIRE(Evaluate(*rule, c, t) == e.truth);
      }
    }
  }
  CHECK(compiled == 1500);
  CHECK(time_relative > 500);  // the generator exercises time as intended
  CHECK(scheduled > 500);
  CHECK(probes > 10000);
}

TEST_CASE("rules: random token soup and mutated rules never crash the compiler", "[rules][property]") {
  static const std::vector<std::string> kTokens = {"profile.country",
                                                   "orders.count",
                                                   "orders.last_at",
                                                   "interests",
                                                   "consent.email",
                                                   "attributes.tier",
                                                   "attributes[\"2fa\"]",
                                                   "now",
                                                   "days_since",
                                                   "events.count",
                                                   "events.last_at",
                                                   "segment",
                                                   "has",
                                                   "timestamp",
                                                   "date",
                                                   ".startsWith",
                                                   ".contains",
                                                   "(",
                                                   ")",
                                                   "[",
                                                   "]",
                                                   ",",
                                                   ".",
                                                   "&&",
                                                   "||",
                                                   "!",
                                                   "==",
                                                   "!=",
                                                   "<",
                                                   "<=",
                                                   ">",
                                                   ">=",
                                                   "in",
                                                   "+",
                                                   "-",
                                                   "*",
                                                   "/",
                                                   "\"GB\"",
                                                   "\"page_view\"",
                                                   "\"vip\"",
                                                   "\"2026-01-01T00:00:00Z\"",
                                                   "30d",
                                                   "1.5",
                                                   "1e308",
                                                   "0",
                                                   "true",
                                                   "false",
                                                   "\"",
                                                   "'",
                                                   "\\",
                                                   "@",
                                                   "=",
                                                   "&",
                                                   "|",
                                                   "\n",
                                                   "//",
                                                   "\xc3\xa9",
                                                   "\xff",
                                                   " "};
  const std::regex well_formed(R"(^[0-9]+:[0-9]+: .+)");
  std::mt19937 rng(7);
  auto pick = [&](size_t n) { return std::uniform_int_distribution<size_t>(0, n - 1)(rng); };
  auto check = [&](const std::string& text) {
    const absl::StatusOr<Rule> rule = Compile(text, TestSchema());
    if (!rule.ok()) {
      INFO(text);
      REQUIRE(rule.status().code() == absl::StatusCode::kInvalidArgument);
      REQUIRE(std::regex_search(std::string(rule.status().message()), well_formed));
      return false;
    }
    const std::string printed = Format(*rule);
    const absl::StatusOr<Rule> again = Compile(printed, TestSchema());
    INFO(text << " printed as " << printed);
    REQUIRE(again.ok());
    REQUIRE(Format(*again) == printed);
    FakeCustomer c;
    REQUIRE(EvaluateWithNextChange(*rule, c, kNow).truth == Evaluate(*rule, c, kNow));
    return true;
  };
  int ok = 0;
  for (int i = 0; i < 20000; ++i) {
    std::string text;
    for (size_t n = 1 + pick(25); n > 0; --n) text += kTokens[pick(kTokens.size())] + (pick(2) ? " " : "");
    ok += check(text);
  }
  // Mutations of rules that compile: deletions, insertions, replacements and repeats.
  std::vector<std::string> seeds;
  for (uint32_t seed = 0; seed < 50; ++seed) seeds.push_back(RuleGenerator(seed + 10000).Bool(3));
  for (int i = 0; i < 20000; ++i) {
    std::string text = seeds[pick(seeds.size())];
    for (size_t m = 1 + pick(3); m > 0 && !text.empty(); --m) {
      const size_t at = pick(text.size());
      switch (pick(4)) {
        case 0:
          text.erase(at, 1 + pick(4));
          break;
        case 1:
          text.insert(at, kTokens[pick(kTokens.size())]);
          break;
        case 2:
          text[at] = static_cast<char>(pick(256));
          break;
        default:
          text.insert(at, text.substr(at, pick(20)));
          break;
      }
    }
    ok += check(text);
  }
  CHECK(ok > 300);  // some still compile and round-trip
}

TEST_CASE("rules: evaluation speed (not a test; run with [.bench])", "[.bench]") {
  const Rule rule = MustCompile(
      R"(profile.country == "GB" && orders.count >= 2 && days_since(orders.last_at) <= 90 && consent.email && )"
      R"("cycling" in interests && events.count("page_view", 30d) > 5)");
  FakeCustomer c;
  c.Set(Field::kCountry, Value::String("GB"))
      .Set(Field::kOrdersCount, Value::Number(2))
      .Set(Field::kOrdersLastAt, Value::Time(kNow - 9 * kDay))
      .Consent(Channel::kEmail, Purpose::kMarketing)
      .Interest("cycling");
  for (int i = 1; i <= 6; ++i) c.Event("page_view", kNow - i * kDay);
  for (bool track : {false, true}) {
    const int n = 1000000;
    int matches = 0;
    const absl::Time start = absl::Now();
    for (int i = 0; i < n; ++i) {
      matches += (track ? EvaluateWithNextChange(rule, c, kNow).truth : Evaluate(rule, c, kNow)) == Truth::kTrue;
    }
    const absl::Duration took = absl::Now() - start;
    WARN((track ? "EvaluateWithNextChange" : "Evaluate")
         << ": " << absl::ToDoubleNanoseconds(took) / n << " ns per evaluation (" << matches << " matches)");
  }
  // The evaluator's own cost: a view answering from arrays, as a columnar store would.
  class ArrayCustomer : public CustomerView {
   public:
    Value Field(const FieldRef& f) const override {
      if (f.kind == FieldRef::Kind::kConsent) return Value::Bool(f.id == 1 && f.purpose == 1);
      return f.kind == FieldRef::Kind::kBuiltin ? values[f.id] : Value::Missing();
    }
    bool ListContains(const FieldRef&, absl::string_view item) const override { return item == "cycling"; }
    int64_t EventCount(int32_t, absl::Duration, absl::Time) const override { return 6; }
    std::optional<absl::Time> LastEventAt(int32_t) const override { return std::nullopt; }
    bool InSegment(int32_t) const override { return false; }
    absl::Time EventCountAtMostAt(int32_t, absl::Duration, absl::Time now, int64_t) const override {
      return now + 24 * kDay;
    }
    Value values[kFieldCount];
  } flat;
  flat.values[static_cast<int>(Field::kCountry)] = Value::String("GB");
  flat.values[static_cast<int>(Field::kOrdersCount)] = Value::Number(2);
  flat.values[static_cast<int>(Field::kOrdersLastAt)] = Value::Time(kNow - 9 * kDay);
  for (bool track : {false, true}) {
    const int n = 1000000;
    int matches = 0;
    const absl::Time start = absl::Now();
    for (int i = 0; i < n; ++i) {
      matches += (track ? EvaluateWithNextChange(rule, flat, kNow).truth : Evaluate(rule, flat, kNow)) == Truth::kTrue;
    }
    const absl::Duration took = absl::Now() - start;
    WARN((track ? "EvaluateWithNextChange" : "Evaluate") << " over arrays: " << absl::ToDoubleNanoseconds(took) / n
                                                         << " ns per evaluation (" << matches << " matches)");
  }
}

// The whole-population evaluator against the per-customer one: the same members for every
// rule, on seeded random customers.
#include "population.h"

#include <catch2/catch.hpp>
#include <random>

#include "absl/strings/str_cat.h"
#include "absl/time/civil_time.h"
#include "ecrm/rules/evaluator.h"
#include "fakes.h"

namespace ecrm::segmentation {
namespace {

const absl::Time kNow = absl::FromCivil(absl::CivilSecond(2026, 6, 15, 10, 0, 0), absl::UTCTimeZone());

// 3,000 customers with every kind of value, some missing.
void Populate(Features& f) {
  std::mt19937_64 rng(20261201);
  auto pick = [&](int n) { return static_cast<int>(rng() % n); };
  const std::vector<std::string> countries = {"GB", "FR", "DE", "", "gb"};
  const std::vector<std::string> cities = {"London", "Leeds", "Paris", "", "Lyon"};
  const std::vector<std::string> interests = {"cycling", "golf", "running"};
  const std::vector<std::string> events = {"page_view", "login", "purchase"};
  for (int i = 0; i < 3000; ++i) {
    infostore::v1::Customer c;
    c.set_id(absl::StrCat("c_", i));
    c.mutable_profile()->mutable_address()->set_country(countries[pick(countries.size())]);
    c.mutable_profile()->mutable_address()->set_city(cities[pick(cities.size())]);
    if (pick(3) != 0) c.mutable_profile()->set_first_name(absl::StrCat("N", pick(50)));
    if (pick(2) == 0)
      c.mutable_profile()->set_birth_date(absl::StrCat(1950 + pick(50), "-0", 1 + pick(9), "-1", pick(9)));
    c.set_anonymous(pick(10) == 0);
    for (int ch = 1; ch <= 3; ++ch) {
      if (pick(2) == 0) continue;
      auto* consent = c.add_consents();
      consent->set_channel(static_cast<common::v1::Channel>(ch));
      consent->set_purpose(common::v1::PURPOSE_MARKETING);
      consent->set_status(pick(3) == 0 ? infostore::v1::CONSENT_STATUS_WITHDRAWN
                                       : infostore::v1::CONSENT_STATUS_GRANTED);
    }
    for (const auto& interest : interests) {
      if (pick(3) == 0) c.mutable_preferences()->add_interests(interest);
    }
    if (pick(2) == 0) (*c.mutable_attributes())["tier"].set_string_value(pick(2) ? "gold" : "silver");
    if (pick(2) == 0) (*c.mutable_attributes())["visits"].set_int_value(pick(20));
    if (pick(3) == 0) (*c.mutable_attributes())["vip"].set_bool_value(pick(2) == 0);
    f.SetCustomer(c);
    for (int e = pick(12); e > 0; --e) {
      infostore::v1::Event ev;
      ev.set_customer_id(c.id());
      ev.set_type(events[pick(events.size())]);
      *ev.mutable_occurred_at() = Ts(kNow - absl::Hours(pick(24 * 200)));
      if (ev.type() == "purchase") {
        ev.mutable_amount()->set_amount_minor(100 * (1 + pick(100)));
        ev.mutable_amount()->set_currency("EUR");
      }
      f.AddEvent(ev);
    }
    // Scores, as the refit writes them, for some.
    const CustomerNo n = *f.Find(c.id());
    if (pick(3) != 0) {
      const std::vector<std::string> cells = {"champions", "loyal", "lost"};
      f.SetRfm(n, static_cast<uint8_t>(1 + pick(5)), static_cast<uint8_t>(1 + pick(5)),
               static_cast<uint8_t>(1 + pick(5)), cells[pick(cells.size())]);
      f.SetClv(n, pick(500));
    }
    if (pick(2) == 0) f.SetEngagement(n, pick(101));
  }
  // Some are gone again.
  for (int i = 0; i < 3000; i += 97) f.Remove(absl::StrCat("c_", i));
}

class TestSchema final : public rules::Schema {
 public:
  explicit TestSchema(Features& f) : f_(f) {}
  std::optional<rules::AttributeInfo> FindAttribute(absl::string_view name) const override {
    return f_.FindAttribute(name);
  }
  std::optional<int32_t> FindEventType(absl::string_view name) const override { return f_.InternEventType(name); }
  std::optional<int32_t> FindSegment(absl::string_view name) const override {
    return name == "first" ? std::optional<int32_t>(0) : std::nullopt;
  }

 private:
  Features& f_;
};

// Segment 0: every third customer number.
class EveryThird final : public Memberships {
 public:
  bool Contains(int32_t segment, CustomerNo n) const override { return segment == 0 && n % 3 == 0; }
};

TEST_CASE("the population evaluator finds exactly the customers the per-customer evaluator does") {
  Features f;
  Populate(f);
  TestSchema schema(f);
  EveryThird memberships;
  const std::vector<std::pair<std::string, bool>> rules = {
      // rule, whether every conjunct is columnar (&&, || and ! of columnar shapes are)
      {"profile.address.country == \"GB\"", true},
      {"profile.address.country != \"GB\"", true},
      {"\"GB\" == profile.address.country && consent.email", true},
      {"profile.address.country > \"DE\" && profile.address.city.startsWith(\"L\")", true},
      {"profile.address.city.endsWith(\"s\") || profile.address.city.contains(\"ee\")", true},
      {"profile.address.country in [\"GB\", \"FR\"] && \"cycling\" in interests", true},
      {"orders.count >= 2 && orders.total > 5000", true},
      {"days_since(orders.last_at) <= 90", true},
      {"90 >= days_since(orders.last_at) && consent.sms.marketing", true},
      {"events.count(\"page_view\", 30d) > 1 && events.count(\"login\", 90d) >= 1", true},
      {"attributes.tier == \"gold\" && attributes.visits >= 10", true},
      {"attributes.vip", true},
      {"attributes.visits in [1, 2, 3]", true},
      {"customer.anonymous", true},
      {"segment(\"first\") && profile.address.country == \"FR\"", true},
      {"profile.birth_date < timestamp(\"1975-01-01T00:00:00Z\")", true},
      {"orders.last_at > now - 30d", false},
      {"!(profile.address.country == \"GB\")", true},
      {"!attributes.vip && orders.count + 1 > 2", false},
      {"has(profile.first_name) && profile.first_name.startsWith(\"N1\")", false},
      {"events.last_at(\"purchase\") > timestamp(\"2026-05-01T00:00:00Z\")", false},
      {"rfm.cell == \"champions\"", true},
      {"rfm.cell in [\"loyal\", \"lost\"] && rfm.r >= 3", true},
      {"clv > 250 && engagement >= 50", true},
      {"true", true},
      {"false || consent.push", true},
  };
  for (const auto& [text, columnar] : rules) {
    INFO(text);
    absl::StatusOr<rules::Rule> rule = rules::Compile(text, schema);
    REQUIRE(rule.ok());
    for (absl::Time now : {kNow, kNow + absl::Hours(24 * 45)}) {
      Roaring want;
      for (CustomerNo n : f.live()) {
        if (rules::Matches(*rule, CustomerFeatures(f, n, &memberships), now)) want.add(n);
      }
      PopulationResult got = EvaluatePopulation(*rule, f, &memberships, now);
      CHECK(got.members == want);
      CHECK((got.evaluated_one_by_one == 0) == columnar);
    }
  }
}

TEST_CASE("any &&, || and ! of columnar shapes is decided column by column, missing values included") {
  Features f;
  Populate(f);
  // Scores on some customers (rfm.cell is read from its own dictionary).
  for (CustomerNo n = 0; n < f.end(); n += 4) f.SetRfm(n, 1 + n % 5, 2, 3, n % 8 == 0 ? "champions" : "lost");
  TestSchema schema(f);
  EveryThird memberships;
  const std::vector<std::string> rules = {
      "!(profile.address.city == \"London\") || attributes.visits > 5",
      "!(attributes.vip || profile.first_name == \"N1\")",
      "!attributes.vip || !(attributes.tier == \"gold\")",
      "(consent.email && !(attributes.tier == \"gold\")) || (orders.count >= 2 && !customer.anonymous)",
      "profile.address.city.startsWith(\"L\") && !(profile.address.country in [\"GB\", \"FR\"] || segment(\"first\"))",
      "!(days_since(orders.last_at) > 30 && events.count(\"page_view\", 60d) >= 1) || attributes.vip",
      "((attributes.visits < 5 || attributes.visits > 15) && profile.birth_date >= timestamp(\"1970-01-01T00:00:00Z\"))"
      " || !(\"golf\" in interests || false)",
      "!(true && !(profile.address.country == \"DE\"))",
      "rfm.cell == \"champions\" || rfm.cell == \"lost\" && consent.sms",
      "!(rfm.cell == \"lost\")",
  };
  for (const std::string& text : rules) {
    INFO(text);
    absl::StatusOr<rules::Rule> rule = rules::Compile(text, schema);
    REQUIRE(rule.ok());
    for (absl::Time now : {kNow, kNow + absl::Hours(24 * 45)}) {
      Roaring want;
      for (CustomerNo n : f.live()) {
        if (rules::Matches(*rule, CustomerFeatures(f, n, &memberships), now)) want.add(n);
      }
      PopulationResult got = EvaluatePopulation(*rule, f, &memberships, now);
      CHECK(got.members == want);
      CHECK(got.evaluated_one_by_one == 0);
    }
  }
}

TEST_CASE("threads share the customers and find the same members") {
  Features f;
  // 200,000 customers: four blocks of 65,536 numbers, some gone.
  std::mt19937_64 rng(7);
  for (int i = 0; i < 200000; ++i) {
    infostore::v1::Customer c;
    c.set_id(absl::StrCat("c_", i));
    c.mutable_profile()->mutable_address()->set_country(rng() % 3 == 0 ? "GB" : "FR");
    c.mutable_behaviour()->set_order_count(static_cast<int64_t>(rng() % 5));
    f.SetCustomer(c);
    if (rng() % 4 == 0) {
      infostore::v1::Event ev;
      ev.set_customer_id(c.id());
      ev.set_type("page_view");
      *ev.mutable_occurred_at() = Ts(kNow - absl::Hours(static_cast<int64_t>(rng() % (24 * 60))));
      f.AddEvent(ev);
    }
  }
  for (int i = 0; i < 200000; i += 13) f.Remove(absl::StrCat("c_", i));
  TestSchema schema(f);
  for (const std::string text : {"profile.address.country == \"GB\" && orders.count >= 2",
                                 "events.count(\"page_view\", 30d) >= 1 || orders.count == 4",
                                 "orders.count + 1 > 3 && profile.address.country == \"FR\"", "true"}) {
    INFO(text);
    absl::StatusOr<rules::Rule> rule = rules::Compile(text, schema);
    REQUIRE(rule.ok());
    const PopulationResult one = EvaluatePopulation(*rule, f, nullptr, kNow);
    Roaring want;
    for (CustomerNo n : f.live()) {
      if (rules::Matches(*rule, CustomerFeatures(f, n), kNow)) want.add(n);
    }
    CHECK(one.members == want);
    for (int threads : {2, 3, 8}) {
      const PopulationResult many = EvaluatePopulation(*rule, f, nullptr, kNow, {.threads = threads});
      CHECK(many.members == want);
      CHECK(many.evaluated_one_by_one == one.evaluated_one_by_one);
    }
  }
}

TEST_CASE("time candidates: everyone else is out of a time-relative rule now and later without new data") {
  Features f;
  Populate(f);
  // Some events dated after now: their counts may still rise.
  for (int i = 1; i < 3000; i += 50) {
    infostore::v1::Event ev;
    ev.set_customer_id(absl::StrCat("c_", i));
    ev.set_type("page_view");
    *ev.mutable_occurred_at() = Ts(kNow + absl::Hours(24 * (1 + i % 20)));
    f.AddEvent(ev);
  }
  TestSchema schema(f);
  EveryThird memberships;
  const std::vector<std::pair<std::string, bool>> rules = {
      // rule, whether some customers are left out
      {"days_since(orders.last_at) <= 30 && consent.email", true},
      {"events.count(\"page_view\", 14d) >= 2 && profile.address.country == \"GB\"", true},
      {"events.count(\"page_view\", 7d) > 0", true},
      {"days_since(orders.last_at) > 60 && segment(\"first\")", true},
      {"events.count(\"login\", 30d) < 1 && orders.count >= 1", true},
      {"30 >= days_since(customer.last_seen_at) || events.count(\"login\", 30d) > 2", false},
      {"!(days_since(orders.last_at) < 10) && attributes.tier == \"gold\"", true},
      {"orders.last_at > now - 20d && consent.sms", true},
      {"orders.last_at > now - 20d", false},
  };
  for (const auto& [text, narrows] : rules) {
    INFO(text);
    absl::StatusOr<rules::Rule> rule = rules::Compile(text, schema);
    REQUIRE(rule.ok());
    const Roaring candidates = TimeCandidates(*rule, f, &memberships, kNow);
    CHECK((candidates.cardinality() < f.live().cardinality()) == narrows);
    for (CustomerNo n : f.live()) {
      if (candidates.contains(n)) continue;
      const CustomerFeatures view(f, n, &memberships);
      // (The per-customer evaluator may still name an earlier instant to look again: a rule
      // unknown now can be early; skipping that look changes nothing.)
      for (int hours : {0, 1, 14, 24, 24 * 7 + 13, 24 * 15, 24 * 29, 24 * 31, 24 * 61, 24 * 91, 24 * 400}) {
        INFO(n << " after " << hours << " h");
        CHECK_FALSE(rules::Matches(*rule, view, kNow + absl::Hours(hours)));
      }
    }
  }
}

}  // namespace
}  // namespace ecrm::segmentation

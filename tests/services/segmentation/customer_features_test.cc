#include "customer_features.h"

#include <catch2/catch.hpp>

#include "absl/strings/str_cat.h"
#include "absl/time/civil_time.h"
#include "fakes.h"

namespace ecrm::segmentation {
namespace {

using rules::Field;
using rules::FieldRef;
using rules::Value;

absl::Time Day(int y, int m, int d, int h = 12) {
  return absl::FromCivil(absl::CivilHour(y, m, d, h), absl::UTCTimeZone());
}

infostore::v1::Customer Customer(const std::string& id) {
  infostore::v1::Customer c;
  c.set_id(id);
  c.mutable_profile()->set_first_name("Ada");
  c.mutable_profile()->mutable_address()->set_country("GB");
  c.mutable_profile()->set_birth_date("1990-05-17");
  c.mutable_profile()->set_gender(infostore::v1::GENDER_FEMALE);
  c.mutable_preferences()->set_preferred_channel(common::v1::CHANNEL_EMAIL);
  c.mutable_preferences()->add_interests("cycling");
  auto* consent = c.add_consents();
  consent->set_channel(common::v1::CHANNEL_EMAIL);
  consent->set_purpose(common::v1::PURPOSE_MARKETING);
  consent->set_status(infostore::v1::CONSENT_STATUS_GRANTED);
  auto* denied = c.add_consents();
  denied->set_channel(common::v1::CHANNEL_SMS);
  denied->set_purpose(common::v1::PURPOSE_MARKETING);
  denied->set_status(infostore::v1::CONSENT_STATUS_WITHDRAWN);
  (*c.mutable_attributes())["tier"].set_string_value("gold");
  (*c.mutable_attributes())["score"].set_int_value(7);
  (*c.mutable_attributes())["vip"].set_bool_value(true);
  return c;
}

std::string Str(const Value& v) { return v.kind == Value::Kind::kString ? std::string(v.string) : "<missing>"; }

TEST_CASE("profile, preferences, consents and attributes read back by field") {
  Features f;
  const CustomerNo n = f.SetCustomer(Customer("c_1"));
  CHECK(f.IsLive(n));
  CHECK(Str(f.Field(n, FieldRef::Builtin(Field::kFirstName))) == "Ada");
  CHECK(Str(f.Field(n, FieldRef::Builtin(Field::kCountry))) == "GB");
  CHECK(Str(f.Field(n, FieldRef::Builtin(Field::kGender))) == "female");
  CHECK(Str(f.Field(n, FieldRef::Builtin(Field::kPreferredChannel))) == "email");
  CHECK(f.Field(n, FieldRef::Builtin(Field::kCompany)).kind == Value::Kind::kMissing);
  Value birth = f.Field(n, FieldRef::Builtin(Field::kBirthDate));
  REQUIRE(birth.kind == Value::Kind::kTime);
  CHECK(birth.time == absl::FromCivil(absl::CivilDay(1990, 5, 17), absl::UTCTimeZone()));
  CHECK(f.Field(n, FieldRef::Consent(rules::Channel::kEmail, rules::Purpose::kMarketing)).boolean);
  CHECK_FALSE(f.Field(n, FieldRef::Consent(rules::Channel::kSms, rules::Purpose::kMarketing)).boolean);
  CHECK(f.ListContains(n, FieldRef::Builtin(Field::kInterests), "cycling"));
  CHECK_FALSE(f.ListContains(n, FieldRef::Builtin(Field::kInterests), "golf"));

  auto tier = f.FindAttribute("tier");
  REQUIRE(tier);
  CHECK(tier->type == rules::Type::kString);
  CHECK(Str(f.Field(n, FieldRef::Attribute(tier->id))) == "gold");
  auto score = f.FindAttribute("score");
  REQUIRE(score);
  CHECK(score->type == rules::Type::kNumber);
  CHECK(f.Field(n, FieldRef::Attribute(score->id)).number == 7);
  CHECK(f.Field(n, FieldRef::Attribute(f.FindAttribute("vip")->id)).boolean);
  CHECK_FALSE(f.FindAttribute("nope"));

  // A later state replaces the earlier one: values removed are gone.
  infostore::v1::Customer later = Customer("c_1");
  later.mutable_profile()->clear_first_name();
  later.mutable_preferences()->clear_interests();
  later.mutable_attributes()->erase("tier");
  later.mutable_consents(0)->set_status(infostore::v1::CONSENT_STATUS_WITHDRAWN);
  CHECK(f.SetCustomer(later) == n);
  CHECK(f.Field(n, FieldRef::Builtin(Field::kFirstName)).kind == Value::Kind::kMissing);
  CHECK_FALSE(f.ListContains(n, FieldRef::Builtin(Field::kInterests), "cycling"));
  CHECK(f.Field(n, FieldRef::Attribute(tier->id)).kind == Value::Kind::kMissing);
  CHECK_FALSE(f.Field(n, FieldRef::Consent(rules::Channel::kEmail, rules::Purpose::kMarketing)).boolean);
}

TEST_CASE("events are counted by type in whole UTC days ending today") {
  Features f;
  const CustomerNo n = f.SetCustomer(Customer("c_1"));
  const int32_t view = f.InternEventType("page_view");
  const absl::Time now = Day(2026, 3, 31, 9);
  f.AddEvent(Event("c_1", "page_view", Day(2026, 3, 31, 1)));  // today
  f.AddEvent(Event("c_1", "page_view", Day(2026, 3, 2, 23)));  // day D-29: inside 30d
  f.AddEvent(Event("c_1", "page_view", Day(2026, 3, 1, 0)));   // day D-30: outside 30d
  f.AddEvent(Event("c_1", "login", Day(2026, 3, 31, 2)));
  CHECK(f.EventCount(n, view, absl::Hours(24 * 30), now) == 2);
  CHECK(f.EventCount(n, view, absl::Hours(24 * 31), now) == 3);
  CHECK(f.EventCount(n, view, absl::Hours(12), now) == 1);  // less than a day: today
  CHECK(f.EventCount(n, view, absl::InfiniteDuration(), now) == 3);
  CHECK(f.EventCount(n, *f.FindEventType("login"), absl::Hours(24), now) == 1);
  CHECK(*f.LastEventAt(n, view) == Day(2026, 3, 31, 1));
  CHECK_FALSE(f.LastEventAt(n, f.InternEventType("search")));

  // With 2 page views in 30 days, "at most 1" holds from the day the older one leaves.
  CHECK(f.EventCountAtMostAt(n, view, absl::Hours(24 * 30), now, 1) ==
        absl::FromCivil(absl::CivilDay(2026, 4, 1), absl::UTCTimeZone()));
  CHECK(f.EventCountAtMostAt(n, view, absl::Hours(24 * 30), now, 0) ==
        absl::FromCivil(absl::CivilDay(2026, 4, 30), absl::UTCTimeZone()));
  CHECK(f.EventCountAtMostAt(n, view, absl::Hours(24 * 30), now, 5) == now);
  // And the count agrees at those instants.
  CHECK(f.EventCount(n, view, absl::Hours(24 * 30), absl::FromCivil(absl::CivilDay(2026, 4, 1), absl::UTCTimeZone())) ==
        1);
  CHECK(f.EventCount(n, view, absl::Hours(24 * 30),
                     absl::FromCivil(absl::CivilSecond(2026, 3, 31, 23, 59, 59), absl::UTCTimeZone())) == 2);

  f.PruneEvents(Day(2026, 3, 31) + absl::Hours(24 * 401));
  CHECK(f.EventCount(n, view, absl::InfiniteDuration(), now) == 0);
  CHECK(f.LastEventAt(n, view));  // the latest time outlives the horizon
}

TEST_CASE("event days are pruned arena by arena, each arena's customers and no other") {
  Features f;
  const int customers = 70'000;  // two arenas of 65,536 numbers
  for (int i = 0; i < customers; ++i) {
    const std::string id = absl::StrCat("c_", i);
    f.SetCustomer(Customer(id));
    f.AddEvent(Event(id, "page_view", Day(2025, 1, 1)));  // past the horizon below
    f.AddEvent(Event(id, "page_view", Day(2026, 3, 30)));
  }
  REQUIRE(f.EventGroups() == 2);
  const int32_t view = *f.FindEventType("page_view");
  const absl::Time now = Day(2026, 3, 31);
  const auto total = [&](int from, int to) {
    int64_t sum = 0;
    for (int i = from; i < to; ++i)
      sum += f.EventCount(*f.Find(absl::StrCat("c_", i)), view, absl::InfiniteDuration(), now);
    return sum;
  };
  CHECK(total(0, customers) == 2 * customers);
  f.PruneEvents(Day(2026, 3, 31) + absl::Hours(24 * 300), 1);  // the horizon (400 days) passes 2025-01-01
  CHECK(total(0, 65'536) == 2 * 65'536);
  CHECK(total(65'536, customers) == customers - 65'536);
  f.PruneEvents(Day(2026, 3, 31) + absl::Hours(24 * 300), 0);
  CHECK(total(0, customers) == customers);
}

TEST_CASE("orders are aggregated as the information store's behaviour summary") {
  Features f;
  const CustomerNo n = f.SetCustomer(Customer("c_1"));
  f.AddEvent(Event("c_1", "purchase", Day(2026, 1, 10), 5000));
  f.AddEvent(Event("c_1", "purchase", Day(2026, 2, 10), 3000));
  f.AddEvent(Event("c_1", "refund", Day(2026, 2, 11), 1000));
  f.AddEvent(Event("c_1", "order_cancelled", Day(2026, 2, 12), 3000));
  CHECK(f.Field(n, FieldRef::Builtin(Field::kOrdersCount)).number == 1);
  CHECK(f.Field(n, FieldRef::Builtin(Field::kOrdersTotal)).number == 4000);
  CHECK(f.Field(n, FieldRef::Builtin(Field::kOrdersFirstAt)).time == Day(2026, 1, 10));
  CHECK(f.Field(n, FieldRef::Builtin(Field::kOrdersLastAt)).time == Day(2026, 2, 10));
  CHECK(f.Field(n, FieldRef::Builtin(Field::kLastSeenAt)).time == Day(2026, 2, 12));

  const CustomerNo other = f.SetCustomer(Customer("c_2"));
  CHECK(f.Field(other, FieldRef::Builtin(Field::kOrdersCount)).number == 0);
  CHECK(f.Field(other, FieldRef::Builtin(Field::kOrdersLastAt)).kind == Value::Kind::kMissing);
}

TEST_CASE("a merge moves event days to the survivor, and removal forgets everything") {
  Features f;
  const CustomerNo a = f.SetCustomer(Customer("c_a"));
  const CustomerNo b = f.SetCustomer(Customer("c_b"));
  const int32_t view = f.InternEventType("page_view");
  const absl::Time now = Day(2026, 3, 31);
  f.AddEvent(Event("c_a", "page_view", Day(2026, 3, 30)));
  f.AddEvent(Event("c_b", "page_view", Day(2026, 3, 30)));
  f.AddEvent(Event("c_b", "page_view", Day(2026, 3, 31, 6)));
  f.Merge("c_a", {"c_b"});
  CHECK(f.EventCount(a, view, absl::Hours(24 * 7), now) == 3);
  CHECK(*f.LastEventAt(a, view) == Day(2026, 3, 31, 6));
  CHECK_FALSE(f.IsLive(b));
  CHECK(f.EventCount(b, view, absl::Hours(24 * 7), now) == 0);
  CHECK(f.Field(b, FieldRef::Builtin(Field::kFirstName)).kind == Value::Kind::kMissing);
  CHECK_FALSE(f.ListContains(b, FieldRef::Builtin(Field::kInterests), "cycling"));
  CHECK(f.live().cardinality() == 1);

  f.Remove("c_a");
  CHECK(f.live().cardinality() == 0);
  CHECK(f.Field(a, FieldRef::Attribute(f.FindAttribute("tier")->id)).kind == Value::Kind::kMissing);
}

TEST_CASE("a customer saved as a record loads back the same") {
  Features f;
  const CustomerNo n = f.SetCustomer(Customer("c_1"));
  const absl::Time now = Day(2026, 3, 31);
  f.AddEvent(Event("c_1", "purchase", Day(2026, 3, 1), 2500));
  f.AddEvent(Event("c_1", "page_view", Day(2026, 3, 30)));
  f.AddEvent(Event("c_1", "page_view", Day(2026, 3, 30, 18)));
  infostore::v1::Customer anon;
  anon.set_id("c_2");
  anon.set_anonymous(true);
  f.SetCustomer(anon);
  const internal::CustomerFeaturesRecord saved = f.ToRecord(n);

  Features g;
  g.FromRecord("c_2", f.ToRecord(*f.Find("c_2")));  // numbers need not match
  const CustomerNo m = g.FromRecord("c_1", saved);
  CHECK(g.ToRecord(m).SerializeAsString() == saved.SerializeAsString());
  CHECK(g.Field(*g.Find("c_2"), FieldRef::Builtin(Field::kAnonymous)).boolean);
  CHECK(Str(g.Field(m, FieldRef::Builtin(Field::kCountry))) == "GB");
  CHECK(g.Field(m, FieldRef::Attribute(g.FindAttribute("vip")->id)).boolean);
  CHECK(g.Field(m, FieldRef::Builtin(Field::kOrdersTotal)).number == 2500);
  CHECK(g.EventCount(m, *g.FindEventType("page_view"), absl::Hours(24 * 7), now) == 2);
  CHECK(*g.LastEventAt(m, *g.FindEventType("page_view")) == Day(2026, 3, 30, 18));
  CHECK(g.ListContains(m, FieldRef::Builtin(Field::kInterests), "cycling"));
}

TEST_CASE("ids are found by text and by number, and an erased id is forgotten") {
  Features f;
  std::vector<std::string> ids;
  for (int i = 0; i < 5000; ++i) ids.push_back(absl::StrCat("c_", i, i % 7 == 0 ? std::string(300, 'x') : ""));
  for (const std::string& id : ids) f.SetCustomer(Customer(id));
  REQUIRE(f.end() == 5000);
  for (CustomerNo n = 0; n < 5000; ++n) {
    CHECK(f.Id(n) == ids[n]);
    CHECK(f.Find(ids[n]) == n);
  }
  CHECK_FALSE(f.Find("c_5000"));
  CHECK_FALSE(f.Find("c_10000"));

  for (CustomerNo n = 0; n < 5000; n += 3) f.Remove(ids[n]);
  for (CustomerNo n = 0; n < 5000; ++n) {
    if (n % 3 == 0) {
      CHECK(f.Id(n).empty());
      CHECK_FALSE(f.Find(ids[n]));
      CHECK_FALSE(f.IsLive(n));
    } else {
      CHECK(f.Id(n) == ids[n]);
      CHECK(f.Find(ids[n]) == n);
    }
  }
  // An id seen again after its erasure is a new customer number.
  CHECK(f.SetCustomer(Customer(ids[0])) == 5000);
  CHECK(f.Id(5000) == ids[0]);
  CHECK(f.live().cardinality() == 5000 - 1667 + 1);
}

TEST_CASE("times outside 1931-2068 and events outside 1970-2106 are kept exactly") {
  Features f;
  infostore::v1::Customer c = Customer("c_1");
  c.mutable_profile()->set_birth_date("1905-02-03");
  *c.mutable_created_at() = Ts(absl::FromCivil(absl::CivilSecond(2090, 1, 2, 3, 4, 5), absl::UTCTimeZone()));
  const CustomerNo n = f.SetCustomer(c);
  CHECK(f.Field(n, FieldRef::Builtin(Field::kBirthDate)).time ==
        absl::FromCivil(absl::CivilDay(1905, 2, 3), absl::UTCTimeZone()));
  CHECK(f.Field(n, FieldRef::Builtin(Field::kCreatedAt)).time ==
        absl::FromCivil(absl::CivilSecond(2090, 1, 2, 3, 4, 5), absl::UTCTimeZone()));
  const absl::Time old = absl::FromCivil(absl::CivilSecond(1969, 12, 31, 23, 59, 59), absl::UTCTimeZone());
  const absl::Time late = absl::FromCivil(absl::CivilSecond(2110, 1, 1, 0, 0, 1), absl::UTCTimeZone());
  f.AddEvent(Event("c_1", "login", old));
  f.AddEvent(Event("c_1", "page_view", late));
  f.AddEvent(Event("c_1", "page_view", Day(2026, 3, 1)));
  CHECK(*f.LastEventAt(n, *f.FindEventType("login")) == old);
  CHECK(*f.LastEventAt(n, *f.FindEventType("page_view")) == late);

  Features g;
  const CustomerNo m = g.FromRecord("c_1", f.ToRecord(n));
  CHECK(g.ToRecord(m).SerializeAsString() == f.ToRecord(n).SerializeAsString());
  CHECK(*g.LastEventAt(m, *g.FindEventType("page_view")) == late);

  // Back inside the range: the time aside is replaced.
  c.mutable_profile()->set_birth_date("1990-05-17");
  f.SetCustomer(c);
  CHECK(f.Field(n, FieldRef::Builtin(Field::kBirthDate)).time ==
        absl::FromCivil(absl::CivilDay(1990, 5, 17), absl::UTCTimeZone()));
  f.Remove("c_1");
  CHECK_FALSE(f.LastEventAt(n, *f.FindEventType("login")));
  CHECK(f.Field(n, FieldRef::Builtin(Field::kCreatedAt)).kind == Value::Kind::kMissing);
}

TEST_CASE("many event types, many days and large counts per customer") {
  Features f;
  const CustomerNo n = f.SetCustomer(Customer("c_1"));
  const absl::Time now = Day(2026, 3, 31, 23);
  // 300 types, each on days D-k for k < (type % 40) + 1, in an order unlike the types'.
  for (int round = 0; round < 40; ++round) {
    for (int t = 299; t >= 0; --t) {
      if (round > t % 40) continue;
      f.AddEvent(Event("c_1", absl::StrCat("type_", t), Day(2026, 3, 31, 1) - absl::Hours(24 * round)));
    }
  }
  for (int t = 0; t < 300; ++t) {
    const int32_t type = *f.FindEventType(absl::StrCat("type_", t));
    INFO(t);
    CHECK(f.EventCount(n, type, absl::Hours(24 * 400), now) == t % 40 + 1);
    CHECK(f.EventCount(n, type, absl::Hours(24 * 10), now) == std::min(t % 40 + 1, 10));
    CHECK(*f.LastEventAt(n, type) == Day(2026, 3, 31, 1));
  }
  // A day with more than 65,535 events of a type, read back from a record and merged.
  const int32_t view = f.InternEventType("page_view");
  internal::CustomerFeaturesRecord r;
  auto* day = r.add_days();
  day->set_type("page_view");
  day->set_day(static_cast<int32_t>(absl::ToUnixSeconds(Day(2026, 3, 30)) / 86400));
  day->set_count(200000);
  f.FromRecord("c_2", r);
  f.AddEvent(Event("c_1", "page_view", Day(2026, 3, 30, 20)));
  f.Merge("c_1", {"c_2"});
  CHECK(f.EventCount(n, view, absl::Hours(24 * 7), now) == 200001);
  CHECK(*f.LastEventAt(n, view) == Day(2026, 3, 30, 20));
  // Saved as one day, and at most 1 holds once that day has left a 2-day window.
  const internal::CustomerFeaturesRecord saved = f.ToRecord(n);
  int page_view_days = 0;
  for (const auto& d : saved.days()) {
    if (d.type() != "page_view") continue;
    ++page_view_days;
    CHECK(d.count() == 200001);
  }
  CHECK(page_view_days == 1);
  CHECK(f.EventCountAtMostAt(n, view, absl::Hours(48), now, 1) ==
        absl::FromCivil(absl::CivilDay(2026, 4, 1), absl::UTCTimeZone()));
  Features g;
  const CustomerNo m = g.FromRecord("c_1", saved);
  CHECK(g.EventCount(m, *g.FindEventType("page_view"), absl::Hours(24 * 7), now) == 200001);
  CHECK(g.ToRecord(m).SerializeAsString() == saved.SerializeAsString());
  // Pruning keeps the days inside the horizon and the latest times.
  f.PruneEvents(Day(2026, 3, 31) + absl::Hours(24 * 396));  // keeps 2026-03-27 on
  CHECK(f.EventCount(n, view, absl::InfiniteDuration(), now) == 200001);
  CHECK(f.EventCount(n, *f.FindEventType("type_39"), absl::InfiniteDuration(), now) == 5);
  CHECK(f.EventCount(n, *f.FindEventType("type_0"), absl::InfiniteDuration(), now) == 1);
  CHECK(*f.LastEventAt(n, view) == Day(2026, 3, 30, 20));
}

TEST_CASE("a customer's events saved apart from the record load back the same, and bad bytes are DATA_LOSS") {
  Features f;
  const CustomerNo n = f.SetCustomer(Customer("c_1"));
  const absl::Time now = Day(2026, 3, 31, 23);
  const absl::Time old = absl::FromCivil(absl::CivilSecond(1969, 12, 31, 23, 59, 59), absl::UTCTimeZone());
  const absl::Time late = absl::FromCivil(absl::CivilSecond(2110, 1, 1, 0, 0, 1), absl::UTCTimeZone());
  f.AddEvent(Event("c_1", "purchase", Day(2026, 3, 1), 2500));
  f.AddEvent(Event("c_1", "login", old));
  f.AddEvent(Event("c_1", "page_view", late));
  for (int d = 0; d < 30; ++d) f.AddEvent(Event("c_1", "page_view", Day(2026, 3, 1 + d, d % 24)));
  // A day with more than 65,535 events, merged in from a record.
  internal::CustomerFeaturesRecord r;
  auto* day = r.add_days();
  day->set_type("page_view");
  day->set_day(static_cast<int32_t>(absl::ToUnixSeconds(Day(2026, 3, 30)) / 86400));
  day->set_count(200000);
  f.FromRecord("c_2", r);
  f.Merge("c_1", {"c_2"});
  const std::string events = f.EventsToBytes(n);
  const internal::CustomerFeaturesRecord profile = f.ToRecord(n, false);
  CHECK(profile.days().empty());
  CHECK(profile.last().empty());
  CHECK(events.size() < f.ToRecord(n).ByteSizeLong() - profile.ByteSizeLong());

  // Into a customer that had other events: they are replaced.
  Features g;
  g.AddEvent(Event("c_0", "email_open", Day(2026, 3, 2)));
  const CustomerNo m = g.FromRecord("c_1", profile);
  g.AddEvent(Event("c_1", "email_open", Day(2026, 3, 3)));
  REQUIRE(g.EventsFromBytes(m, events).ok());
  CHECK(g.ToRecord(m).SerializeAsString() == f.ToRecord(n).SerializeAsString());
  CHECK(g.EventCount(m, *g.FindEventType("page_view"), absl::Hours(24 * 7), now) == 200000 + 6);
  CHECK(*g.LastEventAt(m, *g.FindEventType("login")) == old);
  CHECK(*g.LastEventAt(m, *g.FindEventType("page_view")) == late);
  CHECK_FALSE(g.LastEventAt(m, *g.FindEventType("email_open")));
  CHECK(g.EventCount(*g.Find("c_0"), *g.FindEventType("email_open"), absl::Hours(24 * 60), now) == 1);
  CHECK(g.EventsToBytes(m) == events);

  // None.
  const CustomerNo none = f.SetCustomer(Customer("c_3"));
  REQUIRE(g.EventsFromBytes(m, f.EventsToBytes(none)).ok());
  CHECK_FALSE(g.LastEventAt(m, *g.FindEventType("page_view")));

  for (const std::string& bad :
       {std::string(), std::string("\x02"), events.substr(0, events.size() - 1), events.substr(0, 3)}) {
    CHECK(g.EventsFromBytes(m, bad).code() == absl::StatusCode::kDataLoss);
  }
  CHECK(Features::ChangesOrders(Event("c_1", "purchase", now, 100)));
  CHECK(Features::ChangesOrders(Event("c_1", "order_cancelled", now)));
  CHECK_FALSE(Features::ChangesOrders(Event("c_1", "page_view", now)));
}

}  // namespace
}  // namespace ecrm::segmentation

// Segments in-process: a time-relative segment's first fill decides its members over the whole
// population and leaves their scheduling to Tick, which loses no time-driven change.
#include "segments.h"

#include <algorithm>
#include <catch2/catch.hpp>
#include <iterator>
#include <map>
#include <set>
#include <shared_mutex>

#include <prometheus/registry.h>

#include "absl/strings/str_cat.h"
#include "ecrm/outbox/outbox.h"
#include "ecrm/rules/evaluator.h"
#include "ecrm/testing/process.h"
#include "fakes.h"
#include "feed.h"
#include "metrics.h"
#include "schema.h"

namespace ecrm::segmentation {
namespace {

const absl::Time kStart = absl::FromUnixSeconds(1'780'000'000);

TEST_CASE(
    "a time-relative segment filled at once leaves and takes customers on the right days after Tick "
    "schedules them, budget by budget") {
  ecrm::testing::TempDir dir;
  auto db = sql::Database::Open(absl::StrCat("sqlite://", dir.path(), "/segmentation.db"));
  REQUIRE(db.ok());
  REQUIRE((*db)->Migrate("segmentation", kMigrations).ok());
  Features features;
  // 250,000 customers, each with a last order 0–59 days before the start: more candidates than
  // one Tick schedules.
  const int customers = 250'000;
  for (int i = 0; i < customers; ++i) {
    infostore::v1::Customer c;
    c.set_id(absl::StrCat("c_", i));
    const absl::Time last = kStart - absl::Hours(24 * (i % 60)) - absl::Minutes(i % 1440);  // as last_order(i)
    c.mutable_behaviour()->set_order_count(1);
    c.mutable_behaviour()->mutable_last_order_at()->set_seconds(absl::ToUnixSeconds(last));
    features.SetCustomer(c);
  }
  absl::Time now = kStart;
  Segments segments(**db, features, [&] { return now; });
  REQUIRE(segments.Load().ok());
  v1::Segment s;
  s.set_name("recent");
  s.set_rule("days_since(orders.last_at) <= 30");
  auto created = segments.Create(s);
  REQUIRE(created.ok());

  const auto last_order = [&](int i) { return kStart - absl::Hours(24 * (i % 60)) - absl::Minutes(i % 1440); };
  const auto expected = [&] {
    std::set<CustomerNo> in;
    for (int i = 0; i < customers; ++i) {
      if (absl::ToInt64Seconds(now - last_order(i)) / 86400 <= 30) in.insert(*features.Find(absl::StrCat("c_", i)));
    }
    return in;
  };
  const auto members = [&] {
    std::shared_lock lock(features.mutex());
    const Roaring* m = segments.Members(created->id());
    return std::set<CustomerNo>(m->begin(), m->end());
  };
  const std::set<CustomerNo> before = members();
  CHECK(before == expected());
  CHECK(before.size() > 100'000);  // more than one Tick's budget to schedule

  // Ten days later, two Ticks: the first finds the candidates and schedules a budget's worth, the second the rest and
  // what fell due. Every customer whose last order is now more than 30 days old has left,
  // each once.
  now = kStart + absl::Hours(24 * 10);
  std::vector<MembershipChange> out;
  {
    std::unique_lock lock(features.mutex());
    segments.Tick(out);
    segments.Tick(out);
  }
  CHECK(members() == expected());
  std::set<CustomerNo> left;
  for (const MembershipChange& m : out) {
    CHECK_FALSE(m.entered);
    CHECK(left.insert(m.customer).second);
  }
  std::set<CustomerNo> gone;
  const std::set<CustomerNo> after = expected();
  std::set_difference(before.begin(), before.end(), after.begin(), after.end(), std::inserter(gone, gone.end()));
  CHECK(left == gone);
  CHECK(!gone.empty());

  // And 25 more days on, everyone else has left too, with no new data.
  now = kStart + absl::Hours(24 * 35);
  out.clear();
  {
    std::unique_lock lock(features.mutex());
    segments.Tick(out);
  }
  CHECK(members() == expected());
  CHECK(members().empty());
}

TEST_CASE(
    "an event re-evaluates the segments that read its type or first and last seen, an order also those that "
    "read the orders, a customer new to the engine every segment, and each stays exact") {
  ecrm::testing::TempDir dir;
  auto db = sql::Database::Open(absl::StrCat("sqlite://", dir.path(), "/segmentation.db"));
  REQUIRE(db.ok());
  REQUIRE((*db)->Migrate("segmentation", kMigrations).ok());
  Features features;
  const absl::Time now = absl::FromUnixSeconds(absl::ToUnixSeconds(absl::Now()));
  Segments segments(**db, features, [&] { return now; });
  REQUIRE(segments.Load().ok());
  outbox::Outbox outbox(**db);
  prometheus::Registry registry;
  SegmentationMetrics metrics(registry);
  NoStore store;
  FeedConsumer feed(**db, features, segments, store, outbox, metrics);
  REQUIRE(feed.Load().ok());
  const std::string seen_after = absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", now - absl::Hours(1), absl::UTCTimeZone());
  std::map<std::string, std::string> ids;  // name → segment id
  for (const auto& [name, rule] : std::vector<std::pair<std::string, std::string>>{
           {"seen-lately", absl::StrCat("customer.last_seen_at > timestamp(\"", seen_after, "\")")},
           {"first-seen-long-ago", absl::StrCat("customer.first_seen_at < timestamp(\"", seen_after, "\")")},
           {"buyers", "orders.count >= 1"},
           {"no-orders", "orders.count == 0"},
           {"viewers", "events.count(\"page_view\", 30d) >= 1"},
           {"named", "profile.first_name == \"Ada\""},
           {"no-email-consent", "!consent.email"},
           {"no-views", "events.count(\"page_view\", 30d) == 0"}}) {
    v1::Segment s;
    s.set_name(name);
    s.set_rule(rule);
    auto created = segments.Create(s);
    REQUIRE(created.ok());
    ids[name] = created->id();
  }
  int64_t sequence = 0;
  auto apply = [&](infostore::v1::Change c, const std::string& customer = "c_1") {
    infostore::v1::WatchChangesResponse m;
    c.set_sequence(++sequence);
    c.set_customer_id(customer);
    *c.mutable_committed_at() = Ts(now);
    *m.add_changes() = std::move(c);
    m.set_position(sequence);
    REQUIRE(feed.Apply(m).ok());
  };
  auto event = [&](const std::string& type, absl::Time at) {
    infostore::v1::Change c;
    c.set_kind(infostore::v1::CHANGE_KIND_EVENT);
    *c.mutable_event() = Event("c_1", type, at, type == "purchase" ? 1000 : 0);
    c.mutable_event()->set_event_id(absl::StrCat("e", sequence));
    apply(c);
  };
  auto in = [&](const std::string& customer = "c_1") {
    std::set<std::string> out;
    std::shared_lock lock(features.mutex());
    std::optional<CustomerNo> n = features.Find(customer);
    if (!n) return out;
    for (const auto& [name, id] : ids) {
      if (segments.Members(id)->contains(*n)) out.insert(name);
    }
    return out;
  };
  // A customer with a profile and nothing else.
  infostore::v1::Change profile;
  profile.set_kind(infostore::v1::CHANGE_KIND_PROFILE);
  profile.mutable_customer()->set_id("c_1");
  profile.mutable_customer()->mutable_profile()->set_first_name("Ada");
  apply(profile);
  // A customer new to the engine is evaluated against every segment, whatever the change read.
  CHECK(in() == std::set<std::string>{"named", "no-orders", "no-email-consent", "no-views"});
  // An old page view: first and last seen move (long ago), the viewers' window does not reach it.
  event("page_view", now - absl::Hours(24 * 40));
  CHECK(in() == std::set<std::string>{"named", "no-orders", "no-email-consent", "no-views", "first-seen-long-ago"});
  // A page view now: last seen moves; no order, so the order segments keep their members.
  event("page_view", now);
  CHECK(in() == std::set<std::string>{"named", "no-orders", "no-email-consent", "first-seen-long-ago", "seen-lately",
                                      "viewers"});
  // A purchase: the order segments move.
  event("purchase", now);
  CHECK(in() ==
        std::set<std::string>{"named", "buyers", "no-email-consent", "first-seen-long-ago", "seen-lately", "viewers"});
  // A customer first known by a consent change (SMS): in the segments an empty customer is in.
  infostore::v1::Change consent;
  consent.set_kind(infostore::v1::CHANGE_KIND_CONSENT);
  consent.mutable_customer()->set_id("c_2");
  infostore::v1::Consent* sms = consent.mutable_customer()->add_consents();
  sms->set_channel(common::v1::CHANNEL_SMS);
  sms->set_purpose(common::v1::PURPOSE_MARKETING);
  sms->set_status(infostore::v1::CONSENT_STATUS_GRANTED);
  apply(consent, "c_2");
  CHECK(in("c_2") == std::set<std::string>{"no-orders", "no-email-consent", "no-views"});
}

}  // namespace
}  // namespace ecrm::segmentation

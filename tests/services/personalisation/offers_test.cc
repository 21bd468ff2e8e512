// Offers in-process: a temporary SQLite database, a fake information store and a fake
// segmentation. Validation naming the field (rules with line:column), CRUD, eligibility by rule
// over profile, consents, attributes, preferences and behaviour, and by segment; ranking;
// every rejection reason; caps and budgets exact under concurrent decisions; export and erasure.
#include <google/protobuf/util/message_differencer.h>
#include <prometheus/registry.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <functional>
#include <thread>

#include "absl/strings/match.h"
#include "customers.h"
#include "ecrm/testing/process.h"
#include "ecrm/util/util.h"
#include "messages.h"
#include "offers.h"
#include "privacy.h"
#include "schema.h"
#include "templates.h"

namespace {

namespace p = ecrm::personalisation;
namespace v1 = ecrm::personalisation::v1;
namespace common = ecrm::common::v1;
using ecrm::infostore::v1::Customer;

class FakeDirectory final : public p::CustomerDirectory {
 public:
  absl::StatusOr<ecrm::infostore::v1::BatchGetCustomersResponse> BatchGetCustomers(
      absl::Span<const std::string> ids) override {
    ecrm::infostore::v1::BatchGetCustomersResponse resp;
    for (const std::string& id : ids) {
      auto it = customers.find(id);
      if (it != customers.end()) *resp.add_customers() = it->second;
    }
    return resp;
  }
  std::map<std::string, Customer> customers;
};

class FakeSegments final : public p::SegmentDirectory {
 public:
  absl::StatusOr<std::vector<std::string>> CustomerSegments(const std::string& customer_id) override {
    ++calls;
    if (down) return absl::UnavailableError("segmentation: down");
    return members[customer_id];
  }
  std::map<std::string, std::vector<std::string>> members;
  bool down = false;
  std::atomic<int> calls{0};
};

const absl::Time kNow = absl::FromCivil(absl::CivilSecond(2026, 6, 1, 12, 0, 0), absl::UTCTimeZone());

struct Engine {
  Engine() {
    auto opened = ecrm::sql::Database::Open("sqlite://" + dir.path() + "/personalisation.db");
    REQUIRE(opened.ok());
    db = std::move(*opened);
    REQUIRE(db->Migrate("personalisation", p::kMigrations).ok());
    offers = std::make_unique<p::Offers>(*db, customers, &segments, [this] { return now; });
  }
  v1::Offer Create(const v1::Offer& o) {
    absl::StatusOr<v1::Offer> created = offers->Create(o);
    INFO(created.status().ToString());
    REQUIRE(created.ok());
    return *created;
  }
  absl::StatusOr<v1::DecideOffersResponse> Decide(const std::string& customer, const std::string& placement = "home",
                                                  common::Channel channel = common::CHANNEL_WEB, int max = 0,
                                                  bool record = false) {
    v1::DecideOffersRequest req;
    req.set_customer_id(customer);
    req.set_placement(placement);
    req.set_channel(channel);
    req.set_max_offers(max);
    req.set_record_impression(record);
    return offers->Decide(req);
  }
  std::vector<std::string> Ids(const v1::DecideOffersResponse& r) {
    std::vector<std::string> out;
    for (const auto& d : r.decisions()) out.push_back(d.offer().name());
    return out;
  }

  ecrm::testing::TempDir dir;
  std::unique_ptr<ecrm::sql::Database> db;
  prometheus::Registry registry;
  p::PersonalisationMetrics metrics{registry};
  FakeDirectory directory;
  FakeSegments segments;
  p::Customers customers{nullptr, &directory, metrics};
  absl::Time now = kNow;  // changed only while no decision runs
  std::unique_ptr<p::Offers> offers;
};

v1::Offer Percent(const std::string& name, int percent, int priority = 0) {
  v1::Offer o;
  o.set_name(name);
  o.set_headline(name + " headline");
  o.set_kind(v1::OFFER_KIND_PERCENT_OFF);
  o.set_percent_off(percent);
  o.set_priority(priority);
  o.set_active(true);
  return o;
}

Customer Alice() {
  Customer c;
  c.set_id("c_alice");
  c.mutable_profile()->set_first_name("Alice");
  c.mutable_profile()->mutable_address()->set_country("GB");
  c.mutable_profile()->set_gender(ecrm::infostore::v1::GENDER_FEMALE);
  (*c.mutable_attributes())["tier"].set_string_value("gold");
  (*c.mutable_attributes())["score"].set_int_value(7);
  (*c.mutable_attributes())["vip"].set_bool_value(true);
  c.mutable_preferences()->add_interests("cycling");
  c.mutable_preferences()->set_preferred_channel(common::CHANNEL_EMAIL);
  auto* consent = c.add_consents();
  consent->set_channel(common::CHANNEL_EMAIL);
  consent->set_purpose(common::PURPOSE_MARKETING);
  consent->set_status(ecrm::infostore::v1::CONSENT_STATUS_GRANTED);
  c.mutable_behaviour()->set_order_count(4);
  c.mutable_behaviour()->mutable_total_spent()->set_amount_minor(25000);
  c.mutable_behaviour()->mutable_total_spent()->set_currency("GBP");
  (*c.mutable_behaviour()->mutable_event_counts())["page_view"] = 12;
  *c.mutable_behaviour()->mutable_last_order_at() = ecrm::util::Ts(absl::ToUnixMicros(kNow - absl::Hours(24 * 10)));
  return c;
}

std::string ErrorOf(const absl::StatusOr<v1::Offer>& r) { return r.ok() ? "ok" : std::string(r.status().message()); }

// Templates and messages over an engine's offers, with one email template of `text_body`.
struct Rendering {
  Rendering(Engine& e, const std::string& text_body)
      : templates(*e.db, e.metrics), messages(templates, e.customers, e.metrics) {
    messages.set_offers(e.offers.get());
    v1::Template t;
    t.set_name("offers");
    t.set_channel(common::CHANNEL_EMAIL);
    t.set_subject("For you");
    t.set_text_body(text_body);
    absl::StatusOr<v1::Template> created = templates.Create(t);
    REQUIRE(created.ok());
    template_id = created->id();
  }
  // A BatchRender of the template for c_alice, c_bob and c_nobody (unknown) at `placement`.
  v1::BatchRenderRequest Batch(const std::string& placement) const {
    v1::BatchRenderRequest req;
    req.set_template_id(template_id);
    for (const char* id : {"c_alice", "c_bob", "c_nobody"}) req.add_customer_ids(id);
    req.set_placement(placement);
    return req;
  }

  p::Templates templates;
  p::Messages messages;
  std::string template_id;
};

}  // namespace

TEST_CASE("offers: bad input is refused naming the field") {
  Engine e;
  auto bad = [&](auto edit) {
    v1::Offer o = Percent("x", 10);
    edit(o);
    absl::StatusOr<v1::Offer> r = e.offers->Create(o);
    if (!r.ok()) CHECK(r.status().code() == absl::StatusCode::kInvalidArgument);
    return ErrorOf(r);
  };
  CHECK(bad([](v1::Offer& o) { o.clear_name(); }) == "offer.name: required");
  CHECK(absl::StartsWith(bad([](v1::Offer& o) { o.set_kind(v1::OFFER_KIND_UNSPECIFIED); }), "offer.kind: required"));
  CHECK(bad([](v1::Offer& o) { o.set_percent_off(0); }) ==
        "offer.percent_off: must be 1 to 100 for OFFER_KIND_PERCENT_OFF, got 0");
  CHECK(bad([](v1::Offer& o) { o.set_kind(v1::OFFER_KIND_AMOUNT_OFF); }) ==
        "offer.percent_off: only for OFFER_KIND_PERCENT_OFF, not OFFER_KIND_AMOUNT_OFF");
  CHECK(bad([](v1::Offer& o) {
          o.set_kind(v1::OFFER_KIND_AMOUNT_OFF);
          o.set_percent_off(0);
        }) == "offer.amount_off: required for OFFER_KIND_AMOUNT_OFF");
  CHECK(bad([](v1::Offer& o) {
          o.set_kind(v1::OFFER_KIND_BONUS_POINTS);
          o.set_percent_off(0);
        }) == "offer.bonus_points: must be more than 0 for OFFER_KIND_BONUS_POINTS, got 0");
  CHECK(bad([](v1::Offer& o) {
          *o.mutable_starts_at() = ecrm::util::Ts(absl::ToUnixMicros(kNow));
          *o.mutable_ends_at() = ecrm::util::Ts(absl::ToUnixMicros(kNow - absl::Hours(1)));
        }) ==
        "offer.ends_at: 2026-06-01T11:00:00Z is not after offer.starts_at 2026-06-01T12:00:00Z (the offer "
        "would never be valid)");
  CHECK(bad([](v1::Offer& o) { o.set_per_customer_cap(-1); }) ==
        "offer.per_customer_cap: must be 0 (no limit) or more, got -1");
  CHECK(bad([](v1::Offer& o) { o.set_total_budget(-5); }) ==
        "offer.total_budget: must be 0 (no limit) or more, got -5");
  CHECK(bad([](v1::Offer& o) { o.add_channels(static_cast<common::Channel>(42)); }) ==
        "offer.channels: 42 is not a channel (CHANNEL_EMAIL … CHANNEL_DIRECT_MAIL)");
  CHECK(bad([](v1::Offer& o) { o.add_placements(""); }) == "offer.placements: each placement is 1 to 100 bytes");
  CHECK(bad([](v1::Offer& o) { o.set_eligibility_rule("orders.count >= "); }) ==
        "offer.eligibility_rule: 1:17: expected a value after '>=', found end of rule");
  CHECK(bad([](v1::Offer& o) { o.set_eligibility_rule("orders.count >= \"three\""); }) ==
        "offer.eligibility_rule: 1:17: expected a number after '>=', found \"three\"");
  CHECK(
      bad([](v1::Offer& o) { o.set_eligibility_rule("profile.country == \"GB\" &&\n  rfm.cell == \"champions\""); }) ==
      "offer.eligibility_rule: 2:3: rfm.cell is a score segmentation computes over all customers: make a segment "
      "with the rule in segmentation and name it in segment_ids");
  CHECK(absl::StartsWith(bad([](v1::Offer& o) { o.set_eligibility_rule("events.count(\"purchase\", 30d) > 1"); }),
                         "offer.eligibility_rule: 1:1: events.count with a window"));
  CHECK(bad([](v1::Offer& o) { o.set_template_id("tpl_nope"); }) ==
        "offer.template_id: template \"tpl_nope\" does not exist");
  CHECK(e.offers->Get("off_nope").status().code() == absl::StatusCode::kNotFound);
  CHECK(e.offers->Delete("off_nope").code() == absl::StatusCode::kNotFound);

  // Without segmentation, an offer cannot name segments.
  p::Offers alone(*e.db, e.customers, nullptr);
  v1::Offer o = Percent("seg", 10);
  o.add_segment_ids("seg_1");
  CHECK(alone.Create(o).status().code() == absl::StatusCode::kFailedPrecondition);
}

TEST_CASE("offers: create, read, list, update by mask and delete") {
  Engine e;
  v1::Offer a = e.Create(Percent("a", 10, 1));
  v1::Offer b = e.Create(Percent("b", 20, 2));
  CHECK(absl::StartsWith(a.id(), "off_"));
  absl::StatusOr<v1::Offer> got = e.offers->Get(a.id());
  REQUIRE(got.ok());
  CHECK(got->name() == "a");
  CHECK(got->percent_off() == 10);
  CHECK(got->created_at().seconds() == absl::ToUnixSeconds(kNow));

  v1::UpdateOfferRequest up;
  up.mutable_offer()->set_id(a.id());
  up.mutable_offer()->set_priority(9);
  up.mutable_offer()->set_name("ignored: not in the mask");
  up.mutable_update_mask()->add_paths("priority");
  absl::StatusOr<v1::Offer> updated = e.offers->Update(up);
  REQUIRE(updated.ok());
  CHECK(updated->priority() == 9);
  CHECK(updated->name() == "a");
  up.mutable_update_mask()->add_paths("per_customer_cap");
  up.mutable_offer()->set_per_customer_cap(-2);
  CHECK(e.offers->Update(up).status().message() == "offer.per_customer_cap: must be 0 (no limit) or more, got -2");
  up.mutable_update_mask()->add_paths("id");
  CHECK(absl::StartsWith(e.offers->Update(up).status().message(), "update_mask: unknown or read-only field \"id\""));

  v1::UpdateOfferRequest off;
  off.mutable_offer()->set_id(b.id());
  off.mutable_update_mask()->add_paths("active");
  REQUIRE(e.offers->Update(off).ok());
  v1::ListOffersRequest list;
  list.set_active_only(true);
  auto active = e.offers->List(list);
  REQUIRE(active.ok());
  REQUIRE(active->offers_size() == 1);
  CHECK(active->offers(0).id() == a.id());
  list.set_active_only(false);
  list.set_page_size(1);
  auto page = e.offers->List(list);
  REQUIRE(page.ok());
  CHECK(page->offers_size() == 1);
  CHECK(!page->next_page_token().empty());

  REQUIRE(e.offers->Delete(a.id()).ok());
  CHECK(e.offers->Get(a.id()).status().code() == absl::StatusCode::kNotFound);
}

TEST_CASE("offers: eligibility by rule reads profile, consents, attributes, preferences and behaviour") {
  Engine e;
  e.directory.customers["c_alice"] = Alice();
  Customer bob;
  bob.set_id("c_bob");
  e.directory.customers["c_bob"] = bob;
  v1::Offer o = Percent("gold", 15);
  o.set_eligibility_rule(
      "profile.country == \"GB\" && consent.email.marketing && attributes.tier == \"gold\" && "
      "attributes.score > 5 && attributes.vip && \"cycling\" in interests && orders.count >= 3 && "
      "orders.total >= 20000 && events.count(\"page_view\") > 10 && days_since(orders.last_at) < 30 && "
      "profile.gender == \"female\" && preferences.preferred_channel == \"email\"");
  v1::Offer created = e.Create(o);

  auto alice = e.Decide("c_alice");
  REQUIRE(alice.ok());
  REQUIRE(alice->decisions_size() == 1);
  CHECK(alice->decisions(0).rank() == 1);
  CHECK(alice->decisions(0).offer().id() == created.id());
  CHECK(alice->decisions(0).reasons(0) == "rule `" + o.eligibility_rule() + "`");

  auto bob_decided = e.Decide("c_bob");
  REQUIRE(bob_decided.ok());
  CHECK(bob_decided->decisions_size() == 0);
  CHECK(bob_decided->rejected().at(created.id()) ==
        "not eligible: rule clause `profile.country == \"GB\"` is unknown (a value it reads is missing)");

  // The first false clause is named.
  Customer carol = Alice();
  carol.set_id("c_carol");
  (*carol.mutable_attributes())["score"].set_int_value(2);
  e.directory.customers["c_carol"] = carol;
  auto c = e.Decide("c_carol");
  REQUIRE(c.ok());
  CHECK(c->rejected().at(created.id()) == "not eligible: rule clause `attributes.score > 5` is false");

  CHECK(e.Decide("c_nobody").status().code() == absl::StatusCode::kNotFound);
  CHECK(e.Decide("").status().code() == absl::StatusCode::kInvalidArgument);
}

TEST_CASE("offers: eligibility by segment, and segment() in a rule") {
  Engine e;
  e.directory.customers["c_alice"] = Alice();
  e.segments.members["c_alice"] = {"seg_cyclists"};
  v1::Offer in = Percent("cyclists", 10);
  in.add_segment_ids("seg_runners");
  in.add_segment_ids("seg_cyclists");
  v1::Offer out = Percent("runners", 10);
  out.add_segment_ids("seg_runners");
  v1::Offer rule = Percent("rule", 10);
  rule.set_eligibility_rule("segment(\"seg_cyclists\") && !segment(\"seg_runners\")");
  v1::Offer a = e.Create(in), b = e.Create(out), c = e.Create(rule);
  auto r = e.Decide("c_alice");
  REQUIRE(r.ok());
  CHECK(r->decisions_size() == 2);
  for (const auto& d : r->decisions()) {
    if (d.offer().id() == a.id()) CHECK(d.reasons(0) == "segment seg_cyclists");
  }
  CHECK(r->rejected().at(b.id()) == "not eligible: not in segment seg_runners");
  CHECK(e.segments.calls == 1);  // once per decision

  e.segments.down = true;
  CHECK(e.Decide("c_alice").status().code() == absl::StatusCode::kUnavailable);
}

TEST_CASE("offers: ranked by priority then value, and each other offer says why not") {
  Engine e;
  e.directory.customers["c_alice"] = Alice();
  auto valued = [](std::string name, int priority, int64_t value) {
    v1::Offer o = Percent(name, 10, priority);
    o.mutable_value()->set_amount_minor(value);
    o.mutable_value()->set_currency("EUR");
    return o;
  };
  e.Create(valued("low", 1, 9000));
  e.Create(valued("high", 5, 100));
  e.Create(valued("high_more", 5, 200));
  e.Create(valued("mid", 3, 0));
  v1::Offer early = Percent("early", 10, 99);
  *early.mutable_starts_at() = ecrm::util::Ts(absl::ToUnixMicros(kNow + absl::Hours(1)));
  v1::Offer late = Percent("late", 10, 99);
  *late.mutable_ends_at() = ecrm::util::Ts(absl::ToUnixMicros(kNow));
  v1::Offer sms = Percent("sms", 10, 99);
  sms.add_channels(common::CHANNEL_SMS);
  sms.add_channels(common::CHANNEL_EMAIL);
  v1::Offer checkout = Percent("checkout", 10, 99);
  checkout.add_placements("checkout");
  v1::Offer inactive = Percent("inactive", 10, 99);
  inactive.set_active(false);
  const std::string early_id = e.Create(early).id(), late_id = e.Create(late).id(), sms_id = e.Create(sms).id(),
                    checkout_id = e.Create(checkout).id();
  const std::string inactive_id = e.Create(inactive).id();

  auto r = e.Decide("c_alice", "home", common::CHANNEL_WEB, 3);
  REQUIRE(r.ok());
  CHECK(e.Ids(*r) == std::vector<std::string>{"high_more", "high", "mid"});
  CHECK(r->decisions(0).reasons(1) == "priority 5");
  CHECK(r->decisions(0).reasons(2) == "value 2.00 EUR");
  CHECK(r->rejected().at(early_id) == "not yet valid: starts at 2026-06-01T13:00:00Z");
  CHECK(r->rejected().at(late_id) == "expired: ended at 2026-06-01T12:00:00Z");
  CHECK(r->rejected().at(sms_id) == "wrong channel: shown on sms, email, not web");
  CHECK(r->rejected().at(checkout_id) == "wrong placement: shown at checkout, not \"home\"");
  CHECK(!r->rejected().contains(inactive_id));
  CHECK(r->rejected_size() == 4);  // "low" is eligible, ranked below max_offers: not rejected

  // What the service writes to the wire (without building the map) parses to the same response.
  v1::DecideOffersRequest req;
  req.set_customer_id("c_alice");
  req.set_placement("home");
  req.set_channel(common::CHANNEL_WEB);
  req.set_max_offers(3);
  absl::StatusOr<p::Offers::Decision> chosen = e.offers->Choose(req);
  REQUIRE(chosen.ok());
  v1::DecideOffersResponse parsed;
  REQUIRE(parsed.ParseFromString(p::DecisionWire(*chosen)));
  CHECK(google::protobuf::util::MessageDifferencer::Equals(parsed, *r));
  CHECK(parsed.rejected().at(sms_id) == "wrong channel: shown on sms, email, not web");

  // An offer's change is seen by the next decision.
  e.now = kNow + absl::Hours(2);
  auto later = e.Decide("c_alice", "home", common::CHANNEL_WEB, 1);
  REQUIRE(later.ok());
  CHECK(e.Ids(*later) == std::vector<std::string>{"early"});
}

TEST_CASE("offers: caps and budgets, counted exactly when 16 decide at once") {
  Engine e;
  e.directory.customers["c_alice"] = Alice();
  Customer bob = Alice();
  bob.set_id("c_bob");
  e.directory.customers["c_bob"] = bob;
  v1::Offer capped = Percent("capped", 10);
  capped.set_per_customer_cap(3);
  const std::string id = e.Create(capped).id();

  std::atomic<int> shown{0}, failed{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 16; ++i) {
    threads.emplace_back([&] {
      auto r = e.Decide("c_alice", "home", common::CHANNEL_WEB, 1, /*record=*/true);
      if (!r.ok()) {
        ++failed;
      } else if (r->decisions_size() == 1) {
        ++shown;
      } else {
        CHECK(r->rejected().at(id) == "capped: shown 3 of 3 times to this customer");
      }
    });
  }
  for (auto& t : threads) t.join();
  CHECK(failed == 0);
  CHECK(shown == 3);
  // A preview counts nothing and says why.
  auto preview = e.Decide("c_alice");
  REQUIRE(preview.ok());
  CHECK(preview->rejected().at(id) == "capped: shown 3 of 3 times to this customer");
  auto other = e.Decide("c_bob", "home", common::CHANNEL_WEB, 1, true);
  REQUIRE(other.ok());
  REQUIRE(other->decisions_size() == 1);
  CHECK(other->decisions(0).reasons().rbegin()[0] == "impression 1 of 3 for this customer");
  CHECK(e.offers->Get(id)->impressions() == 4);

  // A budget of 2 over everyone.
  v1::Offer budget = Percent("budget", 10, 5);
  budget.set_total_budget(2);
  const std::string budget_id = e.Create(budget).id();
  for (int i = 0; i < 2; ++i) REQUIRE(e.Decide("c_alice", "home", common::CHANNEL_WEB, 1, true)->decisions_size() == 1);
  auto spent = e.Decide("c_bob", "home", common::CHANNEL_WEB, 1, true);
  REQUIRE(spent.ok());
  CHECK(spent->rejected().at(budget_id) == "budget spent: 2 of 2 impressions");
  CHECK(e.Ids(*spent) == std::vector<std::string>{"capped"});  // the next one is shown instead

  // Export and erasure of the customer's impressions.
  p::PersonalisationPrivacy privacy(e.offers.get());
  ecrm::privacy::v1::ExportCustomerDataRequest ex;
  ex.set_customer_id("c_alice");
  auto json = privacy.ExportCustomerData(ex);
  REQUIRE(json.ok());
  CHECK(absl::StrContains(*json, "\"offer_name\":\"capped\""));
  CHECK(absl::StrContains(*json, "\"impressions\":3"));
  ecrm::privacy::v1::EraseCustomerDataRequest er;
  er.set_customer_id("c_alice");
  auto receipt = privacy.EraseCustomerData(er);
  REQUIRE(receipt.ok());
  CHECK(receipt->items(0).kind() == "offer_impressions");
  CHECK(receipt->items(0).count() == 2);
  CHECK(*privacy.ExportCustomerData(ex) ==
        "{\"offer_impressions\":[],\"recommendation_model\":{\"orders_learnt\":[]}}");
  auto again = e.Decide("c_alice", "home", common::CHANNEL_WEB, 3);
  REQUIRE(again.ok());
  CHECK(e.Ids(*again) == std::vector<std::string>{"capped"});  // its count is gone with the history
}

TEST_CASE("offers: RenderMessage and BatchRender given a placement and no offers decide them per customer") {
  Engine e;
  e.directory.customers["c_alice"] = Alice();
  Rendering r(e, "{{#offers}}[{{name}} {{percent_off}}%]{{/offers}}");
  p::Messages& messages = r.messages;
  v1::Offer home = Percent("home", 15, 2);
  home.add_placements("home");
  home.add_channels(common::CHANNEL_EMAIL);
  const std::string home_id = e.Create(home).id();
  e.Create(Percent("anywhere", 10, 1));
  v1::Offer sms = Percent("sms", 5, 9);
  sms.add_channels(common::CHANNEL_SMS);  // not the template's channel
  e.Create(sms);

  v1::RenderMessageRequest req;
  req.set_template_id(r.template_id);
  req.set_customer_id("c_alice");
  req.set_placement("home");
  absl::StatusOr<v1::RenderedMessage> m = messages.Render(req);
  REQUIRE(m.ok());
  CHECK(m->text_body() == "[home 15%][anywhere 10%]");
  CHECK(m->offer_ids(0) == home_id);
  // The request's offers win; and without a placement nothing is decided.
  *req.add_offers() = Percent("given", 50);
  CHECK(messages.Render(req)->text_body() == "[given 50%]");
  req.clear_offers();
  req.clear_placement();
  CHECK(messages.Render(req)->text_body() == "");
  // Nothing was recorded.
  CHECK(e.offers->Get(home_id)->impressions() == 0);

  // BatchRender decides each customer's own: Bob (not in GB) is not offered the GB one.
  Customer bob = Alice();
  bob.set_id("c_bob");
  bob.mutable_profile()->mutable_address()->set_country("FR");
  e.directory.customers["c_bob"] = bob;
  v1::Offer gb = Percent("gb", 20, 5);
  gb.set_eligibility_rule("profile.address.country == \"GB\"");
  e.Create(gb);
  v1::BatchRenderRequest batch = r.Batch("home");
  absl::StatusOr<v1::BatchRenderResponse> rendered = messages.BatchRender(batch);
  REQUIRE(rendered.ok());
  REQUIRE(rendered->messages_size() == 2);
  CHECK(rendered->messages(0).text_body() == "[gb 20%][home 15%][anywhere 10%]");
  CHECK(rendered->messages(1).text_body() == "[home 15%][anywhere 10%]");
  CHECK(rendered->messages(1).offer_ids(0) == home_id);
  CHECK(rendered->failed_codes().at("c_nobody") == static_cast<int>(absl::StatusCode::kNotFound));
  // A batch large enough to be split over threads: each customer their own, in order.
  v1::BatchRenderRequest many;
  many.set_template_id(r.template_id);
  many.set_placement("home");
  for (int k = 0; k < 250; ++k) {
    Customer c = k % 2 == 0 ? Alice() : bob;
    c.set_id(absl::StrCat("c_", k));
    e.directory.customers[c.id()] = c;
    many.add_customer_ids(c.id());
  }
  many.add_customer_ids("c_nobody");
  absl::StatusOr<v1::BatchRenderResponse> all = messages.BatchRender(many);
  REQUIRE(all.ok());
  REQUIRE(all->messages_size() == 250);
  for (int k = 0; k < 250; ++k) {
    CHECK(all->messages(k).customer_id() == absl::StrCat("c_", k));
    CHECK(all->messages(k).text_body() ==
          (k % 2 == 0 ? "[gb 20%][home 15%][anywhere 10%]" : "[home 15%][anywhere 10%]"));
  }
  CHECK(all->failed_codes().at("c_nobody") == static_cast<int>(absl::StatusCode::kNotFound));
  // The batch's offers win, shared by every customer.
  *batch.add_offers() = Percent("given", 50);
  rendered = messages.BatchRender(batch);
  REQUIRE(rendered.ok());
  CHECK(rendered->messages(1).text_body() == "[given 50%]");
  CHECK(e.offers->Get(home_id)->impressions() == 0);
}

TEST_CASE("offers: BatchRender given a placement and no offers decides each customer's own") {
  Engine e;
  e.directory.customers["c_alice"] = Alice();
  Customer bob;
  bob.set_id("c_bob");
  bob.mutable_profile()->set_first_name("Bob");
  e.directory.customers["c_bob"] = bob;
  e.segments.members["c_alice"] = {"seg_gold"};
  Rendering r(e, "{{profile.first_name}}:{{#offers}} [{{name}} {{percent_off}}%]{{/offers}}");
  p::Messages& messages = r.messages;
  v1::Offer gold = Percent("gold", 15, 2);
  gold.add_segment_ids("seg_gold");
  gold.add_placements("campaign");
  const std::string gold_id = e.Create(gold).id();
  e.Create(Percent("anywhere", 10, 1));
  v1::Offer checkout = Percent("checkout", 5, 9);
  checkout.add_placements("checkout");
  e.Create(checkout);

  v1::BatchRenderRequest req = r.Batch("campaign");
  absl::StatusOr<v1::BatchRenderResponse> batch = messages.BatchRender(req);
  REQUIRE(batch.ok());
  REQUIRE(batch->messages_size() == 2);
  CHECK(batch->messages(0).text_body() == "Alice: [gold 15%] [anywhere 10%]");
  CHECK(batch->messages(0).offer_ids(0) == gold_id);
  CHECK(batch->messages(1).text_body() == "Bob: [anywhere 10%]");
  CHECK(batch->failed().count("c_nobody") == 1);
  // Offers in the request are everyone's; without a placement nothing is decided.
  *req.add_offers() = Percent("given", 50);
  CHECK(messages.BatchRender(req)->messages(1).text_body() == "Bob: [given 50%]");
  req.clear_offers();
  req.clear_placement();
  CHECK(messages.BatchRender(req)->messages(0).text_body() == "Alice:");
  // Segmentation down: each customer fails UNAVAILABLE, which the caller asks again for.
  req.set_placement("campaign");
  e.segments.down = true;
  absl::StatusOr<v1::BatchRenderResponse> down = messages.BatchRender(req);
  REQUIRE(down.ok());
  CHECK(down->messages_size() == 0);
  CHECK(down->failed_codes().at("c_alice") == static_cast<int>(absl::StatusCode::kUnavailable));
  CHECK(down->failed_codes().at("c_bob") == static_cast<int>(absl::StatusCode::kUnavailable));
  CHECK(e.offers->Get(gold_id)->impressions() == 0);  // nothing recorded
}

TEST_CASE("offers: rendering an offer uses its template, shows it as {{offer}}, and refuses customers it is not for") {
  Engine e;
  e.directory.customers["c_alice"] = Alice();
  Customer bob = Alice();
  bob.set_id("c_bob");
  bob.mutable_profile()->set_first_name("Bob");
  bob.mutable_profile()->mutable_address()->set_country("FR");
  e.directory.customers["c_bob"] = bob;
  Customer cid = Alice();
  cid.set_id("c_cid");
  cid.mutable_profile()->set_first_name("Cid");
  e.directory.customers["c_cid"] = cid;
  p::Templates templates(*e.db, e.metrics);
  p::Messages messages(templates, e.customers, e.metrics);
  messages.set_offers(e.offers.get());
  v1::Template t;
  t.set_name("offer mail");
  t.set_channel(common::CHANNEL_EMAIL);
  t.set_subject("{{profile.first_name}}: {{offer.headline}}");
  t.set_text_body("{{#offer}}{{percent_off}}% off{{/offer}} {{#offers}}[{{name}}]{{/offers}}");
  const std::string tpl = templates.Create(t)->id();
  v1::Template other = t;
  other.set_name("other");
  other.set_subject("Other: {{offer.name}}");
  const std::string other_id = templates.Create(other)->id();

  v1::Offer gb = Percent("gb10", 10, 1);
  gb.set_eligibility_rule("profile.address.country == \"GB\"");
  gb.set_template_id(tpl);
  gb.set_per_customer_cap(1);
  gb.add_placements("checkout");  // placements are not checked for an offer a message sends
  const std::string gb_id = e.Create(gb).id();
  v1::Offer bare = Percent("bare", 5);
  const std::string bare_id = e.Create(bare).id();

  // RenderMessage: the offer's template, the offer in its context.
  v1::RenderMessageRequest req;
  req.set_offer_id(gb_id);
  req.set_customer_id("c_alice");
  absl::StatusOr<v1::RenderedMessage> m = messages.Render(req);
  INFO(m.status().ToString());
  REQUIRE(m.ok());
  CHECK(m->template_id() == tpl);
  CHECK(m->subject() == "Alice: gb10 headline");
  CHECK(m->text_body() == "10% off [gb10]");
  REQUIRE(m->offer_ids_size() == 1);
  CHECK(m->offer_ids(0) == gb_id);
  // A template named with it wins over the offer's own.
  req.set_template_id(other_id);
  CHECK(messages.Render(req)->subject() == "Other: gb10");
  req.clear_template_id();
  // Bob is not in GB: refused, naming the field and the clause.
  req.set_customer_id("c_bob");
  absl::Status no = messages.Render(req).status();
  CHECK(no.code() == absl::StatusCode::kFailedPrecondition);
  CHECK(absl::StartsWith(no.message(), "offer_id: customer \"c_bob\" is not eligible"));
  CHECK(absl::StrContains(no.message(), "profile.address.country == \"GB\""));
  // Bad input names the field.
  auto code = [&](const std::function<void(v1::RenderMessageRequest&)>& edit) {
    v1::RenderMessageRequest r;
    r.set_customer_id("c_alice");
    r.set_offer_id(gb_id);
    edit(r);
    return messages.Render(r).status();
  };
  absl::Status unknown = code([](v1::RenderMessageRequest& r) { r.set_offer_id("off_nope"); });
  CHECK(unknown.code() == absl::StatusCode::kNotFound);
  CHECK(absl::StartsWith(unknown.message(), "offer_id:"));
  absl::Status untemplated = code([&](v1::RenderMessageRequest& r) { r.set_offer_id(bare_id); });
  CHECK(untemplated.code() == absl::StatusCode::kFailedPrecondition);
  CHECK(absl::StartsWith(untemplated.message(), "offer_id:"));
  CHECK(code([](v1::RenderMessageRequest& r) { r.set_placement("home"); }).code() ==
        absl::StatusCode::kInvalidArgument);
  CHECK(code([](v1::RenderMessageRequest& r) { *r.add_offers() = Percent("x", 1); }).code() ==
        absl::StatusCode::kInvalidArgument);

  // BatchRender: those it is for rendered, the others listed with why, the unknown failed.
  v1::BatchRenderRequest batch;
  batch.set_offer_id(gb_id);
  for (const char* id : {"c_alice", "c_bob", "c_cid", "c_nobody"}) batch.add_customer_ids(id);
  absl::StatusOr<v1::BatchRenderResponse> r = messages.BatchRender(batch);
  INFO(r.status().ToString());
  REQUIRE(r.ok());
  REQUIRE(r->messages_size() == 2);
  CHECK(r->messages(0).subject() == "Alice: gb10 headline");
  CHECK(r->messages(1).subject() == "Cid: gb10 headline");
  CHECK(r->not_eligible_size() == 1);
  CHECK(absl::StartsWith(r->not_eligible().at("c_bob"), "not eligible: rule clause"));
  CHECK(r->failed_codes().at("c_nobody") == static_cast<int>(absl::StatusCode::kNotFound));
  CHECK_FALSE(r->failed().contains("c_bob"));
  // Rendering records no impression; once the cap is used up elsewhere, Cid is capped.
  CHECK(e.offers->Get(gb_id)->impressions() == 0);
  REQUIRE(e.Decide("c_cid", "checkout", common::CHANNEL_EMAIL, 0, /*record=*/true).ok());
  r = messages.BatchRender(batch);
  REQUIRE(r.ok());
  REQUIRE(r->messages_size() == 1);
  CHECK(r->not_eligible().at("c_cid") == "capped: shown 1 of 1 times to this customer");
  // Inactive, expired, the wrong channel: not eligible, saying so.
  v1::UpdateOfferRequest off;
  off.mutable_offer()->set_id(gb_id);
  off.mutable_offer()->set_active(false);
  off.mutable_update_mask()->add_paths("active");
  REQUIRE(e.offers->Update(off).ok());
  r = messages.BatchRender(batch);
  REQUIRE(r.ok());
  CHECK(r->messages_size() == 0);
  CHECK(r->not_eligible().at("c_alice") == "inactive: the offer is not active");
  off.mutable_offer()->set_active(true);
  off.mutable_offer()->add_channels(common::CHANNEL_SMS);
  off.mutable_update_mask()->add_paths("channels");
  REQUIRE(e.offers->Update(off).ok());
  r = messages.BatchRender(batch);
  REQUIRE(r.ok());
  CHECK(r->not_eligible().at("c_alice") == "wrong channel: shown on sms, not email");
  off.mutable_offer()->clear_channels();
  *off.mutable_offer()->mutable_ends_at() = ecrm::util::Ts(absl::ToUnixMicros(kNow - absl::Hours(1)));
  off.mutable_update_mask()->add_paths("ends_at");
  REQUIRE(e.offers->Update(off).ok());
  r = messages.BatchRender(batch);
  REQUIRE(r.ok());
  CHECK(absl::StartsWith(r->not_eligible().at("c_alice"), "expired: ended at"));
}

// Sense and respond (issue 17): the three triggered campaigns end to end, with the real engines
// (ecrm-infostore, -segmentation, -personalisation, -broadcast, -transaction), a real Redis and
// mail received by a real SMTP server (tests/support/smtp_server.py):
//   - abandoned cart: a cart left in the transaction engine raises cart_abandoned, the customer
//     enters "abandoned carts" and gets one reminder; a second abandonment while still in the
//     segment sends nothing more, a checkout takes the customer out, a new abandonment in again
//     and a second reminder follows;
//   - welcome: a customer signing up enters "new customers"; half the campaign is held out as
//     a control group, which gets nothing;
//   - win-back: time passing (segmentation's --clock-file) puts a customer whose last order is
//     over 90 days old in "at risk".
// Customers without email consent enter the segments too and broadcast suppresses their
// message at send time. Also an offer campaign (no template of its own): launched once and
// triggered, each treatment customer is mailed the offer rendered with the offer's template,
// a customer the offer's rule excludes is sent nothing (SUPPRESSION_REASON_OFFER_NOT_ELIGIBLE),
// and the report counts both. Waits are on the outcome (a mail, a delivery's state, the
// report's counts), never on time.
#include <grpcpp/grpcpp.h>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>
#include <optional>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "broadcast_completed.h"
#include "ecrm/broadcast/v1/broadcast.grpc.pb.h"
#include "ecrm/infostore/v1/infostore.grpc.pb.h"
#include "ecrm/personalisation/v1/personalisation.grpc.pb.h"
#include "ecrm/privacy/v1/privacy.grpc.pb.h"
#include "ecrm/segmentation/v1/segmentation.grpc.pb.h"
#include "ecrm/testing/process.h"
#include "ecrm/testing/service.h"
#include "ecrm/transaction/v1/transaction.grpc.pb.h"
#include "engine_suite.h"
#include "smtp_test_server.h"
#include "test_servers.h"

namespace bc = ecrm::broadcast::v1;
namespace common = ecrm::common::v1;
namespace info = ecrm::infostore::v1;
namespace pz = ecrm::personalisation::v1;
namespace seg = ecrm::segmentation::v1;
namespace tx = ecrm::transaction::v1;
namespace privacy = ecrm::privacy::v1;
using ecrm::testing::Call;
using ecrm::testing::Eventually;
using ecrm::testing::SmtpTestServer;

namespace {

#define REQUIRE_OK(expr)                                 \
  do {                                                   \
    const grpc::Status s_ = (expr);                      \
    INFO(s_.error_code() << ": " << s_.error_message()); \
    REQUIRE(s_.ok());                                    \
  } while (false)

// The five engines wired to their peers (tests/support/engine_suite.h), each on SQLite in a
// temporary directory. Carts are abandoned after 1 s idle, scanned every 50 ms (segmentation
// keeps event times to the second: a purchase and the next abandonment are a second apart).
// Segmentation evaluates rules at `clock` when one is given (SetClock moves it).
struct Suite : ecrm::testing::EngineSuite {
  std::unique_ptr<info::InformationStore::Stub> hub;
  std::unique_ptr<pz::Personalisation::Stub> templates;
  std::unique_ptr<seg::Segmentation::Stub> segments;
  std::unique_ptr<privacy::CustomerData::Stub> segmentation_data;
  std::unique_ptr<bc::Broadcast::Stub> deliveries;
  std::unique_ptr<tx::Transaction::Stub> shop;

  explicit Suite(std::optional<absl::Time> clock = std::nullopt) : EngineSuite(Wiring(clock)) {
    hub = info::InformationStore::NewStub(infostore->channel());
    shop = tx::Transaction::NewStub(transaction->channel());
    templates = pz::Personalisation::NewStub(personalisation->channel());
    deliveries = bc::Broadcast::NewStub(broadcast->channel());
    segments = seg::Segmentation::NewStub(segmentation->channel());
    segmentation_data = privacy::CustomerData::NewStub(segmentation->channel());
  }

  static Options Wiring(std::optional<absl::Time> clock) {
    Options o;
    o.flags["transaction"] = {"--redis-url=", "--abandon-after=1s", "--abandon-scan-interval=50ms"};
    o.flags["broadcast"] = {"--public-base-url=https://t.example.com"};
    o.flags["segmentation"] = {"--redis-url=", "--time-check-interval=100ms"};
    o.clock = clock;
    return o;
  }

  std::string Customer(const std::string& email, const std::string& first_name, bool consent) {
    info::UpsertCustomerRequest req;
    auto* id = req.add_identifiers();
    id->set_type(common::IDENTIFIER_TYPE_EMAIL);
    id->set_value(email);
    req.mutable_profile()->set_first_name(first_name);
    info::UpsertCustomerResponse resp;
    REQUIRE_OK(Call(*hub, &info::InformationStore::Stub::UpsertCustomer, req, &resp));
    if (consent) Consent(resp.customer().id());
    return resp.customer().id();
  }

  void Consent(const std::string& customer) {
    info::UpdateConsentRequest req;
    req.mutable_customer()->set_customer_id(customer);
    req.set_channel(common::CHANNEL_EMAIL);
    req.set_purpose(common::PURPOSE_MARKETING);
    req.set_status(info::CONSENT_STATUS_GRANTED);
    req.set_source(common::TOUCHPOINT_WEB);
    req.set_evidence("sign-up form");
    info::Customer c;
    REQUIRE_OK(Call(*hub, &info::InformationStore::Stub::UpdateConsent, req, &c));
  }

  std::string Template(const std::string& subject) {
    pz::CreateTemplateRequest req;
    req.mutable_template_()->set_name(subject);
    req.mutable_template_()->set_channel(common::CHANNEL_EMAIL);
    req.mutable_template_()->set_subject(subject + ", {{profile.first_name}}");
    req.mutable_template_()->set_text_body("Hi {{profile.first_name}}. Leave: {{unsubscribe_url}}");
    pz::Template t;
    REQUIRE_OK(Call(*templates, &pz::Personalisation::Stub::CreateTemplate, req, &t));
    return t.id();
  }

  std::string Segment(const std::string& name, const std::string& rule) {
    seg::CreateSegmentRequest req;
    req.mutable_segment()->set_name(name);
    req.mutable_segment()->set_rule(rule);
    seg::Segment out;
    REQUIRE_OK(Call(*segments, &seg::Segmentation::Stub::CreateSegment, req, &out));
    return out.id();
  }

  // A triggered campaign on `segment_id`, launched.
  std::string Campaign(const std::string& name, const std::string& segment_id, const std::string& template_id,
                       double control_fraction = 0) {
    seg::CreateCampaignRequest create;
    seg::Campaign* c = create.mutable_campaign();
    c->set_name(name);
    c->set_type(seg::CAMPAIGN_TYPE_TRIGGERED);
    c->set_trigger_segment_id(segment_id);
    c->mutable_channel_policy()->add_channels(common::CHANNEL_EMAIL);
    c->set_template_id(template_id);
    c->set_control_fraction(control_fraction);
    seg::Campaign created;
    REQUIRE_OK(Call(*segments, &seg::Segmentation::Stub::CreateCampaign, create, &created));
    seg::LaunchCampaignRequest launch;
    launch.set_id(created.id());
    launch.set_request_id("launch-" + name);
    seg::Campaign launched;
    REQUIRE_OK(Call(*segments, &seg::Segmentation::Stub::LaunchCampaign, launch, &launched));
    REQUIRE(launched.state() == seg::CAMPAIGN_STATE_RUNNING);
    return launched.id();
  }

  void Product(const std::string& sku) {
    tx::UpsertProductRequest req;
    tx::Product* p = req.mutable_product();
    p->set_sku(sku);
    p->set_title("Product " + sku);
    p->mutable_price()->set_amount_minor(4999);
    p->mutable_price()->set_currency("EUR");
    p->set_active(true);
    tx::Product out;
    REQUIRE_OK(Call(*shop, &tx::Transaction::Stub::UpsertProduct, req, &out));
  }

  void AddToCart(const std::string& customer, const std::string& sku) {
    tx::AddCartItemRequest req;
    req.set_customer_id(customer);
    req.set_sku(sku);
    req.set_quantity(1);
    tx::Cart cart;
    REQUIRE_OK(Call(*shop, &tx::Transaction::Stub::AddCartItem, req, &cart));
  }

  void Checkout(const std::string& customer, const std::string& key) {
    tx::CheckoutRequest req;
    req.set_customer_id(customer);
    req.set_idempotency_key(key);
    tx::Order order;
    REQUIRE_OK(Call(*shop, &tx::Transaction::Stub::Checkout, req, &order));
  }

  // The customer's events of `type` the information store holds.
  std::vector<info::Event> Events(const std::string& customer, const std::string& type) {
    info::ListEventsRequest req;
    req.mutable_customer()->set_customer_id(customer);
    req.add_types(type);
    req.set_page_size(100);
    info::ListEventsResponse resp;
    REQUIRE_OK(Call(*hub, &info::InformationStore::Stub::ListEvents, req, &resp));
    return {resp.events().begin(), resp.events().end()};
  }

  bool InSegment(const std::string& customer, const std::string& segment_id) {
    seg::GetCustomerSegmentsRequest req;
    req.set_customer_id(customer);
    seg::GetCustomerSegmentsResponse resp;
    if (!Call(*segments, &seg::Segmentation::Stub::GetCustomerSegments, req, &resp).ok()) return false;
    return std::find(resp.segment_ids().begin(), resp.segment_ids().end(), segment_id) != resp.segment_ids().end();
  }

  // The customer's deliveries, newest first.
  std::vector<bc::Delivery> Deliveries(const std::string& customer) {
    bc::ListDeliveriesRequest req;
    req.set_customer_id(customer);
    req.set_page_size(100);
    bc::ListDeliveriesResponse resp;
    REQUIRE_OK(Call(*deliveries, &bc::Broadcast::Stub::ListDeliveries, req, &resp));
    return {resp.deliveries().begin(), resp.deliveries().end()};
  }

  // The mails received for `address`, in order of arrival.
  std::vector<std::string> MailsTo(const std::string& address) {
    std::vector<std::string> out;
    for (const SmtpTestServer::Received& r : smtp->Messages()) {
      for (const auto& rcpt : r.meta["rcpt_tos"]) {
        if (rcpt.get<std::string>() == address) out.push_back(r.eml);
      }
    }
    return out;
  }

  // The group ("treatment" or "control") segmentation put the customer in for the campaign;
  // "" while the customer is no member.
  std::string Group(const std::string& customer, const std::string& campaign_id) {
    privacy::ExportCustomerDataRequest req;
    req.set_customer_id(customer);
    privacy::ExportCustomerDataResponse resp;
    REQUIRE_OK(Call(*segmentation_data, &privacy::CustomerData::Stub::ExportCustomerData, req, &resp));
    const nlohmann::json doc = nlohmann::json::parse(resp.json_document());
    if (!doc.contains("customers")) return "";
    for (const auto& c : doc["customers"]) {
      if (!c.contains("campaigns")) continue;
      for (const auto& m : c["campaigns"]) {
        if (m["campaign_id"] == campaign_id) return m["group"].get<std::string>();
      }
    }
    return "";
  }
};

bool Suppressed(const std::vector<bc::Delivery>& ds, bc::SuppressionReason reason) {
  return ds.size() == 1 && ds[0].state() == bc::DELIVERY_STATE_SUPPRESSED && ds[0].suppression_reason() == reason;
}

}  // namespace

TEST_CASE("an abandoned cart sends one reminder per entry into the abandoned-carts segment") {
  Suite s;
  s.Product("helmet");
  // In the segment from an abandonment until a purchase after it.
  const std::string abandoned =
      s.Segment("abandoned-carts",
                "events.count(\"cart_abandoned\", 1d) > 0 && (!has(events.last_at(\"purchase\")) || "
                "events.last_at(\"purchase\") < events.last_at(\"cart_abandoned\"))");
  const std::string campaign = s.Campaign("cart reminder", abandoned, s.Template("Your cart is waiting"));
  const std::string ada = s.Customer("ada@example.com", "Ada", /*consent=*/true);
  const std::string bob = s.Customer("bob@example.com", "Bob", /*consent=*/false);

  // Ada leaves a helmet in her cart: the scanner finds it idle, the event reaches the store, Ada
  // enters the segment and the reminder is mailed.
  s.AddToCart(ada, "helmet");
  REQUIRE(Eventually([&] { return s.MailsTo("ada@example.com").size() == 1; }));
  const std::vector<info::Event> events = s.Events(ada, "cart_abandoned");
  REQUIRE(events.size() == 1);
  CHECK(events[0].properties().at("cart_id").string_value().rfind("cart_", 0) == 0);
  CHECK(s.InSegment(ada, abandoned));
  const std::string mail = s.MailsTo("ada@example.com")[0];
  CHECK(absl::StrContains(mail, "Subject: Your cart is waiting, Ada\r\n"));
  std::vector<bc::Delivery> ada_deliveries = s.Deliveries(ada);
  REQUIRE(ada_deliveries.size() == 1);
  CHECK(ada_deliveries[0].campaign_id() == campaign);
  CHECK(ada_deliveries[0].state() == bc::DELIVERY_STATE_SENT);

  // Bob, who never consented to marketing email, enters too; broadcast holds his message back.
  s.AddToCart(bob, "helmet");
  REQUIRE(Eventually([&] { return Suppressed(s.Deliveries(bob), bc::SUPPRESSION_REASON_NO_CONSENT); }));
  CHECK(s.MailsTo("bob@example.com").empty());

  // Ada touches her cart and leaves it again while still in the segment: a second cart_abandoned,
  // no second entry, no second mail. Cyd's abandonment after it (in the feed's order) is the
  // witness: once Cyd's reminder is in, anything Ada's second event could have owed was handed
  // to broadcast before or with it.
  s.AddToCart(ada, "helmet");
  REQUIRE(Eventually([&] { return s.Events(ada, "cart_abandoned").size() == 2; }));
  const std::string cyd = s.Customer("cyd@example.com", "Cyd", /*consent=*/true);
  s.AddToCart(cyd, "helmet");
  REQUIRE(Eventually([&] { return s.MailsTo("cyd@example.com").size() == 1; }));
  CHECK(s.Deliveries(ada).size() == 1);
  CHECK(s.MailsTo("ada@example.com").size() == 1);

  // Ada buys what is in her cart: she leaves the segment. Her next abandoned cart is a new entry
  // and a new reminder, exactly one.
  s.Checkout(ada, "ada-order-1");
  REQUIRE(Eventually([&] { return !s.InSegment(ada, abandoned); }));
  s.AddToCart(ada, "helmet");
  REQUIRE(Eventually([&] { return s.MailsTo("ada@example.com").size() == 2; }));
  CHECK(s.Events(ada, "cart_abandoned").size() == 3);
  CHECK(s.Deliveries(ada).size() == 2);

  // Per entry, once: Ada twice, Cyd once, Bob never.
  CHECK(s.smtp->Messages().size() == 3);
  seg::GetCampaignReportRequest report_req;
  report_req.set_id(campaign);
  seg::CampaignReport report;
  REQUIRE_OK(Call(*s.segments, &seg::Segmentation::Stub::GetCampaignReport, report_req, &report));
  CHECK(report.treatment().size() == 3);  // Ada, Bob, Cyd
  CHECK(report.control().size() == 0);
}

TEST_CASE("a customer signing up gets one welcome mail, except the control group and those without consent") {
  Suite s;
  // New customers who may be mailed: a sign-up enters once the consent given with it is recorded
  // (UpsertCustomer then UpdateConsent), so the welcome never races the consent.
  const std::string fresh = s.Segment("new-customers", "days_since(customer.created_at) < 7 && consent.email");
  const std::string campaign = s.Campaign("welcome", fresh, s.Template("Welcome"), /*control_fraction=*/0.5);

  // Ten sign-ups, each also updating their profile once signed up (no second entry); the first
  // one never consents.
  struct SignUp {
    std::string id, email, group;
  };
  std::vector<SignUp> signups;
  for (int i = 0; i < 10; ++i) {
    const std::string email = absl::StrCat("new", i, "@example.com");
    const std::string id = s.Customer(email, absl::StrCat("New", i), /*consent=*/i != 0);
    info::UpsertCustomerRequest update;
    update.set_customer_id(id);
    update.mutable_profile()->mutable_address()->set_city("Lyon");
    update.mutable_update_mask()->add_paths("profile.address.city");
    info::UpsertCustomerResponse resp;
    REQUIRE_OK(Call(*s.hub, &info::InformationStore::Stub::UpsertCustomer, update, &resp));
    signups.push_back({id, email, ""});
  }
  // Each who consented becomes a member in one group or the other (uplift.h: the same group for
  // the campaign on every retry).
  for (size_t i = 1; i < signups.size(); ++i) {
    SignUp& u = signups[i];
    REQUIRE(Eventually([&] { return !(u.group = s.Group(u.id, campaign)).empty(); }));
  }
  int treatment = 0;
  for (const SignUp& u : signups) {
    INFO(u.email << " in " << u.group);
    if (u.group != "treatment") continue;
    ++treatment;
    REQUIRE(Eventually([&] { return s.MailsTo(u.email).size() == 1; }));
    CHECK(absl::StrContains(s.MailsTo(u.email)[0], "Subject: Welcome, New"));
  }
  // The control group is saved without any message owed: none was ever handed to broadcast.
  for (const SignUp& u : signups) {
    INFO(u.email << " in " << u.group);
    if (u.group != "control") continue;
    CHECK(s.Deliveries(u.id).empty());
    CHECK(s.MailsTo(u.email).empty());
  }
  // The customer without consent, signed up before all the others, never entered.
  CHECK_FALSE(s.InSegment(signups[0].id, fresh));
  CHECK(s.Group(signups[0].id, campaign).empty());
  CHECK(s.Deliveries(signups[0].id).empty());
  CHECK(s.MailsTo("new0@example.com").empty());
  CHECK(static_cast<int>(s.smtp->Messages().size()) == treatment);
  // With nine customers and half held out, both groups are all but surely non-empty.
  WARN("welcome: " << treatment << " mailed of 9 consenting sign-ups (control fraction 0.5)");
}

TEST_CASE("time passing puts a lapsed customer at risk and sends one win-back mail") {
  const absl::Time start = absl::Now() + absl::Hours(1);
  Suite s(start);
  s.Product("saddle");
  const std::string at_risk = s.Segment("at-risk", "orders.count >= 1 && days_since(orders.last_at) > 90");
  const std::string campaign = s.Campaign("win-back", at_risk, s.Template("We miss you"));
  const std::string dan = s.Customer("dan@example.com", "Dan", /*consent=*/true);
  const std::string eve = s.Customer("eve@example.com", "Eve", /*consent=*/false);
  const std::string fay = s.Customer("fay@example.com", "Fay", /*consent=*/true);
  // Dan and Eve buy today; Fay never buys (no orders: never "at risk").
  for (const std::string& c : {dan, eve}) {
    s.AddToCart(c, "saddle");
    s.Checkout(c, "order-" + c);
  }
  REQUIRE(Eventually([&] { return s.Events(dan, "purchase").size() == 1 && s.Events(eve, "purchase").size() == 1; }));
  // 100 days on: the time check finds both lapsed.
  s.SetClock(start + absl::Hours(24 * 100));
  REQUIRE(Eventually([&] { return s.InSegment(dan, at_risk) && s.InSegment(eve, at_risk); }));
  REQUIRE(Eventually([&] { return s.MailsTo("dan@example.com").size() == 1; }));
  CHECK(absl::StrContains(s.MailsTo("dan@example.com")[0], "Subject: We miss you, Dan\r\n"));
  REQUIRE(Eventually([&] { return Suppressed(s.Deliveries(eve), bc::SUPPRESSION_REASON_NO_CONSENT); }));
  CHECK_FALSE(s.InSegment(fay, at_risk));
  // A day later Dan is still at risk: no second entry. Gus, whose first order (today, by the
  // wall clock) is already 101 days old by segmentation's, enters at once: once his mail is in,
  // the time checks before it have been acted on.
  s.SetClock(start + absl::Hours(24 * 101));
  const std::string gus = s.Customer("gus@example.com", "Gus", /*consent=*/true);
  s.AddToCart(gus, "saddle");
  s.Checkout(gus, "order-gus");
  REQUIRE(Eventually([&] { return s.MailsTo("gus@example.com").size() == 1; }));
  CHECK(s.MailsTo("dan@example.com").size() == 1);
  CHECK(s.Deliveries(dan).size() == 1);
  CHECK(s.MailsTo("eve@example.com").empty());
  CHECK(s.MailsTo("fay@example.com").empty());
  CHECK(s.smtp->Messages().size() == 2);
  seg::GetCampaignReportRequest report_req;
  report_req.set_id(campaign);
  seg::CampaignReport report;
  REQUIRE_OK(Call(*s.segments, &seg::Segmentation::Stub::GetCampaignReport, report_req, &report));
  CHECK(report.treatment().size() == 3);  // Dan, Eve, Gus
}

TEST_CASE("an offer campaign mails each treatment customer the offer, and nothing to those it is not for") {
  Suite s;
  // The offer's own template: the campaign names only the offer.
  pz::CreateTemplateRequest tpl;
  tpl.mutable_template_()->set_name("offer mail");
  tpl.mutable_template_()->set_channel(common::CHANNEL_EMAIL);
  tpl.mutable_template_()->set_subject("{{offer.headline}}, {{profile.first_name}}");
  tpl.mutable_template_()->set_text_body(
      "{{#offers}}{{percent_off}}% off with code {{name}}{{/offers}}. Leave: {{unsubscribe_url}}");
  pz::Template offer_template;
  REQUIRE_OK(Call(*s.templates, &pz::Personalisation::Stub::CreateTemplate, tpl, &offer_template));
  pz::CreateOfferRequest create_offer;
  pz::Offer* o = create_offer.mutable_offer();
  o->set_name("GOLD15");
  o->set_headline("Fifteen percent off for UK members");
  o->set_kind(pz::OFFER_KIND_PERCENT_OFF);
  o->set_percent_off(15);
  o->set_eligibility_rule("profile.address.country == \"GB\"");
  o->add_channels(common::CHANNEL_EMAIL);
  o->set_template_id(offer_template.id());
  o->set_active(true);
  pz::Offer offer;
  REQUIRE_OK(Call(*s.templates, &pz::Personalisation::Stub::CreateOffer, create_offer, &offer));

  // Members in GB and in France; the offer is for GB only.
  auto member = [&](const std::string& email, const std::string& name, const std::string& country, bool consent) {
    const std::string id = s.Customer(email, name, consent);
    info::UpsertCustomerRequest update;
    update.set_customer_id(id);
    update.mutable_profile()->mutable_address()->set_country(country);
    update.mutable_update_mask()->add_paths("profile.address.country");
    info::UpsertCustomerResponse resp;
    REQUIRE_OK(Call(*s.hub, &info::InformationStore::Stub::UpsertCustomer, update, &resp));
    return id;
  };
  const std::string members =
      s.Segment("members", "profile.address.country == \"GB\" || profile.address.country == \"FR\"");
  const std::string ada = member("ada@example.com", "Ada", "GB", true);
  const std::string bea = member("bea@example.com", "Bea", "GB", true);
  const std::string cal = member("cal@example.com", "Cal", "FR", true);   // not eligible
  const std::string dot = member("dot@example.com", "Dot", "GB", false);  // no consent
  for (const std::string& c : {ada, bea, cal, dot}) REQUIRE(Eventually([&] { return s.InSegment(c, members); }));

  // A one-off campaign of the offer alone, no control group: all four are the treatment group.
  seg::CreateCampaignRequest create;
  seg::Campaign* c = create.mutable_campaign();
  c->set_name("uk fifteen");
  c->set_type(seg::CAMPAIGN_TYPE_ONE_OFF);
  c->add_include_segment_ids(members);
  c->mutable_channel_policy()->add_channels(common::CHANNEL_EMAIL);
  c->set_offer_id(offer.id());
  seg::Campaign created;
  REQUIRE_OK(Call(*s.segments, &seg::Segmentation::Stub::CreateCampaign, create, &created));
  CHECK(created.offer_id() == offer.id());
  CHECK(created.template_id().empty());
  seg::LaunchCampaignRequest launch;
  launch.set_id(created.id());
  launch.set_request_id("launch-uk");
  seg::Campaign launched;
  REQUIRE_OK(Call(*s.segments, &seg::Segmentation::Stub::LaunchCampaign, launch, &launched));
  REQUIRE_FALSE(launched.broadcast_id().empty());

  for (const std::string email : {"ada@example.com", "bea@example.com"}) {
    INFO(email);
    REQUIRE(Eventually([&] { return s.MailsTo(email).size() == 1; }));
    const std::string mail = s.MailsTo(email)[0];
    CHECK(absl::StrContains(mail, "Subject: Fifteen percent off for UK members, "));
    CHECK(absl::StrContains(mail, "15% off with code GOLD15."));
  }
  CHECK(absl::StrContains(s.MailsTo("ada@example.com")[0], "UK members, Ada\r\n"));
  REQUIRE(Eventually([&] { return Suppressed(s.Deliveries(cal), bc::SUPPRESSION_REASON_OFFER_NOT_ELIGIBLE); }));
  const bc::Delivery held = s.Deliveries(cal)[0];
  CHECK(held.campaign_id() == created.id());
  CHECK(absl::StrContains(held.last_error(), offer.id()));
  CHECK(absl::StrContains(held.last_error(), "profile.address.country == \"GB\""));
  REQUIRE(Eventually([&] { return Suppressed(s.Deliveries(dot), bc::SUPPRESSION_REASON_NO_CONSENT); }));
  // The broadcast completes with every recipient in a final state.
  bc::BroadcastJob job;
  REQUIRE(ecrm::testing::BroadcastCompleted(*s.deliveries, launched.broadcast_id(), job));
  CHECK(job.by_suppression_reason().at("OFFER_NOT_ELIGIBLE") == 1);
  CHECK(job.by_suppression_reason().at("NO_CONSENT") == 1);

  // The report counts them: two sent, two suppressed (the offer's and the consent's).
  seg::GetCampaignReportRequest report_req;
  report_req.set_id(created.id());
  seg::CampaignReport report;
  REQUIRE(Eventually([&] {
    return Call(*s.segments, &seg::Segmentation::Stub::GetCampaignReport, report_req, &report).ok() &&
           report.funnel().sent() == 2 && report.funnel().suppressed() == 2;
  }));
  CHECK(report.treatment().size() == 4);
  CHECK(report.control().size() == 0);
  CHECK(report.funnel().failed() == 0);

  // Triggered on entry into "gb": a customer entering it later is mailed the offer (the one-off
  // campaign's audience stayed as it was frozen at launch).
  const std::string gb = s.Segment("gb", "profile.address.country == \"GB\"");
  REQUIRE(Eventually([&] { return s.InSegment(ada, gb); }));  // filled before Eve joins
  seg::CreateCampaignRequest trig = create;
  trig.mutable_campaign()->set_name("uk fifteen, on entry");
  trig.mutable_campaign()->set_type(seg::CAMPAIGN_TYPE_TRIGGERED);
  trig.mutable_campaign()->clear_include_segment_ids();
  trig.mutable_campaign()->set_trigger_segment_id(gb);
  seg::Campaign triggered;
  REQUIRE_OK(Call(*s.segments, &seg::Segmentation::Stub::CreateCampaign, trig, &triggered));
  launch.set_id(triggered.id());
  launch.set_request_id("launch-uk-entry");
  REQUIRE_OK(Call(*s.segments, &seg::Segmentation::Stub::LaunchCampaign, launch, &launched));
  const std::string eve = member("eve@example.com", "Eve", "GB", true);
  REQUIRE(Eventually([&] { return s.MailsTo("eve@example.com").size() == 1; }));
  CHECK(absl::StrContains(s.MailsTo("eve@example.com")[0], "Subject: Fifteen percent off for UK members, Eve\r\n"));
  std::vector<bc::Delivery> eves = s.Deliveries(eve);
  REQUIRE(eves.size() == 1);
  CHECK(eves[0].campaign_id() == triggered.id());
  // Nothing more: Ada and Bea once each, Cal and Dot never.
  CHECK(s.MailsTo("ada@example.com").size() == 1);
  CHECK(s.MailsTo("cal@example.com").empty());
  CHECK(s.MailsTo("dot@example.com").empty());
  CHECK(s.smtp->Messages().size() == 3);
}

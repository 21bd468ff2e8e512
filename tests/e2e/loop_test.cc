// The whole loop end to end, with real processes only: the five engines, a real Redis, email
// received by the real SMTP server (tests/support/smtp_server.py), on SQLite and on PostgreSQL.
// A small shop's customers and purchase history go in; a segment, an offer for it, a template
// greeting each customer by name with their own recommendations and the offer decided for them,
// and a one-off campaign with a 20% control group go out as mail; opens, clicks, a one-click
// unsubscribe and the receiving server's delivery reports (RFC 3464) come back through
// broadcast's HTTP endpoints, orders through the transaction engine; the campaign report counts
// all of it, and every count is asserted exactly.
#include <grpcpp/grpcpp.h>
#include <httplib.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <map>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "broadcast_completed.h"
#include "channels/signing.h"
#include "ecrm/broadcast/v1/broadcast.grpc.pb.h"
#include "ecrm/infostore/v1/infostore.grpc.pb.h"
#include "ecrm/personalisation/v1/personalisation.grpc.pb.h"
#include "ecrm/segmentation/v1/segmentation.grpc.pb.h"
#include "ecrm/testing/process.h"
#include "ecrm/testing/service.h"
#include "ecrm/transaction/v1/transaction.grpc.pb.h"
#include "engine_suite.h"
#include "mail_parse.h"
#include "smtp_test_server.h"
#include "test_servers.h"

namespace bc = ecrm::broadcast::v1;
namespace common = ecrm::common::v1;
namespace is = ecrm::infostore::v1;
namespace ps = ecrm::personalisation::v1;
namespace sg = ecrm::segmentation::v1;
namespace tx = ecrm::transaction::v1;
using ecrm::testing::Call;
using ecrm::testing::DecodeQuotedPrintable;
using ecrm::testing::Eventually;
using ecrm::testing::MailHeader;
using ecrm::testing::Postgres;
using ecrm::testing::SmtpTestServer;

namespace {

constexpr int kBuyers = 200;     // customers with a purchase history: the segment
constexpr int kBrowsers = 20;    // customers without one: outside the segment, never mailed
constexpr int kProducts = 30;    // the catalogue
constexpr int kOpens = 30;       // mails whose pixel is fetched (one of them twice)
constexpr int kClicks = 12;      // mails whose tracked link is followed
constexpr int kClickedOnly = 6;  // of those, mails whose pixel was not fetched (images off)
constexpr int kDelivered = 40;   // mails the receiving server reports delivered (RFC 3464 DSNs)
constexpr int kTreatmentBuyers = 15;
constexpr int kControlBuyers = 4;
const std::string kProviderSecret = "the loop test's DSN secret";

// Every attribute value `attr="<prefix>…"`, HTML's &amp; decoded.
std::vector<std::string> FindAttrs(const std::string& html, const std::string& attr, const std::string& prefix) {
  std::vector<std::string> out;
  const std::string needle = absl::StrCat(attr, "=\"", prefix);
  for (size_t at = html.find(needle); at != std::string::npos; at = html.find(needle, at + 1)) {
    const size_t begin = at + attr.size() + 2;
    out.push_back(absl::StrReplaceAll(html.substr(begin, html.find('"', begin) - begin), {{"&amp;", "&"}}));
  }
  return out;
}

// "http://127.0.0.1:N/u?d=…" -> "/u?d=…".
std::string PathOf(const std::string& url) { return url.substr(url.find('/', url.find("://") + 3)); }

std::string Sku(int p) { return absl::StrFormat("SKU-%02d", p); }
std::string Title(int p) { return absl::StrFormat("Teapot model %02d", p); }
int64_t Price(int p) { return 1000 + 100 * p; }  // €10.00 … €12.90
std::string FirstName(int i) { return absl::StrFormat("Kim%03d", i); }
std::string Email(const std::string& backend, int i) { return absl::StrCat("c", i, ".", backend, "@shop.example"); }

struct Mail {
  std::string customer_id;
  std::string eml;      // as received
  std::string decoded;  // quoted-printable undone
};

struct Loop : ecrm::testing::EngineSuite {
  const std::string backend;
  std::unique_ptr<is::InformationStore::Stub> store;
  std::unique_ptr<tx::Transaction::Stub> shop;
  std::unique_ptr<ps::Personalisation::Stub> pers;
  std::unique_ptr<bc::Broadcast::Stub> bcast;
  std::unique_ptr<sg::Segmentation::Stub> seg;
  std::unique_ptr<httplib::Client> http;

  // `databases`: per engine, its --database-url (none: SQLite).
  Loop(std::string name, std::map<std::string, std::string> databases)
      : EngineSuite(Wiring(std::move(databases))), backend(std::move(name)) {
    store = is::InformationStore::NewStub(infostore->channel());
    shop = tx::Transaction::NewStub(transaction->channel());
    pers = ps::Personalisation::NewStub(personalisation->channel());
    bcast = bc::Broadcast::NewStub(broadcast->channel());
    seg = sg::Segmentation::NewStub(segmentation->channel());
    http = std::make_unique<httplib::Client>("127.0.0.1", http_port);
    http->set_connection_timeout(5);
    http->set_read_timeout(20);
  }

  static Options Wiring(std::map<std::string, std::string> databases) {
    Options o;
    o.databases = std::move(databases);
    o.flags["personalisation"] = {"--catalogue-refresh=200ms"};
    o.broadcast_http = true;
    // The links' key comes from the environment only; the engine inherits this process's.
    o.environment["ECRM_TRACKING_SECRET"] = "the loop test's tracking secret, 32 bytes";
    o.environment["ECRM_PROVIDER_WEBHOOK_SECRET"] = kProviderSecret;
    return o;
  }

  std::string Customer(int i) {
    is::UpsertCustomerRequest req;
    auto* id = req.add_identifiers();
    id->set_type(common::IDENTIFIER_TYPE_EMAIL);
    id->set_value(Email(backend, i));
    req.mutable_profile()->set_first_name(FirstName(i));
    req.mutable_profile()->set_last_name("Shopper");
    req.set_source(common::TOUCHPOINT_WEB);
    is::UpsertCustomerResponse resp;
    grpc::Status s = Call(*store, &is::InformationStore::Stub::UpsertCustomer, req, &resp);
    INFO(s.error_message());
    REQUIRE(s.ok());
    is::UpdateConsentRequest consent;
    consent.mutable_customer()->set_customer_id(resp.customer().id());
    consent.set_channel(common::CHANNEL_EMAIL);
    consent.set_purpose(common::PURPOSE_MARKETING);
    consent.set_status(is::CONSENT_STATUS_GRANTED);
    consent.set_source(common::TOUCHPOINT_WEB);
    consent.set_evidence("loop test: newsletter box at sign-up");
    is::Customer updated;
    s = Call(*store, &is::InformationStore::Stub::UpdateConsent, consent, &updated);
    INFO(s.error_message());
    REQUIRE(s.ok());
    return resp.customer().id();
  }

  void Product(int p) {
    tx::UpsertProductRequest req;
    req.mutable_product()->set_sku(Sku(p));
    req.mutable_product()->set_title(Title(p));
    req.mutable_product()->set_category("kitchen/tea");
    req.mutable_product()->mutable_price()->set_amount_minor(Price(p));
    req.mutable_product()->mutable_price()->set_currency("EUR");
    req.mutable_product()->set_active(true);
    tx::Product out;
    grpc::Status s = Call(*shop, &tx::Transaction::Stub::UpsertProduct, req, &out);
    INFO(s.error_message());
    REQUIRE(s.ok());
  }

  tx::Order Order(const std::string& customer_id, const std::vector<int>& products, const std::string& key) {
    tx::PlaceOrderRequest req;
    req.mutable_customer()->set_customer_id(customer_id);
    for (int p : products) {
      auto* line = req.add_lines();
      line->set_sku(Sku(p));
      line->set_quantity(1);
    }
    req.set_channel(tx::SALES_CHANNEL_WEB);
    req.set_idempotency_key(absl::StrCat(backend, "-", key));
    tx::Order out;
    grpc::Status s = Call(*shop, &tx::Transaction::Stub::PlaceOrder, req, &out);
    INFO(s.error_message());
    REQUIRE(s.ok());
    return out;
  }

  int64_t SegmentSize(const std::string& segment_id) {
    sg::ListSegmentMembersRequest req;
    req.set_segment_id(segment_id);
    req.set_page_size(10000);
    sg::ListSegmentMembersResponse resp;
    if (!Call(*seg, &sg::Segmentation::Stub::ListSegmentMembers, req, &resp).ok()) return -1;
    return resp.customer_ids_size();
  }

  std::vector<bc::Delivery> Deliveries(const std::string& broadcast_id) {
    std::vector<bc::Delivery> out;
    bc::ListDeliveriesRequest req;
    req.set_broadcast_id(broadcast_id);
    req.set_page_size(1000);
    for (;;) {
      bc::ListDeliveriesResponse page;
      REQUIRE(Call(*bcast, &bc::Broadcast::Stub::ListDeliveries, req, &page).ok());
      out.insert(out.end(), page.deliveries().begin(), page.deliveries().end());
      if (page.next_page_token().empty()) return out;
      req.set_page_token(page.next_page_token());
    }
  }

  is::ConsentStatus EmailMarketing(const std::string& customer_id) {
    is::GetCustomerRequest req;
    req.mutable_customer()->set_customer_id(customer_id);
    is::Customer c;
    REQUIRE(Call(*store, &is::InformationStore::Stub::GetCustomer, req, &c).ok());
    for (const is::Consent& consent : c.consents()) {
      if (consent.channel() == common::CHANNEL_EMAIL && consent.purpose() == common::PURPOSE_MARKETING) {
        return consent.status();
      }
    }
    return is::CONSENT_STATUS_UNSPECIFIED;
  }

  std::vector<ps::Recommendation> Recommended(const std::string& customer_id) {
    ps::RecommendRequest req;
    req.set_customer_id(customer_id);
    ps::RecommendResponse resp;
    REQUIRE(Call(*pers, &ps::Personalisation::Stub::Recommend, req, &resp).ok());
    return {resp.items().begin(), resp.items().end()};
  }

  // A delivery status notification (RFC 3464) about a mail as received, signed as the engine's
  // /webhooks/dsn wants it; its HTTP status.
  int Dsn(const std::string& eml, const std::string& action, const std::string& status) {
    const std::string body = absl::StrCat("Reporting-MTA: dns; mx.shop.example\r\n\r\nFinal-Recipient: rfc822; ",
                                          MailHeader(eml, "To"), "\r\nAction: ", action, "\r\nStatus: ", status,
                                          "\r\n\r\nMessage-ID: ", MailHeader(eml, "Message-ID"), "\r\n");
    const int64_t now = absl::ToUnixSeconds(absl::Now());
    httplib::Headers h = {{"X-Ecrm-Timestamp", absl::StrCat(now)},
                          {"X-Ecrm-Signature", ecrm::broadcast::RequestSignature(kProviderSecret, now, body)}};
    httplib::Result r = http->Post("/webhooks/dsn", h, body, "message/delivery-status");
    REQUIRE(r);
    INFO(r->body);
    return r->status;
  }

  sg::CampaignReport Report(const std::string& campaign_id) {
    sg::GetCampaignReportRequest req;
    req.set_id(campaign_id);
    sg::CampaignReport out;
    grpc::Status s = Call(*seg, &sg::Segmentation::Stub::GetCampaignReport, req, &out);
    INFO(s.error_message());
    REQUIRE(s.ok());
    return out;
  }
};

void RunLoop(const std::string& backend, const std::map<std::string, std::string>& databases) {
  const absl::Time began = absl::Now();
  Loop loop(backend, databases);

  // 1. The population: buyers with one or two past orders each, browsers without; all of them
  //    agreed to marketing email. The catalogue first: orders name its products.
  for (int p = 0; p < kProducts; ++p) loop.Product(p);
  std::vector<std::string> buyers, browsers;
  std::map<std::string, int> index;  // customer id -> i
  for (int i = 0; i < kBuyers + kBrowsers; ++i) {
    const std::string id = loop.Customer(i);
    index[id] = i;
    (i < kBuyers ? buyers : browsers).push_back(id);
  }
  for (int i = 0; i < kBuyers; ++i) {
    // Products in pairs that go together (2k, 2k+1), so similar items are there to recommend.
    const int first = (i * 7) % kProducts;
    std::vector<int> lines = {first};
    if (i % 3 != 0) lines.push_back(first ^ 1);
    loop.Order(buyers[i], lines, absl::StrCat("history-", i));
  }
  const absl::Time loaded = absl::Now();

  // 2. The segment (the buyers), an email template with the customer's name, their
  //    recommendations and the links broadcast fills, and a one-off campaign with a 20% control
  //    group. Segmentation and personalisation learn the history from the change feed: wait until
  //    both have all of it.
  sg::CreateSegmentRequest create_segment;
  create_segment.mutable_segment()->set_name("buyers");
  create_segment.mutable_segment()->set_rule("orders.count >= 1");
  sg::Segment segment;
  {
    grpc::Status s = Call(*loop.seg, &sg::Segmentation::Stub::CreateSegment, create_segment, &segment);
    INFO(s.error_message());
    REQUIRE(s.ok());
  }
  REQUIRE(Eventually([&] { return loop.SegmentSize(segment.id()) == kBuyers; }, absl::Seconds(60)));
  REQUIRE(Eventually(
      [&] {
        ps::ModelInfo info;
        return Call(*loop.pers, &ps::Personalisation::Stub::GetModelInfo, ps::GetModelInfoRequest(), &info).ok() &&
               info.orders() == kBuyers;
      },
      absl::Seconds(60)));
  // The catalogue too (the titles): every buyer's recommendations are described.
  REQUIRE(Eventually([&] {
    std::vector<ps::Recommendation> recommended = loop.Recommended(buyers[0]);
    return !recommended.empty() && !recommended[0].title().empty();
  }));

  // The offer for the segment's customers in campaign mail, and one for another placement that
  // the mail must not show.
  auto offer = [&](const std::string& name, const std::string& headline, const std::string& placement) {
    ps::CreateOfferRequest req;
    ps::Offer* o = req.mutable_offer();
    o->set_name(name);
    o->set_headline(headline);
    o->set_kind(ps::OFFER_KIND_PERCENT_OFF);
    o->set_percent_off(15);
    o->add_segment_ids(segment.id());
    o->add_channels(common::CHANNEL_EMAIL);
    o->add_placements(placement);
    o->set_active(true);
    ps::Offer out;
    grpc::Status s = Call(*loop.pers, &ps::Personalisation::Stub::CreateOffer, req, &out);
    INFO(s.error_message());
    REQUIRE(s.ok());
    return out;
  };
  offer("teapot-15", "15% off your next teapot", "campaign_email");
  offer("checkout-15", "15% off at the till", "checkout");

  ps::CreateTemplateRequest create_template;
  ps::Template* tpl = create_template.mutable_template_();
  tpl->set_name("loop");
  tpl->set_channel(common::CHANNEL_EMAIL);
  tpl->set_subject("Tea time, {{profile.first_name}}");
  tpl->set_text_body(
      "Hello {{profile.first_name}},\n\n{{#offers}}Your offer: {{headline}}\n{{/offers}}\nPicked for you:\n"
      "{{#recommendations}}- {{title}}\n{{/recommendations}}\nUnsubscribe: {{unsubscribe_url}}\n");
  tpl->set_html_body(
      "<html><body><p>Hello {{profile.first_name}},</p>{{#offers}}<p><b>{{headline}}</b></p>{{/offers}}"
      "<p>Picked for you:</p><ul>{{#recommendations}}"
      "<li><a href=\"https://shop.example/p/{{sku}}\">{{title}}</a></li>{{/recommendations}}</ul>"
      "<p><a href=\"{{unsubscribe_url}}\">Unsubscribe</a></p></body></html>");
  ps::Template saved_template;
  {
    grpc::Status s = Call(*loop.pers, &ps::Personalisation::Stub::CreateTemplate, create_template, &saved_template);
    INFO(s.error_message());
    REQUIRE(s.ok());
  }

  sg::CreateCampaignRequest create_campaign;
  sg::Campaign* c = create_campaign.mutable_campaign();
  c->set_name("loop");
  c->set_type(sg::CAMPAIGN_TYPE_ONE_OFF);
  c->add_include_segment_ids(segment.id());
  c->mutable_channel_policy()->add_channels(common::CHANNEL_EMAIL);
  c->set_template_id(saved_template.id());
  c->set_placement("campaign_email");
  c->set_control_fraction(0.2);
  c->set_goal_event_type("purchase");
  c->mutable_attribution_window()->set_seconds(14 * 24 * 3600);
  sg::Campaign campaign;
  {
    grpc::Status s = Call(*loop.seg, &sg::Segmentation::Stub::CreateCampaign, create_campaign, &campaign);
    INFO(s.error_message());
    REQUIRE(s.ok());
  }
  sg::LaunchCampaignRequest launch;
  launch.set_id(campaign.id());
  launch.set_request_id("loop-launch");
  {
    grpc::Status s = Call(*loop.seg, &sg::Segmentation::Stub::LaunchCampaign, launch, &campaign);
    INFO(s.error_message());
    REQUIRE(s.ok());
  }
  REQUIRE(campaign.state() == sg::CAMPAIGN_STATE_RUNNING);
  REQUIRE_FALSE(campaign.broadcast_id().empty());

  // 3. The broadcast completes; the SMTP server has exactly one mail per treatment customer, each
  //    their own.
  bc::BroadcastJob job;
  REQUIRE(ecrm::testing::BroadcastCompleted(*loop.bcast, campaign.broadcast_id(), job, absl::Seconds(60)));
  const absl::Time mailed = absl::Now();
  const std::vector<bc::Delivery> deliveries = loop.Deliveries(campaign.broadcast_id());
  std::set<std::string> treatment;
  for (const bc::Delivery& d : deliveries) {
    CHECK(d.state() == bc::DELIVERY_STATE_SENT);
    treatment.insert(d.customer_id());
  }
  const int64_t T = static_cast<int64_t>(treatment.size());
  const int64_t C = kBuyers - T;
  REQUIRE(static_cast<int64_t>(deliveries.size()) == T);  // one delivery per customer
  REQUIRE(job.audience_size() == T);
  CHECK(job.by_state().at("SENT") == T);
  // A 20% control group of 200 drawn by hash: about 40 (10 and 80 are over 5 standard deviations
  // out); the exact sizes are the ones the report must give.
  REQUIRE(C >= 10);
  REQUIRE(C <= 80);
  std::set<std::string> control;
  for (const std::string& id : buyers) {
    if (treatment.count(id) == 0) control.insert(id);
  }
  REQUIRE(static_cast<int64_t>(control.size()) == C);

  const std::vector<SmtpTestServer::Received> received = loop.smtp->Messages();
  REQUIRE(static_cast<int64_t>(received.size()) == T);
  std::map<std::string, std::string> id_by_email;
  for (const auto& [id, i] : index) id_by_email[Email(backend, i)] = id;
  std::vector<Mail> mails;
  std::set<std::string> mailed_customers;
  for (const SmtpTestServer::Received& r : received) {
    REQUIRE(r.meta["rcpt_tos"].size() == 1);
    const std::string to = r.meta["rcpt_tos"][0].get<std::string>();
    REQUIRE(id_by_email.count(to) == 1);
    Mail m{id_by_email[to], r.eml, DecodeQuotedPrintable(r.eml)};
    CHECK(treatment.count(m.customer_id) == 1);
    CHECK(mailed_customers.insert(m.customer_id).second);  // once each
    const std::string name = FirstName(index[m.customer_id]);
    INFO(m.decoded);
    CHECK(MailHeader(m.eml, "Subject") == "Tea time, " + name);
    CHECK(absl::StrContains(m.decoded, absl::StrCat("Hello ", name, ",\r\n")));
    CHECK(absl::StrContains(m.decoded, absl::StrCat("<p>Hello ", name, ",</p>")));
    CHECK(absl::StrContains(m.decoded, "Your offer: 15% off your next teapot\r\n"));
    CHECK(absl::StrContains(m.decoded, "<p><b>15% off your next teapot</b></p>"));
    // Not the other placement's offer (its whole title: a link's random signature may hold "till").
    CHECK_FALSE(absl::StrContains(m.decoded, "15% off at the till"));
    // Their own recommendations, as many as the model gives them (nothing has changed it since
    // the render): every product bought by those who bought what they bought; the rest, the most
    // popular ones, may differ where popularity ties.
    const std::vector<ps::Recommendation> recommended = loop.Recommended(m.customer_id);
    REQUIRE_FALSE(recommended.empty());
    std::set<std::string> listed;
    const size_t from = m.decoded.find("Picked for you:\r\n"), until = m.decoded.find("\r\nUnsubscribe: ");
    REQUIRE(from != std::string::npos);
    REQUIRE(until != std::string::npos);
    for (absl::string_view line : absl::StrSplit(m.decoded.substr(from, until - from), "\r\n")) {
      if (absl::ConsumePrefix(&line, "- ")) listed.insert(std::string(line));
    }
    CHECK(listed.size() == recommended.size());
    int own = 0;
    for (const ps::Recommendation& r : recommended) {
      own += listed.count(r.title());
      if (r.source() == "similar_items") CHECK(listed.count(r.title()) == 1);
    }
    CHECK(own > 0);
    const std::string unsubscribe = MailHeader(m.eml, "List-Unsubscribe");
    CHECK(absl::StartsWith(unsubscribe, "<http://127.0.0.1:"));
    CHECK(MailHeader(m.eml, "List-Unsubscribe-Post") == "List-Unsubscribe=One-Click");
    CHECK_FALSE(absl::StrContains(m.decoded, "{{"));
    mails.push_back(std::move(m));
  }
  CHECK(mailed_customers == treatment);

  // 4. Customers answer the mail: the pixel of kOpens mails (one of them fetched twice), the
  //    tracked link of kClicks (kClickedOnly of them without the pixel: images off), and one
  //    one-click unsubscribe (RFC 8058) from a mail nobody opened.
  std::sort(mails.begin(), mails.end(), [](const Mail& a, const Mail& b) { return a.customer_id < b.customer_id; });
  REQUIRE(static_cast<int>(mails.size()) >= kOpens + kClickedOnly + 1);
  std::set<std::string> opened, clicked;
  auto pixel = [&](const Mail& m) {
    const std::vector<std::string> urls = FindAttrs(m.decoded, "src", "http://127.0.0.1:");
    REQUIRE(urls.size() == 1);
    CHECK(absl::StrContains(urls[0], "/o?d="));
    httplib::Result r = loop.http->Get(PathOf(urls[0]));
    REQUIRE(r);
    CHECK(r->status == 200);
    CHECK(r->get_header_value("Content-Type") == "image/gif");
  };
  auto click = [&](const Mail& m) {
    // The first product link, rewritten into broadcast's signed click URL.
    const std::vector<std::string> urls = FindAttrs(m.decoded, "href", "http://127.0.0.1:");
    std::vector<std::string> tracked;
    for (const std::string& u : urls) {
      if (absl::StrContains(u, "/c?d=")) tracked.push_back(u);
    }
    REQUIRE_FALSE(tracked.empty());
    httplib::Result r = loop.http->Get(PathOf(tracked[0]));
    REQUIRE(r);
    CHECK(r->status == 302);
    CHECK(absl::StartsWith(r->get_header_value("Location"), "https://shop.example/p/SKU-"));
  };
  for (int k = 0; k < kOpens; ++k) {
    pixel(mails[k]);
    opened.insert(mails[k].customer_id);
  }
  pixel(mails[0]);  // opened again: still one customer who opened
  for (int k = 0; k < kClicks; ++k) {
    // Half among the mails opened, half among those never opened.
    const Mail& m = k < kClicks - kClickedOnly ? mails[k] : mails[kOpens + (k - (kClicks - kClickedOnly))];
    click(m);
    clicked.insert(m.customer_id);
  }
  const Mail& leaver = mails.back();  // neither opened nor clicked
  REQUIRE(opened.count(leaver.customer_id) == 0);
  REQUIRE(clicked.count(leaver.customer_id) == 0);
  {
    const std::string header = MailHeader(leaver.eml, "List-Unsubscribe");
    const std::string url = header.substr(1, header.find('>') - 1);
    httplib::Result r = loop.http->Post(PathOf(url), "List-Unsubscribe=One-Click", "application/x-www-form-urlencoded");
    REQUIRE(r);
    INFO(r->body);
    CHECK(r->status == 200);
  }
  CHECK(loop.EmailMarketing(leaver.customer_id) == is::CONSENT_STATUS_WITHDRAWN);
  // The receiving server's reports: kDelivered mails delivered, one bounced for good (a mail
  // nobody opened, clicked or unsubscribed from).
  for (int k = 0; k < kDelivered; ++k) CHECK(loop.Dsn(mails[k].eml, "delivered", "2.0.0") == 200);
  const Mail& bounced = mails[kDelivered + 5];
  REQUIRE(opened.count(bounced.customer_id) + clicked.count(bounced.customer_id) == 0);
  CHECK(loop.Dsn(bounced.eml, "failed", "5.1.1") == 200);
  CHECK(loop.EmailMarketing(mails.front().customer_id) == is::CONSENT_STATUS_GRANTED);

  // 5. Orders after the launch, through the transaction engine: kTreatmentBuyers treatment
  //    customers (the first of them twice), kControlBuyers control customers and a browser
  //    outside the audience (counted nowhere).
  int64_t treatment_revenue = 0, control_revenue = 0;
  auto buy = [&](const std::string& customer_id, int product, const std::string& key) {
    tx::Order o = loop.Order(customer_id, {product}, key);
    REQUIRE(o.total().amount_minor() == Price(product));  // no tax, no shipping: the known amount
    return o.total().amount_minor();
  };
  std::vector<std::string> treated(treatment.begin(), treatment.end());
  std::vector<std::string> held_out(control.begin(), control.end());
  REQUIRE(static_cast<int>(held_out.size()) >= kControlBuyers);
  for (int k = 0; k < kTreatmentBuyers; ++k) treatment_revenue += buy(treated[k], k % kProducts, absl::StrCat("t-", k));
  treatment_revenue += buy(treated[0], 29, "t-again");
  for (int k = 0; k < kControlBuyers; ++k)
    control_revenue += buy(held_out[k], (k + 3) % kProducts, absl::StrCat("c-", k));
  buy(browsers[0], 5, "outside");

  // 6. The report counts every one of them, exactly.
  const int64_t expected_opened = static_cast<int64_t>([&] {
    std::set<std::string> any = opened;  // a click is an open too (the pixel may be blocked)
    any.insert(clicked.begin(), clicked.end());
    return any.size();
  }());
  sg::CampaignReport report;
  const bool counted = Eventually(
      [&] {
        report = loop.Report(campaign.id());
        const sg::DeliveryFunnel& f = report.funnel();
        return report.treatment().converted() == kTreatmentBuyers && report.control().converted() == kControlBuyers &&
               report.treatment().revenue().amount_minor() == treatment_revenue &&
               report.control().revenue().amount_minor() == control_revenue && f.sent() == T &&
               f.opened() == expected_opened && f.clicked() == kClicks && f.unsubscribed() == 1 &&
               f.delivered() == kDelivered && f.failed() == 1;
      },
      absl::Seconds(60));
  INFO(report.DebugString());
  CHECK(counted);
  CHECK(report.campaign_id() == campaign.id());
  CHECK(report.audience_size() == kBuyers);
  CHECK(report.treatment().size() == T);
  CHECK(report.control().size() == C);
  const sg::DeliveryFunnel& f = report.funnel();
  CHECK(f.sent() == T);
  // The SMTP server's 250 is "sent"; "delivered" and "failed" are what the DSNs reported.
  CHECK(f.delivered() == kDelivered);
  CHECK(f.failed() == 1);
  CHECK(f.suppressed() == 0);
  CHECK(f.opened() == expected_opened);
  CHECK(f.opened() == kOpens + kClickedOnly);
  CHECK(f.clicked() == kClicks);
  CHECK(f.unsubscribed() == 1);
  CHECK(report.treatment().converted() == kTreatmentBuyers);
  CHECK(report.control().converted() == kControlBuyers);
  CHECK(report.treatment().revenue().amount_minor() == treatment_revenue);
  CHECK(report.control().revenue().amount_minor() == control_revenue);
  CHECK(report.treatment().revenue().currency() == "EUR");
  const double rate_t = static_cast<double>(kTreatmentBuyers) / static_cast<double>(T);
  const double rate_c = static_cast<double>(kControlBuyers) / static_cast<double>(C);
  CHECK(report.treatment().conversion_rate() == Approx(rate_t).epsilon(1e-12));
  CHECK(report.control().conversion_rate() == Approx(rate_c).epsilon(1e-12));
  REQUIRE(report.has_absolute_uplift());
  CHECK(report.absolute_uplift() == Approx(rate_t - rate_c).epsilon(1e-12));
  REQUIRE(report.has_relative_uplift());
  CHECK(report.relative_uplift() == Approx((rate_t - rate_c) / rate_c).epsilon(1e-12));
  REQUIRE(report.has_uplift_ci_low());
  CHECK(report.uplift_ci_low() < report.absolute_uplift());
  CHECK(report.uplift_ci_high() > report.absolute_uplift());
  CHECK(report.attributed_revenue().amount_minor() == treatment_revenue);
  CHECK(report.incremental_revenue().amount_minor() ==
        std::llround(static_cast<long double>(treatment_revenue) -
                     static_cast<long double>(control_revenue) * T / static_cast<long double>(C)));
  CHECK(report.window_open());
  WARN(absl::StrFormat("%s: loaded in %.1f s, mailed %d in %.1f s more, the whole loop %.1f s", backend,
                       absl::ToDoubleSeconds(loaded - began), T, absl::ToDoubleSeconds(mailed - loaded),
                       absl::ToDoubleSeconds(absl::Now() - began)));
}

}  // namespace

TEST_CASE("the loop on SQLite: customers, segment, campaign, mail, opens, clicks, unsubscribe, orders, report") {
  RunLoop("sqlite", {});
}

TEST_CASE("the loop on PostgreSQL: customers, segment, campaign, mail, opens, clicks, unsubscribe, orders, report") {
  std::map<std::string, std::string> databases;
  for (const char* engine : {"infostore", "transaction", "personalisation", "broadcast", "segmentation"}) {
    auto db = Postgres().CreateUniqueDatabase();
    REQUIRE(db.ok());
    databases[engine] = Postgres().url(*db);
  }
  RunLoop("postgres", databases);
}

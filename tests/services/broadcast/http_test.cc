// ecrm-broadcast's HTTP endpoints end to end: the real binary with a real ecrm-infostore, Redis
// and SMTP server (tests/support/smtp_server.py). A marketing mail's List-Unsubscribe URL, POSTed
// as RFC 8058 says, withdraws the consent in the information store and stops a message still
// queued for the customer; GET only shows a page; clicks redirect only when signed; the pixel
// records the open; provider webhooks and DSNs are verified and recorded.
#include <grpcpp/grpcpp.h>
#include <httplib.h>
#include <stdlib.h>

#include <catch2/catch.hpp>
#include <fstream>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "channels/signing.h"
#include "ecrm/broadcast/v1/broadcast.grpc.pb.h"
#include "ecrm/infostore/v1/infostore.grpc.pb.h"
#include "ecrm/testing/process.h"
#include "ecrm/testing/service.h"
#include "mail_parse.h"
#include "smtp_test_server.h"
#include "test_servers.h"

namespace v1 = ecrm::broadcast::v1;
namespace common = ecrm::common::v1;
namespace info = ecrm::infostore::v1;
using ecrm::testing::DecodeQuotedPrintable;
using ecrm::testing::Eventually;
using ecrm::testing::MailHeader;
using ecrm::testing::Redis;
using ecrm::testing::ServiceProcess;

namespace {

const std::string kTrackingSecret = "e2e-tracking-secret-0123456789";
const std::string kProviderSecret = "e2e-provider-secret";

std::unique_ptr<ServiceProcess> Start(const std::string& binary, std::vector<std::string> args) {
  auto s = ServiceProcess::Start(binary, args);
  if (!s.ok()) FAIL(s.status().ToString());
  return std::move(*s);
}

template <typename Fn>
auto Call(Fn fn) {
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(20)));
  return fn(&ctx);
}

// The first attribute value `attr="…"` starting with `prefix`, HTML's &amp; decoded.
std::string FindAttr(const std::string& html, const std::string& attr, const std::string& prefix) {
  const size_t at = html.find(absl::StrCat(attr, "=\"", prefix));
  if (at == std::string::npos) return "";
  const size_t begin = at + attr.size() + 2;
  return absl::StrReplaceAll(html.substr(begin, html.find('"', begin) - begin), {{"&amp;", "&"}});
}

// "http://127.0.0.1:N/u?d=…" -> "/u?d=…".
std::string PathOf(const std::string& url) {
  const size_t slash = url.find('/', url.find("://") + 3);
  return url.substr(slash);
}

struct Env {
  ecrm::testing::TempDir dir;
  std::unique_ptr<ecrm::testing::SmtpTestServer> smtp;
  std::unique_ptr<ServiceProcess> infostore;
  std::unique_ptr<ServiceProcess> broadcast;
  std::unique_ptr<info::InformationStore::Stub> hub;
  std::unique_ptr<v1::Broadcast::Stub> stub;
  std::unique_ptr<httplib::Client> http;
  int http_port = 0;

  explicit Env(std::vector<std::string> database_args) {
    auto s = ecrm::testing::SmtpTestServer::Start();
    if (!s.ok()) FAIL(s.status().ToString());
    smtp = std::move(*s);
    infostore =
        Start(ecrm::testing::Binary("infostore"),
              {absl::StrCat("--database-url=sqlite://", dir.path(), "/infostore.db"), "--redis-url=" + Redis().url()});
    hub = info::InformationStore::NewStub(infostore->channel());
    // Secrets come from the environment only; the child inherits this process's.
    setenv("ECRM_TRACKING_SECRET", kTrackingSecret.c_str(), 1);
    setenv("ECRM_PROVIDER_WEBHOOK_SECRET", kProviderSecret.c_str(), 1);
    const std::string port_file = dir.path() + "/http-port";
    std::vector<std::string> args = {"--redis-url=" + Redis().url(),
                                     "--infostore-address=" + infostore->grpc_address(),
                                     "--smtp-url=" + smtp->Url(),
                                     "--smtp-from=shop@example.com",
                                     "--http-address=127.0.0.1:0",
                                     "--http-port-file=" + port_file,
                                     "--retry-base=50ms",
                                     "--retry-max=200ms",
                                     "--max-attempts=1000"};
    args.insert(args.end(), database_args.begin(), database_args.end());
    broadcast = Start(ecrm::testing::Binary("broadcast"), args);
    stub = v1::Broadcast::NewStub(broadcast->channel());
    std::ifstream in(port_file);
    std::string line;
    REQUIRE(std::getline(in, line));
    REQUIRE(absl::SimpleAtoi(absl::StripPrefix(line, "http_port="), &http_port));
    http = std::make_unique<httplib::Client>("127.0.0.1", http_port);
    http->set_connection_timeout(5);
    http->set_read_timeout(20);
  }

  std::string NewCustomer(const std::string& email) {
    info::UpsertCustomerRequest req;
    auto* id = req.add_identifiers();
    id->set_type(common::IDENTIFIER_TYPE_EMAIL);
    id->set_value(email);
    info::UpsertCustomerResponse resp;
    REQUIRE(Call([&](grpc::ClientContext* ctx) { return hub->UpsertCustomer(ctx, req, &resp); }).ok());
    info::UpdateConsentRequest consent;
    consent.mutable_customer()->set_customer_id(resp.customer().id());
    consent.set_channel(common::CHANNEL_EMAIL);
    consent.set_purpose(common::PURPOSE_MARKETING);
    consent.set_status(info::CONSENT_STATUS_GRANTED);
    consent.set_source(common::TOUCHPOINT_WEB);
    info::Customer c;
    REQUIRE(Call([&](grpc::ClientContext* ctx) { return hub->UpdateConsent(ctx, consent, &c); }).ok());
    return resp.customer().id();
  }
  info::Customer Customer(const std::string& id) {
    info::GetCustomerRequest req;
    req.mutable_customer()->set_customer_id(id);
    info::Customer c;
    REQUIRE(Call([&](grpc::ClientContext* ctx) { return hub->GetCustomer(ctx, req, &c); }).ok());
    return c;
  }
  info::ConsentStatus EmailMarketing(const std::string& id) {
    const info::Customer customer = Customer(id);
    for (const info::Consent& c : customer.consents()) {
      if (c.channel() == common::CHANNEL_EMAIL && c.purpose() == common::PURPOSE_MARKETING) return c.status();
    }
    return info::CONSENT_STATUS_UNSPECIFIED;
  }
  int64_t EventCount(const std::string& id, const std::string& type) {
    const info::Customer customer = Customer(id);
    const auto& counts = customer.behaviour().event_counts();
    auto it = counts.find(type);
    return it == counts.end() ? 0 : it->second;
  }
  v1::Delivery Send(const std::string& customer, const std::string& subject) {
    v1::SendMessageRequest req;
    req.mutable_customer()->set_customer_id(customer);
    req.set_channel(common::CHANNEL_EMAIL);
    req.set_purpose(common::PURPOSE_MARKETING);
    req.mutable_content()->mutable_literal()->set_subject(subject);
    req.mutable_content()->mutable_literal()->set_text_body("10% off: https://shop.example.com/sale");
    req.mutable_content()->mutable_literal()->set_html_body(
        "<html><body><p>10% off</p><a href=\"https://shop.example.com/sale?x=1&amp;y=2\">Sale</a></body></html>");
    req.set_campaign_id("camp-http");
    v1::Delivery d;
    grpc::Status st = Call([&](grpc::ClientContext* ctx) { return stub->SendMessage(ctx, req, &d); });
    INFO(st.error_message());
    REQUIRE(st.ok());
    return d;
  }
  v1::Delivery Get(const std::string& customer, const std::string& id) {
    v1::ListDeliveriesRequest req;
    req.set_customer_id(customer);
    v1::ListDeliveriesResponse resp;
    REQUIRE(Call([&](grpc::ClientContext* ctx) { return stub->ListDeliveries(ctx, req, &resp); }).ok());
    for (const v1::Delivery& d : resp.deliveries()) {
      if (d.id() == id) return d;
    }
    FAIL("no delivery " << id);
    return {};
  }
  std::vector<v1::Suppression> Suppressions() {
    v1::ListSuppressionsRequest req;
    v1::ListSuppressionsResponse resp;
    REQUIRE(Call([&](grpc::ClientContext* ctx) { return stub->ListSuppressions(ctx, req, &resp); }).ok());
    return {resp.suppressions().begin(), resp.suppressions().end()};
  }
  httplib::Result Signed(const std::string& path, const std::string& body, const std::string& content_type,
                         const std::string& secret = kProviderSecret) {
    const int64_t now = absl::ToUnixSeconds(absl::Now());
    httplib::Headers h = {{"X-Ecrm-Timestamp", absl::StrCat(now)},
                          {"X-Ecrm-Signature", ecrm::broadcast::RequestSignature(secret, now, body)}};
    return http->Post(path.c_str(), h, body, content_type.c_str());
  }
  std::string Metrics() {
    httplib::Client m(broadcast->metrics_address().substr(0, broadcast->metrics_address().find(':')),
                      std::stoi(broadcast->metrics_address().substr(broadcast->metrics_address().find(':') + 1)));
    auto r = m.Get("/metrics");
    return r ? r->body : "";
  }
};

}  // namespace

namespace {

void Run(Env& e) {
  const std::string ann = e.NewCustomer("ann@example.com");

  // 1. A marketing mail goes out with both RFC 8058 headers and tracked HTML.
  const v1::Delivery first = e.Send(ann, "Flash sale");
  REQUIRE(Eventually([&] { return e.smtp->Messages().size() == 1; }));
  REQUIRE(Eventually([&] { return e.Get(ann, first.id()).state() == v1::DELIVERY_STATE_SENT; }));
  const std::string eml = e.smtp->Messages()[0].eml;
  const std::string list_unsubscribe = MailHeader(eml, "List-Unsubscribe");
  CHECK(MailHeader(eml, "List-Unsubscribe-Post") == "List-Unsubscribe=One-Click");
  REQUIRE(absl::StartsWith(list_unsubscribe, absl::StrCat("<http://127.0.0.1:", e.http_port, "/u?d=")));
  const std::string unsubscribe = PathOf(std::string(absl::StripSuffix(absl::StripPrefix(list_unsubscribe, "<"), ">")));
  const std::string html = DecodeQuotedPrintable(eml);
  const std::string click = FindAttr(html, "href", absl::StrCat("http://127.0.0.1:", e.http_port, "/c?"));
  const std::string pixel = FindAttr(html, "src", absl::StrCat("http://127.0.0.1:", e.http_port, "/o?"));
  INFO(html);
  REQUIRE_FALSE(click.empty());
  REQUIRE_FALSE(pixel.empty());

  // 2. The pixel: a GIF nobody caches, and the open.
  auto px = e.http->Get(PathOf(pixel).c_str());
  REQUIRE(px);
  CHECK(px->status == 200);
  CHECK(px->get_header_value("Content-Type") == "image/gif");
  CHECK(absl::StartsWith(px->body, "GIF89a"));
  CHECK(absl::StrContains(px->get_header_value("Cache-Control"), "no-store"));
  CHECK(Eventually([&] { return e.EventCount(ann, "message_opened") == 1; }));

  // 3. Clicks: a tampered signature or target is 400 with no Location (never an open redirect);
  //    the link as sent is a 302 to the shop, and the click is recorded once.
  std::string tampered = PathOf(click);
  tampered[tampered.size() - 3] = tampered[tampered.size() - 3] == 'A' ? 'B' : 'A';
  auto bad = e.http->Get(tampered.c_str());
  REQUIRE(bad);
  CHECK(bad->status == 400);
  CHECK_FALSE(bad->has_header("Location"));
  const std::string evil = absl::StrReplaceAll(PathOf(click), {{"shop.example.com", "evil.example.net"}});
  REQUIRE(evil != PathOf(click));
  auto redirected_elsewhere = e.http->Get(evil.c_str());
  REQUIRE(redirected_elsewhere);
  CHECK(redirected_elsewhere->status == 400);
  CHECK_FALSE(redirected_elsewhere->has_header("Location"));
  auto good = e.http->Get(PathOf(click).c_str());
  REQUIRE(good);
  CHECK(good->status == 302);
  CHECK(good->get_header_value("Location") == "https://shop.example.com/sale?x=1&y=2");
  REQUIRE(e.http->Get(PathOf(click).c_str()));  // a second click: still one event
  CHECK(Eventually([&] { return e.EventCount(ann, "message_clicked") == 1; }));

  // 4. GET shows the confirmation page and changes nothing.
  auto page = e.http->Get(unsubscribe.c_str());
  REQUIRE(page);
  CHECK(page->status == 200);
  CHECK(absl::StrContains(page->body, "<form method=\"post\""));
  CHECK(absl::StrContains(page->body, "name=\"List-Unsubscribe\" value=\"One-Click\""));
  CHECK(e.EmailMarketing(ann) == info::CONSENT_STATUS_GRANTED);
  CHECK(e.Suppressions().empty());

  // 5. A second marketing message is queued: the SMTP server answers 450 for now, so it waits
  //    for its next attempt.
  e.smtp->SetFaults(std::vector<std::string>(5000, "rcpt 450"));
  const v1::Delivery second = e.Send(ann, "Last chance");
  REQUIRE(second.state() == v1::DELIVERY_STATE_QUEUED);
  REQUIRE(Eventually([&] {
    v1::Delivery d = e.Get(ann, second.id());
    return d.state() == v1::DELIVERY_STATE_QUEUED && d.attempts() >= 1;
  }));

  // 6. Not the RFC 8058 body, or a forged link: 400, nothing changes.
  auto not_one_click = e.http->Post(unsubscribe.c_str(), "List-Unsubscribe=Maybe", "application/x-www-form-urlencoded");
  REQUIRE(not_one_click);
  CHECK(not_one_click->status == 400);
  std::string forged = unsubscribe;
  forged[forged.size() - 2] = forged[forged.size() - 2] == 'A' ? 'B' : 'A';
  auto forged_post = e.http->Post(forged.c_str(), "List-Unsubscribe=One-Click", "application/x-www-form-urlencoded");
  REQUIRE(forged_post);
  CHECK(forged_post->status == 400);
  CHECK(e.EmailMarketing(ann) == info::CONSENT_STATUS_GRANTED);

  // 7. The one-click POST: 200, no redirect; the consent is withdrawn in the information store
  //    with its evidence, and the queued message ends suppressed without reaching the server.
  const absl::Time health_began = absl::Now();  // the same run's baseline: one health check
  REQUIRE(ecrm::testing::HealthStatus(e.broadcast->grpc_address()).ok());
  const absl::Duration health = absl::Now() - health_began;
  const absl::Time posted = absl::Now();
  auto done = e.http->Post(unsubscribe.c_str(), "List-Unsubscribe=One-Click", "application/x-www-form-urlencoded");
  REQUIRE(done);
  const absl::Duration answered = absl::Now() - posted;  // the suppression is committed before the answer
  CHECK(done->status == 200);
  CHECK_FALSE(done->has_header("Location"));
  CHECK(e.EmailMarketing(ann) == info::CONSENT_STATUS_WITHDRAWN);
  const info::Customer unsubscribed = e.Customer(ann);
  for (const info::Consent& c : unsubscribed.consents()) {
    if (c.channel() != common::CHANNEL_EMAIL) continue;
    CHECK(c.source() == common::TOUCHPOINT_MESSAGE);
    CHECK(absl::StrContains(c.evidence(), "one-click unsubscribe"));
    CHECK(absl::StrContains(c.evidence(), first.id()));
  }
  REQUIRE(Eventually([&] { return e.Get(ann, second.id()).state() == v1::DELIVERY_STATE_SUPPRESSED; }));
  const absl::Duration effect = absl::Now() - posted;
  // Not asserted (no timing in tests): the figures docs/benchmarks.md reports.
  WARN("health check " << absl::FormatDuration(health) << "; unsubscribe POST answered in "
                       << absl::FormatDuration(answered) << "; the queued message SUPPRESSED after "
                       << absl::FormatDuration(effect));
  const v1::SuppressionReason reason = e.Get(ann, second.id()).suppression_reason();
  CHECK((reason == v1::SUPPRESSION_REASON_SUPPRESSION_LIST || reason == v1::SUPPRESSION_REASON_NO_CONSENT));
  CHECK(e.smtp->Messages().size() == 1);
  CHECK(Eventually([&] { return e.EventCount(ann, "message_unsubscribed") == 1; }));
  // A second POST (a retried request) is answered the same and counts nothing twice.
  auto again = e.http->Post(unsubscribe.c_str(), "List-Unsubscribe=One-Click", "application/x-www-form-urlencoded");
  REQUIRE(again);
  CHECK(again->status == 200);

  // 8. Provider webhooks: signed JSON is recorded; a bad signature 401; malformed 400.
  const std::string delivered = absl::StrCat(R"({"type":"delivered","delivery_id":")", first.id(), "\"}");
  auto wh = e.Signed("/webhooks/provider", delivered, "application/json");
  REQUIRE(wh);
  CHECK(wh->status == 200);
  CHECK(absl::StrContains(wh->body, "\"recorded\":1"));
  CHECK(e.Get(ann, first.id()).state() == v1::DELIVERY_STATE_DELIVERED);
  auto unsigned_wh = e.Signed("/webhooks/provider", delivered, "application/json", "wrong-secret");
  REQUIRE(unsigned_wh);
  CHECK(unsigned_wh->status == 401);
  for (const std::string& body : {std::string("{"), std::string("[1,2]"), std::string(R"({"type":"bounce"})"),
                                  std::string("\xff\xfe"), std::string()}) {
    auto malformed = e.Signed("/webhooks/provider", body, "application/json");
    REQUIRE(malformed);
    CHECK(malformed->status == 400);
  }

  // 9. An RFC 3464 report: delayed changes nothing; failed 5.1.1 bounces and suppresses the address.
  const std::string message_id = MailHeader(eml, "Message-ID");
  auto dsn = [&](const std::string& action, const std::string& status) {
    return absl::StrCat(
        "Reporting-MTA: dns; mx.example.com\r\n\r\nFinal-Recipient: rfc822; ann@example.com\r\nAction: ", action,
        "\r\nStatus: ", status, "\r\nDiagnostic-Code: smtp; 550 5.1.1 user unknown\r\n\r\nMessage-ID: ", message_id,
        "\r\nSubject: Flash sale\r\n");
  };
  auto delayed = e.Signed("/webhooks/dsn", dsn("delayed", "4.4.1"), "message/delivery-status");
  REQUIRE(delayed);
  CHECK(delayed->status == 200);
  CHECK(e.Get(ann, first.id()).state() == v1::DELIVERY_STATE_DELIVERED);
  auto malformed_dsn = e.Signed("/webhooks/dsn", "Action: failed\r\n", "message/delivery-status");
  REQUIRE(malformed_dsn);
  CHECK(malformed_dsn->status == 400);
  auto hard = e.Signed("/webhooks/dsn", dsn("failed", "5.1.1"), "message/delivery-status");
  REQUIRE(hard);
  CHECK(hard->status == 200);
  CHECK(e.Get(ann, first.id()).state() == v1::DELIVERY_STATE_FAILED);
  bool address_suppressed = false;
  for (const v1::Suppression& s : e.Suppressions()) address_suppressed |= s.reason() == "hard_bounce";
  CHECK(address_suppressed);
  CHECK(Eventually([&] { return e.EventCount(ann, "message_bounced") == 1; }));

  // 10. Unknown paths are 404; every request is counted by endpoint and code.
  auto unknown = e.http->Get("/nothing-here");
  REQUIRE(unknown);
  CHECK(unknown->status == 404);
  const std::string metrics = e.Metrics();
  CHECK(absl::StrContains(metrics, "ecrm_broadcast_http_requests_total{code=\"302\",endpoint=\"click\"} 2"));
  CHECK(absl::StrContains(metrics, "ecrm_broadcast_http_requests_total{code=\"400\",endpoint=\"click\"} 2"));
  CHECK(absl::StrContains(metrics, "ecrm_broadcast_http_requests_total{code=\"200\",endpoint=\"unsubscribe\"} 2"));
  CHECK(absl::StrContains(metrics, "ecrm_broadcast_http_requests_total{code=\"200\",endpoint=\"open\"} 1"));
}

}  // namespace

TEST_CASE("one-click unsubscribe, clicks, the pixel, provider webhooks and DSNs against the real engine") {
  SECTION("sqlite") {
    Env e({});
    Run(e);
  }
  SECTION("postgres") {
    auto db = ecrm::testing::Postgres().CreateUniqueDatabase();
    REQUIRE(db.ok());
    Env e({"--database-url=" + ecrm::testing::Postgres().url(*db)});
    Run(e);
  }
}

// TrackingEndpoints in-process over a SQLite database, a fake information store and a capturing
// channel: what the dispatcher puts in a marketing message, and how the endpoints answer when the
// information store fails, a signature is forged, or a provider repeats itself.
#include <prometheus/registry.h>

#include <catch2/catch.hpp>
#include <mutex>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "channels/signing.h"
#include "deliveries.h"
#include "dispatcher.h"
#include "ecrm/idempotency/idempotency.h"
#include "ecrm/outbox/outbox.h"
#include "ecrm/testing/process.h"
#include "frequency_caps.h"
#include "metrics.h"
#include "profiles.h"
#include "schema.h"
#include "suppressions.h"
#include "tracking_endpoints.h"

namespace bc = ecrm::broadcast;
namespace v1 = ecrm::broadcast::v1;
namespace common = ecrm::common::v1;
namespace info = ecrm::infostore::v1;

namespace {

class FakeHub final : public bc::CustomerDirectory, public bc::ConsentUpdater {
 public:
  absl::StatusOr<info::Customer> GetCustomer(const common::CustomerRef& ref, absl::Time) override {
    info::Customer c;
    c.set_id(ref.customer_id());
    auto* email = c.add_identifiers();
    email->set_type(common::IDENTIFIER_TYPE_EMAIL);
    email->set_value(ref.customer_id() + "@example.com");
    auto* consent = c.add_consents();
    consent->set_channel(common::CHANNEL_EMAIL);
    consent->set_purpose(common::PURPOSE_MARKETING);
    consent->set_status(info::CONSENT_STATUS_GRANTED);
    return c;
  }
  absl::Status UpdateConsent(const info::UpdateConsentRequest& request, absl::Time) override {
    std::lock_guard lock(mu);
    requests.push_back(request);
    return answer;
  }
  std::mutex mu;
  absl::Status answer = absl::OkStatus();
  std::vector<info::UpdateConsentRequest> requests;
};

class CapturingChannel final : public bc::Channel {
 public:
  std::vector<bc::SendResult> Send(absl::Span<const bc::OutgoingMessage> messages) override {
    std::vector<bc::SendResult> out;
    for (const bc::OutgoingMessage& m : messages) {
      sent.push_back(m);
      out.push_back({bc::SendOutcome::kAccepted, "p-" + m.delivery_id, "", std::nullopt});
    }
    return out;
  }
  std::vector<bc::OutgoingMessage> sent;
};

struct Harness {
  ecrm::testing::TempDir dir;
  std::unique_ptr<ecrm::sql::Database> db;
  prometheus::Registry registry;
  bc::BroadcastMetrics metrics{registry};
  FakeHub hub;
  CapturingChannel email;
  bc::TrackingLinks links = *bc::TrackingLinks::Create("https://t.example.com", "in-process-secret-0123");
  absl::Time now = absl::FromUnixSeconds(1'800'000'000);
  std::unique_ptr<ecrm::idempotency::Store> keys;
  std::unique_ptr<ecrm::outbox::Outbox> outbox;
  std::unique_ptr<bc::Profiles> profiles;
  bc::FrequencyCaps caps{bc::CapConfig{}};
  std::unique_ptr<bc::Dispatcher> dispatcher;
  std::unique_ptr<bc::Deliveries> deliveries;
  std::unique_ptr<bc::TrackingEndpoints> endpoints;

  Harness() {
    auto opened = ecrm::sql::Database::Open("sqlite://" + dir.path() + "/broadcast.db");
    REQUIRE(opened.ok());
    db = std::move(*opened);
    REQUIRE(db->Migrate("broadcast", bc::kMigrations).ok());
    keys = std::make_unique<ecrm::idempotency::Store>(*db);
    outbox = std::make_unique<ecrm::outbox::Outbox>(*db);
    profiles = std::make_unique<bc::Profiles>(nullptr, &hub);
    bc::DispatcherOptions options;
    options.links = &links;
    auto clock = [this] { return now; };
    dispatcher = std::make_unique<bc::Dispatcher>(*db, *outbox, *profiles, nullptr, caps,
                                                  bc::Dispatcher::Channels{{common::CHANNEL_EMAIL, &email}}, metrics,
                                                  options, clock);
    deliveries = std::make_unique<bc::Deliveries>(
        *db, *keys, *outbox, *profiles, bc::DeliveriesOptions{.available = dispatcher->available()}, nullptr, clock);
    endpoints = std::make_unique<bc::TrackingEndpoints>(links, *deliveries, &hub,
                                                        bc::TrackingEndpointsOptions{.webhook_secret = "whsec"}, clock);
  }

  v1::Delivery Send(const std::string& customer, common::Purpose purpose = common::PURPOSE_MARKETING) {
    v1::SendMessageRequest req;
    req.mutable_customer()->set_customer_id(customer);
    req.set_channel(common::CHANNEL_EMAIL);
    req.set_purpose(purpose);
    req.mutable_content()->mutable_literal()->set_subject("Hello");
    req.mutable_content()->mutable_literal()->set_html_body("<body><a href=\"https://shop.example.com/\">x</a></body>");
    auto d = deliveries->SendMessage(req);
    REQUIRE(d.ok());
    return *d;
  }
  void Drain() {
    for (int i = 0; i < 100; ++i) {
      auto n = dispatcher->RunOnce();
      REQUIRE(n.ok());
      if (*n == 0) return;
    }
  }
  std::string Sig(bc::LinkKind kind, const std::string& id, const std::string& url = "") {
    return links.Sign(kind, id, url);
  }
  bc::HttpReply Webhook(const std::string& body) {
    return endpoints->ProviderWebhook(body, absl::StrCat(absl::ToUnixSeconds(now)),
                                      bc::RequestSignature("whsec", absl::ToUnixSeconds(now), body));
  }
};

}  // namespace

TEST_CASE("tracking endpoints: marketing mail carries signed links, service mail none") {
  Harness h;
  const v1::Delivery marketing = h.Send("ann");
  const v1::Delivery service = h.Send("ann", common::PURPOSE_SERVICE);
  h.Drain();
  REQUIRE(h.email.sent.size() == 2);
  for (const bc::OutgoingMessage& m : h.email.sent) {
    if (m.delivery_id == marketing.id()) {
      CHECK(m.unsubscribe_url == h.links.UnsubscribeUrl(marketing.id()));
      CHECK(absl::StrContains(m.html_body, "https://t.example.com/c?d="));
      CHECK(absl::StrContains(m.html_body, "https://t.example.com/o?d="));
    } else {
      CHECK(m.delivery_id == service.id());
      CHECK(m.unsubscribe_url.empty());
      CHECK(m.html_body == "<body><a href=\"https://shop.example.com/\">x</a></body>");
    }
  }
}

TEST_CASE("tracking endpoints: an unsubscribe suppresses at once, and a failing information store is a 503 to retry") {
  Harness h;
  const v1::Delivery d = h.Send("ann");
  h.Drain();
  const std::string sig = h.Sig(bc::LinkKind::kUnsubscribe, d.id());
  // Forged, or an open pixel's signature: refused, nothing recorded.
  CHECK(h.endpoints->Unsubscribe(d.id(), h.Sig(bc::LinkKind::kOpen, d.id()), true).status == 400);
  CHECK(h.endpoints->Unsubscribe(d.id(), sig, false).status == 400);
  CHECK(h.endpoints->UnsubscribePage(d.id(), sig).status == 200);
  CHECK(h.hub.requests.empty());
  CHECK(h.Send("ann").state() == v1::DELIVERY_STATE_QUEUED);  // GET and refusals changed nothing

  h.hub.answer = absl::UnavailableError("down");
  CHECK(h.endpoints->Unsubscribe(d.id(), sig, true).status == 503);
  // The suppression is already in force: the message queued above is held back when it comes up.
  h.Drain();
  CHECK(h.email.sent.size() == 1);
  h.hub.answer = absl::OkStatus();
  const bc::HttpReply ok = h.endpoints->Unsubscribe(d.id(), sig, true);
  CHECK(ok.status == 200);
  CHECK(ok.location.empty());
  REQUIRE(h.hub.requests.size() == 2);
  const info::UpdateConsentRequest& r = h.hub.requests.back();
  CHECK(r.customer().customer_id() == "ann");
  CHECK(r.channel() == common::CHANNEL_EMAIL);
  CHECK(r.purpose() == common::PURPOSE_MARKETING);
  CHECK(r.status() == info::CONSENT_STATUS_WITHDRAWN);
  CHECK(r.source() == common::TOUCHPOINT_MESSAGE);
  CHECK(absl::StrContains(r.evidence(), "one-click unsubscribe"));
  CHECK(absl::StrContains(r.evidence(), d.id()));
  // One event however often it is asked.
  auto events = h.outbox->PendingEvents(100);
  REQUIRE(events.ok());
  int unsubscribed = 0;
  for (const auto& e : *events) unsubscribed += e.event.type() == "message_unsubscribed";
  CHECK(unsubscribed == 1);
  // An unknown delivery with a valid signature (erased since): 404, no consent call.
  CHECK(h.endpoints->Unsubscribe("d_gone", h.Sig(bc::LinkKind::kUnsubscribe, "d_gone"), true).status == 404);
  CHECK(h.hub.requests.size() == 2);
}

TEST_CASE("tracking endpoints: provider events are counted once, moot ones ignored, clicks only to signed URLs") {
  Harness h;
  const v1::Delivery d = h.Send("bob");
  h.Drain();
  const std::string soft = absl::StrCat(R"({"type":"bounce","bounce_type":"soft","delivery_id":")", d.id(), "\"}");
  bc::HttpReply first = h.Webhook(soft);
  CHECK(first.status == 200);
  CHECK(absl::StrContains(first.body, "\"recorded\":1,\"ignored\":0"));
  bc::HttpReply again = h.Webhook(soft);  // queued again now: a repeat is moot, not an error to retry
  CHECK(again.status == 200);
  CHECK(absl::StrContains(again.body, "\"recorded\":0,\"ignored\":1"));
  CHECK(absl::StrContains(h.Webhook(R"({"type":"delivered","delivery_id":"d_nobody"})").body, "\"ignored\":1"));
  CHECK(h.Webhook("{").status == 400);
  CHECK(h.endpoints->ProviderWebhook("{}", "1", "v1=00").status == 401);
  // Clicks: the signature covers the URL; javascript: or header-splitting targets never redirect.
  const std::string url = "https://shop.example.com/";
  CHECK(h.endpoints->Click(d.id(), url, h.Sig(bc::LinkKind::kClick, d.id(), url)).status == 302);
  CHECK(h.endpoints->Click(d.id(), "https://evil.example.net/", h.Sig(bc::LinkKind::kClick, d.id(), url)).status ==
        400);
  const std::string js = "javascript:alert(1)";
  CHECK(h.endpoints->Click(d.id(), js, h.Sig(bc::LinkKind::kClick, d.id(), js)).status == 400);
  const std::string split = "https://a.example.com/\r\nSet-Cookie: x=1";
  CHECK(h.endpoints->Click(d.id(), split, h.Sig(bc::LinkKind::kClick, d.id(), split)).status == 400);
  CHECK(h.endpoints->Open(d.id(), "nope").status == 400);
  const bc::HttpReply pixel = h.endpoints->Open(d.id(), h.Sig(bc::LinkKind::kOpen, d.id()));
  CHECK(pixel.status == 200);
  CHECK(pixel.no_store);
  CHECK(pixel.body == std::string(bc::TransparentGif()));
}

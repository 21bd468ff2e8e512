// The pure parts of the broadcast engine's HTTP endpoints: signed tracking links (sign, verify,
// tamper), rewriting an HTML body's links, signed requests, and the provider webhook and RFC 3464
// DSN parsers (malformed input is an error naming the field, never a crash).
#include <catch2/catch.hpp>
#include <random>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "channels/signing.h"
#include "channels/webhook_channel.h"
#include "provider_events.h"
#include "tracking_links.h"

namespace bc = ecrm::broadcast;
namespace v1 = ecrm::broadcast::v1;

namespace {

const std::string kSecret = "0123456789abcdef-test-secret";

bc::TrackingLinks Links(const std::string& base = "https://t.example.com/") {
  auto l = bc::TrackingLinks::Create(base, kSecret);
  REQUIRE(l.ok());
  return *l;
}

// The value of query parameter `name` in `url` (not decoded).
std::string Param(const std::string& url, const std::string& name) {
  const size_t q = url.find('?');
  for (absl::string_view kv : absl::StrSplit(absl::string_view(url).substr(q + 1), '&')) {
    if (absl::StartsWith(kv, name + "=")) return std::string(kv.substr(name.size() + 1));
  }
  return "";
}

}  // namespace

TEST_CASE("tracking links: built under the base, signed per kind, refused when tampered with") {
  bc::TrackingLinks links = Links();
  const std::string open = links.OpenUrl("d_0123");
  const std::string click = links.ClickUrl("d_0123", "https://shop.example.com/sale?x=1&y=2");
  const std::string unsub = links.UnsubscribeUrl("d_0123");
  CHECK(absl::StartsWith(open, "https://t.example.com/o?d=d_0123&s="));
  CHECK(absl::StartsWith(
      click, "https://t.example.com/c?d=d_0123&u=https%3A%2F%2Fshop.example.com%2Fsale%3Fx%3D1%26y%3D2&s="));
  CHECK(absl::StartsWith(unsub, "https://t.example.com/u?d=d_0123&s="));
  const std::string so = Param(open, "s"), sc = Param(click, "s"), su = Param(unsub, "s");
  CHECK(so.size() == 43);  // unpadded base64url of 32 bytes: nothing to percent-encode
  CHECK(links.Verify(bc::LinkKind::kOpen, "d_0123", "", so));
  CHECK(links.Verify(bc::LinkKind::kClick, "d_0123", "https://shop.example.com/sale?x=1&y=2", sc));
  CHECK(links.Verify(bc::LinkKind::kUnsubscribe, "d_0123", "", su));
  // Another kind, delivery or URL, a changed byte, a cut or an empty signature: refused.
  CHECK_FALSE(links.Verify(bc::LinkKind::kUnsubscribe, "d_0123", "", so));
  CHECK_FALSE(links.Verify(bc::LinkKind::kOpen, "d_0124", "", so));
  CHECK_FALSE(links.Verify(bc::LinkKind::kClick, "d_0123", "https://evil.example.net/", sc));
  std::string flipped = sc;
  flipped[5] = flipped[5] == 'A' ? 'B' : 'A';
  CHECK_FALSE(links.Verify(bc::LinkKind::kClick, "d_0123", "https://shop.example.com/sale?x=1&y=2", flipped));
  CHECK_FALSE(links.Verify(bc::LinkKind::kOpen, "d_0123", "", so.substr(0, 42)));
  CHECK_FALSE(links.Verify(bc::LinkKind::kOpen, "d_0123", "", ""));
  CHECK_FALSE(links.Verify(bc::LinkKind::kOpen, "d_0123", "", so + "AAAA"));
  CHECK_FALSE(links.Verify(bc::LinkKind::kOpen, "d_0123", "", std::string(43, '!')));
  // Another secret signs differently.
  auto other = bc::TrackingLinks::Create("https://t.example.com", "another-secret-of-16+");
  REQUIRE(other.ok());
  CHECK_FALSE(other->Verify(bc::LinkKind::kOpen, "d_0123", "", so));
  // Random garbage never verifies and never crashes.
  std::mt19937 rng(7);
  for (int i = 0; i < 2000; ++i) {
    std::string junk(rng() % 80, '\0');
    for (char& c : junk) c = static_cast<char>(rng() % 256);
    CHECK_FALSE(links.Verify(bc::LinkKind::kUnsubscribe, "d_0123", "", junk));
  }
}

TEST_CASE("tracking links: a bad base URL or a short secret is refused at start") {
  CHECK(bc::TrackingLinks::Create("ftp://t.example.com", kSecret).status().code() ==
        absl::StatusCode::kInvalidArgument);
  CHECK(bc::TrackingLinks::Create("https://t.example.com/?x", kSecret).status().code() ==
        absl::StatusCode::kInvalidArgument);
  CHECK(bc::TrackingLinks::Create("https://t.example.com", "short").status().code() ==
        absl::StatusCode::kInvalidArgument);
  CHECK(bc::TrackingLinks::Create("https://t.example.com", "").status().message().find("ECRM_TRACKING_SECRET") !=
        std::string::npos);
  CHECK(Links("http://127.0.0.1:8080/m/").OpenUrl("d").rfind("http://127.0.0.1:8080/m/o?d=d&s=", 0) == 0);
}

TEST_CASE("tracking links: an HTML body's http(s) links become signed click links, and the pixel goes in") {
  bc::TrackingLinks links = Links();
  const std::string html =
      "<html><body><p>Hi</p><a href=\"https://shop.example.com/a?x=1&amp;y=2\">A</a>"
      "<a class=x HREF = 'http://b.example.com/'>B</a><a href=\"mailto:help@example.com\">M</a>"
      "<a href=\"#top\">T</a><a data-href=\"https://c.example.com/\">C</a></BODY></html>";
  const std::string out = links.Track("d_1", html);
  // Each tracked link's target, as the click endpoint will see it (&amp; decoded, then signed).
  const std::string a = links.ClickUrl("d_1", "https://shop.example.com/a?x=1&y=2");
  const std::string b = links.ClickUrl("d_1", "http://b.example.com/");
  CHECK(absl::StrContains(out, absl::StrCat("href=\"", absl::StrReplaceAll(a, {{"&", "&amp;"}}), "\"")));
  CHECK(absl::StrContains(out, absl::StrCat("HREF = '", absl::StrReplaceAll(b, {{"&", "&amp;"}}), "'")));
  CHECK(absl::StrContains(out, "href=\"mailto:help@example.com\""));
  CHECK(absl::StrContains(out, "href=\"#top\""));
  CHECK(absl::StrContains(out, "data-href=\"https://c.example.com/\""));  // not an href attribute
  const std::string pixel = absl::StrReplaceAll(links.OpenUrl("d_1"), {{"&", "&amp;"}});
  const size_t at = out.find(pixel);
  REQUIRE(at != std::string::npos);
  CHECK(at < out.find("</BODY>"));
  // The engine's own links (an unsubscribe link in the body) are not wrapped in a click.
  const std::string own = links.UnsubscribeUrl("d_1");
  CHECK(absl::StrContains(links.Track("d_1", absl::StrCat("<a href=\"", own, "\">stop</a>")),
                          absl::StrCat("href=\"", absl::StrReplaceAll(own, {{"&", "&amp;"}}), "\"")));
  // No </body>: the pixel at the end; empty stays empty; an unterminated attribute is left alone.
  CHECK(absl::EndsWith(links.Track("d_1", "<p>x</p>"), "style=\"display:block;border:0\">"));
  CHECK(links.Track("d_1", "").empty());
  CHECK(bc::RewriteLinks("<a href=\"https://x.example.com", [](absl::string_view) { return "Z"; }) ==
        "<a href=\"https://x.example.com");
  // Overlong URLs are left untracked.
  const std::string long_url = "https://x.example.com/" + std::string(3000, 'a');
  CHECK(bc::RewriteLinks(" href=\"" + long_url + "\"", [](absl::string_view) { return "Z"; }) ==
        " href=\"" + long_url + "\"");
}

TEST_CASE("signed requests: the webhook channel's signature verifies, and stale, altered or missing ones do not") {
  const absl::Time now = absl::FromUnixSeconds(1'800'000'000);
  const std::string body = R"({"type":"delivered","delivery_id":"d_1"})";
  const std::string sig = bc::WebhookSignature("whsec", 1'800'000'000, body);
  CHECK(sig == bc::RequestSignature("whsec", 1'800'000'000, body));
  CHECK(bc::VerifyRequestSignature("whsec", "1800000000", body, sig, now, absl::Minutes(5)).ok());
  CHECK(bc::VerifyRequestSignature("whsec", "1800000000", body, "v1=00," + sig, now, absl::Minutes(5)).ok());
  CHECK(bc::VerifyRequestSignature("whsec", "1800000000", body + " ", sig, now, absl::Minutes(5)).code() ==
        absl::StatusCode::kUnauthenticated);
  CHECK(bc::VerifyRequestSignature("other", "1800000000", body, sig, now, absl::Minutes(5)).code() ==
        absl::StatusCode::kUnauthenticated);
  CHECK(bc::VerifyRequestSignature("whsec", "1800000000", body, sig, now + absl::Minutes(6), absl::Minutes(5)).code() ==
        absl::StatusCode::kUnauthenticated);
  CHECK(bc::VerifyRequestSignature("whsec", "", body, sig, now, absl::Minutes(5)).code() ==
        absl::StatusCode::kUnauthenticated);
  CHECK(bc::VerifyRequestSignature("whsec", "1800000000", body, "", now, absl::Minutes(5)).code() ==
        absl::StatusCode::kUnauthenticated);
}

TEST_CASE("provider webhooks: events parsed into RecordDeliveryEvent requests, malformed bodies named") {
  auto one = bc::ParseProviderWebhook(
      R"({"type":"bounce","bounce_type":"hard","provider_message_id":"p-1","detail":"550 5.1.1 no such user",
          "occurred_at":"2026-12-01T16:00:00Z"})");
  REQUIRE(one.ok());
  REQUIRE(one->size() == 1);
  CHECK((*one)[0].type() == v1::DELIVERY_EVENT_TYPE_HARD_BOUNCE);
  CHECK((*one)[0].provider_message_id() == "p-1");
  CHECK((*one)[0].detail() == "550 5.1.1 no such user");
  CHECK((*one)[0].occurred_at().seconds() == 1796140800);
  auto many = bc::ParseProviderWebhook(
      R"({"events":[{"type":"delivered","delivery_id":"d_1","occurred_at":1796140800},
                    {"type":"bounce","bounce_type":"soft","delivery_id":"d_2"},
                    {"type":"complaint","delivery_id":"d_3"}]})");
  REQUIRE(many.ok());
  REQUIRE(many->size() == 3);
  CHECK((*many)[0].type() == v1::DELIVERY_EVENT_TYPE_DELIVERED);
  CHECK((*many)[1].type() == v1::DELIVERY_EVENT_TYPE_SOFT_BOUNCE);
  CHECK((*many)[2].type() == v1::DELIVERY_EVENT_TYPE_COMPLAINT);

  auto error = [](const std::string& body) {
    auto r = bc::ParseProviderWebhook(body);
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().code() == absl::StatusCode::kInvalidArgument);
    return std::string(r.status().message());
  };
  CHECK(error("") == "body: not JSON");
  CHECK(error("{\"type\":") == "body: not JSON");
  CHECK(absl::StartsWith(error("[]"), "event: must be an object"));
  CHECK(absl::StartsWith(error(R"({"type":"bounce","delivery_id":"d"})"), "event.bounce_type"));
  CHECK(absl::StartsWith(error(R"({"type":"exploded","delivery_id":"d"})"), "event.type"));
  CHECK(absl::StartsWith(error(R"({"type":7,"delivery_id":"d"})"), "event.type: must be a string"));
  CHECK(absl::StartsWith(error(R"({"type":"delivered"})"), "event.delivery_id"));
  CHECK(absl::StartsWith(error(R"({"type":"delivered","delivery_id":"d","provider_message_id":"p"})"),
                         "event.delivery_id"));
  CHECK(absl::StartsWith(error(R"({"events":{}})"), "events: must be an array"));
  CHECK(absl::StartsWith(error(R"({"events":[]})"), "events: must be an array"));
  CHECK(absl::StartsWith(error(R"({"events":[{"type":"delivered","delivery_id":"d"},5]})"), "events[1]"));
  CHECK(absl::StartsWith(error(R"({"type":"delivered","delivery_id":"d","occurred_at":"yesterday"})"),
                         "event.occurred_at"));
  CHECK(absl::StartsWith(error(R"({"type":"delivered","delivery_id":"d","occurred_at":-5})"), "event.occurred_at"));
  CHECK(absl::StartsWith(
      error(absl::StrCat(R"({"type":"delivered","delivery_id":"d","detail":")", std::string(3000, 'x'), "\"}")),
      "event.detail"));
  // Random bytes and truncations of a good body: an error or a parse, never a crash.
  const std::string good = R"({"events":[{"type":"bounce","bounce_type":"hard","delivery_id":"d_1"}]})";
  for (size_t n = 0; n < good.size(); ++n) (void)bc::ParseProviderWebhook(good.substr(0, n));
  std::mt19937 rng(11);
  for (int i = 0; i < 2000; ++i) {
    std::string junk = good;
    for (int k = 0; k < 3; ++k) junk[rng() % junk.size()] = static_cast<char>(rng() % 256);
    (void)bc::ParseProviderWebhook(junk);
  }
}

namespace {

// A DSN as Postfix writes one: the report's own headers, a human part, the delivery-status part
// and the returned headers with the engine's Message-ID.
std::string Dsn(const std::string& action, const std::string& status, const std::string& message_id) {
  return absl::StrCat(
      "From: MAILER-DAEMON@mx.example.com\r\n"
      "Message-ID: <20261201160000.ABC@mx.example.com>\r\n"
      "Subject: Undelivered Mail Returned to Sender\r\n"
      "MIME-Version: 1.0\r\n"
      "Content-Type: multipart/report; report-type=delivery-status;\r\n"
      "\tboundary=\"B1\"\r\n"
      "\r\n"
      "--B1\r\n"
      "Content-Type: text/plain\r\n"
      "\r\n"
      "I'm sorry to have to inform you that your message could not be delivered.\r\n"
      "Action: this line is prose, not a field block of its own\r\n"
      "\r\n"
      "--B1\r\n"
      "Content-Type: message/delivery-status\r\n"
      "\r\n"
      "Reporting-MTA: dns; mx.example.com\r\n"
      "Arrival-Date: Tue,  1 Dec 2026 16:00:00 +0000\r\n"
      "\r\n"
      "Final-Recipient: rfc822; ann@example.com\r\n"
      "Original-Recipient: rfc822;ann@example.com\r\n"
      "Action: ",
      action,
      "\r\n"
      "Status: ",
      status,
      "\r\n"
      "Diagnostic-Code: smtp; 550 5.1.1 <ann@example.com>: Recipient address\r\n"
      "    rejected: User unknown\r\n"
      "\r\n"
      "--B1\r\n"
      "Content-Type: text/rfc822-headers\r\n"
      "\r\n"
      "From: shop@example.com\r\n"
      "To: ann@example.com\r\n"
      "Message-ID: ",
      message_id,
      "\r\n"
      "Subject: Flash sale\r\n"
      "\r\n"
      "--B1--\r\n");
}

}  // namespace

TEST_CASE("delivery status notifications: 5.x.x failed is a hard bounce, 4.x.x or delayed nothing final") {
  auto hard = bc::ParseDeliveryStatus(Dsn("failed", "5.1.1", "<d_00ab=2Ex@example.com>"));
  INFO(hard.status().ToString());
  REQUIRE(hard.ok());
  CHECK(hard->delivery_id == "d_00ab.x");
  CHECK(hard->action == "failed");
  CHECK(hard->status == "5.1.1");
  CHECK(hard->recipient == "ann@example.com");
  CHECK(hard->diagnostic == "smtp; 550 5.1.1 <ann@example.com>: Recipient address rejected: User unknown");
  auto event = bc::DeliveryStatusEvent(*hard);
  REQUIRE(event.has_value());
  CHECK(event->type() == v1::DELIVERY_EVENT_TYPE_HARD_BOUNCE);
  CHECK(event->delivery_id() == "d_00ab.x");
  CHECK(absl::StartsWith(event->detail(), "5.1.1 smtp; 550"));

  auto delayed = bc::ParseDeliveryStatus(Dsn("delayed", "4.4.1", "<d_1@example.com>"));
  REQUIRE(delayed.ok());
  CHECK_FALSE(bc::DeliveryStatusEvent(*delayed).has_value());
  auto soft = bc::ParseDeliveryStatus(Dsn("Failed", "4.2.2 (mailbox full)", "<d_1@example.com>"));
  REQUIRE(soft.ok());
  CHECK(soft->status == "4.2.2");
  CHECK(bc::DeliveryStatusEvent(*soft)->type() == v1::DELIVERY_EVENT_TYPE_SOFT_BOUNCE);
  auto delivered = bc::ParseDeliveryStatus(Dsn("delivered", "2.0.0", "<d_1@example.com>"));
  REQUIRE(delivered.ok());
  CHECK(bc::DeliveryStatusEvent(*delivered)->type() == v1::DELIVERY_EVENT_TYPE_DELIVERED);

  // The envelope id, when the MTA returns one, names the delivery; LF line ends work too.
  auto envid = bc::ParseDeliveryStatus(
      "Original-Envelope-Id: d_77\nReporting-MTA: dns; mx\n\nFinal-Recipient: rfc822; a@b.c\nAction: failed\n"
      "Status: 5.0.0\n");
  REQUIRE(envid.ok());
  CHECK(envid->delivery_id == "d_77");

  auto error = [](const std::string& body) {
    auto r = bc::ParseDeliveryStatus(body);
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().code() == absl::StatusCode::kInvalidArgument);
    return std::string(r.status().message());
  };
  CHECK(absl::StrContains(error(""), "not a delivery status notification"));
  CHECK(absl::StrContains(error("hello\r\n\r\nworld"), "not a delivery status notification"));
  CHECK(absl::StartsWith(error(Dsn("exploded", "5.1.1", "<d_1@example.com>")), "Action"));
  CHECK(absl::StartsWith(error(Dsn("failed", "9.1.1", "<d_1@example.com>")), "Status"));
  CHECK(absl::StartsWith(error(Dsn("failed", "5.x.1", "<d_1@example.com>")), "Status"));
  CHECK(absl::StrContains(error(Dsn("failed", "5.1.1", "<not-ours>")), "names no delivery"));
  CHECK(absl::StrContains(error(Dsn("failed", "5.1.1", "<d=ZZ@example.com>")), "names no delivery"));
  CHECK(absl::StrContains(error(Dsn("failed", "5.1.1", "<d=4@example.com>")), "names no delivery"));
  CHECK(bc::DeliveryIdFromMessageId("<d_1=2E=2F@x>") == "d_1./");
  CHECK(bc::DeliveryIdFromMessageId("d_1@x").empty());
  CHECK(bc::DeliveryIdFromMessageId("<@x>").empty());
  // Truncations and corruptions: an error or a parse, never a crash.
  const std::string good = Dsn("failed", "5.1.1", "<d_1@example.com>");
  for (size_t n = 0; n < good.size(); n += 3) (void)bc::ParseDeliveryStatus(good.substr(0, n));
  std::mt19937 rng(5);
  for (int i = 0; i < 2000; ++i) {
    std::string junk = good;
    for (int k = 0; k < 4; ++k) junk[rng() % junk.size()] = static_cast<char>(rng() % 256);
    (void)bc::ParseDeliveryStatus(junk);
  }
}

// The webhook channel (SMS and push) against a real HTTP sink on loopback: the body per profile,
// the HMAC signature and idempotency key, many requests in flight over kept-alive connections,
// and the provider's answers (429 with Retry-After, 503, 400, ...) mapped to outcomes.
#include "channels/webhook_channel.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>
#include <set>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "ecrm/testing/process.h"
#include "webhook_sink.h"

namespace ecrm::broadcast {
namespace {

using ecrm::testing::WebhookSink;
using Json = nlohmann::json;

const absl::Time kNow = absl::FromUnixSeconds(1796129367);
constexpr char kSecret[] = "whsec-test-0123456789";

WebhookSettings Settings(const std::string& url, const std::string& profile = "generic") {
  WebhookSettings s;
  s.url = url;
  s.profile = profile;
  s.secret = kSecret;
  s.connect_timeout = absl::Seconds(10);
  s.timeout = absl::Seconds(30);
  s.now = [] { return kNow; };
  return s;
}

std::unique_ptr<WebhookChannel> MakeChannel(const WebhookSettings& settings,
                                            common::v1::Channel channel = common::v1::CHANNEL_SMS) {
  auto c = WebhookChannel::Create(settings, channel);
  INFO(c.status().ToString());
  REQUIRE(c.ok());
  return std::move(*c);
}

OutgoingMessage Sms(int n) {
  return {.delivery_id = absl::StrCat("d-", n),
          .customer_id = absl::StrCat("c-", n),
          .channel = common::v1::CHANNEL_SMS,
          .purpose = common::v1::PURPOSE_MARKETING,
          .address = absl::StrCat("+4477009", 10000 + n),
          .text_body = absl::StrCat("Sale ends tonight (", n, ")"),
          .campaign_id = "camp-1"};
}

OutgoingMessage Push(int n) {
  return {.delivery_id = absl::StrCat("p-", n),
          .customer_id = absl::StrCat("c-", n),
          .channel = common::v1::CHANNEL_PUSH,
          .purpose = common::v1::PURPOSE_SERVICE,
          .address = absl::StrCat("device-token-", n),
          .subject = "Your order",
          .text_body = "has shipped"};
}

std::string Hmac(const std::string& key, const std::string& data) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), reinterpret_cast<const unsigned char*>(data.data()),
       data.size(), mac, &len);
  return absl::BytesToHexString(absl::string_view(reinterpret_cast<char*>(mac), len));
}

TEST_CASE("generic profile: one signed JSON POST per message with the delivery id as Idempotency-Key") {
  WebhookSink sink;
  auto sms = MakeChannel(Settings(sink.Url("/sms")));
  std::vector<SendResult> r = sms->Send({Sms(1), Sms(2)});
  REQUIRE(r.size() == 2);
  for (const SendResult& x : r) {
    INFO(x.error);
    CHECK(x.outcome == SendOutcome::kAccepted);
    CHECK(absl::StartsWith(x.provider_message_id, "sink-"));
  }
  auto requests = sink.requests();
  REQUIRE(requests.size() == 2);
  for (const auto& req : requests) {
    CHECK(req.method == "POST");
    CHECK(req.path == "/sms");
    CHECK(absl::StartsWith(req.Header("Content-Type"), "application/json"));
    Json body = Json::parse(req.body);
    const std::string id = body["delivery_id"];
    CHECK(req.Header("Idempotency-Key") == id);
    CHECK(body["idempotency_key"] == id);
    const int n = id == "d-1" ? 1 : 2;
    CHECK(body["to"] == Sms(n).address);
    CHECK(body["body"] == Sms(n).text_body);
    CHECK(body["channel"] == "sms");
    CHECK(body["purpose"] == "marketing");
    CHECK(body["customer_id"] == absl::StrCat("c-", n));
    CHECK(body["campaign_id"] == "camp-1");
    CHECK(!body.contains("title"));
    // The signature, recomputed here from the secret: HMAC-SHA256 over "<timestamp>.<body>".
    CHECK(req.Header("X-Ecrm-Timestamp") == "1796129367");
    CHECK(req.Header("X-Ecrm-Signature") == "v1=" + Hmac(kSecret, "1796129367." + req.body));
    CHECK(req.Header("X-Ecrm-Signature") != "v1=" + Hmac("another secret", "1796129367." + req.body));
  }

  auto push = MakeChannel(Settings(sink.Url("/push")), common::v1::CHANNEL_PUSH);
  r = push->Send({Push(1)});
  CHECK(r[0].outcome == SendOutcome::kAccepted);
  Json body = Json::parse(sink.requests().back().body);
  CHECK(body["to"] == "device-token-1");
  CHECK(body["title"] == "Your order");
  CHECK(body["body"] == "has shipped");
  CHECK(body["channel"] == "push");
  CHECK(body["purpose"] == "service");
}

TEST_CASE("generic-batch profile: one signed POST per batch, each message's result honoured alone") {
  WebhookSink sink;
  sink.SetResponder([](const WebhookSink::Request& req, int) {
    return WebhookSink::BatchReply(req, [](const Json& m, int) -> WebhookSink::Result {
      const std::string id = m["delivery_id"];
      if (id == "d-3") return {.status = 503, .error = "busy", .retry_after = 7};
      if (id == "d-4") return {.status = 400, .error = "invalid number"};
      return {.status = 202, .id = "p-" + id};
    });
  });
  WebhookSettings settings = Settings(sink.Url("/sms"), "generic-batch");
  settings.batch_size = 4;
  auto sms = MakeChannel(settings);
  std::vector<OutgoingMessage> batch;
  for (int i = 1; i <= 10; ++i) batch.push_back(Sms(i));
  std::vector<SendResult> r = sms->Send(batch);
  REQUIRE(r.size() == 10);
  for (int i = 1; i <= 10; ++i) {
    const SendResult& x = r[i - 1];
    INFO(i << ": " << x.error);
    if (i == 3) {
      CHECK(x.outcome == SendOutcome::kTemporaryFailure);
      CHECK(x.retry_after == absl::Seconds(7));
      CHECK(x.error == "webhook: HTTP 503: busy");
    } else if (i == 4) {
      CHECK(x.outcome == SendOutcome::kPermanentFailure);
      CHECK(x.error == "webhook: HTTP 400: invalid number");
    } else {
      CHECK(x.outcome == SendOutcome::kAccepted);
      CHECK(x.provider_message_id == absl::StrCat("p-d-", i));
    }
  }
  // 10 messages in requests of at most 4: 3 requests, each a JSON array of generic messages,
  // signed; no request-wide Idempotency-Key (each message carries its own).
  auto requests = sink.requests();
  REQUIRE(requests.size() == 3);
  std::multiset<size_t> sizes;
  std::set<std::string> ids;
  for (const auto& req : requests) {
    Json body = Json::parse(req.body);
    REQUIRE(body.is_array());
    sizes.insert(body.size());
    for (const Json& m : body) {
      ids.insert(m["delivery_id"].get<std::string>());
      CHECK(m["idempotency_key"] == m["delivery_id"]);
      CHECK(m["channel"] == "sms");
      CHECK(m["to"] == Sms(std::stoi(m["delivery_id"].get<std::string>().substr(2))).address);
    }
    CHECK(req.Header("Idempotency-Key").empty());
    CHECK(req.Header("X-Ecrm-Signature") == "v1=" + Hmac(kSecret, "1796129367." + req.body));
  }
  CHECK(sizes == std::multiset<size_t>{2, 4, 4});
  CHECK(ids.size() == 10);

  // The failed message is retried alone: the next request carries it and nothing else.
  sink.SetResponder([](const WebhookSink::Request& req, int) {
    return WebhookSink::BatchReply(
        req, [](const Json&, int i) -> WebhookSink::Result { return {.id = absl::StrCat("again-", i)}; });
  });
  r = sms->Send({Sms(3)});
  CHECK(r[0].outcome == SendOutcome::kAccepted);
  CHECK(r[0].provider_message_id == "again-0");
  Json retried = Json::parse(sink.requests().back().body);
  REQUIRE(retried.size() == 1);
  CHECK(retried[0]["delivery_id"] == "d-3");
}

TEST_CASE("generic-batch profile: a refused request or an answer without a result per message leaves all to retry") {
  WebhookSink sink;
  WebhookSettings settings = Settings(sink.Url("/sms"), "generic-batch");
  auto sms = MakeChannel(settings);
  struct Case {
    WebhookSink::Reply reply;
    SendOutcome outcome;
    std::string error;
  };
  const std::vector<Case> cases = {
      {{429, "slow down", {{"Retry-After", "5"}}}, SendOutcome::kTemporaryFailure, "webhook: HTTP 429: slow down"},
      {{401, "bad token", {}}, SendOutcome::kPermanentFailure, "webhook: HTTP 401: bad token"},
      {{200, R"({"ok":true})", {}},
       SendOutcome::kTemporaryFailure,
       "webhook: HTTP 200 without a JSON array of results"},
      {{200, R"([{"status":200}])", {}},
       SendOutcome::kTemporaryFailure,
       "webhook: HTTP 200 with 1 results for 2 messages"},
      {{200, R"({"results":[{"status":200,"id":"a"},{"status":"ok"}]})", {}}, SendOutcome::kAccepted, ""},
  };
  for (const Case& c : cases) {
    sink.SetResponder([&](const WebhookSink::Request&, int) { return c.reply; });
    std::vector<SendResult> r = sms->Send({Sms(1), Sms(2)});
    INFO(c.reply.body << " -> " << r[0].error << " / " << r[1].error);
    if (c.outcome == SendOutcome::kAccepted) {
      // {"results": [...]} is read like a bare array; a result without an integer status is
      // temporary, alone.
      CHECK(r[0].outcome == SendOutcome::kAccepted);
      CHECK(r[0].provider_message_id == "a");
      CHECK(r[1].outcome == SendOutcome::kTemporaryFailure);
      CHECK(absl::StrContains(r[1].error, "result 1"));
      continue;
    }
    for (const SendResult& x : r) {
      CHECK(x.outcome == c.outcome);
      CHECK(x.error == c.error);
      if (c.reply.status == 429) CHECK(x.retry_after == absl::Seconds(5));
    }
  }
  settings.batch_size = 0;
  CHECK(WebhookChannel::Create(settings, common::v1::CHANNEL_SMS).status().code() ==
        absl::StatusCode::kInvalidArgument);
}

TEST_CASE("fcm profile: Firebase's message shape, the id from its name field, it carries push only") {
  WebhookSink sink;
  sink.SetResponder([](const WebhookSink::Request&, int n) {
    return WebhookSink::Reply{200, absl::StrCat(R"({"name":"projects/p/messages/)", n, R"("})"), {}};
  });
  auto push = MakeChannel(Settings(sink.Url(), "fcm"), common::v1::CHANNEL_PUSH);
  std::vector<SendResult> r = push->Send({Push(7)});
  CHECK(r[0].outcome == SendOutcome::kAccepted);
  CHECK(r[0].provider_message_id == "projects/p/messages/1");
  Json body = Json::parse(sink.requests()[0].body);
  CHECK(body["message"]["token"] == "device-token-7");
  CHECK(body["message"]["notification"]["title"] == "Your order");
  CHECK(body["message"]["notification"]["body"] == "has shipped");
  CHECK(body["message"]["data"]["delivery_id"] == "p-7");

  auto sms = WebhookChannel::Create(Settings(sink.Url(), "fcm"), common::v1::CHANNEL_SMS);
  CHECK(sms.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(absl::StrContains(sms.status().message(), "cannot carry CHANNEL_SMS"));
  auto unknown = WebhookChannel::Create(Settings(sink.Url(), "twilio-ish"), common::v1::CHANNEL_SMS);
  CHECK(unknown.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(absl::StrContains(unknown.status().message(), "known: generic, generic-batch, fcm"));
}

TEST_CASE("provider answers: 429 and 503 temporary with Retry-After (seconds or HTTP date), 400 permanent") {
  WebhookSink sink;
  const std::string http_date =
      absl::FormatTime("%a, %d %b %Y %H:%M:%S GMT", absl::Now() + absl::Seconds(120), absl::UTCTimeZone());
  // Each delivery gets the answer its id asks for, whatever order the requests arrive in.
  sink.SetResponder([&](const WebhookSink::Request& req, int) -> WebhookSink::Reply {
    const std::string id = req.Header("Idempotency-Key");
    if (id == "d-1") return {429, R"({"error":"slow down"})", {{"Retry-After", "7"}}};
    if (id == "d-2") return {429, "", {{"Retry-After", http_date}}};
    if (id == "d-3") return {503, "upstream unavailable", {}};
    if (id == "d-4") return {503, "", {{"Retry-After", "30"}}};
    if (id == "d-5") return {400, R"({"error":"invalid number"})", {}};
    if (id == "d-6") return {404, "", {}};
    if (id == "d-7") return {500, "", {}};
    if (id == "d-8") return {408, "", {}};
    if (id == "d-9") return {202, R"({"message_id":"abc-9"})", {}};
    return {200, R"({"id":12345})", {}};
  });
  auto sms = MakeChannel(Settings(sink.Url()));
  std::vector<OutgoingMessage> batch;
  for (int i = 1; i <= 10; ++i) batch.push_back(Sms(i));
  std::vector<SendResult> r = sms->Send(batch);
  REQUIRE(r.size() == 10);

  CHECK(r[0].outcome == SendOutcome::kTemporaryFailure);
  CHECK(r[0].retry_after == absl::Seconds(7));
  CHECK(r[0].error == R"(webhook: HTTP 429: {"error":"slow down"})");
  CHECK(r[1].outcome == SendOutcome::kTemporaryFailure);
  REQUIRE(r[1].retry_after.has_value());
  CHECK(*r[1].retry_after >= absl::Seconds(60));  // 120 s ahead when written; wide margin for a slow machine
  CHECK(*r[1].retry_after <= absl::Seconds(121));
  CHECK(r[2].outcome == SendOutcome::kTemporaryFailure);
  CHECK(!r[2].retry_after.has_value());
  CHECK(r[2].error == "webhook: HTTP 503: upstream unavailable");
  CHECK(r[3].outcome == SendOutcome::kTemporaryFailure);
  CHECK(r[3].retry_after == absl::Seconds(30));
  CHECK(r[4].outcome == SendOutcome::kPermanentFailure);
  CHECK(r[4].error == R"(webhook: HTTP 400: {"error":"invalid number"})");
  CHECK(!r[4].retry_after.has_value());
  CHECK(r[5].outcome == SendOutcome::kPermanentFailure);
  CHECK(r[5].error == "webhook: HTTP 404");
  CHECK(r[6].outcome == SendOutcome::kTemporaryFailure);
  CHECK(r[7].outcome == SendOutcome::kTemporaryFailure);
  CHECK(r[8].outcome == SendOutcome::kAccepted);
  CHECK(r[8].provider_message_id == "abc-9");
  CHECK(r[9].outcome == SendOutcome::kAccepted);
  CHECK(r[9].provider_message_id == "12345");
}

TEST_CASE("many requests in flight at once over kept-alive connections") {
  WebhookSink sink;
  WebhookSettings settings = Settings(sink.Url());
  settings.max_in_flight = 8;
  auto sms = MakeChannel(settings);
  // Every request waits in the sink until 8 are there at once: the batch only completes if the
  // channel really sends 8 concurrently.
  sink.HoldUntilConcurrent(8);
  std::vector<OutgoingMessage> batch;
  for (int i = 1; i <= 40; ++i) batch.push_back(Sms(i));
  std::vector<SendResult> r = sms->Send(batch);
  for (const SendResult& x : r) {
    INFO(x.error);
    CHECK(x.outcome == SendOutcome::kAccepted);
  }
  CHECK(sink.max_concurrent() == 8);
  const int64_t connections = sms->connections_opened();
  CHECK(connections <= 8);
  sink.HoldUntilConcurrent(0);
  // The next batch reuses the connections.
  r = sms->Send(batch);
  for (const SendResult& x : r) CHECK(x.outcome == SendOutcome::kAccepted);
  CHECK(sms->connections_opened() == connections);
  CHECK(sink.requests().size() == 80);
}

TEST_CASE("a refused connection or a timeout is temporary, bad addresses are permanent without a request") {
  ecrm::testing::ClosedPort closed;
  auto down = MakeChannel(Settings(absl::StrCat("http://", closed.address(), "/sms")));
  std::vector<SendResult> r = down->Send({Sms(1)});
  CHECK(r[0].outcome == SendOutcome::kTemporaryFailure);
  INFO(r[0].error);
  CHECK(absl::StartsWith(r[0].error, "webhook: "));

  WebhookSink sink;
  WebhookSettings settings = Settings(sink.Url());
  settings.timeout = absl::Milliseconds(300);
  auto slow = MakeChannel(settings);
  sink.HoldUntilConcurrent(1000);  // never reached: the request hangs until released
  r = slow->Send({Sms(2)});
  sink.HoldUntilConcurrent(0);
  CHECK(r[0].outcome == SendOutcome::kTemporaryFailure);
  INFO(r[0].error);
  CHECK(absl::StrContains(absl::AsciiStrToLower(r[0].error), "timed out"));

  auto sms = MakeChannel(Settings(sink.Url()));
  const size_t before = sink.requests().size();
  OutgoingMessage no_plus = Sms(3), letters = Sms(4), empty = Sms(5), no_text = Sms(6);
  no_plus.address = "447700910003";
  letters.address = "+44770091000x";
  empty.address = "";
  no_text.text_body = "";
  r = sms->Send({no_plus, letters, empty, no_text, Sms(7)});
  for (int i = 0; i < 4; ++i) CHECK(r[i].outcome == SendOutcome::kPermanentFailure);
  CHECK(absl::StrContains(r[0].error, "E.164"));
  CHECK(absl::StrContains(r[3].error, "text_body"));
  CHECK(r[4].outcome == SendOutcome::kAccepted);
  CHECK(sink.requests().size() == before + 1);
}

TEST_CASE("without a secret requests are not signed, an Authorization header is sent when configured") {
  WebhookSink sink;
  WebhookSettings settings = Settings(sink.Url());
  settings.secret.clear();
  settings.authorization = "Bearer provider-token";
  auto sms = MakeChannel(settings);
  CHECK(sms->Send({Sms(1)})[0].outcome == SendOutcome::kAccepted);
  auto req = sink.requests().at(0);
  CHECK(req.Header("X-Ecrm-Signature").empty());
  CHECK(req.Header("X-Ecrm-Timestamp").empty());
  CHECK(req.Header("Authorization") == "Bearer provider-token");
  CHECK(req.Header("Idempotency-Key") == "d-1");
}

TEST_CASE("WebhookSignature: v1= and the hex HMAC-SHA256 of timestamp.body") {
  CHECK(WebhookSignature("key", 1700000000, "{}") == "v1=" + Hmac("key", "1700000000.{}"));
}

}  // namespace
}  // namespace ecrm::broadcast

namespace ecrm::broadcast {
namespace {

// By hand: ./broadcast_channels_test "[bench]" (hidden from ctest).
TEST_CASE("bench: SMS webhook, 64 in flight, to the in-process sink", "[.][bench]") {
  WebhookSink sink;
  auto sms = MakeChannel(Settings(sink.Url()));
  constexpr int kBatches = 40;
  constexpr int kBatch = 500;
  std::vector<OutgoingMessage> batch;
  for (int i = 0; i < kBatch; ++i) batch.push_back(Sms(i));
  int accepted = 0;
  const absl::Time start = absl::Now();
  for (int b = 0; b < kBatches; ++b) {
    for (const SendResult& r : sms->Send(batch)) accepted += r.outcome == SendOutcome::kAccepted;
  }
  const double seconds = absl::ToDoubleSeconds(absl::Now() - start);
  WARN("webhook: " << accepted << " accepted in " << seconds << " s = " << accepted / seconds << " requests/s over "
                   << sms->connections_opened() << " connections");
  CHECK(accepted == kBatches * kBatch);
}

}  // namespace
}  // namespace ecrm::broadcast

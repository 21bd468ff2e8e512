// SMS and push through HTTP providers: a JSON POST per message (or, for a batch profile, per
// --webhook-batch-size messages), shaped by a provider profile, many in flight at once over
// kept-alive connections (libcurl multi; each Send call borrows a multi handle, whose connection
// cache outlives the call).
//
// A single-message request carries `Idempotency-Key: <delivery id>`, so a provider that honours
// it drops a resend after a crash (a batch request carries each message's key in its body
// instead: a retried message may travel with others), and, when a secret is configured,
// `X-Ecrm-Timestamp: <unix seconds>` and `X-Ecrm-Signature: v1=<hex HMAC-SHA256(secret,
// timestamp + "." + body)>`.
//
// Outcomes: 2xx accepted (the provider's id from the answer when the profile names one); 429,
// 408, 425 and 5xx temporary with the Retry-After they gave (seconds or an HTTP date); any other
// 4xx permanent; a refused, dropped or timed-out connection temporary. A batch request's HTTP
// status applies to each of its messages like that; on a 2xx each message takes the outcome of
// its own result in the answer (same rules on its "status"), so one refused message is retried
// or failed alone.
#pragma once

#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "channel.h"

namespace ecrm::broadcast {

// How a provider wants its request and gives its id back.
struct WebhookProfile {
  std::string name;
  // The request body for one message (a JSON document).
  std::function<std::string(const OutgoingMessage&)> body;
  // Set for a profile that carries many messages per request: the body for them, in order; the
  // 2xx answer then holds one result per message (ParseBatchAnswer).
  std::function<std::string(absl::Span<const OutgoingMessage* const>)> batch_body;
  // JSON pointers tried in order on a 2xx answer for the provider's message id.
  std::vector<std::string> id_pointers;
  // The channels the profile can carry.
  std::vector<common::v1::Channel> channels;
};

// The profiles by name: "generic" (SMS and push: {"to", "body", "title", "idempotency_key",
// "delivery_id", "customer_id", "campaign_id", "channel", "purpose"}, id from "id" or
// "message_id"), "generic-batch" (SMS and push: a JSON array of generic messages per request;
// the 2xx answer is a JSON array, or {"results": [...]}, with one object per message in the same
// order: {"status": <HTTP status of that message>, "id": "<provider id>", "error": "<text>",
// "retry_after": <seconds>}, only "status" required) and "fcm" (push, Firebase Cloud Messaging
// v1's message shape, id from "name"). NOT_FOUND naming the known ones otherwise.
absl::StatusOr<WebhookProfile> FindWebhookProfile(absl::string_view name);

// The signature header value for a body: "v1=" + hex HMAC-SHA256(secret, timestamp "." body).
std::string WebhookSignature(absl::string_view secret, int64_t unix_seconds, absl::string_view body);

struct WebhookSettings {
  // http:// or https:// endpoint the messages are POSTed to.
  std::string url;
  std::string profile = "generic";
  // HMAC key; empty: requests are not signed.
  std::string secret;
  // Sent as the Authorization header when not empty (e.g. "Bearer …"); from the environment.
  std::string authorization;
  std::string ca_file;
  absl::Duration connect_timeout = absl::Seconds(5);
  // For one request, connecting included.
  absl::Duration timeout = absl::Seconds(15);
  // Requests in flight at once per Send call (and connections per host).
  int max_in_flight = 64;
  // Messages per request for a batch profile (1-1000); ignored by the others.
  int batch_size = 100;
  // Multi handles (each with its connection cache) kept between Send calls.
  int max_idle_pools = 8;
  // The signature's clock (tests inject one).
  std::function<absl::Time()> now = [] { return absl::Now(); };
};

class WebhookChannel : public Channel {
 public:
  // `channel` is what this instance carries (SMS or push); the profile must support it.
  static absl::StatusOr<std::unique_ptr<WebhookChannel>> Create(WebhookSettings settings, common::v1::Channel channel);
  ~WebhookChannel() override;

  std::vector<SendResult> Send(absl::Span<const OutgoingMessage> messages) override;

  // Connections opened so far (for tests and metrics: keep-alive means this stays small).
  int64_t connections_opened() const;

 private:
  struct Pool;
  WebhookChannel(WebhookSettings settings, WebhookProfile profile);
  std::unique_ptr<Pool> Acquire();
  void Release(std::unique_ptr<Pool> pool);

  const WebhookSettings settings_;
  const WebhookProfile profile_;
  mutable std::mutex mu_;
  std::vector<std::unique_ptr<Pool>> idle_;
  int64_t connections_opened_ = 0;
};

}  // namespace ecrm::broadcast

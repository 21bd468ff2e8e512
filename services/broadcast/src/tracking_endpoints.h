// What the engine's HTTP endpoints do (http_server.h is only their HTTP glue): the open pixel,
// signed click redirects, the one-click unsubscribe (RFC 8058) and its confirmation page,
// provider webhooks and RFC 3464 delivery status notifications. Each answer is an HttpReply;
// every event goes through Deliveries::RecordDeliveryEvent, whose event ids derive from the
// delivery and the kind, so a retried request never counts twice.
#pragma once

#include <functional>
#include <string>

#include "absl/time/time.h"
#include "clients/infostore.h"
#include "deliveries.h"
#include "tracking_links.h"

namespace ecrm::broadcast {

struct HttpReply {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
  std::string location;   // a redirect's target
  bool no_store = false;  // Cache-Control: no-store (the pixel, the unsubscribe pages)
};

struct TrackingEndpointsOptions {
  // HMAC key of provider webhooks and DSNs (ECRM_PROVIDER_WEBHOOK_SECRET); empty: they are refused.
  std::string webhook_secret;
  // How far a signed request's timestamp may be from now.
  absl::Duration webhook_max_age = absl::Minutes(5);
  // Deadline of the UpdateConsent call of an unsubscribe.
  absl::Duration consent_timeout = absl::Seconds(2);
};

class TrackingEndpoints {
 public:
  using Clock = std::function<absl::Time()>;

  // `consents` null: an unsubscribe only suppresses here (no information store configured).
  TrackingEndpoints(
      const TrackingLinks& links, Deliveries& deliveries, ConsentUpdater* consents, TrackingEndpointsOptions options,
      Clock clock = [] { return absl::Now(); });

  // GET <base>/o: the 1x1 GIF; records `opened` when the signature is the delivery's.
  HttpReply Open(const std::string& delivery_id, const std::string& signature);
  // GET <base>/c: 302 to `url` and `clicked` when signed; 400 otherwise (never an open redirect).
  HttpReply Click(const std::string& delivery_id, const std::string& url, const std::string& signature);
  // GET <base>/u: a confirmation page whose form POSTs the one-click body; changes nothing.
  HttpReply UnsubscribePage(const std::string& delivery_id, const std::string& signature);
  // POST <base>/u with List-Unsubscribe=One-Click: suppresses the customer on the delivery's
  // channel (`unsubscribed`), withdraws the marketing consent in the information store, 200.
  HttpReply Unsubscribe(const std::string& delivery_id, const std::string& signature, bool one_click);
  // POST /webhooks/provider: JSON events (provider_events.h), X-Ecrm-Timestamp/X-Ecrm-Signature.
  HttpReply ProviderWebhook(const std::string& body, const std::string& timestamp, const std::string& signature);
  // POST /webhooks/dsn: an RFC 3464 report, signed like a provider webhook.
  HttpReply DeliveryStatusNotification(const std::string& body, const std::string& timestamp,
                                       const std::string& signature);

 private:
  HttpReply Authenticate(const std::string& body, const std::string& timestamp, const std::string& signature);
  // Records one event: true when recorded or moot (unknown delivery, a state it does not apply to:
  // retrying would not change that), false when the store failed (the caller answers 503).
  bool Record(const v1::RecordDeliveryEventRequest& req, std::string* problem);

  const TrackingLinks& links_;
  Deliveries& deliveries_;
  ConsentUpdater* consents_;
  const TrackingEndpointsOptions options_;
  Clock clock_;
};

// The 43-byte transparent 1x1 GIF the pixel answers with.
absl::string_view TransparentGif();

}  // namespace ecrm::broadcast

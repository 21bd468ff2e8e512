// The interface every delivery channel implements (email over SMTP, SMS and push through HTTP
// providers, the file channel). The outbox's workers call it; the gate has already decided by
// then that the message may go. No gRPC here: channels are domain code.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "absl/types/span.h"
#include "ecrm/common/v1/common.pb.h"

namespace ecrm::broadcast {

// One rendered message for one address.
struct OutgoingMessage {
  // Stable for the delivery across attempts: SMTP's Message-ID and a provider's idempotency key
  // derive from it, so that a resend after a crash can be recognised as the same message.
  std::string delivery_id;
  std::string customer_id;
  common::v1::Channel channel = common::v1::CHANNEL_UNSPECIFIED;
  common::v1::Purpose purpose = common::v1::PURPOSE_UNSPECIFIED;
  // Email address, E.164 phone number or device token.
  std::string address;
  // Subject (email), title (push); empty for SMS.
  std::string subject;
  std::string text_body;
  // Email and web inbox only.
  std::string html_body;
  // The one-click unsubscribe URL (RFC 8058); set on marketing messages, empty otherwise.
  std::string unsubscribe_url;
  std::string campaign_id;
};

enum class SendOutcome {
  // The server or provider took the message (SMTP 250, HTTP 2xx).
  kAccepted,
  // Try again later: SMTP 4xx, HTTP 429/5xx, a timeout, a dropped connection.
  kTemporaryFailure,
  // Never retry: SMTP 5xx, a provider's permanent rejection (invalid number, bad token).
  kPermanentFailure,
};

struct SendResult {
  SendOutcome outcome = SendOutcome::kTemporaryFailure;
  // The provider's id for the message, when it gives one.
  std::string provider_message_id;
  // What the server or provider answered, for Delivery.last_error (never the message itself).
  std::string error;
  // The provider's Retry-After, when it gave one.
  std::optional<absl::Duration> retry_after;
};

class Channel {
 public:
  virtual ~Channel() = default;
  // Sends the messages, all of this channel, and returns one result per message in the same
  // order. Blocks until each has an outcome (its own timeouts included); safe to call from
  // several threads at once. A channel may send a batch over one connection.
  virtual std::vector<SendResult> Send(absl::Span<const OutgoingMessage> messages) = 0;
};

}  // namespace ecrm::broadcast

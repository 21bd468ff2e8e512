// What providers tell the engine about messages it sent, parsed into RecordDeliveryEvent
// requests (deliveries.h). Pure: no I/O; every malformed input is INVALID_ARGUMENT naming the
// field, never a crash.
//
// Provider webhooks (JSON): one event, or {"events": [ … ]} (at most 1,000), each
//   {"type": "delivered" | "bounce" | "complaint" | "opened" | "clicked" | "unsubscribed",
//    "bounce_type": "hard" | "soft"            (bounces; required),
//    "delivery_id": "…" | "provider_message_id": "…"   (exactly one),
//    "occurred_at": unix seconds | "2026-12-01T16:00:00Z"   (optional),
//    "detail": "…"                              (optional: a diagnostic, a URL; at most 2,048 bytes)}
//
// RFC 3464 delivery status notifications: the whole multipart/report, or its
// message/delivery-status part followed by the returned headers. The delivery is the
// Original-Envelope-Id when there is one, else the returned message's Message-ID (the engine's own,
// mime.h's MessageIdFor).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "ecrm/broadcast/v1/broadcast.pb.h"

namespace ecrm::broadcast {

absl::StatusOr<std::vector<v1::RecordDeliveryEventRequest>> ParseProviderWebhook(absl::string_view json);

// The first recipient's report of a DSN.
struct DeliveryStatus {
  std::string delivery_id;
  std::string action;      // failed, delayed, delivered, relayed or expanded (lower case)
  std::string status;      // "5.1.1"
  std::string diagnostic;  // Diagnostic-Code when given, else empty
  std::string recipient;   // Final-Recipient
};

absl::StatusOr<DeliveryStatus> ParseDeliveryStatus(absl::string_view message);

// The event a DSN means: failed with 5.x.x a hard bounce (the address is suppressed), failed with
// 4.x.x a soft bounce (the message is queued again), delivered / relayed / expanded a delivery;
// delayed (the reporting MTA is still retrying) nothing.
std::optional<v1::RecordDeliveryEventRequest> DeliveryStatusEvent(const DeliveryStatus& status);

// The delivery id inside one of the engine's Message-IDs ("<d_1=2E2@example.com>" ->
// "d_1.2"); empty when it is not one.
std::string DeliveryIdFromMessageId(absl::string_view message_id);

}  // namespace ecrm::broadcast

// HMAC-SHA256 as the broadcast engine signs with it: the requests it sends to webhook providers
// (webhook_channel.h), the tracking links it puts in messages (tracking_links.h) and the provider
// callbacks it accepts. One implementation (OpenSSL libcrypto), compared in constant time.
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace ecrm::broadcast {

// The 32-byte HMAC-SHA256 of `data` under `key`.
std::string HmacSha256(absl::string_view key, absl::string_view data);

// Whether a and b are equal, in time that depends only on their lengths (CRYPTO_memcmp).
bool ConstantTimeEquals(absl::string_view a, absl::string_view b);

// The signature header value of a signed request: "v1=" + hex HMAC-SHA256(secret, timestamp "."
// body). What WebhookChannel sends and what the engine's provider webhooks expect.
std::string RequestSignature(absl::string_view secret, int64_t unix_seconds, absl::string_view body);

// Checks a signed request: `timestamp` (unix seconds, as text) within `max_age` of `now` either
// way, and `signature` ("v1=<hex>") the RequestSignature of the body. UNAUTHENTICATED naming
// what is wrong otherwise (never the expected value).
absl::Status VerifyRequestSignature(absl::string_view secret, absl::string_view timestamp, absl::string_view body,
                                    absl::string_view signature, absl::Time now, absl::Duration max_age);

}  // namespace ecrm::broadcast

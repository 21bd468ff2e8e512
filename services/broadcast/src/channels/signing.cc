#include "channels/signing.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <cstdlib>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace ecrm::broadcast {

std::string HmacSha256(absl::string_view key, absl::string_view data) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int mac_len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), reinterpret_cast<const unsigned char*>(data.data()),
       data.size(), mac, &mac_len);
  return std::string(reinterpret_cast<const char*>(mac), mac_len);
}

bool ConstantTimeEquals(absl::string_view a, absl::string_view b) {
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

std::string RequestSignature(absl::string_view secret, int64_t unix_seconds, absl::string_view body) {
  return absl::StrCat("v1=", absl::BytesToHexString(HmacSha256(secret, absl::StrCat(unix_seconds, ".", body))));
}

absl::Status VerifyRequestSignature(absl::string_view secret, absl::string_view timestamp, absl::string_view body,
                                    absl::string_view signature, absl::Time now, absl::Duration max_age) {
  int64_t ts = 0;
  if (!absl::SimpleAtoi(timestamp, &ts)) {
    return absl::UnauthenticatedError("X-Ecrm-Timestamp: missing or not unix seconds");
  }
  const absl::Duration skew = absl::FromUnixSeconds(ts) - now;
  if (skew > max_age || -skew > max_age) {
    return absl::UnauthenticatedError(absl::StrCat("X-Ecrm-Timestamp: more than ", absl::FormatDuration(max_age),
                                                   " away from now (replayed, or a clock is wrong)"));
  }
  absl::string_view hex = signature;
  // A header may carry several signatures (a secret being rotated): any one may match.
  const std::string expected = RequestSignature(secret, ts, body);
  bool matched = false;
  while (!hex.empty()) {
    const size_t comma = hex.find(',');
    absl::string_view one = absl::StripAsciiWhitespace(hex.substr(0, comma));
    hex = comma == absl::string_view::npos ? absl::string_view() : hex.substr(comma + 1);
    if (ConstantTimeEquals(one, expected)) matched = true;
  }
  if (!matched) return absl::UnauthenticatedError("X-Ecrm-Signature: missing or does not match the body");
  return absl::OkStatus();
}

}  // namespace ecrm::broadcast

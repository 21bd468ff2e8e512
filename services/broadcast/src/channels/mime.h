// The email a delivery becomes: an RFC 5322 message with a MIME multipart/alternative body
// (text and HTML, UTF-8, quoted-printable), a Message-ID derived from the delivery id, the RFC
// 8058 one-click unsubscribe headers on marketing mail, and a DKIM signature when a key is
// configured. CRLF line endings, no line over 998 octets, and no way for content to add a header:
// addresses and URLs carrying CR, LF or other controls are refused, display names and subjects
// have them replaced by spaces.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "channel.h"

struct dkim_lib;  // libopendkim's DKIM_LIB

namespace ecrm::broadcast {

// Who the mail comes from.
struct MailIdentity {
  // The address in From: and the SMTP envelope (MAIL FROM).
  std::string from_address;
  // Optional display name (UTF-8).
  std::string from_name;
  // The right-hand side of Message-IDs; empty: the domain of from_address.
  std::string message_id_domain;
};

// Accepts an ASCII addr-spec (local@domain, dot-atom local part, no quoting, no comments, at most
// 254 octets): what can go into a header and RCPT TO unchanged. INVALID_ARGUMENT otherwise,
// naming the rule (never echoing the address, which may be personal data).
absl::Status ValidateMailbox(absl::string_view address);

// Accepts the URL of List-Unsubscribe: https, or http on a loopback host (development), no
// whitespace, controls or angle brackets, at most 900 octets.
absl::Status ValidateUnsubscribeUrl(absl::string_view url);

// "<delivery-id@domain>", the delivery id with every byte outside [A-Za-z0-9_-] written "=XX",
// so that the same delivery always gets the same Message-ID and a resend can be recognised.
std::string MessageIdFor(absl::string_view delivery_id, absl::string_view domain);

// RFC 5322 date-time in UTC: "Tue, 01 Dec 2026 12:49:27 +0000" (English names, whatever the
// process locale).
std::string FormatMailDate(absl::Time t);

// A header value from UTF-8 text: as is when it is printable ASCII that fits, otherwise RFC 2047
// encoded-words ("=?UTF-8?B?...?=", each at most 75 octets, never splitting a character), folded
// with CRLF SP. CR, LF and other controls become spaces first.
std::string EncodeHeaderText(absl::string_view utf8);

// Quoted-printable (RFC 2045) of UTF-8 text: line breaks (LF, CRLF or CR) become CRLF, lines at
// most 76 octets, "=" and non-ASCII as =XX, trailing white space and a leading "." encoded.
std::string QuotedPrintable(absl::string_view text);

// Builds the message (headers and body, CRLF, no trailing dot-stuffing: libcurl does that).
// INVALID_ARGUMENT for a bad recipient, a marketing message without a valid unsubscribe URL, or
// a message with neither text nor HTML; the caller treats those as permanent failures.
absl::StatusOr<std::string> BuildMimeMessage(const OutgoingMessage& message, const MailIdentity& identity,
                                             absl::Time now);

struct DkimSettings {
  // The private RSA key, PEM.
  std::string private_key_pem;
  std::string selector;
  // d=: the signing domain (usually the From domain, for DMARC alignment).
  std::string domain;
};

// Signs messages with libopendkim: rsa-sha256, relaxed/relaxed, h= the headers of
// SignedHeaders() that the message has. Safe to use from several threads.
class DkimSigner {
 public:
  // Checks the settings and the key by signing a probe message, so that a bad key fails at start.
  static absl::StatusOr<std::unique_ptr<DkimSigner>> Create(DkimSettings settings);
  ~DkimSigner();
  DkimSigner(const DkimSigner&) = delete;
  DkimSigner& operator=(const DkimSigner&) = delete;

  // The message with a DKIM-Signature header in front. `id` names the message in errors.
  absl::StatusOr<std::string> Sign(absl::string_view message, absl::string_view id) const;

  // Lower-case names of the headers signed when present.
  static const std::vector<std::string>& SignedHeaders();

 private:
  DkimSigner(DkimSettings settings, dkim_lib* lib) : settings_(std::move(settings)), lib_(lib) {}
  DkimSettings settings_;
  dkim_lib* lib_;
};

}  // namespace ecrm::broadcast

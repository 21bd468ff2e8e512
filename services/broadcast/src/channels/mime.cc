#include "channels/mime.h"

#include <openssl/sha.h>
#include "channels/opendkim.h"

#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace ecrm::broadcast {
namespace {

constexpr char kCrlf[] = "\r\n";
// RFC 2047: an encoded-word is at most 75 octets; "=?UTF-8?B?" and "?=" take 12 of them, and 45
// octets of text make 60 of base64.
constexpr size_t kEncodedWordBytes = 45;
// Header lines are folded to stay under RFC 5322's recommended 78 octets where we control them.
constexpr size_t kPlainHeaderLimit = 900;

bool IsAtext(char c) {
  return absl::ascii_isalnum(static_cast<unsigned char>(c)) || std::strchr("!#$%&'*+/=?^_`{|}~-", c) != nullptr;
}

bool IsDomainChar(char c) { return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.'; }

// Controls (CR and LF among them) become spaces: a value can never start a header of its own.
std::string WithoutControls(absl::string_view text) {
  std::string out(text);
  for (char& c : out) {
    unsigned char u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) c = ' ';
  }
  return out;
}

bool IsPrintableAscii(absl::string_view s) {
  for (char c : s) {
    unsigned char u = static_cast<unsigned char>(c);
    if (u < 0x20 || u >= 0x7f) return false;
  }
  return true;
}

// Length of the UTF-8 sequence that starts with `lead` (1 for a stray continuation byte, so
// that invalid input still advances).
size_t Utf8SequenceLength(unsigned char lead) {
  if (lead < 0x80) return 1;
  if ((lead & 0xe0) == 0xc0) return 2;
  if ((lead & 0xf0) == 0xe0) return 3;
  if ((lead & 0xf8) == 0xf0) return 4;
  return 1;
}

std::string Sha256Hex(absl::string_view data) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(), digest);
  return absl::BytesToHexString(absl::string_view(reinterpret_cast<const char*>(digest), sizeof(digest)));
}

absl::string_view DomainOf(absl::string_view address) {
  size_t at = address.rfind('@');
  return at == absl::string_view::npos ? absl::string_view() : address.substr(at + 1);
}

// A display name and address: "Name" <a@b>, =?UTF-8?B?...?= <a@b>, or just a@b.
std::string FormatMailbox(absl::string_view name, absl::string_view address) {
  std::string clean = WithoutControls(name);
  absl::string_view trimmed = absl::StripAsciiWhitespace(clean);
  if (trimmed.empty()) return std::string(address);
  if (IsPrintableAscii(trimmed) && !absl::StrContains(trimmed, "=?")) {
    std::string quoted = "\"";
    for (char c : trimmed) {
      if (c == '"' || c == '\\') quoted.push_back('\\');
      quoted.push_back(c);
    }
    return absl::StrCat(quoted, "\" <", address, ">");
  }
  return absl::StrCat(EncodeHeaderText(trimmed), " <", address, ">");
}

void AddPart(std::string& out, absl::string_view content_type, absl::string_view body) {
  absl::StrAppend(&out, "Content-Type: ", content_type, "; charset=utf-8", kCrlf,
                  "Content-Transfer-Encoding: quoted-printable", kCrlf, kCrlf, QuotedPrintable(body), kCrlf);
}

}  // namespace

absl::Status ValidateMailbox(absl::string_view address) {
  if (address.empty()) return absl::InvalidArgumentError("email address: empty");
  if (address.size() > 254) return absl::InvalidArgumentError("email address: longer than 254 octets");
  size_t at = address.rfind('@');
  if (at == absl::string_view::npos || at == 0 || at + 1 == address.size()) {
    return absl::InvalidArgumentError("email address: expected local-part@domain");
  }
  absl::string_view local = address.substr(0, at);
  absl::string_view domain = address.substr(at + 1);
  if (local.size() > 64) return absl::InvalidArgumentError("email address: local part longer than 64 octets");
  for (char c : local) {
    if (!IsAtext(c) && c != '.') {
      return absl::InvalidArgumentError(
          "email address: the local part may hold only letters, digits, '.' and !#$%&'*+/=?^_`{|}~- "
          "(no spaces, controls, quoting or non-ASCII)");
    }
  }
  if (local.front() == '.' || local.back() == '.' || absl::StrContains(local, "..")) {
    return absl::InvalidArgumentError("email address: '.' at the start or end of the local part, or twice in a row");
  }
  for (char c : domain) {
    if (!IsDomainChar(c)) {
      return absl::InvalidArgumentError(
          "email address: the domain may hold only letters, digits, '-' and '.' (IDNs in their xn-- form)");
    }
  }
  if (domain.front() == '.' || domain.back() == '.' || absl::StrContains(domain, "..") ||
      !absl::StrContains(domain, ".")) {
    return absl::InvalidArgumentError("email address: the domain needs at least two labels, none empty");
  }
  return absl::OkStatus();
}

absl::Status ValidateUnsubscribeUrl(absl::string_view url) {
  if (url.size() > 900) return absl::InvalidArgumentError("unsubscribe_url: longer than 900 octets");
  for (char c : url) {
    unsigned char u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u >= 0x7f || c == '<' || c == '>' || c == '"') {
      return absl::InvalidArgumentError(
          "unsubscribe_url: holds white space, a control, a quote, an angle bracket or non-ASCII (percent-encode it)");
    }
  }
  if (absl::StartsWith(url, "https://") && url.size() > 8) return absl::OkStatus();
  if (absl::StartsWith(url, "http://")) {
    absl::string_view rest = url.substr(7);
    for (absl::string_view host : {"127.0.0.1", "localhost", "[::1]"}) {
      if (absl::StartsWith(rest, host) &&
          (rest.size() == host.size() || rest[host.size()] == ':' || rest[host.size()] == '/')) {
        return absl::OkStatus();
      }
    }
  }
  return absl::InvalidArgumentError(
      "unsubscribe_url: RFC 8058 needs an https URL (http is accepted only on a loopback host, for development)");
}

std::string MessageIdFor(absl::string_view delivery_id, absl::string_view domain) {
  std::string out = "<";
  for (char c : delivery_id) {
    if (absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-') {
      out.push_back(c);
    } else {
      absl::StrAppend(&out, "=", absl::BytesToHexString(absl::string_view(&c, 1)));
    }
  }
  absl::StrAppend(&out, "@", domain, ">");
  return out;
}

std::string FormatMailDate(absl::Time t) {
  static constexpr const char* kDays[] = {"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"};
  static constexpr const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                            "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  absl::CivilSecond cs = absl::ToCivilSecond(t, absl::UTCTimeZone());
  int weekday = static_cast<int>(absl::GetWeekday(cs));  // absl: Monday = 0
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%s, %02d %s %04lld %02d:%02d:%02d +0000", kDays[weekday], cs.day(),
                kMonths[cs.month() - 1], static_cast<long long>(cs.year()), cs.hour(), cs.minute(), cs.second());
  return buf;
}

std::string EncodeHeaderText(absl::string_view utf8) {
  std::string clean = WithoutControls(utf8);
  if (IsPrintableAscii(clean) && clean.size() <= kPlainHeaderLimit && !absl::StrContains(clean, "=?")) {
    return clean;
  }
  std::string out;
  size_t i = 0;
  while (i < clean.size()) {
    size_t end = i;
    while (end < clean.size()) {
      size_t len = Utf8SequenceLength(static_cast<unsigned char>(clean[end]));
      if (end + len - i > kEncodedWordBytes) break;
      end += len;
    }
    if (end == i) end = std::min(clean.size(), i + kEncodedWordBytes);  // a truncated sequence
    if (!out.empty()) absl::StrAppend(&out, kCrlf, " ");
    absl::StrAppend(&out, "=?UTF-8?B?", absl::Base64Escape(absl::string_view(clean).substr(i, end - i)), "?=");
    i = end;
  }
  return out;
}

std::string QuotedPrintable(absl::string_view text) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  // One line of at most 75 octets before a soft break's "=" (76 in all).
  constexpr size_t kMaxLine = 75;
  std::string out;
  out.reserve(text.size() + text.size() / 8);
  size_t line_len = 0;
  auto emit = [&](absl::string_view token) {
    if (line_len + token.size() > kMaxLine) {
      absl::StrAppend(&out, "=", kCrlf);
      line_len = 0;
    }
    out.append(token.data(), token.size());
    line_len += token.size();
  };
  auto encoded = [&](unsigned char c) {
    char buf[3] = {'=', kHex[c >> 4], kHex[c & 0xf]};
    emit(absl::string_view(buf, 3));
  };
  for (size_t i = 0; i < text.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(text[i]);
    if (c == '\r' || c == '\n') {
      if (c == '\r' && i + 1 < text.size() && text[i + 1] == '\n') ++i;
      out.append(kCrlf);
      line_len = 0;
      continue;
    }
    bool at_line_end = i + 1 == text.size() || text[i + 1] == '\r' || text[i + 1] == '\n';
    if (c == ' ' || c == '\t') {
      if (at_line_end) {
        encoded(c);
      } else {
        char ch = static_cast<char>(c);
        emit(absl::string_view(&ch, 1));
      }
    } else if (c == '.' && line_len == 0) {
      encoded(c);  // a lone "." line ends DATA on relays that forget dot-stuffing
    } else if (c >= 33 && c <= 126 && c != '=') {
      char ch = static_cast<char>(c);
      // A soft break before this character would leave it at a line start; encode a "." there.
      if (ch == '.' && line_len + 1 > kMaxLine) {
        absl::StrAppend(&out, "=", kCrlf);
        line_len = 0;
        encoded(c);
      } else {
        emit(absl::string_view(&ch, 1));
      }
    } else {
      encoded(c);
    }
  }
  return out;
}

absl::StatusOr<std::string> BuildMimeMessage(const OutgoingMessage& message, const MailIdentity& identity,
                                             absl::Time now) {
  if (absl::Status s = ValidateMailbox(identity.from_address); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("sender ", s.message()));
  }
  if (absl::Status s = ValidateMailbox(message.address); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("recipient ", s.message()));
  }
  if (message.delivery_id.empty()) return absl::InvalidArgumentError("delivery_id: empty");
  if (message.text_body.empty() && message.html_body.empty()) {
    return absl::InvalidArgumentError("email content: needs text_body or html_body");
  }
  const bool marketing = message.purpose == common::v1::PURPOSE_MARKETING;
  if (marketing) {
    if (message.unsubscribe_url.empty()) {
      return absl::InvalidArgumentError("unsubscribe_url: required on marketing email (RFC 8058)");
    }
    if (absl::Status s = ValidateUnsubscribeUrl(message.unsubscribe_url); !s.ok()) return s;
  }
  absl::string_view domain =
      identity.message_id_domain.empty() ? DomainOf(identity.from_address) : identity.message_id_domain;

  std::string out;
  out.reserve(message.text_body.size() + message.html_body.size() + 1024);
  absl::StrAppend(&out, "From: ", FormatMailbox(identity.from_name, identity.from_address), kCrlf);
  absl::StrAppend(&out, "To: ", message.address, kCrlf);
  if (!message.subject.empty()) absl::StrAppend(&out, "Subject: ", EncodeHeaderText(message.subject), kCrlf);
  absl::StrAppend(&out, "Date: ", FormatMailDate(now), kCrlf);
  absl::StrAppend(&out, "Message-ID: ", MessageIdFor(message.delivery_id, domain), kCrlf);
  if (marketing) {
    absl::StrAppend(&out, "List-Unsubscribe: <", message.unsubscribe_url, ">", kCrlf);
    absl::StrAppend(&out, "List-Unsubscribe-Post: List-Unsubscribe=One-Click", kCrlf);
  }
  absl::StrAppend(&out, "MIME-Version: 1.0", kCrlf);
  if (!message.text_body.empty() && !message.html_body.empty()) {
    // Quoted-printable never holds "=_" (it writes "=" as =3D), so this boundary cannot occur in
    // a part; it is derived from the delivery so that the same delivery builds the same bytes.
    std::string boundary = absl::StrCat("=_ecrm_", Sha256Hex(message.delivery_id).substr(0, 32));
    absl::StrAppend(&out, "Content-Type: multipart/alternative; boundary=\"", boundary, "\"", kCrlf, kCrlf);
    absl::StrAppend(&out, "--", boundary, kCrlf);
    AddPart(out, "text/plain", message.text_body);
    absl::StrAppend(&out, "--", boundary, kCrlf);
    AddPart(out, "text/html", message.html_body);
    absl::StrAppend(&out, "--", boundary, "--", kCrlf);
  } else if (!message.text_body.empty()) {
    AddPart(out, "text/plain", message.text_body);
  } else {
    AddPart(out, "text/html", message.html_body);
  }
  return out;
}

// --- DKIM -------------------------------------------------------------------------------------

namespace {

// Runs one message through a signing handle; returns the DKIM-Signature header line(s).
absl::StatusOr<std::string> SignatureHeader(DKIM_LIB* lib, const DkimSettings& settings, absl::string_view message,
                                            absl::string_view id) {
  size_t split = message.find("\r\n\r\n");
  if (split == absl::string_view::npos) return absl::InvalidArgumentError("DKIM: message has no body separator");
  std::string id_z(id.empty() ? "ecrm" : id);
  DKIM_STAT stat = DKIM_STAT_OK;
  DKIM* dkim = dkim_sign(lib, reinterpret_cast<const unsigned char*>(id_z.c_str()), nullptr,
                         reinterpret_cast<dkim_sigkey_t>(const_cast<char*>(settings.private_key_pem.c_str())),
                         reinterpret_cast<const unsigned char*>(settings.selector.c_str()),
                         reinterpret_cast<const unsigned char*>(settings.domain.c_str()), DKIM_CANON_RELAXED,
                         DKIM_CANON_RELAXED, DKIM_SIGN_RSASHA256, -1, &stat);
  if (dkim == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat("DKIM: cannot start signing: ", dkim_getresultstr(stat)));
  }
  auto fail = [&](absl::string_view step, DKIM_STAT s) {
    const char* detail = dkim_geterror(dkim);
    absl::Status status =
        absl::InvalidArgumentError(absl::StrCat("DKIM ", step, ": ", dkim_getresultstr(s),
                                                detail != nullptr ? absl::StrCat(" (", detail, ")") : std::string()));
    dkim_free(dkim);
    return status;
  };
  // Headers one by one, continuation lines kept (relaxed canonicalisation unfolds them).
  absl::string_view headers = message.substr(0, split + 2);
  size_t pos = 0;
  while (pos < headers.size()) {
    size_t end = pos;
    do {
      end = headers.find("\r\n", end);
      if (end == absl::string_view::npos)
        end = headers.size();
      else
        end += 2;
    } while (end < headers.size() && (headers[end] == ' ' || headers[end] == '\t'));
    absl::string_view field = headers.substr(pos, end - pos);
    if (absl::EndsWith(field, "\r\n")) field.remove_suffix(2);
    std::string copy(field);
    if ((stat = dkim_header(dkim, reinterpret_cast<u_char*>(copy.data()), copy.size())) != DKIM_STAT_OK) {
      return fail("header", stat);
    }
    pos = end;
  }
  if ((stat = dkim_eoh(dkim)) != DKIM_STAT_OK) return fail("end of headers", stat);
  std::string body(message.substr(split + 4));
  if (!body.empty() && (stat = dkim_body(dkim, reinterpret_cast<u_char*>(body.data()), body.size())) != DKIM_STAT_OK) {
    return fail("body", stat);
  }
  if ((stat = dkim_eom(dkim, nullptr)) != DKIM_STAT_OK) return fail("end of message", stat);
  u_char* sig = nullptr;
  size_t sig_len = 0;
  constexpr absl::string_view kName = "DKIM-Signature: ";
  if ((stat = dkim_getsighdr_d(dkim, kName.size(), &sig, &sig_len)) != DKIM_STAT_OK) return fail("signature", stat);
  // libopendkim folds with bare LF; mail needs CRLF.
  std::string value;
  for (size_t i = 0; i < sig_len; ++i) {
    char c = static_cast<char>(sig[i]);
    if (c == '\n' && (value.empty() || value.back() != '\r')) value.push_back('\r');
    value.push_back(c);
  }
  dkim_free(dkim);
  return absl::StrCat(kName, value, kCrlf);
}

}  // namespace

const std::vector<std::string>& DkimSigner::SignedHeaders() {
  static const std::vector<std::string>* const kHeaders = new std::vector<std::string>{
      "from",         "to",          "subject", "date", "message-id", "list-unsubscribe", "list-unsubscribe-post",
      "mime-version", "content-type"};
  return *kHeaders;
}

absl::StatusOr<std::unique_ptr<DkimSigner>> DkimSigner::Create(DkimSettings settings) {
  if (settings.selector.empty()) return absl::InvalidArgumentError("dkim-selector: empty");
  if (settings.domain.empty()) return absl::InvalidArgumentError("dkim-domain: empty");
  if (settings.private_key_pem.empty()) return absl::InvalidArgumentError("dkim-key-file: empty key");
  DKIM_LIB* lib = dkim_init(nullptr, nullptr);
  if (lib == nullptr) return absl::InternalError("DKIM: dkim_init failed");
  // Sign exactly our list: libopendkim's default would add headers we do not control.
  std::vector<const char*> names;
  for (const std::string& h : SignedHeaders()) names.push_back(h.c_str());
  names.push_back(nullptr);
  if (dkim_options(lib, DKIM_OP_SETOPT, DKIM_OPTS_SIGNHDRS, names.data(), sizeof(const char**)) != DKIM_STAT_OK) {
    dkim_close(lib);
    return absl::InternalError("DKIM: cannot set the signed header list");
  }
  std::unique_ptr<DkimSigner> signer(new DkimSigner(std::move(settings), lib));
  static constexpr char kProbe[] =
      "From: probe@example.com\r\nTo: probe@example.com\r\nSubject: probe\r\n\r\nprobe\r\n";
  if (auto probe = SignatureHeader(lib, signer->settings_, kProbe, "probe"); !probe.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "dkim-key-file: the key cannot sign (expected an RSA private key, PEM): ", probe.status().message()));
  }
  return signer;
}

DkimSigner::~DkimSigner() { dkim_close(lib_); }

absl::StatusOr<std::string> DkimSigner::Sign(absl::string_view message, absl::string_view id) const {
  absl::StatusOr<std::string> header = SignatureHeader(lib_, settings_, message, id);
  if (!header.ok()) return header.status();
  return absl::StrCat(*header, message);
}

}  // namespace ecrm::broadcast

// The email a delivery becomes: headers, encodings, unsubscribe headers, no header injection, and
// DKIM signatures checked with libopendkim's own verifier.
#include "channels/mime.h"

#include <catch2/catch.hpp>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "dkim_helpers.h"
#include "ecrm/testing/process.h"
#include "mail_parse.h"

namespace ecrm::broadcast {
namespace {

using ecrm::testing::DecodeEncodedWords;
using ecrm::testing::DecodeQuotedPrintable;
using ecrm::testing::ParseMail;
using ecrm::testing::Parts;

const absl::Time kNow = absl::FromUnixSeconds(1796129367);  // Tue, 01 Dec 2026 12:49:27 UTC

MailIdentity Identity() { return {.from_address = "news@shop.example", .from_name = "Shop Ltd"}; }

OutgoingMessage Marketing() {
  return {.delivery_id = "d-0001",
          .customer_id = "c-1",
          .channel = common::v1::CHANNEL_EMAIL,
          .purpose = common::v1::PURPOSE_MARKETING,
          .address = "ann@example.org",
          .subject = "Spring sale",
          .text_body = "Hello Ann,\nour spring sale starts today.\n",
          .html_body = "<p>Hello Ann,</p><p>our spring sale starts today.</p>",
          .unsubscribe_url = "https://shop.example/u/d-0001?sig=abc",
          .campaign_id = "camp-1"};
}

// Every line ends in CRLF (no bare CR or LF) and is at most 998 octets.
void CheckLines(const std::string& mail) {
  for (size_t i = 0; i < mail.size(); ++i) {
    if (mail[i] == '\n') REQUIRE((i > 0 && mail[i - 1] == '\r'));
    if (mail[i] == '\r') REQUIRE((i + 1 < mail.size() && mail[i + 1] == '\n'));
  }
  for (absl::string_view line : absl::StrSplit(mail, "\r\n")) REQUIRE(line.size() <= 998);
}

std::string Boundary(const std::string& content_type) {
  size_t b = content_type.find("boundary=\"");
  REQUIRE(b != std::string::npos);
  size_t start = b + 10;
  return content_type.substr(start, content_type.find('"', start) - start);
}

TEST_CASE("a marketing email has both RFC 8058 headers, a Message-ID from the delivery and both parts") {
  absl::StatusOr<std::string> mail = BuildMimeMessage(Marketing(), Identity(), kNow);
  REQUIRE(mail.ok());
  CheckLines(*mail);
  ecrm::testing::ParsedMail m = ParseMail(*mail);
  CHECK(m.Header("from") == "\"Shop Ltd\" <news@shop.example>");
  CHECK(m.Header("to") == "ann@example.org");
  CHECK(m.Header("subject") == "Spring sale");
  CHECK(m.Header("date") == "Tue, 01 Dec 2026 12:49:27 +0000");
  CHECK(m.Header("message-id") == "<d-0001@shop.example>");
  CHECK(m.Header("list-unsubscribe") == "<https://shop.example/u/d-0001?sig=abc>");
  CHECK(m.Header("list-unsubscribe-post") == "List-Unsubscribe=One-Click");
  CHECK(m.Header("mime-version") == "1.0");
  for (const char* h : {"from", "to", "subject", "date", "message-id", "list-unsubscribe", "list-unsubscribe-post"}) {
    CHECK(m.Count(h) == 1);
  }
  const std::string content_type = m.Header("content-type");
  REQUIRE(absl::StartsWith(content_type, "multipart/alternative;"));
  std::vector<ecrm::testing::ParsedMail> parts = Parts(m.body, Boundary(content_type));
  REQUIRE(parts.size() == 2);
  CHECK(parts[0].Header("content-type") == "text/plain; charset=utf-8");
  CHECK(parts[0].Header("content-transfer-encoding") == "quoted-printable");
  CHECK(DecodeQuotedPrintable(parts[0].body) == "Hello Ann,\r\nour spring sale starts today.\r\n");
  CHECK(parts[1].Header("content-type") == "text/html; charset=utf-8");
  CHECK(DecodeQuotedPrintable(parts[1].body) == Marketing().html_body);

  // The same delivery builds the same bytes (a resend is the same message).
  CHECK(*BuildMimeMessage(Marketing(), Identity(), kNow) == *mail);
}

TEST_CASE("service and transactional email carry no unsubscribe headers") {
  for (auto purpose : {common::v1::PURPOSE_SERVICE, common::v1::PURPOSE_TRANSACTIONAL}) {
    OutgoingMessage msg = Marketing();
    msg.purpose = purpose;
    msg.unsubscribe_url.clear();
    absl::StatusOr<std::string> mail = BuildMimeMessage(msg, Identity(), kNow);
    REQUIRE(mail.ok());
    ecrm::testing::ParsedMail m = ParseMail(*mail);
    CHECK(m.Count("list-unsubscribe") == 0);
    CHECK(m.Count("list-unsubscribe-post") == 0);
    CHECK(m.Header("message-id") == "<d-0001@shop.example>");
  }
}

TEST_CASE("marketing email needs an https unsubscribe URL") {
  OutgoingMessage msg = Marketing();
  msg.unsubscribe_url.clear();
  absl::StatusOr<std::string> mail = BuildMimeMessage(msg, Identity(), kNow);
  CHECK(mail.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(absl::StrContains(mail.status().message(), "unsubscribe_url"));

  msg.unsubscribe_url = "http://shop.example/u/1";
  CHECK(BuildMimeMessage(msg, Identity(), kNow).status().code() == absl::StatusCode::kInvalidArgument);
  msg.unsubscribe_url = "mailto:unsubscribe@shop.example";
  CHECK(BuildMimeMessage(msg, Identity(), kNow).status().code() == absl::StatusCode::kInvalidArgument);
  // Development: the engine's own HTTP server on loopback.
  msg.unsubscribe_url = "http://127.0.0.1:8080/u/1";
  CHECK(BuildMimeMessage(msg, Identity(), kNow).ok());
  msg.unsubscribe_url = "http://127.0.0.1.evil.example/u/1";
  CHECK(!BuildMimeMessage(msg, Identity(), kNow).ok());
}

TEST_CASE("no header injection: addresses and URLs with CR or LF are refused, text fields lose them") {
  OutgoingMessage msg = Marketing();
  msg.subject = "Hello\r\nBcc: victim@example.net";
  MailIdentity id = Identity();
  id.from_name = "Shop\nReply-To: attacker@example.net";
  absl::StatusOr<std::string> mail = BuildMimeMessage(msg, id, kNow);
  REQUIRE(mail.ok());
  CheckLines(*mail);
  ecrm::testing::ParsedMail m = ParseMail(*mail);
  CHECK(m.Count("bcc") == 0);
  CHECK(m.Count("reply-to") == 0);
  CHECK(m.Header("subject") == "Hello  Bcc: victim@example.net");

  msg = Marketing();
  msg.address = "ann@example.org\r\nBcc: victim@example.net";
  CHECK(BuildMimeMessage(msg, Identity(), kNow).status().code() == absl::StatusCode::kInvalidArgument);
  msg = Marketing();
  msg.unsubscribe_url = "https://shop.example/u\r\nBcc: victim@example.net";
  CHECK(BuildMimeMessage(msg, Identity(), kNow).status().code() == absl::StatusCode::kInvalidArgument);
  msg = Marketing();
  msg.unsubscribe_url = "https://shop.example/u>, <https://evil.example/";
  CHECK(BuildMimeMessage(msg, Identity(), kNow).status().code() == absl::StatusCode::kInvalidArgument);
}

TEST_CASE("addresses: plain ASCII addr-specs only, and errors never echo the address") {
  CHECK(ValidateMailbox("ann.lee+news@mail.example.org").ok());
  CHECK(ValidateMailbox("o'brien@example.ie").ok());
  for (const char* bad : {"", "ann", "@example.org", "ann@", "ann@localhost", "ann lee@example.org",
                          "\"ann\"@example.org", "ann@exa mple.org", "ann..lee@example.org", ".ann@example.org",
                          "ännä@example.org", "ann@example..org", "<ann@example.org>", "ann@example.org,bob@x.org"}) {
    absl::Status s = ValidateMailbox(bad);
    INFO(bad);
    CHECK(s.code() == absl::StatusCode::kInvalidArgument);
    if (std::string(bad).size() > 3) CHECK(!absl::StrContains(s.message(), bad));
  }
}

TEST_CASE("Message-ID: derived from the delivery id, unsafe bytes written =XX") {
  CHECK(MessageIdFor("d-1", "shop.example") == "<d-1@shop.example>");
  CHECK(MessageIdFor("a b<c>@d", "shop.example") == "<a=20b=3cc=3e=40d@shop.example>");
  OutgoingMessage msg = Marketing();
  MailIdentity id = Identity();
  id.message_id_domain = "mail.shop.example";
  CHECK(ParseMail(*BuildMimeMessage(msg, id, kNow)).Header("message-id") == "<d-0001@mail.shop.example>");
}

TEST_CASE("a non-ASCII subject and sender name are RFC 2047 encoded-words of at most 75 octets") {
  OutgoingMessage msg = Marketing();
  std::string subject = "Grüße aus München — ";
  for (int i = 0; i < 8; ++i) subject += "Frühlingsangebote für Sie, ";
  msg.subject = subject;
  MailIdentity id = Identity();
  id.from_name = "Café Zoë";
  absl::StatusOr<std::string> mail = BuildMimeMessage(msg, id, kNow);
  REQUIRE(mail.ok());
  CheckLines(*mail);
  for (absl::string_view line : absl::StrSplit(*mail, "\r\n")) {
    if (absl::StartsWith(line, "Subject:") || absl::StartsWith(line, " =?")) CHECK(line.size() <= 85);
  }
  ecrm::testing::ParsedMail m = ParseMail(*mail);
  const std::string encoded = m.Header("subject");
  for (absl::string_view word : absl::StrSplit(encoded, ' ', absl::SkipEmpty())) CHECK(word.size() <= 75);
  CHECK(DecodeEncodedWords(encoded) == subject);
  const std::string from = m.Header("from");
  CHECK(absl::EndsWith(from, " <news@shop.example>"));
  CHECK(DecodeEncodedWords(from.substr(0, from.find(" <"))) == "Café Zoë");

  // ASCII that looks like an encoded word is encoded too, so that it reads back as written.
  CHECK(DecodeEncodedWords(EncodeHeaderText("=?UTF-8?B?eA==?=")) == "=?UTF-8?B?eA==?=");
  // A very long ASCII subject is folded into encoded words rather than a line over 998.
  std::string long_subject(3000, 'x');
  msg.subject = long_subject;
  mail = BuildMimeMessage(msg, Identity(), kNow);
  REQUIRE(mail.ok());
  CheckLines(*mail);
  CHECK(DecodeEncodedWords(ParseMail(*mail).Header("subject")) == long_subject);
}

TEST_CASE("quoted-printable: short lines, CRLF, =, trailing space, a leading dot and UTF-8 round-trip") {
  std::string text = std::string(500, 'a') + "\n" + "x = y   \n" + ".\n" + "..leading\n" + "naïve café\r\nlast\tline\t";
  std::string qp = QuotedPrintable(text);
  for (absl::string_view line : absl::StrSplit(qp, "\r\n")) {
    CHECK(line.size() <= 76);
    CHECK(!absl::StartsWith(line, "."));
    if (!line.empty()) CHECK((line.back() != ' ' && line.back() != '\t'));
  }
  CHECK(qp.find('\n') == qp.find("\r\n") + 1);
  std::string expected =
      std::string(500, 'a') + "\r\n" + "x = y   \r\n" + ".\r\n" + "..leading\r\n" + "naïve café\r\nlast\tline\t";
  CHECK(DecodeQuotedPrintable(qp) == expected);
  // Long runs of multi-byte characters and dots at soft-break positions.
  std::string dots;
  for (int i = 0; i < 300; ++i) dots += (i % 3 == 0) ? "é" : ".";
  std::string qp2 = QuotedPrintable(dots);
  for (absl::string_view line : absl::StrSplit(qp2, "\r\n")) {
    CHECK(line.size() <= 76);
    CHECK(!absl::StartsWith(line, "."));
  }
  CHECK(DecodeQuotedPrintable(qp2) == dots);
}

TEST_CASE("text-only and HTML-only email are single parts, empty content is refused") {
  OutgoingMessage msg = Marketing();
  msg.html_body.clear();
  ecrm::testing::ParsedMail m = ParseMail(*BuildMimeMessage(msg, Identity(), kNow));
  CHECK(m.Header("content-type") == "text/plain; charset=utf-8");
  CHECK(DecodeQuotedPrintable(m.body) == "Hello Ann,\r\nour spring sale starts today.\r\n\r\n");
  msg = Marketing();
  msg.text_body.clear();
  CHECK(ParseMail(*BuildMimeMessage(msg, Identity(), kNow)).Header("content-type") == "text/html; charset=utf-8");
  msg.html_body.clear();
  absl::Status s = BuildMimeMessage(msg, Identity(), kNow).status();
  CHECK(s.code() == absl::StatusCode::kInvalidArgument);
  CHECK(absl::StrContains(s.message(), "text_body or html_body"));
}

TEST_CASE("DKIM: relaxed/relaxed rsa-sha256 over both unsubscribe headers, verified by libopendkim") {
  testing::RsaKeyPair keys = testing::NewRsaKeyPair();
  absl::StatusOr<std::unique_ptr<DkimSigner>> signer =
      DkimSigner::Create({.private_key_pem = keys.private_pem, .selector = "s2026", .domain = "shop.example"});
  REQUIRE(signer.ok());
  absl::StatusOr<std::string> mail = BuildMimeMessage(Marketing(), Identity(), kNow);
  REQUIRE(mail.ok());
  absl::StatusOr<std::string> signed_mail = (*signer)->Sign(*mail, "d-0001");
  REQUIRE(signed_mail.ok());
  CheckLines(*signed_mail);
  REQUIRE(absl::StartsWith(*signed_mail, "DKIM-Signature: "));
  ecrm::testing::ParsedMail m = ParseMail(*signed_mail);
  const std::string sig = m.Header("dkim-signature");
  CHECK(absl::StrContains(sig, "a=rsa-sha256"));
  CHECK(absl::StrContains(sig, "c=relaxed/relaxed"));

  ecrm::testing::TempDir dir;
  const std::string key_file = dir.path() + "/keys";
  testing::DkimVerdict v = testing::VerifyDkim(*signed_mail, key_file, "s2026", "shop.example", keys.public_base64);
  INFO(v.status);
  CHECK(v.passed);
  CHECK(v.domain == "shop.example");
  CHECK(v.selector == "s2026");
  std::vector<std::string> h = absl::StrSplit(absl::AsciiStrToLower(v.signed_headers), ':');
  for (const char* required :
       {"from", "to", "subject", "date", "message-id", "list-unsubscribe", "list-unsubscribe-post"}) {
    INFO(required << " in h=" << v.signed_headers);
    CHECK(std::find(h.begin(), h.end(), required) != h.end());
  }

  // Changing a signed header or the body breaks the signature.
  for (auto [from, to] :
       {std::pair<std::string, std::string>{"Subject: Spring sale", "Subject: Spring sale!"},
        {"List-Unsubscribe: <https://shop.example/u/d-0001?sig=abc>", "List-Unsubscribe: <https://evil.example/u>"},
        {"our spring sale", "our summer sale"}}) {
    std::string tampered = *signed_mail;
    size_t at = tampered.find(from);
    REQUIRE(at != std::string::npos);
    tampered.replace(at, from.size(), to);
    INFO(to);
    CHECK(!testing::VerifyDkim(tampered, key_file, "s2026", "shop.example", keys.public_base64).passed);
  }
  // Relaxed canonicalisation: refolding white space in a header keeps it valid.
  std::string refolded = *signed_mail;
  size_t at = refolded.find("Subject: Spring sale");
  refolded.replace(at, 20, "Subject:   Spring\r\n  sale");
  CHECK(testing::VerifyDkim(refolded, key_file, "s2026", "shop.example", keys.public_base64).passed);
}

TEST_CASE("DKIM: a transactional email signs without unsubscribe headers, a bad key fails at start") {
  testing::RsaKeyPair keys = testing::NewRsaKeyPair();
  auto signer = DkimSigner::Create({.private_key_pem = keys.private_pem, .selector = "s", .domain = "shop.example"});
  REQUIRE(signer.ok());
  OutgoingMessage msg = Marketing();
  msg.purpose = common::v1::PURPOSE_TRANSACTIONAL;
  msg.unsubscribe_url.clear();
  auto signed_mail = (*signer)->Sign(*BuildMimeMessage(msg, Identity(), kNow), "d");
  REQUIRE(signed_mail.ok());
  ecrm::testing::TempDir dir;
  testing::DkimVerdict v =
      testing::VerifyDkim(*signed_mail, dir.path() + "/keys", "s", "shop.example", keys.public_base64);
  CHECK(v.passed);
  CHECK(!absl::StrContains(absl::AsciiStrToLower(v.signed_headers), "list-unsubscribe"));

  auto bad =
      DkimSigner::Create({.private_key_pem = "-----BEGIN PRIVATE KEY-----\nnonsense\n-----END PRIVATE KEY-----\n",
                          .selector = "s",
                          .domain = "shop.example"});
  CHECK(bad.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(absl::StrContains(bad.status().message(), "dkim-key-file"));
  CHECK(DkimSigner::Create({.private_key_pem = keys.private_pem, .selector = "", .domain = "shop.example"})
            .status()
            .code() == absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace ecrm::broadcast

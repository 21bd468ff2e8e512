// Reading built or received mail back in tests (broadcast's and the loop's): headers (unfolded), quoted-printable and
// RFC 2047 decoding, and the parts of a multipart body.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"

namespace ecrm::testing {

struct ParsedMail {
  // Lower-case name -> values, in order, unfolded (CRLF + WSP removed).
  std::multimap<std::string, std::string> headers;
  std::vector<std::string> header_names;  // as written, in order
  std::string body;
  std::string Header(const std::string& lower_name) const {
    auto it = headers.find(lower_name);
    return it == headers.end() ? std::string() : it->second;
  }
  size_t Count(const std::string& lower_name) const { return headers.count(lower_name); }
};

inline ParsedMail ParseMail(absl::string_view mail) {
  ParsedMail out;
  size_t split = mail.find("\r\n\r\n");
  absl::string_view head = mail.substr(0, split == absl::string_view::npos ? mail.size() : split);
  out.body = split == absl::string_view::npos ? "" : std::string(mail.substr(split + 4));
  std::string name, value;
  auto flush = [&] {
    if (!name.empty()) {
      out.header_names.push_back(name);
      out.headers.emplace(absl::AsciiStrToLower(name), std::string(absl::StripAsciiWhitespace(value)));
    }
    name.clear();
    value.clear();
  };
  for (absl::string_view line : absl::StrSplit(head, "\r\n")) {
    if (!line.empty() && (line[0] == ' ' || line[0] == '\t')) {
      value.append(line.data(), line.size());
      continue;
    }
    flush();
    size_t colon = line.find(':');
    name = std::string(line.substr(0, colon));
    value = colon == absl::string_view::npos ? "" : std::string(line.substr(colon + 1));
  }
  flush();
  return out;
}

// The value of a header of a received mail (unfolded), or "".
inline std::string MailHeader(absl::string_view mail, absl::string_view name) {
  return ParseMail(mail).Header(absl::AsciiStrToLower(name));
}

// Quoted-printable undone: soft line breaks dropped, =XX decoded; an "=" that starts neither is
// kept (so a whole mail can be decoded to find its links, headers and all).
inline std::string DecodeQuotedPrintable(absl::string_view qp) {
  std::string out;
  for (size_t i = 0; i < qp.size(); ++i) {
    if (qp[i] != '=') {
      out.push_back(qp[i]);
    } else if (i + 2 < qp.size() && qp[i + 1] == '\r' && qp[i + 2] == '\n') {
      i += 2;  // soft line break
    } else if (i + 2 < qp.size() && absl::ascii_isxdigit(static_cast<unsigned char>(qp[i + 1])) &&
               absl::ascii_isxdigit(static_cast<unsigned char>(qp[i + 2]))) {
      out += absl::HexStringToBytes(absl::AsciiStrToLower(qp.substr(i + 1, 2)));
      i += 2;
    } else {
      out.push_back(qp[i]);
    }
  }
  return out;
}

// Decodes a header value made of "=?UTF-8?B?...?=" words (folding already removed); plain
// text is returned as is.
inline std::string DecodeEncodedWords(absl::string_view value) {
  if (!absl::StartsWith(value, "=?")) return std::string(value);
  std::string out;
  for (absl::string_view word : absl::StrSplit(value, ' ', absl::SkipEmpty())) {
    absl::string_view w = absl::StripAsciiWhitespace(word);
    if (!absl::StartsWith(w, "=?UTF-8?B?") || !absl::EndsWith(w, "?=")) return "<not an encoded word>";
    std::string decoded;
    absl::Base64Unescape(w.substr(10, w.size() - 12), &decoded);
    out += decoded;
  }
  return out;
}

// The parts of a multipart body with the given boundary, each parsed as a mail.
inline std::vector<ParsedMail> Parts(absl::string_view body, absl::string_view boundary) {
  std::vector<ParsedMail> out;
  std::string delimiter = absl::StrCat("--", boundary);
  std::vector<absl::string_view> chunks = absl::StrSplit(body, delimiter);
  for (size_t i = 1; i < chunks.size(); ++i) {
    absl::string_view c = chunks[i];
    if (absl::StartsWith(c, "--")) break;
    if (absl::StartsWith(c, "\r\n")) c.remove_prefix(2);
    if (absl::EndsWith(c, "\r\n")) c.remove_suffix(2);
    out.push_back(ParseMail(c));
  }
  return out;
}

}  // namespace ecrm::testing

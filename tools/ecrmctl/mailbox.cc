#include "mailbox.h"

#include <filesystem>
#include <fstream>
#include <sstream>
#include <system_error>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"

namespace ecrm::ctl {
namespace {

int HexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

// The multipart boundary of the message's Content-Type (RFC 2046 §5.1.1); "" when none.
std::string Boundary(absl::string_view message) {
  const std::string lower = absl::AsciiStrToLower(message.substr(0, message.find("\n\n")));
  size_t at = lower.find("boundary=");
  if (at == std::string::npos) return "";
  at += 9;
  const bool quoted = at < message.size() && message[at] == '"';
  if (quoted) ++at;
  const size_t end = message.find_first_of(quoted ? "\"" : "; \r\n", at);
  return std::string(message.substr(at, end == absl::string_view::npos ? absl::string_view::npos : end - at));
}

// The HTML part of a MIME message, decoded; "" when it has none.
std::string HtmlPart(absl::string_view message) {
  const size_t type = absl::AsciiStrToLower(message).find("content-type: text/html");
  if (type == absl::string_view::npos) return "";
  absl::string_view rest = message.substr(type);
  size_t body = rest.find("\r\n\r\n");
  size_t skip = 4;
  if (const size_t lf = rest.find("\n\n"); lf < body) body = lf, skip = 2;
  if (body == absl::string_view::npos) return "";
  const std::string headers = absl::AsciiStrToLower(rest.substr(0, body));
  absl::string_view html = rest.substr(body + skip);
  // The part ends at the multipart boundary's next delimiter line (a line of the body may well
  // start with "--": a quoted-printable break before a signature's dashes).
  if (const std::string boundary = Boundary(message); !boundary.empty()) {
    if (const size_t end = html.find(absl::StrCat("\n--", boundary)); end != absl::string_view::npos) {
      html = html.substr(0, end);
    }
  }
  return absl::StrContains(headers, "quoted-printable") ? DecodeQuotedPrintable(html) : std::string(html);
}

// The values of every `attribute="…"` in html, entity `&amp;` undone (what a mail client follows).
std::vector<std::string> Attributes(absl::string_view html, absl::string_view attribute) {
  std::vector<std::string> values;
  const std::string open = absl::StrCat(attribute, "=\"");
  for (size_t at = html.find(open); at != absl::string_view::npos; at = html.find(open, at)) {
    at += open.size();
    const size_t end = html.find('"', at);
    if (end == absl::string_view::npos) break;
    values.push_back(absl::StrReplaceAll(html.substr(at, end - at), {{"&amp;", "&"}}));
    at = end;
  }
  return values;
}

// The `d=` parameter of a tracking URL.
std::string DeliveryOf(absl::string_view url) {
  const size_t query = url.find('?');
  if (query == absl::string_view::npos) return "";
  for (absl::string_view param : absl::StrSplit(url.substr(query + 1), '&')) {
    if (absl::ConsumePrefix(&param, "d=")) return std::string(param);
  }
  return "";
}

}  // namespace

std::string DecodeQuotedPrintable(absl::string_view in) {
  std::string out;
  out.reserve(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] != '=') {
      out += in[i];
    } else if (i + 1 < in.size() && in[i + 1] == '\n') {
      i += 1;  // soft line break
    } else if (i + 2 < in.size() && in[i + 1] == '\r' && in[i + 2] == '\n') {
      i += 2;
    } else if (i + 2 < in.size() && HexDigit(in[i + 1]) >= 0 && HexDigit(in[i + 2]) >= 0) {
      out += static_cast<char>(HexDigit(in[i + 1]) * 16 + HexDigit(in[i + 2]));
      i += 2;
    } else {
      out += in[i];  // not an escape: kept, as RFC 2045 asks of a robust decoder
    }
  }
  return out;
}

std::string LinksOfMessage(absl::string_view message, absl::string_view base_url, TrackingLinks* links) {
  const std::string html = HtmlPart(message);
  const std::string open_prefix = absl::StrCat(base_url, "/o?"), click_prefix = absl::StrCat(base_url, "/c?");
  std::string delivery;
  for (std::string& src : Attributes(html, "src")) {
    if (absl::StartsWith(src, open_prefix)) {
      delivery = DeliveryOf(src);
      links->open = std::move(src);
    }
  }
  for (std::string& href : Attributes(html, "href")) {
    if (absl::StartsWith(href, click_prefix)) {
      if (delivery.empty()) delivery = DeliveryOf(href);
      links->clicks.push_back(std::move(href));
    }
  }
  return delivery;
}

absl::StatusOr<std::map<std::string, TrackingLinks>> ReadMailbox(const std::string& dir, absl::string_view base_url,
                                                                 const std::set<std::string>& deliveries) {
  std::map<std::string, TrackingLinks> found;
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator(dir, error)) {
    if (entry.path().extension() != ".eml") continue;
    std::ifstream file(entry.path(), std::ios::binary);
    std::stringstream text;
    text << file.rdbuf();
    TrackingLinks links;
    const std::string delivery = LinksOfMessage(text.str(), base_url, &links);
    if (deliveries.count(delivery) > 0) found[delivery] = std::move(links);
  }
  if (error) return absl::NotFoundError(absl::StrCat("mail directory ", dir, ": ", error.message()));
  return found;
}

}  // namespace ecrm::ctl

#include "tracking_links.h"

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/strip.h"
#include "channels/signing.h"

namespace ecrm::broadcast {
namespace {

constexpr size_t kMaxTrackedUrl = 2048;
constexpr size_t kSignatureBytes = 32;

absl::string_view KindName(LinkKind kind) {
  switch (kind) {
    case LinkKind::kOpen:
      return "open";
    case LinkKind::kClick:
      return "click";
    case LinkKind::kUnsubscribe:
      return "unsubscribe";
  }
  return "";
}

bool IsHttpUrl(absl::string_view url) {
  return absl::StartsWithIgnoreCase(url, "http://") || absl::StartsWithIgnoreCase(url, "https://");
}

// The position just past the last "</body" (any case), or npos.
size_t FindBodyEnd(absl::string_view html) {
  for (size_t i = html.size(); i >= 6; --i) {
    if (absl::EqualsIgnoreCase(html.substr(i - 6, 6), "</body")) return i - 6;
  }
  return absl::string_view::npos;
}

}  // namespace

std::string UrlEncode(absl::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    if (absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.' || c == '_' || c == '~') {
      out.push_back(c);
    } else {
      absl::StrAppend(&out, "%", absl::AsciiStrToUpper(absl::BytesToHexString(absl::string_view(&c, 1))));
    }
  }
  return out;
}

absl::StatusOr<TrackingLinks> TrackingLinks::Create(absl::string_view base_url, std::string secret) {
  absl::string_view base = base_url;
  while (absl::ConsumeSuffix(&base, "/")) {
  }
  if (!IsHttpUrl(base) || base.size() <= 8 || base.size() > 512) {
    return absl::InvalidArgumentError(
        absl::StrCat("public-base-url: \"", base_url, "\" is not an http:// or https:// URL of at most 512 bytes"));
  }
  for (char c : base) {
    if (static_cast<unsigned char>(c) <= 0x20 || static_cast<unsigned char>(c) >= 0x7f || c == '"' || c == '\'' ||
        c == '<' || c == '>' || c == '?' || c == '#') {
      return absl::InvalidArgumentError(
          absl::StrCat("public-base-url: \"", base_url, "\" holds a space, a quote, a bracket, ? or # or non-ASCII"));
    }
  }
  if (secret.size() < 16) {
    return absl::InvalidArgumentError(
        "ECRM_TRACKING_SECRET: must be set to at least 16 bytes (it signs the open, click and unsubscribe links)");
  }
  return TrackingLinks(std::string(base), std::move(secret));
}

std::string TrackingLinks::Sign(LinkKind kind, absl::string_view delivery_id, absl::string_view url) const {
  return absl::WebSafeBase64Escape(
      HmacSha256(secret_, absl::StrCat("ecrm-link-v1\n", KindName(kind), "\n", delivery_id, "\n", url)));
}

bool TrackingLinks::Verify(LinkKind kind, absl::string_view delivery_id, absl::string_view url,
                           absl::string_view signature) const {
  std::string given;
  if (signature.size() > 64 || !absl::WebSafeBase64Unescape(signature, &given) || given.size() != kSignatureBytes) {
    return false;
  }
  return ConstantTimeEquals(
      given, HmacSha256(secret_, absl::StrCat("ecrm-link-v1\n", KindName(kind), "\n", delivery_id, "\n", url)));
}

std::string TrackingLinks::OpenUrl(absl::string_view delivery_id) const {
  return absl::StrCat(base_url_, kOpenPath, "?d=", UrlEncode(delivery_id), "&s=", Sign(LinkKind::kOpen, delivery_id));
}

std::string TrackingLinks::ClickUrl(absl::string_view delivery_id, absl::string_view url) const {
  return absl::StrCat(base_url_, kClickPath, "?d=", UrlEncode(delivery_id), "&u=", UrlEncode(url),
                      "&s=", Sign(LinkKind::kClick, delivery_id, url));
}

std::string TrackingLinks::UnsubscribeUrl(absl::string_view delivery_id) const {
  return absl::StrCat(base_url_, kUnsubscribePath, "?d=", UrlEncode(delivery_id),
                      "&s=", Sign(LinkKind::kUnsubscribe, delivery_id));
}

std::string TrackingLinks::Track(absl::string_view delivery_id, absl::string_view html) const {
  if (html.empty()) return "";
  // Links to the engine's own endpoints (an unsubscribe link in the body) stay as they are.
  std::string out = RewriteLinks(html, [&](absl::string_view url) {
    return absl::StartsWith(url, absl::StrCat(base_url_, "/")) ? std::string(url) : ClickUrl(delivery_id, url);
  });
  const std::string pixel = absl::StrCat("<img src=\"", absl::StrReplaceAll(OpenUrl(delivery_id), {{"&", "&amp;"}}),
                                         "\" width=\"1\" height=\"1\" alt=\"\" style=\"display:block;border:0\">");
  const size_t end = FindBodyEnd(out);
  if (end == absl::string_view::npos) {
    out += pixel;
  } else {
    out.insert(end, pixel);
  }
  return out;
}

std::string RewriteLinks(absl::string_view html, const std::function<std::string(absl::string_view url)>& rewrite) {
  std::string out;
  out.reserve(html.size() + html.size() / 4);
  size_t copied = 0;
  size_t i = 0;
  while (i + 4 <= html.size()) {
    // "href" as an attribute name: preceded by white space, followed by optional spaces and "=".
    if (!absl::EqualsIgnoreCase(html.substr(i, 4), "href") || i == 0 ||
        !absl::ascii_isspace(static_cast<unsigned char>(html[i - 1]))) {
      ++i;
      continue;
    }
    size_t j = i + 4;
    while (j < html.size() && absl::ascii_isspace(static_cast<unsigned char>(html[j]))) ++j;
    if (j >= html.size() || html[j] != '=') {
      i = j;
      continue;
    }
    ++j;
    while (j < html.size() && absl::ascii_isspace(static_cast<unsigned char>(html[j]))) ++j;
    if (j >= html.size() || (html[j] != '"' && html[j] != '\'')) {
      i = j;
      continue;
    }
    const char quote = html[j];
    const size_t value_begin = j + 1;
    const size_t value_end = html.find(quote, value_begin);
    if (value_end == absl::string_view::npos) break;
    absl::string_view value = html.substr(value_begin, value_end - value_begin);
    const std::string url = absl::StrReplaceAll(absl::StripAsciiWhitespace(value), {{"&amp;", "&"}, {"&#38;", "&"}});
    if (IsHttpUrl(url) && url.size() <= kMaxTrackedUrl) {
      absl::StrAppend(&out, html.substr(copied, value_begin - copied));
      out += absl::StrReplaceAll(rewrite(url), {{"&", "&amp;"}, {"\"", "&quot;"}, {"'", "&#39;"}});
      copied = value_end;
    }
    i = value_end + 1;
  }
  absl::StrAppend(&out, html.substr(copied));
  return out;
}

}  // namespace ecrm::broadcast

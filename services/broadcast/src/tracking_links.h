// The links a message carries back to the engine's HTTP endpoints (http_server.h): the open
// pixel, click redirects and the one-click unsubscribe URL (RFC 8058), each signed with
// HMAC-SHA256 under a secret from the environment, so that nobody can forge an unsubscribe, count
// an open for another delivery or turn the click endpoint into an open redirect. Pure: no I/O.
//
//   <base>/o?d=<delivery id>&s=<sig>                    sig over ("open", delivery id)
//   <base>/c?d=<delivery id>&u=<url>&s=<sig>            sig over ("click", delivery id, url)
//   <base>/u?d=<delivery id>&s=<sig>                    sig over ("unsubscribe", delivery id)
//
// A signature is the unpadded base64url of HMAC-SHA256(secret, "ecrm-link-v1\n<kind>\n<delivery
// id>\n<url>"): the kind is inside, so an open pixel's signature never unsubscribes.
#pragma once

#include <functional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace ecrm::broadcast {

enum class LinkKind { kOpen, kClick, kUnsubscribe };

// The endpoints' paths under the public base URL.
inline constexpr absl::string_view kOpenPath = "/o";
inline constexpr absl::string_view kClickPath = "/c";
inline constexpr absl::string_view kUnsubscribePath = "/u";

class TrackingLinks {
 public:
  // `base_url`: where the engine's HTTP server is reached from outside (https://t.example.com, no
  // trailing slash needed); `secret`: at least 16 bytes. INVALID_ARGUMENT naming the problem.
  static absl::StatusOr<TrackingLinks> Create(absl::string_view base_url, std::string secret);

  std::string OpenUrl(absl::string_view delivery_id) const;
  std::string ClickUrl(absl::string_view delivery_id, absl::string_view url) const;
  std::string UnsubscribeUrl(absl::string_view delivery_id) const;

  // Whether `signature` is the link's (`url` only for clicks), compared in constant time.
  bool Verify(LinkKind kind, absl::string_view delivery_id, absl::string_view url, absl::string_view signature) const;
  std::string Sign(LinkKind kind, absl::string_view delivery_id, absl::string_view url = "") const;

  // The HTML body with every http(s) link (href="http…" or href='http…') turned into its click
  // URL (except links under the base URL itself, such as an unsubscribe link in the body) and
  // the open pixel added before </body> (at the end when there is none). Empty stays empty.
  std::string Track(absl::string_view delivery_id, absl::string_view html) const;

  const std::string& base_url() const { return base_url_; }

 private:
  TrackingLinks(std::string base_url, std::string secret)
      : base_url_(std::move(base_url)), secret_(std::move(secret)) {}
  std::string base_url_;
  std::string secret_;
};

// Rewrites the value of every href attribute whose value starts with http:// or https:// (any
// case), quoted with " or ': `rewrite` gets the URL with HTML's &amp; decoded and returns the new
// URL, which is written back with & as &amp;. Values over 2,048 bytes are left alone.
std::string RewriteLinks(absl::string_view html, const std::function<std::string(absl::string_view url)>& rewrite);

// Percent-encodes everything but RFC 3986's unreserved characters.
std::string UrlEncode(absl::string_view s);

}  // namespace ecrm::broadcast

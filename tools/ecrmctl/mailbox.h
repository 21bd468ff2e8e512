// The demo's customers reading their mail: the tracking links of the messages a broadcast sent,
// found in the local SMTP server's mailbox (tests/support/smtp_server.py stores each message as
// msg-NNNNN.eml). Plain text in, plain data out: unit-tested without a server.
#pragma once

#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace ecrm::ctl {

struct TrackingLinks {
  std::string open;                 // the open pixel's URL
  std::vector<std::string> clicks;  // the tracked links, in the order of the HTML body
};

// A quoted-printable body decoded (RFC 2045 §6.7: soft line breaks dropped, =XX decoded).
std::string DecodeQuotedPrintable(absl::string_view in);

// The tracking links of one message, from its HTML part (`<img src>` of the open path, `<a href>`
// of the click path, under `base_url`); the delivery id they carry (`d=`), or "" when none.
std::string LinksOfMessage(absl::string_view message, absl::string_view base_url, TrackingLinks* links);

// The tracking links of every message in `dir` whose delivery id is one of `deliveries`.
absl::StatusOr<std::map<std::string, TrackingLinks>> ReadMailbox(const std::string& dir, absl::string_view base_url,
                                                                 const std::set<std::string>& deliveries);

}  // namespace ecrm::ctl

// The one place that turns the --channels configuration into Channel objects, so that wiring a
// new channel (SMTP, webhook providers, the file channel: services/broadcast/src/channels/) is
// a change here and nowhere else. The web inbox is not a Channel: its messages are rows of our
// own database, written by the outbox.
#pragma once

#include <map>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "channel.h"

namespace ecrm::broadcast {

struct BuiltChannels {
  std::vector<std::unique_ptr<Channel>> owned;
  std::map<common::v1::Channel, Channel*> by_channel;
};

// `spec`: comma-separated <channel>=<kind>[:<argument>] entries, e.g. "email=smtp:…,sms=webhook:…";
// empty: no channel besides the web inbox. INVALID_ARGUMENT naming an entry that is malformed or
// whose kind this build does not have.
absl::StatusOr<BuiltChannels> BuildChannels(absl::string_view spec);

}  // namespace ecrm::broadcast

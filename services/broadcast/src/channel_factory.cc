#include "channel_factory.h"

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace ecrm::broadcast {

absl::StatusOr<BuiltChannels> BuildChannels(absl::string_view spec) {
  BuiltChannels out;
  for (absl::string_view entry : absl::StrSplit(spec, ',', absl::SkipWhitespace())) {
    std::pair<absl::string_view, absl::string_view> kv = absl::StrSplit(entry, absl::MaxSplits('=', 1));
    common::v1::Channel channel;
    if (!common::v1::Channel_Parse(absl::StrCat("CHANNEL_", absl::AsciiStrToUpper(kv.first)), &channel) ||
        channel == common::v1::CHANNEL_UNSPECIFIED || channel == common::v1::CHANNEL_WEB) {
      return absl::InvalidArgumentError(
          absl::StrCat("--channels: \"", entry, "\" does not name email, sms or push (the web inbox is built in)"));
    }
    std::pair<absl::string_view, absl::string_view> kind = absl::StrSplit(kv.second, absl::MaxSplits(':', 1));
    // The channel implementations (smtp, webhook, file) are wired here as they land.
    return absl::InvalidArgumentError(
        absl::StrCat("--channels: channel kind \"", kind.first, "\" is not built into this engine yet"));
  }
  return out;
}

}  // namespace ecrm::broadcast

#include "channels/file_channel.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace ecrm::broadcast {
namespace {

std::string LowerSuffix(const std::string& enum_name) {
  size_t underscore = enum_name.find('_');
  return absl::AsciiStrToLower(underscore == std::string::npos ? enum_name : enum_name.substr(underscore + 1));
}

}  // namespace

absl::StatusOr<std::unique_ptr<FileChannel>> FileChannel::Open(const std::string& path,
                                                               std::function<absl::Time()> now) {
  if (path.empty()) return absl::InvalidArgumentError("file-channel-path: empty");
  int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
  if (fd < 0) {
    return absl::InvalidArgumentError(absl::StrCat("file-channel-path ", path, ": ", std::strerror(errno)));
  }
  return std::unique_ptr<FileChannel>(new FileChannel(path, fd, std::move(now)));
}

FileChannel::~FileChannel() { ::close(fd_); }

std::string FileChannel::Line(const OutgoingMessage& m, absl::Time written_at) {
  nlohmann::json j = {{"delivery_id", m.delivery_id},
                      {"customer_id", m.customer_id},
                      {"campaign_id", m.campaign_id},
                      {"channel", LowerSuffix(common::v1::Channel_Name(m.channel))},
                      {"purpose", LowerSuffix(common::v1::Purpose_Name(m.purpose))},
                      {"address", m.address},
                      {"subject", m.subject},
                      {"text_body", m.text_body},
                      {"html_body", m.html_body},
                      {"unsubscribe_url", m.unsubscribe_url},
                      {"written_at", absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", written_at, absl::UTCTimeZone())}};
  // Invalid UTF-8 in content is replaced (U+FFFD) rather than failing the message.
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::vector<SendResult> FileChannel::Send(absl::Span<const OutgoingMessage> messages) {
  std::vector<SendResult> results(messages.size());
  if (messages.empty()) return results;
  const absl::Time now = now_();
  std::string lines;
  for (const OutgoingMessage& m : messages) absl::StrAppend(&lines, Line(m, now), "\n");

  std::lock_guard<std::mutex> lock(mu_);
  std::string error;
  size_t written = 0;
  while (written < lines.size()) {
    ssize_t n = ::write(fd_, lines.data() + written, lines.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      error = absl::StrCat("file channel: write ", path_, ": ", std::strerror(errno));
      break;
    }
    written += static_cast<size_t>(n);
  }
  if (error.empty() && ::fsync(fd_) != 0) {
    error = absl::StrCat("file channel: fsync ", path_, ": ", std::strerror(errno));
  }
  for (SendResult& r : results) {
    if (error.empty()) {
      r.outcome = SendOutcome::kAccepted;
    } else {
      r.outcome = SendOutcome::kTemporaryFailure;
      r.error = error;
    }
  }
  return results;
}

}  // namespace ecrm::broadcast

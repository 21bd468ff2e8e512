// The development channel: every message becomes one JSON line appended to a file, and the file
// is fsync'ed once per batch before Send returns, so "accepted" means on disk.
#pragma once

#include <functional>
#include <memory>
#include <mutex>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "channel.h"

namespace ecrm::broadcast {

class FileChannel : public Channel {
 public:
  // Opens (creating, mode 0640) `path` for appending; INVALID_ARGUMENT naming the path and the
  // system's reason when it cannot.
  static absl::StatusOr<std::unique_ptr<FileChannel>> Open(
      const std::string& path, std::function<absl::Time()> now = [] { return absl::Now(); });
  ~FileChannel() override;

  // One line per message: {"delivery_id", "customer_id", "campaign_id", "channel", "purpose",
  // "address", "subject", "text_body", "html_body", "unsubscribe_url", "written_at"}. A failed
  // write or fsync makes the whole batch a temporary failure.
  std::vector<SendResult> Send(absl::Span<const OutgoingMessage> messages) override;

  // The JSON line (without the newline) a message becomes.
  static std::string Line(const OutgoingMessage& message, absl::Time written_at);

 private:
  FileChannel(std::string path, int fd, std::function<absl::Time()> now)
      : path_(std::move(path)), fd_(fd), now_(std::move(now)) {}
  const std::string path_;
  const int fd_;
  const std::function<absl::Time()> now_;
  std::mutex mu_;  // one batch's lines stay together
};

}  // namespace ecrm::broadcast

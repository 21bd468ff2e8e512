// A Redis client over hiredis: a pool of blocking connections (each used by one thread at a
// time, never shared), a per-command timeout, reconnection after any error, and a circuit
// breaker that turns an outage into fast UNAVAILABLE errors instead of a timeout per call.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace ecrm::cache {

struct RedisOptions {
  std::string host = "127.0.0.1";
  int port = 6379;
  int db = 0;
  int pool_size = 8;
  absl::Duration connect_timeout = absl::Milliseconds(200);
  absl::Duration command_timeout = absl::Milliseconds(100);
  int breaker_failures = 3;                            // consecutive failures that open the breaker
  absl::Duration breaker_open_for = absl::Seconds(1);  // then one probe is let through
};

// Parses redis://host:port[/db]. Returns INVALID_ARGUMENT naming what is wrong.
absl::StatusOr<RedisOptions> ParseRedisUrl(absl::string_view url);

// A reply reduced to what callers need.
struct RedisReply {
  enum class Type { kNil, kString, kInteger, kArray, kStatus, kError };
  Type type = Type::kNil;
  std::string str;
  int64_t integer = 0;
  std::vector<RedisReply> elements;
};

class NearCache;

enum class BreakerState { kClosed = 0, kOpen = 1, kHalfOpen = 2 };

class RedisClient {
 public:
  explicit RedisClient(RedisOptions options);
  ~RedisClient();
  RedisClient(const RedisClient&) = delete;
  RedisClient& operator=(const RedisClient&) = delete;

  // One command. UNAVAILABLE on connection errors, timeouts or an open breaker;
  // an error reply from Redis is returned as a reply of type kError.
  absl::StatusOr<RedisReply> Command(std::vector<std::string> args);
  // Several commands sent in one round trip; replies in order.
  absl::StatusOr<std::vector<RedisReply>> Pipeline(const std::vector<std::vector<std::string>>& commands);

  // Every connection turns on key tracking redirected to `near`'s listener before its next
  // command (see near_cache.h); nullptr turns that off for later connections. Not thread-safe
  // against calls in flight: set before use and clear after.
  void TrackKeysFor(const NearCache* near) { tracking_.store(near); }
  // True once Redis refused CLIENT TRACKING (older than 6.0): local copies must not be used.
  bool tracking_refused() const { return tracking_refused_.load(); }

  BreakerState breaker_state() const;
  const RedisOptions& options() const { return options_; }

 private:
  struct Conn;
  std::unique_ptr<Conn> Take();
  void Give(std::unique_ptr<Conn> conn);
  absl::Status Admit();  // breaker check
  void RecordSuccess();
  void RecordFailure();
  absl::StatusOr<std::vector<RedisReply>> Run(const std::vector<std::vector<std::string>>& commands);

  RedisOptions options_;
  std::mutex mu_;
  std::vector<std::unique_ptr<Conn>> idle_;
  std::atomic<int> failures_{0};
  std::atomic<int> state_{static_cast<int>(BreakerState::kClosed)};
  std::atomic<int64_t> open_until_ns_{0};
  std::atomic<bool> probe_in_flight_{false};
  std::atomic<const NearCache*> tracking_{nullptr};
  std::atomic<bool> tracking_refused_{false};
};

}  // namespace ecrm::cache

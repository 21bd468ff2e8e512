// The shared cache of hot customer profiles (DESIGN §2).
//
// Values are opaque bytes (a serialized ecrm.infostore.v1.Customer) stored with the customer's
// version. A write stores only if it is newer than what the cache holds (compare-and-set in a
// Lua script), so a slow writer never overwrites a fresher profile. Erasing leaves a tombstone
// at a version so an older fill cannot bring the profile back.
//
// Any Redis failure is a miss for readers and a skipped write for writers: the cache changes
// latency, never answers. Keys carry a cache epoch; a writer that failed to write during an
// outage bumps the epoch when Redis is back, which orphans every key written before, so no
// profile that went stale during the outage is ever served. Readers in other processes learn
// the new epoch within `epoch_refresh`.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "ecrm/cache/near_cache.h"
#include "ecrm/cache/redis_client.h"

namespace prometheus {
class Registry;
class Counter;
class Gauge;
}  // namespace prometheus

namespace ecrm::cache {

// One compare-and-set write: the profile at `version`, or a tombstone at `version`.
struct ProfileWrite {
  std::string id;
  int64_t version = 0;
  std::string data;
  bool tombstone = false;
};

class ProfileCache {
 public:
  virtual ~ProfileCache() = default;
  // nullopt on a miss, a tombstone or any error.
  virtual std::optional<CachedProfile> Get(absl::string_view id) = 0;
  // One round trip for all ids; the result is parallel to ids.
  virtual std::vector<std::optional<CachedProfile>> MultiGet(absl::Span<const std::string> ids) = 0;
  // One round trip for all writes; each stores unless the cache holds this or a newer version.
  // Returns how many were stored.
  virtual size_t Write(absl::Span<const ProfileWrite> writes) = 0;
  // Stores unless the cache holds this or a newer version. True when stored.
  bool Put(absl::string_view id, int64_t version, absl::string_view data) {
    return Write({{ProfileWrite{std::string(id), version, std::string(data), false}}}) == 1;
  }
  // Leaves a tombstone at `version`: the profile is gone and older fills are refused.
  bool Invalidate(absl::string_view id, int64_t version) {
    return Write({{ProfileWrite{std::string(id), version, "", true}}}) == 1;
  }
};

// Counters and gauges of a cache, registered once at construction.
struct CacheMetrics {
  explicit CacheMetrics(prometheus::Registry& registry);
  prometheus::Counter& hits;
  prometheus::Counter& local_hits;
  prometheus::Counter& misses;
  prometheus::Counter& errors;
  prometheus::Counter& writes_stored;
  prometheus::Counter& writes_refused;
  prometheus::Counter& epoch_bumps;
  prometheus::Gauge& breaker_state;
};

struct ProfileCacheOptions {
  std::string prefix = "ecrm:profile";
  absl::Duration ttl = absl::Hours(24);
  absl::Duration epoch_refresh = absl::Seconds(1);
  // Hot profiles this process keeps its own copies of, invalidated by Redis (near_cache.h);
  // 0: every read goes to Redis.
  size_t local_copies = 0;
};

class RedisProfileCache final : public ProfileCache {
 public:
  RedisProfileCache(RedisClient& redis, CacheMetrics& metrics, ProfileCacheOptions options = {});
  ~RedisProfileCache() override;

  std::optional<CachedProfile> Get(absl::string_view id) override;
  std::vector<std::optional<CachedProfile>> MultiGet(absl::Span<const std::string> ids) override;
  size_t Write(absl::Span<const ProfileWrite> writes) override;

  int64_t epoch() const { return epoch_.load(); }
  // True while reads may be answered from this process's copies.
  bool local_copies_on() { return Near() != nullptr && near_->redirect_id() != 0; }

 private:
  bool EnsureEpoch();  // false while Redis is unreachable
  NearCache* Near();   // null when local copies are off or Redis cannot track keys
  std::string Key(absl::string_view id) const;
  absl::StatusOr<std::string> ScriptSha(bool reload);
  void Failed(bool write);
  void UpdateBreakerGauge();

  RedisClient& redis_;
  CacheMetrics& metrics_;
  ProfileCacheOptions options_;
  std::atomic<int64_t> epoch_{0};
  std::atomic<int64_t> epoch_checked_ns_{0};
  std::atomic<bool> resync_{true};
  std::atomic<bool> dirty_{false};
  std::mutex script_mu_;
  std::string script_sha_;  // SHA of the loaded CAS script
  std::unique_ptr<NearCache> near_;
};

// In-memory cache with the same semantics, for unit tests. set_available(false) simulates an
// outage (every call misses or fails).
class InMemoryProfileCache final : public ProfileCache {
 public:
  std::optional<CachedProfile> Get(absl::string_view id) override;
  std::vector<std::optional<CachedProfile>> MultiGet(absl::Span<const std::string> ids) override;
  size_t Write(absl::Span<const ProfileWrite> writes) override;

  void set_available(bool available) { available_ = available; }
  void Clear();

 private:
  struct Entry {
    int64_t version;
    std::optional<std::string> data;
  };
  std::mutex mu_;
  std::map<std::string, Entry, std::less<>> entries_;
  std::atomic<bool> available_{true};
};

}  // namespace ecrm::cache

// This process's own copies of hot cached profiles, kept coherent by Redis itself
// (server-assisted client-side caching: CLIENT TRACKING … REDIRECT, RESP2 invalidation channel).
//
// A listener thread holds one more Redis connection, subscribed to `__redis__:invalidate`; every
// data connection of the RedisClient turns tracking on, redirected to it, so Redis remembers
// which keys this process has read and announces each change (write, expiry, eviction, flush)
// of those keys on that connection. A copy is dropped as soon as its announcement arrives.
//
// A copy is only ever stored by a read that nothing was invalidated during (Ticket/Insert), so a
// change that races a read can never leave an old copy behind. While the listener is not
// subscribed (Redis down, reconnecting) there are no copies at all. Writes of this process drop
// their keys before and after the write, so a client reads its own writes; a change made by
// another process is seen once Redis's announcement arrives (sub-millisecond on one network).
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>

#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "ecrm/cache/redis_client.h"

namespace ecrm::cache {

// A cached profile: the serialized ecrm.infostore.v1.Customer at its version.
struct CachedProfile {
  int64_t version = 0;
  std::string data;
};

class NearCache {
 public:
  // Starts the listener; max_entries bounds the copies (an arbitrary one makes room).
  NearCache(RedisOptions redis, size_t max_entries);
  ~NearCache();
  NearCache(const NearCache&) = delete;
  NearCache& operator=(const NearCache&) = delete;

  // The client id to redirect tracking to; 0 while the listener is not subscribed.
  int64_t redirect_id() const { return redirect_id_.load(); }

  // Taken before a Redis read whose result may be stored; Insert stores only if nothing was
  // invalidated since (and the listener is subscribed).
  uint64_t Ticket() const { return invalidations_.load(); }
  void Insert(uint64_t ticket, const std::string& key, const CachedProfile& profile);
  std::optional<CachedProfile> Find(const std::string& key) const;
  // Drops copies (this process is about to change, or has changed, these keys).
  void Erase(absl::Span<const std::string> keys);
  void Clear();
  size_t size() const;

 private:
  void Listen();
  void Invalidated(absl::Span<const std::string> keys, bool all);

  RedisOptions redis_;
  const size_t max_entries_;
  mutable std::mutex mu_;
  std::unordered_map<std::string, CachedProfile> copies_;
  std::atomic<uint64_t> invalidations_{0};
  std::atomic<int64_t> redirect_id_{0};
  std::mutex stop_mu_;
  std::condition_variable stop_cv_;
  bool stopping_ = false;
  std::thread listener_;
};

}  // namespace ecrm::cache

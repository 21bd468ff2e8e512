#include "ecrm/cache/near_cache.h"

#include <hiredis/hiredis.h>
#include <poll.h>
#include <pthread.h>

#include "absl/strings/str_cat.h"
#include "ecrm/log/log.h"

namespace ecrm::cache {
namespace {

constexpr absl::string_view kChannel = "__redis__:invalidate";

struct ContextDeleter {
  void operator()(redisContext* c) const { redisFree(c); }
};
using Context = std::unique_ptr<redisContext, ContextDeleter>;

struct ReplyDeleter {
  void operator()(redisReply* r) const { freeReplyObject(r); }
};
using Reply = std::unique_ptr<redisReply, ReplyDeleter>;

// Connects, selects nothing (invalidations are per server, not per database), learns its
// client id and subscribes. Returns the context and sets *id, or nullptr.
Context Subscribe(const RedisOptions& o, int64_t* id) {
  Context c(redisConnectWithTimeout(o.host.c_str(), o.port, absl::ToTimeval(o.connect_timeout)));
  if (c == nullptr || c->err) return nullptr;
  redisSetTimeout(c.get(), absl::ToTimeval(absl::Seconds(1)));
  Reply r(static_cast<redisReply*>(redisCommand(c.get(), "CLIENT ID")));
  if (r == nullptr || r->type != REDIS_REPLY_INTEGER) return nullptr;
  *id = r->integer;
  r.reset(static_cast<redisReply*>(redisCommand(c.get(), "SUBSCRIBE %b", kChannel.data(), kChannel.size())));
  if (r == nullptr || r->type != REDIS_REPLY_ARRAY) return nullptr;
  return c;
}

}  // namespace

NearCache::NearCache(RedisOptions redis, size_t max_entries) : redis_(std::move(redis)), max_entries_(max_entries) {
  listener_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "redis-invalid");
    Listen();
  });
}

NearCache::~NearCache() {
  {
    std::lock_guard lock(stop_mu_);
    stopping_ = true;
  }
  stop_cv_.notify_all();
  listener_.join();
}

void NearCache::Listen() {
  absl::Duration backoff = absl::Milliseconds(50);
  for (;;) {
    int64_t id = 0;
    Context c = Subscribe(redis_, &id);
    if (c != nullptr) {
      // Copies from before cannot be trusted: announcements may have been missed meanwhile. The
      // id goes first: a read that takes its ticket after the Clear has its connection's
      // tracking redirected here before it reads.
      redirect_id_.store(id);
      Clear();
      log::Info("profile cache: local copies on, invalidated by Redis", {{"client_id", id}});
      backoff = absl::Milliseconds(50);
      for (;;) {
        {
          std::lock_guard lock(stop_mu_);
          if (stopping_) break;
        }
        pollfd pfd{c->fd, POLLIN, 0};
        int ready = poll(&pfd, 1, 200);
        if (ready < 0 && errno != EINTR) break;
        if (ready <= 0) continue;
        if (redisBufferRead(c.get()) != REDIS_OK) break;
        bool failed = false;
        for (;;) {
          void* raw = nullptr;
          if (redisGetReplyFromReader(c.get(), &raw) != REDIS_OK) {
            failed = true;
            break;
          }
          if (raw == nullptr) break;
          Reply r(static_cast<redisReply*>(raw));
          // ["message", channel, [key, …]] — or a nil payload: everything (FLUSHALL, …).
          if (r->type != REDIS_REPLY_ARRAY || r->elements != 3 || r->element[0]->type != REDIS_REPLY_STRING ||
              absl::string_view(r->element[0]->str, r->element[0]->len) != "message") {
            continue;
          }
          const redisReply* payload = r->element[2];
          std::vector<std::string> keys;
          if (payload->type == REDIS_REPLY_ARRAY) {
            for (size_t i = 0; i < payload->elements; ++i) {
              keys.emplace_back(payload->element[i]->str, payload->element[i]->len);
            }
          } else if (payload->type == REDIS_REPLY_STRING) {
            keys.emplace_back(payload->str, payload->len);
          }
          Invalidated(keys, payload->type == REDIS_REPLY_NIL);
        }
        if (failed) break;
      }
      redirect_id_.store(0);
      Clear();
    }
    std::unique_lock lock(stop_mu_);
    if (stopping_) return;
    if (c != nullptr) log::Warn("profile cache: local copies off until Redis answers again");
    stop_cv_.wait_for(lock, absl::ToChronoNanoseconds(backoff), [&] { return stopping_; });
    if (stopping_) return;
    backoff = std::min(backoff * 2, absl::Seconds(2));
  }
}

void NearCache::Invalidated(absl::Span<const std::string> keys, bool all) {
  if (all) {
    Clear();
  } else {
    Erase(keys);
  }
}

void NearCache::Insert(uint64_t ticket, const std::string& key, const CachedProfile& profile) {
  std::lock_guard lock(mu_);
  // Checked under the lock that Erase/Clear bump it under: nothing invalidated since the read.
  if (redirect_id_.load() == 0 || invalidations_.load() != ticket) return;
  if (copies_.size() >= max_entries_ && !copies_.contains(key)) copies_.erase(copies_.begin());
  copies_[key] = profile;
}

std::optional<CachedProfile> NearCache::Find(const std::string& key) const {
  if (redirect_id_.load() == 0) return std::nullopt;
  std::lock_guard lock(mu_);
  auto it = copies_.find(key);
  if (it == copies_.end()) return std::nullopt;
  return it->second;
}

void NearCache::Erase(absl::Span<const std::string> keys) {
  std::lock_guard lock(mu_);
  invalidations_.fetch_add(1);
  for (const std::string& k : keys) copies_.erase(k);
}

void NearCache::Clear() {
  std::lock_guard lock(mu_);
  invalidations_.fetch_add(1);
  copies_.clear();
}

size_t NearCache::size() const {
  std::lock_guard lock(mu_);
  return copies_.size();
}

}  // namespace ecrm::cache

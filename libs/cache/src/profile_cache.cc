#include "ecrm/cache/profile_cache.h"

#include <algorithm>

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "ecrm/log/log.h"
#include "ecrm/status/macros.h"

namespace ecrm::cache {
namespace {

// KEYS[1] = key; ARGV = version, data, ttl ms, tombstone flag.
constexpr absl::string_view kCasScript = R"lua(
local cur = redis.call('HGET', KEYS[1], 'v')
if cur and tonumber(cur) >= tonumber(ARGV[1]) then return 0 end
if ARGV[4] == '1' then
  redis.call('HDEL', KEYS[1], 'd')
  redis.call('HSET', KEYS[1], 'v', ARGV[1])
else
  redis.call('HSET', KEYS[1], 'v', ARGV[1], 'd', ARGV[2])
end
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
)lua";

prometheus::Counter& MakeCounter(prometheus::Registry& r, const std::string& name, const std::string& help) {
  return prometheus::BuildCounter().Name(name).Help(help).Register(r).Add({});
}

// Takes the reply apart: the profile bytes are moved out, not copied.
std::optional<CachedProfile> ParseHmget(RedisReply& r) {
  if (r.type != RedisReply::Type::kArray || r.elements.size() != 2) return std::nullopt;
  RedisReply& v = r.elements[0];
  RedisReply& d = r.elements[1];
  if (v.type != RedisReply::Type::kString || d.type != RedisReply::Type::kString) return std::nullopt;
  CachedProfile p;
  if (!absl::SimpleAtoi(v.str, &p.version)) return std::nullopt;
  p.data = std::move(d.str);
  return p;
}

}  // namespace

CacheMetrics::CacheMetrics(prometheus::Registry& registry)
    : hits(MakeCounter(registry, "ecrm_profile_cache_hits_total",
                       "Profile cache lookups answered from Redis or this process's copy of it.")),
      local_hits(MakeCounter(registry, "ecrm_profile_cache_local_hits_total",
                             "Profile cache lookups answered from this process's copy (kept coherent by Redis "
                             "invalidations), without a round trip.")),
      misses(MakeCounter(registry, "ecrm_profile_cache_misses_total",
                         "Profile cache lookups not answered from Redis (absent, tombstone or error).")),
      errors(MakeCounter(registry, "ecrm_profile_cache_errors_total",
                         "Profile cache operations that failed because Redis was unreachable or slow.")),
      writes_stored(MakeCounter(registry, "ecrm_profile_cache_writes_stored_total",
                                "Profile cache writes that stored a newer version.")),
      writes_refused(MakeCounter(registry, "ecrm_profile_cache_writes_refused_total",
                                 "Profile cache writes refused because the cache held the same or a newer version.")),
      epoch_bumps(MakeCounter(registry, "ecrm_profile_cache_epoch_bumps_total",
                              "Times this process invalidated the whole cache after an outage.")),
      breaker_state(prometheus::BuildGauge()
                        .Name("ecrm_redis_breaker_state")
                        .Help("Redis circuit breaker: 0 closed, 1 open, 2 half-open.")
                        .Register(registry)
                        .Add({})) {}

RedisProfileCache::RedisProfileCache(RedisClient& redis, CacheMetrics& metrics, ProfileCacheOptions options)
    : redis_(redis), metrics_(metrics), options_(std::move(options)) {
  if (options_.local_copies > 0) {
    near_ = std::make_unique<NearCache>(redis_.options(), options_.local_copies);
    redis_.TrackKeysFor(near_.get());
  }
}

RedisProfileCache::~RedisProfileCache() {
  if (near_) redis_.TrackKeysFor(nullptr);
}

NearCache* RedisProfileCache::Near() { return near_ && !redis_.tracking_refused() ? near_.get() : nullptr; }

std::string RedisProfileCache::Key(absl::string_view id) const {
  return absl::StrCat(options_.prefix, ":", epoch_.load(std::memory_order_relaxed), ":", id);
}

void RedisProfileCache::UpdateBreakerGauge() {
  metrics_.breaker_state.Set(static_cast<double>(redis_.breaker_state()));
}

void RedisProfileCache::Failed(bool write) {
  metrics_.errors.Increment();
  resync_.store(true);
  if (write) dirty_.store(true);
  UpdateBreakerGauge();
}

bool RedisProfileCache::EnsureEpoch() {
  const int64_t now = absl::GetCurrentTimeNanos();
  int64_t checked = epoch_checked_ns_.load(std::memory_order_relaxed);
  bool due = now - checked > absl::ToInt64Nanoseconds(options_.epoch_refresh);
  if (!resync_.load(std::memory_order_relaxed) && !due) return true;
  // A routine refresh is done by one thread; the others keep the epoch they have.
  if (!resync_.load() && !epoch_checked_ns_.compare_exchange_strong(checked, now)) return true;
  const std::string key = absl::StrCat(options_.prefix, ":epoch");
  const bool bump = dirty_.load();
  absl::StatusOr<RedisReply> r =
      redis_.Command(bump ? std::vector<std::string>{"INCR", key} : std::vector<std::string>{"GET", key});
  if (!r.ok()) {
    Failed(false);
    return false;
  }
  int64_t epoch = 0;
  if (r->type == RedisReply::Type::kInteger) {
    epoch = r->integer;
  } else if (r->type == RedisReply::Type::kString) {
    (void)absl::SimpleAtoi(r->str, &epoch);
  }
  if (bump) {
    dirty_.store(false);
    metrics_.epoch_bumps.Increment();
    log::Warn("profile cache epoch bumped after failed writes", {{"epoch", epoch}});
  }
  // Copies under the old epoch's keys are never asked for again.
  if (epoch_.exchange(epoch) != epoch && near_) near_->Clear();
  epoch_checked_ns_.store(now);
  resync_.store(false);
  return true;
}

std::optional<CachedProfile> RedisProfileCache::Get(absl::string_view id) {
  if (!EnsureEpoch()) {
    metrics_.misses.Increment();
    return std::nullopt;
  }
  const std::string key = Key(id);
  NearCache* near = Near();
  uint64_t ticket = 0;
  if (near != nullptr) {
    if (std::optional<CachedProfile> copy = near->Find(key)) {
      metrics_.hits.Increment();
      metrics_.local_hits.Increment();
      return copy;
    }
    ticket = near->Ticket();
  }
  absl::StatusOr<RedisReply> r = redis_.Command({"HMGET", key, "v", "d"});
  if (!r.ok()) {
    Failed(false);
    metrics_.misses.Increment();
    return std::nullopt;
  }
  std::optional<CachedProfile> p = ParseHmget(*r);
  (p ? metrics_.hits : metrics_.misses).Increment();
  if (p && near != nullptr) near->Insert(ticket, key, *p);
  return p;
}

std::vector<std::optional<CachedProfile>> RedisProfileCache::MultiGet(absl::Span<const std::string> ids) {
  std::vector<std::optional<CachedProfile>> out(ids.size());
  if (ids.empty()) return out;
  if (!EnsureEpoch()) {
    metrics_.misses.Increment(static_cast<double>(ids.size()));
    return out;
  }
  // This process's copies first (as Get); only the others go to Redis, in one pipeline.
  NearCache* near = Near();
  uint64_t ticket = 0;
  std::vector<size_t> asked;  // indexes of ids read from Redis
  std::vector<std::string> keys;
  size_t local = 0;
  if (near != nullptr) ticket = near->Ticket();
  for (size_t i = 0; i < ids.size(); ++i) {
    std::string key = Key(ids[i]);
    if (near != nullptr) {
      if (std::optional<CachedProfile> copy = near->Find(key)) {
        out[i] = std::move(copy);
        ++local;
        continue;
      }
    }
    asked.push_back(i);
    keys.push_back(std::move(key));
  }
  metrics_.hits.Increment(static_cast<double>(local));
  metrics_.local_hits.Increment(static_cast<double>(local));
  if (asked.empty()) return out;
  std::vector<std::vector<std::string>> commands;
  commands.reserve(asked.size());
  for (const std::string& key : keys) commands.push_back({"HMGET", key, "v", "d"});
  absl::StatusOr<std::vector<RedisReply>> replies = redis_.Pipeline(commands);
  if (!replies.ok()) {
    Failed(false);
    metrics_.misses.Increment(static_cast<double>(asked.size()));
    return out;
  }
  size_t hits = 0;
  for (size_t k = 0; k < asked.size(); ++k) {
    std::optional<CachedProfile>& p = out[asked[k]];
    p = ParseHmget((*replies)[k]);
    hits += p.has_value();
    if (p && near != nullptr) near->Insert(ticket, keys[k], *p);
  }
  metrics_.hits.Increment(static_cast<double>(hits));
  metrics_.misses.Increment(static_cast<double>(asked.size() - hits));
  return out;
}

absl::StatusOr<std::string> RedisProfileCache::ScriptSha(bool reload) {
  {
    std::lock_guard lock(script_mu_);
    if (!reload && !script_sha_.empty()) return script_sha_;
  }
  ECRM_ASSIGN_OR_RETURN(RedisReply r, redis_.Command({"SCRIPT", "LOAD", std::string(kCasScript)}));
  if (r.type != RedisReply::Type::kString) return absl::InternalError(absl::StrCat("SCRIPT LOAD failed: ", r.str));
  std::lock_guard lock(script_mu_);
  script_sha_ = r.str;
  return script_sha_;
}

size_t RedisProfileCache::Write(absl::Span<const ProfileWrite> writes) {
  if (writes.empty()) return 0;
  if (!EnsureEpoch()) {
    dirty_.store(true);
    return 0;
  }
  std::vector<std::vector<std::string>> commands;
  commands.reserve(writes.size());
  // This process's copies go before the write (no read in flight may store an older one) and
  // after it (nor one that read just before the write landed): a client reads its own writes.
  std::vector<std::string> keys;
  NearCache* near = Near();
  if (near != nullptr) {
    for (const ProfileWrite& w : writes) keys.push_back(Key(w.id));
    near->Erase(keys);
  }
  struct EraseAfter {
    NearCache* near;
    const std::vector<std::string>& keys;
    ~EraseAfter() {
      if (near != nullptr) near->Erase(keys);
    }
  } erase_after{near, keys};
  const std::string ttl_ms = absl::StrCat(absl::ToInt64Milliseconds(options_.ttl));
  for (const ProfileWrite& w : writes) {
    commands.push_back({"EVALSHA", "", "1", Key(w.id), absl::StrCat(w.version), w.tombstone ? "" : w.data, ttl_ms,
                        w.tombstone ? "1" : "0"});
  }
  absl::StatusOr<std::vector<RedisReply>> replies = absl::UnavailableError("not sent");
  // A restarted Redis has forgotten the script: load it again once and resend (the writes are
  // compare-and-set, so resending those that did run changes nothing).
  for (bool reload : {false, true}) {
    absl::StatusOr<std::string> sha = ScriptSha(reload);
    if (!sha.ok()) {
      replies = sha.status();
      break;
    }
    for (auto& command : commands) command[1] = *sha;
    replies = redis_.Pipeline(commands);
    if (!replies.ok() || std::none_of(replies->begin(), replies->end(), [](const RedisReply& r) {
          return r.type == RedisReply::Type::kError && absl::StartsWith(r.str, "NOSCRIPT");
        })) {
      break;
    }
  }
  if (!replies.ok()) {
    Failed(true);
    return 0;
  }
  size_t stored = 0;
  bool failed = false;
  for (const RedisReply& r : *replies) {
    if (r.type == RedisReply::Type::kError) {
      if (!failed) log::Error("profile cache write rejected by Redis", {{"error", r.str}});
      failed = true;
    } else {
      stored += r.integer == 1;
    }
  }
  if (failed) Failed(true);
  metrics_.writes_stored.Increment(static_cast<double>(stored));
  metrics_.writes_refused.Increment(static_cast<double>(writes.size() - stored));
  return stored;
}

std::optional<CachedProfile> InMemoryProfileCache::Get(absl::string_view id) {
  if (!available_) return std::nullopt;
  std::lock_guard lock(mu_);
  auto it = entries_.find(id);
  if (it == entries_.end() || !it->second.data) return std::nullopt;
  return CachedProfile{it->second.version, *it->second.data};
}

std::vector<std::optional<CachedProfile>> InMemoryProfileCache::MultiGet(absl::Span<const std::string> ids) {
  std::vector<std::optional<CachedProfile>> out;
  out.reserve(ids.size());
  for (const std::string& id : ids) out.push_back(Get(id));
  return out;
}

size_t InMemoryProfileCache::Write(absl::Span<const ProfileWrite> writes) {
  if (!available_) return 0;
  std::lock_guard lock(mu_);
  size_t stored = 0;
  for (const ProfileWrite& w : writes) {
    auto it = entries_.find(w.id);
    if (it != entries_.end() && it->second.version >= w.version) continue;
    entries_[w.id] = Entry{w.version, w.tombstone ? std::nullopt : std::optional<std::string>(w.data)};
    ++stored;
  }
  return stored;
}

void InMemoryProfileCache::Clear() {
  std::lock_guard lock(mu_);
  entries_.clear();
}

}  // namespace ecrm::cache

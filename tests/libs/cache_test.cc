#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>
#include <catch2/catch.hpp>

#include <thread>

#include "absl/strings/str_cat.h"
#include "ecrm/cache/profile_cache.h"
#include "ecrm/testing/servers.h"

using ecrm::cache::BreakerState;
using ecrm::cache::CacheMetrics;
using ecrm::cache::InMemoryProfileCache;
using ecrm::cache::ProfileCache;
using ecrm::cache::ProfileCacheOptions;
using ecrm::cache::RedisClient;
using ecrm::cache::RedisOptions;
using ecrm::cache::RedisProfileCache;

namespace {

struct RedisFixture {
  std::unique_ptr<ecrm::testing::RedisServer> server;
  prometheus::Registry registry;
  CacheMetrics metrics{registry};
  std::unique_ptr<RedisClient> client;
  std::unique_ptr<RedisProfileCache> cache;

  explicit RedisFixture(ProfileCacheOptions cache_options = {}) {
    auto s = ecrm::testing::RedisServer::Start();
    if (!s.ok()) FAIL(s.status().ToString());
    server = std::move(*s);
    auto o = ecrm::cache::ParseRedisUrl(server->url());
    REQUIRE(o.ok());
    o->command_timeout = absl::Milliseconds(100);
    o->breaker_open_for = absl::Milliseconds(50);
    client = std::make_unique<RedisClient>(*o);
    cache = std::make_unique<RedisProfileCache>(*client, metrics, cache_options);
  }
};

// The contract every ProfileCache keeps; run on the fake and on real Redis.
void CheckContract(ProfileCache& c) {
  CHECK_FALSE(c.Get("c1").has_value());
  CHECK(c.Put("c1", 2, "v2"));
  auto got = c.Get("c1");
  REQUIRE(got.has_value());
  CHECK(got->version == 2);
  CHECK(got->data == "v2");

  CHECK_FALSE(c.Put("c1", 1, "v1"));   // older: refused
  CHECK_FALSE(c.Put("c1", 2, "v2b"));  // same version: refused
  CHECK(c.Get("c1")->data == "v2");
  CHECK(c.Put("c1", 3, std::string("v3\0binary", 9)));
  CHECK(c.Get("c1")->data == std::string("v3\0binary", 9));

  CHECK(c.Invalidate("c1", 4));
  CHECK_FALSE(c.Get("c1").has_value());
  CHECK_FALSE(c.Put("c1", 3, "stale fill"));  // the tombstone refuses older versions
  CHECK(c.Put("c1", 5, "v5"));

  CHECK(c.Put("c2", 1, "two"));
  auto many = c.MultiGet({"c1", "missing", "c2"});
  REQUIRE(many.size() == 3);
  CHECK(many[0]->data == "v5");
  CHECK_FALSE(many[1].has_value());
  CHECK(many[2]->data == "two");

  // A batch of writes: each compare-and-set on its own, in one round trip.
  std::vector<ecrm::cache::ProfileWrite> batch = {
      {"c1", 4, "older than v5", false}, {"c2", 2, "two v2", false}, {"c3", 1, "three", false}, {"c3", 2, "", true}};
  CHECK(c.Write(batch) == 3);
  auto after = c.MultiGet({"c1", "c2", "c3"});
  CHECK(after[0]->data == "v5");
  CHECK(after[1]->data == "two v2");
  CHECK_FALSE(after[2].has_value());  // written, then tombstoned in the same batch
  CHECK(c.Write({}) == 0);
}

}  // namespace

TEST_CASE("in-memory cache keeps the profile cache contract") {
  InMemoryProfileCache c;
  CheckContract(c);
  c.set_available(false);
  CHECK_FALSE(c.Get("c1").has_value());
  CHECK_FALSE(c.Put("c9", 1, "x"));
}

TEST_CASE("Redis cache keeps the profile cache contract") {
  RedisFixture f;
  CheckContract(*f.cache);
  CHECK(f.metrics.hits.Value() > 0);
  CHECK(f.metrics.misses.Value() > 0);
  CHECK(f.metrics.writes_refused.Value() >= 3);
  CHECK(f.metrics.errors.Value() == 0);
}

TEST_CASE("Redis URLs are parsed and bad ones are rejected") {
  auto o = ecrm::cache::ParseRedisUrl("redis://10.1.2.3:6380/2");
  REQUIRE(o.ok());
  CHECK(o->host == "10.1.2.3");
  CHECK(o->port == 6380);
  CHECK(o->db == 2);
  CHECK(ecrm::cache::ParseRedisUrl("http://x").status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(ecrm::cache::ParseRedisUrl("redis://h:99999").status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(ecrm::cache::ParseRedisUrl("redis://h:1/x").status().code() == absl::StatusCode::kInvalidArgument);
}

TEST_CASE("pipelined multi-get returns each key's state in request order") {
  RedisFixture f;
  std::vector<std::string> ids;
  for (int i = 0; i < 500; ++i) {
    ids.push_back(absl::StrCat("p", i));
    if (i % 2 == 0) REQUIRE(f.cache->Put(ids.back(), 1, absl::StrCat("data", i)));
  }
  auto got = f.cache->MultiGet(ids);
  REQUIRE(got.size() == 500);
  for (int i = 0; i < 500; ++i) {
    INFO(i);
    CHECK(got[i].has_value() == (i % 2 == 0));
    if (got[i]) CHECK(got[i]->data == absl::StrCat("data", i));
  }
}

TEST_CASE("Redis killed mid-test: callers get fast misses, never errors or hangs") {
  RedisFixture f;
  REQUIRE(f.cache->Put("c1", 1, "v1"));
  f.server->Kill();

  const absl::Duration budget = absl::Milliseconds(100) + absl::Milliseconds(200) + absl::Milliseconds(100);
  absl::Time start = absl::Now();
  for (int i = 0; i < 200; ++i) {
    absl::Time t = absl::Now();
    CHECK_FALSE(f.cache->Get("c1").has_value());
    CHECK_FALSE(f.cache->Put("c1", 2 + i, "v"));
    CHECK(absl::Now() - t < budget);  // never past the command + connect timeout
  }
  // The breaker turns the outage into immediate misses: 400 calls take far less than 400 timeouts.
  CHECK(absl::Now() - start < absl::Seconds(2));
  CHECK(f.metrics.errors.Value() > 0);
  CHECK(f.client->breaker_state() != BreakerState::kClosed);
}

TEST_CASE("after Redis comes back no profile that went stale during the outage is served") {
  RedisFixture f;
  REQUIRE(f.cache->Put("c1", 1, "v1"));
  // A second process reading the same cache (epoch refreshed on every call).
  ProfileCacheOptions reader_options;
  reader_options.epoch_refresh = absl::ZeroDuration();
  RedisProfileCache reader(*f.client, f.metrics, reader_options);
  REQUIRE(reader.Get("c1").has_value());

  // Persist v1 so the restarted server comes back with it, as after a partition or a restart
  // with persistence; then the profile changes to v2 while Redis is down.
  REQUIRE(f.client->Command({"SAVE"}).ok());
  f.server->Kill();
  CHECK_FALSE(f.cache->Put("c1", 2, "v2"));  // the database has v2; the cache write fails
  REQUIRE(f.server->Restart().ok());

  // Until the writer has resynced, readers may miss, but must never see v1.
  absl::Time deadline = absl::Now() + absl::Seconds(5);
  bool stored = false;
  while (absl::Now() < deadline && !stored) {
    auto got = f.cache->Get("c1");
    if (got) CHECK(got->data != "v1");
    stored = f.cache->Put("c1", 2, "v2");
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  REQUIRE(stored);
  CHECK(f.metrics.epoch_bumps.Value() >= 1);
  auto fresh = f.cache->Get("c1");
  REQUIRE(fresh.has_value());
  CHECK(fresh->data == "v2");
  auto other = reader.Get("c1");
  REQUIRE(other.has_value());
  CHECK(other->data == "v2");
}

TEST_CASE("the circuit breaker opens after repeated failures and closes when Redis answers") {
  auto server = ecrm::testing::RedisServer::Start();
  REQUIRE(server.ok());
  auto o = ecrm::cache::ParseRedisUrl((*server)->url());
  REQUIRE(o.ok());
  o->breaker_failures = 3;
  o->breaker_open_for = absl::Milliseconds(50);
  RedisClient client(*o);
  REQUIRE(client.Command({"PING"}).ok());
  (*server)->Kill();
  for (int i = 0; i < 3; ++i) CHECK_FALSE(client.Command({"PING"}).ok());
  CHECK(client.breaker_state() == BreakerState::kOpen);
  auto fast = client.Command({"PING"});
  CHECK(fast.status().code() == absl::StatusCode::kUnavailable);
  CHECK(std::string(fast.status().message()).find("breaker") != std::string::npos);

  REQUIRE((*server)->Restart().ok());
  absl::Time deadline = absl::Now() + absl::Seconds(5);
  while (absl::Now() < deadline && !client.Command({"PING"}).ok()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  CHECK(client.breaker_state() == BreakerState::kClosed);
}

namespace {

ProfileCacheOptions WithLocalCopies(size_t n = 100) {
  ProfileCacheOptions o;
  o.local_copies = n;
  return o;
}

// Waits until `id` is answered from a local copy (the listener has subscribed, a read made the
// copy, and the announcements of earlier writes have arrived).
void AwaitLocalCopy(RedisProfileCache& cache, CacheMetrics& metrics, absl::string_view id) {
  absl::Time deadline = absl::Now() + absl::Seconds(5);
  double local = metrics.local_hits.Value();
  while (absl::Now() < deadline && metrics.local_hits.Value() == local) {
    (void)cache.Get(id);
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  REQUIRE(cache.local_copies_on());
  REQUIRE(metrics.local_hits.Value() > local);
}

}  // namespace

TEST_CASE("local copies keep the profile cache contract and answer repeat reads without Redis") {
  RedisFixture f(WithLocalCopies());
  CheckContract(*f.cache);
  REQUIRE(f.cache->Put("hot", 1, "h1"));
  AwaitLocalCopy(*f.cache, f.metrics, "hot");
  const double before = f.metrics.local_hits.Value();
  for (int i = 0; i < 10; ++i) CHECK(f.cache->Get("hot")->data == "h1");
  CHECK(f.metrics.local_hits.Value() == before + 10);
  // The process's own write is read back at once (its copy is dropped around the write).
  REQUIRE(f.cache->Put("hot", 2, "h2"));
  CHECK(f.cache->Get("hot")->data == "h2");
}

TEST_CASE("a change made by another process drops the local copy once Redis announces it") {
  RedisFixture f(WithLocalCopies());
  REQUIRE(f.cache->Put("c1", 1, "v1"));
  AwaitLocalCopy(*f.cache, f.metrics, "c1");
  REQUIRE(f.cache->Get("c1")->data == "v1");
  // Another process: its own client and cache, no local copies.
  RedisClient other_client(f.client->options());
  RedisProfileCache other(other_client, f.metrics);
  REQUIRE(other.Put("c1", 2, "v2"));
  absl::Time deadline = absl::Now() + absl::Seconds(2);
  std::string seen;
  while (absl::Now() < deadline && (seen = f.cache->Get("c1")->data) != "v2") {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  CHECK(seen == "v2");
  // Expiry and deletion are announced too.
  REQUIRE(f.cache->Get("c1").has_value());
  REQUIRE(other_client.Command({"FLUSHALL"}).ok());
  deadline = absl::Now() + absl::Seconds(2);
  while (absl::Now() < deadline && f.cache->Get("c1").has_value()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  CHECK_FALSE(f.cache->Get("c1").has_value());
}

TEST_CASE("local copies are dropped while Redis is away and nothing stale is served after") {
  RedisFixture f(WithLocalCopies());
  REQUIRE(f.cache->Put("c1", 1, "v1"));
  AwaitLocalCopy(*f.cache, f.metrics, "c1");
  REQUIRE(f.client->Command({"SAVE"}).ok());
  f.server->Kill();
  // The listener notices the lost connection and turns copies off: reads miss, never v1 from
  // a copy that can no longer be invalidated.
  absl::Time deadline = absl::Now() + absl::Seconds(2);
  while (absl::Now() < deadline && f.cache->local_copies_on()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  CHECK_FALSE(f.cache->local_copies_on());
  CHECK_FALSE(f.cache->Get("c1").has_value());
  REQUIRE(f.server->Restart().ok());
  // Changed by another process right after the restart, before this one has resubscribed.
  RedisClient other_client(f.client->options());
  RedisProfileCache other(other_client, f.metrics);
  deadline = absl::Now() + absl::Seconds(5);
  while (absl::Now() < deadline && !other.Put("c1", 2, "v2")) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  deadline = absl::Now() + absl::Seconds(5);
  std::optional<ecrm::cache::CachedProfile> got;
  while (absl::Now() < deadline && !(got = f.cache->Get("c1"))) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  REQUIRE(got.has_value());
  CHECK(got->data == "v2");
}

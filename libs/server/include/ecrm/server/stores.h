// Opens what a service stores data in: its database (with migrations), the shared Redis
// profile cache, and the worker pool that runs blocking work against them. Redis is optional: unreachable at start is a
// warning, not a failure, since the cache only changes latency.
#pragma once

#include <memory>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "ecrm/cache/profile_cache.h"
#include "ecrm/cache/redis_client.h"
#include "ecrm/server/executor.h"
#include "ecrm/server/runner.h"
#include "ecrm/sql/sql.h"

namespace ecrm::server {

struct Stores {
  std::unique_ptr<sql::Database> db;
  // Null when --redis-url is empty or the engine did not ask for the profile cache.
  std::unique_ptr<cache::RedisClient> redis;
  std::unique_ptr<cache::CacheMetrics> cache_metrics;
  std::unique_ptr<cache::ProfileCache> profiles;
  // The workers that run blocking work against these stores off gRPC's threads
  // (--worker-threads, by default the engine's count for its database; --max-queue).
  std::unique_ptr<Executor> executor;
};

// Which stores an engine uses besides its database.
struct StoreNeeds {
  // The shared Redis profile cache (with its own connections and, for local copies, a listener
  // thread). Engines that never read or write profiles leave it closed; --redis-url is still
  // checked, so a bad one fails the same way everywhere.
  bool profile_cache = false;
};

absl::StatusOr<Stores> OpenStores(Runner& runner, absl::Span<const sql::Migration> migrations, StoreNeeds needs = {});

}  // namespace ecrm::server

// Opens what a service stores data in: its database (with migrations) and the shared Redis
// profile cache. Redis is optional: unreachable at start is a warning, not a failure, since
// the cache only changes latency.
#pragma once

#include <memory>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "ecrm/cache/profile_cache.h"
#include "ecrm/cache/redis_client.h"
#include "ecrm/server/runner.h"
#include "ecrm/sql/sql.h"

namespace ecrm::server {

struct Stores {
  std::unique_ptr<sql::Database> db;
  std::unique_ptr<cache::RedisClient> redis;           // null when --redis-url is empty
  std::unique_ptr<cache::CacheMetrics> cache_metrics;  // null when --redis-url is empty
  std::unique_ptr<cache::ProfileCache> profiles;       // null when --redis-url is empty
};

absl::StatusOr<Stores> OpenStores(Runner& runner, absl::Span<const sql::Migration> migrations);

}  // namespace ecrm::server

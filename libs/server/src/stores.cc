#include "ecrm/server/stores.h"

#include <algorithm>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "ecrm/log/log.h"
#include "ecrm/status/macros.h"

namespace ecrm::server {

absl::StatusOr<Stores> OpenStores(Runner& runner, absl::Span<const sql::Migration> migrations, StoreNeeds needs) {
  const CommonOptions& o = runner.options();
  Stores stores;
  // Configuration first: a bad Redis URL fails before any database work.
  std::optional<cache::RedisOptions> redis_options;
  if (!o.redis_url.empty()) {
    ECRM_ASSIGN_OR_RETURN(redis_options, cache::ParseRedisUrl(o.redis_url));
    redis_options->command_timeout = o.redis_timeout;
  }
  absl::string_view url = o.database_url;
  if (absl::ConsumePrefix(&url, "sqlite://")) {
    // The embedded default lives in a data directory that may not exist yet.
    std::filesystem::path parent = std::filesystem::path(std::string(url)).parent_path();
    std::error_code ec;
    if (!parent.empty()) std::filesystem::create_directories(parent, ec);
    if (ec) {
      return absl::UnavailableError(absl::StrCat("cannot create data directory ", parent.string(), ": ", ec.message()));
    }
  }
  sql::DatabaseOptions db_options;
  db_options.pool_size = static_cast<int>(o.database_pool_size);
  if (o.sqlite_checkpoint_pages < 1) {
    return absl::InvalidArgumentError("--sqlite-checkpoint-pages must be at least 1");
  }
  db_options.sqlite_checkpoint_pages = static_cast<int>(o.sqlite_checkpoint_pages);
  ECRM_ASSIGN_OR_RETURN(stores.db, sql::Database::Open(o.database_url, db_options));
  ECRM_RETURN_IF_ERROR(stores.db->Migrate(runner.info().engine, migrations));
  log::Info("database ready", {{"url", stores.db->redacted_url()}});
  const ServiceInfo& info = runner.info();
  int64_t workers = o.worker_threads;
  if (workers == 0)
    workers = stores.db->dialect() == sql::Dialect::kSqlite ? info.sqlite_workers : info.postgres_workers;
  stores.executor = std::make_unique<Executor>(static_cast<int>(workers), static_cast<size_t>(o.max_queue),
                                               runner.metrics(), runner.drain());

  if (redis_options && needs.profile_cache) {
    stores.redis = std::make_unique<cache::RedisClient>(*redis_options);
    stores.cache_metrics = std::make_unique<cache::CacheMetrics>(runner.metrics());
    cache::ProfileCacheOptions cache_options;
    cache_options.local_copies = static_cast<size_t>(std::max<int64_t>(o.redis_local_copies, 0));
    stores.profiles = std::make_unique<cache::RedisProfileCache>(*stores.redis, *stores.cache_metrics, cache_options);
    absl::StatusOr<cache::RedisReply> ping = stores.redis->Command({"PING"});
    if (ping.ok()) {
      log::Info("profile cache ready", {{"redis", o.redis_url}});
    } else {
      log::Warn("profile cache unreachable; serving without it until it comes back",
                {{"redis", o.redis_url}, {"error", std::string(ping.status().message())}});
    }
  }
  return stores;
}

}  // namespace ecrm::server

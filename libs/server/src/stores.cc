#include "ecrm/server/stores.h"

#include <prometheus/gauge.h>
#include <prometheus/registry.h>
#include <sys/statvfs.h>

#include <algorithm>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "ecrm/log/log.h"
#include "ecrm/status/macros.h"

namespace ecrm::server {
namespace {

// The disk of an embedded database, read at each scrape: the database and WAL files' sizes and
// the space left on their filesystem (to non-root users, as statvfs's f_bavail counts it), so
// that an alert can tell before SQLite fails writes with SQLITE_FULL. PostgreSQL's disk is
// its server's to watch.
void ExportSqliteDisk(Runner& runner, const std::string& path) {
  prometheus::Registry& registry = runner.metrics();
  auto& files = prometheus::BuildGauge()
                    .Name("ecrm_sqlite_file_size_bytes")
                    .Help("Size of the SQLite database's files, by file (database, wal)")
                    .Register(registry);
  prometheus::Gauge& database = files.Add({{"file", "database"}});
  prometheus::Gauge& wal = files.Add({{"file", "wal"}});
  prometheus::Gauge& avail = prometheus::BuildGauge()
                                 .Name("ecrm_sqlite_filesystem_avail_bytes")
                                 .Help("Space available to the engine on the filesystem of its SQLite database")
                                 .Register(registry)
                                 .Add({});
  prometheus::Gauge& size = prometheus::BuildGauge()
                                .Name("ecrm_sqlite_filesystem_size_bytes")
                                .Help("Size of the filesystem of the SQLite database")
                                .Register(registry)
                                .Add({});
  std::filesystem::path dir = std::filesystem::path(path).parent_path();
  if (dir.empty()) dir = ".";
  runner.OnScrape([&database, &wal, &avail, &size, path, dir = dir.string()] {
    std::error_code ec;
    const auto db_bytes = std::filesystem::file_size(path, ec);
    database.Set(ec ? 0 : static_cast<double>(db_bytes));
    const auto wal_bytes = std::filesystem::file_size(path + "-wal", ec);
    wal.Set(ec ? 0 : static_cast<double>(wal_bytes));
    struct statvfs fs {};
    if (statvfs(dir.c_str(), &fs) == 0) {
      avail.Set(static_cast<double>(fs.f_bavail) * static_cast<double>(fs.f_frsize));
      size.Set(static_cast<double>(fs.f_blocks) * static_cast<double>(fs.f_frsize));
    }
  });
}

}  // namespace

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
  const bool sqlite = absl::ConsumePrefix(&url, "sqlite://");
  if (sqlite) {
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
  if (sqlite) ExportSqliteDisk(runner, std::string(url));
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
    // The breaker's state as of the scrape: the cache sets the gauge only when a call fails, and a
    // breaker that closed again (or whose open period ran out) would otherwise still read open.
    runner.OnScrape([redis = stores.redis.get(), metrics = stores.cache_metrics.get()] {
      metrics->breaker_state.Set(static_cast<double>(redis->breaker_state()));
    });
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

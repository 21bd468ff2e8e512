// ecrm-cache-bench: profile-cache GET and pipelined multi-get through libs/cache against a real
// Redis, single client, to compare with `redis-benchmark -c 1 -t get` in the same run.
#include <prometheus/registry.h>

#include <cstdio>
#include <random>

#include "bench_util.h"
#include "ecrm/cache/profile_cache.h"
#include "ecrm/config/flags.h"

int main(int argc, char** argv) {
  std::string redis_url = "redis://127.0.0.1:6379";
  int64_t profiles = 100000, value_bytes = 1024, batch = 100, runs = 3;
  absl::Duration duration = absl::Seconds(10);
  bool populate = true;
  ecrm::config::Flags flags("ecrm-cache-bench", "profile cache GET / multi-get throughput, one client");
  flags.AddString("redis-url", &redis_url, "Redis to use (its keys under ecrm:bench are overwritten)");
  flags.AddInt("profiles", &profiles, "distinct cached profiles");
  flags.AddInt("value-bytes", &value_bytes, "size of each cached profile");
  flags.AddInt("batch", &batch, "ids per multi-get");
  flags.AddInt("runs", &runs, "runs of each measurement (the median is reported)");
  flags.AddDuration("duration", &duration, "length of each run");
  flags.AddBool("populate", &populate, "write the profiles first (false: an earlier run left them)");
  if (std::optional<int> exit_code = flags.ParseCommandLine(argc, argv)) return *exit_code;
  auto options = ecrm::cache::ParseRedisUrl(redis_url);
  if (!options.ok()) {
    std::fprintf(stderr, "%s\n", std::string(options.status().message()).c_str());
    return 2;
  }
  options->command_timeout = absl::Seconds(1);
  ecrm::cache::RedisClient redis(*options);
  prometheus::Registry registry;
  ecrm::cache::CacheMetrics metrics(registry);
  ecrm::cache::ProfileCacheOptions cache_options;
  cache_options.prefix = "ecrm:bench";
  ecrm::cache::RedisProfileCache cache(redis, metrics, cache_options);

  std::vector<std::string> ids;
  const std::string value(static_cast<size_t>(value_bytes), 'x');
  for (int64_t i = 0; i < profiles; ++i) {
    ids.push_back(absl::StrCat("customer-", i));
    if (populate) cache.Put(ids.back(), 1, value);
  }
  std::mt19937_64 rng(42);
  std::uniform_int_distribution<size_t> pick(0, ids.size() - 1);

  std::vector<double> get_runs, multi_runs;
  for (int64_t r = 0; r < runs; ++r) {
    get_runs.push_back(ecrm::bench::OpsPerSecond(duration, 1, [&] {
      if (!cache.Get(ids[pick(rng)])) std::abort();  // every id is cached: a miss is a bug
    }));
  }
  std::vector<std::string> keys(static_cast<size_t>(batch));
  for (int64_t r = 0; r < runs; ++r) {
    multi_runs.push_back(ecrm::bench::OpsPerSecond(duration, batch, [&] {
      for (auto& k : keys) k = ids[pick(rng)];
      auto got = cache.MultiGet(keys);
      if (!got.back()) std::abort();
    }));
  }
  ecrm::bench::PrintResult("cache_get", "gets/s", get_runs);
  ecrm::bench::PrintResult(absl::StrCat("cache_multiget_", batch), "keys/s", multi_runs);
  return 0;
}

// ecrm-reco-bench: the recommendation model in-process (services/personalisation/src/recommender.h).
// Synthetic catalogue and customers: --products products in clusters of 100 (a category per
// cluster, ten clusters per top category), --customers customers buying 1 + Poisson(mean - 1)
// distinct items each, --local of them from their own cluster and the rest from the whole
// catalogue, both by a Zipf law (exponent --zipf), purchases spread over 180 days.
// Per run: the load rate (batches of --batch lines through Apply, the way a feed message is
// applied; generation not timed), then lines one by one through Purchase, RSS and the model's
// own estimate, and Recommend latency paced at --qps over --threads threads (latency from the
// scheduled start, so a late call counts its wait), without and with a writer applying
// --writer-rate lines/s meanwhile; SimilarProducts latency. One JSON line per figure: the runs
// and their median.
//
// --seed-db=URL instead writes the same population into an ecrm-personalisation database as
// the orders its recommendation feed saves (reco_orders: one order per customer, of all their
// items), so that the engine loads it on start (bench/reco-latency.sh measures it over gRPC).
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "bench_util.h"
#include "ecrm/config/flags.h"
#include "ecrm/sql/sql.h"
#include "recommender.h"
#include "schema.h"

namespace reco = ecrm::personalisation;
using Clock = std::chrono::steady_clock;

namespace {

int64_t RssBytes() {
  std::ifstream statm("/proc/self/statm");
  int64_t size = 0, resident = 0;
  statm >> size >> resident;
  return resident * 4096;
}

// Draws ranks 0..n-1 with P(k) ∝ 1 / (k + 1)^s.
class Zipf {
 public:
  Zipf(int64_t n, double s) : cdf_(static_cast<size_t>(n)) {
    double sum = 0;
    for (int64_t k = 0; k < n; ++k) cdf_[static_cast<size_t>(k)] = sum += 1 / std::pow(static_cast<double>(k + 1), s);
    for (auto& c : cdf_) c /= sum;
  }
  int64_t operator()(std::mt19937_64& rng) {
    const double u = std::uniform_real_distribution<double>(0, 1)(rng);
    return std::min<int64_t>(static_cast<int64_t>(std::lower_bound(cdf_.begin(), cdf_.end(), u) - cdf_.begin()),
                             static_cast<int64_t>(cdf_.size()) - 1);
  }

 private:
  std::vector<double> cdf_;
};

struct Population {
  int64_t products, customers;
  double mean_items, local, zipf;
  uint64_t seed;
};

constexpr int64_t kCluster = 100;
const absl::Time kStart = absl::FromUnixSeconds(1'780'000'000);

std::string Sku(int64_t p) { return absl::StrFormat("p%06d", p); }
std::string CustomerId(int64_t c) { return absl::StrFormat("c%07d", c); }
std::string Category(int64_t p) { return absl::StrCat("cat", p / kCluster / 10, "/sub", p / kCluster); }

// One customer's lines (distinct items), appended to `out`.
class Generator {
 public:
  explicit Generator(const Population& p)
      : p_(p),
        rng_(p.seed),
        global_(p.products, p.zipf),
        local_(kCluster, p.zipf),
        clusters_((p.products + kCluster - 1) / kCluster, p.zipf),
        // A permutation so that popular clusters are not all neighbours of one another.
        perm_(static_cast<size_t>(p.products)) {
    for (int64_t k = 0; k < p.products; ++k) perm_[static_cast<size_t>(k)] = k;
    std::shuffle(perm_.begin(), perm_.end(), rng_);
  }
  void Customer(int64_t c, std::vector<reco::ModelUpdate>& out) {
    const int64_t n = 1 + std::poisson_distribution<int64_t>(p_.mean_items - 1)(rng_);
    const int64_t cluster = clusters_(rng_);
    std::vector<int64_t> items;
    for (int64_t tries = 0; static_cast<int64_t>(items.size()) < n && tries < 10 * n; ++tries) {
      int64_t item = std::uniform_real_distribution<double>(0, 1)(rng_) < p_.local
                         ? std::min(cluster * kCluster + local_(rng_), p_.products - 1)
                         : perm_[static_cast<size_t>(global_(rng_))];
      if (std::find(items.begin(), items.end(), item) == items.end()) items.push_back(item);
    }
    const std::string id = CustomerId(c);
    for (int64_t item : items) {
      const auto when = kStart + absl::Seconds(std::uniform_int_distribution<int64_t>(0, 180 * 86400)(rng_));
      out.push_back({reco::ModelUpdate::Kind::kPurchase, id, Sku(item), 1, when, Category(item)});
    }
  }
  std::mt19937_64& rng() { return rng_; }

 private:
  Population p_;
  std::mt19937_64 rng_;
  Zipf global_, local_, clusters_;
  std::vector<int64_t> perm_;
};

struct Latency {
  double p50_us = 0, p99_us = 0, p999_us = 0, max_us = 0, achieved_qps = 0;
};

// `calls` calls of `op(thread, k)` over `threads` threads, paced to `qps` overall.
template <typename Op>
Latency Paced(int threads, double qps, int64_t calls, Op op) {
  std::vector<std::vector<double>> per(static_cast<size_t>(threads));
  const auto start = Clock::now() + std::chrono::milliseconds(10);
  const double interval_s = threads / qps;
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      auto& lat = per[static_cast<size_t>(t)];
      const int64_t mine = calls / threads;
      lat.reserve(static_cast<size_t>(mine));
      // Threads offset by a fraction of the interval, so that together they arrive evenly.
      const auto first =
          start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(interval_s * t / threads));
      for (int64_t k = 0; k < mine; ++k) {
        const auto due =
            first + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(interval_s * k));
        // Sleep until shortly before the call is due, then spin (the machine has 2 cores).
        if (due - Clock::now() > std::chrono::microseconds(300))
          std::this_thread::sleep_until(due - std::chrono::microseconds(200));
        while (Clock::now() < due) {
        }
        op(t, k);
        lat.push_back(std::chrono::duration<double, std::micro>(Clock::now() - due).count());
      }
    });
  }
  for (auto& th : pool) th.join();
  const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  std::vector<double> all;
  for (auto& v : per) all.insert(all.end(), v.begin(), v.end());
  std::sort(all.begin(), all.end());
  Latency l;
  if (all.empty()) return l;
  auto at = [&](double q) {
    return all[std::min(all.size() - 1, static_cast<size_t>(q * static_cast<double>(all.size())))];
  };
  l.p50_us = at(0.5);
  l.p99_us = at(0.99);
  l.p999_us = at(0.999);
  l.max_us = all.back();
  l.achieved_qps = static_cast<double>(all.size()) / elapsed;
  return l;
}

// The population as the orders ecrm-personalisation saves (see --seed-db).
int SeedDatabase(const std::string& url, const Population& population) {
  auto db = ecrm::sql::Database::Open(url);
  if (!db.ok()) {
    std::fprintf(stderr, "%s\n", db.status().ToString().c_str());
    return 1;
  }
  if (auto s = (*db)->Migrate("personalisation", reco::kMigrations); !s.ok()) {
    std::fprintf(stderr, "%s\n", s.ToString().c_str());
    return 1;
  }
  Generator gen(population);
  int64_t lines = 0;
  for (int64_t c = 0; c < population.customers;) {
    absl::Status s = (*db)->InTransaction([&](ecrm::sql::Connection& conn) -> absl::Status {
      for (int64_t end = std::min(population.customers, c + 10'000); c < end; ++c) {
        std::vector<reco::ModelUpdate> items;
        gen.Customer(c, items);
        std::string skus;
        absl::Time at = absl::InfiniteFuture();
        for (const auto& u : items) {
          absl::StrAppend(&skus, skus.empty() ? "" : ",", u.sku);
          at = std::min(at, u.time);
        }
        lines += static_cast<int64_t>(items.size());
        ECRM_RETURN_IF_ERROR(
            conn.Execute("INSERT INTO reco_orders (order_id, customer_id, skus, total_minor, "
                         "occurred_at) VALUES ($1, $2, $3, $4, $5)",
                         {absl::StrCat("seed-", c), CustomerId(c), skus, int64_t{0}, absl::ToUnixMicros(at)})
                .status());
      }
      return absl::OkStatus();
    });
    if (!s.ok()) {
      std::fprintf(stderr, "%s\n", s.ToString().c_str());
      return 1;
    }
  }
  std::fprintf(stderr, "seeded %lld customers, %lld purchase lines\n", static_cast<long long>(population.customers),
               static_cast<long long>(lines));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  int64_t products = 100'000, customers = 1'000'000, runs = 3, seed = 42, batch = 1000, calls = 20'000,
          one_by_one = 200'000, neighbours = reco::RecommenderOptions{}.neighbours,
          lines_per_hold = reco::RecommenderOptions{}.lines_per_hold;
  double mean_items = 5, local = 0.7, zipf = 1.0, qps = 2000, writer_rate = 5000;
  ecrm::config::Flags flags("ecrm-reco-bench", "the recommendation model in-process: load, Recommend latency, memory");
  flags.AddInt("products", &products, "products in the catalogue");
  flags.AddInt("customers", &customers, "customers with a purchase history");
  flags.AddDouble("mean-items", &mean_items, "mean distinct items per customer (1 + Poisson)");
  flags.AddDouble("local", &local, "share of a customer's items drawn from their own cluster of 100");
  flags.AddDouble("zipf", &zipf, "Zipf exponent of product popularity");
  flags.AddInt("neighbours", &neighbours, "neighbours kept per item");
  flags.AddInt("lines-per-hold", &lines_per_hold, "lines a writer applies per exclusive hold of the model's lock");
  flags.AddInt("runs", &runs, "runs (the median is reported)");
  flags.AddInt("seed", &seed, "seed of the synthetic population");
  flags.AddInt("batch", &batch, "purchase lines per Apply while loading");
  flags.AddInt("one-by-one", &one_by_one, "lines applied one Purchase at a time after the load");
  flags.AddInt("calls", &calls, "Recommend calls per latency measurement");
  flags.AddDouble("qps", &qps, "Recommend calls per second, over all threads");
  flags.AddDouble("writer-rate", &writer_rate, "purchase lines per second applied during the 'with writer' run");
  std::string seed_db;
  flags.AddString("seed-db", &seed_db, "write the population into this ecrm-personalisation database and exit");
  if (std::optional<int> exit_code = flags.ParseCommandLine(argc, argv)) return *exit_code;
  if (!seed_db.empty()) {
    return SeedDatabase(seed_db, {products, customers, mean_items, local, zipf, static_cast<uint64_t>(seed)});
  }

  std::vector<double> load_rate, single_rate, rss_per_customer, model_bytes, model_per_customer, pairs, lat1_p50,
      lat1_p99, lat2_p50, lat2_p99, lat2_p999, latw_p99, latw_p999, latc_p99, sim_p99, similar_share, lines;
  const int64_t rss_base = RssBytes();
  for (int64_t run = 0; run < runs; ++run) {
    reco::RecommenderOptions options;
    options.neighbours = static_cast<int>(neighbours);
    options.lines_per_hold = static_cast<int>(lines_per_hold);
    auto model = std::make_unique<reco::Recommender>(options);
    Generator gen({products, customers, mean_items, local, zipf, static_cast<uint64_t>(seed)});
    std::vector<reco::ModelUpdate> buffer;
    double apply_s = 0;
    int64_t applied = 0;
    for (int64_t c = 0; c < customers;) {
      buffer.clear();
      while (c < customers && static_cast<int64_t>(buffer.size()) < batch) gen.Customer(c++, buffer);
      const auto t0 = Clock::now();
      if (!model->Apply(buffer).ok()) return 1;
      apply_s += std::chrono::duration<double>(Clock::now() - t0).count();
      applied += static_cast<int64_t>(buffer.size());
    }
    load_rate.push_back(static_cast<double>(applied) / apply_s);
    lines.push_back(static_cast<double>(applied));
    // Then lines one by one (a write lock each): existing customers buying more.
    {
      std::vector<reco::ModelUpdate> more;
      while (static_cast<int64_t>(more.size()) < one_by_one) {
        const int64_t c = std::uniform_int_distribution<int64_t>(0, customers - 1)(gen.rng());
        std::vector<reco::ModelUpdate> one;
        gen.Customer(c, one);
        more.push_back(one.front());
      }
      const auto t0 = Clock::now();
      for (const auto& u : more) (void)model->Purchase(u.customer_id, u.sku, u.time, 1);
      single_rate.push_back(static_cast<double>(more.size()) /
                            std::chrono::duration<double>(Clock::now() - t0).count());
    }
    const auto info = model->Info();
    rss_per_customer.push_back(static_cast<double>(RssBytes() - rss_base) / static_cast<double>(customers));
    model_bytes.push_back(static_cast<double>(info.memory_bytes));
    model_per_customer.push_back(static_cast<double>(info.memory_bytes) / static_cast<double>(customers));
    pairs.push_back(static_cast<double>(info.pairs));

    std::vector<std::mt19937_64> rngs;
    for (int t = 0; t < 4; ++t) rngs.emplace_back(seed + 100 * run + t);
    std::atomic<int64_t> similar{0}, total{0};
    auto recommend = [&](int t, int64_t) {
      const int64_t c = std::uniform_int_distribution<int64_t>(0, customers - 1)(rngs[static_cast<size_t>(t)]);
      auto r = model->Recommend(CustomerId(c), 10);
      if (!r.ok() || r->size() != 10) std::abort();
      for (const auto& x : *r) similar += x.source == reco::RecommendationSource::kSimilarItems ? 1 : 0;
      total += static_cast<int64_t>(r->size());
    };
    auto l1 = Paced(1, qps, calls, recommend);
    auto l2 = Paced(2, qps, calls, recommend);
    lat1_p50.push_back(l1.p50_us);
    lat1_p99.push_back(l1.p99_us);
    lat2_p50.push_back(l2.p50_us);
    lat2_p99.push_back(l2.p99_us);
    lat2_p999.push_back(l2.p999_us);
    similar_share.push_back(100.0 * static_cast<double>(similar) / static_cast<double>(total));
    // In a category (a top category of ten clusters).
    auto lc = Paced(2, qps, calls, [&](int t, int64_t) {
      auto& rng = rngs[static_cast<size_t>(t)];
      const int64_t c = std::uniform_int_distribution<int64_t>(0, customers - 1)(rng);
      const int64_t cat = std::uniform_int_distribution<int64_t>(0, (products - 1) / kCluster / 10)(rng);
      if (!model->Recommend(CustomerId(c), 10, absl::StrCat("cat", cat)).ok()) std::abort();
    });
    latc_p99.push_back(lc.p99_us);
    // With a writer applying purchases in batches of 100 at --writer-rate lines/s meanwhile.
    {
      std::atomic<bool> stop{false};
      std::thread writer([&] {
        Generator wgen({products, customers, mean_items, local, zipf, static_cast<uint64_t>(seed + 7)});
        const auto begin = Clock::now();
        int64_t written = 0;
        std::vector<reco::ModelUpdate> b;
        while (!stop.load()) {
          b.clear();
          while (b.size() < 100) {
            const int64_t c = std::uniform_int_distribution<int64_t>(0, customers - 1)(wgen.rng());
            std::vector<reco::ModelUpdate> one;
            wgen.Customer(c, one);
            b.push_back(one.front());
          }
          const auto due = begin + std::chrono::duration_cast<Clock::duration>(
                                       std::chrono::duration<double>(static_cast<double>(written) / writer_rate));
          while (Clock::now() < due && !stop.load()) std::this_thread::yield();
          (void)model->Apply(b);
          written += static_cast<int64_t>(b.size());
        }
      });
      auto lw = Paced(2, qps, calls, recommend);
      stop = true;
      writer.join();
      latw_p99.push_back(lw.p99_us);
      latw_p999.push_back(lw.p999_us);
    }
    auto ls = Paced(2, qps, calls, [&](int t, int64_t) {
      const int64_t p = std::uniform_int_distribution<int64_t>(0, products - 1)(rngs[static_cast<size_t>(t)]);
      if (!model->SimilarProducts(Sku(p), 10).ok()) std::abort();
    });
    sim_p99.push_back(ls.p99_us);
    std::fprintf(stderr,
                 "run %lld: load %.0f lines/s (%lld lines), one by one %.0f/s, RSS %.0f B/customer, model %.0f MB, "
                 "pairs %.0f; Recommend 1 thread p50 %.1f p99 %.1f us, 2 threads p50 %.1f p99 %.1f p99.9 %.1f us "
                 "(achieved %.0f/s), in a category p99 %.1f us, with a writer p99 %.1f p99.9 %.1f us; "
                 "SimilarProducts p99 %.1f us; similar items %.1f%%\n",
                 static_cast<long long>(run), load_rate.back(), static_cast<long long>(applied), single_rate.back(),
                 rss_per_customer.back(), model_bytes.back() / 1e6, pairs.back(), l1.p50_us, l1.p99_us, l2.p50_us,
                 l2.p99_us, l2.p999_us, l2.achieved_qps, lc.p99_us, latw_p99.back(), latw_p999.back(), ls.p99_us,
                 similar_share.back());
    model.reset();
  }
  using ecrm::bench::PrintResult;
  PrintResult("reco_load", "lines/s", load_rate);
  PrintResult("reco_load_lines", "lines", lines);
  PrintResult("reco_purchase_one_by_one", "lines/s", single_rate);
  PrintResult("reco_rss_per_customer", "bytes", rss_per_customer);
  PrintResult("reco_model_memory", "bytes", model_bytes);
  PrintResult("reco_model_memory_per_customer", "bytes", model_per_customer);
  PrintResult("reco_pairs", "pairs", pairs);
  PrintResult("reco_recommend_1thread_p50", "us", lat1_p50);
  PrintResult("reco_recommend_1thread_p99", "us", lat1_p99);
  PrintResult("reco_recommend_2threads_p50", "us", lat2_p50);
  PrintResult("reco_recommend_2threads_p99", "us", lat2_p99);
  PrintResult("reco_recommend_2threads_p999", "us", lat2_p999);
  PrintResult("reco_recommend_category_p99", "us", latc_p99);
  PrintResult("reco_recommend_with_writer_p99", "us", latw_p99);
  PrintResult("reco_recommend_with_writer_p999", "us", latw_p999);
  PrintResult("reco_similar_products_p99", "us", sim_p99);
  PrintResult("reco_similar_items_percent", "%", similar_share);
  return 0;
}

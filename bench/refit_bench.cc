// ecrm-refit-bench: the segmentation engine's score refit over a population held in Features,
// loaded through the apply path the feed uses (SetCustomer, AddEvent): purchases drawn from the
// BG/NBD and Gamma-Gamma models with CDNOW's parameters, plus page views and message opens.
// Reports the refit's steps — reading under the shared lock (engagement computed while
// reading), RFM + both fits, predictions, and the write under the exclusive lock — with a
// second refit of unchanged data (nothing changes, the write only compares).
#include <chrono>
#include <cstdio>
#include <mutex>
#include <random>
#include <vector>

#include "absl/strings/str_cat.h"
#include "bench_util.h"
#include "clv_simulation.h"
#include "customer_features.h"
#include "ecrm/config/flags.h"
#include "scores.h"

namespace seg = ecrm::segmentation;

namespace {

google::protobuf::Timestamp Ts(absl::Time t) {
  google::protobuf::Timestamp ts;
  ts.set_seconds(absl::ToUnixSeconds(t));
  return ts;
}

}  // namespace

int main(int argc, char** argv) {
  int64_t customers = 1'000'000, runs = 3, views = 4;
  ecrm::config::Flags flags("ecrm-refit-bench", "score refit (RFM, engagement, BG/NBD + Gamma-Gamma) over Features");
  flags.AddInt("customers", &customers, "customers, each with purchases drawn from the models");
  flags.AddInt("runs", &runs, "refits timed (the median is reported)");
  flags.AddInt("views", &views, "page views and message opens per customer over the last 90 days");
  if (std::optional<int> exit_code = flags.ParseCommandLine(argc, argv)) return *exit_code;

  const absl::Time now = absl::FromCivil(absl::CivilSecond(2026, 6, 15, 12, 0, 0), absl::UTCTimeZone());
  const auto drawn = seg::SimulateCustomers({.r = 0.243, .alpha = 4.414, .a = 0.793, .b = 2.426},
                                            {.p = 6.25, .q = 3.74, .gamma = 15.44},
                                            {.customers = customers, .max_age_weeks = 52, .seed = 42});
  seg::Features features;
  std::mt19937_64 rng(7);
  const auto load_start = std::chrono::steady_clock::now();
  int64_t events = 0;
  for (size_t i = 0; i < drawn.size(); ++i) {
    ecrm::infostore::v1::Customer c;
    c.set_id(absl::StrCat("c_", i));
    features.SetCustomer(c);
    ecrm::infostore::v1::Event e;
    e.set_customer_id(c.id());
    auto add = [&](const std::string& type, int64_t days_ago, int64_t amount) {
      e.set_type(type);
      *e.mutable_occurred_at() = Ts(now - absl::Hours(24 * days_ago + 2));
      if (amount > 0) {
        e.mutable_amount()->set_amount_minor(amount);
        e.mutable_amount()->set_currency("EUR");
      } else {
        e.clear_amount();
      }
      features.AddEvent(e);
      ++events;
    };
    const int64_t first = std::llround(drawn[i].T * 7), last = first - std::llround(drawn[i].t_x * 7);
    const int64_t amount = drawn[i].x > 0 ? std::max<int64_t>(1, std::llround(drawn[i].monetary * 100)) : 2500;
    add("purchase", first, amount);
    for (int64_t k = 0; k < drawn[i].x; ++k) add("purchase", last + (first - last) * k / drawn[i].x, amount);
    for (int64_t v = 0; v < views; ++v) add(v % 2 == 0 ? "page_view" : "message_opened", rng() % 90, 0);
  }
  const double load_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - load_start).count();

  seg::Scores scores(features, [now] { return now; });
  std::vector<double> read_ms, fit_ms, predict_ms, write_ms, rewrite_ms, total_ms;
  int64_t valued = 0, changed_first = 0;
  for (int64_t r = 0; r < runs; ++r) {
    // The first run writes every customer's scores; the later ones find them unchanged.
    const auto start = std::chrono::steady_clock::now();
    seg::ScoreUpdate u = scores.Compute();
    double write = 0;
    {
      std::unique_lock lock(features.mutex());
      const auto w = std::chrono::steady_clock::now();
      const size_t changed = scores.Write(u).size();
      write = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - w).count();
      if (r == 0) changed_first = static_cast<int64_t>(changed);
    }
    total_ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
    if (r == 0) {
      write_ms.push_back(write);
    } else {
      rewrite_ms.push_back(write);
    }
    read_ms.push_back(absl::ToDoubleMilliseconds(u.read_time));
    fit_ms.push_back(absl::ToDoubleMilliseconds(u.fit_time));
    predict_ms.push_back(absl::ToDoubleMilliseconds(u.predict_time));
    valued = u.valued;
    if (!u.purchases_fit.ok() || !u.spend_fit.ok()) {
      std::fprintf(stderr, "fit failed: %s / %s\n", u.purchases_fit.status().ToString().c_str(),
                   u.spend_fit.status().ToString().c_str());
      return 1;
    }
  }
  const std::string n = absl::StrCat(customers);
  ecrm::bench::PrintResult("refit_read_" + n, "ms", read_ms);
  ecrm::bench::PrintResult("refit_fit_" + n, "ms", fit_ms);
  ecrm::bench::PrintResult("refit_predict_" + n, "ms", predict_ms);
  ecrm::bench::PrintResult("refit_first_write_" + n, "ms", write_ms);
  if (!rewrite_ms.empty()) ecrm::bench::PrintResult("refit_unchanged_write_" + n, "ms", rewrite_ms);
  ecrm::bench::PrintResult("refit_total_" + n, "ms", total_ms);
  std::printf(
      "{\"bench\":\"refit_population\",\"customers\":%lld,\"events\":%lld,\"load_s\":%.1f,\"valued\":%lld,"
      "\"changed_by_first_write\":%lld,\"features_mb\":%.0f}\n",
      static_cast<long long>(customers), static_cast<long long>(events), load_s, static_cast<long long>(valued),
      static_cast<long long>(changed_first), static_cast<double>(features.MemoryBytes()) / 1e6);
  return 0;
}

// ecrm-clv-bench: the lifetime-value fit of the segmentation engine — BG/NBD and Gamma-Gamma by
// maximum likelihood on synthetic customers drawn from the models with known parameters (so
// the recovered parameters are reported too), and scoring every customer with the fitted
// model. Baseline in the same run: one pass of the per-customer BG/NBD log-likelihood over all
// customers, without aggregation (what each objective evaluation would cost done naively).
#include <chrono>
#include <cstdio>
#include <functional>
#include <vector>

#include "absl/strings/str_cat.h"
#include "bench_util.h"
#include "clv.h"
#include "clv_simulation.h"
#include "ecrm/config/flags.h"

namespace seg = ecrm::segmentation;

namespace {

double Millis(const std::function<void()>& f) {
  const auto start = std::chrono::steady_clock::now();
  f();
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
}

[[noreturn]] void Die(const absl::Status& status) {
  std::fprintf(stderr, "ecrm-clv-bench: %s\n", status.ToString().c_str());
  std::exit(1);
}

}  // namespace

int main(int argc, char** argv) {
  int64_t customers = 1'000'000, runs = 3, seed = 42;
  double max_age_weeks = 52;
  bool score = true, whole_days = true;
  ecrm::config::Flags flags("ecrm-clv-bench", "BG/NBD + Gamma-Gamma fit on synthetic customers");
  flags.AddInt("customers", &customers, "synthetic customers");
  flags.AddInt("runs", &runs, "runs of each measurement (the median is reported)");
  flags.AddInt("seed", &seed, "seed of the synthetic population");
  flags.AddDouble("max-age-weeks", &max_age_weeks, "customer ages T are drawn uniformly from whole days up to this");
  flags.AddBool("whole-days", &whole_days,
                "t_x in whole days, as summaries from dated orders are (false: continuous, nothing aggregates)");
  flags.AddBool("score", &score, "also time scoring every customer with the fitted model");
  if (std::optional<int> exit_code = flags.ParseCommandLine(argc, argv)) return *exit_code;

  // CDNOW's published parameters (Fader, Hardie & Lee 2005; Fader & Hardie 2013).
  const seg::BgNbdParams truth{.r = 0.243, .alpha = 4.414, .a = 0.793, .b = 2.426};
  const seg::GammaGammaParams spend_truth{.p = 6.25, .q = 3.74, .gamma = 15.44};
  const auto population = seg::SimulateCustomers(truth, spend_truth,
                                                 {.customers = customers,
                                                  .max_age_weeks = max_age_weeks,
                                                  .whole_days = whole_days,
                                                  .seed = static_cast<uint64_t>(seed)});
  int64_t repeat_buyers = 0;
  for (const auto& c : population) repeat_buyers += c.x > 0 ? 1 : 0;

  std::vector<double> bgnbd_ms, gg_ms, total_ms, baseline_ms, score_rate;
  seg::BgNbdFit bgnbd;
  seg::GammaGammaFit gg;
  double sink = 0;
  for (int64_t r = 0; r < runs; ++r) {
    baseline_ms.push_back(Millis([&] {
      double ll = 0;
      for (const auto& c : population) ll += seg::BgNbdLogLikelihood(truth, c);
      sink += ll;
    }));
    const double b = Millis([&] {
      auto fit = seg::FitBgNbd(population);
      if (!fit.ok()) Die(fit.status());
      bgnbd = *fit;
    });
    const double g = Millis([&] {
      auto fit = seg::FitGammaGamma(population);
      if (!fit.ok()) Die(fit.status());
      gg = *fit;
    });
    bgnbd_ms.push_back(b);
    gg_ms.push_back(g);
    total_ms.push_back(b + g);
    if (score) {
      auto model = seg::LifetimeValueModel::Create(bgnbd.params, gg.params);
      if (!model.ok()) Die(model.status());
      const double ms = Millis([&] {
        for (const auto& c : population) {
          auto v = model->Predict(c);
          if (!v.ok()) Die(v.status());
          sink += v->value;
        }
      });
      score_rate.push_back(static_cast<double>(customers) / (ms / 1000));
    }
  }
  ecrm::bench::PrintResult(absl::StrCat("clv_fit_bgnbd_", customers), "ms", bgnbd_ms);
  ecrm::bench::PrintResult(absl::StrCat("clv_fit_gamma_gamma_", customers), "ms", gg_ms);
  ecrm::bench::PrintResult(absl::StrCat("clv_fit_total_", customers), "ms", total_ms);
  ecrm::bench::PrintResult(absl::StrCat("clv_loglik_pass_baseline_", customers), "ms", baseline_ms);
  if (score) ecrm::bench::PrintResult("clv_predict", "customers/s", score_rate);
  std::printf(
      "{\"bench\":\"clv_recovered\",\"customers\":%lld,\"repeat_buyers\":%lld,"
      "\"bgnbd\":{\"r\":%.4f,\"alpha\":%.4f,\"a\":%.4f,\"b\":%.4f,\"log_likelihood\":%.1f,"
      "\"distinct_histories\":%lld,\"evaluations\":%d},"
      "\"gamma_gamma\":{\"p\":%.4f,\"q\":%.4f,\"gamma\":%.4f,\"distinct_histories\":%lld,\"evaluations\":%d},"
      "\"truth\":{\"r\":%.3f,\"alpha\":%.3f,\"a\":%.3f,\"b\":%.3f,\"p\":%.2f,\"q\":%.2f,\"gamma\":%.2f}}\n",
      static_cast<long long>(customers), static_cast<long long>(repeat_buyers), bgnbd.params.r, bgnbd.params.alpha,
      bgnbd.params.a, bgnbd.params.b, bgnbd.log_likelihood, static_cast<long long>(bgnbd.distinct_histories),
      bgnbd.evaluations, gg.params.p, gg.params.q, gg.params.gamma, static_cast<long long>(gg.distinct_histories),
      gg.evaluations, truth.r, truth.alpha, truth.a, truth.b, spend_truth.p, spend_truth.q, spend_truth.gamma);
  return sink == 42 ? 1 : 0;  // keeps the timed loops from being optimised away
}

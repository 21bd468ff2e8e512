#include "clv_simulation.h"

#include <algorithm>
#include <cmath>
#include <random>

namespace ecrm::segmentation {

std::vector<CustomerSummary> SimulateCustomers(const BgNbdParams& purchases, const GammaGammaParams& spend,
                                               const SimulationOptions& options) {
  std::mt19937_64 rng(options.seed);
  std::gamma_distribution<double> rate(purchases.r, 1 / purchases.alpha);
  std::gamma_distribution<double> beta_a(purchases.a, 1), beta_b(purchases.b, 1);
  std::gamma_distribution<double> spend_rate(spend.q, 1 / spend.gamma);
  std::uniform_real_distribution<double> uniform(0, 1);
  const auto max_days = static_cast<int64_t>(std::floor(options.max_age_weeks * 7));
  std::uniform_int_distribution<int64_t> age_days(0, std::max<int64_t>(0, max_days));
  std::vector<CustomerSummary> out;
  out.reserve(static_cast<size_t>(std::max<int64_t>(0, options.customers)));
  for (int64_t i = 0; i < options.customers; ++i) {
    CustomerSummary s;
    s.T = static_cast<double>(age_days(rng)) / 7;
    const double lambda = rate(rng);
    const double ga = beta_a(rng), gb = beta_b(rng);
    const double drop = ga + gb > 0 ? ga / (ga + gb) : 0.5;
    std::exponential_distribution<double> gap(lambda > 0 ? lambda : 1e-300);
    double t = 0;
    while (true) {
      t += gap(rng);
      if (!(t <= s.T)) break;
      ++s.x;
      s.t_x = t;
      if (uniform(rng) < drop) break;
    }
    if (options.whole_days && s.x > 0) s.t_x = std::min(s.T, std::round(s.t_x * 7) / 7);
    if (s.x > 0) {
      const double nu = spend_rate(rng);
      const double x = static_cast<double>(s.x);
      std::gamma_distribution<double> mean_spend(spend.p * x, 1 / (nu * x));
      s.monetary = mean_spend(rng);
    }
    out.push_back(s);
  }
  return out;
}

}  // namespace ecrm::segmentation

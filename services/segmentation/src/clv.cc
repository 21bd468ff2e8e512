#include "clv.h"

#include <nlopt.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "special_functions.h"

namespace ecrm::segmentation {

namespace {

constexpr double kDaysPerWeek = 7;
// Log-parameters are bounded to [−kLogBound, kLogBound] (3e-7 … 3.3e6): an optimum on the
// bound means the data does not identify the model.
constexpr double kLogBound = 15;
constexpr double kOnBound = 1e-3;

bool Finite(double v) { return std::isfinite(v); }

// Sorted distinct values and, for each input, the index of its value.
std::vector<double> Distinct(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  v.erase(std::unique(v.begin(), v.end()), v.end());
  return v;
}
int32_t IndexOf(const std::vector<double>& distinct, double v) {
  return static_cast<int32_t>(std::lower_bound(distinct.begin(), distinct.end(), v) - distinct.begin());
}

// ---------------------------------------------------------------------------------------------
// The optimiser: NLopt's L-BFGS minimising −LL / N over log-parameters, with the gradient.

struct OptimiserResult {
  std::vector<double> log_params;
  int evaluations = 0;
};

class Objective {
 public:
  virtual ~Objective() = default;
  // −LL / total weight at exp(log_params); fills `grad` (d/d log θ) when non-null.
  virtual double Evaluate(const double* log_params, double* grad) = 0;

  // Every evaluation goes through here, which keeps the best point seen: whatever an optimiser
  // returns when it stops early, the fit continues from, and reports, the best point.
  double Track(unsigned n, const double* x, double* grad) {
    ++evaluations;
    double f = Evaluate(x, grad);
    if (!Finite(f)) {
      // Only reachable at extreme parameters; a large finite value sends the search back.
      if (grad != nullptr) std::fill(grad, grad + n, 0.0);
      f = 1e300;
    }
    if (f < best_value) {
      best_value = f;
      best.assign(x, x + n);
    }
    return f;
  }

  int evaluations = 0;
  double best_value = std::numeric_limits<double>::infinity();
  std::vector<double> best;
};

double NloptObjective(unsigned n, const double* x, double* grad, void* data) {
  return static_cast<Objective*>(data)->Track(n, x, grad);
}

using NloptHandle = std::unique_ptr<nlopt_opt_s, decltype(&nlopt_destroy)>;

nlopt_result RunNlopt(nlopt_algorithm algorithm, Objective& objective, std::vector<double>& x, int max_evaluations) {
  NloptHandle opt(nlopt_create(algorithm, static_cast<unsigned>(x.size())), &nlopt_destroy);
  if (opt == nullptr) return NLOPT_OUT_OF_MEMORY;
  nlopt_set_min_objective(opt.get(), &NloptObjective, &objective);
  nlopt_set_lower_bounds1(opt.get(), -kLogBound);
  nlopt_set_upper_bounds1(opt.get(), kLogBound);
  nlopt_set_ftol_rel(opt.get(), 1e-14);
  nlopt_set_xtol_rel(opt.get(), 1e-11);
  nlopt_set_maxeval(opt.get(), max_evaluations);
  double minimum = 0;
  return nlopt_optimize(opt.get(), x.data(), &minimum);
}

// L-BFGS with the analytic gradient from every parameter = 1. When it stops without converging
// (NLopt's generic FAILURE, or ROUNDOFF_LIMITED: the line search cannot make progress in double
// precision), BOBYQA — derivative-free, within the same bounds — continues from the best point.
absl::StatusOr<OptimiserResult> Minimise(Objective& objective, const char* model, const std::vector<const char*>& names,
                                         int max_evaluations) {
  const size_t n = names.size();
  std::vector<double> x(n, 0.0);
  nlopt_result code = RunNlopt(NLOPT_LD_LBFGS, objective, x, max_evaluations);
  if ((code == NLOPT_FAILURE || code == NLOPT_ROUNDOFF_LIMITED) && !objective.best.empty()) {
    x = objective.best;
    const int left = max_evaluations - objective.evaluations;
    code = left > 0 ? RunNlopt(NLOPT_LN_BOBYQA, objective, x, left) : NLOPT_MAXEVAL_REACHED;
  }
  if (objective.best.empty() || objective.best_value >= 1e300) {
    return absl::FailedPreconditionError(absl::StrCat(model, " fit: the likelihood is not finite at any point tried"));
  }
  OptimiserResult result{objective.best, objective.evaluations};
  for (size_t i = 0; i < n; ++i) {
    if (std::abs(result.log_params[i]) > kLogBound - kOnBound) {
      return absl::FailedPreconditionError(
          absl::StrCat(model, " fit: the maximum of the likelihood lies at the bound of ", names[i], " (",
                       std::exp(result.log_params[i]),
                       "): the data does not identify the model (for example every customer has the same history)"));
    }
  }
  if (code == NLOPT_MAXEVAL_REACHED) {
    return absl::ResourceExhaustedError(absl::StrCat(model, " fit: no convergence within ", max_evaluations,
                                                     " evaluations; raise FitOptions::max_evaluations"));
  }
  if (code < 0 && code != NLOPT_ROUNDOFF_LIMITED) {
    return absl::InternalError(absl::StrCat(model, " fit: NLopt failed (", nlopt_result_to_string(code), ")"));
  }
  return result;
}

// ---------------------------------------------------------------------------------------------
// BG/NBD. Per customer (FHL 2005, eq. 6):
//   L = B(a, b+x)/B(a, b) · Γ(r+x) α^r / Γ(r) · [ (α+T)^−(r+x) + δ(x>0) · a/(b+x−1) · (α+t_x)^−(r+x) ]
// The factor before the bracket depends only on x, the bracket's logs only on T and t_x, so each
// evaluation computes them once per distinct value and the per-history loop is one exp and one
// log1p.

class BgNbdObjective : public Objective {
 public:
  explicit BgNbdObjective(std::span<const CustomerSummary> summaries) {
    struct Key {
      int64_t x;
      double t_x, T;
      bool operator<(const Key& o) const { return x != o.x ? x < o.x : t_x != o.t_x ? t_x < o.t_x : T < o.T; }
      bool operator==(const Key& o) const { return x == o.x && t_x == o.t_x && T == o.T; }
    };
    std::vector<Key> keys;
    keys.reserve(summaries.size());
    for (const auto& s : summaries) keys.push_back({s.x, s.x == 0 ? 0.0 : s.t_x, s.T});
    std::sort(keys.begin(), keys.end());
    std::vector<double> xv, tv, txv;
    for (const auto& k : keys) {
      xv.push_back(static_cast<double>(k.x));
      tv.push_back(k.T);
      txv.push_back(k.t_x);
    }
    xs_ = Distinct(std::move(xv));
    Ts_ = Distinct(std::move(tv));
    txs_ = Distinct(std::move(txv));
    x_weight_.assign(xs_.size(), 0);
    for (size_t i = 0; i < keys.size();) {
      size_t j = i;
      while (j < keys.size() && keys[j] == keys[i]) ++j;
      const Row row{IndexOf(xs_, static_cast<double>(keys[i].x)), IndexOf(Ts_, keys[i].T), IndexOf(txs_, keys[i].t_x),
                    static_cast<double>(j - i)};
      rows_.push_back(row);
      x_weight_[row.x] += row.weight;
      total_weight_ += row.weight;
      i = j;
    }
    k_.resize(xs_.size());
    d_.resize(xs_.size());
    gr_.resize(xs_.size());
    ga_.resize(xs_.size());
    gb_.resize(xs_.size());
    inv_bx1_.resize(xs_.size());
    lT_.resize(Ts_.size());
    iT_.resize(Ts_.size());
    ltx_.resize(txs_.size());
    itx_.resize(txs_.size());
  }

  int64_t distinct() const { return static_cast<int64_t>(rows_.size()); }
  double total_weight() const { return total_weight_; }

  double Evaluate(const double* log_params, double* grad) override {
    const double r = std::exp(log_params[0]), alpha = std::exp(log_params[1]);
    const double a = std::exp(log_params[2]), b = std::exp(log_params[3]);
    const double ln_alpha = std::log(alpha);
    const double lg_r = std::lgamma(r), lg_b = std::lgamma(b), lg_ab = std::lgamma(a + b);
    const double psi_r = Digamma(r), psi_b = Digamma(b), psi_ab = Digamma(a + b);
    const double ln_a = std::log(a);
    double ll = 0, dr = 0, dalpha = 0, da = 0, db = 0;
    for (size_t i = 0; i < xs_.size(); ++i) {
      const double x = xs_[i];
      k_[i] = std::lgamma(r + x) - lg_r + r * ln_alpha + lg_ab + std::lgamma(b + x) - lg_b - std::lgamma(a + b + x);
      d_[i] = x > 0 ? ln_a - std::log(b + x - 1) : 0;
      inv_bx1_[i] = x > 0 ? 1 / (b + x - 1) : 0;
      gr_[i] = Digamma(r + x) - psi_r + ln_alpha;
      ga_[i] = psi_ab - Digamma(a + b + x);
      gb_[i] = psi_ab + Digamma(b + x) - psi_b - Digamma(a + b + x);
      const double w = x_weight_[i];
      ll += w * k_[i];
      dr += w * gr_[i];
      dalpha += w * r / alpha;
      da += w * ga_[i];
      db += w * gb_[i];
    }
    for (size_t j = 0; j < Ts_.size(); ++j) {
      lT_[j] = std::log(alpha + Ts_[j]);
      iT_[j] = 1 / (alpha + Ts_[j]);
    }
    for (size_t j = 0; j < txs_.size(); ++j) {
      ltx_[j] = std::log(alpha + txs_[j]);
      itx_[j] = 1 / (alpha + txs_[j]);
    }
    for (const Row& row : rows_) {
      const double x = xs_[row.x];
      const double rx = r + x;
      const double a3 = -rx * lT_[row.T];
      if (x == 0) {
        ll += row.weight * a3;
        dr -= row.weight * lT_[row.T];
        dalpha -= row.weight * rx * iT_[row.T];
        continue;
      }
      const double a4 = d_[row.x] - rx * ltx_[row.tx];
      const double diff = a3 - a4;
      // log(e^a3 + e^a4) and the weight of the second term, without overflow.
      const double lse = std::max(a3, a4) + std::log1p(std::exp(-std::abs(diff)));
      const double w4 = 1 / (1 + std::exp(diff));
      ll += row.weight * lse;
      dr -= row.weight * ((1 - w4) * lT_[row.T] + w4 * ltx_[row.tx]);
      dalpha -= row.weight * rx * ((1 - w4) * iT_[row.T] + w4 * itx_[row.tx]);
      da += row.weight * w4 / a;
      db -= row.weight * w4 * inv_bx1_[row.x];
    }
    if (grad != nullptr) {
      grad[0] = -r * dr / total_weight_;
      grad[1] = -alpha * dalpha / total_weight_;
      grad[2] = -a * da / total_weight_;
      grad[3] = -b * db / total_weight_;
    }
    return -ll / total_weight_;
  }

 private:
  struct Row {
    int32_t x, T, tx;
    double weight;
  };
  std::vector<double> xs_, Ts_, txs_;
  std::vector<Row> rows_;
  std::vector<double> x_weight_;
  double total_weight_ = 0;
  // Per evaluation.
  std::vector<double> k_, d_, gr_, ga_, gb_, inv_bx1_, lT_, iT_, ltx_, itx_;
};

// ---------------------------------------------------------------------------------------------
// Gamma-Gamma. Per repeat buyer with mean spend m over x transactions (Fader & Hardie 2013):
//   f(m | x) = Γ(px+q) / (Γ(px) Γ(q)) · γ^q · x^(px) · m^(px−1) / (γ + m x)^(px+q)

class GammaGammaObjective : public Objective {
 public:
  explicit GammaGammaObjective(std::vector<std::pair<int64_t, double>> buyers) {
    std::sort(buyers.begin(), buyers.end());
    std::vector<double> xv;
    for (const auto& [x, m] : buyers) xv.push_back(static_cast<double>(x));
    xs_ = Distinct(std::move(xv));
    x_weight_.assign(xs_.size(), 0);
    for (size_t i = 0; i < buyers.size();) {
      size_t j = i;
      while (j < buyers.size() && buyers[j] == buyers[i]) ++j;
      const int32_t xi = IndexOf(xs_, static_cast<double>(buyers[i].first));
      const double w = static_cast<double>(j - i);
      rows_.push_back({xi, buyers[i].second, std::log(buyers[i].second), w});
      x_weight_[xi] += w;
      total_weight_ += w;
      i = j;
    }
    ln_x_.resize(xs_.size());
    for (size_t i = 0; i < xs_.size(); ++i) ln_x_[i] = std::log(xs_[i]);
  }

  int64_t distinct() const { return static_cast<int64_t>(rows_.size()); }
  double total_weight() const { return total_weight_; }

  double Evaluate(const double* log_params, double* grad) override {
    const double p = std::exp(log_params[0]), q = std::exp(log_params[1]), gamma = std::exp(log_params[2]);
    const double ln_gamma = std::log(gamma), lg_q = std::lgamma(q), psi_q = Digamma(q);
    double ll = 0, dp = 0, dq = 0, dgamma = 0;
    for (size_t i = 0; i < xs_.size(); ++i) {
      const double x = xs_[i], px = p * x, w = x_weight_[i];
      ll += w * (std::lgamma(px + q) - std::lgamma(px) - lg_q + q * ln_gamma + px * ln_x_[i]);
      const double psi_pxq = Digamma(px + q);
      dp += w * x * (psi_pxq - Digamma(px) + ln_x_[i]);
      dq += w * (psi_pxq - psi_q + ln_gamma);
      dgamma += w * q / gamma;
    }
    for (const Row& row : rows_) {
      const double x = xs_[row.x], px = p * x;
      const double denominator = gamma + row.m * x;
      const double ld = std::log(denominator);
      ll += row.weight * ((px - 1) * row.ln_m - (px + q) * ld);
      dp += row.weight * x * (row.ln_m - ld);
      dq -= row.weight * ld;
      dgamma -= row.weight * (px + q) / denominator;
    }
    if (grad != nullptr) {
      grad[0] = -p * dp / total_weight_;
      grad[1] = -q * dq / total_weight_;
      grad[2] = -gamma * dgamma / total_weight_;
    }
    return -ll / total_weight_;
  }

 private:
  struct Row {
    int32_t x;
    double m, ln_m, weight;
  };
  std::vector<double> xs_, ln_x_, x_weight_;
  std::vector<Row> rows_;
  double total_weight_ = 0;
};

absl::Status ValidateAll(std::span<const CustomerSummary> summaries) {
  for (size_t i = 0; i < summaries.size(); ++i) {
    if (auto st = ValidateSummary(summaries[i], absl::StrCat("summaries[", i, "]")); !st.ok()) return st;
  }
  return absl::OkStatus();
}

bool PositiveFinite(double v) { return v > 0 && Finite(v); }

}  // namespace

// ---------------------------------------------------------------------------------------------

std::vector<std::pair<int64_t, CustomerSummary>> SummarizePurchases(std::vector<DatedPurchase> purchases,
                                                                    absl::CivilDay calibration_end) {
  std::sort(purchases.begin(), purchases.end(), [](const DatedPurchase& l, const DatedPurchase& r) {
    return l.customer != r.customer ? l.customer < r.customer : l.day < r.day;
  });
  std::vector<std::pair<int64_t, CustomerSummary>> out;
  for (size_t i = 0; i < purchases.size();) {
    const int64_t customer = purchases[i].customer;
    size_t end = i;
    while (end < purchases.size() && purchases[end].customer == customer) ++end;
    const absl::CivilDay first = purchases[i].day;
    if (first <= calibration_end) {
      CustomerSummary s;
      double repeat_spend = 0;
      absl::CivilDay last = first;
      for (size_t k = i; k < end && purchases[k].day <= calibration_end;) {
        const absl::CivilDay day = purchases[k].day;
        double amount = 0;
        for (; k < end && purchases[k].day == day; ++k) amount += purchases[k].amount;
        if (day != first) {
          ++s.x;
          repeat_spend += amount;
          last = day;
        }
      }
      s.t_x = static_cast<double>(last - first) / kDaysPerWeek;
      s.T = static_cast<double>(calibration_end - first) / kDaysPerWeek;
      s.monetary = s.x > 0 ? repeat_spend / static_cast<double>(s.x) : 0;
      out.emplace_back(customer, s);
    }
    i = end;
  }
  return out;
}

absl::Status ValidateSummary(const CustomerSummary& s, absl::string_view field) {
  auto bad = [&](absl::string_view name, absl::string_view rule) {
    return absl::InvalidArgumentError(absl::StrCat(field, ".", name, ": ", rule));
  };
  if (s.x < 0) return bad("x", "must be ≥ 0");
  if (!Finite(s.T) || s.T < 0) return bad("T", "must be a finite number ≥ 0");
  if (!Finite(s.t_x) || s.t_x < 0 || s.t_x > s.T) return bad("t_x", "must lie in [0, T]");
  if (s.x == 0 && s.t_x != 0) return bad("t_x", "must be 0 when x = 0");
  if (!Finite(s.monetary) || s.monetary < 0) return bad("monetary", "must be a finite number ≥ 0");
  return absl::OkStatus();
}

absl::StatusOr<BgNbdFit> FitBgNbd(std::span<const CustomerSummary> summaries, const FitOptions& options) {
  if (auto st = ValidateAll(summaries); !st.ok()) return st;
  const auto n = static_cast<int64_t>(summaries.size());
  if (n < options.min_customers) {
    return absl::FailedPreconditionError(
        absl::StrCat("BG/NBD fit: ", n, " customers, at least ", options.min_customers, " are needed"));
  }
  if (std::none_of(summaries.begin(), summaries.end(), [](const CustomerSummary& s) { return s.x > 0; })) {
    return absl::FailedPreconditionError(
        "BG/NBD fit: no customer has a repeat purchase, so the drop-out process cannot be estimated");
  }
  BgNbdObjective objective(summaries);
  auto result = Minimise(objective, "BG/NBD", {"r", "alpha", "a", "b"}, options.max_evaluations);
  if (!result.ok()) return result.status();
  BgNbdFit fit;
  const auto& lp = result->log_params;
  fit.params = {std::exp(lp[0]), std::exp(lp[1]), std::exp(lp[2]), std::exp(lp[3])};
  fit.log_likelihood = -objective.Evaluate(lp.data(), nullptr) * objective.total_weight();
  fit.customers = n;
  fit.distinct_histories = objective.distinct();
  fit.evaluations = result->evaluations;
  return fit;
}

absl::StatusOr<GammaGammaFit> FitGammaGamma(std::span<const CustomerSummary> summaries, const FitOptions& options) {
  if (auto st = ValidateAll(summaries); !st.ok()) return st;
  std::vector<std::pair<int64_t, double>> buyers;
  int64_t excluded = 0;
  for (const auto& s : summaries) {
    if (s.x == 0) continue;
    if (s.monetary > 0) {
      buyers.emplace_back(s.x, s.monetary);
    } else {
      ++excluded;
    }
  }
  const auto n = static_cast<int64_t>(buyers.size());
  if (n < options.min_customers) {
    return absl::FailedPreconditionError(absl::StrCat("Gamma-Gamma fit: ", n,
                                                      " repeat buyers with a positive mean spend, at least ",
                                                      options.min_customers, " are needed"));
  }
  GammaGammaObjective objective(std::move(buyers));
  auto result = Minimise(objective, "Gamma-Gamma", {"p", "q", "gamma"}, options.max_evaluations);
  if (!result.ok()) return result.status();
  GammaGammaFit fit;
  const auto& lp = result->log_params;
  fit.params = {std::exp(lp[0]), std::exp(lp[1]), std::exp(lp[2])};
  fit.log_likelihood = -objective.Evaluate(lp.data(), nullptr) * objective.total_weight();
  fit.customers = n;
  fit.excluded = excluded;
  fit.distinct_histories = objective.distinct();
  fit.evaluations = result->evaluations;
  return fit;
}

double BgNbdLogLikelihood(const BgNbdParams& p, const CustomerSummary& s) {
  const double x = static_cast<double>(s.x), rx = p.r + x;
  const double k = std::lgamma(rx) - std::lgamma(p.r) + p.r * std::log(p.alpha) + std::lgamma(p.a + p.b) +
                   std::lgamma(p.b + x) - std::lgamma(p.b) - std::lgamma(p.a + p.b + x);
  const double a3 = -rx * std::log(p.alpha + s.T);
  if (s.x == 0) return k + a3;
  const double a4 = std::log(p.a) - std::log(p.b + x - 1) - rx * std::log(p.alpha + s.t_x);
  return k + std::max(a3, a4) + std::log1p(std::exp(-std::abs(a3 - a4)));
}

double GammaGammaLogLikelihood(const GammaGammaParams& g, const CustomerSummary& s) {
  const double x = static_cast<double>(s.x), px = g.p * x;
  return std::lgamma(px + g.q) - std::lgamma(px) - std::lgamma(g.q) + g.q * std::log(g.gamma) + px * std::log(x) +
         (px - 1) * std::log(s.monetary) - (px + g.q) * std::log(g.gamma + s.monetary * x);
}

double ProbabilityAlive(const BgNbdParams& p, const CustomerSummary& s) {
  if (s.x == 0) return 1;
  const double x = static_cast<double>(s.x);
  // 1 / (1 + a/(b+x−1) · ((α+T)/(α+t_x))^(r+x)); exp overflowing to +inf gives 0, not NaN.
  const double log_odds_dead =
      std::log(p.a) - std::log(p.b + x - 1) + (p.r + x) * (std::log(p.alpha + s.T) - std::log(p.alpha + s.t_x));
  return 1 / (1 + std::exp(log_odds_dead));
}

absl::StatusOr<double> ConditionalExpectedPurchases(const BgNbdParams& p, const CustomerSummary& s, double t) {
  if (std::isnan(t) || t == std::numeric_limits<double>::infinity()) {
    return absl::InvalidArgumentError("expected purchases: the horizon t must be a finite number of weeks");
  }
  if (!(t > 0)) return 0.0;
  const double x = static_cast<double>(s.x);
  const double A = p.r + x;         // shape of λ's posterior
  const double c1 = p.a + p.b + x;  // a + b + x
  const double c = c1 - 1;          // the 2F1's c in FHL's eq. 10
  const double sr = t / (p.alpha + s.T);
  // N = E over p ~ Beta(a, b + x) of (1 − (1 + p·s)^−A) / p, the expectation for a customer
  // alive at T; E[Y(t) | x, t_x, T] = P(alive) · N. FHL's eq. 10 writes N as
  // c/(a−1) · [1 − (1−z)^A · 2F1(A, b+x; c; z)] with z = s/(1+s), which divides 0 by 0 at a = 1
  // and has a pole at c = 0; the two forms below are the same function without either.
  double n = 0;
  bool done = false;
  if (sr <= 0.5) {
    // Pfaff's transformation, then the series of 1 − 2F1 term by term:
    //   N = A s · 3F2(A+1, a, 1; a+b+x, 2; −s)     (alternating; used while it does not cancel)
    auto series = HypergeometricSeries({A + 1, p.a, 1}, {c1, 2}, -sr);
    if (series.ok() && series->abs_mantissa <= 1e3 * std::abs(series->mantissa)) {
      n = A * sr * series->mantissa * std::exp(series->log_scale);
      done = true;
    }
  }
  if (!done) {
    // Euler's transformation 2F1(A, B; c; z) = (1−z)^(c−A−B) 2F1(c−A, c−B; c; z), c − B = a − 1:
    //   N = c · (1 − (1−z)^(a−1)) / (a−1) − (1−z)^(a−1) · (c−A) · z · 3F2(c−A+1, a, 1; a+b+x, 2; z)
    const double z = sr / (1 + sr);
    const double log1mz = -std::log1p(sr);  // ln(1 − z)
    const double am1 = p.a - 1;
    const double e1 = am1 == 0 ? -log1mz : -std::expm1(am1 * log1mz) / am1;
    double second = 0;
    if (c - A != 0) {
      auto series = HypergeometricSeries({c - A + 1, p.a, 1}, {c1, 2}, z);
      if (!series.ok()) return series.status();
      second = (c - A) * z * series->mantissa * std::exp(series->log_scale + am1 * log1mz);
    }
    n = c * e1 - second;
  }
  const double expected = ProbabilityAlive(p, s) * n;
  if (!Finite(expected)) {
    return absl::OutOfRangeError(
        absl::StrCat("expected purchases: not representable for t / (alpha + T) = ", sr, " with these parameters"));
  }
  return std::max(0.0, expected);
}

double ExpectedAverageSpend(const GammaGammaParams& g, const CustomerSummary& s) {
  const double x = static_cast<double>(s.x);
  const double m = s.x > 0 ? s.monetary : 0;
  return g.p * (g.gamma + x * m) / (g.p * x + g.q - 1);
}

absl::StatusOr<LifetimeValueModel> LifetimeValueModel::Create(const BgNbdParams& purchases,
                                                              const GammaGammaParams& spend,
                                                              const ValueOptions& options) {
  const std::array<std::pair<const char*, double>, 7> params = {{{"r", purchases.r},
                                                                 {"alpha", purchases.alpha},
                                                                 {"a", purchases.a},
                                                                 {"b", purchases.b},
                                                                 {"p", spend.p},
                                                                 {"q", spend.q},
                                                                 {"gamma", spend.gamma}}};
  for (const auto& [name, value] : params) {
    if (!PositiveFinite(value)) {
      return absl::InvalidArgumentError(absl::StrCat("lifetime value model: ", name, " must be positive and finite"));
    }
  }
  if (spend.q <= 1) {
    return absl::FailedPreconditionError(
        absl::StrCat("lifetime value model: Gamma-Gamma q = ", spend.q,
                     " ≤ 1, so the expected spend of a customer without repeat purchases is infinite"));
  }
  if (!(options.purchases_horizon_weeks >= 0) || !(options.value_horizon_weeks >= 0) ||
      !Finite(options.purchases_horizon_weeks) || !Finite(options.value_horizon_weeks)) {
    return absl::InvalidArgumentError("lifetime value model: horizons must be finite and ≥ 0");
  }
  return LifetimeValueModel(purchases, spend, options);
}

absl::StatusOr<CustomerValue> LifetimeValueModel::Predict(const CustomerSummary& s) const {
  if (auto st = ValidateSummary(s, "summary"); !st.ok()) return st;
  CustomerValue v;
  v.probability_alive = ProbabilityAlive(purchases_, s);
  auto near = ConditionalExpectedPurchases(purchases_, s, options_.purchases_horizon_weeks);
  if (!near.ok()) return near.status();
  auto year = ConditionalExpectedPurchases(purchases_, s, options_.value_horizon_weeks);
  if (!year.ok()) return year.status();
  v.expected_purchases = *near;
  v.expected_spend = ExpectedAverageSpend(spend_, s);
  v.value = *year * v.expected_spend;
  return v;
}

}  // namespace ecrm::segmentation

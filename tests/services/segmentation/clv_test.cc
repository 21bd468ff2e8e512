// BG/NBD and Gamma-Gamma: per-customer quantities against independent computations, fits on
// synthetic data with known parameters, edge cases and errors.
#include "clv.h"

#include <catch2/catch.hpp>
#include <cmath>
#include <functional>
#include <vector>

#include "clv_simulation.h"
#include "special_functions.h"

namespace seg = ecrm::segmentation;
using seg::BgNbdParams;
using seg::CustomerSummary;

namespace {

const BgNbdParams kCdnow{.r = 0.243, .alpha = 4.414, .a = 0.793, .b = 2.426};
const seg::GammaGammaParams kCdnowSpend{.p = 6.25, .q = 3.74, .gamma = 15.44};

// Adaptive Simpson in long double, with a minimum depth so narrow features are not skipped.
long double Simpson(const std::function<long double(long double)>& f, long double lo, long double hi, long double flo,
                    long double fmid, long double fhi, long double whole, long double eps, int depth, int min_depth) {
  const long double mid = (lo + hi) / 2, lm = (lo + mid) / 2, rm = (mid + hi) / 2;
  const long double flm = f(lm), frm = f(rm);
  const long double left = (mid - lo) / 6 * (flo + 4 * flm + fmid);
  const long double right = (hi - mid) / 6 * (fmid + 4 * frm + fhi);
  const long double delta = left + right - whole;
  if (depth <= 0 || (min_depth <= 0 && std::abs(delta) <= 15 * eps)) return left + right + delta / 15;
  return Simpson(f, lo, mid, flo, flm, fmid, left, eps / 2, depth - 1, min_depth - 1) +
         Simpson(f, mid, hi, fmid, frm, fhi, right, eps / 2, depth - 1, min_depth - 1);
}
long double Integrate(const std::function<long double(long double)>& f, long double lo, long double hi,
                      long double eps) {
  const long double flo = f(lo), fmid = f((lo + hi) / 2), fhi = f(hi);
  return Simpson(f, lo, hi, flo, fmid, fhi, (hi - lo) / 6 * (flo + 4 * fmid + fhi), eps, 60, 8);
}

// An independent computation of E[Y(t) | x, t_x, T]: P(alive) times the expectation, over the
// posterior p ~ Beta(a, b + x), of the purchases of a customer alive at T,
//   N = ∫ Beta(p; a, b+x) · (1 − (1 + p t/(α+T))^−(r+x)) / p dp,
// by quadrature in long double. Where a < 1 (b + x < 1) the density is infinite at 0 (at 1);
// the substitution p = v^(1/a) (1 − p = w^(1/(b+x))) removes that on that half.
double ReferenceExpectedPurchases(const BgNbdParams& p, const CustomerSummary& c, double t) {
  const long double a = p.a, B = p.b + c.x, A = p.r + c.x, s = t / (p.alpha + c.T);
  auto h = [&](long double q) { return q == 0 ? A * s : -std::expm1(-A * std::log1p(q * s)) / q; };
  const long double log_beta = std::lgamma(a) + std::lgamma(B) - std::lgamma(a + B);
  auto power = [](long double e, long double log_base) { return e == 0 ? 0.0L : e * log_base; };  // 0 · −∞ = 0
  auto lower = [&](long double v) {                                                               // p ∈ [0, 1/2]
    if (a < 1) {
      const long double q = std::pow(v, 1 / a);
      return std::exp(power(B - 1, std::log1p(-q)) - log_beta) * h(q) / a;
    }
    return std::exp(power(a - 1, std::log(v)) + power(B - 1, std::log1p(-v)) - log_beta) * h(v);
  };
  auto upper = [&](long double w) {  // 1 − p ∈ [0, 1/2]
    if (B < 1) {
      const long double q = 1 - std::pow(w, 1 / B);
      return std::exp(power(a - 1, std::log(q)) - log_beta) * h(q) / B;
    }
    return std::exp(power(a - 1, std::log1p(-w)) + power(B - 1, std::log(w)) - log_beta) * h(1 - w);
  };
  const long double lower_end = a < 1 ? std::pow(0.5L, a) : 0.5L, upper_end = B < 1 ? std::pow(0.5L, B) : 0.5L;
  long double n = A * s;  // an upper bound; then a coarse estimate sets the final tolerance
  for (long double relative : {1e-6L, 1e-12L}) {
    n = Integrate(lower, 0, lower_end, relative * n) + Integrate(upper, 0, upper_end, relative * n);
  }
  return static_cast<double>(n) * seg::ProbabilityAlive(p, c);
}

// FHL 2005, eq. 10, as printed: needs a ≠ 1 and a + b + x − 1 > 0.
double TextbookExpectedPurchases(const BgNbdParams& p, const CustomerSummary& c, double t) {
  const double x = static_cast<double>(c.x);
  const double z = t / (p.alpha + c.T + t);
  auto f = seg::Hyp2f1(p.r + x, p.b + x, p.a + p.b + x - 1, z);
  REQUIRE(f.ok());
  const double bracket = 1 - std::pow((p.alpha + c.T) / (p.alpha + c.T + t), p.r + x) * *f;
  return (p.a + p.b + x - 1) / (p.a - 1) * bracket * seg::ProbabilityAlive(p, c);
}

double Expected(const BgNbdParams& p, const CustomerSummary& c, double t) {
  auto e = seg::ConditionalExpectedPurchases(p, c, t);
  INFO(e.status().ToString());
  REQUIRE(e.ok());
  return *e;
}

std::vector<CustomerSummary> Histories() {
  return {{.x = 0, .t_x = 0, .T = 38.86},   {.x = 2, .t_x = 30.43, .T = 38.86}, {.x = 0, .t_x = 0, .T = 0},
          {.x = 1, .t_x = 0.14, .T = 0.14}, {.x = 10, .t_x = 30, .T = 39},      {.x = 50, .t_x = 35, .T = 39},
          {.x = 3, .t_x = 1, .T = 200}};
}

}  // namespace

TEST_CASE("BG/NBD: conditional expected purchases equal an independent quadrature over a wide grid") {
  const std::vector<BgNbdParams> params = {
      kCdnow,
      {.r = 0.243, .alpha = 4.414, .a = 1, .b = 2.426},         // a = 1: eq. 10 is 0/0
      {.r = 0.243, .alpha = 4.414, .a = 1 + 1e-9, .b = 2.426},  // …and next to it
      {.r = 0.243, .alpha = 4.414, .a = 0.999999, .b = 2.426},  //
      {.r = 0.5, .alpha = 2, .a = 0.5, .b = 0.5},               // x = 0: eq. 10's c = a + b − 1 = 0, a pole
      {.r = 0.5, .alpha = 2, .a = 0.3, .b = 0.4},               // c < 0
      {.r = 0.5, .alpha = 2, .a = 0.2, .b = 0.05},              // b + x < 1: Beta singular at p = 1
      {.r = 0.243, .alpha = 4.414, .a = 50, .b = 500},          // large a
      {.r = 2, .alpha = 1, .a = 200, .b = 20},                  //
      {.r = 1e-3, .alpha = 4.414, .a = 0.793, .b = 2.426},      // tiny r
      {.r = 20, .alpha = 50, .a = 5, .b = 0.8},                 // large r, a
      {.r = 0.243, .alpha = 0.05, .a = 0.793, .b = 2.426},      // small α: t/(α+T) up to 10^4
  };
  int compared = 0;
  for (const auto& p : params) {
    for (const auto& c : Histories()) {
      for (double t : {0.5, 2.0, 90.0 / 7, 39.0, 52.0, 520.0}) {
        INFO("r " << p.r << " alpha " << p.alpha << " a " << p.a << " b " << p.b << " x " << c.x << " t_x " << c.t_x
                  << " T " << c.T << " t " << t);
        const double got = Expected(p, c, t);
        const double want = ReferenceExpectedPurchases(p, c, t);
        CHECK(std::isfinite(got));
        CHECK(got == Approx(want).epsilon(1e-8).margin(1e-300));
        ++compared;
      }
    }
  }
  CHECK(compared == 12 * 7 * 6);
}

TEST_CASE("BG/NBD: conditional expected purchases equal FHL's eq. 10 with 2F1 where it is defined") {
  for (const BgNbdParams& p : {kCdnow, BgNbdParams{.r = 2, .alpha = 1, .a = 3, .b = 5},
                               BgNbdParams{.r = 0.1, .alpha = 10, .a = 0.3, .b = 8}}) {
    for (const auto& c : Histories()) {
      for (double t : {0.5, 13.0, 39.0, 52.0, 104.0}) {
        INFO("a " << p.a << " x " << c.x << " T " << c.T << " t " << t);
        CHECK(Expected(p, c, t) == Approx(TextbookExpectedPurchases(p, c, t)).epsilon(1e-9));
      }
    }
  }
}

TEST_CASE("BG/NBD: the two series forms meet where the method switches (t = (alpha + T) / 2)") {
  for (const auto& c : Histories()) {
    const double t = (kCdnow.alpha + c.T) / 2;
    INFO("x " << c.x << " T " << c.T);
    CHECK(Expected(kCdnow, c, t * (1 - 1e-12)) == Approx(Expected(kCdnow, c, t * (1 + 1e-12))).epsilon(1e-10));
  }
}

TEST_CASE("BG/NBD: probability alive") {
  CHECK(seg::ProbabilityAlive(kCdnow, {.x = 0, .t_x = 0, .T = 38}) == 1);
  // Customer 1 of the paper's data.
  const double p1 = seg::ProbabilityAlive(kCdnow, {.x = 2, .t_x = 30.43, .T = 38.86});
  const double by_hand = 1 / (1 + 0.793 / (2.426 + 2 - 1) * std::pow((4.414 + 38.86) / (4.414 + 30.43), 0.243 + 2));
  CHECK(p1 == Approx(by_hand).epsilon(1e-14));
  // A recent last purchase is more likely alive than an old one; a huge gap gives 0, not NaN.
  CHECK(seg::ProbabilityAlive(kCdnow, {.x = 5, .t_x = 38, .T = 39}) >
        seg::ProbabilityAlive(kCdnow, {.x = 5, .t_x = 10, .T = 39}));
  const double gone = seg::ProbabilityAlive(kCdnow, {.x = 2000, .t_x = 0.1, .T = 1e6});
  CHECK(gone == 0);
  CHECK(seg::ProbabilityAlive(kCdnow, {.x = 3, .t_x = 20, .T = 20}) == Approx(1 / (1 + 0.793 / (2.426 + 2))));
}

TEST_CASE("BG/NBD and Gamma-Gamma: never NaN on edge cases") {
  const std::vector<BgNbdParams> params = {kCdnow,
                                           {.r = 1e-6, .alpha = 1e-6, .a = 1e-6, .b = 1e-6},
                                           {.r = 1e6, .alpha = 1e6, .a = 1e6, .b = 1e6},
                                           {.r = 1, .alpha = 1, .a = 1, .b = 1}};
  const std::vector<CustomerSummary> histories = {{.x = 0, .t_x = 0, .T = 0},
                                                  {.x = 0, .t_x = 0, .T = 1e4},
                                                  {.x = 1, .t_x = 0, .T = 0},
                                                  {.x = 1000, .t_x = 52, .T = 52, .monetary = 1e-9},
                                                  {.x = 1, .t_x = 52, .T = 52, .monetary = 1e9}};
  for (const auto& p : params) {
    for (const auto& c : histories) {
      INFO("r " << p.r << " x " << c.x << " T " << c.T);
      CHECK(std::isfinite(seg::BgNbdLogLikelihood(p, c)));
      const double alive = seg::ProbabilityAlive(p, c);
      CHECK(alive >= 0);
      CHECK(alive <= 1);
      CHECK(Expected(p, c, 0) == 0);
      for (double t : {1.0, 52.0}) {
        auto e = seg::ConditionalExpectedPurchases(p, c, t);
        if (e.ok()) {
          CHECK(std::isfinite(*e));
          CHECK(*e >= 0);
        } else {
          CHECK(e.status().code() == absl::StatusCode::kOutOfRange);  // t/(α+T) = 5·10^7: refused, not NaN
          CHECK(p.alpha == 1e-6);
          CHECK(c.T == 0);
        }
      }
      if (c.x > 0 && c.monetary > 0) CHECK(std::isfinite(seg::GammaGammaLogLikelihood(kCdnowSpend, c)));
      CHECK(std::isfinite(seg::ExpectedAverageSpend(kCdnowSpend, c)));
    }
  }
  CHECK(seg::ConditionalExpectedPurchases(kCdnow, {.x = 1, .t_x = 1, .T = 2}, INFINITY).status().code() ==
        absl::StatusCode::kInvalidArgument);
  CHECK(seg::ConditionalExpectedPurchases(kCdnow, {.x = 1, .t_x = 1, .T = 2}, NAN).status().code() ==
        absl::StatusCode::kInvalidArgument);
  // x = 0, T = 0: the likelihood of "bought once, just now" is 1.
  CHECK(seg::BgNbdLogLikelihood(kCdnow, {.x = 0, .t_x = 0, .T = 0}) == Approx(0).margin(1e-12));
}

TEST_CASE("Summaries from dated purchases: same-day purchases count once, the holdout is ignored") {
  using D = absl::CivilDay;
  const D end(1997, 9, 30);
  auto s = seg::SummarizePurchases(
      {
          {.customer = 7, .day = D(1997, 1, 1), .amount = 10},
          {.customer = 7, .day = D(1997, 1, 1), .amount = 5},    // same day as the first: one transaction
          {.customer = 7, .day = D(1997, 1, 15), .amount = 20},  //
          {.customer = 7, .day = D(1997, 1, 15), .amount = 4},   // same day: 24 in all
          {.customer = 7, .day = D(1997, 3, 5), .amount = 6},    //
          {.customer = 7, .day = D(1997, 10, 1), .amount = 99},  // after calibration: holdout
          {.customer = 3, .day = D(1997, 9, 30), .amount = 1},   // first purchase on the last day
          {.customer = 9, .day = D(1997, 10, 2), .amount = 1},   // first purchase after: not a customer yet
      },
      end);
  REQUIRE(s.size() == 2);
  CHECK(s[0].first == 3);
  CHECK(s[0].second.x == 0);
  CHECK(s[0].second.T == 0);
  CHECK(s[1].first == 7);
  const CustomerSummary& c = s[1].second;
  CHECK(c.x == 2);
  CHECK(c.t_x == Approx(63.0 / 7));
  CHECK(c.T == Approx(272.0 / 7));
  CHECK(c.monetary == Approx((24.0 + 6) / 2));
}

TEST_CASE("Summaries are validated, naming the field") {
  CHECK(seg::ValidateSummary({.x = 1, .t_x = 2, .T = 3}, "s").ok());
  auto code = [](const CustomerSummary& c) { return seg::ValidateSummary(c, "summaries[4]"); };
  CHECK(code({.x = -1}).message() == "summaries[4].x: must be ≥ 0");
  CHECK(code({.x = 1, .t_x = 4, .T = 3}).message() == "summaries[4].t_x: must lie in [0, T]");
  CHECK(code({.x = 0, .t_x = 1, .T = 3}).message() == "summaries[4].t_x: must be 0 when x = 0");
  CHECK(code({.x = 0, .t_x = 0, .T = std::nan("")}).message() == "summaries[4].T: must be a finite number ≥ 0");
  CHECK(code({.x = 1, .t_x = 1, .T = 3, .monetary = -2}).message() ==
        "summaries[4].monetary: must be a finite number ≥ 0");
  std::vector<CustomerSummary> many(20, {.x = 1, .t_x = 1, .T = 2, .monetary = 3});
  many[17].t_x = 5;
  auto fit = seg::FitBgNbd(many);
  CHECK(fit.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(fit.status().message() == "summaries[17].t_x: must lie in [0, T]");
}

TEST_CASE("Fits recover the parameters of synthetic customers drawn from the models") {
  const BgNbdParams truth{.r = 0.5, .alpha = 6, .a = 0.7, .b = 3};
  const seg::GammaGammaParams spend{.p = 4, .q = 5, .gamma = 60};
  const auto customers =
      seg::SimulateCustomers(truth, spend, {.customers = 200'000, .max_age_weeks = 78, .seed = 20240901});
  auto fit = seg::FitBgNbd(customers);
  INFO(fit.status().ToString());
  REQUIRE(fit.ok());
  INFO("r " << fit->params.r << " alpha " << fit->params.alpha << " a " << fit->params.a << " b " << fit->params.b
            << " distinct " << fit->distinct_histories << " evaluations " << fit->evaluations);
  // 200,000 customers: standard errors are 1-3% of each parameter; 10% is a wide margin.
  CHECK(fit->params.r == Approx(truth.r).epsilon(0.1));
  CHECK(fit->params.alpha == Approx(truth.alpha).epsilon(0.1));
  CHECK(fit->params.a == Approx(truth.a).epsilon(0.1));
  CHECK(fit->params.b == Approx(truth.b).epsilon(0.1));
  CHECK(fit->distinct_histories < 200'000);

  // The fit's log-likelihood is the sum of the per-customer ones, and a maximum: every
  // parameter moved by ±0.1% lowers it.
  double sum = 0;
  for (const auto& c : customers) sum += seg::BgNbdLogLikelihood(fit->params, c);
  CHECK(fit->log_likelihood == Approx(sum).epsilon(1e-10));
  for (int i = 0; i < 4; ++i) {
    for (double f : {0.999, 1.001}) {
      BgNbdParams moved = fit->params;
      double* field[] = {&moved.r, &moved.alpha, &moved.a, &moved.b};
      *field[i] *= f;
      double ll = 0;
      for (const auto& c : customers) ll += seg::BgNbdLogLikelihood(moved, c);
      INFO("parameter " << i << " × " << f);
      CHECK(ll < fit->log_likelihood);
    }
  }

  auto gg = seg::FitGammaGamma(customers);
  INFO(gg.status().ToString());
  REQUIRE(gg.ok());
  INFO("p " << gg->params.p << " q " << gg->params.q << " gamma " << gg->params.gamma);
  CHECK(gg->params.p == Approx(spend.p).epsilon(0.1));
  CHECK(gg->params.q == Approx(spend.q).epsilon(0.1));
  CHECK(gg->params.gamma == Approx(spend.gamma).epsilon(0.1));
  double gg_sum = 0;
  for (const auto& c : customers) {
    if (c.x > 0) gg_sum += seg::GammaGammaLogLikelihood(gg->params, c);
  }
  CHECK(gg->log_likelihood == Approx(gg_sum).epsilon(1e-10));
}

TEST_CASE("Fits fail with a clear status when the data cannot be fitted") {
  using absl::StatusCode;
  CHECK(seg::FitBgNbd({}).status().code() == StatusCode::kFailedPrecondition);
  const std::vector<CustomerSummary> one = {{.x = 2, .t_x = 30, .T = 39, .monetary = 10}};
  auto single = seg::FitBgNbd(one);
  CHECK(single.status().code() == StatusCode::kFailedPrecondition);
  CHECK(single.status().message() == "BG/NBD fit: 1 customers, at least 10 are needed");

  const std::vector<CustomerSummary> nobody_returns(50, {.x = 0, .t_x = 0, .T = 20});
  auto none = seg::FitBgNbd(nobody_returns);
  CHECK(none.status().code() == StatusCode::kFailedPrecondition);
  CHECK_THAT(std::string(none.status().message()), Catch::Contains("no customer has a repeat purchase"));
  auto no_spend = seg::FitGammaGamma(nobody_returns);
  CHECK(no_spend.status().code() == StatusCode::kFailedPrecondition);
  CHECK_THAT(std::string(no_spend.status().message()), Catch::Contains("0 repeat buyers"));

  const std::vector<CustomerSummary> identical(1000, {.x = 2, .t_x = 30, .T = 39, .monetary = 10});
  auto same = seg::FitBgNbd(identical);
  INFO(same.status().ToString());
  CHECK(same.status().code() == StatusCode::kFailedPrecondition);
  CHECK_THAT(std::string(same.status().message()), Catch::Contains("does not identify the model"));
  auto same_spend = seg::FitGammaGamma(identical);
  INFO(same_spend.status().ToString());
  CHECK(same_spend.status().code() == StatusCode::kFailedPrecondition);

  // Repeat buyers with no spend (refunded) are left out of Gamma-Gamma and counted.
  auto mixed = seg::SimulateCustomers(kCdnow, kCdnowSpend, {.customers = 5000, .seed = 7});
  int zeroed = 0;
  for (auto& c : mixed) {
    if (c.x > 0 && zeroed < 10) {
      c.monetary = 0;
      ++zeroed;
    }
  }
  auto gg = seg::FitGammaGamma(mixed);
  REQUIRE(gg.ok());
  CHECK(gg->excluded == 10);
}

TEST_CASE("Lifetime value: purchases in 90 days, value over 52 weeks undiscounted") {
  auto model = seg::LifetimeValueModel::Create(kCdnow, kCdnowSpend);
  REQUIRE(model.ok());
  const CustomerSummary c{.x = 2, .t_x = 30.43, .T = 38.86, .monetary = 22.35};
  auto v = model->Predict(c);
  REQUIRE(v.ok());
  CHECK(v->probability_alive == seg::ProbabilityAlive(kCdnow, c));
  CHECK(v->expected_purchases == Approx(Expected(kCdnow, c, 90.0 / 7)).epsilon(1e-14));
  CHECK(v->expected_spend == Approx(6.25 * (15.44 + 2 * 22.35) / (6.25 * 2 + 3.74 - 1)).epsilon(1e-14));
  CHECK(v->value == Approx(Expected(kCdnow, c, 52) * v->expected_spend).epsilon(1e-14));
  // A customer without repeat purchases is expected to spend the population mean p γ / (q − 1).
  auto newcomer = model->Predict({.x = 0, .t_x = 0, .T = 0});
  REQUIRE(newcomer.ok());
  CHECK(newcomer->expected_spend == Approx(6.25 * 15.44 / 2.74));
  CHECK(newcomer->probability_alive == 1);

  CHECK(model->Predict({.x = 1, .t_x = 3, .T = 2}).status().code() == absl::StatusCode::kInvalidArgument);
  auto heavy_tail = seg::LifetimeValueModel::Create(kCdnow, {.p = 6, .q = 0.9, .gamma = 15});
  CHECK(heavy_tail.status().code() == absl::StatusCode::kFailedPrecondition);
  auto zero = seg::LifetimeValueModel::Create({.r = 0, .alpha = 1, .a = 1, .b = 1}, kCdnowSpend);
  CHECK(zero.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(zero.status().message() == "lifetime value model: r must be positive and finite");
}

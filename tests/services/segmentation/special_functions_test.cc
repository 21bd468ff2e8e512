// Digamma and the hypergeometric series against closed forms.
#include "special_functions.h"

#include <catch2/catch.hpp>
#include <cmath>

namespace seg = ecrm::segmentation;

namespace {

double F(double a, double b, double c, double z) {
  auto v = seg::Hyp2f1(a, b, c, z);
  INFO("2F1(" << a << ", " << b << "; " << c << "; " << z << "): " << v.status().ToString());
  REQUIRE(v.ok());
  return *v;
}

}  // namespace

TEST_CASE("Digamma: known values and the recurrence") {
  constexpr double kEulerGamma = 0.57721566490153286;
  CHECK(seg::Digamma(1) == Approx(-kEulerGamma).epsilon(1e-14));
  CHECK(seg::Digamma(2) == Approx(1 - kEulerGamma).epsilon(1e-14));
  CHECK(seg::Digamma(0.5) == Approx(-kEulerGamma - 2 * std::log(2.0)).epsilon(1e-14));
  CHECK(seg::Digamma(10) == Approx(2.2517525890667211).epsilon(1e-14));
  // ψ(x + 1) − ψ(x) = 1/x across the switch from recurrence to asymptotic series (x = 10); the
  // difference of two ψ near ln x loses digits as 1/x shrinks.
  for (double x : {1e-6, 0.01, 0.3, 5.5, 9.0, 9.99, 10.0, 12.25, 100.0, 1e6}) {
    INFO("x = " << x);
    CHECK(seg::Digamma(x + 1) - seg::Digamma(x) ==
          Approx(1 / x).epsilon(1e-14).margin(8e-16 * std::abs(seg::Digamma(x))));
  }
  CHECK(std::isnan(seg::Digamma(0)));
  CHECK(std::isnan(seg::Digamma(-1)));
}

TEST_CASE("Hyp2f1: closed forms inside and outside the unit disc") {
  // 2F1(1, 1; 2; z) = −ln(1 − z) / z
  for (double z : {0.001, 0.5, 0.9, 0.99, 0.999, -0.3, -0.5, -0.7, -3.0, -100.0}) {
    INFO("z = " << z);
    CHECK(F(1, 1, 2, z) == Approx(-std::log1p(-z) / z).epsilon(1e-13));
  }
  // 2F1(a, b; b; z) = (1 − z)^−a
  CHECK(F(0.7, 2.3, 2.3, 0.8) == Approx(std::pow(0.2, -0.7)).epsilon(1e-13));
  CHECK(F(0.7, 2.3, 2.3, -5) == Approx(std::pow(6.0, -0.7)).epsilon(1e-13));
  // 2F1(1/2, 1/2; 3/2; z²) = arcsin(z) / z;  2F1(1/2, 1; 3/2; −z²) = arctan(z) / z
  CHECK(F(0.5, 0.5, 1.5, 0.81) == Approx(std::asin(0.9) / 0.9).epsilon(1e-13));
  CHECK(F(0.5, 1, 1.5, -4) == Approx(std::atan(2.0) / 2).epsilon(1e-13));
  // A terminating series: 2F1(−2, 3; 4; z) = 1 − 2·3/4 z + 3·4/(4·5) z².
  CHECK(F(-2, 3, 4, 0.7) == Approx(1 - 1.5 * 0.7 + 0.6 * 0.49).epsilon(1e-14));
  CHECK(F(2.5, 1.5, 3.5, 0) == 1);
}

TEST_CASE("HypergeometricSeries: sums beyond a double's range keep a log scale") {
  // 2F1(400, 1; 1; 0.9) = 0.1^−400 = 10^400.
  auto s = seg::HypergeometricSeries({400, 1}, {1}, 0.9);
  REQUIRE(s.ok());
  CHECK(std::log(s->mantissa) + s->log_scale == Approx(400 * std::log(10.0)).epsilon(1e-12));
  CHECK(s->log_scale > 0);
  auto v = seg::Hyp2f1(400, 1, 1, 0.9);
  CHECK(v.status().code() == absl::StatusCode::kOutOfRange);
  // 3F2(1, 1, 1; 2, 2; z) = Li2(z)/z; Li2(1/2) = π²/12 − ln²2 / 2.
  auto li2 = seg::HypergeometricSeries({1, 1, 1}, {2, 2}, 0.5);
  REQUIRE(li2.ok());
  const double ln2 = std::log(2.0);
  CHECK(li2->mantissa * std::exp(li2->log_scale) * 0.5 == Approx(M_PI * M_PI / 12 - ln2 * ln2 / 2).epsilon(1e-14));
}

TEST_CASE("Hyp2f1: errors instead of wrong numbers") {
  CHECK(seg::Hyp2f1(1, 1, 2, 1).status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(seg::Hyp2f1(1, 1, 2, 1.5).status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(seg::Hyp2f1(1, 1, -2, 0.5).status().code() == absl::StatusCode::kInvalidArgument);  // a pole
  CHECK(seg::Hyp2f1(1, 1, 2, std::nan("")).status().code() == absl::StatusCode::kInvalidArgument);
  // Converging like (1 − 1e-9)^n needs ~10^10 terms: refused at the bound, not summed wrongly.
  auto slow = seg::HypergeometricSeries({1, 1}, {1.5}, 1 - 1e-9, 1e-15, 100'000);
  CHECK(slow.status().code() == absl::StatusCode::kOutOfRange);
}

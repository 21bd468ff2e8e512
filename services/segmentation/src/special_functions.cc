#include "special_functions.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace ecrm::segmentation {

double Digamma(double x) {
  if (!(x > 0)) return std::numeric_limits<double>::quiet_NaN();
  double result = 0;
  // ψ(x) = ψ(x + 1) − 1/x until the asymptotic series is accurate.
  while (x < 10) {
    result -= 1 / x;
    x += 1;
  }
  const double inv = 1 / x;
  const double inv2 = inv * inv;
  // ψ(x) ~ ln x − 1/(2x) − Σ B_2k / (2k x^2k): B2 = 1/6, B4 = −1/30, B6 = 1/42, B8 = −1/30,
  // B10 = 5/66, B12 = −691/2730. At x ≥ 10 the first omitted term, B14 / (14 x^14), is below 1e-15.
  const double series =
      inv2 * (1.0 / 12 -
              inv2 * (1.0 / 120 - inv2 * (1.0 / 252 - inv2 * (1.0 / 240 - inv2 * (1.0 / 132 - inv2 * 691.0 / 32760)))));
  return result + std::log(x) - 0.5 * inv - series;
}

namespace {

constexpr int kMaxNumerators = 4;
constexpr double kRescaleAbove = 0x1p+600;
constexpr double kRescaleFactor = 0x1p-600;
const double kRescaleLog = 600 * std::log(2.0);

bool IsNonPositiveInteger(double v) { return v <= 0 && v == std::floor(v); }

}  // namespace

absl::StatusOr<SeriesSum> HypergeometricSeries(std::initializer_list<double> numerators,
                                               std::initializer_list<double> denominators, double z,
                                               double relative_tolerance, int64_t max_terms) {
  const int p = static_cast<int>(numerators.size());
  if (p < 1 || p > kMaxNumerators || static_cast<int>(denominators.size()) != p - 1) {
    return absl::InvalidArgumentError(
        "hypergeometric series: needs 1 to 4 numerator parameters and one fewer denominator");
  }
  if (!std::isfinite(z) || std::abs(z) >= 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("hypergeometric series: |z| must be < 1 for the series to converge (z = ", z, ")"));
  }
  std::array<double, kMaxNumerators> a{};
  std::array<double, kMaxNumerators> b{};  // b[p − 1] = 1: the n! of the series
  std::copy(numerators.begin(), numerators.end(), a.begin());
  std::copy(denominators.begin(), denominators.end(), b.begin());
  b[p - 1] = 1;
  double largest_negative = 0;  // the series' ratios are monotone once n > −min(a_i, b_j)
  for (int i = 0; i < p; ++i) {
    if (!std::isfinite(a[i]) || !std::isfinite(b[i])) {
      return absl::InvalidArgumentError("hypergeometric series: parameters must be finite");
    }
    if (IsNonPositiveInteger(b[i])) {
      return absl::InvalidArgumentError(
          absl::StrCat("hypergeometric series: denominator parameter ", b[i], " is a non-positive integer (a pole)"));
    }
    largest_negative = std::max({largest_negative, -a[i], -b[i]});
  }

  SeriesSum sum{.mantissa = 1, .log_scale = 0, .terms = 1, .abs_mantissa = 1};
  double term = 1;
  for (int64_t n = 0; n < max_terms; ++n) {
    const double dn = static_cast<double>(n);
    double ratio = z;
    for (int i = 0; i < p; ++i) ratio *= (a[i] + dn) / (b[i] + dn);
    term *= ratio;
    if (term == 0) return sum;  // a terminating series (a numerator reached 0), or underflow
    sum.mantissa += term;
    sum.abs_mantissa += std::abs(term);
    ++sum.terms;
    if (std::abs(term) > kRescaleAbove || sum.abs_mantissa > kRescaleAbove) {
      term *= kRescaleFactor;
      sum.mantissa *= kRescaleFactor;
      sum.abs_mantissa *= kRescaleFactor;
      sum.log_scale += kRescaleLog;
    }
    // `term` is t_{n+1}; the ratios from t_{n+1} on use m ≥ n + 1.
    const double m = dn + 1;
    if (m > largest_negative) {
      double bound = std::abs(z);
      for (int i = 0; i < p; ++i) bound *= std::max(1.0, (a[i] + m) / (b[i] + m));
      if (bound < 1) {
        const double tail = std::abs(term) * bound / (1 - bound);
        if (tail <= relative_tolerance * std::abs(sum.mantissa)) return sum;
      }
    }
  }
  return absl::OutOfRangeError(absl::StrCat("hypergeometric series: no convergence within ", max_terms,
                                            " terms (z = ", z, " is too close to 1 for these parameters)"));
}

absl::StatusOr<double> Hyp2f1(double a, double b, double c, double z) {
  if (!(z < 1)) {
    return absl::InvalidArgumentError(absl::StrCat("2F1: z must be < 1 (z = ", z, ")"));
  }
  double log_prefactor = 0;
  absl::StatusOr<SeriesSum> s;
  if (z >= -0.5) {
    s = HypergeometricSeries({a, b}, {c}, z);
  } else {
    log_prefactor = -a * std::log1p(-z);
    s = HypergeometricSeries({a, c - b}, {c}, z / (z - 1));
  }
  if (!s.ok()) return s.status();
  if (s->mantissa == 0) return 0.0;
  const double log_abs = std::log(std::abs(s->mantissa)) + s->log_scale + log_prefactor;
  if (log_abs > std::log(std::numeric_limits<double>::max())) {
    return absl::OutOfRangeError(absl::StrCat("2F1(", a, ", ", b, "; ", c, "; ", z, ") exceeds the range of a double"));
  }
  return std::copysign(std::exp(log_abs), s->mantissa);
}

}  // namespace ecrm::segmentation

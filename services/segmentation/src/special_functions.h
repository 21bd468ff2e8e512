// Special functions the lifetime-value models need: the digamma function (gradients of the
// likelihoods) and generalised hypergeometric series (Gauss's 2F1 and the 3F2 forms of the
// BG/NBD conditional expectation). Pure functions, no state.
#pragma once

#include <cstdint>
#include <initializer_list>

#include "absl/status/statusor.h"

namespace ecrm::segmentation {

// ψ(x) = d/dx ln Γ(x) for x > 0 (recurrence up to x ≥ 10, then the asymptotic series; error
// within a few units in the last place). Returns NaN only for x ≤ 0 or NaN, which callers never pass.
double Digamma(double x);

// The sum of a hypergeometric series Σ t_n, t_0 = 1,
//   t_{n+1} = t_n · z · Π_i (a_i + n) / (Π_j (b_j + n) · (n + 1)),
// with one more numerator than denominators (2F1: {a, b} over {c}; 3F2: {a1, a2, a3} over
// {b1, b2}). The value is mantissa · exp(log_scale): terms are rescaled as they grow, so sums
// far beyond the range of a double are still representable.
struct SeriesSum {
  double mantissa = 0;
  double log_scale = 0;
  int64_t terms = 0;        // terms added
  double abs_mantissa = 0;  // Σ |t_n| on the same scale: abs_mantissa / |mantissa| bounds the cancellation
};

// Sums until a proven bound on the remaining tail is below `relative_tolerance` of the sum:
// once n passes every −a_i and −b_j, each ratio (a_i + m) / (b_i + m) is monotone in m and tends
// to 1, so for m ≥ n every term ratio is at most q_n = |z| · Π_i max(1, (a_i + n) / (b_i + n))
// (pairing each numerator with a denominator, the last with the (n + 1)), and the tail after
// t_n is at most |t_n| · q_n / (1 − q_n). Errors: |z| ≥ 1 or a denominator that is a
// non-positive integer (INVALID_ARGUMENT); no convergence within `max_terms` (OUT_OF_RANGE:
// |z| too close to 1 for these parameters).
absl::StatusOr<SeriesSum> HypergeometricSeries(std::initializer_list<double> numerators,
                                               std::initializer_list<double> denominators, double z,
                                               double relative_tolerance = 1e-15, int64_t max_terms = 10'000'000);

// Gauss's hypergeometric function 2F1(a, b; c; z) for real z < 1: the series above for
// −0.5 ≤ z < 1, Pfaff's transformation 2F1(a, b; c; z) = (1 − z)^−a · 2F1(a, c − b; c; z / (z − 1))
// for z < −0.5 (its argument then lies in (1/3, 1)). Errors as HypergeometricSeries, z ≥ 1
// (INVALID_ARGUMENT: the series diverges; the value at z = 1 is Gauss's Γ formula, not needed
// here) and a result beyond the range of a double (OUT_OF_RANGE).
absl::StatusOr<double> Hyp2f1(double a, double b, double c, double z);

}  // namespace ecrm::segmentation

#include "uplift.h"

#include <openssl/evp.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace ecrm::segmentation {

namespace {

absl::Status ValidateGroup(const GroupOutcome& g, absl::string_view name) {
  if (g.size < 0) return absl::InvalidArgumentError(absl::StrCat(name, ".size: must be ≥ 0"));
  if (g.conversions < 0 || g.conversions > g.size) {
    return absl::InvalidArgumentError(absl::StrCat(name, ".conversions: must lie in [0, ", name, ".size]"));
  }
  return absl::OkStatus();
}

double Rate(const GroupOutcome& g) { return static_cast<double>(g.conversions) / static_cast<double>(g.size); }

}  // namespace

double NormalQuantile(double p) {
  if (!(p > 0 && p < 1)) return std::numeric_limits<double>::quiet_NaN();
  const double kInvSqrt2 = 1 / std::sqrt(2.0);
  const double kInvSqrt2Pi = 1 / std::sqrt(2 * M_PI);
  double low = -40, high = 40, x = 0;
  for (int i = 0; i < 200; ++i) {
    const double cdf = 0.5 * std::erfc(-x * kInvSqrt2);
    const double diff = cdf - p;
    if (diff == 0) return x;
    (diff < 0 ? low : high) = x;
    const double step = diff / (kInvSqrt2Pi * std::exp(-0.5 * x * x));
    double next = x - step;
    if (!(next > low && next < high)) next = 0.5 * (low + high);  // Newton left the bracket: bisect
    if (std::abs(next - x) <= 1e-16 * std::max(1.0, std::abs(x))) return next;
    x = next;
  }
  return x;
}

Interval WilsonInterval(int64_t conversions, int64_t size, double z) {
  const double n = static_cast<double>(size);
  const double p = static_cast<double>(conversions) / n;
  const double z2 = z * z;
  const double denominator = 1 + z2 / n;
  const double center = (p + z2 / (2 * n)) / denominator;
  const double half = z / denominator * std::sqrt(p * (1 - p) / n + z2 / (4 * n * n));
  return {std::max(0.0, center - half), std::min(1.0, center + half)};
}

absl::StatusOr<CampaignStatistics> ComputeCampaignStatistics(const GroupOutcome& treatment, const GroupOutcome& control,
                                                             double confidence) {
  if (auto st = ValidateGroup(treatment, "treatment"); !st.ok()) return st;
  if (auto st = ValidateGroup(control, "control"); !st.ok()) return st;
  if (!(confidence > 0 && confidence < 1)) return absl::InvalidArgumentError("confidence: must lie in (0, 1)");
  const double z = NormalQuantile(1 - (1 - confidence) / 2);

  CampaignStatistics s;
  s.attributed_revenue = treatment.revenue;
  if (treatment.size > 0) s.treatment_rate = Rate(treatment);
  if (control.size > 0) {
    s.control_rate = Rate(control);
    const long double incremental =
        static_cast<long double>(treatment.revenue) -
        static_cast<long double>(control.revenue) * treatment.size / static_cast<long double>(control.size);
    if (std::abs(incremental) < 9.2e18L) s.incremental_revenue = std::llroundl(incremental);
  }
  if (!s.treatment_rate || !s.control_rate) return s;

  const double p1 = *s.treatment_rate, p2 = *s.control_rate;
  const double n1 = static_cast<double>(treatment.size), n2 = static_cast<double>(control.size);
  const double diff = p1 - p2;
  s.absolute_uplift = diff;
  if (p2 > 0) s.relative_uplift = diff / p2;

  // Newcombe (1998), method 10: the difference's interval from each proportion's Wilson interval.
  const Interval w1 = WilsonInterval(treatment.conversions, treatment.size, z);
  const Interval w2 = WilsonInterval(control.conversions, control.size, z);
  const double below = std::hypot(p1 - w1.low, w2.high - p2);
  const double above = std::hypot(w1.high - p1, p2 - w2.low);
  s.uplift_ci = Interval{std::max(-1.0, diff - below), std::min(1.0, diff + above)};

  const double wald_half = z * std::sqrt(p1 * (1 - p1) / n1 + p2 * (1 - p2) / n2);
  s.uplift_ci_wald = Interval{std::max(-1.0, diff - wald_half), std::min(1.0, diff + wald_half)};

  // Pooled two-proportion z-test.
  const double pooled = static_cast<double>(treatment.conversions + control.conversions) / (n1 + n2);
  const double se = std::sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2));
  s.p_value = se > 0 ? std::min(1.0, std::erfc(std::abs(diff / se) / std::sqrt(2.0))) : 1.0;
  return s;
}

uint64_t ControlHash(absl::string_view campaign_id, absl::string_view customer_id) {
  std::string message;
  message.reserve(8 + campaign_id.size() + customer_id.size());
  const uint64_t length = campaign_id.size();
  for (int shift = 56; shift >= 0; shift -= 8) message.push_back(static_cast<char>((length >> shift) & 0xff));
  message.append(campaign_id.data(), campaign_id.size());
  message.append(customer_id.data(), customer_id.size());
  std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
  unsigned int digest_size = 0;
  // EVP_Digest fails only when OpenSSL cannot allocate; the zero digest then puts the customer
  // in the control group for fractions > 0, never in neither.
  EVP_Digest(message.data(), message.size(), digest.data(), &digest_size, EVP_sha256(), nullptr);
  uint64_t value = 0;
  for (int i = 0; i < 8; ++i) value = (value << 8) | digest[i];
  return value;
}

bool InControl(absl::string_view campaign_id, absl::string_view customer_id, double fraction) {
  if (!(fraction > 0)) return false;
  if (fraction >= 1) return true;
  // fraction < 1 has a 53-bit mantissa, so fraction · 2^64 is an exact double below 2^64.
  const auto threshold = static_cast<uint64_t>(std::ldexp(fraction, 64));
  return ControlHash(campaign_id, customer_id) < threshold;
}

}  // namespace ecrm::segmentation

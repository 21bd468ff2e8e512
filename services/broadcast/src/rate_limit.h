// Token buckets for the outbox's rate limits (per channel, per broadcast): `rate` tokens a
// second, up to `burst` saved. Take() reserves a token and says how long to wait before using
// it, so callers from several threads queue fairly without spinning. Per process: replicas
// each keep their own buckets (docs/broadcast.md).
#pragma once

#include <algorithm>
#include <mutex>

#include "absl/time/time.h"

namespace ecrm::broadcast {

class TokenBucket {
 public:
  // rate <= 0: unlimited.
  TokenBucket(double rate, double burst) : rate_(rate), burst_(std::max(1.0, burst)), tokens_(burst_) {}

  // Reserves one token at `now`; returns how long until it may be used (zero when one was saved).
  absl::Duration Take(absl::Time now) {
    if (rate_ <= 0) return absl::ZeroDuration();
    std::lock_guard lock(mu_);
    if (last_ == absl::InfinitePast()) last_ = now;
    if (now > last_) {
      tokens_ = std::min(burst_, tokens_ + absl::ToDoubleSeconds(now - last_) * rate_);
      last_ = now;
    }
    tokens_ -= 1;  // may go negative: a debt the next callers wait out in turn
    if (tokens_ >= 0) return absl::ZeroDuration();
    return absl::Seconds(-tokens_ / rate_);
  }

  double rate() const { return rate_; }

 private:
  const double rate_;
  const double burst_;
  std::mutex mu_;
  double tokens_;
  absl::Time last_ = absl::InfinitePast();
};

}  // namespace ecrm::broadcast

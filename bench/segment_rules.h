// Seeded data shared by the segmentation benchmarks (ecrm-segmentation-bench,
// ecrm-segmentation-latency-bench): a bijective mixer, a small generator, and the varied rules
// the "100 segments" figures save.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace ecrm::bench {

// splitmix64's finaliser: a bijection, so distinct inputs give distinct ids.
inline uint64_t Mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

class Rng {
 public:
  explicit Rng(uint64_t seed) : s_(seed) {}
  uint64_t Next() { return Mix(s_++); }
  int64_t Below(int64_t n) { return static_cast<int64_t>(Next() % static_cast<uint64_t>(n)); }
  bool Chance(double p) { return static_cast<double>(Next() >> 11) * 0x1.0p-53 < p; }

 private:
  uint64_t s_;
};

// 100 varied rules, seeded: 1 to 5 predicates over every kind of field, some with || or !
// (decided customer by customer on what the columnar conjuncts leave).
inline std::vector<std::string> SegmentRules(uint64_t seed, int64_t count) {
  Rng rng(seed * 31 + 17);
  static const char* const kCountries[] = {"GB", "FR", "DE", "ES", "IT", "NL", "US", "IE"};
  static const char* const kTypes[] = {"page_view", "product_view", "email_open", "add_to_cart", "purchase"};
  auto predicate = [&]() -> std::string {
    switch (rng.Below(13)) {
      case 0:
        return absl::StrCat("profile.address.country == \"", kCountries[rng.Below(8)], "\"");
      case 1:
        return absl::StrCat("profile.address.country in [\"", kCountries[rng.Below(8)], "\", \"",
                            kCountries[rng.Below(8)], "\"]");
      case 2:
        return absl::StrCat("consent.", std::vector<std::string>{"email", "sms", "push"}[rng.Below(3)]);
      case 3:
        return absl::StrCat("orders.count >= ", 1 + rng.Below(5));
      case 4:
        return absl::StrCat("orders.total > ", 1000 * (1 + rng.Below(50)));
      case 5:
        return absl::StrCat("days_since(orders.last_at) <= ", 30 * (1 + rng.Below(6)));
      case 6:
        return absl::StrCat("events.count(\"", kTypes[rng.Below(5)], "\", ", 7 * (1 + rng.Below(12)), "d) ",
                            rng.Below(2) ? ">" : ">=", " ", rng.Below(6));
      case 7:
        return absl::StrCat("profile.gender == \"", rng.Below(2) ? "female" : "male", "\"");
      case 8:
        return absl::StrCat("profile.address.city.startsWith(\"City", rng.Below(9) + 1, "\")");
      case 9:
        return absl::StrCat("profile.birth_date < date(\"", 1950 + rng.Below(50), "-01-01\")");
      case 10:
        return absl::StrCat("preferences.preferred_channel == \"", rng.Below(2) ? "email" : "sms", "\"");
      case 11:
        return absl::StrCat("(consent.sms || events.count(\"", kTypes[rng.Below(5)], "\", 14d) > ", rng.Below(3), ")");
      default:
        return absl::StrCat("!(profile.locale == \"", rng.Below(2) ? "en-GB" : "fr-FR", "\")");
    }
  };
  std::vector<std::string> rules;
  for (int64_t i = 0; i < count; ++i) {
    std::vector<std::string> parts;
    for (int64_t k = 1 + rng.Below(5); k > 0; --k) parts.push_back(predicate());
    rules.push_back(absl::StrJoin(parts, " && "));
  }
  return rules;
}

}  // namespace ecrm::bench

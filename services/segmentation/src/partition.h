// --partition=i/n: the customers one replica of the segmentation engine holds. A customer
// belongs to partition FNV-1a-64(customer id) mod n, a hash any tool can compute; every replica
// follows the whole change feed and keeps only its own customers (docs/segmentation.md, "Past
// one machine", says how the replicas' answers are combined).
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace ecrm::segmentation {

struct Partition {
  uint32_t index = 0;
  uint32_t count = 1;

  bool whole() const { return count <= 1; }

  static uint64_t Hash(absl::string_view customer_id) {
    uint64_t h = 14695981039346656037ull;  // FNV-1a, 64 bits
    for (unsigned char c : customer_id) {
      h ^= c;
      h *= 1099511628211ull;
    }
    return h;
  }

  bool Holds(absl::string_view customer_id) const { return whole() || Hash(customer_id) % count == index; }

  // "i/n" with 0 <= i < n <= 4096; "" or "0/1" is the whole population.
  static absl::StatusOr<Partition> Parse(absl::string_view text) {
    Partition p;
    if (text.empty()) return p;
    const size_t slash = text.find('/');
    if (slash == absl::string_view::npos || !absl::SimpleAtoi(text.substr(0, slash), &p.index) ||
        !absl::SimpleAtoi(text.substr(slash + 1), &p.count) || p.count == 0 || p.count > 4096 || p.index >= p.count) {
      return absl::InvalidArgumentError(
          absl::StrCat("--partition must be i/n with 0 <= i < n <= 4096 (e.g. 0/4), not \"", text, "\""));
    }
    return p;
  }

  // Tells replicas' hand-overs apart (idempotency keys): "" for the whole population.
  std::string Suffix() const { return whole() ? "" : absl::StrCat(":p", index, "of", count); }
};

}  // namespace ecrm::segmentation

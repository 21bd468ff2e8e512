// Customers as rendering reads them: from the shared Redis profile cache (with this process's
// local copies of hot profiles) in one round trip, and the ones it misses from the information
// store in one BatchGetCustomers within the caller's deadline. Reads only: the information
// store fills the cache.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "clients/infostore.h"
#include "ecrm/cache/profile_cache.h"
#include "ecrm/infostore/v1/infostore.pb.h"
#include "metrics.h"

namespace ecrm::personalisation {

class Customers {
 public:
  // Either may be null: no cache (every read goes to the store) or no store (only cached
  // customers are found; the others are UNAVAILABLE).
  Customers(cache::ProfileCache* cache, CustomerDirectory* directory, PersonalisationMetrics& metrics)
      : cache_(cache), directory_(directory), metrics_(metrics) {}

  // One result per id, in order: the customer, NOT_FOUND, or UNAVAILABLE / DEADLINE_EXCEEDED
  // when the store could not answer.
  std::vector<absl::StatusOr<infostore::v1::Customer>> Get(absl::Span<const std::string> ids);

 private:
  cache::ProfileCache* cache_;
  CustomerDirectory* directory_;
  PersonalisationMetrics& metrics_;
};

}  // namespace ecrm::personalisation

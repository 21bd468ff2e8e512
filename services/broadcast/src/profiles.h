// Customer profiles for the gate: the shared Redis profile cache first (with this process's
// local copies when enabled), the information store's GetCustomer on a miss or when Redis is
// down, within the caller's deadline.
#pragma once

#include <functional>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "clients/infostore.h"
#include "ecrm/cache/profile_cache.h"

namespace ecrm::broadcast {

class Profiles {
 public:
  // Either may be null: no cache (every read asks the directory), no directory (a miss is
  // UNAVAILABLE).
  Profiles(cache::ProfileCache* cache, CustomerDirectory* directory) : cache_(cache), directory_(directory) {}

  absl::StatusOr<infostore::v1::Customer> Get(const common::v1::CustomerRef& ref, absl::Time deadline);
  // Several customers by id, parallel to `ids`: the cache in one round trip, then the directory
  // for each miss, with the deadline `deadline()` gives at that call.
  std::vector<absl::StatusOr<infostore::v1::Customer>> GetMany(absl::Span<const std::string> ids,
                                                               const std::function<absl::Time()>& deadline);

 private:
  cache::ProfileCache* cache_;
  CustomerDirectory* directory_;
};

}  // namespace ecrm::broadcast

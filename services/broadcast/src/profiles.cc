#include "profiles.h"

namespace ecrm::broadcast {

absl::StatusOr<infostore::v1::Customer> Profiles::Get(const common::v1::CustomerRef& ref, absl::Time deadline) {
  if (cache_ != nullptr && ref.ref_case() == common::v1::CustomerRef::kCustomerId) {
    if (std::optional<cache::CachedProfile> hit = cache_->Get(ref.customer_id())) {
      infostore::v1::Customer c;
      if (c.ParseFromString(hit->data)) return c;
    }
  }
  if (directory_ == nullptr) {
    return absl::UnavailableError(
        "customer: not in the profile cache and no information store is configured (--infostore-address)");
  }
  return directory_->GetCustomer(ref, deadline);
}

}  // namespace ecrm::broadcast

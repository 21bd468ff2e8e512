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

std::vector<absl::StatusOr<infostore::v1::Customer>> Profiles::GetMany(absl::Span<const std::string> ids,
                                                                       const std::function<absl::Time()>& deadline) {
  std::vector<absl::StatusOr<infostore::v1::Customer>> out(ids.size(), absl::UnknownError("not read"));
  std::vector<std::optional<cache::CachedProfile>> hits;
  if (cache_ != nullptr && !ids.empty()) hits = cache_->MultiGet(ids);
  for (size_t i = 0; i < ids.size(); ++i) {
    if (i < hits.size() && hits[i]) {
      infostore::v1::Customer c;
      if (c.ParseFromString(hits[i]->data)) {
        out[i] = std::move(c);
        continue;
      }
    }
    if (directory_ == nullptr) {
      out[i] = absl::UnavailableError(
          "customer: not in the profile cache and no information store is configured (--infostore-address)");
      continue;
    }
    common::v1::CustomerRef ref;
    ref.set_customer_id(ids[i]);
    out[i] = directory_->GetCustomer(ref, deadline());
  }
  return out;
}

}  // namespace ecrm::broadcast

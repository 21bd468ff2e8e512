#include "customers.h"

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"

namespace ecrm::personalisation {

std::vector<absl::StatusOr<infostore::v1::Customer>> Customers::Get(absl::Span<const std::string> ids) {
  std::vector<absl::StatusOr<infostore::v1::Customer>> out(ids.size(), absl::UnknownError("not read"));
  std::vector<size_t> misses;
  if (cache_ != nullptr) {
    std::vector<std::optional<cache::CachedProfile>> cached = cache_->MultiGet(ids);
    for (size_t i = 0; i < ids.size(); ++i) {
      infostore::v1::Customer c;
      if (cached[i] && c.ParseFromString(cached[i]->data)) {
        out[i] = std::move(c);
        metrics_.read_from_cache.Increment();
      } else {
        misses.push_back(i);
      }
    }
  } else {
    for (size_t i = 0; i < ids.size(); ++i) misses.push_back(i);
  }
  if (misses.empty()) return out;
  if (directory_ == nullptr) {
    for (size_t i : misses) {
      out[i] = absl::UnavailableError("customer not in the profile cache and no information store is configured");
    }
    return out;
  }
  constexpr size_t kBatch = 1000;
  for (size_t from = 0; from < misses.size(); from += kBatch) {
    std::vector<std::string> batch;
    for (size_t k = from; k < misses.size() && k < from + kBatch; ++k) batch.push_back(ids[misses[k]]);
    absl::StatusOr<infostore::v1::BatchGetCustomersResponse> resp = directory_->BatchGetCustomers(batch);
    absl::flat_hash_map<std::string, const infostore::v1::Customer*> by_id;
    if (resp.ok()) {
      for (const infostore::v1::Customer& c : resp->customers()) {
        by_id[c.id()] = &c;
        for (const std::string& merged : c.merged_ids()) by_id[merged] = &c;
      }
    }
    for (size_t k = from; k < misses.size() && k < from + kBatch; ++k) {
      size_t i = misses[k];
      if (!resp.ok()) {
        out[i] = resp.status();
      } else if (auto it = by_id.find(ids[i]); it != by_id.end()) {
        out[i] = *it->second;
        metrics_.read_from_store.Increment();
      } else {
        out[i] = absl::NotFoundError(absl::StrCat("customer \"", ids[i], "\" does not exist"));
      }
    }
  }
  return out;
}

}  // namespace ecrm::personalisation

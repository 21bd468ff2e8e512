#include "catalogue.h"

#include <utility>

#include "ecrm/status/macros.h"

namespace ecrm::personalisation {

absl::Status Catalogue::Refresh() {
  if (source_ == nullptr) return absl::OkStatus();
  const absl::Time started = absl::Now();
  auto fresh = std::make_shared<Products>();
  std::string token;
  do {
    ECRM_ASSIGN_OR_RETURN(CataloguePage page, source_->ListProducts(token, 1000));
    for (CatalogueProduct& p : page.products) {
      std::string sku = p.sku;
      (*fresh)[std::move(sku)] = std::move(p);
    }
    token = std::move(page.next_page_token);
  } while (!token.empty());
  std::shared_ptr<const Products> previous = Snapshot();
  if (model_ != nullptr) {
    // Only the categories that changed: a product the model has not seen costs it one entry.
    for (const auto& [sku, p] : *fresh) {
      auto old = previous->find(sku);
      if (old == previous->end() || old->second.category != p.category) model_->SetCategory(sku, p.category);
    }
  }
  std::lock_guard lock(mu_);
  products_ = std::move(fresh);
  loaded_ = true;
  refreshed_at_ = started;
  return absl::OkStatus();
}

std::shared_ptr<const Catalogue::Products> Catalogue::Snapshot() const {
  std::lock_guard lock(mu_);
  return products_;
}

bool Catalogue::loaded() const {
  std::lock_guard lock(mu_);
  return loaded_;
}

absl::Time Catalogue::refreshed_at() const {
  std::lock_guard lock(mu_);
  return refreshed_at_;
}

}  // namespace ecrm::personalisation

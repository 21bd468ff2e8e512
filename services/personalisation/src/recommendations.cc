#include "recommendations.h"

#include "absl/strings/str_cat.h"
#include "ecrm/util/util.h"

namespace ecrm::personalisation {
namespace {

constexpr size_t kMaxIdBytes = 200;

absl::Status CheckMax(int32_t max) {
  if (max < 0 || max > 100) {
    return util::Invalid("max_items", absl::StrCat("is ", max, "; give 1 to 100 (0 means 10)"));
  }
  return absl::OkStatus();
}

// The active-flag check Recommend and SimilarProducts pass to the model: before the catalogue
// has been read (or with none configured) every product may be named.
Recommender::IsActive ActiveIn(const std::shared_ptr<const Catalogue::Products>& products, bool loaded) {
  if (!loaded) return nullptr;
  return [products](absl::string_view sku) {
    auto it = products->find(sku);
    return it != products->end() && it->second.active;
  };
}

void Describe(const std::vector<Recommended>& items, const Catalogue::Products& products,
              google::protobuf::RepeatedPtrField<v1::Recommendation>* out) {
  out->Reserve(static_cast<int>(items.size()));
  for (const Recommended& r : items) {
    v1::Recommendation* rec = out->Add();
    rec->set_sku(r.sku);
    rec->set_score(r.score);
    rec->set_source(std::string(SourceName(r.source)));
    if (auto it = products.find(r.sku); it != products.end()) {
      rec->set_title(it->second.title);
      *rec->mutable_price() = it->second.price;
      rec->set_url(it->second.url);
      rec->set_category(it->second.category);
    }
  }
}

}  // namespace

absl::StatusOr<v1::RecommendResponse> Recommendations::Recommend(const v1::RecommendRequest& req) const {
  if (req.customer_id().empty()) return util::Invalid("customer_id", "is required");
  if (req.customer_id().size() > kMaxIdBytes) return util::Invalid("customer_id", "is longer than 200 bytes");
  ECRM_RETURN_IF_ERROR(CheckMax(req.max_items()));
  if (req.category().size() > 1000) return util::Invalid("category", "is longer than 1,000 bytes");
  const auto products = catalogue_.Snapshot();
  ECRM_ASSIGN_OR_RETURN(std::vector<Recommended> items,
                        model_.Recommend(req.customer_id(), req.max_items(), req.category(),
                                         /*exclude_purchased=*/true, ActiveIn(products, catalogue_.loaded())));
  v1::RecommendResponse out;
  Describe(items, *products, out.mutable_items());
  return out;
}

absl::StatusOr<v1::SimilarProductsResponse> Recommendations::SimilarProducts(
    const v1::SimilarProductsRequest& req) const {
  if (req.sku().empty()) return util::Invalid("sku", "is required");
  if (req.sku().size() > 1000) return util::Invalid("sku", "is longer than 1,000 bytes");
  ECRM_RETURN_IF_ERROR(CheckMax(req.max_items()));
  const auto products = catalogue_.Snapshot();
  const bool loaded = catalogue_.loaded();
  ECRM_ASSIGN_OR_RETURN(std::vector<Recommended> items,
                        model_.SimilarProducts(req.sku(), req.max_items(), ActiveIn(products, loaded)));
  if (items.empty() && loaded && !products->contains(req.sku())) {
    return absl::NotFoundError(absl::StrCat("sku: no product \"", req.sku(),
                                            "\" in the catalogue (as read from the transaction engine at ",
                                            absl::FormatTime(catalogue_.refreshed_at()), ") and nobody bought it"));
  }
  v1::SimilarProductsResponse out;
  Describe(items, *products, out.mutable_items());
  return out;
}

v1::ModelInfo Recommendations::Info() const {
  const ModelStats s = model_.Info();
  v1::ModelInfo out;
  if (s.last_update != absl::InfinitePast()) *out.mutable_trained_at() = util::Ts(absl::ToUnixMicros(s.last_update));
  out.set_purchases(s.purchase_lines);
  out.set_products(s.items);
  out.set_customers(s.customers);
  out.set_item_pairs(s.pairs);
  out.set_memory_bytes(s.memory_bytes);
  if (feed_ != nullptr) {
    out.set_feed_position(feed_->position());
    out.set_feed_changes_read(feed_->changes_read());
    out.set_orders(feed_->orders());
  }
  if (catalogue_.loaded()) {
    *out.mutable_catalogue_refreshed_at() = util::Ts(absl::ToUnixMicros(catalogue_.refreshed_at()));
    out.set_catalogue_products(static_cast<int64_t>(catalogue_.Snapshot()->size()));
  }
  return out;
}

}  // namespace ecrm::personalisation

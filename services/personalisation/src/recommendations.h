// Recommend, SimilarProducts and GetModelInfo: the model's answers described from the catalogue
// (docs/personalisation-recommendations.md, "Serving").
#pragma once

#include "absl/status/statusor.h"
#include "catalogue.h"
#include "ecrm/personalisation/v1/personalisation.pb.h"
#include "recommendation_feed.h"
#include "recommender.h"

namespace ecrm::personalisation {

class Recommendations {
 public:
  // `feed` may be null (no information store: the model stays empty).
  Recommendations(const Recommender& model, const Catalogue& catalogue, const RecommendationFeed* feed)
      : model_(model), catalogue_(catalogue), feed_(feed) {}

  // The customer's products: similar to what they bought, then popular ones; never what they
  // bought, nor products the catalogue does not hold as active (once it has been read).
  absl::StatusOr<v1::RecommendResponse> Recommend(const v1::RecommendRequest& req) const;
  // Products bought together with `sku`, most similar first (active ones only). NOT_FOUND for a
  // SKU the catalogue does not know (once it has been read) and nobody bought.
  absl::StatusOr<v1::SimilarProductsResponse> SimilarProducts(const v1::SimilarProductsRequest& req) const;
  v1::ModelInfo Info() const;

 private:
  const Recommender& model_;
  const Catalogue& catalogue_;
  const RecommendationFeed* const feed_;
};

}  // namespace ecrm::personalisation

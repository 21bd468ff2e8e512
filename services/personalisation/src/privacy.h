// What personalisation holds on a person, for the shared CustomerData service: the offers
// shown to them (impressions recorded by DecideOffers) and the recommendation model's
// per-customer state (the orders it learnt from the customer; SetRecommendationFeed). Templates
// hold no personal data and rendering keeps none (customers are read per render from the cache
// or the information store, never stored).
#pragma once

#include "ecrm/server/customer_data_owner.h"
#include "offers.h"
#include "recommendation_feed.h"

namespace ecrm::personalisation {

class PersonalisationPrivacy final : public server::CustomerDataOwner {
 public:
  // `offers`: null when the engine keeps none (tests of the model alone).
  explicit PersonalisationPrivacy(Offers* offers = nullptr) : offers_(offers) {}
  absl::StatusOr<std::string> ExportCustomerData(const privacy::v1::ExportCustomerDataRequest& req) override;
  absl::StatusOr<privacy::v1::EraseCustomerDataResponse> EraseCustomerData(
      const privacy::v1::EraseCustomerDataRequest& req) override;
  // The model and its saved orders (null: none). Set once, before serving.
  void SetRecommendationFeed(RecommendationFeed* feed) { feed_ = feed; }

 private:
  Offers* offers_;
  RecommendationFeed* feed_ = nullptr;
};

}  // namespace ecrm::personalisation

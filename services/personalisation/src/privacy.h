// What personalisation holds on a person, for the shared CustomerData service. Templates hold
// no personal data and rendering keeps none (customers are read per render from the cache or
// the information store, never stored). The recommendation model's per-customer state (the
// orders it learnt from the customer, the products they hold in it) is exported and erased
// (SetRecommendationFeed); a customer with nothing held exports "{}". Offers' impressions join
// here when they are stored.
#pragma once

#include "ecrm/server/customer_data_owner.h"
#include "recommendation_feed.h"

namespace ecrm::personalisation {

class PersonalisationPrivacy final : public server::CustomerDataOwner {
 public:
  absl::StatusOr<std::string> ExportCustomerData(const privacy::v1::ExportCustomerDataRequest& req) override;
  absl::StatusOr<privacy::v1::EraseCustomerDataResponse> EraseCustomerData(
      const privacy::v1::EraseCustomerDataRequest& req) override;
  // The model and its saved orders (null: none). Set once, before serving.
  void SetRecommendationFeed(RecommendationFeed* feed) { feed_ = feed; }

 private:
  RecommendationFeed* feed_ = nullptr;
};

}  // namespace ecrm::personalisation

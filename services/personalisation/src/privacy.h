// What personalisation holds on a person, for the shared CustomerData service: the offers
// shown to them (impressions recorded by DecideOffers). Templates hold no personal data and
// rendering keeps none (customers are read per render from the cache or the information store,
// never stored); the recommendation model's per-customer state joins here when it is stored.
#pragma once

#include "ecrm/server/customer_data_owner.h"
#include "offers.h"

namespace ecrm::personalisation {

class PersonalisationPrivacy final : public server::CustomerDataOwner {
 public:
  explicit PersonalisationPrivacy(Offers& offers) : offers_(offers) {}
  absl::StatusOr<std::string> ExportCustomerData(const privacy::v1::ExportCustomerDataRequest& req) override;
  absl::StatusOr<privacy::v1::EraseCustomerDataResponse> EraseCustomerData(
      const privacy::v1::EraseCustomerDataRequest& req) override;

 private:
  Offers& offers_;
};

}  // namespace ecrm::personalisation

// What personalisation holds on a person, for the shared CustomerData service. Templates hold
// no personal data and rendering keeps none (customers are read per render from the cache or
// the information store, never stored), so for now the export is "{}" and the erasure removes
// nothing; offers' impressions and the recommendation model's per-customer state join here
// when they are stored.
#pragma once

#include "ecrm/server/customer_data_owner.h"

namespace ecrm::personalisation {

class PersonalisationPrivacy final : public server::CustomerDataOwner {
 public:
  absl::StatusOr<std::string> ExportCustomerData(const privacy::v1::ExportCustomerDataRequest& req) override;
  absl::StatusOr<privacy::v1::EraseCustomerDataResponse> EraseCustomerData(
      const privacy::v1::EraseCustomerDataRequest& req) override;
};

}  // namespace ecrm::personalisation

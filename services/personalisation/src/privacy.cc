#include "privacy.h"

#include "ecrm/util/util.h"

namespace ecrm::personalisation {

absl::StatusOr<std::string> PersonalisationPrivacy::ExportCustomerData(
    const privacy::v1::ExportCustomerDataRequest& req) {
  if (req.customer_id().empty()) return util::Invalid("customer_id", "required");
  return std::string("{}");
}

absl::StatusOr<privacy::v1::EraseCustomerDataResponse> PersonalisationPrivacy::EraseCustomerData(
    const privacy::v1::EraseCustomerDataRequest& req) {
  if (req.customer_id().empty()) return util::Invalid("customer_id", "required");
  privacy::v1::EraseCustomerDataResponse out;
  out.set_engine("personalisation");
  *out.mutable_erased_at() = util::Ts(util::NowMicros());
  return out;
}

}  // namespace ecrm::personalisation

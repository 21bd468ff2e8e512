#include "privacy.h"

#include "ecrm/status/macros.h"
#include "ecrm/util/util.h"

namespace ecrm::personalisation {
namespace {

template <typename Req>
std::vector<std::string> AllIds(const Req& req) {
  std::vector<std::string> ids = {req.customer_id()};
  ids.insert(ids.end(), req.merged_customer_ids().begin(), req.merged_customer_ids().end());
  return ids;
}

}  // namespace

absl::StatusOr<std::string> PersonalisationPrivacy::ExportCustomerData(
    const privacy::v1::ExportCustomerDataRequest& req) {
  if (req.customer_id().empty()) return util::Invalid("customer_id", "required");
  ECRM_ASSIGN_OR_RETURN(std::string impressions, offers_.ExportImpressions(AllIds(req)));
  return absl::StrCat("{\"offer_impressions\":", impressions, "}");
}

absl::StatusOr<privacy::v1::EraseCustomerDataResponse> PersonalisationPrivacy::EraseCustomerData(
    const privacy::v1::EraseCustomerDataRequest& req) {
  if (req.customer_id().empty()) return util::Invalid("customer_id", "required");
  ECRM_ASSIGN_OR_RETURN(int64_t erased, offers_.EraseImpressions(AllIds(req)));
  privacy::v1::EraseCustomerDataResponse out;
  out.set_engine("personalisation");
  privacy::v1::ErasedItem* item = out.add_items();
  item->set_kind("offer_impressions");
  item->set_count(erased);
  item->set_action("deleted");
  *out.mutable_erased_at() = util::Ts(util::NowMicros());
  return out;
}

}  // namespace ecrm::personalisation

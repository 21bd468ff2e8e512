#include "privacy.h"

#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>

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
  std::string impressions = "[]";
  if (offers_ != nullptr) {
    ECRM_ASSIGN_OR_RETURN(impressions, offers_->ExportImpressions(AllIds(req)));
  }
  google::protobuf::Struct model;
  google::protobuf::ListValue* list = (*model.mutable_fields())["orders_learnt"].mutable_list_value();
  if (feed_ != nullptr) {
    for (const LearntOrder& o : feed_->CustomerOrders(req.customer_id())) {
      google::protobuf::Struct* order = list->add_values()->mutable_struct_value();
      (*order->mutable_fields())["order_id"].set_string_value(o.order_id);
      (*order->mutable_fields())["occurred_at"].set_string_value(
          absl::FormatTime(absl::RFC3339_full, o.at, absl::UTCTimeZone()));
      google::protobuf::ListValue* skus = (*order->mutable_fields())["skus"].mutable_list_value();
      for (const std::string& sku : o.skus) skus->add_values()->set_string_value(sku);
    }
  }
  std::string model_json;
  if (!google::protobuf::util::MessageToJsonString(model, &model_json).ok()) {
    return absl::InternalError("the recommendation model's export did not serialise");
  }
  return absl::StrCat("{\"offer_impressions\":", impressions, ",\"recommendation_model\":", model_json, "}");
}

absl::StatusOr<privacy::v1::EraseCustomerDataResponse> PersonalisationPrivacy::EraseCustomerData(
    const privacy::v1::EraseCustomerDataRequest& req) {
  if (req.customer_id().empty()) return util::Invalid("customer_id", "required");
  if (feed_ != nullptr) ECRM_RETURN_IF_ERROR(feed_->Forget(req.customer_id()));
  int64_t erased = 0;
  if (offers_ != nullptr) {
    ECRM_ASSIGN_OR_RETURN(erased, offers_->EraseImpressions(AllIds(req)));
  }
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

#include "privacy.h"

#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>

#include "ecrm/status/macros.h"
#include "ecrm/util/util.h"

namespace ecrm::personalisation {

absl::StatusOr<std::string> PersonalisationPrivacy::ExportCustomerData(
    const privacy::v1::ExportCustomerDataRequest& req) {
  if (req.customer_id().empty()) return util::Invalid("customer_id", "required");
  if (feed_ == nullptr) return std::string("{}");
  const std::vector<LearntOrder> orders = feed_->CustomerOrders(req.customer_id());
  if (orders.empty()) return std::string("{}");
  google::protobuf::Struct doc;
  google::protobuf::ListValue* list =
      (*(*doc.mutable_fields())["recommendation_model"].mutable_struct_value()->mutable_fields())["orders_learnt"]
          .mutable_list_value();
  for (const LearntOrder& o : orders) {
    google::protobuf::Struct* order = list->add_values()->mutable_struct_value();
    (*order->mutable_fields())["order_id"].set_string_value(o.order_id);
    (*order->mutable_fields())["occurred_at"].set_string_value(
        absl::FormatTime(absl::RFC3339_full, o.at, absl::UTCTimeZone()));
    google::protobuf::ListValue* skus = (*order->mutable_fields())["skus"].mutable_list_value();
    for (const std::string& sku : o.skus) skus->add_values()->set_string_value(sku);
  }
  std::string json;
  if (!google::protobuf::util::MessageToJsonString(doc, &json).ok()) {
    return absl::InternalError("the recommendation model's export did not serialise");
  }
  return json;
}

absl::StatusOr<privacy::v1::EraseCustomerDataResponse> PersonalisationPrivacy::EraseCustomerData(
    const privacy::v1::EraseCustomerDataRequest& req) {
  if (req.customer_id().empty()) return util::Invalid("customer_id", "required");
  if (feed_ != nullptr) ECRM_RETURN_IF_ERROR(feed_->Forget(req.customer_id()));
  privacy::v1::EraseCustomerDataResponse out;
  out.set_engine("personalisation");
  *out.mutable_erased_at() = util::Ts(util::NowMicros());
  return out;
}

}  // namespace ecrm::personalisation

#include "privacy.h"

#include "campaigns.h"

#include <shared_mutex>

#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>

#include "absl/strings/str_cat.h"
#include "ecrm/status/macros.h"
#include "ecrm/util/util.h"

namespace ecrm::segmentation {
namespace {

std::vector<std::string> AllIds(const std::string& id, const google::protobuf::RepeatedPtrField<std::string>& merged) {
  std::vector<std::string> ids = {id};
  ids.insert(ids.end(), merged.begin(), merged.end());
  return ids;
}

}  // namespace

absl::StatusOr<std::string> SegmentationPrivacy::ExportCustomerData(const privacy::v1::ExportCustomerDataRequest& req) {
  google::protobuf::Struct doc;
  google::protobuf::ListValue* customers = (*doc.mutable_fields())["customers"].mutable_list_value();
  std::shared_lock lock(features_.mutex());
  for (const std::string& id : AllIds(req.customer_id(), req.merged_customer_ids())) {
    std::optional<CustomerNo> n = features_.Find(id);
    if (!n || !features_.IsLive(*n)) continue;
    auto& fields = *customers->add_values()->mutable_struct_value()->mutable_fields();
    fields["customer_id"].set_string_value(id);
    if (!google::protobuf::util::JsonStringToMessage(util::ToJson(features_.ToRecord(*n)),
                                                     fields["features"].mutable_struct_value())
             .ok()) {
      return absl::InternalError("the customer's features do not convert to JSON");
    }
    const CustomerScoreReport report = scores_.ReportLocked(*n);
    auto& scores = *fields["scores"].mutable_struct_value()->mutable_fields();
    if (report.computed_at != absl::InfinitePast()) {
      scores["computed_at"].set_string_value(
          absl::FormatTime(absl::RFC3339_full, report.computed_at, absl::UTCTimeZone()));
      if (report.rfm) {
        scores["rfm_r"].set_number_value(report.rfm->r);
        scores["rfm_f"].set_number_value(report.rfm->f);
        scores["rfm_m"].set_number_value(report.rfm->m);
        scores["rfm_cell"].set_string_value(std::string(RfmCellName(report.rfm->cell)));
      }
      auto number = [&](const char* name, const std::optional<double>& v) {
        if (v) scores[name].set_number_value(*v);
      };
      number("engagement", report.engagement);
      number("probability_alive", report.probability_alive);
      number("expected_purchases_90d", report.expected_purchases);
      number("expected_order_value_minor", report.expected_order_value);
      number("predicted_value_12m_minor", report.value);
      if (report.value || report.expected_order_value) scores["currency"].set_string_value(report.currency);
    }
    ECRM_ASSIGN_OR_RETURN(auto assigned, Campaigns::MembershipsOf(db_, id));
    google::protobuf::ListValue* campaigns = fields["campaigns"].mutable_list_value();
    for (const auto& [campaign_id, control] : assigned) {
      auto& campaign = *campaigns->add_values()->mutable_struct_value()->mutable_fields();
      campaign["campaign_id"].set_string_value(campaign_id);
      campaign["group"].set_string_value(control ? "control" : "treatment");
    }
    google::protobuf::ListValue* segments = fields["segments"].mutable_list_value();
    for (const auto& [segment_id, name] : segments_.MembershipsOf(*n)) {
      auto& segment = *segments->add_values()->mutable_struct_value()->mutable_fields();
      segment["id"].set_string_value(segment_id);
      segment["name"].set_string_value(name);
    }
  }
  if (customers->values_size() == 0) return std::string("{}");
  return util::ToJson(doc);
}

absl::StatusOr<privacy::v1::EraseCustomerDataResponse> SegmentationPrivacy::EraseCustomerData(
    const privacy::v1::EraseCustomerDataRequest& req) {
  const std::vector<std::string> ids = AllIds(req.customer_id(), req.merged_customer_ids());
  FeedConsumer::Erased erased;
  if (feed_ != nullptr) {
    ECRM_ASSIGN_OR_RETURN(erased, feed_->Erase(ids, [&](CustomerNo n) { scores_.Forget(n); }));
  } else {  // nothing in memory: only what an earlier run saved
    ECRM_RETURN_IF_ERROR(db_.InTransaction([&](sql::Connection& c) -> absl::Status {
      erased = {};
      std::vector<CustomerNo> numbers;  // their events in the events log
      for (const std::string& id : ids) {
        ECRM_ASSIGN_OR_RETURN(
            sql::Result saved,
            c.Execute("SELECT number FROM customers WHERE customer_id = $1 AND number IS NOT NULL", {id}));
        if (!saved.empty()) numbers.push_back(static_cast<CustomerNo>(saved.front().Int(0)));
        ECRM_RETURN_IF_ERROR(FeedConsumer::DeleteSaved(c, id, erased));
      }
      return FeedConsumer::ScrubLog(c, numbers);
    }));
  }
  privacy::v1::EraseCustomerDataResponse out;
  for (const auto& [kind, count] :
       std::vector<std::pair<std::string, int64_t>>{{"customer features", erased.saved},
                                                    {"segment memberships", erased.memberships},
                                                    {"undelivered segment events", erased.queued},
                                                    {"campaign assignments and outcomes", erased.campaign_rows}}) {
    auto* item = out.add_items();
    item->set_kind(kind);
    item->set_count(count);
    item->set_action("deleted");
  }
  return out;
}

}  // namespace ecrm::segmentation

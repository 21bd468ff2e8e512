#include "ecrm/server/customer_data.h"

#include <google/protobuf/util/time_util.h>

#include "ecrm/server/offload.h"
#include "ecrm/status/macros.h"

namespace ecrm::server {
namespace {

absl::Status ValidateCustomerId(const std::string& id) {
  if (id.empty()) return absl::InvalidArgumentError("customer_id: is required");
  return absl::OkStatus();
}

}  // namespace

grpc::ServerUnaryReactor* CustomerDataService::ExportCustomerData(grpc::CallbackServerContext* ctx,
                                                                  const privacy::v1::ExportCustomerDataRequest* req,
                                                                  privacy::v1::ExportCustomerDataResponse* resp) {
  return Offload(executor_, ctx, [this, req, resp]() -> absl::Status {
    ECRM_RETURN_IF_ERROR(ValidateCustomerId(req->customer_id()));
    ECRM_ASSIGN_OR_RETURN(*resp->mutable_json_document(), owner_.ExportCustomerData(*req));
    resp->set_engine(engine_);
    *resp->mutable_exported_at() = google::protobuf::util::TimeUtil::GetCurrentTime();
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* CustomerDataService::EraseCustomerData(grpc::CallbackServerContext* ctx,
                                                                 const privacy::v1::EraseCustomerDataRequest* req,
                                                                 privacy::v1::EraseCustomerDataResponse* resp) {
  return Offload(executor_, ctx, [this, req, resp]() -> absl::Status {
    ECRM_RETURN_IF_ERROR(ValidateCustomerId(req->customer_id()));
    ECRM_ASSIGN_OR_RETURN(*resp, owner_.EraseCustomerData(*req));
    resp->set_engine(engine_);
    if (!resp->has_erased_at()) *resp->mutable_erased_at() = google::protobuf::util::TimeUtil::GetCurrentTime();
    return absl::OkStatus();
  });
}

}  // namespace ecrm::server

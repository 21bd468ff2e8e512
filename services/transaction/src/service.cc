#include "service.h"

#include "ecrm/status/macros.h"
#include "ecrm/util/util.h"

namespace ecrm::transaction {

grpc::ServerUnaryReactor* CustomerDataService::ExportCustomerData(grpc::CallbackServerContext* ctx,
                                                                  const privacy::v1::ExportCustomerDataRequest* req,
                                                                  privacy::v1::ExportCustomerDataResponse* resp) {
  return server::Offload(executor_, ctx, resp,
                         [this, req]() -> absl::StatusOr<privacy::v1::ExportCustomerDataResponse> {
                           privacy::v1::ExportCustomerDataResponse out;
                           ECRM_ASSIGN_OR_RETURN(*out.mutable_json_document(), store_.ExportCustomerData(*req));
                           out.set_engine("transaction");
                           *out.mutable_exported_at() = util::Ts(util::NowMicros());
                           return out;
                         });
}

grpc::ServerUnaryReactor* CustomerDataService::EraseCustomerData(grpc::CallbackServerContext* ctx,
                                                                 const privacy::v1::EraseCustomerDataRequest* req,
                                                                 privacy::v1::EraseCustomerDataResponse* resp) {
  return server::Offload(executor_, ctx, resp, [this, req] { return store_.EraseCustomerData(*req); });
}

}  // namespace ecrm::transaction

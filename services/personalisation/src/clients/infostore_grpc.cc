#include "clients/infostore_grpc.h"

#include <grpcpp/client_context.h>

#include "absl/strings/str_cat.h"
#include "ecrm/infostore/v1/infostore.grpc.pb.h"
#include "ecrm/server/channel.h"

namespace ecrm::personalisation {

absl::StatusOr<infostore::v1::BatchGetCustomersResponse> GrpcCustomerDirectory::BatchGetCustomers(
    absl::Span<const std::string> ids) {
  grpc::ClientContext ctx;
  server::PrepareOutboundCall(ctx, timeout_);
  infostore::v1::BatchGetCustomersRequest req;
  for (const std::string& id : ids) req.add_customer_ids(id);
  infostore::v1::BatchGetCustomersResponse resp;
  grpc::Status s = infostore::v1::InformationStore::NewStub(channel_)->BatchGetCustomers(&ctx, req, &resp);
  if (s.ok()) return resp;
  if (s.error_code() == grpc::StatusCode::INVALID_ARGUMENT) {
    return absl::InvalidArgumentError(absl::StrCat("customer_ids: ", s.error_message()));
  }
  if (s.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED) {
    return absl::DeadlineExceededError(absl::StrCat("information store: no answer in time: ", s.error_message()));
  }
  return absl::UnavailableError(absl::StrCat("information store: reading customers failed (",
                                             static_cast<int>(s.error_code()), "): ", s.error_message()));
}

}  // namespace ecrm::personalisation

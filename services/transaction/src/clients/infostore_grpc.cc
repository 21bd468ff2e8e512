#include "clients/infostore_grpc.h"

#include <grpcpp/client_context.h>

#include "absl/strings/str_cat.h"
#include "ecrm/infostore/v1/infostore.grpc.pb.h"
#include "ecrm/server/channel.h"

namespace ecrm::transaction {

absl::StatusOr<std::string> InfostoreResolver::Resolve(const common::v1::CustomerRef& ref) {
  grpc::ClientContext ctx;
  server::PrepareOutboundCall(ctx, timeout_);
  infostore::v1::GetCustomerRequest req;
  *req.mutable_customer() = ref;
  infostore::v1::Customer customer;
  grpc::Status s = infostore::v1::InformationStore::NewStub(channel_)->GetCustomer(&ctx, req, &customer);
  switch (s.error_code()) {
    case grpc::StatusCode::OK:
      return customer.id();
    case grpc::StatusCode::NOT_FOUND:
      return absl::NotFoundError(
          absl::StrCat("customer.identifier: no customer has this identifier (", s.error_message(), ")"));
    case grpc::StatusCode::INVALID_ARGUMENT:
      return absl::InvalidArgumentError(absl::StrCat("customer.", s.error_message()));
    default:
      return absl::UnavailableError(
          absl::StrCat("information store: resolving the customer failed: ", s.error_message()));
  }
}

}  // namespace ecrm::transaction

#include "clients/infostore_grpc.h"

#include <grpcpp/client_context.h>

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "ecrm/infostore/v1/infostore.grpc.pb.h"
#include "ecrm/server/channel.h"

namespace ecrm::broadcast {

absl::StatusOr<infostore::v1::Customer> GrpcCustomerDirectory::GetCustomer(const common::v1::CustomerRef& ref,
                                                                           absl::Time deadline) {
  grpc::ClientContext ctx;
  // The smaller of the configured timeout, the caller's deadline and the RPC's own budget.
  server::PrepareOutboundCall(ctx, std::max(absl::ZeroDuration(), std::min(timeout_, deadline - absl::Now())));
  infostore::v1::GetCustomerRequest req;
  *req.mutable_customer() = ref;
  infostore::v1::Customer customer;
  grpc::Status s = infostore::v1::InformationStore::NewStub(channel_)->GetCustomer(&ctx, req, &customer);
  switch (s.error_code()) {
    case grpc::StatusCode::OK:
      return customer;
    case grpc::StatusCode::NOT_FOUND:
      return absl::NotFoundError(absl::StrCat("customer: no such customer (", s.error_message(), ")"));
    case grpc::StatusCode::INVALID_ARGUMENT:
      return absl::InvalidArgumentError(absl::StrCat("customer.", s.error_message()));
    default:
      return absl::UnavailableError(
          absl::StrCat("information store: reading the customer failed: ", s.error_message()));
  }
}

absl::Status GrpcCustomerDirectory::UpdateConsent(const infostore::v1::UpdateConsentRequest& request,
                                                  absl::Time deadline) {
  grpc::ClientContext ctx;
  server::PrepareOutboundCall(ctx, std::max(absl::ZeroDuration(), std::min(timeout_, deadline - absl::Now())));
  infostore::v1::Customer customer;
  grpc::Status s = infostore::v1::InformationStore::NewStub(channel_)->UpdateConsent(&ctx, request, &customer);
  switch (s.error_code()) {
    case grpc::StatusCode::OK:
      return absl::OkStatus();
    case grpc::StatusCode::NOT_FOUND:
      return absl::NotFoundError(absl::StrCat("customer: no such customer (", s.error_message(), ")"));
    case grpc::StatusCode::INVALID_ARGUMENT:
      return absl::InvalidArgumentError(absl::StrCat("information store refused the consent: ", s.error_message()));
    default:
      return absl::UnavailableError(
          absl::StrCat("information store: updating the consent failed: ", s.error_message()));
  }
}

}  // namespace ecrm::broadcast

#include "clients/segmentation_grpc.h"

#include <grpcpp/client_context.h>

#include "absl/strings/str_cat.h"
#include "ecrm/segmentation/v1/segmentation.grpc.pb.h"
#include "ecrm/server/channel.h"

namespace ecrm::personalisation {

absl::StatusOr<std::vector<std::string>> GrpcSegmentDirectory::CustomerSegments(const std::string& customer_id) {
  grpc::ClientContext ctx;
  server::PrepareOutboundCall(ctx, timeout_);
  segmentation::v1::GetCustomerSegmentsRequest req;
  req.set_customer_id(customer_id);
  segmentation::v1::GetCustomerSegmentsResponse resp;
  grpc::Status s = segmentation::v1::Segmentation::NewStub(channel_)->GetCustomerSegments(&ctx, req, &resp);
  if (s.ok()) return std::vector<std::string>(resp.segment_ids().begin(), resp.segment_ids().end());
  if (s.error_code() == grpc::StatusCode::NOT_FOUND) return std::vector<std::string>();
  if (s.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED) {
    return absl::DeadlineExceededError(absl::StrCat("segmentation: no answer in time: ", s.error_message()));
  }
  return absl::UnavailableError(absl::StrCat("segmentation: reading the customer's segments failed (",
                                             static_cast<int>(s.error_code()), "): ", s.error_message()));
}

}  // namespace ecrm::personalisation

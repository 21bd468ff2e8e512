#include "clients/segmentation_grpc.h"

#include <grpcpp/client_context.h>

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "ecrm/segmentation/v1/segmentation.grpc.pb.h"
#include "ecrm/server/channel.h"

namespace ecrm::broadcast {

absl::Status GrpcSegmentDirectory::ForEachMember(const std::string& segment_id, absl::Time deadline,
                                                 const std::function<absl::Status(std::vector<std::string>)>& each) {
  grpc::ClientContext ctx;
  server::PrepareOutboundCall(ctx, std::max(absl::ZeroDuration(), std::min(timeout_, deadline - absl::Now())));
  segmentation::v1::StreamSegmentMembersRequest req;
  req.set_segment_id(segment_id);
  std::unique_ptr<grpc::ClientReader<segmentation::v1::SegmentMemberBatch>> reader =
      segmentation::v1::Segmentation::NewStub(channel_)->StreamSegmentMembers(&ctx, req);
  segmentation::v1::SegmentMemberBatch batch;
  absl::Status stopped;
  while (reader->Read(&batch)) {
    stopped = each(std::vector<std::string>(batch.customer_ids().begin(), batch.customer_ids().end()));
    if (!stopped.ok()) {
      ctx.TryCancel();
      break;
    }
  }
  grpc::Status s = reader->Finish();
  if (!stopped.ok()) return stopped;
  switch (s.error_code()) {
    case grpc::StatusCode::OK:
      return absl::OkStatus();
    case grpc::StatusCode::NOT_FOUND:
      return absl::NotFoundError(
          absl::StrCat("segment_id: segmentation has no segment \"", segment_id, "\" (", s.error_message(), ")"));
    case grpc::StatusCode::INVALID_ARGUMENT:
      return absl::InvalidArgumentError(absl::StrCat("segment_id: ", s.error_message()));
    case grpc::StatusCode::FAILED_PRECONDITION:
      return absl::FailedPreconditionError(absl::StrCat("segment_id: ", s.error_message()));
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return absl::DeadlineExceededError(
          absl::StrCat("segmentation: the segment's members did not arrive in time: ", s.error_message()));
    default:
      return absl::UnavailableError(
          absl::StrCat("segmentation: reading the segment's members failed: ", s.error_message()));
  }
}

}  // namespace ecrm::broadcast

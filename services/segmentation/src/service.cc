#include "service.h"

#include "ecrm/server/offload.h"

namespace ecrm::segmentation {

using server::Offload;

grpc::ServerUnaryReactor* SegmentationService::CreateSegment(grpc::CallbackServerContext* ctx,
                                                             const v1::CreateSegmentRequest* req, v1::Segment* resp) {
  return Offload(executor_, ctx, resp, [this, req] { return segments_.Create(req->segment()); });
}

grpc::ServerUnaryReactor* SegmentationService::GetSegment(grpc::CallbackServerContext* ctx,
                                                          const v1::GetSegmentRequest* req, v1::Segment* resp) {
  return Offload(executor_, ctx, resp, [this, req] { return segments_.Get(req->id()); });
}

grpc::ServerUnaryReactor* SegmentationService::ListSegments(grpc::CallbackServerContext* ctx,
                                                            const v1::ListSegmentsRequest* req,
                                                            v1::ListSegmentsResponse* resp) {
  return Offload(executor_, ctx, resp, [this, req] { return segments_.List(*req); });
}

grpc::ServerUnaryReactor* SegmentationService::UpdateSegment(grpc::CallbackServerContext* ctx,
                                                             const v1::UpdateSegmentRequest* req, v1::Segment* resp) {
  return Offload(executor_, ctx, resp, [this, req] { return segments_.Update(*req); });
}

grpc::ServerUnaryReactor* SegmentationService::DeleteSegment(grpc::CallbackServerContext* ctx,
                                                             const v1::DeleteSegmentRequest* req,
                                                             v1::DeleteSegmentResponse*) {
  return Offload(executor_, ctx, [this, req] { return segments_.Delete(req->id()); });
}

grpc::ServerUnaryReactor* SegmentationService::PreviewSegment(grpc::CallbackServerContext* ctx,
                                                              const v1::PreviewSegmentRequest* req,
                                                              v1::PreviewSegmentResponse* resp) {
  return Offload(executor_, ctx, resp, [this, req] { return segments_.Preview(*req); });
}

grpc::ServerUnaryReactor* SegmentationService::ListSegmentMembers(grpc::CallbackServerContext* ctx,
                                                                  const v1::ListSegmentMembersRequest* req,
                                                                  v1::ListSegmentMembersResponse* resp) {
  return Offload(executor_, ctx, resp, [this, req] { return segments_.ListMembers(*req); });
}

grpc::ServerUnaryReactor* SegmentationService::GetCustomerSegments(grpc::CallbackServerContext* ctx,
                                                                   const v1::GetCustomerSegmentsRequest* req,
                                                                   v1::GetCustomerSegmentsResponse* resp) {
  return Offload(executor_, ctx, resp, [this, req] { return segments_.CustomerSegments(req->customer_id()); });
}

}  // namespace ecrm::segmentation

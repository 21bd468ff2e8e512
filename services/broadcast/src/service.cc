#include "service.h"

#include "absl/time/clock.h"
#include "ecrm/server/deadline.h"
#include "ecrm/server/offload.h"

namespace ecrm::broadcast {

grpc::ServerUnaryReactor* BroadcastService::SendMessage(grpc::CallbackServerContext* ctx,
                                                        const v1::SendMessageRequest* req, v1::Delivery* resp) {
  return server::Offload(executor_, ctx, resp,
                         [this, req] { return deliveries_.SendMessage(*req, server::CurrentDeadline()); });
}

grpc::ServerUnaryReactor* BroadcastService::CreateBroadcast(grpc::CallbackServerContext* ctx,
                                                            const v1::CreateBroadcastRequest* req,
                                                            v1::BroadcastJob* resp) {
  return server::Offload(executor_, ctx, resp, [this, req] { return broadcasts_.Create(*req); });
}

grpc::ServerUnaryReactor* BroadcastService::GetBroadcast(grpc::CallbackServerContext* ctx,
                                                         const v1::GetBroadcastRequest* req, v1::BroadcastJob* resp) {
  return server::Offload(executor_, ctx, resp, [this, req] { return broadcasts_.Get(req->id()); });
}

grpc::ServerUnaryReactor* BroadcastService::ListBroadcasts(grpc::CallbackServerContext* ctx,
                                                           const v1::ListBroadcastsRequest* req,
                                                           v1::ListBroadcastsResponse* resp) {
  return server::Offload(executor_, ctx, resp, [this, req] { return broadcasts_.List(*req); });
}

grpc::ServerUnaryReactor* BroadcastService::PauseBroadcast(grpc::CallbackServerContext* ctx,
                                                           const v1::PauseBroadcastRequest* req,
                                                           v1::BroadcastJob* resp) {
  return server::Offload(executor_, ctx, resp, [this, req] { return broadcasts_.Pause(req->id()); });
}

grpc::ServerUnaryReactor* BroadcastService::ResumeBroadcast(grpc::CallbackServerContext* ctx,
                                                            const v1::ResumeBroadcastRequest* req,
                                                            v1::BroadcastJob* resp) {
  return server::Offload(executor_, ctx, resp, [this, req] { return broadcasts_.Resume(req->id()); });
}

grpc::ServerUnaryReactor* BroadcastService::CancelBroadcast(grpc::CallbackServerContext* ctx,
                                                            const v1::CancelBroadcastRequest* req,
                                                            v1::BroadcastJob* resp) {
  return server::Offload(executor_, ctx, resp, [this, req] { return broadcasts_.Cancel(req->id()); });
}

grpc::ServerUnaryReactor* BroadcastService::ListDeliveries(grpc::CallbackServerContext* ctx,
                                                           const v1::ListDeliveriesRequest* req,
                                                           v1::ListDeliveriesResponse* resp) {
  return server::Offload(executor_, ctx, resp, [this, req] { return deliveries_.ListDeliveries(*req); });
}

grpc::ServerUnaryReactor* BroadcastService::GetInbox(grpc::CallbackServerContext* ctx, const v1::GetInboxRequest* req,
                                                     v1::GetInboxResponse* resp) {
  return server::Offload(executor_, ctx, resp, [this, req] { return deliveries_.GetInbox(*req); });
}

grpc::ServerUnaryReactor* BroadcastService::MarkInboxRead(grpc::CallbackServerContext* ctx,
                                                          const v1::MarkInboxReadRequest* req,
                                                          v1::MarkInboxReadResponse* resp) {
  return server::Offload(executor_, ctx, resp, [this, req] { return deliveries_.MarkInboxRead(*req); });
}

grpc::ServerUnaryReactor* BroadcastService::RecordDeliveryEvent(grpc::CallbackServerContext* ctx,
                                                                const v1::RecordDeliveryEventRequest* req,
                                                                v1::Delivery* resp) {
  return server::Offload(executor_, ctx, resp, [this, req] { return deliveries_.RecordDeliveryEvent(*req); });
}

grpc::ServerUnaryReactor* BroadcastService::AddSuppression(grpc::CallbackServerContext* ctx,
                                                           const v1::AddSuppressionRequest* req,
                                                           v1::Suppression* resp) {
  return server::Offload(executor_, ctx, resp, [this, req] { return suppressions_.Add(*req); });
}

grpc::ServerUnaryReactor* BroadcastService::ListSuppressions(grpc::CallbackServerContext* ctx,
                                                             const v1::ListSuppressionsRequest* req,
                                                             v1::ListSuppressionsResponse* resp) {
  return server::Offload(executor_, ctx, resp, [this, req] { return suppressions_.List(*req); });
}

grpc::ServerUnaryReactor* BroadcastService::RemoveSuppression(grpc::CallbackServerContext* ctx,
                                                              const v1::RemoveSuppressionRequest* req,
                                                              v1::RemoveSuppressionResponse* resp) {
  return server::Offload(executor_, ctx, resp, [this, req]() -> absl::StatusOr<v1::RemoveSuppressionResponse> {
    if (absl::Status s = suppressions_.Remove(*req); !s.ok()) return s;
    return v1::RemoveSuppressionResponse();
  });
}

}  // namespace ecrm::broadcast

// The gRPC handlers of the broadcast engine: each RPC runs its domain method on the worker pool
// (server::Offload, which also admits it to the drain and carries its deadline) and maps
// absl::Status to grpc::Status. No domain logic here.
#pragma once

#include "broadcasts.h"
#include "deliveries.h"
#include "ecrm/broadcast/v1/broadcast.grpc.pb.h"
#include "ecrm/server/executor.h"
#include "suppressions.h"

namespace ecrm::broadcast {

class BroadcastService final : public v1::Broadcast::CallbackService {
 public:
  BroadcastService(Deliveries& deliveries, Broadcasts& broadcasts, Suppressions& suppressions,
                   server::Executor& executor)
      : deliveries_(deliveries), broadcasts_(broadcasts), suppressions_(suppressions), executor_(executor) {}

  grpc::ServerUnaryReactor* SendMessage(grpc::CallbackServerContext* ctx, const v1::SendMessageRequest* req,
                                        v1::Delivery* resp) override;
  grpc::ServerUnaryReactor* CreateBroadcast(grpc::CallbackServerContext* ctx, const v1::CreateBroadcastRequest* req,
                                            v1::BroadcastJob* resp) override;
  grpc::ServerUnaryReactor* GetBroadcast(grpc::CallbackServerContext* ctx, const v1::GetBroadcastRequest* req,
                                         v1::BroadcastJob* resp) override;
  grpc::ServerUnaryReactor* ListBroadcasts(grpc::CallbackServerContext* ctx, const v1::ListBroadcastsRequest* req,
                                           v1::ListBroadcastsResponse* resp) override;
  grpc::ServerUnaryReactor* PauseBroadcast(grpc::CallbackServerContext* ctx, const v1::PauseBroadcastRequest* req,
                                           v1::BroadcastJob* resp) override;
  grpc::ServerUnaryReactor* ResumeBroadcast(grpc::CallbackServerContext* ctx, const v1::ResumeBroadcastRequest* req,
                                            v1::BroadcastJob* resp) override;
  grpc::ServerUnaryReactor* CancelBroadcast(grpc::CallbackServerContext* ctx, const v1::CancelBroadcastRequest* req,
                                            v1::BroadcastJob* resp) override;
  grpc::ServerUnaryReactor* ListDeliveries(grpc::CallbackServerContext* ctx, const v1::ListDeliveriesRequest* req,
                                           v1::ListDeliveriesResponse* resp) override;
  grpc::ServerUnaryReactor* GetInbox(grpc::CallbackServerContext* ctx, const v1::GetInboxRequest* req,
                                     v1::GetInboxResponse* resp) override;
  grpc::ServerUnaryReactor* MarkInboxRead(grpc::CallbackServerContext* ctx, const v1::MarkInboxReadRequest* req,
                                          v1::MarkInboxReadResponse* resp) override;
  grpc::ServerUnaryReactor* RecordDeliveryEvent(grpc::CallbackServerContext* ctx,
                                                const v1::RecordDeliveryEventRequest* req, v1::Delivery* resp) override;
  grpc::ServerUnaryReactor* AddSuppression(grpc::CallbackServerContext* ctx, const v1::AddSuppressionRequest* req,
                                           v1::Suppression* resp) override;
  grpc::ServerUnaryReactor* ListSuppressions(grpc::CallbackServerContext* ctx, const v1::ListSuppressionsRequest* req,
                                             v1::ListSuppressionsResponse* resp) override;
  grpc::ServerUnaryReactor* RemoveSuppression(grpc::CallbackServerContext* ctx, const v1::RemoveSuppressionRequest* req,
                                              v1::RemoveSuppressionResponse* resp) override;

 private:
  Deliveries& deliveries_;
  Broadcasts& broadcasts_;
  Suppressions& suppressions_;
  server::Executor& executor_;
};

}  // namespace ecrm::broadcast

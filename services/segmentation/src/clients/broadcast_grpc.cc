#include "clients/broadcast_grpc.h"

#include <grpcpp/client_context.h>

#include "ecrm/broadcast/v1/broadcast.grpc.pb.h"
#include "ecrm/server/channel.h"
#include "ecrm/server/grpc_status.h"

namespace ecrm::segmentation {

absl::StatusOr<std::string> GrpcBroadcaster::Send(const BroadcastOrder& order) {
  broadcast::v1::CreateBroadcastRequest request;
  request.set_campaign_id(order.campaign_id);
  for (const std::string& id : order.customer_ids) request.add_customer_ids(id);
  for (common::v1::Channel ch : order.channels) request.add_channels(ch);
  request.set_purpose(order.purpose);
  if (!order.template_id.empty()) request.mutable_content()->set_template_id(order.template_id);
  // An offer campaign: broadcast renders the offer with its own template, for those it is for.
  if (!order.offer_id.empty()) request.mutable_content()->set_offer_id(order.offer_id);
  if (!order.placement.empty()) request.mutable_content()->set_placement(order.placement);
  request.set_idempotency_key(order.idempotency_key);
  grpc::ClientContext ctx;
  server::PrepareOutboundCall(ctx, timeout_);
  broadcast::v1::BroadcastJob job;
  grpc::Status s = broadcast::v1::Broadcast::NewStub(channel_)->CreateBroadcast(&ctx, request, &job);
  if (!s.ok()) return server::FromGrpc(s);
  return job.id();
}

}  // namespace ecrm::segmentation

#include "ecrm/outbox/grpc_event_sink.h"

#include <grpcpp/client_context.h>

#include "absl/cleanup/cleanup.h"
#include "ecrm/infostore/v1/infostore.grpc.pb.h"
#include "ecrm/server/channel.h"
#include "ecrm/server/grpc_status.h"

namespace ecrm::outbox {

absl::Status InfostoreEventSink::Record(absl::Span<const OutboxEvent> events) {
  grpc::ClientContext ctx;
  server::PrepareOutboundCall(ctx, timeout_);
  {
    std::lock_guard lock(mu_);
    if (cancelled_) return absl::CancelledError("the relay is stopping");
    sending_ = &ctx;
  }
  absl::Cleanup done = [this] {
    std::lock_guard lock(mu_);
    sending_ = nullptr;
  };
  infostore::v1::RecordEventsResponse resp;
  auto writer = infostore::v1::InformationStore::NewStub(channel_)->RecordEvents(&ctx, &resp);
  infostore::v1::RecordEventsRequest req;
  for (const OutboxEvent& e : events) *req.add_events() = e.event;
  writer->Write(req);
  writer->WritesDone();
  return server::FromGrpc(writer->Finish());
}

void InfostoreEventSink::Cancel() {
  std::lock_guard lock(mu_);
  cancelled_ = true;
  if (sending_ != nullptr) sending_->TryCancel();
}

}  // namespace ecrm::outbox

// The information store's RecordEvents over gRPC (ecrm.infostore.v1.InformationStore), the
// EventSink every engine's relay delivers to. Its own target, ecrm::outbox_grpc, so that an
// engine's domain links ecrm::outbox without gRPC; the engine's handlers or main link this.
#pragma once

#include <grpcpp/channel.h>
#include <grpcpp/client_context.h>

#include <memory>
#include <mutex>

#include "absl/time/time.h"
#include "ecrm/outbox/event_sink.h"

namespace ecrm::outbox {

class InfostoreEventSink final : public EventSink {
 public:
  // channel: server::OutboundChannel to the information store. timeout: of each RecordEvents
  // call (the engine's --outbox-timeout).
  InfostoreEventSink(std::shared_ptr<grpc::Channel> channel, absl::Duration timeout)
      : channel_(std::move(channel)), timeout_(timeout) {}
  absl::Status Record(absl::Span<const OutboxEvent> events) override;
  void Cancel() override;

 private:
  std::shared_ptr<grpc::Channel> channel_;
  const absl::Duration timeout_;
  std::mutex mu_;
  bool cancelled_ = false;
  grpc::ClientContext* sending_ = nullptr;  // the call in flight, cancelled by Cancel()
};

}  // namespace ecrm::outbox

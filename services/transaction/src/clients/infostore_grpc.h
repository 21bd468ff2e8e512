// The information store over gRPC (ecrm.infostore.v1.InformationStore): GetCustomer for the
// resolver. (RecordEvents, for the outbox relay, is libs/outbox's InfostoreEventSink.)
#pragma once

#include <grpcpp/channel.h>
#include <grpcpp/client_context.h>

#include <memory>

#include "absl/time/time.h"
#include "clients/infostore.h"

namespace ecrm::transaction {

class InfostoreResolver final : public CustomerResolver {
 public:
  // timeout: of each lookup, shortened to what is left of the caller's deadline.
  InfostoreResolver(std::shared_ptr<grpc::Channel> channel, absl::Duration timeout)
      : channel_(std::move(channel)), timeout_(timeout) {}
  absl::StatusOr<std::string> Resolve(const common::v1::CustomerRef& ref) override;

 private:
  std::shared_ptr<grpc::Channel> channel_;
  absl::Duration timeout_;
};

}  // namespace ecrm::transaction

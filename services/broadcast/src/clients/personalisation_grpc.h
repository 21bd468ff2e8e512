// TemplateRenderer over gRPC: ecrm.personalisation.v1.Personalisation/BatchRender, GetTemplate
// and GetOffer.
#pragma once

#include <grpcpp/channel.h>

#include <memory>

#include "clients/personalisation.h"

namespace ecrm::broadcast {

class GrpcTemplateRenderer final : public TemplateRenderer {
 public:
  GrpcTemplateRenderer(std::shared_ptr<grpc::Channel> channel, absl::Duration timeout)
      : channel_(std::move(channel)), timeout_(timeout) {}
  absl::StatusOr<RenderBatch> BatchRender(const RenderSource& source, absl::Span<const std::string> customer_ids,
                                          absl::Time deadline) override;
  absl::Status CheckTemplate(const std::string& template_id, absl::Time deadline) override;
  absl::StatusOr<OfferSummary> Offer(const std::string& offer_id, absl::Time deadline) override;

 private:
  std::shared_ptr<grpc::Channel> channel_;
  const absl::Duration timeout_;
};

}  // namespace ecrm::broadcast

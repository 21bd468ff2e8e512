// CatalogueSource over gRPC: the transaction engine's ListProducts with a deadline per page.
#pragma once

#include <grpcpp/channel.h>

#include <memory>

#include "absl/time/time.h"
#include "clients/catalogue.h"

namespace ecrm::personalisation {

class GrpcCatalogueSource final : public CatalogueSource {
 public:
  GrpcCatalogueSource(std::shared_ptr<grpc::Channel> channel, absl::Duration timeout)
      : channel_(std::move(channel)), timeout_(timeout) {}
  absl::StatusOr<CataloguePage> ListProducts(const std::string& page_token, int page_size) override;

 private:
  std::shared_ptr<grpc::Channel> channel_;
  const absl::Duration timeout_;
};

}  // namespace ecrm::personalisation

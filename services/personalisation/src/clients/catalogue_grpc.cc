#include "clients/catalogue_grpc.h"

#include "ecrm/server/channel.h"
#include "ecrm/server/grpc_status.h"
#include "ecrm/transaction/v1/transaction.grpc.pb.h"

namespace ecrm::personalisation {

absl::StatusOr<CataloguePage> GrpcCatalogueSource::ListProducts(const std::string& page_token, int page_size) {
  grpc::ClientContext ctx;
  server::PrepareOutboundCall(ctx, timeout_);
  transaction::v1::ListProductsRequest request;
  request.set_page_token(page_token);
  request.set_page_size(page_size);
  transaction::v1::ListProductsResponse response;
  grpc::Status s = transaction::v1::Transaction::NewStub(channel_)->ListProducts(&ctx, request, &response);
  if (!s.ok()) return server::FromGrpc(s);
  CataloguePage page;
  page.products.reserve(response.products_size());
  for (auto& p : *response.mutable_products()) {
    CatalogueProduct out;
    out.sku = std::move(*p.mutable_sku());
    out.title = std::move(*p.mutable_title());
    out.category = std::move(*p.mutable_category());
    out.price = std::move(*p.mutable_price());
    out.active = p.active();
    page.products.push_back(std::move(out));
  }
  page.next_page_token = std::move(*response.mutable_next_page_token());
  return page;
}

}  // namespace ecrm::personalisation

// The transaction engine's catalogue as the recommendations need it (no gRPC here:
// catalogue_grpc.h is the real one; tests use fakes): every product, a page at a time.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "ecrm/common/v1/common.pb.h"

namespace ecrm::personalisation {

struct CatalogueProduct {
  std::string sku;
  std::string title;
  std::string category;  // path, e.g. "sports/cycling"
  common::v1::Money price;
  bool active = false;
  std::string url;  // the product page, when the catalogue has one (the transaction engine's has none)
};

struct CataloguePage {
  std::vector<CatalogueProduct> products;
  std::string next_page_token;  // empty: the last page
};

class CatalogueSource {
 public:
  virtual ~CatalogueSource() = default;
  // One page of every product (active or not), by SKU. UNAVAILABLE when the engine could not
  // answer.
  virtual absl::StatusOr<CataloguePage> ListProducts(const std::string& page_token, int page_size) = 0;
};

}  // namespace ecrm::personalisation

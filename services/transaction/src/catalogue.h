// The product catalogue: SKUs, prices in one currency each, stock for tracked products.
#pragma once

#include "absl/status/statusor.h"
#include "ecrm/sql/sql.h"
#include "ecrm/transaction/v1/transaction.pb.h"

namespace ecrm::transaction {

class Catalogue {
 public:
  explicit Catalogue(sql::Database& db) : db_(db) {}

  absl::StatusOr<v1::Product> UpsertProduct(const v1::UpsertProductRequest& req);
  absl::StatusOr<v1::Product> GetProduct(const v1::GetProductRequest& req);
  absl::StatusOr<v1::ListProductsResponse> ListProducts(const v1::ListProductsRequest& req);

 private:
  sql::Database& db_;
};

}  // namespace ecrm::transaction

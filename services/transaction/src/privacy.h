// What the transaction engine holds on a customer, for the shared CustomerData service:
// export and erasure across carts, orders, loyalty, inquiries, the outbox and idempotency keys.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "carts.h"
#include "ecrm/privacy/v1/privacy.pb.h"
#include "ecrm/server/customer_data_owner.h"
#include "ecrm/sql/sql.h"
#include "orders.h"

namespace ecrm::transaction {

class CustomerData final : public server::CustomerDataOwner {
 public:
  CustomerData(sql::Database& db, Carts& carts, Orders& orders) : db_(db), carts_(carts), orders_(orders) {}

  absl::StatusOr<std::string> ExportCustomerData(const privacy::v1::ExportCustomerDataRequest& req) override;
  absl::StatusOr<privacy::v1::EraseCustomerDataResponse> EraseCustomerData(
      const privacy::v1::EraseCustomerDataRequest& req) override;

 private:
  sql::Database& db_;
  Carts& carts_;
  Orders& orders_;
};

}  // namespace ecrm::transaction

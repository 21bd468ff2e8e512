// What the broadcast engine holds on a customer, for ecrm.privacy.v1.CustomerData: their
// deliveries, web inbox, suppression entries, frequency-cap ledger, undelivered events and
// idempotency records. Erasure deletes them all and leaves, for each address the customer was
// messaged at, a hashed suppression entry (reason "erased"), so the address is never messaged
// again even if it comes back under a new customer.
#pragma once

#include "ecrm/server/customer_data_owner.h"
#include "ecrm/sql/sql.h"

namespace ecrm::broadcast {

class CustomerData final : public server::CustomerDataOwner {
 public:
  explicit CustomerData(sql::Database& db) : db_(db) {}
  absl::StatusOr<std::string> ExportCustomerData(const privacy::v1::ExportCustomerDataRequest& req) override;
  absl::StatusOr<privacy::v1::EraseCustomerDataResponse> EraseCustomerData(
      const privacy::v1::EraseCustomerDataRequest& req) override;

 private:
  sql::Database& db_;
};

}  // namespace ecrm::broadcast

// What an engine holds about its customers, as the shared CustomerData service (customer_data.h)
// needs it: a domain class implements this (no gRPC here), the service maps it to the RPCs.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "ecrm/privacy/v1/privacy.pb.h"

namespace ecrm::server {

class CustomerDataOwner {
 public:
  virtual ~CustomerDataOwner() = default;
  // Everything held on the customer and the ids merged into it, as one JSON object; "{}" when
  // nothing is held.
  virtual absl::StatusOr<std::string> ExportCustomerData(const privacy::v1::ExportCustomerDataRequest& req) = 0;
  // Deletes or pseudonymises everything held on them; the receipt counts each kind of record.
  virtual absl::StatusOr<privacy::v1::EraseCustomerDataResponse> EraseCustomerData(
      const privacy::v1::EraseCustomerDataRequest& req) = 0;
};

}  // namespace ecrm::server

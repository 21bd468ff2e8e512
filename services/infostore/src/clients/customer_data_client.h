// Another engine's ecrm.privacy.v1.CustomerData, as the privacy fan-out needs it (no gRPC
// here: the fan-out is tested against fakes; customer_data_client_grpc.h is the real one).
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "ecrm/privacy/v1/privacy.pb.h"

namespace ecrm::infostore {

class CustomerDataClient {
 public:
  virtual ~CustomerDataClient() = default;
  // The engine's name, e.g. "transaction" (its receipts and its place in unavailable_engines).
  virtual const std::string& engine() const = 0;
  // Each call ends by `deadline`; an engine that is down, too slow or refuses is an error.
  virtual absl::StatusOr<privacy::v1::ExportCustomerDataResponse> Export(
      const privacy::v1::ExportCustomerDataRequest& request, absl::Time deadline) = 0;
  virtual absl::StatusOr<privacy::v1::EraseCustomerDataResponse> Erase(
      const privacy::v1::EraseCustomerDataRequest& request, absl::Time deadline) = 0;
};

}  // namespace ecrm::infostore

// Data-subject export and erasure across engines: this engine's own part through
// CustomerStore, every other configured engine through its CustomerData service
// (clients/customer_data_client.h), all of them at once, each within the caller's budget.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "clients/customer_data_client.h"
#include "customer_store.h"

namespace ecrm::infostore {

class PrivacyFanout {
 public:
  // `timeout` bounds each engine's call (and the caller's remaining budget, when shorter).
  PrivacyFanout(CustomerStore& store, std::vector<std::unique_ptr<CustomerDataClient>> engines, absl::Duration timeout);

  absl::StatusOr<v1::ExportCustomerResponse> Export(const common::v1::CustomerRef& ref);
  // Other engines first; this engine's data is erased only once every engine has erased, so a
  // retry with the same request_id can still find the customer.
  absl::StatusOr<v1::EraseCustomerResponse> Erase(const v1::EraseCustomerRequest& request);

 private:
  // Runs call(engine i) for every engine at once and returns when all have answered.
  template <typename Response>
  std::vector<absl::StatusOr<Response>> AskEveryEngine(
      const std::function<absl::StatusOr<Response>(CustomerDataClient&)>& call);

  CustomerStore& store_;
  std::vector<std::unique_ptr<CustomerDataClient>> engines_;
  absl::Duration timeout_;
};

}  // namespace ecrm::infostore

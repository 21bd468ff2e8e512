// Data-subject export and erasure across engines: this engine's own part through
// CustomerStore, every other configured engine through its CustomerData service
// (clients/customer_data_client.h), all of them at once, each within the caller's budget.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "clients/customer_data_client.h"
#include "customer_store.h"

namespace ecrm::infostore {

class PrivacyFanout {
 public:
  // `timeout` bounds each engine's call, and so does the caller's deadline when it comes sooner:
  // `caller_deadline` returns it on the thread serving the caller (main.cc passes
  // server::CurrentDeadline, which server::Offload sets for the RPC it runs).
  PrivacyFanout(CustomerStore& store, std::vector<std::unique_ptr<CustomerDataClient>> engines, absl::Duration timeout,
                std::function<absl::Time()> caller_deadline);

  absl::StatusOr<v1::ExportCustomerResponse> Export(const common::v1::CustomerRef& ref);
  // Other engines first; this engine's data is erased only once every engine has erased, so a
  // retry with the same request_id can still find the customer.
  absl::StatusOr<v1::EraseCustomerResponse> Erase(const v1::EraseCustomerRequest& request);

 private:
  // The deadline of every engine's call: `timeout` from now, or the caller's if that comes sooner.
  absl::Time Deadline() const;
  // Runs call(engine i) for every engine at once and returns when all have answered.
  template <typename Response>
  std::vector<absl::StatusOr<Response>> AskEveryEngine(
      const std::function<absl::StatusOr<Response>(CustomerDataClient&)>& call);

  CustomerStore& store_;
  std::vector<std::unique_ptr<CustomerDataClient>> engines_;
  absl::Duration timeout_;
  std::function<absl::Time()> caller_deadline_;
};

}  // namespace ecrm::infostore

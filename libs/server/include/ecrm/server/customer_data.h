// ecrm.privacy.v1.CustomerData, the same for every engine: validates the request, runs the
// engine's CustomerDataOwner on the executor, and names the engine and the time in the answer.
//
//   server::CustomerDataService customer_data("transaction", store, executor);
//   runner.AddService(&customer_data, privacy::v1::CustomerData::service_full_name());
#pragma once

#include <string>

#include "ecrm/privacy/v1/privacy.grpc.pb.h"
#include "ecrm/server/customer_data_owner.h"
#include "ecrm/server/executor.h"

namespace ecrm::server {

class CustomerDataService final : public privacy::v1::CustomerData::CallbackService {
 public:
  CustomerDataService(std::string engine, CustomerDataOwner& owner, Executor& executor)
      : engine_(std::move(engine)), owner_(owner), executor_(executor) {}

  grpc::ServerUnaryReactor* ExportCustomerData(grpc::CallbackServerContext* ctx,
                                               const privacy::v1::ExportCustomerDataRequest* req,
                                               privacy::v1::ExportCustomerDataResponse* resp) override;
  grpc::ServerUnaryReactor* EraseCustomerData(grpc::CallbackServerContext* ctx,
                                              const privacy::v1::EraseCustomerDataRequest* req,
                                              privacy::v1::EraseCustomerDataResponse* resp) override;

 private:
  const std::string engine_;
  CustomerDataOwner& owner_;
  Executor& executor_;
};

}  // namespace ecrm::server

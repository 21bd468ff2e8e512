// InformationStore over gRPC: the change feed as a server stream, listings with a deadline.
#pragma once

#include <grpcpp/channel.h>
#include <grpcpp/client_context.h>

#include <memory>
#include <mutex>

#include "ecrm/feed/infostore.h"

namespace ecrm::feed {

class GrpcInformationStore final : public InformationStore {
 public:
  // `timeout`: deadline of each listing call (never later than the caller's).
  GrpcInformationStore(std::shared_ptr<grpc::Channel> channel, absl::Duration timeout);

  absl::Status Watch(
      int64_t after,
      const std::function<absl::Status(const infostore::v1::WatchChangesResponse&)>& on_message) override;
  void StopWatching() override;
  absl::StatusOr<infostore::v1::ListCustomersResponse> ListCustomers(const std::string& page_token,
                                                                     int page_size) override;
  absl::StatusOr<infostore::v1::ListEventsResponse> ListEvents(const std::string& customer_id, absl::Time since,
                                                               const std::string& page_token) override;

 private:
  std::shared_ptr<grpc::Channel> channel_;
  const absl::Duration timeout_;
  std::mutex mu_;
  grpc::ClientContext* watching_ = nullptr;  // the stream in progress, cancelled by StopWatching()
  bool stopped_ = false;
};

}  // namespace ecrm::feed

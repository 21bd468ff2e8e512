// The transaction engine's calls to the information store: resolving a customer named by an
// identifier, and the relay that delivers the outbox as RecordEvents batches.
#pragma once

#include <grpcpp/channel.h>

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>

#include "absl/time/time.h"
#include "clients/customer_resolver.h"
#include "metrics.h"
#include "outbox.h"

namespace ecrm::transaction {

class InfostoreResolver final : public CustomerResolver {
 public:
  InfostoreResolver(std::shared_ptr<grpc::Channel> channel, absl::Duration timeout)
      : channel_(std::move(channel)), timeout_(timeout) {}
  absl::StatusOr<std::string> Resolve(const common::v1::CustomerRef& ref) override;

 private:
  std::shared_ptr<grpc::Channel> channel_;
  absl::Duration timeout_;
};

struct RelayOptions {
  int batch_size = 500;
  absl::Duration timeout = absl::Seconds(10);  // per RecordEvents call
  absl::Duration min_backoff = absl::Milliseconds(100);
  absl::Duration max_backoff = absl::Seconds(30);
  absl::Duration poll = absl::Seconds(1);  // looks again even without a notification
};

// Delivers outbox events oldest first. An event leaves the outbox only once the information
// store has acknowledged it (durable there); a crash in between redelivers it, and the
// information store drops the duplicate by event id. While the information store is down the
// relay backs off exponentially. An event it refuses for good (bad data) is parked with the
// error, counted, and no longer blocks the ones behind it.
class OutboxRelay {
 public:
  OutboxRelay(Outbox& outbox, std::shared_ptr<grpc::Channel> channel, RelayOptions options, RelayMetrics& metrics);
  ~OutboxRelay();  // stops
  void Notify();
  void Stop();

 private:
  void Run();
  // Delivers what is pending; false when the information store could not take it (back off).
  bool DeliverPending();
  grpc::Status Send(const std::vector<OutboxEvent>& events, size_t begin, size_t end);

  Outbox& outbox_;
  std::shared_ptr<grpc::Channel> channel_;
  const RelayOptions options_;
  RelayMetrics& metrics_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool notified_ = false;
  bool stopping_ = false;
  grpc::ClientContext* sending_ = nullptr;  // the call in flight, cancelled by Stop()
  std::thread thread_;
};

}  // namespace ecrm::transaction

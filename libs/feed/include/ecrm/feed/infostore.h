// The information store's change feed as the engines that follow it use it (segmentation, the
// personalisation engine's recommendation model): WatchChanges, and the listings a resync reads
// when the saved position is older than the feed keeps. No gRPC here (an engine's domain uses the
// interface; infostore_grpc.h is the real one, tests use fakes).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "ecrm/infostore/v1/infostore.pb.h"

namespace ecrm::feed {

class InformationStore {
 public:
  virtual ~InformationStore() = default;

  // Follows the change feed from after `after`, calling `on_message` with each message (a run
  // of changes, or a heartbeat) in order, until StopWatching(), an error, or `on_message`
  // returns an error (which Watch returns). OUT_OF_RANGE: `after` is older than the feed keeps
  // (resync). UNAVAILABLE: the store is down or the stream broke (watch again).
  virtual absl::Status Watch(
      int64_t after, const std::function<absl::Status(const infostore::v1::WatchChangesResponse&)>& on_message) = 0;
  // Ends a Watch in progress, from another thread; Watch then returns CANCELLED, and so does
  // every later Watch at once.
  virtual void StopWatching() = 0;

  // One page of every customer (resync).
  virtual absl::StatusOr<infostore::v1::ListCustomersResponse> ListCustomers(const std::string& page_token,
                                                                             int page_size) = 0;
  // One page of a customer's events at or after `since`, newest first.
  virtual absl::StatusOr<infostore::v1::ListEventsResponse> ListEvents(const std::string& customer_id, absl::Time since,
                                                                       const std::string& page_token) = 0;
};

}  // namespace ecrm::feed

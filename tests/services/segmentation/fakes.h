// Fakes for segmentation's in-process tests.
#pragma once

#include <functional>
#include <string>

#include "clients/infostore.h"

namespace ecrm::segmentation {

// An information store that is never watched: tests drive the feed consumer with Apply().
class NoStore final : public InformationStore {
 public:
  absl::Status Watch(int64_t, const std::function<absl::Status(const infostore::v1::WatchChangesResponse&)>&) override {
    return absl::CancelledError("not watched in this test");
  }
  void StopWatching() override {}
  absl::StatusOr<infostore::v1::ListCustomersResponse> ListCustomers(const std::string&, int) override {
    return infostore::v1::ListCustomersResponse();
  }
  absl::StatusOr<infostore::v1::ListEventsResponse> ListEvents(const std::string&, absl::Time,
                                                               const std::string&) override {
    return infostore::v1::ListEventsResponse();
  }
};

}  // namespace ecrm::segmentation

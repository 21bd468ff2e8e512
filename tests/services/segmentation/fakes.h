// Fakes for segmentation's in-process tests.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "clients/infostore.h"

namespace ecrm::segmentation {

// An information store that is never watched: tests drive the feed consumer with Apply(). Its
// ListEvents answers `events` (what an unmerge or a merge across partitions reads back).
class NoStore final : public InformationStore {
 public:
  absl::Status Watch(int64_t, const std::function<absl::Status(const infostore::v1::WatchChangesResponse&)>&) override {
    return absl::CancelledError("not watched in this test");
  }
  void StopWatching() override {}
  absl::StatusOr<infostore::v1::ListCustomersResponse> ListCustomers(const std::string&, int) override {
    return infostore::v1::ListCustomersResponse();
  }
  absl::StatusOr<infostore::v1::ListEventsResponse> ListEvents(const std::string& customer_id, absl::Time,
                                                               const std::string&) override {
    infostore::v1::ListEventsResponse out;
    for (const infostore::v1::Event& e : events[customer_id]) *out.add_events() = e;
    return out;
  }
  std::map<std::string, std::vector<infostore::v1::Event>> events;
};

}  // namespace ecrm::segmentation

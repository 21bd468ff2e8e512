// Fakes and message builders for segmentation's in-process tests.
#pragma once

#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "clients/infostore.h"
#include "customer_features.h"
#include "ecrm/segmentation/internal/record.pb.h"
#include "ecrm/sql/sql.h"

namespace ecrm::segmentation {

inline google::protobuf::Timestamp Ts(absl::Time t) {
  google::protobuf::Timestamp ts;
  ts.set_seconds(absl::ToUnixSeconds(t));
  return ts;
}

// An event of `customer` at `at`; with an amount, in EUR.
inline infostore::v1::Event Event(const std::string& customer, const std::string& type, absl::Time at,
                                  int64_t amount = 0) {
  infostore::v1::Event e;
  e.set_customer_id(customer);
  e.set_type(type);
  *e.mutable_occurred_at() = Ts(at);
  if (amount != 0) {
    e.mutable_amount()->set_amount_minor(amount);
    e.mutable_amount()->set_currency("EUR");
  }
  return e;
}

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

// The customer numbers the events log (customer_events_log) holds events of.
inline absl::StatusOr<std::set<CustomerNo>> LoggedCustomers(sql::Database& db) {
  absl::StatusOr<sql::Result> rows = db.Execute("SELECT sequence, entries FROM customer_events_log");
  if (!rows.ok()) return rows.status();
  std::set<CustomerNo> out;
  for (const sql::Row& row : *rows) {
    internal::EventLogEntries entries;
    if (!entries.ParseFromString(std::string(row.Text(1)))) {
      return absl::DataLossError(absl::StrCat("events log row ", row.Int(0), " does not parse"));
    }
    out.insert(entries.numbers().begin(), entries.numbers().end());
  }
  return out;
}

}  // namespace ecrm::segmentation

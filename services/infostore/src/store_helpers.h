// Small helpers shared by the information store's source files (not an API).
#pragma once

#include <google/protobuf/timestamp.pb.h>

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "ecrm/common/v1/common.pb.h"
#include "ecrm/infostore/v1/infostore.pb.h"
#include "ecrm/sql/sql.h"
#include "ecrm/util/util.h"

namespace ecrm::infostore {

using util::Invalid;
using util::Micros;
using util::NewId;
using util::NowMicros;
using util::PageSize;
using util::Placeholders;
using util::Sha256Hex;
using util::Ts;

// Folds one event into a behaviour summary. Purchases and refunds in another currency than
// the summary's first one are counted but not added to total_spent.
void ApplyEvent(const v1::Event& e, v1::BehaviourSummary& b);

// A stored event keeps what its columns hold (event_id, type, occurred_at to the microsecond)
// out of its bytes. SplitStoredEvent serialises `e` so, and those fields apart (for the feed,
// which has no such columns); StoredEvent reads one back from the columns kStoredEventColumns,
// selected in that order from `first` on: with its customer.
inline constexpr char kStoredEventColumns[] = "event, event_id, type, occurred_at, recorded_for";
struct StoredEventParts {
  std::string bytes;    // the row's `event`
  std::string columns;  // an Event of the column fields, serialised
};
StoredEventParts SplitStoredEvent(v1::Event& e);  // `e` is unchanged when it returns
absl::StatusOr<v1::Event> StoredEvent(sql::Row row, int first);

// [a-z0-9_]{1,max}
bool ValidName(absl::string_view s, size_t max);
absl::Status ValidateValue(const common::v1::AttributeValue& v, const std::string& field, int max_bytes);

// A unique violation while claiming an identifier means a concurrent writer claimed it first:
// retry the transaction (ABORTED), which then finds the owner.
absl::Status AsContention(absl::Status s);

// Pads a list of statement parameters by repeating its last entry up to the next power of two,
// so a bulk statement comes in a few sizes and each size is prepared once per connection.
template <typename T>
void PadToPowerOfTwo(std::vector<T>& v) {
  size_t n = 1;
  while (n < v.size()) n *= 2;
  while (!v.empty() && v.size() < n) v.push_back(v.back());
}

}  // namespace ecrm::infostore

#include "store_helpers.h"

#include <google/protobuf/util/time_util.h>

#include <cmath>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"

namespace ecrm::infostore {

using google::protobuf::util::TimeUtil;

StoredEventParts SplitStoredEvent(v1::Event& e) {
  v1::Event columns;
  columns.mutable_event_id()->swap(*e.mutable_event_id());
  columns.mutable_type()->swap(*e.mutable_type());
  // A time finer than the column's microsecond stays in the bytes.
  const bool in_column = e.occurred_at().nanos() % 1000 == 0;
  if (in_column) {
    *columns.mutable_occurred_at() = e.occurred_at();
    e.clear_occurred_at();
  }
  StoredEventParts parts{e.SerializeAsString(), columns.SerializeAsString()};
  columns.mutable_event_id()->swap(*e.mutable_event_id());
  columns.mutable_type()->swap(*e.mutable_type());
  if (in_column) *e.mutable_occurred_at() = columns.occurred_at();
  return parts;
}

absl::StatusOr<v1::Event> StoredEvent(sql::Row row, int first) {
  v1::Event e;
  const absl::string_view bytes = row.Text(first);
  if (!e.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    return absl::DataLossError(absl::StrCat("event \"", row.Text(first + 1), "\" is unreadable"));
  }
  e.set_event_id(std::string(row.Text(first + 1)));
  e.set_type(std::string(row.Text(first + 2)));
  if (!e.has_occurred_at()) *e.mutable_occurred_at() = Ts(row.Int(first + 3));
  e.set_customer_id(std::string(row.Text(first + 4)));
  return e;
}

void ApplyEvent(const v1::Event& e, v1::BehaviourSummary& b) {
  const int64_t at = TimeUtil::TimestampToMicroseconds(e.occurred_at());
  if (!b.has_first_seen_at() || at < TimeUtil::TimestampToMicroseconds(b.first_seen_at())) {
    *b.mutable_first_seen_at() = e.occurred_at();
  }
  if (!b.has_last_seen_at() || at > TimeUtil::TimestampToMicroseconds(b.last_seen_at())) {
    *b.mutable_last_seen_at() = e.occurred_at();
  }
  (*b.mutable_event_counts())[e.type()] += 1;
  // A cancelled order takes back its purchase: the amount and the order count.
  const bool purchase = e.type() == "purchase", cancelled = e.type() == "order_cancelled";
  const bool refund = e.type() == "refund" || cancelled;
  if ((purchase || refund) && e.has_amount() &&
      (b.total_spent().currency().empty() || b.total_spent().currency() == e.amount().currency())) {
    b.mutable_total_spent()->set_currency(e.amount().currency());
    int64_t delta = purchase ? e.amount().amount_minor() : -std::abs(e.amount().amount_minor());
    b.mutable_total_spent()->set_amount_minor(b.total_spent().amount_minor() + delta);
  }
  if (cancelled && b.order_count() > 0) b.set_order_count(b.order_count() - 1);
  if (purchase) {
    b.set_order_count(b.order_count() + 1);
    if (!b.has_last_order_at() || at > TimeUtil::TimestampToMicroseconds(b.last_order_at())) {
      *b.mutable_last_order_at() = e.occurred_at();
    }
    if (!b.has_first_order_at() || at < TimeUtil::TimestampToMicroseconds(b.first_order_at())) {
      *b.mutable_first_order_at() = e.occurred_at();
    }
  }
}

bool ValidName(absl::string_view s, size_t max) {
  if (s.empty() || s.size() > max) return false;
  for (char c : s) {
    if (!absl::ascii_islower(c) && !absl::ascii_isdigit(c) && c != '_') return false;
  }
  return true;
}

absl::Status ValidateValue(const common::v1::AttributeValue& v, const std::string& field, int max_bytes) {
  if (v.value_case() == common::v1::AttributeValue::kStringValue &&
      static_cast<int>(v.string_value().size()) > max_bytes) {
    return Invalid(field, absl::StrCat("is longer than ", max_bytes, " bytes"));
  }
  if (v.value_case() == common::v1::AttributeValue::kDoubleValue && !std::isfinite(v.double_value())) {
    return Invalid(field, "is not a finite number");
  }
  return absl::OkStatus();
}

absl::Status AsContention(absl::Status s) {
  if (s.code() == absl::StatusCode::kAlreadyExists) return absl::AbortedError(s.message());
  return s;
}

}  // namespace ecrm::infostore

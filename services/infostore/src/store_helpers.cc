#include "store_helpers.h"

#include <google/protobuf/util/time_util.h>
#include <openssl/sha.h>

#include <cmath>

#include "absl/random/random.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace ecrm::infostore {

using google::protobuf::util::TimeUtil;

int64_t NowMicros() { return absl::ToUnixMicros(absl::Now()); }

google::protobuf::Timestamp Ts(int64_t micros) { return TimeUtil::MicrosecondsToTimestamp(micros); }
int64_t Micros(const google::protobuf::Timestamp& t) { return TimeUtil::TimestampToMicroseconds(t); }

std::string Sha256Hex(absl::string_view input) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(input.data()), input.size(), digest);
  return absl::BytesToHexString(absl::string_view(reinterpret_cast<const char*>(digest), sizeof digest));
}

std::string NewId(absl::string_view prefix) {
  thread_local absl::BitGen gen;
  return absl::StrFormat("%s%016x", prefix, absl::Uniform<uint64_t>(gen));
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
  const bool purchase = e.type() == "purchase", refund = e.type() == "refund";
  if ((purchase || refund) && e.has_amount() &&
      (b.total_spent().currency().empty() || b.total_spent().currency() == e.amount().currency())) {
    b.mutable_total_spent()->set_currency(e.amount().currency());
    int64_t delta = purchase ? e.amount().amount_minor() : -std::abs(e.amount().amount_minor());
    b.mutable_total_spent()->set_amount_minor(b.total_spent().amount_minor() + delta);
  }
  if (purchase) {
    b.set_order_count(b.order_count() + 1);
    if (!b.has_last_order_at() || at > TimeUtil::TimestampToMicroseconds(b.last_order_at())) {
      *b.mutable_last_order_at() = e.occurred_at();
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

absl::Status Invalid(absl::string_view field, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", what));
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

IdKey KeyOf(const common::v1::Identifier& id) { return {static_cast<int>(id.type()), id.source(), id.value()}; }

int PageSize(int requested, int default_size, int max) {
  return requested <= 0 ? default_size : std::min(requested, max);
}

}  // namespace ecrm::infostore

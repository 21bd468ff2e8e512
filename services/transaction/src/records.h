// The storage boundary of orders and inquiries: the API's messages in, the stored records
// (ecrm/transaction/internal/record.proto) out, and back.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "ecrm/transaction/internal/record.pb.h"
#include "ecrm/transaction/v1/transaction.pb.h"

namespace ecrm::transaction {

internal::OrderRecord ToRecord(const v1::Order& order);
v1::Order FromRecord(const internal::OrderRecord& record);
internal::InquiryRecord ToRecord(const v1::Inquiry& inquiry);
v1::Inquiry FromRecord(const internal::InquiryRecord& record);

// A `body` column: the serialized record; a body that does not parse is DATA_LOSS.
std::string OrderBody(const v1::Order& order);
absl::StatusOr<v1::Order> OrderFromBody(absl::string_view body);
std::string InquiryBody(const v1::Inquiry& inquiry);
absl::StatusOr<v1::Inquiry> InquiryFromBody(absl::string_view body);

}  // namespace ecrm::transaction

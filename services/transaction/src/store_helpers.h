// Row and validation helpers shared by the transaction engine's domain classes (not an API).
#pragma once

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "ecrm/common/v1/common.pb.h"
#include "ecrm/sql/sql.h"
#include "ecrm/transaction/v1/transaction.pb.h"
#include "ecrm/util/util.h"

namespace ecrm::transaction {

using util::Invalid;
using util::Micros;
using util::NewId;
using util::NowMicros;
using util::PageSize;
using util::Ts;

inline common::v1::Money MakeMoney(int64_t minor, absl::string_view currency) {
  common::v1::Money m;
  m.set_amount_minor(minor);
  m.set_currency(std::string(currency));
  return m;
}

// Row lock for read-modify-write on PostgreSQL; SQLite's write transaction already excludes
// every other writer.
inline absl::string_view ForUpdate(const sql::Connection& c) {
  return c.dialect() == sql::Dialect::kPostgres ? " FOR UPDATE" : "";
}

// Parses a stored protobuf body; a body that does not parse is corruption, not bad input.
template <typename T>
absl::StatusOr<T> ParseBody(absl::string_view bytes, absl::string_view what) {
  T out;
  if (!out.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    return absl::DataLossError(absl::StrCat("stored ", what, " does not parse"));
  }
  return out;
}

// Customer ids are opaque strings from the information store.
absl::Status ValidateCustomerId(absl::string_view id, absl::string_view field = "customer_id");
// [A-Za-z0-9._-]{1,64}
absl::Status ValidateSku(absl::string_view sku, absl::string_view field = "sku");
absl::Status ValidateQuantity(int64_t quantity, absl::string_view field = "quantity");

// A ledger row: seq, points, reason, order_id, balance_after, created_at.
v1::LedgerEntry LedgerEntryFromRow(const sql::Row& r);

}  // namespace ecrm::transaction

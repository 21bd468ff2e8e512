#include "store_helpers.h"

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"

namespace ecrm::transaction {

absl::Status ValidateCustomerId(absl::string_view id, absl::string_view field) {
  if (id.empty()) return Invalid(field, "is required");
  if (id.size() > 128) return Invalid(field, "is longer than 128 characters");
  for (char c : id) {
    if (!absl::ascii_isgraph(c)) return Invalid(field, "must be printable ASCII without spaces");
  }
  return absl::OkStatus();
}

absl::Status ValidateSku(absl::string_view sku, absl::string_view field) {
  if (sku.empty()) return Invalid(field, "is required");
  if (sku.size() > 64) return Invalid(field, "is longer than 64 characters");
  for (char c : sku) {
    if (!absl::ascii_isalnum(c) && c != '.' && c != '_' && c != '-') {
      return Invalid(field, absl::StrCat("\"", sku, "\" may hold only letters, digits, '.', '_' and '-'"));
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateQuantity(int64_t quantity, absl::string_view field) {
  if (quantity < 1 || quantity > 999) return Invalid(field, absl::StrCat("must be 1–999, got ", quantity));
  return absl::OkStatus();
}

v1::LedgerEntry LedgerEntryFromRow(const sql::Row& r) {
  v1::LedgerEntry e;
  e.set_id(absl::StrCat("l", r.Int(0)));
  e.set_points(r.Int(1));
  e.set_reason(std::string(r.Text(2)));
  e.set_order_id(std::string(r.Text(3)));
  e.set_balance_after(r.Int(4));
  *e.mutable_created_at() = Ts(r.Int(5));
  return e;
}

}  // namespace ecrm::transaction

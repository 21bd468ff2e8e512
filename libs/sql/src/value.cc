#include <cstdlib>

#include "absl/strings/numbers.h"
#include "absl/strings/string_view.h"
#include "ecrm/sql/sql.h"

namespace ecrm::sql {

int64_t Row::Int(int col) const {
  const Value::Storage& v = cells_[col].storage();
  if (const int64_t* i = std::get_if<int64_t>(&v)) return *i;
  if (const double* d = std::get_if<double>(&v)) return static_cast<int64_t>(*d);
  if (const std::string* s = std::get_if<std::string>(&v)) {
    int64_t out = 0;
    if (absl::SimpleAtoi(*s, &out)) return out;
    double d = 0;
    if (absl::SimpleAtod(*s, &d)) return static_cast<int64_t>(d);
  }
  return 0;
}

double Row::Double(int col) const {
  const Value::Storage& v = cells_[col].storage();
  if (const double* d = std::get_if<double>(&v)) return *d;
  if (const int64_t* i = std::get_if<int64_t>(&v)) return static_cast<double>(*i);
  if (const std::string* s = std::get_if<std::string>(&v)) {
    double out = 0;
    if (absl::SimpleAtod(*s, &out)) return out;
  }
  return 0;
}

absl::string_view Row::Text(int col) const {
  const Value::Storage& v = cells_[col].storage();
  if (const std::string* s = std::get_if<std::string>(&v)) return *s;
  if (const Blob* b = std::get_if<Blob>(&v)) return b->bytes;
  if (const TextRef* t = std::get_if<TextRef>(&v)) return t->text;
  if (const BlobRef* b = std::get_if<BlobRef>(&v)) return b->bytes;
  return {};
}

}  // namespace ecrm::sql

#include "ecrm/testing/remnants.h"

#include <fstream>
#include <iterator>

#include "ecrm/status/macros.h"

namespace ecrm::testing {
namespace {

absl::StatusOr<int64_t> Count(sql::Database& db, absl::string_view query, const std::string& relation,
                              const std::string& needle) {
  ECRM_RETURN_IF_ERROR(db.Execute("CREATE EXTENSION IF NOT EXISTS pageinspect").status());
  ECRM_ASSIGN_OR_RETURN(sql::Result r, db.Execute(query, {relation, needle}));
  return r.front().Int(0);
}

}  // namespace

absl::StatusOr<int64_t> RowVersionsHolding(sql::Database& db, const std::string& table, const std::string& needle) {
  return Count(db,
               "SELECT COUNT(*) FROM generate_series(0, pg_relation_size($1::text::regclass) / 8192 - 1) AS b, "
               "LATERAL heap_page_items(get_raw_page($1::text, b::int)) AS h WHERE "
               "position(convert_to($2::text, 'UTF8') IN h.t_data) > 0",
               table, needle);
}

absl::StatusOr<int64_t> IndexEntriesHolding(sql::Database& db, const std::string& index, const std::string& needle) {
  return Count(db,
               "SELECT COUNT(*) FROM generate_series(1, pg_relation_size($1::text::regclass) / 8192 - 1) AS b, "
               "LATERAL bt_page_items($1::text, b::int) AS i WHERE position(convert_to($2::text, 'UTF8') IN "
               "decode(replace(i.data, ' ', ''), 'hex')) > 0",
               index, needle);
}

int64_t Occurrences(const std::string& path, const std::string& needle) {
  std::ifstream in(path, std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  int64_t n = 0;
  for (size_t at = bytes.find(needle); at != std::string::npos; at = bytes.find(needle, at + 1)) ++n;
  return n;
}

}  // namespace ecrm::testing

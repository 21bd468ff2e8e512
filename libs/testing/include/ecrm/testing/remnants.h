// Where erased data could linger, for erasure tests: row versions in a PostgreSQL table's
// pages, entries of a B-tree index (both read through pageinspect, which these create), and
// bytes in a file.
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "ecrm/sql/sql.h"

namespace ecrm::testing {

// Row versions, live or dead, in the table's pages whose bytes contain `needle`.
absl::StatusOr<int64_t> RowVersionsHolding(sql::Database& db, const std::string& table, const std::string& needle);
// Entries of a B-tree index (past its metapage) whose key contains `needle`.
absl::StatusOr<int64_t> IndexEntriesHolding(sql::Database& db, const std::string& index, const std::string& needle);
// How often `needle` occurs in a file (0 if there is no file).
int64_t Occurrences(const std::string& path, const std::string& needle);

}  // namespace ecrm::testing

// Driver entry points, internal to libs/sql.
#pragma once

#include <functional>
#include <memory>
#include <mutex>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "ecrm/sql/sql.h"

namespace ecrm::sql::internal {

// This process's writers of one SQLite database, one at a time. To hold them off, the
// checkpointer takes `turnstile` and then `lock`; a writer passes the turnstile before it takes
// the lock. So while the checkpointer waits, writers queue behind it instead of taking the lock
// again and again (a mutex is not fair: a writer of back-to-back transactions would starve it).
struct SqliteWriters {
  std::timed_mutex lock;
  std::timed_mutex turnstile;
};

// `writers` is shared by every connection of one Database: write transactions of this process
// queue on it instead of polling SQLite's file lock (whose busy handler sleeps for milliseconds).
// SQLite never checkpoints inside a commit; `on_commit` (may be empty) is told the WAL's size
// in pages after every commit, so the Database's checkpointer can run when it grows.
absl::StatusOr<std::unique_ptr<Connection>> OpenSqlite(const std::string& path, const DatabaseOptions& options,
                                                       std::shared_ptr<SqliteWriters> writers,
                                                       std::function<void(int wal_pages)> on_commit);
// Syncs the database and WAL files of a SQLite connection through SQLite's own file handles.
// (Opening and closing the files separately would drop every POSIX lock this process holds on
// them, letting another process — the sqlite3 shell, a backup — reset the WAL under it.)
void SyncSqliteFiles(Connection& conn);
// The salts in a SQLite connection's WAL header (read through its handle): new each time the
// WAL starts over, so that frame counts taken at two moments are comparable only if equal. 0
// when there is no WAL header yet.
uint64_t SqliteWalSalt(Connection& conn);
absl::StatusOr<std::unique_ptr<Connection>> OpenPostgres(const std::string& conninfo, const DatabaseOptions& options);

// Rewrites PostgreSQL's $N placeholders to SQLite's ?N, leaving string literals, quoted
// identifiers and comments alone.
std::string RewritePlaceholders(absl::string_view sql);

}  // namespace ecrm::sql::internal

#include <sqlite3.h>

#include <algorithm>
#include <functional>
#include <memory>
#include <mutex>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "drivers.h"

namespace ecrm::sql::internal {

std::string RewritePlaceholders(absl::string_view sql) {
  std::string out;
  out.reserve(sql.size());
  for (size_t i = 0; i < sql.size(); ++i) {
    char c = sql[i];
    if (c == '\'' || c == '"') {  // copy a quoted literal or identifier verbatim
      size_t end = sql.find(c, i + 1);
      while (end != absl::string_view::npos && end + 1 < sql.size() && sql[end + 1] == c) end = sql.find(c, end + 2);
      if (end == absl::string_view::npos) end = sql.size() - 1;
      absl::StrAppend(&out, sql.substr(i, end - i + 1));
      i = end;
    } else if (c == '-' && i + 1 < sql.size() && sql[i + 1] == '-') {
      size_t end = sql.find('\n', i);
      if (end == absl::string_view::npos) end = sql.size() - 1;
      absl::StrAppend(&out, sql.substr(i, end - i + 1));
      i = end;
    } else if (c == '$' && i + 1 < sql.size() && sql[i + 1] >= '0' && sql[i + 1] <= '9') {
      out += '?';
    } else {
      out += c;
    }
  }
  return out;
}

namespace {

absl::StatusCode CodeFor(int rc) {
  switch (rc & 0xff) {
    case SQLITE_CONSTRAINT:
      if (rc == SQLITE_CONSTRAINT_UNIQUE || rc == SQLITE_CONSTRAINT_PRIMARYKEY) return absl::StatusCode::kAlreadyExists;
      return absl::StatusCode::kFailedPrecondition;
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return absl::StatusCode::kAborted;
    case SQLITE_CANTOPEN:
    case SQLITE_IOERR:
    case SQLITE_FULL:
    case SQLITE_READONLY:
    case SQLITE_NOTADB:
    case SQLITE_CORRUPT:
      return absl::StatusCode::kUnavailable;
    case SQLITE_TOOBIG:
    case SQLITE_RANGE:
    case SQLITE_MISMATCH:
      return absl::StatusCode::kInvalidArgument;
    default:
      return absl::StatusCode::kInternal;
  }
}

class SqliteConnection final : public Connection {
 public:
  SqliteConnection(sqlite3* db, std::shared_ptr<SqliteWriters> writers, absl::Duration busy_timeout,
                   std::function<void(int)> on_commit)
      : db_(db),
        writers_(std::move(writers)),
        write_lock_(writers_->lock, std::defer_lock),
        busy_timeout_(absl::ToChronoNanoseconds(busy_timeout)),
        on_commit_(std::move(on_commit)) {
    // Replaces SQLite's automatic checkpoint (also a WAL hook), which would copy the WAL back
    // inside the commit that crosses its threshold while every other writer waits.
    sqlite3_wal_hook(db_, &SqliteConnection::WalHook, this);
  }
  ~SqliteConnection() override {
    for (auto& [sql, stmt] : statements_) sqlite3_finalize(stmt);
    sqlite3_close_v2(db_);
  }

  Dialect dialect() const override { return Dialect::kSqlite; }
  sqlite3* handle() const { return db_; }
  bool in_transaction() const override { return sqlite3_get_autocommit(db_) == 0; }
  bool broken() const override { return false; }

  absl::Status Error(int rc, absl::string_view what) const {
    return absl::Status(CodeFor(sqlite3_extended_errcode(db_) ? sqlite3_extended_errcode(db_) : rc),
                        absl::StrCat(what, ": ", sqlite3_errmsg(db_)));
  }

  absl::StatusOr<sqlite3_stmt*> Prepare(absl::string_view sql) {
    auto it = statements_.find(sql);  // no copy of the text: InsertBatch looks up a statement per row
    if (it != statements_.end()) return it->second;
    std::string rewritten = RewritePlaceholders(sql);
    sqlite3_stmt* stmt = nullptr;
    int rc = sqlite3_prepare_v3(db_, rewritten.data(), static_cast<int>(rewritten.size()), SQLITE_PREPARE_PERSISTENT,
                                &stmt, nullptr);
    if (rc != SQLITE_OK) return Error(rc, absl::StrCat("prepare \"", sql.substr(0, 200), "\""));
    statements_.emplace(std::string(sql), stmt);
    return stmt;
  }

  absl::StatusOr<Result> Execute(absl::string_view sql, absl::Span<const Value> params) override {
    ECRM_ASSIGN_OR_RETURN(sqlite3_stmt * stmt, Prepare(sql));
    struct Reset {
      sqlite3_stmt* s;
      ~Reset() {
        sqlite3_reset(s);
        sqlite3_clear_bindings(s);
      }
    } reset{stmt};
    int expected = sqlite3_bind_parameter_count(stmt);
    if (expected > static_cast<int>(params.size())) {
      return absl::InvalidArgumentError(
          absl::StrCat("statement takes ", expected, " parameters, ", params.size(), " given: ", sql.substr(0, 200)));
    }
    for (int i = 0; i < expected; ++i) {
      int rc = Bind(stmt, i + 1, params[i]);
      if (rc != SQLITE_OK) return Error(rc, "bind");
    }
    const int ncol = sqlite3_column_count(stmt);
    std::vector<std::string> names;
    names.reserve(ncol);
    for (int c = 0; c < ncol; ++c) names.emplace_back(sqlite3_column_name(stmt, c));
    Result result(std::move(names));
    for (;;) {
      int rc = sqlite3_step(stmt);
      if (rc == SQLITE_DONE) break;
      if (rc != SQLITE_ROW) {
        absl::Status error = Error(rc, absl::StrCat("execute \"", sql.substr(0, 200), "\""));
        // Some errors (a full disk, an I/O error, out of memory) roll the whole transaction
        // back: this process's writer lock goes with it, or no other writer could start.
        ReleaseWriterIfDone();
        return error;
      }
      for (int c = 0; c < ncol; ++c) result.Append(Column(stmt, c));
    }
    result.set_rows_affected(ncol == 0 || sqlite3_stmt_readonly(stmt) == 0 ? sqlite3_changes64(db_) : 0);
    return result;
  }

  absl::Status ExecuteScript(absl::string_view sql) override {
    std::string text(sql);
    char* err = nullptr;
    int rc = sqlite3_exec(db_, text.c_str(), nullptr, nullptr, &err);
    if (rc != SQLITE_OK) {
      std::string msg = err ? err : sqlite3_errstr(rc);
      sqlite3_free(err);
      return absl::Status(CodeFor(sqlite3_extended_errcode(db_)), msg);
    }
    return absl::OkStatus();
  }

  absl::Status Begin(TxMode mode) override {
    if (mode == TxMode::kReadOnly) return Simple("BEGIN DEFERRED");
    // Held until the transaction ends; waiting longer than the busy timeout is contention.
    if (write_lock_.owns_lock()) {
      return absl::FailedPreconditionError("a write transaction is already open on this connection");
    }
    const auto deadline = std::chrono::steady_clock::now() + busy_timeout_;
    std::unique_lock turnstile(writers_->turnstile, std::defer_lock);
    if (!turnstile.try_lock_until(deadline) || !write_lock_.try_lock_until(deadline)) {
      return absl::AbortedError("database is locked: another write transaction of this process is still running");
    }
    turnstile.unlock();
    absl::Status s = Simple("BEGIN IMMEDIATE");
    ReleaseWriterIfDone();  // when BEGIN failed
    return s;
  }
  absl::Status Commit() override {
    absl::Status s = Simple("COMMIT");
    ReleaseWriterIfDone();
    return s;
  }
  absl::Status Rollback() override {
    absl::Status s = in_transaction() ? Simple("ROLLBACK") : absl::OkStatus();
    ReleaseWriterIfDone();
    return s;
  }

 private:
  absl::Status Simple(absl::string_view sql) { return Execute(sql, {}).status(); }
  void ReleaseWriterIfDone() {
    if (write_lock_.owns_lock() && !in_transaction()) write_lock_.unlock();
  }

  static int WalHook(void* self, sqlite3*, const char*, int pages) {
    auto* conn = static_cast<SqliteConnection*>(self);
    if (conn->on_commit_) conn->on_commit_(pages);
    return SQLITE_OK;
  }

  static int Bind(sqlite3_stmt* stmt, int index, const Value& v) {
    const Value::Storage& s = v.storage();
    if (std::holds_alternative<std::monostate>(s)) return sqlite3_bind_null(stmt, index);
    if (const int64_t* i = std::get_if<int64_t>(&s)) return sqlite3_bind_int64(stmt, index, *i);
    if (const double* d = std::get_if<double>(&s)) return sqlite3_bind_double(stmt, index, *d);
    if (const std::string* t = std::get_if<std::string>(&s)) {
      return sqlite3_bind_text64(stmt, index, t->data(), t->size(), SQLITE_STATIC, SQLITE_UTF8);
    }
    if (const TextRef* t = std::get_if<TextRef>(&s)) {
      return sqlite3_bind_text64(stmt, index, t->text.data(), t->text.size(), SQLITE_STATIC, SQLITE_UTF8);
    }
    const absl::string_view bytes =
        std::holds_alternative<Blob>(s) ? std::get<Blob>(s).bytes : std::get<BlobRef>(s).bytes;
    return sqlite3_bind_blob64(stmt, index, bytes.data(), bytes.size(), SQLITE_STATIC);
  }

  static Value Column(sqlite3_stmt* stmt, int c) {
    switch (sqlite3_column_type(stmt, c)) {
      case SQLITE_INTEGER:
        return Value(static_cast<long long>(sqlite3_column_int64(stmt, c)));
      case SQLITE_FLOAT:
        return Value(sqlite3_column_double(stmt, c));
      case SQLITE_TEXT:
        return Value(
            std::string(reinterpret_cast<const char*>(sqlite3_column_text(stmt, c)), sqlite3_column_bytes(stmt, c)));
      case SQLITE_BLOB: {
        const char* p = static_cast<const char*>(sqlite3_column_blob(stmt, c));
        return Value(Blob{std::string(p ? p : "", sqlite3_column_bytes(stmt, c))});
      }
      default:
        return Value();
    }
  }

  sqlite3* db_;
  std::shared_ptr<SqliteWriters> writers_;
  std::unique_lock<std::timed_mutex> write_lock_;
  std::chrono::nanoseconds busy_timeout_;
  std::function<void(int)> on_commit_;
  absl::flat_hash_map<std::string, sqlite3_stmt*> statements_;
};

}  // namespace

void SyncSqliteFiles(Connection& conn) {
  auto* sqlite = dynamic_cast<SqliteConnection*>(&conn);
  if (sqlite == nullptr) return;
  for (int op : {SQLITE_FCNTL_FILE_POINTER, SQLITE_FCNTL_JOURNAL_POINTER}) {
    sqlite3_file* file = nullptr;
    if (sqlite3_file_control(sqlite->handle(), "main", op, &file) == SQLITE_OK && file != nullptr &&
        file->pMethods != nullptr) {
      file->pMethods->xSync(file, SQLITE_SYNC_NORMAL);
    }
  }
}

uint64_t SqliteWalSalt(Connection& conn) {
  auto* sqlite = dynamic_cast<SqliteConnection*>(&conn);
  sqlite3_file* wal = nullptr;
  if (sqlite == nullptr ||
      sqlite3_file_control(sqlite->handle(), "main", SQLITE_FCNTL_JOURNAL_POINTER, &wal) != SQLITE_OK ||
      wal == nullptr || wal->pMethods == nullptr) {
    return 0;
  }
  uint64_t salt = 0;  // bytes 16-23 of the WAL header: salt-1, salt-2
  if (wal->pMethods->xRead(wal, &salt, sizeof salt, 16) != SQLITE_OK) return 0;
  return salt;
}

absl::StatusOr<std::unique_ptr<Connection>> OpenSqlite(const std::string& path, const DatabaseOptions& options,
                                                       std::shared_ptr<SqliteWriters> writers,
                                                       std::function<void(int wal_pages)> on_commit) {
  sqlite3* db = nullptr;
  int rc =
      sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    std::string msg = db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
    sqlite3_close_v2(db);
    return absl::UnavailableError(absl::StrCat("cannot open SQLite database \"", path, "\": ", msg,
                                               " (does the directory exist and is it writable?)"));
  }
  sqlite3_busy_timeout(db, static_cast<int>(absl::ToInt64Milliseconds(options.busy_timeout)));
  // WAL lets readers run beside the writer; NORMAL sync in WAL mode keeps every commit across
  // a process crash (only an OS crash can lose the last commits). A 64 MiB page cache per
  // connection keeps hot index pages out of read() calls. Deleted content is overwritten with
  // zeros (secure_delete: Debian's SQLite does it by default, other builds may not), so an erased
  // row leaves no copy in the database's free space. The pragmas come before the WAL hook:
  // wal_autocheckpoint would replace it.
  absl::Status s = [&] {
    char* err = nullptr;
    int rc = sqlite3_exec(db,
                          "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON; "
                          "PRAGMA cache_size=-65536; PRAGMA secure_delete=ON;",
                          nullptr, nullptr, &err);
    absl::Status st = rc == SQLITE_OK ? absl::OkStatus() : absl::UnavailableError(err ? err : sqlite3_errstr(rc));
    sqlite3_free(err);
    return st;
  }();
  if (!s.ok()) {
    sqlite3_close_v2(db);
    return absl::UnavailableError(absl::StrCat("cannot set up SQLite database \"", path, "\": ", s.message()));
  }
  return std::make_unique<SqliteConnection>(db, std::move(writers), options.busy_timeout, std::move(on_commit));
}

}  // namespace ecrm::sql::internal

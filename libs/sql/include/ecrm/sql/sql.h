// libs/sql — one small SQL interface over embedded SQLite and PostgreSQL.
//
//   auto db = sql::Database::Open("sqlite:///var/lib/ecrm/infostore.db");   // or postgresql://…
//   absl::Status s = (*db)->InTransaction([&](sql::Connection& c) -> absl::Status {
//     ECRM_ASSIGN_OR_RETURN(auto r, c.Execute("SELECT name FROM t WHERE id = $1", {id}));
//     ...
//   });
//
// Placeholders are PostgreSQL's positional $1, $2, … on both drivers. Errors are absl::Status
// with precise codes: connection lost → UNAVAILABLE, unique violation → ALREADY_EXISTS,
// serialization failure / deadlock / busy → ABORTED (retry the transaction), other constraint
// violations → FAILED_PRECONDITION, bad SQL → INTERNAL, bad URL → INVALID_ARGUMENT.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "ecrm/status/macros.h"

namespace ecrm::sql {

enum class Dialect { kSqlite, kPostgres };

// Bytes that are stored as BLOB / BYTEA rather than text.
struct Blob {
  std::string bytes;
  bool operator==(const Blob&) const = default;
};

// Text or bytes a parameter refers to instead of copying them (bulk inserts): they must
// outlive the statement's execution. Never a cell of a Result.
struct TextRef {
  absl::string_view text;
  bool operator==(const TextRef&) const = default;
};
struct BlobRef {
  absl::string_view bytes;
  bool operator==(const BlobRef&) const = default;
};

// A parameter or a cell. Integers and booleans are int64; NULL is std::monostate.
class Value {
 public:
  using Storage = std::variant<std::monostate, int64_t, double, std::string, Blob, TextRef, BlobRef>;
  Value() = default;
  Value(std::nullptr_t) {}
  Value(int v) : v_(int64_t{v}) {}
  Value(long v) : v_(int64_t{v}) {}
  Value(long long v) : v_(int64_t{v}) {}
  Value(unsigned v) : v_(int64_t{v}) {}
  Value(bool v) : v_(int64_t{v ? 1 : 0}) {}
  Value(double v) : v_(v) {}
  Value(std::string v) : v_(std::move(v)) {}
  Value(absl::string_view v) : v_(std::string(v)) {}
  Value(const char* v) : v_(std::string(v)) {}
  Value(Blob v) : v_(std::move(v)) {}
  Value(TextRef v) : v_(v) {}
  Value(BlobRef v) : v_(v) {}

  bool is_null() const { return std::holds_alternative<std::monostate>(v_); }
  const Storage& storage() const { return v_; }
  Storage& storage() { return v_; }
  bool operator==(const Value&) const = default;

 private:
  Storage v_;
};

class Result;

// One row of a Result; valid while the Result lives. Accessors convert where lossless
// (an integer stored as text, as PostgreSQL aggregates return, reads back with Int).
class Row {
 public:
  Row(const Value* cells, int columns) : cells_(cells), columns_(columns) {}
  int size() const { return columns_; }
  bool IsNull(int col) const { return cells_[col].is_null(); }
  int64_t Int(int col) const;
  double Double(int col) const;
  bool Bool(int col) const { return Int(col) != 0; }
  // Text or blob bytes; empty for NULL.
  absl::string_view Text(int col) const;
  const Value& operator[](int col) const { return cells_[col]; }

 private:
  const Value* cells_;
  int columns_;
};

class Result {
 public:
  Result() = default;
  explicit Result(std::vector<std::string> columns) : columns_(std::move(columns)) {}

  const std::vector<std::string>& columns() const { return columns_; }
  size_t size() const { return columns_.empty() ? 0 : cells_.size() / columns_.size(); }
  bool empty() const { return size() == 0; }
  Row row(size_t i) const { return Row(&cells_[i * columns_.size()], static_cast<int>(columns_.size())); }
  Row front() const { return row(0); }
  int64_t rows_affected() const { return rows_affected_; }

  // Builders used by the drivers.
  void Append(Value v) { cells_.push_back(std::move(v)); }
  void set_rows_affected(int64_t n) { rows_affected_ = n; }
  void Reserve(size_t rows) { cells_.reserve(rows * columns_.size()); }

  class Iterator {
   public:
    Iterator(const Result* r, size_t i) : r_(r), i_(i) {}
    Row operator*() const { return r_->row(i_); }
    Iterator& operator++() {
      ++i_;
      return *this;
    }
    bool operator!=(const Iterator& o) const { return i_ != o.i_; }

   private:
    const Result* r_;
    size_t i_;
  };
  Iterator begin() const { return Iterator(this, 0); }
  Iterator end() const { return Iterator(this, size()); }

 private:
  std::vector<std::string> columns_;
  std::vector<Value> cells_;
  int64_t rows_affected_ = 0;
};

enum class TxMode {
  kReadWrite,     // SQLite: BEGIN IMMEDIATE (takes the write lock up front, no upgrade deadlock)
  kReadOnly,      // SQLite: BEGIN DEFERRED; PostgreSQL: READ ONLY
  kSerializable,  // PostgreSQL: ISOLATION LEVEL SERIALIZABLE; SQLite is always serializable
};

// One database connection. Not thread-safe: a connection is leased to one thread at a time.
class Connection {
 public:
  virtual ~Connection() = default;
  virtual Dialect dialect() const = 0;

  // Prepares (once per connection, cached by SQL text) and runs one statement.
  virtual absl::StatusOr<Result> Execute(absl::string_view sql, absl::Span<const Value> params = {}) = 0;
  absl::StatusOr<Result> Execute(absl::string_view sql, std::initializer_list<Value> params) {
    return Execute(sql, absl::MakeConstSpan(params.begin(), params.size()));
  }
  // Runs several ';'-separated statements with no parameters (migrations).
  virtual absl::Status ExecuteScript(absl::string_view sql) = 0;

  virtual absl::Status Begin(TxMode mode) = 0;
  virtual absl::Status Commit() = 0;
  virtual absl::Status Rollback() = 0;
  virtual bool in_transaction() const = 0;
  // True once the connection is unusable (lost); the pool then discards it.
  virtual bool broken() const = 0;

  // Inserts rows (each of columns.size() values): on PostgreSQL with multi-row INSERTs of up
  // to `rows_per_statement` rows, on SQLite a row per INSERT (see the definition). Returns the
  // number of rows inserted. Runs in the caller's transaction if one is open; otherwise in one
  // of its own, so it is all or nothing. `suffix` is appended to each statement (e.g. "ON
  // CONFLICT DO NOTHING"); with a RETURNING clause, the first column of every returned row is
  // appended to `returned` as text.
  absl::StatusOr<int64_t> InsertBatch(absl::string_view table, absl::Span<const std::string> columns,
                                      absl::Span<const Value> values, absl::string_view suffix = "",
                                      int rows_per_statement = 256, std::vector<std::string>* returned = nullptr);
};

// A transaction that rolls back unless Commit() succeeds.
class Transaction {
 public:
  static absl::StatusOr<Transaction> Begin(Connection& conn, TxMode mode = TxMode::kReadWrite);
  Transaction(Transaction&& o) noexcept : conn_(o.conn_) { o.conn_ = nullptr; }
  Transaction& operator=(Transaction&&) = delete;
  ~Transaction();
  absl::Status Commit();
  Connection& connection() { return *conn_; }

 private:
  explicit Transaction(Connection& conn) : conn_(&conn) {}
  Connection* conn_;
};

struct Migration {
  int version;             // 1, 2, 3 … applied in order, each once
  absl::string_view name;  // recorded with the version
  // Statements; these tokens are replaced per dialect:
  //   {{id}}        → INTEGER PRIMARY KEY AUTOINCREMENT | BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY
  //   {{int64_key}} → INTEGER PRIMARY KEY (SQLite's 64-bit rowid itself) | BIGINT PRIMARY KEY
  //   {{blob}}      → BLOB | BYTEA
  absl::string_view sql;
};

struct DatabaseOptions {
  int pool_size = 0;  // 0: 4 for SQLite, 8 for PostgreSQL
  absl::Duration acquire_timeout = absl::Seconds(5);
  absl::Duration connect_timeout = absl::Seconds(5);
  absl::Duration busy_timeout = absl::Seconds(5);  // SQLite lock wait
  // SQLite: once the WAL holds this many pages a background thread copies them back into the
  // database beside the writers, then holds this process's writers off only to copy the few
  // frames committed meanwhile (about a millisecond), so that the WAL starts again from the
  // beginning. It bounds the WAL (and readers' lookups in it) to roughly this size — unless a
  // writer of long transactions keeps the writers busy: then the WAL grows to 64 times this
  // before they are held off (see checkpoint_waiting).
  int sqlite_checkpoint_pages = 2000;
};

class Database;

// A connection borrowed from the pool, returned when the lease is destroyed.
class Lease {
 public:
  Lease(Database* db, std::unique_ptr<Connection> conn) : db_(db), conn_(std::move(conn)) {}
  Lease(Lease&&) noexcept = default;
  Lease& operator=(Lease&&) noexcept = default;
  ~Lease();
  Connection* operator->() { return conn_.get(); }
  Connection& operator*() { return *conn_; }

 private:
  Database* db_;
  std::unique_ptr<Connection> conn_;
};

// A pool of connections to one database. Thread-safe.
class Database {
 public:
  // URL forms: sqlite:///abs/path.db, sqlite://relative/path.db, postgresql://user@host:port/db?…
  static absl::StatusOr<std::unique_ptr<Database>> Open(absl::string_view url, DatabaseOptions options = {});
  ~Database();

  Dialect dialect() const { return dialect_; }
  absl::string_view redacted_url() const { return redacted_url_; }

  absl::StatusOr<Lease> Acquire();

  // Runs one statement on a pooled connection (autocommit).
  absl::StatusOr<Result> Execute(absl::string_view sql, std::initializer_list<Value> params = {});

  // Runs fn in a transaction and commits; retries the whole transaction when it fails with
  // ABORTED (contention), up to max_attempts. fn's error rolls back and is returned as is.
  absl::Status InTransaction(const std::function<absl::Status(Connection&)>& fn, TxMode mode = TxMode::kReadWrite,
                             int max_attempts = 5);

  // A connection of the caller's own, outside the pool (not counted in pool_size), for one
  // long-lived thread that writes often (the information store's event writer). SQLite drops a
  // connection's whole page cache when another connection has committed since its last
  // transaction, so a pooled connection lent to readers in between comes back to the writer cold
  // and every page it touches is read again; a connection of its own stays warm. SQLite:
  // `sqlite_cache_mib` sizes its page cache (0: the pool's 64 MiB); its commits wake the
  // checkpointer as the pool's do. Close it (destroy it) before the Database.
  absl::StatusOr<std::unique_ptr<Connection>> OpenDedicated(int sqlite_cache_mib = 0);

  // Deletes the rows of `table` matching `where` (placeholders $1… bound to `params`) in
  // transactions of at most `batch` rows, each taking the writer as any write does, so that a
  // large clean-up never holds other writers for long. `key` names the rows: their primary key
  // column(s), e.g. "sequence" or "operation, key". `where` should be answerable from an index.
  // Returns how many rows went.
  absl::StatusOr<int64_t> DeleteInBatches(absl::string_view table, absl::string_view key, absl::string_view where,
                                          std::vector<Value> params, int batch = 5000);

  // Applies the migrations of `component` that are not yet recorded, each in a transaction
  // with its record in schema_migrations. Safe when several processes start at once.
  absl::Status Migrate(absl::string_view component, absl::Span<const Migration> migrations);

  // SQLite's background checkpointer seen from outside, so that a test can pace its writers on
  // it: a WAL bound it checks then follows from the mechanism, not from how soon the scheduler
  // runs the checkpointer's thread. Always {0, false} on PostgreSQL.
  struct CheckpointRounds {
    int64_t finished = 0;  // rounds finished (each copies the WAL back and, unless readers
                           // held on to it, leaves it to start over)
    bool due = false;      // round finished + 1 is due or running
  };
  CheckpointRounds checkpoint_rounds() const;
  // Waits until more than `finished` rounds have finished; returns at once when no round is due.
  CheckpointRounds WaitForCheckpointRound(int64_t finished);
  // SQLite: the checkpointer waits for this process's writers, to copy the last frames of the WAL
  // with them held off so that it starts over. A writer of long transactions (thousands of
  // pages each) should keep its next ones short until this is false: the checkpointer copies
  // the long one beside the writers, and holds them off once what is left is short (a long one
  // copied with every writer held off stalled them for a second). Cheap (an atomic load);
  // always false on PostgreSQL.
  bool checkpoint_waiting() const;

 private:
  friend class Lease;
  Database() = default;
  void Release(std::unique_ptr<Connection> conn);

  struct State;
  std::unique_ptr<State> state_;
  Dialect dialect_ = Dialect::kSqlite;
  std::string redacted_url_;
};

// Database::InTransaction on a given connection (one from OpenDedicated): runs fn in a
// transaction and commits, retrying on ABORTED up to max_attempts.
absl::Status InTransaction(Connection& conn, const std::function<absl::Status(Connection&)>& fn,
                           TxMode mode = TxMode::kReadWrite, int max_attempts = 5);

// Makes deleted and replaced row versions of `table` give up their data, e.g. after an erasure.
// PostgreSQL keeps them in the table's and its indexes' pages until a VACUUM (autovacuum comes
// once a fifth of the table has changed): this runs VACUUM on the table, outside a transaction, so
// call it after the commit; index_cleanup also removes the index entries VACUUM may leave for a
// later run. It skips a table another VACUUM holds, and cannot remove versions a transaction
// older than the deletion may still read. SQLite overwrites deleted content as it deletes
// (secure_delete, set on every connection): nothing to do.
absl::Status Vacuum(Database& db, absl::string_view table, bool index_cleanup = false);

// Renders a migration's {{tokens}} for a dialect (exposed for tests).
std::string RenderDialect(absl::string_view sql, Dialect dialect);

}  // namespace ecrm::sql

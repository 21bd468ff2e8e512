#include <pthread.h>

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <optional>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/string_view.h"
#include "drivers.h"
#include "ecrm/log/log.h"
#include "ecrm/sql/sql.h"

namespace ecrm::sql {

struct Database::State {
  std::string target;  // file path or libpq conninfo
  DatabaseOptions options;
  std::mutex mu;
  std::condition_variable cv;
  std::deque<std::unique_ptr<Connection>> idle;
  int open = 0;
  std::shared_ptr<internal::SqliteWriters> sqlite_writers = std::make_shared<internal::SqliteWriters>();

  // SQLite's checkpointer (see RunCheckpointer). Its own mutex and condition variable: a pool
  // notify_one must not wake it instead of a waiting Acquire.
  std::thread checkpointer;
  std::mutex checkpoint_mu;
  std::condition_variable checkpoint_cv;
  std::atomic<bool> checkpoint_wanted{false};
  bool stopping = false;             // guarded by checkpoint_mu
  int64_t checkpoint_rounds = 0;     // rounds finished; guarded by checkpoint_mu
  std::condition_variable round_cv;  // a round finished (WaitForCheckpointRound)

  // Called by SQLite after every commit with the WAL's size.
  std::atomic<int64_t> wal_pages{0};  // as of the last commit
  static constexpr int64_t kCheckpointTailPages = 32;
  // The most frames the last step copies with the writers held off, unless the writers keep
  // committing more than the passes beside them copy.
  static constexpr int64_t kHeldTailPages = 4096;
  // How long the last step waits for a transaction to end before taking it for a long one.
  static constexpr absl::Duration kShortTransaction = absl::Milliseconds(20);
  // The WAL past which the last step waits for long transactions too, in thresholds
  // (sqlite_checkpoint_pages): ~500 MiB at the default 2,000 pages.
  static constexpr int64_t kLongWriterWalThresholds = 64;
  // The checkpointer waits for the writers (Database::checkpoint_waiting).
  std::atomic<bool> writers_wanted{false};
  void OnCommit(int pages) {
    wal_pages.store(pages, std::memory_order_relaxed);
    if (pages < options.sqlite_checkpoint_pages || checkpoint_wanted.exchange(true)) return;
    std::lock_guard lock(checkpoint_mu);
    checkpoint_cv.notify_one();
  }
  void RunCheckpointer(std::unique_ptr<Connection> conn);
};

// SQLite's own automatic checkpoint copies the WAL back into the database inside the commit
// that crosses the threshold, holding the write lock: every writer queued behind it waits for
// the copy and two fsyncs (AddCartItem p99 3.8 ms at 200 pages, 9.5 ms at 2,000). Here the
// copy runs on its own connection beside the writers (a PASSIVE checkpoint blocks nobody); then
// the few frames committed meanwhile are copied with this process's writers held off, which
// leaves the WAL fully copied so that the next commit starts it again from the beginning.
// Without that short last step the WAL never empties under steady writes and grows without
// bound (an earlier, purely passive checkpointer reached 200 MB and stalled for 100 ms).
void Database::State::RunCheckpointer(std::unique_ptr<Connection> conn) {
  // Runs one checkpoint; returns SQLite's (busy, WAL frames, frames copied) row, or nothing.
  auto checkpoint = [&](absl::string_view mode) -> std::optional<std::array<int64_t, 3>> {
    absl::StatusOr<Result> r = conn->Execute(absl::StrCat("PRAGMA wal_checkpoint(", mode, ")"));
    if (!r.ok() || r->empty()) {
      log::Warn("SQLite checkpoint failed", {{"error", r.ok() ? absl::InternalError("no result") : r.status()}});
      return std::nullopt;
    }
    return std::array<int64_t, 3>{r->front().Int(0), r->front().Int(1), r->front().Int(2)};
  };
  // How many of the WAL's frames are copied, as of the last pass, and the WAL's salt before it
  // (read after, it could be that of a WAL a writer started over since: the count would then
  // seem to be of the new one).
  struct Copied {
    int64_t frames = 0;
    uint64_t salt = 0;
  };
  // Copies beside the writers what they committed, pass after pass while they commit more, then
  // syncs it.
  auto copy_beside = [&] {
    Copied copied;
    for (int pass = 0; pass < 4; ++pass) {
      const uint64_t salt = internal::SqliteWalSalt(*conn);
      auto r = checkpoint("PASSIVE");
      if (!r) break;
      copied = {(*r)[2], salt};
      if (wal_pages.load(std::memory_order_relaxed) - copied.frames <= kCheckpointTailPages) break;
    }
    // The passes left the copied pages unsynced: the last step would sync them all with the
    // writers held off. Syncing the files here (through SQLite's own handles) leaves it only
    // what arrives meanwhile (its stall: ~2 ms → ~0.8 ms).
    internal::SyncSqliteFiles(*conn);
    return copied;
  };
  for (;;) {
    {
      std::unique_lock lock(checkpoint_mu);
      checkpoint_cv.wait(lock, [&] { return stopping || checkpoint_wanted.load(); });
      if (stopping) return;
    }
    const absl::Time start = absl::Now();
    Copied copied = copy_beside();
    const absl::Time beside = absl::Now();
    // The last step holds the writers off. Short transactions (a pool's) end within moments:
    // wait for them a little. A long one (the event writer's group: ~30,000 frames) is not
    // waited for while the WAL is below kLongWriterWalThresholds: the round ends with the WAL
    // copied but not started over, and it grows. Past that, the writers are told to keep their
    // transactions short (writers_wanted) while the checkpointer waits for them, and a long one
    // committed meanwhile is copied beside them before they are held off: copied with them held
    // off, a whole group stalled every writer for a second.
    std::unique_lock writers(sqlite_writers->lock, std::defer_lock);
    // Waits up to `wait` for the writers' transaction to end, new ones queued meanwhile.
    auto hold_writers = [&](absl::Duration wait) {
      const auto deadline = std::chrono::steady_clock::now() + absl::ToChronoNanoseconds(wait);
      std::unique_lock turnstile(sqlite_writers->turnstile, std::defer_lock);
      return turnstile.try_lock_until(deadline) && writers.try_lock_until(deadline);
    };
    // What is left to copy (the writers held off): what was committed since the last pass, or
    // the whole WAL if a writer started it over since (SQLite does when it finds it all copied).
    auto short_tail = [&] {
      const int64_t frames = wal_pages.load(std::memory_order_relaxed);
      return (internal::SqliteWalSalt(*conn) == copied.salt ? frames - copied.frames : frames) <= kHeldTailPages;
    };
    bool held = false;
    if (hold_writers(kShortTransaction)) {
      held = short_tail();
      if (!held) writers.unlock();
    }
    if (!held &&
        wal_pages.load(std::memory_order_relaxed) >= kLongWriterWalThresholds * options.sqlite_checkpoint_pages) {
      writers_wanted.store(true, std::memory_order_relaxed);
      for (int attempt = 0; attempt < 3 && !held; ++attempt) {
        copied = copy_beside();
        if (!hold_writers(options.busy_timeout)) break;
        held = attempt == 2 || short_tail();
        if (!held) writers.unlock();
      }
    }
    const absl::Time locked = absl::Now();
    bool restarted = false;
    if (held) {
      // RESTART also waits for readers still on older frames (new ones read the database file
      // only), so that the next commit may start the WAL over; without it, back-to-back readers
      // keep it growing. They are short: poll briefly, and give up (until the next round)
      // rather than hold the writers off for long.
      for (int attempt = 0; attempt < 40 && !restarted; ++attempt) {
        if (attempt > 0) absl::SleepFor(absl::Microseconds(250));
        auto r = checkpoint("RESTART");
        restarted = r && (*r)[0] == 0;
        if (!r) break;
      }
      writers.unlock();
    }
    log::Debug("SQLite checkpoint", {{"first_pass_ms", absl::ToDoubleMilliseconds(beside - start)},
                                     {"beside_writers_ms", absl::ToDoubleMilliseconds(locked - start)},
                                     {"writers_held_ms", held ? absl::ToDoubleMilliseconds(absl::Now() - locked) : 0.0},
                                     {"wal_pages", wal_pages.load(std::memory_order_relaxed)},
                                     {"restarted", restarted}});
    writers_wanted.store(false, std::memory_order_relaxed);
    // Commits that asked meanwhile saw the WAL before it restarted.
    {
      std::lock_guard lock(checkpoint_mu);
      checkpoint_wanted = false;
      ++checkpoint_rounds;
    }
    round_cv.notify_all();
  }
}

namespace {

std::string RedactUrl(absl::string_view url) {
  // postgresql://user:secret@host → postgresql://user:***@host
  size_t scheme = url.find("://");
  size_t at = url.find('@');
  if (scheme == absl::string_view::npos || at == absl::string_view::npos) return std::string(url);
  size_t colon = url.find(':', scheme + 3);
  if (colon == absl::string_view::npos || colon > at) return std::string(url);
  return absl::StrCat(url.substr(0, colon + 1), "***", url.substr(at));
}

}  // namespace

std::string RenderDialect(absl::string_view sql, Dialect dialect) {
  if (dialect == Dialect::kSqlite) {
    return absl::StrReplaceAll(sql, {{"{{id}}", "INTEGER PRIMARY KEY AUTOINCREMENT"},
                                     {"{{int64_key}}", "INTEGER PRIMARY KEY"},
                                     {"{{blob}}", "BLOB"}});
  }
  return absl::StrReplaceAll(sql, {{"{{id}}", "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY"},
                                   {"{{int64_key}}", "BIGINT PRIMARY KEY"},
                                   {"{{blob}}", "BYTEA"}});
}

absl::StatusOr<std::unique_ptr<Database>> Database::Open(absl::string_view url, DatabaseOptions options) {
  std::unique_ptr<Database> db(new Database());
  db->state_ = std::make_unique<State>();
  db->redacted_url_ = RedactUrl(url);
  if (absl::StartsWith(url, "sqlite://")) {
    db->dialect_ = Dialect::kSqlite;
    db->state_->target = std::string(url.substr(9));
    if (db->state_->target.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "database URL \"", url, "\" names no file; use sqlite:///absolute/path.db or sqlite://relative/path.db"));
    }
    if (options.pool_size <= 0) options.pool_size = 4;
  } else if (absl::StartsWith(url, "postgresql://") || absl::StartsWith(url, "postgres://")) {
    db->dialect_ = Dialect::kPostgres;
    db->state_->target = std::string(url);
    if (options.pool_size <= 0) options.pool_size = 8;
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("database URL \"", db->redacted_url_,
                     "\" is not understood; expected sqlite:///path/to.db or postgresql://user@host:port/db"));
  }
  db->state_->options = options;
  // Open one connection now so that a bad path or an unreachable server fails at start-up.
  ECRM_ASSIGN_OR_RETURN(Lease first, db->Acquire());
  if (db->dialect_ == Dialect::kSqlite) {
    State& s = *db->state_;
    // No busy handler: the checkpointer polls for readers itself, briefly (RunCheckpointer).
    DatabaseOptions checkpointer_options = s.options;
    checkpointer_options.busy_timeout = absl::ZeroDuration();
    ECRM_ASSIGN_OR_RETURN(std::unique_ptr<Connection> conn,
                          internal::OpenSqlite(s.target, checkpointer_options, s.sqlite_writers, nullptr));
    s.checkpointer = std::thread([&s, conn = std::move(conn)]() mutable {
      pthread_setname_np(pthread_self(), "sqlite-ckpt");
      s.RunCheckpointer(std::move(conn));
    });
  }
  return db;
}

Database::~Database() {
  if (state_ == nullptr || !state_->checkpointer.joinable()) return;
  {
    std::lock_guard lock(state_->checkpoint_mu);
    state_->stopping = true;
  }
  state_->checkpoint_cv.notify_all();
  state_->round_cv.notify_all();
  state_->checkpointer.join();
}

Database::CheckpointRounds Database::checkpoint_rounds() const {
  State& s = *state_;
  std::lock_guard lock(s.checkpoint_mu);
  return {s.checkpoint_rounds, s.checkpoint_wanted.load()};
}

bool Database::checkpoint_waiting() const { return state_->writers_wanted.load(std::memory_order_relaxed); }

Database::CheckpointRounds Database::WaitForCheckpointRound(int64_t finished) {
  State& s = *state_;
  std::unique_lock lock(s.checkpoint_mu);
  s.round_cv.wait(lock, [&] { return s.stopping || s.checkpoint_rounds > finished || !s.checkpoint_wanted.load(); });
  return {s.checkpoint_rounds, s.checkpoint_wanted.load()};
}

absl::StatusOr<Lease> Database::Acquire() {
  State& s = *state_;
  {
    std::unique_lock lock(s.mu);
    bool ready = s.cv.wait_for(lock, absl::ToChronoNanoseconds(s.options.acquire_timeout),
                               [&] { return !s.idle.empty() || s.open < s.options.pool_size; });
    if (!ready) {
      return absl::UnavailableError(absl::StrCat("all ", s.options.pool_size, " database connections are busy (waited ",
                                                 absl::FormatDuration(s.options.acquire_timeout), ")"));
    }
    if (!s.idle.empty()) {
      std::unique_ptr<Connection> conn = std::move(s.idle.back());
      s.idle.pop_back();
      return Lease(this, std::move(conn));
    }
    ++s.open;
  }
  // Connect outside the lock: it may take a network round trip.
  absl::StatusOr<std::unique_ptr<Connection>> conn =
      dialect_ == Dialect::kSqlite
          ? internal::OpenSqlite(s.target, s.options, s.sqlite_writers, [&s](int pages) { s.OnCommit(pages); })
          : internal::OpenPostgres(s.target, s.options);
  if (!conn.ok()) {
    std::lock_guard lock(s.mu);
    --s.open;
    s.cv.notify_one();
    return conn.status();
  }
  return Lease(this, std::move(*conn));
}

void Database::Release(std::unique_ptr<Connection> conn) {
  if (conn->in_transaction() && !conn->broken()) {
    (void)conn->Rollback();
  }
  std::lock_guard lock(state_->mu);
  if (conn->broken() || conn->in_transaction()) {
    --state_->open;  // dropped; the next Acquire reconnects
  } else {
    state_->idle.push_back(std::move(conn));
  }
  state_->cv.notify_one();
}

Lease::~Lease() {
  if (conn_ != nullptr) db_->Release(std::move(conn_));
}

absl::StatusOr<Result> Database::Execute(absl::string_view sql, std::initializer_list<Value> params) {
  ECRM_ASSIGN_OR_RETURN(Lease conn, Acquire());
  return conn->Execute(sql, params);
}

namespace {
absl::Status OneTransaction(Connection& conn, const std::function<absl::Status(Connection&)>& fn, TxMode mode) {
  ECRM_ASSIGN_OR_RETURN(Transaction tx, Transaction::Begin(conn, mode));
  ECRM_RETURN_IF_ERROR(fn(conn));
  return tx.Commit();
}
}  // namespace

absl::Status Database::InTransaction(const std::function<absl::Status(Connection&)>& fn, TxMode mode,
                                     int max_attempts) {
  absl::Status last;
  for (int attempt = 1; attempt <= max_attempts; ++attempt) {
    ECRM_ASSIGN_OR_RETURN(Lease conn, Acquire());
    last = OneTransaction(*conn, fn, mode);
    if (last.code() != absl::StatusCode::kAborted) return last;
  }
  return last;
}

absl::Status InTransaction(Connection& conn, const std::function<absl::Status(Connection&)>& fn, TxMode mode,
                           int max_attempts) {
  absl::Status last;
  for (int attempt = 1; attempt <= max_attempts; ++attempt) {
    last = OneTransaction(conn, fn, mode);
    if (last.code() != absl::StatusCode::kAborted) return last;
  }
  return last;
}

absl::StatusOr<std::unique_ptr<Connection>> Database::OpenDedicated(int sqlite_cache_mib) {
  State& s = *state_;
  if (dialect_ == Dialect::kPostgres) return internal::OpenPostgres(s.target, s.options);
  ECRM_ASSIGN_OR_RETURN(std::unique_ptr<Connection> conn, internal::OpenSqlite(s.target, s.options, s.sqlite_writers,
                                                                               [&s](int pages) { s.OnCommit(pages); }));
  if (sqlite_cache_mib > 0) {
    ECRM_RETURN_IF_ERROR(conn->ExecuteScript(absl::StrCat("PRAGMA cache_size=-", int64_t{sqlite_cache_mib} * 1024)));
  }
  return conn;
}

absl::StatusOr<int64_t> Database::DeleteInBatches(absl::string_view table, absl::string_view key,
                                                  absl::string_view where, std::vector<Value> params, int batch) {
  const std::string sql = absl::StrCat("DELETE FROM ", table, " WHERE (", key, ") IN (SELECT ", key, " FROM ", table,
                                       " WHERE ", where, " LIMIT ", std::max(1, batch), ")");
  int64_t deleted = 0;
  for (;;) {
    int64_t n = 0;
    ECRM_RETURN_IF_ERROR(InTransaction([&](Connection& c) -> absl::Status {
      ECRM_ASSIGN_OR_RETURN(Result r, c.Execute(sql, params));
      n = r.rows_affected();
      return absl::OkStatus();
    }));
    deleted += n;
    if (n < batch) return deleted;
  }
}

absl::Status Database::Migrate(absl::string_view component, absl::Span<const Migration> migrations) {
  ECRM_ASSIGN_OR_RETURN(Lease conn, Acquire());
  ECRM_RETURN_IF_ERROR(
      conn->ExecuteScript("CREATE TABLE IF NOT EXISTS schema_migrations ("
                          " component TEXT NOT NULL, version BIGINT NOT NULL, name TEXT NOT NULL,"
                          " applied_at TEXT NOT NULL, PRIMARY KEY (component, version))"));
  int last = 0;
  for (const Migration& m : migrations) {
    if (m.version <= last) {
      return absl::InternalError(
          absl::StrCat("migrations of ", component, " are not in increasing order at version ", m.version));
    }
    last = m.version;
    ECRM_ASSIGN_OR_RETURN(Transaction tx, Transaction::Begin(*conn, TxMode::kReadWrite));
    if (dialect_ == Dialect::kPostgres) {
      // Serialises concurrent starters of the same component; released at commit.
      ECRM_RETURN_IF_ERROR(conn->Execute("SELECT pg_advisory_xact_lock(hashtext($1))", {component}).status());
    }
    ECRM_ASSIGN_OR_RETURN(
        Result done,
        conn->Execute("SELECT 1 FROM schema_migrations WHERE component = $1 AND version = $2", {component, m.version}));
    if (!done.empty()) continue;
    if (absl::Status s = conn->ExecuteScript(RenderDialect(m.sql, dialect_)); !s.ok()) {
      return absl::Status(
          s.code(), absl::StrCat("migration ", component, " #", m.version, " (", m.name, ") failed: ", s.message()));
    }
    ECRM_RETURN_IF_ERROR(conn->Execute("INSERT INTO schema_migrations (component, version, name, applied_at) "
                                       "VALUES ($1, $2, $3, $4)",
                                       {component, m.version, m.name,
                                        absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", absl::Now(), absl::UTCTimeZone())})
                             .status());
    ECRM_RETURN_IF_ERROR(tx.Commit());
    log::Info("migration applied", {{"component", component}, {"version", m.version}, {"name", m.name}});
  }
  return absl::OkStatus();
}

absl::StatusOr<Transaction> Transaction::Begin(Connection& conn, TxMode mode) {
  ECRM_RETURN_IF_ERROR(conn.Begin(mode));
  return Transaction(conn);
}

Transaction::~Transaction() {
  if (conn_ != nullptr && conn_->in_transaction()) (void)conn_->Rollback();
}

absl::Status Transaction::Commit() {
  if (conn_ == nullptr) return absl::FailedPreconditionError("transaction already finished");
  absl::Status s = conn_->Commit();
  conn_ = nullptr;
  return s;
}

absl::StatusOr<int64_t> Connection::InsertBatch(absl::string_view table, absl::Span<const std::string> columns,
                                                absl::Span<const Value> values, absl::string_view suffix,
                                                int rows_per_statement, std::vector<std::string>* returned) {
  const size_t width = columns.size();
  if (width == 0 || values.size() % width != 0) {
    return absl::InvalidArgumentError(absl::StrCat("InsertBatch into ", table, ": ", values.size(),
                                                   " values do not fill rows of ", width, " columns"));
  }
  const size_t rows = values.size() / width;
  // PostgreSQL: many rows per statement (one round trip), under its bound-parameter limit.
  // SQLite: one row per statement. There is no round trip to save, and inside a transaction a
  // statement that writes several rows keeps a statement journal, a copy of every page it
  // changes written to a temporary file, to undo itself alone: with rows spread over an index
  // (events of random customers) that is a page copied and written per row, more than the row
  // costs.
  const size_t per_stmt =
      dialect() == Dialect::kSqlite ? 1 : std::max<size_t>(1, std::min<size_t>(rows_per_statement, 30000 / width));
  auto statement_for = [&](size_t n) {
    std::string sql = absl::StrCat("INSERT INTO ", table, " (", absl::StrJoin(columns, ", "), ") VALUES ");
    int p = 1;
    for (size_t r = 0; r < n; ++r) {
      sql += r == 0 ? "(" : ", (";
      for (size_t c = 0; c < width; ++c) absl::StrAppend(&sql, c == 0 ? "$" : ", $", p++);
      sql += ')';
    }
    if (!suffix.empty()) absl::StrAppend(&sql, " ", suffix);
    return sql;
  };
  std::optional<Transaction> own_tx;
  if (!in_transaction()) {
    ECRM_ASSIGN_OR_RETURN(Transaction tx, Transaction::Begin(*this, TxMode::kReadWrite));
    own_tx.emplace(std::move(tx));
  }
  const std::string full = statement_for(per_stmt);
  int64_t inserted = 0;
  for (size_t start = 0; start < rows; start += per_stmt) {
    size_t n = std::min(per_stmt, rows - start);
    std::string partial;
    if (n != per_stmt) partial = statement_for(n);
    ECRM_ASSIGN_OR_RETURN(Result r, Execute(n == per_stmt ? full : partial, values.subspan(start * width, n * width)));
    inserted += r.rows_affected();
    if (returned != nullptr) {
      for (Row row : r) returned->emplace_back(row.Text(0));
    }
  }
  if (own_tx) ECRM_RETURN_IF_ERROR(own_tx->Commit());
  return inserted;
}

absl::Status Vacuum(Database& db, absl::string_view table, bool index_cleanup) {
  if (db.dialect() != Dialect::kPostgres) return absl::OkStatus();
  ECRM_ASSIGN_OR_RETURN(Lease conn, db.Acquire());
  return conn->ExecuteScript(
      absl::StrCat("VACUUM (SKIP_LOCKED", index_cleanup ? ", INDEX_CLEANUP ON" : "", ") ", table));
}

}  // namespace ecrm::sql

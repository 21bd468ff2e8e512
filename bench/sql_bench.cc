// ecrm-sql-bench: batched inserts and primary-key lookups through libs/sql, and the same
// statements through the raw C API (sqlite3 / libpq) in the same process, to measure the
// library's overhead. PostgreSQL lookups are compared with `pgbench -S` by bench/run.sh
// (--query on pgbench_accounts).
#include <libpq-fe.h>
#include <sqlite3.h>

#include <atomic>
#include <cstdio>
#include <map>
#include <random>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "bench_util.h"
#include "ecrm/config/flags.h"
#include "ecrm/sql/sql.h"

namespace {

struct Config {
  std::string url;
  std::string mode = "insert";  // insert | lookup
  std::string impl = "lib";     // lib | raw
  int64_t rows = 200000;        // rows inserted per run / rows to look up among
  int64_t tx_rows = 1000;       // rows per insert transaction
  int64_t batch = 250;          // rows per INSERT statement
  int64_t threads = 1;
  int64_t runs = 3;
  absl::Duration duration = absl::Seconds(10);
  std::string query;  // lookup statement with one $1 integer key; default: bench_items
};

constexpr const char* kDefaultQuery = "SELECT name, qty, payload FROM bench_items WHERE id = $1";
const std::string kPayload(100, 'p');

[[noreturn]] void Die(const std::string& what) {
  std::fprintf(stderr, "ecrm-sql-bench: %s\n", what.c_str());
  std::exit(1);
}

std::string InsertSql(int64_t rows, bool sqlite_numbering) {
  std::string sql = "INSERT INTO bench_items (id, name, qty, payload) VALUES ";
  int p = 1;
  for (int64_t r = 0; r < rows; ++r) {
    sql += r ? ", (" : "(";
    for (int c = 0; c < 4; ++c) absl::StrAppend(&sql, c ? ", " : "", sqlite_numbering ? "?" : "$", p++);
    sql += ")";
  }
  return sql;
}

// --- through libs/sql ---------------------------------------------------------------------

void LibReset(ecrm::sql::Database& db) {
  auto conn = db.Acquire();
  if (!conn.ok()) Die(conn.status().ToString());
  absl::Status s = (*conn)->ExecuteScript(
      "DROP TABLE IF EXISTS bench_items; CREATE TABLE bench_items (id BIGINT PRIMARY KEY, name TEXT NOT NULL,"
      " qty BIGINT NOT NULL, payload TEXT NOT NULL)");
  if (!s.ok()) Die(s.ToString());
}

void LibInsert(ecrm::sql::Database& db, const Config& c, int64_t first, int64_t n) {
  static const std::vector<std::string> cols = {"id", "name", "qty", "payload"};
  auto conn = db.Acquire();
  if (!conn.ok()) Die(conn.status().ToString());
  std::vector<ecrm::sql::Value> values;
  for (int64_t start = first; start < first + n; start += c.tx_rows) {
    values.clear();
    for (int64_t id = start; id < std::min(first + n, start + c.tx_rows); ++id) {
      values.emplace_back(static_cast<long long>(id));
      values.emplace_back(absl::StrCat("item-", id));
      values.emplace_back(static_cast<long long>(id % 97));
      values.emplace_back(kPayload);
    }
    auto r = (*conn)->InsertBatch("bench_items", cols, values, "", static_cast<int>(c.batch));
    if (!r.ok()) Die(r.status().ToString());
  }
}

double LibLookups(ecrm::sql::Database& db, const Config& c, const std::string& query) {
  std::atomic<int64_t> total{0};
  std::vector<std::thread> threads;
  auto start = std::chrono::steady_clock::now();
  for (int64_t t = 0; t < c.threads; ++t) {
    threads.emplace_back([&, t] {
      auto conn = db.Acquire();
      if (!conn.ok()) Die(conn.status().ToString());
      std::mt19937_64 rng(t + 1);
      std::uniform_int_distribution<int64_t> key(1, c.rows);
      double rate = ecrm::bench::OpsPerSecond(c.duration, 1, [&] {
        auto r = (*conn)->Execute(query, {ecrm::sql::Value(static_cast<long long>(key(rng)))});
        if (!r.ok() || r->size() != 1) Die(r.ok() ? "key not found" : r.status().ToString());
      });
      total += static_cast<int64_t>(rate * absl::ToDoubleSeconds(c.duration));
    });
  }
  for (auto& th : threads) th.join();
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return static_cast<double>(total.load()) / secs;
}

// --- raw SQLite ---------------------------------------------------------------------------

sqlite3* SqliteOpen(const std::string& path) {
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr)) {
    Die(sqlite3_errmsg(db));
  }
  sqlite3_exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=5000;", nullptr, nullptr,
               nullptr);
  return db;
}

void SqliteCheck(sqlite3* db, int rc) {
  if (rc != SQLITE_OK && rc != SQLITE_DONE && rc != SQLITE_ROW) Die(sqlite3_errmsg(db));
}

void RawSqliteInsert(const std::string& path, const Config& c) {
  sqlite3* db = SqliteOpen(path);
  sqlite3_stmt* full = nullptr;
  std::string sql = InsertSql(c.batch, true);
  SqliteCheck(db, sqlite3_prepare_v3(db, sql.c_str(), -1, SQLITE_PREPARE_PERSISTENT, &full, nullptr));
  for (int64_t start = 1; start <= c.rows; start += c.tx_rows) {
    SqliteCheck(db, sqlite3_exec(db, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr));
    for (int64_t s = start; s < start + c.tx_rows && s <= c.rows; s += c.batch) {
      int64_t n = std::min({c.batch, start + c.tx_rows - s, c.rows + 1 - s});
      sqlite3_stmt* stmt = full;
      if (n != c.batch) {
        std::string partial = InsertSql(n, true);
        SqliteCheck(db, sqlite3_prepare_v2(db, partial.c_str(), -1, &stmt, nullptr));
      }
      int p = 1;
      for (int64_t id = s; id < s + n; ++id) {
        std::string name = absl::StrCat("item-", id);
        sqlite3_bind_int64(stmt, p++, id);
        sqlite3_bind_text(stmt, p++, name.data(), static_cast<int>(name.size()), SQLITE_TRANSIENT);
        sqlite3_bind_int64(stmt, p++, id % 97);
        sqlite3_bind_text(stmt, p++, kPayload.data(), static_cast<int>(kPayload.size()), SQLITE_STATIC);
      }
      SqliteCheck(db, sqlite3_step(stmt));
      sqlite3_reset(stmt);
      if (stmt != full) sqlite3_finalize(stmt);
    }
    SqliteCheck(db, sqlite3_exec(db, "COMMIT", nullptr, nullptr, nullptr));
  }
  sqlite3_finalize(full);
  sqlite3_close_v2(db);
}

double RawSqliteLookups(const std::string& path, const Config& c) {
  std::atomic<int64_t> total{0};
  std::vector<std::thread> threads;
  auto start = std::chrono::steady_clock::now();
  for (int64_t t = 0; t < c.threads; ++t) {
    threads.emplace_back([&, t] {
      sqlite3* db = SqliteOpen(path);
      sqlite3_stmt* stmt = nullptr;
      SqliteCheck(db, sqlite3_prepare_v3(db, "SELECT name, qty, payload FROM bench_items WHERE id = ?1", -1,
                                         SQLITE_PREPARE_PERSISTENT, &stmt, nullptr));
      std::mt19937_64 rng(t + 1);
      std::uniform_int_distribution<int64_t> key(1, c.rows);
      double rate = ecrm::bench::OpsPerSecond(c.duration, 1, [&] {
        sqlite3_bind_int64(stmt, 1, key(rng));
        int rows = 0;
        while (sqlite3_step(stmt) == SQLITE_ROW) {
          // Copy the row out, as the library does.
          std::string name(reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0)), sqlite3_column_bytes(stmt, 0));
          int64_t qty = sqlite3_column_int64(stmt, 1);
          std::string payload(reinterpret_cast<const char*>(sqlite3_column_text(stmt, 2)),
                              sqlite3_column_bytes(stmt, 2));
          rows += 1 + static_cast<int>(qty & 0);
        }
        sqlite3_reset(stmt);
        if (rows != 1) Die("key not found");
      });
      total += static_cast<int64_t>(rate * absl::ToDoubleSeconds(c.duration));
      sqlite3_finalize(stmt);
      sqlite3_close_v2(db);
    });
  }
  for (auto& th : threads) th.join();
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return static_cast<double>(total.load()) / secs;
}

// --- raw libpq ----------------------------------------------------------------------------

PGresult* PgCheck(PGconn* conn, PGresult* r) {
  ExecStatusType st = PQresultStatus(r);
  if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) Die(PQerrorMessage(conn));
  return r;
}

void RawPgInsert(const std::string& url, const Config& c) {
  PGconn* conn = PQconnectdb(url.c_str());
  if (PQstatus(conn) != CONNECTION_OK) Die(PQerrorMessage(conn));
  PQclear(PgCheck(conn, PQprepare(conn, "ins", InsertSql(c.batch, false).c_str(), 0, nullptr)));
  std::vector<std::string> text(static_cast<size_t>(c.batch * 4));
  std::vector<const char*> values(text.size());
  for (int64_t start = 1; start <= c.rows; start += c.tx_rows) {
    PQclear(PgCheck(conn, PQexec(conn, "BEGIN")));
    for (int64_t s = start; s < start + c.tx_rows && s <= c.rows; s += c.batch) {
      int64_t n = std::min({c.batch, start + c.tx_rows - s, c.rows + 1 - s});
      size_t p = 0;
      for (int64_t id = s; id < s + n; ++id) {
        text[p] = absl::StrCat(id);
        values[p] = text[p].c_str();
        ++p;
        text[p] = absl::StrCat("item-", id);
        values[p] = text[p].c_str();
        ++p;
        text[p] = absl::StrCat(id % 97);
        values[p] = text[p].c_str();
        ++p;
        values[p++] = kPayload.c_str();
      }
      if (n == c.batch) {
        PQclear(PgCheck(conn, PQexecPrepared(conn, "ins", static_cast<int>(p), values.data(), nullptr, nullptr, 0)));
      } else {
        PQclear(PgCheck(conn, PQexecParams(conn, InsertSql(n, false).c_str(), static_cast<int>(p), nullptr,
                                           values.data(), nullptr, nullptr, 0)));
      }
    }
    PQclear(PgCheck(conn, PQexec(conn, "COMMIT")));
  }
  PQfinish(conn);
}

}  // namespace

int main(int argc, char** argv) {
  Config c;
  ecrm::config::Flags flags("ecrm-sql-bench", "libs/sql vs the raw C API: batched inserts and primary-key lookups");
  flags.AddString("url", &c.url, "sqlite:///path.db or postgresql://…");
  flags.AddString("mode", &c.mode, "insert or lookup");
  flags.AddString("impl", &c.impl, "lib (libs/sql), raw (sqlite3 / libpq directly), or lib,raw alternating run by run");
  flags.AddInt("rows", &c.rows, "rows inserted per run (insert) or present to look up (lookup)");
  flags.AddInt("tx-rows", &c.tx_rows, "rows per insert transaction");
  flags.AddInt("batch", &c.batch, "rows per INSERT statement");
  flags.AddInt("threads", &c.threads, "concurrent lookup clients");
  flags.AddInt("runs", &c.runs, "runs (the median is reported)");
  flags.AddDuration("duration", &c.duration, "length of each lookup run");
  flags.AddString("query", &c.query, "lookup statement with one integer $1 key (default: bench_items by id)");
  if (std::optional<int> exit_code = flags.ParseCommandLine(argc, argv)) return *exit_code;
  const bool sqlite = absl::StartsWith(c.url, "sqlite://");
  const std::string path = sqlite ? c.url.substr(9) : "";
  ecrm::sql::DatabaseOptions options;
  options.pool_size = static_cast<int>(std::max<int64_t>(2, c.threads + 1));
  auto db = ecrm::sql::Database::Open(c.url, options);
  if (!db.ok()) Die(db.status().ToString());
  // Implementations alternate run by run after one unmeasured warm-up each, so file growth,
  // caches and machine noise fall on all of them alike.
  std::vector<std::string> impls = absl::StrSplit(c.impl, ',');
  for (const std::string& impl : impls) {
    if (impl != "lib" && impl != "raw") Die("--impl takes lib, raw or lib,raw");
    if (impl == "raw" && !sqlite && c.mode == "lookup") Die("raw PostgreSQL lookups are measured with pgbench -S");
  }
  const std::string query = c.query.empty() ? kDefaultQuery : c.query;
  if (c.mode == "lookup" && c.query.empty()) {
    LibReset(**db);
    LibInsert(**db, c, 1, c.rows);
  }
  auto measure = [&](const std::string& impl) -> double {
    if (c.mode == "insert") {
      LibReset(**db);
      auto start = std::chrono::steady_clock::now();
      if (impl == "lib") {
        LibInsert(**db, c, 1, c.rows);
      } else if (sqlite) {
        RawSqliteInsert(path, c);
      } else {
        RawPgInsert(c.url, c);
      }
      return static_cast<double>(c.rows) /
             std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    }
    if (c.mode != "lookup") Die("--mode must be insert or lookup");
    return impl == "lib" ? LibLookups(**db, c, query) : RawSqliteLookups(path, c);
  };
  std::map<std::string, std::vector<double>> runs;
  for (const std::string& impl : impls) (void)measure(impl);
  for (int64_t r = 0; r < c.runs; ++r) {
    for (const std::string& impl : impls) runs[impl].push_back(measure(impl));
  }
  for (const std::string& impl : impls) {
    ecrm::bench::PrintResult(absl::StrCat(sqlite ? "sqlite" : "postgres", "_", c.mode, "_", impl,
                                          c.mode == "lookup" ? absl::StrCat("_c", c.threads) : ""),
                             c.mode == "insert" ? "rows/s" : "lookups/s", runs[impl]);
  }
  return 0;
}

#include <libpq-fe.h>

#include <charconv>
#include <cstring>
#include <unordered_map>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "drivers.h"

namespace ecrm::sql::internal {
namespace {

// Type OIDs from pg_type.h (stable across PostgreSQL versions).
constexpr Oid kBool = 16, kBytea = 17, kInt8 = 20, kInt2 = 21, kInt4 = 23, kOid = 26, kFloat4 = 700, kFloat8 = 701,
              kNumeric = 1700;

absl::StatusCode CodeForSqlState(absl::string_view state) {
  if (state == "23505") return absl::StatusCode::kAlreadyExists;
  if (state == "40001" || state == "40P01" || state == "55P03") return absl::StatusCode::kAborted;
  if (absl::StartsWith(state, "08") || state == "57P01" || state == "57P02" || state == "57P03" || state == "53300") {
    return absl::StatusCode::kUnavailable;
  }
  if (absl::StartsWith(state, "23")) return absl::StatusCode::kFailedPrecondition;
  if (absl::StartsWith(state, "22")) return absl::StatusCode::kInvalidArgument;
  if (state == "57014") return absl::StatusCode::kDeadlineExceeded;
  return absl::StatusCode::kInternal;
}

class PgConnection final : public Connection {
 public:
  explicit PgConnection(PGconn* conn) : conn_(conn) {}
  ~PgConnection() override { PQfinish(conn_); }

  Dialect dialect() const override { return Dialect::kPostgres; }
  bool in_transaction() const override {
    PGTransactionStatusType t = PQtransactionStatus(conn_);
    return t == PQTRANS_INTRANS || t == PQTRANS_INERROR || t == PQTRANS_ACTIVE;
  }
  bool broken() const override { return PQstatus(conn_) != CONNECTION_OK; }

  absl::StatusOr<Result> Execute(absl::string_view sql, absl::Span<const Value> params) override {
    ECRM_ASSIGN_OR_RETURN(const std::string* name, Prepare(sql));
    const int n = static_cast<int>(params.size());
    // Text for scalars; binary for blobs so arbitrary bytes need no escaping.
    std::vector<std::string> text(n);
    std::vector<const char*> values(n);
    std::vector<int> lengths(n), formats(n);
    for (int i = 0; i < n; ++i) {
      const Value::Storage& s = params[i].storage();
      if (std::holds_alternative<std::monostate>(s)) {
        values[i] = nullptr;
      } else if (const int64_t* v = std::get_if<int64_t>(&s)) {
        text[i] = absl::StrCat(*v);
        values[i] = text[i].c_str();
      } else if (const double* d = std::get_if<double>(&s)) {
        char buf[32];
        auto [end, ec] = std::to_chars(buf, buf + sizeof buf, *d);
        text[i].assign(buf, end);
        values[i] = text[i].c_str();
      } else if (std::holds_alternative<std::string>(s) || std::holds_alternative<TextRef>(s)) {
        const absl::string_view t =
            std::holds_alternative<TextRef>(s) ? std::get<TextRef>(s).text : std::get<std::string>(s);
        if (t.find('\0') != absl::string_view::npos) {
          return absl::InvalidArgumentError(absl::StrCat("parameter $", i + 1, " is text with a NUL byte; use a Blob"));
        }
        if (const std::string* owned = std::get_if<std::string>(&s)) {
          values[i] = owned->c_str();
        } else {
          text[i] = std::string(t);  // text parameters are NUL-terminated
          values[i] = text[i].c_str();
        }
      } else {
        const absl::string_view b =
            std::holds_alternative<Blob>(s) ? std::get<Blob>(s).bytes : std::get<BlobRef>(s).bytes;
        values[i] = b.data();
        lengths[i] = static_cast<int>(b.size());
        formats[i] = 1;
      }
    }
    PGresult* res = PQexecPrepared(conn_, name->c_str(), n, values.data(), lengths.data(), formats.data(), 0);
    return Collect(res, sql);
  }

  absl::Status ExecuteScript(absl::string_view sql) override {
    PGresult* res = PQexec(conn_, std::string(sql).c_str());
    return Collect(res, sql).status();
  }

  absl::Status Begin(TxMode mode) override {
    switch (mode) {
      case TxMode::kReadWrite:
        return ExecuteScript("BEGIN");
      case TxMode::kReadOnly:
        return ExecuteScript("BEGIN READ ONLY");
      case TxMode::kSerializable:
        return ExecuteScript("BEGIN ISOLATION LEVEL SERIALIZABLE");
    }
    return absl::OkStatus();
  }
  absl::Status Commit() override {
    // COMMIT of a failed transaction reports success but rolls back; surface that as ABORTED.
    bool failed = PQtransactionStatus(conn_) == PQTRANS_INERROR;
    ECRM_RETURN_IF_ERROR(ExecuteScript("COMMIT"));
    if (failed) return absl::AbortedError("transaction had failed and was rolled back");
    return absl::OkStatus();
  }
  absl::Status Rollback() override { return ExecuteScript("ROLLBACK"); }

 private:
  absl::StatusOr<const std::string*> Prepare(absl::string_view sql) {
    auto it = statements_.find(std::string(sql));
    if (it != statements_.end()) return &it->second;
    std::string name = absl::StrCat("ecrm_", statements_.size() + 1);
    PGresult* res = PQprepare(conn_, name.c_str(), std::string(sql).c_str(), 0, nullptr);
    ECRM_RETURN_IF_ERROR(Collect(res, sql).status());
    auto [ins, ok] = statements_.emplace(std::string(sql), std::move(name));
    return &ins->second;
  }

  absl::StatusOr<Result> Collect(PGresult* res, absl::string_view sql) {
    struct Clear {
      PGresult* r;
      ~Clear() { PQclear(r); }
    } clear{res};
    ExecStatusType st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) return ToResult(res);
    if (res == nullptr || PQstatus(conn_) != CONNECTION_OK) {
      return absl::UnavailableError(absl::StrCat("PostgreSQL connection lost: ", PQerrorMessage(conn_)));
    }
    const char* state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    std::string msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY)
                          ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY)
                          : PQerrorMessage(conn_);
    // A constraint violation's detail quotes the row ("Key (value)=(ann@example.com) already
    // exists."): personal data that would reach callers and logs. The constraint's name is kept.
    const char* detail = PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL);
    if (detail != nullptr && !absl::StartsWith(state ? state : "", "23")) absl::StrAppend(&msg, " (", detail, ")");
    return absl::Status(CodeForSqlState(state ? state : ""),
                        absl::StrCat(msg, " [SQLSTATE ", state ? state : "?", "] in \"", sql.substr(0, 200), "\""));
  }

  static Result ToResult(PGresult* res) {
    const int ncol = PQnfields(res), nrow = PQntuples(res);
    std::vector<std::string> names;
    std::vector<Oid> types;
    for (int c = 0; c < ncol; ++c) {
      names.emplace_back(PQfname(res, c));
      types.push_back(PQftype(res, c));
    }
    Result result(std::move(names));
    result.Reserve(nrow);
    for (int r = 0; r < nrow; ++r) {
      for (int c = 0; c < ncol; ++c) result.Append(Cell(res, r, c, types[c]));
    }
    const char* affected = PQcmdTuples(res);
    int64_t n = 0;
    if (affected && *affected) (void)absl::SimpleAtoi(affected, &n);
    result.set_rows_affected(n);
    return result;
  }

  static Value Cell(PGresult* res, int r, int c, Oid type) {
    if (PQgetisnull(res, r, c)) return Value();
    const char* v = PQgetvalue(res, r, c);
    const int len = PQgetlength(res, r, c);
    switch (type) {
      case kInt2:
      case kInt4:
      case kInt8:
      case kOid: {
        int64_t i = 0;
        std::from_chars(v, v + len, i);
        return Value(static_cast<long long>(i));
      }
      case kBool:
        return Value(v[0] == 't');
      case kFloat4:
      case kFloat8: {
        double d = 0;
        (void)absl::SimpleAtod(absl::string_view(v, len), &d);
        return Value(d);
      }
      case kNumeric: {  // sums of bigints: integral when they have no fraction
        int64_t i = 0;
        if (absl::SimpleAtoi(absl::string_view(v, len), &i)) return Value(static_cast<long long>(i));
        double d = 0;
        (void)absl::SimpleAtod(absl::string_view(v, len), &d);
        return Value(d);
      }
      case kBytea: {
        size_t out_len = 0;
        unsigned char* bytes = PQunescapeBytea(reinterpret_cast<const unsigned char*>(v), &out_len);
        Blob b{std::string(reinterpret_cast<char*>(bytes), out_len)};
        PQfreemem(bytes);
        return Value(std::move(b));
      }
      default:
        return Value(std::string(v, len));
    }
  }

  PGconn* conn_;
  std::unordered_map<std::string, std::string> statements_;
};

void IgnoreNotice(void*, const char*) {}

}  // namespace

absl::StatusOr<std::unique_ptr<Connection>> OpenPostgres(const std::string& conninfo, const DatabaseOptions& options) {
  std::string timeout = absl::StrCat(std::max<int64_t>(1, absl::ToInt64Seconds(options.connect_timeout)));
  // Later keywords override earlier ones, so a connect_timeout in the URL wins over ours.
  const char* keys[] = {"connect_timeout", "application_name", "dbname", nullptr};
  const char* vals[] = {timeout.c_str(), "ecrm", conninfo.c_str(), nullptr};
  PGconn* conn = PQconnectdbParams(keys, vals, 1);
  if (conn == nullptr || PQstatus(conn) != CONNECTION_OK) {
    std::string msg = conn ? PQerrorMessage(conn) : "out of memory";
    PQfinish(conn);
    // libpq's message spans lines ("…failed: Connection refused\n\tIs the server running…").
    msg = absl::StrJoin(absl::StrSplit(msg, absl::ByAnyChar("\n\t"), absl::SkipWhitespace()), " ");
    if (absl::StrContains(msg, "invalid") && absl::StrContains(msg, "URI")) {
      return absl::InvalidArgumentError(absl::StrCat("database URL is not valid: ", msg));
    }
    return absl::UnavailableError(absl::StrCat("cannot connect to PostgreSQL: ", msg));
  }
  PQsetNoticeProcessor(conn, IgnoreNotice, nullptr);
  return std::make_unique<PgConnection>(conn);
}

}  // namespace ecrm::sql::internal

#include "ecrm/cache/redis_client.h"

#include <hiredis/hiredis.h>
#include <sys/time.h>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "ecrm/cache/near_cache.h"
#include "ecrm/log/log.h"
#include "ecrm/status/macros.h"

namespace ecrm::cache {
namespace {

RedisReply Convert(const redisReply* r) {
  RedisReply out;
  switch (r->type) {
    case REDIS_REPLY_STRING:
      out.type = RedisReply::Type::kString;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_STATUS:
      out.type = RedisReply::Type::kStatus;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_ERROR:
      out.type = RedisReply::Type::kError;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_INTEGER:
      out.type = RedisReply::Type::kInteger;
      out.integer = r->integer;
      break;
    case REDIS_REPLY_ARRAY:
      out.type = RedisReply::Type::kArray;
      out.elements.reserve(r->elements);
      for (size_t i = 0; i < r->elements; ++i) out.elements.push_back(Convert(r->element[i]));
      break;
    default:
      out.type = RedisReply::Type::kNil;
  }
  return out;
}

int64_t NowNs() { return absl::GetCurrentTimeNanos(); }

}  // namespace

absl::StatusOr<RedisOptions> ParseRedisUrl(absl::string_view url) {
  RedisOptions o;
  if (!absl::ConsumePrefix(&url, "redis://")) {
    return absl::InvalidArgumentError(absl::StrCat("Redis URL \"", url, "\" must look like redis://host:port[/db]"));
  }
  absl::string_view hostport = url, db;
  if (size_t slash = url.find('/'); slash != absl::string_view::npos) {
    hostport = url.substr(0, slash);
    db = url.substr(slash + 1);
  }
  if (size_t colon = hostport.rfind(':'); colon != absl::string_view::npos) {
    o.host = std::string(hostport.substr(0, colon));
    if (!absl::SimpleAtoi(hostport.substr(colon + 1), &o.port) || o.port <= 0 || o.port > 65535) {
      return absl::InvalidArgumentError(
          absl::StrCat("Redis URL port \"", hostport.substr(colon + 1), "\" is not a port"));
    }
  } else if (!hostport.empty()) {
    o.host = std::string(hostport);
  }
  if (!db.empty() && (!absl::SimpleAtoi(db, &o.db) || o.db < 0)) {
    return absl::InvalidArgumentError(absl::StrCat("Redis URL database \"", db, "\" is not a number"));
  }
  return o;
}

struct RedisClient::Conn {
  redisContext* ctx = nullptr;
  int64_t tracking_redirect = 0;  // the listener's client id this connection's tracking goes to
  ~Conn() {
    if (ctx) redisFree(ctx);
  }
};

RedisClient::RedisClient(RedisOptions options) : options_(std::move(options)) {}
RedisClient::~RedisClient() = default;

std::unique_ptr<RedisClient::Conn> RedisClient::Take() {
  {
    std::lock_guard lock(mu_);
    if (!idle_.empty()) {
      auto c = std::move(idle_.back());
      idle_.pop_back();
      return c;
    }
  }
  auto conn = std::make_unique<Conn>();
  conn->ctx = redisConnectWithTimeout(options_.host.c_str(), options_.port, absl::ToTimeval(options_.connect_timeout));
  if (conn->ctx == nullptr || conn->ctx->err) return nullptr;
  redisSetTimeout(conn->ctx, absl::ToTimeval(options_.command_timeout));
  if (options_.db != 0) {
    auto* r = static_cast<redisReply*>(redisCommand(conn->ctx, "SELECT %d", options_.db));
    bool ok = r != nullptr && r->type != REDIS_REPLY_ERROR;
    if (r) freeReplyObject(r);
    if (!ok) return nullptr;
  }
  return conn;
}

void RedisClient::Give(std::unique_ptr<Conn> conn) {
  std::lock_guard lock(mu_);
  if (static_cast<int>(idle_.size()) < options_.pool_size) idle_.push_back(std::move(conn));
}

BreakerState RedisClient::breaker_state() const {
  auto s = static_cast<BreakerState>(state_.load());
  if (s == BreakerState::kOpen && NowNs() >= open_until_ns_.load()) return BreakerState::kHalfOpen;
  return s;
}

absl::Status RedisClient::Admit() {
  if (static_cast<BreakerState>(state_.load()) == BreakerState::kClosed) return absl::OkStatus();
  if (NowNs() < open_until_ns_.load()) return absl::UnavailableError("Redis circuit breaker is open");
  // Half-open: exactly one caller probes; the rest fail fast until it reports back.
  bool expected = false;
  if (!probe_in_flight_.compare_exchange_strong(expected, true)) {
    return absl::UnavailableError("Redis circuit breaker is half-open (probe in flight)");
  }
  return absl::OkStatus();
}

void RedisClient::RecordSuccess() {
  failures_.store(0);
  if (state_.exchange(static_cast<int>(BreakerState::kClosed)) != static_cast<int>(BreakerState::kClosed)) {
    log::Info("redis reachable again; circuit breaker closed", {{"host", options_.host}, {"port", options_.port}});
  }
  probe_in_flight_.store(false);
}

void RedisClient::RecordFailure() {
  int f = failures_.fetch_add(1) + 1;
  bool was_probe = probe_in_flight_.exchange(false);
  if (f >= options_.breaker_failures || was_probe) {
    open_until_ns_.store(NowNs() + absl::ToInt64Nanoseconds(options_.breaker_open_for));
    if (state_.exchange(static_cast<int>(BreakerState::kOpen)) == static_cast<int>(BreakerState::kClosed)) {
      log::Warn("redis unreachable; circuit breaker open",
                {{"host", options_.host}, {"port", options_.port}, {"open_for", options_.breaker_open_for}});
    }
  }
}

absl::StatusOr<std::vector<RedisReply>> RedisClient::Run(const std::vector<std::vector<std::string>>& commands) {
  if (absl::Status s = Admit(); !s.ok()) return s;
  std::unique_ptr<Conn> conn = Take();
  if (conn == nullptr) {
    RecordFailure();
    return absl::UnavailableError(absl::StrCat("cannot connect to Redis at ", options_.host, ":", options_.port));
  }
  // Key tracking goes first, on the same round trip, whenever the listener is (re)subscribed.
  const NearCache* near = tracking_.load();
  const int64_t redirect = near != nullptr && !tracking_refused_.load() ? near->redirect_id() : 0;
  const bool track = redirect != 0 && conn->tracking_redirect != redirect;
  if (track) {
    const std::string id = absl::StrCat(redirect);
    redisAppendCommand(conn->ctx, "CLIENT TRACKING on REDIRECT %s", id.c_str());
  }
  std::vector<const char*> argv;
  std::vector<size_t> argvlen;
  for (const auto& cmd : commands) {
    argv.clear();
    argvlen.clear();
    for (const std::string& a : cmd) {
      argv.push_back(a.data());
      argvlen.push_back(a.size());
    }
    redisAppendCommandArgv(conn->ctx, static_cast<int>(argv.size()), argv.data(), argvlen.data());
  }
  std::vector<RedisReply> replies;
  replies.reserve(commands.size() + 1);
  for (size_t i = 0; i < commands.size() + (track ? 1 : 0); ++i) {
    void* raw = nullptr;
    if (redisGetReply(conn->ctx, &raw) != REDIS_OK || raw == nullptr) {
      std::string err = conn->ctx->errstr[0] ? conn->ctx->errstr : "no reply";
      RecordFailure();  // the connection is dropped with `conn`; the next call reconnects
      return absl::UnavailableError(absl::StrCat("Redis command failed: ", err));
    }
    auto* reply = static_cast<redisReply*>(raw);
    replies.push_back(Convert(reply));
    freeReplyObject(reply);
  }
  if (track) {
    if (replies.front().type == RedisReply::Type::kError) {
      if (!tracking_refused_.exchange(true)) {
        log::Warn("Redis refused key tracking; profiles are not copied locally", {{"error", replies.front().str}});
      }
    } else {
      conn->tracking_redirect = redirect;
    }
    replies.erase(replies.begin());
  }
  RecordSuccess();
  Give(std::move(conn));
  return replies;
}

absl::StatusOr<RedisReply> RedisClient::Command(std::vector<std::string> args) {
  std::vector<std::vector<std::string>> one;
  one.push_back(std::move(args));
  ECRM_ASSIGN_OR_RETURN(std::vector<RedisReply> r, Run(one));
  return std::move(r.front());
}

absl::StatusOr<std::vector<RedisReply>> RedisClient::Pipeline(const std::vector<std::vector<std::string>>& commands) {
  if (commands.empty()) return std::vector<RedisReply>{};
  return Run(commands);
}

}  // namespace ecrm::cache

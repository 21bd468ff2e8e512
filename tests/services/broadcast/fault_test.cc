// ecrm-broadcast killed with SIGKILL during a broadcast: the real binary on SQLite, profiles
// from Redis (the shared profile cache, seeded here as the information store would), SMS through
// the webhook channel to a real HTTP sink in this process. The engine is killed at points spread
// over the run (the sink having seen 1/(kills+1), 2/(kills+1), … of the audience) and started
// again on the same database each time. After the last start the broadcast completes and:
//
//   - every recipient has exactly one delivery, SENT (nothing queued, nothing left `sending`);
//   - the sink saw every recipient; the rows `sending` at each crash (read from the database while
//     the engine was down) are at most the in-flight window (--delivery-workers ×
//     --delivery-batch), and the copies the sink saw twice at most kills × window;
//   - every copy was counted in ecrm_broadcast_possible_duplicates_total (summed over the
//     processes: a counter starts at 0 in each), which counts at least the rows `sending` at the
//     crashes.
//
// ECRM_FAULT_RECIPIENTS (default 20,000), ECRM_FAULT_KILLS (5) and ECRM_FAULT_RATE (the
// broadcast's rate limit, default recipients / 30 a second) size the run; bench/
// broadcast.sh runs it with 100,000 and reads the line this prints ("broadcast-fault: …").
#include <grpcpp/grpcpp.h>
#include <httplib.h>
#include <signal.h>

#include <prometheus/registry.h>
#include <catch2/catch.hpp>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <unordered_map>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "broadcast_completed.h"
#include "ecrm/broadcast/v1/broadcast.grpc.pb.h"
#include "ecrm/cache/profile_cache.h"
#include "ecrm/cache/redis_client.h"
#include "ecrm/infostore/v1/infostore.pb.h"
#include "ecrm/sql/sql.h"
#include "ecrm/testing/process.h"
#include "test_servers.h"
#include "webhook_sink.h"

namespace v1 = ecrm::broadcast::v1;
namespace common = ecrm::common::v1;
namespace info = ecrm::infostore::v1;
using ecrm::testing::BroadcastCompleted;
using ecrm::testing::Eventually;
using ecrm::testing::Redis;

namespace {

int EnvInt(const char* name, int fallback) {
  const char* v = std::getenv(name);
  int out = 0;
  return v != nullptr && absl::SimpleAtoi(v, &out) && out > 0 ? out : fallback;
}

// The value of an unlabelled counter in a Prometheus text page; -1 when the page has none.
double MetricValue(const std::string& metrics_address, const std::string& name) {
  const size_t colon = metrics_address.rfind(':');
  httplib::Client client(metrics_address.substr(0, colon), std::stoi(metrics_address.substr(colon + 1)));
  client.set_read_timeout(10, 0);
  auto r = client.Get("/metrics");
  if (!r || r->status != 200) return -1;
  const std::string prefix = name + " ";
  for (size_t pos = 0; pos < r->body.size();) {
    size_t end = r->body.find('\n', pos);
    if (end == std::string::npos) end = r->body.size();
    if (r->body.compare(pos, prefix.size(), prefix) == 0) {
      double v = 0;
      if (absl::SimpleAtod(r->body.substr(pos + prefix.size(), end - pos - prefix.size()), &v)) return v;
    }
    pos = end + 1;
  }
  return -1;
}

// Counts what the sink was sent, by Idempotency-Key (the delivery id).
class Tally {
 public:
  void Add(const std::string& key) {
    std::lock_guard lock(mu_);
    ++total_;
    if (++seen_[key] == 1) ++unique_;
  }
  int64_t unique() const {
    std::lock_guard lock(mu_);
    return unique_;
  }
  int64_t total() const {
    std::lock_guard lock(mu_);
    return total_;
  }
  int64_t seen_more_than_twice() const {
    std::lock_guard lock(mu_);
    int64_t n = 0;
    for (const auto& [k, count] : seen_) n += count > 2 ? 1 : 0;
    return n;
  }

 private:
  mutable std::mutex mu_;
  std::unordered_map<std::string, int> seen_;
  int64_t unique_ = 0;
  int64_t total_ = 0;
};

std::string CustomerId(int i) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "c_fault_%07d", i);
  return buf;
}

// The profiles of the audience in the shared cache, as the information store writes them: an SMS
// number and a granted marketing consent for SMS.
void SeedProfiles(int n) {
  prometheus::Registry registry;
  ecrm::cache::CacheMetrics metrics(registry);
  auto options = ecrm::cache::ParseRedisUrl(Redis().url());
  REQUIRE(options.ok());
  ecrm::cache::RedisClient client(*options);
  ecrm::cache::RedisProfileCache cache(client, metrics);
  std::vector<ecrm::cache::ProfileWrite> writes;
  for (int i = 0; i < n; ++i) {
    info::Customer c;
    c.set_id(CustomerId(i));
    c.set_version(1);
    auto* phone = c.add_identifiers();
    phone->set_type(common::IDENTIFIER_TYPE_PHONE);
    phone->set_value(absl::StrCat("+4477", 10000000 + i));
    auto* consent = c.add_consents();
    consent->set_channel(common::CHANNEL_SMS);
    consent->set_purpose(common::PURPOSE_MARKETING);
    consent->set_status(info::CONSENT_STATUS_GRANTED);
    consent->set_source(common::TOUCHPOINT_WEB);
    writes.push_back({c.id(), c.version(), c.SerializeAsString(), false});
    if (writes.size() == 1000 || i == n - 1) {
      REQUIRE(cache.Write(writes) == writes.size());
      writes.clear();
    }
  }
}

}  // namespace

TEST_CASE("kill -9 during a broadcast: every recipient ends SENT once, duplicates bounded and counted") {
  const int recipients = EnvInt("ECRM_FAULT_RECIPIENTS", 20000);
  const int kills = EnvInt("ECRM_FAULT_KILLS", 5);
  // The broadcast's own rate limit stretches the run to ~30 s of sending, so that the kills fall
  // at points spread over it rather than all after the last message went (the engine sends far
  // faster than a killed process's claims expire: 5 s each).
  const int rate = EnvInt("ECRM_FAULT_RATE", std::max(100, recipients / 30));
  const int workers = 2, batch = 100;
  const int window = workers * batch;  // rows handed to channels at once, at most

  Tally tally;
  ecrm::testing::WebhookSink sink;
  sink.KeepRequests(false);
  sink.SetResponder([&](const ecrm::testing::WebhookSink::Request& r, int n) {
    tally.Add(r.Header("Idempotency-Key"));
    return ecrm::testing::WebhookSink::Reply{200, absl::StrCat("{\"id\":\"sink-", n, "\"}"), {}};
  });

  const absl::Time seed_began = absl::Now();
  SeedProfiles(recipients);
  const absl::Duration seed_time = absl::Now() - seed_began;

  ecrm::testing::TempDir dir;
  const std::string db_url = absl::StrCat("sqlite://", dir.path(), "/broadcast.db");
  const std::vector<std::string> args = {
      "--database-url=" + db_url,
      "--redis-url=" + Redis().url(),
      "--sms-webhook-url=" + sink.Url("/sms"),
      absl::StrCat("--delivery-workers=", workers),
      absl::StrCat("--delivery-batch=", batch),
      "--delivery-lease=5s",  // the smallest allowed: how long a killed process's claims wait
      "--retry-base=1s",
      "--retry-max=2s",
      // 2 workers x 32 connections: fewer than the sink's 96 handler threads, so no request
      // queues behind a kept-alive connection (a batch stalled past its lease is claimed again).
      "--webhook-max-in-flight=32",
  };
  std::unique_ptr<ecrm::testing::ServiceProcess> engine = ecrm::testing::StartEngine("broadcast", args);

  v1::CreateBroadcastRequest create;
  create.set_campaign_id("camp-fault");
  for (int i = 0; i < recipients; ++i) create.add_customer_ids(CustomerId(i));
  create.add_channels(common::CHANNEL_SMS);
  create.set_purpose(common::PURPOSE_MARKETING);
  create.mutable_content()->mutable_literal()->set_text_body("Flash sale: 20% off today");
  create.set_idempotency_key("fault-broadcast");
  create.set_rate_limit_per_second(rate);
  v1::BroadcastJob job;
  const absl::Time load_began = absl::Now();
  {
    grpc::ClientContext ctx;
    ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Minutes(5)));
    grpc::Status st = v1::Broadcast::NewStub(engine->channel())->CreateBroadcast(&ctx, create, &job);
    INFO(st.error_message());
    REQUIRE(st.ok());
  }
  const absl::Time send_began = absl::Now();
  const absl::Duration load_time = send_began - load_began;

  const std::string kDuplicates = "ecrm_broadcast_possible_duplicates_total";
  std::vector<int64_t> sending_at_crash;  // rows a crash left `sending`: each a possible duplicate
  std::vector<int64_t> leased_at_crash;   // rows a crash left claimed (sending or not yet)
  std::vector<int64_t> unique_at_crash;
  std::vector<double> counted_by_process;  // the counter starts at 0 in each process
  for (int k = 0; k < kills; ++k) {
    // The previous crash's sending rows reclaimed (and counted) by this process, then progress.
    if (k > 0) {
      REQUIRE(Eventually([&] { return MetricValue(engine->metrics_address(), kDuplicates) >= sending_at_crash.back(); },
                         absl::Minutes(2)));
    }
    const int64_t threshold = static_cast<int64_t>(recipients) * (k + 1) / (kills + 1);
    REQUIRE(Eventually([&] { return tally.unique() >= threshold; }, absl::Minutes(10)));
    const double before = MetricValue(engine->metrics_address(), kDuplicates);
    REQUIRE(before >= 0);
    engine->process().Signal(SIGKILL);
    REQUIRE(engine->process().Wait(absl::Seconds(30)).has_value());
    counted_by_process.push_back(before);
    unique_at_crash.push_back(tally.unique());

    // What the crash left, read while no engine runs.
    {
      auto db = ecrm::sql::Database::Open(db_url);
      REQUIRE(db.ok());
      auto r = (*db)->Execute(absl::StrCat("SELECT COALESCE(SUM(sending), 0), COUNT(*) FROM deliveries WHERE state = ",
                                           v1::DELIVERY_STATE_QUEUED, " AND lease_owner <> ''"));
      REQUIRE(r.ok());
      sending_at_crash.push_back(r->front().Int(0));
      leased_at_crash.push_back(r->front().Int(1));
    }
    CHECK(sending_at_crash.back() <= window);
    engine = ecrm::testing::StartEngine("broadcast", args);
  }

  auto stub = v1::Broadcast::NewStub(engine->channel());
  REQUIRE(BroadcastCompleted(*stub, job.id(), job, absl::Minutes(10)));
  const absl::Duration send_time = absl::Now() - send_began;
  REQUIRE(Eventually([&] { return MetricValue(engine->metrics_address(), kDuplicates) >= sending_at_crash.back(); },
                     absl::Minutes(2)));
  counted_by_process.push_back(MetricValue(engine->metrics_address(), kDuplicates));
  double counted = 0;
  for (double n : counted_by_process) counted += n;

  // One final state per recipient: all SENT.
  INFO(absl::StrJoin(job.by_state(), ", ", absl::PairFormatter("=")));
  for (const auto& [state, n] : job.by_state()) CHECK((state == "SENT" ? n == recipients : n == 0));
  {
    auto db = ecrm::sql::Database::Open(db_url);
    REQUIRE(db.ok());
    auto r = (*db)->Execute(
        absl::StrCat(
            "SELECT COUNT(*), COUNT(DISTINCT customer_id), SUM(CASE WHEN state = ", v1::DELIVERY_STATE_SENT,
            " AND sending = 0 AND lease_owner = '' THEN 1 ELSE 0 END) FROM deliveries WHERE broadcast_id = $1"),
        {job.id()});
    REQUIRE(r.ok());
    CHECK(r->front().Int(0) == recipients);
    CHECK(r->front().Int(1) == recipients);
    CHECK(r->front().Int(2) == recipients);
  }

  // Every recipient reached. What came twice is bounded by the rows in flight at the crashes
  // (at most the window each) and every copy was counted: each process counts the rows it claims
  // that a lost claim had handed to the channel — those the crash before left (read from the
  // database), and any batch of its own stalled past its lease (then counted > possible).
  int64_t possible = 0;
  for (int64_t n : sending_at_crash) possible += n;
  const int64_t duplicates = tally.total() - tally.unique();
  INFO("rows sending at each crash: " << absl::StrJoin(sending_at_crash, " ")
                                      << "; counted by each process: " << absl::StrJoin(counted_by_process, " "));
  CHECK(tally.unique() == recipients);
  CHECK(static_cast<double>(duplicates) <= counted);
  CHECK(counted >= static_cast<double>(possible));
  CHECK(duplicates <= static_cast<int64_t>(kills) * window);
  CHECK(tally.seen_more_than_twice() <= counted);

  std::printf(
      "broadcast-fault: recipients=%d rate_limit=%d kills=%d window=%d seed_s=%.2f load_s=%.2f send_s=%.2f "
      "msgs_per_s=%.0f "
      "sink_requests=%lld duplicates=%lld possible=%lld counted=%.0f sending_at_crash=%s leased_at_crash=%s "
      "sent_at_crash=%s counted_by_process=%s\n",
      recipients, rate, kills, window, absl::ToDoubleSeconds(seed_time), absl::ToDoubleSeconds(load_time),
      absl::ToDoubleSeconds(send_time), recipients / absl::ToDoubleSeconds(send_time),
      static_cast<long long>(tally.total()), static_cast<long long>(duplicates), static_cast<long long>(possible),
      counted, absl::StrJoin(sending_at_crash, ",").c_str(), absl::StrJoin(leased_at_crash, ",").c_str(),
      absl::StrJoin(unique_at_crash, ",").c_str(), absl::StrJoin(counted_by_process, ",").c_str());
  std::fflush(stdout);

  engine->process().Signal(SIGTERM);
  CHECK(engine->process().Wait(absl::Seconds(60)).value_or(-1) == 0);
}

// A provider that takes batches (--sms-webhook-profile=generic-batch) refusing one message of a
// request for now (503) and one for good (400): the engine sends the broadcast in requests of
// --webhook-batch-size messages, the refused-for-now message alone is sent again and ends SENT,
// the refused one FAILED, every other message goes exactly once.
TEST_CASE("generic-batch provider: per-message results, one refused message retried alone") {
  constexpr int kRecipients = 600;
  constexpr int kBatchSize = 50;
  const std::string retried_to = absl::StrCat("+4477", 10000000 + 123);
  const std::string refused_to = absl::StrCat("+4477", 10000000 + 321);
  Tally tally;
  std::mutex mu;
  std::vector<size_t> request_sizes;
  bool retried_seen = false;
  ecrm::testing::WebhookSink sink;
  sink.KeepRequests(false);
  sink.SetResponder([&](const ecrm::testing::WebhookSink::Request& r, int n) {
    {
      const nlohmann::json body = nlohmann::json::parse(r.body, nullptr, false);
      std::lock_guard lock(mu);
      request_sizes.push_back(body.is_array() ? body.size() : 0);
    }
    return ecrm::testing::WebhookSink::BatchReply(
        r, [&](const nlohmann::json& m, int i) -> ecrm::testing::WebhookSink::Result {
          const std::string to = m.value("to", "");
          const std::string key = m.value("idempotency_key", "");
          std::lock_guard lock(mu);
          tally.Add(key);
          if (to == retried_to && !retried_seen) {
            retried_seen = true;
            return {.status = 503, .error = "try again", .retry_after = 1};
          }
          if (to == refused_to) return {.status = 400, .error = "invalid number"};
          return {.status = 200, .id = absl::StrCat("sink-", n, "-", i)};
        });
  });
  SeedProfiles(kRecipients);
  ecrm::testing::TempDir dir;
  std::unique_ptr<ecrm::testing::ServiceProcess> engine =
      ecrm::testing::StartEngine("broadcast", {
                                                  absl::StrCat("--database-url=sqlite://", dir.path(), "/broadcast.db"),
                                                  "--redis-url=" + Redis().url(),
                                                  "--sms-webhook-url=" + sink.Url("/sms"),
                                                  "--sms-webhook-profile=generic-batch",
                                                  absl::StrCat("--webhook-batch-size=", kBatchSize),
                                                  "--delivery-workers=2",
                                                  "--delivery-batch=100",
                                                  "--retry-base=1s",
                                                  "--retry-max=2s",
                                              });
  v1::CreateBroadcastRequest create;
  create.set_campaign_id("camp-batch");
  for (int i = 0; i < kRecipients; ++i) create.add_customer_ids(CustomerId(i));
  create.add_channels(common::CHANNEL_SMS);
  create.set_purpose(common::PURPOSE_MARKETING);
  create.mutable_content()->mutable_literal()->set_text_body("Flash sale: 20% off today");
  create.set_idempotency_key("batch-broadcast");
  v1::BroadcastJob job;
  auto stub = v1::Broadcast::NewStub(engine->channel());
  {
    grpc::ClientContext ctx;
    ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Minutes(2)));
    grpc::Status st = stub->CreateBroadcast(&ctx, create, &job);
    INFO(st.error_message());
    REQUIRE(st.ok());
  }
  REQUIRE(BroadcastCompleted(*stub, job.id(), job, absl::Minutes(2)));
  INFO(absl::StrJoin(job.by_state(), ", ", absl::PairFormatter("=")));
  CHECK(job.by_state().at("SENT") == kRecipients - 1);
  CHECK(job.by_state().at("FAILED") == 1);
  // Every message once, and the one refused for now once more: nothing else was sent again.
  CHECK(tally.unique() == kRecipients);
  CHECK(tally.total() == kRecipients + 1);
  std::lock_guard lock(mu);
  CHECK(retried_seen);
  // Requests of at most --webhook-batch-size messages; 600 messages in far fewer requests.
  for (size_t n : request_sizes) CHECK((n >= 1 && n <= static_cast<size_t>(kBatchSize)));
  CHECK(request_sizes.size() < static_cast<size_t>(kRecipients / 10));
  engine->process().Signal(SIGTERM);
  CHECK(engine->process().Wait(absl::Seconds(60)).value_or(-1) == 0);
}

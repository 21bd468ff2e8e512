// The deliveries outbox's gauges in-process (delivery_backlog.h): what is due counts only when a
// worker may claim it.
#include "delivery_backlog.h"

#include <prometheus/registry.h>

#include <catch2/catch.hpp>
#include <map>

#include "absl/strings/str_cat.h"
#include "ecrm/testing/process.h"
#include "schema.h"

namespace ecrm::broadcast {
namespace {

const absl::Time kNow = absl::FromUnixSeconds(1'780'000'000);

struct Fixture {
  ecrm::testing::TempDir dir;
  std::unique_ptr<sql::Database> db;
  prometheus::Registry registry;

  Fixture() {
    auto opened = sql::Database::Open(absl::StrCat("sqlite://", dir.path(), "/broadcast.db"));
    REQUIRE(opened.ok());
    db = std::move(*opened);
    REQUIRE(db->Migrate("broadcast", kMigrations).ok());
  }
  void Broadcast(const std::string& id, v1::BroadcastState state, bool loaded) {
    REQUIRE(db->Execute("INSERT INTO broadcasts (id, campaign_id, state, loaded, audience_size, created_at, body) "
                        "VALUES ($1, '', $2, $3, 0, 0, $4)",
                        {id, static_cast<int64_t>(state), int64_t{loaded ? 1 : 0}, sql::Blob{""}})
                .ok());
  }
  void Delivery(const std::string& id, const std::string& broadcast, v1::DeliveryState state, absl::Time due) {
    REQUIRE(db->Execute("INSERT INTO deliveries (id, customer_id, broadcast_id, campaign_id, purpose, channel, state, "
                        "suppression_reason, address, subject, attempts, last_error, provider_message_id, created_at, "
                        "sent_at, opened_at, clicked_at, next_attempt_at, lease_until, lease_owner, sending, body) "
                        "VALUES ($1, 'c', $2, '', 1, 1, $3, 0, '', '', 0, '', '', 0, 0, 0, 0, $4, 0, '', 0, $5)",
                        {id, broadcast, static_cast<int64_t>(state), absl::ToUnixMicros(due), sql::Blob{""}})
                .ok());
  }
  std::map<std::string, double> Gauges() {
    std::map<std::string, double> out;
    for (const prometheus::MetricFamily& f : registry.Collect()) out[f.name] = f.metric.at(0).gauge.value;
    return out;
  }
};

}  // namespace

TEST_CASE("delivery backlog: due queued deliveries a worker may claim, and how long the oldest has waited") {
  Fixture f;
  DeliveryBacklog backlog(*f.db, f.registry);
  backlog.Refresh(kNow);
  CHECK(f.Gauges() == std::map<std::string, double>{{"ecrm_broadcast_deliveries_due", 0},
                                                    {"ecrm_broadcast_deliveries_oldest_due_age_seconds", 0}});

  f.Broadcast("running", v1::BROADCAST_STATE_RUNNING, true);
  f.Broadcast("paused", v1::BROADCAST_STATE_PAUSED, true);
  f.Broadcast("loading", v1::BROADCAST_STATE_RUNNING, false);
  f.Delivery("single", "", v1::DELIVERY_STATE_QUEUED, kNow - absl::Seconds(30));
  f.Delivery("r1", "running", v1::DELIVERY_STATE_QUEUED, kNow - absl::Seconds(90));
  f.Delivery("r2", "running", v1::DELIVERY_STATE_QUEUED, kNow + absl::Minutes(5));  // not due yet (quiet hours)
  f.Delivery("r3", "running", v1::DELIVERY_STATE_SENT, kNow - absl::Hours(1));      // done
  f.Delivery("p1", "paused", v1::DELIVERY_STATE_QUEUED, kNow - absl::Hours(2));
  f.Delivery("l1", "loading", v1::DELIVERY_STATE_QUEUED, kNow - absl::Hours(3));
  backlog.Refresh(kNow);
  CHECK(f.Gauges() == std::map<std::string, double>{{"ecrm_broadcast_deliveries_due", 2},
                                                    {"ecrm_broadcast_deliveries_oldest_due_age_seconds", 90}});
  backlog.Refresh(kNow + absl::Minutes(10));
  CHECK(f.Gauges() == std::map<std::string, double>{{"ecrm_broadcast_deliveries_due", 3},
                                                    {"ecrm_broadcast_deliveries_oldest_due_age_seconds", 690}});
}

}  // namespace ecrm::broadcast

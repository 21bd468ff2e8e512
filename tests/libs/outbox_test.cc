// libs/outbox in-process: a temporary SQLite database with the outbox table and a fake
// information store behind EventSink (no servers).
#include <prometheus/registry.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "ecrm/outbox/event_sink.h"
#include "ecrm/outbox/outbox.h"
#include "ecrm/outbox/relay.h"
#include "ecrm/testing/process.h"

namespace ecrm::outbox {
namespace {

// The table as every engine's migrations create it (outbox.h).
constexpr sql::Migration kTable[] = {{1, "outbox", R"sql(
CREATE TABLE outbox (
  seq {{id}},
  event_id TEXT NOT NULL UNIQUE,
  customer_id TEXT NOT NULL,
  body {{blob}} NOT NULL,
  created_at BIGINT NOT NULL,
  failed TEXT
);
CREATE INDEX outbox_customer ON outbox (customer_id);
)sql"}};

std::unique_ptr<sql::Database> OpenDatabase(const ecrm::testing::TempDir& dir) {
  auto db = sql::Database::Open("sqlite://" + dir.path() + "/outbox.db");
  REQUIRE(db.ok());
  REQUIRE((*db)->Migrate("outbox_test", kTable).ok());
  return std::move(*db);
}

struct Fixture {
  ecrm::testing::TempDir dir;
  std::unique_ptr<sql::Database> db = OpenDatabase(dir);
  prometheus::Registry registry;
  RelayMetrics metrics{registry, "ecrm_test_outbox"};
  Outbox outbox{*db};

  void AddEvent(const std::string& event_id) {
    infostore::v1::Event e;
    e.set_event_id(event_id);
    e.mutable_customer()->set_customer_id("c_1");
    e.set_type("purchase");
    REQUIRE(db->InTransaction([&](sql::Connection& c) { return outbox.Add(c, e); }).ok());
  }
  std::vector<std::string> Pending() {
    absl::StatusOr<std::vector<OutboxEvent>> events = outbox.PendingEvents(100);
    REQUIRE(events.ok());
    std::vector<std::string> ids;
    for (const OutboxEvent& e : *events) ids.push_back(e.event.event_id());
    return ids;
  }
};

using Calls = std::vector<std::vector<std::string>>;

// The information store's RecordEvents as the relay sees it. `answer` decides each call (set it
// before the relay's thread starts; it runs under the sink's lock); `hold` makes a call wait
// until Cancel().
class FakeSink final : public EventSink {
 public:
  std::function<absl::Status(absl::Span<const OutboxEvent>)> answer = [](auto) { return absl::OkStatus(); };
  bool hold = false;

  absl::Status Record(absl::Span<const OutboxEvent> events) override {
    std::unique_lock lock(mu_);
    std::vector<std::string> ids;
    for (const OutboxEvent& e : events) ids.push_back(e.event.event_id());
    calls_.push_back(ids);
    cv_.notify_all();
    if (hold) {
      // Generous: a relay that never cancels fails the test instead of hanging it.
      if (!cv_.wait_for(lock, std::chrono::seconds(60), [&] { return cancelled_; })) {
        return absl::DeadlineExceededError("never cancelled");
      }
    }
    if (cancelled_) return absl::CancelledError("cancelled");
    return answer(events);
  }
  void Cancel() override {
    std::lock_guard lock(mu_);
    cancelled_ = true;
    cv_.notify_all();
  }
  // Waits until the relay has made `n` calls.
  bool WaitForCalls(size_t n) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, std::chrono::seconds(60), [&] { return calls_.size() >= n; });
  }
  Calls calls() {
    std::lock_guard lock(mu_);
    return calls_;
  }
  bool cancelled() {
    std::lock_guard lock(mu_);
    return cancelled_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  Calls calls_;
  bool cancelled_ = false;
};

}  // namespace

TEST_CASE("the relay delivers oldest first, in batches, and an event id appended twice is one event") {
  Fixture f;
  for (const char* id : {"e1", "e2", "e3", "e4", "e5", "e2"}) f.AddEvent(id);
  CHECK(f.Pending() == std::vector<std::string>{"e1", "e2", "e3", "e4", "e5"});
  FakeSink sink;
  OutboxRelay relay(f.outbox, sink, {.batch_size = 2}, f.metrics);

  CHECK(relay.DeliverPending());
  CHECK(sink.calls() == Calls{{"e1", "e2"}, {"e3", "e4"}, {"e5"}});
  CHECK(f.Pending().empty());
  CHECK(f.metrics.delivered.Value() == 5);
  CHECK(f.metrics.pending.Value() == 0);

  // The metrics carry the engine's prefix.
  std::vector<std::string> names;
  for (const prometheus::MetricFamily& family : f.registry.Collect()) names.push_back(family.name);
  std::sort(names.begin(), names.end());
  CHECK(names == std::vector<std::string>{"ecrm_test_outbox_delivered_total",
                                          "ecrm_test_outbox_delivery_failures_total",
                                          "ecrm_test_outbox_oldest_pending_age_seconds",
                                          "ecrm_test_outbox_parked_total", "ecrm_test_outbox_pending"});
}

TEST_CASE("behind a full batch the pending gauge is counted now and then, and lowered by what is delivered") {
  Fixture f;
  for (const char* id : {"e1", "e2", "e3", "e4", "e5"}) f.AddEvent(id);
  FakeSink sink;
  std::vector<double> seen;  // the gauge as each call found it
  sink.answer = [&](absl::Span<const OutboxEvent>) {
    seen.push_back(f.metrics.pending.Value());
    if (seen.size() == 1) {  // two more arrive while the first batch is out
      f.AddEvent("e6");
      f.AddEvent("e7");
    }
    return absl::OkStatus();
  };
  // Counted once, at the first full batch (5), then lowered by each delivery but never below
  // the batch in hand: the two added meanwhile are not seen until a short batch (everything
  // pending) is read.
  OutboxRelay once(f.outbox, sink, {.batch_size = 2, .count_every = absl::InfiniteDuration()}, f.metrics);
  CHECK(once.DeliverPending());
  CHECK(seen == std::vector<double>{5, 3, 2, 1});
  CHECK(f.metrics.pending.Value() == 0);
  CHECK(f.Pending().empty());

  // Counted at every full batch: the two added again during the first call show at once.
  for (const char* id : {"e8", "e9", "e10", "e11", "e12"}) f.AddEvent(id);
  seen.clear();
  OutboxRelay always(f.outbox, sink, {.batch_size = 2, .count_every = absl::ZeroDuration()}, f.metrics);
  CHECK(always.DeliverPending());
  CHECK(seen == std::vector<double>{5, 5, 3, 1});
}

TEST_CASE("the relay parks an event refused for its data and delivers the others, in order") {
  Fixture f;
  FakeSink sink;
  sink.answer = [](absl::Span<const OutboxEvent> events) {
    for (const OutboxEvent& e : events) {
      if (e.event.event_id() == "e2") return absl::InvalidArgumentError("events[0].type: not allowed");
    }
    return absl::OkStatus();
  };
  for (const char* id : {"e1", "e2", "e3"}) f.AddEvent(id);
  OutboxRelay relay(f.outbox, sink, {}, f.metrics);

  CHECK(relay.DeliverPending());
  CHECK(sink.calls() == Calls{{"e1", "e2", "e3"}, {"e1"}, {"e2"}, {"e3"}});
  CHECK(f.Pending().empty());
  CHECK(f.outbox.PendingCount().value() == 0);
  CHECK(f.metrics.delivered.Value() == 2);
  CHECK(f.metrics.parked.Value() == 1);
  // The parked event stays, with the error, and is not sent again.
  auto failed = f.db->Execute("SELECT event_id, failed FROM outbox");
  REQUIRE(failed.ok());
  REQUIRE(failed->size() == 1);
  CHECK(failed->front().Text(0) == "e2");
  CHECK(failed->front().Text(1) == "events[0].type: not allowed");
  f.AddEvent("e4");
  CHECK(relay.DeliverPending());
  CHECK(sink.calls().back() == std::vector<std::string>{"e4"});
}

TEST_CASE("while the information store is unavailable nothing leaves the outbox and the relay backs off") {
  Fixture f;
  FakeSink sink;
  sink.answer = [](auto) { return absl::UnavailableError("connection refused"); };
  for (const char* id : {"e1", "e2"}) f.AddEvent(id);
  OutboxRelay relay(f.outbox, sink, {}, f.metrics);

  CHECK_FALSE(relay.DeliverPending());
  CHECK(sink.calls().size() == 1);  // no event-by-event retry for a failure that is not the data's
  CHECK(f.Pending() == std::vector<std::string>{"e1", "e2"});
  CHECK(f.metrics.delivery_failures.Value() == 1);
  CHECK(f.metrics.pending.Value() == 2);

  sink.answer = [](auto) { return absl::OkStatus(); };
  CHECK(relay.DeliverPending());
  CHECK(f.Pending().empty());
  CHECK(f.metrics.delivered.Value() == 2);
}

TEST_CASE("the age gauge is the age of the oldest event the relay found waiting, 0 once it is delivered") {
  Fixture f;
  FakeSink sink;
  sink.answer = [](auto) { return absl::UnavailableError("connection refused"); };
  f.AddEvent("e1");
  f.AddEvent("e2");
  // The first event's own time, as its transaction stored it.
  auto created = f.db->Execute("SELECT created_at FROM outbox WHERE event_id = 'e1'");
  REQUIRE(created.ok());
  const absl::Time e1_created = absl::FromUnixMicros(created->front().Int(0));
  OutboxRelay relay(f.outbox, sink, {}, f.metrics);

  relay.RefreshAge(e1_created + absl::Seconds(90));
  CHECK(f.metrics.oldest_pending_age.Value() == 0);  // the relay has not read the outbox yet
  CHECK_FALSE(relay.DeliverPending());
  relay.RefreshAge(e1_created + absl::Seconds(90));
  CHECK(f.metrics.oldest_pending_age.Value() == 90);  // undelivered: e1 ages at each scrape
  relay.RefreshAge(e1_created + absl::Seconds(150));
  CHECK(f.metrics.oldest_pending_age.Value() == 150);

  sink.answer = [](auto) { return absl::OkStatus(); };
  CHECK(relay.DeliverPending());
  relay.RefreshAge(e1_created + absl::Seconds(200));
  CHECK(f.metrics.oldest_pending_age.Value() == 0);
}

TEST_CASE("the relay's thread retries after its back-off until the information store takes the events") {
  Fixture f;
  FakeSink sink;
  // Down for three calls, then up.
  sink.answer = [failures = 0](auto) mutable {
    return ++failures <= 3 ? absl::UnavailableError("connection refused") : absl::OkStatus();
  };
  f.AddEvent("e1");
  f.AddEvent("e2");
  // An hour's poll: only the back-off (or a notification) can make the relay look again.
  OutboxRelay relay(
      f.outbox, sink,
      {.min_backoff = absl::Milliseconds(1), .max_backoff = absl::Milliseconds(4), .poll = absl::Hours(1)}, f.metrics);
  relay.Start();
  REQUIRE(sink.WaitForCalls(4));  // three failures, each followed by a back-off, then delivered
  // A new event is delivered too, long before the next poll: the relay is notified.
  f.outbox.SetListener([&] { relay.Notify(); });
  f.AddEvent("e3");
  f.outbox.Notify();
  REQUIRE(sink.WaitForCalls(5));
  relay.Stop();

  CHECK(sink.calls() == Calls{{"e1", "e2"}, {"e1", "e2"}, {"e1", "e2"}, {"e1", "e2"}, {"e3"}});
  CHECK(f.Pending().empty());
  CHECK(f.metrics.delivery_failures.Value() == 3);
  CHECK(f.metrics.delivered.Value() == 3);
}

TEST_CASE("stopping the relay cancels its call in flight, whose events stay in the outbox") {
  Fixture f;
  FakeSink sink;
  sink.hold = true;
  f.AddEvent("e1");
  OutboxRelay relay(f.outbox, sink, {}, f.metrics);
  relay.Start();
  REQUIRE(sink.WaitForCalls(1));
  relay.Stop();
  CHECK(sink.cancelled());
  CHECK(f.Pending() == std::vector<std::string>{"e1"});
  CHECK(f.metrics.delivered.Value() == 0);
}

}  // namespace ecrm::outbox

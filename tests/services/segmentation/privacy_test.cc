// Erasure through the privacy API while the feed applies and saves in the background: the
// customer is gone from memory, from every saved row and from what a restart loads, whatever the
// saver was doing when the erasure came.
#include "privacy.h"

#include <prometheus/registry.h>

#include <catch2/catch.hpp>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <set>
#include <thread>

#include "absl/strings/str_cat.h"
#include "ecrm/testing/process.h"
#include "fakes.h"
#include "feed.h"
#include "metrics.h"
#include "schema.h"

namespace ecrm::segmentation {
namespace {

const absl::Time kNow = absl::FromUnixSeconds(1'780'000'000);

// An information store whose feed delivers the messages pushed to it, in order, until stopped.
class PushedFeed final : public InformationStore {
 public:
  void Push(infostore::v1::WatchChangesResponse m) {
    std::lock_guard lock(mu_);
    pending_.push_back(std::move(m));
    cv_.notify_all();
  }
  absl::Status Watch(int64_t,
                     const std::function<absl::Status(const infostore::v1::WatchChangesResponse&)>& on) override {
    std::unique_lock lock(mu_);
    while (!stopped_) {
      if (pending_.empty()) {
        cv_.wait(lock);
        continue;
      }
      infostore::v1::WatchChangesResponse m = std::move(pending_.front());
      pending_.pop_front();
      lock.unlock();
      if (absl::Status s = on(m); !s.ok()) return s;
      lock.lock();
    }
    return absl::CancelledError("stopped");
  }
  void StopWatching() override {
    std::lock_guard lock(mu_);
    stopped_ = true;
    cv_.notify_all();
  }
  absl::StatusOr<infostore::v1::ListCustomersResponse> ListCustomers(const std::string&, int) override {
    return infostore::v1::ListCustomersResponse();
  }
  absl::StatusOr<infostore::v1::ListEventsResponse> ListEvents(const std::string&, absl::Time,
                                                               const std::string&) override {
    return infostore::v1::ListEventsResponse();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<infostore::v1::WatchChangesResponse> pending_;
  bool stopped_ = false;
};

// The engine's parts over one database (a start is a new Engine over the same directory).
struct Engine {
  std::unique_ptr<sql::Database> db;
  Features features;
  std::unique_ptr<Segments> segments;
  std::unique_ptr<outbox::Outbox> outbox;
  prometheus::Registry registry;
  std::unique_ptr<SegmentationMetrics> metrics;
  std::unique_ptr<Scores> scores;
  std::unique_ptr<FeedConsumer> feed;

  Engine(const std::string& dir, InformationStore& store) {
    auto opened = sql::Database::Open(absl::StrCat("sqlite://", dir, "/segmentation.db"));
    REQUIRE(opened.ok());
    db = std::move(*opened);
    REQUIRE(db->Migrate("segmentation", kMigrations).ok());
    segments = std::make_unique<Segments>(*db, features, [] { return kNow; });
    outbox = std::make_unique<outbox::Outbox>(*db);
    metrics = std::make_unique<SegmentationMetrics>(registry);
    scores = std::make_unique<Scores>(features, [] { return kNow; });
    feed = std::make_unique<FeedConsumer>(*db, features, *segments, store, *outbox, *metrics);
    REQUIRE(feed->Load().ok());
    REQUIRE(segments->Load().ok());
  }

  int64_t Count(const std::string& sql, const std::string& id) {
    auto rows = db->Execute(sql, {id});
    REQUIRE(rows.ok());
    return rows->front().Int(0);
  }
  bool Live(const std::string& id) {
    std::shared_lock lock(features.mutex());
    std::optional<CustomerNo> n = features.Find(id);
    return n && features.IsLive(*n);
  }
};

// `views` page views of each customer, at feed position `position`.
infostore::v1::WatchChangesResponse Views(int64_t position, const std::vector<std::string>& customers, int views) {
  infostore::v1::WatchChangesResponse m;
  for (const std::string& id : customers) {
    for (int k = 0; k < views; ++k) {
      infostore::v1::Change* c = m.add_changes();
      c->set_kind(infostore::v1::CHANGE_KIND_EVENT);
      c->set_customer_id(id);
      *c->mutable_event() = Event(id, "page_view", kNow - absl::Hours(k + 1));
      c->mutable_event()->set_event_id(absl::StrCat(id, "-", position, "-", k));
    }
  }
  m.set_position(position);
  return m;
}

TEST_CASE("an erasure while the feed saves leaves nothing of the customer saved, queued or loaded at a restart") {
  ecrm::testing::TempDir dir;
  PushedFeed store;
  {
    Engine engine(dir.path(), store);
    v1::Segment s;
    s.set_name("active");
    s.set_rule("events.count(\"page_view\", 30d) >= 2");
    REQUIRE(engine.segments->Create(s).ok());
    SegmentationPrivacy privacy(*engine.db, engine.features, *engine.segments, *engine.scores, engine.feed.get());
    engine.feed->Start();

    // Both enter; their entries are queued for the store with their saved rows.
    store.Push(Views(1, {"c1", "c2"}, 2));
    REQUIRE(engine.feed->WaitForPosition(1, absl::Minutes(1)));
    CHECK(engine.Count("SELECT COUNT(*) FROM outbox WHERE customer_id = $1", "c1") == 1);

    // More of c1 (and c3 entering) applied and handed to the saver; the erasure comes at once,
    // while that save may be under way.
    store.Push(Views(2, {"c1", "c3"}, 2));
    while (!engine.Live("c3")) std::this_thread::yield();
    privacy::v1::EraseCustomerDataRequest erase;
    erase.set_customer_id("c1");
    auto receipt = privacy.EraseCustomerData(erase);
    REQUIRE(receipt.ok());
    std::map<std::string, int64_t> counts;
    for (const auto& item : receipt->items()) counts[item.kind()] = item.count();
    CHECK(counts["segment memberships"] == 1);
    CHECK(counts["customer features"] == 1);

    REQUIRE(engine.feed->WaitForPosition(2, absl::Minutes(1)));
    engine.feed->Stop();
    CHECK_FALSE(engine.Live("c1"));
    CHECK(engine.Count("SELECT COUNT(*) FROM customers WHERE customer_id = $1", "c1") == 0);
    CHECK(engine.Count("SELECT COUNT(*) FROM outbox WHERE customer_id = $1", "c1") == 0);
    // No events row without its customer.
    CHECK(engine.Count("SELECT COUNT(*) FROM customer_events WHERE number NOT IN (SELECT number FROM customers) "
                       "AND $1 <> ''",
                       "c1") == 0);
    CHECK(engine.Count("SELECT COUNT(*) FROM outbox WHERE customer_id = $1", "c3") == 1);
  }
  // A start loads c2 and c3 as members and nothing of c1.
  Engine restarted(dir.path(), store);
  CHECK_FALSE(restarted.features.Find("c1").has_value());
  CHECK(restarted.Live("c2"));
  CHECK(restarted.Live("c3"));
  auto listed = restarted.segments->List(v1::ListSegmentsRequest());
  REQUIRE(listed.ok());
  REQUIRE(listed->segments_size() == 1);
  auto members = restarted.segments->Snapshot(listed->segments(0).id());
  REQUIRE(members.ok());
  std::vector<CustomerNo> numbers(members->cardinality());
  members->toUint32Array(numbers.data());
  std::vector<std::string> ids = restarted.segments->Ids(numbers);
  CHECK(std::set<std::string>(ids.begin(), ids.end()) == std::set<std::string>{"c2", "c3"});

  // With no feed (nothing in memory), an erasure deletes the saved rows and the customer's
  // events in the events log.
  const CustomerNo c3 = *restarted.features.Find("c3");
  auto logged = [&] {
    absl::StatusOr<std::set<CustomerNo>> numbers = LoggedCustomers(*restarted.db);
    REQUIRE(numbers.ok());
    return *numbers;
  };
  REQUIRE(restarted.feed->Apply(Views(3, {"c3"}, 1)).ok());  // its events alone change: logged
  REQUIRE(logged().contains(c3));
  SegmentationPrivacy offline(*restarted.db, restarted.features, *restarted.segments, *restarted.scores, nullptr);
  privacy::v1::EraseCustomerDataRequest erase;
  erase.set_customer_id("c3");
  REQUIRE(offline.EraseCustomerData(erase).ok());
  CHECK_FALSE(logged().contains(c3));
  CHECK(restarted.Count("SELECT COUNT(*) FROM customers WHERE customer_id = $1", "c3") == 0);
}

}  // namespace
}  // namespace ecrm::segmentation

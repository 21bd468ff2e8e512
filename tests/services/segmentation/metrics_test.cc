// Segmentation's scrape-time gauges in-process: the feed lag (how far behind the information
// store's change feed the saved features are, as the consumer learns it from the messages it
// applies) and the segment sizes.
#include <prometheus/registry.h>

#include <catch2/catch.hpp>
#include <map>

#include "absl/strings/str_cat.h"
#include "ecrm/testing/process.h"
#include "fakes.h"
#include "feed.h"
#include "metrics.h"
#include "schema.h"

namespace ecrm::segmentation {
namespace {

struct Consumer {
  ecrm::testing::TempDir dir;
  std::unique_ptr<sql::Database> db;
  Features features;
  std::unique_ptr<Segments> segments;
  std::unique_ptr<outbox::Outbox> outbox;
  prometheus::Registry registry;
  SegmentationMetrics metrics{registry};
  NoStore store;
  std::unique_ptr<FeedConsumer> feed;

  Consumer() {
    auto opened = sql::Database::Open(absl::StrCat("sqlite://", dir.path(), "/segmentation.db"));
    REQUIRE(opened.ok());
    db = std::move(*opened);
    REQUIRE(db->Migrate("segmentation", kMigrations).ok());
    segments = std::make_unique<Segments>(*db, features, [] { return absl::Now(); });
    REQUIRE(segments->Load().ok());
    outbox = std::make_unique<outbox::Outbox>(*db);
    feed = std::make_unique<FeedConsumer>(*db, features, *segments, store, *outbox, metrics);
    REQUIRE(feed->Load().ok());
  }

  double LagAt(absl::Time now) {
    feed->RefreshLag(now);
    return metrics.feed_lag.Value();
  }
};

// A message of one event change committed at `committed`.
infostore::v1::WatchChangesResponse EventMessage(int64_t sequence, absl::Time committed) {
  infostore::v1::WatchChangesResponse m;
  infostore::v1::Change* c = m.add_changes();
  c->set_sequence(sequence);
  c->set_kind(infostore::v1::CHANGE_KIND_EVENT);
  c->set_customer_id("c_1");
  *c->mutable_committed_at() = Ts(committed);
  *c->mutable_event() = Event("c_1", "page_view", committed);
  c->mutable_event()->set_event_id(absl::StrCat("e", sequence));
  m.set_position(sequence);
  return m;
}

}  // namespace

TEST_CASE("feed lag: the age of the newest saved change's commit, reset by a heartbeat, growing without one") {
  Consumer c;
  const absl::Time started = absl::Now();
  // Nothing applied yet: counted from the consumer's start (a feed never reached keeps growing).
  CHECK(c.LagAt(started + absl::Minutes(10)) >= 599);

  // A backlog: the change applied was committed an hour before the scrape.
  const absl::Time committed = absl::FromUnixSeconds(absl::ToUnixSeconds(started)) - absl::Hours(1);
  REQUIRE(c.feed->Apply(EventMessage(1, committed)).ok());
  CHECK(c.LagAt(committed + absl::Hours(1)) == 3600);
  CHECK(c.LagAt(committed + absl::Hours(2)) == 7200);  // no newer message: the lag grows
  // A message behind the one applied (a replay) does not move it back.
  REQUIRE(c.feed->Apply(EventMessage(1, committed - absl::Hours(1))).ok());
  CHECK(c.LagAt(committed + absl::Hours(1)) == 3600);

  // A heartbeat: the store had nothing newer when it sent it.
  infostore::v1::WatchChangesResponse heartbeat;
  heartbeat.set_position(1);
  const absl::Time before = absl::Now();
  REQUIRE(c.feed->Apply(heartbeat).ok());
  const absl::Time after = absl::Now();
  // (The instant is kept in whole microseconds.)
  CHECK(c.LagAt(after) <= absl::ToDoubleSeconds(after - before) + 1e-6);
  CHECK(c.LagAt(after + absl::Seconds(30)) >= 30);
}

TEST_CASE("segment sizes: one series per segment, by name, and none for a deleted segment") {
  Consumer c;
  for (const char* name : {"viewers", "regulars"}) {
    v1::Segment s;
    s.set_name(name);
    s.set_rule(absl::StrCat("events.count(\"page_view\", 30d) >= ", std::string(name) == "viewers" ? 1 : 2));
    REQUIRE(c.segments->Create(s).ok());
  }
  REQUIRE(c.feed->Apply(EventMessage(1, absl::FromUnixSeconds(absl::ToUnixSeconds(absl::Now())))).ok());
  auto sizes = [&] {
    auto segment_sizes = c.segments->Sizes();
    REQUIRE(segment_sizes.has_value());
    c.metrics.SetSegmentSizes(*segment_sizes);
    std::map<std::string, double> out;
    for (const prometheus::MetricFamily& f : c.registry.Collect()) {
      if (f.name != "ecrm_segmentation_segment_members") continue;
      for (const prometheus::ClientMetric& m : f.metric) out[m.label.at(0).value] = m.gauge.value;
    }
    return out;
  };
  CHECK(sizes() == std::map<std::string, double>{{"regulars", 0}, {"viewers", 1}});
  v1::ListSegmentsRequest all;
  auto listed = c.segments->List(all);
  REQUIRE(listed.ok());
  for (const v1::Segment& s : listed->segments()) {
    if (s.name() == "viewers") REQUIRE(c.segments->Delete(s.id()).ok());
  }
  CHECK(sizes() == std::map<std::string, double>{{"regulars", 0}});
  // While a writer holds the features, a scrape does not wait for it.
  std::unique_lock writer(c.features.mutex());
  CHECK_FALSE(c.segments->Sizes().has_value());
}

}  // namespace ecrm::segmentation

// --partition in-process: replicas following the same feed hold disjoint customers whose
// memberships add up to one whole engine's, and a merge across partitions moves the events.
#include "partition.h"

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

const absl::Time kNow = absl::FromUnixSeconds(1'780'000'000);

struct Replica {
  ecrm::testing::TempDir dir;
  std::unique_ptr<sql::Database> db;
  Features features;
  std::unique_ptr<Segments> segments;
  outbox::Outbox* outbox = nullptr;
  std::unique_ptr<outbox::Outbox> outbox_owner;
  prometheus::Registry registry;
  std::unique_ptr<SegmentationMetrics> metrics;
  std::unique_ptr<FeedConsumer> feed;
  std::string segment;

  Replica(InformationStore& store, Partition partition) {
    auto opened = sql::Database::Open(absl::StrCat("sqlite://", dir.path(), "/segmentation.db"));
    REQUIRE(opened.ok());
    db = std::move(*opened);
    REQUIRE(db->Migrate("segmentation", kMigrations).ok());
    segments = std::make_unique<Segments>(*db, features, [] { return kNow; });
    REQUIRE(segments->Load().ok());
    outbox_owner = std::make_unique<outbox::Outbox>(*db);
    metrics = std::make_unique<SegmentationMetrics>(registry);
    feed = std::make_unique<FeedConsumer>(*db, features, *segments, store, *outbox_owner, *metrics,
                                          FeedOptions{.partition = partition});
    v1::Segment s;
    s.set_name("active");
    s.set_rule("events.count(\"page_view\", 30d) >= 2");
    auto created = segments->Create(s);
    REQUIRE(created.ok());
    segment = created->id();
  }

  std::set<std::string> Members() {
    auto snapshot = segments->Snapshot(segment);
    REQUIRE(snapshot.ok());
    std::vector<CustomerNo> numbers(snapshot->cardinality());
    snapshot->toUint32Array(numbers.data());
    std::vector<std::string> ids = segments->Ids(numbers);
    return {ids.begin(), ids.end()};
  }
};

infostore::v1::Event View(const std::string& id, const std::string& customer, int hours_ago) {
  infostore::v1::Event e;
  e.set_event_id(id);
  e.set_customer_id(customer);
  e.set_type("page_view");
  e.mutable_occurred_at()->set_seconds(absl::ToUnixSeconds(kNow - absl::Hours(hours_ago)));
  return e;
}

TEST_CASE("a partition is i/n with i < n, and holds about a share of n of the customers") {
  CHECK(Partition::Parse("").ok());
  CHECK(Partition::Parse("")->whole());
  auto p = Partition::Parse("2/3");
  REQUIRE(p.ok());
  CHECK(p->index == 2);
  CHECK(p->count == 3);
  CHECK(p->Suffix() == ":p2of3");
  for (const char* bad : {"3/3", "1", "a/2", "1/0", "-1/2", "0/5000", "1/2/3"}) {
    INFO(bad);
    auto parsed = Partition::Parse(bad);
    CHECK(parsed.status().code() == absl::StatusCode::kInvalidArgument);
  }
  // Every customer in exactly one of n partitions, roughly evenly.
  int counts[3] = {0, 0, 0};
  for (int i = 0; i < 30000; ++i) {
    const std::string id = absl::StrCat("c_", i);
    int held = 0;
    for (uint32_t k = 0; k < 3; ++k) {
      if (Partition{k, 3}.Holds(id)) {
        ++held;
        ++counts[k];
      }
    }
    CHECK(held == 1);
  }
  for (int c : counts) CHECK(std::abs(c - 10000) < 500);
}

TEST_CASE(
    "replicas of two partitions hold disjoint customers whose members make up the whole engine's, and a "
    "merge across partitions moves the merged customer's events") {
  NoStore store;
  Replica whole(store, {}), p0(store, {0, 2}), p1(store, {1, 2});
  infostore::v1::WatchChangesResponse m;
  for (int i = 0; i < 400; ++i) {
    const std::string id = absl::StrCat("c_", i);
    infostore::v1::Change* profile = m.add_changes();
    profile->set_kind(infostore::v1::CHANGE_KIND_PROFILE);
    profile->set_customer_id(id);
    profile->mutable_customer()->set_id(id);
    for (int k = 0; k < i % 3; ++k) {
      infostore::v1::Change* ev = m.add_changes();
      ev->set_kind(infostore::v1::CHANGE_KIND_EVENT);
      ev->set_customer_id(id);
      *ev->mutable_event() = View(absl::StrCat("v", i, "-", k), id, k + 1);
      store.events[id].push_back(ev->event());
    }
  }
  m.set_position(1);
  for (Replica* r : {&whole, &p0, &p1}) REQUIRE(r->feed->Apply(m).ok());
  const std::set<std::string> all = whole.Members(), a = p0.Members(), b = p1.Members();
  CHECK(all.size() == 133);  // i % 3 == 2
  std::set<std::string> both = a;
  both.insert(b.begin(), b.end());
  CHECK(both == all);
  CHECK(a.size() + b.size() == all.size());
  CHECK(p0.features.live().cardinality() + p1.features.live().cardinality() == 400);

  // A customer with one view (in no segment) merged into one of the other partition with one
  // view: the survivor now has two and enters; the merged one is gone from its partition.
  std::string survivor, merged;
  for (int i = 0; i < 400 && (survivor.empty() || merged.empty()); ++i) {
    const std::string id = absl::StrCat("c_", i);
    if (i % 3 != 1) continue;
    if (survivor.empty() && Partition{0, 2}.Holds(id)) survivor = id;
    if (merged.empty() && Partition{1, 2}.Holds(id)) merged = id;
  }
  REQUIRE(!survivor.empty());
  REQUIRE(!merged.empty());
  for (const infostore::v1::Event& e : store.events[merged]) {
    infostore::v1::Event moved = e;
    moved.set_customer_id(survivor);
    store.events[survivor].push_back(moved);
  }
  infostore::v1::WatchChangesResponse merge;
  infostore::v1::Change* c = merge.add_changes();
  c->set_kind(infostore::v1::CHANGE_KIND_MERGE);
  c->set_customer_id(survivor);
  c->mutable_customer()->set_id(survivor);
  c->mutable_merge()->add_merged_ids(merged);
  merge.set_position(2);
  for (Replica* r : {&whole, &p0, &p1}) REQUIRE(r->feed->Apply(merge).ok());
  CHECK(whole.Members().contains(survivor));
  CHECK(p0.Members().contains(survivor));
  CHECK(!p1.features.Find(merged).has_value());
  CHECK(!p0.features.Find(merged).has_value());
  CHECK(p0.Members().size() + p1.Members().size() == whole.Members().size());
}

}  // namespace
}  // namespace ecrm::segmentation

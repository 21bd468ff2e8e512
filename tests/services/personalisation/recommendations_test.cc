// The recommendation model run by the engine, with fakes for the information store and the
// catalogue: the change feed applied and saved with its position, a restart that learns the
// saved orders again without the feed, merges and erasures, a resync, and Recommend /
// SimilarProducts / GetModelInfo described from the catalogue.
#include <catch2/catch.hpp>
#include <map>

#include "absl/strings/match.h"

#include "absl/strings/str_cat.h"
#include "catalogue.h"
#include "ecrm/feed/infostore.h"
#include "ecrm/testing/process.h"
#include "ecrm/util/util.h"
#include "privacy.h"
#include "recommendation_feed.h"
#include "recommendations.h"
#include "recommender.h"
#include "schema.h"

namespace p = ecrm::personalisation;
namespace is = ecrm::infostore::v1;

namespace {

const absl::Time kT0 = absl::FromUnixSeconds(1'780'000'000);

class FakeCatalogue final : public p::CatalogueSource {
 public:
  absl::StatusOr<p::CataloguePage> ListProducts(const std::string& page_token, int page_size) override {
    ++calls;
    if (down) return absl::UnavailableError("transaction engine down");
    p::CataloguePage page;
    size_t start = page_token.empty() ? 0 : std::stoul(page_token);
    for (size_t i = start; i < products.size() && page.products.size() < static_cast<size_t>(page_size); ++i) {
      page.products.push_back(products[i]);
    }
    if (start + page.products.size() < products.size()) page.next_page_token = std::to_string(start + page_size);
    return page;
  }
  void Add(const std::string& sku, const std::string& category, bool active = true) {
    p::CatalogueProduct prod;
    prod.sku = sku;
    prod.title = "Title " + sku;
    prod.category = category;
    prod.price.set_amount_minor(1000);
    prod.price.set_currency("EUR");
    prod.active = active;
    products.push_back(prod);
  }
  std::vector<p::CatalogueProduct> products;
  bool down = false;
  int calls = 0;
};

class FakeStore final : public ecrm::feed::InformationStore {
 public:
  absl::Status Watch(int64_t, const std::function<absl::Status(const is::WatchChangesResponse&)>&) override {
    return absl::CancelledError("not watched in these tests");
  }
  void StopWatching() override {}
  absl::StatusOr<is::ListCustomersResponse> ListCustomers(const std::string&, int) override {
    is::ListCustomersResponse out;
    for (const auto& [id, events] : events_by_customer) out.add_customers()->set_id(id);
    out.set_as_of_sequence(as_of);
    return out;
  }
  absl::StatusOr<is::ListEventsResponse> ListEvents(const std::string& customer_id, absl::Time,
                                                    const std::string&) override {
    is::ListEventsResponse out;
    auto it = events_by_customer.find(customer_id);
    if (it == events_by_customer.end()) return out;
    for (auto e = it->second.rbegin(); e != it->second.rend(); ++e) *out.add_events() = *e;  // newest first
    return out;
  }
  std::map<std::string, std::vector<is::Event>> events_by_customer;
  int64_t as_of = 0;
};

is::Event OrderEvent(const std::string& type, const std::string& customer, const std::string& order,
                     const std::string& skus, int64_t amount, absl::Time at, const std::string& event_id = "") {
  is::Event e;
  e.set_type(type);
  e.set_event_id(event_id.empty() ? absl::StrCat(type, ":", order) : event_id);
  e.mutable_customer()->set_customer_id(customer);
  *e.mutable_occurred_at() = ecrm::util::Ts(absl::ToUnixMicros(at));
  e.mutable_amount()->set_amount_minor(amount);
  e.mutable_amount()->set_currency("EUR");
  (*e.mutable_properties())["order_id"].set_string_value(order);
  (*e.mutable_properties())["skus"].set_string_value(skus);
  return e;
}

is::WatchChangesResponse Message(int64_t position, std::vector<is::Change> changes) {
  is::WatchChangesResponse m;
  for (auto& c : changes) *m.add_changes() = std::move(c);
  m.set_position(position);
  return m;
}

is::Change EventChange(const is::Event& e) {
  is::Change c;
  c.set_kind(is::CHANGE_KIND_EVENT);
  c.set_customer_id(e.customer().customer_id());
  *c.mutable_event() = e;
  return c;
}

template <typename Resp>
std::vector<std::string> SkusOf(const Resp& r) {
  std::vector<std::string> out;
  for (const auto& i : r.items()) out.push_back(i.sku());
  return out;
}

bool Has(const std::vector<std::string>& v, const std::string& x) {
  return std::find(v.begin(), v.end(), x) != v.end();
}

struct Engine {
  explicit Engine(const std::string& db_path, FakeCatalogue* source = nullptr) {
    auto opened = ecrm::sql::Database::Open("sqlite://" + db_path);
    REQUIRE(opened.ok());
    db = std::move(*opened);
    REQUIRE(db->Migrate("personalisation", p::kMigrations).ok());
    catalogue = std::make_unique<p::Catalogue>(source, &model);
    if (source != nullptr) REQUIRE(catalogue->Refresh().ok());
    feed = std::make_unique<p::RecommendationFeed>(*db, model, store, catalogue.get());
    REQUIRE(feed->Load().ok());
    recommendations = std::make_unique<p::Recommendations>(model, *catalogue, feed.get());
  }
  std::vector<std::string> Similar(const std::string& sku) {
    ecrm::personalisation::v1::SimilarProductsRequest req;
    req.set_sku(sku);
    auto r = recommendations->SimilarProducts(req);
    REQUIRE(r.ok());
    return SkusOf(*r);
  }
  ecrm::personalisation::v1::RecommendResponse Recommend(const std::string& customer, int max = 10,
                                                         const std::string& category = "") {
    ecrm::personalisation::v1::RecommendRequest req;
    req.set_customer_id(customer);
    req.set_max_items(max);
    req.set_category(category);
    auto r = recommendations->Recommend(req);
    REQUIRE(r.ok());
    return *r;
  }
  std::unique_ptr<ecrm::sql::Database> db;
  p::Recommender model;
  FakeStore store;
  std::unique_ptr<p::Catalogue> catalogue;
  std::unique_ptr<p::RecommendationFeed> feed;
  std::unique_ptr<p::Recommendations> recommendations;
};

}  // namespace

TEST_CASE("the feed's orders are learnt, saved with the position and learnt again after a restart") {
  ecrm::testing::TempDir dir;
  const std::string path = dir.path() + "/p.db";
  {
    Engine e(path);
    REQUIRE(e.feed
                ->Apply(Message(3, {EventChange(OrderEvent("purchase", "c1", "o1", "a,b", 2000, kT0)),
                                    EventChange(OrderEvent("purchase", "c2", "o2", "a,c", 2000, kT0))}))
                .ok());
    CHECK(e.feed->position() == 3);
    CHECK(Has(e.Similar("a"), "b"));
    CHECK(Has(e.Similar("a"), "c"));
    // A cancelled order is taken back.
    REQUIRE(e.feed->Apply(Message(5, {EventChange(OrderEvent("order_cancelled", "c2", "o2", "a,c", 2000, kT0))})).ok());
    CHECK_FALSE(Has(e.Similar("a"), "c"));
    // A partial refund takes nothing back; one that reaches the total takes the order back.
    REQUIRE(e.feed->Apply(Message(6, {EventChange(OrderEvent("purchase", "c3", "o3", "a,d", 3000, kT0))})).ok());
    REQUIRE(
        e.feed->Apply(Message(7, {EventChange(OrderEvent("refund", "c3", "o3", "a,d", 1000, kT0, "refund:o3:1000"))}))
            .ok());
    CHECK(Has(e.Similar("a"), "d"));
    REQUIRE(
        e.feed->Apply(Message(8, {EventChange(OrderEvent("refund", "c3", "o3", "a,d", 2000, kT0, "refund:o3:3000"))}))
            .ok());
    CHECK_FALSE(Has(e.Similar("a"), "d"));
    CHECK(e.feed->changes_read() == 6);
    CHECK(e.feed->orders() == 1);
    // A partial refund naming the lines refunded in full takes those back (and is saved).
    auto partial = OrderEvent("purchase", "c4", "o4", "a,e,f", 3000, kT0);
    REQUIRE(e.feed->Apply(Message(8, {EventChange(partial)})).ok());
    auto refund = OrderEvent("refund", "c4", "o4", "a,e,f", 1000, kT0, "refund:o4:1000");
    (*refund.mutable_properties())["refunded_skus"].set_string_value("e");
    REQUIRE(e.feed->Apply(Message(8, {EventChange(refund)})).ok());
    CHECK(Has(e.Similar("a"), "f"));
    CHECK_FALSE(Has(e.Similar("a"), "e"));
    (*refund.mutable_properties())["refunded_skus"].set_string_value("e,f");
    refund.set_event_id("refund:o4:2000");
    REQUIRE(e.feed->Apply(Message(8, {EventChange(refund)})).ok());
    CHECK(e.model.CustomerItems("c4") == std::vector<std::string>{"a"});
    CHECK(e.feed->orders() == 2);
    (*refund.mutable_properties())["refunded_skus"].set_string_value("a,e,f");
    refund.set_event_id("refund:o4:2500");
    REQUIRE(e.feed->Apply(Message(8, {EventChange(refund)})).ok());
    CHECK(e.model.CustomerItems("c4").empty());
    CHECK(e.feed->orders() == 1);
    // A heartbeat moves the position.
    REQUIRE(e.feed->Apply(Message(9, {})).ok());
    CHECK(e.feed->position() == 9);
  }
  Engine again(path);
  CHECK(again.feed->position() == 9);
  CHECK(again.feed->orders_loaded() == 1);
  CHECK(again.feed->changes_read() == 0);
  CHECK(again.Similar("a") == std::vector<std::string>{"b"});
  CHECK(again.model.Info().customers == 1);
  // The order learnt before the restart can still be taken back.
  REQUIRE(
      again.feed->Apply(Message(10, {EventChange(OrderEvent("order_cancelled", "c1", "o1", "a,b", 2000, kT0))})).ok());
  CHECK(again.Similar("a").empty());
  CHECK(again.model.Info().customers == 0);
}

TEST_CASE("a merge moves the merged customer's orders to the survivor, an erasure forgets the customer") {
  ecrm::testing::TempDir dir;
  const std::string path = dir.path() + "/p.db";
  {
    Engine e(path);
    REQUIRE(e.feed
                ->Apply(Message(1, {EventChange(OrderEvent("purchase", "old", "o1", "a", 1000, kT0)),
                                    EventChange(OrderEvent("purchase", "keep", "o2", "b", 1000, kT0)),
                                    EventChange(OrderEvent("purchase", "x", "o3", "a,b", 1000, kT0))}))
                .ok());
    is::Change merge;
    merge.set_kind(is::CHANGE_KIND_MERGE);
    merge.set_customer_id("keep");
    merge.mutable_merge()->add_merged_ids("old");
    REQUIRE(e.feed->Apply(Message(2, {merge})).ok());
    CHECK(e.model.CustomerItems("old").empty());
    CHECK(e.model.CustomerItems("keep") == std::vector<std::string>{"b", "a"});
    // Both items are the survivor's: nothing left to recommend from similar items.
    auto rec = e.Recommend("keep");
    for (const auto& i : rec.items()) CHECK((i.sku() != "a" && i.sku() != "b"));
  }
  {
    Engine e(path);
    CHECK(e.model.CustomerItems("keep").size() == 2);
    is::Change erase;
    erase.set_kind(is::CHANGE_KIND_ERASE);
    erase.set_customer_id("keep");
    REQUIRE(e.feed->Apply(Message(3, {erase})).ok());
    CHECK(e.model.CustomerItems("keep").empty());
    CHECK(e.feed->orders() == 1);
  }
  Engine e(path);
  CHECK(e.model.CustomerItems("keep").empty());
  CHECK(e.model.CustomerItems("x").size() == 2);
  CHECK(e.feed->orders_loaded() == 1);
}

TEST_CASE("Recommend excludes what was bought and inactive products, fills from popularity, names sources") {
  ecrm::testing::TempDir dir;
  FakeCatalogue catalogue;
  for (const char* sku : {"bike", "helmet", "lamp", "pump"}) catalogue.Add(sku, "sports/cycling");
  catalogue.Add("tent", "outdoor");
  catalogue.Add("old-bell", "sports/cycling", /*active=*/false);
  for (int i = 0; i < 1500; ++i) catalogue.Add(absl::StrCat("filler-", i), "misc");  // two pages
  Engine e(dir.path() + "/p.db", &catalogue);
  CHECK(e.catalogue->Snapshot()->size() == 1506);
  std::vector<is::Change> changes;
  int order = 0;
  auto buy = [&](const std::string& customer, const std::string& skus) {
    ++order;
    changes.push_back(
        EventChange(OrderEvent("purchase", customer, absl::StrCat("o", order), skus, 1000, kT0 + absl::Hours(order))));
  };
  for (int i = 0; i < 5; ++i) buy(absl::StrCat("rider", i), "bike,helmet,old-bell");
  for (int i = 0; i < 3; ++i) buy(absl::StrCat("camper", i), "tent,lamp");
  buy("me", "bike");
  REQUIRE(e.feed->Apply(Message(1, changes)).ok());

  // Similar to the bike: the helmet; never the bike itself, nor the inactive bell.
  auto mine = e.Recommend("me", 3);
  REQUIRE(mine.items_size() == 3);
  CHECK(mine.items(0).sku() == "helmet");
  CHECK(mine.items(0).source() == "similar_items");
  CHECK(mine.items(0).title() == "Title helmet");
  CHECK(mine.items(0).price().amount_minor() == 1000);
  CHECK(mine.items(0).category() == "sports/cycling");
  for (const auto& i : mine.items()) {
    CHECK(i.sku() != "bike");
    CHECK(i.sku() != "old-bell");
  }
  CHECK(mine.items(1).source() == "popular");

  // A brand-new customer gets popular items, in the category when one is asked for.
  auto fresh = e.Recommend("nobody", 10, "outdoor");
  REQUIRE(fresh.items_size() == 1);
  CHECK(fresh.items(0).sku() == "tent");
  CHECK(fresh.items(0).source() == "popular");
  auto any = e.Recommend("nobody", 2);
  REQUIRE(any.items_size() == 2);
  CHECK(any.items(0).sku() == "bike");
  CHECK(any.items(0).source() == "popular");

  // A product made inactive leaves once the catalogue is read again.
  catalogue.products[1].active = false;  // helmet
  REQUIRE(e.catalogue->Refresh().ok());
  CHECK_FALSE(Has(SkusOf(e.Recommend("me", 3)), "helmet"));
  CHECK_FALSE(Has(e.Similar("bike"), "helmet"));
  // A failed refresh keeps the previous copy.
  catalogue.down = true;
  CHECK(e.catalogue->Refresh().code() == absl::StatusCode::kUnavailable);
  CHECK(e.catalogue->Snapshot()->size() == 1506);

  // Bad input names the field; an unknown SKU is NOT_FOUND.
  ecrm::personalisation::v1::RecommendRequest bad;
  CHECK(e.recommendations->Recommend(bad).status().code() == absl::StatusCode::kInvalidArgument);
  bad.set_customer_id("me");
  bad.set_max_items(101);
  auto r = e.recommendations->Recommend(bad);
  CHECK(r.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(absl::StrContains(r.status().message(), "max_items"));
  ecrm::personalisation::v1::SimilarProductsRequest unknown;
  unknown.set_sku("no-such-sku");
  CHECK(e.recommendations->SimilarProducts(unknown).status().code() == absl::StatusCode::kNotFound);

  auto info = e.recommendations->Info();
  CHECK(info.products() == 5);
  CHECK(info.customers() == 9);
  CHECK(info.purchases() == 5 * 3 + 3 * 2 + 1);
  CHECK(info.item_pairs() == 4);  // bike-helmet, bike-bell, helmet-bell, tent-lamp
  CHECK(info.memory_bytes() > 0);
  CHECK(info.feed_position() == 1);
  CHECK(info.orders() == 9);
  CHECK(info.catalogue_products() == 1506);
  CHECK(info.trained_at().seconds() == absl::ToUnixSeconds(kT0 + absl::Hours(9)));
}

TEST_CASE("a resync learns the model again from the information store's listings") {
  ecrm::testing::TempDir dir;
  const std::string path = dir.path() + "/p.db";
  {
    Engine e(path);
    REQUIRE(e.feed->Apply(Message(4, {EventChange(OrderEvent("purchase", "gone", "o9", "z,y", 1000, kT0))})).ok());
    e.store.events_by_customer["c1"] = {OrderEvent("purchase", "c1", "o1", "a,b", 1000, kT0),
                                        OrderEvent("page_view", "c1", "", "", 0, kT0 + absl::Seconds(1))};
    e.store.events_by_customer["c2"] = {OrderEvent("purchase", "c2", "o2", "a,c", 1000, kT0 + absl::Seconds(2)),
                                        OrderEvent("order_cancelled", "c2", "o2", "a,c", 1000, kT0 + absl::Seconds(3))};
    e.store.as_of = 40;
    REQUIRE(e.feed->Resync().ok());
    CHECK(e.feed->position() == 40);
    CHECK(e.Similar("a") == std::vector<std::string>{"b"});
    CHECK(e.Similar("z").empty());
  }
  Engine e(path);
  CHECK(e.feed->position() == 40);
  CHECK(e.feed->orders_loaded() == 1);
  CHECK(e.Similar("a") == std::vector<std::string>{"b"});
}

TEST_CASE(
    "privacy: the model's part of a customer is exported, and erased at once from the model and the saved orders") {
  ecrm::testing::TempDir dir;
  const std::string path = dir.path() + "/p.db";
  {
    Engine e(path);
    REQUIRE(e.feed
                ->Apply(Message(1, {EventChange(OrderEvent("purchase", "c1", "o1", "a,b", 1000, kT0)),
                                    EventChange(OrderEvent("purchase", "c2", "o2", "a,c", 1000, kT0))}))
                .ok());
    p::PersonalisationPrivacy privacy;
    privacy.SetRecommendationFeed(e.feed.get());
    ecrm::privacy::v1::ExportCustomerDataRequest exp;
    exp.set_customer_id("c1");
    auto exported = privacy.ExportCustomerData(exp);
    REQUIRE(exported.ok());
    CHECK(absl::StrContains(*exported, "\"orders_learnt\""));
    CHECK(absl::StrContains(*exported, "\"o1\""));
    CHECK_FALSE(absl::StrContains(*exported, "\"o2\""));
    exp.set_customer_id("nobody");
    CHECK(*privacy.ExportCustomerData(exp) ==
          "{\"offer_impressions\":[],\"recommendation_model\":{\"orders_learnt\":[]}}");
    ecrm::privacy::v1::EraseCustomerDataRequest erase;
    erase.set_customer_id("c1");
    REQUIRE(privacy.EraseCustomerData(erase).ok());
    CHECK(e.model.CustomerItems("c1").empty());
    CHECK(e.Similar("a") == std::vector<std::string>{"c"});
    exp.set_customer_id("c1");
    CHECK(*privacy.ExportCustomerData(exp) ==
          "{\"offer_impressions\":[],\"recommendation_model\":{\"orders_learnt\":[]}}");
  }
  Engine again(path);
  CHECK(again.model.CustomerItems("c1").empty());
  CHECK(again.feed->orders_loaded() == 1);
}

// Recommendations end to end: orders placed through the real transaction engine reach the real
// information store through its outbox, and the real ecrm-personalisation learns them from the
// change feed (with a real Redis), on SQLite and PostgreSQL. Latencies are measured and printed,
// never asserted.
#include <grpcpp/grpcpp.h>

#include <catch2/catch.hpp>
#include <csignal>
#include <thread>

#include "absl/strings/str_cat.h"
#include "ecrm/infostore/v1/infostore.grpc.pb.h"
#include "ecrm/personalisation/v1/personalisation.grpc.pb.h"
#include "ecrm/testing/process.h"
#include "ecrm/testing/servers.h"
#include "ecrm/testing/service.h"
#include "ecrm/transaction/v1/transaction.grpc.pb.h"
#include "test_servers.h"

namespace is = ecrm::infostore::v1;
namespace v1 = ecrm::personalisation::v1;
namespace tx = ecrm::transaction::v1;
namespace common = ecrm::common::v1;
using ecrm::testing::Binary;
using ecrm::testing::Postgres;
using ecrm::testing::Redis;
using ecrm::testing::ServiceProcess;

using ecrm::testing::Call;

using ecrm::testing::StartEngine;

namespace {

// Polls (1 ms apart, so that the time measured is the engines', not the poll's) until `done`;
// the time it took, or nullopt after 30 s.
std::optional<absl::Duration> TimeUntil(const std::function<bool()>& done) {
  const absl::Time start = absl::Now();
  while (!done()) {
    if (absl::Now() - start > absl::Seconds(30)) return std::nullopt;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return absl::Now() - start;
}

}  // namespace

TEST_CASE("orders placed through the transaction engine change recommendations and refunds take them back") {
  auto pg_info = Postgres().CreateUniqueDatabase();
  auto pg_tx = Postgres().CreateUniqueDatabase();
  auto pg_p = Postgres().CreateUniqueDatabase();
  REQUIRE(pg_info.ok());
  REQUIRE(pg_tx.ok());
  REQUIRE(pg_p.ok());
  ecrm::testing::TempDir dir;
  const std::string sqlite_url = absl::StrCat("--database-url=sqlite://", dir.path(), "/personalisation.db");
  auto [backend, info_db, tx_db, p_db] =
      GENERATE_COPY(std::tuple<std::string, std::string, std::string, std::string>{"sqlite", "", "", sqlite_url},
                    std::tuple<std::string, std::string, std::string, std::string>{
                        "postgres", "--database-url=" + Postgres().url(*pg_info),
                        "--database-url=" + Postgres().url(*pg_tx), "--database-url=" + Postgres().url(*pg_p)});
  INFO("backend: " << backend);

  std::vector<std::string> info_args = {"--redis-url=" + Redis().url()};
  if (!info_db.empty()) info_args.push_back(info_db);
  auto infostore = StartEngine("infostore", info_args);
  std::vector<std::string> tx_args = {"--redis-url=", "--infostore-address=" + infostore->grpc_address()};
  if (!tx_db.empty()) tx_args.push_back(tx_db);
  auto transaction = StartEngine("transaction", tx_args);
  auto store = is::InformationStore::NewStub(infostore->channel());
  auto shop = tx::Transaction::NewStub(transaction->channel());

  // The catalogue: cycling products and outdoor ones.
  auto product = [&](const std::string& sku, const std::string& category, bool active) {
    tx::UpsertProductRequest req;
    req.mutable_product()->set_sku(sku);
    req.mutable_product()->set_title("Product " + sku);
    req.mutable_product()->set_category(category);
    req.mutable_product()->mutable_price()->set_amount_minor(2500);
    req.mutable_product()->mutable_price()->set_currency("EUR");
    req.mutable_product()->set_active(active);
    tx::Product out;
    REQUIRE(Call(*shop, &tx::Transaction::Stub::UpsertProduct, req, &out).ok());
  };
  product("BIKE", "sports/cycling", true);
  product("HELMET", "sports/cycling", true);
  product("PUMP", "sports/cycling", true);
  product("BELL", "sports/cycling", true);
  product("TENT", "outdoor", true);
  product("LAMP", "outdoor", true);
  auto customer = [&](const std::string& email) {
    is::UpsertCustomerRequest req;
    auto* id = req.add_identifiers();
    id->set_type(common::IDENTIFIER_TYPE_EMAIL);
    id->set_value(email);
    is::UpsertCustomerResponse resp;
    REQUIRE(Call(*store, &is::InformationStore::Stub::UpsertCustomer, req, &resp).ok());
    return resp.customer().id();
  };
  int keys = 0;
  auto order = [&](const std::string& who, std::vector<std::string> skus) {
    tx::PlaceOrderRequest req;
    req.mutable_customer()->set_customer_id(who);
    for (const auto& sku : skus) {
      auto* line = req.add_lines();
      line->set_sku(sku);
      line->set_quantity(1);
    }
    req.set_idempotency_key(absl::StrCat("key-", ++keys));
    tx::Order out;
    grpc::Status s = Call(*shop, &tx::Transaction::Stub::PlaceOrder, req, &out);
    INFO(s.error_message());
    REQUIRE(s.ok());
    return out;
  };

  std::vector<std::string> p_args = {"--redis-url=" + Redis().url(), "--infostore-address=" + infostore->grpc_address(),
                                     "--transaction-address=" + transaction->grpc_address(),
                                     "--catalogue-refresh=200ms", p_db};
  auto engine = StartEngine("personalisation", p_args);
  auto reco = v1::Personalisation::NewStub(engine->channel());
  auto similar = [&](const std::string& sku) {
    v1::SimilarProductsRequest req;
    req.set_sku(sku);
    v1::SimilarProductsResponse resp;
    grpc::Status s = Call(*reco, &v1::Personalisation::Stub::SimilarProducts, req, &resp);
    INFO(s.error_message());
    REQUIRE(s.ok());
    std::vector<std::string> out;
    for (const auto& i : resp.items()) out.push_back(i.sku());
    return out;
  };
  auto recommend = [&](const std::string& who, const std::string& category = "") {
    v1::RecommendRequest req;
    req.set_customer_id(who);
    req.set_category(category);
    v1::RecommendResponse resp;
    grpc::Status s = Call(*reco, &v1::Personalisation::Stub::Recommend, req, &resp);
    INFO(s.error_message());
    REQUIRE(s.ok());
    return resp;
  };
  auto info = [&] {
    v1::ModelInfo out;
    REQUIRE(Call(*reco, &v1::Personalisation::Stub::GetModelInfo, v1::GetModelInfoRequest(), &out).ok());
    return out;
  };
  auto has = [](const std::vector<std::string>& v, const std::string& x) {
    return std::find(v.begin(), v.end(), x) != v.end();
  };

  const std::string ann = customer("ann@example.com"), bob = customer("bob@example.com");
  CHECK(similar("BIKE").empty());
  // An order's acknowledgement to SimilarProducts naming the pair.
  tx::Order ann_order = order(ann, {"BIKE", "HELMET", "BELL"});
  auto learnt = TimeUntil([&] { return has(similar("BIKE"), "HELMET"); });
  REQUIRE(learnt);
  WARN(backend << ": order acknowledged -> SimilarProducts changed in " << absl::FormatDuration(*learnt));
  CHECK(has(similar("BIKE"), "BELL"));
  // A product made inactive is no longer recommended once the catalogue is read again.
  product("BELL", "sports/cycling", false);
  REQUIRE(ecrm::testing::Eventually([&] { return !has(similar("BIKE"), "BELL"); }));

  // What a customer bought is not recommended to them; similar items come first.
  order(bob, {"BIKE"});
  REQUIRE(ecrm::testing::Eventually([&] { return info().customers() == 2; }));
  v1::RecommendResponse for_bob = recommend(bob);
  REQUIRE(for_bob.items_size() >= 1);
  CHECK(for_bob.items(0).sku() == "HELMET");
  CHECK(for_bob.items(0).source() == "similar_items");
  CHECK(for_bob.items(0).title() == "Product HELMET");
  CHECK(for_bob.items(0).price().amount_minor() == 2500);
  for (const auto& i : for_bob.items()) {
    CHECK(i.sku() != "BIKE");
    CHECK(i.sku() != "BELL");
  }
  // A brand-new customer gets popular products (in the category asked for).
  v1::RecommendResponse fresh = recommend("c_brand_new");
  REQUIRE(fresh.items_size() >= 2);
  CHECK(fresh.items(0).sku() == "BIKE");
  for (const auto& i : fresh.items()) CHECK(i.source() == "popular");
  CHECK(recommend("c_brand_new", "outdoor").items_size() == 0);  // nobody bought outdoor products yet

  // A refund of the whole order takes it back.
  tx::RefundOrderRequest refund;
  refund.set_id(ann_order.id());
  refund.set_idempotency_key("refund-1");
  tx::Order refunded;
  REQUIRE(Call(*shop, &tx::Transaction::Stub::RefundOrder, refund, &refunded).ok());
  auto taken_back = TimeUntil([&] { return !has(similar("BIKE"), "HELMET"); });
  REQUIRE(taken_back);
  WARN(backend << ": refund acknowledged -> SimilarProducts changed in " << absl::FormatDuration(*taken_back));

  // A restart resumes the feed after the saved position: nothing before it is read again.
  const std::string cat = customer("cat@example.com");
  const tx::Order cat_order = order(cat, {"TENT", "LAMP"});
  REQUIRE(ecrm::testing::Eventually([&] { return has(similar("TENT"), "LAMP"); }));
  const v1::ModelInfo before = info();
  CHECK(before.orders() == 2);  // bob's and cat's; ann's was refunded
  CHECK(before.feed_changes_read() > 0);
  engine->process().Signal(SIGTERM);
  REQUIRE(engine->process().Wait(absl::Seconds(30)).has_value());
  // While it is down: one more order.
  const std::string dan = customer("dan@example.com");
  order(dan, {"PUMP", "BIKE"});
  engine = StartEngine("personalisation", p_args);
  reco = v1::Personalisation::NewStub(engine->channel());
  // The order learnt and saved: every change read since the start lies after the saved position
  // (a replay from the start would read at least the `before` ones again, and never get here).
  v1::ModelInfo after;
  REQUIRE(ecrm::testing::Eventually([&] {
    after = info();
    return has(similar("PUMP"), "BIKE") && after.feed_changes_read() > 0 &&
           after.feed_changes_read() <= after.feed_position() - before.feed_position();
  }));
  WARN(backend << ": before the restart the feed was at " << before.feed_position() << " ("
               << before.feed_changes_read() << " changes read); after it, at " << after.feed_position() << " with "
               << after.feed_changes_read() << " changes read");
  CHECK(after.feed_changes_read() < before.feed_changes_read());
  CHECK(after.orders() == 3);
  CHECK(has(similar("TENT"), "LAMP"));  // learnt before the restart, from the saved orders
  CHECK_FALSE(has(similar("BIKE"), "HELMET"));
  v1::RecommendResponse for_bob_again = recommend(bob);
  REQUIRE(for_bob_again.items_size() >= 1);
  CHECK(for_bob_again.items(0).sku() == "PUMP");
  CHECK(for_bob_again.items(0).source() == "similar_items");

  // A partial refund takes back the line it refunds in full (the event names it), not the rest.
  refund.set_id(cat_order.id());
  refund.set_idempotency_key("refund-2");
  auto* line = refund.add_lines();
  line->set_sku("LAMP");
  line->set_quantity(1);
  REQUIRE(Call(*shop, &tx::Transaction::Stub::RefundOrder, refund, &refunded).ok());
  REQUIRE(ecrm::testing::Eventually([&] { return !has(similar("TENT"), "LAMP"); }));
  CHECK(info().orders() == 3);  // the tent is still learnt
}

// The transaction engine's domain classes in-process: a temporary SQLite database and a fake
// resolver behind the client interface (no servers). The outbox relay's cases are libs/outbox's
// (tests/libs/outbox_test.cc).
#include <prometheus/registry.h>

#include <catch2/catch.hpp>

#include "carts.h"
#include "catalogue.h"
#include "clients/infostore.h"
#include "ecrm/idempotency/idempotency.h"
#include "ecrm/outbox/outbox.h"
#include "ecrm/testing/process.h"
#include "loyalty.h"
#include "metrics.h"
#include "orders.h"
#include "schema.h"

namespace tx = ecrm::transaction;
namespace v1 = ecrm::transaction::v1;

namespace {

std::unique_ptr<ecrm::sql::Database> OpenDatabase(const ecrm::testing::TempDir& dir) {
  auto db = ecrm::sql::Database::Open("sqlite://" + dir.path() + "/transaction.db");
  REQUIRE(db.ok());
  REQUIRE((*db)->Migrate("transaction", tx::kMigrations).ok());
  return std::move(*db);
}

// Names customers by identifier as the information store would: "email:<x>" is customer "c_<x>".
class FakeResolver final : public tx::CustomerResolver {
 public:
  absl::Status down = absl::OkStatus();
  absl::StatusOr<std::string> Resolve(const ecrm::common::v1::CustomerRef& ref) override {
    if (!down.ok()) return down;
    return "c_" + ref.identifier().value();
  }
};

// The domain as main.cc composes it.
struct Engine {
  explicit Engine(tx::LoyaltyRules rules = {}, tx::CustomerResolver* resolver = nullptr)
      : loyalty(*db, keys, std::move(rules)), orders(*db, keys, carts, loyalty, outbox, resolver, metrics) {}

  ecrm::testing::TempDir dir;
  std::unique_ptr<ecrm::sql::Database> db = OpenDatabase(dir);
  prometheus::Registry registry;
  tx::TransactionMetrics metrics{registry};
  ecrm::idempotency::Store keys{*db};
  ecrm::outbox::Outbox outbox{*db};
  tx::Catalogue catalogue{*db};
  tx::Carts carts{*db, outbox, metrics, absl::Hours(1)};
  tx::Loyalty loyalty;
  tx::Orders orders;

  void Product(const std::string& sku, int64_t price, int64_t stock = -1) {
    v1::UpsertProductRequest req;
    v1::Product* p = req.mutable_product();
    p->set_sku(sku);
    p->set_title("Product " + sku);
    p->mutable_price()->set_amount_minor(price);
    p->mutable_price()->set_currency("EUR");
    p->set_active(true);
    p->set_track_stock(stock >= 0);
    p->set_stock(std::max<int64_t>(stock, 0));
    REQUIRE(catalogue.UpsertProduct(req).ok());
  }
  absl::StatusOr<v1::Order> Place(const std::string& customer, const std::string& sku, int quantity,
                                  int64_t redeem = 0) {
    v1::PlaceOrderRequest req;
    req.mutable_customer()->set_customer_id(customer);
    v1::OrderLineInput* line = req.add_lines();
    line->set_sku(sku);
    line->set_quantity(quantity);
    req.set_redeem_points(redeem);
    req.set_idempotency_key("place-" + std::to_string(++keys_used));
    return orders.PlaceOrder(req);
  }
  absl::StatusOr<v1::Order> Refund(const std::string& order_id, const std::string& sku, int quantity) {
    v1::RefundOrderRequest req;
    req.set_id(order_id);
    v1::RefundLine* line = req.add_lines();
    line->set_sku(sku);
    line->set_quantity(quantity);
    req.set_idempotency_key("refund-" + std::to_string(++keys_used));
    return orders.RefundOrder(req);
  }
  int64_t Adjust(const std::string& customer, int64_t points) {
    v1::AdjustPointsRequest req;
    req.set_customer_id(customer);
    req.set_points(points);
    req.set_reason("goodwill");
    absl::StatusOr<v1::LoyaltyAccount> a = loyalty.AdjustPoints(req);
    REQUIRE(a.ok());
    return a->balance();
  }
  v1::LoyaltyAccount Account(const std::string& customer) {
    v1::GetLoyaltyAccountRequest req;
    req.set_customer_id(customer);
    req.set_page_size(100);
    absl::StatusOr<v1::LoyaltyAccount> a = loyalty.GetLoyaltyAccount(req);
    REQUIRE(a.ok());
    return *a;
  }
  std::vector<std::string> Pending() {
    absl::StatusOr<std::vector<ecrm::outbox::OutboxEvent>> events = outbox.PendingEvents(100);
    REQUIRE(events.ok());
    std::vector<std::string> ids;
    for (const ecrm::outbox::OutboxEvent& e : *events) ids.push_back(e.event.event_id());
    return ids;
  }

  int keys_used = 0;
};

// Points per ledger reason.
std::map<std::string, int64_t> ByReason(const v1::LoyaltyAccount& a) {
  std::map<std::string, int64_t> out;
  for (const v1::LedgerEntry& e : a.ledger()) out[e.reason()] += e.points();
  return out;
}

}  // namespace

TEST_CASE("checkout turns the cart into a priced order, closes the cart, takes stock and writes one purchase event") {
  Engine engine;
  engine.Product("bike", 1999);
  engine.Product("bell", 500, /*stock=*/10);
  for (auto [sku, quantity] : {std::pair{"bike", 2}, std::pair{"bell", 1}}) {
    v1::AddCartItemRequest add;
    add.set_customer_id("c_1");
    add.set_sku(sku);
    add.set_quantity(quantity);
    REQUIRE(engine.carts.AddCartItem(add).ok());
  }

  v1::CheckoutRequest checkout;
  checkout.set_customer_id("c_1");
  checkout.set_idempotency_key("k1");
  absl::StatusOr<v1::Order> order = engine.orders.Checkout(checkout);
  REQUIRE(order.ok());
  CHECK(order->lines_size() == 2);
  CHECK(order->subtotal().amount_minor() == 4498);
  CHECK(order->total().amount_minor() == 4498);
  CHECK(order->points_earned() == 44);  // 1 point per 100 minor units paid

  v1::GetCartRequest get;
  get.set_customer_id("c_1");
  absl::StatusOr<v1::Cart> cart = engine.carts.GetCart(get);
  REQUIRE(cart.ok());
  CHECK(cart->id().empty());
  CHECK(cart->lines().empty());

  v1::GetProductRequest bell;
  bell.set_sku("bell");
  CHECK(engine.catalogue.GetProduct(bell)->stock() == 9);

  absl::StatusOr<std::vector<ecrm::outbox::OutboxEvent>> events = engine.outbox.PendingEvents(10);
  REQUIRE(events.ok());
  REQUIRE(events->size() == 1);
  const ecrm::infostore::v1::Event& e = events->front().event;
  CHECK(e.event_id() == "order:" + order->id());
  CHECK(e.type() == "purchase");
  CHECK(e.amount().amount_minor() == 4498);
  CHECK(e.properties().at("units").int_value() == 3);

  // The signup bonus opens the account; the order's spend points follow.
  CHECK(engine.Account("c_1").balance() == 100 + 44);

  // An empty cart cannot check out.
  checkout.set_idempotency_key("k2");
  CHECK(engine.orders.Checkout(checkout).status().code() == absl::StatusCode::kFailedPrecondition);
}

TEST_CASE(
    "loyalty: purchase bonuses, redemption as a discount, a partial refund reverses its share, a cancellation all") {
  Engine engine;
  engine.Product("bike", 1999);

  absl::StatusOr<v1::Order> first = engine.Place("c_1", "bike", 1);
  REQUIRE(first.ok());
  CHECK(first->points_earned() == 19);
  CHECK(engine.Account("c_1").balance() == 100 + 19);

  absl::StatusOr<v1::Order> second = engine.Place("c_1", "bike", 1, /*redeem=*/100);
  REQUIRE(second.ok());
  CHECK(second->points_discount().amount_minor() == 100);
  CHECK(second->total().amount_minor() == 1899);
  CHECK(second->points_earned() == 18 + 50);  // spend on what was paid, 2nd purchase bonus
  CHECK(engine.Account("c_1").balance() == 119 - 100 + 68);

  absl::StatusOr<v1::Order> third = engine.Place("c_1", "bike", 2);
  REQUIRE(third.ok());
  CHECK(third->points_earned() == 39 + 100);  // 3rd purchase bonus
  CHECK(engine.Account("c_1").balance() == 87 + 139);

  // Half of the third order back: half its spend points (rounded down), not its bonus.
  absl::StatusOr<v1::Order> refunded = engine.Refund(third->id(), "bike", 1);
  REQUIRE(refunded.ok());
  CHECK(refunded->refunded().amount_minor() == 1999);
  CHECK(refunded->state() == v1::ORDER_STATE_PARTIALLY_REFUNDED);
  CHECK(engine.Account("c_1").balance() == 226 - 19);

  // Cancelling the second: the redeemed points come back, its spend and bonus go.
  v1::CancelOrderRequest cancel;
  cancel.set_id(second->id());
  REQUIRE(engine.orders.CancelOrder(cancel).ok());
  const v1::LoyaltyAccount account = engine.Account("c_1");
  CHECK(account.balance() == 207 + 100 - 68);
  std::map<std::string, int64_t> by_reason = ByReason(account);
  CHECK(by_reason["redemption"] == -100);
  CHECK(by_reason["redemption_return"] == 100);
  CHECK(by_reason["reversal"] == -(19 + 68));

  // More points than the order is worth, or than the balance holds.
  CHECK(engine.Place("c_1", "bike", 1, /*redeem=*/2000).status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(engine.Place("c_1", "bike", 1, /*redeem=*/1000).status().code() == absl::StatusCode::kFailedPrecondition);
}

TEST_CASE("a reversal never takes the balance below zero: a later reversal of the same order catches up") {
  Engine engine;
  engine.Product("bike", 1999);
  absl::StatusOr<v1::Order> order = engine.Place("c_1", "bike", 2);
  REQUIRE(order.ok());
  CHECK(order->points_earned() == 39);
  CHECK(engine.Adjust("c_1", -139) == 0);  // everything spent elsewhere

  REQUIRE(engine.Refund(order->id(), "bike", 1).ok());
  CHECK(engine.Account("c_1").balance() == 0);  // 19 owed, none taken

  CHECK(engine.Adjust("c_1", 100) == 100);
  REQUIRE(engine.Refund(order->id(), "bike", 1).ok());  // completes the refund: all 39 owed
  CHECK(engine.Account("c_1").balance() == 100 - 39);
}

TEST_CASE("an order placed by identifier belongs to the customer the information store names") {
  v1::PlaceOrderRequest req;
  req.mutable_customer()->mutable_identifier()->set_value("ann@example.com");
  v1::OrderLineInput* line = req.add_lines();
  line->set_sku("bike");
  line->set_quantity(1);
  req.set_idempotency_key("k1");
  SECTION("resolved") {
    FakeResolver resolver;
    Engine engine({}, &resolver);
    engine.Product("bike", 1999);
    absl::StatusOr<v1::Order> order = engine.orders.PlaceOrder(req);
    REQUIRE(order.ok());
    CHECK(order->customer_id() == "c_ann@example.com");

    resolver.down = absl::UnavailableError("information store: down");
    req.set_idempotency_key("k2");
    CHECK(engine.orders.PlaceOrder(req).status().code() == absl::StatusCode::kUnavailable);
    CHECK(engine.Pending().size() == 1);  // only the first order's event
  }
  SECTION("without an information store") {
    Engine engine;
    engine.Product("bike", 1999);
    CHECK(engine.orders.PlaceOrder(req).status().code() == absl::StatusCode::kFailedPrecondition);
  }
}

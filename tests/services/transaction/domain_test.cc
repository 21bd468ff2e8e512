// The transaction engine's domain classes in-process: a temporary SQLite database, a fake
// resolver and a fake information store behind the client interfaces (no servers).
#include <prometheus/registry.h>

#include <catch2/catch.hpp>
#include <condition_variable>
#include <mutex>

#include "carts.h"
#include "catalogue.h"
#include "clients/infostore.h"
#include "ecrm/idempotency/idempotency.h"
#include "ecrm/testing/process.h"
#include "loyalty.h"
#include "metrics.h"
#include "orders.h"
#include "outbox.h"
#include "outbox_relay.h"
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
  tx::Outbox outbox{*db};
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
  void AddEvent(const std::string& event_id) {
    ecrm::infostore::v1::Event e;
    e.set_event_id(event_id);
    e.mutable_customer()->set_customer_id("c_1");
    e.set_type("purchase");
    REQUIRE(db->InTransaction([&](ecrm::sql::Connection& c) { return outbox.Add(c, e); }).ok());
  }
  std::vector<std::string> Pending() {
    absl::StatusOr<std::vector<tx::OutboxEvent>> events = outbox.PendingEvents(100);
    REQUIRE(events.ok());
    std::vector<std::string> ids;
    for (const tx::OutboxEvent& e : *events) ids.push_back(e.event.event_id());
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

  absl::StatusOr<std::vector<tx::OutboxEvent>> events = engine.outbox.PendingEvents(10);
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

namespace {

// The information store's RecordEvents as the relay sees it. `answer` decides each call;
// `hold` makes a call wait until Cancel().
class FakeSink final : public tx::EventSink {
 public:
  std::function<absl::Status(absl::Span<const tx::OutboxEvent>)> answer = [](auto) { return absl::OkStatus(); };
  bool hold = false;

  absl::Status Record(absl::Span<const tx::OutboxEvent> events) override {
    std::unique_lock lock(mu_);
    std::vector<std::string> ids;
    for (const tx::OutboxEvent& e : events) ids.push_back(e.event.event_id());
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
  bool WaitForCall() {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, std::chrono::seconds(60), [&] { return !calls_.empty(); });
  }
  std::vector<std::vector<std::string>> calls() {
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
  std::vector<std::vector<std::string>> calls_;
  bool cancelled_ = false;
};

}  // namespace

TEST_CASE("the relay parks an event refused for its data and delivers the others, in order") {
  Engine engine;
  tx::RelayMetrics metrics(engine.registry);
  FakeSink sink;
  sink.answer = [](absl::Span<const tx::OutboxEvent> events) {
    for (const tx::OutboxEvent& e : events) {
      if (e.event.event_id() == "e2") return absl::InvalidArgumentError("events[0].type: not allowed");
    }
    return absl::OkStatus();
  };
  for (const char* id : {"e1", "e2", "e3"}) engine.AddEvent(id);
  tx::OutboxRelay relay(engine.outbox, sink, {}, metrics);

  CHECK(relay.DeliverPending());
  using Calls = std::vector<std::vector<std::string>>;
  CHECK(sink.calls() == Calls{{"e1", "e2", "e3"}, {"e1"}, {"e2"}, {"e3"}});
  CHECK(engine.Pending().empty());
  CHECK(engine.outbox.PendingCount().value() == 0);
  CHECK(metrics.delivered.Value() == 2);
  CHECK(metrics.parked.Value() == 1);
  // The parked event stays, with the error, and is not sent again.
  auto failed = engine.db->Execute("SELECT event_id, failed FROM outbox");
  REQUIRE(failed.ok());
  REQUIRE(failed->size() == 1);
  CHECK(failed->front().Text(0) == "e2");
  CHECK(failed->front().Text(1) == "events[0].type: not allowed");
  engine.AddEvent("e4");
  CHECK(relay.DeliverPending());
  CHECK(sink.calls().back() == std::vector<std::string>{"e4"});
}

TEST_CASE("while the information store is unavailable nothing leaves the outbox and the relay backs off") {
  Engine engine;
  tx::RelayMetrics metrics(engine.registry);
  FakeSink sink;
  sink.answer = [](auto) { return absl::UnavailableError("connection refused"); };
  for (const char* id : {"e1", "e2"}) engine.AddEvent(id);
  tx::OutboxRelay relay(engine.outbox, sink, {}, metrics);

  CHECK_FALSE(relay.DeliverPending());
  CHECK(sink.calls().size() == 1);  // no event-by-event retry for a failure that is not the data's
  CHECK(engine.Pending() == std::vector<std::string>{"e1", "e2"});
  CHECK(metrics.delivery_failures.Value() == 1);
  CHECK(metrics.pending.Value() == 2);

  sink.answer = [](auto) { return absl::OkStatus(); };
  CHECK(relay.DeliverPending());
  CHECK(engine.Pending().empty());
  CHECK(metrics.delivered.Value() == 2);
}

TEST_CASE("stopping the relay cancels its call in flight, whose events stay in the outbox") {
  Engine engine;
  tx::RelayMetrics metrics(engine.registry);
  FakeSink sink;
  sink.hold = true;
  engine.AddEvent("e1");
  tx::OutboxRelay relay(engine.outbox, sink, {}, metrics);
  relay.Start();
  REQUIRE(sink.WaitForCall());
  relay.Stop();
  CHECK(sink.cancelled());
  CHECK(engine.Pending() == std::vector<std::string>{"e1"});
  CHECK(metrics.delivered.Value() == 0);
}

// ecrm-transaction against the real binary, every case on SQLite and on PostgreSQL; the outbox
// against a real ecrm-infostore.
#include <grpcpp/grpcpp.h>
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <fstream>
#include <latch>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "ecrm/infostore/v1/infostore.grpc.pb.h"
#include "ecrm/privacy/v1/privacy.grpc.pb.h"
#include "ecrm/sql/sql.h"
#include "ecrm/testing/remnants.h"
#include "ecrm/testing/servers.h"
#include "ecrm/testing/service.h"
#include "ecrm/transaction/v1/transaction.grpc.pb.h"
#include "test_servers.h"

namespace v1 = ecrm::transaction::v1;
namespace common = ecrm::common::v1;
namespace infostore = ecrm::infostore::v1;
using ecrm::testing::ServiceProcess;
using Stub = v1::Transaction::Stub;

using ecrm::testing::Postgres;

namespace {

const std::string kTransaction = absl::StrCat(ECRM_BUILD_DIR, "/services/ecrm-transaction");
const std::string kInfostore = absl::StrCat(ECRM_BUILD_DIR, "/services/ecrm-infostore");

std::vector<std::pair<std::string, std::vector<std::string>>> Backends() {
  auto db = Postgres().CreateUniqueDatabase();
  REQUIRE(db.ok());
  return {{"sqlite", {}}, {"postgres", {"--database-url=" + Postgres().url(*db)}}};
}

std::unique_ptr<ServiceProcess> Start(const std::string& binary, std::vector<std::string> args) {
  args.push_back("--redis-url=");
  auto s = ServiceProcess::Start(binary, args);
  if (!s.ok()) FAIL(s.status().ToString());
  return std::move(*s);
}

struct Client {
  std::unique_ptr<ServiceProcess> service;
  std::unique_ptr<Stub> stub;

  explicit Client(std::vector<std::string> args) : service(Start(kTransaction, std::move(args))) {
    stub = v1::Transaction::NewStub(service->channel());
  }

  template <typename Req, typename Resp>
  grpc::Status Call(grpc::Status (Stub::*method)(grpc::ClientContext*, const Req&, Resp*), const Req& req, Resp* resp) {
    grpc::ClientContext ctx;
    ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(20)));
    return (stub.get()->*method)(&ctx, req, resp);
  }
  template <typename Req, typename Resp>
  Resp Ok(grpc::Status (Stub::*method)(grpc::ClientContext*, const Req&, Resp*), const Req& req) {
    Resp resp;
    grpc::Status s = Call(method, req, &resp);
    INFO(s.error_message());
    REQUIRE(s.ok());
    return resp;
  }

  void Product(const std::string& sku, int64_t price, const std::string& currency = "EUR", bool active = true,
               int64_t stock = -1, const std::string& category = "sports/cycling") {
    v1::UpsertProductRequest req;
    auto* p = req.mutable_product();
    p->set_sku(sku);
    p->set_title("Product " + sku);
    p->set_category(category);
    p->mutable_price()->set_amount_minor(price);
    p->mutable_price()->set_currency(currency);
    p->set_active(active);
    p->set_track_stock(stock >= 0);
    p->set_stock(stock >= 0 ? stock : 0);
    Ok(&Stub::UpsertProduct, req);
  }
  grpc::Status Add(const std::string& customer, const std::string& sku, int quantity, v1::Cart* cart = nullptr) {
    v1::AddCartItemRequest req;
    req.set_customer_id(customer);
    req.set_sku(sku);
    req.set_quantity(quantity);
    v1::Cart ignored;
    return Call(&Stub::AddCartItem, req, cart ? cart : &ignored);
  }
  grpc::Status Checkout(const std::string& customer, const std::string& key, v1::Order* order, int64_t redeem = 0) {
    v1::CheckoutRequest req;
    req.set_customer_id(customer);
    req.set_idempotency_key(key);
    req.set_redeem_points(redeem);
    return Call(&Stub::Checkout, req, order);
  }
  grpc::Status Place(const std::string& customer, const std::string& sku, int quantity, const std::string& key,
                     v1::Order* order, int64_t redeem = 0) {
    v1::PlaceOrderRequest req;
    req.mutable_customer()->set_customer_id(customer);
    auto* line = req.add_lines();
    line->set_sku(sku);
    line->set_quantity(quantity);
    req.set_channel(v1::SALES_CHANNEL_POS);
    req.set_location("shop-12");
    req.set_redeem_points(redeem);
    req.set_idempotency_key(key);
    return Call(&Stub::PlaceOrder, req, order);
  }
  v1::LoyaltyAccount Loyalty(const std::string& customer, int page_size = 100) {
    v1::GetLoyaltyAccountRequest req;
    req.set_customer_id(customer);
    req.set_page_size(page_size);
    return Ok(&Stub::GetLoyaltyAccount, req);
  }
};

// Ledger points per reason.
std::map<std::string, int64_t> ByReason(const v1::LoyaltyAccount& a) {
  std::map<std::string, int64_t> out;
  for (const auto& e : a.ledger()) out[e.reason()] += e.points();
  return out;
}

}  // namespace

TEST_CASE("catalogue and carts: server-computed totals, category listing and precise errors") {
  for (auto& [name, args] : Backends()) {
    DYNAMIC_SECTION(name) {
      Client c(args);
      c.Product("HELMET-1", 4999);
      c.Product("LIGHT-2", 1500, "EUR", true, -1, "sports/cycling/lights");
      c.Product("OLD-3", 999, "EUR", /*active=*/false);
      c.Product("MUG-4", 800, "GBP", true, -1, "kitchen");
      c.Product("SHOE-5", 8999, "EUR", true, -1, "sports/running");

      v1::ListProductsRequest list;
      list.set_category("sports/cycling");
      list.set_page_size(1);
      std::vector<std::string> skus;
      for (int page = 0; page < 5; ++page) {
        auto r = c.Ok(&Stub::ListProducts, list);
        for (const auto& p : r.products()) skus.push_back(p.sku());
        if (r.next_page_token().empty()) break;
        list.set_page_token(r.next_page_token());
      }
      CHECK(skus == std::vector<std::string>{"HELMET-1", "LIGHT-2", "OLD-3"});

      v1::Cart cart;
      REQUIRE(c.Add("cust-1", "HELMET-1", 2, &cart).ok());
      REQUIRE(c.Add("cust-1", "LIGHT-2", 1, &cart).ok());
      REQUIRE(c.Add("cust-1", "HELMET-1", 1, &cart).ok());
      REQUIRE(cart.lines_size() == 2);
      CHECK(cart.lines(0).quantity() == 3);
      CHECK(cart.subtotal().amount_minor() == 3 * 4999 + 1500);
      CHECK(cart.subtotal().currency() == "EUR");

      v1::UpdateCartItemRequest upd;
      upd.set_customer_id("cust-1");
      upd.set_sku("HELMET-1");
      upd.set_quantity(1);
      CHECK(c.Ok(&Stub::UpdateCartItem, upd).subtotal().amount_minor() == 4999 + 1500);
      v1::RemoveCartItemRequest rm;
      rm.set_customer_id("cust-1");
      rm.set_sku("LIGHT-2");
      CHECK(c.Ok(&Stub::RemoveCartItem, rm).lines_size() == 1);

      grpc::Status s = c.Add("cust-1", "NOPE-9", 1);
      CHECK(s.error_code() == grpc::StatusCode::NOT_FOUND);
      CHECK_THAT(s.error_message(), Catch::Contains("NOPE-9"));
      s = c.Add("cust-1", "OLD-3", 1);
      CHECK(s.error_code() == grpc::StatusCode::FAILED_PRECONDITION);
      CHECK_THAT(s.error_message(), Catch::Contains("not active"));
      s = c.Add("cust-1", "MUG-4", 1);
      CHECK(s.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
      CHECK_THAT(s.error_message(), Catch::Contains("one currency"));
      for (int q : {0, 1000, -1}) {
        s = c.Add("cust-1", "HELMET-1", q);
        CHECK(s.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
        CHECK_THAT(s.error_message(), Catch::StartsWith("quantity"));
      }
      s = c.Add("cust-1", "HELMET-1", 999);  // 1 + 999 > 999: refused, and nothing changed
      CHECK(s.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
      v1::GetCartRequest get;
      get.set_customer_id("cust-1");
      CHECK(c.Ok(&Stub::GetCart, get).lines(0).quantity() == 1);
      list.set_page_token("garbage");
      v1::ListProductsResponse ignored;
      CHECK(c.Call(&Stub::ListProducts, list, &ignored).error_code() == grpc::StatusCode::INVALID_ARGUMENT);
      v1::UpsertProductRequest bad;
      bad.mutable_product()->set_sku("bad sku");
      v1::Product p;
      s = c.Call(&Stub::UpsertProduct, bad, &p);
      CHECK(s.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
      CHECK_THAT(s.error_message(), Catch::StartsWith("product.sku"));
    }
  }
}

TEST_CASE("idempotency keys replay the first response byte for byte and refuse a different request") {
  for (auto& [name, args] : Backends()) {
    DYNAMIC_SECTION(name) {
      Client c(args);
      c.Product("BOOK-1", 1250, "EUR", true, 10);
      REQUIRE(c.Add("ann", "BOOK-1", 2).ok());
      v1::Order first, again;
      REQUIRE(c.Checkout("ann", "key-1", &first).ok());
      REQUIRE(c.Checkout("ann", "key-1", &again).ok());  // the cart is gone, yet the retry succeeds
      CHECK(again.SerializeAsString() == first.SerializeAsString());
      CHECK(first.total().amount_minor() == 2500);

      v1::Order other;
      grpc::Status s = c.Checkout("ann", "key-1", &other, /*redeem=*/5);
      CHECK(s.error_code() == grpc::StatusCode::FAILED_PRECONDITION);
      CHECK_THAT(s.error_message(), Catch::Contains("different Checkout request"));
      s = c.Checkout("ann", "", &other);
      CHECK(s.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
      CHECK_THAT(s.error_message(), Catch::StartsWith("idempotency_key"));

      v1::Order placed, replayed;
      REQUIRE(c.Place("bob", "BOOK-1", 3, "pos-1", &placed).ok());
      REQUIRE(c.Place("bob", "BOOK-1", 3, "pos-1", &replayed).ok());
      CHECK(replayed.SerializeAsString() == placed.SerializeAsString());
      v1::GetProductRequest gp;
      gp.set_sku("BOOK-1");
      CHECK(c.Ok(&Stub::GetProduct, gp).stock() == 5);  // 10 - 2 - 3: the replays took nothing
      auto metrics = ecrm::testing::HttpGet(absl::StrCat("http://", c.service->metrics_address(), "/metrics"));
      REQUIRE(metrics.ok());
      CHECK_THAT(*metrics, Catch::Contains("ecrm_transaction_orders_placed_total 2\n"));  // nor counted twice

      v1::RefundOrderRequest refund;
      refund.set_id(placed.id());
      refund.set_idempotency_key("refund-1");
      auto* line = refund.add_lines();
      line->set_sku("BOOK-1");
      line->set_quantity(1);
      v1::Order r1 = c.Ok(&Stub::RefundOrder, refund);
      v1::Order r2 = c.Ok(&Stub::RefundOrder, refund);
      CHECK(r2.SerializeAsString() == r1.SerializeAsString());
      CHECK(r1.refunded().amount_minor() == 1250);
      CHECK(r1.state() == v1::ORDER_STATE_PARTIALLY_REFUNDED);
      line->set_quantity(2);
      CHECK(c.Call(&Stub::RefundOrder, refund, &other).error_code() == grpc::StatusCode::FAILED_PRECONDITION);
    }
  }
}

TEST_CASE("a line added while its cart checks out ends up in the order or in the cart, never lost") {
  for (auto& [name, args] : Backends()) {
    DYNAMIC_SECTION(name) {
      Client c(args);
      c.Product("CART-A", 1000);
      c.Product("CART-B", 500);
      int in_order = 0, in_cart = 0;
      for (int round = 0; round < 50; ++round) {
        const std::string customer = absl::StrCat("race-", round);
        REQUIRE(c.Add(customer, "CART-A", 1).ok());
        std::latch go(2);
        grpc::Status added, checked_out;
        v1::Order order;
        std::thread adder([&] {
          go.arrive_and_wait();
          added = c.Add(customer, "CART-B", 1);
        });
        std::thread buyer([&] {
          go.arrive_and_wait();
          checked_out = c.Checkout(customer, absl::StrCat("race-key-", round), &order);
        });
        adder.join();
        buyer.join();
        INFO("round " << round << ": add " << added.error_message() << ", checkout " << checked_out.error_message());
        REQUIRE(added.ok());
        REQUIRE(checked_out.ok());
        v1::GetCartRequest get;
        get.set_customer_id(customer);
        const v1::Cart cart = c.Ok(&Stub::GetCart, get);
        auto has_b = [](const auto& lines) {
          return std::count_if(lines.begin(), lines.end(), [](const v1::Line& l) { return l.sku() == "CART-B"; });
        };
        const auto ordered = has_b(order.lines()), left = has_b(cart.lines());
        CHECK(ordered + left == 1);                                         // acknowledged, so in exactly one of them
        for (const v1::Line& l : cart.lines()) CHECK(l.sku() == "CART-B");  // CART-A went into the order
        in_order += static_cast<int>(ordered);
        in_cart += static_cast<int>(left);
      }
      INFO(name << ": CART-B in the order " << in_order << " times, left in the cart " << in_cart << " times");
      CHECK(in_order + in_cart == 50);
    }
  }
}

TEST_CASE("concurrent Checkouts with one idempotency key all answer the first order") {
  for (auto& [name, args] : Backends()) {
    DYNAMIC_SECTION(name) {
      Client c(args);
      c.Product("RETRY-1", 700);
      for (int round = 0; round < 200; ++round) {
        const std::string customer = absl::StrCat("retry-", round);
        REQUIRE(c.Add(customer, "RETRY-1", 2).ok());
        constexpr int kRetries = 4;
        std::latch go(kRetries);
        std::vector<grpc::Status> status(kRetries);
        std::vector<v1::Order> orders(kRetries);
        std::vector<std::thread> threads;
        for (int i = 0; i < kRetries; ++i) {
          threads.emplace_back([&, i] {
            go.arrive_and_wait();
            status[i] = c.Checkout(customer, absl::StrCat("retry-key-", round), &orders[i]);
          });
        }
        for (auto& t : threads) t.join();
        for (int i = 0; i < kRetries; ++i) {
          INFO("round " << round << ", call " << i << ": " << status[i].error_message());
          REQUIRE(status[i].ok());
          CHECK(orders[i].SerializeAsString() == orders[0].SerializeAsString());
        }
        CHECK(orders[0].total().amount_minor() == 1400);
      }
    }
  }
}

TEST_CASE("1,000 concurrent buyers for 100 units: exactly 100 sold, stock never negative") {
  for (auto& [name, args] : Backends()) {
    DYNAMIC_SECTION(name) {
      Client c(args);
      c.Product("DROP-1", 19900, "EUR", true, 100);
      std::atomic<int> sold{0}, out_of_stock{0}, other{0};
      std::vector<std::thread> threads;
      for (int t = 0; t < 20; ++t) {
        threads.emplace_back([&, t] {
          auto stub = v1::Transaction::NewStub(c.service->channel());
          for (int i = t; i < 1000; i += 20) {
            grpc::ClientContext ctx;
            ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(60)));
            v1::PlaceOrderRequest req;
            req.mutable_customer()->set_customer_id(absl::StrCat("buyer-", i));
            auto* line = req.add_lines();
            line->set_sku("DROP-1");
            line->set_quantity(1);
            req.set_idempotency_key(absl::StrCat("drop-", i));
            v1::Order order;
            grpc::Status s = stub->PlaceOrder(&ctx, req, &order);
            if (s.ok()) {
              ++sold;
            } else if (s.error_code() == grpc::StatusCode::FAILED_PRECONDITION &&
                       absl::StrContains(s.error_message(), "in stock")) {
              ++out_of_stock;
            } else {
              ++other;
            }
          }
        });
      }
      for (auto& t : threads) t.join();
      CHECK(sold == 100);
      CHECK(out_of_stock == 900);
      CHECK(other == 0);
      v1::GetProductRequest gp;
      gp.set_sku("DROP-1");
      CHECK(c.Ok(&Stub::GetProduct, gp).stock() == 0);
    }
  }
}

TEST_CASE(
    "loyalty rules credit each order once under concurrent retries, refunds reverse them, balance never negative") {
  for (auto& [name, args] : Backends()) {
    DYNAMIC_SECTION(name) {
      auto with_rules = args;
      for (const char* f : {"--loyalty-signup-bonus=100", "--loyalty-points-per-unit=1",
                            "--loyalty-second-purchase-bonus=50", "--loyalty-third-purchase-bonus=70"}) {
        with_rules.push_back(f);
      }
      Client c(with_rules);
      c.Product("BIKE-1", 100000);  // 1,000.00 EUR → 1,000 points
      // The first order, retried concurrently with one key from 8 clients: one order, credited once.
      std::vector<std::string> ids(8);
      std::vector<std::thread> threads;
      for (int t = 0; t < 8; ++t) {
        threads.emplace_back([&, t] {
          auto stub = v1::Transaction::NewStub(c.service->channel());
          grpc::ClientContext ctx;
          ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(30)));
          v1::PlaceOrderRequest req;
          req.mutable_customer()->set_customer_id("lia");
          auto* line = req.add_lines();
          line->set_sku("BIKE-1");
          line->set_quantity(1);
          req.set_idempotency_key("lia-order-1");
          v1::Order order;
          if (stub->PlaceOrder(&ctx, req, &order).ok()) ids[t] = order.id();
        });
      }
      for (auto& t : threads) t.join();
      for (const auto& id : ids) CHECK(id == ids[0]);
      REQUIRE_FALSE(ids[0].empty());
      auto account = c.Loyalty("lia");
      CHECK(account.balance() == 100 + 1000);
      CHECK(ByReason(account) == std::map<std::string, int64_t>{{"signup_bonus", 100}, {"spend", 1000}});

      v1::Order second, third;
      REQUIRE(c.Place("lia", "BIKE-1", 1, "lia-order-2", &second).ok());
      REQUIRE(c.Place("lia", "BIKE-1", 1, "lia-order-3", &third).ok());
      CHECK(second.points_earned() == 1050);
      CHECK(third.points_earned() == 1070);
      CHECK(c.Loyalty("lia").balance() == 100 + 1000 + 1050 + 1070);

      // Redeeming more than held is refused; redeeming what is held spends it.
      v1::Order redeem;
      grpc::Status s = c.Place("lia", "BIKE-1", 1, "lia-order-4", &redeem, /*redeem=*/999999);
      CHECK(s.error_code() == grpc::StatusCode::INVALID_ARGUMENT);  // worth more than the order
      c.Product("CAR-2", 100000000);
      s = c.Place("lia", "CAR-2", 1, "lia-order-4", &redeem, /*redeem=*/4000);
      CHECK(s.error_code() == grpc::StatusCode::FAILED_PRECONDITION);
      CHECK_THAT(s.error_message(), Catch::Contains("balance is 3220"));
      REQUIRE(c.Place("lia", "BIKE-1", 1, "lia-order-5", &redeem, /*redeem=*/3220).ok());
      CHECK(redeem.points_discount().amount_minor() == 3220);
      CHECK(redeem.total().amount_minor() == 100000 - 3220);
      CHECK(c.Loyalty("lia").balance() == 967);  // (100000 - 3220) / 100 earned

      // Refunding the third order takes back its spend points and its bonus, as far as the
      // balance allows (most were spent on order 5): never below zero.
      v1::RefundOrderRequest refund;
      refund.set_id(third.id());
      refund.set_idempotency_key("refund-3");
      v1::Order refunded = c.Ok(&Stub::RefundOrder, refund);
      CHECK(refunded.state() == v1::ORDER_STATE_REFUNDED);
      CHECK(refunded.refunded().amount_minor() == 100000);
      account = c.Loyalty("lia");
      CHECK(account.balance() == 0);
      // Cancelling order 5 returns its redeemed points and takes back what it earned.
      v1::CancelOrderRequest cancel;
      cancel.set_id(redeem.id());
      CHECK(c.Ok(&Stub::CancelOrder, cancel).state() == v1::ORDER_STATE_CANCELLED);
      CHECK(c.Ok(&Stub::CancelOrder, cancel).state() == v1::ORDER_STATE_CANCELLED);  // twice is once
      account = c.Loyalty("lia");
      for (const auto& e : account.ledger()) CHECK(e.balance_after() >= 0);
      // The 3,220 redeemed came back and the 967 order 5 earned went.
      CHECK(account.balance() == 3220 - 967);
      // Refund above what was paid: more units than bought.
      v1::RefundOrderRequest too_much;
      too_much.set_id(second.id());
      too_much.set_idempotency_key("refund-2");
      auto* line = too_much.add_lines();
      line->set_sku("BIKE-1");
      line->set_quantity(2);
      v1::Order ignored;
      s = c.Call(&Stub::RefundOrder, too_much, &ignored);
      CHECK(s.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
      CHECK_THAT(s.error_message(), Catch::StartsWith("lines[0].quantity"));

      v1::AdjustPointsRequest adjust;
      adjust.set_customer_id("lia");
      adjust.set_points(-1'000'000);
      adjust.set_reason("goodwill");
      v1::LoyaltyAccount acct;
      CHECK(c.Call(&Stub::AdjustPoints, adjust, &acct).error_code() == grpc::StatusCode::FAILED_PRECONDITION);
      adjust.set_points(25);
      adjust.set_idempotency_key("adj-1");
      auto a1 = c.Ok(&Stub::AdjustPoints, adjust);
      auto a2 = c.Ok(&Stub::AdjustPoints, adjust);
      CHECK(a1.SerializeAsString() == a2.SerializeAsString());
      CHECK(a1.balance() == 3220 - 967 + 25);
      CHECK(a1.tier() == v1::LOYALTY_TIER_GOLD);  // 12-month spend 2,000.00 EUR after refund and cancel
    }
  }
}

TEST_CASE("service inquiries keep response times and export them as histograms") {
  Client c({});
  v1::OpenInquiryRequest open;
  open.set_customer_id("cara");
  open.set_subject("Where is my order?");
  open.set_channel(common::CHANNEL_EMAIL);
  open.set_body("It has been a week.");
  v1::Inquiry q = c.Ok(&Stub::OpenInquiry, open);
  CHECK(q.state() == v1::INQUIRY_STATE_OPEN);
  v1::ReplyToInquiryRequest reply;
  reply.set_id(q.id());
  reply.set_author(v1::AUTHOR_AGENT);
  reply.set_body("On its way.");
  v1::Inquiry ignored;
  CHECK(c.Call(&Stub::ReplyToInquiry, reply, &ignored).error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  reply.set_agent_id("agent-7");
  q = c.Ok(&Stub::ReplyToInquiry, reply);
  CHECK(q.state() == v1::INQUIRY_STATE_PENDING_CUSTOMER);
  CHECK(q.has_first_response_at());
  v1::ResolveInquiryRequest resolve;
  resolve.set_id(q.id());
  resolve.set_resolution("Delivered.");
  q = c.Ok(&Stub::ResolveInquiry, resolve);
  CHECK(q.state() == v1::INQUIRY_STATE_RESOLVED);
  CHECK(q.messages_size() == 3);
  CHECK(c.Call(&Stub::ReplyToInquiry, reply, &ignored).error_code() == grpc::StatusCode::FAILED_PRECONDITION);
  v1::ListInquiriesRequest list;
  list.set_customer_id("cara");
  list.set_state(v1::INQUIRY_STATE_RESOLVED);
  CHECK(c.Ok(&Stub::ListInquiries, list).inquiries_size() == 1);
  open.set_order_id("o_missing");
  CHECK(c.Call(&Stub::OpenInquiry, open, &ignored).error_code() == grpc::StatusCode::NOT_FOUND);
  auto metrics = ecrm::testing::HttpGet(absl::StrCat("http://", c.service->metrics_address(), "/metrics"));
  REQUIRE(metrics.ok());
  CHECK_THAT(*metrics, Catch::Contains("ecrm_transaction_inquiry_first_response_seconds_count 1"));
  CHECK_THAT(*metrics, Catch::Contains("ecrm_transaction_inquiry_resolution_seconds_count 1"));
}

namespace {

// A real information store with a fixed database, so it can be killed and restarted: it first
// listens on the port it picks, and restarts on that same port, where its peers find it again.
struct Infostore {
  ecrm::testing::TempDir dir;
  std::string address;  // set by the first Start()
  std::unique_ptr<ServiceProcess> service;
  void Start() {
    std::vector<std::string> args = {absl::StrCat("--database-url=sqlite://", dir.path(), "/infostore.db")};
    if (!address.empty()) args.push_back("--grpc-address=" + address);
    service = ::Start(kInfostore, args);
    address = service->grpc_address();
  }
  std::string NewCustomer(const std::string& email) {
    auto stub = infostore::InformationStore::NewStub(service->channel());
    grpc::ClientContext ctx;
    infostore::UpsertCustomerRequest req;
    auto* id = req.add_identifiers();
    id->set_type(common::IDENTIFIER_TYPE_EMAIL);
    id->set_value(email);
    infostore::UpsertCustomerResponse resp;
    REQUIRE(stub->UpsertCustomer(&ctx, req, &resp).ok());
    return resp.customer().id();
  }
  // Polls until the customer's summary satisfies `done` (the relay is asynchronous).
  infostore::Customer WaitFor(const std::string& id, const std::function<bool(const infostore::Customer&)>& done) {
    auto stub = infostore::InformationStore::NewStub(service->channel());
    infostore::Customer c;
    const absl::Time deadline = absl::Now() + absl::Seconds(30);
    while (absl::Now() < deadline) {
      grpc::ClientContext ctx;
      infostore::GetCustomerRequest req;
      req.mutable_customer()->set_customer_id(id);
      if (stub->GetCustomer(&ctx, req, &c).ok() && done(c)) return c;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return c;
  }
};

int64_t Count(const infostore::Customer& c, const std::string& type) {
  auto it = c.behaviour().event_counts().find(type);
  return it == c.behaviour().event_counts().end() ? 0 : it->second;
}

// Completed runs of the engine's periodic task `task` (ecrm_periodic_task_runs_total), -1 when
// /metrics cannot be read.
int64_t PeriodicRuns(const ServiceProcess& s, const std::string& task) {
  auto metrics = ecrm::testing::HttpGet(absl::StrCat("http://", s.metrics_address(), "/metrics"));
  if (!metrics.ok()) return -1;
  const std::string prefix = absl::StrCat("ecrm_periodic_task_runs_total{task=\"", task, "\"} ");
  for (absl::string_view line : absl::StrSplit(*metrics, '\n')) {
    double runs = 0;
    if (absl::ConsumePrefix(&line, prefix) && absl::SimpleAtod(line, &runs)) return static_cast<int64_t>(runs);
  }
  return -1;
}

// Polls /metrics until `task` has completed at least `runs` runs; returns the last count seen.
int64_t WaitForRuns(const ServiceProcess& s, const std::string& task, int64_t runs) {
  int64_t done = PeriodicRuns(s, task);
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (done < runs && absl::Now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    done = PeriodicRuns(s, task);
  }
  return done;
}

}  // namespace

TEST_CASE("the outbox delivers every event exactly once across kill -9 of either side") {
  for (auto& [name, args] : Backends()) {
    DYNAMIC_SECTION(name) {
      Infostore info;
      info.Start();
      const std::string buyer = info.NewCustomer("buyer@example.com");
      ecrm::testing::TempDir dir;
      auto txn_args = args;
      if (txn_args.empty()) txn_args.push_back(absl::StrCat("--database-url=sqlite://", dir.path(), "/txn.db"));
      txn_args.push_back("--infostore-address=" + info.address);
      auto c = std::make_unique<Client>(txn_args);
      c->Product("TEA-1", 450);
      int orders = 0;
      auto place = [&](int n) {
        for (int i = 0; i < n; ++i, ++orders) {
          v1::Order o;
          REQUIRE(c->Place(buyer, "TEA-1", 1, absl::StrCat("tea-", orders), &o).ok());
        }
      };
      place(20);
      info.WaitFor(buyer, [&](const infostore::Customer& x) { return Count(x, "purchase") == orders; });

      // The information store dies: orders go on, events wait in the outbox.
      info.service->process().Signal(SIGKILL);
      REQUIRE(info.service->process().Wait(absl::Seconds(10)).has_value());
      place(30);
      info.Start();
      auto got = info.WaitFor(buyer, [&](const infostore::Customer& x) { return Count(x, "purchase") == orders; });
      CHECK(Count(got, "purchase") == 50);

      // The transaction engine dies right after taking orders: the relay resumes after restart.
      place(30);
      c->service->process().Signal(SIGKILL);
      REQUIRE(c->service->process().Wait(absl::Seconds(10)).has_value());
      c = std::make_unique<Client>(txn_args);
      got = info.WaitFor(buyer, [&](const infostore::Customer& x) { return Count(x, "purchase") == orders; });
      CHECK(Count(got, "purchase") == 80);
      CHECK(got.behaviour().order_count() == 80);
      CHECK(got.behaviour().total_spent().amount_minor() == 80 * 450);

      // A refund and a cancellation arrive too, each once.
      v1::ListOrdersRequest list;
      list.set_customer_id(buyer);
      list.set_page_size(2);
      auto page = c->Ok(&Stub::ListOrders, list);
      REQUIRE(page.orders_size() == 2);
      REQUIRE_FALSE(page.next_page_token().empty());
      v1::RefundOrderRequest refund;
      refund.set_id(page.orders(0).id());
      refund.set_idempotency_key("r-1");
      c->Ok(&Stub::RefundOrder, refund);
      v1::CancelOrderRequest cancel;
      cancel.set_id(page.orders(1).id());
      c->Ok(&Stub::CancelOrder, cancel);
      got = info.WaitFor(buyer, [&](const infostore::Customer& x) {
        return Count(x, "refund") == 1 && Count(x, "order_cancelled") == 1;
      });
      CHECK(got.behaviour().total_spent().amount_minor() == 78 * 450);
      CHECK(got.behaviour().order_count() == 79);
    }
  }
}

TEST_CASE("a restarted information store is used again as soon as it serves, not after a reconnect backoff") {
  Infostore info;
  info.Start();
  const std::string buyer = info.NewCustomer("returning@example.com");
  Client c({"--infostore-address=" + info.address, "--infostore-timeout=3s"});
  c.Product("MUG-1", 900);
  auto place_by_email = [&](const std::string& key) {
    v1::PlaceOrderRequest req;
    auto* id = req.mutable_customer()->mutable_identifier();
    id->set_type(common::IDENTIFIER_TYPE_EMAIL);
    id->set_value("returning@example.com");
    auto* line = req.add_lines();
    line->set_sku("MUG-1");
    line->set_quantity(1);
    req.set_idempotency_key(key);
    v1::Order order;
    grpc::Status s = c.Call(&Stub::PlaceOrder, req, &order);
    if (s.ok()) CHECK(order.customer_id() == buyer);
    return s;
  };
  REQUIRE(place_by_email("mug-0").ok());

  info.service->process().Signal(SIGKILL);
  REQUIRE(info.service->process().Wait(absl::Seconds(10)).has_value());
  for (int i = 1; i <= 2; ++i) {  // failed attempts while it is down grow the channel's reconnect backoff
    grpc::Status s = place_by_email(absl::StrCat("mug-", i));
    CHECK(s.error_code() == grpc::StatusCode::UNAVAILABLE);
  }
  info.Start();  // returns once its health check says SERVING
  grpc::Status s = place_by_email("mug-3");
  INFO(s.error_message());
  CHECK(s.ok());
}

TEST_CASE("SIGTERM while the information store is down does not wait for the relay's call") {
  Infostore info;
  info.Start();
  // The relay's call would wait 10 minutes for the information store; the stop must not.
  Client c({"--infostore-address=" + info.address, "--shutdown-grace=30s", "--outbox-timeout=10m"});
  c.Product("PEN-1", 150);
  info.service->process().Signal(SIGKILL);
  REQUIRE(info.service->process().Wait(absl::Seconds(10)).has_value());
  v1::Order order;
  REQUIRE(c.Place("writer", "PEN-1", 1, "pen-1", &order).ok());  // its event waits for the relay
  c.service->process().Signal(SIGTERM);
  INFO(c.service->process().Output());
  CHECK(c.service->process().Wait(absl::Minutes(2)).value_or(-1) == 0);
}

TEST_CASE("an idle cart raises one cart_abandoned event per idle period") {
  Infostore info;
  info.Start();
  const std::string shopper = info.NewCustomer("shopper@example.com");
  Client c({"--infostore-address=" + info.address, "--abandon-after=300ms", "--abandon-scan-interval=50ms"});
  c.Product("SOCK-1", 300);
  REQUIRE(c.Add(shopper, "SOCK-1", 1).ok());
  auto got = info.WaitFor(shopper, [](const infostore::Customer& x) { return Count(x, "cart_abandoned") >= 1; });
  CHECK(Count(got, "cart_abandoned") == 1);
  v1::ListAbandonedCartsRequest list;
  auto abandoned = c.Ok(&Stub::ListAbandonedCarts, list);
  REQUIRE(abandoned.carts_size() == 1);
  CHECK(abandoned.carts(0).customer_id() == shopper);
  // Many more scans of the same idle period raise nothing more; touching the cart starts a new one.
  const int64_t scans = PeriodicRuns(*c.service, "cart-scanner");
  REQUIRE(scans >= 1);
  REQUIRE(WaitForRuns(*c.service, "cart-scanner", scans + 10) >= scans + 10);
  CHECK(Count(info.WaitFor(shopper, [](const auto&) { return true; }), "cart_abandoned") == 1);
  REQUIRE(c.Add(shopper, "SOCK-1", 1).ok());
  got = info.WaitFor(shopper, [](const infostore::Customer& x) { return Count(x, "cart_abandoned") >= 2; });
  CHECK(Count(got, "cart_abandoned") == 2);
}

TEST_CASE(
    "export returns orders, carts, loyalty and inquiries and erasure deletes them but keeps orders pseudonymised") {
  for (auto& [name, args] : Backends()) {
    DYNAMIC_SECTION(name) {
      Client c(args);
      c.Product("PEN-1", 200);
      v1::Order order;
      REQUIRE(c.Place("dan", "PEN-1", 2, "pen-1", &order).ok());
      REQUIRE(c.Add("dan", "PEN-1", 1).ok());
      v1::OpenInquiryRequest open;
      open.set_customer_id("dan");
      open.set_subject("Ink");
      open.set_channel(common::CHANNEL_WEB);
      open.set_body("Blue please");
      c.Ok(&Stub::OpenInquiry, open);

      auto privacy = ecrm::privacy::v1::CustomerData::NewStub(c.service->channel());
      ecrm::privacy::v1::ExportCustomerDataRequest ex;
      ex.set_customer_id("dan");
      ecrm::privacy::v1::ExportCustomerDataResponse exported;
      {
        grpc::ClientContext ctx;
        REQUIRE(privacy->ExportCustomerData(&ctx, ex, &exported).ok());
      }
      CHECK(exported.engine() == "transaction");
      for (const char* part : {order.id().c_str(), "\"carts\":[{", "signup_bonus", "Blue please"}) {
        CHECK_THAT(exported.json_document(), Catch::Contains(part));
      }
      ecrm::privacy::v1::EraseCustomerDataRequest er;
      er.set_customer_id("dan");
      ecrm::privacy::v1::EraseCustomerDataResponse erased;
      {
        grpc::ClientContext ctx;
        REQUIRE(privacy->EraseCustomerData(&ctx, er, &erased).ok());
      }
      std::map<std::string, int64_t> items;
      for (const auto& i : erased.items()) items[i.kind() + "/" + i.action()] = i.count();
      CHECK(items["orders/pseudonymised"] == 1);
      CHECK(items["carts/deleted"] == 1);
      CHECK(items["inquiries/deleted"] == 1);
      CHECK(items["loyalty_accounts/deleted"] == 1);
      v1::GetOrderRequest get;
      get.set_id(order.id());
      auto kept = c.Ok(&Stub::GetOrder, get);
      CHECK(kept.customer_id().empty());
      CHECK(kept.total().amount_minor() == 400);
      {
        grpc::ClientContext ctx;
        REQUIRE(privacy->ExportCustomerData(&ctx, ex, &exported).ok());
      }
      CHECK(exported.json_document() == "{}");  // the contract's document for "nothing held"
      ex.set_customer_id("nobody");
      {
        grpc::ClientContext ctx;
        REQUIRE(privacy->ExportCustomerData(&ctx, ex, &exported).ok());
      }
      CHECK(exported.json_document() == "{}");
    }
  }
}

namespace {

ecrm::privacy::v1::EraseCustomerDataResponse Erase(Client& c, const std::string& customer_id) {
  auto privacy = ecrm::privacy::v1::CustomerData::NewStub(c.service->channel());
  ecrm::privacy::v1::EraseCustomerDataRequest req;
  req.set_customer_id(customer_id);
  ecrm::privacy::v1::EraseCustomerDataResponse erased;
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(20)));
  grpc::Status s = privacy->EraseCustomerData(&ctx, req, &erased);
  INFO(s.error_message());
  REQUIRE(s.ok());
  return erased;
}

std::unique_ptr<ecrm::sql::Database> OpenDatabase(const std::string& url) {
  auto db = ecrm::sql::Database::Open(url);
  if (!db.ok()) FAIL(db.status().ToString());
  return std::move(*db);
}

}  // namespace

TEST_CASE("after erasure idempotency keys replay only what is kept: never the erased customer's id or text") {
  for (auto& [name, args] : Backends()) {
    DYNAMIC_SECTION(name) {
      ecrm::testing::TempDir dir;
      const std::string url = args.empty() ? absl::StrCat("sqlite://", dir.path(), "/txn.db") : args[0].substr(15);
      Client c({"--database-url=" + url});
      const std::string who = "c_erased_7f3a", text = "Parcel left at 12 Hidden Lane";
      c.Product("LAMP-1", 2000, "EUR", true, 10);
      REQUIRE(c.Add(who, "LAMP-1", 1).ok());
      v1::CheckoutRequest checkout;
      checkout.set_customer_id(who);
      checkout.set_idempotency_key("lamp-checkout");
      v1::Order checked_out = c.Ok(&Stub::Checkout, checkout);
      v1::Order placed;
      REQUIRE(c.Place(who, "LAMP-1", 2, "lamp-pos", &placed).ok());
      v1::RefundOrderRequest refund;
      refund.set_id(placed.id());
      refund.set_idempotency_key("lamp-refund");
      refund.set_reason(text);
      c.Ok(&Stub::RefundOrder, refund);
      v1::AdjustPointsRequest adjust;
      adjust.set_customer_id(who);
      adjust.set_points(25);
      adjust.set_reason(text);
      adjust.set_idempotency_key("lamp-adjust");
      c.Ok(&Stub::AdjustPoints, adjust);
      v1::OpenInquiryRequest open;
      open.set_customer_id(who);
      open.set_subject("Delivery");
      open.set_channel(common::CHANNEL_WEB);
      open.set_body(text);
      open.set_idempotency_key("lamp-inquiry");
      v1::Inquiry inquiry = c.Ok(&Stub::OpenInquiry, open);

      auto erased = Erase(c, who);
      std::map<std::string, int64_t> items;
      for (const auto& i : erased.items()) items[i.kind() + "/" + i.action()] = i.count();
      CHECK(items["idempotency_keys/pseudonymised"] == 5);
      CHECK(items["orders/pseudonymised"] == 2);

      // Replays answer as the stored order now is: the same order, with no customer.
      v1::Order replayed = c.Ok(&Stub::Checkout, checkout);
      CHECK(replayed.id() == checked_out.id());
      CHECK(replayed.customer_id().empty());
      CHECK(replayed.total().amount_minor() == 2000);
      REQUIRE(c.Place(who, "LAMP-1", 2, "lamp-pos", &replayed).ok());
      CHECK(replayed.id() == placed.id());
      CHECK(replayed.customer_id().empty());
      replayed = c.Ok(&Stub::RefundOrder, refund);
      CHECK(replayed.id() == placed.id());
      CHECK(replayed.customer_id().empty());
      CHECK(replayed.state() == v1::ORDER_STATE_REFUNDED);
      v1::GetProductRequest gp;
      gp.set_sku("LAMP-1");
      CHECK(c.Ok(&Stub::GetProduct, gp).stock() == 10 - 1 - 2);  // the replays took nothing
      // The deleted inquiry replays as its id alone; the deleted account as nothing.
      v1::Inquiry inquiry_again = c.Ok(&Stub::OpenInquiry, open);
      CHECK(inquiry_again.id() == inquiry.id());
      CHECK(inquiry_again.customer_id().empty());
      CHECK(inquiry_again.messages_size() == 0);
      CHECK(inquiry_again.subject().empty());
      v1::LoyaltyAccount account_again = c.Ok(&Stub::AdjustPoints, adjust);
      CHECK(account_again.customer_id().empty());
      CHECK(account_again.ledger_size() == 0);
      // The replays re-created nothing about the customer.
      v1::ListInquiriesRequest list;
      list.set_customer_id(who);
      CHECK(c.Ok(&Stub::ListInquiries, list).inquiries_size() == 0);
      CHECK(c.Loyalty(who).ledger_size() == 0);

      auto db = OpenDatabase(url);
      auto stored = db->Execute("SELECT customer_id, response FROM idempotency_keys");
      REQUIRE(stored.ok());
      CHECK(stored->size() == 5);
      for (auto row : *stored) {
        CHECK(row.Text(0).empty());
        CHECK(row.Text(1).find(who) == absl::string_view::npos);
        CHECK(row.Text(1).find(text) == absl::string_view::npos);
      }
    }
  }
}

TEST_CASE("an erasure leaves no row version with the erased data in the database's pages") {
  for (auto& [name, args] : Backends()) {
    DYNAMIC_SECTION(name) {
      ecrm::testing::TempDir dir;
      const std::string path = absl::StrCat(dir.path(), "/txn.db");
      const std::string url = args.empty() ? absl::StrCat("sqlite://", path) : args[0].substr(15);
      Client c({"--database-url=" + url});
      const std::string who = "c_residue_51d0", text = "Please call my mobile after six";
      c.Product("PEN-2", 150);
      v1::Order order;
      REQUIRE(c.Place(who, "PEN-2", 3, "pen-2", &order).ok());
      REQUIRE(c.Add(who, "PEN-2", 1).ok());
      v1::OpenInquiryRequest open;
      open.set_customer_id(who);
      open.set_subject("Callback");
      open.set_channel(common::CHANNEL_PHONE);
      open.set_body(text);
      open.set_idempotency_key("pen-q");
      c.Ok(&Stub::OpenInquiry, open);
      v1::AdjustPointsRequest adjust;
      adjust.set_customer_id(who);
      adjust.set_points(10);
      adjust.set_reason(text);
      c.Ok(&Stub::AdjustPoints, adjust);
      Erase(c, who);

      if (name == "postgres") {
        auto db = OpenDatabase(url);
        for (const char* table : {"carts", "cart_lines", "orders", "idempotency_keys", "loyalty_accounts",
                                  "loyalty_ledger", "inquiries", "outbox"}) {
          INFO(table);
          CHECK(ecrm::testing::RowVersionsHolding(*db, table, text).value() == 0);
          CHECK(ecrm::testing::RowVersionsHolding(*db, table, who).value() == 0);
        }
      } else {  // stopped, so that the WAL is copied back and removed
        c.service->process().Signal(SIGTERM);
        REQUIRE(c.service->process().Wait(absl::Seconds(20)).has_value());
        for (const std::string& file : {path, path + "-wal"}) {
          INFO(file);
          CHECK(ecrm::testing::Occurrences(file, text) == 0);
          CHECK(ecrm::testing::Occurrences(file, who) == 0);
        }
      }
    }
  }
}

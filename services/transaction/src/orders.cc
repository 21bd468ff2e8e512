#include "orders.h"

#include <prometheus/counter.h>

#include <algorithm>
#include <map>

#include "absl/strings/str_cat.h"
#include "ecrm/idempotency/idempotency.h"
#include "ecrm/status/macros.h"
#include "ecrm/util/page_token.h"
#include "records.h"
#include "store_helpers.h"

namespace ecrm::transaction {

infostore::v1::Event Orders::OrderEvent(const v1::Order& order, absl::string_view type, absl::string_view event_id,
                                        const common::v1::Money& amount, int64_t at) {
  infostore::v1::Event e;
  e.set_event_id(std::string(event_id));
  e.mutable_customer()->set_customer_id(order.customer_id());
  e.set_type(std::string(type));
  *e.mutable_occurred_at() = Ts(at);
  switch (order.channel()) {
    case v1::SALES_CHANNEL_APP:
      e.set_touchpoint(common::v1::TOUCHPOINT_APP);
      break;
    case v1::SALES_CHANNEL_POS:
      e.set_touchpoint(common::v1::TOUCHPOINT_POS);
      break;
    case v1::SALES_CHANNEL_CALL_CENTRE:
      e.set_touchpoint(common::v1::TOUCHPOINT_CALL_CENTRE);
      break;
    case v1::SALES_CHANNEL_SALES_REP:
      e.set_touchpoint(common::v1::TOUCHPOINT_SALES_REP);
      break;
    default:
      e.set_touchpoint(common::v1::TOUCHPOINT_WEB);
      break;
  }
  *e.mutable_amount() = amount;
  auto& props = *e.mutable_properties();
  props["order_id"].set_string_value(order.id());
  props["lines"].set_int_value(order.lines_size());
  int64_t units = 0;
  std::string skus;
  for (const v1::Line& l : order.lines()) {
    units += l.quantity();
    if (skus.size() + l.sku().size() < 1000) absl::StrAppend(&skus, skus.empty() ? "" : ",", l.sku());
  }
  props["units"].set_int_value(units);
  props["skus"].set_string_value(skus);
  return e;
}

namespace {

constexpr idempotency::Operation kCheckout{"Checkout", "idempotency_key"};
constexpr idempotency::Operation kPlaceOrder{"PlaceOrder", "idempotency_key"};
constexpr idempotency::Operation kCancelOrder{"CancelOrder", "idempotency_key"};
constexpr idempotency::Operation kRefundOrder{"RefundOrder", "idempotency_key"};

int64_t Paid(const v1::Order& o) {
  return o.state() == v1::ORDER_STATE_CANCELLED ? 0 : o.total().amount_minor() - o.refunded().amount_minor();
}

}  // namespace

absl::StatusOr<v1::Order> Orders::Load(sql::Connection& c, const std::string& id, bool lock) {
  if (id.empty()) return Invalid("id", "is required");
  ECRM_ASSIGN_OR_RETURN(
      sql::Result r, c.Execute(absl::StrCat("SELECT body FROM orders WHERE id = $1", lock ? ForUpdate(c) : ""), {id}));
  if (r.empty()) return absl::NotFoundError(absl::StrCat("id: no order \"", id, "\""));
  return OrderFromBody(r.front().Text(0));
}

absl::Status Orders::Save(sql::Connection& c, const v1::Order& order) {
  return c
      .Execute(
          "UPDATE orders SET state = $2, customer_id = $3, paid_minor = $4, body = $5 WHERE id = $1",
          {order.id(), static_cast<int>(order.state()), order.customer_id(), Paid(order), sql::Blob{OrderBody(order)}})
      .status();
}

absl::StatusOr<v1::Order> Orders::Place(sql::Connection& c, const OrderInput& in, int64_t now) {
  if (in.lines.empty()) return absl::FailedPreconditionError("lines: an order needs at least one line");
  if (in.redeem_points < 0) return Invalid("redeem_points", "must not be negative");
  v1::Order order;
  order.set_id(NewId("o_"));
  order.set_customer_id(in.customer_id);
  order.set_state(v1::ORDER_STATE_PLACED);
  order.set_channel(in.channel);
  order.set_location(in.location);
  *order.mutable_placed_at() = Ts(now);
  *order.mutable_updated_at() = Ts(now);

  // Stock is taken in SKU order so two multi-line orders never wait on each other's rows.
  std::vector<const LineInput*> by_sku;
  for (const LineInput& l : in.lines) by_sku.push_back(&l);
  std::sort(by_sku.begin(), by_sku.end(), [](auto* a, auto* b) { return a->sku < b->sku; });
  std::map<std::string, v1::Line> priced;
  std::string currency;
  for (const LineInput* l : by_sku) {
    if (priced.count(l->sku)) return Invalid(l->field, absl::StrCat("\"", l->sku, "\" appears twice; order it once"));
    ECRM_ASSIGN_OR_RETURN(sql::Result p, c.Execute("SELECT title, price_minor, currency, active, track_stock FROM "
                                                   "products WHERE sku = $1",
                                                   {l->sku}));
    if (p.empty()) return absl::NotFoundError(absl::StrCat(l->field, ".sku: no product \"", l->sku, "\""));
    sql::Row row = p.front();
    if (!row.Bool(3)) {
      return absl::FailedPreconditionError(absl::StrCat(l->field, ".sku: product \"", l->sku, "\" is not active"));
    }
    if (currency.empty()) currency = std::string(row.Text(2));
    if (row.Text(2) != currency) {
      return Invalid(l->field, absl::StrCat("\"", l->sku, "\" is priced in ", row.Text(2), ", other lines in ",
                                            currency, "; an order holds one currency"));
    }
    if (row.Bool(4)) {
      ECRM_ASSIGN_OR_RETURN(sql::Result taken,
                            c.Execute("UPDATE products SET stock = stock - $2 WHERE sku = $1 AND stock >= $2 "
                                      "RETURNING stock",
                                      {l->sku, l->quantity}));
      if (taken.empty()) {
        ECRM_ASSIGN_OR_RETURN(sql::Result left, c.Execute("SELECT stock FROM products WHERE sku = $1", {l->sku}));
        return absl::FailedPreconditionError(absl::StrCat(l->field, ": ", l->quantity, " of \"", l->sku,
                                                          "\" requested, ", left.front().Int(0), " in stock"));
      }
    }
    v1::Line line;
    line.set_sku(l->sku);
    line.set_title(std::string(row.Text(0)));
    line.set_quantity(l->quantity);
    *line.mutable_unit_price() = MakeMoney(row.Int(1), currency);
    *line.mutable_total() = MakeMoney(row.Int(1) * l->quantity, currency);
    priced.emplace(l->sku, std::move(line));
  }
  int64_t subtotal = 0;
  for (const LineInput& l : in.lines) {  // lines keep the order they were given in
    subtotal += priced[l.sku].total().amount_minor();
    *order.add_lines() = std::move(priced[l.sku]);
  }

  ECRM_ASSIGN_OR_RETURN(Loyalty::Account account, loyalty_.OpenAccount(c, in.customer_id, now));
  ECRM_ASSIGN_OR_RETURN(int64_t discount, loyalty_.Redeem(c, in.customer_id, account, in.redeem_points, subtotal,
                                                          currency, order.id(), now));
  *order.mutable_subtotal() = MakeMoney(subtotal, currency);
  *order.mutable_points_discount() = MakeMoney(discount, currency);
  *order.mutable_total() = MakeMoney(subtotal - discount, currency);
  *order.mutable_refunded() = MakeMoney(0, currency);
  order.set_points_redeemed(in.redeem_points);
  ECRM_ASSIGN_OR_RETURN(int64_t earned, loyalty_.EarnPoints(c, order, account, now));
  order.set_points_earned(earned);

  ECRM_RETURN_IF_ERROR(c.Execute("INSERT INTO orders (id, customer_id, state, currency, paid_minor, placed_at, body) "
                                 "VALUES ($1, $2, $3, $4, $5, $6, $7)",
                                 {order.id(), order.customer_id(), static_cast<int>(order.state()), currency,
                                  Paid(order), now, sql::Blob{OrderBody(order)}})
                           .status());
  ECRM_RETURN_IF_ERROR(
      outbox_.Add(c, OrderEvent(order, "purchase", absl::StrCat("order:", order.id()), order.total(), now)));
  return order;
}

absl::StatusOr<v1::Order> Orders::Checkout(const v1::CheckoutRequest& req) {
  ECRM_RETURN_IF_ERROR(ValidateCustomerId(req.customer_id()));
  ECRM_RETURN_IF_ERROR(idempotency::ValidateKey(kCheckout, req.idempotency_key(), /*required=*/true));
  bool placed = false;  // false when the key's earlier answer is replayed: counted once
  ECRM_ASSIGN_OR_RETURN(
      v1::Order order,
      keys_.Run<v1::Order>(kCheckout, req.idempotency_key(), req, [&](sql::Connection& c) -> absl::StatusOr<v1::Order> {
        // Locked until commit: a cart change waits for the checkout (its lines go into this order,
        // or into a new cart after it), never slips in between reading and deleting the lines.
        ECRM_ASSIGN_OR_RETURN(v1::Cart cart, carts_.Load(c, req.customer_id(), /*lock=*/true));
        if (cart.lines().empty()) {
          return absl::FailedPreconditionError("customer_id: the cart is empty; add items before checking out");
        }
        OrderInput in{req.customer_id(), {}, req.channel(), "", req.redeem_points()};
        for (const v1::Line& l : cart.lines()) {
          in.lines.push_back({l.sku(), l.quantity(), absl::StrCat("cart ", l.sku())});
        }
        ECRM_ASSIGN_OR_RETURN(v1::Order o, Place(c, in, NowMicros()));
        ECRM_RETURN_IF_ERROR(carts_.Close(c, req.customer_id()));
        placed = true;
        return o;
      }));
  if (placed) metrics_.orders_placed.Increment();
  outbox_.Notify();
  return order;
}

absl::StatusOr<v1::Order> Orders::PlaceOrder(const v1::PlaceOrderRequest& req) {
  ECRM_RETURN_IF_ERROR(idempotency::ValidateKey(kPlaceOrder, req.idempotency_key(), /*required=*/true));
  if (req.lines().empty()) return Invalid("lines", "at least one line is required");
  if (req.lines_size() > 200) return Invalid("lines", "at most 200 lines per order");
  if (req.location().size() > 200) return Invalid("location", "is longer than 200 bytes");
  OrderInput in{"", {}, req.channel(), req.location(), req.redeem_points()};
  for (int i = 0; i < req.lines_size(); ++i) {
    std::string field = absl::StrCat("lines[", i, "]");
    ECRM_RETURN_IF_ERROR(ValidateSku(req.lines(i).sku(), absl::StrCat(field, ".sku")));
    ECRM_RETURN_IF_ERROR(ValidateQuantity(req.lines(i).quantity(), absl::StrCat(field, ".quantity")));
    in.lines.push_back({req.lines(i).sku(), req.lines(i).quantity(), std::move(field)});
  }
  switch (req.customer().ref_case()) {
    case common::v1::CustomerRef::kCustomerId:
      ECRM_RETURN_IF_ERROR(ValidateCustomerId(req.customer().customer_id(), "customer.customer_id"));
      in.customer_id = req.customer().customer_id();
      break;
    case common::v1::CustomerRef::kIdentifier: {
      if (resolver_ == nullptr) {
        return absl::FailedPreconditionError(
            "customer.identifier: naming the customer by identifier needs the information store "
            "(--infostore-address); name them by customer_id");
      }
      ECRM_ASSIGN_OR_RETURN(in.customer_id, resolver_->Resolve(req.customer()));
      break;
    }
    default:
      return Invalid("customer", "set customer_id or identifier");
  }
  bool placed = false;  // false when the key's earlier answer is replayed: counted once
  ECRM_ASSIGN_OR_RETURN(v1::Order order, keys_.Run<v1::Order>(kPlaceOrder, req.idempotency_key(), req,
                                                              [&](sql::Connection& c) -> absl::StatusOr<v1::Order> {
                                                                placed = true;
                                                                return Place(c, in, NowMicros());
                                                              }));
  if (placed) metrics_.orders_placed.Increment();
  outbox_.Notify();
  return order;
}

absl::StatusOr<v1::Order> Orders::GetOrder(const v1::GetOrderRequest& req) {
  ECRM_ASSIGN_OR_RETURN(sql::Lease conn, db_.Acquire());
  return Load(*conn, req.id(), /*lock=*/false);
}

absl::StatusOr<v1::ListOrdersResponse> Orders::ListOrders(const v1::ListOrdersRequest& req) {
  ECRM_RETURN_IF_ERROR(ValidateCustomerId(req.customer_id()));
  const int limit = PageSize(req.page_size());
  ECRM_ASSIGN_OR_RETURN(std::optional<util::PageCursor> before, util::DecodePageToken("ListOrders", req.page_token()));
  const int64_t before_at = before ? before->number : INT64_MAX;
  const std::string before_id = before ? before->text : "\x7f";
  ECRM_ASSIGN_OR_RETURN(sql::Result r,
                        db_.Execute("SELECT body, placed_at, id FROM orders WHERE customer_id = $1 AND (placed_at, id) "
                                    "< ($2, $3) ORDER BY placed_at DESC, id DESC LIMIT $4",
                                    {req.customer_id(), before_at, before_id, limit + 1}));
  v1::ListOrdersResponse out;
  for (size_t i = 0; i < r.size() && static_cast<int>(i) < limit; ++i) {
    ECRM_ASSIGN_OR_RETURN(*out.add_orders(), OrderFromBody(r.row(i).Text(0)));
  }
  if (static_cast<int>(r.size()) > limit) {
    out.set_next_page_token(
        util::EncodePageToken("ListOrders", {r.row(limit - 1).Int(1), std::string(r.row(limit - 1).Text(2))}));
  }
  return out;
}

absl::StatusOr<v1::Order> Orders::FulfilOrder(const v1::FulfilOrderRequest& req) {
  v1::Order order;
  ECRM_RETURN_IF_ERROR(db_.InTransaction([&](sql::Connection& c) -> absl::Status {
    ECRM_ASSIGN_OR_RETURN(order, Load(c, req.id(), /*lock=*/true));
    if (order.state() == v1::ORDER_STATE_FULFILLED) return absl::OkStatus();
    if (order.state() != v1::ORDER_STATE_PLACED) {
      return absl::FailedPreconditionError(absl::StrCat("id: order \"", order.id(), "\" is ",
                                                        v1::OrderState_Name(order.state()),
                                                        "; only placed orders can be fulfilled"));
    }
    order.set_state(v1::ORDER_STATE_FULFILLED);
    *order.mutable_updated_at() = Ts(NowMicros());
    return Save(c, order);
  }));
  return order;
}

absl::StatusOr<v1::Order> Orders::CancelOrder(const v1::CancelOrderRequest& req) {
  ECRM_RETURN_IF_ERROR(idempotency::ValidateKey(kCancelOrder, req.idempotency_key(), /*required=*/false));
  if (req.reason().size() > 1000) return Invalid("reason", "is longer than 1,000 bytes");
  bool changed = false;
  ECRM_ASSIGN_OR_RETURN(
      v1::Order order,
      keys_.Run<v1::Order>(
          kCancelOrder, req.idempotency_key(), req, [&](sql::Connection& c) -> absl::StatusOr<v1::Order> {
            changed = false;
            ECRM_ASSIGN_OR_RETURN(v1::Order o, Load(c, req.id(), /*lock=*/true));
            if (o.state() == v1::ORDER_STATE_CANCELLED) return o;  // cancelling twice is cancelling once
            if (o.state() != v1::ORDER_STATE_PLACED) {
              return absl::FailedPreconditionError(absl::StrCat("id: order \"", o.id(), "\" is ",
                                                                v1::OrderState_Name(o.state()),
                                                                "; only placed orders can be cancelled (refund it)"));
            }
            const int64_t now = NowMicros();
            for (const v1::Line& l : o.lines()) {  // stock comes back for tracked products
              ECRM_RETURN_IF_ERROR(c.Execute("UPDATE products SET stock = stock + $2 WHERE sku = $1 AND "
                                             "track_stock = 1",
                                             {l.sku(), l.quantity()})
                                       .status());
            }
            ECRM_RETURN_IF_ERROR(loyalty_.ReversePoints(c, o, 1.0, now));
            o.set_state(v1::ORDER_STATE_CANCELLED);
            *o.mutable_updated_at() = Ts(now);
            ECRM_RETURN_IF_ERROR(Save(c, o));
            infostore::v1::Event e =
                OrderEvent(o, "order_cancelled", absl::StrCat("order_cancelled:", o.id()), o.total(), now);
            if (!req.reason().empty()) (*e.mutable_properties())["reason"].set_string_value(req.reason());
            // The lines refunded in full so far (what a recommender takes back), as "skus" is written.
            std::string refunded_skus;
            for (const v1::Line& l : o.lines()) {
              if (l.refunded_quantity() < l.quantity()) continue;
              if (refunded_skus.size() + l.sku().size() < 1000) {
                absl::StrAppend(&refunded_skus, refunded_skus.empty() ? "" : ",", l.sku());
              }
            }
            (*e.mutable_properties())["refunded_skus"].set_string_value(refunded_skus);
            ECRM_RETURN_IF_ERROR(outbox_.Add(c, e));
            changed = true;
            return o;
          }));
  if (changed) outbox_.Notify();
  return order;
}

absl::StatusOr<v1::Order> Orders::RefundOrder(const v1::RefundOrderRequest& req) {
  ECRM_RETURN_IF_ERROR(idempotency::ValidateKey(kRefundOrder, req.idempotency_key(), /*required=*/true));
  if (req.reason().size() > 1000) return Invalid("reason", "is longer than 1,000 bytes");
  for (int i = 0; i < req.lines_size(); ++i) {
    ECRM_RETURN_IF_ERROR(ValidateSku(req.lines(i).sku(), absl::StrCat("lines[", i, "].sku")));
    if (req.lines(i).quantity() < 1) {
      return Invalid(absl::StrCat("lines[", i, "].quantity"), "must be at least 1");
    }
  }
  ECRM_ASSIGN_OR_RETURN(
      v1::Order order,
      keys_.Run<v1::Order>(
          kRefundOrder, req.idempotency_key(), req, [&](sql::Connection& c) -> absl::StatusOr<v1::Order> {
            ECRM_ASSIGN_OR_RETURN(v1::Order o, Load(c, req.id(), /*lock=*/true));
            const v1::OrderState s = o.state();
            if (s != v1::ORDER_STATE_PLACED && s != v1::ORDER_STATE_FULFILLED &&
                s != v1::ORDER_STATE_PARTIALLY_REFUNDED) {
              return absl::FailedPreconditionError(
                  absl::StrCat("id: order \"", o.id(), "\" is ", v1::OrderState_Name(s), "; nothing left to refund"));
            }
            // Quantity to refund per line index.
            std::vector<int32_t> take(o.lines_size(), 0);
            if (req.lines().empty()) {
              for (int j = 0; j < o.lines_size(); ++j) take[j] = o.lines(j).quantity() - o.lines(j).refunded_quantity();
            }
            for (int i = 0; i < req.lines_size(); ++i) {
              const std::string field = absl::StrCat("lines[", i, "]");
              int j = 0;
              while (j < o.lines_size() && o.lines(j).sku() != req.lines(i).sku()) ++j;
              if (j == o.lines_size()) {
                return Invalid(absl::StrCat(field, ".sku"),
                               absl::StrCat("\"", req.lines(i).sku(), "\" is not on order \"", o.id(), "\""));
              }
              take[j] += req.lines(i).quantity();
              const int32_t left = o.lines(j).quantity() - o.lines(j).refunded_quantity();
              if (take[j] > left) {
                return Invalid(absl::StrCat(field, ".quantity"),
                               absl::StrCat(take[j], " of \"", o.lines(j).sku(), "\" to refund, only ", left,
                                            " paid and not yet refunded"));
              }
            }
            // The refund is the lines' share of what was paid (the points discount spread pro rata);
            // the refund that completes the order takes exactly what is left, so rounding never
            // refunds more than was paid.
            int64_t lines_value = 0;
            bool complete = true;
            for (int j = 0; j < o.lines_size(); ++j) {
              lines_value += o.lines(j).unit_price().amount_minor() * take[j];
              v1::Line* line = o.mutable_lines(j);
              line->set_refunded_quantity(line->refunded_quantity() + take[j]);
              if (line->refunded_quantity() < line->quantity()) complete = false;
            }
            if (lines_value == 0 && !complete) return Invalid("lines", "nothing to refund");
            const int64_t total = o.total().amount_minor(), already = o.refunded().amount_minor();
            int64_t amount =
                o.subtotal().amount_minor() == 0
                    ? 0
                    : static_cast<int64_t>(static_cast<__int128>(lines_value) * total / o.subtotal().amount_minor());
            if (complete) amount = total - already;
            amount = std::min(amount, total - already);
            const int64_t now = NowMicros();
            o.mutable_refunded()->set_amount_minor(already + amount);
            o.set_state(complete ? v1::ORDER_STATE_REFUNDED : v1::ORDER_STATE_PARTIALLY_REFUNDED);
            *o.mutable_updated_at() = Ts(now);
            ECRM_RETURN_IF_ERROR(loyalty_.ReversePoints(
                c, o, complete || total == 0 ? 1.0 : static_cast<double>(already + amount) / total, now));
            ECRM_RETURN_IF_ERROR(Save(c, o));
            infostore::v1::Event e = OrderEvent(o, "refund", absl::StrCat("refund:", o.id(), ":", already + amount),
                                                MakeMoney(amount, o.total().currency()), now);
            if (!req.reason().empty()) (*e.mutable_properties())["reason"].set_string_value(req.reason());
            // The lines refunded in full so far (what a recommender takes back), as "skus" is written.
            std::string refunded_skus;
            for (const v1::Line& l : o.lines()) {
              if (l.refunded_quantity() < l.quantity()) continue;
              if (refunded_skus.size() + l.sku().size() < 1000) {
                absl::StrAppend(&refunded_skus, refunded_skus.empty() ? "" : ",", l.sku());
              }
            }
            (*e.mutable_properties())["refunded_skus"].set_string_value(refunded_skus);
            ECRM_RETURN_IF_ERROR(outbox_.Add(c, e));
            return o;
          }));
  outbox_.Notify();
  return order;
}

}  // namespace ecrm::transaction

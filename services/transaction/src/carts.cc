#include "carts.h"

#include <prometheus/counter.h>

#include "absl/strings/str_cat.h"
#include "ecrm/status/macros.h"
#include "ecrm/util/page_token.h"
#include "store_helpers.h"

namespace ecrm::transaction {

absl::StatusOr<v1::Cart> Carts::Load(sql::Connection& c, const std::string& customer_id, bool lock) {
  v1::Cart cart;
  cart.set_customer_id(customer_id);
  ECRM_ASSIGN_OR_RETURN(sql::Result head,
                        c.Execute(absl::StrCat("SELECT id, currency, updated_at FROM carts WHERE customer_id = $1",
                                               lock ? ForUpdate(c) : ""),
                                  {customer_id}));
  if (head.empty()) return cart;
  cart.set_id(std::string(head.front().Text(0)));
  *cart.mutable_updated_at() = Ts(head.front().Int(2));
  const std::string currency(head.front().Text(1));
  ECRM_ASSIGN_OR_RETURN(sql::Result lines,
                        c.Execute("SELECT l.sku, p.title, l.quantity, p.price_minor FROM cart_lines l JOIN products "
                                  "p ON p.sku = l.sku WHERE l.customer_id = $1 ORDER BY l.added_at, l.sku",
                                  {customer_id}));
  int64_t subtotal = 0;
  for (sql::Row row : lines) {
    v1::Line* line = cart.add_lines();
    line->set_sku(std::string(row.Text(0)));
    line->set_title(std::string(row.Text(1)));
    line->set_quantity(static_cast<int32_t>(row.Int(2)));
    *line->mutable_unit_price() = MakeMoney(row.Int(3), currency);
    *line->mutable_total() = MakeMoney(row.Int(3) * row.Int(2), currency);
    subtotal += row.Int(3) * row.Int(2);
  }
  *cart.mutable_subtotal() = MakeMoney(subtotal, currency);
  return cart;
}

absl::Status Carts::Close(sql::Connection& c, const std::string& customer_id) {
  ECRM_RETURN_IF_ERROR(c.Execute("DELETE FROM cart_lines WHERE customer_id = $1", {customer_id}).status());
  return c.Execute("DELETE FROM carts WHERE customer_id = $1", {customer_id}).status();
}

absl::StatusOr<v1::Cart> Carts::GetCart(const v1::GetCartRequest& req) {
  ECRM_RETURN_IF_ERROR(ValidateCustomerId(req.customer_id()));
  ECRM_ASSIGN_OR_RETURN(sql::Lease conn, db_.Acquire());
  return Load(*conn, req.customer_id());
}

absl::StatusOr<v1::Cart> Carts::ChangeCart(const std::string& customer_id, const std::string& sku, int32_t quantity,
                                           bool add) {
  v1::Cart cart;
  ECRM_RETURN_IF_ERROR(db_.InTransaction([&](sql::Connection& c) -> absl::Status {
    const int64_t now = NowMicros();
    ECRM_ASSIGN_OR_RETURN(sql::Result p, c.Execute("SELECT currency, active FROM products WHERE sku = $1", {sku}));
    if (p.empty()) return absl::NotFoundError(absl::StrCat("sku: no product \"", sku, "\""));
    if (quantity > 0 && !p.front().Bool(1)) {
      return absl::FailedPreconditionError(absl::StrCat("sku: product \"", sku, "\" is not active"));
    }
    const std::string currency(p.front().Text(0));
    if (quantity == 0) {
      // The cart's row is locked before its lines, as every cart change and Checkout do.
      ECRM_RETURN_IF_ERROR(
          c.Execute(absl::StrCat("SELECT id FROM carts WHERE customer_id = $1", ForUpdate(c)), {customer_id}).status());
      ECRM_ASSIGN_OR_RETURN(
          sql::Result del, c.Execute("DELETE FROM cart_lines WHERE customer_id = $1 AND sku = $2", {customer_id, sku}));
      if (del.rows_affected() == 0) {
        return absl::NotFoundError(absl::StrCat("sku: \"", sku, "\" is not in the cart"));
      }
      ECRM_ASSIGN_OR_RETURN(sql::Result left,
                            c.Execute("SELECT COUNT(*) FROM cart_lines WHERE customer_id = $1", {customer_id}));
      // An emptied cart closes; the next item opens a new one (in any currency).
      ECRM_RETURN_IF_ERROR(
          left.front().Int(0) == 0
              ? c.Execute("DELETE FROM carts WHERE customer_id = $1", {customer_id}).status()
              : c.Execute("UPDATE carts SET updated_at = $2 WHERE customer_id = $1", {customer_id, now}).status());
      ECRM_ASSIGN_OR_RETURN(cart, Load(c, customer_id));
      return absl::OkStatus();
    }
    ECRM_ASSIGN_OR_RETURN(
        sql::Result head,
        c.Execute("INSERT INTO carts (customer_id, id, currency, updated_at) VALUES ($1, $2, $3, $4) ON CONFLICT "
                  "(customer_id) DO UPDATE SET updated_at = excluded.updated_at RETURNING currency",
                  {customer_id, NewId("cart_"), currency, now}));
    if (head.front().Text(0) != currency) {
      return Invalid("sku", absl::StrCat("\"", sku, "\" is priced in ", currency, " but the cart is in ",
                                         head.front().Text(0), "; a cart holds one currency"));
    }
    if (add) {
      ECRM_ASSIGN_OR_RETURN(sql::Result line,
                            c.Execute("INSERT INTO cart_lines (customer_id, sku, quantity, added_at) VALUES ($1, $2, "
                                      "$3, $4) ON CONFLICT (customer_id, sku) DO UPDATE SET quantity = "
                                      "cart_lines.quantity + excluded.quantity RETURNING quantity",
                                      {customer_id, sku, quantity, now}));
      if (line.front().Int(0) > 999) {
        return Invalid("quantity", absl::StrCat("would make ", line.front().Int(0), " of \"", sku,
                                                "\" in the cart; a line holds at most 999"));
      }
    } else {
      ECRM_ASSIGN_OR_RETURN(sql::Result upd,
                            c.Execute("UPDATE cart_lines SET quantity = $3 WHERE customer_id = $1 AND sku = $2",
                                      {customer_id, sku, quantity}));
      if (upd.rows_affected() == 0) return absl::NotFoundError(absl::StrCat("sku: \"", sku, "\" is not in the cart"));
    }
    ECRM_ASSIGN_OR_RETURN(cart, Load(c, customer_id));
    return absl::OkStatus();
  }));
  return cart;
}

absl::StatusOr<v1::Cart> Carts::AddCartItem(const v1::AddCartItemRequest& req) {
  ECRM_RETURN_IF_ERROR(ValidateCustomerId(req.customer_id()));
  ECRM_RETURN_IF_ERROR(ValidateSku(req.sku()));
  ECRM_RETURN_IF_ERROR(ValidateQuantity(req.quantity()));
  return ChangeCart(req.customer_id(), req.sku(), req.quantity(), /*add=*/true);
}

absl::StatusOr<v1::Cart> Carts::UpdateCartItem(const v1::UpdateCartItemRequest& req) {
  ECRM_RETURN_IF_ERROR(ValidateCustomerId(req.customer_id()));
  ECRM_RETURN_IF_ERROR(ValidateSku(req.sku()));
  ECRM_RETURN_IF_ERROR(ValidateQuantity(req.quantity()));
  return ChangeCart(req.customer_id(), req.sku(), req.quantity(), /*add=*/false);
}

absl::StatusOr<v1::Cart> Carts::RemoveCartItem(const v1::RemoveCartItemRequest& req) {
  ECRM_RETURN_IF_ERROR(ValidateCustomerId(req.customer_id()));
  ECRM_RETURN_IF_ERROR(ValidateSku(req.sku()));
  return ChangeCart(req.customer_id(), req.sku(), 0, /*add=*/false);
}

absl::StatusOr<v1::ListAbandonedCartsResponse> Carts::ListAbandonedCarts(const v1::ListAbandonedCartsRequest& req) {
  const int limit = PageSize(req.page_size());
  ECRM_ASSIGN_OR_RETURN(std::optional<util::PageCursor> after,
                        util::DecodePageToken("ListAbandonedCarts", req.page_token()));
  const int64_t after_at = after ? after->number : -1;
  const std::string after_customer = after ? after->text : "";
  const int64_t cutoff = NowMicros() - absl::ToInt64Microseconds(abandon_after_);
  v1::ListAbandonedCartsResponse out;
  ECRM_ASSIGN_OR_RETURN(sql::Lease conn, db_.Acquire());
  ECRM_ASSIGN_OR_RETURN(sql::Result r,
                        conn->Execute("SELECT customer_id, updated_at FROM carts WHERE updated_at <= $1 AND "
                                      "(updated_at, customer_id) > ($2, $3) ORDER BY updated_at, customer_id LIMIT $4",
                                      {cutoff, after_at, after_customer, limit + 1}));
  for (size_t i = 0; i < r.size() && static_cast<int>(i) < limit; ++i) {
    ECRM_ASSIGN_OR_RETURN(*out.add_carts(), Load(*conn, std::string(r.row(i).Text(0))));
  }
  if (static_cast<int>(r.size()) > limit) {
    out.set_next_page_token(
        util::EncodePageToken("ListAbandonedCarts", {r.row(limit - 1).Int(1), std::string(r.row(limit - 1).Text(0))}));
  }
  return out;
}

absl::StatusOr<int64_t> Carts::ReportAbandonedCarts() {
  const int64_t cutoff = NowMicros() - absl::ToInt64Microseconds(abandon_after_);
  ECRM_ASSIGN_OR_RETURN(sql::Result idle,
                        db_.Execute("SELECT customer_id, updated_at FROM carts WHERE updated_at <= $1 AND "
                                    "abandoned_at < updated_at ORDER BY updated_at LIMIT 1000",
                                    {cutoff}));
  int64_t raised = 0;
  for (sql::Row row : idle) {
    const std::string customer_id(row.Text(0));
    const int64_t idle_since = row.Int(1);
    bool claimed = false;
    ECRM_RETURN_IF_ERROR(db_.InTransaction([&](sql::Connection& c) -> absl::Status {
      claimed = false;
      // Claims this idle period; a cart touched since, or claimed by another replica, is skipped.
      ECRM_ASSIGN_OR_RETURN(sql::Result upd, c.Execute("UPDATE carts SET abandoned_at = updated_at WHERE "
                                                       "customer_id = $1 AND updated_at = $2 AND abandoned_at < $2",
                                                       {customer_id, idle_since}));
      if (upd.rows_affected() == 0) return absl::OkStatus();
      ECRM_ASSIGN_OR_RETURN(v1::Cart cart, Load(c, customer_id));
      infostore::v1::Event e;
      e.set_event_id(absl::StrCat("cart_abandoned:", cart.id(), ":", idle_since));
      e.mutable_customer()->set_customer_id(customer_id);
      e.set_type("cart_abandoned");
      *e.mutable_occurred_at() = Ts(idle_since + absl::ToInt64Microseconds(abandon_after_));
      e.set_touchpoint(common::v1::TOUCHPOINT_WEB);
      *e.mutable_amount() = cart.subtotal();
      (*e.mutable_properties())["cart_id"].set_string_value(cart.id());
      (*e.mutable_properties())["lines"].set_int_value(cart.lines_size());
      claimed = true;
      return outbox_.Add(c, e);
    }));
    if (claimed) ++raised;
  }
  if (raised > 0) {
    metrics_.abandoned_carts.Increment(static_cast<double>(raised));
    outbox_.Notify();
  }
  return raised;
}

}  // namespace ecrm::transaction

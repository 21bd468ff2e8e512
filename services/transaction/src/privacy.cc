#include "privacy.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "ecrm/log/log.h"
#include "ecrm/status/macros.h"
#include "records.h"
#include "store_helpers.h"

namespace ecrm::transaction {

namespace {

std::vector<std::string> AllIds(const std::string& id, const google::protobuf::RepeatedPtrField<std::string>& merged) {
  std::vector<std::string> ids = {id};
  ids.insert(ids.end(), merged.begin(), merged.end());
  return ids;
}

// What an idempotency record replays once its customer is erased: only what this engine keeps.
// An order stays, pseudonymised as the stored order is; of a deleted inquiry, its id; of a
// deleted loyalty account (AdjustPoints), nothing.
absl::StatusOr<std::string> ErasedResponse(absl::string_view operation, absl::string_view response) {
  if (operation == "Checkout" || operation == "PlaceOrder" || operation == "CancelOrder" ||
      operation == "RefundOrder") {
    ECRM_ASSIGN_OR_RETURN(v1::Order order, ParseBody<v1::Order>(response, "response"));
    order.clear_customer_id();
    return order.SerializeAsString();
  }
  if (operation == "OpenInquiry") {
    ECRM_ASSIGN_OR_RETURN(v1::Inquiry inquiry, ParseBody<v1::Inquiry>(response, "response"));
    v1::Inquiry kept;
    kept.set_id(inquiry.id());
    return kept.SerializeAsString();
  }
  return std::string();
}

}  // namespace

absl::StatusOr<std::string> CustomerData::ExportCustomerData(const privacy::v1::ExportCustomerDataRequest& req) {
  ECRM_RETURN_IF_ERROR(ValidateCustomerId(req.customer_id()));
  std::vector<std::string> orders, carts, ledger, inquiries;
  std::vector<std::string> balances;
  ECRM_ASSIGN_OR_RETURN(sql::Lease conn, db_.Acquire());
  for (const std::string& id : AllIds(req.customer_id(), req.merged_customer_ids())) {
    ECRM_ASSIGN_OR_RETURN(sql::Result o,
                          conn->Execute("SELECT body FROM orders WHERE customer_id = $1 ORDER BY placed_at", {id}));
    for (sql::Row row : o) {
      ECRM_ASSIGN_OR_RETURN(v1::Order order, OrderFromBody(row.Text(0)));
      orders.push_back(util::ToJson(order));
    }
    ECRM_ASSIGN_OR_RETURN(v1::Cart cart, carts_.Load(*conn, id));
    if (!cart.id().empty()) carts.push_back(util::ToJson(cart));
    ECRM_ASSIGN_OR_RETURN(sql::Result a,
                          conn->Execute("SELECT balance FROM loyalty_accounts WHERE customer_id = $1", {id}));
    if (!a.empty())
      balances.push_back(absl::StrCat("{\"customer_id\":\"", id, "\",\"balance\":", a.front().Int(0), "}"));
    ECRM_ASSIGN_OR_RETURN(sql::Result l, conn->Execute("SELECT seq, points, reason, order_id, balance_after, "
                                                       "created_at FROM loyalty_ledger WHERE customer_id = $1 ORDER "
                                                       "BY seq",
                                                       {id}));
    for (sql::Row row : l) ledger.push_back(util::ToJson(LedgerEntryFromRow(row)));
    ECRM_ASSIGN_OR_RETURN(sql::Result q,
                          conn->Execute("SELECT body FROM inquiries WHERE customer_id = $1 ORDER BY opened_at", {id}));
    for (sql::Row row : q) {
      ECRM_ASSIGN_OR_RETURN(v1::Inquiry inquiry, InquiryFromBody(row.Text(0)));
      inquiries.push_back(util::ToJson(inquiry));
    }
  }
  if (orders.empty() && carts.empty() && balances.empty() && ledger.empty() && inquiries.empty()) {
    return std::string("{}");  // the contract's document for "nothing held"
  }
  return absl::StrCat("{\"orders\":[", absl::StrJoin(orders, ","), "],\"carts\":[", absl::StrJoin(carts, ","),
                      "],\"loyalty_accounts\":[", absl::StrJoin(balances, ","), "],\"loyalty_ledger\":[",
                      absl::StrJoin(ledger, ","), "],\"inquiries\":[", absl::StrJoin(inquiries, ","), "]}");
}

absl::StatusOr<privacy::v1::EraseCustomerDataResponse> CustomerData::EraseCustomerData(
    const privacy::v1::EraseCustomerDataRequest& req) {
  ECRM_RETURN_IF_ERROR(ValidateCustomerId(req.customer_id()));
  privacy::v1::EraseCustomerDataResponse out;
  std::vector<absl::string_view> touched;  // tables the erasure changed
  ECRM_RETURN_IF_ERROR(db_.InTransaction([&](sql::Connection& c) -> absl::Status {
    out.Clear();
    touched.clear();
    int64_t carts = 0, lines = 0, accounts = 0, entries = 0, inquiries = 0, orders = 0, events = 0, keys = 0;
    for (const std::string& id : AllIds(req.customer_id(), req.merged_customer_ids())) {
      auto count = [&](absl::string_view sql, int64_t& n) -> absl::Status {
        ECRM_ASSIGN_OR_RETURN(sql::Result r, c.Execute(sql, {id}));
        n += r.rows_affected();
        return absl::OkStatus();
      };
      ECRM_RETURN_IF_ERROR(count("DELETE FROM cart_lines WHERE customer_id = $1", lines));
      ECRM_RETURN_IF_ERROR(count("DELETE FROM carts WHERE customer_id = $1", carts));
      ECRM_RETURN_IF_ERROR(count("DELETE FROM loyalty_ledger WHERE customer_id = $1", entries));
      ECRM_RETURN_IF_ERROR(count("DELETE FROM loyalty_accounts WHERE customer_id = $1", accounts));
      ECRM_RETURN_IF_ERROR(count("DELETE FROM inquiries WHERE customer_id = $1", inquiries));
      // Undelivered events would re-create data about the person in the information store.
      ECRM_RETURN_IF_ERROR(count("DELETE FROM outbox WHERE customer_id = $1", events));
      // Financial records stay, without the link to the person.
      ECRM_ASSIGN_OR_RETURN(
          sql::Result o, c.Execute(absl::StrCat("SELECT body FROM orders WHERE customer_id = $1", ForUpdate(c)), {id}));
      for (sql::Row row : o) {
        ECRM_ASSIGN_OR_RETURN(v1::Order order, OrderFromBody(row.Text(0)));
        order.clear_customer_id();
        ECRM_RETURN_IF_ERROR(orders_.Save(c, order));
        ++orders;
      }
      // Idempotency records go on replaying (a retry must not place an order twice), but only
      // what is kept: a replay never returns the erased id or the customer's text.
      ECRM_ASSIGN_OR_RETURN(
          sql::Result k,
          c.Execute(absl::StrCat("SELECT operation, key, response FROM idempotency_keys WHERE customer_id = $1",
                                 ForUpdate(c)),
                    {id}));
      for (sql::Row row : k) {
        ECRM_ASSIGN_OR_RETURN(std::string response, ErasedResponse(row.Text(0), row.Text(2)));
        ECRM_RETURN_IF_ERROR(c.Execute("UPDATE idempotency_keys SET customer_id = '', response = $3 WHERE "
                                       "operation = $1 AND key = $2",
                                       {row.Text(0), row.Text(1), sql::Blob{response}})
                                 .status());
        ++keys;
      }
    }
    auto item = [&](absl::string_view kind, int64_t n, absl::string_view action, absl::string_view table) {
      privacy::v1::ErasedItem* i = out.add_items();
      i->set_kind(std::string(kind));
      i->set_count(n);
      i->set_action(std::string(action));
      if (n > 0) touched.push_back(table);
    };
    item("carts", carts, "deleted", "carts");
    item("cart_lines", lines, "deleted", "cart_lines");
    item("loyalty_accounts", accounts, "deleted", "loyalty_accounts");
    item("loyalty_ledger_entries", entries, "deleted", "loyalty_ledger");
    item("inquiries", inquiries, "deleted", "inquiries");
    item("orders", orders, "pseudonymised", "orders");
    item("undelivered_events", events, "deleted", "outbox");
    item("idempotency_keys", keys, "pseudonymised", "idempotency_keys");
    return absl::OkStatus();
  }));
  // PostgreSQL keeps the deleted and replaced row versions, erased data and all, in the tables'
  // pages until a VACUUM: it runs now, after the commit, on the tables the erasure changed.
  for (absl::string_view table : touched) {
    if (absl::Status s = sql::Vacuum(db_, table); !s.ok()) {
      log::Warn("VACUUM after an erasure failed; autovacuum will remove the erased rows",
                {{"table", table}, {"error", s}});
    }
  }
  out.set_engine("transaction");
  *out.mutable_erased_at() = Ts(NowMicros());
  return out;
}

}  // namespace ecrm::transaction

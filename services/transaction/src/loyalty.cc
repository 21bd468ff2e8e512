#include "loyalty.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "ecrm/idempotency/idempotency.h"
#include "ecrm/status/macros.h"
#include "ecrm/util/page_token.h"
#include "store_helpers.h"

namespace ecrm::transaction {

namespace {

constexpr idempotency::Operation kAdjustPoints{"AdjustPoints", "idempotency_key"};

constexpr absl::string_view kEarningReasons =
    "'spend', 'second_purchase_bonus', 'third_purchase_bonus', 'reactivation_bonus'";

}  // namespace

absl::StatusOr<Loyalty::Account> Loyalty::OpenAccount(sql::Connection& c, const std::string& customer_id, int64_t now) {
  ECRM_ASSIGN_OR_RETURN(sql::Result created,
                        c.Execute("INSERT INTO loyalty_accounts (customer_id, balance, orders, last_order_at, "
                                  "created_at) VALUES ($1, 0, 0, 0, $2) ON CONFLICT (customer_id) DO NOTHING",
                                  {customer_id, now}));
  ECRM_ASSIGN_OR_RETURN(sql::Result r, c.Execute(absl::StrCat("SELECT balance, orders, last_order_at FROM "
                                                              "loyalty_accounts WHERE customer_id = $1",
                                                              ForUpdate(c)),
                                                 {customer_id}));
  if (r.empty()) return absl::AbortedError("loyalty account vanished while opening it");
  Account a{r.front().Int(0), r.front().Int(1), r.front().Int(2)};
  if (created.rows_affected() > 0 && rules_.signup_bonus > 0) {
    ECRM_RETURN_IF_ERROR(Credit(c, customer_id, a, rules_.signup_bonus, "signup_bonus", "",
                                absl::StrCat("signup_bonus:", customer_id), "", now)
                             .status());
  }
  return a;
}

absl::StatusOr<bool> Loyalty::Credit(sql::Connection& c, const std::string& customer_id, Account& account,
                                     int64_t points, absl::string_view reason, const std::string& order_id,
                                     const std::string& rule_key, absl::string_view note, int64_t now) {
  if (points == 0) return false;
  const int64_t balance = account.balance + points;
  if (balance < 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("points: the balance is ", account.balance, "; removing ", -points, " would make it negative"));
  }
  ECRM_ASSIGN_OR_RETURN(sql::Result added,
                        c.Execute("INSERT INTO loyalty_ledger (customer_id, points, reason, order_id, rule_key, "
                                  "balance_after, note, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON "
                                  "CONFLICT (rule_key) DO NOTHING",
                                  {customer_id, points, reason, order_id,
                                   rule_key.empty() ? sql::Value() : sql::Value(rule_key), balance, note, now}));
  if (added.rows_affected() == 0) return false;  // this rule already credited this order
  ECRM_RETURN_IF_ERROR(
      c.Execute("UPDATE loyalty_accounts SET balance = $2 WHERE customer_id = $1", {customer_id, balance}).status());
  account.balance = balance;
  return true;
}

absl::StatusOr<int64_t> Loyalty::Redeem(sql::Connection& c, const std::string& customer_id, Account& account,
                                        int64_t points, int64_t subtotal, absl::string_view currency,
                                        const std::string& order_id, int64_t now) {
  if (points <= 0) return 0;
  const int64_t discount = points * rules_.point_value_minor;
  if (discount > subtotal) {
    return Invalid("redeem_points", absl::StrCat(points, " points are worth ", discount, " ", currency,
                                                 " minor units, more than the order's ", subtotal));
  }
  if (points > account.balance) {
    return absl::FailedPreconditionError(
        absl::StrCat("redeem_points: ", points, " requested, the balance is ", account.balance));
  }
  ECRM_RETURN_IF_ERROR(
      Credit(c, customer_id, account, -points, "redemption", order_id, absl::StrCat("redemption:", order_id), "", now)
          .status());
  return discount;
}

absl::StatusOr<int64_t> Loyalty::EarnPoints(sql::Connection& c, const v1::Order& order, Account& account, int64_t now) {
  const LoyaltyRules& rules = rules_;
  const int64_t previous_order_at = account.last_order_at;
  account.orders += 1;
  account.last_order_at = now;
  ECRM_RETURN_IF_ERROR(c.Execute("UPDATE loyalty_accounts SET orders = $2, last_order_at = $3 WHERE customer_id = $1",
                                 {order.customer_id(), account.orders, now})
                           .status());
  struct Earning {
    absl::string_view rule;
    int64_t points;
  };
  std::vector<Earning> earnings = {{"spend", order.total().amount_minor() * rules.points_per_unit / 100}};
  if (account.orders == 2) earnings.push_back({"second_purchase_bonus", rules.second_purchase_bonus});
  if (account.orders == 3) earnings.push_back({"third_purchase_bonus", rules.third_purchase_bonus});
  if (previous_order_at > 0 && now - previous_order_at >= absl::ToInt64Microseconds(rules.reactivation_after)) {
    earnings.push_back({"reactivation_bonus", rules.reactivation_bonus});
  }
  int64_t earned = 0;
  for (const Earning& e : earnings) {
    if (e.points <= 0) continue;
    ECRM_ASSIGN_OR_RETURN(bool credited, Credit(c, order.customer_id(), account, e.points, e.rule, order.id(),
                                                absl::StrCat(e.rule, ":", order.id()), "", now));
    if (credited) earned += e.points;
  }
  return earned;
}

absl::Status Loyalty::ReversePoints(sql::Connection& c, const v1::Order& order, double fraction, int64_t now) {
  if (order.customer_id().empty()) return absl::OkStatus();  // erased: the ledger is gone
  ECRM_ASSIGN_OR_RETURN(
      sql::Result sums,
      c.Execute(absl::StrCat("SELECT COALESCE(SUM(CASE WHEN reason = 'spend' THEN points ELSE 0 END), 0), "
                             "COALESCE(SUM(CASE WHEN reason IN (",
                             kEarningReasons,
                             ") AND reason <> 'spend' THEN points ELSE 0 END), 0), "
                             "COALESCE(SUM(CASE WHEN reason = 'reversal' THEN -points ELSE 0 END), 0), "
                             "COALESCE(SUM(CASE WHEN reason = 'redemption_return' THEN points ELSE 0 END), 0) "
                             "FROM loyalty_ledger WHERE order_id = $1"),
                {order.id()}));
  const sql::Row s = sums.front();
  const int64_t spend = s.Int(0), bonuses = s.Int(1), reversed = s.Int(2), returned = s.Int(3);
  const bool whole = fraction >= 1.0;
  const int64_t to_reverse = (whole ? spend + bonuses : static_cast<int64_t>(std::floor(spend * fraction))) - reversed;
  const int64_t to_return =
      (whole ? order.points_redeemed() : static_cast<int64_t>(std::floor(order.points_redeemed() * fraction))) -
      returned;
  if (to_reverse <= 0 && to_return <= 0) return absl::OkStatus();
  ECRM_ASSIGN_OR_RETURN(Account account, OpenAccount(c, order.customer_id(), now));
  // Redeemed points come back first, so they can cover the earned points being taken back.
  if (to_return > 0) {
    ECRM_RETURN_IF_ERROR(Credit(c, order.customer_id(), account, to_return, "redemption_return", order.id(),
                                absl::StrCat("redemption_return:", order.id(), ":", returned + to_return), "", now)
                             .status());
  }
  // The balance never goes negative: points already spent elsewhere are taken back only as far
  // as the balance allows; a later reversal of the same order catches up on the rest.
  const int64_t take = std::min(to_reverse, account.balance);
  if (take > 0) {
    ECRM_RETURN_IF_ERROR(Credit(c, order.customer_id(), account, -take, "reversal", order.id(),
                                absl::StrCat("reversal:", order.id(), ":", reversed + take),
                                take < to_reverse ? absl::StrCat(to_reverse - take, " points already spent") : "", now)
                             .status());
  }
  return absl::OkStatus();
}

absl::StatusOr<v1::LoyaltyAccount> Loyalty::GetLoyaltyAccount(const v1::GetLoyaltyAccountRequest& req) {
  ECRM_RETURN_IF_ERROR(ValidateCustomerId(req.customer_id()));
  ECRM_ASSIGN_OR_RETURN(sql::Lease conn, db_.Acquire());
  return LoadAccount(*conn, req);
}

absl::StatusOr<v1::LoyaltyAccount> Loyalty::LoadAccount(sql::Connection& c, const v1::GetLoyaltyAccountRequest& req) {
  const int limit = PageSize(req.page_size(), 20);
  ECRM_ASSIGN_OR_RETURN(std::optional<util::PageCursor> cursor,
                        util::DecodePageToken("GetLoyaltyAccount", req.page_token()));
  const int64_t before = cursor ? cursor->number : INT64_MAX;
  const LoyaltyRules& rules = rules_;
  v1::LoyaltyAccount out;
  out.set_customer_id(req.customer_id());
  ECRM_ASSIGN_OR_RETURN(sql::Result a,
                        c.Execute("SELECT balance FROM loyalty_accounts WHERE customer_id = $1", {req.customer_id()}));
  out.set_balance(a.empty() ? 0 : a.front().Int(0));
  ECRM_ASSIGN_OR_RETURN(
      sql::Result spend,
      c.Execute(
          "SELECT COALESCE(SUM(paid_minor), 0) FROM orders WHERE customer_id = $1 AND currency = $2 AND "
          "placed_at >= $3",
          {req.customer_id(), rules.tier_currency, NowMicros() - absl::ToInt64Microseconds(absl::Hours(24 * 365))}));
  const int64_t spent = spend.front().Int(0);
  *out.mutable_spend_12m() = MakeMoney(spent, rules.tier_currency);
  out.set_tier(spent >= rules.platinum_minor ? v1::LOYALTY_TIER_PLATINUM
               : spent >= rules.gold_minor   ? v1::LOYALTY_TIER_GOLD
               : spent >= rules.silver_minor ? v1::LOYALTY_TIER_SILVER
                                             : v1::LOYALTY_TIER_BASE);
  ECRM_ASSIGN_OR_RETURN(sql::Result ledger,
                        c.Execute("SELECT seq, points, reason, order_id, balance_after, created_at FROM "
                                  "loyalty_ledger WHERE customer_id = $1 AND seq < $2 ORDER BY seq DESC LIMIT $3",
                                  {req.customer_id(), before, limit + 1}));
  for (size_t i = 0; i < ledger.size() && static_cast<int>(i) < limit; ++i) {
    *out.add_ledger() = LedgerEntryFromRow(ledger.row(i));
  }
  if (static_cast<int>(ledger.size()) > limit)
    out.set_next_page_token(util::EncodePageToken("GetLoyaltyAccount", {ledger.row(limit - 1).Int(0), ""}));
  return out;
}

absl::StatusOr<v1::LoyaltyAccount> Loyalty::AdjustPoints(const v1::AdjustPointsRequest& req) {
  ECRM_RETURN_IF_ERROR(ValidateCustomerId(req.customer_id()));
  ECRM_RETURN_IF_ERROR(idempotency::ValidateKey(kAdjustPoints, req.idempotency_key(), /*required=*/false));
  if (req.points() == 0) return Invalid("points", "must not be zero");
  if (std::llabs(req.points()) > 1'000'000'000) return Invalid("points", "must be within ±1,000,000,000");
  if (req.reason().empty() || req.reason().size() > 200) return Invalid("reason", "is required (1–200 bytes)");
  return keys_.Run<v1::LoyaltyAccount>(
      kAdjustPoints, req.idempotency_key(), req, [&](sql::Connection& c) -> absl::StatusOr<v1::LoyaltyAccount> {
        const int64_t now = NowMicros();
        ECRM_ASSIGN_OR_RETURN(Account account, OpenAccount(c, req.customer_id(), now));
        ECRM_RETURN_IF_ERROR(Credit(c, req.customer_id(), account, req.points(), absl::StrCat("manual: ", req.reason()),
                                    "", "", req.reason(), now)
                                 .status());
        v1::GetLoyaltyAccountRequest get;
        get.set_customer_id(req.customer_id());
        return LoadAccount(c, get);
      });
}

}  // namespace ecrm::transaction

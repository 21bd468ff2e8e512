// Loyalty: accounts, the append-only points ledger, the earning and redemption rules, reversals
// on cancellation and refund, and tiers from the last 12 months' spend.
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "ecrm/idempotency/idempotency.h"
#include "ecrm/sql/sql.h"
#include "ecrm/transaction/v1/transaction.pb.h"

namespace ecrm::transaction {

// Earning and redemption rules. Points are earned on the amount paid (after the points
// discount) in any currency: points_per_unit per 100 minor units.
struct LoyaltyRules {
  int64_t signup_bonus = 100;          // when the account opens (first order or adjustment)
  int64_t points_per_unit = 1;         // per 100 minor units paid
  int64_t second_purchase_bonus = 50;  // on the customer's 2nd order
  int64_t third_purchase_bonus = 100;  // on the 3rd
  int64_t reactivation_bonus = 200;    // on an order after reactivation_after without one
  absl::Duration reactivation_after = absl::Hours(24 * 90);
  int64_t point_value_minor = 1;      // discount in minor units per point redeemed
  std::string tier_currency = "EUR";  // 12-month spend for tiers counts orders in this currency
  int64_t silver_minor = 50'000;      // 12-month spend thresholds of the tiers
  int64_t gold_minor = 200'000;
  int64_t platinum_minor = 500'000;
};

class Loyalty {
 public:
  Loyalty(sql::Database& db, idempotency::Store& keys, LoyaltyRules rules)
      : db_(db), keys_(keys), rules_(std::move(rules)) {}

  absl::StatusOr<v1::LoyaltyAccount> GetLoyaltyAccount(const v1::GetLoyaltyAccountRequest& req);
  absl::StatusOr<v1::LoyaltyAccount> AdjustPoints(const v1::AdjustPointsRequest& req);

  // What an order's transaction needs of the account; every call below runs inside the
  // caller's transaction.
  struct Account {
    int64_t balance = 0;
    int64_t orders = 0;
    int64_t last_order_at = 0;
  };
  // Locks the account, opening it (with the sign-up bonus) if there is none.
  absl::StatusOr<Account> OpenAccount(sql::Connection& c, const std::string& customer_id, int64_t now);
  // Redeems `points` against an order of `subtotal` minor units: takes them from the balance
  // and returns the discount they are worth (0 for none).
  absl::StatusOr<int64_t> Redeem(sql::Connection& c, const std::string& customer_id, Account& account, int64_t points,
                                 int64_t subtotal, absl::string_view currency, const std::string& order_id,
                                 int64_t now);
  // Credits what a newly placed order earns (spend, 2nd / 3rd purchase and reactivation
  // bonuses) and counts the order; returns the points credited.
  absl::StatusOr<int64_t> EarnPoints(sql::Connection& c, const v1::Order& order, Account& account, int64_t now);
  // Reverses `fraction` (cumulative, 0–1] of what the order earned and returns the same share of
  // what it redeemed; bonuses go back only when the whole order is reversed.
  absl::Status ReversePoints(sql::Connection& c, const v1::Order& order, double fraction, int64_t now);

 private:
  // Appends an entry and moves the balance; a rule_key already used makes it a no-op (returns
  // false). The caller ensures the balance stays >= 0 (the CHECK constraint enforces it).
  absl::StatusOr<bool> Credit(sql::Connection& c, const std::string& customer_id, Account& account, int64_t points,
                              absl::string_view reason, const std::string& order_id, const std::string& rule_key,
                              absl::string_view note, int64_t now);
  absl::StatusOr<v1::LoyaltyAccount> LoadAccount(sql::Connection& c, const v1::GetLoyaltyAccountRequest& req);

  sql::Database& db_;
  idempotency::Store& keys_;
  const LoyaltyRules rules_;
};

}  // namespace ecrm::transaction

// Carts: one open cart per customer in one currency, priced from the catalogue when read; the
// scan that raises a cart_abandoned event per idle period.
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "ecrm/outbox/outbox.h"
#include "ecrm/sql/sql.h"
#include "ecrm/transaction/v1/transaction.pb.h"
#include "metrics.h"

namespace ecrm::transaction {

class Carts {
 public:
  // abandon_after: idle time after which a cart with items is abandoned.
  Carts(sql::Database& db, outbox::Outbox& outbox, TransactionMetrics& metrics, absl::Duration abandon_after)
      : db_(db), outbox_(outbox), metrics_(metrics), abandon_after_(abandon_after) {}

  absl::StatusOr<v1::Cart> GetCart(const v1::GetCartRequest& req);
  absl::StatusOr<v1::Cart> AddCartItem(const v1::AddCartItemRequest& req);
  absl::StatusOr<v1::Cart> UpdateCartItem(const v1::UpdateCartItemRequest& req);
  absl::StatusOr<v1::Cart> RemoveCartItem(const v1::RemoveCartItemRequest& req);
  absl::StatusOr<v1::ListAbandonedCartsResponse> ListAbandonedCarts(const v1::ListAbandonedCartsRequest& req);
  // Raises one cart_abandoned event per idle period of each cart idle past abandon_after;
  // returns how many it raised. Safe to run from several replicas at once.
  absl::StatusOr<int64_t> ReportAbandonedCarts();

  // Inside the caller's transaction. `lock`: the cart's row stays locked until commit
  // (PostgreSQL; SQLite writers are serialised anyway). Every change to a cart's lines locks
  // its row first. No cart: an empty one with no id.
  absl::StatusOr<v1::Cart> Load(sql::Connection& c, const std::string& customer_id, bool lock = false);
  // Deletes the cart and its lines (checked out), inside the caller's transaction.
  absl::Status Close(sql::Connection& c, const std::string& customer_id);

 private:
  absl::StatusOr<v1::Cart> ChangeCart(const std::string& customer_id, const std::string& sku, int32_t quantity,
                                      bool add);

  sql::Database& db_;
  outbox::Outbox& outbox_;
  TransactionMetrics& metrics_;
  const absl::Duration abandon_after_;
};

}  // namespace ecrm::transaction

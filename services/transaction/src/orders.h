// Orders: checkout of a cart, orders placed offline (PlaceOrder), fulfilment, cancellation and
// refunds. Each is one database transaction that also moves stock and loyalty points and
// appends its event to the outbox.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "carts.h"
#include "clients/infostore.h"
#include "ecrm/idempotency/idempotency.h"
#include "ecrm/infostore/v1/infostore.pb.h"
#include "ecrm/outbox/outbox.h"
#include "ecrm/sql/sql.h"
#include "ecrm/transaction/v1/transaction.pb.h"
#include "loyalty.h"
#include "metrics.h"

namespace ecrm::transaction {

class Orders {
 public:
  // resolver may be null: PlaceOrder then accepts customer ids only.
  Orders(sql::Database& db, idempotency::Store& keys, Carts& carts, Loyalty& loyalty, outbox::Outbox& outbox,
         CustomerResolver* resolver, TransactionMetrics& metrics)
      : db_(db),
        keys_(keys),
        carts_(carts),
        loyalty_(loyalty),
        outbox_(outbox),
        resolver_(resolver),
        metrics_(metrics) {}

  absl::StatusOr<v1::Order> Checkout(const v1::CheckoutRequest& req);
  absl::StatusOr<v1::Order> PlaceOrder(const v1::PlaceOrderRequest& req);
  absl::StatusOr<v1::Order> GetOrder(const v1::GetOrderRequest& req);
  absl::StatusOr<v1::ListOrdersResponse> ListOrders(const v1::ListOrdersRequest& req);
  absl::StatusOr<v1::Order> FulfilOrder(const v1::FulfilOrderRequest& req);
  absl::StatusOr<v1::Order> CancelOrder(const v1::CancelOrderRequest& req);
  absl::StatusOr<v1::Order> RefundOrder(const v1::RefundOrderRequest& req);

  // Rewrites a stored order inside the caller's transaction (erasure pseudonymises orders).
  absl::Status Save(sql::Connection& c, const v1::Order& order);

 private:
  struct LineInput {
    std::string sku;
    int32_t quantity;
    std::string field;  // for error messages, e.g. "lines[2]"
  };
  struct OrderInput {
    std::string customer_id;
    std::vector<LineInput> lines;
    v1::SalesChannel channel;
    std::string location;
    int64_t redeem_points;
  };

  absl::StatusOr<v1::Order> Place(sql::Connection& c, const OrderInput& in, int64_t now);
  absl::StatusOr<v1::Order> Load(sql::Connection& c, const std::string& id, bool lock);
  static infostore::v1::Event OrderEvent(const v1::Order& order, absl::string_view type, absl::string_view event_id,
                                         const common::v1::Money& amount, int64_t at);

  sql::Database& db_;
  idempotency::Store& keys_;
  Carts& carts_;
  Loyalty& loyalty_;
  outbox::Outbox& outbox_;
  CustomerResolver* resolver_;
  TransactionMetrics& metrics_;
};

}  // namespace ecrm::transaction

// The transaction engine's domain: catalogue, carts, orders, loyalty, service inquiries and
// the outbox of events for the information store. Every write is one database transaction
// that also appends the events it causes to the outbox, so an event is never lost or doubled.
// No gRPC types here; the handlers in service.cc map requests and statuses.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "ecrm/infostore/v1/infostore.pb.h"
#include "ecrm/privacy/v1/privacy.pb.h"
#include "ecrm/server/customer_data_owner.h"
#include "ecrm/sql/sql.h"
#include "ecrm/transaction/v1/transaction.pb.h"

namespace prometheus {
class Registry;
class Histogram;
class Counter;
}  // namespace prometheus

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

struct StoreOptions {
  LoyaltyRules loyalty;
  absl::Duration abandon_after = absl::Hours(1);  // idle time after which a cart is abandoned
};

// Finds the customer a reference names (through the information store).
class CustomerResolver {
 public:
  virtual ~CustomerResolver() = default;
  virtual absl::StatusOr<std::string> Resolve(const common::v1::CustomerRef& ref) = 0;
};

// Service-level figures the domain records (built from the registry once, never on a hot path).
struct TransactionMetrics {
  explicit TransactionMetrics(prometheus::Registry& registry);
  prometheus::Histogram& inquiry_first_response;
  prometheus::Histogram& inquiry_resolution;
  prometheus::Counter& orders_placed;
  prometheus::Counter& abandoned_carts;
};

// Undelivered outbox events, oldest first.
struct OutboxEvent {
  int64_t seq = 0;
  infostore::v1::Event event;
};

class TransactionStore final : public server::CustomerDataOwner {
 public:
  // resolver may be null: PlaceOrder then accepts customer ids only.
  TransactionStore(sql::Database& db, CustomerResolver* resolver, TransactionMetrics& metrics, StoreOptions options);

  // Catalogue.
  absl::StatusOr<v1::Product> UpsertProduct(const v1::UpsertProductRequest& req);
  absl::StatusOr<v1::Product> GetProduct(const v1::GetProductRequest& req);
  absl::StatusOr<v1::ListProductsResponse> ListProducts(const v1::ListProductsRequest& req);

  // Carts.
  absl::StatusOr<v1::Cart> GetCart(const v1::GetCartRequest& req);
  absl::StatusOr<v1::Cart> AddCartItem(const v1::AddCartItemRequest& req);
  absl::StatusOr<v1::Cart> UpdateCartItem(const v1::UpdateCartItemRequest& req);
  absl::StatusOr<v1::Cart> RemoveCartItem(const v1::RemoveCartItemRequest& req);
  absl::StatusOr<v1::ListAbandonedCartsResponse> ListAbandonedCarts(const v1::ListAbandonedCartsRequest& req);
  // Raises one cart_abandoned event per idle period of each cart idle past abandon_after;
  // returns how many it raised. Safe to run from several replicas at once.
  absl::StatusOr<int64_t> ReportAbandonedCarts();

  // Orders.
  absl::StatusOr<v1::Order> Checkout(const v1::CheckoutRequest& req);
  absl::StatusOr<v1::Order> PlaceOrder(const v1::PlaceOrderRequest& req);
  absl::StatusOr<v1::Order> GetOrder(const v1::GetOrderRequest& req);
  absl::StatusOr<v1::ListOrdersResponse> ListOrders(const v1::ListOrdersRequest& req);
  absl::StatusOr<v1::Order> FulfilOrder(const v1::FulfilOrderRequest& req);
  absl::StatusOr<v1::Order> CancelOrder(const v1::CancelOrderRequest& req);
  absl::StatusOr<v1::Order> RefundOrder(const v1::RefundOrderRequest& req);
  // Deletes idempotency keys created before `before`; returns how many.
  absl::StatusOr<int64_t> PruneIdempotencyKeys(absl::Time before);

  // Loyalty.
  absl::StatusOr<v1::LoyaltyAccount> GetLoyaltyAccount(const v1::GetLoyaltyAccountRequest& req);
  absl::StatusOr<v1::LoyaltyAccount> AdjustPoints(const v1::AdjustPointsRequest& req);

  // Service inquiries.
  absl::StatusOr<v1::Inquiry> OpenInquiry(const v1::OpenInquiryRequest& req);
  absl::StatusOr<v1::Inquiry> ReplyToInquiry(const v1::ReplyToInquiryRequest& req);
  absl::StatusOr<v1::Inquiry> ResolveInquiry(const v1::ResolveInquiryRequest& req);
  absl::StatusOr<v1::ListInquiriesResponse> ListInquiries(const v1::ListInquiriesRequest& req);

  // Outbox, for the relay.
  absl::StatusOr<std::vector<OutboxEvent>> PendingEvents(int limit);
  absl::Status MarkDelivered(const std::vector<int64_t>& seqs);
  // Parks an event the information store refused for good (kept, no longer relayed).
  absl::Status MarkFailed(int64_t seq, absl::string_view error);
  absl::StatusOr<int64_t> PendingCount();
  // Called after a commit that added outbox events.
  void SetOutboxListener(std::function<void()> listener) { outbox_listener_ = std::move(listener); }

  // Privacy.
  absl::StatusOr<std::string> ExportCustomerData(const privacy::v1::ExportCustomerDataRequest& req) override;
  absl::StatusOr<privacy::v1::EraseCustomerDataResponse> EraseCustomerData(
      const privacy::v1::EraseCustomerDataRequest& req) override;

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

  // Runs fn in a transaction under an idempotency key (Stripe's rules): a stored response for
  // the key replays byte for byte, a stored response for another request is refused, and
  // otherwise fn's response is stored with the key in fn's transaction. An empty key (where
  // the key is optional) just runs fn. customer_id names whose data the response holds, so that
  // erasure finds the record; it is read after fn returns (fn may set it).
  absl::StatusOr<std::string> Idempotent(absl::string_view operation, const std::string& key,
                                         const google::protobuf::Message& request,
                                         const std::function<absl::StatusOr<std::string>(sql::Connection&)>& fn,
                                         const std::string& customer_id);
  template <typename Resp>
  absl::StatusOr<Resp> IdempotentMessage(absl::string_view operation, const std::string& key,
                                         const google::protobuf::Message& request,
                                         const std::function<absl::StatusOr<Resp>(sql::Connection&)>& fn);

  // `lock`: the cart's row stays locked until commit (PostgreSQL; SQLite writers are serialised
  // anyway). Every change to a cart's lines locks its row first.
  absl::StatusOr<v1::Cart> LoadCart(sql::Connection& c, const std::string& customer_id, bool lock = false);
  absl::StatusOr<v1::Cart> ChangeCart(const std::string& customer_id, const std::string& sku, int32_t quantity,
                                      bool add);
  absl::StatusOr<v1::Order> Place(sql::Connection& c, const OrderInput& in, int64_t now);
  absl::StatusOr<v1::Order> LoadOrder(sql::Connection& c, const std::string& id, bool lock);
  absl::Status SaveOrder(sql::Connection& c, const v1::Order& order);

  // Loyalty (inside the caller's transaction).
  struct Account {
    int64_t balance = 0;
    int64_t orders = 0;
    int64_t last_order_at = 0;
  };
  // Locks the account, opening it (with the sign-up bonus) if there is none.
  absl::StatusOr<Account> OpenAccount(sql::Connection& c, const std::string& customer_id, int64_t now);
  // Appends an entry and moves the balance; a rule_key already used makes it a no-op (returns
  // false). The caller ensures the balance stays >= 0 (the CHECK constraint enforces it).
  absl::StatusOr<bool> Credit(sql::Connection& c, const std::string& customer_id, Account& account, int64_t points,
                              absl::string_view reason, const std::string& order_id, const std::string& rule_key,
                              absl::string_view note, int64_t now);
  absl::StatusOr<v1::LoyaltyAccount> LoadAccount(sql::Connection& c, const v1::GetLoyaltyAccountRequest& req);
  absl::StatusOr<int64_t> EarnPoints(sql::Connection& c, const v1::Order& order, Account& account, int64_t now);
  // Reverses `fraction` (cumulative, 0–1] of what the order earned and returns the same share of
  // what it redeemed; bonuses go back only when the whole order is reversed.
  absl::Status ReversePoints(sql::Connection& c, const v1::Order& order, double fraction, int64_t now);

  absl::Status AddEvent(sql::Connection& c, infostore::v1::Event event);
  infostore::v1::Event OrderEvent(const v1::Order& order, absl::string_view type, absl::string_view event_id,
                                  const common::v1::Money& amount, int64_t at) const;
  void Notify() const {
    if (outbox_listener_) outbox_listener_();
  }

  absl::StatusOr<v1::Inquiry> ChangeInquiry(const std::string& id,
                                            const std::function<absl::Status(sql::Connection&, v1::Inquiry&)>& fn);

  sql::Database& db_;
  CustomerResolver* resolver_;
  TransactionMetrics& metrics_;
  const StoreOptions options_;
  std::function<void()> outbox_listener_;
};

}  // namespace ecrm::transaction

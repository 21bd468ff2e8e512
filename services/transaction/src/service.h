// The gRPC handlers of the transaction engine: each RPC runs its domain method on the worker
// pool (server::Offload, which also admits it to the drain and carries its deadline) and maps
// absl::Status to grpc::Status. No domain logic here.
#pragma once

#include "carts.h"
#include "catalogue.h"
#include "ecrm/server/executor.h"
#include "ecrm/transaction/v1/transaction.grpc.pb.h"
#include "inquiries.h"
#include "loyalty.h"
#include "orders.h"

namespace ecrm::transaction {

class TransactionService final : public v1::Transaction::CallbackService {
 public:
  TransactionService(Catalogue& catalogue, Carts& carts, Orders& orders, Loyalty& loyalty, Inquiries& inquiries,
                     server::Executor& executor)
      : catalogue_(catalogue),
        carts_(carts),
        orders_(orders),
        loyalty_(loyalty),
        inquiries_(inquiries),
        executor_(executor) {}

  grpc::ServerUnaryReactor* UpsertProduct(grpc::CallbackServerContext* ctx, const v1::UpsertProductRequest* req,
                                          v1::Product* resp) override;
  grpc::ServerUnaryReactor* GetProduct(grpc::CallbackServerContext* ctx, const v1::GetProductRequest* req,
                                       v1::Product* resp) override;
  grpc::ServerUnaryReactor* ListProducts(grpc::CallbackServerContext* ctx, const v1::ListProductsRequest* req,
                                         v1::ListProductsResponse* resp) override;
  grpc::ServerUnaryReactor* GetCart(grpc::CallbackServerContext* ctx, const v1::GetCartRequest* req,
                                    v1::Cart* resp) override;
  grpc::ServerUnaryReactor* AddCartItem(grpc::CallbackServerContext* ctx, const v1::AddCartItemRequest* req,
                                        v1::Cart* resp) override;
  grpc::ServerUnaryReactor* UpdateCartItem(grpc::CallbackServerContext* ctx, const v1::UpdateCartItemRequest* req,
                                           v1::Cart* resp) override;
  grpc::ServerUnaryReactor* RemoveCartItem(grpc::CallbackServerContext* ctx, const v1::RemoveCartItemRequest* req,
                                           v1::Cart* resp) override;
  grpc::ServerUnaryReactor* Checkout(grpc::CallbackServerContext* ctx, const v1::CheckoutRequest* req,
                                     v1::Order* resp) override;
  grpc::ServerUnaryReactor* PlaceOrder(grpc::CallbackServerContext* ctx, const v1::PlaceOrderRequest* req,
                                       v1::Order* resp) override;
  grpc::ServerUnaryReactor* GetOrder(grpc::CallbackServerContext* ctx, const v1::GetOrderRequest* req,
                                     v1::Order* resp) override;
  grpc::ServerUnaryReactor* ListOrders(grpc::CallbackServerContext* ctx, const v1::ListOrdersRequest* req,
                                       v1::ListOrdersResponse* resp) override;
  grpc::ServerUnaryReactor* FulfilOrder(grpc::CallbackServerContext* ctx, const v1::FulfilOrderRequest* req,
                                        v1::Order* resp) override;
  grpc::ServerUnaryReactor* CancelOrder(grpc::CallbackServerContext* ctx, const v1::CancelOrderRequest* req,
                                        v1::Order* resp) override;
  grpc::ServerUnaryReactor* RefundOrder(grpc::CallbackServerContext* ctx, const v1::RefundOrderRequest* req,
                                        v1::Order* resp) override;
  grpc::ServerUnaryReactor* GetLoyaltyAccount(grpc::CallbackServerContext* ctx, const v1::GetLoyaltyAccountRequest* req,
                                              v1::LoyaltyAccount* resp) override;
  grpc::ServerUnaryReactor* AdjustPoints(grpc::CallbackServerContext* ctx, const v1::AdjustPointsRequest* req,
                                         v1::LoyaltyAccount* resp) override;
  grpc::ServerUnaryReactor* ListAbandonedCarts(grpc::CallbackServerContext* ctx,
                                               const v1::ListAbandonedCartsRequest* req,
                                               v1::ListAbandonedCartsResponse* resp) override;
  grpc::ServerUnaryReactor* OpenInquiry(grpc::CallbackServerContext* ctx, const v1::OpenInquiryRequest* req,
                                        v1::Inquiry* resp) override;
  grpc::ServerUnaryReactor* ReplyToInquiry(grpc::CallbackServerContext* ctx, const v1::ReplyToInquiryRequest* req,
                                           v1::Inquiry* resp) override;
  grpc::ServerUnaryReactor* ResolveInquiry(grpc::CallbackServerContext* ctx, const v1::ResolveInquiryRequest* req,
                                           v1::Inquiry* resp) override;
  grpc::ServerUnaryReactor* ListInquiries(grpc::CallbackServerContext* ctx, const v1::ListInquiriesRequest* req,
                                          v1::ListInquiriesResponse* resp) override;

 private:
  Catalogue& catalogue_;
  Carts& carts_;
  Orders& orders_;
  Loyalty& loyalty_;
  Inquiries& inquiries_;
  server::Executor& executor_;
};

}  // namespace ecrm::transaction

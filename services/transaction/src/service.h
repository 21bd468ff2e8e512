// The thin gRPC layer of the transaction engine: each RPC runs its TransactionStore method on
// the worker pool and maps absl::Status to grpc::Status. No domain logic here.
#pragma once

#include "ecrm/privacy/v1/privacy.grpc.pb.h"
#include "ecrm/server/executor.h"
#include "ecrm/server/offload.h"
#include "ecrm/transaction/v1/transaction.grpc.pb.h"
#include "store.h"

namespace ecrm::transaction {

class TransactionService final : public v1::Transaction::CallbackService {
 public:
  TransactionService(TransactionStore& store, server::Executor& executor) : store_(store), executor_(executor) {}

  grpc::ServerUnaryReactor* UpsertProduct(grpc::CallbackServerContext* ctx, const v1::UpsertProductRequest* req,
                                          v1::Product* resp) override {
    return Serve(ctx, req, resp, &TransactionStore::UpsertProduct);
  }
  grpc::ServerUnaryReactor* GetProduct(grpc::CallbackServerContext* ctx, const v1::GetProductRequest* req,
                                       v1::Product* resp) override {
    return Serve(ctx, req, resp, &TransactionStore::GetProduct);
  }
  grpc::ServerUnaryReactor* ListProducts(grpc::CallbackServerContext* ctx, const v1::ListProductsRequest* req,
                                         v1::ListProductsResponse* resp) override {
    return Serve(ctx, req, resp, &TransactionStore::ListProducts);
  }
  grpc::ServerUnaryReactor* GetCart(grpc::CallbackServerContext* ctx, const v1::GetCartRequest* req,
                                    v1::Cart* resp) override {
    return Serve(ctx, req, resp, &TransactionStore::GetCart);
  }
  grpc::ServerUnaryReactor* AddCartItem(grpc::CallbackServerContext* ctx, const v1::AddCartItemRequest* req,
                                        v1::Cart* resp) override {
    return Serve(ctx, req, resp, &TransactionStore::AddCartItem);
  }
  grpc::ServerUnaryReactor* UpdateCartItem(grpc::CallbackServerContext* ctx, const v1::UpdateCartItemRequest* req,
                                           v1::Cart* resp) override {
    return Serve(ctx, req, resp, &TransactionStore::UpdateCartItem);
  }
  grpc::ServerUnaryReactor* RemoveCartItem(grpc::CallbackServerContext* ctx, const v1::RemoveCartItemRequest* req,
                                           v1::Cart* resp) override {
    return Serve(ctx, req, resp, &TransactionStore::RemoveCartItem);
  }
  grpc::ServerUnaryReactor* Checkout(grpc::CallbackServerContext* ctx, const v1::CheckoutRequest* req,
                                     v1::Order* resp) override {
    return Serve(ctx, req, resp, &TransactionStore::Checkout);
  }
  grpc::ServerUnaryReactor* PlaceOrder(grpc::CallbackServerContext* ctx, const v1::PlaceOrderRequest* req,
                                       v1::Order* resp) override {
    return Serve(ctx, req, resp, &TransactionStore::PlaceOrder);
  }
  grpc::ServerUnaryReactor* GetOrder(grpc::CallbackServerContext* ctx, const v1::GetOrderRequest* req,
                                     v1::Order* resp) override {
    return Serve(ctx, req, resp, &TransactionStore::GetOrder);
  }
  grpc::ServerUnaryReactor* ListOrders(grpc::CallbackServerContext* ctx, const v1::ListOrdersRequest* req,
                                       v1::ListOrdersResponse* resp) override {
    return Serve(ctx, req, resp, &TransactionStore::ListOrders);
  }
  grpc::ServerUnaryReactor* FulfilOrder(grpc::CallbackServerContext* ctx, const v1::FulfilOrderRequest* req,
                                        v1::Order* resp) override {
    return Serve(ctx, req, resp, &TransactionStore::FulfilOrder);
  }
  grpc::ServerUnaryReactor* CancelOrder(grpc::CallbackServerContext* ctx, const v1::CancelOrderRequest* req,
                                        v1::Order* resp) override {
    return Serve(ctx, req, resp, &TransactionStore::CancelOrder);
  }
  grpc::ServerUnaryReactor* RefundOrder(grpc::CallbackServerContext* ctx, const v1::RefundOrderRequest* req,
                                        v1::Order* resp) override {
    return Serve(ctx, req, resp, &TransactionStore::RefundOrder);
  }
  grpc::ServerUnaryReactor* GetLoyaltyAccount(grpc::CallbackServerContext* ctx, const v1::GetLoyaltyAccountRequest* req,
                                              v1::LoyaltyAccount* resp) override {
    return Serve(ctx, req, resp, &TransactionStore::GetLoyaltyAccount);
  }
  grpc::ServerUnaryReactor* AdjustPoints(grpc::CallbackServerContext* ctx, const v1::AdjustPointsRequest* req,
                                         v1::LoyaltyAccount* resp) override {
    return Serve(ctx, req, resp, &TransactionStore::AdjustPoints);
  }
  grpc::ServerUnaryReactor* ListAbandonedCarts(grpc::CallbackServerContext* ctx,
                                               const v1::ListAbandonedCartsRequest* req,
                                               v1::ListAbandonedCartsResponse* resp) override {
    return Serve(ctx, req, resp, &TransactionStore::ListAbandonedCarts);
  }
  grpc::ServerUnaryReactor* OpenInquiry(grpc::CallbackServerContext* ctx, const v1::OpenInquiryRequest* req,
                                        v1::Inquiry* resp) override {
    return Serve(ctx, req, resp, &TransactionStore::OpenInquiry);
  }
  grpc::ServerUnaryReactor* ReplyToInquiry(grpc::CallbackServerContext* ctx, const v1::ReplyToInquiryRequest* req,
                                           v1::Inquiry* resp) override {
    return Serve(ctx, req, resp, &TransactionStore::ReplyToInquiry);
  }
  grpc::ServerUnaryReactor* ResolveInquiry(grpc::CallbackServerContext* ctx, const v1::ResolveInquiryRequest* req,
                                           v1::Inquiry* resp) override {
    return Serve(ctx, req, resp, &TransactionStore::ResolveInquiry);
  }
  grpc::ServerUnaryReactor* ListInquiries(grpc::CallbackServerContext* ctx, const v1::ListInquiriesRequest* req,
                                          v1::ListInquiriesResponse* resp) override {
    return Serve(ctx, req, resp, &TransactionStore::ListInquiries);
  }

 private:
  template <typename Req, typename Resp, typename Method>
  grpc::ServerUnaryReactor* Serve(grpc::CallbackServerContext* ctx, const Req* req, Resp* resp, Method method) {
    return server::Offload(executor_, ctx, resp, [this, req, method] { return (store_.*method)(*req); });
  }

  TransactionStore& store_;
  server::Executor& executor_;
};

}  // namespace ecrm::transaction

#include "service.h"

#include "ecrm/server/offload.h"

namespace ecrm::transaction {

grpc::ServerUnaryReactor* TransactionService::UpsertProduct(grpc::CallbackServerContext* ctx,
                                                            const v1::UpsertProductRequest* req, v1::Product* resp) {
  return server::Offload(executor_, ctx, resp, [this, req] { return catalogue_.UpsertProduct(*req); });
}

grpc::ServerUnaryReactor* TransactionService::GetProduct(grpc::CallbackServerContext* ctx,
                                                         const v1::GetProductRequest* req, v1::Product* resp) {
  return server::Offload(executor_, ctx, resp, [this, req] { return catalogue_.GetProduct(*req); });
}

grpc::ServerUnaryReactor* TransactionService::ListProducts(grpc::CallbackServerContext* ctx,
                                                           const v1::ListProductsRequest* req,
                                                           v1::ListProductsResponse* resp) {
  return server::Offload(executor_, ctx, resp, [this, req] { return catalogue_.ListProducts(*req); });
}

grpc::ServerUnaryReactor* TransactionService::GetCart(grpc::CallbackServerContext* ctx, const v1::GetCartRequest* req,
                                                      v1::Cart* resp) {
  return server::Offload(executor_, ctx, resp, [this, req] { return carts_.GetCart(*req); });
}

grpc::ServerUnaryReactor* TransactionService::AddCartItem(grpc::CallbackServerContext* ctx,
                                                          const v1::AddCartItemRequest* req, v1::Cart* resp) {
  return server::Offload(executor_, ctx, resp, [this, req] { return carts_.AddCartItem(*req); });
}

grpc::ServerUnaryReactor* TransactionService::UpdateCartItem(grpc::CallbackServerContext* ctx,
                                                             const v1::UpdateCartItemRequest* req, v1::Cart* resp) {
  return server::Offload(executor_, ctx, resp, [this, req] { return carts_.UpdateCartItem(*req); });
}

grpc::ServerUnaryReactor* TransactionService::RemoveCartItem(grpc::CallbackServerContext* ctx,
                                                             const v1::RemoveCartItemRequest* req, v1::Cart* resp) {
  return server::Offload(executor_, ctx, resp, [this, req] { return carts_.RemoveCartItem(*req); });
}

grpc::ServerUnaryReactor* TransactionService::Checkout(grpc::CallbackServerContext* ctx, const v1::CheckoutRequest* req,
                                                       v1::Order* resp) {
  return server::Offload(executor_, ctx, resp, [this, req] { return orders_.Checkout(*req); });
}

grpc::ServerUnaryReactor* TransactionService::PlaceOrder(grpc::CallbackServerContext* ctx,
                                                         const v1::PlaceOrderRequest* req, v1::Order* resp) {
  return server::Offload(executor_, ctx, resp, [this, req] { return orders_.PlaceOrder(*req); });
}

grpc::ServerUnaryReactor* TransactionService::GetOrder(grpc::CallbackServerContext* ctx, const v1::GetOrderRequest* req,
                                                       v1::Order* resp) {
  return server::Offload(executor_, ctx, resp, [this, req] { return orders_.GetOrder(*req); });
}

grpc::ServerUnaryReactor* TransactionService::ListOrders(grpc::CallbackServerContext* ctx,
                                                         const v1::ListOrdersRequest* req,
                                                         v1::ListOrdersResponse* resp) {
  return server::Offload(executor_, ctx, resp, [this, req] { return orders_.ListOrders(*req); });
}

grpc::ServerUnaryReactor* TransactionService::FulfilOrder(grpc::CallbackServerContext* ctx,
                                                          const v1::FulfilOrderRequest* req, v1::Order* resp) {
  return server::Offload(executor_, ctx, resp, [this, req] { return orders_.FulfilOrder(*req); });
}

grpc::ServerUnaryReactor* TransactionService::CancelOrder(grpc::CallbackServerContext* ctx,
                                                          const v1::CancelOrderRequest* req, v1::Order* resp) {
  return server::Offload(executor_, ctx, resp, [this, req] { return orders_.CancelOrder(*req); });
}

grpc::ServerUnaryReactor* TransactionService::RefundOrder(grpc::CallbackServerContext* ctx,
                                                          const v1::RefundOrderRequest* req, v1::Order* resp) {
  return server::Offload(executor_, ctx, resp, [this, req] { return orders_.RefundOrder(*req); });
}

grpc::ServerUnaryReactor* TransactionService::GetLoyaltyAccount(grpc::CallbackServerContext* ctx,
                                                                const v1::GetLoyaltyAccountRequest* req,
                                                                v1::LoyaltyAccount* resp) {
  return server::Offload(executor_, ctx, resp, [this, req] { return loyalty_.GetLoyaltyAccount(*req); });
}

grpc::ServerUnaryReactor* TransactionService::AdjustPoints(grpc::CallbackServerContext* ctx,
                                                           const v1::AdjustPointsRequest* req,
                                                           v1::LoyaltyAccount* resp) {
  return server::Offload(executor_, ctx, resp, [this, req] { return loyalty_.AdjustPoints(*req); });
}

grpc::ServerUnaryReactor* TransactionService::ListAbandonedCarts(grpc::CallbackServerContext* ctx,
                                                                 const v1::ListAbandonedCartsRequest* req,
                                                                 v1::ListAbandonedCartsResponse* resp) {
  return server::Offload(executor_, ctx, resp, [this, req] { return carts_.ListAbandonedCarts(*req); });
}

grpc::ServerUnaryReactor* TransactionService::OpenInquiry(grpc::CallbackServerContext* ctx,
                                                          const v1::OpenInquiryRequest* req, v1::Inquiry* resp) {
  return server::Offload(executor_, ctx, resp, [this, req] { return inquiries_.OpenInquiry(*req); });
}

grpc::ServerUnaryReactor* TransactionService::ReplyToInquiry(grpc::CallbackServerContext* ctx,
                                                             const v1::ReplyToInquiryRequest* req, v1::Inquiry* resp) {
  return server::Offload(executor_, ctx, resp, [this, req] { return inquiries_.ReplyToInquiry(*req); });
}

grpc::ServerUnaryReactor* TransactionService::ResolveInquiry(grpc::CallbackServerContext* ctx,
                                                             const v1::ResolveInquiryRequest* req, v1::Inquiry* resp) {
  return server::Offload(executor_, ctx, resp, [this, req] { return inquiries_.ResolveInquiry(*req); });
}

grpc::ServerUnaryReactor* TransactionService::ListInquiries(grpc::CallbackServerContext* ctx,
                                                            const v1::ListInquiriesRequest* req,
                                                            v1::ListInquiriesResponse* resp) {
  return server::Offload(executor_, ctx, resp, [this, req] { return inquiries_.ListInquiries(*req); });
}

}  // namespace ecrm::transaction

#include "service.h"

#include <grpcpp/support/byte_buffer.h>
#include <grpcpp/support/proto_buffer_reader.h>

#include "absl/strings/str_cat.h"
#include "ecrm/server/offload.h"

namespace ecrm::personalisation {

using server::Offload;

grpc::ServerUnaryReactor* PersonalisationService::CreateTemplate(grpc::CallbackServerContext* ctx,
                                                                 const v1::CreateTemplateRequest* req,
                                                                 v1::Template* resp) {
  return Offload(executor_, ctx, resp, [this, req] { return templates_.Create(req->template_()); });
}

grpc::ServerUnaryReactor* PersonalisationService::GetTemplate(grpc::CallbackServerContext* ctx,
                                                              const v1::GetTemplateRequest* req, v1::Template* resp) {
  return Offload(executor_, ctx, resp, [this, req] { return templates_.Get(req->id(), req->version()); });
}

grpc::ServerUnaryReactor* PersonalisationService::ListTemplates(grpc::CallbackServerContext* ctx,
                                                                const v1::ListTemplatesRequest* req,
                                                                v1::ListTemplatesResponse* resp) {
  return Offload(executor_, ctx, resp, [this, req] { return templates_.List(*req); });
}

grpc::ServerUnaryReactor* PersonalisationService::UpdateTemplate(grpc::CallbackServerContext* ctx,
                                                                 const v1::UpdateTemplateRequest* req,
                                                                 v1::Template* resp) {
  return Offload(executor_, ctx, resp, [this, req] { return templates_.Update(*req); });
}

grpc::ServerUnaryReactor* PersonalisationService::RenderMessage(grpc::CallbackServerContext* ctx,
                                                                const v1::RenderMessageRequest* req,
                                                                v1::RenderedMessage* resp) {
  return Offload(executor_, ctx, resp, [this, req] { return messages_.Render(*req); });
}

grpc::ServerUnaryReactor* PersonalisationService::BatchRender(grpc::CallbackServerContext* ctx,
                                                              const v1::BatchRenderRequest* req,
                                                              v1::BatchRenderResponse* resp) {
  return Offload(executor_, ctx, resp, [this, req] { return messages_.BatchRender(*req); });
}

grpc::ServerUnaryReactor* PersonalisationService::DeleteTemplate(grpc::CallbackServerContext* ctx,
                                                                 const v1::DeleteTemplateRequest* req,
                                                                 v1::DeleteTemplateResponse*) {
  return Offload(executor_, ctx, [this, req] { return templates_.Delete(req->id()); });
}

grpc::ServerUnaryReactor* PersonalisationService::CreateOffer(grpc::CallbackServerContext* ctx,
                                                              const v1::CreateOfferRequest* req, v1::Offer* resp) {
  return Offload(executor_, ctx, resp, [this, req] { return offers_.Create(req->offer()); });
}

grpc::ServerUnaryReactor* PersonalisationService::GetOffer(grpc::CallbackServerContext* ctx,
                                                           const v1::GetOfferRequest* req, v1::Offer* resp) {
  return Offload(executor_, ctx, resp, [this, req] { return offers_.Get(req->id()); });
}

grpc::ServerUnaryReactor* PersonalisationService::ListOffers(grpc::CallbackServerContext* ctx,
                                                             const v1::ListOffersRequest* req,
                                                             v1::ListOffersResponse* resp) {
  return Offload(executor_, ctx, resp, [this, req] { return offers_.List(*req); });
}

grpc::ServerUnaryReactor* PersonalisationService::UpdateOffer(grpc::CallbackServerContext* ctx,
                                                              const v1::UpdateOfferRequest* req, v1::Offer* resp) {
  return Offload(executor_, ctx, resp, [this, req] { return offers_.Update(*req); });
}

grpc::ServerUnaryReactor* PersonalisationService::DeleteOffer(grpc::CallbackServerContext* ctx,
                                                              const v1::DeleteOfferRequest* req,
                                                              v1::DeleteOfferResponse*) {
  return Offload(executor_, ctx, [this, req] { return offers_.Delete(req->id()); });
}

grpc::ServerUnaryReactor* PersonalisationService::DecideOffers(grpc::CallbackServerContext* ctx,
                                                               const grpc::ByteBuffer* req, grpc::ByteBuffer* resp) {
  return Offload(executor_, ctx, [this, req, resp]() -> absl::Status {
    v1::DecideOffersRequest request;
    grpc::ByteBuffer copy(*req);  // Deserialize consumes its buffer
    if (!grpc::SerializationTraits<v1::DecideOffersRequest>::Deserialize(&copy, &request).ok()) {
      return absl::InvalidArgumentError("the request is not a DecideOffersRequest");
    }
    absl::StatusOr<Offers::Decision> decision = offers_.Choose(request);
    if (!decision.ok()) return decision.status();
    auto* wire = new std::string(DecisionWire(*decision));
    grpc::Slice slice(
        wire->data(), wire->size(), [](void* s) { delete static_cast<std::string*>(s); }, wire);
    *resp = grpc::ByteBuffer(&slice, 1);
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* PersonalisationService::Recommend(grpc::CallbackServerContext* ctx,
                                                            const v1::RecommendRequest* req,
                                                            v1::RecommendResponse* resp) {
  // In memory, under a lock the feed holds for a few lines at a time: answered right here.
  return server::AnswerNow(executor_, ctx, resp, [this, req] { return recommendations_.Recommend(*req); });
}

grpc::ServerUnaryReactor* PersonalisationService::SimilarProducts(grpc::CallbackServerContext* ctx,
                                                                  const v1::SimilarProductsRequest* req,
                                                                  v1::SimilarProductsResponse* resp) {
  return server::AnswerNow(executor_, ctx, resp, [this, req] { return recommendations_.SimilarProducts(*req); });
}

grpc::ServerUnaryReactor* PersonalisationService::GetModelInfo(grpc::CallbackServerContext* ctx,
                                                               const v1::GetModelInfoRequest*, v1::ModelInfo* resp) {
  return Offload(executor_, ctx, resp, [this]() -> absl::StatusOr<v1::ModelInfo> { return recommendations_.Info(); });
}

}  // namespace ecrm::personalisation

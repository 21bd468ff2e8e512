// The thin gRPC layer of personalisation: maps requests to the Templates and Messages domain
// classes on the worker pool and absl::Status to grpc::Status. No domain logic here.
#pragma once

#include "ecrm/personalisation/v1/personalisation.grpc.pb.h"
#include "ecrm/server/executor.h"
#include "messages.h"
#include "offers.h"
#include "recommendations.h"
#include "templates.h"

namespace ecrm::personalisation {

// DecideOffers is served raw: its response is written to the wire from the decision as made
// (Offers::Decision, DecisionWire), not built as a message first.
class PersonalisationService final
    : public v1::Personalisation::WithRawCallbackMethod_DecideOffers<v1::Personalisation::CallbackService> {
 public:
  PersonalisationService(Templates& templates, Messages& messages, Offers& offers, server::Executor& executor,
                         const Recommendations& recommendations)
      : templates_(templates),
        messages_(messages),
        offers_(offers),
        executor_(executor),
        recommendations_(recommendations) {}

  grpc::ServerUnaryReactor* CreateTemplate(grpc::CallbackServerContext* ctx, const v1::CreateTemplateRequest* req,
                                           v1::Template* resp) override;
  grpc::ServerUnaryReactor* GetTemplate(grpc::CallbackServerContext* ctx, const v1::GetTemplateRequest* req,
                                        v1::Template* resp) override;
  grpc::ServerUnaryReactor* ListTemplates(grpc::CallbackServerContext* ctx, const v1::ListTemplatesRequest* req,
                                          v1::ListTemplatesResponse* resp) override;
  grpc::ServerUnaryReactor* UpdateTemplate(grpc::CallbackServerContext* ctx, const v1::UpdateTemplateRequest* req,
                                           v1::Template* resp) override;
  grpc::ServerUnaryReactor* RenderMessage(grpc::CallbackServerContext* ctx, const v1::RenderMessageRequest* req,
                                          v1::RenderedMessage* resp) override;
  grpc::ServerUnaryReactor* BatchRender(grpc::CallbackServerContext* ctx, const v1::BatchRenderRequest* req,
                                        v1::BatchRenderResponse* resp) override;
  grpc::ServerUnaryReactor* DeleteTemplate(grpc::CallbackServerContext* ctx, const v1::DeleteTemplateRequest* req,
                                           v1::DeleteTemplateResponse* resp) override;
  grpc::ServerUnaryReactor* CreateOffer(grpc::CallbackServerContext* ctx, const v1::CreateOfferRequest* req,
                                        v1::Offer* resp) override;
  grpc::ServerUnaryReactor* GetOffer(grpc::CallbackServerContext* ctx, const v1::GetOfferRequest* req,
                                     v1::Offer* resp) override;
  grpc::ServerUnaryReactor* ListOffers(grpc::CallbackServerContext* ctx, const v1::ListOffersRequest* req,
                                       v1::ListOffersResponse* resp) override;
  grpc::ServerUnaryReactor* UpdateOffer(grpc::CallbackServerContext* ctx, const v1::UpdateOfferRequest* req,
                                        v1::Offer* resp) override;
  grpc::ServerUnaryReactor* DeleteOffer(grpc::CallbackServerContext* ctx, const v1::DeleteOfferRequest* req,
                                        v1::DeleteOfferResponse* resp) override;
  grpc::ServerUnaryReactor* DecideOffers(grpc::CallbackServerContext* ctx, const grpc::ByteBuffer* req,
                                         grpc::ByteBuffer* resp) override;
  grpc::ServerUnaryReactor* Recommend(grpc::CallbackServerContext* ctx, const v1::RecommendRequest* req,
                                      v1::RecommendResponse* resp) override;
  grpc::ServerUnaryReactor* SimilarProducts(grpc::CallbackServerContext* ctx, const v1::SimilarProductsRequest* req,
                                            v1::SimilarProductsResponse* resp) override;
  grpc::ServerUnaryReactor* GetModelInfo(grpc::CallbackServerContext* ctx, const v1::GetModelInfoRequest* req,
                                         v1::ModelInfo* resp) override;

 private:
  Templates& templates_;
  Messages& messages_;
  Offers& offers_;
  server::Executor& executor_;
  const Recommendations& recommendations_;
};

}  // namespace ecrm::personalisation

// RenderMessage and BatchRender: a template rendered for customers, with their profile,
// attributes, preferences and behaviour (customers.h), the message's offers and
// recommendations and the caller's vars (context.h). HTML bodies are HTML-escaped, subjects,
// text bodies, SMS and push are not. A variable with no value renders empty and is listed in
// the message's missing_variables; in strict mode it fails the customer (FAILED_PRECONDITION
// naming it). In a batch, customers that fail are listed with why, the others rendered.
// A template that reads {{recommendations}} rendered for a request that gives none gets each
// customer's own from the model (SetRecommendations), 10 of them.
// A request with an offer_id renders that offer: with its own template unless the request names
// one, the offer as {{offer}} and as the one entry of {{#offers}}, only for customers eligible
// for it now (Offers::NotEligible); the others are refused (RenderMessage) or listed in
// not_eligible (BatchRender).
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "context.h"
#include "customers.h"
#include "ecrm/personalisation/v1/personalisation.pb.h"
#include "metrics.h"
#include "recommendations.h"
#include "templates.h"

namespace ecrm::personalisation {

class Offers;
struct CompiledOffer;

class Messages {
 public:
  Messages(Templates& templates, Customers& customers, PersonalisationMetrics& metrics)
      : templates_(templates), customers_(customers), metrics_(metrics) {}

  // With offers set, RenderMessage and BatchRender given a placement and no offers decide them
  // for each customer (DecideOffers for the customer, the placement and the template's channel,
  // 3 at most, recording no impression). A customer whose offers cannot be decided (segmentation
  // down) fails (in a batch: listed in failed).
  void set_offers(Offers* offers) { offers_ = offers; }

  absl::StatusOr<v1::RenderedMessage> Render(const v1::RenderMessageRequest& req);
  absl::StatusOr<v1::BatchRenderResponse> BatchRender(const v1::BatchRenderRequest& req);
  // Where recommendations come from when a request gives none (null: nowhere; set once, before
  // serving).
  void SetRecommendations(const Recommendations* recommendations) { recommendations_ = recommendations; }

  // One parsed template for one customer, `shared` being SharedContext(inputs, the template's
  // locale, the customer's time zone): no I/O (the benchmark's unit of work).
  static absl::StatusOr<v1::RenderedMessage> RenderFor(const CompiledTemplate& t,
                                                       const infostore::v1::Customer& customer,
                                                       const mustache::Value& shared, const MessageInputs& inputs,
                                                       bool strict);

 private:
  // The request's offer (null when it names none) and the template to render: the request's, or
  // the offer's own when the request names none.
  struct Subject {
    std::shared_ptr<const CompiledOffer> offer;
    std::string template_id;
  };
  absl::StatusOr<Subject> SubjectOf(const std::string& template_id, const std::string& offer_id, bool gives_offers,
                                    const std::string& placement);

  Templates& templates_;
  Customers& customers_;
  PersonalisationMetrics& metrics_;
  const Recommendations* recommendations_ = nullptr;
  Offers* offers_ = nullptr;
};

}  // namespace ecrm::personalisation

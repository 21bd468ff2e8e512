#include "messages.h"

#include <optional>
#include <thread>
#include "offers.h"

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "ecrm/status/macros.h"
#include "ecrm/util/util.h"

namespace ecrm::personalisation {
namespace {

constexpr int kMaxBatch = 1000;
// Customers per thread at least, when a batch is split over the cores.
constexpr size_t kMinPerThread = 100;

void AddMissing(const std::vector<std::string>& found, v1::RenderedMessage& out) {
  for (const std::string& name : found) {
    if (std::find(out.missing_variables().begin(), out.missing_variables().end(), name) ==
        out.missing_variables().end()) {
      out.add_missing_variables(name);
    }
  }
}

// Whether the template reads the recommendations (any tag naming them, in any field).
bool ReadsRecommendations(const CompiledTemplate& t) {
  for (const std::string* field : {&t.proto.subject(), &t.proto.text_body(), &t.proto.html_body()}) {
    if (field->find("recommendations") != std::string::npos) return true;
  }
  return false;
}

// The customer's recommendations from the model, when the request gave none and the template
// reads them; nullopt otherwise (the request's, possibly empty, are used).
std::optional<v1::RecommendResponse> Fetch(const Recommendations* from, const CompiledTemplate& t,
                                           const google::protobuf::RepeatedPtrField<v1::Recommendation>& given,
                                           const std::string& customer_id) {
  if (from == nullptr || !given.empty() || !ReadsRecommendations(t)) return std::nullopt;
  v1::RecommendRequest req;
  req.set_customer_id(customer_id);
  absl::StatusOr<v1::RecommendResponse> r = from->Recommend(req);
  if (!r.ok()) return std::nullopt;  // renders without them (reported missing if read)
  return std::move(*r);
}

}  // namespace

absl::StatusOr<Messages::Subject> Messages::SubjectOf(const std::string& template_id, const std::string& offer_id,
                                                      bool gives_offers, const std::string& placement) {
  Subject out;
  out.template_id = template_id;
  if (offer_id.empty()) {
    if (template_id.empty()) return util::Invalid("template_id", "required (or an offer_id)");
    return out;
  }
  if (gives_offers) return util::Invalid("offers", "not with offer_id (the offer is the one shown)");
  if (!placement.empty()) return util::Invalid("placement", "not with offer_id (the offer is the one shown)");
  if (offers_ == nullptr) return absl::FailedPreconditionError("offer_id: this engine decides no offers");
  ECRM_ASSIGN_OR_RETURN(out.offer, offers_->Find(offer_id));
  if (out.template_id.empty()) out.template_id = out.offer->proto.template_id();
  if (out.template_id.empty()) {
    return absl::FailedPreconditionError(absl::StrCat("offer_id: offer \"", offer_id,
                                                      "\" has no template_id to render it with: set the offer's "
                                                      "template_id or name a template_id"));
  }
  return out;
}

absl::StatusOr<v1::RenderedMessage> Messages::RenderFor(const CompiledTemplate& t,
                                                        const infostore::v1::Customer& customer,
                                                        const mustache::Value& shared, const MessageInputs& inputs,
                                                        bool strict) {
  const mustache::Value own = CustomerContext(customer, t.proto.locale());
  v1::RenderedMessage out;
  out.set_customer_id(customer.id());
  out.set_template_id(t.proto.id());
  out.set_template_version(t.proto.version());
  out.set_locale(t.proto.locale());
  mustache::RenderOptions plain{mustache::Escape::kNone, {}};
  mustache::RenderOptions html{mustache::Escape::kHtml, {}};
  mustache::RenderResult r;
  t.subject.Render({&shared, &own}, plain, r);
  out.set_subject(std::move(r.text));
  AddMissing(r.missing, out);
  t.text_body.Render({&shared, &own}, plain, r);
  out.set_text_body(std::move(r.text));
  AddMissing(r.missing, out);
  t.html_body.Render({&shared, &own}, html, r);
  out.set_html_body(std::move(r.text));
  AddMissing(r.missing, out);
  if (strict && !out.missing_variables().empty()) {
    return absl::FailedPreconditionError(absl::StrCat("strict: template \"", t.proto.id(), "\" reads {{",
                                                      out.missing_variables(0), "}}, which customer \"", customer.id(),
                                                      "\" has no value for"));
  }
  if (inputs.offers != nullptr) {
    for (const v1::Offer& o : *inputs.offers) out.add_offer_ids(o.id());
  }
  if (inputs.recommendations != nullptr) {
    for (const v1::Recommendation& rec : *inputs.recommendations) out.add_skus(rec.sku());
  }
  return out;
}

absl::StatusOr<v1::RenderedMessage> Messages::Render(const v1::RenderMessageRequest& req) {
  if (req.template_id().empty() && req.offer_id().empty()) return util::Invalid("template_id", "required");
  if (req.customer_id().empty()) return util::Invalid("customer_id", "required");
  ECRM_ASSIGN_OR_RETURN(Subject subject,
                        SubjectOf(req.template_id(), req.offer_id(), !req.offers().empty(), req.placement()));
  ECRM_ASSIGN_OR_RETURN(std::vector<TemplateVariant> variants, templates_.Variants(subject.template_id));
  std::vector<absl::StatusOr<infostore::v1::Customer>> customers = customers_.Get({req.customer_id()});
  absl::StatusOr<infostore::v1::Customer>& customer = customers[0];
  if (!customer.ok()) {
    if (absl::IsNotFound(customer.status())) {
      metrics_.failed_unknown_customer.Increment();
      return absl::NotFoundError(absl::StrCat("customer_id: ", customer.status().message()));
    }
    metrics_.failed_unavailable.Increment();
    return customer.status();
  }
  const TemplateVariant& variant = Templates::Pick(variants, customer->profile().locale());
  ECRM_ASSIGN_OR_RETURN(std::shared_ptr<const CompiledTemplate> t, templates_.Compiled(variant.id, variant.version));
  MessageInputs inputs{&req.offers(), &req.recommendations(), &req.vars()};
  const std::optional<v1::RecommendResponse> fetched =
      Fetch(recommendations_, *t, req.recommendations(), customer->id());
  if (fetched) inputs.recommendations = &fetched->items();
  google::protobuf::RepeatedPtrField<v1::Offer> decided;
  if (subject.offer != nullptr) {
    ECRM_ASSIGN_OR_RETURN(std::string why, offers_->NotEligible(*subject.offer, *customer, t->proto.channel()));
    if (!why.empty()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "offer_id: customer \"", req.customer_id(), "\" is not eligible for offer \"", req.offer_id(), "\": ", why));
    }
    *decided.Add() = subject.offer->proto;
    inputs.offers = &decided;
    inputs.offer = &subject.offer->proto;
  } else if (offers_ != nullptr && req.offers().empty() && !req.placement().empty()) {
    v1::DecideOffersRequest decide;
    decide.set_customer_id(req.customer_id());
    decide.set_placement(req.placement());
    decide.set_channel(t->proto.channel());
    ECRM_ASSIGN_OR_RETURN(Offers::Decision d, offers_->Choose(decide, &*customer, /*explain=*/false));
    for (v1::OfferDecision& decision : *d.response.mutable_decisions()) {
      *decided.Add() = std::move(*decision.mutable_offer());
    }
    inputs.offers = &decided;
  }
  const mustache::Value shared = SharedContext(inputs, t->proto.locale(), customer->profile().time_zone());
  absl::StatusOr<v1::RenderedMessage> out = RenderFor(*t, *customer, shared, inputs, req.strict());
  if (!out.ok()) {
    metrics_.failed_missing_variable.Increment();
    return out.status();
  }
  out->set_customer_id(req.customer_id());
  metrics_.rendered.Increment();
  metrics_.missing_variables.Increment(out->missing_variables_size());
  return out;
}

absl::StatusOr<v1::BatchRenderResponse> Messages::BatchRender(const v1::BatchRenderRequest& req) {
  if (req.template_id().empty() && req.offer_id().empty()) return util::Invalid("template_id", "required");
  if (req.customer_ids().empty()) return util::Invalid("customer_ids", "at least one customer");
  if (req.customer_ids_size() > kMaxBatch) {
    return util::Invalid("customer_ids", absl::StrCat("at most ", kMaxBatch, " customers per call"));
  }
  for (const std::string& id : req.customer_ids()) {
    if (id.empty()) return util::Invalid("customer_ids", "an empty customer id");
  }
  ECRM_ASSIGN_OR_RETURN(Subject subject,
                        SubjectOf(req.template_id(), req.offer_id(), !req.offers().empty(), req.placement()));
  ECRM_ASSIGN_OR_RETURN(std::vector<TemplateVariant> variants, templates_.Variants(subject.template_id));
  std::vector<std::string> ids(req.customer_ids().begin(), req.customer_ids().end());
  std::vector<absl::StatusOr<infostore::v1::Customer>> customers = customers_.Get(ids);
  MessageInputs inputs{&req.offers(), &req.recommendations(), &req.vars()};
  google::protobuf::RepeatedPtrField<v1::Offer> sent;  // the request's offer, shown to everyone
  if (subject.offer != nullptr) {
    *sent.Add() = subject.offer->proto;
    inputs.offers = &sent;
    inputs.offer = &subject.offer->proto;
  }
  const bool decide =
      subject.offer == nullptr && offers_ != nullptr && req.offers().empty() && !req.placement().empty();
  // Per customer: the message, or why not; and why the request's offer is not for them.
  std::vector<absl::StatusOr<v1::RenderedMessage>> results(ids.size(), absl::UnknownError("not rendered"));
  std::vector<std::string> not_eligible(ids.size());
  // Renders customers [begin, end) into results; an error (the template's) fails the call.
  auto render_range = [&](size_t begin, size_t end) -> absl::Status {
    absl::flat_hash_map<std::string, std::shared_ptr<const CompiledTemplate>> compiled;  // by variant id
    // What the customers share, built once per template variant and time zone.
    absl::flat_hash_map<std::pair<std::string, std::string>, mustache::Value> shared;
    ContextCache cache;  // the customers' own offers and recommendations, as built
    for (size_t i = begin; i < end; ++i) {
      if (!customers[i].ok()) {
        (absl::IsNotFound(customers[i].status()) ? metrics_.failed_unknown_customer : metrics_.failed_unavailable)
            .Increment();
        results[i] = customers[i].status();
        continue;
      }
      const TemplateVariant& variant = Templates::Pick(variants, customers[i]->profile().locale());
      std::shared_ptr<const CompiledTemplate>& t = compiled[variant.id];
      if (t == nullptr) {
        ECRM_ASSIGN_OR_RETURN(t, templates_.Compiled(variant.id, variant.version));
      }
      const std::string& time_zone = customers[i]->profile().time_zone();
      absl::StatusOr<v1::RenderedMessage>& message = results[i];
      if (subject.offer != nullptr) {
        absl::StatusOr<std::string> why = offers_->NotEligible(*subject.offer, *customers[i], t->proto.channel());
        if (!why.ok()) {
          metrics_.failed_unavailable.Increment();
          message = absl::Status(why.status().code(), absl::StrCat("judging the offer: ", why.status().message()));
          continue;
        }
        if (!why->empty()) {
          not_eligible[i] = *std::move(why);
          continue;
        }
      }
      std::optional<v1::RecommendResponse> fetched =
          Fetch(recommendations_, *t, req.recommendations(), customers[i]->id());
      // The customer's own offers, decided for the placement when the request gives none.
      google::protobuf::RepeatedPtrField<v1::Offer> decided;
      if (decide) {
        v1::DecideOffersRequest ask;
        ask.set_customer_id(customers[i]->id());
        ask.set_placement(req.placement());
        ask.set_channel(t->proto.channel());
        absl::StatusOr<Offers::Decision> d = offers_->Choose(ask, &*customers[i], /*explain=*/false);
        if (!d.ok()) {
          metrics_.failed_unavailable.Increment();
          message = absl::Status(d.status().code(), absl::StrCat("deciding offers: ", d.status().message()));
          continue;
        }
        for (v1::OfferDecision& decision : *d->response.mutable_decisions()) {
          *decided.Add() = std::move(*decision.mutable_offer());
        }
      }
      if (fetched || decide) {
        // The customer's own recommendations or offers: a context of their own.
        MessageInputs own = inputs;
        if (fetched) own.recommendations = &fetched->items();
        if (decide) own.offers = &decided;
        message =
            RenderFor(*t, *customers[i], SharedContext(own, t->proto.locale(), time_zone, &cache), own, req.strict());
      } else {
        auto [it, added] = shared.try_emplace(std::make_pair(variant.id, time_zone));
        if (added) it->second = SharedContext(inputs, t->proto.locale(), time_zone);
        message = RenderFor(*t, *customers[i], it->second, inputs, req.strict());
      }
      if (!message.ok()) {
        metrics_.failed_missing_variable.Increment();
        continue;
      }
      // The id asked for (a merged id renders its survivor's data under the id the caller knows).
      message->set_customer_id(ids[i]);
      metrics_.rendered.Increment();
      metrics_.missing_variables.Increment(message->missing_variables_size());
    }
    return absl::OkStatus();
  };
  // A large batch is split over the cores (a caller sending one batch at a time gets them all):
  // the first part on this thread, the others on threads of their own, joined here.
  const size_t parts =
      std::max<size_t>(1, std::min<size_t>(std::thread::hardware_concurrency(), ids.size() / kMinPerThread));
  std::vector<absl::Status> statuses(parts);
  {
    std::vector<std::thread> threads;
    for (size_t p = 1; p < parts; ++p) {
      threads.emplace_back(
          [&, p] { statuses[p] = render_range(ids.size() * p / parts, ids.size() * (p + 1) / parts); });
    }
    statuses[0] = render_range(0, ids.size() / parts);
    for (std::thread& th : threads) th.join();
  }
  for (const absl::Status& st : statuses) ECRM_RETURN_IF_ERROR(st);
  v1::BatchRenderResponse out;
  for (size_t i = 0; i < ids.size(); ++i) {
    if (!not_eligible[i].empty()) {
      (*out.mutable_not_eligible())[ids[i]] = std::move(not_eligible[i]);
    } else if (results[i].ok()) {
      *out.add_messages() = std::move(*results[i]);
    } else {
      (*out.mutable_failed())[ids[i]] = std::string(results[i].status().message());
      (*out.mutable_failed_codes())[ids[i]] = static_cast<int32_t>(results[i].status().code());
    }
  }
  return out;
}

}  // namespace ecrm::personalisation

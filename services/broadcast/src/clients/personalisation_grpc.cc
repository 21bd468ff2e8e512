#include "clients/personalisation_grpc.h"

#include <grpcpp/client_context.h>

#include <algorithm>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "ecrm/personalisation/v1/personalisation.grpc.pb.h"
#include "ecrm/server/channel.h"
#include "ecrm/status/macros.h"
#include "ecrm/util/util.h"

namespace ecrm::broadcast {

namespace {

// What a lookup of a message's template or offer (`what`, named by `field`) answered, as the
// status to give the caller of CreateBroadcast.
absl::Status LookupStatus(const grpc::Status& s, absl::string_view field, absl::string_view what,
                          const std::string& id) {
  switch (s.error_code()) {
    case grpc::StatusCode::OK:
      return absl::OkStatus();
    case grpc::StatusCode::NOT_FOUND:
      return absl::NotFoundError(absl::StrCat(field, ": personalisation has no ", what, " \"", id, "\""));
    case grpc::StatusCode::INVALID_ARGUMENT:
      return absl::InvalidArgumentError(absl::StrCat(field, ": ", s.error_message()));
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return absl::DeadlineExceededError(absl::StrCat("personalisation: no answer in time: ", s.error_message()));
    default:
      return absl::UnavailableError(
          absl::StrCat("personalisation: reading the ", what, " failed: ", s.error_message()));
  }
}

// A customer personalisation could not render: by the code it gives (failed_codes) —
// UNAVAILABLE / DEADLINE_EXCEEDED worth another attempt, NOT_FOUND an unknown customer, anything
// else the template's, for good. An engine from before failed_codes gives only why, as text:
// its reasons for a customer it could not read now (the information store down or not
// configured) are worth another attempt; "does not exist" is an unknown customer.
absl::Status CustomerFailure(const std::string& why, const int32_t* code) {
  const std::string message = absl::StrCat("personalisation: ", why);
  if (code != nullptr) {
    switch (static_cast<absl::StatusCode>(*code)) {
      case absl::StatusCode::kUnavailable:
      case absl::StatusCode::kDeadlineExceeded:
      case absl::StatusCode::kResourceExhausted:
      case absl::StatusCode::kAborted:
        return absl::UnavailableError(message);
      case absl::StatusCode::kNotFound:
        return absl::NotFoundError(message);
      default:
        return absl::FailedPreconditionError(message);
    }
  }
  if (absl::StartsWith(why, "information store") || absl::StrContains(why, "profile cache")) {
    return absl::UnavailableError(message);
  }
  if (absl::StrContains(why, "does not exist")) return absl::NotFoundError(message);
  return absl::FailedPreconditionError(message);
}

}  // namespace

absl::StatusOr<RenderBatch> GrpcTemplateRenderer::BatchRender(const RenderSource& source,
                                                              absl::Span<const std::string> customer_ids,
                                                              absl::Time deadline) {
  if (customer_ids.empty()) return RenderBatch{};
  if (static_cast<int>(customer_ids.size()) > kMaxBatch) {
    return absl::InvalidArgumentError(absl::StrCat("customer_ids: at most ", kMaxBatch, " per BatchRender"));
  }
  grpc::ClientContext ctx;
  // The smaller of the configured timeout, the caller's deadline and the RPC's own budget.
  server::PrepareOutboundCall(ctx, std::max(absl::ZeroDuration(), std::min(timeout_, deadline - absl::Now())));
  personalisation::v1::BatchRenderRequest req;
  req.set_template_id(source.template_id);
  req.set_placement(source.placement);
  req.set_offer_id(source.offer_id);
  for (const std::string& id : customer_ids) req.add_customer_ids(id);
  personalisation::v1::BatchRenderResponse resp;
  grpc::Status s = personalisation::v1::Personalisation::NewStub(channel_)->BatchRender(&ctx, req, &resp);
  switch (s.error_code()) {
    case grpc::StatusCode::OK:
      break;
    case grpc::StatusCode::NOT_FOUND:
      // Personalisation names the field: its offer_id or the template it was to render.
      if (!source.offer_id.empty() && absl::StartsWith(s.error_message(), "offer_id")) {
        return absl::NotFoundError(
            absl::StrCat("content.offer_id: personalisation has no offer \"", source.offer_id, "\""));
      }
      return absl::NotFoundError(absl::StrCat("content.template_id: personalisation has no template \"",
                                              source.template_id.empty() ? "(the offer's)" : source.template_id, "\" (",
                                              s.error_message(), ")"));
    case grpc::StatusCode::INVALID_ARGUMENT:
      return absl::InvalidArgumentError(absl::StrCat("personalisation refused the render: ", s.error_message()));
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return absl::DeadlineExceededError(absl::StrCat("personalisation: no answer in time: ", s.error_message()));
    default:
      // The offer cannot be rendered (it has no template): for good, not worth retrying.
      if (s.error_code() == grpc::StatusCode::FAILED_PRECONDITION && !source.offer_id.empty() &&
          absl::StartsWith(s.error_message(), "offer_id")) {
        return absl::FailedPreconditionError(absl::StrCat("content.", s.error_message()));
      }
      return absl::UnavailableError(absl::StrCat("personalisation: rendering failed: ", s.error_message()));
  }
  RenderBatch out;
  for (personalisation::v1::RenderedMessage& m : *resp.mutable_messages()) {
    RenderedContent c;
    c.subject = std::move(*m.mutable_subject());
    c.text_body = std::move(*m.mutable_text_body());
    c.html_body = std::move(*m.mutable_html_body());
    c.template_version = m.template_version();
    c.missing_variables.assign(m.missing_variables().begin(), m.missing_variables().end());
    out.by_customer.insert_or_assign(m.customer_id(), std::move(c));
  }
  for (const auto& [customer, why] : resp.not_eligible()) out.not_eligible.insert_or_assign(customer, why);
  for (const auto& [customer, why] : resp.failed()) {
    auto code = resp.failed_codes().find(customer);
    out.by_customer.insert_or_assign(customer,
                                     CustomerFailure(why, code == resp.failed_codes().end() ? nullptr : &code->second));
  }
  return out;
}

absl::Status GrpcTemplateRenderer::CheckTemplate(const std::string& template_id, absl::Time deadline) {
  grpc::ClientContext ctx;
  server::PrepareOutboundCall(ctx, std::max(absl::ZeroDuration(), std::min(timeout_, deadline - absl::Now())));
  personalisation::v1::GetTemplateRequest req;
  req.set_id(template_id);
  personalisation::v1::Template t;
  return LookupStatus(personalisation::v1::Personalisation::NewStub(channel_)->GetTemplate(&ctx, req, &t),
                      "content.template_id", "template", template_id);
}

absl::StatusOr<OfferSummary> GrpcTemplateRenderer::Offer(const std::string& offer_id, absl::Time deadline) {
  grpc::ClientContext ctx;
  server::PrepareOutboundCall(ctx, std::max(absl::ZeroDuration(), std::min(timeout_, deadline - absl::Now())));
  personalisation::v1::GetOfferRequest req;
  req.set_id(offer_id);
  personalisation::v1::Offer offer;
  ECRM_RETURN_IF_ERROR(
      LookupStatus(personalisation::v1::Personalisation::NewStub(channel_)->GetOffer(&ctx, req, &offer),
                   "content.offer_id", "offer", offer_id));
  OfferSummary out{offer.template_id(), offer.active()};
  if (offer.has_ends_at()) out.ends_at = absl::FromUnixMicros(util::Micros(offer.ends_at()));
  return out;
}

}  // namespace ecrm::broadcast

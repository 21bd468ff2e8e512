// Personalisation as the broadcast engine's domain needs it (no gRPC here:
// personalisation_grpc.h is the real one; tests use fakes): one template rendered for many
// customers at once, for the outbox's workers before they gate and send; and whether a template
// or an offer exists, for CreateBroadcast.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "absl/types/span.h"

namespace ecrm::broadcast {

// One customer's message as personalisation rendered it. Broadcast's own placeholders
// ({{unsubscribe_url}}, {{preferences_url}}, {{view_in_browser_url}}) are still in it, as
// themselves, for the dispatcher to fill per delivery.
struct RenderedContent {
  std::string subject;
  std::string text_body;
  std::string html_body;
  int64_t template_version = 0;
  // Variables the template read that the customer has no value for (rendered empty).
  std::vector<std::string> missing_variables;
};

// A BatchRender's answer: per customer id asked for, the rendered message or why it could not be
// rendered. A failure is NOT_FOUND (no such customer), FAILED_PRECONDITION (the template cannot
// be rendered for this customer) or UNAVAILABLE (personalisation could not read the customer
// now: worth trying again).
// With an offer: the customers it is not for now, with why (not in by_customer).
struct RenderBatch {
  std::map<std::string, absl::StatusOr<RenderedContent>> by_customer;
  std::map<std::string, std::string> not_eligible;
};

// What to render: a template (its offers decided for `placement`, empty: none), or an offer with
// its own template (or `template_id` when set), rendered only for the customers it is for.
struct RenderSource {
  std::string template_id;
  std::string placement;
  std::string offer_id;
};

// What CreateBroadcast needs to know of an offer before it queues a broadcast of it.
struct OfferSummary {
  std::string template_id;  // the template it is rendered with (empty: it has none)
  bool active = false;
  absl::Time ends_at = absl::InfiniteFuture();  // valid until
};

class TemplateRenderer {
 public:
  // Customers per BatchRender call at most.
  static constexpr int kMaxBatch = 1000;

  virtual ~TemplateRenderer() = default;
  // Renders `source` for each of `customer_ids` (1 to kMaxBatch, distinct) by `deadline`. The
  // call as a whole fails NOT_FOUND for an unknown template or offer (the message names
  // content.template_id or content.offer_id), FAILED_PRECONDITION for an offer without a
  // template, UNAVAILABLE or DEADLINE_EXCEEDED when personalisation did not answer,
  // INVALID_ARGUMENT for bad input.
  virtual absl::StatusOr<RenderBatch> BatchRender(const RenderSource& source,
                                                  absl::Span<const std::string> customer_ids, absl::Time deadline) = 0;
  // OK when template `template_id` exists; NOT_FOUND (naming content.template_id) when it does not,
  // UNAVAILABLE or DEADLINE_EXCEEDED when personalisation did not answer by `deadline`.
  virtual absl::Status CheckTemplate(const std::string& template_id, absl::Time deadline) = 0;
  // Offer `offer_id` as CreateBroadcast checks it; NOT_FOUND (naming content.offer_id) when there
  // is no such offer, UNAVAILABLE or DEADLINE_EXCEEDED when personalisation did not answer by
  // `deadline`.
  virtual absl::StatusOr<OfferSummary> Offer(const std::string& offer_id, absl::Time deadline) = 0;
};

}  // namespace ecrm::broadcast

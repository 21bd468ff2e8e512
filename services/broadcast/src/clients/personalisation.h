// Personalisation as the broadcast engine's domain needs it (no gRPC here:
// personalisation_grpc.h is the real one; tests use fakes): one template rendered for many
// customers at once, for the outbox's workers before they gate and send; and whether a template
// exists, for CreateBroadcast.
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
struct RenderBatch {
  std::map<std::string, absl::StatusOr<RenderedContent>> by_customer;
};

class TemplateRenderer {
 public:
  // Customers per BatchRender call at most.
  static constexpr int kMaxBatch = 1000;

  virtual ~TemplateRenderer() = default;
  // Renders template `template_id` for each of `customer_ids` (1 to kMaxBatch, distinct) by
  // `deadline`, each customer's offers decided for `placement` (empty: no offers). The call as a
  // whole fails NOT_FOUND for an unknown template, UNAVAILABLE or DEADLINE_EXCEEDED when
  // personalisation did not answer, INVALID_ARGUMENT for bad input.
  virtual absl::StatusOr<RenderBatch> BatchRender(const std::string& template_id, const std::string& placement,
                                                  absl::Span<const std::string> customer_ids, absl::Time deadline) = 0;
  // OK when template `template_id` exists; NOT_FOUND (naming content.template_id) when it does not,
  // UNAVAILABLE or DEADLINE_EXCEEDED when personalisation did not answer by `deadline`.
  virtual absl::Status CheckTemplate(const std::string& template_id, absl::Time deadline) = 0;
};

}  // namespace ecrm::broadcast

// Broadcast's own placeholders in a message's content: {{unsubscribe_url}},
// {{preferences_url}} and {{view_in_browser_url}}. Personalisation renders them as themselves
// (docs/personalisation.md, "Broadcast's placeholders"); literal content may carry them too. The
// dispatcher fills them per delivery, because the links name the delivery.
#pragma once

#include <string>

#include "absl/strings/string_view.h"
#include "ecrm/broadcast/v1/broadcast.pb.h"

namespace ecrm::broadcast {

// Where a delivery's links point: the signed unsubscribe URL (tracking_links.h), the others each
// "<base>?d=<delivery id>"; empty when not configured.
struct DeliveryLinks {
  std::string unsubscribe;
  std::string preferences;
  std::string view_in_browser;
};

DeliveryLinks LinksFor(absl::string_view delivery_id, std::string unsubscribe_url, absl::string_view preferences_base,
                       absl::string_view view_in_browser_base);

// Replaces the three placeholders (also with spaces inside the braces: "{{ unsubscribe_url }}")
// in subject and text as they are and in HTML escaped for an attribute or text. A placeholder
// whose link is not configured becomes empty.
v1::LiteralContent FillPlaceholders(v1::LiteralContent content, const DeliveryLinks& links);

}  // namespace ecrm::broadcast

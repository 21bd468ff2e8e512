// What a template can read about a customer, built from the information store's Customer, the
// offers and recommendations of the message and the caller's vars. docs/personalisation.md lists
// the names; in short:
//
//   customer.id
//   profile.first_name, profile.address.city, …       (Profile's fields by their proto names)
//   attributes.<name>                                 (custom attributes)
//   preferences.preferred_channel, preferences.interests (a list: {{#…}}{{.}}{{/…}})
//   behaviour.order_count, behaviour.total_spent_formatted, …
//   offers: [{id, headline, kind, percent_off, amount_off_formatted, ends_at_formatted, …}]
//   offer: {id, headline, …}                          (the message's offer, when it sends one)
//   recommendations: [{sku, title, price_formatted, url, category, score, source}]
//   vars.<name>
//   unsubscribe_url, preferences_url, view_in_browser_url   (left for broadcast to fill)
//
// Empty strings, unset messages and enums at their UNSPECIFIED value are absent (so that a
// template asking for them reports them missing). Every money field X also has X_formatted
// (ICU, the template's locale) and X.amount (plain decimal); every time field X is RFC 3339 and
// has X_formatted (the locale's medium date, in the customer's time zone).
#pragma once

#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "ecrm/infostore/v1/infostore.pb.h"
#include "ecrm/personalisation/v1/personalisation.pb.h"
#include "google/protobuf/map.h"
#include "mustache.h"

namespace ecrm::personalisation {

// The names broadcast fills per delivery; they render as themselves ("{{unsubscribe_url}}").
inline constexpr absl::string_view kBroadcastPlaceholders[] = {"unsubscribe_url", "preferences_url",
                                                               "view_in_browser_url"};

struct MessageInputs {
  const google::protobuf::RepeatedPtrField<v1::Offer>* offers = nullptr;
  const google::protobuf::RepeatedPtrField<v1::Recommendation>* recommendations = nullptr;
  const google::protobuf::Map<std::string, std::string>* vars = nullptr;
  // The offer the message sends (RenderMessageRequest.offer_id): {{offer}}.
  const v1::Offer* offer = nullptr;
};

// What every customer of a message shares: offers, recommendations, vars, broadcast's
// placeholders and the locale. `locale`: the template's (formats money and dates; empty formats
// for en-US); `time_zone`: the customer's (dates of offers fall on the customer's day).
mustache::Value SharedContext(const MessageInputs& inputs, absl::string_view locale, absl::string_view time_zone);
// The maps of offers and recommendations already built (by locale, time zone and the proto's
// bytes): customers of one batch given their own offers and recommendations mostly share them,
// and building one (reflection, ICU money and dates) costs more than copying it. One thread's.
struct ContextCache {
  absl::flat_hash_map<std::string, mustache::Value> items;
};
mustache::Value SharedContext(const MessageInputs& inputs, absl::string_view locale, absl::string_view time_zone,
                              ContextCache* cache);
// The customer's own part: customer, profile, attributes, preferences, behaviour.
mustache::Value CustomerContext(const infostore::v1::Customer& customer, absl::string_view locale);
// Both in one map (tests; rendering stacks the two instead of copying).
mustache::Value BuildContext(const infostore::v1::Customer& customer, const MessageInputs& inputs,
                             absl::string_view locale);

// Any message by reflection, with the rules above (exposed for tests).
mustache::Value MessageValue(const google::protobuf::Message& message, absl::string_view locale,
                             absl::string_view time_zone);

}  // namespace ecrm::personalisation

// Identifier validation and normalisation. Two spellings of the same email or phone number
// must resolve to the same customer, so every identifier is normalised before it is stored or
// looked up.
#pragma once

#include <string>
#include <tuple>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "ecrm/common/v1/common.pb.h"

namespace ecrm::infostore {

using common::v1::Identifier;

// Returns the normalised identifier, or INVALID_ARGUMENT naming `field` (e.g.
// "identifiers[2].value") and what is wrong. Emails are trimmed and lower-cased; phone numbers
// become E.164 (numbers without a country code are read in `default_region`, e.g. "GB");
// external ids need a `source` ([a-z0-9_]{1,32}); other values are trimmed, 1–256 chars.
absl::StatusOr<Identifier> Normalize(const Identifier& id, absl::string_view field, absl::string_view default_region);

// Strong identifiers may merge customers; a device id never merges two identified customers.
bool IsStrong(common::v1::IdentifierType type);

// An identifier's identity: two identifiers with the same key are one.
using IdKey = std::tuple<int, std::string, std::string>;  // (type, source, value)
IdKey KeyOf(const common::v1::Identifier& id);

}  // namespace ecrm::infostore

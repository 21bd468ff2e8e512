#include "identifiers.h"

#include <phonenumbers/phonenumberutil.h>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace ecrm::infostore {
namespace {

using common::v1::IdentifierType;
using i18n::phonenumbers::PhoneNumber;
using i18n::phonenumbers::PhoneNumberUtil;

absl::Status Invalid(absl::string_view field, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", what));
}

bool ValidSource(absl::string_view s) {
  if (s.empty() || s.size() > 32) return false;
  for (char c : s) {
    if (!absl::ascii_islower(c) && !absl::ascii_isdigit(c) && c != '_') return false;
  }
  return true;
}

// A pragmatic check: one '@', a non-empty local part, a dotted domain, no spaces.
bool LooksLikeEmail(absl::string_view e) {
  size_t at = e.find('@');
  if (at == absl::string_view::npos || at == 0 || e.find('@', at + 1) != absl::string_view::npos) return false;
  absl::string_view domain = e.substr(at + 1);
  if (domain.size() < 3 || domain.front() == '.' || domain.back() == '.' || !absl::StrContains(domain, '.')) {
    return false;
  }
  for (char c : e) {
    if (absl::ascii_isspace(c) || absl::ascii_iscntrl(c)) return false;
  }
  return e.size() <= 254;
}

}  // namespace

bool IsStrong(IdentifierType type) {
  return type == common::v1::IDENTIFIER_TYPE_EMAIL || type == common::v1::IDENTIFIER_TYPE_PHONE ||
         type == common::v1::IDENTIFIER_TYPE_EXTERNAL_ID || type == common::v1::IDENTIFIER_TYPE_LOYALTY_CARD;
}

absl::StatusOr<Identifier> Normalize(const Identifier& id, absl::string_view field, absl::string_view default_region) {
  Identifier out;
  out.set_type(id.type());
  std::string value(absl::StripAsciiWhitespace(id.value()));
  const std::string value_field = absl::StrCat(field, ".value");
  if (value.empty()) return Invalid(value_field, "is empty");
  switch (id.type()) {
    case common::v1::IDENTIFIER_TYPE_EMAIL:
      absl::AsciiStrToLower(&value);
      if (!LooksLikeEmail(value)) {
        return Invalid(value_field, "is not an email address (one '@', a dotted domain, no spaces, 254 bytes at most)");
      }
      break;
    case common::v1::IDENTIFIER_TYPE_PHONE: {
      const PhoneNumberUtil* util = PhoneNumberUtil::GetInstance();
      PhoneNumber number;
      if (util->Parse(value, std::string(default_region), &number) != PhoneNumberUtil::NO_PARSING_ERROR ||
          !util->IsValidNumber(number)) {
        return Invalid(value_field, "is not a valid phone number (use E.164, e.g. +447911123456)");
      }
      util->Format(number, PhoneNumberUtil::E164, &value);
      break;
    }
    case common::v1::IDENTIFIER_TYPE_EXTERNAL_ID:
      if (!ValidSource(id.source())) {
        return Invalid(absl::StrCat(field, ".source"),
                       "an external id needs the source system that issued it, [a-z0-9_]{1,32} (e.g. \"erp\")");
      }
      out.set_source(id.source());
      [[fallthrough]];
    case common::v1::IDENTIFIER_TYPE_DEVICE_ID:
    case common::v1::IDENTIFIER_TYPE_LOYALTY_CARD:
      if (value.size() > 256) return Invalid(value_field, "is longer than 256 characters");
      break;
    default:
      return Invalid(absl::StrCat(field, ".type"), "must be EMAIL, PHONE, EXTERNAL_ID, DEVICE_ID or LOYALTY_CARD");
  }
  if (id.type() != common::v1::IDENTIFIER_TYPE_EXTERNAL_ID && !id.source().empty()) {
    return Invalid(absl::StrCat(field, ".source"), "is only for external ids");
  }
  out.set_value(value);
  return out;
}

IdKey KeyOf(const common::v1::Identifier& id) { return {static_cast<int>(id.type()), id.source(), id.value()}; }

}  // namespace ecrm::infostore

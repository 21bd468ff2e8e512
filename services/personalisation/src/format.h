// Money and dates written for a locale with ICU (CLDR data): "$1,234.50" in en-US,
// "1 234,50 €" in fr-FR, "1.234,50 €" in de-DE; "Mar 5, 2026", "5 mars 2026", "05.03.2026".
// Formatters are costly to build, so each thread keeps one per locale (and currency).
#pragma once

#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace ecrm::personalisation {

// The amount in minor units of `currency` (ISO 4217: 1999 EUR is 19.99, 1999 JPY is 1,999) as
// the locale writes a price. An unknown currency code is written with its code.
std::string FormatMoney(int64_t amount_minor, absl::string_view currency, absl::string_view locale);

// The amount in major units as plain decimal text with the currency's fraction digits
// ("19.99", "1999" for JPY), for templates that format it themselves.
std::string DecimalAmount(int64_t amount_minor, absl::string_view currency);

// The date of `t` in `time_zone` (IANA; UTC when empty or unknown) in the locale's medium
// style.
std::string FormatDate(absl::Time t, absl::string_view locale, absl::string_view time_zone);

// A BCP 47 tag written canonically ("fr_ca" -> "fr-CA"), or "" when `tag` is not one.
std::string CanonicalLocale(absl::string_view tag);

}  // namespace ecrm::personalisation

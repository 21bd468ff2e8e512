#include "format.h"

#include <unicode/datefmt.h>
#include <unicode/locid.h>
#include <unicode/numfmt.h>
#include <unicode/timezone.h>
#include <unicode/ucurr.h>
#include <unicode/unistr.h>

#include <cmath>
#include <map>
#include <memory>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace ecrm::personalisation {
namespace {

icu::Locale IcuLocale(absl::string_view tag) {
  UErrorCode status = U_ZERO_ERROR;
  icu::Locale locale = icu::Locale::forLanguageTag(
      icu::StringPiece(tag.empty() ? "en-US" : tag.data(), tag.empty() ? 5 : tag.size()), status);
  if (U_FAILURE(status) || locale.isBogus()) return icu::Locale("en", "US");
  return locale;
}

int FractionDigits(absl::string_view currency) {
  if (currency.size() != 3) return 2;
  UChar code[4] = {static_cast<UChar>(currency[0]), static_cast<UChar>(currency[1]), static_cast<UChar>(currency[2]),
                   0};
  UErrorCode status = U_ZERO_ERROR;
  int32_t digits = ucurr_getDefaultFractionDigits(code, &status);
  return U_FAILURE(status) ? 2 : digits;
}

std::string ToUtf8(const icu::UnicodeString& s) {
  std::string out;
  s.toUTF8String(out);
  return out;
}

}  // namespace

std::string DecimalAmount(int64_t amount_minor, absl::string_view currency) {
  int digits = FractionDigits(currency);
  if (digits == 0) return absl::StrCat(amount_minor);
  int64_t scale = 1;
  for (int i = 0; i < digits; ++i) scale *= 10;
  uint64_t magnitude = amount_minor < 0 ? -static_cast<uint64_t>(amount_minor) : static_cast<uint64_t>(amount_minor);
  std::string fraction = absl::StrCat(magnitude % scale);
  fraction.insert(0, digits - fraction.size(), '0');
  return absl::StrCat(amount_minor < 0 ? "-" : "", magnitude / scale, ".", fraction);
}

std::string FormatMoney(int64_t amount_minor, absl::string_view currency, absl::string_view locale) {
  // One currency formatter per (locale, currency) and thread: NumberFormat is not thread-safe.
  thread_local std::map<std::string, std::unique_ptr<icu::NumberFormat>, std::less<>> formatters;
  std::string key = absl::StrCat(locale, "|", currency);
  auto it = formatters.find(key);
  if (it == formatters.end()) {
    UErrorCode status = U_ZERO_ERROR;
    std::unique_ptr<icu::NumberFormat> f(icu::NumberFormat::createCurrencyInstance(IcuLocale(locale), status));
    if (U_FAILURE(status) || f == nullptr) return absl::StrCat(DecimalAmount(amount_minor, currency), " ", currency);
    if (currency.size() == 3) {
      UChar code[4] = {static_cast<UChar>(absl::ascii_toupper(currency[0])),
                       static_cast<UChar>(absl::ascii_toupper(currency[1])),
                       static_cast<UChar>(absl::ascii_toupper(currency[2])), 0};
      f->setCurrency(code, status);
    }
    if (formatters.size() > 256) formatters.clear();
    it = formatters.emplace(std::move(key), std::move(f)).first;
  }
  int digits = FractionDigits(currency);
  double amount = static_cast<double>(amount_minor) / std::pow(10.0, digits);
  icu::UnicodeString out;
  it->second->format(amount, out);
  return ToUtf8(out);
}

std::string FormatDate(absl::Time t, absl::string_view locale, absl::string_view time_zone) {
  thread_local std::map<std::string, std::unique_ptr<icu::DateFormat>, std::less<>> formatters;
  std::string key = absl::StrCat(locale, "|", time_zone);
  auto it = formatters.find(key);
  if (it == formatters.end()) {
    std::unique_ptr<icu::DateFormat> f(
        icu::DateFormat::createDateInstance(icu::DateFormat::kMedium, IcuLocale(locale)));
    if (f == nullptr) return absl::FormatTime("%Y-%m-%d", t, absl::UTCTimeZone());
    icu::TimeZone* zone = icu::TimeZone::createTimeZone(
        icu::UnicodeString::fromUTF8(time_zone.empty() ? absl::string_view("UTC") : time_zone));
    if (*zone == icu::TimeZone::getUnknown()) {
      delete zone;
      zone = icu::TimeZone::createTimeZone("UTC");
    }
    f->adoptTimeZone(zone);
    if (formatters.size() > 256) formatters.clear();
    it = formatters.emplace(std::move(key), std::move(f)).first;
  }
  icu::UnicodeString out;
  it->second->format(static_cast<UDate>(absl::ToUnixMillis(t)), out);
  return ToUtf8(out);
}

std::string CanonicalLocale(absl::string_view tag) {
  if (tag.empty() || tag.size() > 35) return "";
  std::vector<std::string> parts = absl::StrSplit(tag, absl::ByAnyChar("-_"));
  std::string out;
  for (size_t i = 0; i < parts.size(); ++i) {
    std::string& p = parts[i];
    if (p.empty() || p.size() > 8) return "";
    for (char c : p) {
      if (!absl::ascii_isalnum(c)) return "";
    }
    if (i == 0) {
      if (p.size() < 2 || p.size() > 3) return "";
      for (char c : p) {
        if (!absl::ascii_isalpha(c)) return "";
      }
      absl::AsciiStrToLower(&p);
    } else if (p.size() == 4 && absl::ascii_isalpha(p[0])) {
      absl::AsciiStrToLower(&p);
      p[0] = absl::ascii_toupper(p[0]);  // script: Latn
    } else if (p.size() == 2 || (p.size() == 3 && absl::ascii_isdigit(p[0]))) {
      absl::AsciiStrToUpper(&p);  // region: CA, 419
    } else {
      absl::AsciiStrToLower(&p);
    }
    absl::StrAppend(&out, i == 0 ? "" : "-", p);
  }
  return out;
}

}  // namespace ecrm::personalisation

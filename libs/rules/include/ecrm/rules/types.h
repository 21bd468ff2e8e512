// The values a rule works with: types, the customer fields a rule can name, and the value a
// caller hands the evaluator for a field. Nothing here depends on gRPC or on an engine.
#pragma once

#include <compare>
#include <cstdint>
#include <utility>
#include "absl/strings/string_view.h"

#include "absl/time/time.h"

namespace ecrm::rules {

// The static type of an expression, fixed when a rule is checked.
enum class Type : uint8_t {
  kBool,
  kNumber,  // a double; integers (counts, minor units) are exact up to 2^53
  kString,
  kTime,
  kDuration,    // only as a literal: an event window or a time offset
  kStringList,  // a list-valued field (interests); only `"x" in list` and `list.contains("x")` read it
  kList,        // a list literal; only after `in`
};

// "a bool", "a number", … for error messages.
absl::string_view TypeName(Type type);

// The value of a condition under three-valued logic: kUnknown comes from a missing value
// (docs/rules.md, "Missing values"). A customer matches a rule only when it is kTrue.
enum class Truth : uint8_t { kFalse, kTrue, kUnknown };

// The built-in customer fields. The caller maps each to its own storage; the numbering is
// part of the contract only within one process (persist rules as text, not as ids).
enum class Field : int32_t {
  kFirstName,            // profile.first_name             string
  kLastName,             // profile.last_name              string
  kBirthDate,            // profile.birth_date             time (midnight UTC of the date)
  kGender,               // profile.gender                 string: female, male, other, undisclosed
  kLocale,               // profile.locale                 string
  kTimeZone,             // profile.time_zone              string
  kAddressLine1,         // profile.address.line1          string
  kAddressLine2,         // profile.address.line2          string
  kCity,                 // profile.address.city           string (also profile.city)
  kRegion,               // profile.address.region         string (also profile.region)
  kPostalCode,           // profile.address.postal_code    string (also profile.postal_code)
  kCountry,              // profile.address.country        string (also profile.country)
  kCompany,              // profile.business.company       string (also profile.company)
  kIndustrySector,       // profile.business.industry_sector
  kCompanySize,          // profile.business.company_size
  kRole,                 // profile.business.role
  kPurchasingInfluence,  // profile.business.purchasing_influence
  kPreferredChannel,     // preferences.preferred_channel  string: email, sms, push, web, phone, direct_mail
  kContactFrequency,     // preferences.contact_frequency  string: daily, weekly, monthly
  kInterests,            // interests                      string list (also preferences.interests)
  kOrdersCount,          // orders.count                   number
  kOrdersTotal,          // orders.total                   number, minor units of the reporting currency
  kOrdersFirstAt,        // orders.first_at                time
  kOrdersLastAt,         // orders.last_at                 time
  kRfmCell,              // rfm.cell                       string, e.g. "champions"
  kRfmR,                 // rfm.r                          number 1–5
  kRfmF,                 // rfm.f                          number 1–5
  kRfmM,                 // rfm.m                          number 1–5
  kClv,                  // clv                            number, predicted 12-month value, minor units
  kEngagement,           // engagement                     number 0–100
  kAnonymous,            // customer.anonymous             bool
  kCreatedAt,            // customer.created_at            time
  kFirstSeenAt,          // customer.first_seen_at         time
  kLastSeenAt,           // customer.last_seen_at          time
};
inline constexpr int kFieldCount = static_cast<int>(Field::kLastSeenAt) + 1;

// Channels and purposes of consents, numbered as ecrm.common.v1.Channel and Purpose.
enum class Channel : int32_t { kEmail = 1, kSms = 2, kPush = 3, kWeb = 4, kPhone = 5, kDirectMail = 6 };
enum class Purpose : int32_t { kMarketing = 1, kProfiling = 2, kService = 3, kTransactional = 4 };

// A field a compiled rule reads, resolved from its name when the rule was checked, so
// evaluation never looks a name up.
struct FieldRef {
  enum class Kind : uint8_t { kBuiltin, kConsent, kAttribute };
  Kind kind = Kind::kBuiltin;
  // kBuiltin: a Field; kConsent: a Channel; kAttribute: the id the Schema gave the attribute.
  int32_t id = 0;
  // kConsent only: a Purpose.
  int32_t purpose = 0;

  static FieldRef Builtin(Field f) { return {Kind::kBuiltin, static_cast<int32_t>(f), 0}; }
  static FieldRef Consent(Channel c, Purpose p) {
    return {Kind::kConsent, static_cast<int32_t>(c), static_cast<int32_t>(p)};
  }
  static FieldRef Attribute(int32_t id) { return {Kind::kAttribute, id, 0}; }
  Field builtin() const { return static_cast<Field>(id); }
  Channel channel() const { return static_cast<Channel>(id); }
  Purpose consent_purpose() const { return static_cast<Purpose>(purpose); }

  friend auto operator<=>(const FieldRef&, const FieldRef&) = default;
  template <typename H>
  friend H AbslHashValue(H h, const FieldRef& f) {
    return H::combine(std::move(h), f.kind, f.id, f.purpose);
  }
};

// A field's value for one customer, as the caller's CustomerView gives it. Strings are views
// into the caller's storage and must stay valid for the duration of the evaluation.
struct Value {
  enum class Kind : uint8_t { kMissing, kBool, kNumber, kString, kTime };
  Kind kind = Kind::kMissing;
  bool boolean = false;
  double number = 0;
  absl::string_view string;
  absl::Time time;

  static Value Missing() { return {}; }
  static Value Bool(bool b) {
    Value v;
    v.kind = Kind::kBool;
    v.boolean = b;
    return v;
  }
  static Value Number(double n) {
    Value v;
    v.kind = Kind::kNumber;
    v.number = n;
    return v;
  }
  static Value String(absl::string_view s) {
    Value v;
    v.kind = Kind::kString;
    v.string = s;
    return v;
  }
  static Value Time(absl::Time t) {
    Value v;
    v.kind = Kind::kTime;
    v.time = t;
    return v;
  }
};

}  // namespace ecrm::rules

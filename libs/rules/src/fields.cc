// The built-in fields: names (with aliases), types, and the schema helpers.
#include <array>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "ecrm/rules/schema.h"

namespace ecrm::rules {
namespace {

struct FieldEntry {
  absl::string_view name;
  Field field;
  Type type;
  bool canonical;  // the name Format prints
};

constexpr FieldEntry kFields[] = {
    {"profile.first_name", Field::kFirstName, Type::kString, true},
    {"profile.last_name", Field::kLastName, Type::kString, true},
    {"profile.birth_date", Field::kBirthDate, Type::kTime, true},
    {"profile.gender", Field::kGender, Type::kString, true},
    {"profile.locale", Field::kLocale, Type::kString, true},
    {"profile.time_zone", Field::kTimeZone, Type::kString, true},
    {"profile.address.line1", Field::kAddressLine1, Type::kString, true},
    {"profile.address.line2", Field::kAddressLine2, Type::kString, true},
    {"profile.address.city", Field::kCity, Type::kString, true},
    {"profile.city", Field::kCity, Type::kString, false},
    {"profile.address.region", Field::kRegion, Type::kString, true},
    {"profile.region", Field::kRegion, Type::kString, false},
    {"profile.address.postal_code", Field::kPostalCode, Type::kString, true},
    {"profile.postal_code", Field::kPostalCode, Type::kString, false},
    {"profile.address.country", Field::kCountry, Type::kString, true},
    {"profile.country", Field::kCountry, Type::kString, false},
    {"profile.business.company", Field::kCompany, Type::kString, true},
    {"profile.company", Field::kCompany, Type::kString, false},
    {"profile.business.industry_sector", Field::kIndustrySector, Type::kString, true},
    {"profile.industry_sector", Field::kIndustrySector, Type::kString, false},
    {"profile.business.company_size", Field::kCompanySize, Type::kString, true},
    {"profile.company_size", Field::kCompanySize, Type::kString, false},
    {"profile.business.role", Field::kRole, Type::kString, true},
    {"profile.role", Field::kRole, Type::kString, false},
    {"profile.business.purchasing_influence", Field::kPurchasingInfluence, Type::kString, true},
    {"profile.purchasing_influence", Field::kPurchasingInfluence, Type::kString, false},
    {"preferences.preferred_channel", Field::kPreferredChannel, Type::kString, true},
    {"preferences.contact_frequency", Field::kContactFrequency, Type::kString, true},
    {"interests", Field::kInterests, Type::kStringList, true},
    {"preferences.interests", Field::kInterests, Type::kStringList, false},
    {"orders.count", Field::kOrdersCount, Type::kNumber, true},
    {"orders.total", Field::kOrdersTotal, Type::kNumber, true},
    {"orders.first_at", Field::kOrdersFirstAt, Type::kTime, true},
    {"orders.last_at", Field::kOrdersLastAt, Type::kTime, true},
    {"rfm.cell", Field::kRfmCell, Type::kString, true},
    {"rfm.r", Field::kRfmR, Type::kNumber, true},
    {"rfm.f", Field::kRfmF, Type::kNumber, true},
    {"rfm.m", Field::kRfmM, Type::kNumber, true},
    {"clv", Field::kClv, Type::kNumber, true},
    {"engagement", Field::kEngagement, Type::kNumber, true},
    {"customer.anonymous", Field::kAnonymous, Type::kBool, true},
    {"customer.created_at", Field::kCreatedAt, Type::kTime, true},
    {"customer.first_seen_at", Field::kFirstSeenAt, Type::kTime, true},
    {"customer.last_seen_at", Field::kLastSeenAt, Type::kTime, true},
};

struct Named {
  absl::string_view name;
  int32_t value;
};
constexpr Named kChannels[] = {{"email", 1}, {"sms", 2}, {"push", 3}, {"web", 4}, {"phone", 5}, {"direct_mail", 6}};
constexpr Named kPurposes[] = {{"marketing", 1}, {"profiling", 2}, {"service", 3}, {"transactional", 4}};

std::optional<int32_t> Lookup(absl::Span<const Named> table, absl::string_view name) {
  for (const Named& n : table) {
    if (n.name == name) return n.value;
  }
  return std::nullopt;
}
absl::string_view NameOf(absl::Span<const Named> table, int32_t value) {
  for (const Named& n : table) {
    if (n.value == value) return n.name;
  }
  return "?";
}

}  // namespace

absl::string_view TypeName(Type type) {
  switch (type) {
    case Type::kBool:
      return "a bool";
    case Type::kNumber:
      return "a number";
    case Type::kString:
      return "a string";
    case Type::kTime:
      return "a time";
    case Type::kDuration:
      return "a duration";
    case Type::kStringList:
      return "a list of strings";
    case Type::kList:
      return "a list";
  }
  return "a value";
}

std::optional<BuiltinField> FindBuiltinField(absl::string_view name) {
  for (const FieldEntry& f : kFields) {
    if (f.name == name) return BuiltinField{FieldRef::Builtin(f.field), f.type};
  }
  // consent.<channel> (marketing) and consent.<channel>.<purpose>.
  if (!absl::StartsWith(name, "consent.")) return std::nullopt;
  absl::string_view rest = name.substr(8);
  absl::string_view purpose = "marketing";
  if (const size_t dot = rest.find('.'); dot != absl::string_view::npos) {
    purpose = rest.substr(dot + 1);
    rest = rest.substr(0, dot);
  }
  const auto c = Lookup(kChannels, rest);
  const auto p = Lookup(kPurposes, purpose);
  if (!c || !p) return std::nullopt;
  return BuiltinField{FieldRef::Consent(static_cast<Channel>(*c), static_cast<Purpose>(*p)), Type::kBool};
}

std::string FieldName(const FieldRef& field) {
  switch (field.kind) {
    case FieldRef::Kind::kBuiltin:
      for (const FieldEntry& f : kFields) {
        if (f.canonical && f.field == field.builtin()) return std::string(f.name);
      }
      return "";
    case FieldRef::Kind::kConsent:
      return absl::StrCat("consent.", NameOf(kChannels, field.id), ".", NameOf(kPurposes, field.purpose));
    case FieldRef::Kind::kAttribute:
      return "";
  }
  return "";
}

std::vector<std::string> BuiltinFieldNames() {
  std::vector<std::string> names;
  for (const FieldEntry& f : kFields) names.emplace_back(f.name);
  for (const Named& c : kChannels) {
    names.push_back(absl::StrCat("consent.", c.name));
    for (const Named& p : kPurposes) names.push_back(absl::StrCat("consent.", c.name, ".", p.name));
  }
  return names;
}

int32_t SimpleSchema::AddAttribute(absl::string_view name, Type type) {
  auto [it, inserted] = attributes_.try_emplace(name, AttributeInfo{static_cast<int32_t>(attributes_.size()), type});
  if (!inserted) it->second.type = type;
  return it->second.id;
}

int32_t SimpleSchema::AddSegment(absl::string_view name) {
  return segments_.try_emplace(name, static_cast<int32_t>(segments_.size())).first->second;
}

int32_t SimpleSchema::EventTypeId(absl::string_view name) const {
  return event_types_.try_emplace(name, static_cast<int32_t>(event_types_.size())).first->second;
}

std::optional<AttributeInfo> SimpleSchema::FindAttribute(absl::string_view name) const {
  auto it = attributes_.find(name);
  if (it == attributes_.end()) return std::nullopt;
  return it->second;
}

std::vector<std::string> SimpleSchema::AttributeNames() const {
  std::vector<std::string> names;
  for (const auto& [name, info] : attributes_) names.push_back(name);
  return names;
}

std::optional<int32_t> SimpleSchema::FindEventType(absl::string_view name) const { return EventTypeId(name); }

std::optional<int32_t> SimpleSchema::FindSegment(absl::string_view name) const {
  auto it = segments_.find(name);
  if (it == segments_.end()) return std::nullopt;
  return it->second;
}

}  // namespace ecrm::rules

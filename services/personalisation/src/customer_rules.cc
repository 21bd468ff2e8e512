#include "customer_rules.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/time/civil_time.h"
#include "ecrm/status/macros.h"

namespace ecrm::personalisation {
namespace {

using rules::Field;
using rules::FieldRef;
using rules::Value;

bool Has(const google::protobuf::Timestamp& t) { return t.seconds() != 0 || t.nanos() != 0; }

Value TimeOf(const google::protobuf::Timestamp& t) {
  return Has(t) ? Value::Time(absl::FromUnixSeconds(t.seconds()) + absl::Nanoseconds(t.nanos())) : Value::Missing();
}

Value Text(const std::string& s) { return s.empty() ? Value::Missing() : Value::String(s); }

// Enum values as rules name them (docs/rules.md): lower case without their prefix.
absl::string_view GenderName(infostore::v1::Gender g) {
  switch (g) {
    case infostore::v1::GENDER_FEMALE:
      return "female";
    case infostore::v1::GENDER_MALE:
      return "male";
    case infostore::v1::GENDER_OTHER:
      return "other";
    case infostore::v1::GENDER_UNDISCLOSED:
      return "undisclosed";
    default:
      return "";
  }
}

absl::string_view ChannelName(common::v1::Channel c) {
  switch (c) {
    case common::v1::CHANNEL_EMAIL:
      return "email";
    case common::v1::CHANNEL_SMS:
      return "sms";
    case common::v1::CHANNEL_PUSH:
      return "push";
    case common::v1::CHANNEL_WEB:
      return "web";
    case common::v1::CHANNEL_PHONE:
      return "phone";
    case common::v1::CHANNEL_DIRECT_MAIL:
      return "direct_mail";
    default:
      return "";
  }
}

absl::string_view FrequencyName(infostore::v1::ContactFrequency f) {
  switch (f) {
    case infostore::v1::CONTACT_FREQUENCY_DAILY:
      return "daily";
    case infostore::v1::CONTACT_FREQUENCY_WEEKLY:
      return "weekly";
    case infostore::v1::CONTACT_FREQUENCY_MONTHLY:
      return "monthly";
    default:
      return "";
  }
}

Value Name(absl::string_view s) { return s.empty() ? Value::Missing() : Value::String(s); }

// "YYYY-MM-DD" → midnight UTC.
Value Date(const std::string& s) {
  absl::CivilDay day;
  if (s.empty() || !absl::ParseCivilTime(s, &day)) return Value::Missing();
  return Value::Time(absl::FromCivil(day, absl::UTCTimeZone()));
}

}  // namespace

int32_t OfferRuleSchema::Intern(Names& names, absl::string_view name) const {
  absl::MutexLock lock(&mu_);
  auto it = names.ids.find(name);
  if (it != names.ids.end()) return it->second;
  const auto id = static_cast<int32_t>(names.names.size());
  names.names.emplace_back(name);
  names.ids.emplace(names.names.back(), id);
  return id;
}

absl::string_view OfferRuleSchema::Name(const Names& names, int32_t id) const {
  absl::ReaderMutexLock lock(&mu_);
  return id >= 0 && static_cast<size_t>(id) < names.names.size() ? absl::string_view(names.names[id])
                                                                 : absl::string_view();
}

std::optional<rules::AttributeInfo> OfferRuleSchema::FindAttribute(absl::string_view name) const {
  return rules::AttributeInfo{.id = Intern(attributes_, name), .type = rules::Type::kString, .inferred = true};
}
std::optional<int32_t> OfferRuleSchema::FindEventType(absl::string_view name) const {
  return Intern(event_types_, name);
}
std::optional<int32_t> OfferRuleSchema::FindSegment(absl::string_view name) const { return Intern(segments_, name); }
absl::string_view OfferRuleSchema::AttributeName(int32_t id) const { return Name(attributes_, id); }
absl::string_view OfferRuleSchema::EventTypeName(int32_t id) const { return Name(event_types_, id); }
absl::string_view OfferRuleSchema::SegmentName(int32_t id) const { return Name(segments_, id); }

absl::StatusOr<rules::Rule> CompileOfferRule(absl::string_view source, const OfferRuleSchema& schema) {
  ECRM_ASSIGN_OR_RETURN(rules::Rule rule, rules::Compile(source, schema));
  for (const rules::Node& n : rule.nodes()) {
    std::string why;
    if (n.op == rules::Op::kEventCount && n.duration != absl::InfiniteDuration()) {
      why =
          "events.count with a window needs each event's time, which offers do not read (the customer's "
          "behaviour summary counts events of all time): drop the window, or make a segment with the rule in "
          "segmentation and name it in segment_ids";
    } else if (n.op == rules::Op::kEventLastAt) {
      why =
          "events.last_at needs each event's time, which offers do not read: use orders.last_at or "
          "customer.last_seen_at, or make a segment with the rule in segmentation and name it in segment_ids";
    } else if (n.op == rules::Op::kField && rule.field(n.aux).kind == FieldRef::Kind::kBuiltin) {
      const Field f = rule.field(n.aux).builtin();
      if (f == Field::kRfmCell || f == Field::kRfmR || f == Field::kRfmF || f == Field::kRfmM || f == Field::kClv ||
          f == Field::kEngagement) {
        why = absl::StrCat(rule.field_name(n.aux),
                           " is a score segmentation computes over all customers: make a segment with the rule in "
                           "segmentation and name it in segment_ids");
      }
    }
    if (!why.empty()) return absl::InvalidArgumentError(absl::StrCat(rules::Position(source, n.begin), ": ", why));
  }
  return rule;
}

RuleNames NamesOf(const rules::Rule& rule, const OfferRuleSchema& schema) {
  RuleNames out;
  for (const FieldRef& f : rule.dependencies().fields) {
    if (f.kind == FieldRef::Kind::kAttribute) out.attributes.emplace_back(f.id, schema.AttributeName(f.id));
  }
  for (int32_t id : rule.dependencies().event_types) out.event_types.emplace_back(id, schema.EventTypeName(id));
  for (int32_t id : rule.dependencies().segments) out.segments.emplace_back(id, schema.SegmentName(id));
  return out;
}

Value CustomerRuleView::Field(const FieldRef& field) const {
  const infostore::v1::Customer& c = customer_;
  const infostore::v1::Profile& p = c.profile();
  switch (field.kind) {
    case FieldRef::Kind::kConsent:
      for (const infostore::v1::Consent& consent : c.consents()) {
        if (consent.channel() == field.id && consent.purpose() == field.purpose) {
          return Value::Bool(consent.status() == infostore::v1::CONSENT_STATUS_GRANTED);
        }
      }
      return Value::Bool(false);
    case FieldRef::Kind::kAttribute: {
      const auto it = c.attributes().find(std::string(RuleNames::Find(names_.attributes, field.id)));
      if (it == c.attributes().end()) return Value::Missing();
      const common::v1::AttributeValue& v = it->second;
      switch (v.value_case()) {
        case common::v1::AttributeValue::kStringValue:
          return Value::String(v.string_value());
        case common::v1::AttributeValue::kIntValue:
          return Value::Number(static_cast<double>(v.int_value()));
        case common::v1::AttributeValue::kDoubleValue:
          return Value::Number(v.double_value());
        case common::v1::AttributeValue::kBoolValue:
          return Value::Bool(v.bool_value());
        case common::v1::AttributeValue::kTimeValue:
          return TimeOf(v.time_value());
        default:
          return Value::Missing();
      }
    }
    case FieldRef::Kind::kBuiltin:
      break;
  }
  const infostore::v1::BehaviourSummary& b = c.behaviour();
  switch (field.builtin()) {
    case Field::kFirstName:
      return Text(p.first_name());
    case Field::kLastName:
      return Text(p.last_name());
    case Field::kBirthDate:
      return Date(p.birth_date());
    case Field::kGender:
      return Name(GenderName(p.gender()));
    case Field::kLocale:
      return Text(p.locale());
    case Field::kTimeZone:
      return Text(p.time_zone());
    case Field::kAddressLine1:
      return Text(p.address().line1());
    case Field::kAddressLine2:
      return Text(p.address().line2());
    case Field::kCity:
      return Text(p.address().city());
    case Field::kRegion:
      return Text(p.address().region());
    case Field::kPostalCode:
      return Text(p.address().postal_code());
    case Field::kCountry:
      return Text(p.address().country());
    case Field::kCompany:
      return Text(p.business().company());
    case Field::kIndustrySector:
      return Text(p.business().industry_sector());
    case Field::kCompanySize:
      return Text(p.business().company_size());
    case Field::kRole:
      return Text(p.business().role());
    case Field::kPurchasingInfluence:
      return Text(p.business().purchasing_influence());
    case Field::kPreferredChannel:
      return Name(ChannelName(c.preferences().preferred_channel()));
    case Field::kContactFrequency:
      return Name(FrequencyName(c.preferences().contact_frequency()));
    case Field::kOrdersCount:
      return Value::Number(static_cast<double>(std::max<int64_t>(b.order_count(), 0)));
    case Field::kOrdersTotal:
      return Value::Number(static_cast<double>(b.total_spent().amount_minor()));
    case Field::kOrdersFirstAt:
      return TimeOf(b.first_order_at());
    case Field::kOrdersLastAt:
      return TimeOf(b.last_order_at());
    case Field::kAnonymous:
      return Value::Bool(c.anonymous());
    case Field::kCreatedAt:
      return TimeOf(c.created_at());
    case Field::kFirstSeenAt:
      return TimeOf(b.first_seen_at());
    case Field::kLastSeenAt:
      return TimeOf(b.last_seen_at());
    default:
      return Value::Missing();  // segmentation's scores: refused when an offer is saved
  }
}

bool CustomerRuleView::ListContains(const FieldRef&, absl::string_view item) const {
  for (const std::string& interest : customer_.preferences().interests()) {
    if (interest == item) return true;
  }
  return false;
}

int64_t CustomerRuleView::EventCount(int32_t event_type, absl::Duration, absl::Time) const {
  const auto& counts = customer_.behaviour().event_counts();
  const auto it = counts.find(std::string(RuleNames::Find(names_.event_types, event_type)));
  return it == counts.end() ? 0 : it->second;
}

bool CustomerRuleView::InSegment(int32_t segment) const {
  return segments_ != nullptr && segments_->contains(RuleNames::Find(names_.segments, segment));
}

}  // namespace ecrm::personalisation

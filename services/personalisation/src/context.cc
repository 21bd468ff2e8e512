#include "context.h"

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "format.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/reflection.h"

namespace ecrm::personalisation {
namespace {

using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::Reflection;
using mustache::Value;

constexpr absl::string_view kTimestamp = "google.protobuf.Timestamp";
constexpr absl::string_view kMoney = "ecrm.common.v1.Money";
constexpr absl::string_view kAttributeValue = "ecrm.common.v1.AttributeValue";

// CHANNEL_EMAIL -> "email": the value's name without its enum's prefix (the UNSPECIFIED
// value's name up to "UNSPECIFIED").
std::string EnumName(const google::protobuf::EnumValueDescriptor* v) {
  const google::protobuf::EnumValueDescriptor* zero = v->type()->FindValueByNumber(0);
  std::string name = v->name();
  if (zero != nullptr && absl::EndsWith(zero->name(), "UNSPECIFIED")) {
    absl::string_view prefix = absl::string_view(zero->name()).substr(0, zero->name().size() - 11);
    if (absl::StartsWith(name, prefix)) name = name.substr(prefix.size());
  }
  absl::AsciiStrToLower(&name);
  return name;
}

absl::Time TimestampOf(const Message& m) {
  const Reflection* r = m.GetReflection();
  const auto* d = m.GetDescriptor();
  return absl::FromUnixSeconds(r->GetInt64(m, d->FindFieldByName("seconds"))) +
         absl::Nanoseconds(r->GetInt32(m, d->FindFieldByName("nanos")));
}

struct Builder {
  absl::string_view locale;
  absl::string_view time_zone;

  // Sets `name` in `map` from a singular message field's value (with its _formatted sibling).
  void SetMessage(Value& map, const std::string& name, const Message& m) const {
    absl::string_view type = m.GetDescriptor()->full_name();
    if (type == kTimestamp) {
      absl::Time t = TimestampOf(m);
      map.Set(name, absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", t, absl::UTCTimeZone()));
      map.Set(name + "_formatted", FormatDate(t, locale, time_zone));
    } else if (type == kMoney) {
      const auto& money = static_cast<const common::v1::Money&>(m);
      Value v = Value::Map();
      v.Set("amount_minor", absl::StrCat(money.amount_minor()));
      v.Set("currency", money.currency());
      v.Set("amount", DecimalAmount(money.amount_minor(), money.currency()));
      map.Set(name, std::move(v));
      map.Set(name + "_formatted", FormatMoney(money.amount_minor(), money.currency(), locale));
    } else if (type == kAttributeValue) {
      SetAttribute(map, name, static_cast<const common::v1::AttributeValue&>(m));
    } else {
      map.Set(name, Of(m));
    }
  }

  void SetAttribute(Value& map, const std::string& name, const common::v1::AttributeValue& a) const {
    switch (a.value_case()) {
      case common::v1::AttributeValue::kStringValue:
        if (!a.string_value().empty()) map.Set(name, a.string_value());
        break;
      case common::v1::AttributeValue::kIntValue:
        map.Set(name, absl::StrCat(a.int_value()));
        break;
      case common::v1::AttributeValue::kDoubleValue:
        map.Set(name, absl::StrCat(a.double_value()));
        break;
      case common::v1::AttributeValue::kBoolValue:
        map.Set(name, Value::Bool(a.bool_value()));
        break;
      case common::v1::AttributeValue::kTimeValue:
        SetMessage(map, name, a.time_value());
        break;
      case common::v1::AttributeValue::VALUE_NOT_SET:
        break;
    }
  }

  // A scalar field's value as text (numbers) or a boolean; null for an absent one.
  Value Scalar(const Message& m, const FieldDescriptor* f, int index) const {
    const Reflection* r = m.GetReflection();
    bool rep = index >= 0;
    switch (f->cpp_type()) {
      case FieldDescriptor::CPPTYPE_STRING: {
        std::string s = rep ? r->GetRepeatedString(m, f, index) : r->GetString(m, f);
        return s.empty() ? Value() : Value::String(std::move(s));
      }
      case FieldDescriptor::CPPTYPE_INT32:
        return Value::String(absl::StrCat(rep ? r->GetRepeatedInt32(m, f, index) : r->GetInt32(m, f)));
      case FieldDescriptor::CPPTYPE_INT64:
        return Value::String(absl::StrCat(rep ? r->GetRepeatedInt64(m, f, index) : r->GetInt64(m, f)));
      case FieldDescriptor::CPPTYPE_UINT32:
        return Value::String(absl::StrCat(rep ? r->GetRepeatedUInt32(m, f, index) : r->GetUInt32(m, f)));
      case FieldDescriptor::CPPTYPE_UINT64:
        return Value::String(absl::StrCat(rep ? r->GetRepeatedUInt64(m, f, index) : r->GetUInt64(m, f)));
      case FieldDescriptor::CPPTYPE_DOUBLE:
        return Value::String(absl::StrCat(rep ? r->GetRepeatedDouble(m, f, index) : r->GetDouble(m, f)));
      case FieldDescriptor::CPPTYPE_FLOAT:
        return Value::String(absl::StrCat(rep ? r->GetRepeatedFloat(m, f, index) : r->GetFloat(m, f)));
      case FieldDescriptor::CPPTYPE_BOOL:
        return Value::Bool(rep ? r->GetRepeatedBool(m, f, index) : r->GetBool(m, f));
      case FieldDescriptor::CPPTYPE_ENUM: {
        const auto* v = rep ? r->GetRepeatedEnum(m, f, index) : r->GetEnum(m, f);
        return v->number() == 0 ? Value() : Value::String(EnumName(v));
      }
      case FieldDescriptor::CPPTYPE_MESSAGE:
        break;
    }
    return Value();
  }

  Value Of(const Message& m) const {
    Value out = Value::Map();
    const Reflection* r = m.GetReflection();
    const auto* d = m.GetDescriptor();
    for (int i = 0; i < d->field_count(); ++i) {
      const FieldDescriptor* f = d->field(i);
      const std::string& name = f->name();
      if (f->is_map()) {
        // map<string, X>: a map keyed by the entries' keys.
        Value entries = Value::Map();
        const FieldDescriptor* key = f->message_type()->map_key();
        const FieldDescriptor* value = f->message_type()->map_value();
        for (int j = 0; j < r->FieldSize(m, f); ++j) {
          const Message& entry = r->GetRepeatedMessage(m, f, j);
          std::string k = entry.GetReflection()->GetString(entry, key);
          if (value->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
            SetMessage(entries, k, entry.GetReflection()->GetMessage(entry, value));
          } else {
            Value v = Scalar(entry, value, -1);
            if (v.kind() != Value::Kind::kNull) entries.Set(k, std::move(v));
          }
        }
        out.Set(name, std::move(entries));
      } else if (f->is_repeated()) {
        Value list = Value::List();
        for (int j = 0; j < r->FieldSize(m, f); ++j) {
          if (f->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
            // A repeated Money or Timestamp is a list of their maps / text.
            Value holder = Value::Map();
            SetMessage(holder, "v", r->GetRepeatedMessage(m, f, j));
            list.Append(std::move(*holder.FindMutable("v")));
          } else {
            Value v = Scalar(m, f, j);
            if (v.kind() != Value::Kind::kNull) list.Append(std::move(v));
          }
        }
        out.Set(name, std::move(list));
      } else if (f->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
        if (r->HasField(m, f)) SetMessage(out, name, r->GetMessage(m, f));
      } else {
        Value v = Scalar(m, f, -1);
        if (v.kind() != Value::Kind::kNull) out.Set(name, std::move(v));
      }
    }
    return out;
  }
};

}  // namespace

Value MessageValue(const Message& message, absl::string_view locale, absl::string_view time_zone) {
  return Builder{locale, time_zone}.Of(message);
}

Value CustomerContext(const infostore::v1::Customer& customer, absl::string_view locale) {
  Builder b{locale, customer.profile().time_zone()};
  Value root = Value::Map();
  Value c = Value::Map();
  c.Set("id", customer.id());
  root.Set("customer", std::move(c));
  root.Set("profile", b.Of(customer.profile()));
  Value attributes = Value::Map();
  for (const auto& [name, value] : customer.attributes()) b.SetAttribute(attributes, name, value);
  root.Set("attributes", std::move(attributes));
  root.Set("preferences", b.Of(customer.preferences()));
  root.Set("behaviour", b.Of(customer.behaviour()));
  return root;
}

Value SharedContext(const MessageInputs& inputs, absl::string_view locale, absl::string_view time_zone) {
  return SharedContext(inputs, locale, time_zone, nullptr);
}

Value SharedContext(const MessageInputs& inputs, absl::string_view locale, absl::string_view time_zone,
                    ContextCache* cache) {
  Builder b{locale, time_zone};
  // One offer's or recommendation's map, from the cache when it has it.
  std::string key;
  auto of = [&](const Message& m) -> Value {
    if (cache == nullptr) return b.Of(m);
    key.assign(locale.data(), locale.size());
    key.push_back('\0');
    key.append(time_zone.data(), time_zone.size());
    key.push_back('\0');
    key.append(m.GetDescriptor()->name());
    key.push_back('\0');
    m.AppendToString(&key);
    if (cache->items.size() > 10000) cache->items.clear();
    auto [it, added] = cache->items.try_emplace(key);
    if (added) it->second = b.Of(m);
    return it->second;
  };
  Value root = Value::Map();
  Value offers = Value::List();
  if (inputs.offers != nullptr) {
    for (const v1::Offer& o : *inputs.offers) offers.Append(of(o));
  }
  root.Set("offers", std::move(offers));
  if (inputs.offer != nullptr) root.Set("offer", of(*inputs.offer));
  Value recommendations = Value::List();
  if (inputs.recommendations != nullptr) {
    for (const v1::Recommendation& r : *inputs.recommendations) recommendations.Append(of(r));
  }
  root.Set("recommendations", std::move(recommendations));
  Value vars = Value::Map();
  if (inputs.vars != nullptr) {
    for (const auto& [name, value] : *inputs.vars) vars.Set(name, value);
  }
  root.Set("vars", std::move(vars));
  if (!locale.empty()) root.Set("locale", std::string(locale));
  for (absl::string_view p : kBroadcastPlaceholders) root.Set(p, absl::StrCat("{{", p, "}}"));
  return root;
}

Value BuildContext(const infostore::v1::Customer& customer, const MessageInputs& inputs, absl::string_view locale) {
  Value root = SharedContext(inputs, locale, customer.profile().time_zone());
  Value own = CustomerContext(customer, locale);
  for (size_t i = 0; i < own.keys().size(); ++i) root.Set(own.keys()[i], own.items()[i]);
  return root;
}

}  // namespace ecrm::personalisation

#include "survivorship.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/reflection.h>

#include <algorithm>
#include <map>
#include <set>
#include <string>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/civil_time.h"
#include "absl/time/clock.h"
#include "ecrm/util/util.h"

namespace ecrm::infostore {
namespace {

using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using internal::CustomerRecord;
using util::Invalid;
using util::Micros;

// A leaf of Profile ("profile.address.city") and the fields leading to it.
struct Leaf {
  std::string path;
  std::vector<const FieldDescriptor*> chain;
};

void CollectLeaves(const google::protobuf::Descriptor* d, const std::string& prefix,
                   std::vector<const FieldDescriptor*> chain, std::vector<Leaf>& out) {
  for (int i = 0; i < d->field_count(); ++i) {
    const FieldDescriptor* f = d->field(i);
    auto c = chain;
    c.push_back(f);
    std::string path = absl::StrCat(prefix, ".", f->name());
    if (f->type() == FieldDescriptor::TYPE_MESSAGE) {
      CollectLeaves(f->message_type(), path, c, out);
    } else {
      out.push_back({path, c});
    }
  }
}

const std::vector<Leaf>& ProfileLeaves() {
  static const auto* leaves = [] {
    auto* v = new std::vector<Leaf>();
    CollectLeaves(v1::Profile::descriptor(), "profile", {}, *v);
    return v;
  }();
  return *leaves;
}

// The message holding the leaf, or null when an enclosing message is unset.
const Message* Holder(const Message& root, const Leaf& leaf) {
  const Message* m = &root;
  for (size_t i = 0; i + 1 < leaf.chain.size(); ++i) {
    if (!m->GetReflection()->HasField(*m, leaf.chain[i])) return nullptr;
    m = &m->GetReflection()->GetMessage(*m, leaf.chain[i]);
  }
  return m;
}

Message* MutableHolder(Message* root, const Leaf& leaf) {
  Message* m = root;
  for (size_t i = 0; i + 1 < leaf.chain.size(); ++i) m = m->GetReflection()->MutableMessage(m, leaf.chain[i]);
  return m;
}

void CopyLeaf(const v1::Profile& from, v1::Profile* to, const Leaf& leaf) {
  const FieldDescriptor* f = leaf.chain.back();
  const Message* src = Holder(from, leaf);
  Message* dst = MutableHolder(to, leaf);
  if (src == nullptr) {
    dst->GetReflection()->ClearField(dst, f);
  } else if (f->type() == FieldDescriptor::TYPE_ENUM) {
    dst->GetReflection()->SetEnumValue(dst, f, src->GetReflection()->GetEnumValue(*src, f));
  } else {
    dst->GetReflection()->SetString(dst, f, src->GetReflection()->GetString(*src, f));
  }
}

// The leaf's value as text (enums by number), for comparisons.
std::string LeafValue(const v1::Profile& p, const Leaf& leaf) {
  const Message* m = Holder(p, leaf);
  if (m == nullptr) return "";
  const FieldDescriptor* f = leaf.chain.back();
  if (f->type() == FieldDescriptor::TYPE_ENUM) {
    int v = m->GetReflection()->GetEnumValue(*m, f);
    return v == 0 ? "" : absl::StrCat(v);
  }
  return m->GetReflection()->GetString(*m, f);
}

bool LeafEmpty(const v1::Profile& p, const Leaf& leaf) { return LeafValue(p, leaf).empty(); }

// Restrictiveness of a consent status: a merge keeps the most restrictive.
int Restrictiveness(v1::ConsentStatus s) {
  switch (s) {
    case v1::CONSENT_STATUS_WITHDRAWN:
      return 4;
    case v1::CONSENT_STATUS_DENIED:
      return 3;
    case v1::CONSENT_STATUS_PENDING_CONFIRMATION:
      return 2;
    case v1::CONSENT_STATUS_GRANTED:
      return 1;
    default:
      return 0;
  }
}

}  // namespace

absl::Status ValidateProfile(const v1::Profile& p) {
  for (const Leaf& leaf : ProfileLeaves()) {
    const Message* m = Holder(p, leaf);
    if (m == nullptr || leaf.chain.back()->type() != FieldDescriptor::TYPE_STRING) continue;
    if (m->GetReflection()->GetString(*m, leaf.chain.back()).size() > 256) {
      return Invalid(leaf.path, "is longer than 256 characters");
    }
  }
  if (!p.birth_date().empty()) {
    absl::CivilDay day;
    if (!absl::ParseCivilTime(p.birth_date(), &day) || day > absl::ToCivilDay(absl::Now(), absl::UTCTimeZone()) ||
        day.year() < 1900) {
      return Invalid("profile.birth_date", "is not a past date as YYYY-MM-DD (from 1900)");
    }
  }
  if (!p.time_zone().empty()) {
    absl::TimeZone tz;
    if (!absl::LoadTimeZone(p.time_zone(), &tz)) {
      return Invalid("profile.time_zone", "is not an IANA time zone name such as Europe/London");
    }
  }
  const std::string& country = p.address().country();
  if (!country.empty() &&
      (country.size() != 2 || !absl::ascii_isupper(country[0]) || !absl::ascii_isupper(country[1]))) {
    return Invalid("profile.address.country", "must be an ISO 3166-1 alpha-2 code such as \"GB\"");
  }
  if (!v1::Gender_IsValid(p.gender())) return Invalid("profile.gender", "is not a known value");
  return absl::OkStatus();
}

int SurvivorshipRules::Rank(common::v1::Touchpoint source) const {
  auto it = std::find(source_priority.begin(), source_priority.end(), source);
  return static_cast<int>(it - source_priority.begin());  // unlisted: after every listed one
}

absl::Status ApplyProfileUpdate(const SurvivorshipRules& rules, const v1::UpsertCustomerRequest& request,
                                int64_t now_us, CustomerRecord& record) {
  // Which leaves the request writes: those under each mask path, or every non-empty one.
  std::vector<const Leaf*> leaves;
  if (request.has_update_mask() && request.update_mask().paths_size() > 0) {
    for (int i = 0; i < request.update_mask().paths_size(); ++i) {
      const std::string& path = request.update_mask().paths(i);
      size_t before = leaves.size();
      for (const Leaf& leaf : ProfileLeaves()) {
        if (leaf.path == path || absl::StartsWith(leaf.path, path + ".")) leaves.push_back(&leaf);
      }
      if (leaves.size() == before) {
        return Invalid(
            absl::StrCat("update_mask.paths[", i, "]"),
            absl::StrCat("\"", path, "\" is not a profile field (e.g. profile.first_name, profile.address)"));
      }
    }
  } else {
    for (const Leaf& leaf : ProfileLeaves()) {
      if (!LeafEmpty(request.profile(), leaf)) leaves.push_back(&leaf);
    }
  }
  v1::Profile* profile = record.mutable_customer()->mutable_profile();
  const bool by_priority = !rules.source_priority.empty();
  for (const Leaf* leaf : leaves) {
    auto prov = record.provenance().find(leaf->path);
    if (by_priority && !LeafEmpty(*profile, *leaf) && prov != record.provenance().end() &&
        rules.Rank(request.source()) > rules.Rank(prov->second.source())) {
      continue;  // a lower-priority source never overwrites a higher one
    }
    if (LeafValue(request.profile(), *leaf) == LeafValue(*profile, *leaf)) continue;  // no change, keep provenance
    CopyLeaf(request.profile(), profile, *leaf);
    internal::FieldSource& fs = (*record.mutable_provenance())[leaf->path];
    fs.set_source(request.source());
    fs.set_updated_at_us(now_us);
  }
  auto* attributes = record.mutable_customer()->mutable_attributes();
  for (const auto& [name, value] : request.attributes()) {
    if (value.value_case() == common::v1::AttributeValue::VALUE_NOT_SET) {
      attributes->erase(name);
    } else {
      (*attributes)[name] = value;
    }
  }
  if (static_cast<int>(attributes->size()) > rules.max_attributes) {
    return Invalid("attributes", absl::StrCat("a customer may have at most ", rules.max_attributes,
                                              " attributes; this would make ", attributes->size()));
  }
  return absl::OkStatus();
}

std::vector<v1::ConsentChange> MergeRecords(const SurvivorshipRules& rules, CustomerRecord& survivor,
                                            absl::Span<const CustomerRecord> others) {
  v1::Customer& s = *survivor.mutable_customer();
  std::vector<const CustomerRecord*> all = {&survivor};
  for (const CustomerRecord& o : others) all.push_back(&o);

  // Profile: per field, by source priority (if configured), then the most recent non-empty.
  const v1::Profile survivor_profile = s.profile();
  for (const Leaf& leaf : ProfileLeaves()) {
    const CustomerRecord* best = nullptr;
    internal::FieldSource best_fs;
    for (const CustomerRecord* r : all) {
      const v1::Profile& p = r == &survivor ? survivor_profile : r->customer().profile();
      if (LeafEmpty(p, leaf)) continue;
      auto it = r->provenance().find(leaf.path);
      internal::FieldSource fs = it == r->provenance().end() ? internal::FieldSource() : it->second;
      bool better = best == nullptr;
      if (!better && !rules.source_priority.empty() && rules.Rank(fs.source()) != rules.Rank(best_fs.source())) {
        better = rules.Rank(fs.source()) < rules.Rank(best_fs.source());
      } else if (!better) {
        better = fs.updated_at_us() > best_fs.updated_at_us();
      }
      if (better) {
        best = r;
        best_fs = fs;
      }
    }
    if (best == nullptr || best == &survivor) continue;
    CopyLeaf(best->customer().profile(), s.mutable_profile(), leaf);
    (*survivor.mutable_provenance())[leaf.path] = best_fs;
  }

  // Consents: the most restrictive status per channel and purpose; a withdrawal is never lost.
  std::map<std::pair<int, int>, v1::Consent> consents;
  for (const CustomerRecord* r : all) {
    for (const v1::Consent& cons : r->customer().consents()) {
      auto key = std::make_pair(static_cast<int>(cons.channel()), static_cast<int>(cons.purpose()));
      auto it = consents.find(key);
      if (it == consents.end() || Restrictiveness(cons.status()) > Restrictiveness(it->second.status()) ||
          (Restrictiveness(cons.status()) == Restrictiveness(it->second.status()) &&
           Micros(cons.updated_at()) > Micros(it->second.updated_at()))) {
        consents[key] = cons;
      }
    }
  }
  std::map<std::pair<int, int>, v1::ConsentStatus> before_status;
  for (const v1::Consent& cons : s.consents()) {
    before_status[{static_cast<int>(cons.channel()), static_cast<int>(cons.purpose())}] = cons.status();
  }
  s.clear_consents();
  std::vector<v1::ConsentChange> changes;
  for (auto& [key, cons] : consents) {
    *s.add_consents() = cons;
    auto was = before_status.find(key);
    v1::ConsentStatus previous = was == before_status.end() ? v1::CONSENT_STATUS_UNSPECIFIED : was->second;
    if (previous == cons.status()) continue;
    v1::ConsentChange& change = changes.emplace_back();
    *change.mutable_consent() = cons;
    change.set_previous_status(previous);
    change.set_reason("merge");
  }

  // Identifiers, attributes, preferences and behaviour are combined.
  std::set<std::string> interests(s.preferences().interests().begin(), s.preferences().interests().end());
  v1::BehaviourSummary& b = *s.mutable_behaviour();
  for (const CustomerRecord& o : others) {
    const v1::Customer& oc = o.customer();
    for (const auto& id : oc.identifiers()) *s.add_identifiers() = id;
    for (const auto& [name, value] : oc.attributes()) s.mutable_attributes()->insert({name, value});
    for (const auto& i : oc.preferences().interests()) interests.insert(i);
    v1::Preferences& p = *s.mutable_preferences();
    if (p.preferred_channel() == 0) p.set_preferred_channel(oc.preferences().preferred_channel());
    if (p.contact_frequency() == 0) p.set_contact_frequency(oc.preferences().contact_frequency());
    if (!p.has_quiet_hours() && oc.preferences().has_quiet_hours())
      *p.mutable_quiet_hours() = oc.preferences().quiet_hours();
    const v1::BehaviourSummary& ob = oc.behaviour();
    if (ob.has_first_seen_at() && (!b.has_first_seen_at() || Micros(ob.first_seen_at()) < Micros(b.first_seen_at()))) {
      *b.mutable_first_seen_at() = ob.first_seen_at();
    }
    if (ob.has_last_seen_at() && (!b.has_last_seen_at() || Micros(ob.last_seen_at()) > Micros(b.last_seen_at()))) {
      *b.mutable_last_seen_at() = ob.last_seen_at();
    }
    if (ob.has_last_order_at() && (!b.has_last_order_at() || Micros(ob.last_order_at()) > Micros(b.last_order_at()))) {
      *b.mutable_last_order_at() = ob.last_order_at();
    }
    if (ob.has_first_order_at() &&
        (!b.has_first_order_at() || Micros(ob.first_order_at()) < Micros(b.first_order_at()))) {
      *b.mutable_first_order_at() = ob.first_order_at();
    }
    for (const auto& [type, n] : ob.event_counts()) (*b.mutable_event_counts())[type] += n;
    b.set_order_count(b.order_count() + ob.order_count());
    if (ob.has_total_spent() &&
        (b.total_spent().currency().empty() || b.total_spent().currency() == ob.total_spent().currency())) {
      b.mutable_total_spent()->set_currency(ob.total_spent().currency());
      b.mutable_total_spent()->set_amount_minor(b.total_spent().amount_minor() + ob.total_spent().amount_minor());
    }
    s.add_merged_ids(oc.id());
    for (const auto& m : oc.merged_ids()) s.add_merged_ids(m);
  }
  s.mutable_preferences()->clear_interests();
  for (const auto& i : interests) s.mutable_preferences()->add_interests(i);

  return changes;
}

}  // namespace ecrm::infostore

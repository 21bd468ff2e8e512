#include "identity.h"

#include <algorithm>
#include <tuple>

#include "identifiers.h"

namespace ecrm::infostore {
namespace {

// Adds `c` unless a customer with its id is there already.
void Add(std::vector<const NamedCustomer*>& v, const NamedCustomer& c) {
  if (std::none_of(v.begin(), v.end(), [&](const NamedCustomer* p) { return p->id == c.id; })) v.push_back(&c);
}

// Identifiers in key order (type, source, value), compared without copying them.
bool KeyLess(const common::v1::Identifier& a, const common::v1::Identifier& b) {
  if (a.type() != b.type()) return a.type() < b.type();
  return std::tie(a.source(), a.value()) < std::tie(b.source(), b.value());
}

}  // namespace

IdentityPlan ResolveIdentity(const NamedCustomer& by_id, absl::Span<const RequestIdentifier> identifiers) {
  // Who already owns the request's identifiers?
  std::vector<const NamedCustomer*> strong, device;
  bool request_is_strong = !by_id.id.empty();
  if (!by_id.id.empty()) Add(strong, by_id);
  for (const RequestIdentifier& i : identifiers) {
    const bool is_strong = IsStrong(i.identifier->type());
    request_is_strong = request_is_strong || is_strong;
    if (!i.owner.id.empty()) Add(is_strong ? strong : device, i.owner);
  }
  // Strong matches may merge. A device id joins an anonymous customer but never fuses two
  // identified people; an identified device owner is the target only of a device-only request.
  std::vector<const NamedCustomer*> participants = strong;
  for (const NamedCustomer* d : device) {
    const bool have_identified =
        std::any_of(participants.begin(), participants.end(), [](const NamedCustomer* p) { return !p->anonymous; });
    if (d->anonymous || (!request_is_strong && !have_identified)) Add(participants, *d);
  }
  std::sort(participants.begin(), participants.end(), [](const NamedCustomer* a, const NamedCustomer* b) {
    return std::tie(a->created_at_us, a->id) < std::tie(b->created_at_us, b->id);  // the oldest survives
  });
  IdentityPlan plan;
  plan.participants.reserve(participants.size());
  for (const NamedCustomer* p : participants) plan.participants.emplace_back(p->id);

  // New identifiers: those nobody owns (owned by a participant, now the survivor, or left with
  // their owner otherwise), each once, the first time it appears.
  for (size_t i = 0; i < identifiers.size(); ++i) {
    if (identifiers[i].owner.id.empty()) plan.insert_order.push_back(i);
  }
  auto key_less = [&](size_t a, size_t b) { return KeyLess(*identifiers[a].identifier, *identifiers[b].identifier); };
  std::stable_sort(plan.insert_order.begin(), plan.insert_order.end(), key_less);
  plan.insert_order.erase(std::unique(plan.insert_order.begin(), plan.insert_order.end(),
                                      [&](size_t a, size_t b) { return !key_less(a, b) && !key_less(b, a); }),
                          plan.insert_order.end());
  plan.new_identifiers = plan.insert_order;
  std::sort(plan.new_identifiers.begin(), plan.new_identifiers.end());
  return plan;
}

}  // namespace ecrm::infostore

// Identity resolution: who an UpsertCustomer request is, from the facts the store looked up
// (which customers own the request's identifiers, whether each is anonymous, when each was
// created). A pure function, no database: CustomerStore::Upsert gathers the facts and carries
// out the plan.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "ecrm/common/v1/common.pb.h"

namespace ecrm::infostore {

// A live customer the request names, and what resolution needs to know of it.
struct NamedCustomer {
  absl::string_view id;  // empty: none
  bool anonymous = false;
  int64_t created_at_us = 0;
};

// One identifier of the request (normalised) and the customer that owns it, if anyone does.
struct RequestIdentifier {
  const common::v1::Identifier* identifier = nullptr;
  NamedCustomer owner;
};

struct IdentityPlan {
  // The customers the request is, oldest first (created_at, then id): the first survives and
  // the others are merged into it. Empty: the request is a new customer.
  std::vector<std::string> participants;
  // The identifiers nobody owns yet, which the customer gains, as indexes into the request's
  // identifiers (a repeated one once): in request order, as the customer's record lists them,
  // and in key order, as they are inserted (two upserts claiming the same new identifiers then
  // queue instead of deadlocking).
  std::vector<size_t> new_identifiers;
  std::vector<size_t> insert_order;

  bool create() const { return participants.empty(); }
  bool merge() const { return participants.size() > 1; }
};

// `by_id` is the customer the request names by customer_id (merges followed; id empty when it
// names none). Strong identifiers and customer_id name a person: every customer owning one is
// that person, and several are merged. A device id owned by an anonymous customer joins the
// request (a login claims its device history); one owned by an identified customer never fuses
// two identified people (a shared computer): it joins only a request with no strong identifier
// while no identified customer is among the participants yet. An identifier whose owner does
// not join stays with its owner.
IdentityPlan ResolveIdentity(const NamedCustomer& by_id, absl::Span<const RequestIdentifier> identifiers);

}  // namespace ecrm::infostore

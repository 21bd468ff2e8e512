// Survivorship: which value of a customer's record survives when a source writes it or when
// records are merged. Pure functions over records; the callers own the transactions and write
// what these return (consent history rows, merge rows).
#pragma once

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "ecrm/common/v1/common.pb.h"
#include "ecrm/infostore/internal/record.pb.h"
#include "ecrm/infostore/v1/infostore.pb.h"

namespace ecrm::infostore {

namespace v1 = ::ecrm::infostore::v1;

struct SurvivorshipRules {
  // Empty: the most recent non-empty value of a profile field wins. Otherwise the touchpoints in
  // descending priority: a value from a higher-priority source is never overwritten by a lower
  // one; unlisted sources rank last.
  std::vector<common::v1::Touchpoint> source_priority;
  int max_attributes = 100;

  // The source's place in source_priority (0 first); unlisted: after every listed one.
  int Rank(common::v1::Touchpoint source) const;
};

// INVALID_ARGUMENT naming the profile field and its rule (lengths, birth date, time zone,
// country, gender), never the value.
absl::Status ValidateProfile(const v1::Profile& profile);

// Applies an upsert's profile and attributes to `record`. The fields written are those under
// the update mask's paths (INVALID_ARGUMENT for a path that is not a profile field), or else
// every non-empty one. A field written with a new value records its source and `now_us` as its
// provenance; an unchanged value keeps its provenance; by priority, a lower-priority source
// never overwrites a non-empty value from a higher one. An attribute without a value is
// removed; more than max_attributes is INVALID_ARGUMENT.
absl::Status ApplyProfileUpdate(const SurvivorshipRules& rules, const v1::UpsertCustomerRequest& request,
                                int64_t now_us, internal::CustomerRecord& record);

// Combines `others` into `survivor`: per profile field the value by source priority (when
// configured), then the most recent non-empty one, with its provenance; per channel and purpose
// the most restrictive consent (withdrawn > denied > pending > granted; the later decision
// among equals), so a withdrawal is never lost; identifiers, attributes (the survivor's first)
// and interests united; preferences the survivor does not set taken from the others; behaviour
// summaries added (first seen the earliest, last seen and last order the latest, totals where
// their currency is the survivor's, or the first one when it has none); the others' ids and merged ids become the
// survivor's merged ids. Returns the survivor's consents whose status changed, each as a history entry with reason
// "merge", by channel and purpose.
std::vector<v1::ConsentChange> MergeRecords(const SurvivorshipRules& rules, internal::CustomerRecord& survivor,
                                            absl::Span<const internal::CustomerRecord> others);

}  // namespace ecrm::infostore

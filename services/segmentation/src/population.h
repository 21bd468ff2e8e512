// A rule over the whole population at once (previews, a segment's first fill): the second of
// the two evaluators DESIGN §8 names, sharing the compiled rule's AST with the per-customer one.
//
// A rule's top-level conjuncts made of simple shapes — a field compared with a literal,
// days_since of a field, an event count against a number, a consent or other bool field,
// `"x" in interests`, a field in a list, startsWith/endsWith/contains against a literal,
// segment("…"), and any &&, || and ! of those — are evaluated column by column, cheapest first,
// each only over the customers the earlier ones left. A combination is decided into the
// customers it is true and false for (the rest unknown: a missing value decided it), combined
// as the per-customer evaluator combines values. When every conjunct is of those shapes the
// result is exact; otherwise the per-customer evaluator decides for each customer left, so the
// answer is always the per-customer one.
#pragma once

#include "absl/time/time.h"
#include "customer_features.h"
#include "ecrm/rules/rule.h"
#include "roaring/roaring.hh"

namespace ecrm::segmentation {

struct PopulationResult {
  Roaring members;
  // Customers the per-customer evaluator was run on (0 when every conjunct was columnar).
  int64_t evaluated_one_by_one = 0;
};

struct PopulationOptions {
  // Threads sharing the customers (in ranges of 65,536 numbers); 1: the caller's thread only.
  int threads = 1;
};

// The live customers for whom `rule` is true at `now`. The caller holds the features' lock
// (and, with threads, `memberships` must be safe to read from several threads).
PopulationResult EvaluatePopulation(const rules::Rule& rule, const Features& features, const Memberships* memberships,
                                    absl::Time now, PopulationOptions options = {});

// A superset of the live customers for whom `rule` can be true at `now` or at any later instant
// without new data: those for whom every top-level conjunct of the columnar shapes that does
// not depend on the time is true, and every such conjunct that time can only make false —
// days_since(field) < or <= a number, an event count > or >= a number — is true at `now` (or,
// for an event count, may yet rise with events dated after `now`). Everyone else has the rule
// false or unknown now and until their data (or a segment the rule names) changes: the first
// fill of a time-relative rule needs to evaluate and schedule only these. The caller holds the
// features' lock.
Roaring TimeCandidates(const rules::Rule& rule, const Features& features, const Memberships* memberships,
                       absl::Time now, PopulationOptions options = {});

}  // namespace ecrm::segmentation

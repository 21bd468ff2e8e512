// Offers: CRUD with validation (the eligibility rule is compiled when saved, with line:column
// errors), and DecideOffers — the offers a customer may be shown at a placement on a channel,
// ranked by priority then expected value, each with its reasons, every other offer with why
// not. Per-customer caps and total budgets are exact under concurrency: an impression is
// recorded by a conditional upsert / update in the transaction that checks the count, so two
// decisions never both take the last one (docs/personalisation.md, "Offers").
//
// The active offers are held compiled in memory and reloaded when any offer changed (a
// generation counter every write bumps, read at most every 100 ms: a replica decides on
// another's change within 100 ms, on its own at once).
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "clients/segmentation.h"
#include "customer_rules.h"
#include "customers.h"
#include "ecrm/personalisation/v1/personalisation.pb.h"
#include "ecrm/rules/rule.h"
#include "ecrm/sql/sql.h"

namespace ecrm::personalisation {

// An offer ready to decide on.
struct CompiledOffer {
  v1::Offer proto;
  bool has_rule = false;
  rules::Rule rule;
  // The rule's top-level conjuncts (the rule itself when it is not an &&), each compiled on its
  // own, with its text: a customer the rule rejects is told which clause failed first.
  std::vector<rules::Rule> clauses;
  bool reads_segments = false;  // segment_ids, or segment() in the rule
  RuleNames names;              // of the rule (its clauses read a part of them)
  // Why not, written once when compiled (a decision copies them): per clause (the whole rule
  // when it has none) when false and when unknown; the window's; the channels' and placements'
  // (followed by what was asked); the segments'.
  std::vector<std::string> clause_false, clause_unknown;
  std::string not_yet_valid, expired, wrong_channel, wrong_placement, not_in_segment;
  int64_t starts_at_us = 0, ends_at_us = 0;  // 0: none
  // Why chosen, after the segment that made it eligible: the rule (or "everyone is
  // eligible"), the priority, the value.
  std::vector<std::string> chosen_because;
};

class Offers {
 public:
  // `segments` may be null: offers cannot then name segments (FAILED_PRECONDITION when saved).
  Offers(sql::Database& db, Customers& customers, SegmentDirectory* segments,
         std::function<absl::Time()> clock = absl::Now)
      : db_(db), customers_(customers), segments_(segments), clock_(std::move(clock)) {}

  absl::StatusOr<v1::Offer> Create(const v1::Offer& offer);
  absl::StatusOr<v1::Offer> Get(const std::string& id);
  absl::StatusOr<v1::ListOffersResponse> List(const v1::ListOffersRequest& req);
  absl::StatusOr<v1::Offer> Update(const v1::UpdateOfferRequest& req);
  absl::Status Delete(const std::string& id);

  // A decision as made: the response's decisions, and the offers rejected with why, pointing
  // into the compiled offers (kept while `held` is) — a decision rejects most of ~200 offers,
  // and a map of their reasons built per call was a fifth of the engine's CPU: the handler
  // writes them to the wire as they are (DecisionWire).
  struct Decision {
    v1::DecideOffersResponse response;                                        // decisions only
    std::vector<std::pair<const std::string*, const std::string*>> rejected;  // offer id, why
    std::vector<std::pair<const std::string*, std::string>> rejected_now;     // caps, budgets: made now
    std::shared_ptr<const void> held;
  };
  absl::StatusOr<Decision> Choose(const v1::DecideOffersRequest& req) { return Choose(req, nullptr, true); }
  // The same for a customer already read (null: read it), and without the rejected ones when
  // `explain` is false (rendering shows only the chosen).
  absl::StatusOr<Decision> Choose(const v1::DecideOffersRequest& req, const infostore::v1::Customer* customer,
                                  bool explain);
  // Choose, as the response (the rejected ones in its map).
  absl::StatusOr<v1::DecideOffersResponse> Decide(const v1::DecideOffersRequest& req);

  // One offer named by the caller (a message that sends it), active or not; NOT_FOUND naming
  // offer_id when there is none.
  absl::StatusOr<std::shared_ptr<const CompiledOffer>> Find(const std::string& id);
  // Why `customer` may not be shown `offer` on `channel` now, as Choose would reject it (active
  // flag, window, channels, segments, rule, then the per-customer cap and the budget as counted
  // so far; placements are not checked); empty when they may. Records no impression. An error
  // when segmentation or the database cannot answer.
  absl::StatusOr<std::string> NotEligible(const CompiledOffer& offer, const infostore::v1::Customer& customer,
                                          int channel);

  // The customer's offer history (impressions per offer), as a JSON array, and its erasure.
  absl::StatusOr<std::string> ExportImpressions(const std::vector<std::string>& customer_ids);
  absl::StatusOr<int64_t> EraseImpressions(const std::vector<std::string>& customer_ids);

  // Validates and compiles an offer as it would be saved (exposed for tests).
  absl::StatusOr<std::shared_ptr<const CompiledOffer>> Compile(const v1::Offer& offer) const;

 private:
  // The active offers split by where a request asks them for (its placement and channel):
  // those shown there, and the others with why not (the reason, asked part included, written
  // once). Windows are checked per decision (they depend on the time).
  struct Route {
    std::vector<const CompiledOffer*> reachable;
    std::vector<std::pair<const CompiledOffer*, std::string>> misrouted;
  };
  struct Snapshot {
    int64_t generation = -1;
    std::vector<std::shared_ptr<const CompiledOffer>> active;
    // Routes by (placement, channel), made when first asked for; at most kMaxRoutes kept (the
    // placements asked are the callers' strings), the others made per decision.
    mutable absl::Mutex mu;
    mutable absl::flat_hash_map<std::pair<std::string, int>, std::shared_ptr<const Route>> routes ABSL_GUARDED_BY(mu);
  };
  static constexpr size_t kMaxRoutes = 256;
  static std::shared_ptr<const Route> RouteFor(const Snapshot& snapshot, const std::string& placement, int channel);
  // The active offers: checked against the database's generation at most every kRecheck
  // (another replica's change is decided on within that), at once after this process's change.
  absl::StatusOr<std::shared_ptr<const Snapshot>> Active();
  void Changed();
  static constexpr absl::Duration kRecheck = absl::Milliseconds(100);
  absl::Status CheckTemplate(sql::Connection& c, const v1::Offer& offer);

  sql::Database& db_;
  Customers& customers_;
  SegmentDirectory* segments_;
  std::function<absl::Time()> clock_;
  OfferRuleSchema schema_;

  absl::Mutex mu_;
  std::shared_ptr<const Snapshot> snapshot_ ABSL_GUARDED_BY(mu_);
  absl::Time checked_at_ ABSL_GUARDED_BY(mu_);
  bool changed_ ABSL_GUARDED_BY(mu_) = false;
};

// The decision serialised as a DecideOffersResponse (the same bytes a client parses into one,
// its rejected map included), without building the map.
std::string DecisionWire(const Offers::Decision& decision);

}  // namespace ecrm::personalisation

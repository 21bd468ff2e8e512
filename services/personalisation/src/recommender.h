// The recommendation model: item-to-item collaborative filtering learnt online from purchases,
// with time-decayed popularity for filling and cold start (docs/personalisation-recommendations.md).
//
// Every purchase line updates the model at once, there is no training step: the buyer's
// holdings, the item's count of holders, the co-purchase count of the item with each other item
// the buyer holds, the two items' neighbour lists, and the item's decayed popularity. A refund,
// a cancellation or an erasure takes the same contributions back exactly.
//
//   c_i   customers holding item i (each customer counts once however many units they hold)
//   c_ij  customers holding both i and j
//   sim(i, j) = c_ij / (sqrt(c_i * c_j) + shrinkage)     cosine with shrinkage for rare items
//
// Co-purchase counts are kept in full (one compact hash map per item); each item keeps at most
// `neighbours` of them as its neighbour list, the ones with the highest similarity. Scores are
// always computed from the current counts; the list's membership is kept by checking every
// changed pair against the list's weakest member, and by rebuilding the list from the item's
// counts once the item has seen a quarter of its row in updates since the last rebuild.
//
// Thread-safety: any number of readers (Recommend, SimilarProducts, Info) run at once; writers
// (Apply and friends) take turns, and hold readers off for at most `lines_per_hold` lines at a time: list
// rebuilds are computed while readers go on and only swapped in exclusively.
#pragma once

#include <cstdint>
#include <functional>
#include <mutex>
#include <shared_mutex>
#include <span>
#include <string>
#include <vector>
#include "absl/strings/string_view.h"

#include "absl/container/btree_set.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace ecrm::personalisation {

struct RecommenderOptions {
  // Items kept in each item's neighbour list.
  int neighbours = 50;
  // λ in sim(i, j) = c_ij / (sqrt(c_i c_j) + λ); damps pairs of rarely bought items.
  double shrinkage = 10;
  // Popularity halves every half-life; absl::InfiniteDuration() counts purchases plainly.
  absl::Duration popularity_half_life = absl::Hours(24 * 30);
  // Recommend scores from at most this many of the customer's most recent items,
  int max_history = 100;
  // weighting the n-th most recent one 2^(-n / history_half_life) (0: all alike). Recent
  // purchases say most about the next (tuned on MovieLens 100k, see the docs).
  double history_half_life = 3;
  // A writer holds readers off for at most this many lines at a time (Apply's chunks). 8 rather
  // than 64: Recommend's p99 with a writer 284 µs instead of 1.10 ms, loading 11% slower
  // (ecrm-reco-bench, docs/benchmarks.md).
  int lines_per_hold = 8;
};

// One change to the model. A purchase of `quantity` units adds the line; a return of
// `quantity` units (refund, cancellation) takes that many back; quantities are units.
struct ModelUpdate {
  enum class Kind { kPurchase, kReturn };
  Kind kind = Kind::kPurchase;
  std::string customer_id;
  std::string sku;
  int64_t quantity = 1;
  // When it happened (decays popularity; the latest one is Info().last_update).
  absl::Time time;
  // The product's category path ("sports/cycling"); empty keeps the one known.
  std::string category;
};

enum class RecommendationSource { kSimilarItems, kPopular };

// "similar_items" or "popular".
absl::string_view SourceName(RecommendationSource source);

struct Recommended {
  std::string sku;
  // Higher is better; comparable within one source: summed similarity for similar items,
  // decayed purchases at the last update for popular ones.
  double score = 0;
  RecommendationSource source = RecommendationSource::kSimilarItems;
};

struct ModelStats {
  // Items bought at least once and still held by someone.
  int64_t items = 0;
  // Customers holding at least one item.
  int64_t customers = 0;
  // Item pairs with a co-purchase count.
  int64_t pairs = 0;
  // Purchase lines applied (returns and erasures not subtracted).
  int64_t purchase_lines = 0;
  // The time of the latest update applied (absl::InfinitePast() before the first).
  absl::Time last_update = absl::InfinitePast();
  // What the model's containers hold, estimated from their capacities.
  int64_t memory_bytes = 0;
};

class Recommender {
 public:
  // Whether a product may be recommended (active in the catalogue); called under the model's
  // read lock, so it must not call the model.
  using IsActive = std::function<bool(absl::string_view sku)>;

  explicit Recommender(RecommenderOptions options = {});
  Recommender(const Recommender&) = delete;
  Recommender& operator=(const Recommender&) = delete;

  // Applies a batch in order (readers may see part of it). INVALID_ARGUMENT (naming the field) for an empty id
  // or sku or a quantity below 1; nothing of the batch is applied then. A return of more units
  // than the customer holds takes back what they hold.
  absl::Status Apply(std::span<const ModelUpdate> updates);
  absl::Status Purchase(absl::string_view customer_id, absl::string_view sku, absl::Time time, int64_t quantity = 1);
  absl::Status Return(absl::string_view customer_id, absl::string_view sku, absl::Time time, int64_t quantity = 1);

  // Sets a product's category (moves its popularity to the new category's rankings).
  void SetCategory(absl::string_view sku, absl::string_view category);

  // Rebuilds every item's neighbour list from its counts (exact top-k as of now).
  void RebuildNeighbours();

  // Removes everything the customer contributed; false if the model did not know them.
  bool ForgetCustomer(absl::string_view customer_id);

  // Forgets everything (a resync of the change feed learns the model again from the start).
  void Clear();

  // Up to `max` products for the customer (0 means 10; INVALID_ARGUMENT outside 0..100): items
  // similar to what they hold, best first, then popular ones (in `category` and below when
  // given). Leaves out what they hold when `exclude_purchased`, and products `is_active`
  // rejects. An unknown customer gets popular items.
  absl::StatusOr<std::vector<Recommended>> Recommend(absl::string_view customer_id, int max,
                                                     absl::string_view category = {}, bool exclude_purchased = true,
                                                     const IsActive& is_active = nullptr) const;

  // Only the popularity fill of Recommend (the baseline of the offline evaluation).
  absl::StatusOr<std::vector<Recommended>> RecommendPopular(absl::string_view customer_id, int max,
                                                            absl::string_view category = {},
                                                            bool exclude_purchased = true,
                                                            const IsActive& is_active = nullptr) const;

  // Up to `max` (0 means 10; INVALID_ARGUMENT outside 0..100) neighbours of `sku`, most
  // similar first; empty for a product nobody holds.
  absl::StatusOr<std::vector<Recommended>> SimilarProducts(absl::string_view sku, int max,
                                                           const IsActive& is_active = nullptr) const;

  // The items the customer holds, oldest first (export).
  std::vector<std::string> CustomerItems(absl::string_view customer_id) const;

  ModelStats Info() const;

  const RecommenderOptions& options() const { return options_; }

 private:
  struct Neighbour {
    uint32_t item;
    uint32_t together;  // c_ij
  };
  struct Item {
    std::string sku;
    std::string category;
    uint32_t updates_since_rebuild = 0;  // row changes since the list was rebuilt
    bool rebuild_pending = false;
    double floor = 0;       // the list's lowest similarity when last computed (newcomers must beat it)
    double popularity = 0;  // decayed purchases, scaled to anchor_
    absl::flat_hash_map<uint32_t, uint32_t> row;  // c_ij for every j bought with i
    std::vector<Neighbour> neighbours;            // at most options_.neighbours, unordered
  };
  struct Held {
    uint32_t item;
    uint32_t units;
    double weight;  // this customer's share of the item's popularity, scaled to anchor_
  };
  struct Customer {
    std::vector<Held> items;  // in order of first purchase
  };
  using Ranking = absl::btree_set<std::pair<double, uint32_t>, std::greater<>>;

  absl::Status Validate(const ModelUpdate& u) const;
  void ApplyLocked(const ModelUpdate& u);
  uint32_t InternItem(absl::string_view sku);
  double Similarity(uint32_t i, uint32_t j, uint32_t together) const;
  double DecayWeight(absl::Time t);  // 2^((t - anchor_) / half-life), rescaling when needed
  void Rescale(double exponent_shift);
  void SetCategoryLocked(uint32_t item, absl::string_view category);
  absl::StatusOr<std::vector<Recommended>> RecommendImpl(absl::string_view customer_id, int max,
                                                         absl::string_view category, bool exclude_purchased,
                                                         const IsActive& is_active, bool similar) const;
  void ChangePopularity(uint32_t item, double delta);
  void RankingInsert(uint32_t item);
  void RankingErase(uint32_t item);
  void AddHolder(uint32_t customer, uint32_t item);     // the customer starts holding item
  void RemoveHolder(uint32_t customer, uint32_t item);  // the customer stops holding item
  void ChangePair(uint32_t i, uint32_t j, int delta);
  void UpdateList(uint32_t of, uint32_t other, uint32_t together);
  // The item's best neighbours from its counts, and the lowest similarity among them.
  std::pair<std::vector<Neighbour>, double> ComputeList(uint32_t of) const;
  // Rebuilds the lists queued by UpdateList (see Apply). Holds write_mu_.
  void RebuildPending();
  bool ForgetLocked(absl::string_view customer_id);
  std::vector<absl::string_view> CategoryKeys(absl::string_view category) const;

  const RecommenderOptions options_;
  // Writers take write_mu_ first (one at a time), then mu_ exclusively in short holds;
  // readers take mu_ shared.
  std::mutex write_mu_;
  mutable std::shared_mutex mu_;
  std::vector<uint32_t> pending_;  // items whose lists are due for a rebuild
  std::vector<Item> items_;
  std::vector<uint32_t> holders_;  // c_i, apart from the items so that similarities read 4 bytes each
  absl::flat_hash_map<std::string, uint32_t> item_ids_;
  std::vector<Customer> customers_;
  std::vector<uint32_t> free_customers_;
  absl::flat_hash_map<std::string, uint32_t> customer_ids_;
  // Popularity rankings: all items, and per category path prefix ("a", "a/b").
  Ranking popular_;
  absl::flat_hash_map<std::string, Ranking> popular_by_category_;
  bool have_anchor_ = false;
  absl::Time anchor_;
  int64_t pairs_ = 0;
  int64_t items_held_ = 0;
  int64_t customers_holding_ = 0;
  int64_t purchase_lines_ = 0;
  absl::Time last_update_ = absl::InfinitePast();
};

}  // namespace ecrm::personalisation

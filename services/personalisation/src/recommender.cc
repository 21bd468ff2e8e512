#include "recommender.h"

#include <algorithm>
#include <cmath>
#include <mutex>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace ecrm::personalisation {
namespace {

// Weights are 2^((t - anchor) / half-life); the anchor moves forward (and every weight is scaled
// down with it) before an exponent passes this, far inside a double's range.
constexpr double kMaxExponent = 400;
// A neighbour list is rebuilt from the item's counts after max(kMinRebuild, row / 4) changes.
constexpr uint32_t kMinRebuild = 16;
constexpr int kDefaultMax = 10;
constexpr int kMaxItems = 100;

// `category` is `prefix` or under it ("a/b" is under "a", "ab" is not).
bool InCategory(absl::string_view category, absl::string_view prefix) {
  if (prefix.empty()) return true;
  if (!absl::StartsWith(category, prefix)) return false;
  return category.size() == prefix.size() || category[prefix.size()] == '/';
}

absl::StatusOr<int> CheckMax(int max) {
  if (max < 0 || max > kMaxItems) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_items must be between 0 and ", kMaxItems, " (0 asks for ", kDefaultMax, ")"));
  }
  return max == 0 ? kDefaultMax : max;
}

}  // namespace

absl::string_view SourceName(RecommendationSource source) {
  return source == RecommendationSource::kSimilarItems ? "similar_items" : "popular";
}

Recommender::Recommender(RecommenderOptions options) : options_(options) {}

absl::Status Recommender::Validate(const ModelUpdate& u) const {
  if (u.customer_id.empty()) return absl::InvalidArgumentError("customer_id must not be empty");
  if (u.sku.empty()) return absl::InvalidArgumentError("sku must not be empty");
  if (u.quantity < 1) return absl::InvalidArgumentError("quantity must be at least 1");
  if (u.time == absl::InfinitePast() || u.time == absl::InfiniteFuture()) {
    return absl::InvalidArgumentError("time must be a finite instant");
  }
  return absl::OkStatus();
}

absl::Status Recommender::Apply(std::span<const ModelUpdate> updates) {
  for (const auto& u : updates) {
    if (auto s = Validate(u); !s.ok()) return s;
  }
  std::lock_guard writer(write_mu_);
  // Applied in chunks, so that readers wait for at most one chunk; each chunk's list rebuilds
  // are computed under the shared lock (readers go on) and installed under the exclusive one.
  const size_t chunk = static_cast<size_t>(std::max(1, options_.lines_per_hold));
  for (size_t from = 0; from < updates.size(); from += chunk) {
    {
      std::unique_lock lock(mu_);
      for (size_t k = from; k < std::min(updates.size(), from + chunk); ++k) ApplyLocked(updates[k]);
    }
    RebuildPending();
  }
  return absl::OkStatus();
}

void Recommender::RebuildPending() {
  if (pending_.empty()) return;
  std::vector<std::pair<std::vector<Neighbour>, double>> lists;
  {
    // Only this writer (holding write_mu_) changes the model, so what is read here stays true
    // until the lists are installed.
    std::shared_lock lock(mu_);
    lists.reserve(pending_.size());
    for (uint32_t i : pending_) lists.push_back(ComputeList(i));
  }
  std::unique_lock lock(mu_);
  for (size_t k = 0; k < pending_.size(); ++k) {
    Item& it = items_[pending_[k]];
    it.neighbours = std::move(lists[k].first);
    it.floor = lists[k].second;
    it.updates_since_rebuild = 0;
    it.rebuild_pending = false;
  }
  pending_.clear();
}

absl::Status Recommender::Purchase(absl::string_view customer_id, absl::string_view sku, absl::Time time,
                                   int64_t quantity) {
  ModelUpdate u{ModelUpdate::Kind::kPurchase, std::string(customer_id), std::string(sku), quantity, time, {}};
  return Apply({&u, 1});
}

absl::Status Recommender::Return(absl::string_view customer_id, absl::string_view sku, absl::Time time,
                                 int64_t quantity) {
  ModelUpdate u{ModelUpdate::Kind::kReturn, std::string(customer_id), std::string(sku), quantity, time, {}};
  return Apply({&u, 1});
}

uint32_t Recommender::InternItem(absl::string_view sku) {
  auto [it, inserted] = item_ids_.try_emplace(sku, static_cast<uint32_t>(items_.size()));
  if (inserted) {
    items_.emplace_back();
    items_.back().sku = std::string(sku);
    holders_.push_back(0);
  }
  return it->second;
}

void Recommender::ApplyLocked(const ModelUpdate& u) {
  last_update_ = std::max(last_update_, u.time);
  if (u.kind == ModelUpdate::Kind::kPurchase) {
    ++purchase_lines_;
    const uint32_t item = InternItem(u.sku);
    if (!u.category.empty() && u.category != items_[item].category) SetCategoryLocked(item, u.category);
    uint32_t customer;
    auto [it, inserted] = customer_ids_.try_emplace(u.customer_id, 0);
    if (inserted) {
      if (!free_customers_.empty()) {
        customer = free_customers_.back();
        free_customers_.pop_back();
      } else {
        customer = static_cast<uint32_t>(customers_.size());
        customers_.emplace_back();
      }
      it->second = customer;
    } else {
      customer = it->second;
    }
    const double w = DecayWeight(u.time);
    auto& held = customers_[customer].items;
    auto h = std::find_if(held.begin(), held.end(), [&](const Held& x) { return x.item == item; });
    if (h == held.end()) {
      AddHolder(customer, item);
      customers_[customer].items.push_back({item, static_cast<uint32_t>(std::min<int64_t>(u.quantity, UINT32_MAX)), w});
    } else {
      h->units = static_cast<uint32_t>(std::min<int64_t>(int64_t{h->units} + u.quantity, UINT32_MAX));
      h->weight += w;
    }
    ChangePopularity(item, w);
    return;
  }
  // A return: takes back up to what the customer holds.
  auto c = customer_ids_.find(u.customer_id);
  auto i = item_ids_.find(u.sku);
  if (c == customer_ids_.end() || i == item_ids_.end()) return;
  const uint32_t customer = c->second, item = i->second;
  auto& held = customers_[customer].items;
  auto h = std::find_if(held.begin(), held.end(), [&](const Held& x) { return x.item == item; });
  if (h == held.end()) return;
  if (u.quantity < h->units) {
    const double share = h->weight * static_cast<double>(u.quantity) / h->units;
    h->units -= static_cast<uint32_t>(u.quantity);
    h->weight -= share;
    ChangePopularity(item, -share);
    return;
  }
  const double weight = h->weight;
  held.erase(h);
  RemoveHolder(customer, item);
  ChangePopularity(item, -weight);
  if (held.empty()) {
    customer_ids_.erase(c);
    held.shrink_to_fit();
    free_customers_.push_back(customer);
  }
}

double Recommender::DecayWeight(absl::Time t) {
  if (options_.popularity_half_life == absl::InfiniteDuration()) return 1;
  if (!have_anchor_) {
    anchor_ = t;
    have_anchor_ = true;
  }
  double e = absl::FDivDuration(t - anchor_, options_.popularity_half_life);
  if (e > kMaxExponent) {
    Rescale(e);
    e = 0;
  }
  return std::exp2(std::max(e, -kMaxExponent));
}

void Recommender::Rescale(double shift) {
  anchor_ += shift * options_.popularity_half_life;
  const double f = std::exp2(-shift);
  popular_.clear();
  popular_by_category_.clear();
  for (uint32_t i = 0; i < items_.size(); ++i) {
    items_[i].popularity *= f;
    if (items_[i].popularity > 0) RankingInsert(i);
  }
  for (auto& c : customers_) {
    for (auto& h : c.items) h.weight *= f;
  }
}

std::vector<absl::string_view> Recommender::CategoryKeys(absl::string_view category) const {
  std::vector<absl::string_view> keys;
  for (size_t pos = 0; pos <= category.size() && !category.empty(); ++pos) {
    if (pos == category.size() || category[pos] == '/') keys.push_back(category.substr(0, pos));
  }
  return keys;
}

void Recommender::RankingInsert(uint32_t item) {
  const double p = items_[item].popularity;
  popular_.insert({p, item});
  for (auto key : CategoryKeys(items_[item].category)) popular_by_category_[key].insert({p, item});
}

void Recommender::RankingErase(uint32_t item) {
  const double p = items_[item].popularity;
  popular_.erase({p, item});
  for (auto key : CategoryKeys(items_[item].category)) {
    auto it = popular_by_category_.find(key);
    if (it == popular_by_category_.end()) continue;
    it->second.erase({p, item});
    if (it->second.empty()) popular_by_category_.erase(it);
  }
}

void Recommender::ChangePopularity(uint32_t item, double delta) {
  auto& it = items_[item];
  if (it.popularity > 0) RankingErase(item);
  it.popularity += delta;
  // Nobody holds it: every contribution was taken back, whatever rounding left.
  if (holders_[item] == 0 || it.popularity < 0) it.popularity = 0;
  if (it.popularity > 0) RankingInsert(item);
}

void Recommender::SetCategory(absl::string_view sku, absl::string_view category) {
  std::lock_guard writer(write_mu_);
  std::unique_lock lock(mu_);
  SetCategoryLocked(InternItem(sku), category);
}

void Recommender::SetCategoryLocked(uint32_t item, absl::string_view category) {
  if (items_[item].popularity > 0) RankingErase(item);
  items_[item].category = std::string(category);
  if (items_[item].popularity > 0) RankingInsert(item);
}

double Recommender::Similarity(uint32_t i, uint32_t j, uint32_t together) const {
  return together / (std::sqrt(static_cast<double>(holders_[i]) * holders_[j]) + options_.shrinkage);
}

void Recommender::AddHolder(uint32_t customer, uint32_t item) {
  if (holders_[item]++ == 0) ++items_held_;
  auto& held = customers_[customer].items;
  if (held.empty()) ++customers_holding_;
  for (const Held& h : held) ChangePair(item, h.item, +1);
}

void Recommender::RemoveHolder(uint32_t customer, uint32_t item) {
  if (--holders_[item] == 0) --items_held_;
  const auto& held = customers_[customer].items;
  if (held.empty()) --customers_holding_;
  for (const Held& h : held) ChangePair(item, h.item, -1);
}

void Recommender::ChangePair(uint32_t i, uint32_t j, int delta) {
  uint32_t together = 0;
  for (auto [a, b] : {std::pair{i, j}, std::pair{j, i}}) {
    auto& row = items_[a].row;
    if (delta > 0) {
      together = (row[b] += delta);
    } else {
      auto it = row.find(b);
      if (it == row.end()) return;  // not reached: every held pair was counted
      together = (it->second -= 1);
      if (together == 0) row.erase(it);
    }
  }
  if (delta > 0 && together == 1) ++pairs_;
  if (delta < 0 && together == 0) --pairs_;
  UpdateList(i, j, together);
  UpdateList(j, i, together);
}

void Recommender::UpdateList(uint32_t of, uint32_t other, uint32_t together) {
  Item& it = items_[of];
  auto& list = it.neighbours;
  auto pos = std::find_if(list.begin(), list.end(), [&](const Neighbour& n) { return n.item == other; });
  if (pos != list.end()) {
    if (together == 0) {
      *pos = list.back();
      list.pop_back();
    } else {
      pos->together = together;
    }
  } else if (together > 0) {
    if (list.size() < static_cast<size_t>(options_.neighbours)) {
      list.push_back({other, together});
    } else if (const double s = Similarity(of, other, together); s > it.floor) {
      // Replace the weakest member if the newcomer beats it now.
      size_t weakest = 0;
      double lowest = INFINITY, second = INFINITY;
      for (size_t k = 0; k < list.size(); ++k) {
        const double sk = Similarity(of, list[k].item, list[k].together);
        if (sk < lowest) {
          second = lowest;
          lowest = sk;
          weakest = k;
        } else if (sk < second) {
          second = sk;
        }
      }
      if (s > lowest) {
        list[weakest] = {other, together};
        it.floor = std::min(s, second);
      } else {
        it.floor = lowest;
      }
    }
  }
  if (++it.updates_since_rebuild >= std::max<uint32_t>(kMinRebuild, it.row.size() / 4) && !it.rebuild_pending) {
    it.rebuild_pending = true;
    pending_.push_back(of);
  }
}

std::pair<std::vector<Recommender::Neighbour>, double> Recommender::ComputeList(uint32_t of) const {
  const Item& it = items_[of];
  const size_t k = static_cast<size_t>(options_.neighbours);
  std::vector<Neighbour> list;
  if (it.row.size() <= k) {
    list.reserve(it.row.size());
    for (const auto& [j, c] : it.row) list.push_back({j, c});
    return {std::move(list), 0.0};
  }
  std::vector<std::pair<double, Neighbour>> all;
  all.reserve(it.row.size());
  for (const auto& [j, c] : it.row) all.push_back({Similarity(of, j, c), Neighbour{j, c}});
  auto better = [](const auto& a, const auto& b) {
    return a.first != b.first ? a.first > b.first : a.second.item < b.second.item;
  };
  std::nth_element(all.begin(), all.begin() + static_cast<ptrdiff_t>(k - 1), all.end(), better);
  list.reserve(k);
  for (size_t n = 0; n < k; ++n) list.push_back(all[n].second);
  return {std::move(list), all[k - 1].first};
}

void Recommender::RebuildNeighbours() {
  std::lock_guard writer(write_mu_);
  {
    std::unique_lock lock(mu_);
    for (uint32_t i = 0; i < items_.size(); ++i) {
      if (!items_[i].rebuild_pending) pending_.push_back(i);
      items_[i].rebuild_pending = true;
    }
  }
  RebuildPending();
}

void Recommender::Clear() {
  std::lock_guard writer(write_mu_);
  std::unique_lock lock(mu_);
  pending_.clear();
  items_.clear();
  holders_.clear();
  item_ids_.clear();
  customers_.clear();
  free_customers_.clear();
  customer_ids_.clear();
  popular_.clear();
  popular_by_category_.clear();
  have_anchor_ = false;
  anchor_ = absl::Time();
  pairs_ = items_held_ = customers_holding_ = purchase_lines_ = 0;
  last_update_ = absl::InfinitePast();
}

bool Recommender::ForgetCustomer(absl::string_view customer_id) {
  std::lock_guard writer(write_mu_);
  const bool known = ForgetLocked(customer_id);
  RebuildPending();
  return known;
}

bool Recommender::ForgetLocked(absl::string_view customer_id) {
  std::unique_lock lock(mu_);
  auto c = customer_ids_.find(customer_id);
  if (c == customer_ids_.end()) return false;
  const uint32_t customer = c->second;
  auto& held = customers_[customer].items;
  while (!held.empty()) {
    const Held h = held.back();
    held.pop_back();
    RemoveHolder(customer, h.item);
    ChangePopularity(h.item, -h.weight);
  }
  held.shrink_to_fit();
  customer_ids_.erase(c);
  free_customers_.push_back(customer);
  return true;
}

absl::StatusOr<std::vector<Recommended>> Recommender::Recommend(absl::string_view customer_id, int max,
                                                                absl::string_view category, bool exclude_purchased,
                                                                const IsActive& is_active) const {
  return RecommendImpl(customer_id, max, category, exclude_purchased, is_active, /*similar=*/true);
}

absl::StatusOr<std::vector<Recommended>> Recommender::RecommendPopular(absl::string_view customer_id, int max,
                                                                       absl::string_view category,
                                                                       bool exclude_purchased,
                                                                       const IsActive& is_active) const {
  return RecommendImpl(customer_id, max, category, exclude_purchased, is_active, /*similar=*/false);
}

absl::StatusOr<std::vector<Recommended>> Recommender::RecommendImpl(absl::string_view customer_id, int max,
                                                                    absl::string_view category, bool exclude_purchased,
                                                                    const IsActive& is_active, bool similar) const {
  auto n = CheckMax(max);
  if (!n.ok()) return n.status();
  const size_t want = static_cast<size_t>(*n);
  std::shared_lock lock(mu_);
  std::span<const Held> held;
  if (auto c = customer_ids_.find(customer_id); c != customer_ids_.end()) held = customers_[c->second].items;
  absl::flat_hash_set<uint32_t> excluded;  // what they hold (if excluded), then what is chosen
  if (exclude_purchased) {
    excluded.reserve(held.size() + want);
    for (const Held& h : held) excluded.insert(h.item);
  }
  std::vector<Recommended> out;
  if (similar && !held.empty()) {
    absl::flat_hash_map<uint32_t, double> scores;
    const size_t from = held.size() > static_cast<size_t>(options_.max_history)
                            ? held.size() - static_cast<size_t>(options_.max_history)
                            : 0;
    const double step = options_.history_half_life > 0 ? std::exp2(-1 / options_.history_half_life) : 1;
    double weight = 1;
    for (size_t k = held.size(); k-- > from; weight *= step) {
      const uint32_t i = held[k].item;
      for (const Neighbour& nb : items_[i].neighbours) {
        if (excluded.contains(nb.item)) continue;
        if (!category.empty() && !InCategory(items_[nb.item].category, category)) continue;
        scores[nb.item] += weight * Similarity(i, nb.item, nb.together);
      }
    }
    std::vector<std::pair<double, uint32_t>> ranked;
    ranked.reserve(scores.size());
    for (const auto& [item, score] : scores) ranked.push_back({score, item});
    auto better = [](const auto& a, const auto& b) {
      return a.first != b.first ? a.first > b.first : a.second < b.second;
    };
    // Sorted lazily: most requests are answered by the first few.
    size_t sorted = 0;
    for (size_t k = 0; k < ranked.size() && out.size() < want; ++k) {
      if (k == sorted) {
        const size_t upto = std::min(ranked.size(), sorted + 4 * want);
        std::partial_sort(ranked.begin() + static_cast<ptrdiff_t>(sorted),
                          ranked.begin() + static_cast<ptrdiff_t>(upto), ranked.end(), better);
        sorted = upto;
      }
      const auto& sku = items_[ranked[k].second].sku;
      if (is_active && !is_active(sku)) continue;
      out.push_back({sku, ranked[k].first, RecommendationSource::kSimilarItems});
      excluded.insert(ranked[k].second);
    }
  }
  if (out.size() < want) {
    const Ranking* ranking = &popular_;
    if (!category.empty()) {
      auto it = popular_by_category_.find(category);
      ranking = it == popular_by_category_.end() ? nullptr : &it->second;
    }
    // Scores are decayed purchases as of the latest update.
    const double scale = options_.popularity_half_life == absl::InfiniteDuration() || !have_anchor_
                             ? 1.0
                             : std::exp2(-absl::FDivDuration(last_update_ - anchor_, options_.popularity_half_life));
    if (ranking != nullptr) {
      for (const auto& [p, item] : *ranking) {
        if (out.size() >= want) break;
        if (excluded.contains(item)) continue;
        if (is_active && !is_active(items_[item].sku)) continue;
        out.push_back({items_[item].sku, p * scale, RecommendationSource::kPopular});
      }
    }
  }
  return out;
}

absl::StatusOr<std::vector<Recommended>> Recommender::SimilarProducts(absl::string_view sku, int max,
                                                                      const IsActive& is_active) const {
  auto n = CheckMax(max);
  if (!n.ok()) return n.status();
  std::shared_lock lock(mu_);
  std::vector<Recommended> out;
  auto i = item_ids_.find(sku);
  if (i == item_ids_.end()) return out;
  std::vector<std::pair<double, uint32_t>> ranked;
  for (const Neighbour& nb : items_[i->second].neighbours) {
    ranked.push_back({Similarity(i->second, nb.item, nb.together), nb.item});
  }
  std::sort(ranked.begin(), ranked.end(),
            [](const auto& a, const auto& b) { return a.first != b.first ? a.first > b.first : a.second < b.second; });
  for (const auto& [s, j] : ranked) {
    if (out.size() >= static_cast<size_t>(*n)) break;
    if (is_active && !is_active(items_[j].sku)) continue;
    out.push_back({items_[j].sku, s, RecommendationSource::kSimilarItems});
  }
  return out;
}

std::vector<std::string> Recommender::CustomerItems(absl::string_view customer_id) const {
  std::shared_lock lock(mu_);
  std::vector<std::string> out;
  if (auto c = customer_ids_.find(customer_id); c != customer_ids_.end()) {
    for (const Held& h : customers_[c->second].items) out.push_back(items_[h.item].sku);
  }
  return out;
}

ModelStats Recommender::Info() const {
  std::shared_lock lock(mu_);
  ModelStats s;
  s.items = items_held_;
  s.customers = customers_holding_;
  s.pairs = pairs_;
  s.purchase_lines = purchase_lines_;
  s.last_update = last_update_;
  auto heap = [](const std::string& str) { return str.capacity() > 15 ? static_cast<int64_t>(str.capacity()) + 1 : 0; };
  int64_t m = static_cast<int64_t>(items_.capacity() * sizeof(Item) + holders_.capacity() * sizeof(uint32_t));
  for (const Item& it : items_) {
    m += heap(it.sku) + heap(it.category);
    m += static_cast<int64_t>(it.row.capacity() * (sizeof(std::pair<uint32_t, uint32_t>) + 1));
    m += static_cast<int64_t>(it.neighbours.capacity() * sizeof(Neighbour));
  }
  m += static_cast<int64_t>(item_ids_.capacity() * (sizeof(std::pair<std::string, uint32_t>) + 1));
  m += static_cast<int64_t>(customer_ids_.capacity() * (sizeof(std::pair<std::string, uint32_t>) + 1));
  for (const auto& [id, c] : customer_ids_) m += heap(id);
  m += static_cast<int64_t>(customers_.capacity() * sizeof(Customer) + free_customers_.capacity() * sizeof(uint32_t));
  for (const Customer& c : customers_) m += static_cast<int64_t>(c.items.capacity() * sizeof(Held));
  // A B-tree holds its 16-byte keys in nodes about three quarters full.
  int64_t ranked = static_cast<int64_t>(popular_.size());
  for (const auto& [key, r] : popular_by_category_) ranked += static_cast<int64_t>(r.size()) + heap(key) / 21;
  m += ranked * 22;
  s.memory_bytes = m;
  return s;
}

}  // namespace ecrm::personalisation

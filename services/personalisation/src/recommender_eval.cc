#include "recommender_eval.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>
#include <map>
#include <sstream>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"

namespace ecrm::personalisation {

absl::StatusOr<std::vector<Interaction>> ReadInteractions(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open the interaction file ", path));
  std::vector<Interaction> out;
  std::string line;
  int64_t number = 0;
  while (std::getline(in, line)) {
    ++number;
    if (line.empty() || line == "\r") continue;
    std::istringstream fields(line);
    std::string user, item;
    double rating = 0;
    int64_t seconds = 0;
    if (!(fields >> user >> item >> rating >> seconds)) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, " line ", number, ": expected user, item, rating and unix time"));
    }
    out.push_back({std::move(user), std::move(item), absl::FromUnixSeconds(seconds)});
  }
  return out;
}

namespace {

struct Split {
  std::vector<const Interaction*> train;                         // in time order
  std::map<std::string, absl::flat_hash_set<std::string>> test;  // per user
};

Split SplitByTime(std::span<const Interaction> interactions, double holdout) {
  std::map<std::string, std::vector<const Interaction*>> by_user;
  for (const auto& i : interactions) by_user[i.user].push_back(&i);
  Split s;
  for (auto& [user, list] : by_user) {
    std::stable_sort(list.begin(), list.end(), [](auto* a, auto* b) { return a->time < b->time; });
    const auto n = static_cast<int64_t>(list.size());
    const int64_t held = std::min<int64_t>(n - 1, std::llround(holdout * static_cast<double>(n)));
    for (int64_t k = 0; k < n - held; ++k) s.train.push_back(list[static_cast<size_t>(k)]);
    for (int64_t k = n - held; k < n; ++k) s.test[user].insert(list[static_cast<size_t>(k)]->item);
  }
  std::stable_sort(s.train.begin(), s.train.end(), [](auto* a, auto* b) { return a->time < b->time; });
  return s;
}

void Replay(Recommender& model, const std::vector<const Interaction*>& train) {
  std::vector<ModelUpdate> batch;
  for (size_t k = 0; k < train.size(); ++k) {
    batch.push_back({ModelUpdate::Kind::kPurchase, train[k]->user, train[k]->item, 1, train[k]->time, {}});
    if (batch.size() == 1000 || k + 1 == train.size()) {
      (void)model.Apply(batch);
      batch.clear();
    }
  }
}

// Adds one user's list to the sums.
void Score(const std::vector<Recommended>& list, const absl::flat_hash_set<std::string>& relevant, int top_n,
           TopNMetrics& sum) {
  double dcg = 0, idcg = 0;
  int hits = 0;
  for (size_t k = 0; k < list.size() && k < static_cast<size_t>(top_n); ++k) {
    if (relevant.contains(list[k].sku)) {
      ++hits;
      dcg += 1 / std::log2(static_cast<double>(k) + 2);
    }
  }
  for (size_t k = 0; k < relevant.size() && k < static_cast<size_t>(top_n); ++k) {
    idcg += 1 / std::log2(static_cast<double>(k) + 2);
  }
  sum.precision += static_cast<double>(hits) / top_n;
  sum.recall += static_cast<double>(hits) / static_cast<double>(relevant.size());
  sum.ndcg += dcg / idcg;
  ++sum.users;
}

void Average(TopNMetrics& m) {
  if (m.users == 0) return;
  m.precision /= static_cast<double>(m.users);
  m.recall /= static_cast<double>(m.users);
  m.ndcg /= static_cast<double>(m.users);
}

}  // namespace

EvalReport Evaluate(std::span<const Interaction> interactions, const EvalOptions& options) {
  const Split split = SplitByTime(interactions, options.holdout);
  EvalReport r;
  r.train = static_cast<int64_t>(split.train.size());
  for (const auto& [user, items] : split.test) r.test += static_cast<int64_t>(items.size());

  Recommender model(options.model);
  const auto start = std::chrono::steady_clock::now();
  Replay(model, split.train);
  r.replay_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (options.rebuild) model.RebuildNeighbours();
  RecommenderOptions baseline_options = options.model;
  baseline_options.popularity_half_life = options.baseline_half_life;
  Recommender baseline(baseline_options);
  Replay(baseline, split.train);
  r.stats = model.Info();

  int64_t similar = 0, total = 0;
  for (const auto& [user, relevant] : split.test) {
    if (relevant.empty()) continue;
    auto list = model.Recommend(user, options.top_n);
    auto popular = baseline.RecommendPopular(user, options.top_n);
    if (!list.ok() || !popular.ok()) continue;
    for (const auto& x : *list) {
      ++total;
      if (x.source == RecommendationSource::kSimilarItems) ++similar;
    }
    Score(*list, relevant, options.top_n, r.model);
    Score(*popular, relevant, options.top_n, r.popularity);
  }
  Average(r.model);
  Average(r.popularity);
  r.similar_share = total == 0 ? 0 : static_cast<double>(similar) / static_cast<double>(total);
  return r;
}

}  // namespace ecrm::personalisation

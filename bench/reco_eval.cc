// ecrm-reco-eval: the recommendation model's offline evaluation. Replays an interaction file
// (MovieLens 100k by default: every rating an interaction) through the engine's Recommender,
// holds out each user's most recent 20%, recommends 10 items excluding the user's training
// items and reports precision@10, recall@10 and NDCG@10 for the model and for popularity on the
// same split, one JSON line each. --sweep adds a line per neighbour count and shrinkage.
#include <cstdio>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "ecrm/config/flags.h"
#include "recommender_eval.h"

namespace reco = ecrm::personalisation;

namespace {

void Print(const char* what, const reco::EvalOptions& o, const reco::EvalReport& r) {
  std::printf(
      "{\"eval\":\"%s\",\"neighbours\":%d,\"shrinkage\":%g,\"model\":{\"precision\":%.4f,\"recall\":%.4f,"
      "\"ndcg\":%.4f},\"popularity\":{\"precision\":%.4f,\"recall\":%.4f,\"ndcg\":%.4f},"
      "\"ratio\":{\"precision\":%.3f,\"ndcg\":%.3f},\"users\":%lld,\"train\":%lld,\"test\":%lld,"
      "\"similar_share\":%.3f,\"pairs\":%lld,\"memory_bytes\":%lld,\"replay_lines_per_s\":%.0f}\n",
      what, o.model.neighbours, o.model.shrinkage, r.model.precision, r.model.recall, r.model.ndcg,
      r.popularity.precision, r.popularity.recall, r.popularity.ndcg, r.model.precision / r.popularity.precision,
      r.model.ndcg / r.popularity.ndcg, static_cast<long long>(r.model.users), static_cast<long long>(r.train),
      static_cast<long long>(r.test), r.similar_share, static_cast<long long>(r.stats.pairs),
      static_cast<long long>(r.stats.memory_bytes), static_cast<double>(r.train) / r.replay_seconds);
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  std::string data = std::string(ECRM_SOURCE_DIR) + "/../shared/data/movielens-100k/ratings.tsv";
  int64_t neighbours = reco::RecommenderOptions{}.neighbours, max_history = reco::RecommenderOptions{}.max_history;
  double shrinkage = reco::RecommenderOptions{}.shrinkage, holdout = 0.2,
         history_half_life = reco::RecommenderOptions{}.history_half_life;
  absl::Duration half_life = reco::RecommenderOptions{}.popularity_half_life;
  std::string sweep_neighbours = "10,20,50,100,200", sweep_shrinkage = "0,5,10,20,50,100";
  bool sweep = false, rebuild = false;
  ecrm::config::Flags flags("ecrm-reco-eval", "offline evaluation of the recommendation model");
  flags.AddString("data", &data, "interaction file: user item rating unix_time per line");
  flags.AddInt("neighbours", &neighbours, "neighbours kept per item");
  flags.AddInt("max-history", &max_history, "the customer's most recent items scored from");
  flags.AddDouble("history-half-life", &history_half_life, "items after which a purchase counts half (0: all alike)");
  flags.AddDouble("shrinkage", &shrinkage, "shrinkage λ of the cosine similarity");
  flags.AddDouble("holdout", &holdout, "share of each user's most recent interactions held out");
  flags.AddDuration("half-life", &half_life, "the model's popularity half-life");
  flags.AddBool("rebuild", &rebuild, "rebuild every neighbour list exactly after the replay");
  flags.AddBool("sweep", &sweep, "also evaluate every pair of --sweep-neighbours and --sweep-shrinkage");
  flags.AddString("sweep-neighbours", &sweep_neighbours, "neighbour counts of the sweep");
  flags.AddString("sweep-shrinkage", &sweep_shrinkage, "shrinkages of the sweep");
  if (std::optional<int> exit_code = flags.ParseCommandLine(argc, argv)) return *exit_code;

  auto interactions = reco::ReadInteractions(data);
  if (!interactions.ok()) {
    std::fprintf(stderr, "ecrm-reco-eval: %s\n", interactions.status().ToString().c_str());
    return 1;
  }
  reco::EvalOptions o;
  o.holdout = holdout;
  o.rebuild = rebuild;
  o.model.neighbours = static_cast<int>(neighbours);
  o.model.shrinkage = shrinkage;
  o.model.max_history = static_cast<int>(max_history);
  o.model.history_half_life = history_half_life;
  o.model.popularity_half_life = half_life;
  Print("chosen", o, reco::Evaluate(*interactions, o));
  if (!sweep) return 0;
  for (auto n : absl::StrSplit(sweep_neighbours, ',')) {
    for (auto l : absl::StrSplit(sweep_shrinkage, ',')) {
      int k = 0;
      double lambda = 0;
      if (!absl::SimpleAtoi(n, &k) || !absl::SimpleAtod(l, &lambda)) {
        std::fprintf(stderr, "ecrm-reco-eval: --sweep-neighbours and --sweep-shrinkage are numbers\n");
        return 1;
      }
      o.model.neighbours = k;
      o.model.shrinkage = lambda;
      Print("sweep", o, reco::Evaluate(*interactions, o));
    }
  }
  return 0;
}

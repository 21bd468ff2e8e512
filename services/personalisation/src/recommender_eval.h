// Offline evaluation of the recommendation model (docs/personalisation-recommendations.md):
// interactions replayed through the same Recommender the engine runs, each user's most recent
// interactions held out, top-N lists scored against them.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "recommender.h"

namespace ecrm::personalisation {

struct Interaction {
  std::string user;
  std::string item;
  absl::Time time;
};

// Reads "user item rating unix_time" lines separated by tabs or spaces (MovieLens u.data and
// ratings.tsv); every rating is an interaction. NOT_FOUND if the file is missing,
// INVALID_ARGUMENT naming the line if one does not parse.
absl::StatusOr<std::vector<Interaction>> ReadInteractions(const std::string& path);

struct EvalOptions {
  // The share of each user's interactions held out, the most recent ones (ties in time keep
  // the file's order).
  double holdout = 0.2;
  int top_n = 10;
  RecommenderOptions model;
  // The popularity baseline's half-life (plain counts, as TopPop, by default).
  absl::Duration baseline_half_life = absl::InfiniteDuration();
  // Rebuild every neighbour list exactly after the replay (to measure what the online upkeep
  // of the lists costs in quality).
  bool rebuild = false;
};

struct TopNMetrics {
  double precision = 0;
  double recall = 0;
  double ndcg = 0;
  // Users evaluated (those with at least one held-out interaction).
  int64_t users = 0;
};

struct EvalReport {
  TopNMetrics model;
  TopNMetrics popularity;
  int64_t train = 0;
  int64_t test = 0;
  // Share of the model's recommendations that came from similar items.
  double similar_share = 0;
  ModelStats stats;
  // Seconds spent replaying the training interactions through the model.
  double replay_seconds = 0;
};

// Splits, replays the training part in time order (one purchase each), recommends top_n per user
// excluding their training items, and scores the model and popularity on the same split.
EvalReport Evaluate(std::span<const Interaction> interactions, const EvalOptions& options);

}  // namespace ecrm::personalisation

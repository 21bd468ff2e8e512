// The products the recommendations may name, copied from the transaction engine's catalogue
// (clients/catalogue.h) by Refresh(), which the engine runs every --catalogue-refresh (default
// 60 s): a recommendation reflects a product's active flag, title, price and category as of the
// latest refresh that succeeded (docs/personalisation-recommendations.md, "Freshness").
//
// Read-copy: a refresh builds a new map off to the side and swaps it in; readers take a
// reference-counted snapshot and never wait for a refresh.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "clients/catalogue.h"
#include "recommender.h"

namespace ecrm::personalisation {

class Catalogue {
 public:
  using Products = absl::flat_hash_map<std::string, CatalogueProduct>;

  // `source` null: no catalogue (every product may be recommended, none is described).
  // `model`, when given, is told of every product's category (its popularity by category).
  Catalogue(CatalogueSource* source, Recommender* model) : source_(source), model_(model) {}

  // Reads every product again and swaps the new copy in; on failure the previous copy stays.
  absl::Status Refresh();

  // The latest copy (never null; empty before the first refresh).
  std::shared_ptr<const Products> Snapshot() const;
  // Whether a catalogue is configured and has been read at least once.
  bool loaded() const;
  // When the copy in use was read (absl::InfinitePast() before the first refresh).
  absl::Time refreshed_at() const;

 private:
  CatalogueSource* const source_;
  Recommender* const model_;
  mutable std::mutex mu_;
  std::shared_ptr<const Products> products_ = std::make_shared<Products>();
  bool loaded_ = false;
  absl::Time refreshed_at_ = absl::InfinitePast();
};

}  // namespace ecrm::personalisation

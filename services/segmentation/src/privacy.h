// What segmentation holds on a person, for the shared CustomerData service: their features (as
// saved), their scores, their segment memberships and the segment events not yet delivered.
#pragma once

#include "customer_features.h"
#include "ecrm/server/customer_data_owner.h"
#include "ecrm/sql/sql.h"
#include "feed.h"
#include "scores.h"
#include "segments.h"

namespace ecrm::segmentation {

class SegmentationPrivacy final : public server::CustomerDataOwner {
 public:
  // `feed` (null when the engine follows no information store, and so holds no customers)
  // applies an erasure as it applies one read from the feed.
  SegmentationPrivacy(sql::Database& db, Features& features, Segments& segments, Scores& scores, FeedConsumer* feed)
      : db_(db), features_(features), segments_(segments), scores_(scores), feed_(feed) {}

  // {"customers": [{"customer_id", "features", "scores", "segments": [{"id", "name"}]}]}; "{}"
  // when nothing is held. "scores" as GetCustomerScores reports them (empty before a refit).
  absl::StatusOr<std::string> ExportCustomerData(const privacy::v1::ExportCustomerDataRequest& req) override;
  // Forgets the customer and the ids merged into it everywhere: features and scores in memory,
  // saved features, every segment's members, queued segment events, campaign rows. Nothing is
  // published about them, and nothing saved of them is written back by a save under way.
  absl::StatusOr<privacy::v1::EraseCustomerDataResponse> EraseCustomerData(
      const privacy::v1::EraseCustomerDataRequest& req) override;

 private:
  sql::Database& db_;
  Features& features_;
  Segments& segments_;
  Scores& scores_;
  FeedConsumer* feed_;
};

}  // namespace ecrm::segmentation

// Broadcasts: one message to an audience. CreateBroadcast writes the broadcast, then its
// deliveries in batches (one transaction each, ids derived from broadcast + customer so a
// repeated batch adds nothing), and only then marks it loaded: the outbox's workers claim
// deliveries of loaded, running broadcasts only. Pause, resume and cancel change the
// broadcast's state, which workers check when they claim and again before they send; a
// broadcast completes when none of its deliveries is left queued.
//
// A segment_id audience is resolved through segmentation (StreamSegmentMembers) into the list
// of its members before anything is written, then loaded exactly as a listed audience is; a
// retried CreateBroadcast with the same key loads the same delivery ids (derived from broadcast
// and customer), so nothing is loaded twice.
#pragma once

#include <functional>
#include <set>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "clients/personalisation.h"
#include "clients/segmentation.h"
#include "ecrm/broadcast/v1/broadcast.pb.h"
#include "ecrm/idempotency/idempotency.h"
#include "ecrm/sql/sql.h"

namespace ecrm::broadcast {

class Broadcasts {
 public:
  using Clock = std::function<absl::Time()>;

  Broadcasts(
      sql::Database& db, idempotency::Store& keys, std::set<common::v1::Channel> available,
      std::function<void()> on_queued = nullptr, Clock clock = [] { return absl::Now(); });

  // Where segment_id audiences are resolved (null: CreateBroadcast refuses segment_id), and how
  // long reading one segment's members may take. Set before serving.
  void SetSegments(SegmentDirectory* segments, absl::Duration timeout) {
    segments_ = segments;
    segments_timeout_ = timeout;
  }
  // Where a template_id is checked to exist (null: not checked; the workers fail its deliveries).
  void SetTemplates(TemplateRenderer* templates, absl::Duration timeout) {
    templates_ = templates;
    templates_timeout_ = timeout;
  }

  absl::StatusOr<v1::BroadcastJob> Create(const v1::CreateBroadcastRequest& req);
  absl::StatusOr<v1::BroadcastJob> Get(const std::string& id);
  absl::StatusOr<v1::ListBroadcastsResponse> List(const v1::ListBroadcastsRequest& req);
  absl::StatusOr<v1::BroadcastJob> Pause(const std::string& id);
  absl::StatusOr<v1::BroadcastJob> Resume(const std::string& id);
  absl::StatusOr<v1::BroadcastJob> Cancel(const std::string& id);

  // The delivery id of a broadcast's message to a customer.
  static std::string DeliveryId(const std::string& broadcast_id, const std::string& customer_id);

 private:
  absl::StatusOr<v1::BroadcastJob> CreateFor(const v1::CreateBroadcastRequest& req,
                                             const google::protobuf::RepeatedPtrField<std::string>& audience);
  absl::Status Load(const std::string& id, const v1::CreateBroadcastRequest& req,
                    const google::protobuf::RepeatedPtrField<std::string>& audience, int64_t created_us);
  absl::StatusOr<v1::BroadcastJob> Transition(const std::string& id, std::set<v1::BroadcastState> from,
                                              v1::BroadcastState to, absl::string_view verb);

  sql::Database& db_;
  idempotency::Store& keys_;
  const std::set<common::v1::Channel> available_;
  std::function<void()> on_queued_;
  Clock clock_;
  SegmentDirectory* segments_ = nullptr;
  absl::Duration segments_timeout_ = absl::Minutes(5);
  TemplateRenderer* templates_ = nullptr;
  absl::Duration templates_timeout_ = absl::Seconds(5);
};

}  // namespace ecrm::broadcast

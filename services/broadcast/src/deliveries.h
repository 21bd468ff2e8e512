// Single messages and what happens to deliveries afterwards: SendMessage (idempotent by key),
// ListDeliveries, RecordDeliveryEvent (provider callbacks, opens, clicks, bounces, complaints,
// unsubscribes, each an event for the information store), and the web inbox.
#pragma once

#include <functional>
#include <set>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "ecrm/broadcast/v1/broadcast.pb.h"
#include "ecrm/idempotency/idempotency.h"
#include "ecrm/outbox/outbox.h"
#include "ecrm/sql/sql.h"
#include "metrics.h"
#include "profiles.h"

namespace ecrm::broadcast {

struct DeliveriesOptions {
  // The channels the gate may pick (Dispatcher::available()).
  std::set<common::v1::Channel> available = {common::v1::CHANNEL_WEB};
  // How far in the past send_at may be (clock skew) before it is refused.
  absl::Duration send_at_tolerance = absl::Minutes(5);
  // Deadline of a profile read when the caller has none.
  absl::Duration profile_timeout = absl::Seconds(2);
  // Counts the messages the gate holds back at once (null: not counted).
  BroadcastMetrics* metrics = nullptr;
};

class Deliveries {
 public:
  using Clock = std::function<absl::Time()>;

  Deliveries(
      sql::Database& db, idempotency::Store& keys, outbox::Outbox& events, Profiles& profiles,
      DeliveriesOptions options, std::function<void()> on_queued = nullptr, Clock clock = [] { return absl::Now(); });

  // Queues the message (the gate runs again when it comes up); a message the gate already
  // holds back is returned SUPPRESSED with its reason. `deadline`: the caller's, for the profile.
  absl::StatusOr<v1::Delivery> SendMessage(const v1::SendMessageRequest& req,
                                           absl::Time deadline = absl::InfiniteFuture());
  absl::StatusOr<v1::ListDeliveriesResponse> ListDeliveries(const v1::ListDeliveriesRequest& req);
  absl::StatusOr<v1::Delivery> RecordDeliveryEvent(const v1::RecordDeliveryEventRequest& req);
  absl::StatusOr<v1::GetInboxResponse> GetInbox(const v1::GetInboxRequest& req);
  absl::StatusOr<v1::MarkInboxReadResponse> MarkInboxRead(const v1::MarkInboxReadRequest& req);

 private:
  sql::Database& db_;
  idempotency::Store& keys_;
  outbox::Outbox& events_;
  Profiles& profiles_;
  const DeliveriesOptions options_;
  std::function<void()> on_queued_;
  Clock clock_;
};

// Checks content as both SendMessage and CreateBroadcast take it; `field` names it in errors.
absl::Status ValidateContent(const v1::MessageContent& content, absl::string_view field);
// Checks a purpose that must be set.
absl::Status ValidatePurpose(common::v1::Purpose purpose, absl::string_view field);

}  // namespace ecrm::broadcast

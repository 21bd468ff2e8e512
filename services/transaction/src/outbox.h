// The outbox of events for the information store. Every write that causes an event appends it
// in its own database transaction, so an event exists exactly when its change does; the relay
// (clients/) reads what is pending, oldest first, and deletes what was delivered.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "absl/status/statusor.h"
#include "ecrm/infostore/v1/infostore.pb.h"
#include "ecrm/sql/sql.h"

namespace ecrm::transaction {

// An undelivered event. Its body is the information store's API message, stored as it will
// be sent: a message in flight to another engine, not a record this engine reads back.
struct OutboxEvent {
  int64_t seq = 0;
  infostore::v1::Event event;
};

class Outbox {
 public:
  explicit Outbox(sql::Database& db) : db_(db) {}

  // Appends an event inside the caller's transaction; an event id already there is a no-op.
  absl::Status Add(sql::Connection& c, const infostore::v1::Event& event);
  // Called by the writers after a commit that added events.
  void Notify() const {
    if (listener_) listener_();
  }
  // Set once, before serving.
  void SetListener(std::function<void()> listener) { listener_ = std::move(listener); }

  // For the relay: undelivered events, oldest first.
  absl::StatusOr<std::vector<OutboxEvent>> PendingEvents(int limit);
  absl::Status MarkDelivered(const std::vector<int64_t>& seqs);
  // Parks an event the information store refused for good (kept, no longer relayed).
  absl::Status MarkFailed(int64_t seq, absl::string_view error);
  absl::StatusOr<int64_t> PendingCount();

 private:
  sql::Database& db_;
  std::function<void()> listener_;
};

}  // namespace ecrm::transaction

// The transactional outbox of events for the information store, for every engine that raises
// events (transaction, segmentation, broadcast, personalisation). A write that causes an event
// appends it in its own database transaction, so an event exists exactly when its change does;
// the relay (relay.h) reads what is pending, oldest first, and deletes what was delivered.
//
// Each engine's migrations create the table (same columns everywhere):
//   CREATE TABLE outbox (
//     seq {{id}},
//     event_id TEXT NOT NULL UNIQUE,      -- derived from what caused it: a retry makes the same id
//     customer_id TEXT NOT NULL,          -- whose event (erasure deletes the undelivered ones)
//     body {{blob}} NOT NULL,             -- ecrm.infostore.v1.Event, as it will be sent
//     created_at BIGINT NOT NULL,
//     failed TEXT);                       -- set when the information store refused it for good
//   CREATE INDEX outbox_customer ON outbox (customer_id);
// (broadcast's event_id is unique only where an event can be raised twice: its migration 5.)
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "ecrm/infostore/v1/infostore.pb.h"
#include "ecrm/sql/sql.h"

namespace ecrm::outbox {

// An undelivered event. Its body is the information store's API message, stored as it will
// be sent: a message in flight to another engine, not a record the engine reads back.
struct OutboxEvent {
  int64_t seq = 0;
  int64_t created_at_us = 0;  // when its transaction added it (Unix microseconds)
  infostore::v1::Event event;
};

class Outbox {
 public:
  explicit Outbox(sql::Database& db) : db_(db) {}

  // Appends an event inside the caller's transaction; an event id already there is a no-op where
  // the table's unique index covers it (ON CONFLICT DO NOTHING: any unique index, so an engine may
  // leave out of it the events it raises only once, as broadcast does message_sent).
  absl::Status Add(sql::Connection& c, const infostore::v1::Event& event);
  // Add for many events (sql::Connection::InsertBatch): what a batch of work raises.
  absl::Status AddMany(sql::Connection& c, const std::vector<infostore::v1::Event>& events);
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

}  // namespace ecrm::outbox

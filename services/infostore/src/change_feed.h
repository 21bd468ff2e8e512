// The change feed: every write appends Change rows in its own transaction, buffered while the
// transaction runs and written as its last step; WatchChanges reads them in sequence order, and
// changes older than the retention are pruned.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "ecrm/infostore/v1/infostore.pb.h"
#include "ecrm/sql/sql.h"

namespace ecrm::infostore {

namespace v1 = ::ecrm::infostore::v1;

class ChangeFeed {
 public:
  // The changes one transaction makes, in order, until Flush writes them.
  using Pending = std::vector<v1::Change>;

  explicit ChangeFeed(sql::Database& db) : db_(db) {}

  // Buffers a change. It carries the customer after it, except an event change: that carries
  // its event (a tail given to Flush).
  void Append(Pending& pending, v1::ChangeKind kind, const v1::Customer& customer,
              const v1::MergeRecord* merge = nullptr) const;
  // Buffers an event change of the customer (its version is set by the caller once known).
  void AppendEvent(Pending& pending, const std::string& customer_id) const;
  // Writes the pending changes as the transaction's last step and empties `pending`.
  // `tails[i]`, when given, is appended to change i as serialised: fields already encoded (an
  // event change gets its event that way, from the bytes stored for it, not serialised again).
  absl::Status Flush(sql::Connection& c, Pending& pending, const std::vector<std::string>* tails = nullptr) const;
  // Replaces every past change about the customer with an erase tombstone (inside the erasure's
  // transaction). Returns how many.
  absl::StatusOr<int64_t> Scrub(sql::Connection& c, const std::string& customer_id) const;

  // Called after every commit that appended to the feed (wakes feed streams). Set it before the
  // feed is written.
  void SetListener(std::function<void()> listener) { listener_ = std::move(listener); }
  // Runs the listener: a write has committed changes.
  void NotifyCommitted() const {
    if (listener_) listener_();
  }

  // Changes with sequence > after, in order, at most `limit`.
  absl::StatusOr<std::vector<v1::Change>> Read(int64_t after, int limit);
  // Deletes changes committed before `before`, always keeping the newest one so the feed
  // position survives. Returns how many were deleted.
  absl::StatusOr<int64_t> Prune(absl::Time before);
  // Lowest sequence still retained (0 when the feed is empty) and the latest one.
  absl::StatusOr<std::pair<int64_t, int64_t>> Bounds();

 private:
  sql::Database& db_;
  std::function<void()> listener_;
};

}  // namespace ecrm::infostore

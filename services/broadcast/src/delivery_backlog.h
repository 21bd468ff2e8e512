// The deliveries outbox as an operator watches it: how many queued deliveries are due and how
// long the oldest has been due, read from the database at each scrape (main.cc, through
// server::Runner::OnScrape). Only what a worker may claim counts — a delivery of no broadcast,
// or of a loaded broadcast that runs or is being cancelled (dispatcher.cc) — so a paused
// broadcast or one still loading does not look like a stuck outbox. Per claimable group
// (ClaimableGroups, as the workers claim) the count reads its due rows' entries of deliveries_due
// (state, broadcast_id, next_attempt_at), and no others.
#pragma once

#include <prometheus/gauge.h>
#include <prometheus/registry.h>

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "delivery_rows.h"
#include "ecrm/broadcast/v1/broadcast.pb.h"
#include "ecrm/log/log.h"
#include "ecrm/sql/sql.h"
#include "ecrm/status/macros.h"

namespace ecrm::broadcast {

class DeliveryBacklog {
 public:
  DeliveryBacklog(sql::Database& db, prometheus::Registry& registry)
      : db_(db),
        due_(prometheus::BuildGauge()
                 .Name("ecrm_broadcast_deliveries_due")
                 .Help("Queued deliveries whose send time has come (a worker may claim them)")
                 .Register(registry)
                 .Add({})),
        oldest_due_age_(prometheus::BuildGauge()
                            .Name("ecrm_broadcast_deliveries_oldest_due_age_seconds")
                            .Help("How long the oldest queued delivery has been due (0 when none is)")
                            .Register(registry)
                            .Add({})) {}

  // Reads the backlog as of `now` and sets the gauges; on a database error they keep their
  // last values (the error is logged).
  void Refresh(absl::Time now = absl::Now()) {
    const int64_t now_us = absl::ToUnixMicros(now);
    absl::StatusOr<std::pair<int64_t, int64_t>> due = Due(now_us);  // (count, oldest due time)
    if (!due.ok()) {
      log::Warn("reading the delivery backlog for /metrics failed", {{"error", due.status()}});
      return;
    }
    due_.Set(static_cast<double>(due->first));
    oldest_due_age_.Set(due->first == 0 ? 0.0 : std::max<double>(0, static_cast<double>(now_us - due->second) / 1e6));
  }

 private:
  absl::StatusOr<std::pair<int64_t, int64_t>> Due(int64_t now_us) {
    ECRM_ASSIGN_OR_RETURN(sql::Lease c, db_.Acquire());
    ECRM_ASSIGN_OR_RETURN(std::vector<std::string> groups, ClaimableGroups(*c));
    int64_t count = 0, oldest = now_us;
    for (const std::string& group : groups) {
      ECRM_ASSIGN_OR_RETURN(sql::Result r, c->Execute(absl::StrCat("SELECT COUNT(*), MIN(next_attempt_at) FROM "
                                                                   "deliveries WHERE state = ",
                                                                   v1::DELIVERY_STATE_QUEUED,
                                                                   " AND broadcast_id = $1 AND next_attempt_at <= $2"),
                                                      {group, now_us}));
      if (r.empty() || r.front().Int(0) == 0) continue;
      count += r.front().Int(0);
      oldest = std::min(oldest, r.front().Int(1));
    }
    return std::make_pair(count, oldest);
  }

  sql::Database& db_;
  prometheus::Gauge& due_;
  prometheus::Gauge& oldest_due_age_;
};

}  // namespace ecrm::broadcast

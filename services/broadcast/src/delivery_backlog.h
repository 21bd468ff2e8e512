// The deliveries outbox as an operator watches it: how many queued deliveries are due and how
// long the oldest has been due, read from the database at each scrape (main.cc, through
// server::Runner::OnScrape). Only what a worker may claim counts — a delivery of no broadcast,
// or of a loaded broadcast that runs or is being cancelled (dispatcher.cc) — so a paused
// broadcast or one still loading does not look like a stuck outbox. The count reads every queued
// row's entry of deliveries_due (state, broadcast_id, next_attempt_at).
#pragma once

#include <prometheus/gauge.h>
#include <prometheus/registry.h>

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "ecrm/broadcast/v1/broadcast.pb.h"
#include "ecrm/log/log.h"
#include "ecrm/sql/sql.h"

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
    absl::StatusOr<sql::Result> r = db_.Execute(
        absl::StrCat("SELECT COUNT(*), MIN(d.next_attempt_at) FROM deliveries d LEFT JOIN broadcasts b ON b.id = "
                     "d.broadcast_id WHERE d.state = ",
                     v1::DELIVERY_STATE_QUEUED,
                     " AND d.next_attempt_at <= $1 AND (d.broadcast_id = '' OR (b.loaded = 1 AND b.state IN (",
                     v1::BROADCAST_STATE_RUNNING, ", ", v1::BROADCAST_STATE_CANCELLED, ")))"),
        {now_us});
    if (!r.ok() || r->empty()) {
      log::Warn("reading the delivery backlog for /metrics failed", {{"error", r.status()}});
      return;
    }
    const sql::Row row = r->front();
    due_.Set(static_cast<double>(row.Int(0)));
    oldest_due_age_.Set(row.IsNull(1) ? 0.0 : std::max<double>(0, static_cast<double>(now_us - row.Int(1)) / 1e6));
  }

 private:
  sql::Database& db_;
  prometheus::Gauge& due_;
  prometheus::Gauge& oldest_due_age_;
};

}  // namespace ecrm::broadcast

// The segmentation engine's database: definitions, the feed position and what it holds on
// each customer (so that a restart resumes from the saved position), and the outbox of the
// segment entries and exits it publishes to the information store.
#pragma once

#include "ecrm/sql/sql.h"

namespace ecrm::segmentation {

inline constexpr sql::Migration kMigrations[] = {
    {1, "segments, feed position, customer features, outbox", R"sql(
CREATE TABLE segments (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL UNIQUE,
  description TEXT NOT NULL,
  rule TEXT NOT NULL,
  version BIGINT NOT NULL,
  created_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL
);
CREATE TABLE feed_position (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  position BIGINT NOT NULL               -- the information store's change sequence applied
);
CREATE TABLE customers (
  customer_id TEXT PRIMARY KEY,
  record {{blob}} NOT NULL               -- ecrm.segmentation.internal.CustomerFeaturesRecord
);
CREATE TABLE outbox (
  seq {{id}},
  event_id TEXT NOT NULL UNIQUE,
  customer_id TEXT NOT NULL,
  body {{blob}} NOT NULL,                -- ecrm.infostore.v1.Event, sent as is
  created_at BIGINT NOT NULL,
  failed TEXT                            -- set when the information store refused it for good
);
CREATE INDEX outbox_customer ON outbox (customer_id);
)sql"},
};

}  // namespace ecrm::segmentation

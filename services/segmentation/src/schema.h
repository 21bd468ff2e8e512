// The segmentation engine's database: definitions, the feed position and what it holds on
// each customer, the segments' members and the last refit's scores (so that a restart resumes
// from the saved position and publishes only what changed while it was down), and the outbox of
// the segment entries and exits it publishes to the information store.
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
    {2, "campaigns, their members and what the feed told of them", R"sql(
CREATE TABLE campaigns (
  id TEXT PRIMARY KEY,
  state INTEGER NOT NULL,                -- ecrm.segmentation.v1.CampaignState
  created_at BIGINT NOT NULL,
  record {{blob}} NOT NULL               -- ecrm.segmentation.internal.CampaignRecord
);
CREATE INDEX campaigns_created ON campaigns (created_at);
CREATE TABLE campaign_members (
  campaign_id TEXT NOT NULL,
  customer_id TEXT NOT NULL,
  control INTEGER NOT NULL,              -- 1: held out (uplift.h's InControl)
  PRIMARY KEY (campaign_id, customer_id)
);
CREATE INDEX campaign_members_customer ON campaign_members (customer_id);
CREATE TABLE campaign_outcomes (
  campaign_id TEXT NOT NULL,
  event_id TEXT NOT NULL,                -- the information store's event: each counted once
  customer_id TEXT NOT NULL,
  stage TEXT NOT NULL,                   -- sent, delivered, failed, opened, clicked, unsubscribed, goal
  at BIGINT NOT NULL,
  amount BIGINT NOT NULL,
  PRIMARY KEY (campaign_id, event_id)
);
CREATE INDEX campaign_outcomes_customer ON campaign_outcomes (customer_id);
)sql"},
    {3, "campaigns triggered by segment entry: each member's latest entry, the messages owed", R"sql(
ALTER TABLE campaign_members ADD COLUMN entered_at BIGINT NOT NULL DEFAULT 0;  -- triggered: latest entry (µs)
CREATE TABLE campaign_sends (
  id TEXT PRIMARY KEY,                   -- from the segment_entered event's id: an entry sends once
  campaign_id TEXT NOT NULL,
  customer_id TEXT NOT NULL,
  created_at BIGINT NOT NULL,
  batch TEXT,                            -- the hand-over it went in (its idempotency key)
  broadcast_id TEXT                      -- set once broadcast took the batch; '' dropped (campaign stopped)
);
CREATE INDEX campaign_sends_batch ON campaign_sends (batch);
CREATE INDEX campaign_sends_customer ON campaign_sends (customer_id);
)sql"},
    {4, "stable customer numbers, saved memberships and scores", R"sql(
ALTER TABLE customers ADD COLUMN number BIGINT;  -- the customer's number in the bitmaps (never given out again)
ALTER TABLE feed_position ADD COLUMN next_number BIGINT NOT NULL DEFAULT 0;  -- every number below is given out
CREATE TABLE segment_members (
  segment_id TEXT PRIMARY KEY,
  rule TEXT NOT NULL,                    -- the rule they are the members of (an edited rule fills anew)
  members {{blob}} NOT NULL              -- Roaring bitmap of customer numbers, portable format
);
CREATE TABLE segment_member_changes (    -- since the segment's members were saved, in seq order
  segment_id TEXT NOT NULL,
  seq BIGINT NOT NULL,
  entered {{blob}} NOT NULL,             -- Roaring bitmaps: members now, and not members now
  exited {{blob}} NOT NULL,
  PRIMARY KEY (segment_id, seq)
);
CREATE TABLE scores (
  part INTEGER PRIMARY KEY,              -- 0: the refit (its time, its models); 1…: its customers
  body {{blob}} NOT NULL                 -- ecrm.segmentation.internal.ScoresRecord
);
)sql"},
    {5, "customers' events apart from their records", R"sql(
CREATE TABLE customer_events (           -- written alone when a customer's events alone changed
  number INTEGER PRIMARY KEY,            -- customers.number
  events {{blob}} NOT NULL               -- Features::EventsToBytes; the record then holds no events
);
)sql"},
    {6, "customer_events keyed by a 64-bit number on PostgreSQL too", R"sql(
CREATE TABLE customer_events_64 (
  number {{int64_key}},                  -- customers.number (INTEGER was 32-bit on PostgreSQL)
  events {{blob}} NOT NULL
);
INSERT INTO customer_events_64 (number, events) SELECT number, events FROM customer_events;
DROP TABLE customer_events;
ALTER TABLE customer_events_64 RENAME TO customer_events;
)sql"},
    {7, "when the members saved were evaluated", R"sql(
-- Unix µs of the segments' clock when the last members were saved: a start looks from then for
-- when each customer it finds entered or left while the engine was down (0: not known).
ALTER TABLE feed_position ADD COLUMN saved_at BIGINT NOT NULL DEFAULT 0;
)sql"},
    {8, "triggered messages broadcast refused for good", R"sql(
-- Why broadcast refused the batch (its status); set with broadcast_id '': never handed over again.
ALTER TABLE campaign_sends ADD COLUMN refused TEXT;
)sql"},
    {9, "events appended to a log instead of rewriting each customer's events row", R"sql(
-- Events of customers whose events alone changed, one row per save transaction (feed.h, "The
-- events log"); folded back into customer_events a slice at a time, then deleted.
CREATE TABLE customer_events_log (
  sequence {{int64_key}},                -- increasing with every save transaction
  entries {{blob}} NOT NULL              -- internal.EventLogEntries
);
-- The log rows up to this sequence are already in the row (a start replays only later ones).
ALTER TABLE customer_events ADD COLUMN logged_through BIGINT NOT NULL DEFAULT 0;
)sql"},
};

}  // namespace ecrm::segmentation

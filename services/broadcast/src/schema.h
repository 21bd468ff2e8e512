// The broadcast engine's tables. Times are microseconds since the epoch (UTC).
#pragma once

#include "ecrm/sql/sql.h"

namespace ecrm::broadcast {

// deliveries.body and broadcasts.body hold ecrm.broadcast.internal.MessageRecord /
// BroadcastRecord (services/broadcast/proto/…/internal/record.proto).
inline constexpr sql::Migration kMigrations[] = {
    {1, "deliveries (the durable outbox), broadcasts, suppressions, frequency-cap ledger, inbox, keys, events",
     R"sql(
CREATE TABLE broadcasts (
  id TEXT PRIMARY KEY,
  campaign_id TEXT NOT NULL,
  state INTEGER NOT NULL,                    -- ecrm.broadcast.v1.BroadcastState
  loaded INTEGER NOT NULL,                   -- 1 once every delivery row is written
  audience_size BIGINT NOT NULL,
  created_at BIGINT NOT NULL,
  completed_at BIGINT NOT NULL DEFAULT 0,
  body {{blob}} NOT NULL                     -- ecrm.broadcast.internal.BroadcastRecord
);
CREATE INDEX broadcasts_created ON broadcasts (created_at, id);
CREATE INDEX broadcasts_campaign ON broadcasts (campaign_id, created_at, id);
CREATE TABLE deliveries (
  id TEXT PRIMARY KEY,                       -- a broadcast's are derived from broadcast + customer
  customer_id TEXT NOT NULL,
  broadcast_id TEXT NOT NULL,                -- '' for SendMessage
  campaign_id TEXT NOT NULL,
  purpose INTEGER NOT NULL,
  channel INTEGER NOT NULL,                  -- the channel chosen (0 until the gate chose one)
  state INTEGER NOT NULL,                    -- ecrm.broadcast.v1.DeliveryState
  suppression_reason INTEGER NOT NULL,
  address TEXT NOT NULL,
  subject TEXT NOT NULL,
  attempts INTEGER NOT NULL,
  last_error TEXT NOT NULL,
  provider_message_id TEXT NOT NULL,
  created_at BIGINT NOT NULL,
  sent_at BIGINT NOT NULL,
  opened_at BIGINT NOT NULL,
  clicked_at BIGINT NOT NULL,
  next_attempt_at BIGINT NOT NULL,           -- due time while queued
  lease_until BIGINT NOT NULL,               -- a worker holds the row until then; a crash re-queues it
  lease_owner TEXT NOT NULL,                 -- the claim that holds it
  sending INTEGER NOT NULL,                  -- 1 while handed to a channel: a re-claim may duplicate
  body {{blob}} NOT NULL                     -- ecrm.broadcast.internal.MessageRecord
);
CREATE INDEX deliveries_due ON deliveries (state, next_attempt_at);
CREATE INDEX deliveries_customer ON deliveries (customer_id, created_at, id);
CREATE INDEX deliveries_broadcast ON deliveries (broadcast_id, state);
CREATE INDEX deliveries_provider ON deliveries (provider_message_id);
CREATE TABLE suppressions (
  channel INTEGER NOT NULL,                  -- 0: every channel
  address TEXT NOT NULL,                     -- normalised address, or 'sha256:<hex>' once erased; '' for a customer
  customer_id TEXT NOT NULL,                 -- '' for an address
  reason TEXT NOT NULL,
  created_at BIGINT NOT NULL,
  PRIMARY KEY (channel, address, customer_id)
);
CREATE INDEX suppressions_customer ON suppressions (customer_id);
CREATE TABLE cap_locks (
  customer_id TEXT PRIMARY KEY               -- locked while a send is counted, so caps are exact
);
CREATE TABLE cap_sends (
  delivery_id TEXT PRIMARY KEY,
  customer_id TEXT NOT NULL,
  channel INTEGER NOT NULL,
  category TEXT NOT NULL,
  sent_at BIGINT NOT NULL
);
CREATE INDEX cap_sends_customer ON cap_sends (customer_id, sent_at);
CREATE TABLE inbox (
  delivery_id TEXT PRIMARY KEY,
  customer_id TEXT NOT NULL,
  subject TEXT NOT NULL,
  html_body TEXT NOT NULL,
  created_at BIGINT NOT NULL,
  read_at BIGINT NOT NULL,
  expires_at BIGINT NOT NULL
);
CREATE INDEX inbox_customer ON inbox (customer_id, created_at, delivery_id);
CREATE TABLE idempotency_keys (
  operation TEXT NOT NULL,
  key TEXT NOT NULL,
  request_hash TEXT NOT NULL,
  response {{blob}} NOT NULL,
  created_at BIGINT NOT NULL,
  customer_id TEXT NOT NULL DEFAULT '',
  PRIMARY KEY (operation, key)
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);
CREATE INDEX idempotency_keys_customer ON idempotency_keys (customer_id);
CREATE TABLE outbox (
  seq {{id}},
  event_id TEXT NOT NULL UNIQUE,             -- message_<kind>:<delivery id>
  customer_id TEXT NOT NULL,
  body {{blob}} NOT NULL,
  created_at BIGINT NOT NULL,
  failed TEXT
);
CREATE INDEX outbox_customer ON outbox (customer_id);
)sql"},
    // GetBroadcast counts a broadcast's deliveries by state and reason: from the index alone,
    // instead of one table row per delivery (a running 1,000,000-recipient broadcast polled
    // every 200 ms cost the engine a core in row reads).
    {2, "a broadcast's progress counted from an index", R"sql(
DROP INDEX deliveries_broadcast;
CREATE INDEX deliveries_broadcast ON deliveries (broadcast_id, state, suppression_reason);
)sql"},
    // The gate looks address entries up by address (customer_id = ''): without this index each
    // lookup read every address entry through suppressions_customer (~1 ms per 10,000 entries).
    {3, "suppression entries found by their address",
     R"sql(
CREATE INDEX suppressions_address ON suppressions (address, customer_id);
)sql"},
    // Delivery rows keyed in insertion (audience) order: `seq`, SQLite's rowid itself, with the
    // hashed id a unique column. Workers claim and update rows by seq, so one batch's rows share
    // pages, and the id's random index is touched only on insert and by lookups by id (at
    // 1,000,000 recipients every claim, gate and outcome statement walked it at random). The due
    // index leads with the broadcast, so that a claim reads only running broadcasts' due rows (it
    // walked every row of a broadcast still loading, the writer lock held). A broadcast's progress
    // is counted in broadcast_progress, in the transactions that change the rows (GetBroadcast
    // counted its rows, O(audience) per call); a row per (broadcast, state, reason, shard): each
    // worker adds to its own shard, so that counting does not serialise them on PostgreSQL.
    {4, "deliveries keyed in insertion order; due rows by broadcast; progress counters", R"sql(
CREATE TABLE deliveries_new (
  seq {{id}},                                -- insertion order: a broadcast's audience order
  id TEXT NOT NULL UNIQUE,                   -- a broadcast's are derived from broadcast + customer
  customer_id TEXT NOT NULL,
  broadcast_id TEXT NOT NULL,                -- '' for SendMessage
  campaign_id TEXT NOT NULL,
  purpose INTEGER NOT NULL,
  channel INTEGER NOT NULL,                  -- the channel chosen (0 until the gate chose one)
  state INTEGER NOT NULL,                    -- ecrm.broadcast.v1.DeliveryState
  suppression_reason INTEGER NOT NULL,
  address TEXT NOT NULL,
  subject TEXT NOT NULL,
  attempts INTEGER NOT NULL,
  last_error TEXT NOT NULL,
  provider_message_id TEXT NOT NULL,
  created_at BIGINT NOT NULL,
  sent_at BIGINT NOT NULL,
  opened_at BIGINT NOT NULL,
  clicked_at BIGINT NOT NULL,
  next_attempt_at BIGINT NOT NULL,           -- due time while queued
  lease_until BIGINT NOT NULL,               -- a worker holds the row until then; a crash re-queues it
  lease_owner TEXT NOT NULL,                 -- the claim that holds it
  sending INTEGER NOT NULL,                  -- 1 while handed to a channel: a re-claim may duplicate
  body {{blob}} NOT NULL                     -- ecrm.broadcast.internal.MessageRecord
);
INSERT INTO deliveries_new (id, customer_id, broadcast_id, campaign_id, purpose, channel, state, suppression_reason,
  address, subject, attempts, last_error, provider_message_id, created_at, sent_at, opened_at, clicked_at,
  next_attempt_at, lease_until, lease_owner, sending, body)
SELECT id, customer_id, broadcast_id, campaign_id, purpose, channel, state, suppression_reason, address, subject,
  attempts, last_error, provider_message_id, created_at, sent_at, opened_at, clicked_at, next_attempt_at,
  lease_until, lease_owner, sending, body FROM deliveries ORDER BY created_at, id;
DROP TABLE deliveries;
ALTER TABLE deliveries_new RENAME TO deliveries;
CREATE INDEX deliveries_due ON deliveries (state, broadcast_id, next_attempt_at);
CREATE INDEX deliveries_customer ON deliveries (customer_id, created_at, id);
CREATE INDEX deliveries_broadcast ON deliveries (broadcast_id);
CREATE INDEX deliveries_provider ON deliveries (provider_message_id);
CREATE INDEX broadcasts_state ON broadcasts (state);
CREATE TABLE broadcast_progress (
  broadcast_id TEXT NOT NULL,
  state INTEGER NOT NULL,                    -- ecrm.broadcast.v1.DeliveryState
  suppression_reason INTEGER NOT NULL,
  shard INTEGER NOT NULL,
  n BIGINT NOT NULL,                         -- rows of the broadcast in this state (this shard's part)
  PRIMARY KEY (broadcast_id, state, suppression_reason, shard)
);
INSERT INTO broadcast_progress (broadcast_id, state, suppression_reason, shard, n)
SELECT broadcast_id, state, suppression_reason, 0, COUNT(*) FROM deliveries WHERE broadcast_id <> ''
GROUP BY broadcast_id, state, suppression_reason;
)sql"},
    // The outbox's event ids are unique only where an event can be raised again: provider events
    // and tracked opens, clicks and unsubscribes (each asked any number of times, kept once while
    // pending). A message_sent event is raised once, in the transaction that makes its row SENT
    // (a row is SENT at most once), so its id needs no index: at 1,000,000 recipients the index
    // took one random page per message (the hashed delivery id), 16% of the engine's CPU with
    // the WAL and checkpoint writes it caused. The store dedups by event id as before.
    {5, "outbox event ids unique except message_sent's", R"sql(
CREATE TABLE outbox_new (
  seq {{id}},
  event_id TEXT NOT NULL,                    -- message_<kind>:<delivery id>
  customer_id TEXT NOT NULL,
  body {{blob}} NOT NULL,
  created_at BIGINT NOT NULL,
  failed TEXT
);
INSERT INTO outbox_new (event_id, customer_id, body, created_at, failed)
SELECT event_id, customer_id, body, created_at, failed FROM outbox ORDER BY seq;
DROP TABLE outbox;
ALTER TABLE outbox_new RENAME TO outbox;
CREATE INDEX outbox_customer ON outbox (customer_id);
CREATE UNIQUE INDEX outbox_event ON outbox (event_id) WHERE substr(event_id, 1, 13) <> 'message_sent:';
)sql"},
};

}  // namespace ecrm::broadcast

// The information store's tables. Times are microseconds since the epoch (UTC).
#pragma once

#include "ecrm/sql/sql.h"

namespace ecrm::infostore {

inline constexpr sql::Migration kMigrations[] = {
    {1, "customers, identifiers, consents, events, merges, change feed", R"sql(
CREATE TABLE customers (
  id TEXT PRIMARY KEY,
  version BIGINT NOT NULL,
  merged_into TEXT,                 -- set once merged: reads redirect to the survivor
  created_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL,
  record {{blob}} NOT NULL          -- ecrm.infostore.internal.CustomerRecord
);
CREATE INDEX customers_updated ON customers (updated_at);
CREATE TABLE identifiers (
  type INTEGER NOT NULL,
  source TEXT NOT NULL,
  value TEXT NOT NULL,
  customer_id TEXT NOT NULL,
  PRIMARY KEY (type, source, value)  -- each identifier belongs to one customer
);
CREATE INDEX identifiers_customer ON identifiers (customer_id);
CREATE TABLE consent_history (
  id {{id}},
  customer_id TEXT NOT NULL,
  channel INTEGER NOT NULL,
  purpose INTEGER NOT NULL,
  decided_at BIGINT NOT NULL,
  change {{blob}} NOT NULL          -- ecrm.infostore.v1.ConsentChange
);
CREATE INDEX consent_history_customer ON consent_history (customer_id, id);
CREATE TABLE events (
  event_id TEXT PRIMARY KEY,        -- replays are ignored
  customer_id TEXT NOT NULL,        -- current owner (survivor after merges)
  recorded_for TEXT NOT NULL,       -- the customer it was first recorded against (unmerge)
  type TEXT NOT NULL,
  occurred_at BIGINT NOT NULL,
  event {{blob}} NOT NULL           -- ecrm.infostore.v1.Event
);
CREATE INDEX events_customer ON events (customer_id, occurred_at);
CREATE TABLE merges (
  merge_id TEXT PRIMARY KEY,
  survivor_id TEXT NOT NULL,
  merged_at BIGINT NOT NULL,
  unmerged_at BIGINT,
  record {{blob}} NOT NULL,         -- ecrm.infostore.v1.MergeRecord
  before_images {{blob}} NOT NULL   -- ecrm.infostore.internal.MergeBeforeImages
);
CREATE INDEX merges_survivor ON merges (survivor_id, merged_at);
CREATE TABLE merge_members (merge_id TEXT NOT NULL, customer_id TEXT NOT NULL, PRIMARY KEY (customer_id, merge_id));
CREATE TABLE changes (
  sequence {{id}},                  -- strictly increasing, written in the changing transaction
  kind INTEGER NOT NULL,
  customer_id TEXT NOT NULL,
  committed_at BIGINT NOT NULL,
  change {{blob}} NOT NULL          -- ecrm.infostore.v1.Change without its sequence
);
)sql"},
    {2, "erasure receipts and hashed identifiers of erased people", R"sql(
CREATE TABLE erased_identifiers (
  hash TEXT PRIMARY KEY,            -- SHA-256 of type|source|value: flags a re-import, holds no data
  erased_at BIGINT NOT NULL
);
CREATE TABLE erasures (
  request_id TEXT PRIMARY KEY,      -- a retried EraseCustomer returns the first receipt
  erased_at BIGINT NOT NULL,
  receipt {{blob}} NOT NULL         -- ecrm.privacy.v1.EraseCustomerDataResponse
);
)sql"},
    {3, "custom attribute types, fixed by each attribute's first use", R"sql(
CREATE TABLE attribute_types (
  name TEXT PRIMARY KEY,
  value_case INTEGER NOT NULL,      -- ecrm.common.v1.AttributeValue value case (string, int, …)
  declared_at BIGINT NOT NULL
);
)sql"},
    {4, "idempotent upserts: the first response per request_id", R"sql(
CREATE TABLE upsert_requests (
  request_id TEXT PRIMARY KEY,
  request_hash TEXT NOT NULL,       -- SHA-256 of the request: the same key with another request is refused
  created_at BIGINT NOT NULL,
  response {{blob}} NOT NULL        -- ecrm.infostore.v1.UpsertCustomerResponse, replayed as is
);
CREATE INDEX upsert_requests_created ON upsert_requests (created_at);
)sql"},
    {5, "no index on customers.updated_at: it turned every summary update into index maintenance", R"sql(
DROP INDEX customers_updated;
)sql"},
    // 6 was an unreleased migration, dropped in a7e5158; development databases may record it.
    {7, "upsert request ids name the customer their response holds, so that erasure deletes them", R"sql(
ALTER TABLE upsert_requests ADD COLUMN customer_id TEXT NOT NULL DEFAULT '';
CREATE INDEX upsert_requests_customer ON upsert_requests (customer_id);
)sql"},
    {8, "UpsertCustomer request ids move to idempotency_keys, the table every engine keeps them in", R"sql(
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
INSERT INTO idempotency_keys (operation, key, request_hash, response, created_at, customer_id)
  SELECT 'UpsertCustomer', request_id, request_hash, response, created_at, customer_id FROM upsert_requests;
DROP TABLE upsert_requests;
)sql"},
};

}  // namespace ecrm::infostore

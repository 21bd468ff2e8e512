// The transaction engine's tables. Times are microseconds since the epoch (UTC); money is
// integer minor units with an ISO 4217 code.
#pragma once

#include "ecrm/sql/sql.h"

namespace ecrm::transaction {

// The body of orders and inquiries holds ecrm.transaction.internal.OrderRecord / InquiryRecord
// (services/transaction/proto/…/internal/record.proto), wire-compatible with the
// ecrm.transaction.v1 messages that migration 1's comments name and that older rows hold.
inline constexpr sql::Migration kMigrations[] = {
    {1, "catalogue, carts, orders, idempotency keys, loyalty, inquiries, outbox", R"sql(
CREATE TABLE products (
  sku TEXT PRIMARY KEY,
  title TEXT NOT NULL,
  description TEXT NOT NULL,
  category TEXT NOT NULL,
  price_minor BIGINT NOT NULL,
  currency TEXT NOT NULL,
  active INTEGER NOT NULL,
  track_stock INTEGER NOT NULL,
  stock BIGINT NOT NULL CHECK (stock >= 0),   -- the last line of defence against overselling
  updated_at BIGINT NOT NULL
);
CREATE INDEX products_category ON products (category, sku);
CREATE TABLE carts (
  customer_id TEXT PRIMARY KEY,              -- one open cart per customer
  id TEXT NOT NULL,
  currency TEXT NOT NULL,
  updated_at BIGINT NOT NULL,
  abandoned_at BIGINT NOT NULL DEFAULT 0     -- updated_at of the idle period already reported
);
CREATE INDEX carts_idle ON carts (updated_at, customer_id);
CREATE TABLE cart_lines (
  customer_id TEXT NOT NULL,
  sku TEXT NOT NULL,
  quantity INTEGER NOT NULL,
  added_at BIGINT NOT NULL,
  PRIMARY KEY (customer_id, sku)
);
CREATE TABLE orders (
  id TEXT PRIMARY KEY,
  customer_id TEXT NOT NULL,                 -- '' once the customer is erased (pseudonymised)
  state INTEGER NOT NULL,
  currency TEXT NOT NULL,
  paid_minor BIGINT NOT NULL,                -- total less refunds (0 once cancelled): 12-month spend
  placed_at BIGINT NOT NULL,
  body {{blob}} NOT NULL                     -- ecrm.transaction.v1.Order
);
CREATE INDEX orders_customer ON orders (customer_id, placed_at, id);
CREATE TABLE idempotency_keys (
  operation TEXT NOT NULL,
  key TEXT NOT NULL,
  request_hash TEXT NOT NULL,
  response {{blob}} NOT NULL,                -- the first response, replayed byte for byte
  created_at BIGINT NOT NULL,
  PRIMARY KEY (operation, key)
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);
CREATE TABLE loyalty_accounts (
  customer_id TEXT PRIMARY KEY,
  balance BIGINT NOT NULL CHECK (balance >= 0),
  orders INTEGER NOT NULL,                   -- purchases so far, for the 2nd / 3rd purchase bonus
  last_order_at BIGINT NOT NULL,             -- for the reactivation bonus
  created_at BIGINT NOT NULL
);
CREATE TABLE loyalty_ledger (
  seq {{id}},
  customer_id TEXT NOT NULL,
  points BIGINT NOT NULL,
  reason TEXT NOT NULL,
  order_id TEXT NOT NULL,
  rule_key TEXT UNIQUE,                      -- a rule credits (or reverses) an order at most once
  balance_after BIGINT NOT NULL,
  note TEXT NOT NULL,
  created_at BIGINT NOT NULL
);
CREATE INDEX loyalty_ledger_customer ON loyalty_ledger (customer_id, seq);
CREATE INDEX loyalty_ledger_order ON loyalty_ledger (order_id);
CREATE TABLE inquiries (
  id TEXT PRIMARY KEY,
  customer_id TEXT NOT NULL,
  state INTEGER NOT NULL,
  opened_at BIGINT NOT NULL,
  body {{blob}} NOT NULL                     -- ecrm.transaction.v1.Inquiry
);
CREATE INDEX inquiries_customer ON inquiries (customer_id, opened_at, id);
CREATE INDEX inquiries_opened ON inquiries (opened_at, id);
CREATE TABLE outbox (
  seq {{id}},
  event_id TEXT NOT NULL UNIQUE,             -- derived from the order / cart / inquiry id
  customer_id TEXT NOT NULL,
  body {{blob}} NOT NULL,                    -- ecrm.infostore.v1.Event
  created_at BIGINT NOT NULL,
  failed TEXT                                -- set when the information store refused it for good
);
CREATE INDEX outbox_customer ON outbox (customer_id);
)sql"},
    {2, "idempotency keys name the customer their response is about, so that erasure finds them", R"sql(
ALTER TABLE idempotency_keys ADD COLUMN customer_id TEXT NOT NULL DEFAULT '';  -- '' once erased
CREATE INDEX idempotency_keys_customer ON idempotency_keys (customer_id);
)sql"},
};

}  // namespace ecrm::transaction

// The personalisation engine's database: message templates and every version of each (1);
// offers and each customer's impressions of them (2); the recommendation model's orders and the
// change feed position they are learnt up to (3, recommendation_feed.h).
#pragma once

#include "ecrm/sql/sql.h"

namespace ecrm::personalisation {

inline constexpr sql::Migration kMigrations[] = {
    {1, "message templates and their versions", R"sql(
CREATE TABLE templates (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  channel INTEGER NOT NULL,              -- ecrm.common.v1.Channel
  locale TEXT NOT NULL,                  -- canonical BCP 47 tag; '' for the default
  version BIGINT NOT NULL,               -- the latest version
  created_at BIGINT NOT NULL,            -- microseconds since the epoch
  updated_at BIGINT NOT NULL,
  UNIQUE (name, channel, locale)         -- one template per message, channel and locale
);
CREATE TABLE template_versions (
  template_id TEXT NOT NULL,
  version BIGINT NOT NULL,
  name TEXT NOT NULL,
  locale TEXT NOT NULL,
  subject TEXT NOT NULL,
  text_body TEXT NOT NULL,
  html_body TEXT NOT NULL,
  created_at BIGINT NOT NULL,            -- when this version was saved
  PRIMARY KEY (template_id, version)
);
)sql"},
    {2, "offers and their impressions per customer", R"sql(
CREATE TABLE offers (
  id TEXT PRIMARY KEY,
  active INTEGER NOT NULL,               -- 1: decided on
  data {{blob}} NOT NULL,                -- the Offer proto without id, created_at, impressions
  impressions BIGINT NOT NULL,           -- recorded over every customer (the total budget's count)
  created_at BIGINT NOT NULL,            -- microseconds since the epoch
  updated_at BIGINT NOT NULL
);
CREATE TABLE offer_impressions (
  customer_id TEXT NOT NULL,
  offer_id TEXT NOT NULL,
  shown BIGINT NOT NULL,                 -- impressions recorded (the per-customer cap's count)
  first_at BIGINT NOT NULL,
  last_at BIGINT NOT NULL,
  PRIMARY KEY (customer_id, offer_id)
);
CREATE INDEX offer_impressions_offer ON offer_impressions (offer_id);
-- Bumped by every change of an offer: engines reload their compiled offers when it moves.
CREATE TABLE offer_changes (
  id INTEGER PRIMARY KEY,
  generation BIGINT NOT NULL
);
INSERT INTO offer_changes (id, generation) VALUES (1, 0);
)sql"},
    {3, "the recommendation model's learnt orders and feed position", R"sql(
CREATE TABLE reco_orders (
  order_id TEXT PRIMARY KEY,
  customer_id TEXT NOT NULL,             -- the buyer (the survivor after a merge)
  skus TEXT NOT NULL,                    -- distinct SKUs, comma-separated
  total_minor BIGINT NOT NULL,           -- the order's total (a refund reaching it takes it back)
  occurred_at BIGINT NOT NULL            -- microseconds since the epoch
);
CREATE INDEX reco_orders_customer ON reco_orders (customer_id);
CREATE TABLE reco_feed_position (
  id INTEGER PRIMARY KEY,                -- always 1
  position BIGINT NOT NULL               -- the last change applied and saved
);
)sql"},
};

}  // namespace ecrm::personalisation

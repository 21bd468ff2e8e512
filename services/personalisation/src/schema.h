// The personalisation engine's database: message templates and every version of each.
// (Offers, impressions and the recommendation model's feed position come in later migrations.)
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
};

}  // namespace ecrm::personalisation

// What the tests that run real servers share: one Redis per test process, the shared
// PostgreSQL (ecrm::testing::PostgresServer::Shared), and where the built engines are. A test
// that cannot start them fails with the reason.
#pragma once

#include <catch2/catch.hpp>
#include <string>

#include "absl/strings/str_cat.h"
#include "ecrm/testing/servers.h"

namespace ecrm::testing {

inline RedisServer& Redis() {
  static auto redis = [] {
    auto r = RedisServer::Start();
    if (!r.ok()) FAIL(r.status().ToString());
    return std::move(*r);
  }();
  return *redis;
}

inline PostgresServer& Postgres() {
  auto pg = PostgresServer::Shared();
  if (!pg.ok()) FAIL(pg.status().ToString());
  return **pg;
}

// The binary of an engine ("infostore", "segmentation", …) in this build.
inline std::string Binary(const std::string& engine) { return absl::StrCat(ECRM_BUILD_DIR, "/services/ecrm-", engine); }

}  // namespace ecrm::testing

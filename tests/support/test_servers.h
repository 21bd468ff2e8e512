// What the tests that run real servers share: one Redis per test process, the shared
// PostgreSQL (ecrm::testing::PostgresServer::Shared), where the built engines are, and a wait
// for what they reach on their own. A test that cannot start them fails with the reason.
#pragma once

#include <grpcpp/client_context.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <functional>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "ecrm/testing/servers.h"
#include "ecrm/testing/service.h"

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

// Starts the built engine ("broadcast" …) with `args`; the test fails with the reason if it cannot.
inline std::unique_ptr<ServiceProcess> StartEngine(const std::string& engine,
                                                   const std::vector<std::string>& args = {}) {
  auto s = ServiceProcess::Start(Binary(engine), args);
  if (!s.ok()) FAIL(s.status().ToString());
  return std::move(*s);
}

// One unary call, `(stub.*method)(…)`, with a 20 s deadline (a bound for a failing test only).
template <typename Stub, typename Req, typename Resp, typename Method>
grpc::Status Call(Stub& stub, Method method, const Req& req, Resp* resp) {
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(20)));
  return (stub.*method)(&ctx, req, resp);
}

// Polls `condition` until it holds (true) or `timeout` passes (false): for what engines reach
// asynchronously (a feed applied, an event relayed). The timeout only bounds a failing test.
inline bool Eventually(const std::function<bool()>& condition, absl::Duration timeout = absl::Seconds(30)) {
  const absl::Time deadline = absl::Now() + timeout;
  while (!condition()) {
    if (absl::Now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return true;
}

}  // namespace ecrm::testing

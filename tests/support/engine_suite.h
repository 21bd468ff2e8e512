// The engines wired to one another as scripts/run-suite.sh wires them, with this test process's
// Redis and the real SMTP server (tests/support/smtp_server.py) for broadcast's email: what the
// end to end tests share. Each engine is on SQLite in the suite's directory unless given a
// database; a test adds or overrides flags per engine. A test that cannot start them fails with
// the reason.
#pragma once

#include <stdlib.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/time.h"
#include "ecrm/testing/process.h"
#include "ecrm/testing/service.h"
#include "smtp_test_server.h"
#include "test_servers.h"

namespace ecrm::testing {

struct EngineSuiteOptions {
  // Infostore, personalisation and broadcast always run; these two when true.
  bool transaction = true;
  bool segmentation = true;
  // Per engine ("infostore", …), its --database-url; an engine not named: SQLite in the suite's
  // directory.
  std::map<std::string, std::string> databases;
  // Per engine, flags after the wiring's; a flag given again wins ("--redis-url=": no Redis).
  std::map<std::string, std::vector<std::string>> flags;
  // Set in this process before the engines start; they inherit it.
  std::map<std::string, std::string> environment = {
      {"ECRM_TRACKING_SECRET", "the links' secret, sixteen bytes or more"}};
  // Broadcast's HTTP endpoints on 127.0.0.1, on the port it picks (EngineSuite::http_port).
  bool broadcast_http = false;
  // Segmentation evaluates its rules at this time (EngineSuite::SetClock moves it) instead of the
  // system clock's (its --clock-file).
  std::optional<absl::Time> clock;
};

class EngineSuite {
 public:
  using Options = EngineSuiteOptions;

  // Personalisation asks segmentation (an offer's segments), broadcast asks personalisation and
  // segmentation, segmentation hands campaigns and triggered messages to broadcast: segmentation's
  // address is fixed first and it starts last.
  explicit EngineSuite(Options options = {}) {
    auto s = SmtpTestServer::Start();
    if (!s.ok()) FAIL(s.status().ToString());
    smtp = std::move(*s);
    for (const auto& [name, value] : options.environment) setenv(name.c_str(), value.c_str(), 1);
    std::string segmentation_address;
    if (options.segmentation) {
      ClosedPort port;
      segmentation_address = port.address();
    }
    auto start = [&](const std::string& engine, std::vector<std::string> wiring) {
      const auto db = options.databases.find(engine);
      wiring.insert(wiring.begin(),
                    absl::StrCat("--database-url=", db != options.databases.end()
                                                        ? db->second
                                                        : absl::StrCat("sqlite://", dir.path(), "/", engine, ".db")));
      wiring.push_back("--redis-url=" + Redis().url());
      const std::vector<std::string>& more = options.flags[engine];
      wiring.insert(wiring.end(), more.begin(), more.end());
      return StartEngine(engine, wiring);
    };
    infostore = start("infostore", {});
    const std::string hub = "--infostore-address=" + infostore->grpc_address();
    if (options.transaction) transaction = start("transaction", {hub});
    std::vector<std::string> wiring = {hub};
    if (transaction) wiring.push_back("--transaction-address=" + transaction->grpc_address());
    if (options.segmentation) wiring.push_back("--segmentation-address=" + segmentation_address);
    personalisation = start("personalisation", wiring);
    wiring = {hub, "--personalisation-address=" + personalisation->grpc_address(), "--smtp-url=" + smtp->Url(),
              "--smtp-from=shop@shop.example"};
    if (options.segmentation) wiring.push_back("--segmentation-address=" + segmentation_address);
    const std::string port_file = dir.path() + "/http-port";
    if (options.broadcast_http) {
      wiring.insert(wiring.end(), {"--http-address=127.0.0.1:0", "--http-port-file=" + port_file});
    }
    broadcast = start("broadcast", wiring);
    if (options.broadcast_http) {
      std::ifstream in(port_file);
      std::string line;
      REQUIRE(std::getline(in, line));
      REQUIRE(absl::SimpleAtoi(absl::StripPrefix(line, "http_port="), &http_port));
    }
    if (!options.segmentation) return;
    wiring = {"--grpc-address=" + segmentation_address, hub, "--broadcast-address=" + broadcast->grpc_address()};
    if (options.clock) {
      clock_file_ = dir.path() + "/clock";
      SetClock(*options.clock);
      wiring.push_back("--clock-file=" + clock_file_);
    }
    segmentation = start("segmentation", wiring);
  }

  // Moves segmentation's clock (replacing the file whole); only with Options::clock.
  void SetClock(absl::Time t) {
    REQUIRE(!clock_file_.empty());
    const std::string tmp = clock_file_ + ".new";
    std::ofstream(tmp) << absl::FormatTime(absl::RFC3339_full, t, absl::UTCTimeZone()) << "\n";
    REQUIRE(std::rename(tmp.c_str(), clock_file_.c_str()) == 0);
  }

  TempDir dir;
  std::unique_ptr<SmtpTestServer> smtp;
  // transaction and segmentation: null unless started.
  std::unique_ptr<ServiceProcess> infostore, transaction, personalisation, broadcast, segmentation;
  int http_port = 0;  // with Options::broadcast_http

 private:
  std::string clock_file_;
};

}  // namespace ecrm::testing

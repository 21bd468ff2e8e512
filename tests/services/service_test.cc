// Each service binary as an operator meets it: --help, start-up to SERVING, /metrics that
// promtool accepts, a graceful SIGTERM, and one clear line for bad configuration.
#include <signal.h>
#include <catch2/catch.hpp>

#include <fstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "ecrm/testing/servers.h"
#include "ecrm/testing/service.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpc/reflection/v1alpha/reflection.grpc.pb.h"

using ecrm::testing::HttpGet;
using ecrm::testing::Process;
using ecrm::testing::RunCommand;
using ecrm::testing::ServiceProcess;
using ecrm::testing::TempDir;

namespace {

std::string Binary(const std::string& engine) { return absl::StrCat(ECRM_BUILD_DIR, "/services/ecrm-", engine); }

const std::vector<std::string>& Engines() {
  static const std::vector<std::string> engines = {"infostore", "segmentation", "personalisation", "broadcast",
                                                   "transaction"};
  return engines;
}

// Service names the server lists through reflection.
std::vector<std::string> ReflectedServices(ServiceProcess& s) {
  auto stub = grpc::reflection::v1alpha::ServerReflection::NewStub(s.channel());
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(5)));
  auto stream = stub->ServerReflectionInfo(&ctx);
  grpc::reflection::v1alpha::ServerReflectionRequest req;
  req.set_list_services("*");
  grpc::reflection::v1alpha::ServerReflectionResponse resp;
  std::vector<std::string> names;
  if (stream->Write(req) && stream->Read(&resp)) {
    for (const auto& service : resp.list_services_response().service()) names.push_back(service.name());
  }
  stream->WritesDone();
  (void)stream->Finish();
  return names;
}

int Count(const std::string& text, const std::string& needle) {
  int n = 0;
  for (size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++n;
  return n;
}

int NonEmptyLines(const std::string& text) {
  int n = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) n += !line.empty();
  return n;
}

}  // namespace

TEST_CASE("--help lists every flag with its default and environment variable") {
  for (const std::string& engine : Engines()) {
    DYNAMIC_SECTION(engine) {
      auto r = RunCommand({Binary(engine), "--help"}, absl::Seconds(10));
      REQUIRE(r.ok());
      CHECK(r->exit_code == 0);
      for (const char* needle : {"--grpc-address", "ECRM_GRPC_ADDRESS", "--metrics-address", "--database-url",
                                 "ECRM_DATABASE_URL", "--redis-url", "--shutdown-grace", "--log-level", "default:"}) {
        CHECK_THAT(r->output, Catch::Contains(needle));
      }
    }
  }
}

TEST_CASE("a service starts, serves health and metrics, and exits 0 on SIGTERM") {
  for (const std::string& engine : Engines()) {
    DYNAMIC_SECTION(engine) {
      auto service = ServiceProcess::Start(Binary(engine), {"--redis-url="});
      REQUIRE(service.ok());
      auto& s = **service;
      CHECK(ecrm::testing::HealthStatus(s.grpc_address()).value_or("") == "SERVING");
      CHECK_THAT(ReflectedServices(s), Catch::VectorContains(std::string("grpc.health.v1.Health")));

      auto metrics = HttpGet(absl::StrCat("http://", s.metrics_address(), "/metrics"));
      REQUIRE(metrics.ok());
      for (const char* needle : {"grpc_server_handled_total{grpc_code=\"OK\",grpc_method=\"Check\"",
                                 "grpc_server_handling_seconds_bucket", "grpc_server_requests_in_flight",
                                 "process_resident_memory_bytes", "process_cpu_seconds_total", "ecrm_build_info"}) {
        CHECK_THAT(*metrics, Catch::Contains(needle));
      }
      TempDir dir;
      std::string file = dir.path() + "/metrics.txt";
      std::ofstream(file) << *metrics;
      auto lint = RunCommand({"sh", "-c", "promtool check metrics < " + file}, absl::Seconds(20));
      REQUIRE(lint.ok());
      INFO(lint->output);
      CHECK(lint->exit_code == 0);

      absl::Time start = absl::Now();
      s.process().Signal(SIGTERM);
      std::optional<int> code = s.process().Wait(absl::Seconds(15));
      REQUIRE(code.has_value());
      CHECK(*code == 0);
      CHECK(absl::Now() - start < absl::Seconds(11));
      CHECK_THAT(s.process().Output(), Catch::Contains("msg=stopped"));
    }
  }
}

TEST_CASE("health watchers see NOT_SERVING on SIGTERM and do not hold up the drain") {
  auto service = ServiceProcess::Start(Binary("segmentation"), {"--redis-url=", "--shutdown-grace=10s"});
  REQUIRE(service.ok());
  auto& s = **service;
  absl::Time start;
  {
    auto stub = grpc::health::v1::Health::NewStub(s.channel());
    grpc::ClientContext ctx;
    ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(30)));
    grpc::health::v1::HealthCheckRequest req;
    auto stream = stub->Watch(&ctx, req);
    grpc::health::v1::HealthCheckResponse resp;
    REQUIRE(stream->Read(&resp));
    CHECK(resp.status() == grpc::health::v1::HealthCheckResponse::SERVING);

    start = absl::Now();
    s.process().Signal(SIGTERM);
    REQUIRE(stream->Read(&resp));
    CHECK(resp.status() == grpc::health::v1::HealthCheckResponse::NOT_SERVING);
    CHECK_FALSE(stream->Read(&resp));  // the server ends the stream itself
    CHECK(stream->Finish().error_code() == grpc::StatusCode::UNAVAILABLE);
  }  // the client goes away: an idle client would otherwise answer the GOAWAY ping only on
     // its 5 s backup poll
  CHECK(s.process().Wait(absl::Seconds(15)).value_or(-1) == 0);
  INFO(s.process().Output());
  CHECK(absl::Now() - start < absl::Seconds(4));  // well inside the 10 s grace: nothing was left to drain
}

TEST_CASE("health Check of an unknown service is NOT_FOUND and of a registered one SERVING") {
  auto service = ServiceProcess::Start(Binary("personalisation"), {"--redis-url="});
  REQUIRE(service.ok());
  auto stub = grpc::health::v1::Health::NewStub((*service)->channel());
  for (auto [name, code] : std::vector<std::pair<std::string, grpc::StatusCode>>{
           {"no.such.Service", grpc::StatusCode::NOT_FOUND}, {"grpc.health.v1.Health", grpc::StatusCode::OK}}) {
    grpc::ClientContext ctx;
    grpc::health::v1::HealthCheckRequest req;
    req.set_service(name);
    grpc::health::v1::HealthCheckResponse resp;
    CHECK(stub->Check(&ctx, req, &resp).error_code() == code);
  }
}

TEST_CASE("a request over --max-message-bytes is RESOURCE_EXHAUSTED and the server carries on") {
  auto service = ServiceProcess::Start(Binary("broadcast"), {"--redis-url=", "--max-message-bytes=4096"});
  REQUIRE(service.ok());
  auto stub = grpc::health::v1::Health::NewStub((*service)->channel());
  grpc::ClientContext ctx;
  grpc::health::v1::HealthCheckRequest req;
  req.set_service(std::string(8192, 'x'));
  grpc::health::v1::HealthCheckResponse resp;
  CHECK(stub->Check(&ctx, req, &resp).error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED);
  CHECK(ecrm::testing::HealthStatus((*service)->grpc_address()).value_or("") == "SERVING");
}

TEST_CASE("a service keeps serving when Redis is unreachable, and uses PostgreSQL when told") {
  auto pg = ecrm::testing::PostgresServer::Start();
  REQUIRE(pg.ok());
  auto db = (*pg)->CreateUniqueDatabase();
  REQUIRE(db.ok());
  const ecrm::testing::ClosedPort no_redis;
  auto service = ServiceProcess::Start(
      Binary("infostore"), {"--database-url=" + (*pg)->url(*db), "--redis-url=redis://" + no_redis.address()});
  REQUIRE(service.ok());
  CHECK_THAT((*service)->process().Output(), Catch::Contains("profile cache unreachable"));
  (*service)->process().Signal(SIGINT);
  CHECK((*service)->process().Wait(absl::Seconds(15)).value_or(-1) == 0);
}

TEST_CASE("only engines that read profiles open the profile cache") {
  const ecrm::testing::ClosedPort no_redis;
  for (const std::string& engine : Engines()) {
    DYNAMIC_SECTION(engine) {
      auto service = ServiceProcess::Start(Binary(engine), {"--redis-url=redis://" + no_redis.address()});
      REQUIRE(service.ok());
      const bool opened = absl::StrContains((*service)->process().Output(), "profile cache");
      CHECK(opened == (engine == "infostore" || engine == "broadcast" ||
                       engine == "personalisation"));  // the gate and rendering read profiles
    }
  }
}

TEST_CASE("bad configuration gives one clear error line and a non-zero exit") {
  TempDir dir;
  const ecrm::testing::ClosedPort no_postgres;
  struct Case {
    std::vector<std::string> args;
    int exit_code;
    std::string says;
  };
  const std::vector<Case> cases = {
      {{"--no-such-flag=1"}, 2, "unknown flag --no-such-flag"},
      {{"--log-level=loud"}, 2, "log level"},
      {{"--shutdown-grace=soon"}, 2, "--shutdown-grace"},
      {{"--worker-threads=-1"}, 2, "--worker-threads must be >= 0"},
      {{"--max-queue=0"}, 2, "--max-queue >= 1"},
      {{"--database-url=mysql://db/x"}, 1, "not understood"},
      {{"--database-url=postgresql://postgres@" + no_postgres.address() + "/x"}, 1, "cannot connect to PostgreSQL"},
      {{"--database-url=sqlite:///proc/forbidden/x.db"}, 1, "error="},
      {{"--redis-url=http://cache"}, 1, "Redis URL"},
      {{"--feed-prune-interval=0s"}, 1, "--feed-prune-interval must be positive"},
  };
  for (const Case& c : cases) {
    DYNAMIC_SECTION(c.args[0]) {
      std::vector<std::string> argv = {Binary("infostore"), "--grpc-address=127.0.0.1:0",
                                       "--metrics-address=127.0.0.1:0"};
      bool has_db = absl::StartsWith(c.args[0], "--database-url");
      if (!has_db) argv.push_back(absl::StrCat("--database-url=sqlite://", dir.path(), "/x.db"));
      argv.insert(argv.end(), c.args.begin(), c.args.end());
      auto r = RunCommand(argv, absl::Seconds(20));
      REQUIRE(r.ok());
      INFO(r->output);
      CHECK(r->exit_code == c.exit_code);
      CHECK_THAT(r->output, Catch::Contains(c.says));
      // The failure is one line: the whole output for a flag error, one error line otherwise.
      if (c.exit_code == 2) {
        CHECK(NonEmptyLines(r->output) == 1);
      } else {
        CHECK(Count(r->output, "level=error") == 1);
      }
      CHECK_THAT(r->output, !Catch::Contains("terminate called"));
    }
  }
}

TEST_CASE("a port already in use is a clear start-up error") {
  auto first = ServiceProcess::Start(Binary("broadcast"), {"--redis-url="});
  REQUIRE(first.ok());
  TempDir dir;
  auto r =
      RunCommand({Binary("broadcast"), "--grpc-address=" + (*first)->grpc_address(), "--metrics-address=127.0.0.1:0",
                  absl::StrCat("--database-url=sqlite://", dir.path(), "/x.db"), "--redis-url="},
                 absl::Seconds(20));
  REQUIRE(r.ok());
  CHECK(r->exit_code == 1);
  CHECK_THAT(r->output, Catch::Contains("cannot listen on " + (*first)->grpc_address()));
}

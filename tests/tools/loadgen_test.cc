#include <catch2/catch.hpp>

#include "absl/strings/str_cat.h"
#include "ecrm/testing/service.h"

using ecrm::testing::RunCommand;

TEST_CASE("ecrm-load drives a real service open-loop and reports JSON") {
  auto service =
      ecrm::testing::ServiceProcess::Start(absl::StrCat(ECRM_BUILD_DIR, "/services/ecrm-infostore"), {"--redis-url="});
  REQUIRE(service.ok());
  auto r =
      RunCommand({absl::StrCat(ECRM_BUILD_DIR, "/tools/loadgen/ecrm-load"), "--target=" + (*service)->grpc_address(),
                  "--rate=200", "--duration=1s", "--warmup=200ms", "--json"},
                 absl::Seconds(30));
  REQUIRE(r.ok());
  INFO(r->output);
  CHECK(r->exit_code == 0);
  CHECK_THAT(r->output, Catch::Contains("\"workload\":\"health\""));
  CHECK_THAT(r->output, Catch::Contains("\"requests\":200,"));
  CHECK_THAT(r->output, Catch::Contains("\"ok\":200,"));
  CHECK_THAT(r->output, Catch::Contains("\"errors\":{}"));
}

TEST_CASE("ecrm-load counts failures by status code") {
  auto r = RunCommand({absl::StrCat(ECRM_BUILD_DIR, "/tools/loadgen/ecrm-load"), "--workload=nope"}, absl::Seconds(10));
  REQUIRE(r.ok());
  CHECK(r->exit_code == 1);
  CHECK_THAT(r->output, Catch::Contains("unknown workload \"nope\""));
}

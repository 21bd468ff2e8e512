#include <catch2/catch.hpp>

#include <map>

#include "ecrm/config/flags.h"

using ecrm::config::Flags;

namespace {

struct Fixture {
  std::string address = "127.0.0.1:1";
  int64_t size = 4;
  bool verbose = false;
  absl::Duration grace = absl::Seconds(10);
  Flags flags{"prog", "a test program"};
  std::map<std::string, std::string> env;

  Fixture() {
    flags.AddString("grpc-address", &address, "where to listen");
    flags.AddInt("pool-size", &size, "connections");
    flags.AddBool("verbose", &verbose, "talk more");
    flags.AddDuration("shutdown-grace", &grace, "drain time");
  }
  absl::Status Parse(std::vector<const char*> args) {
    args.insert(args.begin(), "prog");
    return flags.Parse(static_cast<int>(args.size()), args.data(), [this](const char* name) -> const char* {
      auto it = env.find(name);
      return it == env.end() ? nullptr : it->second.c_str();
    });
  }
};

}  // namespace

TEST_CASE("flags take --name=value and --name value forms") {
  Fixture f;
  REQUIRE(f.Parse({"--grpc-address=0.0.0.0:9", "--pool-size", "12", "--verbose", "--shutdown-grace=250ms"}).ok());
  CHECK(f.address == "0.0.0.0:9");
  CHECK(f.size == 12);
  CHECK(f.verbose);
  CHECK(f.grace == absl::Milliseconds(250));
}

TEST_CASE("environment sets flags and the command line wins over it") {
  Fixture f;
  // Built whole rather than as env["…"] = "…": GCC 12 at -O3 takes that assignment of a short
  // literal for an overlapping memcpy (-Wrestrict false positive, GCC bug 105329).
  f.env = {{"ECRM_GRPC_ADDRESS", "10.0.0.1:1"}, {"ECRM_POOL_SIZE", "7"}};
  REQUIRE(f.Parse({"--pool-size=9"}).ok());
  CHECK(f.address == "10.0.0.1:1");
  CHECK(f.size == 9);
}

TEST_CASE("unknown flags, bad values and stray arguments are INVALID_ARGUMENT naming the flag") {
  Fixture f;
  absl::Status s = f.Parse({"--nope=1"});
  CHECK(s.code() == absl::StatusCode::kInvalidArgument);
  CHECK(std::string(s.message()).find("--nope") != std::string::npos);

  s = Fixture().Parse({"--pool-size=many"});
  CHECK(s.code() == absl::StatusCode::kInvalidArgument);
  CHECK(std::string(s.message()).find("--pool-size") != std::string::npos);

  s = Fixture().Parse({"--shutdown-grace=soon"});
  CHECK(std::string(s.message()).find("duration") != std::string::npos);

  CHECK(Fixture().Parse({"stray"}).code() == absl::StatusCode::kInvalidArgument);
  CHECK(Fixture().Parse({"--pool-size"}).code() == absl::StatusCode::kInvalidArgument);

  Fixture bad_env;
  bad_env.env = {{"ECRM_VERBOSE", "perhaps"}};
  s = bad_env.Parse({});
  CHECK(std::string(s.message()).find("ECRM_VERBOSE") != std::string::npos);
}

TEST_CASE("--help lists every flag with its default and environment name") {
  Fixture f;
  REQUIRE(f.Parse({"--help"}).ok());
  CHECK(f.flags.help_requested());
  std::string usage = f.flags.Usage();
  for (const char* needle : {"--grpc-address", "127.0.0.1:1", "ECRM_GRPC_ADDRESS", "--pool-size", "ECRM_POOL_SIZE",
                             "--verbose", "--shutdown-grace", "10s", "ECRM_SHUTDOWN_GRACE"}) {
    CHECK(usage.find(needle) != std::string::npos);
  }
}

TEST_CASE("a command's flags are read from the command line only, and its arguments are collected") {
  Fixture f;
  std::string name;
  std::vector<std::string> args;
  f.flags.BeginCommandFlags("segments create");
  f.flags.AddString("name", &name, "the segment's name");
  f.flags.AcceptArguments(&args, "prog segments create --name=<name> <rule>");
  f.env = {{"ECRM_NAME", "from the environment"}, {"ECRM_POOL_SIZE", "7"}};
  REQUIRE(f.Parse({"segments", "create", "--name", "vip", "orders.count > 3", "--", "--not-a-flag"}).ok());
  CHECK(name == "vip");
  CHECK(f.size == 7);  // global flags still read the environment
  CHECK(args == std::vector<std::string>{"segments", "create", "orders.count > 3", "--not-a-flag"});

  Fixture g;
  std::string unset = "default";
  g.flags.BeginCommandFlags("segments create");
  g.flags.AddString("name", &unset, "the segment's name");
  g.env = {{"ECRM_NAME", "from the environment"}};
  REQUIRE(g.Parse({}).ok());
  CHECK(unset == "default");
  const std::string usage = g.flags.Usage();
  CHECK(usage.find("segments create:") < usage.find("ECRM_POOL_SIZE"));
  CHECK(usage.find("ECRM_NAME") == std::string::npos);
}

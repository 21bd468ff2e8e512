#include <catch2/catch.hpp>

#include "ecrm/log/log.h"

namespace elog = ecrm::log;

TEST_CASE("logfmt lines carry time, level, service, message and quoted fields") {
  elog::Configure("ecrm-test", elog::Level::kInfo, elog::Format::kLogfmt);
  std::string line = elog::Render(absl::FromUnixSeconds(0), elog::Level::kWarn, "cache down",
                                  {{"port", 6379}, {"error", "connection refused"}, {"ok", false}});
  CHECK(line ==
        "ts=1970-01-01T00:00:00.000Z level=warn service=ecrm-test msg=\"cache down\" port=6379 "
        "error=\"connection refused\" ok=false");
}

TEST_CASE("JSON lines are one object with escaped strings and typed numbers") {
  elog::Configure("ecrm-test", elog::Level::kInfo, elog::Format::kJson);
  std::string line = elog::Render(absl::FromUnixSeconds(0), elog::Level::kError, "bad \"input\"\n", {{"n", 3}});
  CHECK(line ==
        "{\"ts\":\"1970-01-01T00:00:00.000Z\",\"level\":\"error\",\"service\":\"ecrm-test\","
        "\"msg\":\"bad \\\"input\\\"\\n\",\"n\":3}");
  elog::Configure("ecrm-test", elog::Level::kInfo, elog::Format::kLogfmt);
}

TEST_CASE("levels filter and parse") {
  elog::Configure("ecrm-test", elog::Level::kWarn, elog::Format::kLogfmt);
  CHECK_FALSE(elog::Enabled(elog::Level::kInfo));
  CHECK(elog::Enabled(elog::Level::kError));
  elog::Level level;
  CHECK(elog::ParseLevel("DEBUG", &level).ok());
  CHECK(level == elog::Level::kDebug);
  CHECK(elog::ParseLevel("loud", &level).code() == absl::StatusCode::kInvalidArgument);
  elog::Configure("ecrm-test", elog::Level::kInfo, elog::Format::kLogfmt);
}

// The test harness itself: servers a test starts never race another test for a port. Services
// listen on port 0 and report the port they got; a restart that must keep its port, and Redis,
// which cannot report one, wait out a process that took the port meanwhile.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cerrno>
#include <thread>

#include "absl/strings/str_cat.h"
#include "ecrm/testing/process.h"
#include "ecrm/testing/servers.h"
#include "ecrm/testing/service.h"

using ecrm::testing::ClosedPort;
using ecrm::testing::ServiceProcess;

namespace {

const std::string kBroadcast = absl::StrCat(ECRM_BUILD_DIR, "/services/ecrm-broadcast");

sockaddr_in Loopback(int port) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  return addr;
}

// Another process's server on `port` (SO_REUSEADDR, listening, as servers do); -1 if the bind
// or listen failed, with errno.
int Squat(int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr = Loopback(port);
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || listen(fd, 4) != 0) {
    int saved = errno;
    close(fd);
    errno = saved;
    return -1;
  }
  return fd;
}

// Closes `fd` after `delay`, on another thread: the squatter goes away while a start waits.
std::thread CloseLater(int fd, absl::Duration delay) {
  return std::thread([fd, delay] {
    absl::SleepFor(delay);
    close(fd);
  });
}

}  // namespace

TEST_CASE("a closed port refuses connections and no server can take it while it is held") {
  ClosedPort closed;
  REQUIRE(closed.port() > 0);
  CHECK(closed.address() == absl::StrCat("127.0.0.1:", closed.port()));
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr = Loopback(closed.port());
  CHECK(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == -1);
  CHECK(errno == ECONNREFUSED);
  close(fd);
  CHECK(Squat(closed.port()) == -1);
  CHECK(errno == EADDRINUSE);
}

TEST_CASE("a service started on port 0 reports the gRPC and metrics ports it got") {
  auto service = ServiceProcess::Start(kBroadcast, {"--redis-url="});
  REQUIRE(service.ok());
  CHECK(ecrm::testing::HealthStatus((*service)->grpc_address()).value_or("") == "SERVING");
  CHECK(ecrm::testing::HttpGet(absl::StrCat("http://", (*service)->metrics_address(), "/metrics")).ok());
  CHECK_THAT((*service)->process().Output(), Catch::Contains("grpc_address=127.0.0.1:0"));
}

TEST_CASE("a service restarted on its address waits out a process that took the port meanwhile") {
  ecrm::testing::TempDir dir;
  const std::string database = absl::StrCat("--database-url=sqlite://", dir.path(), "/broadcast.db");
  auto first = ServiceProcess::Start(kBroadcast, {"--redis-url=", database});
  REQUIRE(first.ok());
  const std::string address = (*first)->grpc_address();
  const int port = std::stoi(address.substr(address.rfind(':') + 1));
  (*first)->process().Signal(SIGKILL);
  REQUIRE((*first)->process().Wait(absl::Seconds(10)).has_value());

  int squatter = Squat(port);
  REQUIRE(squatter >= 0);
  const absl::Time began = absl::Now();
  std::thread release = CloseLater(squatter, absl::Milliseconds(500));
  auto again = ServiceProcess::Start(kBroadcast, {"--redis-url=", database, "--grpc-address=" + address});
  release.join();
  REQUIRE(again.ok());
  CHECK((*again)->grpc_address() == address);
  CHECK(absl::Now() - began >= absl::Milliseconds(500));  // it could not listen before the squatter left
  CHECK(ecrm::testing::HealthStatus(address).value_or("") == "SERVING");
}

TEST_CASE("Redis restarts on its port once a process that took it meanwhile lets go") {
  auto redis = ecrm::testing::RedisServer::Start();
  REQUIRE(redis.ok());
  const int port = (*redis)->port();
  (*redis)->Kill();
  int squatter = Squat(port);
  REQUIRE(squatter >= 0);
  const absl::Time began = absl::Now();
  std::thread release = CloseLater(squatter, absl::Milliseconds(500));
  absl::Status restarted = (*redis)->Restart();
  release.join();
  INFO(restarted.ToString());
  REQUIRE(restarted.ok());
  CHECK((*redis)->port() == port);
  CHECK(absl::Now() - began >= absl::Milliseconds(500));
}

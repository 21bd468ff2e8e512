// Real Redis and PostgreSQL servers for tests, each in a temp directory. Neither can listen on
// port 0 and report the port it got, so each starts on a port that was free a moment ago and,
// when another process took that port first (its bind fails), starts again on another.
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "ecrm/testing/process.h"

namespace ecrm::testing {

class RedisServer {
 public:
  static absl::StatusOr<std::unique_ptr<RedisServer>> Start();
  ~RedisServer();

  int port() const { return port_; }
  std::string url() const;
  // SIGKILL, as a crash would.
  void Kill();
  // Starts again on the same port (empty: no persistence), waiting up to 10 s for the port if
  // another process took it since the kill.
  absl::Status Restart();

 private:
  RedisServer() = default;
  // Starts redis-server on port_; *port_taken tells whether it failed because the port was.
  absl::Status Launch(bool* port_taken);
  TempDir dir_;
  int port_ = 0;
  int launches_ = 0;
  std::unique_ptr<Process> process_;
};

// initdb into a temp dir and pg_ctl start; as root, runs as the "postgres" user.
class PostgresServer {
 public:
  static absl::StatusOr<std::unique_ptr<PostgresServer>> Start();
  // One server for the whole test process, started on first use and stopped at exit; every
  // call returns it (or the error that stopped it from starting).
  static absl::StatusOr<PostgresServer*> Shared();
  ~PostgresServer();

  int port() const { return port_; }
  // postgresql://postgres@127.0.0.1:PORT/<database>
  std::string url(const std::string& database = "postgres") const;
  // CREATE DATABASE; ALREADY_EXISTS if it does.
  absl::Status CreateDatabase(const std::string& name);
  // A fresh database with a unique name, for test isolation.
  absl::StatusOr<std::string> CreateUniqueDatabase();

 private:
  PostgresServer() = default;
  absl::StatusOr<CommandResult> Run(std::vector<std::string> argv);
  std::string bin_dir_;
  std::string data_dir_;
  std::string log_dir_;
  bool as_postgres_user_ = false;
  int port_ = 0;
  int databases_ = 0;
  bool started_ = false;
};

}  // namespace ecrm::testing

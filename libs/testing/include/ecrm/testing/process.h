// Child processes for tests: spawned with output captured to a file, signalled and reaped by
// pid, killed if still running when the handle is destroyed.
#pragma once

#include <sys/types.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace ecrm::testing {

// A loopback port that nobody listens on, for "the peer is down" cases: bound (without
// SO_REUSEADDR) but not listening for as long as this object lives, so connections to it are
// refused at once and no server can take the port meanwhile. Servers a test starts listen on
// port 0 instead, and report the port they got.
class ClosedPort {
 public:
  ClosedPort();
  ~ClosedPort();
  ClosedPort(const ClosedPort&) = delete;
  ClosedPort& operator=(const ClosedPort&) = delete;
  int port() const { return port_; }
  std::string address() const;  // 127.0.0.1:PORT

 private:
  int fd_ = -1;
  int port_ = 0;
};

// A fresh directory under $TMPDIR (or /tmp), removed with everything in it on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

class Process {
 public:
  // Starts argv[0] (looked up in PATH) with stdout and stderr appended to log_path.
  // `env` entries "NAME=value" are added to the environment.
  static absl::StatusOr<std::unique_ptr<Process>> Spawn(const std::vector<std::string>& argv,
                                                        const std::string& log_path,
                                                        const std::vector<std::string>& env = {});
  ~Process();

  pid_t pid() const { return pid_; }
  bool running();
  void Signal(int sig);
  // Exit code, or 128 + signal number; nullopt if still running after `timeout`.
  std::optional<int> Wait(absl::Duration timeout);
  // Everything the process printed so far.
  std::string Output() const;

 private:
  Process(pid_t pid, std::string log_path) : pid_(pid), log_path_(std::move(log_path)) {}
  pid_t pid_;
  std::string log_path_;
  std::optional<int> exit_code_;
};

// Runs a command to completion; returns its exit code and output.
struct CommandResult {
  int exit_code;
  std::string output;
};
absl::StatusOr<CommandResult> RunCommand(const std::vector<std::string>& argv, absl::Duration timeout);

// GET over HTTP on loopback (libcurl). Returns the body, or an error with the status code.
absl::StatusOr<std::string> HttpGet(const std::string& url, absl::Duration timeout = absl::Seconds(5));

}  // namespace ecrm::testing

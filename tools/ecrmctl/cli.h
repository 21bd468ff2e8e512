// ecrmctl's commands: each names its words ("segments create"), its arguments and flags (most
// bound to a field of the request by a dotted path), and how it runs. commands.cc declares
// them; main.cc parses the command line and runs one.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "google/protobuf/message.h"
#include "output.h"

namespace grpc {
class Channel;
class Status;
}  // namespace grpc

namespace ecrm::ctl {

// Exit codes scripts can rely on (also listed by `ecrmctl --help`).
enum Exit : int {
  kOk = 0,
  kFailed = 1,        // an engine failed (INTERNAL, UNKNOWN, …)
  kUsage = 2,         // bad flags or arguments
  kNotFound = 3,      // NOT_FOUND
  kRejected = 4,      // INVALID_ARGUMENT, FAILED_PRECONDITION, ALREADY_EXISTS, OUT_OF_RANGE, ABORTED
  kUnavailable = 5,   // UNAVAILABLE, DEADLINE_EXCEEDED: the engine did not answer
  kSomeRejected = 6,  // an import finished, but some rows were rejected (each is listed)
};

int ExitCode(const grpc::Status& status);

// What a command runs with.
struct Invocation {
  std::map<std::string, std::string> addresses;     // engine -> host:port
  std::map<std::string, std::string> metrics_urls;  // engine -> http://…/metrics
  Format format = Format::kTable;
  absl::Duration timeout = absl::Seconds(10);
  bool progress = false;
  int parallel = 8;
  std::string import_format;                           // csv or jsonl; empty: by the file's extension
  bool yes = false;                                    // --yes, for commands that destroy
  std::map<std::string, std::string> options;          // flags of commands that send no single request
  std::vector<std::string> args;                       // after the command's words
  std::unique_ptr<google::protobuf::Message> request;  // filled from --json, arguments and flags
  std::shared_ptr<grpc::Channel> Channel(const std::string& engine);
  absl::Time Deadline() const { return absl::Now() + timeout; }

 private:
  std::map<std::string, std::shared_ptr<grpc::Channel>> channels_;
};

// A flag or argument bound to the request: a dotted field path (with a fixed `value`, the flag
// is a switch that sets it), or a setter of its own.
struct Binding {
  std::string name;
  std::string help;
  std::string path;
  std::function<absl::Status(const std::string& value, google::protobuf::Message& request)> set;
};

struct Command {
  std::string words;                                      // "segments create"
  std::string summary;                                    // one line
  std::string synopsis;                                   // arguments and main flags, after the words
  const google::protobuf::Descriptor* request = nullptr;  // null: the command builds its own
  std::vector<Binding> args;                              // positional, in order, all required
  std::vector<Binding> flags;                             // optional
  std::function<int(Invocation&)> run;
  std::string details;  // more, for `<command> --help`
};

const std::vector<Command>& Commands();

// `ecrmctl demo` (demo.cc). `mail_dir`: the local SMTP server's mailbox, read to simulate opens
// and clicks through the links under `tracking_url` ("" = skip them).
int RunDemo(Invocation& invocation, int64_t customers, int64_t products, int64_t seed, double uplift,
            const std::string& mail_dir, const std::string& tracking_url);

// The body of an HTTP GET on `url` (not following redirects); *code is its status, -1 when none.
std::string Get(const std::string& url, absl::Duration timeout, long* code);

}  // namespace ecrm::ctl

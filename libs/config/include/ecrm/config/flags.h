// Command-line and environment configuration.
//
// Every flag --some-name can also be set by the environment variable ECRM_SOME_NAME; the
// command line wins over the environment, which wins over the default. --help lists every flag
// with its default and environment name.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace ecrm::config {

class Flags {
 public:
  Flags(std::string program, std::string summary);

  // Each Add* registers a flag bound to *target; the value of *target at that moment is the
  // default shown by --help.
  void AddString(std::string name, std::string* target, std::string help);
  void AddInt(std::string name, int64_t* target, std::string help);
  void AddDouble(std::string name, double* target, std::string help);
  void AddBool(std::string name, bool* target, std::string help);
  void AddDuration(std::string name, absl::Duration* target, std::string help);

  // For tools with subcommands: the flags added after this call belong to one command. --help
  // lists them under `heading`, and they are read from the command line only (an environment
  // variable named after a command's --name would surprise).
  void BeginCommandFlags(std::string heading);
  // Arguments that are not flags are appended to *args instead of being refused; --help shows
  // `synopsis` (e.g. "customers get <id>") as the usage line.
  void AcceptArguments(std::vector<std::string>* args, std::string synopsis);

  // Reads the environment, then argv. Returns INVALID_ARGUMENT naming the flag for an unknown
  // flag, a bad value or a stray argument. After it, help_requested() tells if --help was given.
  absl::Status Parse(int argc, const char* const* argv);
  // As Parse, with an explicit environment lookup (tests).
  absl::Status Parse(int argc, const char* const* argv, const std::function<const char*(const char*)>& getenv);

  // For main(): parses, and returns the exit code when main should return at once — 0 after
  // printing --help to stdout, 2 after printing "program: error" to stderr.
  std::optional<int> ParseCommandLine(int argc, const char* const* argv);

  bool help_requested() const { return help_requested_; }
  std::string Usage() const;

  static std::string EnvName(absl::string_view flag);

 private:
  struct Flag {
    std::string name;
    std::string help;
    std::string default_text;
    std::string type;
    std::function<absl::Status(absl::string_view)> set;
    bool is_bool = false;
    bool from_environment = true;
  };
  void Add(Flag flag);
  Flag* Find(absl::string_view name);

  std::string program_;
  std::string summary_;
  std::vector<Flag> flags_;
  bool help_requested_ = false;
  std::string command_heading_;
  size_t first_command_flag_ = SIZE_MAX;
  std::vector<std::string>* args_ = nullptr;
  std::string synopsis_;
};

}  // namespace ecrm::config

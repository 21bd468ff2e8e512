#include "ecrm/config/flags.h"

#include <cstdio>
#include <cstdlib>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/string_view.h"

namespace ecrm::config {
namespace {

absl::Status ParseBool(absl::string_view text, bool* out) {
  std::string v = absl::AsciiStrToLower(text);
  if (v == "true" || v == "1" || v == "yes" || v == "on") {
    *out = true;
  } else if (v == "false" || v == "0" || v == "no" || v == "off") {
    *out = false;
  } else {
    return absl::InvalidArgumentError(absl::StrCat("\"", text, "\" is not a boolean (true/false)"));
  }
  return absl::OkStatus();
}

}  // namespace

Flags::Flags(std::string program, std::string summary) : program_(std::move(program)), summary_(std::move(summary)) {}

std::string Flags::EnvName(absl::string_view flag) {
  return absl::StrCat("ECRM_", absl::AsciiStrToUpper(absl::StrReplaceAll(flag, {{"-", "_"}})));
}

void Flags::Add(Flag flag) {
  flag.from_environment = first_command_flag_ == SIZE_MAX;
  flags_.push_back(std::move(flag));
}

void Flags::BeginCommandFlags(std::string heading) {
  command_heading_ = std::move(heading);
  first_command_flag_ = flags_.size();
}

void Flags::AcceptArguments(std::vector<std::string>* args, std::string synopsis) {
  args_ = args;
  synopsis_ = std::move(synopsis);
}

Flags::Flag* Flags::Find(absl::string_view name) {
  for (Flag& f : flags_) {
    if (f.name == name) return &f;
  }
  return nullptr;
}

void Flags::AddString(std::string name, std::string* target, std::string help) {
  Add({std::move(name), std::move(help), *target, "string", [target](absl::string_view v) {
         *target = std::string(v);
         return absl::OkStatus();
       }});
}

void Flags::AddInt(std::string name, int64_t* target, std::string help) {
  Add({std::move(name), std::move(help), absl::StrCat(*target), "int", [target](absl::string_view v) {
         if (!absl::SimpleAtoi(v, target)) {
           return absl::InvalidArgumentError(absl::StrCat("\"", v, "\" is not an integer"));
         }
         return absl::OkStatus();
       }});
}

void Flags::AddDouble(std::string name, double* target, std::string help) {
  Add({std::move(name), std::move(help), absl::StrCat(*target), "number", [target](absl::string_view v) {
         if (!absl::SimpleAtod(v, target)) {
           return absl::InvalidArgumentError(absl::StrCat("\"", v, "\" is not a number"));
         }
         return absl::OkStatus();
       }});
}

void Flags::AddBool(std::string name, bool* target, std::string help) {
  Flag f{std::move(name), std::move(help), *target ? "true" : "false", "bool",
         [target](absl::string_view v) { return ParseBool(v, target); }};
  f.is_bool = true;
  Add(std::move(f));
}

void Flags::AddDuration(std::string name, absl::Duration* target, std::string help) {
  Add({std::move(name), std::move(help), absl::FormatDuration(*target), "duration", [target](absl::string_view v) {
         if (!absl::ParseDuration(v, target) || *target < absl::ZeroDuration()) {
           return absl::InvalidArgumentError(absl::StrCat("\"", v, "\" is not a duration (examples: 250ms, 10s, 5m)"));
         }
         return absl::OkStatus();
       }});
}

absl::Status Flags::Parse(int argc, const char* const* argv) {
  return Parse(argc, argv, [](const char* name) { return std::getenv(name); });
}

absl::Status Flags::Parse(int argc, const char* const* argv, const std::function<const char*(const char*)>& getenv) {
  for (Flag& f : flags_) {
    if (!f.from_environment) continue;
    std::string env = EnvName(f.name);
    if (const char* v = getenv(env.c_str())) {
      if (absl::Status s = f.set(v); !s.ok()) {
        return absl::InvalidArgumentError(absl::StrCat("environment ", env, ": ", s.message()));
      }
    }
  }
  for (int i = 1; i < argc; ++i) {
    absl::string_view arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      help_requested_ = true;
      continue;
    }
    if (args_ != nullptr && (arg.substr(0, 2) != "--" || arg.size() == 2)) {
      if (arg == "--") {  // everything after it is an argument, even if it starts with --
        while (++i < argc) args_->emplace_back(argv[i]);
        break;
      }
      args_->emplace_back(arg);
      continue;
    }
    if (arg.substr(0, 2) != "--" || arg.size() == 2) {
      return absl::InvalidArgumentError(
          absl::StrCat("unexpected argument \"", arg, "\"; flags look like --name=value (see --help)"));
    }
    arg.remove_prefix(2);
    absl::string_view name = arg, value;
    bool has_value = false;
    if (size_t eq = arg.find('='); eq != absl::string_view::npos) {
      name = arg.substr(0, eq);
      value = arg.substr(eq + 1);
      has_value = true;
    }
    Flag* f = Find(name);
    if (f == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat("unknown flag --", name, " (see --help)"));
    }
    if (!has_value) {
      if (f->is_bool) {
        value = "true";
      } else if (i + 1 < argc) {
        value = argv[++i];
      } else {
        return absl::InvalidArgumentError(absl::StrCat("flag --", name, " needs a value"));
      }
    }
    if (absl::Status s = f->set(value); !s.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("flag --", name, ": ", s.message()));
    }
  }
  return absl::OkStatus();
}

std::optional<int> Flags::ParseCommandLine(int argc, const char* const* argv) {
  if (absl::Status s = Parse(argc, argv); !s.ok()) {
    std::fprintf(stderr, "%s: %s\n", program_.c_str(), std::string(s.message()).c_str());
    return 2;
  }
  if (help_requested_) {
    std::fputs(Usage().c_str(), stdout);
    return 0;
  }
  return std::nullopt;
}

std::string Flags::Usage() const {
  std::string out = absl::StrCat(program_, " — ", summary_, "\n\nUsage: ",
                                 synopsis_.empty() ? absl::StrCat(program_, " [--flag=value ...]") : synopsis_, "\n\n");
  auto describe = [&](const Flag& f) {
    absl::StrAppendFormat(&out, "  --%s=<%s>\n      %s\n      default: %s", f.name, f.type, f.help,
                          f.default_text.empty() ? "\"\"" : f.default_text);
    absl::StrAppend(&out, f.from_environment ? absl::StrCat("   env: ", EnvName(f.name)) : "", "\n");
  };
  if (first_command_flag_ != SIZE_MAX && first_command_flag_ < flags_.size()) {
    absl::StrAppend(&out, command_heading_, ":\n");
    for (size_t i = first_command_flag_; i < flags_.size(); ++i) describe(flags_[i]);
    absl::StrAppend(&out, "\n");
  }
  absl::StrAppend(&out, "Flags (each can also be set by its environment variable; the command line wins):\n");
  for (size_t i = 0; i < flags_.size() && i < first_command_flag_; ++i) describe(flags_[i]);
  absl::StrAppend(&out, "  --help\n      print this help and exit\n");
  return out;
}

}  // namespace ecrm::config

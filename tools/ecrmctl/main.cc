// ecrmctl: the operator's command line for the five engines. `ecrmctl --help` lists the
// commands; `ecrmctl <command> --help` its arguments and flags.
#include <curl/curl.h>

#include <algorithm>
#include <cstdio>
#include <iostream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "cli.h"
#include "ecrm/config/flags.h"
#include "records.h"

namespace {

using ecrm::ctl::Command;
using ecrm::ctl::Invocation;

constexpr const char* kEngines[][3] = {{"infostore", "127.0.0.1:50051", "http://127.0.0.1:9101/metrics"},
                                       {"segmentation", "127.0.0.1:50052", "http://127.0.0.1:9102/metrics"},
                                       {"personalisation", "127.0.0.1:50053", "http://127.0.0.1:9103/metrics"},
                                       {"broadcast", "127.0.0.1:50054", "http://127.0.0.1:9104/metrics"},
                                       {"transaction", "127.0.0.1:50055", "http://127.0.0.1:9105/metrics"}};

std::string Overview() {
  std::string out =
      "ecrmctl — the operator's command line for the ecrm engines\n\n"
      "Usage: ecrmctl <command> [arguments] [--flag=value ...]\n"
      "       ecrmctl <command> --help     arguments and flags of one command\n\nCommands:\n";
  for (const Command& c : ecrm::ctl::Commands()) absl::StrAppend(&out, "  ", c.words, "\n      ", c.summary, "\n");
  absl::StrAppend(
      &out,
      "\nEvery command that sends a request also takes --json='<request as JSON>' (or --json=@file): "
      "the whole request,\nwhich its arguments and flags then amend.\n\n"
      "Engines are found at --<engine>-address (env ECRM_<ENGINE>_ADDRESS), by default "
      "127.0.0.1:50051-50055.\n"
      "Output: --output=table (default) or json.\n\n"
      "Exit codes: 0 done; 1 an engine failed; 2 bad command line; 3 not found; 4 rejected as invalid;\n"
      "            5 an engine did not answer; 6 an import finished but rejected some rows (each listed).\n");
  return out;
}

// The command the leading words of argv name (flags before it must be --name=value), and how
// many words that took.
const Command* Find(int argc, char** argv) {
  std::vector<std::string> words;
  for (int i = 1; i < argc && words.size() < 2; ++i) {
    absl::string_view a = argv[i];
    if (absl::StartsWith(a, "--")) continue;
    words.emplace_back(a);
  }
  for (size_t n = words.size(); n > 0; --n) {
    const std::string name = absl::StrJoin(words.begin(), words.begin() + static_cast<long>(n), " ");
    for (const Command& c : ecrm::ctl::Commands()) {
      if (c.words == name) return &c;
    }
  }
  return nullptr;
}

}  // namespace

int main(int argc, char** argv) {
  curl_global_init(CURL_GLOBAL_DEFAULT);
  const Command* command = Find(argc, argv);
  if (command == nullptr) {
    bool help = argc == 1;
    for (int i = 1; i < argc; ++i) help |= std::string_view(argv[i]) == "--help" || std::string_view(argv[i]) == "-h";
    if (help) {
      std::fputs(Overview().c_str(), stdout);
      return ecrm::ctl::kOk;
    }
    std::vector<std::string> words;
    for (int i = 1; i < argc && !absl::StartsWith(argv[i], "--"); ++i) words.emplace_back(argv[i]);
    std::fprintf(stderr, "ecrmctl: no command \"%s\" (see ecrmctl --help)\n", absl::StrJoin(words, " ").c_str());
    return ecrm::ctl::kUsage;
  }

  Invocation inv;
  ecrm::config::Flags flags(
      "ecrmctl " + command->words,
      command->details.empty() ? command->summary : absl::StrCat(command->summary, "\n\n", command->details));
  for (const auto& e : kEngines) {
    inv.addresses[e[0]] = e[1];
    inv.metrics_urls[e[0]] = e[2];
  }
  for (const auto& e : kEngines)
    flags.AddString(absl::StrCat(e[0], "-address"), &inv.addresses[e[0]],
                    absl::StrCat("the ", e[0], " engine's gRPC address"));
  std::string output = "table";
  flags.AddString("output", &output, "table or json");
  flags.AddDuration("timeout", &inv.timeout, "deadline of each request");
  std::string json;
  std::vector<std::pair<const ecrm::ctl::Binding*, std::string>> given;  // flags given, in order
  std::map<std::string, std::string> values;
  flags.BeginCommandFlags(absl::StrCat("Flags of ", command->words));
  if (command->request != nullptr) {
    flags.AddString("json", &json,
                    "the whole request as JSON (protobuf's JSON mapping), or @file to read it from a file");
  }
  for (const ecrm::ctl::Binding& b : command->flags) {
    values[b.name];
    flags.AddString(b.name, &values[b.name], b.help);
  }
  int64_t parallel = inv.parallel;
  if (absl::StrContains(command->words, "import")) {
    flags.AddString("format", &inv.import_format, "csv or jsonl (default: from the file's extension)");
    flags.AddInt("parallel", &parallel, "requests in flight at once");
    flags.AddBool("progress", &inv.progress, "print progress even when standard error is not a terminal");
  }
  if (absl::StrContains(command->synopsis, "--yes")) flags.AddBool("yes", &inv.yes, "yes, really");
  std::vector<std::string> args;
  flags.AcceptArguments(&args, absl::StrCat("ecrmctl ", command->words, " ", command->synopsis));
  if (std::optional<int> exit_code = flags.ParseCommandLine(argc, argv)) return *exit_code;
  inv.parallel = static_cast<int>(parallel);
  // Drop the command's words.
  const size_t words = static_cast<size_t>(std::count(command->words.begin(), command->words.end(), ' ')) + 1;
  args.erase(args.begin(), args.begin() + static_cast<long>(std::min(words, args.size())));
  if (args.size() != command->args.size()) {
    std::fprintf(stderr, "ecrmctl %s: expected %zu argument(s) (%s), got %zu (see --help)\n", command->words.c_str(),
                 command->args.size(), command->synopsis.c_str(), args.size());
    return ecrm::ctl::kUsage;
  }
  if (output == "json") {
    inv.format = ecrm::ctl::Format::kJson;
  } else if (output != "table") {
    std::fprintf(stderr, "ecrmctl: --output must be table or json, not \"%s\"\n", output.c_str());
    return ecrm::ctl::kUsage;
  }
  if (absl::StrContains(command->synopsis, "--yes") && !inv.yes) {
    std::fprintf(stderr, "ecrmctl %s cannot be undone: add --yes to go ahead\n", command->words.c_str());
    return ecrm::ctl::kUsage;
  }
  inv.args = args;
  for (const ecrm::ctl::Binding& b : command->flags) inv.options[b.name] = values[b.name];

  if (command->request != nullptr) {
    inv.request.reset(google::protobuf::MessageFactory::generated_factory()->GetPrototype(command->request)->New());
    if (!json.empty()) {
      std::string text = json;
      if (json[0] == '@') {
        FILE* f = std::fopen(json.c_str() + 1, "r");
        if (f == nullptr) {
          std::fprintf(stderr, "ecrmctl: --json: cannot read %s\n", json.c_str() + 1);
          return ecrm::ctl::kUsage;
        }
        text.clear();
        char buf[65536];
        for (size_t n; (n = std::fread(buf, 1, sizeof buf, f)) > 0;) text.append(buf, n);
        std::fclose(f);
      }
      if (absl::Status s = ecrm::ctl::ParseJsonLine(text, *inv.request); !s.ok()) {
        std::fprintf(stderr, "ecrmctl: --json is not a %s: %s\n", command->request->full_name().c_str(),
                     std::string(s.message()).c_str());
        return ecrm::ctl::kUsage;
      }
    }
    auto apply = [&](const ecrm::ctl::Binding& b, const std::string& value, const std::string& what) {
      absl::Status s = b.set ? b.set(value, *inv.request) : ecrm::ctl::SetField(*inv.request, b.path, value, what);
      if (!s.ok()) std::fprintf(stderr, "ecrmctl %s: %s\n", command->words.c_str(), std::string(s.message()).c_str());
      return s.ok();
    };
    for (size_t i = 0; i < command->args.size(); ++i) {
      if (!command->args[i].path.empty() && !apply(command->args[i], args[i], "<" + command->args[i].name + ">")) {
        return ecrm::ctl::kUsage;
      }
    }
    for (const ecrm::ctl::Binding& b : command->flags) {
      if (!values[b.name].empty() && !apply(b, values[b.name], "--" + b.name)) return ecrm::ctl::kUsage;
    }
  }
  return command->run(inv);
}

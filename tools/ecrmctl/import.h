// `ecrmctl … import FILE`: streams a CSV or JSON-lines file to an engine, rows in parallel,
// with a progress line and every rejected row listed with its line and reason at the end.
// Nothing is rejected silently: a row either lands or is listed.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "cli.h"
#include "records.h"

namespace ecrm::ctl {

struct ImportSpec {
  const google::protobuf::Descriptor* row = nullptr;  // what one row becomes
  std::map<std::string, ColumnHook> hooks;            // CSV columns that are not field paths
  size_t batch = 1;                                   // rows per send
  // Sends rows and returns one status per row (OK, or why it was rejected). UNAVAILABLE is
  // retried with backoff; after the retries, the row is listed as not imported.
  std::function<std::vector<absl::Status>(Invocation&, const std::vector<const google::protobuf::Message*>&)> send;
};

// Imports invocation.args[0] ("-" for standard input); `format` is csv or jsonl (empty: by the
// file's extension). Returns the exit code.
int RunImport(Invocation& invocation, const ImportSpec& spec, const std::string& format);

}  // namespace ecrm::ctl

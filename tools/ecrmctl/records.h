// Reading import files into request messages, for ecrmctl's `… import` commands: JSON lines
// (each line the request in protobuf's JSON mapping) and CSV (RFC 4180, a header row naming
// dotted field paths of the request: `profile.first_name`, `attributes.tier`,
// `product.price.amount_minor`). No gRPC here: this is plain protobuf reflection.
#pragma once

#include <functional>
#include <istream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "google/protobuf/message.h"

namespace ecrm::ctl {

// One record of a file: where it starts (1-based line) and its fields (CSV) or text (JSON).
struct Record {
  int64_t line = 0;
  std::vector<std::string> fields;
  std::string text;
};

// Reads CSV records one at a time; quoted fields may hold commas, doubled quotes and newlines.
class CsvReader {
 public:
  explicit CsvReader(std::istream& in) : in_(in) {}
  // False at the end of the input; INVALID_ARGUMENT for an unterminated quote.
  absl::StatusOr<bool> Next(Record* record);

 private:
  std::istream& in_;
  int64_t line_ = 0;
};

// A column whose name is not a field path (e.g. `email`) fills the message its own way.
using ColumnHook = std::function<absl::Status(const std::string& value, google::protobuf::Message& message)>;

// Maps CSV rows onto a request message by its header. Columns name dotted paths of fields;
// `map_field.<key>` sets a map entry (string maps directly; a map of AttributeValue-like
// messages sets its string_value unless the column is `map_field.<key>:int|double|bool|time`);
// repeated scalars take `;`-separated values; enums take their name, with or without the
// type's prefix (`email` or `IDENTIFIER_TYPE_EMAIL`); timestamps take RFC 3339.
// Empty cells are skipped.
class CsvMapping {
 public:
  // INVALID_ARGUMENT naming the first column that is neither a hook nor a field path.
  static absl::StatusOr<CsvMapping> Create(const google::protobuf::Descriptor& type,
                                           const std::vector<std::string>& header,
                                           const std::map<std::string, ColumnHook>& hooks = {});
  // Fills `message` (cleared first) from a row; INVALID_ARGUMENT naming the column for a bad value.
  absl::Status Fill(const std::vector<std::string>& row, google::protobuf::Message& message) const;

 private:
  struct Column {
    std::string name;
    std::vector<std::string> path;
    std::string type_suffix;  // for AttributeValue-like map values
    ColumnHook hook;
  };
  std::vector<Column> columns_;
};

// Sets the field at a dotted `path` of `message` from text, as a CSV cell would (a `:type`
// suffix for map values; repeated scalars take `,`- or `;`-separated values). INVALID_ARGUMENT
// naming `what` (a column or a flag) for a path the message does not have or a bad value.
absl::Status SetField(google::protobuf::Message& message, const std::string& path, const std::string& value,
                      const std::string& what);

// Parses one JSON line into `message` (protobuf's JSON mapping, unknown fields refused).
absl::Status ParseJsonLine(const std::string& text, google::protobuf::Message& message);

}  // namespace ecrm::ctl

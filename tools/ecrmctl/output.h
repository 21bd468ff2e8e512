// How ecrmctl prints answers: `--output=json` writes protobuf's JSON mapping (field names as in
// the .proto, one document per answer); `--output=table` writes a list response as aligned
// columns and anything else as `field: value` lines.
#pragma once

#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include "google/protobuf/message.h"

namespace ecrm::ctl {

enum class Format { kTable, kJson };

// One JSON document (no newline at the end).
std::string ToJson(const google::protobuf::Message& message);

// The set fields of `message` as (dotted path, text) pairs, nested messages and maps flattened;
// timestamps in RFC 3339, durations in seconds, enums by their short lower-case name, money as
// "12.34 EUR".
std::vector<std::pair<std::string, std::string>> Flatten(const google::protobuf::Message& message);

// Prints `message` in `format`, followed by a newline.
void Print(const google::protobuf::Message& message, Format format, std::ostream& out);

}  // namespace ecrm::ctl

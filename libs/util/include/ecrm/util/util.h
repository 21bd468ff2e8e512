// Small helpers every engine's store uses: time, ids, hashing, request validation, paging.
#pragma once

#include <google/protobuf/message.h>
#include <google/protobuf/timestamp.pb.h>

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace ecrm::util {

int64_t NowMicros();
google::protobuf::Timestamp Ts(int64_t micros);
int64_t Micros(const google::protobuf::Timestamp& t);

// Lower-case hex SHA-256 of the input.
std::string Sha256Hex(absl::string_view input);
// A random id such as c_0123456789abcdef.
std::string NewId(absl::string_view prefix);

// A message as JSON with the proto field names (privacy exports).
std::string ToJson(const google::protobuf::Message& m);

// INVALID_ARGUMENT "field: what".
absl::Status Invalid(absl::string_view field, absl::string_view what);

// A requested page size within [1, max], default_size when unset.
int PageSize(int requested, int default_size = 100, int max = 1000);

// "$first, $first+1, …" for n parameters.
inline std::string Placeholders(int first, int n) {
  std::string out;
  for (int i = 0; i < n; ++i) absl::StrAppend(&out, i ? ", $" : "$", first + i);
  return out;
}

}  // namespace ecrm::util

#include "ecrm/util/util.h"

#include <google/protobuf/util/json_util.h>
#include <google/protobuf/util/time_util.h>
#include <openssl/sha.h>

#include <algorithm>

#include "absl/random/random.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace ecrm::util {

using google::protobuf::util::TimeUtil;

int64_t NowMicros() { return absl::ToUnixMicros(absl::Now()); }
google::protobuf::Timestamp Ts(int64_t micros) { return TimeUtil::MicrosecondsToTimestamp(micros); }
int64_t Micros(const google::protobuf::Timestamp& t) { return TimeUtil::TimestampToMicroseconds(t); }

std::string Sha256Hex(absl::string_view input) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(input.data()), input.size(), digest);
  return absl::BytesToHexString(absl::string_view(reinterpret_cast<const char*>(digest), sizeof digest));
}

std::string NewId(absl::string_view prefix) {
  thread_local absl::BitGen gen;
  return absl::StrFormat("%s%016x", prefix, absl::Uniform<uint64_t>(gen));
}

std::string ToJson(const google::protobuf::Message& m) {
  std::string out;
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  (void)google::protobuf::util::MessageToJsonString(m, &out, options);
  return out;
}

absl::Status Invalid(absl::string_view field, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", what));
}

int PageSize(int requested, int default_size, int max) {
  return requested <= 0 ? default_size : std::min(requested, max);
}

}  // namespace ecrm::util

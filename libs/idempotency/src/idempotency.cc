#include "ecrm/idempotency/idempotency.h"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <google/protobuf/message.h>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "ecrm/status/macros.h"
#include "ecrm/util/util.h"

namespace ecrm::idempotency {

std::string Fingerprint(const google::protobuf::Message& request) {
  std::string bytes;
  {
    google::protobuf::io::StringOutputStream stream(&bytes);
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.SetSerializationDeterministic(true);
    request.SerializeToCodedStream(&coded);
  }
  return util::Sha256Hex(bytes);
}

absl::Status ValidateKey(const Operation& op, absl::string_view key, bool required) {
  if (key.empty()) return required ? util::Invalid(op.key_field, "is required") : absl::OkStatus();
  if (key.size() > 255) return util::Invalid(op.key_field, "is longer than 255 characters");
  for (char c : key) {
    if (!absl::ascii_isprint(c)) return util::Invalid(op.key_field, "must be printable ASCII");
  }
  return absl::OkStatus();
}

absl::StatusOr<std::optional<std::string>> Store::Claim(sql::Connection& c, const Operation& op, absl::string_view key,
                                                        const google::protobuf::Message& request) {
  if (key.empty()) return std::nullopt;
  const std::string hash = Fingerprint(request);
  // On PostgreSQL a key claimed by a transaction still running makes this INSERT wait for it:
  // then it conflicts (the first committed) or claims (the first rolled back).
  ECRM_ASSIGN_OR_RETURN(sql::Result claim,
                        c.Execute("INSERT INTO idempotency_keys (operation, key, request_hash, response, created_at) "
                                  "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (operation, key) DO NOTHING",
                                  {op.name, key, hash, sql::Blob{""}, util::NowMicros()}));
  if (claim.rows_affected() == 1) return std::nullopt;
  ECRM_ASSIGN_OR_RETURN(
      sql::Result seen,
      c.Execute("SELECT request_hash, response FROM idempotency_keys WHERE operation = $1 AND key = $2",
                {op.name, key}));
  // Pruned or released between the two statements: the transaction retries and claims it.
  if (seen.empty()) return absl::AbortedError("idempotency key released concurrently");
  if (seen.front().Text(0) != hash) {
    return absl::FailedPreconditionError(absl::StrCat(op.key_field, ": \"", key, "\" was already used for a different ",
                                                      op.name, " request; use a new ", op.key_field,
                                                      " for a new request"));
  }
  return std::string(seen.front().Text(1));
}

absl::Status Store::Complete(sql::Connection& c, const Operation& op, absl::string_view key, absl::string_view response,
                             absl::string_view customer_id) {
  if (key.empty()) return absl::OkStatus();
  return c
      .Execute("UPDATE idempotency_keys SET response = $3, customer_id = $4 WHERE operation = $1 AND key = $2",
               {op.name, key, sql::BlobRef{response}, customer_id})
      .status();
}

absl::StatusOr<int64_t> Store::Prune(absl::Time before) {
  return db_.DeleteInBatches("idempotency_keys", "operation, key", "created_at < $1", {absl::ToUnixMicros(before)});
}

}  // namespace ecrm::idempotency

#include "idempotency.h"

#include "absl/strings/str_cat.h"

namespace ecrm::transaction {

absl::StatusOr<std::string> IdempotencyKeys::Idempotent(
    absl::string_view operation, const std::string& key, const google::protobuf::Message& request,
    const std::function<absl::StatusOr<std::string>(sql::Connection&)>& fn, const std::string& customer_id) {
  std::string request_hash = util::Sha256Hex(request.SerializeAsString());
  std::string response;
  ECRM_RETURN_IF_ERROR(db_.InTransaction([&](sql::Connection& c) -> absl::Status {
    if (!key.empty()) {
      // The key is claimed before fn runs: a concurrent request with the same key waits on this
      // row until this transaction ends, then replays its response (or claims the key itself if
      // this one rolled back) instead of running fn against state this one already changed.
      ECRM_ASSIGN_OR_RETURN(sql::Result claim,
                            c.Execute("INSERT INTO idempotency_keys (operation, key, request_hash, response, "
                                      "created_at) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (operation, key) DO NOTHING",
                                      {operation, key, request_hash, sql::Blob{""}, NowMicros()}));
      if (claim.rows_affected() == 0) {
        ECRM_ASSIGN_OR_RETURN(sql::Result seen,
                              c.Execute("SELECT request_hash, response FROM idempotency_keys WHERE operation = $1 AND "
                                        "key = $2",
                                        {operation, key}));
        // Claimed and then pruned, or claimed by a transaction that rolled back: claim it again.
        if (seen.empty()) return absl::AbortedError("idempotency key released concurrently");
        if (seen.front().Text(0) != request_hash) {
          return absl::FailedPreconditionError(absl::StrCat("idempotency_key: \"", key,
                                                            "\" was already used for a different ", operation,
                                                            " request; use a new key for a new request"));
        }
        response = std::string(seen.front().Text(1));
        return absl::OkStatus();
      }
    }
    ECRM_ASSIGN_OR_RETURN(response, fn(c));
    if (key.empty()) return absl::OkStatus();
    return c
        .Execute("UPDATE idempotency_keys SET response = $3, customer_id = $4 WHERE operation = $1 AND key = $2",
                 {operation, key, sql::Blob{response}, customer_id})
        .status();
  }));
  return response;
}

absl::StatusOr<int64_t> IdempotencyKeys::Prune(absl::Time before) {
  return db_.DeleteInBatches("idempotency_keys", "operation, key", "created_at < $1", {absl::ToUnixMicros(before)});
}

}  // namespace ecrm::transaction

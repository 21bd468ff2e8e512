// Idempotent writes for every engine (Stripe's rules, AIP-155): a request carrying a key runs
// once; a retry with the same key and the same request replays the first response byte for
// byte; the same key with a different request is FAILED_PRECONDITION in every engine (the
// request is well-formed, it conflicts with what the key already stands for).
//
// The key is claimed before the operation runs, inside the operation's own transaction, so a
// concurrent retry waits on the claimed row and then replays the first answer instead of
// running against state the first one already changed.
//
// Each engine's migrations create the table (same columns everywhere):
//   CREATE TABLE idempotency_keys (
//     operation TEXT NOT NULL, key TEXT NOT NULL,
//     request_hash TEXT NOT NULL,          -- Fingerprint() of the request
//     response {{blob}} NOT NULL,          -- the first response, replayed as is
//     created_at BIGINT NOT NULL,
//     customer_id TEXT NOT NULL DEFAULT '',-- whose data the response holds (erasure finds it)
//     PRIMARY KEY (operation, key));
//   CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);
//   CREATE INDEX idempotency_keys_customer ON idempotency_keys (customer_id);
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "ecrm/sql/sql.h"
#include "ecrm/status/macros.h"
#include "google/protobuf/message.h"

namespace ecrm::idempotency {

// An operation that takes a key: its name (the RPC, e.g. "Checkout") and the request field
// that carries the key (e.g. "idempotency_key"), for records and error messages.
struct Operation {
  absl::string_view name;
  absl::string_view key_field;
};

// SHA-256 (hex) of the request's deterministic serialisation: map fields in key order, so
// equal requests always have equal fingerprints.
std::string Fingerprint(const google::protobuf::Message& request);

// A key is 1–255 printable ASCII characters; empty is allowed only when not `required`.
// INVALID_ARGUMENT naming the key field.
absl::Status ValidateKey(const Operation& op, absl::string_view key, bool required);

class Store {
 public:
  explicit Store(sql::Database& db) : db_(db) {}

  // Call first in the operation's transaction. With an empty key: nothing (nullopt). Otherwise
  // claims the key and returns nullopt (run the operation, then Complete), or returns the
  // stored first response of the same request (replay it, write nothing), or fails with
  // FAILED_PRECONDITION when the key was used for a different request.
  absl::StatusOr<std::optional<std::string>> Claim(sql::Connection& c, const Operation& op, absl::string_view key,
                                                   const google::protobuf::Message& request);
  // Call last in the same transaction: stores the response to replay and the customer it is
  // about. Nothing with an empty key.
  absl::Status Complete(sql::Connection& c, const Operation& op, absl::string_view key, absl::string_view response,
                        absl::string_view customer_id);

  // The whole of a keyed operation in a transaction of its own: Claim, then fn and Complete
  // unless the key replays. Resp is a message that names the customer it is about
  // (customer_id()), so that erasure finds the record.
  template <typename Resp>
  absl::StatusOr<Resp> Run(const Operation& op, absl::string_view key, const google::protobuf::Message& request,
                           const std::function<absl::StatusOr<Resp>(sql::Connection&)>& fn);

  // Forgets keys claimed before `before`, in short batches; returns how many.
  absl::StatusOr<int64_t> Prune(absl::Time before);

 private:
  sql::Database& db_;
};

template <typename Resp>
absl::StatusOr<Resp> Store::Run(const Operation& op, absl::string_view key, const google::protobuf::Message& request,
                                const std::function<absl::StatusOr<Resp>(sql::Connection&)>& fn) {
  Resp out;
  ECRM_RETURN_IF_ERROR(db_.InTransaction([&](sql::Connection& c) -> absl::Status {
    ECRM_ASSIGN_OR_RETURN(std::optional<std::string> replay, Claim(c, op, key, request));
    if (replay) {
      if (!out.ParseFromString(*replay))
        return absl::DataLossError(absl::StrCat("stored ", op.name, " response does not parse"));
      return absl::OkStatus();
    }
    ECRM_ASSIGN_OR_RETURN(out, fn(c));
    return Complete(c, op, key, out.SerializeAsString(), out.customer_id());
  }));
  return out;
}

}  // namespace ecrm::idempotency

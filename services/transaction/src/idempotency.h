// Idempotency keys of the operations that take one (Checkout, PlaceOrder, CancelOrder,
// RefundOrder, AdjustPoints, OpenInquiry), kept in the table idempotency_keys.
#pragma once

#include <functional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "ecrm/sql/sql.h"
#include "ecrm/status/macros.h"
#include "google/protobuf/message.h"
#include "store_helpers.h"

namespace ecrm::transaction {

class IdempotencyKeys {
 public:
  explicit IdempotencyKeys(sql::Database& db) : db_(db) {}

  // Runs fn in a transaction under an idempotency key (Stripe's rules): a stored response for
  // the key replays byte for byte, a stored response for another request is refused, and
  // otherwise fn's response is stored with the key in fn's transaction. An empty key (where
  // the key is optional) just runs fn. customer_id names whose data the response holds, so that
  // erasure finds the record; it is read after fn returns (fn may set it).
  absl::StatusOr<std::string> Idempotent(absl::string_view operation, const std::string& key,
                                         const google::protobuf::Message& request,
                                         const std::function<absl::StatusOr<std::string>(sql::Connection&)>& fn,
                                         const std::string& customer_id);
  // The same for a response message that names its customer (order, inquiry, account).
  template <typename Resp>
  absl::StatusOr<Resp> IdempotentMessage(absl::string_view operation, const std::string& key,
                                         const google::protobuf::Message& request,
                                         const std::function<absl::StatusOr<Resp>(sql::Connection&)>& fn);

  // Deletes idempotency keys created before `before`; returns how many.
  absl::StatusOr<int64_t> Prune(absl::Time before);

 private:
  sql::Database& db_;
};

template <typename Resp>
absl::StatusOr<Resp> IdempotencyKeys::IdempotentMessage(
    absl::string_view operation, const std::string& key, const google::protobuf::Message& request,
    const std::function<absl::StatusOr<Resp>(sql::Connection&)>& fn) {
  std::string customer_id;  // every response (order, inquiry, account) names its customer
  ECRM_ASSIGN_OR_RETURN(std::string bytes, Idempotent(
                                               operation, key, request,
                                               [&](sql::Connection& c) -> absl::StatusOr<std::string> {
                                                 ECRM_ASSIGN_OR_RETURN(Resp r, fn(c));
                                                 customer_id = r.customer_id();
                                                 return r.SerializeAsString();
                                               },
                                               customer_id));
  return ParseBody<Resp>(bytes, "response");
}

}  // namespace ecrm::transaction

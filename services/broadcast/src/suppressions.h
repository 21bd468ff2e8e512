// The suppression list: addresses and customers that must not be messaged on a channel (or on
// any, channel unspecified). Hard bounces and complaints add addresses, unsubscribes add
// customers (marketing only, gate.h), operators add and remove entries, erasure leaves a hashed
// address behind.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "ecrm/broadcast/v1/broadcast.pb.h"
#include "ecrm/sql/sql.h"
#include "gate.h"

namespace ecrm::broadcast {

// 'sha256:<hex>' of a normalised address: what an erased address is kept as.
std::string HashedAddress(const std::string& normalised);

class Suppressions {
 public:
  explicit Suppressions(sql::Database& db) : db_(db) {}

  absl::StatusOr<v1::Suppression> Add(const v1::AddSuppressionRequest& req);
  absl::StatusOr<v1::ListSuppressionsResponse> List(const v1::ListSuppressionsRequest& req);
  absl::Status Remove(const v1::RemoveSuppressionRequest& req);

  // In the caller's transaction: adds (or keeps) an entry.
  static absl::Status AddIn(sql::Connection& c, const SuppressionEntry& e);
  // The entries that concern a customer: theirs and those of their addresses, hashed too.
  static absl::StatusOr<std::vector<SuppressionEntry>> ForCustomer(sql::Connection& c, const std::string& customer_id,
                                                                   const std::vector<std::string>& addresses);
  // ForCustomer for many customers (id -> their addresses) in a few queries (IN lists of at most
  // 500 values): what a worker's batch reads once instead of per row. Every id has an entry.
  static absl::StatusOr<std::map<std::string, std::vector<SuppressionEntry>>> ForCustomers(
      sql::Connection& c, const std::map<std::string, std::vector<std::string>>& addresses_by_customer);

 private:
  sql::Database& db_;
};

}  // namespace ecrm::broadcast

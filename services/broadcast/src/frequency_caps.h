// Frequency caps: at most N messages to a customer in a rolling window — over every channel, on
// one channel, or of one campaign category. Counted durably (a row per admitted send in
// cap_sends) and exactly under concurrency: Admit runs in the transaction that moves the delivery
// on, holding the customer's row of cap_locks (PostgreSQL) or SQLite's one writer, so two workers
// never both see "one below the cap".
#pragma once

#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "ecrm/common/v1/common.pb.h"
#include "ecrm/sql/sql.h"

namespace ecrm::broadcast {

struct CapRule {
  enum class Scope { kGlobal, kChannel, kCategory };
  Scope scope = Scope::kGlobal;
  common::v1::Channel channel = common::v1::CHANNEL_UNSPECIFIED;  // kChannel
  std::string category;                                           // kCategory
  int64_t limit = 0;
  absl::Duration window;
};

struct CapConfig {
  std::vector<CapRule> rules;
  // Purposes never capped nor counted (by default service and transactional messages).
  std::set<common::v1::Purpose> exempt = {common::v1::PURPOSE_SERVICE, common::v1::PURPOSE_TRANSACTIONAL};
};

// "global=3/7d,email=1/24h,sms=2/7d,category:newsletter=1/7d" (windows as absl durations or Nd);
// INVALID_ARGUMENT naming the rule that does not parse.
absl::StatusOr<std::vector<CapRule>> ParseCapRules(absl::string_view spec);
// "transactional,service"; "" exempts nothing.
absl::StatusOr<std::set<common::v1::Purpose>> ParseExemptPurposes(absl::string_view spec);

class FrequencyCaps {
 public:
  explicit FrequencyCaps(CapConfig config) : config_(std::move(config)) {}

  // Whether a message is counted at all: its purpose is not exempt and some rule is about it
  // (global, its channel or its category). A message no rule is about is admitted without a row
  // in the ledger (no statement at all): a rule added later counts the sends from then on.
  bool Counts(common::v1::Channel channel, common::v1::Purpose purpose, const std::string& category) const;
  // In the caller's transaction: true (and the send is counted) when the message keeps within
  // every cap; false when one would be exceeded. Messages not counted (Counts) are always
  // admitted, without a statement. Callers admitting several customers in one transaction do so
  // in customer-id order.
  absl::StatusOr<bool> Admit(sql::Connection& c, const std::string& delivery_id, const std::string& customer_id,
                             common::v1::Channel channel, common::v1::Purpose purpose, const std::string& category,
                             absl::Time now);
  // A send that did not happen (failed, or will be retried and admitted again) stops counting.
  absl::Status Forget(sql::Connection& c, const std::string& delivery_id);
  // Forget for many deliveries, in one statement per 500.
  absl::Status Forget(sql::Connection& c, const std::vector<std::string>& delivery_ids);

  const CapConfig& config() const { return config_; }

 private:
  CapConfig config_;
};

}  // namespace ecrm::broadcast

// Service inquiries: open, reply, resolve, list; first-response and resolution times as
// histograms.
#pragma once

#include <functional>
#include <string>

#include "absl/status/statusor.h"
#include "ecrm/idempotency/idempotency.h"
#include "ecrm/outbox/outbox.h"
#include "ecrm/sql/sql.h"
#include "ecrm/transaction/v1/transaction.pb.h"
#include "metrics.h"

namespace ecrm::transaction {

class Inquiries {
 public:
  Inquiries(sql::Database& db, idempotency::Store& keys, outbox::Outbox& outbox, TransactionMetrics& metrics)
      : db_(db), keys_(keys), outbox_(outbox), metrics_(metrics) {}

  absl::StatusOr<v1::Inquiry> OpenInquiry(const v1::OpenInquiryRequest& req);
  absl::StatusOr<v1::Inquiry> ReplyToInquiry(const v1::ReplyToInquiryRequest& req);
  absl::StatusOr<v1::Inquiry> ResolveInquiry(const v1::ResolveInquiryRequest& req);
  absl::StatusOr<v1::ListInquiriesResponse> ListInquiries(const v1::ListInquiriesRequest& req);

 private:
  // Loads the inquiry locked, lets fn change it and stores it, in one transaction.
  absl::StatusOr<v1::Inquiry> ChangeInquiry(const std::string& id,
                                            const std::function<absl::Status(sql::Connection&, v1::Inquiry&)>& fn);

  sql::Database& db_;
  idempotency::Store& keys_;
  outbox::Outbox& outbox_;
  TransactionMetrics& metrics_;
};

}  // namespace ecrm::transaction

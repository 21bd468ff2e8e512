#include "privacy.h"

#include <google/protobuf/util/time_util.h>

#include <algorithm>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "ecrm/status/macros.h"

namespace ecrm::infostore {

PrivacyFanout::PrivacyFanout(CustomerStore& store, std::vector<std::unique_ptr<CustomerDataClient>> engines,
                             absl::Duration timeout, std::function<absl::Time()> caller_deadline)
    : store_(store), engines_(std::move(engines)), timeout_(timeout), caller_deadline_(std::move(caller_deadline)) {}

absl::Time PrivacyFanout::Deadline() const { return std::min(absl::Now() + timeout_, caller_deadline_()); }

template <typename Response>
std::vector<absl::StatusOr<Response>> PrivacyFanout::AskEveryEngine(
    const std::function<absl::StatusOr<Response>(CustomerDataClient&)>& call) {
  std::vector<absl::StatusOr<Response>> answers(engines_.size(), absl::UnavailableError("not asked"));
  std::vector<std::thread> threads;
  for (size_t i = 0; i < engines_.size(); ++i) {
    threads.emplace_back([&, i] { answers[i] = call(*engines_[i]); });
  }
  for (std::thread& t : threads) t.join();
  return answers;
}

absl::StatusOr<v1::ExportCustomerResponse> PrivacyFanout::Export(const common::v1::CustomerRef& ref) {
  ECRM_ASSIGN_OR_RETURN(std::string id, store_.Resolve(ref));
  common::v1::CustomerRef by_id;
  by_id.set_customer_id(id);
  ECRM_ASSIGN_OR_RETURN(v1::Customer customer, store_.Get(by_id));
  v1::ExportCustomerResponse out;
  ECRM_ASSIGN_OR_RETURN(std::string own, store_.ExportLocal(id));
  privacy::v1::ExportCustomerDataResponse* mine = out.add_parts();
  mine->set_engine("infostore");
  mine->set_json_document(own);
  *mine->mutable_exported_at() = google::protobuf::util::TimeUtil::GetCurrentTime();
  privacy::v1::ExportCustomerDataRequest req;
  req.set_customer_id(id);
  for (const auto& m : customer.merged_ids()) req.add_merged_customer_ids(m);
  const absl::Time deadline = Deadline();  // on this thread: it knows the caller's
  auto answers = AskEveryEngine<privacy::v1::ExportCustomerDataResponse>(
      [&](CustomerDataClient& engine) { return engine.Export(req, deadline); });
  for (size_t i = 0; i < engines_.size(); ++i) {
    if (answers[i].ok()) {
      answers[i]->set_engine(engines_[i]->engine());
      *out.add_parts() = std::move(*answers[i]);
    } else {
      out.add_unavailable_engines(engines_[i]->engine());
    }
  }
  std::vector<std::string> parts;
  for (const auto& p : out.parts()) {
    parts.push_back(absl::StrCat("\"", p.engine(), "\":", p.json_document().empty() ? "{}" : p.json_document()));
  }
  out.set_json_document(absl::StrCat("{\"customer_id\":\"", id, "\",\"engines\":{", absl::StrJoin(parts, ","), "}}"));
  return out;
}

absl::StatusOr<v1::EraseCustomerResponse> PrivacyFanout::Erase(const v1::EraseCustomerRequest& request) {
  if (request.request_id().empty() || request.request_id().size() > 128) {
    return absl::InvalidArgumentError("request_id: required (1–128 characters) so that a retry erases once");
  }
  v1::EraseCustomerResponse out;
  // A retry of a completed erasure answers with its receipt (the customer is gone by now).
  ECRM_ASSIGN_OR_RETURN(std::optional<privacy::v1::EraseCustomerDataResponse> done,
                        store_.FindErasure(request.request_id()));
  if (done) {
    *out.add_receipts() = std::move(*done);
    return out;
  }
  ECRM_ASSIGN_OR_RETURN(std::string id, store_.Resolve(request.customer()));
  common::v1::CustomerRef by_id;
  by_id.set_customer_id(id);
  ECRM_ASSIGN_OR_RETURN(v1::Customer customer, store_.Get(by_id));
  privacy::v1::EraseCustomerDataRequest req;
  req.set_customer_id(id);
  for (const auto& m : customer.merged_ids()) req.add_merged_customer_ids(m);
  req.set_reason(request.reason());
  req.set_request_id(request.request_id());
  const absl::Time deadline = Deadline();
  auto answers = AskEveryEngine<privacy::v1::EraseCustomerDataResponse>(
      [&](CustomerDataClient& engine) { return engine.Erase(req, deadline); });
  for (size_t i = 0; i < engines_.size(); ++i) {
    if (answers[i].ok()) {
      answers[i]->set_engine(engines_[i]->engine());
      *out.add_receipts() = std::move(*answers[i]);
    } else {
      out.add_unavailable_engines(engines_[i]->engine());
    }
  }
  if (out.unavailable_engines_size() > 0) return out;  // retry with the same request_id
  ECRM_ASSIGN_OR_RETURN(privacy::v1::EraseCustomerDataResponse mine,
                        store_.EraseLocal(id, request.reason(), request.request_id()));
  *out.add_receipts() = std::move(mine);
  return out;
}

}  // namespace ecrm::infostore

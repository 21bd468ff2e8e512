#include "privacy.h"

#include <google/protobuf/util/time_util.h>
#include <grpcpp/channel.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "ecrm/server/channel.h"
#include "ecrm/server/deadline.h"
#include "ecrm/server/grpc_status.h"
#include "ecrm/status/macros.h"

namespace ecrm::infostore {

absl::StatusOr<std::vector<PrivacyPeer>> ParsePrivacyPeers(absl::string_view spec) {
  std::vector<PrivacyPeer> peers;
  for (absl::string_view item : absl::StrSplit(spec, ',', absl::SkipWhitespace())) {
    std::vector<std::string> kv = absl::StrSplit(item, absl::MaxSplits('=', 1));
    if (kv.size() != 2 || kv[0].empty() || kv[1].find(':') == std::string::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("--privacy-engines: \"", item, "\" is not engine=host:port (e.g. transaction=127.0.0.1:50055)"));
    }
    peers.push_back({kv[0], kv[1]});
  }
  return peers;
}

PrivacyFanout::PrivacyFanout(CustomerStore& store, const std::vector<PrivacyPeer>& peers, absl::Duration timeout)
    : store_(store), timeout_(timeout) {
  for (const PrivacyPeer& p : peers) {
    peers_.push_back({p.engine, privacy::v1::CustomerData::NewStub(server::OutboundChannel(p.address))});
  }
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
  for (Peer& peer : peers_) {
    privacy::v1::ExportCustomerDataRequest req;
    req.set_customer_id(id);
    for (const auto& m : customer.merged_ids()) req.add_merged_customer_ids(m);
    grpc::ClientContext ctx;
    ctx.set_deadline(absl::ToChronoTime(server::OutboundDeadline(timeout_)));
    privacy::v1::ExportCustomerDataResponse resp;
    if (peer.stub->ExportCustomerData(&ctx, req, &resp).ok()) {
      resp.set_engine(peer.engine);
      *out.add_parts() = std::move(resp);
    } else {
      out.add_unavailable_engines(peer.engine);
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
  for (Peer& peer : peers_) {
    privacy::v1::EraseCustomerDataRequest req;
    req.set_customer_id(id);
    for (const auto& m : customer.merged_ids()) req.add_merged_customer_ids(m);
    req.set_reason(request.reason());
    req.set_request_id(request.request_id());
    grpc::ClientContext ctx;
    ctx.set_deadline(absl::ToChronoTime(server::OutboundDeadline(timeout_)));
    privacy::v1::EraseCustomerDataResponse resp;
    if (peer.stub->EraseCustomerData(&ctx, req, &resp).ok()) {
      resp.set_engine(peer.engine);
      *out.add_receipts() = std::move(resp);
    } else {
      out.add_unavailable_engines(peer.engine);
    }
  }
  if (out.unavailable_engines_size() > 0) return out;  // retry with the same request_id
  ECRM_ASSIGN_OR_RETURN(privacy::v1::EraseCustomerDataResponse mine,
                        store_.EraseLocal(id, request.reason(), request.request_id()));
  *out.add_receipts() = std::move(mine);
  return out;
}

}  // namespace ecrm::infostore

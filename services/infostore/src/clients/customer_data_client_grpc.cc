#include "clients/customer_data_client_grpc.h"

#include <grpcpp/channel.h>
#include <grpcpp/client_context.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "ecrm/privacy/v1/privacy.grpc.pb.h"
#include "ecrm/server/channel.h"
#include "ecrm/server/grpc_status.h"

namespace ecrm::infostore {
namespace {

class GrpcCustomerDataClient final : public CustomerDataClient {
 public:
  explicit GrpcCustomerDataClient(const PrivacyPeer& peer)
      : engine_(peer.engine), stub_(privacy::v1::CustomerData::NewStub(server::OutboundChannel(peer.address))) {}

  const std::string& engine() const override { return engine_; }

  absl::StatusOr<privacy::v1::ExportCustomerDataResponse> Export(const privacy::v1::ExportCustomerDataRequest& request,
                                                                 absl::Time deadline) override {
    return Call(&Stub::ExportCustomerData, request, deadline);
  }

  absl::StatusOr<privacy::v1::EraseCustomerDataResponse> Erase(const privacy::v1::EraseCustomerDataRequest& request,
                                                               absl::Time deadline) override {
    return Call(&Stub::EraseCustomerData, request, deadline);
  }

 private:
  using Stub = privacy::v1::CustomerData::Stub;

  template <typename Request, typename Response>
  absl::StatusOr<Response> Call(grpc::Status (Stub::*method)(grpc::ClientContext*, const Request&, Response*),
                                const Request& request, absl::Time deadline) {
    grpc::ClientContext ctx;
    ctx.set_deadline(absl::ToChronoTime(deadline));
    Response response;
    if (grpc::Status s = (stub_.get()->*method)(&ctx, request, &response); !s.ok()) return server::FromGrpc(s);
    return response;
  }

  const std::string engine_;
  std::unique_ptr<Stub> stub_;
};

}  // namespace

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

std::vector<std::unique_ptr<CustomerDataClient>> GrpcCustomerDataClients(const std::vector<PrivacyPeer>& peers) {
  std::vector<std::unique_ptr<CustomerDataClient>> clients;
  for (const PrivacyPeer& peer : peers) clients.push_back(std::make_unique<GrpcCustomerDataClient>(peer));
  return clients;
}

}  // namespace ecrm::infostore

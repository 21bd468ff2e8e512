#include "ecrm/feed/infostore_grpc.h"

#include "absl/strings/str_cat.h"
#include "ecrm/infostore/v1/infostore.grpc.pb.h"
#include "ecrm/server/channel.h"
#include "ecrm/server/grpc_status.h"
#include "ecrm/util/util.h"

namespace ecrm::feed {

GrpcInformationStore::GrpcInformationStore(std::shared_ptr<grpc::Channel> channel, absl::Duration timeout)
    : channel_(std::move(channel)), timeout_(timeout) {}

absl::Status GrpcInformationStore::Watch(
    int64_t after, const std::function<absl::Status(const infostore::v1::WatchChangesResponse&)>& on_message) {
  grpc::ClientContext ctx;
  ctx.set_wait_for_ready(true);  // a feed outlives the store's restarts
  {
    std::lock_guard lock(mu_);
    if (stopped_) return absl::CancelledError("the feed consumer is stopping");
    watching_ = &ctx;
  }
  auto stub = infostore::v1::InformationStore::NewStub(channel_);
  infostore::v1::WatchChangesRequest request;
  request.set_after_sequence(after);
  std::unique_ptr<grpc::ClientReader<infostore::v1::WatchChangesResponse>> reader = stub->WatchChanges(&ctx, request);
  infostore::v1::WatchChangesResponse message;
  absl::Status applied = absl::OkStatus();
  while (reader->Read(&message)) {
    applied = on_message(message);
    if (!applied.ok()) {
      ctx.TryCancel();
      break;
    }
  }
  grpc::Status status = reader->Finish();
  {
    std::lock_guard lock(mu_);
    watching_ = nullptr;
  }
  if (!applied.ok()) return applied;
  return server::FromGrpc(status);
}

void GrpcInformationStore::StopWatching() {
  std::lock_guard lock(mu_);
  stopped_ = true;
  if (watching_ != nullptr) watching_->TryCancel();
}

absl::StatusOr<infostore::v1::ListCustomersResponse> GrpcInformationStore::ListCustomers(const std::string& page_token,
                                                                                         int page_size) {
  grpc::ClientContext ctx;
  server::PrepareOutboundCall(ctx, timeout_);
  infostore::v1::ListCustomersRequest request;
  request.set_page_token(page_token);
  request.set_page_size(page_size);
  infostore::v1::ListCustomersResponse response;
  grpc::Status s = infostore::v1::InformationStore::NewStub(channel_)->ListCustomers(&ctx, request, &response);
  if (!s.ok()) return server::FromGrpc(s);
  return response;
}

absl::StatusOr<infostore::v1::ListEventsResponse> GrpcInformationStore::ListEvents(const std::string& customer_id,
                                                                                   absl::Time since,
                                                                                   const std::string& page_token) {
  grpc::ClientContext ctx;
  server::PrepareOutboundCall(ctx, timeout_);
  infostore::v1::ListEventsRequest request;
  request.mutable_customer()->set_customer_id(customer_id);
  *request.mutable_start_time() = util::Ts(absl::ToUnixMicros(since));
  request.set_page_size(1000);
  request.set_page_token(page_token);
  infostore::v1::ListEventsResponse response;
  grpc::Status s = infostore::v1::InformationStore::NewStub(channel_)->ListEvents(&ctx, request, &response);
  if (!s.ok()) return server::FromGrpc(s);
  return response;
}

}  // namespace ecrm::feed

#include "service.h"

#include "absl/strings/str_cat.h"
#include "ecrm/server/drain.h"
#include "ecrm/server/grpc_status.h"
#include "ecrm/server/offload.h"

namespace ecrm::segmentation {

using server::Offload;

namespace {

// StreamSegmentMembers: the segment's members when the stream starts, in batches; each batch is
// read on the worker pool and written when the previous one is done.
class MemberStream final : public grpc::ServerWriteReactor<v1::SegmentMemberBatch> {
 public:
  MemberStream(Segments& segments, server::Executor& executor, const v1::StreamSegmentMembersRequest& request)
      : segments_(segments), executor_(executor), request_(request) {
    Submit([this] { Start(); });
  }

  void OnWriteDone(bool ok) override {
    if (!ok) return Finish(grpc::Status(grpc::StatusCode::CANCELLED, "client went away"));
    Submit([this] { Next(); });
  }

  void OnDone() override {
    executor_.drain().Done();
    delete this;
  }

 private:
  void Submit(std::function<void()> fn) {
    if (!executor_.Submit(std::move(fn))) {
      Finish(grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED, "server overloaded; stream the members again later"));
    }
  }

  void Start() {
    if (request_.batch_size() < 0 || request_.batch_size() > 100000) {
      return Finish(server::ToGrpc(absl::InvalidArgumentError("batch_size: must be 0-100,000 (0: 10,000)")));
    }
    batch_size_ = request_.batch_size() == 0 ? 10000 : request_.batch_size();
    absl::StatusOr<Roaring> members = segments_.Snapshot(request_.segment_id());
    if (!members.ok()) return Finish(server::ToGrpc(members.status()));
    members_ = std::move(*members);
    it_ = members_.begin();
    Next();
  }

  void Next() {
    std::vector<CustomerNo> numbers;
    for (; it_ != members_.end() && static_cast<int>(numbers.size()) < batch_size_; ++it_) numbers.push_back(*it_);
    if (numbers.empty()) return Finish(grpc::Status::OK);
    batch_.Clear();
    for (std::string& id : segments_.Ids(numbers)) batch_.add_customer_ids(std::move(id));
    StartWrite(&batch_);
  }

  Segments& segments_;
  server::Executor& executor_;
  const v1::StreamSegmentMembersRequest request_;
  int batch_size_ = 10000;
  Roaring members_;
  RoaringSetBitForwardIterator it_ = members_.begin();
  v1::SegmentMemberBatch batch_;
};

}  // namespace

grpc::ServerWriteReactor<v1::SegmentMemberBatch>* SegmentationService::StreamSegmentMembers(
    grpc::CallbackServerContext*, const v1::StreamSegmentMembersRequest* req) {
  if (!executor_.drain().Admit()) {
    return new server::RefusedStream<grpc::ServerWriteReactor<v1::SegmentMemberBatch>>(executor_.drain());
  }
  return new MemberStream(segments_, executor_, *req);
}

grpc::ServerUnaryReactor* SegmentationService::CreateSegment(grpc::CallbackServerContext* ctx,
                                                             const v1::CreateSegmentRequest* req, v1::Segment* resp) {
  return Offload(executor_, ctx, resp, [this, req] { return segments_.Create(req->segment()); });
}

grpc::ServerUnaryReactor* SegmentationService::GetSegment(grpc::CallbackServerContext* ctx,
                                                          const v1::GetSegmentRequest* req, v1::Segment* resp) {
  return Offload(executor_, ctx, resp, [this, req] { return segments_.Get(req->id()); });
}

grpc::ServerUnaryReactor* SegmentationService::ListSegments(grpc::CallbackServerContext* ctx,
                                                            const v1::ListSegmentsRequest* req,
                                                            v1::ListSegmentsResponse* resp) {
  return Offload(executor_, ctx, resp, [this, req] { return segments_.List(*req); });
}

grpc::ServerUnaryReactor* SegmentationService::UpdateSegment(grpc::CallbackServerContext* ctx,
                                                             const v1::UpdateSegmentRequest* req, v1::Segment* resp) {
  return Offload(executor_, ctx, resp, [this, req] { return segments_.Update(*req); });
}

grpc::ServerUnaryReactor* SegmentationService::DeleteSegment(grpc::CallbackServerContext* ctx,
                                                             const v1::DeleteSegmentRequest* req,
                                                             v1::DeleteSegmentResponse*) {
  return Offload(executor_, ctx, [this, req] { return segments_.Delete(req->id()); });
}

grpc::ServerUnaryReactor* SegmentationService::PreviewSegment(grpc::CallbackServerContext* ctx,
                                                              const v1::PreviewSegmentRequest* req,
                                                              v1::PreviewSegmentResponse* resp) {
  return Offload(executor_, ctx, resp, [this, req] { return segments_.Preview(*req); });
}

grpc::ServerUnaryReactor* SegmentationService::ListSegmentMembers(grpc::CallbackServerContext* ctx,
                                                                  const v1::ListSegmentMembersRequest* req,
                                                                  v1::ListSegmentMembersResponse* resp) {
  return Offload(executor_, ctx, resp, [this, req] { return segments_.ListMembers(*req); });
}

grpc::ServerUnaryReactor* SegmentationService::GetCustomerSegments(grpc::CallbackServerContext* ctx,
                                                                   const v1::GetCustomerSegmentsRequest* req,
                                                                   v1::GetCustomerSegmentsResponse* resp) {
  return Offload(executor_, ctx, resp, [this, req] { return segments_.CustomerSegments(req->customer_id()); });
}

grpc::ServerUnaryReactor* SegmentationService::CreateCampaign(grpc::CallbackServerContext* ctx,
                                                              const v1::CreateCampaignRequest* req,
                                                              v1::Campaign* resp) {
  return Offload(executor_, ctx, resp, [this, req] { return campaigns_.Create(req->campaign()); });
}

grpc::ServerUnaryReactor* SegmentationService::LaunchCampaign(grpc::CallbackServerContext* ctx,
                                                              const v1::LaunchCampaignRequest* req,
                                                              v1::Campaign* resp) {
  return Offload(executor_, ctx, resp, [this, req] { return campaigns_.Launch(*req); });
}

grpc::ServerUnaryReactor* SegmentationService::GetCampaign(grpc::CallbackServerContext* ctx,
                                                           const v1::GetCampaignRequest* req, v1::Campaign* resp) {
  return Offload(executor_, ctx, resp, [this, req] { return campaigns_.Get(req->id()); });
}

grpc::ServerUnaryReactor* SegmentationService::ListCampaigns(grpc::CallbackServerContext* ctx,
                                                             const v1::ListCampaignsRequest* req,
                                                             v1::ListCampaignsResponse* resp) {
  return Offload(executor_, ctx, resp, [this, req] { return campaigns_.List(*req); });
}

grpc::ServerUnaryReactor* SegmentationService::GetCampaignReport(grpc::CallbackServerContext* ctx,
                                                                 const v1::GetCampaignReportRequest* req,
                                                                 v1::CampaignReport* resp) {
  return Offload(executor_, ctx, resp, [this, req] { return campaigns_.Report(req->id()); });
}

}  // namespace ecrm::segmentation

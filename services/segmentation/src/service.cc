#include "service.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "ecrm/server/drain.h"
#include "ecrm/server/grpc_status.h"
#include "ecrm/server/offload.h"
#include "ecrm/util/util.h"

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

common::v1::Money Money(double minor, const std::string& currency) {
  common::v1::Money m;
  m.set_amount_minor(std::llround(minor));
  m.set_currency(currency);
  return m;
}

v1::CustomerScores ToProto(const CustomerScoreReport& r) {
  v1::CustomerScores out;
  out.set_customer_id(r.customer_id);
  if (r.computed_at == absl::InfinitePast()) return out;  // not scored yet
  *out.mutable_computed_at() = util::Ts(absl::ToUnixMicros(r.computed_at));
  if (r.rfm) {
    out.set_recency(r.rfm->r);
    out.set_frequency(r.rfm->f);
    out.set_monetary(r.rfm->m);
    out.set_rfm_cell(std::string(RfmCellName(r.rfm->cell)));
  }
  out.set_engagement(r.engagement.value_or(0));
  if (r.probability_alive) out.set_probability_alive(*r.probability_alive);
  if (r.expected_purchases) out.set_expected_purchases_90d(*r.expected_purchases);
  if (r.expected_order_value) *out.mutable_expected_order_value() = Money(*r.expected_order_value, r.currency);
  if (r.value) {
    *out.mutable_predicted_value_12m() = Money(*r.value, r.currency);
    *out.mutable_lifetime_value() = out.predicted_value_12m();
  }
  return out;
}

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
  // A read of in-memory bitmaps, shorter than the hand-off to the executor: answered right here
  // when the features' lock can be had at once; while a writer holds it (a feed batch being
  // applied, a refit's write), on the executor, which may wait. While shutting down, Offload
  // refuses the call instead.
  return server::AnswerNowOrOffload(
      executor_, ctx, resp, [this, req] { return segments_.TryCustomerSegments(req->customer_id()); },
      [this, req] { return segments_.CustomerSegments(req->customer_id()); });
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

grpc::ServerUnaryReactor* SegmentationService::GetCustomerScores(grpc::CallbackServerContext* ctx,
                                                                 const v1::GetCustomerScoresRequest* req,
                                                                 v1::CustomerScores* resp) {
  return Offload(executor_, ctx, resp, [this, req]() -> absl::StatusOr<v1::CustomerScores> {
    absl::StatusOr<CustomerScoreReport> report = scores_.Report(req->customer_id());
    if (!report.ok()) return report.status();
    return ToProto(*report);
  });
}

}  // namespace ecrm::segmentation

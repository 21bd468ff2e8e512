// The thin gRPC layer of segmentation: maps requests to the Segments and Scores domain classes on
// the worker pool and absl::Status to grpc::Status. No domain logic here.
#pragma once

#include "campaigns.h"
#include "ecrm/segmentation/v1/segmentation.grpc.pb.h"
#include "ecrm/server/executor.h"
#include "scores.h"
#include "segments.h"

namespace ecrm::segmentation {

class SegmentationService final : public v1::Segmentation::CallbackService {
 public:
  SegmentationService(Segments& segments, Campaigns& campaigns, Scores& scores, server::Executor& executor)
      : segments_(segments), campaigns_(campaigns), scores_(scores), executor_(executor) {}

  grpc::ServerUnaryReactor* CreateSegment(grpc::CallbackServerContext* ctx, const v1::CreateSegmentRequest* req,
                                          v1::Segment* resp) override;
  grpc::ServerUnaryReactor* GetSegment(grpc::CallbackServerContext* ctx, const v1::GetSegmentRequest* req,
                                       v1::Segment* resp) override;
  grpc::ServerUnaryReactor* ListSegments(grpc::CallbackServerContext* ctx, const v1::ListSegmentsRequest* req,
                                         v1::ListSegmentsResponse* resp) override;
  grpc::ServerUnaryReactor* UpdateSegment(grpc::CallbackServerContext* ctx, const v1::UpdateSegmentRequest* req,
                                          v1::Segment* resp) override;
  grpc::ServerUnaryReactor* DeleteSegment(grpc::CallbackServerContext* ctx, const v1::DeleteSegmentRequest* req,
                                          v1::DeleteSegmentResponse* resp) override;
  grpc::ServerUnaryReactor* PreviewSegment(grpc::CallbackServerContext* ctx, const v1::PreviewSegmentRequest* req,
                                           v1::PreviewSegmentResponse* resp) override;
  grpc::ServerUnaryReactor* ListSegmentMembers(grpc::CallbackServerContext* ctx,
                                               const v1::ListSegmentMembersRequest* req,
                                               v1::ListSegmentMembersResponse* resp) override;
  grpc::ServerWriteReactor<v1::SegmentMemberBatch>* StreamSegmentMembers(
      grpc::CallbackServerContext* ctx, const v1::StreamSegmentMembersRequest* req) override;
  grpc::ServerUnaryReactor* GetCustomerSegments(grpc::CallbackServerContext* ctx,
                                                const v1::GetCustomerSegmentsRequest* req,
                                                v1::GetCustomerSegmentsResponse* resp) override;
  grpc::ServerUnaryReactor* GetCustomerScores(grpc::CallbackServerContext* ctx, const v1::GetCustomerScoresRequest* req,
                                              v1::CustomerScores* resp) override;

  grpc::ServerUnaryReactor* CreateCampaign(grpc::CallbackServerContext* ctx, const v1::CreateCampaignRequest* req,
                                           v1::Campaign* resp) override;
  grpc::ServerUnaryReactor* LaunchCampaign(grpc::CallbackServerContext* ctx, const v1::LaunchCampaignRequest* req,
                                           v1::Campaign* resp) override;
  grpc::ServerUnaryReactor* GetCampaign(grpc::CallbackServerContext* ctx, const v1::GetCampaignRequest* req,
                                        v1::Campaign* resp) override;
  grpc::ServerUnaryReactor* ListCampaigns(grpc::CallbackServerContext* ctx, const v1::ListCampaignsRequest* req,
                                          v1::ListCampaignsResponse* resp) override;
  grpc::ServerUnaryReactor* GetCampaignReport(grpc::CallbackServerContext* ctx, const v1::GetCampaignReportRequest* req,
                                              v1::CampaignReport* resp) override;

 private:
  Segments& segments_;
  Campaigns& campaigns_;
  Scores& scores_;
  server::Executor& executor_;
};

}  // namespace ecrm::segmentation

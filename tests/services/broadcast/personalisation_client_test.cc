// Broadcast's personalisation client against an in-process fake engine: a customer that could
// not be rendered is retryable or not by the code personalisation gives (failed_codes), and by
// its text when an older engine gives none.
#include <grpcpp/grpcpp.h>

#include <catch2/catch.hpp>

#include "clients/personalisation_grpc.h"
#include "ecrm/personalisation/v1/personalisation.grpc.pb.h"

namespace {

namespace pz = ecrm::personalisation::v1;

class FakePersonalisation final : public pz::Personalisation::CallbackService {
 public:
  grpc::ServerUnaryReactor* BatchRender(grpc::CallbackServerContext* ctx, const pz::BatchRenderRequest*,
                                        pz::BatchRenderResponse* resp) override {
    *resp = answer;
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }
  pz::BatchRenderResponse answer;
};

}  // namespace

TEST_CASE("a customer personalisation could not render is retried or failed by the code it gives") {
  FakePersonalisation fake;
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&fake);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  REQUIRE(port > 0);
  ecrm::broadcast::GrpcTemplateRenderer renderer(
      grpc::CreateChannel("127.0.0.1:" + std::to_string(port), grpc::InsecureChannelCredentials()), absl::Seconds(10));

  auto& failed = *fake.answer.mutable_failed();
  auto& codes = *fake.answer.mutable_failed_codes();
  // With codes: the text no longer decides (it names nothing the guess knew).
  failed["c_busy"] = "segmentation: connection refused";
  codes["c_busy"] = static_cast<int>(absl::StatusCode::kUnavailable);
  failed["c_slow"] = "deciding offers: took too long";
  codes["c_slow"] = static_cast<int>(absl::StatusCode::kDeadlineExceeded);
  failed["c_gone"] = "customer c_gone is unknown";
  codes["c_gone"] = static_cast<int>(absl::StatusCode::kNotFound);
  failed["c_strict"] = "information store says: strict: no value for {{profile.first_name}}";
  codes["c_strict"] = static_cast<int>(absl::StatusCode::kFailedPrecondition);
  // Without (an engine from before failed_codes): the text is read as before.
  failed["c_old_down"] = "information store unavailable: connection refused";
  failed["c_old_unknown"] = "customer \"c_old_unknown\" does not exist";

  absl::StatusOr<ecrm::broadcast::RenderBatch> batch = renderer.BatchRender(
      {"tpl_x", /*placement=*/"", /*offer_id=*/""},
      {"c_busy", "c_slow", "c_gone", "c_strict", "c_old_down", "c_old_unknown"}, absl::Now() + absl::Seconds(10));
  REQUIRE(batch.ok());
  auto status = [&](const std::string& id) { return batch->by_customer.at(id).status(); };
  CHECK(absl::IsUnavailable(status("c_busy")));
  CHECK(absl::IsUnavailable(status("c_slow")));
  CHECK(absl::IsNotFound(status("c_gone")));
  CHECK(absl::IsFailedPrecondition(status("c_strict")));
  CHECK(status("c_strict").message() ==
        "personalisation: information store says: strict: no value for {{profile.first_name}}");
  CHECK(absl::IsUnavailable(status("c_old_down")));
  CHECK(absl::IsNotFound(status("c_old_unknown")));
  server->Shutdown();
}

#include "ecrm/server/offload.h"

#include <grpcpp/server_context.h>

#include "ecrm/server/grpc_status.h"

namespace ecrm::server {

grpc::ServerUnaryReactor* Offload(Executor& executor, grpc::CallbackServerContext* ctx,
                                  std::function<absl::Status()> fn) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  if (!executor.Submit([reactor, ctx, fn = std::move(fn)] {
        if (ctx->IsCancelled()) {
          reactor->Finish(grpc::Status(grpc::StatusCode::CANCELLED, "cancelled before it ran"));
          return;
        }
        reactor->Finish(ToGrpc(fn()));
      })) {
    reactor->Finish(grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED, "server overloaded; retry with backoff"));
  }
  return reactor;
}

}  // namespace ecrm::server

#include "ecrm/server/offload.h"

#include <grpcpp/server_context.h>

#include "ecrm/server/deadline.h"
#include "ecrm/server/drain.h"
#include "ecrm/server/grpc_status.h"

namespace ecrm::server {

grpc::ServerUnaryReactor* Offload(Executor& executor, grpc::CallbackServerContext* ctx,
                                  std::function<absl::Status()> fn) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  Drain& drain = executor.drain();
  if (!drain.Admit(reactor)) return reactor;  // shutting down: answered UNAVAILABLE by the drain
  if (!executor.Submit([reactor, ctx, fn = std::move(fn), &drain, deadline = absl::FromChrono(ctx->deadline())] {
        ScopedDeadline scope(deadline);  // calls to other engines spend at most what the caller has left
        if (ctx->IsCancelled()) {
          reactor->Finish(grpc::Status(grpc::StatusCode::CANCELLED, "cancelled before it ran"));
        } else {
          reactor->Finish(ToGrpc(fn()));
        }
        drain.Done();
      })) {
    reactor->Finish(grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED, "server overloaded; retry with backoff"));
    drain.Done();
  }
  return reactor;
}

grpc::ServerUnaryReactor* AnswerNow(Executor& executor, grpc::CallbackServerContext* ctx,
                                    const std::function<absl::Status()>& fn) {
  return AnswerNowOrOffload(
      executor, ctx, [&fn]() -> std::optional<absl::Status> { return fn(); }, fn);
}

grpc::ServerUnaryReactor* AnswerNowOrOffload(Executor& executor, grpc::CallbackServerContext* ctx,
                                             const std::function<std::optional<absl::Status>()>& try_now,
                                             std::function<absl::Status()> fn) {
  if (!executor.drain().draining()) {
    if (std::optional<absl::Status> now = try_now()) {
      grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
      reactor->Finish(ToGrpc(*now));
      return reactor;
    }
  }
  return Offload(executor, ctx, std::move(fn));
}

}  // namespace ecrm::server

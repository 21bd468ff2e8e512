// Runs a unary RPC's blocking work on the Executor, off gRPC's callback threads, and finishes
// the call with its status. A full queue answers RESOURCE_EXHAUSTED; a call cancelled while
// it waited is not run; once the server is shutting down, a call is answered UNAVAILABLE
// without running (drain.h).
//
//   return server::Offload(executor_, ctx, resp, [this, req] { return store_.GetProduct(*req); });
#pragma once

#include <grpcpp/support/server_callback.h>

#include <functional>
#include <optional>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "ecrm/server/executor.h"

namespace grpc {
class CallbackServerContext;
}

namespace ecrm::server {

grpc::ServerUnaryReactor* Offload(Executor& executor, grpc::CallbackServerContext* ctx,
                                  std::function<absl::Status()> fn);

// For the common shape: fn returns StatusOr<Resp>, moved into *resp on success.
template <typename Resp, typename Fn>
grpc::ServerUnaryReactor* Offload(Executor& executor, grpc::CallbackServerContext* ctx, Resp* resp, Fn fn) {
  return Offload(executor, ctx, [resp, fn = std::move(fn)]() -> absl::Status {
    absl::StatusOr<Resp> r = fn();
    if (!r.ok()) return r.status();
    *resp = std::move(*r);
    return absl::OkStatus();
  });
}

// Answers a call on gRPC's own thread with `status` (admitted to the drain like any call).
grpc::ServerUnaryReactor* AnswerNow(Executor& executor, grpc::CallbackServerContext* ctx, const absl::Status& status);

// For a quick in-memory read that usually waits on nothing: `try_now` runs on gRPC's thread and
// returns nullopt when it would have to wait (a lock a writer holds); the call then goes to the
// executor as `fn`, as Offload does. Saves the two thread hand-offs on the common path.
template <typename Resp, typename TryFn, typename Fn>
grpc::ServerUnaryReactor* AnswerOrOffload(Executor& executor, grpc::CallbackServerContext* ctx, Resp* resp,
                                          TryFn try_now, Fn fn) {
  std::optional<absl::StatusOr<Resp>> now = try_now();
  if (!now) return Offload(executor, ctx, resp, std::move(fn));
  if (!now->ok()) return AnswerNow(executor, ctx, now->status());
  *resp = *std::move(*now);
  return AnswerNow(executor, ctx, absl::OkStatus());
}

}  // namespace ecrm::server

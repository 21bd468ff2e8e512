// Runs a unary RPC's blocking work on the Executor, off gRPC's callback threads, and finishes
// the call with its status. A full queue answers RESOURCE_EXHAUSTED; a call cancelled while
// it waited is not run; once the server is shutting down, a call is answered UNAVAILABLE
// without running (drain.h).
//
//   return server::Offload(executor_, ctx, resp, [this, req] { return store_.GetProduct(*req); });
#pragma once

#include <grpcpp/support/server_callback.h>

#include <functional>
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

// Answers a unary RPC on gRPC's callback thread, for in-memory work shorter than the hand-off to
// the executor and its wake-up (a read under a lock that writers hold only for microseconds).
// While the server drains, the call goes to Offload, which refuses it as every other call.
grpc::ServerUnaryReactor* AnswerNow(Executor& executor, grpc::CallbackServerContext* ctx,
                                    const std::function<absl::Status()>& fn);

template <typename Resp, typename Fn>
grpc::ServerUnaryReactor* AnswerNow(Executor& executor, grpc::CallbackServerContext* ctx, Resp* resp, Fn fn) {
  return AnswerNow(executor, ctx, [resp, fn = std::move(fn)]() -> absl::Status {
    absl::StatusOr<Resp> r = fn();
    if (!r.ok()) return r.status();
    *resp = std::move(*r);
    return absl::OkStatus();
  });
}

}  // namespace ecrm::server

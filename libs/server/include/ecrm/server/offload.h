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

// Answers a unary RPC on gRPC's callback thread, for in-memory work shorter than the hand-off to
// the executor and its wake-up (a read under a lock that writers hold only for microseconds).
// While the server drains, the call goes to Offload, which refuses it as every other call.
grpc::ServerUnaryReactor* AnswerNow(Executor& executor, grpc::CallbackServerContext* ctx,
                                    const std::function<absl::Status()>& fn);
// The same for work that cannot always be done at once: `try_now` answers nullopt where it would
// wait (a lock a writer holds for longer), and the call then goes to Offload, which runs `fn`.
grpc::ServerUnaryReactor* AnswerNowOrOffload(Executor& executor, grpc::CallbackServerContext* ctx,
                                             const std::function<std::optional<absl::Status>()>& try_now,
                                             std::function<absl::Status()> fn);

// For the common shape: fn returns StatusOr<Resp>, moved into *resp on success.
template <typename Resp>
absl::Status MoveInto(absl::StatusOr<Resp> r, Resp* resp) {
  if (!r.ok()) return r.status();
  *resp = *std::move(r);
  return absl::OkStatus();
}
template <typename Resp, typename Fn>
grpc::ServerUnaryReactor* Offload(Executor& executor, grpc::CallbackServerContext* ctx, Resp* resp, Fn fn) {
  return Offload(executor, ctx, [resp, fn = std::move(fn)] { return MoveInto<Resp>(fn(), resp); });
}
template <typename Resp, typename Fn>
grpc::ServerUnaryReactor* AnswerNow(Executor& executor, grpc::CallbackServerContext* ctx, Resp* resp, Fn fn) {
  return AnswerNow(executor, ctx, [resp, fn = std::move(fn)] { return MoveInto<Resp>(fn(), resp); });
}
// try_now returns std::optional<absl::StatusOr<Resp>>.
template <typename Resp, typename TryFn, typename Fn>
grpc::ServerUnaryReactor* AnswerNowOrOffload(Executor& executor, grpc::CallbackServerContext* ctx, Resp* resp,
                                             TryFn try_now, Fn fn) {
  return AnswerNowOrOffload(
      executor, ctx,
      [resp, try_now = std::move(try_now)]() -> std::optional<absl::Status> {
        std::optional<absl::StatusOr<Resp>> r = try_now();
        if (!r) return std::nullopt;
        return MoveInto<Resp>(*std::move(r), resp);
      },
      [resp, fn = std::move(fn)] { return MoveInto<Resp>(fn(), resp); });
}

}  // namespace ecrm::server

// The application-level drain behind the runner's graceful shutdown.
//
// gRPC's own Server::Shutdown() is not enough on its own: every call that reaches the server
// after it has begun is cancelled by gRPC core before any handler sees it, and the client gets
// CANCELLED — with no way to tell whether its call ran (grpc/grpc#41785) — and it waits for
// each client to acknowledge its GOAWAY, which an idle client may do only seconds later. So
// the runner drains first, here: from the shutdown signal on, every RPC whose handler begins is
// refused UNAVAILABLE without running, every RPC admitted before runs to completion, and only
// once none is left does the runner shut gRPC down, for a bounded moment.
//
// Refused calls are held until the runner has sent every client its GOAWAY and are then
// answered: a client waiting for its answer sends nothing more on the connection, and reads
// the GOAWAY before the answer, so its next call goes elsewhere instead of into the moment
// where gRPC would cancel it.
//
// Unary handlers use it through server::Offload; streaming handlers directly:
//
//   if (!drain.Admit()) return new server::RefusedStream<Reactor>(drain);
//   return new MyReactor(…);  // which calls drain.Done() in OnDone()
//
// The Runner owns the drain (Runner::drain()); handlers reach it through their Executor.
#pragma once

#include <grpcpp/support/server_callback.h>
#include <grpcpp/support/status.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <vector>

namespace ecrm::server {

class Drain {
 public:
  using Clock = std::chrono::steady_clock;

  Drain() = default;
  Drain(const Drain&) = delete;
  Drain& operator=(const Drain&) = delete;

  // An RPC, as its handler begins. True: run it, and call Done() once it is over. False once
  // shutdown has begun: it must not run; hand its answer (finishing it with Refusal()) to
  // Refuse() — RefusedStream does.
  bool Admit();
  // For a unary handler: Admit(), and if refused, the drain answers `reactor`.
  bool Admit(grpc::ServerUnaryReactor* reactor);
  // Takes a refused RPC's answer: held until Release(), run at once after it.
  void Refuse(std::function<void()> answer);
  // An admitted RPC has finished.
  void Done();
  // Whether shutdown has begun (for answers given inline, which are not counted).
  bool draining() const { return draining_.load(std::memory_order_acquire); }

  // The answer to an RPC refused during shutdown.
  static grpc::Status Refusal();

  // The runner's side, in this order. Start(): from now on RPCs are refused.
  void Start();
  // Blocks until no admitted RPC is running and then until no RPC has begun or ended for
  // `quiet` — time for a client that was just answered to send its next call, to be held —
  // but waits for quiet at most `quiet_limit`; or until `deadline`. False if admitted RPCs
  // were still running at the deadline.
  bool AwaitDrained(Clock::time_point deadline, Clock::duration quiet, Clock::duration quiet_limit);
  // Answers the held RPCs, and from now on refused ones at once.
  void Release();

  // Admitted RPCs still running, and RPCs refused so far (for the log).
  int64_t running() const { return running_.load(std::memory_order_acquire); }
  int64_t refused();

 private:
  void Touch() { last_activity_.store(Clock::now().time_since_epoch().count(), std::memory_order_relaxed); }

  std::atomic<bool> draining_{false};
  std::atomic<int64_t> running_{0};
  std::atomic<Clock::rep> last_activity_{0};
  std::mutex mu_;
  std::condition_variable cv_;
  bool released_ = false;                    // guarded by mu_
  std::vector<std::function<void()>> held_;  // guarded by mu_
  int64_t refused_ = 0;                      // guarded by mu_
};

// A stream refused as it begins: finishes with Drain::Refusal() when the drain answers it.
template <typename Reactor>
class RefusedStream final : public Reactor {
 public:
  explicit RefusedStream(Drain& drain) {
    drain.Refuse([this] { this->Finish(Drain::Refusal()); });
  }
  void OnDone() override { delete this; }
};

}  // namespace ecrm::server

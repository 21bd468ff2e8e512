#include "ecrm/server/drain.h"

#include <algorithm>
#include <utility>

namespace ecrm::server {
namespace {

// Beyond this many, refused calls are answered at once instead of held (a client with no
// bound on its outstanding calls is not stopped by holding them anyway).
constexpr size_t kMaxHeld = 10000;

}  // namespace

grpc::Status Drain::Refusal() {
  return grpc::Status(grpc::StatusCode::UNAVAILABLE,
                      "server shutting down; the call was not run: retry it on another instance");
}

bool Drain::Admit(grpc::ServerUnaryReactor* reactor) {
  if (Admit()) return true;
  Refuse([reactor] { reactor->Finish(Refusal()); });
  return false;
}

bool Drain::Admit() {
  // Paired with Start(): either this increment is seen by AwaitDrained, or this load sees
  // draining_ (both sequentially consistent).
  running_.fetch_add(1);
  if (!draining_.load()) {
    Touch();
    return true;
  }
  if (running_.fetch_sub(1) == 1) {
    std::lock_guard lock(mu_);
    cv_.notify_all();
  }
  return false;
}

void Drain::Refuse(std::function<void()> answer) {
  bool hold;
  {
    std::lock_guard lock(mu_);
    ++refused_;
    hold = !released_ && held_.size() < kMaxHeld;
    if (hold) held_.push_back(std::move(answer));
    Touch();  // under mu_: AwaitDrained sees it, or is woken below
  }
  cv_.notify_all();
  if (!hold) answer();
}

void Drain::Done() {
  Touch();
  if (running_.fetch_sub(1) == 1 && draining_.load()) {
    std::lock_guard lock(mu_);  // AwaitDrained checks under mu_ before it waits: no lost wake-up
    cv_.notify_all();
  }
}

void Drain::Start() { draining_.store(true); }

bool Drain::AwaitDrained(Clock::time_point deadline, Clock::duration quiet, Clock::duration quiet_limit) {
  std::unique_lock lock(mu_);
  while (running_.load() > 0) {
    if (cv_.wait_until(lock, deadline) == std::cv_status::timeout && running_.load() > 0) return false;
  }
  // Nothing admitted runs any more, and nothing new is admitted: only refused calls come in.
  const Clock::time_point limit = std::min(deadline, Clock::now() + quiet_limit);
  for (;;) {
    const Clock::time_point quiet_at =
        Clock::time_point(Clock::duration(last_activity_.load(std::memory_order_relaxed))) + quiet;
    const Clock::time_point now = Clock::now();
    if (now >= quiet_at || now >= limit) return true;
    cv_.wait_until(lock, std::min(quiet_at, limit));
  }
}

void Drain::Release() {
  std::vector<std::function<void()>> held;
  {
    std::lock_guard lock(mu_);
    released_ = true;
    held.swap(held_);
  }
  for (auto& answer : held) answer();
}

int64_t Drain::refused() {
  std::lock_guard lock(mu_);
  return refused_;
}

}  // namespace ecrm::server

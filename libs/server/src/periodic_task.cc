#include "ecrm/server/periodic_task.h"

#include <prometheus/counter.h>
#include <prometheus/registry.h>
#include <pthread.h>

#include <utility>

namespace ecrm::server {

PeriodicTask::PeriodicTask(std::string name, absl::Duration period, std::function<void()> callback,
                           prometheus::Registry* registry)
    : name_(std::move(name)), period_(period), callback_(std::move(callback)) {
  if (registry != nullptr) {
    runs_ = &prometheus::BuildCounter()
                 .Name("ecrm_periodic_task_runs_total")
                 .Help("Completed runs of each periodic background task (pruning, scans).")
                 .Register(*registry)
                 .Add({{"task", name_}});
  }
}

PeriodicTask::~PeriodicTask() { Stop(); }

void PeriodicTask::Start() { Start(period_); }

void PeriodicTask::Start(absl::Duration first_run_after) {
  std::lock_guard lifecycle(lifecycle_mu_);
  if (thread_.joinable()) return;
  {
    std::lock_guard lock(mu_);
    stopping_ = false;
  }
  thread_ = std::thread([this, first_run_after] { Loop(first_run_after); });
}

void PeriodicTask::Stop() {
  std::lock_guard lifecycle(lifecycle_mu_);
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void PeriodicTask::RunNow() {
  std::lock_guard run(run_mu_);
  RunOnce();
}

void PeriodicTask::Wake() {
  {
    std::lock_guard lock(mu_);
    woken_ = true;
  }
  cv_.notify_all();
}

void PeriodicTask::Loop(absl::Duration wait) {
  pthread_setname_np(pthread_self(), name_.substr(0, 15).c_str());
  // Past this a deadline would overflow the steady clock (absl::InfiniteDuration among them).
  constexpr absl::Duration kForever = absl::Hours(24 * 365 * 100);
  const auto stop_requested = [this] { return stopping_ || woken_; };
  for (;;) {
    {
      std::unique_lock lock(mu_);
      if (wait >= kForever) {
        cv_.wait(lock, stop_requested);
      } else {
        cv_.wait_for(lock, absl::ToChronoNanoseconds(wait), stop_requested);
      }
      if (stopping_) return;
      woken_ = false;
    }
    wait = period_;
    std::lock_guard run(run_mu_);
    {
      // Stop() may have come while a RunNow() held run_mu_.
      std::lock_guard lock(mu_);
      if (stopping_) return;
    }
    RunOnce();
  }
}

void PeriodicTask::RunOnce() noexcept {
  callback_();
  if (runs_ != nullptr) runs_->Increment();
}

}  // namespace ecrm::server

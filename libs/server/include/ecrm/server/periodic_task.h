// A background job run every `period` on a thread of its own (pruning, scans), as userver's
// PeriodicTask: Start() schedules it, Stop() ends the schedule and waits for a run in
// progress, RunNow() runs it once and returns when that run has completed, so tests wait on the
// work itself rather than on sleeps.
//
//   server::PeriodicTask pruner("feed-pruner", absl::Minutes(1), [&] { store.Prune(); },
//                               &runner.metrics());
//   pruner.Start();
//   runner.OnShutdown([&] { pruner.Stop(); });  // before the stores it uses close
//
// The callback returns nothing and must not throw: a job reports its own failures (logs,
// metrics) and tries again at the next period. An exception escaping it ends the process
// (std::terminate), on the task's thread and in RunNow() alike.
#pragma once

#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

#include "absl/time/time.h"

namespace prometheus {
class Registry;
class Counter;
}  // namespace prometheus

namespace ecrm::server {

class PeriodicTask {
 public:
  // `name` names the thread (its first 15 characters) and labels the metric. A period of zero
  // or less runs the callback back to back. With a registry, completed runs are counted in
  // ecrm_periodic_task_runs_total{task="<name>"}.
  PeriodicTask(std::string name, absl::Duration period, std::function<void()> callback,
               prometheus::Registry* registry = nullptr);
  ~PeriodicTask();  // Stop()
  PeriodicTask(const PeriodicTask&) = delete;
  PeriodicTask& operator=(const PeriodicTask&) = delete;

  // Starts the thread; the first run comes one period later. Does nothing while running;
  // after Stop() starts the schedule again.
  void Start();
  // The same, with the first run `first_run_after` from now and the next ones a period apart
  // (a job that should also run soon after the process starts).
  void Start(absl::Duration first_run_after);
  // Ends the schedule: returns once a periodic run in progress has completed, and no periodic
  // run starts after it returns. Idempotent; safe without Start() and from any thread but the
  // callback's own.
  void Stop();
  // Runs the callback once on the calling thread, never at the same time as another run, and
  // returns when it has completed. Works whether or not the task is started.
  void RunNow();
  // Brings the next scheduled run forward to now, on the task's own thread (a job that has
  // work as soon as someone hands it some, and runs periodically to retry). Returns at once;
  // wakes made during a run bring on one more run after it.
  void Wake();

  const std::string& name() const { return name_; }

 private:
  void Loop(absl::Duration wait);  // `wait`: until the first run
  void RunOnce() noexcept;         // an exception from the callback terminates

  const std::string name_;
  const absl::Duration period_;
  const std::function<void()> callback_;
  prometheus::Counter* runs_ = nullptr;

  std::mutex lifecycle_mu_;  // serialises Start() and Stop(); held while Stop() joins
  std::thread thread_;       // guarded by lifecycle_mu_

  std::mutex mu_;  // guards stopping_
  std::condition_variable cv_;
  bool stopping_ = false;
  bool woken_ = false;  // guarded by mu_

  std::mutex run_mu_;  // held for the length of each run
};

}  // namespace ecrm::server

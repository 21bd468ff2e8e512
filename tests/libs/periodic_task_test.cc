// server::PeriodicTask in-process: every wait is on a counter or a flag the callback sets,
// never on a sleep, and nothing asserts how long anything took.
#include "ecrm/server/periodic_task.h"

#include <prometheus/registry.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

namespace {

using ecrm::server::PeriodicTask;

// A counter tests can wait on. The bound only keeps a broken task from hanging the suite.
class Counter {
 public:
  void Increment() {
    {
      std::lock_guard lock(mu_);
      ++n_;
    }
    cv_.notify_all();
  }
  int value() {
    std::lock_guard lock(mu_);
    return n_;
  }
  bool WaitFor(int at_least) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, std::chrono::minutes(1), [&] { return n_ >= at_least; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  int n_ = 0;
};

// A flag one thread raises and another waits for.
class Gate {
 public:
  void Open() {
    {
      std::lock_guard lock(mu_);
      open_ = true;
    }
    cv_.notify_all();
  }
  bool Wait() {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, std::chrono::minutes(1), [&] { return open_; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool open_ = false;
};

double RunsMetric(prometheus::Registry& registry, const std::string& task) {
  for (const auto& family : registry.Collect()) {
    if (family.name != "ecrm_periodic_task_runs_total") continue;
    for (const auto& metric : family.metric) {
      for (const auto& label : metric.label) {
        if (label.name == "task" && label.value == task) return metric.counter.value;
      }
    }
  }
  return -1;
}

}  // namespace

TEST_CASE("a started task runs again and again until stopped") {
  Counter runs;
  PeriodicTask task("tiny-period", absl::Milliseconds(1), [&] { runs.Increment(); });
  task.Start();
  REQUIRE(runs.WaitFor(3));
  task.Stop();
  const int after_stop = runs.value();
  CHECK(after_stop >= 3);
  task.Stop();  // twice: nothing more to do
  CHECK(runs.value() == after_stop);
}

TEST_CASE("RunNow runs the callback exactly once and returns after it completed") {
  Counter runs;
  std::atomic<bool> completed = false;
  PeriodicTask task("run-now", absl::Hours(1), [&] {
    runs.Increment();
    completed = true;
  });
  SECTION("not started") {
    task.RunNow();
    CHECK(completed);
    CHECK(runs.value() == 1);
    task.RunNow();
    CHECK(runs.value() == 2);
  }
  SECTION("started, before its first period") {
    task.Start();
    task.RunNow();
    CHECK(completed);
    CHECK(runs.value() == 1);
  }
}

TEST_CASE("RunNow never overlaps a periodic run") {
  std::atomic<bool> running = false;
  std::atomic<int> overlaps = 0;
  Counter runs;
  PeriodicTask task("no-overlap", absl::Milliseconds(1), [&] {
    if (running.exchange(true)) ++overlaps;
    runs.Increment();
    running = false;
  });
  task.Start();
  for (int i = 0; i < 200; ++i) task.RunNow();
  REQUIRE(runs.WaitFor(201));  // at least one of them periodic
  task.Stop();
  CHECK(overlaps == 0);
}

TEST_CASE("Stop waits for a run in progress, and no run starts after it returns") {
  Gate entered, stop_called, release;
  Counter completed;
  std::atomic<bool> stop_returned = false;
  std::atomic<int> runs_after_stop = 0;
  PeriodicTask task("stop-waits", absl::Milliseconds(1), [&] {
    if (stop_returned) ++runs_after_stop;
    entered.Open();
    release.Wait();
    completed.Increment();
  });
  task.Start();
  REQUIRE(entered.Wait());
  int completed_when_stop_returned = -1;
  std::thread stopper([&] {
    stop_called.Open();
    task.Stop();
    completed_when_stop_returned = completed.value();
    stop_returned = true;
  });
  REQUIRE(stop_called.Wait());
  release.Open();  // the run in progress may finish now; Stop() must not have returned before
  stopper.join();
  CHECK(completed_when_stop_returned >= 1);
  CHECK(completed.value() == completed_when_stop_returned);
  CHECK(runs_after_stop == 0);
}

TEST_CASE("Start with a first delay runs first after it, then once a period") {
  Counter runs;
  PeriodicTask task("first-soon", absl::Hours(1), [&] { runs.Increment(); });
  task.Start(absl::Milliseconds(1));
  REQUIRE(runs.WaitFor(1));
  task.Stop();
  CHECK(runs.value() == 1);  // the next run was an hour away
}

TEST_CASE("a period of zero runs the callback back to back") {
  Counter runs;
  PeriodicTask task("zero-period", absl::ZeroDuration(), [&] { runs.Increment(); });
  task.Start();
  REQUIRE(runs.WaitFor(100));
}

TEST_CASE("Start after Stop resumes the schedule, and Start while running does nothing") {
  Counter runs;
  PeriodicTask task("restart", absl::Milliseconds(1), [&] { runs.Increment(); });
  task.Start();
  task.Start();
  REQUIRE(runs.WaitFor(1));
  task.Stop();
  const int before = runs.value();
  task.Start();
  REQUIRE(runs.WaitFor(before + 1));
}

TEST_CASE("Stop and the destructor are safe without Start, and Stop twice is too") {
  int runs = 0;
  {
    PeriodicTask never_started("idle", absl::Milliseconds(1), [&] { ++runs; });
  }
  {
    PeriodicTask stopped("idle", absl::Milliseconds(1), [&] { ++runs; });
    stopped.Stop();
    stopped.Stop();
  }
  {
    // A start-up that fails after Start() just destroys the task: the thread is joined.
    PeriodicTask started("hour", absl::Hours(1), [&] { ++runs; });
    started.Start();
  }
  {
    PeriodicTask forever("forever", absl::InfiniteDuration(), [&] { ++runs; });
    forever.Start();
    forever.Stop();
  }
  CHECK(runs == 0);
}

TEST_CASE("completed runs are counted per task in ecrm_periodic_task_runs_total") {
  prometheus::Registry registry;
  PeriodicTask a(
      "task-a", absl::Hours(1), [] {}, &registry);
  PeriodicTask b(
      "task-b", absl::Hours(1), [] {}, &registry);
  CHECK(RunsMetric(registry, "task-a") == 0);
  a.RunNow();
  a.RunNow();
  b.RunNow();
  CHECK(RunsMetric(registry, "task-a") == 2);
  CHECK(RunsMetric(registry, "task-b") == 1);
  CHECK(a.name() == "task-a");
}

TEST_CASE("Wake runs the task at once on its own thread, and a wake during a run brings one more run") {
  Counter runs;
  Gate release;
  std::atomic<int> calls{0};
  PeriodicTask task("woken", absl::Hours(1), [&] {
    const int n = ++calls;
    runs.Increment();
    if (n == 2) release.Wait();  // the second run is held until released
  });
  task.Start();
  task.Wake();
  REQUIRE(runs.WaitFor(1));
  task.Wake();
  REQUIRE(runs.WaitFor(2));  // the second run is now held in the callback
  task.Wake();               // during the run
  release.Open();
  REQUIRE(runs.WaitFor(3));
  task.Stop();
  CHECK(runs.value() == 3);
}

// Shared bits of the benchmark programs: timing loops (closed, open, open with a pool of
// workers) and the JSON line they print.
#pragma once

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"

namespace ecrm::bench {

// Calls op() (which does `per_call` operations) until `duration` passes; returns ops/second.
inline double OpsPerSecond(absl::Duration duration, int64_t per_call, const std::function<void()>& op) {
  const auto start = std::chrono::steady_clock::now();
  const auto end = start + absl::ToChronoNanoseconds(duration);
  int64_t ops = 0;
  auto now = start;
  while (now < end) {
    op();
    ops += per_call;
    now = std::chrono::steady_clock::now();
  }
  return static_cast<double>(ops) / std::chrono::duration<double>(now - start).count();
}

// Open loop: calls issue(n, scheduled) for n = 0, 1, … at start + n × period, until `end`,
// sleeping until each one's time (not when behind: late requests keep their scheduled time,
// from which their latency counts).
inline void OpenLoop(std::chrono::steady_clock::time_point start, std::chrono::steady_clock::time_point end,
                     std::chrono::duration<double> period,
                     const std::function<void(int64_t, std::chrono::steady_clock::time_point)>& issue) {
  for (int64_t n = 0;; ++n) {
    const auto scheduled =
        start + std::chrono::duration_cast<std::chrono::steady_clock::duration>(period * static_cast<double>(n));
    if (scheduled >= end) return;
    std::this_thread::sleep_until(scheduled);
    issue(n, scheduled);
  }
}

// OpenLoop with a pool of `workers` threads: each scheduled call is queued and one of the
// workers runs work(n, scheduled) when free (late when all are busy: its latency counts from
// `scheduled`). Returns once every call is done, with the longest the queue grew.
inline int64_t OpenLoopPool(std::chrono::steady_clock::time_point start, std::chrono::steady_clock::time_point end,
                            std::chrono::duration<double> period, int64_t workers,
                            const std::function<void(int64_t, std::chrono::steady_clock::time_point)>& work) {
  struct Job {
    int64_t n;
    std::chrono::steady_clock::time_point scheduled;
  };
  std::mutex mu;
  std::condition_variable cv;
  std::deque<Job> queue;
  bool finished = false;
  int64_t max_queue = 0;
  std::vector<std::thread> pool;
  for (int64_t w = 0; w < workers; ++w) {
    pool.emplace_back([&] {
      for (;;) {
        Job job;
        {
          std::unique_lock lock(mu);
          cv.wait(lock, [&] { return finished || !queue.empty(); });
          if (queue.empty()) return;
          job = queue.front();
          queue.pop_front();
        }
        work(job.n, job.scheduled);
      }
    });
  }
  OpenLoop(start, end, period, [&](int64_t n, std::chrono::steady_clock::time_point scheduled) {
    {
      std::lock_guard lock(mu);
      queue.push_back({n, scheduled});
      max_queue = std::max<int64_t>(max_queue, static_cast<int64_t>(queue.size()));
    }
    cv.notify_one();
  });
  {
    std::lock_guard lock(mu);
    finished = true;
  }
  cv.notify_all();
  for (auto& t : pool) t.join();
  return max_queue;
}

inline double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

// {"bench":…,"unit":…,"runs":[…],"median":…}
inline void PrintResult(const std::string& name, const std::string& unit, const std::vector<double>& runs) {
  std::vector<std::string> r;
  for (double x : runs) r.push_back(absl::StrCat(static_cast<int64_t>(x)));
  std::printf("{\"bench\":\"%s\",\"unit\":\"%s\",\"runs\":[%s],\"median\":%lld}\n", name.c_str(), unit.c_str(),
              absl::StrJoin(r, ",").c_str(), static_cast<long long>(Median(runs)));
  std::fflush(stdout);
}

}  // namespace ecrm::bench

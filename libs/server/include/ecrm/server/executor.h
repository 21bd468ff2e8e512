// A fixed pool of worker threads for blocking work (database, cache) that must not run on
// gRPC's callback threads. The queue is bounded: when it is full Submit() refuses, and the
// handler answers RESOURCE_EXHAUSTED instead of queueing without limit.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace prometheus {
class Registry;
class Gauge;
class Counter;
}  // namespace prometheus

namespace ecrm::server {

class Drain;

class Executor {
 public:
  // `drain` (the Runner's) is where the RPCs run here are admitted and counted; it must
  // outlive the executor.
  Executor(int threads, size_t max_queue, prometheus::Registry& registry, Drain& drain);
  ~Executor();  // runs what is queued, then joins
  Executor(const Executor&) = delete;
  Executor& operator=(const Executor&) = delete;

  // False when the queue is full.
  bool Submit(std::function<void()> task);

  Drain& drain() const { return drain_; }

 private:
  void Work();
  Drain& drain_;
  const size_t max_queue_;
  prometheus::Gauge& depth_;
  prometheus::Counter& rejected_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace ecrm::server

#include "ecrm/server/executor.h"

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>

namespace ecrm::server {

Executor::Executor(int threads, size_t max_queue, prometheus::Registry& registry, Drain& drain)
    : drain_(drain),
      max_queue_(max_queue),
      depth_(prometheus::BuildGauge()
                 .Name("ecrm_executor_queue_depth")
                 .Help("Requests waiting for a worker thread.")
                 .Register(registry)
                 .Add({})),
      rejected_(prometheus::BuildCounter()
                    .Name("ecrm_executor_rejected_total")
                    .Help("Requests refused with RESOURCE_EXHAUSTED because the worker queue was full.")
                    .Register(registry)
                    .Add({})) {
  for (int i = 0; i < threads; ++i) threads_.emplace_back([this] { Work(); });
}

Executor::~Executor() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  for (auto& t : threads_) t.join();
}

bool Executor::Submit(std::function<void()> task) {
  {
    std::lock_guard lock(mu_);
    if (queue_.size() >= max_queue_ || stopping_) {
      rejected_.Increment();
      return false;
    }
    queue_.push_back(std::move(task));
    depth_.Set(static_cast<double>(queue_.size()));
  }
  cv_.notify_one();
  return true;
}

void Executor::Work() {
  for (;;) {
    std::function<void()> task;
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;
      task = std::move(queue_.front());
      queue_.pop_front();
      depth_.Set(static_cast<double>(queue_.size()));
    }
    task();
  }
}

}  // namespace ecrm::server

// A queue between threads that a consumer drains until it is closed.
#pragma once

#include <condition_variable>
#include <deque>
#include <mutex>
#include <vector>

namespace ecrm::util {

template <typename T>
class WorkQueue {
 public:
  void Push(T item) {
    {
      std::lock_guard lock(mu_);
      items_.push_back(std::move(item));
    }
    cv_.notify_one();
  }

  // Waits for an item, then takes items in order while `take(item)` agrees; the first is taken
  // whatever it answers. Empty only once the queue is closed and drained.
  template <typename Take>
  std::vector<T> PopWhile(Take take) {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [this] { return closed_ || !items_.empty(); });
    std::vector<T> out;
    while (!items_.empty()) {
      if (!take(items_.front()) && !out.empty()) break;
      out.push_back(std::move(items_.front()));
      items_.pop_front();
    }
    return out;
  }

  // Wakes the consumer, which drains what is queued and then gets an empty result.
  void Close() {
    {
      std::lock_guard lock(mu_);
      closed_ = true;
    }
    cv_.notify_all();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<T> items_;
  bool closed_ = false;
};

}  // namespace ecrm::util

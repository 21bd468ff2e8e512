#include "ecrm/util/work_queue.h"

#include <catch2/catch.hpp>
#include <thread>

namespace ecrm::util {
namespace {

TEST_CASE("a work queue hands items over in order, as many as the consumer agrees to take") {
  WorkQueue<int> q;
  for (int i = 1; i <= 5; ++i) q.Push(i);
  int budget = 3;
  CHECK(q.PopWhile([&](int) { return budget-- > 0; }) == std::vector<int>{1, 2, 3});
  // The first item is taken even when the consumer declines it, so a large item is not stuck.
  CHECK(q.PopWhile([](int) { return false; }) == std::vector<int>{4});
  CHECK(q.PopWhile([](int) { return true; }) == std::vector<int>{5});
}

TEST_CASE("closing a work queue drains it, then wakes the consumer with nothing") {
  WorkQueue<int> q;
  q.Push(7);
  q.Close();
  CHECK(q.PopWhile([](int) { return true; }) == std::vector<int>{7});
  CHECK(q.PopWhile([](int) { return true; }).empty());

  WorkQueue<int> idle;
  std::vector<int> got = {-1};
  std::thread consumer([&] { got = idle.PopWhile([](int) { return true; }); });  // blocks until closed
  idle.Close();
  consumer.join();
  CHECK(got.empty());
}

}  // namespace
}  // namespace ecrm::util

#include "ledger/monitor.h"

#include <atomic>
#include <chrono>
#include <memory>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace warmledger {
namespace {

using Clock = std::chrono::steady_clock;

// Long enough that a missed wake-up shows as a timeout, not as a slow run.
constexpr absl::Duration kPatience = absl::Seconds(20);

TEST(MonitorTest, AwaitReturnsOnceAnotherThreadMakesTheConditionTrue) {
  Monitor mu;
  int value = 0;  // guarded by mu
  std::thread setter([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    Monitor::Lock lock(&mu);
    value = 1;  // no notification: releasing the lock is enough
  });
  {
    Monitor::Lock lock(&mu);
    lock.Await([&] { return value == 1; });
    EXPECT_EQ(value, 1);
  }
  setter.join();
}

TEST(MonitorTest, AwaitWithTimeoutSaysWhetherTheConditionHolds) {
  Monitor mu;
  bool ready = false;  // guarded by mu
  {
    Monitor::Lock lock(&mu);
    const auto start = Clock::now();
    EXPECT_FALSE(lock.AwaitWithTimeout([&] { return ready; }, absl::Milliseconds(30)));
    EXPECT_GE(Clock::now() - start, std::chrono::milliseconds(30));
    // Already true: no wait at all, whatever the timeout.
    ready = true;
    EXPECT_TRUE(lock.AwaitWithTimeout([&] { return ready; }, absl::ZeroDuration()));
  }
  ready = false;
  std::thread setter([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    Monitor::Lock lock(&mu);
    ready = true;
  });
  {
    Monitor::Lock lock(&mu);
    // An infinite timeout is clamped, not overflowed into the past.
    EXPECT_TRUE(lock.AwaitWithTimeout([&] { return ready; }, absl::InfiniteDuration()));
  }
  setter.join();
}

// A holder that starts waiting releases the lock: the waiters its changes
// made ready are woken then, not when it is itself woken much later.
TEST(MonitorTest, AHolderThatStartsWaitingWakesTheWaitersItMadeReady) {
  Monitor mu;
  bool request = false;  // guarded by mu
  bool reply = false;    // guarded by mu
  std::atomic<bool> served{false};
  std::thread server([&] {
    Monitor::Lock lock(&mu);
    ASSERT_TRUE(lock.AwaitWithTimeout([&] { return request; }, kPatience));
    reply = true;
    served = true;
  });
  // Let the server start waiting first (if it has not, the test proves
  // nothing but still passes).
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  const auto start = Clock::now();
  {
    Monitor::Lock lock(&mu);
    request = true;
    ASSERT_TRUE(lock.AwaitWithTimeout([&] { return reply; }, kPatience));
  }
  EXPECT_TRUE(served);
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(10));
  server.join();
}

// Several waiters with different conditions: each returns when its own
// condition holds, in the order the conditions are made true.
TEST(MonitorTest, EachWaiterReturnsWhenItsOwnConditionHolds) {
  constexpr int kWaiters = 4;
  Monitor mu;
  int stage = 0;         // guarded by mu
  std::vector<int> order;  // guarded by mu
  std::vector<std::thread> waiters;
  for (int i = kWaiters; i >= 1; --i) {
    waiters.emplace_back([&, i] {
      Monitor::Lock lock(&mu);
      ASSERT_TRUE(lock.AwaitWithTimeout([&] { return stage >= i; }, kPatience));
      order.push_back(i);
    });
  }
  for (int i = 1; i <= kWaiters; ++i) {
    Monitor::Lock lock(&mu);
    // Each step waits for the previous waiter to have returned.
    ASSERT_TRUE(lock.AwaitWithTimeout(
        [&] { return order.size() == static_cast<size_t>(i - 1); }, kPatience));
    stage = i;
  }
  for (std::thread& t : waiters) t.join();
  EXPECT_EQ(order, (std::vector<int>{1, 2, 3, 4}));
}

// A hand-over queue like the ledger's stages: every item arrives once, in
// order, with the producer bounded by the consumer.
TEST(MonitorTest, ABoundedQueueHandsEveryItemOverInOrder) {
  constexpr int kItems = 20000;
  constexpr size_t kCapacity = 8;
  Monitor mu;
  std::vector<int> queue;  // guarded by mu
  bool closed = false;     // guarded by mu
  std::vector<int> received;
  std::thread consumer([&] {
    while (true) {
      Monitor::Lock lock(&mu);
      lock.Await([&] { return closed || !queue.empty(); });
      if (queue.empty()) return;
      received.insert(received.end(), queue.begin(), queue.end());
      queue.clear();
    }
  });
  for (int i = 0; i < kItems; ++i) {
    Monitor::Lock lock(&mu);
    lock.Await([&] { return queue.size() < kCapacity; });
    queue.push_back(i);
  }
  {
    Monitor::Lock lock(&mu);
    closed = true;
  }
  consumer.join();
  ASSERT_EQ(received.size(), static_cast<size_t>(kItems));
  for (int i = 0; i < kItems; ++i) ASSERT_EQ(received[i], i);
}

// The waiter may destroy the Notification as soon as Wait returns (the
// sanitizer builds catch a notifier that touches it afterwards).
TEST(NotificationTest, TheWaiterMayDestroyItAsSoonAsWaitReturns) {
  for (int i = 0; i < 200; ++i) {
    auto n = std::make_unique<Notification>();
    std::thread notifier([raw = n.get()] { raw->Notify(); });
    n->Wait();
    n.reset();
    notifier.join();
  }
}

}  // namespace
}  // namespace warmledger

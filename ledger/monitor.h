// A mutex whose holders can wait for a condition on the state it guards, in
// the manner of absl::Mutex::Await, built on std::mutex and
// std::condition_variable. The pipeline's hand-overs go through these
// instead of absl::Mutex because Debian's Abseil is built without
// ThreadSanitizer annotations: TSan cannot see absl::Mutex order memory, and
// would report every hand-over between the pipeline's threads as a race.
//
//   Monitor mu;
//   std::deque<Work> queue ABSL_GUARDED_BY(mu);
//   ...
//   Monitor::Lock lock(&mu);
//   lock.Await([&] { return !queue.empty(); });
//
// Before a Lock is released (or a holder starts waiting), the conditions of
// the waiters are evaluated, as absl::Mutex does, and only those whose
// condition now holds are woken: a change made under the lock never needs an
// explicit notification, and a stage is not woken by hand-overs between
// other stages. Conditions run under the lock, on whichever thread releases
// it: they must only read what the lock guards (or atomics) and be cheap.
// Waiters are few (a stage thread, a checkpointer, callers of a blocking
// Submit).

#ifndef WARMLEDGER_LEDGER_MONITOR_H_
#define WARMLEDGER_LEDGER_MONITOR_H_

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/time/time.h"

namespace warmledger {

class Monitor {
 public:
  static constexpr absl::Duration kTimeoutMax = absl::Hours(24 * 365);

  Monitor() = default;
  Monitor(const Monitor&) = delete;
  Monitor& operator=(const Monitor&) = delete;

  class Lock {
   public:
    explicit Lock(Monitor* monitor) : monitor_(monitor), lock_(monitor->mu_) {}
    ~Lock() {
      monitor_->WakeReady();
      lock_.unlock();
    }
    Lock(const Lock&) = delete;
    Lock& operator=(const Lock&) = delete;

    // Releases the lock until `condition()` holds (checked under the lock).
    template <typename Condition>
    void Await(Condition condition) {
      monitor_->Wait(lock_, condition, std::nullopt);
    }

    // Like Await, giving up after `timeout`: returns whether `condition()`
    // holds. A timeout beyond kTimeoutMax (absl::InfiniteDuration(), say)
    // waits kTimeoutMax, so that the deadline stays within the clock's range.
    template <typename Condition>
    bool AwaitWithTimeout(Condition condition, absl::Duration timeout) {
      return monitor_->Wait(lock_, condition,
                            std::chrono::steady_clock::now() +
                                absl::ToChronoNanoseconds(std::min(timeout, kTimeoutMax)));
    }

   private:
    Monitor* monitor_;
    std::unique_lock<std::mutex> lock_;
  };

 private:
  struct Waiter {
    absl::FunctionRef<bool()> condition;
    std::condition_variable wake;
  };

  template <typename Condition>
  bool Wait(std::unique_lock<std::mutex>& lock, Condition& condition,
            std::optional<std::chrono::steady_clock::time_point> deadline) {
    if (condition()) return true;
    // Whoever releases the lock next may have made `condition` true.
    WakeReady();
    Waiter self{condition, {}};
    waiters_.push_back(&self);
    bool met = false;
    while (!(met = condition())) {
      if (!deadline) {
        self.wake.wait(lock);
      } else if (self.wake.wait_until(lock, *deadline) == std::cv_status::timeout) {
        met = condition();
        break;
      }
    }
    waiters_.erase(std::find(waiters_.begin(), waiters_.end(), &self));
    return met;
  }

  // With the lock held: wakes the waiters whose condition now holds. Under
  // the lock, so that a waiter cannot return (and free its Waiter) before.
  void WakeReady() {
    for (Waiter* w : waiters_) {
      if (w->condition()) w->wake.notify_one();
    }
  }

  std::mutex mu_;
  std::vector<Waiter*> waiters_;  // guarded by mu_
};

// A one-shot event: Wait() returns once Notify() has been called. Notify
// wakes the waiter while still holding the lock, so the waiter may destroy
// the Notification as soon as Wait returns.
class Notification {
 public:
  void Notify() {
    std::lock_guard<std::mutex> lock(mu_);
    notified_ = true;
    notified_cv_.notify_all();
  }
  void Wait() {
    std::unique_lock<std::mutex> lock(mu_);
    notified_cv_.wait(lock, [this] { return notified_; });
  }

 private:
  std::mutex mu_;
  std::condition_variable notified_cv_;
  bool notified_ = false;
};

}  // namespace warmledger

#endif  // WARMLEDGER_LEDGER_MONITOR_H_

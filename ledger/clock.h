// The clock the sequencer stamps entries with. Injected so that tests control
// time; the ledger itself keeps entry times non-decreasing whatever it says.
#ifndef WARMLEDGER_LEDGER_CLOCK_H_
#define WARMLEDGER_LEDGER_CLOCK_H_

#include <atomic>
#include <cstdint>

namespace warmledger {

class Clock {
 public:
  virtual ~Clock() = default;
  // Microseconds since the Unix epoch. Must be thread-safe.
  virtual int64_t NowMicros() = 0;
};

// Wall-clock time (CLOCK_REALTIME).
class SystemClock final : public Clock {
 public:
  int64_t NowMicros() override;
  static SystemClock* Default();
};

// A clock that moves only when told to. Thread-safe.
class ManualClock final : public Clock {
 public:
  explicit ManualClock(int64_t start_us = 1'700'000'000'000'000) : now_us_(start_us) {}
  int64_t NowMicros() override { return now_us_.load(std::memory_order_relaxed); }
  void AdvanceMicros(int64_t delta_us) { now_us_.fetch_add(delta_us, std::memory_order_relaxed); }
  void SetMicros(int64_t now_us) { now_us_.store(now_us, std::memory_order_relaxed); }

 private:
  std::atomic<int64_t> now_us_;
};

}  // namespace warmledger

#endif  // WARMLEDGER_LEDGER_CLOCK_H_

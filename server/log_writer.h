// Writes the server's structured log lines to a file descriptor in bulk.

#ifndef WARMLEDGER_SERVER_LOG_WRITER_H_
#define WARMLEDGER_SERVER_LOG_WRITER_H_

#include <cstddef>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/time/time.h"
#include "ledger/monitor.h"

namespace warmledger::server {

// Collects whole lines and writes them with one write(2) per flush instead
// of one per line: a flushing thread writes what has gathered every
// `interval`, or sooner once `soon_bytes` have gathered. A caller that finds
// `block_bytes` already waiting (the descriptor is not keeping up) writes
// them itself, so memory stays bounded. Lines are never split or reordered.
// Flush() and the destructor write everything gathered so far; a process
// killed outright loses at most one interval of lines.
class LogWriter {
 public:
  static constexpr absl::Duration kInterval = absl::Milliseconds(100);
  static constexpr size_t kSoonBytes = 64 << 10;
  static constexpr size_t kBlockBytes = 8 << 20;

  explicit LogWriter(int fd, absl::Duration interval = kInterval, size_t soon_bytes = kSoonBytes,
                     size_t block_bytes = kBlockBytes);
  ~LogWriter();
  LogWriter(const LogWriter&) = delete;
  LogWriter& operator=(const LogWriter&) = delete;

  // Appends `line` and a newline.
  void Write(std::string_view line);
  // Writes everything gathered so far before returning.
  void Flush();

 private:
  void Run();

  const int fd_;
  const absl::Duration interval_;
  const size_t soon_bytes_;
  const size_t block_bytes_;
  Monitor mu_;
  std::string pending_ ABSL_GUARDED_BY(mu_);
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  // Held while taking `pending_` and writing it, so that flushes from
  // different threads reach the descriptor in the order the lines came.
  std::mutex write_mu_;
  std::thread thread_;  // last: starts once everything above is initialised
};

}  // namespace warmledger::server

#endif  // WARMLEDGER_SERVER_LOG_WRITER_H_

#include "server/log_writer.h"

#include <unistd.h>

#include <cerrno>
#include <string>

namespace warmledger::server {
namespace {

// Writes all of `data` (retrying short and interrupted writes); gives up
// silently on any other error, since a log has nowhere to report its own.
void WriteAll(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return;
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
}

}  // namespace

LogWriter::LogWriter(int fd, absl::Duration interval, size_t soon_bytes, size_t block_bytes)
    : fd_(fd), interval_(interval), soon_bytes_(soon_bytes), block_bytes_(block_bytes),
      thread_([this] { Run(); }) {}

LogWriter::~LogWriter() {
  {
    Monitor::Lock lock(&mu_);
    stop_ = true;
  }
  thread_.join();
  Flush();
}

void LogWriter::Write(std::string_view line) {
  bool blocked;
  {
    Monitor::Lock lock(&mu_);
    pending_.append(line);
    pending_.push_back('\n');
    blocked = pending_.size() >= block_bytes_;
  }
  if (blocked) Flush();
}

void LogWriter::Flush() {
  std::lock_guard<std::mutex> write_lock(write_mu_);
  std::string data;
  {
    Monitor::Lock lock(&mu_);
    data.swap(pending_);
  }
  WriteAll(fd_, data);
}

void LogWriter::Run() {
  for (;;) {
    bool stop;
    {
      Monitor::Lock lock(&mu_);
      lock.AwaitWithTimeout([this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return stop_ || pending_.size() >= soon_bytes_;
      }, interval_);
      stop = stop_;
    }
    if (stop) return;
    Flush();
  }
}

}  // namespace warmledger::server

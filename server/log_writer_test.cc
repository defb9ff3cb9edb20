#include "server/log_writer.h"
#include <unistd.h>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <set>
#include <string>
#include <thread>
#include <vector>
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace warmledger::server {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

// A log file in the test's temporary folder, read back whole.
class LogFile {
 public:
  LogFile() {
    std::string pattern = ::testing::TempDir() + "log_writer_XXXXXX";
    fd_ = mkstemp(pattern.data());
    EXPECT_GE(fd_, 0) << "cannot create " << pattern;
    path_ = pattern;
  }
  ~LogFile() {
    close(fd_);
    unlink(path_.c_str());
  }
  int fd() const { return fd_; }

  std::string Text() const {
    std::string text;
    char buf[4096];
    for (off_t at = 0;;) {
      ssize_t n = pread(fd_, buf, sizeof buf, at);
      if (n <= 0) return text;
      text.append(buf, static_cast<size_t>(n));
      at += n;
    }
  }

  std::vector<std::string> Lines() const {
    return absl::StrSplit(Text(), '\n', absl::SkipEmpty());
  }

  // Waits (up to a generous bound, for a loaded machine) until the file
  // holds `lines` lines; returns what it holds then.
  std::vector<std::string> AwaitLines(size_t lines) const {
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    std::vector<std::string> got = Lines();
    while (got.size() < lines && std::chrono::steady_clock::now() < give_up) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
      got = Lines();
    }
    return got;
  }

 private:
  int fd_ = -1;
  std::string path_;
};

constexpr absl::Duration kNever = absl::Hours(1);

TEST(LogWriterTest, GathersLinesUntilFlushedThenWritesThemInOrder) {
  LogFile file;
  LogWriter log(file.fd(), kNever);
  log.Write("{\"rpc\":\"Donate\"}");
  log.Write("{\"rpc\":\"GetHead\"}");
  EXPECT_THAT(file.Lines(), IsEmpty());
  log.Flush();
  EXPECT_EQ(file.Text(), "{\"rpc\":\"Donate\"}\n{\"rpc\":\"GetHead\"}\n");
}

TEST(LogWriterTest, WritesWhatHasGatheredEveryIntervalWithoutBeingAsked) {
  LogFile file;
  LogWriter log(file.fd(), absl::Milliseconds(10));
  log.Write("first");
  EXPECT_THAT(file.AwaitLines(1), ElementsAre("first"));
  log.Write("second");
  EXPECT_THAT(file.AwaitLines(2), ElementsAre("first", "second"));
}

TEST(LogWriterTest, WritesSoonOnceEnoughHasGathered) {
  LogFile file;
  LogWriter log(file.fd(), kNever, /*soon_bytes=*/100);
  const std::string line(60, 'a');
  log.Write(line);
  log.Write(line);  // 122 bytes gathered: the flushing thread wakes
  EXPECT_THAT(file.AwaitLines(2), ElementsAre(line, line));
}

TEST(LogWriterTest, CallerWritesItselfWhenTooMuchIsWaiting) {
  LogFile file;
  LogWriter log(file.fd(), kNever, /*soon_bytes=*/1 << 30, /*block_bytes=*/100);
  const std::string line(60, 'b');
  log.Write(line);
  EXPECT_THAT(file.Lines(), IsEmpty());
  log.Write(line);  // 122 bytes waiting: written before Write returns
  EXPECT_THAT(file.Lines(), ElementsAre(line, line));
}

TEST(LogWriterTest, DestructorWritesEverythingGathered) {
  LogFile file;
  {
    LogWriter log(file.fd(), kNever);
    log.Write("last words");
  }
  EXPECT_EQ(file.Text(), "last words\n");
}

TEST(LogWriterTest, LinesFromManyThreadsArriveWholeAndOnceEach) {
  LogFile file;
  constexpr int kThreads = 8;
  constexpr int kLines = 2000;
  {
    // Small thresholds so that interval, soon and blocking flushes all run
    // while the threads write.
    LogWriter log(file.fd(), absl::Milliseconds(1), /*soon_bytes=*/512, /*block_bytes=*/4096);
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&log, t] {
        for (int i = 0; i < kLines; ++i) log.Write(absl::StrCat("{\"t\":", t, ",\"i\":", i, "}"));
      });
    }
    for (std::thread& t : threads) t.join();
  }
  std::vector<std::string> lines = file.Lines();
  ASSERT_EQ(lines.size(), size_t{kThreads * kLines});
  std::set<std::string> distinct(lines.begin(), lines.end());
  EXPECT_EQ(distinct.size(), lines.size());
  // Each thread's lines keep their order.
  std::vector<int> next(kThreads, 0);
  for (const std::string& line : lines) {
    int t = -1, i = -1;
    ASSERT_EQ(std::sscanf(line.c_str(), "{\"t\":%d,\"i\":%d}", &t, &i), 2) << line;
    ASSERT_TRUE(t >= 0 && t < kThreads) << line;
    EXPECT_EQ(i, next[t]++) << line;
  }
}

}  // namespace
}  // namespace warmledger::server

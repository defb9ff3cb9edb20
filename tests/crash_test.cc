// Kills a writing process at random points and checks that every donation it
// was told is durable survives, and that the ledger reopens whole.
//
// Each round spawns tests/crash_writer.cc on the same ledger folder with a
// pipe for its stdout, reads the client ids it acknowledges, and after a
// random number of them (1–500; the randomness is in how many lines it waits
// for, never in sleeps) kills it with SIGKILL. It then opens the ledger itself:
//
//   - VerifyChain() is OK and RebuildStateDigest() == StateDigest();
//   - the donations of the round are a gap-free prefix don-<start>..don-<m-1>
//     in seq order, holding every acknowledged id and at most one batch (64)
//     more: what was in flight when the writer died;
//   - resubmitting every acknowledged donation gives duplicate = true with
//     the seq where it was found, and writes nothing;
//   - conservation: the fund holds exactly what the donor gave, and all lots.
//
// The ledger is closed before the next round, which continues on the same
// folder from a higher start index.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <system_error>
#include <vector>

#include "absl/status/status.h"
#include "gtest/gtest.h"
#include "ledger/ledger.h"
#include "ledger/limits.h"
#include "ledger/temp_dir_testing.h"
#include "ledger/types.h"
#include "tests/crash_donation.h"

namespace warmledger {
namespace {

#ifdef WARMLEDGER_SANITIZED
constexpr int kRounds = 6;
constexpr int kPollTimeoutMs = 180'000;
#else
constexpr int kRounds = 20;
constexpr int kPollTimeoutMs = 60'000;
#endif
constexpr int64_t kAckedBeforeKillMax = 500;
constexpr uint64_t kWriterBatchOpsMax = 64;  // crash_writer's batch bound
constexpr uint64_t kRoundIndexStride = 1'000'000;

using crash::CrashDonation;
using crash::kDonor;
using crash::kFund;

std::optional<uint64_t> DonationIndex(const std::string& client_id) {
  const std::string prefix = "don-";
  if (client_id.compare(0, prefix.size(), prefix) != 0 || client_id.size() == prefix.size()) {
    return std::nullopt;
  }
  uint64_t n = 0;
  for (size_t i = prefix.size(); i < client_id.size(); ++i) {
    const char c = client_id[i];
    if (c < '0' || c > '9') return std::nullopt;
    n = n * 10 + static_cast<uint64_t>(c - '0');
  }
  return n;
}

// A crash_writer child with its stdout on a pipe.
class Writer {
 public:
  Writer(const std::string& dir, uint64_t start_index) {
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) {
      ADD_FAILURE() << "pipe2: " << std::strerror(errno);
      return;
    }
    const std::string start = std::to_string(start_index);
    pid_ = fork();
    if (pid_ == 0) {
      // Child: only async-signal-safe calls until exec.
      dup2(fds[1], STDOUT_FILENO);  // the duplicate does not inherit O_CLOEXEC
      const int null_fd = open("/dev/null", O_RDONLY);
      if (null_fd >= 0) dup2(null_fd, STDIN_FILENO);
      execl(WARMLEDGER_CRASH_WRITER, "crash_writer", dir.c_str(), start.c_str(), static_cast<char*>(nullptr));
      _exit(127);
    }
    close(fds[1]);
    if (pid_ < 0) {
      ADD_FAILURE() << "fork: " << std::strerror(errno);
      close(fds[0]);
      return;
    }
    read_fd_ = fds[0];
  }

  ~Writer() {
    KillAndReap();
    if (read_fd_ >= 0) close(read_fd_);
  }

  bool started() const { return pid_ > 0 && read_fd_ >= 0; }

  // Reads until `count` complete lines have arrived, the pipe ends, or a
  // read waits longer than the timeout. Returns false on EOF or timeout.
  bool ReadLines(size_t count, std::vector<std::string>* lines, std::string* why) {
    while (lines->size() < count) {
      pollfd p{read_fd_, POLLIN, 0};
      const int ready = poll(&p, 1, kPollTimeoutMs);
      if (ready < 0 && errno == EINTR) continue;
      if (ready == 0) {
        *why = "no line from crash_writer for " + std::to_string(kPollTimeoutMs) + " ms";
        return false;
      }
      if (!ReadSome(lines)) {
        *why = "crash_writer closed its stdout";
        return false;
      }
    }
    return true;
  }

  // Reads what is left in the pipe after the writer died.
  void Drain(std::vector<std::string>* lines) {
    while (ReadSome(lines)) {
    }
  }

  // SIGKILL and wait; returns the wait status (or -1 if there is no child).
  int KillAndReap() {
    if (pid_ <= 0) return -1;
    kill(pid_, SIGKILL);
    int status = 0;
    while (waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
    pid_ = -1;
    return status;
  }

 private:
  // One read(); false at EOF or on error.
  bool ReadSome(std::vector<std::string>* lines) {
    char buffer[4096];
    ssize_t n = 0;
    do {
      n = read(read_fd_, buffer, sizeof(buffer));
    } while (n < 0 && errno == EINTR);
    if (n <= 0) return false;
    partial_.append(buffer, static_cast<size_t>(n));
    size_t begin = 0;
    for (size_t end = partial_.find('\n'); end != std::string::npos; end = partial_.find('\n', begin)) {
      lines->push_back(partial_.substr(begin, end - begin));
      begin = end + 1;
    }
    partial_.erase(0, begin);  // a torn last line is not an acknowledgement
    return true;
  }

  pid_t pid_ = -1;
  int read_fd_ = -1;
  std::string partial_;
};

std::unique_ptr<Ledger> OpenLedger(const std::string& path) {
  LedgerOptions options;
  options.path = path;
  auto ledger = Ledger::Open(options);
  EXPECT_TRUE(ledger.ok()) << ledger.status();
  return ledger.ok() ? std::move(*ledger) : nullptr;
}

int64_t BalanceOf(const Ledger& ledger, const std::string& account, const std::string& asset) {
  auto info = ledger.GetAccount(account);
  EXPECT_TRUE(info.ok()) << account << ": " << info.status();
  if (!info.ok()) return 0;
  int64_t sum = 0;
  for (const Balance& b : info->balances) {
    if (b.asset == asset) sum += b.amount;
  }
  return sum;
}

TEST(CrashTest, EveryAcknowledgedDonationSurvivesSigkillAndTheLedgerReopensWhole) {
  TempDir dir;
  const std::string path = dir.path() + "/ledger";
  std::mt19937_64 rng(20260099);  // fixed: the kill points are reproducible
  int64_t total_acked = 0;
  uint64_t donations_before = 0;  // committed donations of earlier rounds

  for (int round = 0; round < kRounds; ++round) {
    const uint64_t start = 1 + static_cast<uint64_t>(round) * kRoundIndexStride;
    const size_t kill_after = 1 + static_cast<size_t>(rng() % kAckedBeforeKillMax);
    SCOPED_TRACE("round " + std::to_string(round) + ", start index " + std::to_string(start) +
                 ", kill after " + std::to_string(kill_after) + " acknowledgements");

    std::vector<std::string> lines;
    {
      Writer writer(path, start);
      ASSERT_TRUE(writer.started());
      std::string why;
      const bool reached = writer.ReadLines(kill_after, &lines, &why);
      const int status = writer.KillAndReap();
      ASSERT_TRUE(reached) << why << " after " << lines.size() << " lines; wait status " << status
                           << (WIFEXITED(status) ? " exit " + std::to_string(WEXITSTATUS(status)) : "");
      ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
          << "crash_writer ended on its own, wait status " << status;
      writer.Drain(&lines);  // lines already in the pipe were acknowledged too
    }

    // The acknowledged ids are start, start+1, ... in order.
    const uint64_t acked = lines.size();
    for (uint64_t i = 0; i < acked; ++i) {
      ASSERT_EQ(lines[i], "don-" + std::to_string(start + i)) << "line " << i;
    }
    total_acked += static_cast<int64_t>(acked);

    std::unique_ptr<Ledger> ledger = OpenLedger(path);
    ASSERT_NE(ledger, nullptr);
    const absl::Status chain = ledger->VerifyChain();
    ASSERT_TRUE(chain.ok()) << chain;
    auto rebuilt = ledger->RebuildStateDigest();
    ASSERT_TRUE(rebuilt.ok()) << rebuilt.status();
    EXPECT_EQ(*rebuilt, ledger->StateDigest());

    // Scan every entry: set-up first, then the donations of each round as
    // gap-free runs in order.
    const LedgerHead head = ledger->Head();
    std::map<uint64_t, uint64_t> seq_of_index;  // donation index -> seq
    std::set<std::string> client_ids;
    int64_t donated = 0;
    uint64_t previous_index = 0;
    for (uint64_t from = 1; from <= head.seq;) {
      auto page = ledger->ReadEntries(from, 1000);
      ASSERT_TRUE(page.ok()) << page.status();
      ASSERT_FALSE(page->empty()) << "no entries from seq " << from << " below head " << head.seq;
      for (const StoredEntry& stored : *page) {
        const Entry& e = stored.entry;
        ASSERT_EQ(e.seq, from);
        EXPECT_TRUE(client_ids.insert(e.client_id).second) << "client id twice: " << e.client_id;
        if (e.seq <= 2) {
          EXPECT_EQ(e.type(), EntryType::kOpenAccount) << "seq " << e.seq;
        } else {
          const std::optional<uint64_t> index = DonationIndex(e.client_id);
          ASSERT_TRUE(index.has_value()) << "seq " << e.seq << " client id " << e.client_id;
          EXPECT_TRUE(e.body == CrashDonation(*index).body) << e.client_id;
          const bool continues = *index == previous_index + 1;
          const bool starts_round = (*index - 1) % kRoundIndexStride == 0 && *index > previous_index;
          EXPECT_TRUE(continues || starts_round)
              << "seq " << e.seq << " holds " << e.client_id << " after don-" << previous_index;
          previous_index = *index;
          seq_of_index[*index] = e.seq;
          donated += std::get<DonationOp>(e.body).amount;
        }
        ++from;
      }
    }

    // This round's donations: every acknowledged one, at most one batch more.
    uint64_t committed = 0;
    while (seq_of_index.count(start + committed) > 0) ++committed;
    EXPECT_GE(committed, acked) << "acknowledged donations are missing";
    EXPECT_LE(committed, acked + kWriterBatchOpsMax) << "more donations than one batch in flight";
    EXPECT_EQ(seq_of_index.size(), donations_before + committed) << "donations outside the runs";
    donations_before = seq_of_index.size();
    EXPECT_EQ(head.seq, 2 + seq_of_index.size());

    // Conservation: the fund holds every gift, the donor gave it.
    EXPECT_EQ(BalanceOf(*ledger, kFund, "CNY"), donated);
    EXPECT_EQ(BalanceOf(*ledger, kDonor, "CNY"), -donated);

    // A retry of each acknowledged donation is a duplicate of what is there.
    if (acked > 0) {
      std::vector<Operation> retries;
      for (uint64_t i = 0; i < acked; ++i) retries.push_back(CrashDonation(start + i));
      const std::vector<OpResult> results = ledger->Submit(retries);
      ASSERT_EQ(results.size(), retries.size());
      for (uint64_t i = 0; i < acked; ++i) {
        const OpResult& r = results[i];
        EXPECT_TRUE(r.status.ok() && r.duplicate) << retries[i].client_id << ": " << r.status;
        EXPECT_EQ(r.seq, seq_of_index[start + i]) << retries[i].client_id;
      }
      EXPECT_EQ(ledger->Head().seq, head.seq) << "retries must write nothing";
      const uint64_t last = seq_of_index[start + acked - 1];
      auto lot = ledger->GetLot(last);
      ASSERT_TRUE(lot.ok()) << lot.status();
      EXPECT_EQ(lot->amount, std::get<DonationOp>(CrashDonation(start + acked - 1).body).amount);
      EXPECT_EQ(lot->to, kFund);
    }
    ledger.reset();  // the next writer needs the folder
    if (::testing::Test::HasFailure()) return;
  }
  std::cout << kRounds << " rounds, " << total_acked << " acknowledged donations, "
            << donations_before << " committed\n";
}

}  // namespace
}  // namespace warmledger

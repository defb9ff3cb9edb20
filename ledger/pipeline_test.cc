// The pipeline's promises to readers, checked with fsyncs held back: a
// reader never sees what is not durable, a trace waits only for the entries
// it shows, and a backup taken while writes continue holds exactly the
// entries it reports.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "ledger/ledger.h"
#include "ledger/ledger_testing.h"
#include "ledger/limits.h"
#include "ledger/types.h"
#include "rocksdb/env.h"
#include "rocksdb/file_system.h"

namespace warmledger {
namespace {

using namespace std::chrono_literals;

// A file system whose fsyncs can be held back: while the gate is closed,
// every Sync or Fsync of a file opened for writing waits until it opens.
class GatedFileSystem : public rocksdb::FileSystemWrapper {
 public:
  GatedFileSystem() : FileSystemWrapper(rocksdb::FileSystem::Default()) {}

  const char* Name() const override { return "GatedFileSystem"; }

  rocksdb::IOStatus NewWritableFile(const std::string& name, const rocksdb::FileOptions& options,
                                    std::unique_ptr<rocksdb::FSWritableFile>* result,
                                    rocksdb::IODebugContext* dbg) override {
    std::unique_ptr<rocksdb::FSWritableFile> file;
    rocksdb::IOStatus s = target()->NewWritableFile(name, options, &file, dbg);
    if (s.ok()) *result = std::make_unique<GatedFile>(std::move(file), this);
    return s;
  }

  void Close() {
    std::lock_guard lock(mu_);
    closed_ = true;
  }

  void Open() {
    {
      std::lock_guard lock(mu_);
      closed_ = false;
    }
    cv_.notify_all();
  }

  // True once some fsync is held at the gate.
  bool AwaitHeld(std::chrono::milliseconds timeout) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, timeout, [this] { return held_ > 0; });
  }

 private:
  class GatedFile : public rocksdb::FSWritableFileOwnerWrapper {
   public:
    GatedFile(std::unique_ptr<rocksdb::FSWritableFile> file, GatedFileSystem* fs)
        : FSWritableFileOwnerWrapper(std::move(file)), fs_(fs) {}

    rocksdb::IOStatus Sync(const rocksdb::IOOptions& options,
                           rocksdb::IODebugContext* dbg) override {
      fs_->Pass();
      return FSWritableFileOwnerWrapper::Sync(options, dbg);
    }
    rocksdb::IOStatus Fsync(const rocksdb::IOOptions& options,
                            rocksdb::IODebugContext* dbg) override {
      fs_->Pass();
      return FSWritableFileOwnerWrapper::Fsync(options, dbg);
    }

   private:
    GatedFileSystem* const fs_;
  };

  void Pass() {
    std::unique_lock lock(mu_);
    ++held_;
    cv_.notify_all();
    cv_.wait(lock, [this] { return !closed_; });
    --held_;
  }

  std::mutex mu_;
  std::condition_variable cv_;
  bool closed_ = false;
  int held_ = 0;
};

// Opens the gate when it goes out of scope: declared after the futures of a
// test, it lets their threads finish before the futures wait for them, even
// when an assertion returns early.
struct OpenOnExit {
  GatedFileSystem* fs;
  ~OpenOnExit() { fs->Open(); }
};

class PipelineTest : public LedgerTest {
 protected:
  void SetUp() override {
    fs_ = std::make_shared<GatedFileSystem>();
    env_holder_ = rocksdb::NewCompositeEnv(fs_);
    env_ = env_holder_.get();
    LedgerTest::SetUp();
  }

  void TearDown() override {
    fs_->Open();  // whatever a failed test left waiting finishes
    LedgerTest::TearDown();
  }

  // Submits `body` while fsyncs are held back: it is applied but not
  // durable when this returns. The future completes once it is durable.
  std::future<std::vector<OpResult>> SubmitHeld(OpBody body) {
    fs_->Close();
    auto done = std::make_shared<std::promise<std::vector<OpResult>>>();
    std::future<std::vector<OpResult>> result = done->get_future();
    std::vector<Operation> ops;
    ops.push_back(Op(std::move(body)));
    ledger_->SubmitAsync(std::move(ops),
                         [done](std::vector<OpResult> results) { done->set_value(results); });
    EXPECT_TRUE(fs_->AwaitHeld(10s)) << "the sync stage never reached its fsync";
    return result;
  }

  std::shared_ptr<GatedFileSystem> fs_;
  std::unique_ptr<rocksdb::Env> env_holder_;
};

TEST_F(PipelineTest, TraceOfASettledLotDoesNotWaitForALaterWrite) {
  OpenStandardAccounts();
  const uint64_t lot = Donate(kDonor, kFund, 10'000);
  const uint64_t allocation = Allocate(kFund, kProject, 4'000);

  std::future<std::vector<OpResult>> pending = SubmitHeld(DonationBody(kDonor2, kFund2, 500));
  // Reads of what the held donation changed wait for its fsync...
  std::future<absl::StatusOr<AccountInfo>> fund2 =
      std::async(std::launch::async, [this] { return ledger_->GetAccount(kFund2); });
  // ...but a trace of a lot it did not touch, and the backward trace of an
  // entry before it, answer now.
  std::future<absl::StatusOr<LotTrace>> trace =
      std::async(std::launch::async, [this, lot] { return ledger_->TraceLot(lot); });
  std::future<absl::StatusOr<EntryTracePage>> backward = std::async(
      std::launch::async, [this, allocation] { return ledger_->TraceEntry(allocation, 0, 10); });
  OpenOnExit open_on_exit{fs_.get()};
  ASSERT_EQ(trace.wait_for(10s), std::future_status::ready);
  ASSERT_EQ(backward.wait_for(10s), std::future_status::ready);
  EXPECT_EQ(pending.wait_for(100ms), std::future_status::timeout);
  EXPECT_EQ(fund2.wait_for(0ms), std::future_status::timeout)
      << "a read returned state that is not durable";

  absl::StatusOr<LotTrace> t = trace.get();
  ASSERT_TRUE(t.ok()) << t.status();
  ASSERT_EQ(t->hops.size(), 2u);
  EXPECT_EQ(t->hops[1].seq, allocation);
  absl::StatusOr<EntryTracePage> b = backward.get();
  ASSERT_TRUE(b.ok()) << b.status();
  ASSERT_EQ(b->sources.size(), 1u);
  EXPECT_EQ(b->sources[0].lot, lot);

  fs_->Open();
  ASSERT_EQ(pending.wait_for(10s), std::future_status::ready);
  const std::vector<OpResult> results = pending.get();
  ASSERT_EQ(results.size(), 1u);
  ASSERT_TRUE(results[0].status.ok()) << results[0].status;
  absl::StatusOr<AccountInfo> info = fund2.get();
  ASSERT_TRUE(info.ok()) << info.status();
  ASSERT_EQ(info->balances.size(), 1u);
  EXPECT_EQ(info->balances[0].amount, 500);
}

TEST_F(PipelineTest, TraceOfALotMovedByAPendingEntryWaitsForIt) {
  OpenStandardAccounts();
  const uint64_t lot = Donate(kDonor, kFund, 10'000);

  std::future<std::vector<OpResult>> pending =
      SubmitHeld(AllocationBody(kFund, kProject, 2'500));
  std::future<absl::StatusOr<LotTrace>> trace =
      std::async(std::launch::async, [this, lot] { return ledger_->TraceLot(lot); });
  OpenOnExit open_on_exit{fs_.get()};
  EXPECT_EQ(trace.wait_for(200ms), std::future_status::timeout)
      << "a trace showed a move that is not durable";

  fs_->Open();
  ASSERT_EQ(pending.wait_for(10s), std::future_status::ready);
  const std::vector<OpResult> results = pending.get();
  ASSERT_TRUE(results.at(0).status.ok()) << results[0].status;
  ASSERT_EQ(trace.wait_for(10s), std::future_status::ready);
  absl::StatusOr<LotTrace> t = trace.get();
  ASSERT_TRUE(t.ok()) << t.status();
  ASSERT_EQ(t->hops.size(), 2u);
  EXPECT_EQ(t->hops[1].seq, results[0].seq);
  EXPECT_EQ(t->hops[1].amount, 2'500);
}

// Backups cut while another thread keeps writing: each copy opens at exactly
// the head Backup reported, with a valid chain.
TEST_F(LedgerTest, BackupWhileWritesContinueHoldsExactlyItsEntries) {
  OpenStandardAccounts();
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> written{0};
  std::thread writer([&] {
    uint64_t n = 0;
    while (!stop.load()) {
      std::vector<Operation> ops;
      for (int i = 0; i < 50; ++i) {
        ops.push_back(Operation{"bk-" + std::to_string(++n), false,
                                DonationBody(kDonor, kFund, 100)});
      }
      for (const OpResult& r : ledger_->Submit(std::move(ops))) {
        EXPECT_TRUE(r.status.ok()) << r.status;
      }
      written.fetch_add(50);
    }
  });
  for (int i = 0; i < 4; ++i) {
    while (written.load() < 200u * (i + 1)) std::this_thread::yield();
    const std::string copy = dir_ + "-backup-" + std::to_string(i);
    absl::StatusOr<uint64_t> seq = ledger_->Backup(copy);
    ASSERT_TRUE(seq.ok()) << seq.status();
    {
      absl::StatusOr<std::unique_ptr<Ledger>> opened = Ledger::Open(LedgerOptions{.path = copy});
      ASSERT_TRUE(opened.ok()) << opened.status();
      EXPECT_EQ((*opened)->Head().seq, *seq);
      EXPECT_TRUE((*opened)->VerifyChain().ok());
    }
    std::error_code ignored;
    std::filesystem::remove_all(copy, ignored);
  }
  stop.store(true);
  writer.join();
}

// A trace takes most moves from the derived state instead of reading their
// entries; every hop must still be exactly what the entries say. Reversals
// return slices of a lot to a fund beside slices of it that never left, so
// that later outflows take one lot in several slices of a posting, which
// the state leaves to the entry.
TEST_F(LedgerTest, TraceHopsAreWhatTheEntriesSay) {
  OpenStandardAccounts();
  const std::string person = "recipient/in-c001";
  OpenAccountOp open = OpenBody(person, AccountKind::kRecipient);
  open.category = "dibao";
  open.community = "c001";
  MustRun(open);
  std::vector<uint64_t> lots;
  for (int i = 0; i < 12; ++i) {
    lots.push_back(Donate(i % 2 ? kDonor : kDonor2, i % 3 ? kFund : kFund2, 100 + 10 * i));
  }
  // A fund that got one lot twice, with another lot between: taking all it
  // holds takes that lot in two slices of one posting.
  lots.push_back(Donate(kDonor, kRestrictedFund, 1'000));
  Allocate(kFund, kProject2, 30);
  lots.push_back(Donate(kDonor2, kProject2, 70));
  Allocate(kFund, kProject2, 45);
  Disburse(kProject2, kRecipient, BalanceOf(kProject2));
  const uint64_t allocation = Allocate(kFund, kProject, 250);
  Reverse(allocation);
  Allocate(kFund, kProject, 400);
  Disburse(kProject, kRecipient, 60);
  Disburse(kFund2, kSupplier, 150);
  Disburse(kProject, kRecipient2, 300);
  const uint64_t paid = Disburse(kFund, kExpense, 90);
  Reverse(paid);
  Allocate(kFund, kFund2, 200);
  Disburse(kFund2, kRecipient, 275);
  Disburse(kFund, kRecipient2, 5);
  Disburse(kFund, person, 35);
  Disburse(kProject, person, 20);

  auto check = [&](const char* when) {
    const std::vector<StoredEntry> entries = AllEntries();
    for (uint64_t lot : lots) {
      std::vector<TraceHop> want;
      for (const StoredEntry& e : entries) {
        if (e.entry.seq < lot) continue;
        for (const Posting& p : e.entry.postings) {
          int64_t amount = 0;
          for (const Slice& s : p.slices) {
            if (s.lot == lot) amount += s.amount;
          }
          if (e.entry.seq == lot) amount = p.amount;  // the donation itself
          if (amount == 0) continue;
          want.push_back({e.entry.seq, e.entry.time_us, e.entry.type(), p.from, p.to, amount});
        }
      }
      const LotTrace got = TraceOf(lot);
      ASSERT_EQ(got.hops.size(), want.size()) << when << ": lot " << lot;
      for (size_t i = 0; i < want.size(); ++i) {
        SCOPED_TRACE(testing::Message() << when << ": lot " << lot << ", hop " << i);
        EXPECT_EQ(got.hops[i].seq, want[i].seq);
        EXPECT_EQ(got.hops[i].time_us, want[i].time_us);
        EXPECT_EQ(got.hops[i].type, want[i].type);
        EXPECT_EQ(got.hops[i].from, want[i].from);
        EXPECT_EQ(got.hops[i].to, want[i].to);
        EXPECT_EQ(got.hops[i].amount, want[i].amount);
        // A hop to a person also says which group it reached.
        absl::StatusOr<AccountInfo> to = ledger_->GetAccount(want[i].to);
        ASSERT_TRUE(to.ok()) << to.status();
        EXPECT_EQ(got.hops[i].category, to->kind == AccountKind::kRecipient ? to->category : "");
        EXPECT_EQ(got.hops[i].community, to->kind == AccountKind::kRecipient ? to->community : "");
      }
    }
  };
  check("as written");
  Reopen();  // the replay rebuilds the same moves
  check("after reopening");
}

// With fsyncs held back the pipeline cannot drain: the write queue fills,
// and a batch that would take it past kQueueOpsMax is refused at once, whole,
// with kResourceExhausted, while everything accepted before it commits once
// the disk answers again.
TEST_F(PipelineTest, AFullWriteQueueRefusesABatchWholeAndKeepsWhatItAccepted) {
  OpenStandardAccounts();
  const uint64_t head = ledger_->Head().seq;
  fs_->Close();
  OpenOnExit open_on_exit{fs_.get()};
  // Shared with the callbacks, which may outlive this body if it fails.
  struct Answers {
    std::atomic<size_t> batches{0};
    std::atomic<size_t> ops_ok{0};
  };
  auto answers = std::make_shared<Answers>();
  const std::thread::id submitter = std::this_thread::get_id();
  size_t accepted = 0;
  std::vector<OpResult> refused;
  // Groups in flight and the queue together hold fewer than this.
  const size_t batches_max =
      (kGroupsInFlightMax * kCommitOpsMax + kQueueOpsMax) / kBatchOpsMax + 2;
  for (size_t b = 0; b < batches_max && refused.empty(); ++b) {
    std::vector<Operation> ops;
    for (size_t i = 0; i < kBatchOpsMax; ++i) ops.push_back(Op(DonationBody(kDonor, kFund, 1)));
    // A refusal is answered at once, on this thread; an accepted batch later,
    // on the pipeline's.
    auto sync_answer = std::make_shared<std::vector<OpResult>>();
    ledger_->SubmitAsync(std::move(ops), [answers, sync_answer, submitter](std::vector<OpResult> r) {
      if (std::this_thread::get_id() == submitter) {
        *sync_answer = std::move(r);
        return;
      }
      for (const OpResult& one : r) answers->ops_ok += one.status.ok();
      ++answers->batches;
    });
    if (sync_answer->empty()) {
      ++accepted;
    } else {
      refused = std::move(*sync_answer);
    }
  }
  ASSERT_EQ(refused.size(), kBatchOpsMax) << "the queue never filled";
  for (const OpResult& r : refused) {
    EXPECT_EQ(r.status.code(), absl::StatusCode::kResourceExhausted) << r.status;
    EXPECT_THAT(std::string(r.status.message()), testing::HasSubstr("write queue full"));
  }
  EXPECT_GT(accepted, kQueueOpsMax / kBatchOpsMax);

  fs_->Open();
  const auto give_up = std::chrono::steady_clock::now() + 60s;
  while (answers->batches.load() < accepted && std::chrono::steady_clock::now() < give_up) {
    std::this_thread::sleep_for(10ms);
  }
  ASSERT_EQ(answers->batches.load(), accepted);
  EXPECT_EQ(answers->ops_ok.load(), accepted * kBatchOpsMax);
  EXPECT_EQ(ledger_->Head().seq, head + accepted * kBatchOpsMax);
}

}  // namespace
}  // namespace warmledger

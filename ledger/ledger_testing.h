// Test support shared by the engine's tests: a matcher for absl::Status,
// builders of operation bodies, and LedgerTest, a fixture with a fresh
// ledger in a fresh folder stamped by a ManualClock.
#ifndef WARMLEDGER_LEDGER_LEDGER_TESTING_H_
#define WARMLEDGER_LEDGER_LEDGER_TESTING_H_

#include <stdlib.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <iterator>
#include <limits>
#include <map>
#include <memory>
#include <ostream>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "ledger/clock.h"
#include "ledger/ledger.h"
#include "ledger/limits.h"
#include "ledger/note.h"
#include "ledger/temp_dir_testing.h"
#include "ledger/types.h"

namespace warmledger {

using absl::StatusCode;

constexpr char kDonor[] = "donor/alice";
constexpr char kDonor2[] = "donor/bob";
constexpr char kMerchant[] = "merchant/warm-mall";
constexpr char kFund[] = "fund/general";
constexpr char kFund2[] = "fund/disaster";
constexpr char kRestrictedFund[] = "fund/education";
constexpr char kProject[] = "project/elderly-homes";
constexpr char kProject2[] = "project/benches";
constexpr char kRecipient[] = "recipient/p-000001";
constexpr char kRecipient2[] = "recipient/p-000002";
constexpr char kSupplier[] = "supplier/house-repairs";
constexpr char kExpense[] = "expense/bank-fees";
constexpr char kCny[] = "CNY";
constexpr char kReason[] = "entered twice at the counter";

constexpr int64_t kStartUs = 1'700'000'000'000'000;

// Lot slices as (lot, amount) pairs: they print readably when a test fails.
using SlicePairs = std::vector<std::pair<uint64_t, int64_t>>;

inline SlicePairs Pairs(const std::vector<Slice>& slices) {
  SlicePairs pairs;
  for (const Slice& s : slices) pairs.emplace_back(s.lot, s.amount);
  return pairs;
}

// Matches an absl::Status by code and message:
//   EXPECT_THAT(status, StatusIs(StatusCode::kNotFound, HasSubstr("fund/x")));
// Written by hand because the test links gtest without libgmock, whose
// MATCHER macros need it.
class StatusIsMatcher {
 public:
  using is_gtest_matcher = void;

  StatusIsMatcher(StatusCode code, ::testing::Matcher<const std::string&> message)
      : code_(code), message_(std::move(message)) {}

  bool MatchAndExplain(const absl::Status& status, std::ostream* os) const {
    const std::string message(status.message());
    if (status.code() != code_) {
      if (os != nullptr) {
        *os << "whose code is " << absl::StatusCodeToString(status.code())
            << " (message \"" << message << "\")";
      }
      return false;
    }
    ::testing::StringMatchResultListener listener;
    if (!message_.MatchAndExplain(message, &listener)) {
      if (os != nullptr) *os << "whose message \"" << message << "\" does not match";
      return false;
    }
    return true;
  }
  void DescribeTo(std::ostream* os) const {
    *os << "has code " << absl::StatusCodeToString(code_) << " and a message that ";
    message_.DescribeTo(os);
  }
  void DescribeNegationTo(std::ostream* os) const {
    *os << "does not have code " << absl::StatusCodeToString(code_)
        << " or has a message that ";
    message_.DescribeNegationTo(os);
  }

 private:
  StatusCode code_;
  ::testing::Matcher<const std::string&> message_;
};

inline StatusIsMatcher StatusIs(StatusCode code,
                         ::testing::Matcher<const std::string&> message = ::testing::_) {
  return StatusIsMatcher(code, std::move(message));
}

// ---- Operation bodies. ----

inline OpenAccountOp OpenBody(std::string account, AccountKind kind, std::string asset = "",
                       uint32_t flags = 0) {
  OpenAccountOp op;
  op.account = std::move(account);
  op.kind = kind;
  op.asset = std::move(asset);
  op.flags = flags;
  op.name = "display name of " + op.account;
  return op;
}

inline CloseAccountOp CloseBody(std::string account, std::string reason = "no longer used") {
  return CloseAccountOp{std::move(account), std::move(reason)};
}

inline DonationOp DonationBody(std::string donor, std::string to, int64_t amount,
                        std::string asset = kCny) {
  DonationOp op;
  op.donor = std::move(donor);
  op.to = std::move(to);
  op.asset = std::move(asset);
  op.amount = amount;
  op.channel = DonationChannel::kOnlineCampaign;
  op.memo = "99 Giving Day";
  return op;
}

inline AllocationOp AllocationBody(std::string from, std::string to, int64_t amount,
                            std::string asset = kCny) {
  return AllocationOp{std::move(from), std::move(to), std::move(asset), amount,
                      "quarterly plan"};
}

inline DisbursementOp DisbursementBody(std::string from, std::string to, int64_t amount,
                                std::string asset = kCny) {
  return DisbursementOp{std::move(from), std::move(to), std::move(asset), amount,
                        "house repair"};
}

inline CorrectionOp ReverseBody(uint64_t ref_seq, std::string reason = kReason) {
  CorrectionOp op;
  op.ref_seq = ref_seq;
  op.mode = CorrectionMode::kReverse;
  op.reason = std::move(reason);
  return op;
}

inline CorrectionOp AdjustBody(uint64_t ref_seq, std::string from, std::string to, int64_t amount,
                        std::string reason = "board decision 2024-07: project closed early",
                        std::string asset = kCny) {
  CorrectionOp op;
  op.ref_seq = ref_seq;
  op.mode = CorrectionMode::kAdjust;
  op.reason = std::move(reason);
  op.from = std::move(from);
  op.to = std::move(to);
  op.asset = std::move(asset);
  op.amount = amount;
  return op;
}

inline int64_t SumPlaces(const std::vector<TracePlace>& places) {
  int64_t sum = 0;
  for (const TracePlace& p : places) sum += p.amount;
  return sum;
}

// Amount per account; an account may be listed once or in several parts.
inline std::map<std::string, int64_t> ByAccount(const std::vector<TracePlace>& places) {
  std::map<std::string, int64_t> by_account;
  for (const TracePlace& p : places) {
    if (p.amount != 0) by_account[p.account] += p.amount;
  }
  return by_account;
}

// A checkpoint signer with a fresh Ed25519 key; null (and a test failure)
// if none could be made.
inline std::shared_ptr<const NoteSigner> MakeTestSigner(const std::string& origin) {
  absl::StatusOr<NoteSigner> signer = NoteSigner::Generate(origin);
  if (!signer.ok()) {
    ADD_FAILURE() << signer.status();
    return nullptr;
  }
  return std::make_shared<const NoteSigner>(*std::move(signer));
}

// A fresh ledger in a fresh folder, stamped by a manual clock.
class LedgerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = MakeTempDir("ledger_test");
    ASSERT_FALSE(dir_.empty());
    ASSERT_NO_FATAL_FAILURE(OpenLedger());
  }

  void TearDown() override {
    ledger_.reset();
    std::error_code ignored;  // Best effort: a leftover temp folder fails nothing.
    std::filesystem::remove_all(dir_, ignored);
  }

  void OpenLedger() {
    absl::StatusOr<std::unique_ptr<Ledger>> opened =
        Ledger::Open(LedgerOptions{.path = dir_, .clock = &clock_, .env = env_});
    ASSERT_TRUE(opened.ok()) << opened.status();
    ledger_ = std::move(opened).value();
  }

  void Reopen() {
    ledger_.reset();
    OpenLedger();
  }

  std::string NextClientId() { return "op-" + std::to_string(++client_id_count_); }

  Operation Op(OpBody body, bool linked = false) {
    return Operation{NextClientId(), linked, std::move(body)};
  }

  OpResult Run(OpBody body) { return ledger_->SubmitOne(Op(std::move(body))); }

  // Submits an operation that must succeed; returns its seq.
  uint64_t MustRun(OpBody body) {
    const EntryType type = TypeOf(body);
    OpResult result = Run(std::move(body));
    EXPECT_TRUE(result.status.ok()) << EntryTypeName(type) << ": " << result.status;
    EXPECT_FALSE(result.duplicate);
    return result.seq;
  }

  // Submits an operation that must fail and checks that it wrote nothing.
  absl::Status RejectOp(Operation op) {
    const LedgerHead before = ledger_->Head();
    const std::string digest_before = ledger_->StateDigest();
    OpResult result = ledger_->SubmitOne(std::move(op));
    EXPECT_FALSE(result.status.ok()) << "accepted at seq " << result.seq;
    const LedgerHead after = ledger_->Head();
    EXPECT_EQ(after.seq, before.seq) << "a rejected operation wrote an entry";
    EXPECT_EQ(after.hash, before.hash) << "a rejected operation moved the head";
    EXPECT_EQ(ledger_->StateDigest(), digest_before)
        << "a rejected operation changed the derived state";
    return result.status;
  }
  absl::Status Reject(OpBody body) { return RejectOp(Op(std::move(body))); }

  // Submits any number of operations in calls of at most kBatchOpsMax.
  std::vector<OpResult> SubmitAll(std::vector<Operation> ops) {
    std::vector<OpResult> all;
    all.reserve(ops.size());
    for (size_t start = 0; start < ops.size(); start += kBatchOpsMax) {
      const size_t end = std::min(ops.size(), start + kBatchOpsMax);
      std::vector<Operation> batch(std::make_move_iterator(ops.begin() + start),
                                   std::make_move_iterator(ops.begin() + end));
      std::vector<OpResult> results = ledger_->Submit(std::move(batch));
      EXPECT_EQ(results.size(), end - start);
      all.insert(all.end(), std::make_move_iterator(results.begin()),
                 std::make_move_iterator(results.end()));
    }
    return all;
  }

  uint64_t OpenAccount(const std::string& account, AccountKind kind,
                       const std::string& asset = "", uint32_t flags = 0) {
    return MustRun(OpenBody(account, kind, asset, flags));
  }
  uint64_t OpenFund(const std::string& account, uint32_t flags = 0) {
    return OpenAccount(account, AccountKind::kFund, kCny, flags);
  }

  // The cast of most tests: two donors, a merchant, two funds, a restricted
  // fund, two projects, two recipients, a supplier and an expense account.
  void OpenStandardAccounts() {
    OpenAccount(kDonor, AccountKind::kDonor);
    OpenAccount(kDonor2, AccountKind::kDonor);
    OpenAccount(kMerchant, AccountKind::kMerchant);
    OpenFund(kFund);
    OpenFund(kFund2);
    OpenFund(kRestrictedFund, kAccountRestricted);
    OpenAccount(kProject, AccountKind::kProject, kCny);
    OpenAccount(kProject2, AccountKind::kProject, kCny);
    OpenAccount(kRecipient, AccountKind::kRecipient);
    OpenAccount(kRecipient2, AccountKind::kRecipient);
    OpenAccount(kSupplier, AccountKind::kSupplier);
    OpenAccount(kExpense, AccountKind::kExpense);
  }

  uint64_t Donate(const std::string& donor, const std::string& to, int64_t amount) {
    return MustRun(DonationBody(donor, to, amount));
  }
  uint64_t Allocate(const std::string& from, const std::string& to, int64_t amount) {
    return MustRun(AllocationBody(from, to, amount));
  }
  uint64_t Disburse(const std::string& from, const std::string& to, int64_t amount) {
    return MustRun(DisbursementBody(from, to, amount));
  }
  uint64_t Reverse(uint64_t ref_seq) { return MustRun(ReverseBody(ref_seq)); }
  uint64_t Close(const std::string& account) { return MustRun(CloseBody(account)); }

  // The account's balance in `asset` (0 if it has none in it).
  int64_t BalanceOf(const std::string& account, const std::string& asset = kCny) {
    absl::StatusOr<AccountInfo> info = ledger_->GetAccount(account);
    EXPECT_TRUE(info.ok()) << account << ": " << info.status();
    if (!info.ok()) return std::numeric_limits<int64_t>::min();
    for (const Balance& balance : info->balances) {
      if (balance.asset == asset) return balance.amount;
    }
    return 0;
  }

  // Every slice the account holds, read page by page.
  std::vector<Slice> HoldingsOf(const std::string& account) {
    std::vector<Slice> slices;
    constexpr uint64_t kPage = 1000;
    for (uint64_t offset = 0;; offset += kPage) {
      absl::StatusOr<HoldingsPage> page = ledger_->GetHoldings(account, offset, kPage);
      EXPECT_TRUE(page.ok()) << account << ": " << page.status();
      if (!page.ok()) break;
      EXPECT_EQ(page->offset, offset);
      slices.insert(slices.end(), page->slices.begin(), page->slices.end());
      if (page->slices.empty() || offset + kPage >= page->total_count) break;
    }
    return slices;
  }

  StoredEntry EntryAt(uint64_t seq) {
    absl::StatusOr<StoredEntry> entry = ledger_->ReadEntry(seq);
    EXPECT_TRUE(entry.ok()) << "seq " << seq << ": " << entry.status();
    return entry.ok() ? *std::move(entry) : StoredEntry{};
  }

  std::vector<StoredEntry> AllEntries() {
    std::vector<StoredEntry> all;
    const uint64_t head = ledger_->Head().seq;
    while (all.size() < head) {
      absl::StatusOr<std::vector<StoredEntry>> some =
          ledger_->ReadEntries(all.size() + 1, 1000);
      EXPECT_TRUE(some.ok()) << some.status();
      if (!some.ok() || some->empty()) break;
      for (StoredEntry& e : *some) all.push_back(std::move(e));
    }
    EXPECT_EQ(all.size(), head);
    return all;
  }

  // Every source of an entry's backward trace, read in pages of `limit`.
  std::vector<TraceSource> AllSources(uint64_t seq, uint64_t limit) {
    std::vector<TraceSource> all;
    for (uint64_t offset = 0;; offset += limit) {
      absl::StatusOr<EntryTracePage> page = ledger_->TraceEntry(seq, offset, limit);
      EXPECT_TRUE(page.ok()) << page.status();
      if (!page.ok()) break;
      all.insert(all.end(), page->sources.begin(), page->sources.end());
      if (page->sources.empty() || offset + limit >= page->total_count) break;
    }
    return all;
  }

  LotTrace TraceOf(uint64_t lot) {
    absl::StatusOr<LotTrace> trace = ledger_->TraceLot(lot);
    EXPECT_TRUE(trace.ok()) << "lot " << lot << ": " << trace.status();
    return trace.ok() ? *std::move(trace) : LotTrace{};
  }

  ManualClock clock_{kStartUs};
  rocksdb::Env* env_ = nullptr;  // the default environment
  std::string dir_;
  std::unique_ptr<Ledger> ledger_;
  uint64_t client_id_count_ = 0;
};

}  // namespace warmledger

#endif  // WARMLEDGER_LEDGER_LEDGER_TESTING_H_

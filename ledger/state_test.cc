// LedgerState kept for verification only (LedgerState::Keep::kVerify, what
// warmledger-audit replays into) applies every entry exactly as the full
// state does: the same bytes, balances, holdings and totals. It only leaves
// out what queries alone read (statement lines, lots' moves, donors' lots,
// stores' settlement events).

#include "ledger/state.h"

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "gtest/gtest.h"
#include "ledger/entry_codec.h"
#include "ledger/ledger_testing.h"
#include "ledger/types.h"

namespace warmledger {
namespace {

constexpr char kDonor[] = "donor/alice";
constexpr char kDonor2[] = "donor/bob";
constexpr char kFund[] = "fund/general";
constexpr char kProject[] = "project/school";
constexpr char kRecipient[] = "recipient/p-000001";
constexpr char kStore[] = "store/s1";

// The same operations applied to a full state (with undo records, as the
// ledger's apply stage does) and to a verify-only one (without, as the
// auditor does).
class VerifyOnlyStateTest : public ::testing::Test {
 protected:
  // Applies `body` to both states; both must accept it and encode the same
  // entry. Returns its seq.
  uint64_t Apply(const std::string& client_id, OpBody body) {
    time_us_ += 1'000;
    auto full = full_.Apply(client_id, body, time_us_, lookup_, &journal_);
    auto verify = verify_.Apply(client_id, std::move(body), time_us_, lookup_, &not_recording_);
    journal_.Clear();
    EXPECT_TRUE(full.ok()) << client_id << ": " << full.status();
    EXPECT_TRUE(verify.ok()) << client_id << ": " << verify.status();
    if (!full.ok() || !verify.ok()) return 0;
    EXPECT_EQ(verify->stored_value, full->stored_value) << client_id;
    stored_.push_back(full->stored_value);
    return full->seq;
  }

  uint64_t Apply(OpBody body) { return Apply("op-" + std::to_string(stored_.size() + 1), body); }

  uint64_t ApplyNatural(OpBody body) {
    const std::optional<std::string> id = NaturalClientId(body);
    EXPECT_TRUE(id.has_value());
    return Apply(id.value_or(""), std::move(body));
  }

  LedgerState full_;
  LedgerState verify_{LedgerState::Keep::kVerify};
  Journal journal_;
  Journal not_recording_ = Journal::NotRecording();
  std::vector<std::string> stored_;
  int64_t time_us_ = 1'700'000'000'000'000;
  const EntryLookup lookup_ = [this](uint64_t seq) -> absl::StatusOr<Entry> {
    if (seq == 0 || seq > stored_.size()) return absl::NotFoundError("no such entry");
    return DecodeEntry(EntryBytesOf(stored_[seq - 1]));
  };
};

TEST_F(VerifyOnlyStateTest, AppliesEveryEntryLikeTheFullStateAndKeepsNoQueryIndexes) {
  Apply(OpenBody(kDonor, AccountKind::kDonor));
  Apply(OpenBody(kDonor2, AccountKind::kDonor));
  Apply(OpenBody(kFund, AccountKind::kFund, "CNY"));
  Apply(OpenBody(kProject, AccountKind::kProject, "CNY"));
  Apply(OpenBody(kRecipient, AccountKind::kRecipient));
  Apply(OpenBody(kStore, AccountKind::kMerchant, "CNY"));
  std::vector<uint64_t> lots;
  for (int i = 0; i < 12; ++i) {
    lots.push_back(Apply(DonationBody(i % 2 ? kDonor : kDonor2, kFund, 1'000 + 37 * i)));
  }
  // Consumes several lots, splitting the last one; then is reversed (a
  // replay that looks the entry up), redone, and paid out.
  const uint64_t allocation = Apply(AllocationBody(kFund, kProject, 4'500));
  Apply(ReverseBody(allocation));
  Apply(AllocationBody(kFund, kProject, 6'000));
  Apply(DisbursementBody(kProject, kRecipient, 2'500));
  // Checkout: a contribution, part of it refunded, a voucher and a redemption.
  ApplyNatural(PurchaseOp{kStore, "A-1", "CNY", 10'000, "member/7", 0, 200, kFund, ""});
  ApplyNatural(RefundOp{kStore, "A-1", "rf-1", 5'000});
  const std::string code_hash(32, '\x5a');
  Apply(VoucherIssueOp{kFund, kRecipient, "CNY", 3'000, time_us_ + 86'400'000'000, {},
                       code_hash, ""});
  ApplyNatural(RedemptionOp{code_hash, kStore, "T-1", 1'000});
  ASSERT_FALSE(HasFailure());

  EXPECT_EQ(verify_.head_seq(), full_.head_seq());
  EXPECT_EQ(verify_.head_hash(), full_.head_hash());
  const BalanceSnapshot full_snapshot = full_.Snapshot();
  const BalanceSnapshot verify_snapshot = verify_.Snapshot();
  EXPECT_EQ(verify_snapshot.seq, full_snapshot.seq);
  EXPECT_EQ(verify_snapshot.accounts, full_snapshot.accounts);
  EXPECT_EQ(verify_.TotalsPerAsset(), full_.TotalsPerAsset());

  // What only queries read is kept by the full state alone.
  auto full_lines = full_.Statement(kFund, 0, INT64_MAX, 0, 100);
  auto verify_lines = verify_.Statement(kFund, 0, INT64_MAX, 0, 100);
  ASSERT_TRUE(full_lines.ok()) << full_lines.status();
  ASSERT_TRUE(verify_lines.ok()) << verify_lines.status();
  EXPECT_GT(full_lines->total_count, 12u);
  EXPECT_EQ(verify_lines->total_count, 0u);
  auto full_moves = full_.LotMoves(lots.front());
  auto verify_moves = verify_.LotMoves(lots.front());
  ASSERT_TRUE(full_moves.ok()) << full_moves.status();
  ASSERT_TRUE(verify_moves.ok()) << verify_moves.status();
  EXPECT_FALSE(full_moves->empty());
  EXPECT_TRUE(verify_moves->empty());
  auto full_lots = full_.DonorLots(kDonor);
  auto verify_lots = verify_.DonorLots(kDonor);
  ASSERT_TRUE(full_lots.ok()) << full_lots.status();
  ASSERT_TRUE(verify_lots.ok()) << verify_lots.status();
  EXPECT_EQ(full_lots->size(), 6u);
  EXPECT_TRUE(verify_lots->empty());
  auto full_settlement = full_.Settlement("", 0, INT64_MAX);
  auto verify_settlement = verify_.Settlement("", 0, INT64_MAX);
  ASSERT_TRUE(full_settlement.ok()) << full_settlement.status();
  ASSERT_TRUE(verify_settlement.ok()) << verify_settlement.status();
  ASSERT_EQ(full_settlement->size(), 1u);
  EXPECT_EQ((*full_settlement)[0].purchases, 1u);
  EXPECT_EQ((*full_settlement)[0].redemptions, 1u);
  EXPECT_TRUE(verify_settlement->empty());
}

TEST_F(VerifyOnlyStateTest, RejectsWhatTheFullStateRejects) {
  Apply(OpenBody(kDonor, AccountKind::kDonor));
  Apply(OpenBody(kFund, AccountKind::kFund, "CNY"));
  Apply(OpenBody(kProject, AccountKind::kProject, "CNY"));
  Apply(DonationBody(kDonor, kFund, 1'000));
  Journal not_recording = Journal::NotRecording();
  const OpBody too_much = AllocationBody(kFund, kProject, 1'001);
  auto full = full_.Apply("too-much", too_much, time_us_ + 1'000, lookup_, &journal_);
  auto verify = verify_.Apply("too-much", too_much, time_us_ + 1'000, lookup_, &not_recording);
  EXPECT_EQ(full.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(verify.status(), full.status());
}

}  // namespace
}  // namespace warmledger

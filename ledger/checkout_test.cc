// Tests of the checkout and voucher entry types (docs/rules.md, "Checkout"
// and "Vouchers"): the contribution's rounding, idempotency by the trade's
// own keys, proportional refunds and where their money comes from, voucher
// issue, redemption at its boundaries (time, store, value, concurrency),
// expiry and voiding with provenance, settlement and voucher reports, and
// that all of it replays.

#include <atomic>
#include <cstdint>
#include <limits>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "ledger/ledger.h"
#include "ledger/ledger_testing.h"
#include "ledger/limits.h"
#include "ledger/sha256.h"
#include "ledger/types.h"

namespace warmledger {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

constexpr char kStore[] = "store/supermarket";
constexpr char kStore2[] = "store/mall-tea";
constexpr char kMember[] = "member/13800000001";
constexpr char kPoorRecipient[] = "recipient/p-000101";
constexpr uint32_t kRate = 200;
constexpr int64_t kDayUs = 86'400'000'000;

std::string CodeHash(const std::string& code) {
  const Hash h = Sha256(code);
  return std::string(reinterpret_cast<const char*>(h.data()), h.size());
}

PurchaseOp PurchaseBody(std::string store, std::string order, int64_t amount,
                        std::string member = "", uint32_t rate = kRate) {
  PurchaseOp op;
  op.store = std::move(store);
  op.order_id = std::move(order);
  op.asset = kCny;
  op.amount = amount;
  op.member = std::move(member);
  op.rate_bp = rate;
  op.fund = kFund;
  return op;
}

RefundOp RefundBody(std::string store, std::string order, std::string refund_id,
                    int64_t amount) {
  return RefundOp{std::move(store), std::move(order), std::move(refund_id), amount};
}

RedemptionOp RedeemBody(const std::string& code, std::string store, std::string order,
                        int64_t amount) {
  return RedemptionOp{CodeHash(code), std::move(store), std::move(order), amount};
}

class CheckoutTest : public LedgerTest {
 protected:
  void SetUp() override {
    LedgerTest::SetUp();
    OpenStandardAccounts();
    OpenAccount(kStore, AccountKind::kMerchant, kCny);
    OpenAccount(kStore2, AccountKind::kMerchant, kCny);
    OpenAccountOp poor = OpenBody(kPoorRecipient, AccountKind::kRecipient);
    poor.category = "low-income";
    poor.community = "c-017";
    MustRun(poor);
  }

  // Checkout operations carry no client id: the engine derives it.
  static Operation Natural(OpBody body) { return Operation{"", false, std::move(body)}; }
  OpResult Checkout(OpBody body) { return ledger_->SubmitOne(Natural(std::move(body))); }
  OpResult MustCheckout(OpBody body) {
    const EntryType type = TypeOf(body);
    OpResult r = Checkout(std::move(body));
    EXPECT_TRUE(r.status.ok()) << EntryTypeName(type) << ": " << r.status;
    return r;
  }
  absl::Status RejectCheckout(OpBody body) { return RejectOp(Natural(std::move(body))); }

  VoucherIssueOp IssueBody(const std::string& code, int64_t amount, int64_t lifetime_us,
                           std::vector<std::string> stores = {},
                           const std::string& from = kFund) {
    VoucherIssueOp op;
    op.from = from;
    op.recipient = kPoorRecipient;
    op.asset = kCny;
    op.amount = amount;
    op.expires_us = clock_.NowMicros() + lifetime_us;
    op.stores = std::move(stores);
    op.code_hash = CodeHash(code);
    op.memo = "winter aid";
    return op;
  }
  // Issues a voucher; returns its seq.
  uint64_t Issue(const std::string& code, int64_t amount, int64_t lifetime_us = 30 * kDayUs,
                 std::vector<std::string> stores = {}) {
    return MustRun(IssueBody(code, amount, lifetime_us, std::move(stores)));
  }

  VoucherInfo VoucherOf(uint64_t voucher) {
    absl::StatusOr<VoucherInfo> info = ledger_->GetVoucher(voucher);
    EXPECT_TRUE(info.ok()) << info.status();
    return info.ok() ? *std::move(info) : VoucherInfo{};
  }
};

// ===================================================================
// The contribution
// ===================================================================

TEST(ContributionTest, RoundsHalfUpToTheMinorUnit) {
  struct Case {
    int64_t amount;
    uint32_t rate;
    int64_t contribution;
  };
  const Case cases[] = {
      {1, 200, 0},      // 0.02 fen
      {24, 200, 0},     // 0.48
      {25, 200, 1},     // 0.50: half goes up
      {49, 200, 1},     // 0.98
      {50, 200, 1},     // 1.00
      {74, 200, 1},     // 1.48
      {75, 200, 2},     // 1.50
      {100, 200, 2},
      {12'345, 200, 247},  // 246.90
      {1, 5'000, 1},    // 0.50
      {1, 4'999, 0},    // 0.4999
      {1, 10'000, 1},
      {999, 0, 0},
      {kAmountMax, 200, kAmountMax / 50},
      {kAmountMax, 10'000, kAmountMax},
      {kAmountMax - 1, 1, 100'000'000'000},       // 99,999,999,999.9999
      {kAmountMax - 5'001, 1, 99'999'999'999},    // 99,999,999,999.4999
      {std::numeric_limits<int64_t>::max(), 10'000, std::numeric_limits<int64_t>::max()},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(ContributionOf(c.amount, c.rate), c.contribution)
        << c.amount << " at " << c.rate << " bp";
  }
}

TEST_F(CheckoutTest, PurchasesRecordTheRoundedContributionAsTheirPosting) {
  const std::pair<int64_t, int64_t> table[] = {{1, 0}, {49, 1}, {50, 1}, {kAmountMax, kAmountMax / 50}};
  int order = 0;
  for (const auto& [amount, contribution] : table) {
    SCOPED_TRACE(amount);
    const OpResult r = MustCheckout(PurchaseBody(kStore, "o-" + std::to_string(++order), amount));
    EXPECT_EQ(r.moved, contribution);
    const StoredEntry e = EntryAt(r.seq);
    if (contribution == 0) {
      EXPECT_THAT(e.entry.postings, IsEmpty()) << "nothing moves, no lot";
      EXPECT_THAT(ledger_->GetLot(r.seq).status(), StatusIs(StatusCode::kNotFound));
    } else {
      ASSERT_EQ(e.entry.postings.size(), 1u);
      EXPECT_EQ(e.entry.postings[0].from, kStore);
      EXPECT_EQ(e.entry.postings[0].to, kFund);
      EXPECT_EQ(e.entry.postings[0].amount, contribution);
      EXPECT_THAT(Pairs(e.entry.postings[0].slices), ElementsAre(std::pair{r.seq, contribution}));
    }
  }
  EXPECT_EQ(BalanceOf(kFund), 2 + kAmountMax / 50);
  EXPECT_EQ(BalanceOf(kStore), -(2 + kAmountMax / 50));
}

TEST_F(CheckoutTest, ContributionIsALotOfTheStoreCreditedToTheMember) {
  const OpResult r = MustCheckout(PurchaseBody(kStore, "A-1001", 12'345, kMember));
  EXPECT_EQ(r.moved, 247);
  absl::StatusOr<LotInfo> lot = ledger_->GetLot(r.seq);
  ASSERT_TRUE(lot.ok()) << lot.status();
  EXPECT_EQ(lot->donor, kStore);
  EXPECT_EQ(lot->member, kMember);
  EXPECT_EQ(lot->to, kFund);
  EXPECT_EQ(lot->amount, 247);

  // The member traces it like a donor.
  absl::StatusOr<DonorStatementPage> page = ledger_->DonorStatement(kMember, 0, 10);
  ASSERT_TRUE(page.ok()) << page.status();
  ASSERT_EQ(page->lots.size(), 1u);
  EXPECT_EQ(page->lots[0].lot.lot, r.seq);
  EXPECT_EQ(page->lots[0].lot.order_id, "A-1001");
  EXPECT_EQ(page->lots[0].hops.at(0).type, EntryType::kPurchase);
  EXPECT_EQ(page->lots[0].hops.at(0).order_id, "A-1001");
  // And the store sees it among the lots it gave.
  absl::StatusOr<DonorStatementPage> store = ledger_->DonorStatement(kStore, 0, 10);
  ASSERT_TRUE(store.ok()) << store.status();
  EXPECT_EQ(store->total_lots, 1u);
  EXPECT_THAT(ledger_->DonorStatement("member/nobody", 0, 10).status(),
              StatusIs(StatusCode::kNotFound, HasSubstr("member/nobody")));
}

TEST_F(CheckoutTest, PurchaseRetryReturnsTheOriginalResult) {
  const OpResult first = MustCheckout(PurchaseBody(kStore, "A-1", 10'000, kMember));
  const OpResult retry = MustCheckout(PurchaseBody(kStore, "A-1", 10'000, kMember));
  EXPECT_TRUE(retry.duplicate);
  EXPECT_EQ(retry.seq, first.seq);
  EXPECT_EQ(retry.time_us, first.time_us);
  EXPECT_EQ(retry.moved, 200);
  EXPECT_THAT(RejectCheckout(PurchaseBody(kStore, "A-1", 10'001, kMember)),
              StatusIs(StatusCode::kAlreadyExists, HasSubstr("purchase.amount")));
  EXPECT_THAT(RejectCheckout(PurchaseBody(kStore, "A-1", 10'000)),
              StatusIs(StatusCode::kAlreadyExists, HasSubstr("purchase.member")));
  // The same order number at another store is another purchase.
  EXPECT_FALSE(MustCheckout(PurchaseBody(kStore2, "A-1", 10'000)).duplicate);
  EXPECT_EQ(BalanceOf(kFund), 400);
}

TEST_F(CheckoutTest, CheckoutIdsAreTheTradesOwnKeys) {
  Operation chosen = Natural(PurchaseBody(kStore, "A-1", 100));
  chosen.client_id = "till-7/1";
  EXPECT_THAT(RejectOp(chosen), StatusIs(StatusCode::kInvalidArgument, HasSubstr("client_id")));
  // A natural id given explicitly is the same purchase.
  const std::string natural = *NaturalClientId(PurchaseBody(kStore, "A-1", 100));
  EXPECT_EQ(natural, PurchaseClientId(kStore, "A-1"));
  Operation explicit_id = Natural(PurchaseBody(kStore, "A-1", 100));
  explicit_id.client_id = natural;
  EXPECT_TRUE(ledger_->SubmitOne(explicit_id).status.ok());
  EXPECT_TRUE(MustCheckout(PurchaseBody(kStore, "A-1", 100)).duplicate);
  // No other operation may take a natural id (it would block the purchase).
  EXPECT_THAT(RejectOp(Operation{PurchaseClientId(kStore, "A-2"), false,
                                 DonationBody(kDonor, kFund, 100)}),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("client_id")));
}

TEST_F(CheckoutTest, BadPurchasesAreRejectedNamingTheField) {
  struct Case {
    PurchaseOp op;
    StatusCode code;
    std::string field;
  };
  std::vector<Case> cases;
  auto with = [](auto change) {
    PurchaseOp op = PurchaseBody(kStore, "B-1", 5'000);
    change(op);
    return op;
  };
  cases.push_back({with([](PurchaseOp& o) { o.amount = 0; }), StatusCode::kInvalidArgument, "purchase.amount"});
  cases.push_back({with([](PurchaseOp& o) { o.amount = kAmountMax + 1; }), StatusCode::kInvalidArgument, "purchase.amount"});
  cases.push_back({with([](PurchaseOp& o) { o.order_id = ""; }), StatusCode::kInvalidArgument, "purchase.order_id"});
  cases.push_back({with([](PurchaseOp& o) { o.order_id = "B 1"; }), StatusCode::kInvalidArgument, "purchase.order_id"});
  cases.push_back({with([](PurchaseOp& o) { o.order_id = std::string(65, 'x'); }), StatusCode::kInvalidArgument, "purchase.order_id"});
  cases.push_back({with([](PurchaseOp& o) { o.asset = "item:rice"; }), StatusCode::kInvalidArgument, "purchase.asset"});
  cases.push_back({with([](PurchaseOp& o) { o.rate_bp = 10'001; }), StatusCode::kInvalidArgument, "purchase.rate_bp"});
  cases.push_back({with([](PurchaseOp& o) { o.member = "bad member"; }), StatusCode::kInvalidArgument, "purchase.member"});
  cases.push_back({with([](PurchaseOp& o) { o.sale_time_us = -1; }), StatusCode::kInvalidArgument, "purchase.sale_time_us"});
  cases.push_back({with([](PurchaseOp& o) { o.trace_hash = "short"; }), StatusCode::kInvalidArgument, "purchase.trace_hash"});
  cases.push_back({with([](PurchaseOp& o) { o.amount = 10; o.trace_hash = CodeHash("t"); }), StatusCode::kInvalidArgument, "purchase.trace_hash"});
  cases.push_back({with([](PurchaseOp& o) { o.store = "store/unknown"; }), StatusCode::kNotFound, "store/unknown"});
  cases.push_back({with([](PurchaseOp& o) { o.store = kDonor; }), StatusCode::kFailedPrecondition, "purchase.store"});
  cases.push_back({with([](PurchaseOp& o) { o.fund = kRecipient; }), StatusCode::kFailedPrecondition, "purchase.fund"});
  cases.push_back({with([](PurchaseOp& o) { o.fund = "fund/none"; }), StatusCode::kNotFound, "fund/none"});
  cases.push_back({with([](PurchaseOp& o) { o.asset = "USD"; }), StatusCode::kFailedPrecondition, "purchase.asset"});
  for (const Case& c : cases) {
    SCOPED_TRACE(c.field);
    EXPECT_THAT(RejectCheckout(c.op), StatusIs(c.code, HasSubstr(c.field)));
  }
}

// ===================================================================
// Refunds
// ===================================================================

TEST_F(CheckoutTest, PartialRefundsReverseInProportionAndNeverMoreThanTheContribution) {
  const OpResult sale = MustCheckout(PurchaseBody(kStore, "R-1", 10'000));  // contributes 200
  // Cumulative rule: after each refund the reversals total
  // round_half_up(200 × refunded / 10,000).
  EXPECT_EQ(MustCheckout(RefundBody(kStore, "R-1", "rf-1", 3'333)).moved, 67);  // 66.66
  EXPECT_EQ(MustCheckout(RefundBody(kStore, "R-1", "rf-2", 3'333)).moved, 66);  // 133.32
  EXPECT_THAT(RejectCheckout(RefundBody(kStore, "R-1", "rf-3", 3'335)),
              StatusIs(StatusCode::kFailedPrecondition,
                       AllOf(HasSubstr("refund.amount"), HasSubstr("3334 of 10000"))));
  EXPECT_EQ(MustCheckout(RefundBody(kStore, "R-1", "rf-3", 3'334)).moved, 67);  // 200
  EXPECT_EQ(BalanceOf(kFund), 0);
  EXPECT_EQ(BalanceOf(kStore), 0);
  EXPECT_THAT(RejectCheckout(RefundBody(kStore, "R-1", "rf-4", 1)),
              StatusIs(StatusCode::kFailedPrecondition, HasSubstr("0 of 10000")));
  // The whole lot went back to the store.
  const LotTrace trace = TraceOf(sale.seq);
  EXPECT_THAT(trace.held, IsEmpty());
  EXPECT_EQ(ByAccount(trace.reached), (std::map<std::string, int64_t>{{kStore, 200}}));

  // Rounding that goes up at the first refund cannot overshoot later.
  MustCheckout(PurchaseBody(kStore, "R-2", 75));  // 1.5 → 2
  int64_t reversed = 0;
  for (int i = 1; i <= 3; ++i) {
    reversed += MustCheckout(RefundBody(kStore, "R-2", "rf-2-" + std::to_string(i), 25)).moved;
    EXPECT_LE(reversed, 2);
  }
  EXPECT_EQ(reversed, 2);
}

TEST_F(CheckoutTest, RefundRetriesAndUnknownOrders) {
  MustCheckout(PurchaseBody(kStore, "R-1", 10'000));
  const OpResult first = MustCheckout(RefundBody(kStore, "R-1", "rf-1", 5'000));
  const OpResult retry = MustCheckout(RefundBody(kStore, "R-1", "rf-1", 5'000));
  EXPECT_TRUE(retry.duplicate);
  EXPECT_EQ(retry.seq, first.seq);
  EXPECT_EQ(retry.moved, 100);
  EXPECT_THAT(RejectCheckout(RefundBody(kStore, "R-1", "rf-1", 4'000)),
              StatusIs(StatusCode::kAlreadyExists, HasSubstr("refund.amount")));
  EXPECT_THAT(RejectCheckout(RefundBody(kStore, "R-404", "rf-9", 1)),
              StatusIs(StatusCode::kNotFound, HasSubstr("R-404")));
  EXPECT_THAT(RejectCheckout(RefundBody(kStore2, "R-1", "rf-9", 1)),
              StatusIs(StatusCode::kNotFound, HasSubstr(kStore2)))
      << "an order belongs to its store";
  EXPECT_THAT(RejectCheckout(RefundBody(kStore, "R-1", "rf-9", 0)),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("refund.amount")));
  EXPECT_THAT(RejectCheckout(RefundBody(kStore, "R-1", "", 1)),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("refund.refund_id")));
}

TEST_F(CheckoutTest, RefundTakesTheContributionBackFromItsOwnLot) {
  const uint64_t older = Donate(kDonor, kFund, 1'000);
  const OpResult sale = MustCheckout(PurchaseBody(kStore, "R-1", 10'000));
  const OpResult refund = MustCheckout(RefundBody(kStore, "R-1", "rf-1", 10'000));
  EXPECT_EQ(refund.moved, 200);
  EXPECT_EQ(refund.covered_by_fund, 0);
  const StoredEntry e = EntryAt(refund.seq);
  EXPECT_EQ(e.entry.policy, "lot/v1");
  ASSERT_EQ(e.entry.postings.size(), 1u);
  EXPECT_EQ(e.entry.postings[0].from, kFund);
  EXPECT_EQ(e.entry.postings[0].to, kStore);
  EXPECT_THAT(Pairs(e.entry.postings[0].slices), ElementsAre(std::pair{sale.seq, int64_t{200}}));
  EXPECT_THAT(Pairs(HoldingsOf(kFund)), ElementsAre(std::pair{older, int64_t{1'000}}))
      << "the older gift is untouched although fifo would take it first";
}

TEST_F(CheckoutTest, RefundOfSpentContributionIsCoveredByTheFundsOldestMoney) {
  const uint64_t gift = Donate(kDonor, kFund, 1'000);
  const OpResult sale = MustCheckout(PurchaseBody(kStore, "R-1", 10'000));  // lot of 200
  const uint64_t later = Donate(kDonor2, kFund, 500);
  Disburse(kFund, kRecipient, 1'100);  // all of the gift, 100 of the sale's lot
  const OpResult refund = MustCheckout(RefundBody(kStore, "R-1", "rf-1", 10'000));
  EXPECT_EQ(refund.moved, 200);
  EXPECT_EQ(refund.covered_by_fund, 100);
  const StoredEntry e = EntryAt(refund.seq);
  EXPECT_EQ(e.entry.policy, "lot+fifo/v1") << "the entry says the fund covered part";
  EXPECT_THAT(Pairs(e.entry.postings.at(0).slices),
              ElementsAre(std::pair{sale.seq, int64_t{100}}, std::pair{later, int64_t{100}}));
  EXPECT_THAT(Pairs(HoldingsOf(kFund)), ElementsAre(std::pair{later, int64_t{400}}));
  EXPECT_EQ(ByAccount(TraceOf(later).reached), (std::map<std::string, int64_t>{{kStore, 100}}));
  EXPECT_EQ(ByAccount(TraceOf(gift).reached), (std::map<std::string, int64_t>{{kRecipient, 1'000}}));
  // The retry reports the same split.
  const OpResult retry = MustCheckout(RefundBody(kStore, "R-1", "rf-1", 10'000));
  EXPECT_TRUE(retry.duplicate);
  EXPECT_EQ(retry.covered_by_fund, 100);
}

TEST_F(CheckoutTest, RefundFromTheMiddleOfTheFundLeavesNoTraceInItsHoldings) {
  const uint64_t g1 = Donate(kDonor, kFund, 1'000);
  MustCheckout(PurchaseBody(kStore, "M-1", 10'000));  // lot of 200
  const uint64_t g2 = Donate(kDonor2, kFund, 500);
  const OpResult p2 = MustCheckout(PurchaseBody(kStore, "M-2", 10'000));
  EXPECT_EQ(MustCheckout(RefundBody(kStore, "M-1", "rf-1", 10'000)).moved, 200);
  EXPECT_THAT(Pairs(HoldingsOf(kFund)),
              ElementsAre(std::pair{g1, int64_t{1'000}}, std::pair{g2, int64_t{500}},
                          std::pair{p2.seq, int64_t{200}}));
  absl::StatusOr<AccountInfo> info = ledger_->GetAccount(kFund);
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->slice_count, 3u);
  absl::StatusOr<HoldingsPage> page = ledger_->GetHoldings(kFund, 1, 1);
  ASSERT_TRUE(page.ok());
  EXPECT_EQ(page->total_count, 3u);
  EXPECT_THAT(Pairs(page->slices), ElementsAre(std::pair{g2, int64_t{500}}));

  // A chain that refunds M-2 and then fails leaves the fund as it was.
  const std::string digest = ledger_->StateDigest();
  std::vector<Operation> chain;
  chain.push_back(Operation{"", true, RefundBody(kStore, "M-2", "rf-2", 10'000)});
  chain.push_back(Operation{"pay-1", false, DisbursementBody(kFund, kRecipient, 1'501)});
  std::vector<OpResult> results = ledger_->Submit(std::move(chain));
  EXPECT_EQ(results[1].status.code(), StatusCode::kFailedPrecondition) << results[1].status;
  EXPECT_EQ(ledger_->StateDigest(), digest);

  // Fifo passes over what the refund took.
  const uint64_t paid = Disburse(kFund, kRecipient, 1'600);
  EXPECT_THAT(Pairs(EntryAt(paid).entry.postings.at(0).slices),
              ElementsAre(std::pair{g1, int64_t{1'000}}, std::pair{g2, int64_t{500}},
                          std::pair{p2.seq, int64_t{100}}));
  const uint64_t g3 = Donate(kDonor, kFund, 500);
  const OpResult refund = MustCheckout(RefundBody(kStore, "M-2", "rf-2", 10'000));
  EXPECT_EQ(refund.covered_by_fund, 100) << "100 of M-2's lot was spent";
  EXPECT_THAT(Pairs(EntryAt(refund.seq).entry.postings.at(0).slices),
              ElementsAre(std::pair{p2.seq, int64_t{100}}, std::pair{g3, int64_t{100}}));
  const std::string after = ledger_->StateDigest();
  absl::StatusOr<std::string> rebuilt = ledger_->RebuildStateDigest();
  ASSERT_TRUE(rebuilt.ok());
  EXPECT_EQ(*rebuilt, after);
  Reopen();
  EXPECT_EQ(ledger_->StateDigest(), after);
}

TEST_F(CheckoutTest, RefundFindsItsLotAfterAReversalRebuiltTheFundsSlices) {
  const uint64_t gift = Donate(kDonor, kFund, 1'000);
  const OpResult p1 = MustCheckout(PurchaseBody(kStore, "M-1", 10'000));
  const OpResult p2 = MustCheckout(PurchaseBody(kStore, "M-2", 5'000));
  Reverse(gift);  // the fund's slices are rebuilt without the gift
  EXPECT_THAT(Pairs(EntryAt(MustCheckout(RefundBody(kStore, "M-2", "rf-2", 5'000)).seq)
                        .entry.postings.at(0).slices),
              ElementsAre(std::pair{p2.seq, int64_t{100}}));
  EXPECT_THAT(Pairs(EntryAt(MustCheckout(RefundBody(kStore, "M-1", "rf-1", 5'000)).seq)
                        .entry.postings.at(0).slices),
              ElementsAre(std::pair{p1.seq, int64_t{100}}));
  EXPECT_THAT(Pairs(HoldingsOf(kFund)), ElementsAre(std::pair{p1.seq, int64_t{100}}));
}

TEST_F(CheckoutTest, RefundTheFundCannotCoverWritesNothing) {
  MustCheckout(PurchaseBody(kStore, "R-1", 10'000));
  Disburse(kFund, kRecipient, 200);
  EXPECT_THAT(RejectCheckout(RefundBody(kStore, "R-1", "rf-1", 10'000)),
              StatusIs(StatusCode::kFailedPrecondition, HasSubstr(kFund)));
  // A refund whose reversal rounds to nothing is still recorded.
  const OpResult small = MustCheckout(RefundBody(kStore, "R-1", "rf-2", 10));  // 0.2 fen
  EXPECT_EQ(small.moved, 0);
  EXPECT_THAT(EntryAt(small.seq).entry.postings, IsEmpty());
}

// ===================================================================
// Vouchers
// ===================================================================

TEST_F(CheckoutTest, VoucherIssueMovesItsValueWithProvenance) {
  const uint64_t gift = Donate(kDonor, kFund, 20'000);
  const uint64_t gift2 = Donate(kDonor2, kFund, 20'000);
  const uint64_t v = Issue("CODE-A", 30'000, 30 * kDayUs, {kStore});
  const VoucherInfo info = VoucherOf(v);
  EXPECT_EQ(info.account, "voucher/" + std::to_string(v));
  EXPECT_EQ(info.from, kFund);
  EXPECT_EQ(info.recipient, kPoorRecipient);
  EXPECT_EQ(info.category, "low-income");
  EXPECT_EQ(info.community, "c-017");
  EXPECT_EQ(info.face, 30'000);
  EXPECT_EQ(info.remaining, 30'000);
  EXPECT_EQ(info.status, VoucherStatus::kActive);
  EXPECT_THAT(info.stores, ElementsAre(kStore));
  EXPECT_THAT(Pairs(HoldingsOf(info.account)),
              ElementsAre(std::pair{gift, int64_t{20'000}}, std::pair{gift2, int64_t{10'000}}));
  absl::StatusOr<VoucherInfo> by_code = ledger_->FindVoucherByCodeHash(CodeHash("CODE-A"));
  ASSERT_TRUE(by_code.ok()) << by_code.status();
  EXPECT_EQ(by_code->voucher, v);
  EXPECT_THAT(ledger_->FindVoucherByCodeHash(CodeHash("CODE-B")).status(),
              StatusIs(StatusCode::kNotFound));
  absl::StatusOr<AccountInfo> account = ledger_->GetAccount(info.account);
  ASSERT_TRUE(account.ok());
  EXPECT_EQ(account->kind, AccountKind::kVoucher);
}

TEST_F(CheckoutTest, BadVoucherIssuesAreRejectedNamingTheField) {
  Donate(kDonor, kFund, 1'000);
  Issue("TAKEN", 100);
  struct Case {
    VoucherIssueOp op;
    StatusCode code;
    std::string field;
  };
  auto with = [&](auto change) {
    VoucherIssueOp op = IssueBody("NEW", 500, kDayUs);
    change(op);
    return op;
  };
  std::vector<Case> cases;
  cases.push_back({with([](VoucherIssueOp& o) { o.amount = 901; }), StatusCode::kFailedPrecondition, "voucher_issue.amount"});
  cases.push_back({with([](VoucherIssueOp& o) { o.amount = 0; }), StatusCode::kInvalidArgument, "voucher_issue.amount"});
  cases.push_back({with([&](VoucherIssueOp& o) { o.expires_us = clock_.NowMicros(); }), StatusCode::kInvalidArgument, "voucher_issue.expires_us"});
  cases.push_back({with([](VoucherIssueOp& o) { o.code_hash = CodeHash("TAKEN"); }), StatusCode::kAlreadyExists, "voucher_issue.code_hash"});
  cases.push_back({with([](VoucherIssueOp& o) { o.code_hash = "abc"; }), StatusCode::kInvalidArgument, "voucher_issue.code_hash"});
  cases.push_back({with([](VoucherIssueOp& o) { o.recipient = kDonor; }), StatusCode::kFailedPrecondition, "voucher_issue.recipient"});
  cases.push_back({with([](VoucherIssueOp& o) { o.recipient = "recipient/unknown"; }), StatusCode::kNotFound, "recipient/unknown"});
  cases.push_back({with([](VoucherIssueOp& o) { o.from = kRecipient; }), StatusCode::kFailedPrecondition, "voucher_issue.from"});
  cases.push_back({with([](VoucherIssueOp& o) { o.stores = {kDonor}; }), StatusCode::kFailedPrecondition, "voucher_issue.stores[0]"});
  cases.push_back({with([](VoucherIssueOp& o) { o.stores = {kStore, kStore}; }), StatusCode::kInvalidArgument, "voucher_issue.stores[1]"});
  cases.push_back({with([](VoucherIssueOp& o) { o.stores.assign(kVoucherStoresMax + 1, kStore); }), StatusCode::kInvalidArgument, "voucher_issue.stores"});
  cases.push_back({with([](VoucherIssueOp& o) { o.asset = "item:rice"; }), StatusCode::kInvalidArgument, "voucher_issue.asset"});
  for (const Case& c : cases) {
    SCOPED_TRACE(c.field);
    EXPECT_THAT(Reject(c.op), StatusIs(c.code, HasSubstr(c.field)));
  }
}

TEST_F(CheckoutTest, RedemptionNeverTakesMoreThanRemains) {
  Donate(kDonor, kFund, 10'000);
  const uint64_t v = Issue("CODE-A", 5'000);
  const OpResult part = MustCheckout(RedeemBody("CODE-A", kStore, "T-1", 3'000));
  EXPECT_EQ(part.moved, 3'000);
  EXPECT_EQ(part.voucher_balance_after, 2'000);
  EXPECT_THAT(RejectCheckout(RedeemBody("CODE-A", kStore, "T-2", 2'001)),
              StatusIs(StatusCode::kFailedPrecondition,
                       AllOf(HasSubstr("redemption.amount"), HasSubstr("holds 2000"))));
  const OpResult rest = MustCheckout(RedeemBody("CODE-A", kStore2, "T-2", 2'000));
  EXPECT_EQ(rest.voucher_balance_after, 0);
  // A retry of the first answers as it did then, not with today's balance.
  const OpResult retry = MustCheckout(RedeemBody("CODE-A", kStore, "T-1", 3'000));
  EXPECT_TRUE(retry.duplicate);
  EXPECT_EQ(retry.voucher_balance_after, 2'000);
  EXPECT_THAT(RejectCheckout(RedeemBody("CODE-A", kStore, "T-3", 1)),
              StatusIs(StatusCode::kFailedPrecondition, HasSubstr("holds 0")));
  const VoucherInfo info = VoucherOf(v);
  EXPECT_EQ(info.redeemed, 5'000);
  EXPECT_EQ(info.redemptions, 2u);
  EXPECT_EQ(info.status, VoucherStatus::kRedeemed);
  EXPECT_THAT(RejectCheckout(RedeemBody("NO-SUCH-CODE", kStore, "T-4", 1)),
              StatusIs(StatusCode::kNotFound, HasSubstr("redemption.code")));
  EXPECT_THAT(RejectCheckout(RedeemBody("CODE-A", kDonor, "T-4", 1)),
              StatusIs(StatusCode::kFailedPrecondition, HasSubstr("redemption.store")));
}

TEST_F(CheckoutTest, RedemptionOnlyAtTheStoresTheVoucherNames) {
  Donate(kDonor, kFund, 10'000);
  Issue("CODE-A", 5'000, kDayUs, {kStore});
  EXPECT_THAT(RejectCheckout(RedeemBody("CODE-A", kStore2, "T-1", 100)),
              StatusIs(StatusCode::kFailedPrecondition,
                       AllOf(HasSubstr("redemption.store"), HasSubstr(kStore2))));
  MustCheckout(RedeemBody("CODE-A", kStore, "T-1", 100));
}

TEST_F(CheckoutTest, ExpiryIsAHalfOpenBoundaryOnTheLedgerClock) {
  const uint64_t gift = Donate(kDonor, kFund, 10'000);
  const uint64_t v = Issue("CODE-A", 5'000, kDayUs);
  const int64_t expires = VoucherOf(v).expires_us;
  clock_.SetMicros(expires - 1);
  MustCheckout(RedeemBody("CODE-A", kStore, "T-1", 1'000));
  auto due = ledger_->ExpireDueVouchers(100);
  ASSERT_TRUE(due.ok());
  EXPECT_THAT(*due, IsEmpty()) << "not yet expired";
  EXPECT_THAT(RejectCheckout(VoucherCloseOp{VoucherAccountId(v), VoucherCloseMode::kExpire, ""}),
              StatusIs(StatusCode::kFailedPrecondition, HasSubstr("voucher_close.mode")));

  clock_.SetMicros(expires);
  EXPECT_THAT(RejectCheckout(RedeemBody("CODE-A", kStore, "T-2", 1)),
              StatusIs(StatusCode::kFailedPrecondition, HasSubstr("expired")))
      << "a redemption at exactly the expiry instant is too late";

  due = ledger_->ExpireDueVouchers(100);
  ASSERT_TRUE(due.ok()) << due.status();
  ASSERT_EQ(due->size(), 1u);
  EXPECT_EQ((*due)[0].first, VoucherAccountId(v));
  const OpResult& expired = (*due)[0].second;
  ASSERT_TRUE(expired.status.ok()) << expired.status;
  EXPECT_EQ(expired.moved, 4'000);
  // What was left returned to the fund as the same lot.
  EXPECT_THAT(Pairs(HoldingsOf(kFund)), ElementsAre(std::pair{gift, int64_t{9'000}}));
  const VoucherInfo info = VoucherOf(v);
  EXPECT_EQ(info.status, VoucherStatus::kExpired);
  EXPECT_EQ(info.returned, 4'000);
  EXPECT_EQ(info.remaining, 0);
  EXPECT_EQ(info.closed_seq, expired.seq);
  EXPECT_EQ(EntryAt(expired.seq).entry.client_id,
            *NaturalClientId(VoucherCloseOp{VoucherAccountId(v), VoucherCloseMode::kExpire, ""}));

  // Sweeping again finds nothing; the expiry itself is idempotent.
  due = ledger_->ExpireDueVouchers(100);
  ASSERT_TRUE(due.ok());
  EXPECT_THAT(*due, IsEmpty());
  EXPECT_TRUE(Checkout(VoucherCloseOp{VoucherAccountId(v), VoucherCloseMode::kExpire, ""}).duplicate);
  EXPECT_THAT(RejectCheckout(RedeemBody("CODE-A", kStore, "T-3", 1)),
              StatusIs(StatusCode::kFailedPrecondition, HasSubstr("expired by entry")));

  // The donor's lot: into the fund, into the voucher, 1,000 redeemed at the
  // store, 4,000 back in the fund.
  const LotTrace trace = TraceOf(gift);
  EXPECT_EQ(ByAccount(trace.held), (std::map<std::string, int64_t>{{kFund, 9'000}}));
  EXPECT_EQ(ByAccount(trace.reached), (std::map<std::string, int64_t>{{kStore, 1'000}}));
}

TEST_F(CheckoutTest, VoidingReturnsWhatIsLeftAndNeedsAReason) {
  Donate(kDonor, kFund, 10'000);
  const uint64_t v = Issue("CODE-A", 5'000);
  MustCheckout(RedeemBody("CODE-A", kStore, "T-1", 500));
  EXPECT_THAT(Reject(VoucherCloseOp{VoucherAccountId(v), VoucherCloseMode::kVoid, ""}),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("voucher_close.reason")));
  EXPECT_THAT(Reject(VoucherCloseOp{"voucher/999", VoucherCloseMode::kVoid, "lost"}),
              StatusIs(StatusCode::kNotFound, HasSubstr("voucher/999")));
  EXPECT_THAT(Reject(VoucherCloseOp{kFund, VoucherCloseMode::kVoid, "lost"}),
              StatusIs(StatusCode::kNotFound, HasSubstr(kFund)));
  const uint64_t voided = MustRun(VoucherCloseOp{VoucherAccountId(v), VoucherCloseMode::kVoid,
                                                 "recipient moved away"});
  EXPECT_EQ(BalanceOf(kFund), 9'500);
  const VoucherInfo info = VoucherOf(v);
  EXPECT_EQ(info.status, VoucherStatus::kVoided);
  EXPECT_EQ(info.returned, 4'500);
  EXPECT_EQ(info.closed_seq, voided);
  EXPECT_THAT(Reject(VoucherCloseOp{VoucherAccountId(v), VoucherCloseMode::kVoid, "again"}),
              StatusIs(StatusCode::kFailedPrecondition, HasSubstr("already voided")));
  EXPECT_THAT(RejectCheckout(RedeemBody("CODE-A", kStore, "T-2", 1)),
              StatusIs(StatusCode::kFailedPrecondition, HasSubstr("voided")));
  // A fully redeemed voucher has nothing to return.
  const uint64_t used = Issue("CODE-B", 100);
  MustCheckout(RedeemBody("CODE-B", kStore, "T-3", 100));
  EXPECT_THAT(Reject(VoucherCloseOp{VoucherAccountId(used), VoucherCloseMode::kVoid, "x"}),
              StatusIs(StatusCode::kFailedPrecondition, HasSubstr("fully redeemed")));
}

TEST_F(CheckoutTest, VoucherValueChangesOnlyByRedemptionAndClose) {
  Donate(kDonor, kFund, 10'000);
  const uint64_t v = Issue("CODE-A", 5'000);
  const std::string account = VoucherAccountId(v);
  EXPECT_THAT(Reject(DonationBody(kDonor, account, 100)),
              StatusIs(StatusCode::kFailedPrecondition, HasSubstr(account)));
  EXPECT_THAT(Reject(AdjustBody(v, account, kRecipient, 100)),
              StatusIs(StatusCode::kFailedPrecondition, HasSubstr("correction.from")));
  EXPECT_THAT(Reject(AdjustBody(v, kFund, account, 100)),
              StatusIs(StatusCode::kFailedPrecondition, HasSubstr("correction.to")));
  EXPECT_THAT(Reject(ReverseBody(v)),
              StatusIs(StatusCode::kFailedPrecondition, HasSubstr("voucher_issue")));
  EXPECT_THAT(Reject(CloseBody(account)),
              StatusIs(StatusCode::kFailedPrecondition, HasSubstr("voucher")));
  EXPECT_THAT(Reject(CloseBody(kFund)), StatusIs(StatusCode::kFailedPrecondition));
  Disburse(kFund, kRecipient, 5'000);
  EXPECT_THAT(Reject(CloseBody(kFund)),
              StatusIs(StatusCode::kFailedPrecondition, HasSubstr("outstanding")))
      << "the fund must stay open to take back what the voucher holds";
}

TEST_F(CheckoutTest, AReversedRedemptionGivesTheVoucherItsValueAgain) {
  const uint64_t gift = Donate(kDonor, kFund, 10'000);
  const uint64_t v = Issue("CODE-A", 5'000);
  const OpResult first = MustCheckout(RedeemBody("CODE-A", kStore, "T-1", 3'000));
  MustCheckout(RedeemBody("CODE-A", kStore, "T-2", 500));
  const int64_t day = clock_.NowMicros();
  clock_.AdvanceMicros(kDayUs);
  const uint64_t back = Reverse(first.seq);  // the goods came back
  const StoredEntry e = EntryAt(back);
  EXPECT_EQ(e.entry.policy, "reverse/v1");
  EXPECT_EQ(e.entry.postings.at(0).from, kStore);
  EXPECT_EQ(e.entry.postings.at(0).to, VoucherAccountId(v));
  VoucherInfo info = VoucherOf(v);
  EXPECT_EQ(info.redeemed, 500);
  EXPECT_EQ(info.redemptions, 1u);
  EXPECT_EQ(info.remaining, 4'500);
  EXPECT_EQ(info.face, info.redeemed + info.returned + info.remaining);
  EXPECT_EQ(BalanceOf(kStore), 500);
  EXPECT_EQ(ByAccount(TraceOf(gift).held),
            (std::map<std::string, int64_t>{{kFund, 5'000}, {VoucherAccountId(v), 4'500}}));
  EXPECT_THAT(Reject(ReverseBody(first.seq)),
              StatusIs(StatusCode::kFailedPrecondition, HasSubstr("already reversed")));
  // The settlement shows the reversal on the day it happened.
  auto rows = ledger_->Settlement(kStore, day, day + 2 * kDayUs);
  ASSERT_TRUE(rows.ok());
  ASSERT_EQ(rows->size(), 1u);
  EXPECT_EQ((*rows)[0].redemptions, 2u);
  EXPECT_EQ((*rows)[0].redeemed, 3'500);
  EXPECT_EQ((*rows)[0].redemptions_reversed, 1u);
  EXPECT_EQ((*rows)[0].redeemed_reversed, 3'000);
  // The value can be redeemed again; once the voucher is voided, a
  // redemption can no longer return to it.
  const OpResult again = MustCheckout(RedeemBody("CODE-A", kStore, "T-3", 4'500));
  EXPECT_EQ(again.voucher_balance_after, 0);
  const uint64_t v2 = Issue("CODE-B", 1'000);
  const OpResult used = MustCheckout(RedeemBody("CODE-B", kStore, "T-4", 400));
  MustRun(VoucherCloseOp{VoucherAccountId(v2), VoucherCloseMode::kVoid, "card lost"});
  EXPECT_THAT(Reject(ReverseBody(used.seq)),
              StatusIs(StatusCode::kFailedPrecondition, HasSubstr("voided")));
  const std::string digest = ledger_->StateDigest();
  absl::StatusOr<std::string> rebuilt = ledger_->RebuildStateDigest();
  ASSERT_TRUE(rebuilt.ok());
  EXPECT_EQ(*rebuilt, digest);
}

TEST_F(CheckoutTest, ConcurrentRedemptionsNeverExceedTheFaceValue) {
  Donate(kDonor, kFund, 10'000);
  const uint64_t v = Issue("SHARED", 1'000);
  constexpr int kThreads = 16;
  constexpr int kAttempts = 40;
  std::atomic<int64_t> redeemed{0};
  std::atomic<int> refused{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kAttempts; ++i) {
        const std::string order = "T-" + std::to_string(t) + "-" + std::to_string(i);
        OpResult r = ledger_->SubmitOne(Natural(RedeemBody("SHARED", kStore, order, 7)));
        if (r.status.ok()) {
          redeemed += r.moved;
        } else {
          EXPECT_EQ(r.status.code(), StatusCode::kFailedPrecondition) << r.status;
          ++refused;
        }
      }
    });
  }
  for (std::thread& t : threads) t.join();
  // 1,000 / 7 = 142 redemptions fit; 6 fen stay.
  EXPECT_EQ(redeemed.load(), 994);
  EXPECT_EQ(refused.load(), kThreads * kAttempts - 142);
  const VoucherInfo info = VoucherOf(v);
  EXPECT_EQ(info.redeemed, 994);
  EXPECT_EQ(info.remaining, 6);
  EXPECT_EQ(BalanceOf(kStore), 994);
}

TEST_F(CheckoutTest, DonorTraceShowsVoucherStoreOrderAndDateButNotTheRecipient) {
  const uint64_t gift = Donate(kDonor, kFund, 2'000);
  const uint64_t v = Issue("CODE-A", 2'000);
  clock_.AdvanceMicros(3 * kDayUs);
  const OpResult r = MustCheckout(RedeemBody("CODE-A", kStore, "POS-77", 800));
  const LotTrace trace = TraceOf(gift);
  ASSERT_EQ(trace.hops.size(), 3u);
  EXPECT_EQ(trace.hops[1].type, EntryType::kVoucherIssue);
  EXPECT_EQ(trace.hops[1].from, kFund);
  EXPECT_EQ(trace.hops[1].to, VoucherAccountId(v));
  EXPECT_EQ(trace.hops[1].category, "low-income");
  EXPECT_EQ(trace.hops[1].community, "c-017");
  EXPECT_EQ(trace.hops[2].type, EntryType::kRedemption);
  EXPECT_EQ(trace.hops[2].from, VoucherAccountId(v));
  EXPECT_EQ(trace.hops[2].to, kStore);
  EXPECT_EQ(trace.hops[2].order_id, "POS-77");
  EXPECT_EQ(trace.hops[2].amount, 800);
  EXPECT_EQ(trace.hops[2].time_us, r.time_us);
  for (const TraceHop& hop : trace.hops) {
    EXPECT_NE(hop.from, kPoorRecipient);
    EXPECT_NE(hop.to, kPoorRecipient);
  }
  EXPECT_EQ(ByAccount(trace.held),
            (std::map<std::string, int64_t>{{VoucherAccountId(v), 1'200}}));
  EXPECT_EQ(ByAccount(trace.reached), (std::map<std::string, int64_t>{{kStore, 800}}));
}

// ===================================================================
// Reports
// ===================================================================

TEST_F(CheckoutTest, SettlementTotalsEqualTheSumsOfTheEntries) {
  Donate(kDonor, kFund, 100'000);
  Issue("V1", 20'000);
  Issue("V2", 20'000, 30 * kDayUs, {kStore2});
  const int64_t day0 = clock_.NowMicros();
  // Three days of mixed checkout at two stores.
  uint64_t n = 0;
  for (int day = 0; day < 3; ++day) {
    clock_.SetMicros(day0 + day * kDayUs);
    for (int i = 0; i < 40; ++i) {
      const std::string store = i % 3 == 0 ? kStore2 : kStore;
      const std::string order = "D" + std::to_string(day) + "-" + std::to_string(i);
      MustCheckout(PurchaseBody(store, order, 1'000 + 137 * i + day, i % 2 ? kMember : ""));
      if (i % 5 == 4) MustCheckout(RefundBody(store, order, "rf-" + order, 333 + i));
      if (i % 7 == 0) {
        MustCheckout(RedeemBody(store == kStore2 ? "V2" : "V1", store, order, 100 + i));
      }
      clock_.AdvanceMicros(1'000'000);
      ++n;
    }
  }
  // The same figures, summed from the entries themselves.
  std::map<std::pair<int, std::string>, StoreSettlement> expected;
  for (const StoredEntry& s : AllEntries()) {
    const Entry& e = s.entry;
    const int day = static_cast<int>((e.time_us - day0) / kDayUs);
    int64_t moved = 0;
    for (const Posting& p : e.postings) moved += p.amount;
    if (const auto* p = std::get_if<PurchaseOp>(&e.body)) {
      StoreSettlement& row = expected[{day, p->store}];
      ++row.purchases;
      row.purchase_amount += p->amount;
      row.contributions += moved;
    } else if (const auto* r = std::get_if<RefundOp>(&e.body)) {
      StoreSettlement& row = expected[{day, r->store}];
      ++row.refunds;
      row.refund_amount += r->amount;
      row.reversals += moved;
    } else if (const auto* r = std::get_if<RedemptionOp>(&e.body)) {
      StoreSettlement& row = expected[{day, r->store}];
      ++row.redemptions;
      row.redeemed += r->amount;
    }
  }
  for (int day = 0; day < 3; ++day) {
    SCOPED_TRACE(day);
    absl::StatusOr<std::vector<StoreSettlement>> rows =
        ledger_->Settlement("", day0 + day * kDayUs, day0 + (day + 1) * kDayUs);
    ASSERT_TRUE(rows.ok()) << rows.status();
    ASSERT_EQ(rows->size(), 2u);
    for (const StoreSettlement& row : *rows) {
      StoreSettlement want = expected[{day, row.store}];
      want.store = row.store;
      want.asset = kCny;
      EXPECT_EQ(row, want) << row.store;
      EXPECT_GT(row.purchases, 0u);
    }
  }
  absl::StatusOr<std::vector<StoreSettlement>> one =
      ledger_->Settlement(kStore2, day0, day0 + 3 * kDayUs);
  ASSERT_TRUE(one.ok());
  ASSERT_EQ(one->size(), 1u);
  uint64_t purchases = 0;
  for (int day = 0; day < 3; ++day) purchases += expected[{day, kStore2}].purchases;
  EXPECT_EQ((*one)[0].purchases, purchases);
  EXPECT_THAT(ledger_->Settlement(kFund, day0, day0 + 1).status(),
              StatusIs(StatusCode::kFailedPrecondition, HasSubstr(kFund)));
  EXPECT_THAT(ledger_->Settlement("", day0, day0).status(),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("to_time_us")));

  // Everything above replays to the same state.
  const std::string digest = ledger_->StateDigest();
  absl::StatusOr<std::string> rebuilt = ledger_->RebuildStateDigest();
  ASSERT_TRUE(rebuilt.ok()) << rebuilt.status();
  EXPECT_EQ(*rebuilt, digest);
  Reopen();
  EXPECT_EQ(ledger_->StateDigest(), digest);
}

TEST_F(CheckoutTest, VoucherReportByFundAndCategory) {
  Donate(kDonor, kFund, 100'000);
  Donate(kDonor, kFund2, 100'000);
  OpenAccountOp elder = OpenBody("recipient/p-000102", AccountKind::kRecipient);
  elder.category = "elderly";
  elder.community = "c-003";
  MustRun(elder);
  Issue("A", 1'000);                                  // redeemed in full
  Issue("B", 2'000, kDayUs);                          // expires with 1,500 left
  const uint64_t c = Issue("C", 3'000);               // voided with 3,000
  VoucherIssueOp d_op = IssueBody("D", 4'000, 30 * kDayUs, {}, kFund2);
  d_op.recipient = "recipient/p-000102";
  MustRun(d_op);                                      // outstanding, 3,000 left
  MustCheckout(RedeemBody("A", kStore, "o1", 1'000));
  MustCheckout(RedeemBody("B", kStore, "o2", 500));
  MustCheckout(RedeemBody("D", kStore, "o3", 1'000));
  MustRun(VoucherCloseOp{VoucherAccountId(c), VoucherCloseMode::kVoid, "duplicate issue"});
  clock_.AdvanceMicros(kDayUs);
  ASSERT_TRUE(ledger_->ExpireDueVouchers(10).ok());

  absl::StatusOr<VoucherReport> report = ledger_->GetVoucherReport();
  ASSERT_TRUE(report.ok()) << report.status();
  ASSERT_EQ(report->total.size(), 1u);
  const VoucherTotals& t = report->total[0];
  EXPECT_EQ(t.asset, kCny);
  EXPECT_EQ(t.issued, 4u);
  EXPECT_EQ(t.issued_amount, 10'000);
  EXPECT_EQ(t.redemptions, 3u);
  EXPECT_EQ(t.redeemed_amount, 2'500);
  EXPECT_EQ(t.fully_redeemed, 1u);
  EXPECT_EQ(t.expired, 1u);
  EXPECT_EQ(t.expired_amount, 1'500);
  EXPECT_EQ(t.voided, 1u);
  EXPECT_EQ(t.voided_amount, 3'000);
  EXPECT_EQ(t.outstanding, 1u);
  EXPECT_EQ(t.outstanding_amount, 3'000);
  EXPECT_EQ(t.redeemed_amount + t.expired_amount + t.voided_amount + t.outstanding_amount,
            t.issued_amount);
  ASSERT_EQ(report->by_fund.size(), 2u);
  // Sorted by key: fund/disaster, then fund/general.
  EXPECT_EQ(report->by_fund[0].key, kFund2);
  EXPECT_EQ(report->by_fund[0].outstanding_amount, 3'000);
  EXPECT_EQ(report->by_fund[1].key, kFund);
  EXPECT_EQ(report->by_fund[1].issued_amount, 6'000);
  EXPECT_EQ(report->by_fund[1].outstanding_amount, 0);
  ASSERT_EQ(report->by_category.size(), 2u);
  EXPECT_EQ(report->by_category[0].key, "elderly");
  EXPECT_EQ(report->by_category[0].issued, 1u);
  EXPECT_EQ(report->by_category[1].key, "low-income");
  EXPECT_EQ(report->by_category[1].issued, 3u);
}

TEST_F(CheckoutTest, ALinkedChainThatFailsUndoesVoucherAndRefundState) {
  Donate(kDonor, kFund, 10'000);
  MustCheckout(PurchaseBody(kStore, "L-1", 10'000, kMember));
  const std::string digest = ledger_->StateDigest();
  const LedgerHead head = ledger_->Head();
  std::vector<Operation> chain;
  chain.push_back(Operation{"issue-1", true, IssueBody("LINKED", 1'000, kDayUs)});
  chain.push_back(Operation{"", true, RedeemBody("LINKED", kStore, "L-2", 400)});
  chain.push_back(Operation{"", true, RefundBody(kStore, "L-1", "rf-1", 5'000)});
  chain.push_back(Operation{"", true, PurchaseBody(kStore, "L-3", 700, "member/new")});
  chain.push_back(Operation{"", false, RedeemBody("LINKED", kStore, "L-4", 601)});  // fails
  std::vector<OpResult> results = ledger_->Submit(std::move(chain));
  ASSERT_EQ(results.size(), 5u);
  EXPECT_EQ(results[4].status.code(), StatusCode::kFailedPrecondition) << results[4].status;
  for (int i = 0; i < 4; ++i) EXPECT_EQ(results[i].status.code(), StatusCode::kAborted);
  EXPECT_EQ(ledger_->Head().seq, head.seq);
  EXPECT_EQ(ledger_->StateDigest(), digest);
  // Everything the chain would have used is still free.
  MustRun(IssueBody("LINKED", 1'000, kDayUs));
  EXPECT_EQ(MustCheckout(RefundBody(kStore, "L-1", "rf-1", 5'000)).moved, 100);
}

// ===================================================================
// A random stream: every invariant after every batch
// ===================================================================

// A seeded stream of checkout, voucher and office operations — valid and
// invalid, retried, in linked chains that may fail — checked after every
// batch against what must hold whatever the outcomes: value is conserved;
// each purchase lot's holdings in the fund agree with its trace (entries);
// each voucher's face = redeemed + returned + remaining, and remaining is
// what its account holds; no order's reversals exceed its contribution; the
// rebuilt state equals the live one. The stream depends only on the seed.
class CheckoutStreamTest : public CheckoutTest, public ::testing::WithParamInterface<uint64_t> {
 protected:
  uint64_t Pick(uint64_t n) { return std::uniform_int_distribution<uint64_t>(0, n - 1)(rng_); }
  bool Chance(int percent) { return Pick(100) < static_cast<uint64_t>(percent); }

  OpBody NextBody() {
    const std::string store = Chance(70) ? kStore : kStore2;
    switch (Pick(12)) {
      case 0:
      case 1:
      case 2: {  // a new purchase, or a retry (same or changed) of an earlier one
        if (!orders_.empty() && Chance(15)) {
          PurchaseOp again = orders_[Pick(orders_.size())];
          if (Chance(30)) again.amount += 1;
          return again;
        }
        PurchaseOp op = PurchaseBody(store, "o-" + std::to_string(++next_order_),
                                     1 + static_cast<int64_t>(Pick(40'000)),
                                     Chance(30) ? kMember : "");
        orders_.push_back(op);
        return op;
      }
      case 3:
      case 4: {  // a refund of some order, sometimes more than is left
        if (orders_.empty()) return DonationBody(kDonor, kFund, 1'000);
        const PurchaseOp& o = orders_[Pick(orders_.size())];
        return RefundBody(o.store, o.order_id, "rf-" + std::to_string(++next_refund_),
                          1 + static_cast<int64_t>(Pick(static_cast<uint64_t>(o.amount))));
      }
      case 5:
        return DonationBody(Chance(50) ? kDonor : kDonor2, kFund,
                            1 + static_cast<int64_t>(Pick(5'000)));
      case 6:
        return Chance(50) ? OpBody(AllocationBody(kFund, kFund2, 1 + static_cast<int64_t>(Pick(3'000))))
                          : OpBody(DisbursementBody(kFund, kRecipient,
                                                    1 + static_cast<int64_t>(Pick(9'000))));
      case 7: {  // a voucher, from either fund, perhaps only at one store
        const std::string code = "code-" + std::to_string(++next_voucher_);
        codes_.push_back(code);
        VoucherIssueOp op = IssueBody(code, 1 + static_cast<int64_t>(Pick(4'000)),
                                      static_cast<int64_t>(1 + Pick(20)) * 60'000'000,
                                      Chance(30) ? std::vector<std::string>{store}
                                                 : std::vector<std::string>{},
                                      Chance(80) ? kFund : kFund2);
        return op;
      }
      case 8:
      case 9: {
        if (codes_.empty()) return DonationBody(kDonor, kFund, 1'000);
        return RedeemBody(codes_[Pick(codes_.size())], store,
                          "t-" + std::to_string(++next_order_),
                          1 + static_cast<int64_t>(Pick(1'500)));
      }
      case 10: {  // void some voucher (its seq is found through its code)
        if (codes_.empty()) return DonationBody(kDonor, kFund, 1'000);
        auto v = ledger_->FindVoucherByCodeHash(CodeHash(codes_[Pick(codes_.size())]));
        if (!v.ok()) return DonationBody(kDonor, kFund, 1'000);
        return VoucherCloseOp{v->account, VoucherCloseMode::kVoid, "stream void"};
      }
      default: {  // reverse a donation (rebuilds the fund's slice list) or a redemption
        if (!redemptions_.empty() && Chance(50)) {
          return ReverseBody(redemptions_[Pick(redemptions_.size())]);
        }
        if (gifts_.empty()) return DonationBody(kDonor, kFund, 1'000);
        return ReverseBody(gifts_[Pick(gifts_.size())]);
      }
    }
  }

  Operation NextOp() {
    OpBody body = NextBody();
    Operation op;
    if (!NaturalClientId(body)) op.client_id = NextClientId();
    op.linked = Chance(15);
    op.body = std::move(body);
    return op;
  }

  void CheckInvariants() {
    absl::StatusOr<std::vector<Balance>> totals = ledger_->TotalsPerAsset();
    ASSERT_TRUE(totals.ok());
    for (const Balance& b : *totals) EXPECT_EQ(b.amount, 0) << b.asset;
    std::map<uint64_t, int64_t> in_fund;  // lot → held in kFund (state)
    for (const Slice& s : HoldingsOf(kFund)) in_fund[s.lot] += s.amount;
    std::map<std::pair<std::string, std::string>, std::pair<int64_t, int64_t>> order_money;
    for (const StoredEntry& stored : AllEntries()) {
      const Entry& e = stored.entry;
      int64_t moved = 0;
      for (const Posting& p : e.postings) moved += p.amount;
      if (const auto* p = std::get_if<PurchaseOp>(&e.body)) {
        order_money[{p->store, p->order_id}].first = moved;
        if (moved == 0) continue;
        // The purchase lot: its trace (from the entries) and the fund's
        // holdings (the state) agree on what the fund still holds of it.
        const LotTrace trace = TraceOf(e.seq);
        EXPECT_EQ(ByAccount(trace.held)[kFund], in_fund[e.seq]) << "lot " << e.seq;
      } else if (const auto* r = std::get_if<RefundOp>(&e.body)) {
        order_money[{r->store, r->order_id}].second += moved;
      } else if (std::holds_alternative<DonationOp>(e.body) && e.seq > seen_) {
        gifts_.push_back(e.seq);
      } else if (std::holds_alternative<RedemptionOp>(e.body) && e.seq > seen_) {
        redemptions_.push_back(e.seq);
      } else if (std::holds_alternative<VoucherIssueOp>(e.body)) {
        const VoucherInfo v = VoucherOf(e.seq);
        EXPECT_EQ(v.face, v.redeemed + v.returned + v.remaining) << v.account;
        EXPECT_EQ(v.remaining, BalanceOf(v.account)) << v.account;
        int64_t held = 0;
        for (const Slice& s : HoldingsOf(v.account)) held += s.amount;
        EXPECT_EQ(held, v.remaining) << v.account;
      }
    }
    seen_ = ledger_->Head().seq;
    for (const auto& [order, money] : order_money) {
      EXPECT_LE(money.second, money.first) << order.first << " " << order.second;
    }
  }

  std::mt19937_64 rng_{GetParam()};
  std::vector<PurchaseOp> orders_;
  std::vector<std::string> codes_;
  std::vector<uint64_t> gifts_;
  std::vector<uint64_t> redemptions_;
  uint64_t seen_ = 0;  // entries already looked at for gifts and redemptions
  uint64_t next_order_ = 0;
  uint64_t next_refund_ = 0;
  uint64_t next_voucher_ = 0;
};

TEST_P(CheckoutStreamTest, EveryInvariantHoldsAfterEveryBatch) {
  Donate(kDonor, kFund, 20'000);
  Donate(kDonor2, kFund2, 50'000);
  uint64_t ok = 0;
  uint64_t covered = 0;  // refunds whose own lot was (partly) spent
  for (int batch = 0; batch < 40; ++batch) {
    SCOPED_TRACE(::testing::Message() << "seed " << GetParam() << ", batch " << batch);
    std::vector<Operation> ops;
    const uint64_t n = 1 + Pick(40);
    for (uint64_t i = 0; i < n; ++i) ops.push_back(NextOp());
    ops.back().linked = false;
    for (const OpResult& r : ledger_->Submit(std::move(ops))) {
      ok += r.status.ok();
      covered += r.status.ok() && r.covered_by_fund > 0;
    }
    if (Chance(30)) clock_.AdvanceMicros(static_cast<int64_t>(Pick(10)) * 60'000'000);
    if (Chance(20)) {
      ASSERT_TRUE(ledger_->ExpireDueVouchers(100).ok());
    }
    ASSERT_NO_FATAL_FAILURE(CheckInvariants());
    if (batch % 10 == 9) {
      absl::StatusOr<std::string> rebuilt = ledger_->RebuildStateDigest();
      ASSERT_TRUE(rebuilt.ok()) << rebuilt.status();
      ASSERT_EQ(*rebuilt, ledger_->StateDigest());
    }
  }
  EXPECT_GT(ok, 300u) << "the stream should mostly succeed";
  EXPECT_GT(covered, 0u) << "the stream should refund contributions already spent";
  const std::string digest = ledger_->StateDigest();
  Reopen();
  EXPECT_EQ(ledger_->StateDigest(), digest);
}

INSTANTIATE_TEST_SUITE_P(Seeds, CheckoutStreamTest, ::testing::Values(1, 2, 3));

}  // namespace
}  // namespace warmledger

// Tests of the engine's contract (ledger/ledger.h) against docs/rules.md and
// docs/format.md: every rule in its positive and negative space, that an
// error's code is chosen by meaning and its message names the field or the
// account, and that a rejected operation writes nothing (the head and the
// state digest do not move). Each test gets a fresh RocksDB folder and a
// ManualClock; nothing sleeps.

#include "ledger/entry_codec.h"
#include "ledger/ledger.h"

#include <stdlib.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <filesystem>
#include <future>
#include <iterator>
#include <limits>
#include <map>
#include <memory>
#include <ostream>
#include <string>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "ledger/clock.h"
#include "ledger/ledger_testing.h"
#include "ledger/limits.h"
#include "ledger/types.h"

namespace warmledger {
namespace {

using ::testing::AllOf;
using ::testing::AnyOf;
using ::testing::Eq;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

class LedgerReadTest : public LedgerTest {};
class LedgerClientIdTest : public LedgerTest {};
class LedgerOpenAccountTest : public LedgerTest {};
class LedgerCloseAccountTest : public LedgerTest {};
class LedgerDonationTest : public LedgerTest {};
class LedgerAllocationTest : public LedgerTest {};
class LedgerDisbursementTest : public LedgerTest {};
class LedgerReverseTest : public LedgerTest {};
class LedgerAdjustTest : public LedgerTest {};
class LedgerOverflowTest : public LedgerTest {};
class LedgerIdempotencyTest : public LedgerTest {};
class LedgerBatchTest : public LedgerTest {};
class LedgerTraceTest : public LedgerTest {};
class LedgerScaleTest : public LedgerTest {};
class LedgerTimeTest : public LedgerTest {};
class LedgerPersistenceTest : public LedgerTest {};
class LedgerConcurrencyTest : public LedgerTest {};

// ===================================================================
// Reads and the chain
// ===================================================================

TEST_F(LedgerReadTest, EmptyLedgerHasZeroHeadAndVerifies) {
  const LedgerHead head = ledger_->Head();
  EXPECT_EQ(head.seq, 0u);
  EXPECT_EQ(head.hash, Hash{});
  EXPECT_THAT(ledger_->ReadEntry(0).status(), StatusIs(StatusCode::kNotFound));
  EXPECT_THAT(ledger_->ReadEntry(1).status(), StatusIs(StatusCode::kNotFound));
  EXPECT_TRUE(ledger_->VerifyChain().ok());
  absl::StatusOr<std::string> rebuilt = ledger_->RebuildStateDigest();
  ASSERT_TRUE(rebuilt.ok()) << rebuilt.status();
  EXPECT_EQ(*rebuilt, ledger_->StateDigest());
}

TEST_F(LedgerReadTest, EntriesAreDenseAndChainedByHash) {
  OpenAccount(kDonor, AccountKind::kDonor);
  OpenFund(kFund);
  const Operation gift{"gift-0001", false, DonationBody(kDonor, kFund, 500)};
  OpResult given = ledger_->SubmitOne(gift);
  ASSERT_TRUE(given.status.ok()) << given.status;

  const std::vector<StoredEntry> entries = AllEntries();
  ASSERT_EQ(entries.size(), 3u);
  for (size_t i = 0; i < entries.size(); ++i) {
    EXPECT_EQ(entries[i].entry.seq, i + 1);
    EXPECT_EQ(entries[i].entry.version, kEntryVersion);
    EXPECT_EQ(entries[i].entry.prev_hash, i == 0 ? Hash{} : entries[i - 1].hash);
  }
  EXPECT_EQ(ledger_->Head().seq, 3u);
  EXPECT_EQ(ledger_->Head().hash, entries.back().hash);
  EXPECT_EQ(entries[2].entry.client_id, "gift-0001");
  EXPECT_EQ(entries[2].entry.type(), EntryType::kDonation);
  EXPECT_TRUE(entries[2].entry.body == gift.body) << "the body is recorded as requested";
  EXPECT_THAT(ledger_->ReadEntry(4).status(), StatusIs(StatusCode::kNotFound));
  EXPECT_TRUE(ledger_->VerifyChain().ok());
}

TEST_F(LedgerReadTest, WriteStatsCountWhatTheCommitsWrote) {
  const WriteStats empty = ledger_->GetWriteStats();
  EXPECT_EQ(empty.commits, 0u);
  EXPECT_EQ(empty.entries, 0u);
  OpenAccount(kDonor, AccountKind::kDonor);
  OpenFund(kFund);
  const Operation gift{"gift-0001", false, DonationBody(kDonor, kFund, 500)};
  ASSERT_TRUE(ledger_->SubmitOne(gift).status.ok());
  const WriteStats after = ledger_->GetWriteStats();
  EXPECT_EQ(after.entries, 3u);
  EXPECT_GE(after.commits, 1u);
  EXPECT_LE(after.commits, 3u);
  // Each commit writes its entries and at least the tile they extend.
  EXPECT_GE(after.keys, after.entries + after.commits);
  size_t entry_bytes = 0;
  for (const StoredEntry& e : AllEntries()) entry_bytes += e.bytes.size();
  EXPECT_GT(after.bytes, entry_bytes);
  EXPECT_GT(after.write_ns, 0);

  // A retry and a rejected operation write nothing.
  ASSERT_TRUE(ledger_->SubmitOne(gift).status.ok());
  EXPECT_FALSE(
      ledger_->SubmitOne({"gift-0002", false, DonationBody(kDonor, "fund/none", 500)}).status.ok());
  const WriteStats unchanged = ledger_->GetWriteStats();
  EXPECT_EQ(unchanged.entries, after.entries);
  EXPECT_EQ(unchanged.keys, after.keys);
  EXPECT_EQ(unchanged.bytes, after.bytes);
}

TEST_F(LedgerReadTest, UnknownThingsAreNotFound) {
  const uint64_t opened = OpenFund(kFund);
  OpenAccount(kDonor, AccountKind::kDonor);
  EXPECT_THAT(ledger_->GetAccount("fund/none").status(),
              StatusIs(StatusCode::kNotFound, HasSubstr("fund/none")));
  EXPECT_THAT(ledger_->GetHoldings("fund/none", 0, 10).status(),
              StatusIs(StatusCode::kNotFound, HasSubstr("fund/none")));
  EXPECT_THAT(ledger_->GetLot(999).status(), StatusIs(StatusCode::kNotFound));
  EXPECT_THAT(ledger_->GetLot(opened).status(), StatusIs(StatusCode::kNotFound))
      << "an OPEN_ACCOUNT entry creates no lot";
  EXPECT_THAT(ledger_->TraceLot(999).status(), StatusIs(StatusCode::kNotFound));
  EXPECT_THAT(ledger_->TraceEntry(999, 0, 10).status(), StatusIs(StatusCode::kNotFound));
  EXPECT_THAT(ledger_->DonorStatement("donor/none", 0, 10).status(),
              StatusIs(StatusCode::kNotFound, HasSubstr("donor/none")));
}

TEST_F(LedgerReadTest, SumOfAllBalancesIsZeroPerAsset) {
  OpenStandardAccounts();
  const uint64_t gift = Donate(kDonor, kFund, 10'000);
  Donate(kDonor2, kProject, 7'000);
  Donate(kMerchant, kFund, 300);
  Allocate(kFund, kProject2, 4'000);
  Disburse(kProject, kRecipient, 2'500);
  Disburse(kFund, kSupplier, 1'000);
  Disburse(kProject2, kExpense, 99);
  MustRun(AdjustBody(gift, kProject2, kFund2, 1));
  int64_t sum = 0;
  for (const char* account : {kDonor, kDonor2, kMerchant, kFund, kFund2, kRestrictedFund,
                              kProject, kProject2, kRecipient, kRecipient2, kSupplier,
                              kExpense}) {
    sum += BalanceOf(account);
  }
  EXPECT_EQ(sum, 0);
  auto totals = ledger_->TotalsPerAsset();
  ASSERT_TRUE(totals.ok()) << totals.status();
  for (const Balance& total : *totals) {
    EXPECT_EQ(total.amount, 0) << total.asset;
  }
}

TEST_F(LedgerReadTest, TotalsPerAssetAreNamedInCodeOrderWhateverOrderAssetsFirstAppeared) {
  OpenAccount("fund/usd", AccountKind::kFund, "USD");  // USD is seen before CNY
  OpenAccount(kDonor, AccountKind::kDonor);
  OpenFund(kFund);
  MustRun(DonationBody(kDonor, "fund/usd", 700, "USD"));
  Donate(kDonor, kFund, 300);
  auto totals = ledger_->TotalsPerAsset();
  ASSERT_TRUE(totals.ok()) << totals.status();
  ASSERT_EQ(totals->size(), 2u);
  EXPECT_EQ((*totals)[0].asset, "CNY");
  EXPECT_EQ((*totals)[1].asset, "USD");
  EXPECT_EQ((*totals)[0].amount, 0);
  EXPECT_EQ((*totals)[1].amount, 0);
}

// ===================================================================
// Client ids (common to every operation)
// ===================================================================

TEST_F(LedgerClientIdTest, EmptyClientIdIsInvalid) {
  EXPECT_THAT(RejectOp(Operation{"", false, OpenBody(kDonor, AccountKind::kDonor)}),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("client_id")));
}

TEST_F(LedgerClientIdTest, ClientIdOfMaxLengthIsAcceptedButOneMoreIsInvalid) {
  EXPECT_THAT(RejectOp(Operation{std::string(kClientIdBytesMax + 1, 'x'), false,
                                 OpenBody(kDonor, AccountKind::kDonor)}),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("client_id")));
  OpResult ok = ledger_->SubmitOne(Operation{std::string(kClientIdBytesMax, 'x'), false,
                                             OpenBody(kDonor, AccountKind::kDonor)});
  EXPECT_TRUE(ok.status.ok()) << ok.status;
}

TEST_F(LedgerClientIdTest, ClientIdOutsidePrintableAsciiIsInvalid) {
  for (const std::string& id : {std::string("a b"), std::string("a\tb"), std::string("a\x7f"),
                               std::string("caf\xc3\xa9"), std::string("a\0b", 3)}) {
    SCOPED_TRACE(id);
    EXPECT_THAT(RejectOp(Operation{id, false, OpenBody(kDonor, AccountKind::kDonor)}),
                StatusIs(StatusCode::kInvalidArgument, HasSubstr("client_id")));
  }
  OpResult ok = ledger_->SubmitOne(
      Operation{"!~order#2024/99:giving-day", false, OpenBody(kDonor, AccountKind::kDonor)});
  EXPECT_TRUE(ok.status.ok()) << ok.status;
}

// ===================================================================
// Open account
// ===================================================================

TEST_F(LedgerOpenAccountTest, EveryKindOpensAndIsDescribedByGetAccount) {
  struct Case {
    const char* account;
    AccountKind kind;
    const char* asset;
  };
  const Case cases[] = {
      {"donor/1", AccountKind::kDonor, ""},
      {"fund/1", AccountKind::kFund, "CNY"},
      {"project/1", AccountKind::kProject, "CNY"},
      {"stock/1", AccountKind::kStock, "item:rice-5kg"},
      {"recipient/1", AccountKind::kRecipient, ""},
      {"merchant/1", AccountKind::kMerchant, ""},
      {"supplier/1", AccountKind::kSupplier, "CNY"},
      {"expense/1", AccountKind::kExpense, ""},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.account);
    const uint64_t seq = OpenAccount(c.account, c.kind, c.asset);
    EXPECT_EQ(seq, ledger_->Head().seq);
    absl::StatusOr<AccountInfo> info = ledger_->GetAccount(c.account);
    ASSERT_TRUE(info.ok()) << info.status();
    EXPECT_EQ(info->account, c.account);
    EXPECT_EQ(info->kind, c.kind);
    EXPECT_EQ(info->asset, c.asset);
    EXPECT_EQ(info->flags, 0u);
    EXPECT_EQ(info->name, std::string("display name of ") + c.account);
    EXPECT_FALSE(info->closed);
    EXPECT_EQ(info->opened_seq, seq);
    EXPECT_EQ(info->slice_count, 0u);
    for (const Balance& b : info->balances) EXPECT_EQ(b.amount, 0) << b.asset;
    EXPECT_EQ(EntryAt(seq).entry.postings.size(), 0u) << "OPEN_ACCOUNT has no postings";
  }
  EXPECT_EQ(ledger_->Head().seq, 8u);
}

TEST_F(LedgerOpenAccountTest, VoucherAccountsAreOnlyOpenedByVoucherIssue) {
  EXPECT_THAT(Reject(OpenBody("wallet/1", AccountKind::kVoucher, kCny)),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("voucher_issue")));
  for (const char* id : {"voucher/1", "voucher/42"}) {
    EXPECT_THAT(Reject(OpenBody(id, AccountKind::kFund, kCny)),
                StatusIs(StatusCode::kInvalidArgument, HasSubstr(id)));
  }
  // Only voucher/<n> is kept: other ids under voucher/ are ordinary.
  OpenFund("voucher/pool");
  OpenFund("voucher/07");
}

TEST_F(LedgerOpenAccountTest, RestrictedFundKeepsItsFlag) {
  OpenFund(kRestrictedFund, kAccountRestricted);
  absl::StatusOr<AccountInfo> info = ledger_->GetAccount(kRestrictedFund);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->flags, kAccountRestricted);
}

TEST_F(LedgerOpenAccountTest, DuplicateIdIsAlreadyExists) {
  OpenFund(kFund);
  EXPECT_THAT(Reject(OpenBody(kFund, AccountKind::kFund, kCny)),
              StatusIs(StatusCode::kAlreadyExists, HasSubstr(kFund)));
  EXPECT_THAT(Reject(OpenBody(kFund, AccountKind::kDonor)),
              StatusIs(StatusCode::kAlreadyExists, HasSubstr(kFund)))
      << "the id is taken whatever the kind";
}

TEST_F(LedgerOpenAccountTest, HoldingKindWithoutAssetIsInvalid) {
  for (AccountKind kind : {AccountKind::kFund, AccountKind::kProject, AccountKind::kStock}) {
    SCOPED_TRACE(AccountKindName(kind));
    EXPECT_THAT(Reject(OpenBody("holding/1", kind, "")),
                StatusIs(StatusCode::kInvalidArgument, HasSubstr("asset")));
  }
}

TEST_F(LedgerOpenAccountTest, ExternalKindMayNameAnAssetOrNone) {
  OpenAccount("donor/any", AccountKind::kDonor, "");
  OpenAccount("donor/cny", AccountKind::kDonor, kCny);
  OpenAccount("recipient/goods", AccountKind::kRecipient, "item:vegetables");
  EXPECT_EQ(ledger_->Head().seq, 3u);
}

TEST_F(LedgerOpenAccountTest, RestrictedFlagOnNonFundIsInvalid) {
  struct Case {
    AccountKind kind;
    const char* asset;
  };
  for (const Case& c : {Case{AccountKind::kProject, kCny}, Case{AccountKind::kStock, "item:rice"}, Case{AccountKind::kDonor, ""},
                        Case{AccountKind::kRecipient, ""}, Case{AccountKind::kExpense, ""}}) {
    SCOPED_TRACE(AccountKindName(c.kind));
    EXPECT_THAT(Reject(OpenBody("acct/restricted", c.kind, c.asset, kAccountRestricted)),
                StatusIs(StatusCode::kInvalidArgument, HasSubstr("flags")));
  }
}

TEST_F(LedgerOpenAccountTest, UnknownFlagBitsAreInvalid) {
  for (uint32_t flags : {2u, 4u, 1u << 31, kAccountRestricted | 8u}) {
    SCOPED_TRACE(flags);
    EXPECT_THAT(Reject(OpenBody(kFund, AccountKind::kFund, kCny, flags)),
                StatusIs(StatusCode::kInvalidArgument, HasSubstr("flags")));
  }
}

TEST_F(LedgerOpenAccountTest, KindOutOfRangeIsInvalid) {
  for (int kind : {0, kAccountKindMax + 1, 255}) {
    SCOPED_TRACE(kind);
    EXPECT_THAT(Reject(OpenBody("acct/1", static_cast<AccountKind>(kind), kCny)),
                StatusIs(StatusCode::kInvalidArgument, HasSubstr("kind")));
  }
}

TEST_F(LedgerOpenAccountTest, BadAccountIdCharactersAreInvalid) {
  for (const std::string& id :
       {std::string(""), std::string("fund general"), std::string("fund#1"),
        std::string("fund\n"), std::string("fund,1"), std::string("fund*"),
        std::string("fund@home"), std::string("\xe5\x9f\xba\xe9\x87\x91"),
        std::string("fund\0x", 6)}) {
    SCOPED_TRACE(id);
    EXPECT_THAT(Reject(OpenBody(id, AccountKind::kFund, kCny)),
                StatusIs(StatusCode::kInvalidArgument, HasSubstr("account")));
  }
}

TEST_F(LedgerOpenAccountTest, EveryAllowedAccountIdCharacterIsAccepted) {
  OpenFund("Fund.general_2024:a/b-c");
  OpenAccount("ABCDEFGHIJKLMNOPQRSTUVWXYZ._:/-", AccountKind::kDonor);
  OpenAccount("abcdefghijklmnopqrstuvwxyz0123456789", AccountKind::kDonor);
}

TEST_F(LedgerOpenAccountTest, AccountIdOfMaxLengthOpensButOneMoreIsInvalid) {
  OpenFund(std::string(kAccountIdBytesMax, 'f'));
  EXPECT_THAT(Reject(OpenBody(std::string(kAccountIdBytesMax + 1, 'g'), AccountKind::kFund,
                              kCny)),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("account")));
}

TEST_F(LedgerOpenAccountTest, MalformedAssetCodesAreInvalid) {
  for (const std::string& asset :
       {std::string("cny"), std::string("CN"), std::string("CNYY"), std::string("C1Y"),
        std::string("Cny"), std::string("item:"), std::string("item:UPPER"),
        std::string("item:rice 5kg"), std::string("item:rice/5kg"), std::string("Item:rice"),
        std::string("items:rice"), std::string("item"), std::string("item:") +
        std::string(41, 'a')}) {
    SCOPED_TRACE(asset);
    EXPECT_THAT(Reject(OpenBody(kFund, AccountKind::kFund, asset)),
                StatusIs(StatusCode::kInvalidArgument, HasSubstr("asset")));
  }
  EXPECT_THAT(Reject(OpenBody(kDonor, AccountKind::kDonor, "cny")),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("asset")))
      << "an external account's optional asset must still be well-formed";
}

TEST_F(LedgerOpenAccountTest, WellFormedAssetCodesAreAccepted) {
  OpenAccount("fund/usd", AccountKind::kFund, "USD");
  OpenAccount("stock/a", AccountKind::kStock, "item:a");
  OpenAccount("stock/b", AccountKind::kStock, "item:disinfectant-500ml");
  OpenAccount("stock/c", AccountKind::kStock, "item:a.b_c-9");
  OpenAccount("stock/d", AccountKind::kStock, "item:" + std::string(40, 'z'));
}

TEST_F(LedgerOpenAccountTest, RecipientKeepsCategoryAndCommunity) {
  OpenAccountOp op = OpenBody(kRecipient, AccountKind::kRecipient);
  op.category = "dibao";
  op.community = "erqi/jianzhong-road";
  MustRun(op);
  absl::StatusOr<AccountInfo> info = ledger_->GetAccount(kRecipient);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->category, "dibao");
  EXPECT_EQ(info->community, "erqi/jianzhong-road");
}

TEST_F(LedgerOpenAccountTest, CategoryOrCommunityOnNonRecipientIsInvalid) {
  OpenAccountOp op = OpenBody(kFund, AccountKind::kFund, kCny);
  op.category = "dibao";
  EXPECT_THAT(Reject(op), StatusIs(StatusCode::kInvalidArgument, HasSubstr("category")));
  op = OpenBody(kDonor, AccountKind::kDonor);
  op.community = "erqi";
  EXPECT_THAT(Reject(op), StatusIs(StatusCode::kInvalidArgument, HasSubstr("community")));
}

TEST_F(LedgerOpenAccountTest, MalformedRecipientCodesAreInvalid) {
  for (const std::string& code : {std::string("di bao"), std::string("dibao#1"),
                                  std::string(kCodeBytesMax + 1, 'c')}) {
    SCOPED_TRACE(code);
    OpenAccountOp op = OpenBody(kRecipient, AccountKind::kRecipient);
    op.category = code;
    EXPECT_THAT(Reject(op), StatusIs(StatusCode::kInvalidArgument, HasSubstr("category")));
    op.category = "";
    op.community = code;
    EXPECT_THAT(Reject(op), StatusIs(StatusCode::kInvalidArgument, HasSubstr("community")));
  }
  OpenAccountOp op = OpenBody(kRecipient, AccountKind::kRecipient);
  op.category = std::string(kCodeBytesMax, 'c');
  op.community = "A-z.0_9:/";
  MustRun(op);
}

TEST_F(LedgerOpenAccountTest, ListAccountsIsInOpeningOrderFilteredAndPaged) {
  OpenStandardAccounts();
  uint64_t total = 0;
  std::vector<std::string> all = ledger_->ListAccounts(std::nullopt, 0, 100, &total);
  EXPECT_EQ(total, 12u);
  EXPECT_EQ(all, (std::vector<std::string>{kDonor, kDonor2, kMerchant, kFund, kFund2,
                                           kRestrictedFund, kProject, kProject2, kRecipient,
                                           kRecipient2, kSupplier, kExpense}));
  std::vector<std::string> funds = ledger_->ListAccounts(AccountKind::kFund, 1, 1, &total);
  EXPECT_EQ(total, 3u);
  EXPECT_EQ(funds, (std::vector<std::string>{kFund2}));
}

TEST_F(LedgerOpenAccountTest, NameOverLimitIsInvalid) {
  OpenAccountOp op = OpenBody(kFund, AccountKind::kFund, kCny);
  op.name = std::string(kNameBytesMax + 1, 'n');
  EXPECT_THAT(Reject(op), StatusIs(StatusCode::kInvalidArgument, HasSubstr("name")));
  op.name = std::string(kNameBytesMax, 'n');
  MustRun(op);
}

// ===================================================================
// Close account
// ===================================================================

TEST_F(LedgerCloseAccountTest, NonEmptyFundIsFailedPreconditionNamingTheBalance) {
  OpenStandardAccounts();
  Donate(kDonor, kFund, 12'345);
  EXPECT_THAT(Reject(CloseBody(kFund)),
              StatusIs(StatusCode::kFailedPrecondition,
                       AllOf(HasSubstr(kFund), HasSubstr("12345"))));
}

TEST_F(LedgerCloseAccountTest, EmptyFundCloses) {
  OpenFund(kFund);
  const uint64_t seq = Close(kFund);
  EXPECT_EQ(EntryAt(seq).entry.type(), EntryType::kCloseAccount);
  absl::StatusOr<AccountInfo> info = ledger_->GetAccount(kFund);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_TRUE(info->closed);
}

TEST_F(LedgerCloseAccountTest, FundEmptiedByDisbursementCloses) {
  OpenStandardAccounts();
  Donate(kDonor, kFund, 700);
  Disburse(kFund, kRecipient, 700);
  Close(kFund);
}

TEST_F(LedgerCloseAccountTest, DonationIntoClosedFundIsFailedPrecondition) {
  OpenStandardAccounts();
  Close(kFund2);
  EXPECT_THAT(Reject(DonationBody(kDonor, kFund2, 100)),
              StatusIs(StatusCode::kFailedPrecondition, HasSubstr(kFund2)));
}

TEST_F(LedgerCloseAccountTest, ClosingTwiceIsFailedPrecondition) {
  OpenFund(kFund);
  Close(kFund);
  EXPECT_THAT(Reject(CloseBody(kFund)),
              StatusIs(StatusCode::kFailedPrecondition, HasSubstr(kFund)));
}

TEST_F(LedgerCloseAccountTest, UnknownAccountIsNotFound) {
  EXPECT_THAT(Reject(CloseBody("fund/none")),
              StatusIs(StatusCode::kNotFound, HasSubstr("fund/none")));
}

TEST_F(LedgerCloseAccountTest, ReasonIsRequiredAndBounded) {
  OpenFund(kFund);
  EXPECT_THAT(Reject(CloseBody(kFund, "")),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("reason")));
  EXPECT_THAT(Reject(CloseBody(kFund, std::string(kTextBytesMax + 1, 'r'))),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("reason")));
  MustRun(CloseBody(kFund, std::string(kTextBytesMax, 'r')));
}

TEST_F(LedgerCloseAccountTest, DonorWithGivingsClosesAndThenCannotGive) {
  OpenStandardAccounts();
  Donate(kDonor, kFund, 500);
  Close(kDonor);  // external accounts need not be empty
  EXPECT_EQ(BalanceOf(kDonor), -500);
  EXPECT_THAT(Reject(DonationBody(kDonor, kFund, 100)),
              StatusIs(StatusCode::kFailedPrecondition, HasSubstr(kDonor)));
}

TEST_F(LedgerCloseAccountTest, ClosedAccountTakesPartInNoFurtherOperation) {
  OpenStandardAccounts();
  Donate(kDonor, kFund, 1'000);
  Close(kRecipient);
  Close(kProject2);
  EXPECT_THAT(Reject(DisbursementBody(kFund, kRecipient, 100)),
              StatusIs(StatusCode::kFailedPrecondition, HasSubstr(kRecipient)));
  EXPECT_THAT(Reject(AllocationBody(kFund, kProject2, 100)),
              StatusIs(StatusCode::kFailedPrecondition, HasSubstr(kProject2)));
}

TEST_F(LedgerCloseAccountTest, IdOfClosedAccountIsStillTaken) {
  OpenFund(kFund);
  Close(kFund);
  EXPECT_THAT(Reject(OpenBody(kFund, AccountKind::kFund, kCny)),
              StatusIs(StatusCode::kAlreadyExists, HasSubstr(kFund)));
}

// ===================================================================
// Donation
// ===================================================================

TEST_F(LedgerDonationTest, DonationReturnsSeqThatIsTheLotId) {
  OpenStandardAccounts();
  clock_.AdvanceMicros(1'000);
  OpResult result = Run(DonationBody(kDonor, kFund, 5'000));
  ASSERT_TRUE(result.status.ok()) << result.status;
  EXPECT_EQ(result.seq, ledger_->Head().seq);
  EXPECT_FALSE(result.duplicate);

  absl::StatusOr<LotInfo> lot = ledger_->GetLot(result.seq);
  ASSERT_TRUE(lot.ok()) << lot.status();
  EXPECT_EQ(lot->lot, result.seq);
  EXPECT_EQ(lot->donor, kDonor);
  EXPECT_EQ(lot->to, kFund);
  EXPECT_EQ(lot->asset, kCny);
  EXPECT_EQ(lot->amount, 5'000);
  EXPECT_EQ(lot->time_us, result.time_us);
  EXPECT_FALSE(lot->anonymous);

  EXPECT_EQ(BalanceOf(kFund), 5'000);
  EXPECT_EQ(BalanceOf(kDonor), -5'000);
  EXPECT_EQ(Pairs(HoldingsOf(kFund)), (SlicePairs{{result.seq, 5'000}}));

  const Entry entry = EntryAt(result.seq).entry;
  EXPECT_EQ(entry.policy, "none");
  ASSERT_EQ(entry.postings.size(), 1u);
  const Posting& posting = entry.postings[0];
  EXPECT_EQ(posting.from, kDonor);
  EXPECT_EQ(posting.to, kFund);
  EXPECT_EQ(posting.asset, kCny);
  EXPECT_EQ(posting.amount, 5'000);
  EXPECT_EQ(Pairs(posting.slices), (SlicePairs{{result.seq, 5'000}}));
}

TEST_F(LedgerDonationTest, AmountOutOfRangeIsInvalid) {
  OpenStandardAccounts();
  for (int64_t amount : {int64_t{0}, int64_t{-1}, std::numeric_limits<int64_t>::min(),
                         kAmountMax + 1, std::numeric_limits<int64_t>::max()}) {
    SCOPED_TRACE(amount);
    EXPECT_THAT(Reject(DonationBody(kDonor, kFund, amount)),
                StatusIs(StatusCode::kInvalidArgument, HasSubstr("amount")));
  }
}

TEST_F(LedgerDonationTest, ErrorNamesTheQualifiedField) {
  // docs/rules.md: "names the field (`donation.amount`)".
  OpenStandardAccounts();
  EXPECT_THAT(Reject(DonationBody(kDonor, kFund, 0)),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("donation.amount")));
}

TEST_F(LedgerDonationTest, AmountMaxIsAccepted) {
  OpenStandardAccounts();
  const uint64_t lot = Donate(kDonor, kFund, kAmountMax);
  EXPECT_EQ(BalanceOf(kFund), kAmountMax);
  EXPECT_EQ(BalanceOf(kDonor), -kAmountMax);
  EXPECT_EQ(Pairs(HoldingsOf(kFund)), (SlicePairs{{lot, kAmountMax}}));
}

TEST_F(LedgerDonationTest, AssetOtherThanTheFundsIsFailedPrecondition) {
  OpenStandardAccounts();
  EXPECT_THAT(Reject(DonationBody(kDonor, kFund, 100, "USD")),
              StatusIs(StatusCode::kFailedPrecondition,
                       AllOf(HasSubstr("asset"), HasSubstr(kFund))));
}

TEST_F(LedgerDonationTest, MalformedAssetIsInvalid) {
  OpenStandardAccounts();
  EXPECT_THAT(Reject(DonationBody(kDonor, kFund, 100, "cny")),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("asset")));
}

TEST_F(LedgerDonationTest, AssetNotAllowedForTheDonorIsFailedPrecondition) {
  OpenStandardAccounts();
  OpenAccount("donor/usd-only", AccountKind::kDonor, "USD");
  EXPECT_THAT(Reject(DonationBody("donor/usd-only", kFund, 100)),
              StatusIs(StatusCode::kFailedPrecondition, HasSubstr("asset")));
  OpenAccount("donor/cny-only", AccountKind::kDonor, kCny);
  Donate("donor/cny-only", kFund, 100);
}

TEST_F(LedgerDonationTest, DonationFromUnknownDonorIsNotFound) {
  OpenStandardAccounts();
  EXPECT_THAT(Reject(DonationBody("donor/nobody", kFund, 100)),
              StatusIs(StatusCode::kNotFound, HasSubstr("donor/nobody")));
}

TEST_F(LedgerDonationTest, DonationIntoUnknownFundIsNotFound) {
  OpenStandardAccounts();
  EXPECT_THAT(Reject(DonationBody(kDonor, "fund/nowhere", 100)),
              StatusIs(StatusCode::kNotFound, HasSubstr("fund/nowhere")));
}

TEST_F(LedgerDonationTest, DonorOfWrongKindIsFailedPrecondition) {
  OpenStandardAccounts();
  Donate(kDonor, kFund2, 1'000);
  for (const char* donor : {kFund2, kProject, kRecipient, kSupplier, kExpense}) {
    SCOPED_TRACE(donor);
    EXPECT_THAT(Reject(DonationBody(donor, kFund, 100)),
                StatusIs(StatusCode::kFailedPrecondition, HasSubstr(donor)));
  }
}

TEST_F(LedgerDonationTest, StocksHoldGoods) {
  EXPECT_THAT(Reject(OpenBody("stock/cash", AccountKind::kStock, kCny)),
              StatusIs(StatusCode::kInvalidArgument,
                       HasSubstr("open_account.asset: a stock holds goods")));
}

TEST_F(LedgerDonationTest, TargetOfWrongKindIsFailedPrecondition) {
  OpenStandardAccounts();
  OpenAccount("stock/rice", AccountKind::kStock, "item:rice");
  for (const char* to : {kRecipient, kSupplier, kExpense, kDonor2, kMerchant}) {
    SCOPED_TRACE(to);
    EXPECT_THAT(Reject(DonationBody(kDonor, to, 100)),
                StatusIs(StatusCode::kFailedPrecondition, HasSubstr(to)));
  }
}

TEST_F(LedgerDonationTest, GoodsGiftIntoStockCreatesAGoodsLot) {
  OpenStandardAccounts();
  OpenAccount("stock/rice", AccountKind::kStock, "item:rice");
  // Goods are catalogued first.
  EXPECT_THAT(Reject(DonationBody(kDonor, "stock/rice", 100, "item:rice")),
              StatusIs(StatusCode::kFailedPrecondition, HasSubstr("not in the catalogue")));
  MustRun(ItemOp{"item:rice", "Rice", "kg"});
  const uint64_t lot = MustRun(DonationBody(kDonor, "stock/rice", 100, "item:rice"));
  auto info = ledger_->GetLot(lot);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->asset, "item:rice");
  EXPECT_EQ(info->amount, 100);
}

TEST_F(LedgerDonationTest, MerchantMayGiveAndProjectMayReceive) {
  OpenStandardAccounts();
  Donate(kMerchant, kFund, 34);
  Donate(kDonor, kProject, 500'000);
  Donate(kDonor2, kRestrictedFund, 600);
  EXPECT_EQ(BalanceOf(kMerchant), -34);
  EXPECT_EQ(BalanceOf(kProject), 500'000);
  EXPECT_EQ(BalanceOf(kRestrictedFund), 600);
}

TEST_F(LedgerDonationTest, DonationIntoClosedFundIsFailedPrecondition) {
  OpenStandardAccounts();
  Close(kFund2);
  EXPECT_THAT(Reject(DonationBody(kDonor, kFund2, 100)),
              StatusIs(StatusCode::kFailedPrecondition, HasSubstr(kFund2)));
}

TEST_F(LedgerDonationTest, DonationFromClosedDonorIsFailedPrecondition) {
  OpenStandardAccounts();
  Close(kDonor2);
  EXPECT_THAT(Reject(DonationBody(kDonor2, kFund, 100)),
              StatusIs(StatusCode::kFailedPrecondition, HasSubstr(kDonor2)));
}

TEST_F(LedgerDonationTest, EveryKnownChannelIsAcceptedAndOthersAreInvalid) {
  OpenStandardAccounts();
  for (int channel = 0; channel <= kDonationChannelMax; ++channel) {
    DonationOp op = DonationBody(kDonor, kFund, 10);
    op.channel = static_cast<DonationChannel>(channel);
    MustRun(op);
  }
  for (int channel : {kDonationChannelMax + 1, 255}) {
    SCOPED_TRACE(channel);
    DonationOp op = DonationBody(kDonor, kFund, 10);
    op.channel = static_cast<DonationChannel>(channel);
    EXPECT_THAT(Reject(op), StatusIs(StatusCode::kInvalidArgument, HasSubstr("channel")));
  }
}

TEST_F(LedgerDonationTest, UnknownFlagBitIsInvalid) {
  OpenStandardAccounts();
  for (uint32_t flags : {2u, 1u << 31, kDonationAnonymous | 4u}) {
    SCOPED_TRACE(flags);
    DonationOp op = DonationBody(kDonor, kFund, 10);
    op.flags = flags;
    EXPECT_THAT(Reject(op), StatusIs(StatusCode::kInvalidArgument, HasSubstr("flags")));
  }
}

TEST_F(LedgerDonationTest, AnonymousFlagIsKeptInTheLot) {
  OpenStandardAccounts();
  DonationOp op = DonationBody(kDonor, kFund, 10);
  op.flags = kDonationAnonymous;
  const uint64_t anonymous = MustRun(op);
  const uint64_t named = Donate(kDonor, kFund, 10);
  absl::StatusOr<LotInfo> lot = ledger_->GetLot(anonymous);
  ASSERT_TRUE(lot.ok()) << lot.status();
  EXPECT_TRUE(lot->anonymous);
  lot = ledger_->GetLot(named);
  ASSERT_TRUE(lot.ok()) << lot.status();
  EXPECT_FALSE(lot->anonymous);
}

TEST_F(LedgerDonationTest, MemoOverLimitIsInvalid) {
  OpenStandardAccounts();
  DonationOp op = DonationBody(kDonor, kFund, 10);
  op.memo = std::string(kTextBytesMax + 1, 'm');
  EXPECT_THAT(Reject(op), StatusIs(StatusCode::kInvalidArgument, HasSubstr("memo")));
  op.memo = std::string(kTextBytesMax, 'm');
  MustRun(op);
}

TEST_F(LedgerDonationTest, TraceHashFindsTheLot) {
  OpenStandardAccounts();
  DonationOp op = DonationBody(kDonor, kFund, 10);
  op.trace_hash = std::string(32, '\x5a');
  const uint64_t lot = MustRun(op);
  absl::StatusOr<uint64_t> found = ledger_->FindLotByTraceHash(std::string(32, '\x5a'));
  ASSERT_TRUE(found.ok()) << found.status();
  EXPECT_EQ(*found, lot);
  EXPECT_THAT(ledger_->FindLotByTraceHash(std::string(32, '\x01')).status(),
              StatusIs(StatusCode::kNotFound));
}

TEST_F(LedgerDonationTest, TraceHashOfWrongLengthIsInvalid) {
  OpenStandardAccounts();
  for (size_t size : {size_t{1}, size_t{31}, size_t{33}, size_t{64}}) {
    SCOPED_TRACE(size);
    DonationOp op = DonationBody(kDonor, kFund, 10);
    op.trace_hash = std::string(size, 'h');
    EXPECT_THAT(Reject(op), StatusIs(StatusCode::kInvalidArgument, HasSubstr("trace_hash")));
  }
}

TEST_F(LedgerDonationTest, TraceHashUsedByAnotherLotIsAlreadyExists) {
  OpenStandardAccounts();
  DonationOp op = DonationBody(kDonor, kFund, 10);
  op.trace_hash = std::string(32, '\x7e');
  const uint64_t lot = MustRun(op);
  op.amount = 11;
  EXPECT_THAT(Reject(op), StatusIs(StatusCode::kAlreadyExists, HasSubstr("trace_hash")));
  // Within one linked chain the second use is caught too, and undone with it.
  DonationOp fresh = DonationBody(kDonor2, kFund, 12);
  fresh.trace_hash = std::string(32, '\x11');
  DonationOp again = fresh;
  again.amount = 13;
  std::vector<OpResult> results = ledger_->Submit({Op(fresh, true), Op(again)});
  ASSERT_EQ(results.size(), 2u);
  EXPECT_THAT(results[0].status, StatusIs(StatusCode::kAborted));
  EXPECT_THAT(results[1].status, StatusIs(StatusCode::kAlreadyExists, HasSubstr("trace_hash")));
  EXPECT_THAT(ledger_->FindLotByTraceHash(std::string(32, '\x11')).status(),
              StatusIs(StatusCode::kNotFound));
  absl::StatusOr<uint64_t> found = ledger_->FindLotByTraceHash(std::string(32, '\x7e'));
  ASSERT_TRUE(found.ok()) << found.status();
  EXPECT_EQ(*found, lot);
}

TEST_F(LedgerDonationTest, MissingDonorOrTargetIsInvalid) {
  OpenStandardAccounts();
  EXPECT_THAT(Reject(DonationBody("", kFund, 10)),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("donor")));
  EXPECT_THAT(Reject(DonationBody(kDonor, "", 10)),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("to")));
}

// ===================================================================
// Allocation
// ===================================================================

TEST_F(LedgerAllocationTest, AllocationMovesSlicesOldestFirstAndSplitsTheBoundarySlice) {
  OpenStandardAccounts();
  const uint64_t a = Donate(kDonor, kFund, 100);
  const uint64_t b = Donate(kDonor2, kFund, 200);
  const uint64_t c = Donate(kDonor, kFund, 300);

  const uint64_t first = Allocate(kFund, kProject, 150);
  EXPECT_EQ(Pairs(HoldingsOf(kProject)), (SlicePairs{{a, 100}, {b, 50}}));
  EXPECT_EQ(Pairs(HoldingsOf(kFund)), (SlicePairs{{b, 150}, {c, 300}}));
  const Entry entry = EntryAt(first).entry;
  EXPECT_EQ(entry.policy, "fifo/v1");
  ASSERT_EQ(entry.postings.size(), 1u);
  EXPECT_EQ(entry.postings[0].from, kFund);
  EXPECT_EQ(entry.postings[0].to, kProject);
  EXPECT_EQ(entry.postings[0].asset, kCny);
  EXPECT_EQ(entry.postings[0].amount, 150);
  EXPECT_EQ(Pairs(entry.postings[0].slices), (SlicePairs{{a, 100}, {b, 50}}));

  // The rest of lot b arrives next to its first part and merges with it.
  const uint64_t second = Allocate(kFund, kProject, 200);
  EXPECT_EQ(Pairs(EntryAt(second).entry.postings.at(0).slices),
            (SlicePairs{{b, 150}, {c, 50}}));
  EXPECT_EQ(Pairs(HoldingsOf(kProject)), (SlicePairs{{a, 100}, {b, 200}, {c, 50}}));
  EXPECT_EQ(Pairs(HoldingsOf(kFund)), (SlicePairs{{c, 250}}));
  EXPECT_EQ(BalanceOf(kFund), 250);
  EXPECT_EQ(BalanceOf(kProject), 350);
  absl::StatusOr<AccountInfo> project = ledger_->GetAccount(kProject);
  ASSERT_TRUE(project.ok()) << project.status();
  EXPECT_EQ(project->slice_count, 3u);
}

TEST_F(LedgerAllocationTest, HoldingsArePaged) {
  OpenStandardAccounts();
  std::vector<uint64_t> lots;
  for (int i = 1; i <= 5; ++i) lots.push_back(Donate(kDonor, kFund, i));
  absl::StatusOr<HoldingsPage> page = ledger_->GetHoldings(kFund, 1, 2);
  ASSERT_TRUE(page.ok()) << page.status();
  EXPECT_EQ(page->account, kFund);
  EXPECT_EQ(page->total_count, 5u);
  EXPECT_EQ(page->offset, 1u);
  EXPECT_EQ(Pairs(page->slices), (SlicePairs{{lots[1], 2}, {lots[2], 3}}));
}

TEST_F(LedgerAllocationTest, AllocatingEverythingEmptiesTheFund) {
  OpenStandardAccounts();
  const uint64_t a = Donate(kDonor, kFund, 100);
  const uint64_t b = Donate(kDonor2, kFund, 200);
  Allocate(kFund, kRestrictedFund, 300);
  EXPECT_THAT(HoldingsOf(kFund), IsEmpty());
  EXPECT_EQ(BalanceOf(kFund), 0);
  EXPECT_EQ(Pairs(HoldingsOf(kRestrictedFund)), (SlicePairs{{a, 100}, {b, 200}}));
}

TEST_F(LedgerAllocationTest, AllocationOutOfProjectIsFailedPrecondition) {
  OpenStandardAccounts();
  Donate(kDonor, kProject, 1'000);
  EXPECT_THAT(Reject(AllocationBody(kProject, kFund, 100)),
              StatusIs(StatusCode::kFailedPrecondition, HasSubstr(kProject)));
  EXPECT_THAT(Reject(AllocationBody(kProject, kProject2, 100)),
              StatusIs(StatusCode::kFailedPrecondition, HasSubstr(kProject)));
}

TEST_F(LedgerAllocationTest, AllocationOutOfRestrictedFundIsFailedPrecondition) {
  OpenStandardAccounts();
  Donate(kDonor, kRestrictedFund, 1'000);
  EXPECT_THAT(Reject(AllocationBody(kRestrictedFund, kProject, 100)),
              StatusIs(StatusCode::kFailedPrecondition, HasSubstr(kRestrictedFund)));
}

TEST_F(LedgerAllocationTest, AllocationIntoRestrictedFundOrProjectIsAccepted) {
  OpenStandardAccounts();
  Donate(kDonor, kFund, 1'000);
  Allocate(kFund, kRestrictedFund, 300);
  Allocate(kFund, kProject, 200);
  Allocate(kFund, kFund2, 100);
  EXPECT_EQ(BalanceOf(kFund), 400);
  EXPECT_EQ(BalanceOf(kRestrictedFund), 300);
  EXPECT_EQ(BalanceOf(kProject), 200);
  EXPECT_EQ(BalanceOf(kFund2), 100);
}

TEST_F(LedgerAllocationTest, OverspendIsFailedPreconditionNamingAvailableAndAsked) {
  OpenStandardAccounts();
  Donate(kDonor, kFund, 12'345);
  EXPECT_THAT(Reject(AllocationBody(kFund, kProject, 20'000)),
              StatusIs(StatusCode::kFailedPrecondition,
                       AllOf(HasSubstr(kFund), HasSubstr("12345"), HasSubstr("20000"))));
  Allocate(kFund, kProject, 12'345);
}

TEST_F(LedgerAllocationTest, AllocationFromEmptyFundIsFailedPrecondition) {
  OpenStandardAccounts();
  EXPECT_THAT(Reject(AllocationBody(kFund, kProject, 1)),
              StatusIs(StatusCode::kFailedPrecondition, HasSubstr(kFund)));
}

TEST_F(LedgerAllocationTest, SameAccountAsFromAndToIsInvalid) {
  OpenStandardAccounts();
  Donate(kDonor, kFund, 1'000);
  EXPECT_THAT(Reject(AllocationBody(kFund, kFund, 100)),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr(kFund)));
}

TEST_F(LedgerAllocationTest, AccountsOfWrongKindAreFailedPrecondition) {
  OpenStandardAccounts();
  Donate(kDonor, kFund, 1'000);
  for (const char* to : {kRecipient, kSupplier, kExpense, kDonor2, kMerchant}) {
    SCOPED_TRACE(to);
    EXPECT_THAT(Reject(AllocationBody(kFund, to, 100)),
                StatusIs(StatusCode::kFailedPrecondition, HasSubstr(to)));
  }
  EXPECT_THAT(Reject(AllocationBody(kDonor, kFund2, 100)),
              StatusIs(StatusCode::kFailedPrecondition, HasSubstr(kDonor)));
}

TEST_F(LedgerAllocationTest, AllocationBetweenDifferentAssetsIsFailedPrecondition) {
  OpenStandardAccounts();
  OpenAccount("project/usd", AccountKind::kProject, "USD");
  Donate(kDonor, kFund, 1'000);
  EXPECT_THAT(Reject(AllocationBody(kFund, "project/usd", 100)),
              StatusIs(StatusCode::kFailedPrecondition, HasSubstr("asset")));
  EXPECT_THAT(Reject(AllocationBody(kFund, kProject, 100, "USD")),
              StatusIs(StatusCode::kFailedPrecondition, HasSubstr("asset")));
}

TEST_F(LedgerAllocationTest, UnknownAccountIsNotFound) {
  OpenStandardAccounts();
  Donate(kDonor, kFund, 1'000);
  EXPECT_THAT(Reject(AllocationBody(kFund, "project/none", 100)),
              StatusIs(StatusCode::kNotFound, HasSubstr("project/none")));
  EXPECT_THAT(Reject(AllocationBody("fund/none", kProject, 100)),
              StatusIs(StatusCode::kNotFound, HasSubstr("fund/none")));
}

TEST_F(LedgerAllocationTest, AmountOutOfRangeIsInvalid) {
  OpenStandardAccounts();
  Donate(kDonor, kFund, 1'000);
  for (int64_t amount : {int64_t{0}, int64_t{-5}, kAmountMax + 1}) {
    SCOPED_TRACE(amount);
    EXPECT_THAT(Reject(AllocationBody(kFund, kProject, amount)),
                StatusIs(StatusCode::kInvalidArgument, HasSubstr("amount")));
  }
}

TEST_F(LedgerAllocationTest, ReasonOverLimitIsInvalid) {
  OpenStandardAccounts();
  Donate(kDonor, kFund, 1'000);
  AllocationOp op = AllocationBody(kFund, kProject, 100);
  op.reason = std::string(kTextBytesMax + 1, 'r');
  EXPECT_THAT(Reject(op), StatusIs(StatusCode::kInvalidArgument, HasSubstr("reason")));
}

// ===================================================================
// Disbursement
// ===================================================================

TEST_F(LedgerDisbursementTest, ProjectPaysRecipient) {
  OpenStandardAccounts();
  const uint64_t a = Donate(kDonor, kProject, 300);
  const uint64_t b = Donate(kDonor2, kProject, 400);
  const uint64_t paid = Disburse(kProject, kRecipient, 500);
  EXPECT_EQ(BalanceOf(kProject), 200);
  EXPECT_EQ(BalanceOf(kRecipient), 500);
  EXPECT_EQ(Pairs(HoldingsOf(kProject)), (SlicePairs{{b, 200}}));
  const Entry entry = EntryAt(paid).entry;
  EXPECT_EQ(entry.type(), EntryType::kDisbursement);
  EXPECT_EQ(entry.policy, "fifo/v1");
  ASSERT_EQ(entry.postings.size(), 1u);
  EXPECT_EQ(entry.postings[0].from, kProject);
  EXPECT_EQ(entry.postings[0].to, kRecipient);
  EXPECT_EQ(entry.postings[0].amount, 500);
  EXPECT_EQ(Pairs(entry.postings[0].slices), (SlicePairs{{a, 300}, {b, 200}}));
}

TEST_F(LedgerDisbursementTest, RestrictedFundPaysRecipient) {
  OpenStandardAccounts();
  Donate(kDonor, kRestrictedFund, 300);
  Disburse(kRestrictedFund, kRecipient, 300);
  EXPECT_EQ(BalanceOf(kRestrictedFund), 0);
  EXPECT_EQ(BalanceOf(kRecipient), 300);
}

TEST_F(LedgerDisbursementTest, SupplierAndExpenseAreSinks) {
  OpenStandardAccounts();
  Donate(kDonor, kFund, 1'000);
  Disburse(kFund, kSupplier, 600);
  Disburse(kFund, kExpense, 3);
  EXPECT_EQ(BalanceOf(kSupplier), 600);
  EXPECT_EQ(BalanceOf(kExpense), 3);
  EXPECT_EQ(BalanceOf(kFund), 397);
}

TEST_F(LedgerDisbursementTest, DisbursementToHoldingOrSourceIsFailedPrecondition) {
  OpenStandardAccounts();
  Donate(kDonor, kFund, 1'000);
  for (const char* to : {kFund2, kProject, kRestrictedFund, kDonor, kMerchant}) {
    SCOPED_TRACE(to);
    EXPECT_THAT(Reject(DisbursementBody(kFund, to, 100)),
                StatusIs(StatusCode::kFailedPrecondition, HasSubstr(to)));
  }
}

TEST_F(LedgerDisbursementTest, DisbursementFromNonHoldingIsFailedPrecondition) {
  OpenStandardAccounts();
  Donate(kDonor, kFund, 1'000);
  Disburse(kFund, kRecipient, 500);
  for (const char* from : {kRecipient, kDonor}) {
    SCOPED_TRACE(from);
    EXPECT_THAT(Reject(DisbursementBody(from, kRecipient2, 100)),
                StatusIs(StatusCode::kFailedPrecondition, HasSubstr(from)));
  }
}

TEST_F(LedgerDisbursementTest, OverspendIsFailedPreconditionNamingAvailableAndAsked) {
  OpenStandardAccounts();
  Donate(kDonor, kProject, 4'321);
  EXPECT_THAT(Reject(DisbursementBody(kProject, kRecipient, 9'876)),
              StatusIs(StatusCode::kFailedPrecondition,
                       AllOf(HasSubstr(kProject), HasSubstr("4321"), HasSubstr("9876"))));
}

TEST_F(LedgerDisbursementTest, UnknownRecipientIsNotFound) {
  OpenStandardAccounts();
  Donate(kDonor, kFund, 1'000);
  EXPECT_THAT(Reject(DisbursementBody(kFund, "recipient/nobody", 100)),
              StatusIs(StatusCode::kNotFound, HasSubstr("recipient/nobody")));
}

TEST_F(LedgerDisbursementTest, PurposeOverLimitIsInvalid) {
  OpenStandardAccounts();
  Donate(kDonor, kFund, 1'000);
  DisbursementOp op = DisbursementBody(kFund, kRecipient, 100);
  op.purpose = std::string(kTextBytesMax + 1, 'p');
  EXPECT_THAT(Reject(op), StatusIs(StatusCode::kInvalidArgument, HasSubstr("purpose")));
}

// ===================================================================
// Correction, reverse
// ===================================================================

TEST_F(LedgerReverseTest, ReversingDonationReturnsTheLotToTheDonor) {
  OpenStandardAccounts();
  const uint64_t keep = Donate(kDonor2, kFund, 70);
  const uint64_t lot = Donate(kDonor, kFund, 5'000);
  const uint64_t reversal = Reverse(lot);
  EXPECT_EQ(BalanceOf(kFund), 70);
  EXPECT_EQ(BalanceOf(kDonor), 0);
  EXPECT_EQ(Pairs(HoldingsOf(kFund)), (SlicePairs{{keep, 70}}));

  const Entry entry = EntryAt(reversal).entry;
  EXPECT_EQ(entry.type(), EntryType::kCorrection);
  ASSERT_EQ(entry.postings.size(), 1u);
  EXPECT_EQ(entry.postings[0].from, kFund);
  EXPECT_EQ(entry.postings[0].to, kDonor);
  EXPECT_EQ(entry.postings[0].amount, 5'000);
  EXPECT_EQ(Pairs(entry.postings[0].slices), (SlicePairs{{lot, 5'000}}));

  const LotTrace trace = TraceOf(lot);
  EXPECT_EQ(SumPlaces(trace.held), 0);
  EXPECT_EQ(ByAccount(trace.reached), (std::map<std::string, int64_t>{{kDonor, 5'000}}));
}

TEST_F(LedgerReverseTest, ReversingAllocationReturnsItsSlicesToTheSource) {
  OpenStandardAccounts();
  const uint64_t a = Donate(kDonor, kFund, 100);
  const uint64_t b = Donate(kDonor2, kFund, 200);
  const uint64_t c = Donate(kDonor, kFund, 300);
  const uint64_t allocation = Allocate(kFund, kProject, 150);
  const uint64_t reversal = Reverse(allocation);
  EXPECT_EQ(BalanceOf(kProject), 0);
  EXPECT_EQ(BalanceOf(kFund), 600);
  EXPECT_THAT(HoldingsOf(kProject), IsEmpty());
  // reverse/v1 appends the returned slices to the original source.
  EXPECT_EQ(Pairs(HoldingsOf(kFund)), (SlicePairs{{b, 150}, {c, 300}, {a, 100}, {b, 50}}));

  const Entry entry = EntryAt(reversal).entry;
  EXPECT_EQ(entry.policy, "reverse/v1");
  ASSERT_EQ(entry.postings.size(), 1u);
  EXPECT_EQ(entry.postings[0].from, kProject);
  EXPECT_EQ(entry.postings[0].to, kFund);
  EXPECT_EQ(Pairs(entry.postings[0].slices), (SlicePairs{{a, 100}, {b, 50}}));
}

TEST_F(LedgerReverseTest, ReversingDonationWhoseLotCameBackInPiecesSucceeds) {
  OpenStandardAccounts();
  const uint64_t a = Donate(kDonor, kFund, 100);
  const uint64_t b = Donate(kDonor2, kFund, 200);
  const uint64_t c = Donate(kDonor, kFund, 300);
  Reverse(Allocate(kFund, kProject, 150));  // fund: b150 c300 a100 b50
  Reverse(b);
  EXPECT_EQ(Pairs(HoldingsOf(kFund)), (SlicePairs{{c, 300}, {a, 100}}));
  EXPECT_EQ(BalanceOf(kFund), 400);
  EXPECT_EQ(BalanceOf(kDonor2), 0);
}

TEST_F(LedgerReverseTest, ReversingDisbursementTakesBackTheRecipientBalanceAndSlices) {
  OpenStandardAccounts();
  const uint64_t a = Donate(kDonor, kProject, 1'000);
  const uint64_t b = Donate(kDonor2, kProject, 500);
  const uint64_t paid = Disburse(kProject, kRecipient, 1'200);
  EXPECT_EQ(BalanceOf(kRecipient), 1'200);
  const uint64_t reversal = Reverse(paid);
  EXPECT_EQ(BalanceOf(kRecipient), 0);
  EXPECT_EQ(BalanceOf(kProject), 1'500);
  EXPECT_EQ(Pairs(HoldingsOf(kProject)), (SlicePairs{{b, 300}, {a, 1'000}, {b, 200}}));
  const Entry entry = EntryAt(reversal).entry;
  ASSERT_EQ(entry.postings.size(), 1u);
  EXPECT_EQ(entry.postings[0].from, kRecipient);
  EXPECT_EQ(entry.postings[0].to, kProject);
  EXPECT_EQ(Pairs(entry.postings[0].slices), (SlicePairs{{a, 1'000}, {b, 200}}));
}

TEST_F(LedgerReverseTest, ReversingTwiceIsFailedPrecondition) {
  OpenStandardAccounts();
  const uint64_t lot = Donate(kDonor, kFund, 100);
  Reverse(lot);
  EXPECT_THAT(Reject(ReverseBody(lot)),
              StatusIs(StatusCode::kFailedPrecondition, HasSubstr(std::to_string(lot))));
}

TEST_F(LedgerReverseTest, ReversingEntryWithoutPostingsOrACorrectionIsRejected) {
  OpenStandardAccounts();
  const uint64_t opened = OpenFund("fund/extra");
  const uint64_t closed = Close("fund/extra");
  const uint64_t reversal = Reverse(Donate(kDonor, kFund, 100));
  // The rules name no code for a ref_seq of the wrong type: either "can never
  // succeed" or "wrong state" is defensible; what matters is that it fails.
  for (uint64_t ref : {opened, closed, reversal}) {
    SCOPED_TRACE(ref);
    absl::Status status = Reject(ReverseBody(ref));
    EXPECT_THAT(status.code(), AnyOf(Eq(StatusCode::kInvalidArgument),
                                     Eq(StatusCode::kFailedPrecondition)))
        << status;
    EXPECT_THAT(std::string(status.message()), HasSubstr(std::to_string(ref)));
  }
}

TEST_F(LedgerReverseTest, UnknownRefSeqIsNotFound) {
  OpenStandardAccounts();
  const uint64_t beyond = ledger_->Head().seq + 10;
  EXPECT_THAT(Reject(ReverseBody(beyond)),
              StatusIs(StatusCode::kNotFound, HasSubstr(std::to_string(beyond))));
}

TEST_F(LedgerReverseTest, ReversingDonationWhoseMoneyWasAllocatedAwayIsFailedPrecondition) {
  OpenStandardAccounts();
  const uint64_t whole = Donate(kDonor, kFund, 1'000);
  Allocate(kFund, kProject, 1'000);
  EXPECT_THAT(Reject(ReverseBody(whole)),
              StatusIs(StatusCode::kFailedPrecondition,
                       AllOf(HasSubstr(kFund), HasSubstr("1000"))));

  const uint64_t partly = Donate(kDonor2, kFund2, 1'000);
  Disburse(kFund2, kRecipient, 1);
  EXPECT_THAT(Reject(ReverseBody(partly)), StatusIs(StatusCode::kFailedPrecondition))
      << "the whole lot must still be in `to`";
}

TEST_F(LedgerReverseTest, ReversingAllocationWhoseMoneyWasSpentIsFailedPrecondition) {
  OpenStandardAccounts();
  Donate(kDonor, kFund, 1'000);
  const uint64_t allocation = Allocate(kFund, kProject, 600);
  Disburse(kProject, kRecipient, 100);
  EXPECT_THAT(Reject(ReverseBody(allocation)), StatusIs(StatusCode::kFailedPrecondition));
}

TEST_F(LedgerReverseTest, MissingReasonIsInvalid) {
  OpenStandardAccounts();
  const uint64_t lot = Donate(kDonor, kFund, 100);
  EXPECT_THAT(Reject(ReverseBody(lot, "")),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("reason")));
  EXPECT_THAT(Reject(ReverseBody(lot, std::string(kTextBytesMax + 1, 'r'))),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("reason")));
}

TEST_F(LedgerReverseTest, ReverseCarryingAdjustFieldsIsInvalid) {
  // types.h and docs/format.md: REVERSE has from/to/asset empty and amount 0.
  OpenStandardAccounts();
  const uint64_t lot = Donate(kDonor, kFund, 100);
  CorrectionOp op = ReverseBody(lot);
  op.amount = 100;
  EXPECT_THAT(Reject(op), StatusIs(StatusCode::kInvalidArgument, HasSubstr("amount")));
  op = ReverseBody(lot);
  op.from = kFund;
  EXPECT_THAT(Reject(op), StatusIs(StatusCode::kInvalidArgument, HasSubstr("from")));
}

TEST_F(LedgerReverseTest, UnknownModeIsInvalid) {
  OpenStandardAccounts();
  const uint64_t lot = Donate(kDonor, kFund, 100);
  CorrectionOp op = ReverseBody(lot);
  op.mode = static_cast<CorrectionMode>(3);
  EXPECT_THAT(Reject(op), StatusIs(StatusCode::kInvalidArgument, HasSubstr("mode")));
}

// ===================================================================
// Correction, adjust
// ===================================================================

TEST_F(LedgerAdjustTest, AdjustMovesRestrictedProjectMoneyToFundWithReason) {
  OpenStandardAccounts();
  const uint64_t a = Donate(kDonor, kProject, 300);
  const uint64_t b = Donate(kDonor2, kProject, 300);
  const uint64_t adjust = MustRun(AdjustBody(a, kProject, kFund, 400));
  EXPECT_EQ(BalanceOf(kProject), 200);
  EXPECT_EQ(BalanceOf(kFund), 400);
  EXPECT_EQ(Pairs(HoldingsOf(kFund)), (SlicePairs{{a, 300}, {b, 100}}));
  EXPECT_EQ(Pairs(HoldingsOf(kProject)), (SlicePairs{{b, 200}}));
  const Entry entry = EntryAt(adjust).entry;
  EXPECT_EQ(entry.type(), EntryType::kCorrection);
  EXPECT_EQ(entry.policy, "fifo/v1");
  ASSERT_EQ(entry.postings.size(), 1u);
  EXPECT_EQ(entry.postings[0].from, kProject);
  EXPECT_EQ(entry.postings[0].to, kFund);
  EXPECT_EQ(Pairs(entry.postings[0].slices), (SlicePairs{{a, 300}, {b, 100}}));
}

TEST_F(LedgerAdjustTest, AdjustFromRestrictedFundToRecipientIsAccepted) {
  OpenStandardAccounts();
  const uint64_t lot = Donate(kDonor, kRestrictedFund, 300);
  MustRun(AdjustBody(lot, kRestrictedFund, kRecipient, 120));
  EXPECT_EQ(BalanceOf(kRestrictedFund), 180);
  EXPECT_EQ(BalanceOf(kRecipient), 120);
}

TEST_F(LedgerAdjustTest, AdjustRequiresReason) {
  OpenStandardAccounts();
  const uint64_t lot = Donate(kDonor, kProject, 300);
  EXPECT_THAT(Reject(AdjustBody(lot, kProject, kFund, 100, "")),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("reason")));
}

TEST_F(LedgerAdjustTest, AdjustOverspendIsFailedPreconditionNamingAvailableAndAsked) {
  OpenStandardAccounts();
  const uint64_t lot = Donate(kDonor, kProject, 3'333);
  EXPECT_THAT(Reject(AdjustBody(lot, kProject, kFund, 4'444)),
              StatusIs(StatusCode::kFailedPrecondition,
                       AllOf(HasSubstr(kProject), HasSubstr("3333"), HasSubstr("4444"))));
}

TEST_F(LedgerAdjustTest, AdjustIntoSourceIsFailedPrecondition) {
  OpenStandardAccounts();
  const uint64_t lot = Donate(kDonor, kProject, 300);
  for (const char* to : {kDonor, kMerchant}) {
    SCOPED_TRACE(to);
    EXPECT_THAT(Reject(AdjustBody(lot, kProject, to, 100)),
                StatusIs(StatusCode::kFailedPrecondition, HasSubstr(to)));
  }
}

TEST_F(LedgerAdjustTest, AdjustFromNonHoldingIsFailedPrecondition) {
  OpenStandardAccounts();
  const uint64_t lot = Donate(kDonor, kFund, 300);
  Disburse(kFund, kRecipient, 300);
  for (const char* from : {kRecipient, kDonor}) {
    SCOPED_TRACE(from);
    EXPECT_THAT(Reject(AdjustBody(lot, from, kFund2, 100)),
                StatusIs(StatusCode::kFailedPrecondition, HasSubstr(from)));
  }
}

TEST_F(LedgerAdjustTest, AdjustWithUnknownRefSeqIsNotFound) {
  OpenStandardAccounts();
  Donate(kDonor, kProject, 300);
  const uint64_t beyond = ledger_->Head().seq + 7;
  EXPECT_THAT(Reject(AdjustBody(beyond, kProject, kFund, 100)),
              StatusIs(StatusCode::kNotFound, HasSubstr(std::to_string(beyond))));
}

TEST_F(LedgerAdjustTest, AdjustToTheSameAccountIsInvalid) {
  OpenStandardAccounts();
  const uint64_t lot = Donate(kDonor, kProject, 300);
  EXPECT_THAT(Reject(AdjustBody(lot, kProject, kProject, 100)),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr(kProject)));
}

TEST_F(LedgerAdjustTest, AdjustBetweenDifferentAssetsIsFailedPrecondition) {
  OpenStandardAccounts();
  OpenAccount("fund/usd", AccountKind::kFund, "USD");
  const uint64_t lot = Donate(kDonor, kProject, 300);
  EXPECT_THAT(Reject(AdjustBody(lot, kProject, "fund/usd", 100)),
              StatusIs(StatusCode::kFailedPrecondition, HasSubstr("asset")));
}

TEST_F(LedgerAdjustTest, AdjustAmountOutOfRangeIsInvalid) {
  OpenStandardAccounts();
  const uint64_t lot = Donate(kDonor, kProject, 300);
  EXPECT_THAT(Reject(AdjustBody(lot, kProject, kFund, 0)),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("amount")));
  EXPECT_THAT(Reject(AdjustBody(lot, kProject, kFund, kAmountMax + 1)),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("amount")));
}

// ===================================================================
// Overflow
// ===================================================================

// kAmountMax fits 9,223 times in an int64; the 9,224th gift must be refused.
constexpr int64_t kMaxGiftsThatFit = std::numeric_limits<int64_t>::max() / kAmountMax;

TEST_F(LedgerOverflowTest, FundBalanceBeyondInt64IsFailedPrecondition) {
  OpenStandardAccounts();
  std::vector<Operation> ops;
  for (int64_t i = 0; i < kMaxGiftsThatFit; ++i) {
    // Two donors, so that only the fund's balance reaches the limit.
    ops.push_back(Op(DonationBody(i % 2 == 0 ? kDonor : kDonor2, kFund, kAmountMax)));
  }
  const std::vector<OpResult> results = SubmitAll(std::move(ops));
  size_t failed = 0;
  for (const OpResult& r : results) failed += r.status.ok() ? 0 : 1;
  ASSERT_EQ(failed, 0u) << results.front().status;
  EXPECT_EQ(BalanceOf(kFund), kMaxGiftsThatFit * kAmountMax);

  EXPECT_THAT(Reject(DonationBody(kDonor, kFund, kAmountMax)),
              StatusIs(StatusCode::kFailedPrecondition, HasSubstr(kFund)));
  Donate(kDonor, kFund2, kAmountMax);  // the same gift elsewhere still fits
}

TEST_F(LedgerOverflowTest, DonorBalanceBelowInt64IsFailedPrecondition) {
  OpenStandardAccounts();
  std::vector<Operation> ops;
  for (int64_t i = 0; i < kMaxGiftsThatFit; ++i) {
    // Two funds, so that only the donor's balance reaches the limit.
    ops.push_back(Op(DonationBody(kDonor, i % 2 == 0 ? kFund : kFund2, kAmountMax)));
  }
  const std::vector<OpResult> results = SubmitAll(std::move(ops));
  size_t failed = 0;
  for (const OpResult& r : results) failed += r.status.ok() ? 0 : 1;
  ASSERT_EQ(failed, 0u);
  EXPECT_EQ(BalanceOf(kDonor), -kMaxGiftsThatFit * kAmountMax);

  EXPECT_THAT(Reject(DonationBody(kDonor, kProject, kAmountMax)),
              StatusIs(StatusCode::kFailedPrecondition, HasSubstr(kDonor)));
}

// ===================================================================
// Idempotency
// ===================================================================

TEST_F(LedgerIdempotencyTest, RetryWithTheSameBodyReturnsTheOriginalSeqAsDuplicate) {
  OpenStandardAccounts();
  const Operation gift{"checkout-0001", false, DonationBody(kMerchant, kFund, 1'234)};
  OpResult first = ledger_->SubmitOne(gift);
  ASSERT_TRUE(first.status.ok()) << first.status;
  EXPECT_FALSE(first.duplicate);
  const LedgerHead head = ledger_->Head();
  const std::string digest = ledger_->StateDigest();

  clock_.AdvanceMicros(5'000'000);
  OpResult retry = ledger_->SubmitOne(gift);
  ASSERT_TRUE(retry.status.ok()) << retry.status;
  EXPECT_TRUE(retry.duplicate);
  EXPECT_EQ(retry.seq, first.seq);
  EXPECT_EQ(retry.time_us, first.time_us);
  EXPECT_EQ(ledger_->Head().seq, head.seq);
  EXPECT_EQ(ledger_->Head().hash, head.hash);
  EXPECT_EQ(ledger_->StateDigest(), digest);
  EXPECT_EQ(BalanceOf(kFund), 1'234);
}

TEST_F(LedgerIdempotencyTest, RetryOfOpenAccountIsDuplicateNotAlreadyExists) {
  const Operation open{"open-fund", false, OpenBody(kFund, AccountKind::kFund, kCny)};
  OpResult first = ledger_->SubmitOne(open);
  ASSERT_TRUE(first.status.ok()) << first.status;
  OpResult retry = ledger_->SubmitOne(open);
  EXPECT_TRUE(retry.status.ok()) << retry.status;
  EXPECT_TRUE(retry.duplicate);
  EXPECT_EQ(retry.seq, first.seq);
  EXPECT_EQ(ledger_->Head().seq, 1u);
}

TEST_F(LedgerIdempotencyTest, SameIdWithDifferentAmountIsAlreadyExistsNamingAmount) {
  OpenStandardAccounts();
  ASSERT_TRUE(ledger_->SubmitOne({"gift-7", false, DonationBody(kDonor, kFund, 100)}).status.ok());
  EXPECT_THAT(RejectOp({"gift-7", false, DonationBody(kDonor, kFund, 200)}),
              StatusIs(StatusCode::kAlreadyExists, HasSubstr("amount")));
}

TEST_F(LedgerIdempotencyTest, SameIdWithDifferentFieldNamesThatField) {
  OpenStandardAccounts();
  ASSERT_TRUE(ledger_->SubmitOne({"gift-8", false, DonationBody(kDonor, kFund, 100)}).status.ok());
  EXPECT_THAT(RejectOp({"gift-8", false, DonationBody(kDonor2, kFund, 100)}),
              StatusIs(StatusCode::kAlreadyExists, HasSubstr("donor")));
  EXPECT_THAT(RejectOp({"gift-8", false, AllocationBody(kFund, kProject, 100)}),
              StatusIs(StatusCode::kAlreadyExists, HasSubstr("type")));
}

TEST_F(LedgerIdempotencyTest, DuplicateWithinOneBatchIsAppliedOnce) {
  OpenStandardAccounts();
  const LedgerHead before = ledger_->Head();
  const Operation gift{"batch-dup", false, DonationBody(kDonor, kFund, 100)};
  std::vector<OpResult> results = ledger_->Submit({gift, gift});
  ASSERT_EQ(results.size(), 2u);
  ASSERT_TRUE(results[0].status.ok()) << results[0].status;
  ASSERT_TRUE(results[1].status.ok()) << results[1].status;
  EXPECT_FALSE(results[0].duplicate);
  EXPECT_TRUE(results[1].duplicate);
  EXPECT_EQ(results[1].seq, results[0].seq);
  EXPECT_EQ(ledger_->Head().seq, before.seq + 1);
  EXPECT_EQ(BalanceOf(kFund), 100);
}

TEST_F(LedgerIdempotencyTest, ConflictWithinOneBatchIsAlreadyExists) {
  OpenStandardAccounts();
  const LedgerHead before = ledger_->Head();
  std::vector<OpResult> results =
      ledger_->Submit({{"batch-conflict", false, DonationBody(kDonor, kFund, 100)},
                       {"batch-conflict", false, DonationBody(kDonor, kFund, 999)}});
  ASSERT_EQ(results.size(), 2u);
  EXPECT_TRUE(results[0].status.ok()) << results[0].status;
  EXPECT_THAT(results[1].status, StatusIs(StatusCode::kAlreadyExists, HasSubstr("amount")));
  EXPECT_EQ(ledger_->Head().seq, before.seq + 1);
  EXPECT_EQ(BalanceOf(kFund), 100);
}

TEST_F(LedgerIdempotencyTest, RetryAfterReopenIsStillDuplicate) {
  OpenStandardAccounts();
  const Operation gift{"gift-before-restart", false, DonationBody(kDonor, kFund, 100)};
  OpResult first = ledger_->SubmitOne(gift);
  ASSERT_TRUE(first.status.ok()) << first.status;
  ASSERT_NO_FATAL_FAILURE(Reopen());
  OpResult retry = ledger_->SubmitOne(gift);
  EXPECT_TRUE(retry.status.ok()) << retry.status;
  EXPECT_TRUE(retry.duplicate);
  EXPECT_EQ(retry.seq, first.seq);
  EXPECT_EQ(BalanceOf(kFund), 100);
  EXPECT_THAT(RejectOp({"gift-before-restart", false, DonationBody(kDonor, kFund, 101)}),
              StatusIs(StatusCode::kAlreadyExists, HasSubstr("amount")));
}

TEST_F(LedgerIdempotencyTest, RejectedOperationDoesNotConsumeItsClientId) {
  OpenStandardAccounts();
  EXPECT_THAT(RejectOp({"gift-retry-fixed", false, DonationBody(kDonor, kFund, 0)}),
              StatusIs(StatusCode::kInvalidArgument));
  OpResult fixed = ledger_->SubmitOne({"gift-retry-fixed", false, DonationBody(kDonor, kFund, 5)});
  EXPECT_TRUE(fixed.status.ok()) << fixed.status;
  EXPECT_FALSE(fixed.duplicate);
}

// ===================================================================
// Batches and linked chains
// ===================================================================

TEST_F(LedgerBatchTest, EachOperationOfABatchGetsItsOwnResult) {
  OpenStandardAccounts();
  const LedgerHead before = ledger_->Head();
  std::vector<OpResult> results = ledger_->Submit({Op(DonationBody(kDonor, kFund, 10)),
                                                   Op(DonationBody(kDonor, kFund, 0)),
                                                   Op(DonationBody(kDonor, kFund, 20))});
  ASSERT_EQ(results.size(), 3u);
  EXPECT_TRUE(results[0].status.ok()) << results[0].status;
  EXPECT_THAT(results[1].status, StatusIs(StatusCode::kInvalidArgument, HasSubstr("amount")));
  EXPECT_TRUE(results[2].status.ok()) << results[2].status;
  EXPECT_EQ(results[0].seq, before.seq + 1);
  EXPECT_EQ(results[2].seq, before.seq + 2);
  EXPECT_EQ(ledger_->Head().seq, before.seq + 2);
  EXPECT_EQ(BalanceOf(kFund), 30);
}

TEST_F(LedgerBatchTest, LinkedOpenFundAndDonationSucceedTogether) {
  OpenAccount(kDonor, AccountKind::kDonor);
  std::vector<OpResult> results =
      ledger_->Submit({Op(OpenBody("fund/new", AccountKind::kFund, kCny), /*linked=*/true),
                       Op(DonationBody(kDonor, "fund/new", 800))});
  ASSERT_EQ(results.size(), 2u);
  ASSERT_TRUE(results[0].status.ok()) << results[0].status;
  ASSERT_TRUE(results[1].status.ok()) << results[1].status;
  EXPECT_EQ(results[1].seq, results[0].seq + 1);
  EXPECT_EQ(BalanceOf("fund/new"), 800);
}

TEST_F(LedgerBatchTest, LinkedChainSeesTheEffectsOfItsEarlierOperations) {
  OpenStandardAccounts();
  std::vector<OpResult> results =
      ledger_->Submit({Op(DonationBody(kDonor, kFund, 100), true),
                       Op(AllocationBody(kFund, kProject, 100), true),
                       Op(DisbursementBody(kProject, kRecipient, 100))});
  ASSERT_EQ(results.size(), 3u);
  for (const OpResult& r : results) EXPECT_TRUE(r.status.ok()) << r.status;
  EXPECT_EQ(BalanceOf(kRecipient), 100);
}

TEST_F(LedgerBatchTest, FailureOfSecondOperationAbortsTheFirstAndWritesNothing) {
  OpenAccount(kDonor, AccountKind::kDonor);
  const LedgerHead before = ledger_->Head();
  const std::string digest = ledger_->StateDigest();
  std::vector<OpResult> results =
      ledger_->Submit({Op(OpenBody("fund/new", AccountKind::kFund, kCny), true),
                       Op(DonationBody(kDonor, "fund/new", 0))});
  ASSERT_EQ(results.size(), 2u);
  EXPECT_THAT(results[0].status,
              StatusIs(StatusCode::kAborted, HasSubstr("linked operation failed")));
  EXPECT_THAT(results[1].status, StatusIs(StatusCode::kInvalidArgument, HasSubstr("amount")));
  EXPECT_EQ(ledger_->Head().seq, before.seq);
  EXPECT_EQ(ledger_->Head().hash, before.hash);
  EXPECT_EQ(ledger_->StateDigest(), digest);
  EXPECT_THAT(ledger_->GetAccount("fund/new").status(), StatusIs(StatusCode::kNotFound));
}

TEST_F(LedgerBatchTest, StateFailureLateInChainUndoesTheEarlierOperations) {
  OpenStandardAccounts();
  Donate(kDonor, kFund, 1'000);
  const LedgerHead before = ledger_->Head();
  const std::string digest = ledger_->StateDigest();
  const std::vector<Slice> fund_before = HoldingsOf(kFund);
  std::vector<OpResult> results =
      ledger_->Submit({Op(AllocationBody(kFund, kProject, 600), true),
                       Op(DisbursementBody(kProject, kRecipient, 100), true),
                       Op(DisbursementBody(kProject, kRecipient, 501))});
  ASSERT_EQ(results.size(), 3u);
  EXPECT_THAT(results[0].status,
              StatusIs(StatusCode::kAborted, HasSubstr("linked operation failed")));
  EXPECT_THAT(results[1].status,
              StatusIs(StatusCode::kAborted, HasSubstr("linked operation failed")));
  EXPECT_THAT(results[2].status,
              StatusIs(StatusCode::kFailedPrecondition, AllOf(HasSubstr("500"), HasSubstr("501"))));
  EXPECT_EQ(ledger_->Head().seq, before.seq);
  EXPECT_EQ(ledger_->StateDigest(), digest);
  EXPECT_EQ(BalanceOf(kFund), 1'000);
  EXPECT_EQ(BalanceOf(kProject), 0);
  EXPECT_EQ(BalanceOf(kRecipient), 0);
  EXPECT_EQ(Pairs(HoldingsOf(kFund)), Pairs(fund_before));
}

TEST_F(LedgerBatchTest, FailureOfFirstOperationAbortsTheRest) {
  OpenStandardAccounts();
  const LedgerHead before = ledger_->Head();
  std::vector<OpResult> results =
      ledger_->Submit({Op(DonationBody("donor/nobody", kFund, 100), true),
                       Op(DonationBody(kDonor, kFund, 100), true),
                       Op(DonationBody(kDonor, kFund2, 100))});
  ASSERT_EQ(results.size(), 3u);
  EXPECT_THAT(results[0].status, StatusIs(StatusCode::kNotFound, HasSubstr("donor/nobody")));
  EXPECT_THAT(results[1].status, StatusIs(StatusCode::kAborted, HasSubstr("linked operation failed")));
  EXPECT_THAT(results[2].status, StatusIs(StatusCode::kAborted, HasSubstr("linked operation failed")));
  EXPECT_EQ(ledger_->Head().seq, before.seq);
}

TEST_F(LedgerBatchTest, FailedChainDoesNotAffectItsNeighbours) {
  OpenStandardAccounts();
  const LedgerHead before = ledger_->Head();
  std::vector<OpResult> results = ledger_->Submit({Op(DonationBody(kDonor, kFund, 1)),
                                                   Op(DonationBody(kDonor, kFund, 2), true),
                                                   Op(DonationBody(kDonor, kFund, -3)),
                                                   Op(DonationBody(kDonor, kFund, 4))});
  ASSERT_EQ(results.size(), 4u);
  EXPECT_TRUE(results[0].status.ok()) << results[0].status;
  EXPECT_THAT(results[1].status, StatusIs(StatusCode::kAborted));
  EXPECT_THAT(results[2].status, StatusIs(StatusCode::kInvalidArgument));
  EXPECT_TRUE(results[3].status.ok()) << results[3].status;
  EXPECT_EQ(ledger_->Head().seq, before.seq + 2);
  EXPECT_EQ(BalanceOf(kFund), 5);
}

TEST_F(LedgerBatchTest, ChainLeftOpenAtTheEndIsInvalid) {
  OpenStandardAccounts();
  const LedgerHead before = ledger_->Head();
  std::vector<OpResult> results = ledger_->Submit({Op(DonationBody(kDonor, kFund, 1), true),
                                                   Op(DonationBody(kDonor, kFund, 2), true)});
  ASSERT_EQ(results.size(), 2u);
  EXPECT_THAT(results[0].status, StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(results[1].status, StatusIs(StatusCode::kInvalidArgument));
  EXPECT_EQ(ledger_->Head().seq, before.seq);
}

TEST_F(LedgerBatchTest, ChainLeftOpenFailsOnlyItsOwnOperations) {
  OpenStandardAccounts();
  const LedgerHead before = ledger_->Head();
  std::vector<OpResult> results = ledger_->Submit({Op(DonationBody(kDonor, kFund, 1)),
                                                   Op(DonationBody(kDonor, kFund, 2), true)});
  ASSERT_EQ(results.size(), 2u);
  EXPECT_TRUE(results[0].status.ok()) << results[0].status;
  EXPECT_THAT(results[1].status, StatusIs(StatusCode::kInvalidArgument));
  EXPECT_EQ(ledger_->Head().seq, before.seq + 1);
}

TEST_F(LedgerBatchTest, BatchOverMaxIsInvalid) {
  OpenStandardAccounts();
  const LedgerHead before = ledger_->Head();
  std::vector<Operation> ops;
  for (size_t i = 0; i < kBatchOpsMax + 1; ++i) ops.push_back(Op(DonationBody(kDonor, kFund, 1)));
  std::vector<OpResult> results = ledger_->Submit(std::move(ops));
  ASSERT_EQ(results.size(), kBatchOpsMax + 1);
  size_t invalid = 0;
  for (const OpResult& r : results) invalid += r.status.code() == StatusCode::kInvalidArgument;
  EXPECT_EQ(invalid, kBatchOpsMax + 1) << results[0].status;
  EXPECT_EQ(ledger_->Head().seq, before.seq);
}

TEST_F(LedgerBatchTest, LinkedChainOverMaxIsInvalidAtMaxIsAccepted) {
  OpenStandardAccounts();
  const LedgerHead before = ledger_->Head();
  std::vector<Operation> ops;
  for (size_t i = 0; i < kLinkedGroupOpsMax + 1; ++i) {
    ops.push_back(Op(DonationBody(kDonor, kFund, 1), /*linked=*/i < kLinkedGroupOpsMax));
  }
  std::vector<OpResult> results = ledger_->Submit(std::move(ops));
  ASSERT_EQ(results.size(), kLinkedGroupOpsMax + 1);
  size_t invalid = 0;
  for (const OpResult& r : results) invalid += r.status.code() == StatusCode::kInvalidArgument;
  EXPECT_EQ(invalid, kLinkedGroupOpsMax + 1) << results[0].status;
  EXPECT_EQ(ledger_->Head().seq, before.seq);

  ops.clear();
  for (size_t i = 0; i < kLinkedGroupOpsMax; ++i) {
    ops.push_back(Op(DonationBody(kDonor, kFund, 1), /*linked=*/i + 1 < kLinkedGroupOpsMax));
  }
  results = ledger_->Submit(std::move(ops));
  size_t ok = 0;
  for (const OpResult& r : results) ok += r.status.ok();
  EXPECT_EQ(ok, kLinkedGroupOpsMax) << results[0].status;
  EXPECT_EQ(BalanceOf(kFund), static_cast<int64_t>(kLinkedGroupOpsMax));
}

TEST_F(LedgerBatchTest, SubmitAsyncCallsBackOnceWithOneResultPerOperation) {
  std::promise<std::vector<OpResult>> promise;
  std::future<std::vector<OpResult>> future = promise.get_future();
  std::atomic<int> calls{0};
  ledger_->SubmitAsync({Op(OpenBody(kDonor, AccountKind::kDonor)), Op(OpenBody(kFund, AccountKind::kFund, kCny))},
                       [&](std::vector<OpResult> results) {
                         if (calls.fetch_add(1) == 0) promise.set_value(std::move(results));
                       });
  const std::vector<OpResult> results = future.get();
  ASSERT_EQ(results.size(), 2u);
  EXPECT_TRUE(results[0].status.ok()) << results[0].status;
  EXPECT_TRUE(results[1].status.ok()) << results[1].status;
  EXPECT_EQ(ledger_->Head().seq, 2u) << "results come after the entries are durable";
  ledger_.reset();  // drains the sequencer: a second call would show now
  EXPECT_EQ(calls.load(), 1);
}

// ===================================================================
// Traces
// ===================================================================

// Lots a (1000) and b (500) split across a fund, a project and two recipients.
class LedgerTraceScenario : public LedgerTraceTest {
 protected:
  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(LedgerTraceTest::SetUp());
    OpenStandardAccounts();
    a_ = Donate(kDonor, kFund, 1'000);
    b_ = Donate(kDonor2, kFund, 500);
    allocation_ = Allocate(kFund, kProject, 1'200);     // a1000 b200 -> project
    paid_ = Disburse(kProject, kRecipient, 1'100);      // a1000 b100 -> recipient
    paid2_ = Disburse(kFund, kRecipient2, 50);          // b50 -> recipient2
  }
  uint64_t a_ = 0, b_ = 0, allocation_ = 0, paid_ = 0, paid2_ = 0;
};

TEST_F(LedgerTraceScenario, TraceLotAccountsForEveryFen) {
  const LotTrace a = TraceOf(a_);
  EXPECT_EQ(a.lot.lot, a_);
  EXPECT_EQ(a.lot.amount, 1'000);
  EXPECT_EQ(SumPlaces(a.held) + SumPlaces(a.reached), 1'000);
  EXPECT_EQ(SumPlaces(a.held), 0);
  EXPECT_EQ(ByAccount(a.reached), (std::map<std::string, int64_t>{{kRecipient, 1'000}}));

  const LotTrace b = TraceOf(b_);
  EXPECT_EQ(SumPlaces(b.held) + SumPlaces(b.reached), 500);
  EXPECT_EQ(ByAccount(b.held),
            (std::map<std::string, int64_t>{{kFund, 250}, {kProject, 100}}));
  EXPECT_EQ(ByAccount(b.reached),
            (std::map<std::string, int64_t>{{kRecipient, 100}, {kRecipient2, 50}}));
  for (const TracePlace& p : b.reached) {
    EXPECT_EQ(p.kind, AccountKind::kRecipient) << p.account;
  }
}

TEST_F(LedgerTraceScenario, TraceLotHopsAreInSeqOrderDonationFirst) {
  const LotTrace b = TraceOf(b_);
  ASSERT_EQ(b.hops.size(), 4u);
  EXPECT_EQ(b.hops[0].seq, b_);
  EXPECT_EQ(b.hops[0].type, EntryType::kDonation);
  EXPECT_EQ(b.hops[0].from, kDonor2);
  EXPECT_EQ(b.hops[0].to, kFund);
  EXPECT_EQ(b.hops[0].amount, 500);
  EXPECT_EQ(b.hops[1].seq, allocation_);
  EXPECT_EQ(b.hops[1].type, EntryType::kAllocation);
  EXPECT_EQ(b.hops[1].amount, 200);
  EXPECT_EQ(b.hops[2].seq, paid_);
  EXPECT_EQ(b.hops[2].type, EntryType::kDisbursement);
  EXPECT_EQ(b.hops[2].from, kProject);
  EXPECT_EQ(b.hops[2].to, kRecipient);
  EXPECT_EQ(b.hops[2].amount, 100);
  EXPECT_EQ(b.hops[3].seq, paid2_);
  EXPECT_EQ(b.hops[3].amount, 50);
  for (size_t i = 1; i < b.hops.size(); ++i) {
    EXPECT_LE(b.hops[i - 1].time_us, b.hops[i].time_us);
  }
}

TEST_F(LedgerTraceScenario, TraceEntryOfDisbursementListsLotsAndDonors) {
  absl::StatusOr<EntryTracePage> page = ledger_->TraceEntry(paid_, 0, 100);
  ASSERT_TRUE(page.ok()) << page.status();
  EXPECT_EQ(page->seq, paid_);
  EXPECT_EQ(page->type, EntryType::kDisbursement);
  EXPECT_EQ(page->outflow, 1'100);
  EXPECT_EQ(page->total_count, 2u);
  EXPECT_EQ(page->offset, 0u);
  ASSERT_EQ(page->sources.size(), 2u);
  EXPECT_EQ(page->sources[0].posting_index, 0u);
  EXPECT_EQ(page->sources[0].lot, a_);
  EXPECT_EQ(page->sources[0].donor, kDonor);
  EXPECT_EQ(page->sources[0].amount, 1'000);
  EXPECT_EQ(page->sources[1].lot, b_);
  EXPECT_EQ(page->sources[1].donor, kDonor2);
  EXPECT_EQ(page->sources[1].amount, 100);

  absl::StatusOr<EntryTracePage> second = ledger_->TraceEntry(paid_, 1, 1);
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(second->offset, 1u);
  EXPECT_EQ(second->total_count, 2u);
  ASSERT_EQ(second->sources.size(), 1u);
  EXPECT_EQ(second->sources[0].lot, b_);
}

TEST_F(LedgerTraceScenario, TraceEntryOfDonationIsItsOwnLot) {
  absl::StatusOr<EntryTracePage> page = ledger_->TraceEntry(b_, 0, 10);
  ASSERT_TRUE(page.ok()) << page.status();
  EXPECT_EQ(page->type, EntryType::kDonation);
  EXPECT_EQ(page->outflow, 500);
  EXPECT_EQ(page->total_count, 1u);
  ASSERT_EQ(page->sources.size(), 1u);
  EXPECT_EQ(page->sources[0].lot, b_);
  EXPECT_EQ(page->sources[0].donor, kDonor2);
  EXPECT_EQ(page->sources[0].amount, 500);
}

TEST_F(LedgerTraceScenario, PageLimitOverMaxIsInvalid) {
  // ledger/limits.h: "Requests beyond a bound are rejected with kInvalidArgument".
  EXPECT_THAT(ledger_->TraceEntry(paid_, 0, kPageItemsMax + 1).status(),
              StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(ledger_->GetHoldings(kFund, 0, kPageItemsMax + 1).status(),
              StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(ledger_->DonorStatement(kDonor, 0, kPageItemsMax + 1).status(),
              StatusIs(StatusCode::kInvalidArgument));
  EXPECT_TRUE(ledger_->TraceEntry(paid_, 0, kPageItemsMax).ok());
}

TEST_F(LedgerTraceTest, TraceEntryPagesConcatenateToTheWhole) {
  OpenStandardAccounts();
  std::vector<uint64_t> lots;
  int64_t total = 0;
  for (int i = 1; i <= 25; ++i) {
    DonationOp op = DonationBody(i % 3 == 0 ? kDonor2 : kDonor, kFund, 100 * i);
    if (i % 5 == 0) op.flags = kDonationAnonymous;
    lots.push_back(MustRun(op));
    total += 100 * i;
  }
  const uint64_t paid = Disburse(kFund, kSupplier, total - 50);  // last lot split

  const std::vector<TraceSource> whole = AllSources(paid, 100);
  const std::vector<TraceSource> paged = AllSources(paid, 7);
  ASSERT_EQ(whole.size(), 25u);
  ASSERT_EQ(paged.size(), whole.size());
  int64_t sum = 0;
  for (size_t i = 0; i < whole.size(); ++i) {
    SCOPED_TRACE(i);
    EXPECT_EQ(paged[i].lot, whole[i].lot);
    EXPECT_EQ(paged[i].amount, whole[i].amount);
    EXPECT_EQ(paged[i].donor, whole[i].donor);
    EXPECT_EQ(whole[i].lot, lots[i]);
    EXPECT_EQ(whole[i].anonymous, (i + 1) % 5 == 0);
    EXPECT_EQ(whole[i].amount, i + 1 < 25 ? 100 * static_cast<int64_t>(i + 1) : 2'450);
    sum += whole[i].amount;
  }
  absl::StatusOr<EntryTracePage> first = ledger_->TraceEntry(paid, 0, 7);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(first->total_count, 25u);
  EXPECT_EQ(first->sources.size(), 7u);
  EXPECT_EQ(first->outflow, total - 50);
  EXPECT_EQ(sum, first->outflow);
}

TEST_F(LedgerTraceTest, TraceEntryOfOpenAccountHasNoSources) {
  const uint64_t opened = OpenFund(kFund);
  absl::StatusOr<EntryTracePage> page = ledger_->TraceEntry(opened, 0, 10);
  ASSERT_TRUE(page.ok()) << page.status();
  EXPECT_EQ(page->type, EntryType::kOpenAccount);
  EXPECT_EQ(page->outflow, 0);
  EXPECT_EQ(page->total_count, 0u);
  EXPECT_THAT(page->sources, IsEmpty());
}

TEST_F(LedgerTraceTest, AccountStatementHasRunningBalanceWithinTheWindow) {
  OpenStandardAccounts();
  clock_.SetMicros(kStartUs + 1'000);
  Donate(kDonor, kFund, 100);
  clock_.SetMicros(kStartUs + 2'000);
  const uint64_t allocation = Allocate(kFund, kProject, 30);
  clock_.SetMicros(kStartUs + 3'000);
  const uint64_t late_gift = Donate(kDonor2, kFund, 50);
  clock_.SetMicros(kStartUs + 4'000);
  Donate(kDonor2, kFund2, 7);  // does not touch kFund

  absl::StatusOr<StatementPage> page =
      ledger_->Statement(kFund, kStartUs + 2'000, kStartUs + 4'000, 0, 100);
  ASSERT_TRUE(page.ok()) << page.status();
  EXPECT_EQ(page->account, kFund);
  EXPECT_EQ(page->total_count, 2u);
  ASSERT_EQ(page->lines.size(), 2u);
  EXPECT_EQ(page->lines[0].seq, allocation);
  EXPECT_EQ(page->lines[0].type, EntryType::kAllocation);
  EXPECT_EQ(page->lines[0].counterparty, kProject);
  EXPECT_EQ(page->lines[0].delta, -30);
  EXPECT_EQ(page->lines[0].balance_after, 70);
  EXPECT_EQ(page->lines[1].seq, late_gift);
  EXPECT_EQ(page->lines[1].counterparty, kDonor2);
  EXPECT_EQ(page->lines[1].delta, 50);
  EXPECT_EQ(page->lines[1].balance_after, 120);
  EXPECT_THAT(ledger_->Statement("fund/none", 0, kStartUs * 2, 0, 10).status(),
              StatusIs(StatusCode::kNotFound, HasSubstr("fund/none")));
}

TEST_F(LedgerTraceTest, DonorStatementListsTheDonorsLotsPaged) {
  OpenStandardAccounts();
  const uint64_t l1 = Donate(kDonor, kFund, 100);
  Donate(kDonor2, kFund, 999);
  const uint64_t l2 = Donate(kDonor, kProject, 200);
  const uint64_t l3 = Donate(kDonor, kFund2, 300);
  Allocate(kFund, kProject2, 500);
  Disburse(kProject2, kRecipient, 400);

  absl::StatusOr<DonorStatementPage> page = ledger_->DonorStatement(kDonor, 0, 2);
  ASSERT_TRUE(page.ok()) << page.status();
  EXPECT_EQ(page->donor, kDonor);
  EXPECT_EQ(page->total_lots, 3u);
  EXPECT_EQ(page->offset, 0u);
  ASSERT_EQ(page->lots.size(), 2u);
  EXPECT_EQ(page->lots[0].lot.lot, l1);
  EXPECT_EQ(page->lots[1].lot.lot, l2);
  EXPECT_EQ(ByAccount(page->lots[0].reached),
            (std::map<std::string, int64_t>{{kRecipient, 100}}));

  absl::StatusOr<DonorStatementPage> rest = ledger_->DonorStatement(kDonor, 2, 2);
  ASSERT_TRUE(rest.ok()) << rest.status();
  EXPECT_EQ(rest->total_lots, 3u);
  EXPECT_EQ(rest->offset, 2u);
  ASSERT_EQ(rest->lots.size(), 1u);
  EXPECT_EQ(rest->lots[0].lot.lot, l3);
  for (const LotTrace& t : {page->lots[0], page->lots[1], rest->lots[0]}) {
    EXPECT_EQ(t.lot.donor, kDonor);
    EXPECT_EQ(SumPlaces(t.held) + SumPlaces(t.reached), t.lot.amount) << t.lot.lot;
  }
}

// ===================================================================
// Scale
// ===================================================================

#ifdef WARMLEDGER_SANITIZED
constexpr size_t kCampaignLots = 20'000;
#else
constexpr size_t kCampaignLots = 200'000;  // one 99 Giving Day campaign
#endif

TEST_F(LedgerScaleTest, DisbursementConsumingACampaignOfSmallLotsIsTraceable) {
  OpenStandardAccounts();
  std::vector<Operation> ops;
  ops.reserve(kCampaignLots);
  std::vector<int64_t> amounts(kCampaignLots);
  int64_t total = 0;
  for (size_t i = 0; i < kCampaignLots; ++i) {
    amounts[i] = 1 + static_cast<int64_t>(i % 97);
    total += amounts[i];
    ops.push_back(Op(DonationBody(i % 2 == 0 ? kDonor : kDonor2, kFund, amounts[i])));
  }
  const std::vector<OpResult> results = SubmitAll(std::move(ops));
  ASSERT_EQ(results.size(), kCampaignLots);
  size_t failed = 0;
  for (const OpResult& r : results) failed += r.status.ok() ? 0 : 1;
  ASSERT_EQ(failed, 0u) << results.front().status;
  EXPECT_EQ(BalanceOf(kFund), total);

  const uint64_t paid = Disburse(kFund, kSupplier, total);
  EXPECT_EQ(BalanceOf(kFund), 0);
  EXPECT_EQ(BalanceOf(kSupplier), total);
  EXPECT_EQ(EntryAt(paid).entry.postings.at(0).slices.size(), kCampaignLots);

  size_t count = 0;
  size_t mismatched = 0;
  int64_t sum = 0;
  for (uint64_t offset = 0; offset < kCampaignLots; offset += kPageItemsMax) {
    absl::StatusOr<EntryTracePage> page = ledger_->TraceEntry(paid, offset, kPageItemsMax);
    ASSERT_TRUE(page.ok()) << page.status();
    ASSERT_EQ(page->total_count, kCampaignLots);
    ASSERT_EQ(page->outflow, total);
    ASSERT_FALSE(page->sources.empty());
    for (const TraceSource& s : page->sources) {
      mismatched += s.lot != results[count].seq || s.amount != amounts[count];
      sum += s.amount;
      ++count;
    }
  }
  EXPECT_EQ(count, kCampaignLots);
  EXPECT_EQ(mismatched, 0u);
  EXPECT_EQ(sum, total);

  const LotTrace middle = TraceOf(results[kCampaignLots / 2].seq);
  EXPECT_EQ(ByAccount(middle.reached),
            (std::map<std::string, int64_t>{{kSupplier, amounts[kCampaignLots / 2]}}));
}

// ===================================================================
// Time
// ===================================================================

TEST_F(LedgerTimeTest, EntryTimesNeverDecreaseWhenTheClockGoesBack) {
  OpResult first = Run(OpenBody(kDonor, AccountKind::kDonor));
  ASSERT_TRUE(first.status.ok()) << first.status;
  EXPECT_EQ(first.time_us, kStartUs);
  clock_.AdvanceMicros(10);
  OpResult second = Run(OpenBody(kFund, AccountKind::kFund, kCny));
  ASSERT_TRUE(second.status.ok()) << second.status;
  EXPECT_EQ(second.time_us, kStartUs + 10);
  clock_.SetMicros(kStartUs - 1'000'000);
  OpResult third = Run(DonationBody(kDonor, kFund, 5));
  ASSERT_TRUE(third.status.ok()) << third.status;
  EXPECT_GE(third.time_us, second.time_us);
  clock_.SetMicros(0);
  OpResult fourth = Run(DonationBody(kDonor, kFund, 6));
  ASSERT_TRUE(fourth.status.ok()) << fourth.status;
  EXPECT_GE(fourth.time_us, third.time_us);

  absl::StatusOr<LotInfo> lot = ledger_->GetLot(fourth.seq);
  ASSERT_TRUE(lot.ok()) << lot.status();
  EXPECT_EQ(lot->time_us, fourth.time_us);
  const std::vector<StoredEntry> entries = AllEntries();
  ASSERT_EQ(entries.size(), 4u);
  EXPECT_EQ(entries[3].entry.time_us, fourth.time_us);
  for (size_t i = 1; i < entries.size(); ++i) {
    EXPECT_GE(entries[i].entry.time_us, entries[i - 1].entry.time_us) << "seq " << i + 1;
  }
}

TEST_F(LedgerTimeTest, EntryTimesStayNonDecreasingAcrossReopenWithAnEarlierClock) {
  OpenAccount(kDonor, AccountKind::kDonor);
  clock_.AdvanceMicros(1'000'000);
  OpResult last = Run(OpenBody(kFund, AccountKind::kFund, kCny));
  ASSERT_TRUE(last.status.ok()) << last.status;
  ASSERT_NO_FATAL_FAILURE(Reopen());
  clock_.SetMicros(kStartUs - 5'000'000);
  OpResult after = Run(DonationBody(kDonor, kFund, 5));
  ASSERT_TRUE(after.status.ok()) << after.status;
  EXPECT_GE(after.time_us, last.time_us);
}

// ===================================================================
// Persistence
// ===================================================================

TEST_F(LedgerPersistenceTest, ReopenRestoresHeadBalancesHoldingsAndStateDigest) {
  OpenStandardAccounts();
  const uint64_t a = Donate(kDonor, kFund, 10'000);
  const uint64_t b = Donate(kDonor2, kFund, 5'000);
  Donate(kMerchant, kProject, 700);
  const uint64_t allocation = Allocate(kFund, kProject2, 12'000);
  Disburse(kProject2, kRecipient, 3'000);
  const uint64_t wrong = Disburse(kProject2, kRecipient2, 1'000);
  Reverse(wrong);
  MustRun(AdjustBody(allocation, kProject2, kFund2, 500));
  const uint64_t mistaken = Donate(kDonor, kRestrictedFund, 42);
  Reverse(mistaken);
  Close(kRestrictedFund);

  const LedgerHead head = ledger_->Head();
  const std::string digest = ledger_->StateDigest();
  const char* accounts[] = {kDonor, kDonor2, kMerchant, kFund, kFund2, kProject, kProject2,
                            kRecipient, kRecipient2};
  std::map<std::string, int64_t> balances;
  for (const char* account : accounts) balances[account] = BalanceOf(account);
  const SlicePairs fund_holdings = Pairs(HoldingsOf(kFund));
  const SlicePairs project2_holdings = Pairs(HoldingsOf(kProject2));
  const LotTrace trace_a = TraceOf(a);

  ASSERT_NO_FATAL_FAILURE(Reopen());
  EXPECT_EQ(ledger_->Head().seq, head.seq);
  EXPECT_EQ(ledger_->Head().hash, head.hash);
  EXPECT_EQ(ledger_->StateDigest(), digest);
  for (const char* account : accounts) EXPECT_EQ(BalanceOf(account), balances[account]) << account;
  EXPECT_EQ(Pairs(HoldingsOf(kFund)), fund_holdings);
  EXPECT_EQ(Pairs(HoldingsOf(kProject2)), project2_holdings);
  absl::StatusOr<AccountInfo> closed = ledger_->GetAccount(kRestrictedFund);
  ASSERT_TRUE(closed.ok()) << closed.status();
  EXPECT_TRUE(closed->closed);
  const LotTrace trace_after = TraceOf(a);
  EXPECT_EQ(trace_after.hops.size(), trace_a.hops.size());
  EXPECT_EQ(ByAccount(trace_after.held), ByAccount(trace_a.held));
  EXPECT_EQ(ByAccount(trace_after.reached), ByAccount(trace_a.reached));
  EXPECT_THAT(Reject(ReverseBody(wrong)), StatusIs(StatusCode::kFailedPrecondition))
      << "the reversed-entries set survives a reopen";
  absl::StatusOr<LotInfo> lot_b = ledger_->GetLot(b);
  ASSERT_TRUE(lot_b.ok()) << lot_b.status();
  EXPECT_EQ(lot_b->donor, kDonor2);

  absl::StatusOr<std::string> rebuilt = ledger_->RebuildStateDigest();
  ASSERT_TRUE(rebuilt.ok()) << rebuilt.status();
  EXPECT_EQ(*rebuilt, ledger_->StateDigest());
  EXPECT_TRUE(ledger_->VerifyChain().ok());
}

TEST_F(LedgerPersistenceTest, RebuiltStateDigestEqualsLiveStateDigest) {
  OpenStandardAccounts();
  const uint64_t lot = Donate(kDonor, kProject, 900);
  Donate(kDonor2, kFund, 100);
  Allocate(kFund, kProject, 60);
  Disburse(kProject, kSupplier, 500);
  MustRun(AdjustBody(lot, kProject, kFund2, 10));
  absl::StatusOr<std::string> rebuilt = ledger_->RebuildStateDigest();
  ASSERT_TRUE(rebuilt.ok()) << rebuilt.status();
  EXPECT_EQ(*rebuilt, ledger_->StateDigest());
  EXPECT_FALSE(ledger_->StateDigest().empty());

  const std::string before = ledger_->StateDigest();
  Donate(kDonor2, kFund, 1);
  EXPECT_NE(ledger_->StateDigest(), before) << "the digest covers balances";
}

TEST_F(LedgerPersistenceTest, ReopenedLedgerExtendsTheSameChain) {
  OpenStandardAccounts();
  Donate(kDonor, kFund, 100);
  const LedgerHead head = ledger_->Head();
  ASSERT_NO_FATAL_FAILURE(Reopen());
  const uint64_t next = Donate(kDonor, kFund, 200);
  EXPECT_EQ(next, head.seq + 1);
  EXPECT_EQ(EntryAt(next).entry.prev_hash, head.hash);
  EXPECT_EQ(BalanceOf(kFund), 300);
  EXPECT_TRUE(ledger_->VerifyChain().ok());
}

TEST_F(LedgerPersistenceTest, CleanCloseLeavesNoWriteAheadLogToReplay) {
  OpenStandardAccounts();
  Donate(kDonor, kFund, 100);
  const LedgerHead head = ledger_->Head();
  ledger_.reset();
  int logs = 0;
  for (const auto& file : std::filesystem::directory_iterator(dir_)) {
    if (file.path().extension() != ".log") continue;
    ++logs;
    EXPECT_EQ(file.file_size(), 0u) << file.path() << " still holds writes to replay";
  }
  EXPECT_GE(logs, 1);  // RocksDB starts a new, empty log after the flush
  ASSERT_NO_FATAL_FAILURE(OpenLedger());
  EXPECT_EQ(ledger_->Head().seq, head.seq);
  EXPECT_EQ(ledger_->Head().hash, head.hash);
  EXPECT_EQ(BalanceOf(kFund), 100);
}

// ===================================================================
// Concurrency
// ===================================================================

TEST_F(LedgerConcurrencyTest, SixteenThreadsApplyEveryClientIdExactlyOnce) {
  OpenStandardAccounts();
  const uint64_t setup_seq = ledger_->Head().seq;
  constexpr int kThreads = 16;
  constexpr int kOwnOpsPerThread = 40;
  constexpr int kSharedIds = 20;
  constexpr int64_t kSharedAmountBase = 1'000;

  auto shared_op = [](int i) {
    return Operation{"shared-" + std::to_string(i), false,
                     DonationBody(kDonor2, kFund2, kSharedAmountBase + i)};
  };
  // Per thread: (client id, result) of every shared-id submission.
  std::vector<std::vector<std::pair<std::string, OpResult>>> shared_results(kThreads);
  std::vector<int> own_failures(kThreads, 0);
  std::atomic<bool> writers_done{false};

  auto submit = [&](int t, std::vector<Operation> batch) {
    std::vector<OpResult> results = ledger_->Submit(batch);
    if (results.size() != batch.size()) {
      own_failures[t] += static_cast<int>(batch.size());
      return;
    }
    for (size_t k = 0; k < batch.size(); ++k) {
      if (batch[k].client_id.rfind("shared-", 0) == 0) {
        shared_results[t].emplace_back(batch[k].client_id, results[k]);
      } else if (!results[k].status.ok()) {
        ++own_failures[t];
      }
    }
  };
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::vector<Operation> pending;
      for (int i = 0; i < kOwnOpsPerThread; ++i) {
        pending.push_back({"t" + std::to_string(t) + "-" + std::to_string(i), false,
                           DonationBody(kDonor, kFund, 1 + i)});
        if (i < kSharedIds) pending.push_back(shared_op((i + t) % kSharedIds));
        // Even threads submit each operation alone, odd ones in small batches.
        if (t % 2 == 0) {
          for (Operation& op : pending) submit(t, {std::move(op)});
          pending.clear();
        } else if (pending.size() >= 5) {
          submit(t, std::move(pending));
          pending.clear();
        }
      }
      if (!pending.empty()) submit(t, std::move(pending));
    });
  }
  // Two readers that must always see a head that only grows.
  std::atomic<int> reader_regressions{0};
  std::vector<std::thread> readers;
  for (int r = 0; r < 2; ++r) {
    readers.emplace_back([&] {
      uint64_t last = 0;
      while (!writers_done.load()) {
        const uint64_t seq = ledger_->Head().seq;
        if (seq < last) ++reader_regressions;
        last = seq;
        absl::StatusOr<AccountInfo> info = ledger_->GetAccount(kFund);
        if (!info.ok()) ++reader_regressions;
      }
    });
  }
  for (std::thread& t : threads) t.join();
  writers_done.store(true);
  for (std::thread& r : readers) r.join();
  EXPECT_EQ(reader_regressions.load(), 0);

  for (int t = 0; t < kThreads; ++t) EXPECT_EQ(own_failures[t], 0) << "thread " << t;

  // Every shared id got one seq, whoever asked, and was fresh exactly once.
  std::map<std::string, uint64_t> seq_by_shared_id;
  std::map<std::string, int> fresh_by_shared_id;
  for (int t = 0; t < kThreads; ++t) {
    EXPECT_EQ(shared_results[t].size(), static_cast<size_t>(kSharedIds)) << "thread " << t;
    for (const auto& [id, r] : shared_results[t]) {
      ASSERT_TRUE(r.status.ok()) << id << ": " << r.status;
      auto [it, inserted] = seq_by_shared_id.emplace(id, r.seq);
      EXPECT_EQ(it->second, r.seq) << id;
      if (!r.duplicate) ++fresh_by_shared_id[id];
    }
  }
  EXPECT_EQ(seq_by_shared_id.size(), static_cast<size_t>(kSharedIds));
  for (const auto& [id, seq] : seq_by_shared_id) {
    EXPECT_EQ(fresh_by_shared_id[id], 1) << id;
    EXPECT_EQ(EntryAt(seq).entry.client_id, id);
  }

  const std::vector<StoredEntry> entries = AllEntries();
  std::map<std::string, int> applied;
  for (size_t i = setup_seq; i < entries.size(); ++i) ++applied[entries[i].entry.client_id];
  EXPECT_EQ(applied.size(), static_cast<size_t>(kThreads * kOwnOpsPerThread + kSharedIds));
  for (const auto& [id, count] : applied) EXPECT_EQ(count, 1) << id;
  EXPECT_EQ(entries.size(), setup_seq + kThreads * kOwnOpsPerThread + kSharedIds);

  int64_t own_total = 0;
  for (int i = 0; i < kOwnOpsPerThread; ++i) own_total += 1 + i;
  int64_t shared_total = 0;
  for (int i = 0; i < kSharedIds; ++i) shared_total += kSharedAmountBase + i;
  EXPECT_EQ(BalanceOf(kFund), kThreads * own_total);
  EXPECT_EQ(BalanceOf(kFund2), shared_total);

  EXPECT_TRUE(ledger_->VerifyChain().ok());
  absl::StatusOr<std::string> rebuilt = ledger_->RebuildStateDigest();
  ASSERT_TRUE(rebuilt.ok()) << rebuilt.status();
  EXPECT_EQ(*rebuilt, ledger_->StateDigest());
}

}  // namespace
}  // namespace warmledger

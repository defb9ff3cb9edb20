// Tests of goods (docs/rules.md, "Goods"): the catalogue, gifts in kind,
// goods bought with fund money and the money lots behind them, handouts in
// bulk, earliest-expiry-first picking, write-offs and sales, the trace of a
// donor's money through goods to the people who received them, and that
// all of it conserves value per asset and replays.

#include <algorithm>
#include <cstdint>
#include <map>
#include <numeric>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/civil_time.h"
#include "absl/time/time.h"
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

constexpr char kBox[] = "item:daily-box";
constexpr char kVeg[] = "item:vegetables-kg";
constexpr char kWarehouse[] = "stock/warehouse";
constexpr char kVegStock[] = "stock/vegetables";
constexpr char kGoodsSupplier[] = "supplier/daily-goods-co";
constexpr char kSpoilage[] = "expense/spoilage";
constexpr char kSupermarket[] = "store/supermarket";
constexpr char kCompany[] = "donor/medical-co";
constexpr int64_t kDayUs = 86'400'000'000;

TEST(ApportionTest, LargestRemainderSumsExactly) {
  EXPECT_THAT(Apportion(10, {1, 1, 1}), ElementsAre(4, 3, 3));  // tie: earlier index
  EXPECT_THAT(Apportion(7, {50, 30, 20}), ElementsAre(4, 2, 1));  // 3.5 2.1 1.4
  EXPECT_THAT(Apportion(1, {3000, 2000, 1000}), ElementsAre(1, 0, 0));
  EXPECT_THAT(Apportion(0, {5, 5}), ElementsAre(0, 0));
  EXPECT_THAT(Apportion(5, {0, 7, 0}), ElementsAre(0, 5, 0));
  EXPECT_THAT(Apportion(3, {1, 3}), ElementsAre(1, 2));  // 0.75 2.25: remainders 3 and 1
  // The largest amounts do not overflow.
  EXPECT_THAT(Apportion(kAmountMax, {kAmountMax, kAmountMax - 1}),
              ElementsAre(kAmountMax / 2, kAmountMax / 2));
  std::vector<int64_t> weights;
  for (int64_t w = 1; w <= 997; ++w) weights.push_back(w * 7919 % 1000 + 1);
  for (int64_t total : {1, 700, 999, 35'000'00}) {
    const std::vector<int64_t> parts = Apportion(total, weights);
    EXPECT_EQ(std::accumulate(parts.begin(), parts.end(), int64_t{0}), total);
    const int64_t whole = std::accumulate(weights.begin(), weights.end(), int64_t{0});
    for (size_t i = 0; i < parts.size(); ++i) {
      // Each part is the floor or the ceiling of its exact share.
      const __int128 exact = static_cast<__int128>(total) * weights[i];
      EXPECT_GE(static_cast<__int128>(parts[i]) * whole, exact - whole + 1);
      EXPECT_LE(static_cast<__int128>(parts[i]) * whole, exact + whole - 1);
    }
  }
}

ItemOp ItemBody(std::string item, std::string name = "Box of daily necessities",
                std::string unit = "box") {
  return ItemOp{std::move(item), std::move(name), std::move(unit)};
}

GoodsGiftOp GiftBody(std::string donor, std::string to, std::string item, int64_t quantity,
                     int64_t expires_us = 0) {
  GoodsGiftOp op;
  op.donor = std::move(donor);
  op.to = std::move(to);
  op.item = std::move(item);
  op.quantity = quantity;
  op.expires_us = expires_us;
  return op;
}

GoodsPurchaseOp BuyBody(std::string from, int64_t price, int64_t quantity,
                        std::string to = kWarehouse, std::string item = kBox) {
  GoodsPurchaseOp op;
  op.from = std::move(from);
  op.supplier = kGoodsSupplier;
  op.asset = kCny;
  op.price = price;
  op.to = std::move(to);
  op.item = std::move(item);
  op.quantity = quantity;
  op.memo = "invoice 2026-0417";
  return op;
}

HandoutOp HandoutBody(std::vector<HandoutLine> lines, std::string from = kWarehouse,
                      std::string item = kBox) {
  HandoutOp op;
  op.from = std::move(from);
  op.item = std::move(item);
  op.lines = std::move(lines);
  op.purpose = "returning residents";
  return op;
}

GoodsSaleOp SaleBody(int64_t quantity, int64_t proceeds) {
  GoodsSaleOp op;
  op.from = kVegStock;
  op.buyer = kSupermarket;
  op.item = kVeg;
  op.quantity = quantity;
  op.to = kFund;
  op.asset = kCny;
  op.proceeds = proceeds;
  op.memo = "sold at a low price before spoiling";
  return op;
}

int64_t SumAmounts(const std::vector<ConversionPlace>& places) {
  int64_t sum = 0;
  for (const ConversionPlace& p : places) sum += p.amount;
  return sum;
}

int64_t SumSources(const std::vector<ConversionPlace>& places) {
  int64_t sum = 0;
  for (const ConversionPlace& p : places) sum += p.source_amount;
  return sum;
}

class GoodsTest : public LedgerTest {
 protected:
  void SetUp() override {
    LedgerTest::SetUp();
    OpenStandardAccounts();
    MustRun(ItemBody(kBox));
    MustRun(ItemBody(kVeg, "Vegetables", "kg"));
    OpenAccount(kWarehouse, AccountKind::kStock, kBox);
    OpenAccount(kVegStock, AccountKind::kStock, kVeg);
    OpenAccount(kGoodsSupplier, AccountKind::kSupplier);
    OpenAccount(kSpoilage, AccountKind::kExpense);
    OpenAccount(kSupermarket, AccountKind::kMerchant);
    OpenAccount(kCompany, AccountKind::kDonor);
  }

  // Registers `n` recipients, alternating between two categories and three
  // communities; returns their ids.
  std::vector<std::string> Recipients(int n) {
    std::vector<std::string> ids;
    for (int i = 0; i < n; ++i) {
      OpenAccountOp op = OpenBody(absl::StrCat("recipient/h-", i), AccountKind::kRecipient);
      op.category = i % 2 == 0 ? "returning-resident" : "hardship";
      op.community = absl::StrCat("c-", i % 3);
      MustRun(op);
      ids.push_back(op.account);
    }
    return ids;
  }

  // Every asset sums to zero over all accounts.
  void ExpectConserved() {
    absl::StatusOr<std::vector<Balance>> totals = ledger_->TotalsPerAsset();
    ASSERT_TRUE(totals.ok()) << totals.status();
    for (const Balance& b : *totals) EXPECT_EQ(b.amount, 0) << b.asset;
  }

  // Reopening (a full replay) reproduces the state exactly.
  void ExpectReplays() {
    const std::string digest = ledger_->StateDigest();
    ASSERT_NO_FATAL_FAILURE(Reopen());
    EXPECT_EQ(ledger_->StateDigest(), digest);
  }
};

TEST_F(GoodsTest, CatalogueDefinesItemsOnce) {
  EXPECT_THAT(Reject(ItemBody(kBox, "Again")),
              StatusIs(absl::StatusCode::kAlreadyExists, HasSubstr("item.item")));
  EXPECT_THAT(Reject(ItemBody("CNY")),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("item.item")));
  EXPECT_THAT(Reject(ItemBody("item:soap", "Soap", "Bar")),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("item.unit")));
  EXPECT_THAT(Reject(ItemBody("item:soap", "")),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("item.name")));
  // Goods entries name catalogued items only.
  OpenAccount("stock/soap", AccountKind::kStock, "item:soap");
  EXPECT_THAT(Reject(GiftBody(kDonor, "stock/soap", "item:soap", 5)),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("goods_gift.item: 'item:soap' is not in the catalogue")));
  MustRun(ItemBody("item:soap", "Soap", "piece"));
  MustRun(GiftBody(kDonor, "stock/soap", "item:soap", 5));
  MustRun(GiftBody(kDonor, kWarehouse, kBox, 12));

  absl::StatusOr<std::vector<ItemInfo>> items = ledger_->ListItems();
  ASSERT_TRUE(items.ok()) << items.status();
  ASSERT_EQ(items->size(), 3u);
  EXPECT_EQ((*items)[0].item, kBox);
  EXPECT_EQ((*items)[0].unit, "box");
  EXPECT_EQ((*items)[0].in_stock, 12);
  EXPECT_EQ((*items)[2].item, "item:soap");
  EXPECT_EQ((*items)[2].in_stock, 5);
  EXPECT_THAT(ledger_->GetItem("item:nothing").status(),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("item:nothing")));
  ExpectReplays();
}

TEST_F(GoodsTest, GiftInKindIsALotWithItsBatchDetails) {
  GoodsGiftOp gift = GiftBody(kCompany, kWarehouse, kBox, 300, kStartUs + 90 * kDayUs);
  gift.grade = "A";
  gift.value_asset = kCny;
  gift.value = 300 * 45'00;
  gift.channel = DonationChannel::kCompanyGift;
  const uint64_t lot = MustRun(gift);

  absl::StatusOr<LotInfo> info = ledger_->GetLot(lot);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->created_by, EntryType::kGoodsGift);
  EXPECT_EQ(info->donor, kCompany);
  EXPECT_EQ(info->asset, kBox);
  EXPECT_EQ(info->amount, 300);
  EXPECT_EQ(info->grade, "A");
  EXPECT_EQ(info->expires_us, kStartUs + 90 * kDayUs);
  EXPECT_EQ(info->value, 300 * 45'00);
  EXPECT_EQ(BalanceOf(kWarehouse, kBox), 300);
  // The appraised value is recorded, never counted: no money moved.
  EXPECT_EQ(BalanceOf(kCompany, kCny), 0);
  EXPECT_THAT(HoldingsOf(kWarehouse), ElementsAre(Slice{lot, 300}));
  ExpectConserved();

  // A gift recorded in error is reversed while the whole lot is in stock.
  const uint64_t reversal = Reverse(lot);
  EXPECT_EQ(BalanceOf(kWarehouse, kBox), 0);
  EXPECT_EQ(EntryAt(reversal).entry.postings[0].to, kCompany);
  ExpectConserved();
  ExpectReplays();
}

TEST_F(GoodsTest, GiftInKindRejectsBadInput) {
  clock_.SetMicros(kStartUs + kDayUs);
  auto gift = [](auto change) {
    GoodsGiftOp op = GiftBody(kCompany, kWarehouse, kBox, 10);
    change(op);
    return op;
  };
  EXPECT_THAT(Reject(gift([](GoodsGiftOp& op) { op.quantity = 0; })),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("goods_gift.quantity")));
  EXPECT_THAT(Reject(gift([](GoodsGiftOp& op) { op.item = kCny; })),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("goods_gift.item")));
  EXPECT_THAT(Reject(gift([](GoodsGiftOp& op) { op.item = kVeg; })),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("goods_gift.to: stock 'stock/warehouse' holds item:daily-box")));
  EXPECT_THAT(Reject(gift([](GoodsGiftOp& op) { op.to = kFund; })),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("not a stock")));
  EXPECT_THAT(Reject(gift([](GoodsGiftOp& op) { op.donor = kRecipient; })),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("goods_gift.donor")));
  EXPECT_THAT(Reject(gift([](GoodsGiftOp& op) { op.expires_us = kStartUs; })),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("goods_gift.expires_us: the batch expired")));
  EXPECT_THAT(Reject(gift([](GoodsGiftOp& op) { op.expires_us = -1; })),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("goods_gift.expires_us")));
  EXPECT_THAT(Reject(gift([](GoodsGiftOp& op) { op.value = 100; })),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("goods_gift.value_asset")));
  EXPECT_THAT(Reject(gift([](GoodsGiftOp& op) { op.value_asset = kBox; op.value = 1; })),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("goods_gift.value_asset")));
  EXPECT_THAT(Reject(gift([](GoodsGiftOp& op) { op.value_asset = kCny; })),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("goods_gift.value")));
  EXPECT_THAT(Reject(gift([](GoodsGiftOp& op) { op.grade = "A B"; })),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("goods_gift.grade")));
}

// 700 boxes paid by many small gifts: the goods lot records exactly which
// money lots paid and how much of each, and their shares of the boxes sum
// to 700.
TEST_F(GoodsTest, PurchaseIsPaidByManySmallLotsOldestFirst) {
  std::vector<uint64_t> lots;
  std::vector<int64_t> amounts;
  for (int i = 0; i < 120; ++i) {
    const std::string donor = absl::StrCat("donor/small-", i);
    OpenAccount(donor, AccountKind::kDonor);
    const int64_t amount = 1'00 + (i * 37 % 50) * 1'00;  // 1 to 50 yuan
    lots.push_back(Donate(donor, kFund, amount));
    amounts.push_back(amount);
  }
  const int64_t raised = std::accumulate(amounts.begin(), amounts.end(), int64_t{0});
  const int64_t price = raised - 7'00;  // all but part of the last gifts
  const OpResult bought = Run(BuyBody(kFund, price, 700));
  ASSERT_TRUE(bought.status.ok()) << bought.status;
  EXPECT_EQ(bought.moved, 700);

  const Entry entry = EntryAt(bought.seq).entry;
  EXPECT_EQ(entry.policy, "fifo/v1");
  ASSERT_EQ(entry.postings.size(), 2u);
  EXPECT_EQ(entry.postings[0].from, kFund);
  EXPECT_EQ(entry.postings[0].to, kGoodsSupplier);
  EXPECT_EQ(entry.postings[0].amount, price);
  EXPECT_EQ(entry.postings[1].from, kGoodsSupplier);
  EXPECT_EQ(entry.postings[1].to, kWarehouse);
  EXPECT_THAT(entry.postings[1].slices, ElementsAre(Slice{bought.seq, 700}));

  absl::StatusOr<LotInfo> lot = ledger_->GetLot(bought.seq);
  ASSERT_TRUE(lot.ok()) << lot.status();
  EXPECT_EQ(lot->created_by, EntryType::kGoodsPurchase);
  EXPECT_EQ(lot->donor, kGoodsSupplier);
  ASSERT_EQ(lot->parent_count, entry.postings[0].slices.size());
  int64_t consumed = 0;
  int64_t shares = 0;
  for (size_t i = 0; i < lot->parents.size(); ++i) {
    const LotParent& parent = lot->parents[i];
    // Oldest money first: the parents are the gifts in order.
    EXPECT_EQ(parent.lot, lots[i]);
    EXPECT_EQ(parent.donor, absl::StrCat("donor/small-", i));
    EXPECT_EQ(parent.consumed, entry.postings[0].slices[i].amount);
    // Each share is the floor or ceiling of 700 × consumed / price.
    const __int128 exact = static_cast<__int128>(700) * parent.consumed;
    EXPECT_GT(static_cast<__int128>(parent.share + 1) * price, exact);
    EXPECT_LT(static_cast<__int128>(parent.share - 1) * price, exact);
    consumed += parent.consumed;
    shares += parent.share;
  }
  EXPECT_EQ(consumed, price);
  EXPECT_EQ(shares, 700);
  EXPECT_EQ(BalanceOf(kFund), 7'00);
  EXPECT_EQ(BalanceOf(kGoodsSupplier, kCny), price);
  EXPECT_EQ(BalanceOf(kGoodsSupplier, kBox), -700);
  EXPECT_EQ(BalanceOf(kWarehouse, kBox), 700);
  ExpectConserved();
  ExpectReplays();
}

TEST_F(GoodsTest, PurchaseRejectsWhatCannotBePaid) {
  Donate(kDonor, kFund, 1'000'00);
  EXPECT_THAT(Reject(BuyBody(kFund, 1'000'01, 10)),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("goods_purchase.price: account 'fund/general' holds 100000 CNY, "
                                 "asked 100001")));
  GoodsPurchaseOp to_expense = BuyBody(kFund, 10'00, 1);
  to_expense.supplier = kExpense;
  EXPECT_THAT(Reject(to_expense),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("not a supplier")));
  EXPECT_THAT(Reject(BuyBody(kWarehouse, 10'00, 1)),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("goods_purchase.from")));
  EXPECT_THAT(Reject(BuyBody(kFund, 10'00, 1, kVegStock)),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("goods_purchase.to")));
  EXPECT_THAT(Reject(BuyBody(kFund, 10'00, 0)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("goods_purchase.quantity")));
  // A supplier held to one asset cannot deliver goods.
  OpenAccount("supplier/cash-only", AccountKind::kSupplier, kCny);
  GoodsPurchaseOp cash_only = BuyBody(kFund, 10'00, 1);
  cash_only.supplier = "supplier/cash-only";
  EXPECT_THAT(Reject(cash_only),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("goods_purchase.item")));
  // Restricted money may buy goods for its purpose.
  Donate(kDonor2, kProject, 500'00);
  MustRun(BuyBody(kProject, 500'00, 20));
  EXPECT_EQ(BalanceOf(kProject), 0);
}

TEST_F(GoodsTest, HandoutInBulkToSevenHundredHouseholds) {
  const std::vector<std::string> households = Recipients(700);
  Donate(kDonor, kFund, 35'000'00);
  const uint64_t boxes = MustRun(BuyBody(kFund, 35'000'00, 700));

  std::vector<HandoutLine> lines;
  for (const std::string& h : households) lines.push_back({h, 1});
  const OpResult handed = Run(HandoutBody(lines));
  ASSERT_TRUE(handed.status.ok()) << handed.status;
  EXPECT_EQ(handed.moved, 700);
  const Entry entry = EntryAt(handed.seq).entry;
  EXPECT_EQ(entry.policy, "fefo/v1");
  ASSERT_EQ(entry.postings.size(), 700u);
  for (size_t i = 0; i < entry.postings.size(); ++i) {
    EXPECT_EQ(entry.postings[i].to, households[i]);
    EXPECT_THAT(entry.postings[i].slices, ElementsAre(Slice{boxes, 1}));
  }
  EXPECT_EQ(BalanceOf(kWarehouse, kBox), 0);
  EXPECT_EQ(BalanceOf(households[699], kBox), 1);
  EXPECT_TRUE(HoldingsOf(kWarehouse).empty());

  // A retry returns the original; other content under the same id does not.
  Operation retry{"handout-2026-04-17", false, HandoutBody({{households[0], 1}})};
  Donate(kDonor, kFund, 100'00);
  MustRun(BuyBody(kFund, 100'00, 2));
  const OpResult first = ledger_->SubmitOne(retry);
  ASSERT_TRUE(first.status.ok()) << first.status;
  const OpResult again = ledger_->SubmitOne(retry);
  EXPECT_TRUE(again.duplicate);
  EXPECT_EQ(again.seq, first.seq);
  retry.body = HandoutBody({{households[0], 2}});
  EXPECT_THAT(RejectOp(retry),
              StatusIs(absl::StatusCode::kAlreadyExists, HasSubstr("handout.lines")));
  ExpectConserved();
  ExpectReplays();
}

TEST_F(GoodsTest, HandoutRejectsBadLinesAndWritesNothing) {
  const std::vector<std::string> households = Recipients(3);
  MustRun(GiftBody(kCompany, kWarehouse, kBox, 5));
  EXPECT_THAT(Reject(HandoutBody({})),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("handout.lines: 0 lines")));
  std::vector<HandoutLine> too_many(kHandoutLinesMax + 1, HandoutLine{households[0], 1});
  EXPECT_THAT(Reject(HandoutBody(too_many)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("1001 lines")));
  EXPECT_THAT(Reject(HandoutBody({{households[0], 1}, {households[1], 1}, {households[0], 1}})),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("handout.lines[2].recipient: 'recipient/h-0' is also in line 0")));
  EXPECT_THAT(Reject(HandoutBody({{households[0], 1}, {kSupplier, 1}})),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("handout.lines[1].recipient: account 'supplier/house-repairs' "
                                 "is a supplier")));
  EXPECT_THAT(Reject(HandoutBody({{households[0], 1}, {"recipient/nobody", 1}})),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("handout.lines[1].recipient")));
  EXPECT_THAT(Reject(HandoutBody({{households[0], 0}})),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("handout.lines[0].quantity")));
  // Stock never goes below zero: 3 + 3 > 5, nothing is handed out.
  EXPECT_THAT(Reject(HandoutBody({{households[0], 3}, {households[1], 3}})),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("stock 'stock/warehouse' holds 5 item:daily-box, the lines ask 6")));
  EXPECT_THAT(Reject(HandoutBody({{households[0], 1}}, kWarehouse, kVeg)),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("handout.from")));
  EXPECT_EQ(BalanceOf(kWarehouse, kBox), 5);
}

TEST_F(GoodsTest, HandoutsPickTheEarliestExpiryFirst) {
  const std::vector<std::string> h = Recipients(4);
  // Arrival order: late-expiring, never-expiring, early-expiring.
  const uint64_t late = MustRun(GiftBody(kCompany, kWarehouse, kBox, 4, kStartUs + 60 * kDayUs));
  const uint64_t never = MustRun(GiftBody(kDonor, kWarehouse, kBox, 4));
  const uint64_t early = MustRun(GiftBody(kDonor2, kWarehouse, kBox, 3, kStartUs + 10 * kDayUs));

  const uint64_t first = MustRun(HandoutBody({{h[0], 2}, {h[1], 2}, {h[2], 2}}));
  const Entry e = EntryAt(first).entry;
  EXPECT_EQ(e.policy, "fefo/v1");
  EXPECT_THAT(e.postings[0].slices, ElementsAre(Slice{early, 2}));
  EXPECT_THAT(e.postings[1].slices, ElementsAre(Slice{early, 1}, Slice{late, 1}));
  EXPECT_THAT(e.postings[2].slices, ElementsAre(Slice{late, 2}));
  EXPECT_THAT(HoldingsOf(kWarehouse), ElementsAre(Slice{late, 1}, Slice{never, 4}));

  // A spoiled batch is written off by lot, whatever its place in line.
  WriteOffOp spoiled{kWarehouse, kSpoilage, kBox, 2, never, "boxes damaged by water"};
  const uint64_t off = MustRun(spoiled);
  EXPECT_EQ(EntryAt(off).entry.policy, "lot/v1");
  EXPECT_THAT(EntryAt(off).entry.postings[0].slices, ElementsAre(Slice{never, 2}));
  EXPECT_THAT(HoldingsOf(kWarehouse), ElementsAre(Slice{late, 1}, Slice{never, 2}));
  spoiled.quantity = 3;
  EXPECT_THAT(Reject(spoiled), StatusIs(absl::StatusCode::kFailedPrecondition,
                                        HasSubstr("holds 2 of lot " + std::to_string(never) +
                                                  ", asked 3")));
  spoiled.lot = 0;
  spoiled.reason = "";
  EXPECT_THAT(Reject(spoiled),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("write_off.reason")));
  spoiled.reason = "expired";
  spoiled.quantity = 1;
  spoiled.to = kRecipient;
  EXPECT_THAT(Reject(spoiled),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("not an expense")));
  spoiled.to = kSpoilage;
  // Without a lot, the write-off also takes the earliest expiry first.
  EXPECT_THAT(EntryAt(MustRun(spoiled)).entry.postings[0].slices, ElementsAre(Slice{late, 1}));
  EXPECT_THAT(MustRun(HandoutBody({{h[3], 2}})), testing::Gt(off));
  EXPECT_EQ(BalanceOf(kWarehouse, kBox), 0);
  EXPECT_EQ(BalanceOf(kSpoilage, kBox), 3);
  ExpectConserved();
  ExpectReplays();
}

// One small donor among many: their money's trace continues through the
// boxes it helped buy to the households that received them, and every
// part is a whole fen or box that sums exactly.
TEST_F(GoodsTest, SmallDonorTraceSumsExactlyThroughTheConversion) {
  const std::vector<std::string> households = Recipients(30);
  for (int i = 0; i < 40; ++i) {
    const std::string donor = absl::StrCat("donor/d-", i);
    OpenAccount(donor, AccountKind::kDonor);
    Donate(donor, kFund, 97'00 + i * 13);
  }
  OpenAccount("donor/small", AccountKind::kDonor);
  const uint64_t small = Donate("donor/small", kFund, 33'33);  // 33.33 yuan
  Donate(kDonor, kFund, 500'00);
  const int64_t price = BalanceOf(kFund) - 123'45;  // leaves part of alice's gift
  const uint64_t boxes = MustRun(BuyBody(kFund, price, 97));

  // 62 boxes handed to 30 households (three or one each), 35 stay.
  std::vector<HandoutLine> lines;
  for (size_t i = 0; i < households.size(); ++i) lines.push_back({households[i], i < 16 ? 3 : 1});
  MustRun(HandoutBody(lines));
  EXPECT_EQ(BalanceOf(kWarehouse, kBox), 97 - 62);

  const LotTrace trace = TraceOf(small);
  // The money part: it all reached the supplier.
  EXPECT_EQ(SumPlaces(trace.held), 0);
  EXPECT_THAT(ByAccount(trace.reached), ElementsAre(std::pair<const std::string, int64_t>(
                                            kGoodsSupplier, 33'33)));
  ASSERT_EQ(trace.conversions.size(), 1u);
  const LotConversion& c = trace.conversions[0];
  EXPECT_EQ(c.seq, boxes);
  EXPECT_EQ(c.type, EntryType::kGoodsPurchase);
  EXPECT_EQ(c.asset, kBox);
  EXPECT_EQ(c.lot_amount, 97);
  EXPECT_EQ(c.consumed, 33'33);
  // Its share of the boxes: 97 × 3,333 / price, rounded by largest remainder.
  absl::StatusOr<LotInfo> lot = ledger_->GetLot(boxes);
  ASSERT_TRUE(lot.ok());
  int64_t expected_share = -1;
  for (const LotParent& p : lot->parents) {
    if (p.lot == small) expected_share = p.share;
  }
  EXPECT_EQ(c.share, expected_share);
  EXPECT_EQ(SumAmounts(c.places), c.share);
  EXPECT_EQ(SumSources(c.places), 33'33);
  // Households appear only as groups of category and community.
  bool stock_seen = false;
  for (const ConversionPlace& p : c.places) {
    if (p.kind == AccountKind::kRecipient) {
      EXPECT_EQ(p.account, "");
      EXPECT_FALSE(p.category.empty());
      EXPECT_FALSE(p.community.empty());
    } else {
      EXPECT_EQ(p.account, kWarehouse);
      stock_seen = true;
    }
  }
  EXPECT_TRUE(stock_seen);
  // Every donor's money-part of the conversion sums to what they paid.
  for (const LotParent& p : lot->parents) {
    const LotTrace t = TraceOf(p.lot);
    ASSERT_EQ(t.conversions.size(), 1u) << "lot " << p.lot;
    EXPECT_EQ(SumSources(t.conversions[0].places), p.consumed);
    EXPECT_EQ(SumAmounts(t.conversions[0].places), p.share);
  }
}

TEST_F(GoodsTest, BackwardTraceOfAHandoutNamesTheMoneyBehindTheGoods) {
  const std::vector<std::string> h = Recipients(2);
  const uint64_t a = Donate(kDonor, kFund, 60'00);
  const uint64_t b = Donate(kDonor2, kFund, 40'00);
  const uint64_t boxes = MustRun(BuyBody(kFund, 100'00, 10));
  const uint64_t handout = MustRun(HandoutBody({{h[0], 5}, {h[1], 5}}));
  const std::vector<TraceSource> sources = AllSources(handout, 100);
  ASSERT_EQ(sources.size(), 2u);
  for (const TraceSource& s : sources) {
    EXPECT_EQ(s.lot, boxes);
    EXPECT_EQ(s.donor, kGoodsSupplier);
    EXPECT_EQ(s.amount, 5);
    EXPECT_EQ(s.behind_count, 2u);
  }
  // The lots behind the boxes, listed once: each with what it paid and its
  // share of the ten boxes.
  ASSERT_EQ(sources[0].behind.size(), 2u);
  EXPECT_TRUE(sources[1].behind.empty());
  const std::vector<LotParent>& behind = sources[0].behind;
  EXPECT_EQ(behind[0], (LotParent{a, kDonor, false, kCny, 60'00, 6}));
  EXPECT_EQ(behind[1], (LotParent{b, kDonor2, false, kCny, 40'00, 4}));
}

// Spoilage and a sale: each item and the money are conserved, and the
// proceeds are a money lot that keeps the provenance of the goods sold.
TEST_F(GoodsTest, WriteOffAndSaleKeepConservationAndProvenance) {
  const uint64_t farm = MustRun(GiftBody(kCompany, kVegStock, kVeg, 500, kStartUs + 3 * kDayUs));
  const uint64_t garden = MustRun(GiftBody(kDonor, kVegStock, kVeg, 300, kStartUs + 5 * kDayUs));
  MustRun(WriteOffOp{kVegStock, kSpoilage, kVeg, 40, 0, "rotten on arrival"});
  const OpResult sale = Run(SaleBody(600, 1'200'00));  // 2 yuan a kg
  ASSERT_TRUE(sale.status.ok()) << sale.status;
  EXPECT_EQ(sale.moved, 1'200'00);
  const Entry entry = EntryAt(sale.seq).entry;
  ASSERT_EQ(entry.postings.size(), 2u);
  EXPECT_THAT(entry.postings[0].slices, ElementsAre(Slice{farm, 460}, Slice{garden, 140}));
  EXPECT_THAT(entry.postings[1].slices, ElementsAre(Slice{sale.seq, 1'200'00}));
  EXPECT_EQ(BalanceOf(kFund), 1'200'00);
  EXPECT_EQ(BalanceOf(kVegStock, kVeg), 160);
  EXPECT_EQ(BalanceOf(kSupermarket, kVeg), 600);
  EXPECT_EQ(BalanceOf(kSupermarket, kCny), -1'200'00);
  ExpectConserved();

  absl::StatusOr<LotInfo> proceeds = ledger_->GetLot(sale.seq);
  ASSERT_TRUE(proceeds.ok());
  EXPECT_EQ(proceeds->created_by, EntryType::kGoodsSale);
  ASSERT_EQ(proceeds->parents.size(), 2u);
  EXPECT_EQ(proceeds->parents[0].lot, farm);
  EXPECT_EQ(proceeds->parents[0].share, 920'00);  // 460 / 600 of the proceeds
  EXPECT_EQ(proceeds->parents[1].lot, garden);
  EXPECT_EQ(proceeds->parents[1].share, 280'00);

  // The farm's gift: 40 kg written off, 460 kg sold, and the money it
  // became is in the fund until it is spent.
  LotTrace t = TraceOf(farm);
  EXPECT_EQ(ByAccount(t.reached)[kSpoilage], 40);
  EXPECT_EQ(ByAccount(t.reached)[kSupermarket], 460);
  ASSERT_EQ(t.conversions.size(), 1u);
  EXPECT_EQ(t.conversions[0].share, 920'00);
  ASSERT_EQ(t.conversions[0].places.size(), 1u);
  EXPECT_EQ(t.conversions[0].places[0].account, kFund);
  EXPECT_EQ(t.conversions[0].places[0].amount, 920'00);
  EXPECT_EQ(t.conversions[0].places[0].source_amount, 460);
  // Spent on a household: the conversion follows it there.
  Disburse(kFund, kRecipient, 1'000'00);
  t = TraceOf(farm);
  ASSERT_EQ(t.conversions[0].places.size(), 2u);
  EXPECT_EQ(SumAmounts(t.conversions[0].places), 920'00);
  EXPECT_EQ(SumSources(t.conversions[0].places), 460);

  EXPECT_THAT(Reject(SaleBody(161, 1'00)),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("goods_sale.quantity")));
  GoodsSaleOp to_stock = SaleBody(1, 1'00);
  to_stock.to = kWarehouse;
  EXPECT_THAT(Reject(to_stock),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("goods_sale.to")));
  GoodsSaleOp by_donor = SaleBody(1, 1'00);
  by_donor.buyer = kDonor;
  EXPECT_THAT(Reject(by_donor),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("goods_sale.buyer")));
  EXPECT_THAT(Reject(SaleBody(1, 0)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("goods_sale.proceeds")));
  ExpectConserved();
  ExpectReplays();
}

// Every goods entry survives a failed linked chain without a trace.
TEST_F(GoodsTest, FailedLinkedChainUndoesGoodsEntries) {
  const std::vector<std::string> h = Recipients(1);
  Donate(kDonor, kFund, 100'00);
  MustRun(GiftBody(kCompany, kVegStock, kVeg, 10, kStartUs + kDayUs));
  const std::string digest = ledger_->StateDigest();
  std::vector<Operation> chain;
  chain.push_back(Op(BuyBody(kFund, 50'00, 10), /*linked=*/true));
  chain.push_back(Op(HandoutBody({{h[0], 4}}), /*linked=*/true));
  chain.push_back(Op(WriteOffOp{kWarehouse, kSpoilage, kBox, 1, 0, "torn"}, /*linked=*/true));
  chain.push_back(Op(SaleBody(5, 10'00), /*linked=*/true));
  chain.push_back(Op(HandoutBody({{h[0], 6}})));  // already has 4: fine; stock has 5: fails
  const std::vector<OpResult> results = ledger_->Submit(std::move(chain));
  ASSERT_EQ(results.size(), 5u);
  EXPECT_THAT(results[4].status, StatusIs(absl::StatusCode::kFailedPrecondition,
                                          HasSubstr("holds 5 item:daily-box, asked 6")));
  for (size_t i = 0; i < 4; ++i) EXPECT_EQ(results[i].status.code(), absl::StatusCode::kAborted);
  EXPECT_EQ(ledger_->StateDigest(), digest);
  EXPECT_EQ(BalanceOf(kWarehouse, kBox), 0);
  EXPECT_EQ(BalanceOf(kVegStock, kVeg), 10);
}


// ---- Aid supervision ----

// Microseconds of a China Standard Time wall-clock instant.
int64_t ChinaTime(int y, int mo, int d, int h = 12, int mi = 0) {
  return absl::ToUnixMicros(
      absl::FromCivil(absl::CivilSecond(y, mo, d, h, mi, 0), absl::FixedTimeZone(8 * 3600)));
}

TEST(AidPeriodTest, CalendarPeriodsInChinaTime) {
  // 23:59 and 00:00 China time on the last and first day of a month are
  // 15:59 and 16:00 UTC of the same UTC day.
  const int64_t before = ChinaTime(2026, 3, 31, 23, 59);
  const int64_t after = ChinaTime(2026, 4, 1, 0, 0);
  for (AidPeriod p : {AidPeriod::kDay, AidPeriod::kMonth, AidPeriod::kQuarter}) {
    EXPECT_NE(AidPeriodIndex(p, before), AidPeriodIndex(p, after)) << AidPeriodName(p);
  }
  // Tuesday and Wednesday of one week, one year.
  EXPECT_EQ(AidPeriodIndex(AidPeriod::kWeek, before), AidPeriodIndex(AidPeriod::kWeek, after));
  EXPECT_EQ(AidPeriodIndex(AidPeriod::kYear, before), AidPeriodIndex(AidPeriod::kYear, after));
  EXPECT_NE(AidPeriodIndex(AidPeriod::kYear, ChinaTime(2026, 12, 31, 23, 59)),
            AidPeriodIndex(AidPeriod::kYear, ChinaTime(2027, 1, 1, 0, 0)));
  // 2026-03-30 is a Monday: Sunday 29th and Monday 30th are in different weeks,
  // Monday 30th and Sunday 5 April in the same one.
  EXPECT_NE(AidPeriodIndex(AidPeriod::kWeek, ChinaTime(2026, 3, 29)),
            AidPeriodIndex(AidPeriod::kWeek, ChinaTime(2026, 3, 30)));
  EXPECT_EQ(AidPeriodIndex(AidPeriod::kWeek, ChinaTime(2026, 3, 30, 0, 0)),
            AidPeriodIndex(AidPeriod::kWeek, ChinaTime(2026, 4, 5, 23, 59)));
  EXPECT_EQ(AidPeriodIndex(AidPeriod::kQuarter, ChinaTime(2026, 4, 1)),
            AidPeriodIndex(AidPeriod::kQuarter, ChinaTime(2026, 6, 30)));
  EXPECT_EQ(AidPeriodFromName("month"), AidPeriod::kMonth);
  EXPECT_EQ(AidPeriodFromName("fortnight"), std::nullopt);
}

AidRuleOp RuleBody(std::string aid, EntryType type, std::string source, uint32_t max_count,
                   AidPeriod period = AidPeriod::kMonth, std::string asset = "") {
  return AidRuleOp{std::move(aid), type, std::move(source), std::move(asset), max_count, period,
                   "one per household"};
}

VoucherIssueOp VoucherBody(std::string recipient, int64_t amount, const std::string& code) {
  VoucherIssueOp op;
  op.from = kFund;
  op.recipient = std::move(recipient);
  op.asset = kCny;
  op.amount = amount;
  op.expires_us = ChinaTime(2027, 1, 1);
  const Hash h = Sha256(code);
  op.code_hash.assign(reinterpret_cast<const char*>(h.data()), h.size());
  return op;
}

class AidRuleTest : public GoodsTest {
 protected:
  void SetUp() override {
    GoodsTest::SetUp();
    clock_.SetMicros(ChinaTime(2026, 4, 10));
    Donate(kDonor, kProject, 10'000'00);
    Donate(kDonor, kFund, 10'000'00);
  }
};

TEST_F(AidRuleTest, MealCardOncePerMonthUnlessOverridden) {
  MustRun(RuleBody("meal-card", EntryType::kDisbursement, kProject, 1));
  const uint64_t first = Disburse(kProject, kRecipient, 150'00);
  DisbursementOp again = DisbursementBody(kProject, kRecipient, 150'00);
  EXPECT_THAT(Reject(again),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("disbursement.to: recipient 'recipient/p-000001' already "
                                 "received 'meal-card' 1 time this month (at most 1), last by "
                                 "entry " + std::to_string(first))));
  // Other aid is not this rule's business: another fund, another person.
  Disburse(kFund, kRecipient, 150'00);
  Disburse(kProject, kRecipient2, 150'00);
  // The clerk may override, and the reason is in the entry.
  again.override_reason = "card lost; replacement approved by the office";
  const uint64_t overridden = MustRun(again);
  EXPECT_EQ(std::get<DisbursementOp>(EntryAt(overridden).entry.body).override_reason,
            again.override_reason);
  // A new month, a new card.
  clock_.SetMicros(ChinaTime(2026, 5, 1, 0, 0));
  Disburse(kProject, kRecipient, 150'00);
  ExpectReplays();
}

TEST_F(AidRuleTest, ReversedAidDoesNotCount) {
  MustRun(RuleBody("cash-aid", EntryType::kDisbursement, "", 1, AidPeriod::kYear, kCny));
  const uint64_t mistaken = Disburse(kFund, kRecipient, 500'00);
  EXPECT_THAT(Reject(DisbursementBody(kProject, kRecipient, 500'00)),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("'cash-aid' 1 time")));
  Reverse(mistaken);
  Disburse(kProject, kRecipient, 500'00);
  // Payments to suppliers are not aid to a person.
  Disburse(kFund, kSupplier, 500'00);
  Disburse(kFund, kSupplier, 500'00);
}

TEST_F(AidRuleTest, VouchersAndHandoutsHaveRulesToo) {
  const std::vector<std::string> h = Recipients(3);
  MustRun(RuleBody("voucher", EntryType::kVoucherIssue, "", 2, AidPeriod::kQuarter));
  MustRun(VoucherBody(h[0], 100'00, "code-1"));
  MustRun(VoucherBody(h[0], 100'00, "code-2"));
  VoucherIssueOp third = VoucherBody(h[0], 100'00, "code-3");
  EXPECT_THAT(Reject(third), StatusIs(absl::StatusCode::kFailedPrecondition,
                                      HasSubstr("voucher_issue.recipient: recipient "
                                                "'recipient/h-0' already received 'voucher' 2 "
                                                "times this quarter (at most 2)")));
  third.override_reason = "flood victim";
  MustRun(third);

  MustRun(RuleBody("daily-box", EntryType::kHandout, kWarehouse, 1, AidPeriod::kMonth, kBox));
  MustRun(GiftBody(kCompany, kWarehouse, kBox, 10));
  const uint64_t handout = MustRun(HandoutBody({{h[0], 1}, {h[1], 1}}));
  EXPECT_THAT(Reject(HandoutBody({{h[2], 1}, {h[1], 1}})),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("handout.lines[1].recipient: recipient 'recipient/h-1' already "
                                 "received 'daily-box' 1 time this month (at most 1), last by "
                                 "entry " + std::to_string(handout))));
  HandoutOp overridden = HandoutBody({{h[2], 1}, {h[1], 1}});
  overridden.override_reason = "family of six";
  MustRun(overridden);
  // Lifting the rule.
  MustRun(RuleBody("daily-box", EntryType::kHandout, kWarehouse, 0));
  MustRun(HandoutBody({{h[1], 1}}));
  absl::StatusOr<std::vector<AidRuleInfo>> rules = ledger_->ListAidRules();
  ASSERT_TRUE(rules.ok());
  ASSERT_EQ(rules->size(), 1u);
  EXPECT_EQ((*rules)[0].rule.aid, "voucher");
  ExpectReplays();
}

TEST_F(AidRuleTest, RulesRejectBadInput) {
  EXPECT_THAT(Reject(RuleBody("meal-card", EntryType::kDisbursement, kProject, 0)),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("has none")));
  EXPECT_THAT(Reject(RuleBody("meal card", EntryType::kDisbursement, kProject, 1)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("aid_rule.aid")));
  EXPECT_THAT(Reject(RuleBody("x", EntryType::kAllocation, "", 1)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("aid_rule.type")));
  EXPECT_THAT(Reject(RuleBody("x", EntryType::kHandout, kFund, 1)),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("aid_rule.source")));
  EXPECT_THAT(Reject(RuleBody("x", EntryType::kDisbursement, "fund/none", 1)),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("aid_rule.source")));
  EXPECT_THAT(Reject(RuleBody("x", EntryType::kDisbursement, "", 1, static_cast<AidPeriod>(9))),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("aid_rule.period")));
  EXPECT_THAT(Reject(RuleBody("x", EntryType::kDisbursement, "", 1, AidPeriod::kDay, "cny")),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("aid_rule.asset")));
}

// The office's report by category and community; the public one leaves out
// every cell of fewer than five people.
TEST_F(AidRuleTest, AidReportSuppressesSmallCellsInPublic) {
  std::vector<std::string> big;   // returning residents of c-1: six people
  std::vector<std::string> small; // hardship in c-2: three people
  for (int i = 0; i < 9; ++i) {
    OpenAccountOp op = OpenBody(absl::StrCat("recipient/r-", i), AccountKind::kRecipient);
    op.category = i < 6 ? "returning-resident" : "hardship";
    op.community = i < 6 ? "c-1" : "c-2";
    MustRun(op);
    (i < 6 ? big : small).push_back(op.account);
  }
  for (const std::string& r : big) Disburse(kFund, r, 200'00);
  Disburse(kFund, big[0], 50'00);
  for (const std::string& r : small) Disburse(kFund, r, 300'00);
  MustRun(GiftBody(kCompany, kWarehouse, kBox, 20));
  std::vector<HandoutLine> lines;
  for (const std::string& r : big) lines.push_back({r, 2});
  MustRun(HandoutBody(lines));
  // Outside the period: not counted.
  clock_.SetMicros(ChinaTime(2026, 5, 2));
  Disburse(kFund, big[1], 999'00);

  const int64_t from = ChinaTime(2026, 4, 1, 0, 0);
  const int64_t to = ChinaTime(2026, 5, 1, 0, 0);
  absl::StatusOr<AidReport> office = ledger_->GetAidReport(from, to, /*public_view=*/false);
  ASSERT_TRUE(office.ok()) << office.status();
  EXPECT_THAT(office->cells,
              ElementsAre(AidCell{"hardship", "c-2", EntryType::kDisbursement, kCny, 3, 3, 900'00},
                          AidCell{"returning-resident", "c-1", EntryType::kDisbursement, kCny, 6,
                                  7, 1'250'00},
                          AidCell{"returning-resident", "c-1", EntryType::kHandout, kBox, 6, 6,
                                  12}));
  EXPECT_EQ(office->suppressed_cells, 0u);
  absl::StatusOr<AidReport> published = ledger_->GetAidReport(from, to, /*public_view=*/true);
  ASSERT_TRUE(published.ok()) << published.status();
  ASSERT_EQ(published->cells.size(), 2u);
  EXPECT_EQ(published->cells[0].category, "returning-resident");
  EXPECT_EQ(published->suppressed_cells, 1u);
  for (const AidCell& c : published->cells) EXPECT_GE(c.people, kAidReportMinPeople);
  EXPECT_THAT(ledger_->GetAidReport(to, from, false).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("from_time_us")));
}

}  // namespace
}  // namespace warmledger

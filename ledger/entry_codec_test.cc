#include "ledger/entry_codec.h"

#include <string>

#include "gtest/gtest.h"
#include "gmock/gmock.h"
#include "ledger/sha256.h"

namespace warmledger {
namespace {

using ::testing::HasSubstr;

Entry SampleEntry() {
  Entry e;
  e.seq = 42;
  e.time_us = 1'700'000'000'123'456;
  e.prev_hash.fill(0xab);
  e.client_id = "don-1";
  e.policy = "fifo/v1";
  e.body = AllocationOp{"fund/general", "project/elderly-home", "CNY", 12345, "plan 2026"};
  e.postings.push_back({"fund/general", "project/elderly-home", "CNY", 12345,
                        {{7, 10000}, {9, 2345}}});
  return e;
}

TEST(EntryCodecTest, EncodeThenDecodeGivesTheSameEntry) {
  Entry e = SampleEntry();
  std::string bytes = EncodeEntry(e);
  auto decoded = DecodeEntry(bytes);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(decoded->seq, 42u);
  EXPECT_EQ(decoded->time_us, e.time_us);
  EXPECT_EQ(decoded->prev_hash, e.prev_hash);
  EXPECT_EQ(decoded->client_id, "don-1");
  EXPECT_EQ(decoded->policy, "fifo/v1");
  EXPECT_EQ(std::get<AllocationOp>(decoded->body), std::get<AllocationOp>(e.body));
  EXPECT_EQ(decoded->postings, e.postings);
  EXPECT_EQ(EncodeEntry(*decoded), bytes);
}

TEST(EntryCodecTest, LayoutStartsWithVersionTypeAndLittleEndianSeq) {
  std::string bytes = EncodeEntry(SampleEntry());
  ASSERT_GE(bytes.size(), 10u);
  EXPECT_EQ(bytes[0], kEntryVersion);                      // version
  EXPECT_EQ(bytes[1], static_cast<char>(EntryType::kAllocation));
  EXPECT_EQ(static_cast<uint8_t>(bytes[2]), 42);            // seq, little-endian
  for (int i = 3; i < 10; ++i) EXPECT_EQ(bytes[i], 0);
}

TEST(EntryCodecTest, EveryTypeRoundTrips) {
  std::vector<OpBody> bodies = {
      OpenAccountOp{"fund/edu", AccountKind::kFund, "CNY", kAccountRestricted, "Education fund"},
      CloseAccountOp{"fund/edu", "merged"},
      DonationOp{"donor/a", "fund/edu", "CNY", 500, DonationChannel::kCounter,
                 kDonationAnonymous, "for books"},
      AllocationOp{"fund/a", "project/b", "CNY", 1, ""},
      DisbursementOp{"project/b", "recipient/x", "CNY", 1, "school fees"},
      CorrectionOp{3, CorrectionMode::kAdjust, "typo", "fund/a", "fund/b", "CNY", 9},
      PurchaseOp{"store/a", "A-1", "CNY", 12345, "member/7", 1'700'000'000'000'000, 200,
                 "fund/general", std::string(32, 't')},
      RefundOp{"store/a", "A-1", "rf-1", 345},
      VoucherIssueOp{"fund/general", "recipient/x", "CNY", 30000, 1'800'000'000'000'000,
                     {"store/a", "store/b"}, std::string(32, 'c'), "winter aid"},
      VoucherIssueOp{"fund/general", "recipient/x", "CNY", 1, 2, {}, std::string(32, 'd'), ""},
      RedemptionOp{std::string(32, 'c'), "store/b", "T-9", 500},
      VoucherCloseOp{"voucher/12", VoucherCloseMode::kVoid, "lost"},
      DisbursementOp{"project/b", "recipient/x", "CNY", 1, "meals", "second card: lost"},
      VoucherIssueOp{"fund/general", "recipient/x", "CNY", 1, 2, {}, std::string(32, 'e'), "",
                     "flood victim"},
      ItemOp{"item:daily-box", "Box of daily necessities", "box"},
      GoodsGiftOp{"donor/a", "stock/w", "item:masks", 1000, "A", 1'800'000'000'000'000, "CNY",
                  50000, DonationChannel::kCompanyGift, kDonationAnonymous, "masks",
                  std::string(32, 'g')},
      GoodsPurchaseOp{"fund/general", "supplier/s", "CNY", 3'500'000, "stock/w",
                      "item:daily-box", 700, "B", 0, "invoice 17"},
      HandoutOp{"stock/w", "item:daily-box", {{"recipient/x", 1}, {"recipient/y", 3}},
                "returning residents", "second box: large family"},
      HandoutOp{"stock/w", "item:daily-box", {}, "", ""},
      WriteOffOp{"stock/w", "expense/spoilage", "item:veg", 40, 17, "rotten"},
      GoodsSaleOp{"stock/veg", "store/a", "item:veg", 600, "fund/general", "CNY", 120000,
                  "low price"},
      AidRuleOp{"meal-card", EntryType::kDisbursement, "project/meals", "CNY", 1,
                AidPeriod::kMonth, "one card a month"},
  };
  for (const OpBody& body : bodies) {
    Entry e = SampleEntry();
    e.body = body;
    auto decoded = DecodeEntry(EncodeEntry(e));
    ASSERT_TRUE(decoded.ok()) << decoded.status();
    EXPECT_EQ(FirstDifference(decoded->body, body), std::nullopt);
  }
}

TEST(EntryCodecTest, VoucherStoreCountBeyondTheBytesIsDataLoss) {
  Entry e = SampleEntry();
  e.body = VoucherIssueOp{"f", "r", "CNY", 1, 2, {"s"}, std::string(32, 'c'), ""};
  std::string bytes = EncodeEntry(e);
  // store_count follows from:str recipient:str asset:str amount:i64 expires_us:i64.
  const size_t at = 1 + 1 + 8 + 8 + 32 + (2 + 5) + (2 + 7) + (2 + 1) + (2 + 1) + (2 + 3) + 8 + 8;
  ASSERT_EQ(static_cast<uint8_t>(bytes[at]), 1);
  bytes[at] = static_cast<char>(0xff);
  bytes[at + 1] = static_cast<char>(0xff);
  auto decoded = DecodeEntry(bytes);
  EXPECT_EQ(decoded.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(std::string(decoded.status().message()), HasSubstr("store_count"));
}

TEST(EntryCodecTest, TruncatedEntryIsDataLoss) {
  std::string bytes = EncodeEntry(SampleEntry());
  for (size_t len : {size_t{0}, size_t{1}, size_t{9}, bytes.size() / 2, bytes.size() - 1}) {
    auto decoded = DecodeEntry(std::string_view(bytes).substr(0, len));
    EXPECT_EQ(decoded.status().code(), absl::StatusCode::kDataLoss) << "length " << len;
  }
}

TEST(EntryCodecTest, TrailingBytesAreDataLoss) {
  std::string bytes = EncodeEntry(SampleEntry()) + "x";
  EXPECT_THAT(std::string(DecodeEntry(bytes).status().message()), HasSubstr("trailing"));
}

TEST(EntryCodecTest, UnknownTypeOrVersionIsDataLoss) {
  std::string bytes = EncodeEntry(SampleEntry());
  std::string bad_type = bytes;
  bad_type[1] = 99;
  EXPECT_EQ(DecodeEntry(bad_type).status().code(), absl::StatusCode::kDataLoss);
  for (char version : {0, kEntryVersion + 1}) {
    std::string bad_version = bytes;
    bad_version[0] = version;
    EXPECT_EQ(DecodeEntry(bad_version).status().code(), absl::StatusCode::kDataLoss);
  }
}

// Version 1 entries (written before aid overrides existed) have no
// override field; they decode, and re-encode to the very same bytes.
TEST(EntryCodecTest, VersionOneBodiesHaveNoOverride) {
  for (OpBody body : {OpBody{DisbursementOp{"fund/a", "recipient/x", "CNY", 5, "rent", ""}},
                      OpBody{VoucherIssueOp{"fund/a", "recipient/x", "CNY", 1, 2, {},
                                            std::string(32, 'd'), "", ""}}}) {
    Entry e = SampleEntry();
    e.version = 1;
    e.body = body;
    const std::string v1 = EncodeEntry(e);
    e.version = 2;
    const std::string v2 = EncodeEntry(e);
    EXPECT_EQ(v2.size(), v1.size() + 2);  // the empty override's length
    auto decoded = DecodeEntry(v1);
    ASSERT_TRUE(decoded.ok()) << decoded.status();
    EXPECT_EQ(decoded->version, 1);
    EXPECT_EQ(FirstDifference(decoded->body, body), std::nullopt);
    EXPECT_EQ(EncodeEntry(*decoded), v1);
  }
}

TEST(EntryCodecTest, HugeSliceCountIsDataLossNotAnAllocation) {
  Entry e = SampleEntry();
  std::string bytes = EncodeEntry(e);
  // The slice count of the only posting sits 32 bytes before the end.
  size_t at = bytes.size() - 2 * 16 - 4;
  bytes[at + 3] = 0x7f;
  EXPECT_EQ(DecodeEntry(bytes).status().code(), absl::StatusCode::kDataLoss);
}

TEST(EntryCodecTest, HashIsDomainSeparatedSha256OfTheStoredBytes) {
  std::string bytes = EncodeEntry(SampleEntry());
  EXPECT_EQ(EntryHash(bytes), Sha256(std::string("warmledger/entry/v1", 19) + '\0' + bytes));
  EXPECT_NE(EntryHash(bytes), Sha256(bytes));
}

TEST(EntryCodecTest, StoredValueVerifiesAndAFlippedByteDoesNot) {
  std::string bytes = EncodeEntry(SampleEntry());
  std::string value = MakeStoredValue(bytes, EntryHash(bytes));
  ASSERT_TRUE(ParseStoredValue(value, 42).ok());
  for (size_t i = 0; i < value.size(); i += 7) {
    std::string bad = value;
    bad[i] ^= 0x01;
    auto parsed = ParseStoredValue(bad, 42);
    EXPECT_EQ(parsed.status().code(), absl::StatusCode::kDataLoss) << "byte " << i;
    EXPECT_THAT(std::string(parsed.status().message()), HasSubstr("entry 42"));
  }
}

TEST(EntryCodecTest, StoredValueUnderTheWrongSeqIsDataLoss) {
  std::string bytes = EncodeEntry(SampleEntry());
  std::string value = MakeStoredValue(bytes, EntryHash(bytes));
  auto parsed = ParseStoredValue(value, 43);
  EXPECT_EQ(parsed.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(std::string(parsed.status().message()), HasSubstr("entry 43"));
}

TEST(EntryCodecTest, EntryKeysSortBySeq) {
  EXPECT_LT(EntryKey(1), EntryKey(2));
  EXPECT_LT(EntryKey(255), EntryKey(256));
  EXPECT_LT(EntryKey(65535), EntryKey(1ull << 40));
  EXPECT_EQ(SeqFromEntryKey(EntryKey(123456789)), 123456789u);
  EXPECT_EQ(SeqFromEntryKey("Mformat"), 0u);
}

}  // namespace
}  // namespace warmledger

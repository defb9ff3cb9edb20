// Tests of warmledger-audit's checks (tools/audit.h): ledgers are built
// through the engine, closed, then audited raw; tampered copies must fail
// naming the first bad entry (or the checkpoint, snapshot or account).

#include "tools/audit.h"

#include <stdlib.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <system_error>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "ledger/clock.h"
#include "ledger/entry_codec.h"
#include "ledger/ledger.h"
#include "ledger/ledger_testing.h"
#include "ledger/merkle.h"
#include "ledger/note.h"
#include "ledger/sha256.h"
#include "rocksdb/db.h"
#include "rocksdb/write_batch.h"
#include "warmledger/v1/ledger.pb.h"

namespace warmledger::audit {
namespace {

using ::testing::HasSubstr;

constexpr char kOrigin[] = "audit.example/ledger";
constexpr char kDonor[] = "donor/alice";
constexpr char kDonor2[] = "donor/bob";
constexpr char kFund[] = "fund/general";
constexpr char kProject[] = "project/school";
constexpr char kRecipient[] = "recipient/p-000001";
// Entries of the standard ledger, and where its checkpoints are.
constexpr uint64_t kEntries = 600;
constexpr uint64_t kFirstCheckpoint = 100;
constexpr uint64_t kSecondCheckpoint = 300;

Operation Op(std::string client_id, OpBody body) {
  return Operation{std::move(client_id), false, std::move(body)};
}

std::string Str(const Hash& h) { return std::string(h.begin(), h.end()); }

class AuditTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = MakeTempDir("warmledger-audit-test");
    ASSERT_FALSE(dir_.empty());
    signer_ = MakeTestSigner(kOrigin);
    ASSERT_NE(signer_, nullptr);
  }

  void TearDown() override {
    db_.reset();
    ledger_.reset();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  std::string DbPath() const { return dir_ + "/db"; }

  void OpenLedger() {
    LedgerOptions options;
    options.path = DbPath();
    options.clock = &clock_;
    options.checkpoint_signer = signer_;
    options.checkpoint_origin = kOrigin;
    options.checkpoint_every_entries = 1'000'000;
    options.checkpoint_every_ms = 3'600'000;
    options.checkpoint_interval_min_ms = 0;
    auto opened = Ledger::Open(options);
    ASSERT_TRUE(opened.ok()) << opened.status();
    ledger_ = std::move(*opened);
  }

  void Run(std::string client_id, OpBody body) {
    clock_.AdvanceMicros(1'000);
    const OpResult r = ledger_->SubmitOne(Op(std::move(client_id), std::move(body)));
    ASSERT_TRUE(r.status.ok()) << r.status;
  }

  void Donate(int64_t amount) {
    DonationOp op;
    op.donor = (ledger_->Head().seq % 2) ? kDonor : kDonor2;
    op.to = kFund;
    op.asset = "CNY";
    op.amount = amount;
    op.channel = DonationChannel::kOnlineCampaign;
    op.memo = "99 Giving Day";
    Run("gift-" + std::to_string(ledger_->Head().seq + 1), op);
    donated_ += amount;
  }

  void DonateUntil(uint64_t head) {
    while (ledger_->Head().seq < head) Donate(1'000 + static_cast<int64_t>(ledger_->Head().seq % 97));
  }

  void Checkpoint(uint64_t seq) {
    auto note = ledger_->WaitForCheckpoint(seq, 10'000);
    ASSERT_TRUE(note.ok()) << note.status();
  }

  // The standard ledger: five accounts, donations, an allocation and its
  // reversal (a replay that looks an entry up), an allocation and a
  // disbursement, then donations up to kEntries; checkpoints of
  // kFirstCheckpoint and kSecondCheckpoint entries, and the one closing signs
  // over all entries, as is the balance snapshot.
  void BuildLedger() {
    OpenLedger();
    Run("open-1", OpenBody(kDonor, AccountKind::kDonor));
    Run("open-2", OpenBody(kDonor2, AccountKind::kDonor));
    Run("open-3", OpenBody(kFund, AccountKind::kFund, "CNY"));
    Run("open-4", OpenBody(kProject, AccountKind::kProject, "CNY"));
    Run("open-5", OpenBody(kRecipient, AccountKind::kRecipient));
    DonateUntil(45);
    Run("alloc-46", AllocationOp{kFund, kProject, "CNY", 5'000, "quarterly plan"});
    CorrectionOp reverse;
    reverse.ref_seq = 46;
    reverse.mode = CorrectionMode::kReverse;
    reverse.reason = "entered twice";
    Run("reverse-47", reverse);
    Run("alloc-48", AllocationOp{kFund, kProject, "CNY", 7'000, "quarterly plan"});
    Run("disburse-49", DisbursementOp{kProject, kRecipient, "CNY", 3'000, "house repair"});
    DonateUntil(kFirstCheckpoint);
    Checkpoint(kFirstCheckpoint);
    DonateUntil(kSecondCheckpoint);
    Checkpoint(kSecondCheckpoint);
    DonateUntil(kEntries);
    ledger_.reset();  // signs the final checkpoint and writes the snapshot
  }

  AuditReport Audit(AuditOptions options) {
    db_.reset();  // the auditor reads what is on disk
    auto report = RunAudit(options);
    EXPECT_TRUE(report.ok()) << report.status();
    if (!report.ok()) return AuditReport{};
    return *report;
  }

  AuditOptions DataDir(bool with_key = true) const {
    AuditOptions options;
    options.data_dir = dir_;
    if (with_key) options.verifier_key = signer_->VerifierKey();
    return options;
  }

  // Raw read-write access to the closed ledger's database, for tampering.
  rocksdb::DB* Db() {
    if (!db_) {
      rocksdb::DB* raw = nullptr;
      rocksdb::Options options;
      const rocksdb::Status s = rocksdb::DB::Open(options, DbPath(), &raw);
      EXPECT_TRUE(s.ok()) << s.ToString();
      db_.reset(raw);
    }
    return db_.get();
  }

  std::string Get(const std::string& key) {
    std::string value;
    const rocksdb::Status s = Db()->Get(rocksdb::ReadOptions(), key, &value);
    EXPECT_TRUE(s.ok()) << s.ToString();
    return value;
  }

  void Put(const std::string& key, const std::string& value) {
    ASSERT_TRUE(Db()->Put(rocksdb::WriteOptions(), key, value).ok());
  }

  void Delete(const std::string& key) {
    ASSERT_TRUE(Db()->Delete(rocksdb::WriteOptions(), key).ok());
  }

  std::vector<std::string> StoredValues() {
    std::vector<std::string> values;
    for (uint64_t seq = 1; seq <= entries_; ++seq) values.push_back(Get(EntryKey(seq)));
    return values;
  }

  // Rewrites history as an operator with write access could: entry k is
  // changed by `mutate`, then it and every later entry are re-encoded with
  // fresh hashes and prev_hashes, and every tile is rebuilt. Only the signed
  // checkpoints (and replay, if the change breaks the rules) can tell.
  void RewriteFrom(uint64_t k, const std::function<void(Entry*)>& mutate) {
    std::vector<std::string> values = StoredValues();
    rocksdb::WriteBatch batch;
    Hash prev{};
    merkle::TileBuilder tree;
    for (uint64_t seq = 1; seq <= values.size(); ++seq) {
      std::string_view bytes = EntryBytesOf(values[seq - 1]);
      if (seq >= k) {
        auto entry = DecodeEntry(bytes);
        ASSERT_TRUE(entry.ok()) << entry.status();
        if (seq == k) mutate(&*entry);
        entry->prev_hash = prev;
        const std::string encoded = EncodeEntry(*entry);
        values[seq - 1] = MakeStoredValue(encoded, EntryHash(encoded));
        batch.Put(EntryKey(seq), values[seq - 1]);
        bytes = EntryBytesOf(values[seq - 1]);
      }
      prev = EntryHash(bytes);
      tree.Append(merkle::LeafHash(bytes));
    }
    for (auto& [id, tile] : tree.TakeChanged()) batch.Put(TileKey(id.level, id.index), tile);
    ASSERT_TRUE(Db()->Write(rocksdb::WriteOptions(), &batch).ok());
  }

  // An export file in the format `warmledger entries --out=FILE` writes
  // (client/cli.cc, ExportFile): per entry a 4-byte little-endian length and
  // one serialized warmledger.v1.Entry; no header.
  std::string WriteExport() {
    const std::string path = dir_ + "/entries.export";
    std::ofstream out(path, std::ios::binary);
    for (uint64_t seq = 1; seq <= kEntries; ++seq) {
      const std::string value = Get(EntryKey(seq));
      const std::string_view bytes = EntryBytesOf(value);
      auto entry = DecodeEntry(bytes);
      EXPECT_TRUE(entry.ok()) << entry.status();
      v1::Entry e;
      e.set_seq(seq);
      e.set_time_us(entry->time_us);
      e.set_client_id(entry->client_id);
      e.set_policy(entry->policy);
      e.set_prev_hash(Str(entry->prev_hash));
      e.set_hash(value.substr(value.size() - 32));
      e.set_entry_bytes(std::string(bytes));
      e.set_summary("entry " + std::to_string(seq));
      const std::string record = e.SerializeAsString();
      const uint32_t n = static_cast<uint32_t>(record.size());
      const char len[4] = {static_cast<char>(n), static_cast<char>(n >> 8),
                           static_cast<char>(n >> 16), static_cast<char>(n >> 24)};
      out.write(len, 4);
      out.write(record.data(), static_cast<std::streamsize>(record.size()));
    }
    return path;
  }

  std::string WriteFile(const std::string& name, const std::string& content) {
    const std::string path = dir_ + "/" + name;
    std::ofstream(path, std::ios::binary) << content;
    return path;
  }

  // Names, sizes and modification times of every file under the database.
  std::map<std::string, std::string> Listing() {
    std::map<std::string, std::string> files;
    for (const auto& f : std::filesystem::recursive_directory_iterator(DbPath())) {
      struct stat st;
      if (::stat(f.path().c_str(), &st) != 0) continue;
      files[f.path().string()] = std::to_string(st.st_size) + "@" +
                                 std::to_string(st.st_mtim.tv_sec) + "." +
                                 std::to_string(st.st_mtim.tv_nsec);
    }
    return files;
  }

  ManualClock clock_;
  std::string dir_;
  std::shared_ptr<const NoteSigner> signer_;
  std::unique_ptr<Ledger> ledger_;
  std::unique_ptr<rocksdb::DB> db_;
  int64_t donated_ = 0;
  uint64_t entries_ = kEntries;  // in the ledger built
};

TEST_F(AuditTest, ACleanLedgerAuditsOkWithTheRightCountsAndTotals) {
  BuildLedger();
  // The expected head and root, computed here from the raw entries.
  std::vector<Hash> leaves;
  Hash head{};
  for (const std::string& value : StoredValues()) {
    leaves.push_back(merkle::LeafHash(EntryBytesOf(value)));
    std::copy(value.end() - 32, value.end(), head.begin());
  }

  const AuditReport report = Audit(DataDir());
  ASSERT_TRUE(report.ok) << report.failure;
  EXPECT_EQ(report.entries_verified, kEntries);
  EXPECT_EQ(report.head_seq, kEntries);
  EXPECT_EQ(report.head_hash, head);
  EXPECT_EQ(report.tree_root, merkle::ReferenceRoot(leaves));
  EXPECT_TRUE(report.tiles_stored);
  EXPECT_EQ(report.checkpoints_verified, 3u);
  EXPECT_EQ(report.newest_checkpoint_size, kEntries);
  EXPECT_EQ(report.origin, kOrigin);
  EXPECT_TRUE(report.signatures_checked);
  ASSERT_TRUE(report.snapshot_seq.has_value());
  EXPECT_EQ(*report.snapshot_seq, kEntries);
  EXPECT_EQ(report.account_count, 5u);

  ASSERT_EQ(report.holdings.size(), 2u);
  EXPECT_EQ(report.holdings[0].account, kFund);
  ASSERT_EQ(report.holdings[0].balances.size(), 1u);
  EXPECT_EQ(report.holdings[0].balances[0].asset, "CNY");
  EXPECT_EQ(report.holdings[0].balances[0].amount, donated_ - 7'000);
  EXPECT_EQ(report.holdings[1].account, kProject);
  ASSERT_EQ(report.holdings[1].balances.size(), 1u);
  EXPECT_EQ(report.holdings[1].balances[0].amount, 4'000);
  ASSERT_EQ(report.held_totals.size(), 1u);
  EXPECT_EQ(report.held_totals[0].amount, donated_ - 3'000);
  ASSERT_EQ(report.all_totals.size(), 1u);
  EXPECT_EQ(report.all_totals[0].amount, 0);

  const std::string text = FormatText(report);
  EXPECT_THAT(text, HasSubstr("warmledger-audit: OK"));
  EXPECT_THAT(text, HasSubstr("entries verified: 600"));
  EXPECT_THAT(text, HasSubstr("checkpoints: 3 verified, newest of 600 entries"));
  EXPECT_THAT(text, HasSubstr("balance snapshot: checked at entry 600"));
  EXPECT_THAT(text, HasSubstr(Base64Encode(Str(report.tree_root))));
  const std::string json = FormatJson(report);
  EXPECT_THAT(json, HasSubstr("\"ok\":true"));
  EXPECT_THAT(json, HasSubstr("\"entries_verified\":600"));
  EXPECT_THAT(json, HasSubstr("\"signatures_checked\":true"));
  EXPECT_THAT(json, HasSubstr("\"head_hash\":\"" + HashToHex(head) + "\""));
}

TEST_F(AuditTest, TheDataDirMayBeTheDatabaseFolderItself) {
  BuildLedger();
  AuditOptions options = DataDir();
  options.data_dir = DbPath();
  const AuditReport report = Audit(options);
  EXPECT_TRUE(report.ok) << report.failure;
  EXPECT_EQ(report.entries_verified, kEntries);
}

TEST_F(AuditTest, WithoutAKeyTheAuditPassesButSaysSignaturesWereNotChecked) {
  BuildLedger();
  const AuditReport report = Audit(DataDir(/*with_key=*/false));
  ASSERT_TRUE(report.ok) << report.failure;
  EXPECT_FALSE(report.signatures_checked);
  EXPECT_EQ(report.checkpoints_verified, 3u);
  EXPECT_THAT(FormatText(report), HasSubstr("signatures: NOT CHECKED (no --key)"));
  EXPECT_THAT(FormatJson(report), HasSubstr("\"signatures_checked\":false"));
}

TEST_F(AuditTest, TheAuditNeverWritesToTheDataFolder) {
  BuildLedger();
  const std::map<std::string, std::string> before = Listing();
  const AuditReport report = Audit(DataDir());
  EXPECT_TRUE(report.ok) << report.failure;
  EXPECT_EQ(Listing(), before);
}

TEST_F(AuditTest, TheWrongKeyFailsNamingTheCheckpoint) {
  BuildLedger();
  auto other = NoteSigner::Generate(kOrigin);
  ASSERT_TRUE(other.ok());
  AuditOptions options = DataDir();
  options.verifier_key = other->VerifierKey();
  const AuditReport report = Audit(options);
  EXPECT_FALSE(report.ok);
  EXPECT_EQ(report.failed_seq, 0u);
  EXPECT_THAT(report.failure, HasSubstr("checkpoint of 100 entries: signature"));
  EXPECT_THAT(FormatText(report), HasSubstr("FAILED: checkpoint of 100 entries"));
}

TEST_F(AuditTest, AFlippedByteInAnEntryFailsNamingItsSeq) {
  BuildLedger();
  std::string value = Get(EntryKey(123));
  value[60] ^= 0x01;
  Put(EntryKey(123), value);
  const AuditReport report = Audit(DataDir());
  EXPECT_FALSE(report.ok);
  EXPECT_EQ(report.failed_seq, 123u);
  EXPECT_THAT(report.failure, HasSubstr("entry_hash does not match"));
  EXPECT_EQ(report.entries_verified, 122u);
  EXPECT_THAT(FormatText(report), HasSubstr("FAILED at entry 123: "));
  EXPECT_THAT(FormatJson(report), HasSubstr("\"failed_seq\":123"));
}

TEST_F(AuditTest, ADeletedEntryFailsAtItsSeq) {
  BuildLedger();
  Delete(EntryKey(200));
  const AuditReport report = Audit(DataDir());
  EXPECT_FALSE(report.ok);
  EXPECT_EQ(report.failed_seq, 200u);
  EXPECT_THAT(report.failure, HasSubstr("missing (the next stored entry is 201)"));
}

TEST_F(AuditTest, TwoSwappedEntriesFailAtTheFirst) {
  BuildLedger();
  const std::string a = Get(EntryKey(150));
  const std::string b = Get(EntryKey(151));
  Put(EntryKey(150), b);
  Put(EntryKey(151), a);
  const AuditReport report = Audit(DataDir());
  EXPECT_FALSE(report.ok);
  EXPECT_EQ(report.failed_seq, 150u);
  EXPECT_THAT(report.failure, HasSubstr("stored under key 150 but its bytes are entry 151"));
}

TEST_F(AuditTest, AnEditedTileFailsNamingTheFirstEntryItsHashCovers) {
  BuildLedger();
  std::string tile = Get(TileKey(0, 1));
  ASSERT_EQ(tile.size(), 256u * 32);
  tile[5 * 32 + 7] ^= 0x40;  // hash 5 of tile 0/1: leaf 261, entry 262
  Put(TileKey(0, 1), tile);
  const AuditReport report = Audit(DataDir());
  EXPECT_FALSE(report.ok);
  EXPECT_EQ(report.failed_seq, 262u);
  EXPECT_THAT(report.failure, HasSubstr("tile 0/1: hash 5 differs"));
}

TEST_F(AuditTest, AnExtraTileFailsAsEntriesRemoved) {
  BuildLedger();
  Put(TileKey(0, 7), std::string(32, 'x'));
  const AuditReport report = Audit(DataDir());
  EXPECT_FALSE(report.ok);
  EXPECT_EQ(report.failed_seq, kEntries + 1);
  EXPECT_THAT(report.failure, HasSubstr("has 5 tiles where the 600 entries make 4"));
}

TEST_F(AuditTest, RemovedTailEntriesFailAgainstTheSignedCheckpoint) {
  BuildLedger();
  for (uint64_t seq = 591; seq <= kEntries; ++seq) Delete(EntryKey(seq));
  const AuditReport report = Audit(DataDir());
  EXPECT_FALSE(report.ok);
  EXPECT_THAT(report.failure,
              HasSubstr("checkpoint of 600 entries but the ledger has 590: entries removed"));
}

TEST_F(AuditTest, RemovedTailEntriesWithTheirCheckpointFailAgainstTheBalanceSnapshot) {
  BuildLedger();
  for (uint64_t seq = 591; seq <= kEntries; ++seq) Delete(EntryKey(seq));
  Delete(CheckpointKey(kEntries));
  const AuditReport report = Audit(DataDir());
  EXPECT_FALSE(report.ok);
  EXPECT_THAT(report.failure, HasSubstr("the balance snapshot is of entry 600 but the ledger "
                                        "has 590: entries removed"));
}

TEST_F(AuditTest, AHistoryRewrittenAndRechainedFromEntryKFailsAtTheCheckpoint) {
  BuildLedger();
  // Entry 250 is a donation; its memo is changed and everything after it
  // re-hashed and re-chained, the tree rebuilt: only signatures can tell.
  RewriteFrom(250, [](Entry* e) {
    ASSERT_TRUE(std::holds_alternative<DonationOp>(e->body));
    std::get<DonationOp>(e->body).memo = "rewritten";
  });
  const AuditReport report = Audit(DataDir());
  EXPECT_FALSE(report.ok);
  EXPECT_EQ(report.failed_seq, 0u);
  EXPECT_THAT(report.failure, HasSubstr("checkpoint of 300 entries"));
  EXPECT_THAT(report.failure,
              HasSubstr("history rewritten at or before entry 300 and after entry 100"));
}

TEST_F(AuditTest, ARewriteWithItsCheckpointsDeletedFailsAgainstACheckpointFileSeenBefore) {
  BuildLedger();
  const std::string seen = WriteFile("seen.checkpoint", Get(CheckpointKey(kSecondCheckpoint)));
  RewriteFrom(250, [](Entry* e) { std::get<DonationOp>(e->body).memo = "rewritten"; });
  for (uint64_t size : {kFirstCheckpoint, kSecondCheckpoint, kEntries}) {
    Delete(CheckpointKey(size));
  }
  // Consistent in itself...
  AuditReport report = Audit(DataDir());
  ASSERT_TRUE(report.ok) << report.failure;
  EXPECT_EQ(report.checkpoints_verified, 0u);
  // ...but not with what a donor's receipt or a watcher kept.
  AuditOptions options = DataDir();
  options.checkpoint_files.push_back(seen);
  report = Audit(options);
  EXPECT_FALSE(report.ok);
  EXPECT_THAT(report.failure, HasSubstr("checkpoint file " + seen));
  EXPECT_THAT(report.failure, HasSubstr("history rewritten"));
}

TEST_F(AuditTest, AnAllocationRecordedWithSlicesItsPolicyWouldNotChooseFailsTheReplay) {
  BuildLedger();
  // Entry 48 allocates 7,000 fifo/v1 from the fund; record it as taken
  // from another lot, re-hashed and re-chained so only the replay can tell.
  RewriteFrom(48, [](Entry* e) {
    ASSERT_EQ(e->postings.size(), 1u);
    ASSERT_GE(e->postings[0].slices.size(), 1u);
    e->postings[0].slices[0].lot = 40;
  });
  const AuditReport report = Audit(DataDir());
  EXPECT_FALSE(report.ok);
  EXPECT_EQ(report.failed_seq, 48u);
  EXPECT_THAT(report.failure, HasSubstr("replaying it produces different bytes"));
  EXPECT_THAT(report.failure, HasSubstr("postings"));
  EXPECT_THAT(report.failure, HasSubstr("fifo/v1"));
}

TEST_F(AuditTest, CheckoutEntriesReplayAndAnInflatedContributionFailsTheReplay) {
  OpenLedger();
  Run("open-1", OpenBody(kDonor, AccountKind::kDonor));
  Run("open-2", OpenBody(kFund, AccountKind::kFund, "CNY"));
  Run("open-3", OpenBody("store/s1", AccountKind::kMerchant, "CNY"));
  Run("open-4", OpenBody(kRecipient, AccountKind::kRecipient));
  Run("open-5", OpenBody(kDonor2, AccountKind::kDonor));
  Donate(10'000);                                                    // 6
  const PurchaseOp purchase{"store/s1", "A-1", "CNY", 10'000, "member/7", 0, 200, kFund, ""};
  Run(*NaturalClientId(purchase), purchase);                         // 7: contributes 200
  const RefundOp refund{"store/s1", "A-1", "rf-1", 5'000};
  Run(*NaturalClientId(refund), refund);                             // 8: reverses 100
  const std::string code_hash = Str(Sha256("VOUCHER-CODE"));
  Run("issue-9", VoucherIssueOp{kFund, kRecipient, "CNY", 3'000,
                                clock_.NowMicros() + 86'400'000'000, {}, code_hash, ""});
  const RedemptionOp redeem{code_hash, "store/s1", "T-1", 1'000};
  Run(*NaturalClientId(redeem), redeem);                             // 10
  ledger_.reset();
  entries_ = 10;

  AuditReport report = Audit(DataDir());
  ASSERT_TRUE(report.ok) << report.failure;
  EXPECT_EQ(report.entries_verified, 10u);
  EXPECT_EQ(report.account_count, 6u) << "with the voucher's account, opened by its issue";

  // Record the purchase as contributing 300: re-hashed and re-chained, so
  // only the replay (which recomputes 2% of 10,000) can tell.
  RewriteFrom(7, [](Entry* e) {
    ASSERT_EQ(e->postings.size(), 1u);
    e->postings[0].amount = 300;
    e->postings[0].slices[0].amount = 300;
  });
  report = Audit(DataDir());
  EXPECT_FALSE(report.ok);
  EXPECT_EQ(report.failed_seq, 7u);
  EXPECT_THAT(report.failure, HasSubstr("replaying it produces different bytes"));
}

TEST_F(AuditTest, GoodsEntriesReplayAndAMisattributedHandoutFailsTheReplay) {
  OpenLedger();
  Run("open-1", OpenBody(kDonor, AccountKind::kDonor));
  Run("open-2", OpenBody(kDonor2, AccountKind::kDonor));
  Run("open-3", OpenBody(kFund, AccountKind::kFund, "CNY"));
  Run("open-4", OpenBody(kRecipient, AccountKind::kRecipient));
  Run("open-5", OpenBody("supplier/s", AccountKind::kSupplier));
  Run("item-6", ItemOp{"item:box", "Box of daily necessities", "box"});
  Run("open-7", OpenBody("stock/w", AccountKind::kStock, "item:box"));
  Donate(10'000);                                                             // 8
  Donate(5'000);                                                              // 9
  GoodsGiftOp gift;
  gift.donor = kDonor2;
  gift.to = "stock/w";
  gift.item = "item:box";
  gift.quantity = 3;
  gift.expires_us = clock_.NowMicros() + 86'400'000'000;
  Run("gift-10", gift);                                                       // 10: expires first
  Run("buy-11", GoodsPurchaseOp{kFund, "supplier/s", "CNY", 15'000, "stock/w", "item:box", 10,
                                "", 0, "invoice 1"});                         // 11
  Run("rule-12", AidRuleOp{"daily-box", EntryType::kHandout, "stock/w", "", 1,
                           AidPeriod::kMonth, ""});
  Run("hand-13", HandoutOp{"stock/w", "item:box", {{kRecipient, 4}}, "winter", ""});
  ledger_.reset();
  entries_ = 13;

  AuditReport report = Audit(DataDir());
  ASSERT_TRUE(report.ok) << report.failure;
  EXPECT_EQ(report.entries_verified, 13u);

  // Record the handout as taking the bought boxes before the gift that
  // expires first: re-hashed and re-chained, only the replay (fefo/v1)
  // can tell.
  RewriteFrom(13, [](Entry* e) {
    ASSERT_EQ(e->postings.size(), 1u);
    e->postings[0].slices = {Slice{11, 4}};
  });
  report = Audit(DataDir());
  EXPECT_FALSE(report.ok);
  EXPECT_EQ(report.failed_seq, 13u);
  EXPECT_THAT(report.failure, HasSubstr("replaying it produces different bytes"));
}

TEST_F(AuditTest, AClientIdUsedTwiceFailsTheReplay) {
  BuildLedger();
  RewriteFrom(70, [](Entry* e) { e->client_id = "gift-69"; });
  const AuditReport report = Audit(DataDir());
  EXPECT_FALSE(report.ok);
  EXPECT_EQ(report.failed_seq, 70u);
  EXPECT_THAT(report.failure, HasSubstr("client_id 'gift-69' was already used by entry 69"));
}

TEST_F(AuditTest, AnEditedBalanceSnapshotFailsNamingTheAccount) {
  BuildLedger();
  auto snapshot = DecodeSnapshot(Get(std::string(kSnapshotKey)));
  ASSERT_TRUE(snapshot.ok()) << snapshot.status();
  ASSERT_EQ(snapshot->seq, kEntries);
  bool edited = false;
  for (AccountSnapshot& a : snapshot->accounts) {
    if (a.account == kProject) {
      a.balances.at(0).amount += 100;
      edited = true;
    }
  }
  ASSERT_TRUE(edited);
  Put(std::string(kSnapshotKey), EncodeSnapshot(*snapshot));
  const AuditReport report = Audit(DataDir());
  EXPECT_FALSE(report.ok);
  EXPECT_EQ(report.failed_seq, kEntries);
  EXPECT_THAT(report.failure, HasSubstr(kProject));
}

TEST_F(AuditTest, AnExportFileInTheDocumentedFormatAuditsOk) {
  BuildLedger();
  const std::string latest = WriteFile("latest.checkpoint", Get(CheckpointKey(kEntries)));
  const AuditReport from_db = Audit(DataDir());
  ASSERT_TRUE(from_db.ok) << from_db.failure;
  AuditOptions options;
  options.export_path = WriteExport();
  options.verifier_key = signer_->VerifierKey();
  options.checkpoint_files.push_back(latest);
  const AuditReport report = Audit(options);
  ASSERT_TRUE(report.ok) << report.failure;
  EXPECT_EQ(report.entries_verified, kEntries);
  EXPECT_EQ(report.head_hash, from_db.head_hash);
  EXPECT_EQ(report.tree_root, from_db.tree_root);
  EXPECT_EQ(report.checkpoints_verified, 1u);
  EXPECT_FALSE(report.snapshot_seq.has_value());
  ASSERT_EQ(report.held_totals.size(), 1u);
  EXPECT_EQ(report.held_totals[0].amount, donated_ - 3'000);
  EXPECT_THAT(FormatText(report), HasSubstr("source: export " + options.export_path));
}

TEST_F(AuditTest, AFlippedByteInAnExportFileFailsNamingItsSeq) {
  BuildLedger();
  const std::string entry_bytes(EntryBytesOf(Get(EntryKey(77))));
  const std::string path = WriteExport();
  std::string file;
  {
    std::ifstream in(path, std::ios::binary);
    file.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  const size_t at = file.find(entry_bytes);
  ASSERT_NE(at, std::string::npos);
  file[at + 60] ^= 0x01;
  WriteFile("entries.export", file);
  AuditOptions options;
  options.export_path = path;
  const AuditReport report = Audit(options);
  EXPECT_FALSE(report.ok);
  EXPECT_EQ(report.failed_seq, 77u);
  EXPECT_THAT(report.failure, HasSubstr("entry_hash does not match"));
}

TEST_F(AuditTest, ATruncatedExportFileFailsAtTheCutRecord) {
  BuildLedger();
  const std::string path = WriteExport();
  std::filesystem::resize_file(path, std::filesystem::file_size(path) - 10);
  AuditOptions options;
  options.export_path = path;
  const AuditReport report = Audit(options);
  EXPECT_FALSE(report.ok);
  EXPECT_EQ(report.failed_seq, kEntries);
  EXPECT_THAT(report.failure, HasSubstr("ends inside record 600"));
}

TEST_F(AuditTest, AnEmptyExportFileIsAnEmptyLedger) {
  AuditOptions options;
  options.export_path = WriteFile("empty.export", "");
  const AuditReport report = Audit(options);
  EXPECT_TRUE(report.ok) << report.failure;
  EXPECT_EQ(report.entries_verified, 0u);
  EXPECT_EQ(report.tree_root, merkle::EmptyRoot());
}

TEST_F(AuditTest, AMissingSourceIsAnErrorNotAFinding) {
  AuditOptions options;
  options.data_dir = dir_ + "/nowhere";
  EXPECT_FALSE(RunAudit(options).ok());
  options = AuditOptions{};
  EXPECT_FALSE(RunAudit(options).ok()) << "neither --data_dir nor --export";
}

}  // namespace
}  // namespace warmledger::audit

// Tampering that keeps every entry individually valid, caught on open.
//
// tests/corruption_test.cc damages entries (flipped bytes, gaps, swaps). The
// cases here are what a careful forger would do instead, after which every
// entry hash and the chain still verify:
//
//   edit a stored balance                 ─► balance snapshot ≠ replay, naming the account
//   edit a stored Merkle tile             ─► tile ≠ the entries' leaves, naming the entry
//   rewrite history from entry k, re-hash ─► old signed checkpoints ≠ new roots
//     the chain and rebuild the tree
//   delete the newest entries and tiles   ─► a signed checkpoint covers entries that are gone
//
// Each reopen must fail with kDataLoss; the same cases are checked by the
// independent auditor in tools/audit_test.cc.
#include <stdlib.h>

#include <filesystem>
#include <memory>
#include <string>
#include <system_error>
#include <vector>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "ledger/clock.h"
#include "ledger/entry_codec.h"
#include "ledger/ledger.h"
#include "ledger/ledger_testing.h"
#include "ledger/merkle.h"
#include "ledger/note.h"
#include "rocksdb/db.h"
#include "rocksdb/write_batch.h"

namespace warmledger {
namespace {

using ::testing::HasSubstr;

constexpr char kOrigin[] = "tamper.example/ledger";
constexpr int kDonations = 300;

class TamperTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = MakeTempDir("warmledger-tamper");
    ASSERT_FALSE(dir_.empty());
    signer_ = MakeTestSigner(kOrigin);
    ASSERT_NE(signer_, nullptr);
    // A ledger with checkpoints at 100 and 200 entries and a final one on
    // close, and a balance snapshot of the closed state.
    auto ledger = Open();
    ASSERT_TRUE(ledger.ok()) << ledger.status();
    Submit(**ledger, {OpenOp("open-fund", "fund/general", AccountKind::kFund, "CNY"),
                      OpenOp("open-donor", "donor/alice", AccountKind::kDonor, "")});
    for (int i = 0; i < kDonations; ++i) {
      Submit(**ledger, {DonateOp("gift-" + std::to_string(i), 100 + i)});
      if (i == 98 || i == 198) {
        ASSERT_TRUE((*ledger)->WaitForCheckpoint(i + 3, 10'000).ok());
      }
    }
    head_ = (*ledger)->Head().seq;
  }

  void TearDown() override {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  absl::StatusOr<std::unique_ptr<Ledger>> Open() {
    LedgerOptions options;
    options.path = dir_;
    options.clock = &clock_;
    options.checkpoint_signer = signer_;
    options.checkpoint_origin = kOrigin;
    options.checkpoint_every_entries = 1'000'000;
    options.checkpoint_every_ms = 3'600'000;
    options.checkpoint_interval_min_ms = 0;
    return Ledger::Open(options);
  }

  static Operation OpenOp(std::string id, std::string account, AccountKind kind,
                          std::string asset) {
    OpenAccountOp body;
    body.account = std::move(account);
    body.kind = kind;
    body.asset = std::move(asset);
    return Operation{std::move(id), false, std::move(body)};
  }
  static Operation DonateOp(std::string id, int64_t amount) {
    DonationOp body;
    body.donor = "donor/alice";
    body.to = "fund/general";
    body.asset = "CNY";
    body.amount = amount;
    body.memo = "original memo";
    return Operation{std::move(id), false, std::move(body)};
  }
  static void Submit(Ledger& ledger, std::vector<Operation> ops) {
    for (const OpResult& r : ledger.Submit(std::move(ops))) ASSERT_TRUE(r.status.ok()) << r.status;
  }

  std::unique_ptr<rocksdb::DB> Raw() {
    rocksdb::DB* raw = nullptr;
    rocksdb::Status s = rocksdb::DB::Open(rocksdb::Options(), dir_, &raw);
    EXPECT_TRUE(s.ok()) << s.ToString();
    return std::unique_ptr<rocksdb::DB>(raw);
  }

  // Deletes every tile and writes the tiles of the stored entries anew, as
  // a forger who knows the format would.
  static void RebuildTiles(rocksdb::DB* db, uint64_t head) {
    rocksdb::WriteBatch batch;
    std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(rocksdb::ReadOptions()));
    for (it->Seek("T"); it->Valid() && it->key()[0] == 'T'; it->Next()) batch.Delete(it->key());
    merkle::TileBuilder tree;
    for (uint64_t seq = 1; seq <= head; ++seq) {
      std::string value;
      ASSERT_TRUE(db->Get(rocksdb::ReadOptions(), EntryKey(seq), &value).ok());
      tree.Append(merkle::LeafHash(EntryBytesOf(value)));
    }
    for (const auto& [id, tile] : tree.TakeChanged()) batch.Put(TileKey(id.level, id.index), tile);
    ASSERT_TRUE(db->Write(rocksdb::WriteOptions(), &batch).ok());
  }

  absl::Status Reopen() {
    auto ledger = Open();
    return ledger.status();
  }

  ManualClock clock_;
  std::string dir_;
  std::shared_ptr<const NoteSigner> signer_;
  uint64_t head_ = 0;
};

TEST_F(TamperTest, UntouchedLedgerReopens) { EXPECT_TRUE(Reopen().ok()); }

TEST_F(TamperTest, EditedBalanceIsDataLossNamingTheAccount) {
  {
    auto db = Raw();
    std::string value;
    ASSERT_TRUE(db->Get(rocksdb::ReadOptions(), std::string(kSnapshotKey), &value).ok());
    auto snapshot = DecodeSnapshot(value);
    ASSERT_TRUE(snapshot.ok()) << snapshot.status();
    bool edited = false;
    for (AccountSnapshot& a : snapshot->accounts) {
      if (a.account != "fund/general") continue;
      ASSERT_FALSE(a.balances.empty());
      a.balances[0].amount += 100;  // one yuan more than the entries say
      edited = true;
    }
    ASSERT_TRUE(edited);
    ASSERT_TRUE(db->Put(rocksdb::WriteOptions(), std::string(kSnapshotKey),
                        EncodeSnapshot(*snapshot))
                    .ok());
  }
  absl::Status s = Reopen();
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr("'fund/general'"));
  EXPECT_THAT(std::string(s.message()), HasSubstr("balance"));
}

TEST_F(TamperTest, EditedTileIsDataLossNamingTheEntry) {
  {
    auto db = Raw();
    std::string tile;
    ASSERT_TRUE(db->Get(rocksdb::ReadOptions(), TileKey(0, 0), &tile).ok());
    tile[32 * 41 + 5] ^= 0x01;  // the leaf hash of entry 42
    ASSERT_TRUE(db->Put(rocksdb::WriteOptions(), TileKey(0, 0), tile).ok());
  }
  absl::Status s = Reopen();
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr("entry 42"));
}

TEST_F(TamperTest, HistoryRewrittenAndRehashedFromSomeEntryIsCaughtByTheOldCheckpoints) {
  constexpr uint64_t kFirstRewritten = 150;
  {
    auto db = Raw();
    Hash prev{};
    for (uint64_t seq = 1; seq <= head_; ++seq) {
      std::string value;
      ASSERT_TRUE(db->Get(rocksdb::ReadOptions(), EntryKey(seq), &value).ok());
      auto stored = ParseStoredValue(value, seq);
      ASSERT_TRUE(stored.ok()) << stored.status();
      if (seq >= kFirstRewritten) {
        Entry entry = std::move(stored->entry);
        if (seq == kFirstRewritten) std::get<DonationOp>(entry.body).memo = "rewritten memo";
        entry.prev_hash = prev;
        const std::string bytes = EncodeEntry(entry);
        const Hash hash = EntryHash(bytes);
        ASSERT_TRUE(
            db->Put(rocksdb::WriteOptions(), EntryKey(seq), MakeStoredValue(bytes, hash)).ok());
        prev = hash;
      } else {
        prev = stored->hash;
      }
    }
    RebuildTiles(db.get(), head_);
  }
  // Every entry, the chain and the tree are self-consistent again...
  absl::Status s = Reopen();
  // ...but the checkpoint of 201 entries, signed before, has another root.
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr("checkpoint of 201 entries"));
  EXPECT_THAT(std::string(s.message()), HasSubstr("rewritten"));
}

TEST_F(TamperTest, DeletedNewestEntriesAreCaughtByTheCheckpointThatCoveredThem) {
  {
    auto db = Raw();
    rocksdb::WriteBatch batch;
    for (uint64_t seq = 250; seq <= head_; ++seq) batch.Delete(EntryKey(seq));
    batch.Delete(std::string(kSnapshotKey));
    ASSERT_TRUE(db->Write(rocksdb::WriteOptions(), &batch).ok());
    RebuildTiles(db.get(), 249);
  }
  absl::Status s = Reopen();
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr("entry 250"));
}

}  // namespace
}  // namespace warmledger

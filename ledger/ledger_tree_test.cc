// Tests of the ledger's Merkle tree and signed checkpoints (ledger/ledger.h,
// "Verifiability"; docs/format.md "Merkle tree"): the stored tree always
// equals the RFC 9162 tree of the stored entry bytes, proofs verify against
// it, checkpoints are issued, signed, stored and re-verified on open, and a
// receipt checks offline. Tampering with the database is in
// tests/tamper_test.cc.

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

constexpr char kOrigin[] = "test.example/ledger";

Operation Open(std::string client_id, std::string account, AccountKind kind,
               std::string asset) {
  OpenAccountOp body;
  body.account = std::move(account);
  body.kind = kind;
  body.asset = std::move(asset);
  body.name = "name";
  return Operation{std::move(client_id), false, std::move(body)};
}

Operation Donate(std::string client_id, int64_t amount) {
  DonationOp body;
  body.donor = "donor/alice";
  body.to = "fund/general";
  body.asset = "CNY";
  body.amount = amount;
  body.memo = "for the elderly";
  return Operation{std::move(client_id), false, std::move(body)};
}

class LedgerTreeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = MakeTempDir("warmledger-tree");
    ASSERT_FALSE(dir_.empty());
    signer_ = MakeTestSigner(kOrigin);
    ASSERT_NE(signer_, nullptr);
  }
  void TearDown() override {
    ledger_.reset();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  LedgerOptions Options(bool sign = true) {
    LedgerOptions options;
    options.path = dir_ + "/db";
    options.clock = &clock_;
    if (sign) options.checkpoint_signer = signer_;
    options.checkpoint_origin = kOrigin;
    // Only explicit requests and shutdown issue checkpoints unless a test
    // says otherwise.
    options.checkpoint_every_entries = 1'000'000;
    options.checkpoint_every_ms = 3'600'000;
    options.checkpoint_interval_min_ms = 0;
    return options;
  }

  void OpenLedger(bool sign = true) {
    ledger_.reset();
    auto opened = Ledger::Open(Options(sign));
    ASSERT_TRUE(opened.ok()) << opened.status();
    ledger_ = std::move(*opened);
  }

  absl::Status Reopen(bool sign = true) {
    ledger_.reset();
    auto opened = Ledger::Open(Options(sign));
    if (!opened.ok()) return opened.status();
    ledger_ = std::move(*opened);
    return absl::OkStatus();
  }

  // Opens the fund and the donor, then `n` donations in batches of `batch`.
  void Fill(int n, int batch) {
    std::vector<Operation> setup;
    setup.push_back(Open("open-fund", "fund/general", AccountKind::kFund, "CNY"));
    setup.push_back(Open("open-donor", "donor/alice", AccountKind::kDonor, ""));
    for (const OpResult& r : ledger_->Submit(std::move(setup))) ASSERT_TRUE(r.status.ok());
    for (int i = 0; i < n; i += batch) {
      std::vector<Operation> ops;
      for (int k = i; k < std::min(n, i + batch); ++k) {
        ops.push_back(Donate("gift-" + std::to_string(k), 100 + k));
      }
      for (const OpResult& r : ledger_->Submit(std::move(ops))) ASSERT_TRUE(r.status.ok());
    }
  }

  // Leaf hashes of every stored entry, computed from the bytes read back.
  std::vector<Hash> Leaves() {
    std::vector<Hash> leaves;
    const uint64_t head = ledger_->Head().seq;
    for (uint64_t seq = 1; seq <= head; ++seq) {
      auto entry = ledger_->ReadEntry(seq);
      EXPECT_TRUE(entry.ok()) << entry.status();
      if (!entry.ok()) break;
      leaves.push_back(merkle::LeafHash(entry->bytes));
    }
    return leaves;
  }

  ManualClock clock_;
  std::string dir_;
  std::shared_ptr<const NoteSigner> signer_;
  std::unique_ptr<Ledger> ledger_;
};

TEST_F(LedgerTreeTest, TreeRootEqualsTheReferenceRootOfTheStoredEntriesAtEverySize) {
  OpenLedger();
  Fill(600, 37);  // groups that straddle tile boundaries
  const std::vector<Hash> leaves = Leaves();
  ASSERT_EQ(leaves.size(), 602u);
  for (size_t n = 1; n <= leaves.size(); ++n) {
    auto root = ledger_->TreeRoot(n);
    ASSERT_TRUE(root.ok()) << root.status();
    EXPECT_EQ(*root, merkle::ReferenceRoot({leaves.begin(), leaves.begin() + n})) << n;
  }
}

TEST_F(LedgerTreeTest, InclusionAndConsistencyProofsVerifyAgainstTreeRoots) {
  OpenLedger();
  Fill(300, 1000);
  const std::vector<Hash> leaves = Leaves();
  for (uint64_t size : {1u, 2u, 255u, 256u, 257u, 302u}) {
    auto root = ledger_->TreeRoot(size);
    ASSERT_TRUE(root.ok());
    for (uint64_t seq = 1; seq <= size; seq += 7) {
      auto proof = ledger_->InclusionProof(seq, size);
      ASSERT_TRUE(proof.ok()) << proof.status();
      EXPECT_TRUE(merkle::VerifyInclusion(seq - 1, size, leaves[seq - 1], *proof, *root).ok())
          << seq << " in " << size;
    }
    for (uint64_t old_size = 1; old_size <= size; old_size += 11) {
      auto old_root = ledger_->TreeRoot(old_size);
      auto proof = ledger_->ConsistencyProof(old_size, size);
      ASSERT_TRUE(old_root.ok() && proof.ok());
      EXPECT_TRUE(merkle::VerifyConsistency(old_size, size, *old_root, *root, *proof).ok())
          << old_size << " -> " << size;
    }
  }
}

TEST_F(LedgerTreeTest, ProofArgumentsOutsideTheTreeAreRejectedNamingTheField) {
  OpenLedger();
  Fill(3, 3);
  EXPECT_EQ(ledger_->TreeRoot(0).status().code(), absl::StatusCode::kOutOfRange);
  EXPECT_THAT(std::string(ledger_->TreeRoot(6).status().message()), HasSubstr("tree_size"));
  EXPECT_EQ(ledger_->InclusionProof(0, 5).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ledger_->InclusionProof(5, 4).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ledger_->InclusionProof(1, 9).status().code(), absl::StatusCode::kOutOfRange);
  EXPECT_THAT(std::string(ledger_->ConsistencyProof(4, 3).status().message()),
              HasSubstr("old_size"));
  EXPECT_EQ(ledger_->ConsistencyProof(0, 3).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(LedgerTreeTest, WaitingForACheckpointIssuesOneThatVerifiesAndCoversTheEntry) {
  OpenLedger();
  Fill(10, 4);
  EXPECT_EQ(ledger_->LatestCheckpoint().status().code(), absl::StatusCode::kNotFound);
  auto note = ledger_->WaitForCheckpoint(12, 10'000);
  ASSERT_TRUE(note.ok()) << note.status();
  auto verifier = NoteVerifier::Parse(ledger_->VerifierKey());
  ASSERT_TRUE(verifier.ok()) << verifier.status();
  auto text = verifier->Open(*note);
  ASSERT_TRUE(text.ok()) << text.status();
  auto checkpoint = ParseCheckpoint(*text);
  ASSERT_TRUE(checkpoint.ok()) << checkpoint.status();
  EXPECT_EQ(checkpoint->origin, kOrigin);
  EXPECT_EQ(checkpoint->size, 12u);
  EXPECT_EQ(checkpoint->root, *ledger_->TreeRoot(12));
  EXPECT_EQ(*ledger_->LatestCheckpoint(), *note);
  EXPECT_EQ(*ledger_->CheckpointAt(12), *note);
  EXPECT_EQ(ledger_->CheckpointAt(11).status().code(), absl::StatusCode::kNotFound);
}

TEST_F(LedgerTreeTest, CheckpointsAreIssuedEveryNEntriesWithoutBeingAskedFor) {
  LedgerOptions options = Options();
  options.checkpoint_every_entries = 5;
  auto opened = Ledger::Open(options);
  ASSERT_TRUE(opened.ok());
  ledger_ = std::move(*opened);
  Fill(20, 1);
  // 22 entries: the checkpointer signs on its own once 5 are uncovered.
  absl::Time deadline = absl::Now() + absl::Seconds(20);
  while (!ledger_->LatestCheckpoint().ok() && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(5));
  }
  auto note = ledger_->LatestCheckpoint();
  ASSERT_TRUE(note.ok()) << note.status();
  auto checkpoint = ParseCheckpointUnverified(*note);
  ASSERT_TRUE(checkpoint.ok());
  EXPECT_GE(checkpoint->size, 5u);
}

TEST_F(LedgerTreeTest, WaitingTimesOutWithDeadlineExceededWhenTheEntryDoesNotExist) {
  OpenLedger();
  Fill(1, 1);
  auto note = ledger_->WaitForCheckpoint(100, 50);
  EXPECT_EQ(note.status().code(), absl::StatusCode::kDeadlineExceeded);
}

TEST_F(LedgerTreeTest, ALedgerWithoutSignerKeepsTheTreeButIssuesNoCheckpoint) {
  OpenLedger(/*sign=*/false);
  Fill(5, 5);
  EXPECT_TRUE(ledger_->TreeRoot(7).ok());
  EXPECT_EQ(ledger_->WaitForCheckpoint(7, 10).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(ledger_->VerifierKey(), "");
}

TEST_F(LedgerTreeTest, ClosingTheLedgerSignsAFinalCheckpointCoveringEveryEntry) {
  OpenLedger();
  Fill(30, 7);
  ASSERT_TRUE(Reopen().ok());
  auto note = ledger_->LatestCheckpoint();
  ASSERT_TRUE(note.ok()) << note.status();
  auto checkpoint = ParseCheckpointUnverified(*note);
  ASSERT_TRUE(checkpoint.ok());
  EXPECT_EQ(checkpoint->size, 32u);
}

TEST_F(LedgerTreeTest, ReopeningVerifiesTheTreeAndEveryCheckpointAndKeepsAppending) {
  OpenLedger();
  Fill(300, 50);
  ASSERT_TRUE(ledger_->WaitForCheckpoint(100, 10'000).ok());
  ASSERT_TRUE(Reopen().ok());
  const Hash root_before = *ledger_->TreeRoot(ledger_->Head().seq);
  std::vector<Operation> more;
  for (int i = 0; i < 10; ++i) more.push_back(Donate("later-" + std::to_string(i), 5));
  for (const OpResult& r : ledger_->Submit(std::move(more))) ASSERT_TRUE(r.status.ok());
  const std::vector<Hash> leaves = Leaves();
  EXPECT_EQ(*ledger_->TreeRoot(leaves.size()), merkle::ReferenceRoot(leaves));
  EXPECT_EQ(root_before, merkle::ReferenceRoot({leaves.begin(), leaves.end() - 10}));
  ASSERT_TRUE(Reopen().ok());
  EXPECT_EQ(*ledger_->TreeRoot(leaves.size()), merkle::ReferenceRoot(leaves));
}

TEST_F(LedgerTreeTest, OpeningWithAnotherSigningKeyIsDataLossNamingTheCheckpoint) {
  OpenLedger();
  Fill(5, 5);
  ledger_.reset();  // signs a final checkpoint of 7 entries
  auto other = NoteSigner::Generate(kOrigin);
  ASSERT_TRUE(other.ok());
  signer_ = std::make_shared<const NoteSigner>(std::move(*other));
  absl::Status s = Reopen();
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr("checkpoint of 7 entries"));
}

TEST_F(LedgerTreeTest, AReceiptVerifiesOfflineAgainstTheSignedCheckpoint) {
  OpenLedger();
  Fill(40, 9);
  ASSERT_TRUE(ledger_->WaitForCheckpoint(42, 10'000).ok());
  auto receipt = ledger_->MakeReceipt(17);
  ASSERT_TRUE(receipt.ok()) << receipt.status();
  // Round trip through the file form, then verify with public data only.
  auto parsed = ParseReceipt(FormatReceipt(*receipt));
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  auto verifier = NoteVerifier::Parse(signer_->VerifierKey());
  auto text = verifier->Open(parsed->checkpoint);
  ASSERT_TRUE(text.ok()) << text.status();
  auto checkpoint = ParseCheckpoint(*text);
  ASSERT_TRUE(checkpoint.ok());
  EXPECT_EQ(parsed->index, 16u);
  EXPECT_TRUE(merkle::VerifyInclusion(parsed->index, checkpoint->size,
                                      merkle::LeafHash(parsed->entry_bytes), parsed->proof,
                                      checkpoint->root)
                  .ok());
  auto entry = DecodeEntry(parsed->entry_bytes);
  ASSERT_TRUE(entry.ok());
  EXPECT_EQ(entry->seq, 17u);
  // A receipt for an entry no checkpoint covers yet is refused.
  for (const OpResult& r : ledger_->Submit({Donate("late", 1)})) ASSERT_TRUE(r.status.ok());
  EXPECT_EQ(ledger_->MakeReceipt(43).status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST_F(LedgerTreeTest, AVersionOneLedgerGetsItsTreeBuiltOnOpen) {
  OpenLedger(/*sign=*/false);
  Fill(700, 100);
  const std::vector<Hash> leaves = Leaves();
  ledger_.reset();
  {
    // Make it what version 1 stored: entries and the format key only.
    rocksdb::DB* raw = nullptr;
    ASSERT_TRUE(rocksdb::DB::Open(rocksdb::Options(), dir_ + "/db", &raw).ok());
    std::unique_ptr<rocksdb::DB> db(raw);
    rocksdb::WriteBatch batch;
    std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(rocksdb::ReadOptions()));
    int tiles = 0;
    for (it->Seek("T"); it->Valid() && it->key()[0] == 'T'; it->Next()) {
      batch.Delete(it->key());
      ++tiles;
    }
    EXPECT_EQ(tiles, 4);  // level 0: 3 tiles for 702 leaves; level 1: 1 tile of 2 hashes
    batch.Put("Mformat", std::string("\x01\x00\x00\x00", 4));
    ASSERT_TRUE(db->Write(rocksdb::WriteOptions(), &batch).ok());
  }
  absl::Status upgraded = Reopen(/*sign=*/false);
  ASSERT_TRUE(upgraded.ok()) << upgraded;
  EXPECT_EQ(*ledger_->TreeRoot(leaves.size()), merkle::ReferenceRoot(leaves));
  // And the upgrade is permanent: a second open verifies the written tiles.
  ASSERT_TRUE(Reopen(/*sign=*/false).ok());
  EXPECT_EQ(*ledger_->TreeRoot(leaves.size()), merkle::ReferenceRoot(leaves));
}

}  // namespace
}  // namespace warmledger

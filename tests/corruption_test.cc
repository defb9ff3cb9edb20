// Valid ledgers made invalid behind the engine's back.
//
// Each test writes a small ledger through the engine, closes it, edits the
// RocksDB folder directly (docs/format.md: key 'E' + seq as 8-byte big-endian,
// value = entry_bytes + SHA-256 trailer) and reopens: Ledger::Open must fail
// with kDataLoss and a message naming the seq of the first bad entry.
//
//   flip a byte anywhere in entry k  ─► hash (or decode, or key/seq) check at k
//   delete entry k                   ─► density check at k
//   swap entries k and k+1           ─► key/seq check at k
//   truncate entry k                 ─► decode or hash check at k
//   flip a byte in the last entry    ─► its own trailer (no successor to catch it)
//   re-hash an edited entry k        ─► the chain at k+1, or replay at k
//
// The stored layout itself is also checked against the format with an
// independent SHA-256, so the tests cannot pass by agreeing with a wrong
// engine.
#include <stdlib.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <memory>
#include <regex>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "gtest/gtest.h"
#include "ledger/clock.h"
#include "ledger/ledger.h"
#include "ledger/temp_dir_testing.h"
#include "ledger/types.h"
#include "rocksdb/db.h"
#include "rocksdb/iterator.h"
#include "rocksdb/options.h"

namespace warmledger {
namespace {

constexpr size_t kHashBytes = 32;
// version u8, type u8, seq u64, time_us i64, prev_hash: the fixed header.
constexpr size_t kClientIdOffset = 1 + 1 + 8 + 8 + kHashBytes;
constexpr char kHashDomain[] = "warmledger/entry/v1";

// ---- SHA-256 (FIPS 180-4), independent of the engine's. ----

class Sha256 {
 public:
  static std::array<uint8_t, 32> Of(const std::string& data) {
    Sha256 h;
    h.Update(data);
    return h.Finish();
  }

 private:
  static constexpr uint32_t kK[64] = {
      0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
      0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
      0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
      0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
      0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
      0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
      0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
      0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};
  static uint32_t Rotr(uint32_t x, int n) { return (x >> n) | (x << (32 - n)); }

  void Update(const std::string& data) {
    for (unsigned char c : data) {
      block_[block_size_++] = c;
      if (block_size_ == 64) {
        Compress();
        block_size_ = 0;
      }
    }
    length_bytes_ += data.size();
  }

  std::array<uint8_t, 32> Finish() {
    const uint64_t length_bits = length_bytes_ * 8;
    std::string pad(1, '\x80');
    const size_t after = (block_size_ + 1) % 64;
    pad.append(after <= 56 ? 56 - after : 120 - after, '\0');
    for (int i = 7; i >= 0; --i) pad.push_back(static_cast<char>(length_bits >> (8 * i)));
    Update(pad);
    std::array<uint8_t, 32> out{};
    for (int i = 0; i < 8; ++i) {
      for (int j = 0; j < 4; ++j) out[4 * i + j] = static_cast<uint8_t>(state_[i] >> (24 - 8 * j));
    }
    return out;
  }

  void Compress() {
    uint32_t w[64];
    for (int i = 0; i < 16; ++i) {
      w[i] = uint32_t{block_[4 * i]} << 24 | uint32_t{block_[4 * i + 1]} << 16 |
             uint32_t{block_[4 * i + 2]} << 8 | uint32_t{block_[4 * i + 3]};
    }
    for (int i = 16; i < 64; ++i) {
      const uint32_t s0 = Rotr(w[i - 15], 7) ^ Rotr(w[i - 15], 18) ^ (w[i - 15] >> 3);
      const uint32_t s1 = Rotr(w[i - 2], 17) ^ Rotr(w[i - 2], 19) ^ (w[i - 2] >> 10);
      w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    uint32_t a = state_[0], b = state_[1], c = state_[2], d = state_[3];
    uint32_t e = state_[4], f = state_[5], g = state_[6], h = state_[7];
    for (int i = 0; i < 64; ++i) {
      const uint32_t t1 = h + (Rotr(e, 6) ^ Rotr(e, 11) ^ Rotr(e, 25)) + ((e & f) ^ (~e & g)) + kK[i] + w[i];
      const uint32_t t2 = (Rotr(a, 2) ^ Rotr(a, 13) ^ Rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
      h = g;
      g = f;
      f = e;
      e = d + t1;
      d = c;
      c = b;
      b = a;
      a = t1 + t2;
    }
    state_[0] += a;
    state_[1] += b;
    state_[2] += c;
    state_[3] += d;
    state_[4] += e;
    state_[5] += f;
    state_[6] += g;
    state_[7] += h;
  }

  uint32_t state_[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                        0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
  uint8_t block_[64] = {};
  size_t block_size_ = 0;
  uint64_t length_bytes_ = 0;
};

std::string Hex(const std::string& bytes) {
  static const char kDigits[] = "0123456789abcdef";
  std::string out;
  for (unsigned char c : bytes) {
    out.push_back(kDigits[c >> 4]);
    out.push_back(kDigits[c & 15]);
  }
  return out;
}

std::string HashString(const std::array<uint8_t, 32>& h) { return std::string(h.begin(), h.end()); }

// entry_hash := SHA-256("warmledger/entry/v1" 0x00 entry_bytes)
std::string EntryHash(const std::string& entry_bytes) {
  std::string input(kHashDomain);
  input.push_back('\0');
  input += entry_bytes;
  return HashString(Sha256::Of(input));
}

TEST(Sha256Test, MatchesTheFipsExamples) {
  EXPECT_EQ(Hex(HashString(Sha256::Of("abc"))),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(Hex(HashString(Sha256::Of(""))),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(Hex(HashString(Sha256::Of("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"))),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

// ---- The stored layout. ----

std::string EntryKey(uint64_t seq) {
  std::string key(1, 'E');
  for (int i = 7; i >= 0; --i) key.push_back(static_cast<char>(seq >> (8 * i)));
  return key;
}

uint64_t LoadLe(const std::string& bytes, size_t offset, size_t width) {
  uint64_t v = 0;
  for (size_t i = 0; i < width; ++i) v |= uint64_t{static_cast<uint8_t>(bytes[offset + i])} << (8 * i);
  return v;
}

void StoreLe(std::string& bytes, size_t offset, size_t width, uint64_t v) {
  for (size_t i = 0; i < width; ++i) bytes[offset + i] = static_cast<char>(v >> (8 * i));
}

// Offset just after the `str` (u16 length + bytes) that starts at `offset`.
size_t SkipStr(const std::string& bytes, size_t offset) { return offset + 2 + LoadLe(bytes, offset, 2); }

// True if `message` names `seq` as a whole decimal number.
bool NamesSeq(const std::string& message, uint64_t seq) {
  const std::regex number("(^|[^0-9])" + std::to_string(seq) + "([^0-9]|$)");
  return std::regex_search(message, number);
}

// The ledger folder opened as a plain RocksDB database.
class RawDb {
 public:
  explicit RawDb(const std::string& path) {
    rocksdb::DB* db = nullptr;
    const rocksdb::Status s = rocksdb::DB::Open(rocksdb::Options(), path, &db);
    EXPECT_TRUE(s.ok()) << s.ToString();
    db_.reset(db);
  }
  ~RawDb() {
    if (db_ != nullptr) {
      const rocksdb::Status s = db_->Close();
      EXPECT_TRUE(s.ok()) << s.ToString();
    }
  }
  bool ok() const { return db_ != nullptr; }

  std::string Get(const std::string& key) {
    std::string value;
    const rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), key, &value);
    EXPECT_TRUE(s.ok()) << "get " << Hex(key) << ": " << s.ToString();
    return value;
  }
  void Put(const std::string& key, const std::string& value) {
    rocksdb::WriteOptions options;
    options.sync = true;
    const rocksdb::Status s = db_->Put(options, key, value);
    EXPECT_TRUE(s.ok()) << s.ToString();
  }
  void Delete(const std::string& key) {
    rocksdb::WriteOptions options;
    options.sync = true;
    const rocksdb::Status s = db_->Delete(options, key);
    EXPECT_TRUE(s.ok()) << s.ToString();
  }
  std::vector<std::pair<std::string, std::string>> All() {
    std::vector<std::pair<std::string, std::string>> out;
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions()));
    for (it->SeekToFirst(); it->Valid(); it->Next()) out.emplace_back(it->key().ToString(), it->value().ToString());
    EXPECT_TRUE(it->status().ok()) << it->status().ToString();
    return out;
  }

 private:
  std::unique_ptr<rocksdb::DB> db_;
};

// ---- The sample ledger. ----

constexpr uint64_t kSampleEntries = 30;
// An allocation in the middle: its posting carries slices of several lots.
constexpr uint64_t kVictimSeq = 17;

Operation Op(int n, OpBody body) {
  Operation op;
  op.client_id = "c-" + std::string(n < 10 ? "00" : "0") + std::to_string(n);
  op.body = std::move(body);
  return op;
}
OpBody Open(const std::string& account, AccountKind kind, const std::string& asset) {
  OpenAccountOp o;
  o.account = account;
  o.kind = kind;
  o.asset = asset;
  o.name = account;
  return o;
}
OpBody Gift(const std::string& donor, int64_t amount, bool anonymous) {
  DonationOp d;
  d.donor = donor;
  d.to = "fund/general";
  d.asset = "CNY";
  d.amount = amount;
  d.channel = DonationChannel::kOnlineCampaign;
  d.flags = anonymous ? kDonationAnonymous : 0;
  d.memo = "99 Giving Day";
  return d;
}

// Writes kSampleEntries entries at `path`: accounts, donations, an
// allocation, disbursements, a reversal and an adjustment; the last entry is a
// donation. Returns the state digest.
std::string WriteSample(const std::string& path) {
  ManualClock clock;
  LedgerOptions options;
  options.path = path;
  options.clock = &clock;
  auto ledger = Ledger::Open(options);
  EXPECT_TRUE(ledger.ok()) << ledger.status();
  if (!ledger.ok()) return "";
  std::vector<Operation> first;
  first.push_back(Op(1, Open("donor/a", AccountKind::kDonor, "")));
  first.push_back(Op(2, Open("donor/b", AccountKind::kDonor, "")));
  first.push_back(Op(3, Open("fund/general", AccountKind::kFund, "CNY")));
  first.push_back(Op(4, Open("project/homes", AccountKind::kProject, "CNY")));
  first.push_back(Op(5, Open("recipient/r1", AccountKind::kRecipient, "")));
  for (int n = 6; n <= 15; ++n) first.push_back(Op(n, Gift(n % 2 ? "donor/a" : "donor/b", 1000 * n, n % 3 == 0)));
  std::vector<Operation> second;
  {
    DisbursementOp d;
    d.from = "fund/general";
    d.to = "recipient/r1";
    d.asset = "CNY";
    d.amount = 500;
    d.purpose = "winter aid";
    second.push_back(Op(16, d));
    AllocationOp a;
    a.from = "fund/general";
    a.to = "project/homes";
    a.asset = "CNY";
    a.amount = 30'000;  // spans several lots
    a.reason = "roof repairs";
    second.push_back(Op(17, a));
    d.from = "project/homes";
    d.amount = 12'345;
    d.purpose = "materials";
    second.push_back(Op(18, d));
    CorrectionOp reverse;
    reverse.ref_seq = 16;
    reverse.mode = CorrectionMode::kReverse;
    reverse.reason = "paid twice";
    second.push_back(Op(19, reverse));
    CorrectionOp adjust;
    adjust.ref_seq = 18;
    adjust.mode = CorrectionMode::kAdjust;
    adjust.reason = "materials cost more";
    adjust.from = "project/homes";
    adjust.to = "recipient/r1";
    adjust.asset = "CNY";
    adjust.amount = 655;
    second.push_back(Op(20, adjust));
  }
  std::vector<Operation> third;
  for (int n = 21; n <= static_cast<int>(kSampleEntries); ++n) {
    third.push_back(Op(n, Gift(n % 2 ? "donor/a" : "donor/b", 100 * n + 7, false)));
  }
  for (std::vector<Operation>* batch : {&first, &second, &third}) {
    clock.AdvanceMicros(1'000'000);
    for (const OpResult& r : (*ledger)->Submit(*batch)) EXPECT_TRUE(r.status.ok()) << r.status;
  }
  EXPECT_EQ((*ledger)->Head().seq, kSampleEntries);
  return (*ledger)->StateDigest();
}

class CorruptionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = dir_.path() + "/ledger";
    digest_ = WriteSample(path_);
    ASSERT_FALSE(HasFailure());
  }

  // Ledger::Open must fail with kDataLoss naming `seq`.
  void ExpectDataLossNaming(uint64_t seq, const std::string& what) {
    ExpectDataLossNamingAt(path_, seq, what);
  }
  static void ExpectDataLossNamingAt(const std::string& path, uint64_t seq, const std::string& what) {
    LedgerOptions options;
    options.path = path;
    auto ledger = Ledger::Open(options);
    ASSERT_FALSE(ledger.ok()) << what << ": the ledger opened";
    EXPECT_EQ(ledger.status().code(), absl::StatusCode::kDataLoss) << what << ": " << ledger.status();
    EXPECT_TRUE(NamesSeq(std::string(ledger.status().message()), seq))
        << what << ": the message must name seq " << seq << ": " << ledger.status();
  }

  TempDir dir_;
  std::string path_;
  std::string digest_;
};

TEST_F(CorruptionTest, UntouchedLedgerReopensWithTheSameHeadAndState) {
  LedgerOptions options;
  options.path = path_;
  auto ledger = Ledger::Open(options);
  ASSERT_TRUE(ledger.ok()) << ledger.status();
  EXPECT_EQ((*ledger)->Head().seq, kSampleEntries);
  EXPECT_EQ((*ledger)->StateDigest(), digest_);
  EXPECT_TRUE((*ledger)->VerifyChain().ok());
  auto rebuilt = (*ledger)->RebuildStateDigest();
  ASSERT_TRUE(rebuilt.ok()) << rebuilt.status();
  EXPECT_EQ(*rebuilt, digest_);
}

TEST_F(CorruptionTest, OpeningTheFolderAsPlainRocksDbChangesNothing) {
  { RawDb raw(path_); }
  LedgerOptions options;
  options.path = path_;
  auto ledger = Ledger::Open(options);
  ASSERT_TRUE(ledger.ok()) << ledger.status();
  EXPECT_EQ((*ledger)->StateDigest(), digest_);
}

TEST_F(CorruptionTest, StoredKeysAndValuesFollowTheFormat) {
  Hash head_hash{};
  {
    LedgerOptions options;
    options.path = path_;
    auto ledger = Ledger::Open(options);
    ASSERT_TRUE(ledger.ok()) << ledger.status();
    head_hash = (*ledger)->Head().hash;
  }
  RawDb raw(path_);
  ASSERT_TRUE(raw.ok());
  uint64_t seq = 0;
  bool saw_format = false;
  bool saw_snapshot = false;
  std::string previous_hash(kHashBytes, '\0');
  std::string leaf_hashes;  // level 0 of the Merkle tree, from the entries
  std::string tile_hashes;  // level 0 tiles as stored
  for (const auto& [key, value] : raw.All()) {
    if (key == "Mformat") {
      saw_format = true;
      ASSERT_EQ(value.size(), 4u);
      EXPECT_EQ(LoadLe(value, 0, 4), 2u) << "format version";
      continue;
    }
    if (key == "Sbalances") {
      saw_snapshot = true;
      EXPECT_EQ(LoadLe(value, 0, 8), kSampleEntries) << "snapshot of the closed ledger";
      continue;
    }
    if (key[0] == 'T') {
      // 'T' level:u8 index:u64 big-endian; level-0 tiles in index order.
      ASSERT_EQ(key.size(), 10u);
      if (key[1] == 0) tile_hashes += value;
      continue;
    }
    ++seq;
    ASSERT_EQ(key, EntryKey(seq)) << "keys are 'E' + seq big-endian, dense from 1";
    ASSERT_GT(value.size(), kClientIdOffset + 2 + kHashBytes) << "seq " << seq;
    const std::string bytes = value.substr(0, value.size() - kHashBytes);
    const std::string trailer = value.substr(value.size() - kHashBytes);
    EXPECT_EQ(static_cast<uint8_t>(bytes[0]), 2) << "version of seq " << seq;
    EXPECT_EQ(LoadLe(bytes, 2, 8), seq) << "seq field of seq " << seq;
    EXPECT_EQ(bytes.substr(18, kHashBytes), previous_hash) << "prev_hash of seq " << seq;
    EXPECT_EQ(Hex(trailer), Hex(EntryHash(bytes))) << "trailer of seq " << seq << " is not the entry hash";
    const size_t client_id_size = LoadLe(bytes, kClientIdOffset, 2);
    EXPECT_EQ(bytes.substr(kClientIdOffset + 2, client_id_size), Op(static_cast<int>(seq), {}).client_id);
    previous_hash = trailer;
    const auto leaf = Sha256::Of(std::string(1, '\0') + bytes);  // RFC 9162 leaf hash
    leaf_hashes.append(reinterpret_cast<const char*>(leaf.data()), leaf.size());
  }
  EXPECT_TRUE(saw_format) << "no 'M' \"format\" key";
  EXPECT_TRUE(saw_snapshot) << "no 'S' \"balances\" key";
  EXPECT_EQ(Hex(tile_hashes), Hex(leaf_hashes)) << "level-0 tiles are the entries' leaf hashes";
  EXPECT_EQ(seq, kSampleEntries);
  EXPECT_EQ(previous_hash, std::string(head_hash.begin(), head_hash.end())) << "head hash";
}

TEST_F(CorruptionTest, FlippedByteInStoredEntryIsDataLossNamingTheSeq) {
  {
    RawDb raw(path_);
    ASSERT_TRUE(raw.ok());
    std::string value = raw.Get(EntryKey(kVictimSeq));
    value[value.size() / 2] ^= 0x20;
    raw.Put(EntryKey(kVictimSeq), value);
  }
  ExpectDataLossNaming(kVictimSeq, "a byte flipped in the middle of the entry");
}

// One byte at a time in every field of the entry: each header field at both
// ends, the client id, about twenty points across policy, body, postings and
// slices, and the trailer. (Every byte would take ~100 ms of RocksDB reopening
// each.)
TEST_F(CorruptionTest, FlippedByteInAnyFieldOfStoredEntryIsDataLossNamingTheSeq) {
  size_t value_size = 0;
  {
    RawDb raw(path_);
    ASSERT_TRUE(raw.ok());
    value_size = raw.Get(EntryKey(kVictimSeq)).size();
  }
  ASSERT_GT(value_size, kClientIdOffset + 3 + kHashBytes);
  // version, type, seq, time_us, prev_hash, client_id length and first byte.
  std::vector<size_t> offsets = {0, 1, 2, 9, 10, 17, 18, 33, 49, 50, 51, 52};
  const size_t body_begin = kClientIdOffset + 3;
  const size_t body_end = value_size - kHashBytes;
  const size_t step = std::max<size_t>(1, (body_end - body_begin) / 20);
  for (size_t offset = body_begin; offset < body_end; offset += step) offsets.push_back(offset);
  for (size_t offset : {body_end - 1, body_end, body_end + 15, value_size - 1}) offsets.push_back(offset);
  for (size_t offset : offsets) {
    const std::string copy = dir_.path() + "/flip-" + std::to_string(offset);
    std::filesystem::copy(path_, copy, std::filesystem::copy_options::recursive);
    {
      RawDb raw(copy);
      ASSERT_TRUE(raw.ok());
      std::string value = raw.Get(EntryKey(kVictimSeq));
      value[offset] ^= 0x01;
      raw.Put(EntryKey(kVictimSeq), value);
    }
    ExpectDataLossNamingAt(copy, kVictimSeq, "byte " + std::to_string(offset) + " of " +
                                                 std::to_string(value_size) + " flipped");
    std::error_code ignored;
    std::filesystem::remove_all(copy, ignored);
    if (HasFailure()) return;
  }
}

TEST_F(CorruptionTest, MissingEntryIsDataLossNamingTheGap) {
  {
    RawDb raw(path_);
    ASSERT_TRUE(raw.ok());
    raw.Delete(EntryKey(kVictimSeq));
  }
  ExpectDataLossNaming(kVictimSeq, "entry deleted");
}

TEST_F(CorruptionTest, SwappedEntriesAreDataLossNamingTheFirst) {
  {
    RawDb raw(path_);
    ASSERT_TRUE(raw.ok());
    const std::string a = raw.Get(EntryKey(kVictimSeq));
    const std::string b = raw.Get(EntryKey(kVictimSeq + 1));
    raw.Put(EntryKey(kVictimSeq), b);
    raw.Put(EntryKey(kVictimSeq + 1), a);
  }
  ExpectDataLossNaming(kVictimSeq, "entries swapped");
}

TEST_F(CorruptionTest, TruncatedEntryIsDataLossNamingTheSeq) {
  size_t value_size = 0;
  {
    RawDb raw(path_);
    ASSERT_TRUE(raw.ok());
    value_size = raw.Get(EntryKey(kVictimSeq)).size();
  }
  // Nothing, less than a hash, half, the trailer gone, part of the trailer gone.
  for (size_t keep : {size_t{0}, size_t{1}, kHashBytes - 1, value_size / 2, value_size - kHashBytes,
                      value_size - 1}) {
    const std::string copy = dir_.path() + "/truncate-" + std::to_string(keep);
    std::filesystem::copy(path_, copy, std::filesystem::copy_options::recursive);
    {
      RawDb raw(copy);
      ASSERT_TRUE(raw.ok());
      raw.Put(EntryKey(kVictimSeq), raw.Get(EntryKey(kVictimSeq)).substr(0, keep));
    }
    ExpectDataLossNamingAt(copy, kVictimSeq, "entry truncated to " + std::to_string(keep) + " of " +
                                                 std::to_string(value_size) + " bytes");
  }
}

TEST_F(CorruptionTest, FlippedByteInLastEntryIsCaughtByItsHashTrailer) {
  for (bool in_trailer : {false, true}) {
    const std::string copy = dir_.path() + (in_trailer ? "/trailer" : "/body");
    std::filesystem::copy(path_, copy, std::filesystem::copy_options::recursive);
    {
      RawDb raw(copy);
      ASSERT_TRUE(raw.ok());
      std::string value = raw.Get(EntryKey(kSampleEntries));
      const size_t offset = in_trailer ? value.size() - 1 : value.size() - kHashBytes - 3;
      value[offset] ^= 0x01;
      raw.Put(EntryKey(kSampleEntries), value);
    }
    ExpectDataLossNamingAt(copy, kSampleEntries,
                           in_trailer ? "last byte of the last trailer flipped" : "last entry's bytes flipped");
  }
}

// An attacker who edits an entry and recomputes its trailer still breaks the
// chain: the next entry's prev_hash no longer matches.
TEST_F(CorruptionTest, RehashedEditedEntryBreaksTheChainAtTheNextSeq) {
  {
    RawDb raw(path_);
    ASSERT_TRUE(raw.ok());
    const std::string value = raw.Get(EntryKey(kVictimSeq));
    std::string bytes = value.substr(0, value.size() - kHashBytes);
    // The client id "c-017" becomes "c-01Z": still valid and unique, and
    // replaying the entry reproduces it, so only the chain can tell.
    const size_t client_id_size = LoadLe(bytes, kClientIdOffset, 2);
    ASSERT_GT(client_id_size, 0u);
    bytes[kClientIdOffset + 2 + client_id_size - 1] = 'Z';
    raw.Put(EntryKey(kVictimSeq), bytes + EntryHash(bytes));
  }
  ExpectDataLossNaming(kVictimSeq + 1, "entry re-hashed after an edit");
}

// The last entry has no successor; an edited, re-hashed body is caught by
// replay: its recorded posting no longer follows from its body.
TEST_F(CorruptionTest, RehashedLastEntryWhoseBodyDisagreesWithItsPostingIsDataLoss) {
  {
    RawDb raw(path_);
    ASSERT_TRUE(raw.ok());
    const std::string value = raw.Get(EntryKey(kSampleEntries));
    std::string bytes = value.substr(0, value.size() - kHashBytes);
    ASSERT_EQ(static_cast<uint8_t>(bytes[1]), static_cast<uint8_t>(EntryType::kDonation));
    // header, client_id, policy; then DONATION: donor, to, asset, amount:i64.
    size_t offset = SkipStr(bytes, kClientIdOffset);
    offset = SkipStr(bytes, offset);  // policy
    offset = SkipStr(bytes, offset);  // donor
    offset = SkipStr(bytes, offset);  // to
    offset = SkipStr(bytes, offset);  // asset
    ASSERT_LE(offset + 8, bytes.size());
    const uint64_t amount = LoadLe(bytes, offset, 8);
    ASSERT_EQ(amount, 100u * kSampleEntries + 7) << "not at the donation's amount";
    StoreLe(bytes, offset, 8, amount + 1);
    raw.Put(EntryKey(kSampleEntries), bytes + EntryHash(bytes));
  }
  ExpectDataLossNaming(kSampleEntries, "last entry's body edited and re-hashed");
}

TEST_F(CorruptionTest, GarbageEntryBeyondTheHeadIsDataLossNamingItsSeq) {
  {
    RawDb raw(path_);
    ASSERT_TRUE(raw.ok());
    raw.Put(EntryKey(kSampleEntries + 1), std::string(80, '\x5a'));
  }
  ExpectDataLossNaming(kSampleEntries + 1, "garbage appended after the head");
}

TEST_F(CorruptionTest, CopiedEntryBeyondTheHeadIsDataLossNamingItsSeq) {
  {
    RawDb raw(path_);
    ASSERT_TRUE(raw.ok());
    raw.Put(EntryKey(kSampleEntries + 1), raw.Get(EntryKey(kSampleEntries)));
  }
  ExpectDataLossNaming(kSampleEntries + 1, "the last entry copied to the next key");
}

TEST_F(CorruptionTest, EntryAfterAGapBeyondTheHeadIsDataLossNamingTheGap) {
  {
    RawDb raw(path_);
    ASSERT_TRUE(raw.ok());
    raw.Put(EntryKey(kSampleEntries + 2), raw.Get(EntryKey(kSampleEntries)));
  }
  ExpectDataLossNaming(kSampleEntries + 1, "an entry two past the head");
}

}  // namespace
}  // namespace warmledger

// Tests of the client library and the CLI: exact money parsing and
// formatting, tokens and the auth file, flag parsing, entry verification,
// receipt verification and checkpoint monitoring (on trees, checkpoints and
// receipts built here with ledger/merkle.h and ledger/note.h), the
// hand-encoded health check, and whole command lines against an in-process
// fake server on 127.0.0.1:0.
#include "client/client.h"

#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_join.h"
#include "client/cli.h"
#include "client/flag_parser.h"
#include "ledger/entry_codec.h"
#include "ledger/limits.h"
#include "ledger/merkle.h"
#include "ledger/note.h"
#include "ledger/temp_dir_testing.h"
#include "warmledger/v1/ledger.grpc.pb.h"

namespace warmledger::client {
namespace {

namespace v1 = ::warmledger::v1;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// ---------------------------------------------------------------- amounts

TEST(ParseYuanToFenTest, AcceptsExactDecimals) {
  const std::pair<const char*, int64_t> cases[] = {
      {"12.34", 1234},
      {"0.01", 1},
      {"5", 500},
      {"1.2", 120},
      {"0", 0},
      {"0.5", 50},
      {"007.70", 770},
      {"100.00", 10000},
      {"92233720368547758.07", std::numeric_limits<int64_t>::max()},
  };
  for (const auto& [text, fen] : cases) {
    absl::StatusOr<int64_t> got = ParseYuanToFen(text);
    ASSERT_TRUE(got.ok()) << text << ": " << got.status();
    EXPECT_EQ(*got, fen) << text;
  }
}

TEST(ParseYuanToFenTest, RejectsEverythingElse) {
  for (const char* text : {"1.234", "-1", "abc", "", ".", "1.", ".5", "+1", " 1", "1 ", "1e3",
                           "1,5", "1.2.3", "0x10", "1.-2", "１"}) {
    absl::StatusOr<int64_t> got = ParseYuanToFen(text);
    EXPECT_FALSE(got.ok()) << "\"" << text << "\" parsed as " << *got;
    if (!got.ok()) {
      EXPECT_EQ(got.status().code(), absl::StatusCode::kInvalidArgument) << text;
    }
  }
}

TEST(ParseYuanToFenTest, RejectsOverflowAsOutOfRange) {
  for (const char* text : {"92233720368547758.08", "92233720368547759", "99999999999999999999999",
                           "100000000000000000000.00"}) {
    absl::StatusOr<int64_t> got = ParseYuanToFen(text);
    ASSERT_FALSE(got.ok()) << text;
    EXPECT_EQ(got.status().code(), absl::StatusCode::kOutOfRange) << text;
  }
}

TEST(FormatFenTest, FormatsTwoDecimalsExactly) {
  EXPECT_EQ(FormatFen(0), "0.00");
  EXPECT_EQ(FormatFen(1), "0.01");
  EXPECT_EQ(FormatFen(10), "0.10");
  EXPECT_EQ(FormatFen(1234), "12.34");
  EXPECT_EQ(FormatFen(500), "5.00");
  EXPECT_EQ(FormatFen(-5), "-0.05");
  EXPECT_EQ(FormatFen(-1234), "-12.34");
  EXPECT_EQ(FormatFen(std::numeric_limits<int64_t>::max()), "92233720368547758.07");
  EXPECT_EQ(FormatFen(std::numeric_limits<int64_t>::min()), "-92233720368547758.08");
}

TEST(FormatFenTest, RoundTripsThroughParse) {
  for (int64_t fen : {int64_t{0}, int64_t{1}, int64_t{99}, int64_t{100}, int64_t{123456789}}) {
    absl::StatusOr<int64_t> back = ParseYuanToFen(FormatFen(fen));
    ASSERT_TRUE(back.ok());
    EXPECT_EQ(*back, fen);
  }
}

TEST(FormatAmountTest, GoodsAreWholeUnitsMoneyIsYuan) {
  EXPECT_EQ(FormatAmount("CNY", 1234), "12.34");
  EXPECT_EQ(FormatAmount("item:rice-5kg", 1234), "1234");
}

TEST(ParseIntegerTest, StrictDecimal) {
  EXPECT_EQ(*ParseInt64("0"), 0);
  EXPECT_EQ(*ParseInt64("-42"), -42);
  EXPECT_EQ(*ParseInt64("9223372036854775807"), std::numeric_limits<int64_t>::max());
  EXPECT_EQ(*ParseInt64("-9223372036854775808"), std::numeric_limits<int64_t>::min());
  EXPECT_FALSE(ParseInt64("9223372036854775808").ok());
  EXPECT_FALSE(ParseInt64("-9223372036854775809").ok());
  EXPECT_FALSE(ParseInt64("").ok());
  EXPECT_FALSE(ParseInt64("-").ok());
  EXPECT_FALSE(ParseInt64("--1").ok());
  EXPECT_FALSE(ParseInt64("+1").ok());
  EXPECT_FALSE(ParseInt64("1.0").ok());
  EXPECT_EQ(*ParseUint64("18446744073709551615"), std::numeric_limits<uint64_t>::max());
  EXPECT_FALSE(ParseUint64("18446744073709551616").ok());
  EXPECT_FALSE(ParseUint64("-1").ok());
  EXPECT_FALSE(ParseUint64(" 1").ok());
}

// ---------------------------------------------------------------- times

// 2024-09-01T00:00:00Z, in seconds.
constexpr int64_t kSep1UtcS = 1'725'148'800;

TEST(ParseTimeUsTest, ADayIsMidnightInChinaTime) {
  EXPECT_EQ(*ParseTimeUs("2024-09-01"), (kSep1UtcS - 8 * 3600) * 1'000'000);
  EXPECT_EQ(*ParseTimeUs("1970-01-02"), (86'400 - 8 * 3600) * int64_t{1'000'000});
  EXPECT_EQ(*ParseTimeUs("2024-02-29"), *ParseTimeUs("2024-03-01") - 86'400 * int64_t{1'000'000});
}

TEST(ParseTimeUsTest, Rfc3339NeedsItsOffset) {
  EXPECT_EQ(*ParseTimeUs("2024-09-01T00:00:00Z"), kSep1UtcS * 1'000'000);
  EXPECT_EQ(*ParseTimeUs("2024-09-01t00:00:00z"), kSep1UtcS * 1'000'000);
  EXPECT_EQ(*ParseTimeUs("2024-09-01T08:00:00+08:00"), kSep1UtcS * 1'000'000);
  EXPECT_EQ(*ParseTimeUs("2024-08-31T19:30:00-04:30"), kSep1UtcS * 1'000'000);
  EXPECT_EQ(*ParseTimeUs("2024-09-01T00:00:00.5Z"), kSep1UtcS * 1'000'000 + 500'000);
  EXPECT_EQ(*ParseTimeUs("2024-09-01T00:00:00.000001Z"), kSep1UtcS * 1'000'000 + 1);
  EXPECT_EQ(*ParseTimeUs("2024-09-01T00:00:00.0000019Z"), kSep1UtcS * 1'000'000 + 1);
  for (const char* bad :
       {"", "2024-9-1", "2024-09-01T00:00:00", "2024-09-01 00:00:00Z", "2024-09-01T24:00:00Z",
        "2024-09-01T00:60:00Z", "2024-09-01T00:00:60Z", "2023-02-29", "2024-13-01", "2024-04-31",
        "2024-09-01T00:00:00.Z", "2024-09-01T00:00:00+0800", "2024-09-01T00:00:00Z ",
        "1725148800", "-2024-09-01"}) {
    EXPECT_EQ(ParseTimeUs(bad).status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
  EXPECT_EQ(ParseTimeUs("1969-12-31T23:59:59Z").status().code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(ParseTimeUs("1970-01-01").status().code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(*ParseTimeUs("1970-01-01T08:00:00+08:00"), 0);
}

TEST(ChinaDayRangeUsTest, MidnightToMidnightUtcPlusEight) {
  absl::StatusOr<TimeRangeUs> range = ChinaDayRangeUs("2024-09-01");
  ASSERT_TRUE(range.ok()) << range.status();
  EXPECT_EQ(range->from_us, *ParseTimeUs("2024-08-31T16:00:00Z"));
  EXPECT_EQ(range->to_us, *ParseTimeUs("2024-09-01T16:00:00Z"));
  EXPECT_EQ(range->to_us, ChinaDayRangeUs("2024-09-02")->from_us);
  EXPECT_EQ(ChinaDayRangeUs("2023-02-29").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ChinaDayRangeUs("2024-09-01T00:00:00Z").status().code(),
            absl::StatusCode::kInvalidArgument);
}

// ---------------------------------------------------------------- vouchers

TEST(NormalizeVoucherCodeTest, TypedCodesBecomeTheIssuedForm) {
  EXPECT_EQ(*NormalizeVoucherCode("ABCDEFGHIJKLMNOPQRSTUVWXYZ"), "ABCDEFGHIJKLMNOPQRSTUVWXYZ");
  EXPECT_EQ(*NormalizeVoucherCode("abcd-efgh ijkl-mnop-qrst-uvwx-yz"),
            "ABCDEFGHIJKLMNOPQRSTUVWXYZ");
  EXPECT_EQ(*NormalizeVoucherCode("234567ABCDEFGHIJKLMNOPQRST"), "234567ABCDEFGHIJKLMNOPQRST");
  for (const char* bad : {"", "ABCDEFGHIJKLMNOPQRSTUVWXY", "ABCDEFGHIJKLMNOPQRSTUVWXYZA",
                          "ABCDEFGHIJKLMNOPQRSTUVWXY0", "ABCDEFGHIJKLMNOPQRSTUVWXY1",
                          "ABCDEFGHIJKLMNOPQRSTUVWXY8", "ABCDEFGHIJKLMNOPQRSTUVWXY_"}) {
    absl::StatusOr<std::string> code = NormalizeVoucherCode(bad);
    EXPECT_EQ(code.status().code(), absl::StatusCode::kInvalidArgument) << bad;
    // A code is a bearer secret: errors never repeat it.
    if (std::string_view(bad).size() > 3) {
      EXPECT_EQ(std::string(code.status().message()).find(std::string(bad).substr(0, 10)),
                std::string::npos);
    }
  }
}

// ---------------------------------------------------------------- tokens

bool IsLowerHex(const std::string& s) {
  return s.find_first_not_of("0123456789abcdef") == std::string::npos;
}

TEST(TokenTest, GeneratedTokensHavePrefixAnd64HexCharacters) {
  absl::StatusOr<std::string> a = GenerateToken();
  absl::StatusOr<std::string> b = GenerateToken();
  ASSERT_TRUE(a.ok() && b.ok());
  ASSERT_EQ(a->size(), 67u);
  EXPECT_EQ(a->substr(0, 3), "wl_");
  EXPECT_TRUE(IsLowerHex(a->substr(3)));
  EXPECT_NE(*a, *b);
}

TEST(TokenTest, HashIsLowerHexSha256OfTheWholeToken) {
  EXPECT_EQ(TokenHash("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(TokenHash("wl_" + std::string(64, '0')),
            "9e632b8f298cc29e5968ffb4a7fa15f9c5f98d0e8147cd19360c537d8657cb65");
}

TEST(AuthFileTest, CreatesFileWithMode0600AndOneLinePerToken) {
  TempDir dir;
  const std::string path = dir.Sub("auth");
  absl::StatusOr<std::string> t1 = AppendToken(path, "clerk", "office-1");
  ASSERT_TRUE(t1.ok()) << t1.status();
  absl::StatusOr<std::string> t2 = AppendToken(path, "auditor", "A.Auditor_2");
  ASSERT_TRUE(t2.ok()) << t2.status();
  struct stat st;
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_EQ(ReadFile(path),
            TokenHash(*t1) + " clerk office-1\n" + TokenHash(*t2) + " auditor A.Auditor_2\n");
}

TEST(AuthFileTest, KeepsExistingLinesAndAddsAMissingFinalNewline) {
  TempDir dir;
  const std::string path = dir.Sub("auth");
  {
    std::ofstream out(path);
    out << "# tokens\n" << std::string(64, 'a') << " admin root";  // no final newline
  }
  ASSERT_EQ(::chmod(path.c_str(), 0600), 0);
  absl::StatusOr<std::string> token = AppendToken(path, "mall", "shop");
  ASSERT_TRUE(token.ok()) << token.status();
  EXPECT_EQ(ReadFile(path), "# tokens\n" + std::string(64, 'a') + " admin root\n" +
                                TokenHash(*token) + " mall shop\n");
}

TEST(AuthFileTest, RefusesAGroupOrWorldReadableFileAndLeavesItUntouched) {
  TempDir dir;
  const std::string path = dir.Sub("auth");
  for (mode_t mode : {0640, 0604, 0660, 0620}) {
    {
      std::ofstream out(path, std::ios::trunc);
      out << "# x\n";
    }
    ASSERT_EQ(::chmod(path.c_str(), mode), 0);
    absl::StatusOr<std::string> token = AppendToken(path, "admin", "root");
    ASSERT_FALSE(token.ok()) << std::oct << mode;
    EXPECT_EQ(token.status().code(), absl::StatusCode::kFailedPrecondition);
    EXPECT_EQ(ReadFile(path), "# x\n");
  }
}

TEST(AuthFileTest, RefusesABadRoleOrNameWithoutCreatingTheFile) {
  TempDir dir;
  const std::string path = dir.Sub("auth");
  EXPECT_EQ(AppendToken(path, "root", "x").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(AppendToken(path, "Admin", "x").status().code(), absl::StatusCode::kInvalidArgument);
  for (const std::string& name : {std::string(), std::string(65, 'n'), std::string("a b"),
                                  std::string("a/b"), std::string("a\nb"), std::string("张三")}) {
    EXPECT_EQ(AppendToken(path, "clerk", name).status().code(), absl::StatusCode::kInvalidArgument)
        << name;
  }
  EXPECT_FALSE(std::filesystem::exists(path));
  EXPECT_TRUE(AppendToken(path, "clerk", std::string(64, 'n')).ok());
}

TEST(AuthFileTest, MissingDirectoryIsNotFound) {
  TempDir dir;
  EXPECT_EQ(AppendToken(dir.Sub("no/such/auth"), "clerk", "x").status().code(),
            absl::StatusCode::kNotFound);
}

// ---------------------------------------------------------------- flags

struct TestFlags {
  std::string name;
  int64_t count = 0;
  uint64_t seq = 0;
  bool on = false;
  FlagSet set{"test", "a test"};
  TestFlags() {
    set.AddString("name", &name, "a name", FlagRequirement::kRequired);
    set.AddInt64("count", &count, "a count");
    set.AddUint64("seq", &seq, "a seq");
    set.AddBool("on", &on, "a switch");
  }
};

TEST(FlagSetTest, ParsesBothValueFormsAndBooleans) {
  TestFlags f;
  ASSERT_TRUE(f.set.Parse({"--name=a=b", "--count", "-3", "--seq=7", "--on"}).ok());
  EXPECT_EQ(f.name, "a=b");
  EXPECT_EQ(f.count, -3);
  EXPECT_EQ(f.seq, 7u);
  EXPECT_TRUE(f.on);
  EXPECT_TRUE(f.set.Seen("count"));
  TestFlags g;
  ASSERT_TRUE(g.set.Parse({"--name=", "--on=false"}).ok());
  EXPECT_EQ(g.name, "");
  EXPECT_FALSE(g.on);
  EXPECT_FALSE(g.set.Seen("count"));
}

TEST(FlagSetTest, RejectsMistakesNamingTheFlag) {
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"--name=x", "--bogus=1"}, "unknown flag --bogus"},
      {{"--name=x", "--name=y"}, "given twice"},
      {{"--name"}, "needs a value"},
      {{"--name=x", "--count=1.5"}, "--count"},
      {{"--name=x", "--seq=-1"}, "--seq"},
      {{"--name=x", "--on=maybe"}, "--on"},
      {{"--name=x", "extra"}, "unexpected argument"},
      {{"--count=1"}, "missing required flag --name"},
  };
  for (const auto& [args, message] : cases) {
    TestFlags f;
    absl::Status status = f.set.Parse(args);
    ASSERT_FALSE(status.ok()) << message;
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(std::string(status.message()).find(message), std::string::npos)
        << status.message() << " lacks " << message;
  }
}

TEST(FlagSetTest, HelpSkipsRequiredChecksAndUsageListsFlags) {
  TestFlags f;
  ASSERT_TRUE(f.set.Parse({"--help"}).ok());
  EXPECT_TRUE(f.set.help_requested());
  const std::string usage = f.set.Usage();
  EXPECT_NE(usage.find("--name=S"), std::string::npos);
  EXPECT_NE(usage.find("(required)"), std::string::npos);
  EXPECT_NE(usage.find("--on "), std::string::npos);
}

TEST(FlagSetTest, ListFlagsRepeatAndSplitOnCommas) {
  std::vector<std::string> stores;
  std::string name;
  FlagSet set("test", "a test");
  set.AddStringList("store", &stores, "a store");
  set.AddString("name", &name, "a name");
  ASSERT_TRUE(set.Parse({"--store=a", "--store", "b,c", "--name=x"}).ok());
  EXPECT_EQ(stores, (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_TRUE(set.Seen("store"));
  EXPECT_NE(set.Usage().find("repeatable"), std::string::npos);

  std::vector<std::string> more;
  FlagSet empty_item("test", "");
  empty_item.AddStringList("store", &more, "a store");
  absl::Status status = empty_item.Parse({"--store=a,,b"});
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(std::string(status.message()).find("empty item"), std::string::npos);

  // Other flags still refuse to be given twice.
  EXPECT_FALSE(set.Parse({"--name=y", "--name=z"}).ok());
}

TEST(FlagSetTest, ParseUntilPositionalStopsAtTheCommand) {
  TestFlags f;
  absl::StatusOr<size_t> index = f.set.ParseUntilPositional({"--count", "2", "donate", "--x"});
  ASSERT_TRUE(index.ok());
  EXPECT_EQ(*index, 2u);
  EXPECT_EQ(f.count, 2);
}

// ---------------------------------------------------------------- entries

void PutU64(std::string* out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out->push_back(static_cast<char>(v >> (8 * i)));
}

// An entry whose bytes follow docs/format.md's header; the body is opaque here.
v1::Entry MakeEntry(uint64_t seq, const std::string& prev_hash) {
  std::string bytes;
  bytes.push_back(1);                 // version
  bytes.push_back(v1::OPEN_ACCOUNT);  // type
  PutU64(&bytes, seq);                // seq
  PutU64(&bytes, 1000 * seq);         // time_us
  bytes += prev_hash;                 // prev_hash
  if (seq > 1) bytes += "body of entry " + std::to_string(seq);
  v1::Entry e;
  e.set_seq(seq);
  e.set_time_us(static_cast<int64_t>(1000 * seq));
  e.set_type(v1::OPEN_ACCOUNT);
  e.set_prev_hash(prev_hash);
  e.set_entry_bytes(bytes);
  e.set_hash(EntryHash(bytes));
  e.set_summary("entry " + std::to_string(seq));
  return e;
}

std::vector<v1::Entry> MakeChain(uint64_t count) {
  std::vector<v1::Entry> chain;
  std::string prev(32, '\0');
  for (uint64_t seq = 1; seq <= count; ++seq) {
    chain.push_back(MakeEntry(seq, prev));
    prev = chain.back().hash();
  }
  return chain;
}

TEST(EntryHashTest, MatchesTheDocumentedDomainSeparatedSha256) {
  // Computed independently: sha256(b"warmledger/entry/v1\0" + header of seq 1).
  EXPECT_EQ(HexEncode(MakeEntry(1, std::string(32, '\0')).hash()),
            "58b03c0eb9618f6a92f961b568253c2485dc32e1cd1fff8d1b46aa53ffec24db");
}

TEST(VerifyEntryTest, AcceptsAChainAndRejectsEveryKindOfTampering) {
  std::vector<v1::Entry> chain = MakeChain(3);
  EXPECT_TRUE(VerifyEntry(chain[0], nullptr).ok());
  EXPECT_TRUE(VerifyEntry(chain[1], &chain[0].hash()).ok());
  EXPECT_TRUE(VerifyEntry(chain[2], &chain[1].hash()).ok());

  EXPECT_EQ(VerifyEntry(chain[2], &chain[0].hash()).code(), absl::StatusCode::kDataLoss);

  v1::Entry flipped = chain[1];
  (*flipped.mutable_entry_bytes())[60] ^= 1;
  EXPECT_EQ(VerifyEntry(flipped, nullptr).code(), absl::StatusCode::kDataLoss);

  v1::Entry wrong_seq = chain[1];
  wrong_seq.set_seq(5);
  EXPECT_EQ(VerifyEntry(wrong_seq, nullptr).code(), absl::StatusCode::kDataLoss);

  v1::Entry wrong_type = chain[1];
  wrong_type.set_type(v1::DONATION);
  EXPECT_EQ(VerifyEntry(wrong_type, nullptr).code(), absl::StatusCode::kDataLoss);

  v1::Entry wrong_prev = chain[1];
  wrong_prev.set_prev_hash(std::string(32, 'x'));
  EXPECT_EQ(VerifyEntry(wrong_prev, nullptr).code(), absl::StatusCode::kDataLoss);

  v1::Entry truncated = chain[1];
  truncated.mutable_entry_bytes()->resize(20);
  truncated.set_hash(EntryHash(truncated.entry_bytes()));
  EXPECT_EQ(VerifyEntry(truncated, nullptr).code(), absl::StatusCode::kDataLoss);
}

// ---------------------------------------------------------------- transparency

constexpr char kOrigin[] = "example.org/warmledger";
constexpr int64_t kTime0 = 1'700'000'000'000'000;

Entry OpenAccountEntry(uint64_t seq, const std::string& account, AccountKind kind) {
  Entry e;
  e.seq = seq;
  e.time_us = kTime0 + static_cast<int64_t>(seq);
  e.client_id = "open-" + std::to_string(seq);
  e.policy = "none";
  OpenAccountOp op;
  op.account = account;
  op.kind = kind;
  op.asset = kind == AccountKind::kFund ? "CNY" : "";
  e.body = op;
  return e;
}

Entry DonationEntry(uint64_t seq, int64_t amount, const std::string& memo) {
  Entry e;
  e.seq = seq;
  e.time_us = kTime0 + static_cast<int64_t>(seq);
  e.client_id = "gift-" + std::to_string(seq);
  e.policy = "none";
  DonationOp op;
  op.donor = "donor/zhang";
  op.to = "fund/general";
  op.asset = "CNY";
  op.amount = amount;
  op.channel = DonationChannel::kCounter;
  op.memo = memo;
  e.postings.push_back({op.donor, op.to, op.asset, op.amount, {{seq, op.amount}}});
  e.body = op;
  return e;
}

// An in-memory Merkle tree over entry bytes (leaf i holds entry seq i + 1).
struct Tree {
  std::vector<std::string> entries;
  std::vector<Hash> leaves;

  void Add(const std::string& entry_bytes) {
    entries.push_back(entry_bytes);
    leaves.push_back(merkle::LeafHash(entry_bytes));
  }
  uint64_t size() const { return leaves.size(); }

  // Complete nodes straight from the leaves, by the reference definition.
  merkle::NodeSource Nodes() const {
    return [leaves = leaves](int level, uint64_t index) -> absl::StatusOr<Hash> {
      const uint64_t begin = index << level;
      const uint64_t end = (index + 1) << level;
      if (end > leaves.size()) return absl::NotFoundError("no such node");
      return merkle::ReferenceRoot(std::vector<Hash>(leaves.begin() + static_cast<long>(begin),
                                                     leaves.begin() + static_cast<long>(end)));
    };
  }

  // The checkpoint of the first `n` leaves (all of them by default); the root
  // comes from TileBuilder, cross-checked against the reference.
  Checkpoint At(uint64_t n = UINT64_MAX) const {
    if (n == UINT64_MAX) n = size();
    merkle::TileBuilder builder(/*tile_height=*/2);
    for (uint64_t i = 0; i < n; ++i) builder.Append(leaves[i]);
    const Hash root = builder.Root();
    EXPECT_EQ(root, merkle::ReferenceRoot(
                        std::vector<Hash>(leaves.begin(), leaves.begin() + static_cast<long>(n))));
    return {kOrigin, n, root};
  }
};

// Accounts, then donations seq 3..size; the entry of seq 4 is the one the
// tests prove (12.34 CNY, "for the winter").
Tree DonationTree(uint64_t size) {
  Tree tree;
  tree.Add(EncodeEntry(OpenAccountEntry(1, "fund/general", AccountKind::kFund)));
  tree.Add(EncodeEntry(OpenAccountEntry(2, "donor/zhang", AccountKind::kDonor)));
  for (uint64_t seq = 3; seq <= size; ++seq) {
    tree.Add(EncodeEntry(DonationEntry(seq, seq == 4 ? 1234 : 100 * static_cast<int64_t>(seq),
                                       seq == 4 ? "for the winter" : "")));
  }
  return tree;
}

std::string SignCheckpoint(const NoteSigner& signer, const Checkpoint& checkpoint) {
  absl::StatusOr<std::string> note = signer.Sign(FormatCheckpoint(checkpoint));
  EXPECT_TRUE(note.ok()) << note.status();
  return note.ok() ? *note : "";
}

Receipt MakeReceipt(const Tree& tree, uint64_t index, const NoteSigner& signer) {
  Receipt receipt;
  receipt.entry_bytes = tree.entries[index];
  receipt.index = index;
  absl::StatusOr<std::vector<Hash>> proof =
      merkle::InclusionProof(index, tree.size(), tree.Nodes());
  EXPECT_TRUE(proof.ok()) << proof.status();
  if (proof.ok()) receipt.proof = *proof;
  receipt.checkpoint = SignCheckpoint(signer, tree.At());
  return receipt;
}

std::vector<Hash> ConsistencyProofOf(const Tree& tree, uint64_t old_size, uint64_t new_size) {
  absl::StatusOr<std::vector<Hash>> proof =
      merkle::ConsistencyProof(old_size, new_size, tree.Nodes());
  EXPECT_TRUE(proof.ok()) << proof.status();
  return proof.ok() ? *proof : std::vector<Hash>();
}

TEST(VerifyReceiptTest, ProvesTheEntryAndNamesTheFailedStep) {
  const NoteSigner signer = NoteSigner::Generate(kOrigin).value();
  const NoteVerifier verifier = NoteVerifier::Parse(signer.VerifierKey()).value();
  const Tree tree = DonationTree(5);
  const Receipt good = MakeReceipt(tree, 3, signer);

  absl::StatusOr<VerifiedReceipt> verified = VerifyReceipt(FormatReceipt(good), verifier);
  ASSERT_TRUE(verified.ok()) << verified.status();
  EXPECT_EQ(verified->entry.seq, 4u);
  EXPECT_EQ(std::get<DonationOp>(verified->entry.body).amount, 1234);
  EXPECT_EQ(verified->checkpoint, tree.At());
  EXPECT_EQ(verified->key_name, kOrigin);

  // Every leaf of every tree size proves.
  for (uint64_t size = 1; size <= 7; ++size) {
    const Tree t = DonationTree(size);
    for (uint64_t i = 0; i < size; ++i) {
      EXPECT_TRUE(VerifyReceipt(FormatReceipt(MakeReceipt(t, i, signer)), verifier).ok())
          << i << " of " << size;
    }
  }

  Receipt moved = good;
  moved.index = 2;
  absl::Status status = VerifyReceipt(FormatReceipt(moved), verifier).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(std::string(status.message()).rfind("inclusion proof: ", 0), 0u) << status;

  // An entry honestly in the tree but under another leaf index than its seq.
  Tree misplaced = DonationTree(3);
  misplaced.Add(EncodeEntry(DonationEntry(9, 1234, "")));
  status = VerifyReceipt(FormatReceipt(MakeReceipt(misplaced, 3, signer)), verifier).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(std::string(status.message()).rfind("entry: ", 0), 0u) << status;

  // Bytes that are a leaf but no entry.
  Tree garbage = DonationTree(3);
  garbage.Add("not an entry");
  status = VerifyReceipt(FormatReceipt(MakeReceipt(garbage, 3, signer)), verifier).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(std::string(status.message()).rfind("entry: ", 0), 0u) << status;
}

TEST(CheckAdvanceTest, ExtensionAndSameCheckpointPass) {
  const Tree tree = DonationTree(7);
  for (uint64_t old_size = 1; old_size <= 7; ++old_size) {
    for (uint64_t new_size = old_size; new_size <= 7; ++new_size) {
      EXPECT_TRUE(CheckAdvance(tree.At(old_size), tree.At(new_size),
                               ConsistencyProofOf(tree, old_size, new_size))
                      .ok())
          << old_size << " -> " << new_size;
    }
  }
  // The empty tree is a prefix of any tree.
  EXPECT_TRUE(CheckAdvance(Tree().At(), tree.At(), {}).ok());
}

TEST(CheckAdvanceTest, RollbackIsReportedWithBothSizes) {
  const Tree tree = DonationTree(5);
  const absl::Status status = CheckAdvance(tree.At(5), tree.At(3), {});
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(status.message(),
            "ROLLBACK: the server's newest checkpoint has 3 entries, fewer than the 5 already "
            "verified");
}

TEST(CheckAdvanceTest, ForksAreReported) {
  const Tree tree = DonationTree(7);
  Tree other = DonationTree(7);
  other.entries[1] = EncodeEntry(OpenAccountEntry(2, "donor/li", AccountKind::kDonor));
  other.leaves[1] = merkle::LeafHash(other.entries[1]);

  absl::Status status = CheckAdvance(tree.At(5), other.At(5), {});
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(std::string(status.message()).rfind("FORK: two different checkpoints of 5 entries", 0),
            0u)
      << status;

  // The other history's own proof cannot connect it to the verified root.
  status = CheckAdvance(tree.At(3), other.At(7), ConsistencyProofOf(other, 3, 7));
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(std::string(status.message())
                .rfind("FORK: checkpoint of 7 entries does not extend the verified checkpoint of "
                       "3 entries: ",
                       0),
            0u)
      << status;

  // Neither can a tampered, truncated or missing proof of the right tree.
  std::vector<Hash> proof = ConsistencyProofOf(tree, 3, 7);
  ASSERT_FALSE(proof.empty());
  std::vector<Hash> flipped = proof;
  flipped[0][0] ^= 1;
  EXPECT_EQ(CheckAdvance(tree.At(3), tree.At(7), flipped).code(), absl::StatusCode::kDataLoss);
  std::vector<Hash> truncated(proof.begin(), proof.end() - 1);
  EXPECT_EQ(CheckAdvance(tree.At(3), tree.At(7), truncated).code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(CheckAdvance(tree.At(3), tree.At(7), {}).code(), absl::StatusCode::kDataLoss);
}

TEST(CheckAdvanceTest, AnotherOriginIsRefused) {
  const Tree tree = DonationTree(5);
  Checkpoint elsewhere = tree.At(5);
  elsewhere.origin = "example.com/other";
  const absl::Status status = CheckAdvance(tree.At(5), elsewhere, {});
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(std::string(status.message()).find("origin"), std::string::npos);
}

TEST(WriteFileAtomicallyTest, ReplacesTheFileAndLeavesNoTemporary) {
  TempDir dir;
  const std::string path = dir.Sub("state");
  ASSERT_TRUE(WriteFileAtomically(path, "one\n").ok());
  ASSERT_TRUE(WriteFileAtomically(path, "two\n").ok());
  EXPECT_EQ(ReadFile(path), "two\n");
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
  EXPECT_EQ(WriteFileAtomically(dir.Sub("no/such/dir/state"), "x").code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(ReadFileCapped(path, 3, "state").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(*ReadFileCapped(path, 4, "state"), "two\n");
}

// ---------------------------------------------------------------- fake server

// Answers a few RPCs the way docs/api.md describes, and remembers what it saw.
class FakeLedger final : public v1::Ledger::Service {
 public:
  explicit FakeLedger(std::vector<v1::Entry> chain) : chain_(std::move(chain)) {}

  grpc::Status Donate(grpc::ServerContext* context, const v1::DonateRequest* request,
                      v1::DonateResponse* response) override {
    std::lock_guard<std::mutex> lock(mu_);
    last_donate_ = *request;
    auto it = context->client_metadata().find("authorization");
    last_authorization_ = it == context->client_metadata().end()
                              ? ""
                              : std::string(it->second.data(), it->second.size());
    had_deadline_ = context->deadline() != std::chrono::system_clock::time_point::max();
    response->mutable_result()->set_seq(7);
    response->set_lot(7);
    response->set_trace_code("TRACECODE234567ABCDEFGHIJKL");
    if (request->wait_for_receipt()) response->set_receipt(receipt_);
    return grpc::Status::OK;
  }

  // What Donate answers with wait_for_receipt ("": no checkpoint in time).
  void set_receipt(std::string receipt) {
    std::lock_guard<std::mutex> lock(mu_);
    receipt_ = std::move(receipt);
  }

  grpc::Status TraceByCode(grpc::ServerContext*, const v1::TraceByCodeRequest* request,
                           v1::Trace* trace) override {
    if (request->trace_code() == "missing") {
      return grpc::Status(grpc::StatusCode::NOT_FOUND, "no such trace code");
    }
    if (request->trace_code().rfind("goods", 0) == 0) {
      // 100 yuan that bought 3 of 10 boxes (lot 30): 1 still in stock, 2
      // with recipients of one category and community.
      trace->set_lot(8);
      trace->set_donor("donor/li");
      trace->set_to("fund/general");
      trace->set_asset("CNY");
      trace->set_amount(10000);
      trace->set_created_by(v1::DONATION);
      v1::TraceHop* hop = trace->add_hops();
      hop->set_seq(30);
      hop->set_type(v1::GOODS_PURCHASE);
      hop->set_from("fund/general");
      hop->set_to("supplier/shop");
      hop->set_amount(10000);
      v1::TracePlace* reached = trace->add_reached();
      reached->set_account("supplier/shop");
      reached->set_kind(v1::SUPPLIER);
      reached->set_amount(10000);
      v1::LotConversion* c = trace->add_conversions();
      c->set_seq(30);
      c->set_type(v1::GOODS_PURCHASE);
      c->set_asset("item:box");
      c->set_lot_amount(10);
      c->set_consumed(10000);
      c->set_share(3);
      v1::ConversionPlace* stock = c->add_places();
      stock->set_account("stock/box");
      stock->set_kind(v1::STOCK);
      stock->set_amount(1);
      stock->set_source_amount(3334);
      v1::ConversionPlace* group = c->add_places();
      group->set_kind(v1::RECIPIENT);
      group->set_category("dibao");
      group->set_community("c007");
      group->set_amount(request->trace_code() == "goods-unbalanced" ? 1 : 2);
      group->set_source_amount(6666);
      return grpc::Status::OK;
    }
    trace->set_lot(7);
    trace->set_anonymous(true);
    trace->set_to("fund/general");
    trace->set_asset("CNY");
    trace->set_amount(10000);
    v1::TraceHop* hop = trace->add_hops();
    hop->set_seq(9);
    hop->set_type(v1::DISBURSEMENT);
    hop->set_from("fund/general");
    hop->set_to("recipient");
    hop->set_amount(4001);
    if (request->trace_code() == "voucher") {
      // lot -> voucher -> redeemed at a store for an order.
      hop->set_type(v1::VOUCHER_ISSUE);
      hop->set_to("voucher/12");
      hop->set_category("elderly");
      hop->set_community("east-gate");
      v1::TraceHop* redeemed = trace->add_hops();
      redeemed->set_seq(20);
      redeemed->set_type(v1::REDEMPTION);
      redeemed->set_from("voucher/12");
      redeemed->set_to("store/supermarket");
      redeemed->set_amount(4001);
      redeemed->set_order_id("A-77");
    }
    v1::TracePlace* held = trace->add_held();
    held->set_account("fund/general");
    held->set_kind(v1::FUND);
    held->set_amount(request->trace_code() == "unbalanced" ? 5000 : 5999);
    v1::TracePlace* reached = trace->add_reached();
    reached->set_account("recipient");
    reached->set_kind(v1::RECIPIENT);
    reached->set_category("elderly");
    reached->set_community("east-gate");
    reached->set_amount(4001);
    return grpc::Status::OK;
  }

  // A second payment to "recipient/twice" breaks an aid rule unless it
  // carries an override reason, as the server would answer.
  grpc::Status Disburse(grpc::ServerContext*, const v1::DisburseRequest* request,
                        v1::WriteResult* result) override {
    std::lock_guard<std::mutex> lock(mu_);
    last_disburse_ = *request;
    if (request->to() == "recipient/twice" && request->override_reason().empty()) {
      return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                          "disbursement.to: recipient 'recipient/twice' already received "
                          "'cash-aid' 1 time this month (at most 1), last by entry 12; to give "
                          "it again, give an override reason");
    }
    result->set_seq(13);
    return grpc::Status::OK;
  }

  grpc::Status GetHead(grpc::ServerContext*, const v1::GetHeadRequest*, v1::Head* head) override {
    head->set_seq(chain_.size());
    if (!chain_.empty()) head->set_hash(chain_.back().hash());
    return grpc::Status::OK;
  }

  v1::DonateRequest last_donate() {
    std::lock_guard<std::mutex> lock(mu_);
    return last_donate_;
  }
  v1::DisburseRequest last_disburse() {
    std::lock_guard<std::mutex> lock(mu_);
    return last_disburse_;
  }
  std::string last_authorization() {
    std::lock_guard<std::mutex> lock(mu_);
    return last_authorization_;
  }
  bool had_deadline() {
    std::lock_guard<std::mutex> lock(mu_);
    return had_deadline_;
  }

 private:
  const std::vector<v1::Entry> chain_;
  std::mutex mu_;
  v1::DonateRequest last_donate_;
  v1::DisburseRequest last_disburse_;
  std::string receipt_;
  std::string last_authorization_;
  bool had_deadline_ = false;
};

class FakeExport final : public v1::Export::Service {
 public:
  explicit FakeExport(std::vector<v1::Entry> chain) : chain_(std::move(chain)) {}
  grpc::Status ListEntries(grpc::ServerContext*, const v1::ListEntriesRequest* request,
                           grpc::ServerWriter<v1::Entry>* writer) override {
    uint64_t seq = request->from_seq() == 0 ? 1 : request->from_seq();
    uint64_t sent = 0;
    while (seq <= chain_.size() && (request->count_max() == 0 || sent < request->count_max())) {
      if (!writer->Write(chain_[seq - 1])) break;
      ++seq;
      ++sent;
    }
    return grpc::Status::OK;
  }

 private:
  const std::vector<v1::Entry> chain_;
};

// Serves signed checkpoints, consistency proofs and receipts of a tree that
// a test sets (and changes, to play a server that forks or rolls back).
class FakeTransparency final : public v1::Transparency::Service {
 public:
  static constexpr char kTraceCode[] = "GOODCODE234567ABCDEFGHIJKL";

  FakeTransparency() : signer_(NoteSigner::Generate(kOrigin).value()) { Serve(DonationTree(5)); }

  const NoteSigner& signer() const { return signer_; }

  // Serves `tree`; its newest checkpoint is signed by `signer` (default: the
  // server's key).
  void Serve(const Tree& tree, const NoteSigner* signer = nullptr) {
    const std::string note = SignCheckpoint(signer ? *signer : signer_, tree.At());
    std::lock_guard<std::mutex> lock(mu_);
    tree_ = tree;
    newest_note_ = note;
  }
  // The next `n` GetCheckpoint calls fail with UNAVAILABLE.
  void FailCheckpoints(int n) {
    std::lock_guard<std::mutex> lock(mu_);
    failures_ = n;
  }
  std::string newest_note() {
    std::lock_guard<std::mutex> lock(mu_);
    return newest_note_;
  }

  grpc::Status GetVerifierKey(grpc::ServerContext*, const v1::GetVerifierKeyRequest*,
                              v1::VerifierKey* key) override {
    key->set_verifier_key(signer_.VerifierKey());
    key->set_origin(kOrigin);
    return grpc::Status::OK;
  }

  grpc::Status GetCheckpoint(grpc::ServerContext*, const v1::GetCheckpointRequest* request,
                             v1::SignedCheckpoint* checkpoint) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (failures_ > 0) {
      --failures_;
      return grpc::Status(grpc::StatusCode::UNAVAILABLE, "try again");
    }
    const uint64_t size = request->tree_size() == 0 ? tree_.size() : request->tree_size();
    if (size > tree_.size()) return grpc::Status(grpc::StatusCode::NOT_FOUND, "no checkpoint");
    const Checkpoint c = tree_.At(size);
    checkpoint->set_note(size == tree_.size() ? newest_note_ : SignCheckpoint(signer_, c));
    checkpoint->set_tree_size(size);
    checkpoint->set_root_hash(std::string(c.root.begin(), c.root.end()));
    return grpc::Status::OK;
  }

  grpc::Status GetConsistencyProof(grpc::ServerContext*, const v1::ConsistencyProofRequest* request,
                                   v1::ConsistencyProof* proof) override {
    std::lock_guard<std::mutex> lock(mu_);
    const uint64_t new_size = request->new_size() == 0 ? tree_.size() : request->new_size();
    absl::StatusOr<std::vector<Hash>> hashes =
        merkle::ConsistencyProof(request->old_size(), new_size, tree_.Nodes());
    if (!hashes.ok()) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          std::string(hashes.status().message()));
    }
    proof->set_old_size(request->old_size());
    proof->set_new_size(new_size);
    for (const Hash& h : *hashes) proof->add_hashes(std::string(h.begin(), h.end()));
    return grpc::Status::OK;
  }

  grpc::Status GetReceipt(grpc::ServerContext*, const v1::GetReceiptRequest* request,
                          v1::Receipt* receipt) override {
    std::lock_guard<std::mutex> lock(mu_);
    last_wait_ms_ = request->wait_ms();
    uint64_t seq = request->seq();
    if (!request->trace_code().empty()) {
      if (request->trace_code() != kTraceCode) {
        return grpc::Status(grpc::StatusCode::NOT_FOUND, "no such trace code");
      }
      seq = 4;
    }
    if (seq == 0 || seq > tree_.size()) {
      return grpc::Status(grpc::StatusCode::NOT_FOUND, "no such entry");
    }
    receipt->set_text(FormatReceipt(MakeReceipt(tree_, seq - 1, signer_)));
    receipt->set_seq(seq);
    receipt->set_tree_size(tree_.size());
    return grpc::Status::OK;
  }

  int64_t last_wait_ms() {
    std::lock_guard<std::mutex> lock(mu_);
    return last_wait_ms_;
  }

 private:
  const NoteSigner signer_;
  std::mutex mu_;
  Tree tree_;
  std::string newest_note_;
  int failures_ = 0;
  int64_t last_wait_ms_ = -1;
};

// Answers the checkout RPCs with fixed figures and remembers the requests.
class FakeCheckout final : public v1::Checkout::Service {
 public:
  grpc::Status RecordPurchase(grpc::ServerContext*, const v1::PurchaseRequest* request,
                              v1::PurchaseResult* response) override {
    std::lock_guard<std::mutex> lock(mu_);
    last_purchase_ = *request;
    response->mutable_result()->set_seq(11);
    response->set_contribution((request->amount() * 200 * 2 + 10'000) / 20'000);
    response->set_lot(response->contribution() > 0 ? 11 : 0);
    response->set_rate_bp(200);
    if (request->want_trace_code()) response->set_trace_code("SLIPCODE234567ABCDEFGHIJKL");
    return grpc::Status::OK;
  }
  grpc::Status RecordRefund(grpc::ServerContext*, const v1::RefundRequest* request,
                            v1::RefundResult* response) override {
    std::lock_guard<std::mutex> lock(mu_);
    last_refund_ = *request;
    if (request->amount() > 1234) {
      return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                          "refund.amount: 12.34 of the order is refundable");
    }
    response->mutable_result()->set_seq(12);
    response->mutable_result()->set_duplicate(request->refund_id() == "again");
    response->set_reversal(13);
    response->set_covered_by_fund(5);
    return grpc::Status::OK;
  }
  grpc::Status RedeemVoucher(grpc::ServerContext*, const v1::RedeemRequest* request,
                             v1::RedemptionResult* response) override {
    std::lock_guard<std::mutex> lock(mu_);
    last_redeem_ = *request;
    response->mutable_result()->set_seq(13);
    response->set_voucher(9);
    response->set_amount(request->amount());
    response->set_remaining(50'000 - request->amount());
    return grpc::Status::OK;
  }
  grpc::Status GetStoreSettlement(grpc::ServerContext*, const v1::SettlementRequest* request,
                                  v1::Settlement* settlement) override {
    std::lock_guard<std::mutex> lock(mu_);
    last_settlement_ = *request;
    settlement->set_from_time_us(request->from_time_us());
    settlement->set_to_time_us(request->to_time_us());
    v1::StoreSettlement* s = settlement->add_stores();
    s->set_store("store/supermarket");
    s->set_asset("CNY");
    s->set_purchases(3);
    s->set_purchase_amount(123'456);
    s->set_contributions(2'469);
    s->set_refunds(1);
    s->set_refund_amount(1'000);
    s->set_reversals(20);
    s->set_net_contribution(2'449);
    s->set_redemptions(2);
    s->set_redeemed(30'000);
    return grpc::Status::OK;
  }

  v1::PurchaseRequest last_purchase() {
    std::lock_guard<std::mutex> lock(mu_);
    return last_purchase_;
  }
  v1::RefundRequest last_refund() {
    std::lock_guard<std::mutex> lock(mu_);
    return last_refund_;
  }
  v1::RedeemRequest last_redeem() {
    std::lock_guard<std::mutex> lock(mu_);
    return last_redeem_;
  }
  v1::SettlementRequest last_settlement() {
    std::lock_guard<std::mutex> lock(mu_);
    return last_settlement_;
  }

 private:
  std::mutex mu_;
  v1::PurchaseRequest last_purchase_;
  v1::RefundRequest last_refund_;
  v1::RedeemRequest last_redeem_;
  v1::SettlementRequest last_settlement_;
};

class FakeVouchers final : public v1::Vouchers::Service {
 public:
  static constexpr char kCode[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ";

  grpc::Status IssueVoucher(grpc::ServerContext*, const v1::IssueVoucherRequest* request,
                            v1::IssueVoucherResponse* response) override {
    std::lock_guard<std::mutex> lock(mu_);
    last_issue_ = *request;
    response->mutable_result()->set_seq(9);
    response->set_voucher(9);
    response->set_account("voucher/9");
    response->set_code(kCode);
    return grpc::Status::OK;
  }
  grpc::Status VoidVoucher(grpc::ServerContext*, const v1::VoidVoucherRequest* request,
                           v1::WriteResult* result) override {
    std::lock_guard<std::mutex> lock(mu_);
    last_void_ = *request;
    result->set_seq(14);
    return grpc::Status::OK;
  }
  grpc::Status SweepExpiredVouchers(grpc::ServerContext*, const v1::SweepVouchersRequest* request,
                                    v1::SweepVouchersResponse* response) override {
    std::lock_guard<std::mutex> lock(mu_);
    last_sweep_max_ = request->max();
    auto* swept = response->add_expired();
    swept->set_voucher(9);
    swept->mutable_result()->set_seq(15);
    swept->set_returned(20'000);
    if (sweep_fails_) {
      auto* failed = response->add_expired();
      failed->set_voucher(10);
      failed->set_code(static_cast<int>(grpc::StatusCode::ABORTED));
      failed->set_message("redeemed meanwhile");
    }
    return grpc::Status::OK;
  }
  grpc::Status GetVoucher(grpc::ServerContext*, const v1::GetVoucherRequest* request,
                          v1::Voucher* v) override {
    std::lock_guard<std::mutex> lock(mu_);
    last_get_ = *request;
    if (request->has_code() && request->code() != kCode) {
      return grpc::Status(grpc::StatusCode::NOT_FOUND, "no voucher has this code");
    }
    v->set_voucher(9);
    v->set_account("voucher/9");
    v->set_from("fund/general");
    v->set_category("elderly");
    v->set_community("east-gate");
    v->set_asset("CNY");
    v->set_face(50'000);
    v->set_redeemed(30'000);
    v->set_remaining(20'000);
    v->set_redemptions(2);
    v->set_expires_us(1'725'120'000'000'000);
    v->add_stores("store/supermarket");
    v->set_status(v1::ACTIVE);
    return grpc::Status::OK;
  }
  grpc::Status GetVoucherReport(grpc::ServerContext*, const v1::VoucherReportRequest*,
                                v1::VoucherReport* report) override {
    v1::VoucherTotals* t = report->add_total();
    t->set_asset("CNY");
    t->set_issued(3);
    t->set_issued_amount(150'000);
    t->set_redemptions(4);
    t->set_redeemed_amount(70'000);
    t->set_voided(1);
    t->set_voided_amount(50'000);
    t->set_outstanding(1);
    t->set_outstanding_amount(30'000);
    *report->add_by_fund() = *t;
    report->mutable_by_fund(0)->set_key("fund/general");
    return grpc::Status::OK;
  }

  void set_sweep_fails(bool fails) {
    std::lock_guard<std::mutex> lock(mu_);
    sweep_fails_ = fails;
  }
  v1::IssueVoucherRequest last_issue() {
    std::lock_guard<std::mutex> lock(mu_);
    return last_issue_;
  }
  v1::VoidVoucherRequest last_void() {
    std::lock_guard<std::mutex> lock(mu_);
    return last_void_;
  }
  v1::GetVoucherRequest last_get() {
    std::lock_guard<std::mutex> lock(mu_);
    return last_get_;
  }
  uint32_t last_sweep_max() {
    std::lock_guard<std::mutex> lock(mu_);
    return last_sweep_max_;
  }

 private:
  std::mutex mu_;
  bool sweep_fails_ = false;
  v1::IssueVoucherRequest last_issue_;
  v1::VoidVoucherRequest last_void_;
  v1::GetVoucherRequest last_get_;
  uint32_t last_sweep_max_ = 0;
};

class FakeGoods final : public v1::Goods::Service {
 public:
  grpc::Status HandOut(grpc::ServerContext*, const v1::HandOutRequest* request,
                       v1::HandOutResponse* response) override {
    std::lock_guard<std::mutex> lock(mu_);
    last_handout_ = *request;
    response->mutable_result()->set_seq(40);
    int64_t total = 0;
    for (const v1::HandoutLine& line : request->lines()) total += line.quantity();
    response->set_quantity(total);
    return grpc::Status::OK;
  }
  grpc::Status BuyGoods(grpc::ServerContext*, const v1::BuyGoodsRequest* request,
                        v1::BuyGoodsResponse* response) override {
    std::lock_guard<std::mutex> lock(mu_);
    last_buy_ = *request;
    response->mutable_result()->set_seq(41);
    response->set_lot(41);
    response->set_quantity(request->quantity());
    return grpc::Status::OK;
  }
  grpc::Status GiveGoods(grpc::ServerContext*, const v1::GiveGoodsRequest* request,
                         v1::GiveGoodsResponse* response) override {
    std::lock_guard<std::mutex> lock(mu_);
    last_give_ = *request;
    response->mutable_result()->set_seq(42);
    response->set_lot(42);
    response->set_trace_code("GOODSCODE234567ABCDEFGHIJK");
    return grpc::Status::OK;
  }
  grpc::Status ListItems(grpc::ServerContext*, const v1::ListItemsRequest*,
                         v1::Items* items) override {
    v1::Item* item = items->add_items();
    item->set_item("item:box");
    item->set_name("Box of daily necessities");
    item->set_unit("box");
    item->set_defined_seq(3);
    item->set_in_stock(1234);
    return grpc::Status::OK;
  }

  v1::HandOutRequest last_handout() {
    std::lock_guard<std::mutex> lock(mu_);
    return last_handout_;
  }
  v1::BuyGoodsRequest last_buy() {
    std::lock_guard<std::mutex> lock(mu_);
    return last_buy_;
  }
  v1::GiveGoodsRequest last_give() {
    std::lock_guard<std::mutex> lock(mu_);
    return last_give_;
  }

 private:
  std::mutex mu_;
  v1::HandOutRequest last_handout_;
  v1::BuyGoodsRequest last_buy_;
  v1::GiveGoodsRequest last_give_;
};

class FakeAid final : public v1::Aid::Service {
 public:
  grpc::Status SetAidRule(grpc::ServerContext*, const v1::SetAidRuleRequest* request,
                          v1::WriteResult* result) override {
    std::lock_guard<std::mutex> lock(mu_);
    last_rule_ = *request;
    ++calls_;
    result->set_seq(50);
    return grpc::Status::OK;
  }
  grpc::Status ListAidRules(grpc::ServerContext*, const v1::ListAidRulesRequest*,
                            v1::AidRules* rules) override {
    std::lock_guard<std::mutex> lock(mu_);
    ++calls_;
    v1::AidRule* r = rules->add_rules();
    r->set_aid("daily-box");
    r->set_type(v1::HANDOUT);
    r->set_source("stock/daily-necessities");
    r->set_max_count(1);
    r->set_period(v1::MONTH);
    r->set_memo("one box a month per household");
    r->set_seq(31);
    r = rules->add_rules();
    r->set_aid("supermarket-voucher");
    r->set_type(v1::VOUCHER_ISSUE);
    r->set_asset("CNY");
    r->set_max_count(2);
    r->set_period(v1::QUARTER);
    r->set_seq(32);
    return grpc::Status::OK;
  }
  grpc::Status GetAidReport(grpc::ServerContext*, const v1::AidReportRequest* request,
                            v1::AidReport* report) override {
    std::lock_guard<std::mutex> lock(mu_);
    last_report_ = *request;
    ++calls_;
    report->set_from_time_us(request->from_time_us());
    report->set_to_time_us(request->to_time_us() == 0 ? 1'720'000'000'000'000
                                                      : request->to_time_us());
    report->set_public_view(request->public_view());
    report->set_min_people(5);
    v1::AidCell* cell = report->add_cells();
    cell->set_category("elderly-poverty");
    cell->set_community("c001");
    cell->set_type(v1::DISBURSEMENT);
    cell->set_asset("CNY");
    cell->set_people(12);
    cell->set_entries(14);
    cell->set_amount(1'234'500);
    if (request->public_view()) {
      report->set_suppressed_cells(3);
    } else {
      cell = report->add_cells();
      cell->set_category("dibao");
      cell->set_community("c002");
      cell->set_type(v1::HANDOUT);
      cell->set_asset("item:daily-box");
      cell->set_people(2);
      cell->set_entries(2);
      cell->set_amount(2);
    }
    return grpc::Status::OK;
  }

  v1::SetAidRuleRequest last_rule() {
    std::lock_guard<std::mutex> lock(mu_);
    return last_rule_;
  }
  v1::AidReportRequest last_report() {
    std::lock_guard<std::mutex> lock(mu_);
    return last_report_;
  }
  int calls() {
    std::lock_guard<std::mutex> lock(mu_);
    return calls_;
  }

 private:
  std::mutex mu_;
  v1::SetAidRuleRequest last_rule_;
  v1::AidReportRequest last_report_;
  int calls_ = 0;
};

class FakeServer {
 public:
  explicit FakeServer(std::vector<v1::Entry> chain) : ledger_(chain), export_(chain) {
    grpc::EnableDefaultHealthCheckService(true);
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
    builder.RegisterService(&ledger_);
    builder.RegisterService(&export_);
    builder.RegisterService(&transparency_);
    builder.RegisterService(&checkout_);
    builder.RegisterService(&vouchers_);
    builder.RegisterService(&goods_);
    builder.RegisterService(&aid_);
    server_ = builder.BuildAndStart();
  }
  ~FakeServer() { server_->Shutdown(); }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  FakeLedger& ledger() { return ledger_; }
  FakeTransparency& transparency() { return transparency_; }
  FakeCheckout& checkout() { return checkout_; }
  FakeVouchers& vouchers() { return vouchers_; }
  FakeGoods& goods() { return goods_; }
  FakeAid& aid() { return aid_; }
  grpc::Server& server() { return *server_; }

 private:
  FakeLedger ledger_;
  FakeExport export_;
  FakeTransparency transparency_;
  FakeCheckout checkout_;
  FakeVouchers vouchers_;
  FakeGoods goods_;
  FakeAid aid_;
  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;
};

struct CliResult {
  int code;
  std::string out;
  std::string err;
};

CliResult RunCommand(const std::vector<std::string>& args, const CliEnvironment& env = {},
                     const std::string& stdin_text = "") {
  std::istringstream in(stdin_text);
  std::ostringstream out, err;
  const int code = RunCli(args, env, {in, out, err});
  return {code, out.str(), err.str()};
}

TEST(HealthTest, ReadsServingAndNotServingFromTheStandardService) {
  FakeServer server({});
  ClientOptions options;
  options.server = server.address();
  absl::StatusOr<std::shared_ptr<grpc::Channel>> channel = CreateChannel(options);
  ASSERT_TRUE(channel.ok());
  absl::StatusOr<HealthState> state = CheckHealth(*channel, options, "");
  ASSERT_TRUE(state.ok()) << state.status();
  EXPECT_EQ(*state, HealthState::kServing);

  server.server().GetHealthCheckService()->SetServingStatus("warmledger.v1.Ledger", false);
  state = CheckHealth(*channel, options, "warmledger.v1.Ledger");
  ASSERT_TRUE(state.ok()) << state.status();
  EXPECT_EQ(*state, HealthState::kNotServing);

  state = CheckHealth(*channel, options, "no.such.Service");
  EXPECT_EQ(state.status().code(), absl::StatusCode::kNotFound);

  CliResult r = RunCommand({"health", "--server=" + server.address()});
  EXPECT_EQ(r.code, kExitOk) << r.err;
  EXPECT_EQ(r.out, "SERVING\n");
  r = RunCommand({"health", "--server=" + server.address(), "--service=warmledger.v1.Ledger"});
  EXPECT_EQ(r.code, kExitError);
  EXPECT_EQ(r.out, "NOT_SERVING\n");
}

// ---------------------------------------------------------------- CLI

TEST(CliTest, HelpAndUsageErrors) {
  CliResult r = RunCommand({"help"});
  EXPECT_EQ(r.code, kExitOk);
  EXPECT_NE(r.out.find("donate"), std::string::npos);
  EXPECT_EQ(RunCommand({"--help"}).code, kExitOk);
  r = RunCommand({"help", "trace"});
  EXPECT_EQ(r.code, kExitOk);
  EXPECT_NE(r.out.find("--code"), std::string::npos);
  r = RunCommand({"trace", "--help"});
  EXPECT_EQ(r.code, kExitOk);
  EXPECT_NE(r.out.find("usage: warmledger trace"), std::string::npos);

  EXPECT_EQ(RunCommand({}).code, kExitUsage);
  r = RunCommand({"frobnicate"});
  EXPECT_EQ(r.code, kExitUsage);
  EXPECT_EQ(r.err.rfind("error: INVALID_ARGUMENT: unknown command", 0), 0u) << r.err;
  EXPECT_EQ(RunCommand({"help", "frobnicate"}).code, kExitUsage);
  EXPECT_EQ(RunCommand({"head", "--deadline_ms=0"}).code, kExitUsage);
  EXPECT_EQ(RunCommand({"--bogus", "head"}).code, kExitUsage);
  EXPECT_EQ(RunCommand({"--json", "head", "--json"}).code, kExitUsage);  // given twice
  EXPECT_EQ(RunCommand({"trace"}).code, kExitUsage);
  EXPECT_EQ(RunCommand({"trace", "--code=A", "--lot=1"}).code, kExitUsage);
  EXPECT_EQ(RunCommand({"open-account", "--client_id=c", "--account=a", "--kind=recipient"}).code,
            kExitUsage);
  EXPECT_EQ(RunCommand({"head", "--tls_cert=/x"}).code, kExitUsage);
  EXPECT_EQ(RunCommand({"correct", "--client_id=c", "--ref_seq=3", "--mode=reverse", "--reason=r",
                        "--amount=5"})
                .code,
            kExitUsage);
  EXPECT_EQ(
      RunCommand({"correct", "--client_id=c", "--ref_seq=3", "--mode=undo", "--reason=r"}).code,
      kExitUsage);
}

TEST(CliTest, DonateAmountFlagsAreExactlyOneAndExact) {
  const std::vector<std::string> base = {"donate", "--client_id=c", "--donor=donor/a",
                                         "--to=fund/general"};
  auto with = [&](std::vector<std::string> extra) {
    std::vector<std::string> args = base;
    args.insert(args.end(), extra.begin(), extra.end());
    return RunCommand(args);
  };
  EXPECT_EQ(with({}).code, kExitUsage);
  EXPECT_EQ(with({"--amount=100", "--yuan=1"}).code, kExitUsage);
  EXPECT_EQ(with({"--yuan=1.001"}).code, kExitUsage);
  EXPECT_EQ(with({"--yuan=-1"}).code, kExitUsage);
  EXPECT_EQ(with({"--asset=item:rice", "--yuan=1"}).code, kExitUsage);
  EXPECT_EQ(with({"--yuan=1", "--channel=carrier-pigeon"}).code, kExitUsage);
  EXPECT_EQ(with({"--yuan=1", "--donor_name=Zhang"}).code, kExitUsage);
}

TEST(CliTest, DonateSendsExactFenTokenAndDeadline) {
  FakeServer server({});
  CliResult r =
      RunCommand({"--server=" + server.address(), "donate", "--client_id=gift-1",
                  "--donor=donor/zhang", "--to=fund/general", "--yuan=12.34", "--channel=counter",
                  "--anonymous", "--create_donor", "--donor_name=张三"},
                 {.server = "", .token = "wl_secret"});
  ASSERT_EQ(r.code, kExitOk) << r.err;
  const v1::DonateRequest req = server.ledger().last_donate();
  EXPECT_EQ(req.amount(), 1234);
  EXPECT_EQ(req.asset(), "CNY");
  EXPECT_EQ(req.channel(), v1::COUNTER);
  EXPECT_TRUE(req.anonymous());
  EXPECT_TRUE(req.create_donor());
  EXPECT_EQ(req.donor_name(), "张三");
  EXPECT_EQ(server.ledger().last_authorization(), "Bearer wl_secret");
  EXPECT_TRUE(server.ledger().had_deadline());
  EXPECT_NE(r.out.find("TRACECODE234567ABCDEFGHIJKL"), std::string::npos);
  EXPECT_NE(r.out.find("12.34 CNY"), std::string::npos);

  // A --token flag wins over the environment; --json prints proto JSON.
  r = RunCommand({"donate", "--server=" + server.address(), "--token=wl_flag", "--json",
                  "--client_id=gift-2", "--donor=donor/zhang", "--to=fund/general", "--amount=5"},
                 {.server = "", .token = "wl_env"});
  ASSERT_EQ(r.code, kExitOk) << r.err;
  EXPECT_EQ(server.ledger().last_authorization(), "Bearer wl_flag");
  EXPECT_EQ(server.ledger().last_donate().amount(), 5);
  EXPECT_NE(r.out.find("\"traceCode\":\"TRACECODE234567ABCDEFGHIJKL\""), std::string::npos)
      << r.out;
}

TEST(CliTest, TraceShowsYuanAndChecksTheSum) {
  FakeServer server({});
  CliResult r = RunCommand({"trace", "--code=good"}, {.server = server.address(), .token = ""});
  ASSERT_EQ(r.code, kExitOk) << r.err;
  EXPECT_NE(r.out.find("100.00 CNY"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("40.01"), std::string::npos);
  EXPECT_NE(r.out.find("east-gate"), std::string::npos);
  EXPECT_NE(r.out.find("(anonymous)"), std::string::npos);
  EXPECT_NE(r.out.find("accounted for: 100.00 of 100.00 CNY"), std::string::npos) << r.out;

  // A gift spent through an aid voucher: the order and the recipient's
  // category and community, never the recipient.
  r = RunCommand({"trace", "--code=voucher", "--server=" + server.address()});
  ASSERT_EQ(r.code, kExitOk) << r.err;
  EXPECT_NE(r.out.find("voucher-issue"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("elderly / east-gate"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("redemption"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("order A-77"), std::string::npos) << r.out;

  r = RunCommand({"trace", "--code=unbalanced", "--server=" + server.address()});
  EXPECT_EQ(r.code, kExitError);
  EXPECT_EQ(r.err.rfind("error: DATA_LOSS: ", 0), 0u) << r.err;

  r = RunCommand({"trace", "--code=missing", "--server=" + server.address()});
  EXPECT_EQ(r.code, kExitError);
  EXPECT_EQ(r.err, "error: NOT_FOUND: no such trace code\n");
}

TEST(CliTest, UnreachableServerIsUnavailable) {
  // Port 1 on loopback: nothing listens there.
  CliResult r = RunCommand({"head", "--server=127.0.0.1:1", "--deadline_ms=2000"});
  EXPECT_EQ(r.code, kExitError);
  EXPECT_TRUE(r.err.rfind("error: UNAVAILABLE: ", 0) == 0 ||
              r.err.rfind("error: DEADLINE_EXCEEDED: ", 0) == 0)
      << r.err;
}

// Reads an export file back per its documented grammar.
std::vector<v1::Entry> ReadExport(const std::string& path) {
  const std::string bytes = ReadFile(path);
  std::vector<v1::Entry> entries;
  size_t pos = 0;
  while (pos < bytes.size()) {
    EXPECT_LE(pos + 4, bytes.size());
    uint32_t len = 0;
    for (int i = 0; i < 4; ++i)
      len |= static_cast<uint32_t>(static_cast<unsigned char>(bytes[pos + i])) << (8 * i);
    pos += 4;
    EXPECT_LE(pos + len, bytes.size());
    v1::Entry e;
    EXPECT_TRUE(e.ParseFromArray(bytes.data() + pos, static_cast<int>(len)));
    entries.push_back(e);
    pos += len;
  }
  return entries;
}

TEST(CliTest, EntriesExportFileIsLengthPrefixedEntriesInOrder) {
  std::vector<v1::Entry> chain = MakeChain(25);
  FakeServer server(chain);
  TempDir dir;
  const std::string path = dir.Sub("export.bin");
  CliResult r = RunCommand(
      {"entries", "--server=" + server.address(), "--from=3", "--count=20", "--out=" + path});
  ASSERT_EQ(r.code, kExitOk) << r.err;
  std::vector<v1::Entry> got = ReadExport(path);
  ASSERT_EQ(got.size(), 20u);
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_EQ(got[i].seq(), 3 + i);
    EXPECT_EQ(got[i].hash(), chain[2 + i].hash());
  }
  EXPECT_FALSE(std::filesystem::exists(path + ".partial"));

  r = RunCommand({"entries", "--server=" + server.address()});
  ASSERT_EQ(r.code, kExitOk) << r.err;
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 25);
  EXPECT_NE(r.out.find("entry 25"), std::string::npos);
}

TEST(CliTest, EntriesRefuseABrokenChain) {
  std::vector<v1::Entry> chain = MakeChain(5);
  // Entry 4 is re-hashed consistently but no longer links to entry 3.
  chain[3] = MakeEntry(4, std::string(32, 'z'));
  FakeServer server(chain);
  TempDir dir;
  const std::string path = dir.Sub("export.bin");
  CliResult r = RunCommand({"entries", "--server=" + server.address(), "--out=" + path});
  EXPECT_EQ(r.code, kExitError);
  EXPECT_NE(r.err.find("error: DATA_LOSS: entry 4"), std::string::npos) << r.err;
  EXPECT_FALSE(std::filesystem::exists(path));
}

TEST(CliTest, CreateTokenWorksOfflineAndValidates) {
  TempDir dir;
  const std::string path = dir.Sub("auth");
  CliResult r =
      RunCommand({"create-token", "--auth_file=" + path, "--role=auditor", "--name=audit-1"});
  ASSERT_EQ(r.code, kExitOk) << r.err;
  ASSERT_EQ(r.out.size(), 68u);  // token + newline
  const std::string token = r.out.substr(0, 67);
  EXPECT_EQ(ReadFile(path), TokenHash(token) + " auditor audit-1\n");
  EXPECT_EQ(RunCommand({"create-token", "--auth_file=" + path, "--role=god", "--name=x"}).code,
            kExitUsage);
  EXPECT_EQ(RunCommand({"create-token", "--auth_file=" + path, "--role=clerk", "--name=a b"}).code,
            kExitUsage);
  ASSERT_EQ(::chmod(path.c_str(), 0644), 0);
  r = RunCommand({"create-token", "--auth_file=" + path, "--role=clerk", "--name=x"});
  EXPECT_EQ(r.code, kExitError);
  EXPECT_EQ(r.err.rfind("error: FAILED_PRECONDITION: ", 0), 0u) << r.err;
}

TEST(CliTest, RegisterRecipientReadsTheIdNumberFromStdin) {
  // No server needed to see that an empty stdin is refused before any call.
  CliResult r = RunCommand(
      {"register-recipient", "--client_id=c", "--id_number=-", "--category=a", "--community=b"}, {},
      "");
  EXPECT_EQ(r.code, kExitUsage);
  EXPECT_NE(r.err.find("no ID number on stdin"), std::string::npos);
}

// ---------------------------------------------------------------- CLI: transparency

TEST(CliTest, HelpListsTheTransparencyCommands) {
  const CliResult r = RunCommand({"help"});
  for (const char* command : {"verifier-key", "checkpoint", "receipt", "verify-receipt", "watch"}) {
    EXPECT_NE(r.out.find(std::string("  ") + command + " "), std::string::npos) << command;
    const CliResult help = RunCommand({"help", command});
    EXPECT_EQ(help.code, kExitOk) << command;
    EXPECT_NE(help.out.find(std::string("usage: warmledger ") + command), std::string::npos);
  }
  EXPECT_NE(RunCommand({"donate", "--help"}).out.find("--receipt"), std::string::npos);
}

// A receipt for entry 4 of a 5-entry tree, and its signer.
class VerifyReceiptCliTest : public ::testing::Test {
 protected:
  VerifyReceiptCliTest()
      : signer_(NoteSigner::Generate(kOrigin).value()),
        tree_(DonationTree(5)),
        receipt_(MakeReceipt(tree_, 3, signer_)) {}

  // Writes `text` as the receipt file and runs `verify-receipt FILE args...`.
  // No server runs: --server names a port nobody listens on.
  CliResult Verify(const std::string& text, const std::vector<std::string>& args) {
    const std::string path = dir_.Sub("receipt.txt");
    {
      std::ofstream out(path, std::ios::binary | std::ios::trunc);
      out << text;
    }
    std::vector<std::string> all = {"verify-receipt", "--server=127.0.0.1:1", path};
    all.insert(all.end(), args.begin(), args.end());
    return RunCommand(all);
  }
  std::string KeyFlag() const { return "--key=" + signer_.VerifierKey(); }

  // Expects exit code 1 and an error message that names `step`.
  static void ExpectFailsAt(const CliResult& r, const std::string& step) {
    EXPECT_EQ(r.code, kExitError) << r.out << r.err;
    EXPECT_EQ(r.err.rfind("error: ", 0), 0u) << r.err;
    EXPECT_NE(r.err.find(step), std::string::npos) << r.err << " lacks " << step;
    EXPECT_EQ(r.out.find("receipt verified"), std::string::npos) << r.out;
  }

  TempDir dir_;
  const NoteSigner signer_;
  const Tree tree_;
  const Receipt receipt_;
};

TEST_F(VerifyReceiptCliTest, AGoodReceiptShowsTheDonationOffline) {
  const CliResult r = Verify(FormatReceipt(receipt_), {KeyFlag()});
  ASSERT_EQ(r.code, kExitOk) << r.err;
  EXPECT_EQ(r.err, "");
  for (const char* text :
       {"seq      4\n", "type     donation\n", "donor    donor/zhang\n", "to       fund/general\n",
        "amount   12.34 CNY\n", "memo     for the winter\n", "channel  counter\n"}) {
    EXPECT_NE(r.out.find(text), std::string::npos) << r.out << " lacks " << text;
  }
  const std::string tail = std::string("checkpoint: ") + kOrigin + " size 5, signed by " + kOrigin +
                           "\nreceipt verified\n";
  ASSERT_GE(r.out.size(), tail.size());
  EXPECT_EQ(r.out.substr(r.out.size() - tail.size()), tail) << r.out;
}

TEST_F(VerifyReceiptCliTest, KeyFromAFileAndJson) {
  const std::string key_file = dir_.Sub("key.txt");
  {
    std::ofstream out(key_file);
    out << signer_.VerifierKey() << "\n";
  }
  CliResult r = Verify(FormatReceipt(receipt_), {"--key=@" + key_file});
  ASSERT_EQ(r.code, kExitOk) << r.err;
  EXPECT_NE(r.out.find("receipt verified"), std::string::npos);

  r = Verify(FormatReceipt(receipt_), {"--key", "@" + key_file, "--json"});
  ASSERT_EQ(r.code, kExitOk) << r.err;
  for (const char* text :
       {"{\"verified\":true,", "\"seq\":\"4\"", "\"type\":\"donation\"",
        "\"donor\":\"donor/zhang\"", "\"anonymous\":false", "\"amount\":\"1234\"",
        "\"asset\":\"CNY\"", "\"memo\":\"for the winter\"", "\"treeSize\":\"5\""}) {
    EXPECT_NE(r.out.find(text), std::string::npos) << r.out << " lacks " << text;
  }
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1);

  EXPECT_EQ(Verify(FormatReceipt(receipt_), {"--key=@" + dir_.Sub("missing")}).code, kExitError);
}

TEST_F(VerifyReceiptCliTest, EntryTextReachesNoTerminalOrJsonUnescaped) {
  Tree tree = DonationTree(3);
  tree.Add(EncodeEntry(DonationEntry(4, 1234, "say \"hi\"\n\x1b[31m\\")));
  const std::string text = FormatReceipt(MakeReceipt(tree, 3, signer_));
  CliResult r = Verify(text, {KeyFlag()});
  ASSERT_EQ(r.code, kExitOk) << r.err;
  EXPECT_NE(r.out.find("memo     say \"hi\"??[31m\\\n"), std::string::npos) << r.out;
  r = Verify(text, {KeyFlag(), "--json"});
  ASSERT_EQ(r.code, kExitOk) << r.err;
  EXPECT_NE(r.out.find("\"memo\":\"say \\\"hi\\\"\\u000a\\u001b[31m\\\\\""), std::string::npos)
      << r.out;
}

TEST_F(VerifyReceiptCliTest, AnotherKeyFailsTheSignature) {
  const NoteSigner same_name = NoteSigner::Generate(kOrigin).value();
  ExpectFailsAt(Verify(FormatReceipt(receipt_), {"--key=" + same_name.VerifierKey()}),
                "signature: ");
  const NoteSigner other_name = NoteSigner::Generate("example.com/impostor").value();
  ExpectFailsAt(Verify(FormatReceipt(receipt_), {"--key=" + other_name.VerifierKey()}),
                "signature: ");
}

TEST_F(VerifyReceiptCliTest, AFlippedEntryByteFailsTheInclusionProof) {
  for (size_t i : {size_t{0}, size_t{12}, receipt_.entry_bytes.size() - 1}) {
    Receipt r = receipt_;
    r.entry_bytes[i] ^= 0x01;
    ExpectFailsAt(Verify(FormatReceipt(r), {KeyFlag()}), "inclusion proof: ");
  }
}

TEST_F(VerifyReceiptCliTest, AChangedIndexFailsTheInclusionProof) {
  for (uint64_t index : {uint64_t{0}, uint64_t{2}, uint64_t{4}, uint64_t{5}, uint64_t{1000}}) {
    Receipt r = receipt_;
    r.index = index;
    ExpectFailsAt(Verify(FormatReceipt(r), {KeyFlag()}), "inclusion proof: ");
  }
  Receipt r = receipt_;
  r.proof.pop_back();
  ExpectFailsAt(Verify(FormatReceipt(r), {KeyFlag()}), "inclusion proof: ");
}

TEST_F(VerifyReceiptCliTest, AChangedCheckpointFailsTheSignature) {
  Receipt r = receipt_;
  const std::string size_line = std::string(kOrigin) + "\n5\n";
  ASSERT_EQ(r.checkpoint.rfind(size_line, 0), 0u) << r.checkpoint;
  r.checkpoint.replace(0, size_line.size(), std::string(kOrigin) + "\n6\n");
  ExpectFailsAt(Verify(FormatReceipt(r), {KeyFlag()}), "signature: ");
}

TEST_F(VerifyReceiptCliTest, AMalformedFileNamesTheLine) {
  std::string text = FormatReceipt(receipt_);
  const size_t at = text.find("index 3\n");
  ASSERT_NE(at, std::string::npos);
  text.replace(at, 8, "index three\n");
  ExpectFailsAt(Verify(text, {KeyFlag()}), "receipt line 3: ");
  ExpectFailsAt(Verify("", {KeyFlag()}), "receipt line 1: ");
  ExpectFailsAt(Verify("hello\n", {KeyFlag()}), "receipt line 1: ");
  const std::string whole = FormatReceipt(receipt_);
  ExpectFailsAt(Verify(whole.substr(0, whole.find("\n\n") + 1), {KeyFlag()}), "receipt line");
}

TEST_F(VerifyReceiptCliTest, UsageMistakesExitTwo) {
  const std::string text = FormatReceipt(receipt_);
  CliResult r = Verify(text, {});
  EXPECT_EQ(r.code, kExitUsage);
  EXPECT_NE(r.err.find("missing required flag --key"), std::string::npos) << r.err;
  r = Verify(text, {"--key=not-a-key"});
  EXPECT_EQ(r.code, kExitUsage);
  EXPECT_NE(r.err.find("--key: "), std::string::npos) << r.err;
  EXPECT_EQ(Verify(text, {KeyFlag(), "second-file"}).code, kExitUsage);
  r = RunCommand({"verify-receipt", KeyFlag()});
  EXPECT_EQ(r.code, kExitUsage);
  EXPECT_NE(r.err.find("FILE"), std::string::npos) << r.err;
  r = RunCommand({"verify-receipt", dir_.Sub("missing.txt"), KeyFlag()});
  EXPECT_EQ(r.code, kExitError);
  EXPECT_EQ(r.err.rfind("error: NOT_FOUND: ", 0), 0u) << r.err;
}

// `watch --once` rounds against a fake server whose tree a test changes.
class WatchTest : public ::testing::Test {
 protected:
  CliResult Watch(const std::vector<std::string>& args = {"--once"}) {
    std::vector<std::string> all = {"watch", "--server=" + server_.address(), "--state=" + state_,
                                    "--key=" + transparency().signer().VerifierKey()};
    all.insert(all.end(), args.begin(), args.end());
    return RunCommand(all);
  }
  FakeTransparency& transparency() { return server_.transparency(); }
  static std::string Line(const Tree& tree, const std::string& suffix = "") {
    return "verified checkpoint " + std::to_string(tree.size()) + " (root " +
           HashToBase64(tree.At().root) + ")" + suffix + "\n";
  }
  // DonationTree(n) with entry 2 replaced: another history.
  static Tree OtherTree(uint64_t size) {
    Tree tree = DonationTree(size);
    tree.entries[1] = EncodeEntry(OpenAccountEntry(2, "donor/li", AccountKind::kDonor));
    tree.leaves[1] = merkle::LeafHash(tree.entries[1]);
    return tree;
  }

  FakeServer server_{{}};
  TempDir dir_;
  const std::string state_ = dir_.Sub("checkpoint.txt");
};

TEST_F(WatchTest, TrustsTheFirstCheckpointThenChecksEveryAdvance) {
  transparency().Serve(DonationTree(3));
  CliResult r = Watch();
  ASSERT_EQ(r.code, kExitOk) << r.err;
  EXPECT_EQ(r.out, Line(DonationTree(3)));
  EXPECT_NE(r.err.find("trusting"), std::string::npos) << r.err;
  EXPECT_EQ(ReadFile(state_), transparency().newest_note());

  transparency().Serve(DonationTree(5));
  r = Watch();
  ASSERT_EQ(r.code, kExitOk) << r.err;
  EXPECT_EQ(r.out, Line(DonationTree(5), ", consistent with 3"));
  EXPECT_EQ(r.err, "");
  EXPECT_EQ(ReadFile(state_), transparency().newest_note());
  EXPECT_FALSE(std::filesystem::exists(state_ + ".tmp"));

  r = Watch();
  ASSERT_EQ(r.code, kExitOk) << r.err;
  EXPECT_EQ(r.out, Line(DonationTree(5), ", consistent with 5"));

  transparency().Serve(DonationTree(7));
  r = Watch({"--once", "--json"});
  ASSERT_EQ(r.code, kExitOk) << r.err;
  EXPECT_EQ(r.out, "{\"treeSize\":\"7\",\"rootHash\":\"" + HashToBase64(DonationTree(7).At().root) +
                       "\",\"consistentWith\":\"5\"}\n");
}

TEST_F(WatchTest, RollbackStopsAndKeepsTheState) {
  transparency().Serve(DonationTree(5));
  ASSERT_EQ(Watch().code, kExitOk);
  const std::string saved = ReadFile(state_);
  transparency().Serve(DonationTree(3));
  const CliResult r = Watch();
  EXPECT_EQ(r.code, kExitError);
  EXPECT_EQ(r.err,
            "error: DATA_LOSS: ROLLBACK: the server's newest checkpoint has 3 entries, fewer than "
            "the 5 already verified\n");
  EXPECT_EQ(ReadFile(state_), saved);
}

TEST_F(WatchTest, ForksStopAndKeepTheState) {
  transparency().Serve(DonationTree(5));
  ASSERT_EQ(Watch().code, kExitOk);
  const std::string saved = ReadFile(state_);

  transparency().Serve(OtherTree(5));
  CliResult r = Watch();
  EXPECT_EQ(r.code, kExitError);
  EXPECT_NE(r.err.find("FORK: two different checkpoints of 5 entries"), std::string::npos) << r.err;

  transparency().Serve(OtherTree(7));
  r = Watch();
  EXPECT_EQ(r.code, kExitError);
  EXPECT_NE(r.err.find("FORK: checkpoint of 7 entries does not extend the verified checkpoint of "
                       "5 entries: "),
            std::string::npos)
      << r.err;
  EXPECT_EQ(ReadFile(state_), saved);
}

TEST_F(WatchTest, SignaturesOfTheServerAndTheStateFileAreChecked) {
  const NoteSigner impostor = NoteSigner::Generate(kOrigin).value();
  transparency().Serve(DonationTree(5), &impostor);
  CliResult r = Watch();
  EXPECT_EQ(r.code, kExitError);
  EXPECT_NE(r.err.find("signature: "), std::string::npos) << r.err;
  EXPECT_FALSE(std::filesystem::exists(state_));

  transparency().Serve(DonationTree(5));
  {
    std::ofstream out(state_);
    out << SignCheckpoint(impostor, DonationTree(3).At());
  }
  r = Watch();
  EXPECT_EQ(r.code, kExitError);
  EXPECT_NE(r.err.find("state file"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("signature: "), std::string::npos) << r.err;

  {
    std::ofstream out(state_, std::ios::trunc);
    out << "garbage\n";
  }
  r = Watch();
  EXPECT_EQ(r.code, kExitError);
  EXPECT_NE(r.err.find("state file"), std::string::npos) << r.err;
}

TEST_F(WatchTest, UsageMistakesExitTwo) {
  EXPECT_EQ(RunCommand({"watch", "--state=" + state_}).code, kExitUsage);
  EXPECT_EQ(RunCommand({"watch", "--key=" + transparency().signer().VerifierKey()}).code,
            kExitUsage);
  EXPECT_EQ(Watch({"--interval_ms=0"}).code, kExitUsage);
  EXPECT_EQ(RunCommand({"watch", "--state=" + state_, "--key=x+y"}).code, kExitUsage);
}

TEST_F(WatchTest, OnceExitsOneWhenTheCallFails) {
  transparency().FailCheckpoints(1);
  const CliResult r = Watch();
  EXPECT_EQ(r.code, kExitError);
  EXPECT_EQ(r.err.find("error: UNAVAILABLE: try again"), r.err.find("error: ")) << r.err;
  EXPECT_NE(r.err.find("UNAVAILABLE"), std::string::npos) << r.err;
  EXPECT_FALSE(std::filesystem::exists(state_));
}

TEST_F(WatchTest, LoopRetriesFailedCallsAndStopsAtAFork) {
  transparency().Serve(DonationTree(5));
  ASSERT_EQ(Watch().code, kExitOk);
  transparency().Serve(OtherTree(5));
  transparency().FailCheckpoints(2);
  const CliResult r = Watch({"--interval_ms=10"});
  EXPECT_EQ(r.code, kExitError);
  size_t unavailable = 0;
  for (size_t at = r.err.find("error: UNAVAILABLE: try again\n"); at != std::string::npos;
       at = r.err.find("error: UNAVAILABLE: try again\n", at + 1)) {
    ++unavailable;
  }
  EXPECT_EQ(unavailable, 2u) << r.err;
  EXPECT_NE(r.err.find("error: DATA_LOSS: FORK: two different checkpoints of 5 entries"),
            std::string::npos)
      << r.err;
}

TEST_F(WatchTest, LoopEndsWithExitZeroOnSigterm) {
  transparency().Serve(DonationTree(5));
  // The state file appears during the first round, when the handler is in
  // place: only then is the signal sent.
  std::thread stopper([this] {
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (!std::filesystem::exists(state_) && std::chrono::steady_clock::now() < give_up) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    ::kill(::getpid(), SIGTERM);
  });
  const CliResult r = Watch({"--interval_ms=20"});
  stopper.join();
  EXPECT_EQ(r.code, kExitOk) << r.err;
  EXPECT_EQ(r.out.rfind(Line(DonationTree(5)), 0), 0u) << r.out;
}

TEST(TransparencyCliTest, VerifierKeyCheckpointAndReceipt) {
  FakeServer server({});
  FakeTransparency& transparency = server.transparency();
  TempDir dir;
  const std::string at = "--server=" + server.address();

  CliResult r = RunCommand({"verifier-key", at});
  ASSERT_EQ(r.code, kExitOk) << r.err;
  EXPECT_NE(r.out.find("verifier key  " + transparency.signer().VerifierKey() + "\n"),
            std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find(std::string("origin        ") + kOrigin + "\n"), std::string::npos) << r.out;
  const std::string key_file = dir.Sub("key.txt");
  r = RunCommand({"verifier-key", at, "--out=" + key_file, "--json"});
  ASSERT_EQ(r.code, kExitOk) << r.err;
  EXPECT_NE(r.out.find("\"verifierKey\""), std::string::npos) << r.out;
  EXPECT_EQ(ReadFile(key_file), transparency.signer().VerifierKey() + "\n");

  r = RunCommand({"checkpoint", at});
  ASSERT_EQ(r.code, kExitOk) << r.err;
  EXPECT_EQ(r.out, transparency.newest_note());
  r = RunCommand({"checkpoint", at, "--size=3"});
  ASSERT_EQ(r.code, kExitOk) << r.err;
  EXPECT_EQ(r.out, SignCheckpoint(transparency.signer(), DonationTree(3).At()));
  const std::string note_file = dir.Sub("checkpoint.txt");
  r = RunCommand({"checkpoint", at, "--out=" + note_file});
  ASSERT_EQ(r.code, kExitOk) << r.err;
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(ReadFile(note_file), transparency.newest_note());
  EXPECT_EQ(RunCommand({"checkpoint", at, "--size=99"}).code, kExitError);

  // A receipt fetched by trace code verifies offline with the saved key.
  const std::string receipt_file = dir.Sub("receipt.txt");
  r = RunCommand({"receipt", at, "--code", FakeTransparency::kTraceCode, "--wait_ms=1500",
                  "--out=" + receipt_file});
  ASSERT_EQ(r.code, kExitOk) << r.err;
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(transparency.last_wait_ms(), 1500);
  r = RunCommand({"verify-receipt", receipt_file, "--key=@" + key_file});
  ASSERT_EQ(r.code, kExitOk) << r.err;
  EXPECT_NE(r.out.find("12.34 CNY"), std::string::npos) << r.out;

  r = RunCommand({"receipt", at, "--seq=2"});
  ASSERT_EQ(r.code, kExitOk) << r.err;
  EXPECT_EQ(r.out.rfind("c2sp.org/tlog-proof@v1\nextra ", 0), 0u) << r.out;
  EXPECT_EQ(r.out, FormatReceipt(MakeReceipt(DonationTree(5), 1, transparency.signer())));

  r = RunCommand({"receipt", at, "--code=NOPE"});
  EXPECT_EQ(r.code, kExitError);
  EXPECT_EQ(r.err, "error: NOT_FOUND: no such trace code\n");

  for (const std::vector<std::string>& args : std::vector<std::vector<std::string>>{
           {"receipt"},
           {"receipt", "--code=A", "--seq=1"},
           {"receipt", "--seq=0"},
           {"receipt", "--seq=1", "--wait_ms=5001"},
           {"receipt", "--seq=1", "--wait_ms=-1"},
           {"receipt", "--seq=1", "--wait_ms=3000", "--deadline_ms=2000"},
           {"receipt", "--seq=1", "--out="},
           {"checkpoint", "--out="},
       }) {
    EXPECT_EQ(RunCommand(args).code, kExitUsage) << absl::StrJoin(args, " ");
  }
}

TEST(TransparencyCliTest, DonateWritesTheReceiptOrSaysHowToFetchIt) {
  FakeServer server({});
  TempDir dir;
  const std::string receipt_file = dir.Sub("receipt.txt");
  const std::vector<std::string> donate = {"donate",        "--server=" + server.address(),
                                           "--client_id=g", "--donor=donor/zhang",
                                           "--to=fund/gen", "--yuan=12.34"};
  const auto with = [&](const std::vector<std::string>& extra) {
    std::vector<std::string> args = donate;
    args.insert(args.end(), extra.begin(), extra.end());
    return RunCommand(args);
  };

  CliResult r = with({});
  ASSERT_EQ(r.code, kExitOk) << r.err;
  EXPECT_FALSE(server.ledger().last_donate().wait_for_receipt());

  server.ledger().set_receipt("c2sp.org/tlog-proof@v1\nthe receipt\n");
  r = with({"--receipt=" + receipt_file});
  ASSERT_EQ(r.code, kExitOk) << r.err;
  EXPECT_TRUE(server.ledger().last_donate().wait_for_receipt());
  EXPECT_NE(r.out.find("TRACECODE234567ABCDEFGHIJKL"), std::string::npos) << r.out;
  EXPECT_EQ(ReadFile(receipt_file), "c2sp.org/tlog-proof@v1\nthe receipt\n");

  std::filesystem::remove(receipt_file);
  server.ledger().set_receipt("");
  r = with({"--receipt=" + receipt_file});
  ASSERT_EQ(r.code, kExitOk) << r.err;
  EXPECT_NE(r.out.find("TRACECODE234567ABCDEFGHIJKL"), std::string::npos) << r.out;
  EXPECT_NE(r.err.find("warmledger receipt --code=TRACECODE234567ABCDEFGHIJKL"), std::string::npos)
      << r.err;
  EXPECT_FALSE(std::filesystem::exists(receipt_file));

  EXPECT_EQ(with({"--receipt="}).code, kExitUsage);
}

// ---------------------------------------------------------------- checkout and vouchers

TEST(CheckoutCliTest, PurchaseSendsExactFenAndShowsTheContribution) {
  FakeServer server({});
  CliResult r = RunCommand({"purchase", "--server=" + server.address(), "--store=store/supermarket",
                            "--order=A-1001", "--yuan=12.34", "--member=m-42",
                            "--sale_time=2024-09-01T10:15:00+08:00", "--trace_code"});
  ASSERT_EQ(r.code, kExitOk) << r.err;
  const v1::PurchaseRequest req = server.checkout().last_purchase();
  EXPECT_EQ(req.store(), "store/supermarket");
  EXPECT_EQ(req.order_id(), "A-1001");
  EXPECT_EQ(req.amount(), 1234);
  EXPECT_EQ(req.asset(), "CNY");
  EXPECT_EQ(req.member(), "m-42");
  EXPECT_EQ(req.sale_time_us(), *ParseTimeUs("2024-09-01T02:15:00Z"));
  EXPECT_TRUE(req.want_trace_code());
  EXPECT_NE(r.out.find("0.25 CNY at 200 bp"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("12.34 CNY"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("SLIPCODE234567ABCDEFGHIJKL"), std::string::npos) << r.out;

  // 24 fen at 2% rounds to nothing: no lot.
  r = RunCommand({"purchase", "--server=" + server.address(), "--store=s", "--order=o",
                  "--amount=24", "--sale_time_us=5"});
  ASSERT_EQ(r.code, kExitOk) << r.err;
  EXPECT_EQ(server.checkout().last_purchase().sale_time_us(), 5);
  EXPECT_FALSE(server.checkout().last_purchase().want_trace_code());
  EXPECT_NE(r.out.find("rounds to nothing"), std::string::npos) << r.out;

  r = RunCommand({"--json", "purchase", "--server=" + server.address(), "--store=s", "--order=o",
                  "--amount=5000"});
  ASSERT_EQ(r.code, kExitOk) << r.err;
  EXPECT_NE(r.out.find("\"contribution\":\"100\""), std::string::npos) << r.out;
}

TEST(CheckoutCliTest, UsageMistakesExitTwoWithoutACall) {
  const std::vector<std::vector<std::string>> cases = {
      {"purchase", "--store=s", "--amount=1"},                                // no --order
      {"purchase", "--store=s", "--order=o"},                                 // no amount
      {"purchase", "--store=s", "--order=o", "--yuan=1.001"},                 // a third decimal
      {"purchase", "--store=s", "--order=o", "--yuan=1", "--sale_time=now"},  // not a time
      {"purchase", "--store=s", "--order=o", "--yuan=1", "--sale_time=2024-09-01",
       "--sale_time_us=1"},
      {"purchase", "--store=s", "--order=o", "--yuan=1", "--order=p"},  // given twice
      {"refund", "--store=s", "--order=o", "--yuan=1"},                 // no --refund_id
      {"refund", "--store=s", "--order=o", "--refund_id=r", "--yuan=1", "--asset=CNY"},
      {"redeem", "--store=s", "--order=o", "--code=SHORT", "--yuan=1"},
      {"redeem", "--store=s", "--order=o", "--yuan=1"},
      {"settlement"},
      {"settlement", "--day=2024-9-1"},
      {"settlement", "--day=2024-09-01", "--from=2024-09-01"},
      {"settlement", "--to=2024-09-02"},
      {"settlement", "--from=2024-09-02", "--to=2024-09-01"},
      {"voucher-issue", "--client_id=c", "--from=fund/general", "--recipient=recipient/x",
       "--yuan=500"},  // no expiry
      {"voucher-issue", "--client_id=c", "--from=fund/general", "--recipient=recipient/x",
       "--yuan=500", "--expires=2030-01-01", "--store=a,"},
      {"voucher-void", "--client_id=c", "--voucher=3"},  // no reason
      {"voucher-void", "--client_id=c", "--voucher=0", "--reason=r"},
      {"voucher"},
      {"voucher", "--voucher=1", "--code=ABCDEFGHIJKLMNOPQRSTUVWXYZ"},
      {"voucher-sweep", "--max=-1"},
      {"voucher-report", "--bogus"},
  };
  for (const std::vector<std::string>& args : cases) {
    std::vector<std::string> with_server = args;
    with_server.push_back("--server=127.0.0.1:1");  // never reached
    const CliResult r = RunCommand(with_server);
    EXPECT_EQ(r.code, kExitUsage) << absl::StrJoin(args, " ") << ": " << r.err;
  }
  // A mistyped voucher code is not echoed back.
  const CliResult r = RunCommand({"redeem", "--store=s", "--order=o", "--yuan=1",
                                  "--code=SECRETSECRETSECRETSECRET01"});
  EXPECT_EQ(r.code, kExitUsage);
  EXPECT_EQ(r.err.find("SECRETSECRET"), std::string::npos) << r.err;
}

TEST(CheckoutCliTest, RefundAndRedeemSendWhatWasTyped) {
  FakeServer server({});
  CliResult r = RunCommand({"refund", "--server=" + server.address(), "--store=store/supermarket",
                            "--order=A-1001", "--refund_id=R-1", "--yuan=6.17"});
  ASSERT_EQ(r.code, kExitOk) << r.err;
  const v1::RefundRequest refund = server.checkout().last_refund();
  EXPECT_EQ(refund.order_id(), "A-1001");
  EXPECT_EQ(refund.refund_id(), "R-1");
  EXPECT_EQ(refund.amount(), 617);
  EXPECT_NE(r.out.find("0.13 CNY"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("0.05 CNY (the lot was spent"), std::string::npos) << r.out;

  r = RunCommand({"refund", "--server=" + server.address(), "--store=s", "--order=o",
                  "--refund_id=again", "--amount=1"});
  ASSERT_EQ(r.code, kExitOk) << r.err;
  EXPECT_NE(r.out.find("duplicate"), std::string::npos) << r.out;

  r = RunCommand({"refund", "--server=" + server.address(), "--store=s", "--order=o",
                  "--refund_id=r2", "--amount=1235"});
  EXPECT_EQ(r.code, kExitError);
  EXPECT_EQ(r.err, "error: FAILED_PRECONDITION: refund.amount: 12.34 of the order is refundable\n");

  r = RunCommand({"redeem", "--server=" + server.address(), "--store=store/supermarket",
                  "--order=A-1002", "--code=abcd-efgh-ijkl-mnop-qrst-uvwx-yz", "--yuan=300"});
  ASSERT_EQ(r.code, kExitOk) << r.err;
  const v1::RedeemRequest redeem = server.checkout().last_redeem();
  EXPECT_EQ(redeem.code(), "ABCDEFGHIJKLMNOPQRSTUVWXYZ");
  EXPECT_EQ(redeem.amount(), 30'000);
  EXPECT_NE(r.out.find("remaining"), std::string::npos);
  EXPECT_NE(r.out.find("200.00 CNY"), std::string::npos) << r.out;
}

TEST(CheckoutCliTest, SettlementDaysAreChinaTime) {
  FakeServer server({});
  CliResult r = RunCommand({"settlement", "--server=" + server.address(), "--day=2024-09-01",
                            "--store=store/supermarket"});
  ASSERT_EQ(r.code, kExitOk) << r.err;
  v1::SettlementRequest req = server.checkout().last_settlement();
  EXPECT_EQ(req.store(), "store/supermarket");
  EXPECT_EQ(req.from_time_us(), *ParseTimeUs("2024-09-01T00:00:00+08:00"));
  EXPECT_EQ(req.to_time_us(), *ParseTimeUs("2024-09-02T00:00:00+08:00"));
  EXPECT_NE(r.out.find("1234.56"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("24.49"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("NET-CONTRIB"), std::string::npos) << r.out;

  // A period: --to defaults to now (0).
  r = RunCommand({"settlement", "--server=" + server.address(), "--from=2024-09-01"});
  ASSERT_EQ(r.code, kExitOk) << r.err;
  req = server.checkout().last_settlement();
  EXPECT_EQ(req.store(), "");
  EXPECT_EQ(req.from_time_us(), *ParseTimeUs("2024-09-01"));
  EXPECT_EQ(req.to_time_us(), 0);
  EXPECT_NE(r.out.find(" to now"), std::string::npos) << r.out;

  r = RunCommand({"settlement", "--server=" + server.address(), "--from_us=10", "--to_us=20"});
  ASSERT_EQ(r.code, kExitOk) << r.err;
  EXPECT_EQ(server.checkout().last_settlement().from_time_us(), 10);
  EXPECT_EQ(server.checkout().last_settlement().to_time_us(), 20);
}

TEST(VoucherCliTest, IssueSendsStoresAndExpiryAndPrintsTheCode) {
  FakeServer server({});
  CliResult r = RunCommand({"voucher-issue", "--server=" + server.address(), "--client_id=v-1",
                            "--from=fund/general", "--recipient=recipient/abc", "--yuan=500",
                            "--expires=2030-01-01", "--store=store/supermarket",
                            "--store=store/mall-a,store/mall-b", "--memo=winter"});
  ASSERT_EQ(r.code, kExitOk) << r.err;
  const v1::IssueVoucherRequest req = server.vouchers().last_issue();
  EXPECT_EQ(req.client_id(), "v-1");
  EXPECT_EQ(req.from(), "fund/general");
  EXPECT_EQ(req.recipient(), "recipient/abc");
  EXPECT_EQ(req.amount(), 50'000);
  EXPECT_EQ(req.expires_us(), *ParseTimeUs("2029-12-31T16:00:00Z"));
  EXPECT_EQ(std::vector<std::string>(req.stores().begin(), req.stores().end()),
            (std::vector<std::string>{"store/supermarket", "store/mall-a", "store/mall-b"}));
  EXPECT_EQ(req.memo(), "winter");
  EXPECT_NE(r.out.find(FakeVouchers::kCode), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("500.00 CNY"), std::string::npos) << r.out;

  r = RunCommand({"voucher-issue", "--server=" + server.address(), "--client_id=v-2",
                  "--from=fund/general", "--recipient=recipient/abc", "--amount=100",
                  "--expires_us=99"});
  ASSERT_EQ(r.code, kExitOk) << r.err;
  EXPECT_EQ(server.vouchers().last_issue().expires_us(), 99);
  EXPECT_EQ(server.vouchers().last_issue().stores_size(), 0);
  EXPECT_NE(r.out.find("any store"), std::string::npos) << r.out;
}

TEST(VoucherCliTest, ShowVoidSweepAndReport) {
  FakeServer server({});
  CliResult r = RunCommand({"voucher", "--server=" + server.address(), "--voucher=9"});
  ASSERT_EQ(r.code, kExitOk) << r.err;
  EXPECT_EQ(server.vouchers().last_get().voucher(), 9u);
  EXPECT_NE(r.out.find("active"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("300.00 CNY in 2 redemptions"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("east-gate"), std::string::npos) << r.out;

  r = RunCommand({"voucher", "--server=" + server.address(), "--code=abcdefghijklmnopqrstuvwxyz"});
  ASSERT_EQ(r.code, kExitOk) << r.err;
  EXPECT_EQ(server.vouchers().last_get().code(), FakeVouchers::kCode);
  r = RunCommand({"voucher", "--server=" + server.address(), "--code=ABCDEFGHIJKLMNOPQRSTUVWXY2"});
  EXPECT_EQ(r.code, kExitError);
  EXPECT_EQ(r.err, "error: NOT_FOUND: no voucher has this code\n");

  r = RunCommand({"voucher-void", "--server=" + server.address(), "--client_id=void-1",
                  "--voucher=9", "--reason=moved out of the district"});
  ASSERT_EQ(r.code, kExitOk) << r.err;
  EXPECT_EQ(server.vouchers().last_void().voucher(), 9u);
  EXPECT_EQ(server.vouchers().last_void().reason(), "moved out of the district");
  EXPECT_NE(r.out.find("seq"), std::string::npos);

  r = RunCommand({"voucher-sweep", "--server=" + server.address(), "--max=10"});
  ASSERT_EQ(r.code, kExitOk) << r.err;
  EXPECT_EQ(server.vouchers().last_sweep_max(), 10u);
  EXPECT_NE(r.out.find("200.00"), std::string::npos) << r.out;
  server.vouchers().set_sweep_fails(true);
  r = RunCommand({"voucher-sweep", "--server=" + server.address()});
  EXPECT_EQ(r.code, kExitError);
  EXPECT_NE(r.out.find("ABORTED: redeemed meanwhile"), std::string::npos) << r.out;
  EXPECT_EQ(r.err.rfind("error: ABORTED: 1 of 2 expired vouchers were not swept", 0), 0u) << r.err;

  r = RunCommand({"voucher-report", "--server=" + server.address()});
  ASSERT_EQ(r.code, kExitOk) << r.err;
  EXPECT_NE(r.out.find("by fund or project:"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("fund/general"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("by recipient category:\n(none)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("1500.00"), std::string::npos) << r.out;
  r = RunCommand({"--json", "voucher-report", "--server=" + server.address()});
  ASSERT_EQ(r.code, kExitOk) << r.err;
  EXPECT_NE(r.out.find("\"issuedAmount\":\"150000\""), std::string::npos) << r.out;
}

TEST(CliTest, HelpListsTheCheckoutAndVoucherCommands) {
  const CliResult r = RunCommand({"help"});
  EXPECT_NE(r.out.find("China time"), std::string::npos);
  for (const char* command : {"purchase", "refund", "redeem", "settlement", "voucher-issue",
                              "voucher-void", "voucher", "voucher-sweep", "voucher-report"}) {
    EXPECT_NE(r.out.find(std::string("  ") + command + " "), std::string::npos) << command;
    const CliResult help = RunCommand({"help", command});
    EXPECT_EQ(help.code, kExitOk) << command;
    EXPECT_NE(help.out.find(std::string("usage: warmledger ") + command), std::string::npos);
  }
  EXPECT_NE(RunCommand({"settlement", "--help"}).out.find("UTC+08:00"), std::string::npos);
}

TEST(CliTest, HandoutSendsTheLinesOfTheFlagsAndTheFileInOrder) {
  FakeServer server({});
  TempDir dir;
  {
    std::ofstream file(dir.Sub("households.txt"));
    file << "# distribution day 1\n"
         << "recipient/c 3\n"
         << "\n"
         << "  recipient/d\t\t4  \n";
  }
  const CliResult r = RunCommand(
      {"handout", "--server=" + server.address(), "--client_id=h-1", "--from=stock/box",
       "--item=item:box", "--line=recipient/a:1", "--line=recipient/b:2",
       "--lines_file=" + dir.Sub("households.txt"), "--purpose=Spring Festival"});
  ASSERT_EQ(r.code, kExitOk) << r.err;
  const v1::HandOutRequest req = server.goods().last_handout();
  EXPECT_EQ(req.client_id(), "h-1");
  EXPECT_EQ(req.from(), "stock/box");
  EXPECT_EQ(req.item(), "item:box");
  EXPECT_EQ(req.purpose(), "Spring Festival");
  ASSERT_EQ(req.lines_size(), 4);
  const std::pair<const char*, int64_t> want[] = {
      {"recipient/a", 1}, {"recipient/b", 2}, {"recipient/c", 3}, {"recipient/d", 4}};
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(req.lines(i).recipient(), want[i].first) << i;
    EXPECT_EQ(req.lines(i).quantity(), want[i].second) << i;
  }
  EXPECT_NE(r.out.find("handed out  10 item:box"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("recipients  4"), std::string::npos) << r.out;
}

TEST(CliTest, HandoutRefusesMalformedLinesAndTooManyRecipients) {
  TempDir dir;
  const std::vector<std::string> base = {"handout", "--client_id=h", "--from=stock/box",
                                         "--item=item:box"};
  auto with = [&](std::vector<std::string> extra) {
    std::vector<std::string> args = base;
    args.insert(args.end(), extra.begin(), extra.end());
    return RunCommand(args);
  };
  EXPECT_EQ(with({}).code, kExitUsage);  // no lines at all
  EXPECT_EQ(with({"--line=recipient/a"}).code, kExitUsage);
  EXPECT_EQ(with({"--line=recipient/a:"}).code, kExitUsage);
  EXPECT_EQ(with({"--line=:3"}).code, kExitUsage);
  EXPECT_EQ(with({"--line=recipient/a:two"}).code, kExitUsage);
  {
    std::ofstream file(dir.Sub("bad.txt"));
    file << "recipient/a 1\nrecipient/b\n";
  }
  CliResult r = with({"--lines_file=" + dir.Sub("bad.txt")});
  EXPECT_EQ(r.code, kExitUsage);
  EXPECT_NE(r.err.find("line 2"), std::string::npos) << r.err;
  {
    std::ofstream file(dir.Sub("many.txt"));
    for (size_t i = 0; i <= kHandoutLinesMax; ++i) file << "recipient/r" << i << " 1\n";
  }
  r = with({"--lines_file=" + dir.Sub("many.txt")});
  EXPECT_EQ(r.code, kExitUsage);
  EXPECT_NE(r.err.find("split"), std::string::npos) << r.err;
  r = with({"--lines_file=" + dir.Sub("missing.txt")});
  EXPECT_EQ(r.code, kExitError);
}

TEST(CliTest, GoodsAmountsAreExactAndTheirFlagsExclusive) {
  FakeServer server({});
  const std::vector<std::string> buy = {"goods-buy",          "--server=" + server.address(),
                                        "--client_id=b-1",    "--from=fund/general",
                                        "--supplier=supplier/s", "--to=stock/box",
                                        "--item=item:box",    "--quantity=700"};
  auto with = [](std::vector<std::string> args, std::vector<std::string> extra) {
    args.insert(args.end(), extra.begin(), extra.end());
    return RunCommand(args);
  };
  CliResult r = with(buy, {"--price_yuan=105000.50"});
  ASSERT_EQ(r.code, kExitOk) << r.err;
  EXPECT_EQ(server.goods().last_buy().price(), 10'500'050);
  EXPECT_EQ(server.goods().last_buy().asset(), "CNY");
  EXPECT_EQ(server.goods().last_buy().quantity(), 700);
  EXPECT_NE(r.out.find("105000.50 CNY"), std::string::npos) << r.out;
  EXPECT_EQ(with(buy, {}).code, kExitUsage);
  EXPECT_EQ(with(buy, {"--price=1", "--price_yuan=1"}).code, kExitUsage);
  EXPECT_EQ(with(buy, {"--price_yuan=1.001"}).code, kExitUsage);

  const std::vector<std::string> gift = {"goods-gift", "--server=" + server.address(),
                                         "--client_id=g-1", "--donor=donor/co",
                                         "--to=stock/box", "--item=item:box", "--quantity=5"};
  r = with(gift, {"--value_yuan=12.50", "--expires=2099-12-31", "--channel=company"});
  ASSERT_EQ(r.code, kExitOk) << r.err;
  const v1::GiveGoodsRequest g = server.goods().last_give();
  EXPECT_EQ(g.value(), 1250);
  EXPECT_EQ(g.value_asset(), "CNY");
  EXPECT_EQ(g.expires_us(), 4'102'329'600'000'000);  // 2099-12-31T00:00+08:00
  EXPECT_EQ(g.channel(), v1::COMPANY_GIFT);
  EXPECT_NE(r.out.find("GOODSCODE234567ABCDEFGHIJK"), std::string::npos) << r.out;
  r = with(gift, {});
  ASSERT_EQ(r.code, kExitOk) << r.err;
  EXPECT_EQ(server.goods().last_give().value_asset(), "");  // no appraisal
  EXPECT_EQ(with(gift, {"--value_asset=USD"}).code, kExitUsage);
  EXPECT_EQ(with(gift, {"--expires=tomorrow"}).code, kExitUsage);

  r = RunCommand({"items", "--server=" + server.address()});
  ASSERT_EQ(r.code, kExitOk) << r.err;
  EXPECT_NE(r.out.find("Box of daily necessities"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("1234"), std::string::npos) << r.out;
}

TEST(CliTest, TraceShowsWhatAGiftBoughtAndWhoReceivedItByCategory) {
  FakeServer server({});
  CliResult r = RunCommand({"trace", "--code=goods", "--server=" + server.address()});
  ASSERT_EQ(r.code, kExitOk) << r.err;
  EXPECT_NE(r.out.find("100.00 CNY of this lot went into goods-purchase 30"), std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("this lot's share, 3 item:box"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("recipients"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("dibao"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("c007"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("66.66"), std::string::npos) << r.out;

  r = RunCommand({"trace", "--code=goods-unbalanced", "--server=" + server.address()});
  EXPECT_EQ(r.code, kExitError);
  EXPECT_EQ(r.err.rfind("error: DATA_LOSS: ", 0), 0u) << r.err;
}

TEST(CliTest, HelpListsTheGoodsCommands) {
  const CliResult r = RunCommand({"help"});
  for (const char* command :
       {"item-define", "items", "goods-gift", "goods-buy", "handout", "write-off", "goods-sale"}) {
    EXPECT_NE(r.out.find(std::string("  ") + command + " "), std::string::npos) << command;
    const CliResult help = RunCommand({"help", command});
    EXPECT_EQ(help.code, kExitOk) << command;
    EXPECT_NE(help.out.find(std::string("usage: warmledger ") + command), std::string::npos);
  }
  EXPECT_NE(RunCommand({"handout", "--help"}).out.find("--lines_file"), std::string::npos);
}

TEST(AidCliTest, AidRuleSendsTheRuleAndMaxZeroLiftsIt) {
  FakeServer server({});
  CliResult r =
      RunCommand({"aid-rule", "--server=" + server.address(), "--client_id=rule-1",
                  "--aid=daily-box", "--type=handout", "--source=stock/daily-necessities",
                  "--asset=item:daily-box", "--max=1", "--period=month", "--memo=one box a month"});
  ASSERT_EQ(r.code, kExitOk) << r.err;
  v1::SetAidRuleRequest req = server.aid().last_rule();
  EXPECT_EQ(req.client_id(), "rule-1");
  EXPECT_EQ(req.aid(), "daily-box");
  EXPECT_EQ(req.type(), v1::HANDOUT);
  EXPECT_EQ(req.source(), "stock/daily-necessities");
  EXPECT_EQ(req.asset(), "item:daily-box");
  EXPECT_EQ(req.max_count(), 1u);
  EXPECT_EQ(req.period(), v1::MONTH);
  EXPECT_EQ(req.memo(), "one box a month");
  EXPECT_NE(r.out.find("daily-box: at most 1 handout per month to each recipient from "
                       "stock/daily-necessities in item:daily-box"),
            std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("seq   50"), std::string::npos) << r.out;

  const std::pair<const char*, v1::EntryType> types[] = {{"disbursement", v1::DISBURSEMENT},
                                                         {"voucher", v1::VOUCHER_ISSUE}};
  for (const auto& [name, type] : types) {
    r = RunCommand({"aid-rule", "--server=" + server.address(), "--client_id=rule-2", "--aid=cash",
                    std::string("--type=") + name, "--max=3", "--period=quarter"});
    ASSERT_EQ(r.code, kExitOk) << r.err;
    EXPECT_EQ(server.aid().last_rule().type(), type);
    EXPECT_EQ(server.aid().last_rule().period(), v1::QUARTER);
    EXPECT_EQ(server.aid().last_rule().source(), "");
    EXPECT_EQ(server.aid().last_rule().asset(), "");
  }
  const std::pair<const char*, v1::AidPeriod> periods[] = {
      {"day", v1::DAY}, {"week", v1::WEEK}, {"year", v1::YEAR}};
  for (const auto& [name, period] : periods) {
    r = RunCommand({"aid-rule", "--server=" + server.address(), "--client_id=rule-3", "--aid=cash",
                    "--type=disbursement", "--max=2", std::string("--period=") + name});
    ASSERT_EQ(r.code, kExitOk) << r.err;
    EXPECT_EQ(server.aid().last_rule().period(), period);
  }

  r = RunCommand({"aid-rule", "--server=" + server.address(), "--client_id=rule-4",
                  "--aid=daily-box", "--type=handout", "--max=0", "--period=month"});
  ASSERT_EQ(r.code, kExitOk) << r.err;
  EXPECT_EQ(server.aid().last_rule().max_count(), 0u);
  EXPECT_NE(r.out.find("daily-box lifted"), std::string::npos) << r.out;

  // Usage mistakes exit 2 without a call.
  const int calls = server.aid().calls();
  const std::vector<std::string> base = {"aid-rule", "--server=" + server.address(),
                                         "--client_id=c", "--aid=a"};
  auto with = [&](std::vector<std::string> extra) {
    std::vector<std::string> args = base;
    args.insert(args.end(), extra.begin(), extra.end());
    return RunCommand(args);
  };
  EXPECT_EQ(with({"--type=donation", "--max=1", "--period=month"}).code, kExitUsage);
  EXPECT_EQ(with({"--type=handout", "--max=1", "--period=fortnight"}).code, kExitUsage);
  EXPECT_EQ(with({"--type=handout", "--max=-1", "--period=month"}).code, kExitUsage);
  EXPECT_EQ(with({"--type=handout", "--max=4294967296", "--period=month"}).code, kExitUsage);
  EXPECT_EQ(with({"--type=handout", "--period=month"}).code, kExitUsage);  // no --max
  EXPECT_EQ(with({"--max=1", "--period=month"}).code, kExitUsage);         // no --type
  r = with({"--type=handouts", "--max=1", "--period=month"});
  EXPECT_NE(r.err.find("--type must be disbursement, voucher or handout"), std::string::npos)
      << r.err;
  EXPECT_EQ(server.aid().calls(), calls);
}

TEST(AidCliTest, AidRulesListsTheRulesInForce) {
  FakeServer server({});
  CliResult r = RunCommand({"aid-rules", "--server=" + server.address()});
  ASSERT_EQ(r.code, kExitOk) << r.err;
  EXPECT_NE(r.out.find("AID"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("daily-box"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("stock/daily-necessities"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("one box a month per household"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("quarter"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("voucher"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("(any)"), std::string::npos) << r.out;
  r = RunCommand({"--json", "aid-rules", "--server=" + server.address()});
  ASSERT_EQ(r.code, kExitOk) << r.err;
  EXPECT_NE(r.out.find("\"period\":\"QUARTER\""), std::string::npos) << r.out;
}

TEST(AidCliTest, AidReportDaysAreChinaTimeAndThePublicViewSaysWhatWasLeftOut) {
  FakeServer server({});
  CliResult r = RunCommand(
      {"aid-report", "--server=" + server.address(), "--from=2024-01-01", "--to=2024-04-01"});
  ASSERT_EQ(r.code, kExitOk) << r.err;
  v1::AidReportRequest req = server.aid().last_report();
  EXPECT_EQ(req.from_time_us(), *ParseTimeUs("2024-01-01T00:00:00+08:00"));
  EXPECT_EQ(req.to_time_us(), *ParseTimeUs("2024-04-01T00:00:00+08:00"));
  EXPECT_FALSE(req.public_view());
  EXPECT_NE(r.out.find("office aid report from 2024-01-01 00:00:00 to 2024-04-01 00:00:00"),
            std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("elderly-poverty"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("12345.00"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("item:daily-box"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("left out"), std::string::npos) << r.out;

  // The public view, to now; no token needed.
  r = RunCommand({"aid-report", "--server=" + server.address(), "--from=2024-01-01", "--public"});
  ASSERT_EQ(r.code, kExitOk) << r.err;
  req = server.aid().last_report();
  EXPECT_TRUE(req.public_view());
  EXPECT_EQ(req.to_time_us(), 0);
  EXPECT_NE(r.out.find("public aid report"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("3 cells of fewer than 5 people left out"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("dibao"), std::string::npos) << r.out;

  r = RunCommand({"--json", "aid-report", "--server=" + server.address(), "--from_us=10",
                  "--to_us=20", "--public"});
  ASSERT_EQ(r.code, kExitOk) << r.err;
  EXPECT_NE(r.out.find("\"suppressedCells\":\"3\""), std::string::npos) << r.out;
  EXPECT_EQ(server.aid().last_report().from_time_us(), 10);

  const int calls = server.aid().calls();
  EXPECT_EQ(RunCommand({"aid-report", "--server=" + server.address()}).code, kExitUsage);
  EXPECT_EQ(RunCommand({"aid-report", "--server=" + server.address(), "--from=2024-04-01",
                        "--to=2024-01-01"})
                .code,
            kExitUsage);
  EXPECT_EQ(RunCommand({"aid-report", "--server=" + server.address(), "--from=yesterday"}).code,
            kExitUsage);
  EXPECT_EQ(server.aid().calls(), calls);
}

TEST(AidCliTest, OverrideReachesDisburseVoucherIssueAndHandout) {
  FakeServer server({});
  const std::vector<std::string> pay = {"disburse",
                                        "--server=" + server.address(),
                                        "--client_id=p-2",
                                        "--from=fund/general",
                                        "--to=recipient/twice",
                                        "--yuan=300"};
  CliResult r = RunCommand(pay);
  EXPECT_EQ(r.code, kExitError);
  EXPECT_EQ(r.err.rfind("error: FAILED_PRECONDITION: disbursement.to: ", 0), 0u) << r.err;
  EXPECT_NE(r.err.find("last by entry 12"), std::string::npos) << r.err;
  std::vector<std::string> again = pay;
  again.push_back("--override=house fire: approved by the director");
  r = RunCommand(again);
  ASSERT_EQ(r.code, kExitOk) << r.err;
  EXPECT_EQ(server.ledger().last_disburse().override_reason(),
            "house fire: approved by the director");
  EXPECT_EQ(server.ledger().last_disburse().amount(), 30'000);
  EXPECT_NE(r.out.find("override  house fire: approved by the director"), std::string::npos)
      << r.out;

  r = RunCommand({"voucher-issue", "--server=" + server.address(), "--client_id=v-2",
                  "--from=fund/general", "--recipient=recipient/abc", "--yuan=500",
                  "--expires=2030-01-01", "--override=household of six"});
  ASSERT_EQ(r.code, kExitOk) << r.err;
  EXPECT_EQ(server.vouchers().last_issue().override_reason(), "household of six");
  EXPECT_NE(r.out.find("household of six"), std::string::npos) << r.out;

  r = RunCommand({"handout", "--server=" + server.address(), "--client_id=h-2", "--from=stock/box",
                  "--item=item:box", "--line=recipient/a:1",
                  "--override=the first box was damaged"});
  ASSERT_EQ(r.code, kExitOk) << r.err;
  EXPECT_EQ(server.goods().last_handout().override_reason(), "the first box was damaged");

  // Without --override nothing is sent.
  r = RunCommand({"handout", "--server=" + server.address(), "--client_id=h-3", "--from=stock/box",
                  "--item=item:box", "--line=recipient/a:1"});
  ASSERT_EQ(r.code, kExitOk) << r.err;
  EXPECT_EQ(server.goods().last_handout().override_reason(), "");
  EXPECT_EQ(r.out.find("override"), std::string::npos) << r.out;
}

TEST(CliTest, HelpListsTheAidCommands) {
  const CliResult r = RunCommand({"help"});
  for (const char* command : {"aid-rule", "aid-rules", "aid-report"}) {
    EXPECT_NE(r.out.find(std::string("  ") + command + " "), std::string::npos) << command;
    const CliResult help = RunCommand({"help", command});
    EXPECT_EQ(help.code, kExitOk) << command;
    EXPECT_NE(help.out.find(std::string("usage: warmledger ") + command), std::string::npos);
  }
  EXPECT_NE(RunCommand({"aid-report", "--help"}).out.find("--public"), std::string::npos);
  for (const char* command : {"disburse", "voucher-issue", "handout"}) {
    EXPECT_NE(RunCommand({command, "--help"}).out.find("--override"), std::string::npos) << command;
  }
}

}  // namespace
}  // namespace warmledger::client

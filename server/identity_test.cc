#include "server/identity.h"

#include <sys/stat.h>

#include <atomic>
#include <cctype>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "ledger/sha256.h"

namespace warmledger::server {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

// 410103 (Erqi District) + 1990-03-07 + 123, check character computed.
std::string ValidId(std::string first17 = "41010319900307123") {
  return first17 + ResidentIdCheckChar(first17);
}

TEST(ResidentIdTest, KnownCheckCharactersFollowIso7064Mod11_2) {
  // Published example: 11010519491231002X.
  EXPECT_EQ(ResidentIdCheckChar("11010519491231002"), 'X');
  EXPECT_TRUE(ValidateResidentId("11010519491231002X", 20261128).ok());
  EXPECT_TRUE(ValidateResidentId("11010519491231002x", 20261128).ok());
}

TEST(ResidentIdTest, EveryWrongCheckCharacterIsRejected) {
  std::string id = ValidId();
  for (char c : std::string("0123456789X")) {
    if (c == id[17]) continue;
    std::string bad = id.substr(0, 17) + c;
    absl::Status s = ValidateResidentId(bad, 20261128);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_THAT(std::string(s.message()), HasSubstr("check character"));
  }
}

TEST(ResidentIdTest, WrongLengthAndNonDigitsAreRejectedNamingTheField) {
  for (std::string bad : {std::string(""), ValidId().substr(0, 17), ValidId() + "1",
                          std::string("4101031990030712A3")}) {
    absl::Status s = ValidateResidentId(bad, 20261128);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_THAT(std::string(s.message()), HasSubstr("id_number"));
  }
}

TEST(ResidentIdTest, ImpossibleDatesOfBirthAreRejected) {
  for (const char* date : {"19900230", "19900431", "18991231", "20300101", "19901301",
                           "19900100", "21000229"}) {
    std::string first17 = std::string("410103") + date + "123";
    EXPECT_EQ(ValidateResidentId(ValidId(first17), 20261128).code(),
              absl::StatusCode::kInvalidArgument)
        << date;
  }
  EXPECT_TRUE(ValidateResidentId(ValidId("41010320000229123"), 20261128).ok());  // leap day
}

TEST(ResidentIdTest, ErrorsNeverQuoteTheNumber) {
  std::string id = ValidId();
  id[17] = id[17] == '0' ? '1' : '0';
  EXPECT_THAT(std::string(ValidateResidentId(id, 20261128).message()), Not(HasSubstr(id)));
  EXPECT_THAT(std::string(ValidateResidentId(id.substr(0, 16), 20261128).message()),
              Not(HasSubstr(id.substr(0, 16))));
}

// RFC 4231, test cases 1 and 2: HMAC-SHA-256 known answers.
TEST(SecretKeyTest, MacMatchesRfc4231KnownAnswers) {
  EXPECT_EQ(HashToHex(SecretKey(std::string(20, '\x0b')).Mac("Hi There")),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
  EXPECT_EQ(HashToHex(SecretKey("Jefe").Mac("what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

TEST(SecretKeyTest, RepeatedAndConcurrentMacsAgreeAndAMovedKeyKeepsItsState) {
  SecretKey key("Jefe");
  const Hash expected = key.Mac("what do ya want for nothing?");
  EXPECT_EQ(key.Mac("what do ya want for nothing?"), expected);
  std::vector<std::thread> threads;
  std::atomic<int> mismatches{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 1000; ++i) {
        if (key.Mac("what do ya want for nothing?") != expected) ++mismatches;
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(mismatches.load(), 0);
  SecretKey moved(std::move(key));
  EXPECT_EQ(moved.Mac("what do ya want for nothing?"), expected);
}

TEST(SecretKeyTest, KeysUsedInTurnOnOneThreadKeepTheirOwnMacs) {
  const SecretKey jefe("Jefe");
  const Hash expected = SecretKey("Jefe").Mac("what do ya want for nothing?");
  for (int round = 0; round < 3; ++round) {
    // A key made and dropped in between (perhaps at the same address) must
    // not leave its state behind for the next one.
    const SecretKey other(std::string(20, static_cast<char>('a' + round)));
    EXPECT_NE(other.Mac("what do ya want for nothing?"), expected);
    EXPECT_EQ(jefe.Mac("what do ya want for nothing?"), expected);
  }
  EXPECT_EQ(HashToHex(SecretKey(std::string(20, '\x0b')).Mac("Hi There")),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
}

TEST(PseudonymTest, IsKeyedStableAndHidesTheNumber) {
  const SecretKey key1(std::string(32, 'a')), key2(std::string(32, 'b'));
  std::string id = ValidId();
  std::string p1 = RecipientPseudonym(key1, id);
  EXPECT_EQ(p1, RecipientPseudonym(key1, id));
  EXPECT_NE(p1, RecipientPseudonym(key2, id));
  EXPECT_EQ(p1.size(), std::string("recipient/").size() + 32);
  EXPECT_THAT(p1, Not(HasSubstr(id.substr(6, 8))));
  // A lower-case x names the same person as an upper-case X.
  EXPECT_EQ(RecipientPseudonym(key1, "11010519491231002x"),
            RecipientPseudonym(key1, "11010519491231002X"));
}

TEST(TraceCodeTest, Is26Base32CharactersDeterministicPerClientId) {
  const SecretKey key(std::string(32, 'k'));
  std::string code = TraceCode(key, "don-1");
  EXPECT_EQ(code.size(), 26u);
  for (char c : code) EXPECT_TRUE((c >= 'A' && c <= 'Z') || (c >= '2' && c <= '7')) << c;
  EXPECT_EQ(code, TraceCode(key, "don-1"));
  EXPECT_NE(code, TraceCode(key, "don-2"));
  EXPECT_NE(code, TraceCode(SecretKey(std::string(32, 'j')), "don-1"));
  EXPECT_EQ(CodeHash(code).size(), 32u);
}

TEST(VoucherCodeTest, IsDeterministicPerClientIdAndNeverATraceCode) {
  const SecretKey key(std::string(32, 'k'));
  std::string code = VoucherCode(key, "issue-1");
  EXPECT_TRUE(IsCodeForm(code)) << code;
  EXPECT_EQ(code, VoucherCode(key, "issue-1"));
  EXPECT_NE(code, VoucherCode(key, "issue-2"));
  EXPECT_NE(code, VoucherCode(SecretKey(std::string(32, 'j')), "issue-1"));
  // The HMAC domains differ: the same client id gives another code.
  EXPECT_NE(code, TraceCode(key, "issue-1"));
}

TEST(VoucherCodeTest, NormalizeAcceptsTypedFormsAndRejectsOthersNamingCode) {
  const std::string code = VoucherCode(SecretKey(std::string(32, 'k')), "issue-1");
  std::string typed = "  ";
  for (size_t i = 0; i < code.size(); ++i) {
    if (i > 0 && i % 4 == 0) typed += (i % 8 == 0) ? " " : "-";
    typed.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(code[i]))));
  }
  typed += "\n";
  auto normalized = NormalizeVoucherCode(typed);
  ASSERT_TRUE(normalized.ok()) << normalized.status();
  EXPECT_EQ(*normalized, code);
  for (const std::string& bad :
       {std::string(), code.substr(1), code + "A", code.substr(1) + "1", code.substr(1) + "=",
        std::string(200, 'A')}) {
    auto s = NormalizeVoucherCode(bad);
    ASSERT_FALSE(s.ok()) << bad;
    EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(s.status().message()), HasSubstr("code"));
  }
}

class KeyFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::path(::testing::TempDir()) /
           ("keyfile-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::filesystem::path dir_;
};

TEST_F(KeyFileTest, IsCreatedWithMode0600AndReadBackUnchanged) {
  std::string path = (dir_ / "keys" / "k.key").string();
  auto created = LoadOrCreateKey(path);
  ASSERT_TRUE(created.ok()) << created.status();
  EXPECT_EQ(created->size(), 32u);
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto again = LoadOrCreateKey(path);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again, *created);
}

TEST_F(KeyFileTest, GroupReadableKeyIsRefused) {
  std::string path = (dir_ / "k.key").string();
  ASSERT_TRUE(LoadOrCreateKey(path).ok());
  ::chmod(path.c_str(), 0640);
  EXPECT_EQ(LoadOrCreateKey(path).status().code(), absl::StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace warmledger::server

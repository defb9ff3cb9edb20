#include "ledger/note.h"

#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "ledger/sha256.h"
#include "ledger/status_macros.h"

namespace warmledger {
namespace {

using ::testing::EndsWith;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

constexpr char kOrigin[] = "warmledger.example/log";
constexpr char kEmDashSpace[] = "\xE2\x80\x94 ";

// RFC 8032 section 7.1, TEST 1 (the empty message).
constexpr char kRfc8032Secret[] =
    "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
constexpr char kRfc8032Public[] =
    "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";
constexpr char kRfc8032Signature[] =
    "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9"
    "b46bd25bf5f0595bbe24655141438e7a100b";

// The example in golang.org/x/mod/sumdb/note's package documentation: an
// independent implementation's keys and signed note.
constexpr char kGoSigningKey[] =
    "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
constexpr char kGoVerifierKey[] =
    "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
constexpr char kGoText[] =
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n";
constexpr char kGoNote[] =
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
    "\n"
    "\xE2\x80\x94 PeterNeumann "
    "x08go/ZJkuBS9UG/"
    "SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";

std::string KeyIdHex(uint32_t key_id) { return absl::StrCat(absl::Hex(key_id, absl::kZeroPad8)); }

std::string Unhex(std::string_view hex) { return absl::HexStringToBytes(ToAbsl(hex)); }

template <size_t N>
std::array<uint8_t, N> UnhexArray(std::string_view hex) {
  std::string bytes = Unhex(hex);
  std::array<uint8_t, N> out{};
  EXPECT_EQ(bytes.size(), N);
  std::copy(bytes.begin(), bytes.end(), out.begin());
  return out;
}

std::string AsString(const Hash& h) { return std::string(h.begin(), h.end()); }

// SHA-256(name || '\n' || 0x01 || public key)[:4], computed independently of
// note.cc.
uint32_t ExpectedKeyId(std::string_view name, std::string_view public_key) {
  Hash h = Sha256(absl::StrCat(ToAbsl(name), "\n\x01", ToAbsl(public_key)));
  return (uint32_t{h[0]} << 24) | (uint32_t{h[1]} << 16) | (uint32_t{h[2]} << 8) | h[3];
}

// The signing-key text for a known seed and its known public key.
std::string SigningKeyText(std::string_view name, std::string_view seed,
                           std::string_view public_key) {
  return absl::StrCat("PRIVATE+KEY+", ToAbsl(name), "+", KeyIdHex(ExpectedKeyId(name, public_key)),
                      "+", Base64Encode(absl::StrCat("\x01", ToAbsl(seed))));
}

Checkpoint SampleCheckpoint() {
  Checkpoint c;
  c.origin = kOrigin;
  c.size = 20852163;
  c.root = Sha256("root");
  return c;
}

// The signature lines of a signed note (after the last blank line).
std::string SignatureLines(const std::string& note) { return note.substr(note.rfind("\n\n") + 2); }

// ---- Key names. ----

TEST(KeyNameTest, UrlLikeAndNonAsciiNamesAreAccepted) {
  for (std::string name : {std::string("example.com/log42"), std::string("PeterNeumann"),
                           std::string("caf\xC3\xA9.example"), std::string(256, 'n')}) {
    EXPECT_TRUE(ValidateKeyName(name).ok()) << name;
  }
}

TEST(KeyNameTest, NamesSignedNoteForbidsAreRejected) {
  const std::vector<std::string> bad = {
      "",
      "a+b",
      "a b",
      "a\tb",
      "a\nb",
      "a\xC2\xA0"
      "b",  // NO-BREAK SPACE
      "a\xE2\x80\x83"
      "b",  // EM SPACE
      "a\xE3\x80\x80"
      "b",  // IDEOGRAPHIC SPACE
      std::string("a\0b", 3),
      "a\x7f"
      "b",
      "a\xC2\x85"
      "b",             // NEL, a C1 control
      "\xC0\xAF",      // overlong '/'
      "\xED\xA0\x80",  // surrogate
      "\xFF",
      "a\xE2\x80",  // truncated sequence
      std::string(257, 'n'),
  };
  for (const std::string& name : bad) {
    absl::Status status = ValidateKeyName(name);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << absl::CHexEscape(name);
    EXPECT_THAT(std::string(status.message()), HasSubstr("key name"));
  }
}

// ---- Signing and verifying notes. ----

class SignedNoteTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<NoteSigner> signer = NoteSigner::Generate(kOrigin);
    ASSERT_TRUE(signer.ok()) << signer.status();
    signer_.emplace(*std::move(signer));
    absl::StatusOr<NoteVerifier> verifier = NoteVerifier::Parse(signer_->VerifierKey());
    ASSERT_TRUE(verifier.ok()) << verifier.status();
    verifier_.emplace(*std::move(verifier));
    text_ = FormatCheckpoint(SampleCheckpoint());
    absl::StatusOr<std::string> note = signer_->Sign(text_);
    ASSERT_TRUE(note.ok()) << note.status();
    note_ = *note;
  }

  // A signature line by a freshly generated key named `name` over text_.
  std::string ForeignSignatureLine(std::string_view name) {
    absl::StatusOr<NoteSigner> other = NoteSigner::Generate(name);
    EXPECT_TRUE(other.ok()) << other.status();
    if (!other.ok()) return "";
    absl::StatusOr<std::string> note = other->Sign(text_);
    EXPECT_TRUE(note.ok()) << note.status();
    return note.ok() ? SignatureLines(*note) : "";
  }

  // note_ with its signature's decoded bytes changed by `mutate`.
  template <typename F>
  std::string WithSignatureBytes(F mutate) {
    std::string line = SignatureLines(note_);
    std::string b64 = line.substr(line.rfind(' ') + 1);
    b64.pop_back();  // newline
    absl::StatusOr<std::string> bytes = Base64Decode(b64);
    EXPECT_TRUE(bytes.ok()) << bytes.status();
    std::string changed = *bytes;
    mutate(changed);
    return absl::StrCat(text_, "\n", kEmDashSpace, kOrigin, " ", Base64Encode(changed), "\n");
  }

  std::optional<NoteSigner> signer_;
  std::optional<NoteVerifier> verifier_;
  std::string text_;
  std::string note_;
};

TEST_F(SignedNoteTest, CheckpointVerifiesWithTheRightKey) {
  absl::StatusOr<std::string> text = verifier_->Open(note_);
  ASSERT_TRUE(text.ok()) << text.status();
  EXPECT_EQ(*text, text_);
  absl::StatusOr<Checkpoint> checkpoint = ParseCheckpoint(*text);
  ASSERT_TRUE(checkpoint.ok()) << checkpoint.status();
  EXPECT_EQ(*checkpoint, SampleCheckpoint());
}

TEST_F(SignedNoteTest, NoteIsTextBlankLineAndOneSignatureLineWithTheKeyId) {
  const std::string prefix = absl::StrCat(text_, "\n", kEmDashSpace, kOrigin, " ");
  ASSERT_THAT(note_, StartsWith(prefix));
  ASSERT_THAT(note_, EndsWith("\n"));
  std::string b64 = note_.substr(prefix.size(), note_.size() - prefix.size() - 1);
  absl::StatusOr<std::string> bytes = Base64Decode(b64);
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  ASSERT_EQ(bytes->size(), 4u + 64u);
  uint32_t key_id = (uint32_t{static_cast<uint8_t>((*bytes)[0])} << 24) |
                    (uint32_t{static_cast<uint8_t>((*bytes)[1])} << 16) |
                    (uint32_t{static_cast<uint8_t>((*bytes)[2])} << 8) |
                    static_cast<uint8_t>((*bytes)[3]);
  EXPECT_EQ(key_id, signer_->key_id());
}

TEST_F(SignedNoteTest, SigningTheSameTextTwiceGivesTheSameNote) {
  absl::StatusOr<std::string> again = signer_->Sign(text_);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(*again, note_);
  absl::StatusOr<NoteSigner> copy = NoteSigner::FromSigningKey(signer_->SigningKey());
  ASSERT_TRUE(copy.ok()) << copy.status();
  EXPECT_EQ(*copy->Sign(text_), note_);
}

TEST_F(SignedNoteTest, AnotherKeyWithTheSameNameFindsNoSignature) {
  absl::StatusOr<NoteSigner> other = NoteSigner::Generate(kOrigin);
  ASSERT_TRUE(other.ok()) << other.status();
  ASSERT_NE(other->key_id(), signer_->key_id());  // 2^-32 flake chance
  absl::StatusOr<NoteVerifier> verifier = NoteVerifier::Parse(other->VerifierKey());
  ASSERT_TRUE(verifier.ok()) << verifier.status();
  absl::StatusOr<std::string> text = verifier->Open(note_);
  EXPECT_EQ(text.status().code(), absl::StatusCode::kNotFound) << text.status();
  EXPECT_THAT(std::string(text.status().message()),
              HasSubstr(absl::StrCat(kOrigin, "+", KeyIdHex(other->key_id()))));
}

TEST_F(SignedNoteTest, TheSameKeyUnderAnotherNameFindsNoSignature) {
  const std::string key = signer_->VerifierKey();
  const std::string key64 = key.substr(std::string_view(kOrigin).size() + 10);
  absl::StatusOr<std::string> typed = Base64Decode(key64);
  ASSERT_TRUE(typed.ok()) << typed.status();
  const std::string renamed =
      absl::StrCat("other.example/log+",
                   KeyIdHex(ExpectedKeyId("other.example/log", typed->substr(1))), "+", key64);
  absl::StatusOr<NoteVerifier> verifier = NoteVerifier::Parse(renamed);
  ASSERT_TRUE(verifier.ok()) << verifier.status();
  EXPECT_EQ(verifier->Open(note_).status().code(), absl::StatusCode::kNotFound);
}

TEST_F(SignedNoteTest, AlteredSignatureBytesDoNotVerify) {
  std::string forged = WithSignatureBytes([](std::string& b) { b[10] ^= 0x01; });
  absl::StatusOr<std::string> text = verifier_->Open(forged);
  EXPECT_EQ(text.status().code(), absl::StatusCode::kFailedPrecondition) << text.status();
  EXPECT_THAT(std::string(text.status().message()),
              HasSubstr(absl::StrCat("signature by ", kOrigin, " does not verify")));
}

TEST_F(SignedNoteTest, ChangedTextLineDoesNotVerify) {
  std::string changed =
      absl::StrReplaceAll(note_, {{absl::StrCat(kOrigin, "\n"), "warmledger.example/lug\n"}});
  ASSERT_NE(changed, note_);
  EXPECT_EQ(verifier_->Open(changed).status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST_F(SignedNoteTest, ChangedTreeSizeDoesNotVerify) {
  std::string changed = absl::StrReplaceAll(note_, {{"\n20852163\n", "\n20852164\n"}});
  ASSERT_NE(changed, note_);
  EXPECT_EQ(verifier_->Open(changed).status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST_F(SignedNoteTest, ChangedRootDoesNotVerify) {
  std::string changed = absl::StrReplaceAll(
      note_, {{Base64Encode(AsString(Sha256("root"))), Base64Encode(AsString(Sha256("toor")))}});
  ASSERT_NE(changed, note_);
  EXPECT_EQ(verifier_->Open(changed).status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST_F(SignedNoteTest, AnExtraByteAnywhereIsRejected) {
  for (size_t i = 0; i <= note_.size(); ++i) {
    for (char extra : {'x', '\n', ' '}) {
      std::string changed = note_;
      changed.insert(i, 1, extra);
      EXPECT_FALSE(verifier_->Open(changed).ok())
          << "inserted " << absl::CHexEscape(std::string(1, extra)) << " at " << i;
    }
  }
}

TEST_F(SignedNoteTest, AMissingByteAnywhereIsRejected) {
  for (size_t i = 0; i < note_.size(); ++i) {
    std::string changed = note_;
    changed.erase(i, 1);
    EXPECT_FALSE(verifier_->Open(changed).ok()) << "deleted byte " << i;
  }
}

TEST_F(SignedNoteTest, AFlippedBitAnywhereIsRejected) {
  for (size_t i = 0; i < note_.size(); ++i) {
    for (int bit = 0; bit < 8; ++bit) {
      std::string changed = note_;
      changed[i] = static_cast<char>(changed[i] ^ (1 << bit));
      EXPECT_FALSE(verifier_->Open(changed).ok()) << "flipped bit " << bit << " of byte " << i;
    }
  }
}

TEST_F(SignedNoteTest, MissingBlankLineIsMalformed) {
  std::string changed = absl::StrCat(text_, SignatureLines(note_));
  absl::StatusOr<std::string> text = verifier_->Open(changed);
  EXPECT_EQ(text.status().code(), absl::StatusCode::kInvalidArgument) << text.status();
  EXPECT_THAT(std::string(text.status().message()), HasSubstr("blank line"));
}

TEST_F(SignedNoteTest, TruncatedSignatureIsRejected) {
  // Whole base64 quanta removed: well-formed, but 66 bytes cannot verify.
  std::string shorter = note_;
  shorter.erase(shorter.size() - 5, 4);
  EXPECT_EQ(verifier_->Open(shorter).status().code(), absl::StatusCode::kFailedPrecondition);
  // Shorter signature bytes, re-encoded canonically.
  std::string truncated = WithSignatureBytes([](std::string& b) { b.resize(4 + 63); });
  EXPECT_EQ(verifier_->Open(truncated).status().code(), absl::StatusCode::kFailedPrecondition);
  // Cut mid-quantum: not base64.
  std::string cut = note_;
  cut.erase(cut.size() - 3, 2);
  EXPECT_EQ(verifier_->Open(cut).status().code(), absl::StatusCode::kInvalidArgument);
  // Only the key id left.
  std::string id_only = WithSignatureBytes([](std::string& b) { b.resize(4); });
  absl::StatusOr<std::string> text = verifier_->Open(id_only);
  EXPECT_EQ(text.status().code(), absl::StatusCode::kInvalidArgument) << text.status();
  EXPECT_THAT(std::string(text.status().message()), HasSubstr("signed note line 5"));
  // Final newline missing.
  std::string unterminated = note_.substr(0, note_.size() - 1);
  EXPECT_EQ(verifier_->Open(unterminated).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(SignedNoteTest, SignatureLinesFromOtherKeysAreIgnored) {
  std::string witness = ForeignSignatureLine("witness.example/w1");
  std::string same_name = ForeignSignatureLine(kOrigin);  // another key id
  std::string ours = SignatureLines(note_);
  for (const std::string& lines :
       {ours + witness, witness + ours, witness + same_name + ours, same_name + ours + witness}) {
    absl::StatusOr<std::string> text = verifier_->Open(absl::StrCat(text_, "\n", lines));
    ASSERT_TRUE(text.ok()) << text.status();
    EXPECT_EQ(*text, text_);
  }
}

TEST_F(SignedNoteTest, ABadSignatureFromAnotherKeyDoesNotMatter) {
  std::string witness = ForeignSignatureLine("witness.example/w1");
  // Swap two different base64 characters of the witness signature (the key
  // is random, so look for a differing pair): still well-formed.
  size_t at = witness.size() - 20;
  while (witness[at] == witness[at + 1]) --at;
  std::swap(witness[at], witness[at + 1]);
  absl::StatusOr<std::string> text = verifier_->Open(absl::StrCat(note_, witness));
  EXPECT_TRUE(text.ok()) << text.status();
}

TEST_F(SignedNoteTest, ASecondBadSignatureByTheKeyIsRejected) {
  std::string bad = SignatureLines(WithSignatureBytes([](std::string& b) { b[40] ^= 0x80; }));
  absl::StatusOr<std::string> text = verifier_->Open(absl::StrCat(note_, bad));
  EXPECT_EQ(text.status().code(), absl::StatusCode::kFailedPrecondition) << text.status();
}

TEST_F(SignedNoteTest, NoteWithoutOurSignatureIsNotFound) {
  std::string witness = ForeignSignatureLine("witness.example/w1");
  absl::StatusOr<std::string> text = verifier_->Open(absl::StrCat(text_, "\n", witness));
  EXPECT_EQ(text.status().code(), absl::StatusCode::kNotFound) << text.status();
}

TEST_F(SignedNoteTest, MalformedSignatureLinesAreRejectedNamingTheLine) {
  const std::string sig = Base64Encode(std::string(68, 'x'));
  const std::vector<std::string> bad_lines = {
      absl::StrCat("- ", kOrigin, " ", sig, "\n"),                           // hyphen, not em dash
      absl::StrCat("\xE2\x80\x94", kOrigin, " ", sig, "\n"),                 // no space after dash
      absl::StrCat("\xE2\x80\x94  ", kOrigin, " ", sig, "\n"),               // empty name
      absl::StrCat(kEmDashSpace, kOrigin, "\n"),                             // no signature
      absl::StrCat(kEmDashSpace, kOrigin, " \n"),                            // empty signature
      absl::StrCat(kEmDashSpace, kOrigin, " ", sig, " \n"),                  // trailing space
      absl::StrCat(kEmDashSpace, kOrigin, " ", sig, " extra\n"),             // extra field
      absl::StrCat(kEmDashSpace, "a+b ", sig, "\n"),                         // '+' in name
      absl::StrCat(kEmDashSpace, kOrigin, " ", Base64Encode("xxxx"), "\n"),  // 4 bytes
      absl::StrCat(kEmDashSpace, kOrigin, " ", sig.substr(0, sig.size() - 1), "\n"),
      absl::StrCat(kEmDashSpace, kOrigin, " ", sig, "\r\n"),  // CR
  };
  for (const std::string& line : bad_lines) {
    absl::StatusOr<std::string> text = verifier_->Open(absl::StrCat(note_, line));
    EXPECT_EQ(text.status().code(), absl::StatusCode::kInvalidArgument)
        << absl::CHexEscape(line) << ": " << text.status();
    EXPECT_THAT(std::string(text.status().message()), HasSubstr("line 6"))
        << absl::CHexEscape(line);
  }
}

TEST_F(SignedNoteTest, ControlCharactersAndInvalidUtf8AreRejected) {
  for (std::string_view bad :
       {std::string_view("\r"), std::string_view("\t"), std::string_view("\0", 1),
        std::string_view("\xC3"), std::string_view("\xFF")}) {
    std::string changed = note_;
    changed.insert(3, bad);
    absl::StatusOr<std::string> text = verifier_->Open(changed);
    EXPECT_EQ(text.status().code(), absl::StatusCode::kInvalidArgument)
        << absl::CHexEscape(ToAbsl(bad));
    EXPECT_THAT(std::string(text.status().message()), HasSubstr("signed note line 1"));
  }
}

TEST_F(SignedNoteTest, OversizedNotesAreRejected) {
  std::string big_text(1 << 20, 'a');
  big_text.push_back('\n');
  absl::StatusOr<std::string> signed_big = signer_->Sign(big_text);
  EXPECT_EQ(signed_big.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(signed_big.status().message()), HasSubstr("limit"));
  absl::StatusOr<std::string> opened = verifier_->Open(big_text + note_);
  EXPECT_EQ(opened.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(opened.status().message()), HasSubstr("limit"));
}

TEST_F(SignedNoteTest, TooManySignatureLinesAreRejected) {
  std::string witness = ForeignSignatureLine("witness.example/w1");
  std::string many = note_;
  for (int i = 0; i < 99; ++i) many += witness;
  EXPECT_TRUE(verifier_->Open(many).ok());  // 100 lines
  many += witness;
  absl::StatusOr<std::string> text = verifier_->Open(many);
  EXPECT_EQ(text.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(text.status().message()), HasSubstr("more than 100 signatures"));
}

TEST_F(SignedNoteTest, SignRejectsTextsThatCannotBeNotes) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"", "empty"},
      {"a", "newline"},
      {"\na\n", "blank"},
      {"a\n\nb\n", "line 2 is blank"},
      {"a\nb\n\n", "line 3 is blank"},
      {"a\rb\n", "control character"},
      {"\xFF\n", "UTF-8"},
  };
  for (const auto& [text, why] : cases) {
    absl::StatusOr<std::string> note = signer_->Sign(text);
    EXPECT_EQ(note.status().code(), absl::StatusCode::kInvalidArgument) << absl::CHexEscape(text);
    EXPECT_THAT(std::string(note.status().message()), HasSubstr(why)) << absl::CHexEscape(text);
  }
}

TEST_F(SignedNoteTest, AMovedSignerStillSigns) {
  NoteSigner moved = std::move(*signer_);
  signer_.reset();
  absl::StatusOr<std::string> note = moved.Sign(text_);
  ASSERT_TRUE(note.ok()) << note.status();
  EXPECT_EQ(*note, note_);
  absl::StatusOr<NoteSigner> other = NoteSigner::Generate("other.example");
  ASSERT_TRUE(other.ok());
  moved = *std::move(other);
  EXPECT_EQ(moved.name(), "other.example");
  EXPECT_TRUE(moved.Sign(text_).ok());
}

// ---- Known answers. ----

TEST(KnownAnswerTest, Ed25519MatchesRfc8032TestVector1) {
  absl::StatusOr<std::array<uint8_t, 64>> signature =
      Ed25519Sign(UnhexArray<32>(kRfc8032Secret), "");
  ASSERT_TRUE(signature.ok()) << signature.status();
  EXPECT_EQ(absl::BytesToHexString(absl::string_view(
                reinterpret_cast<const char*>(signature->data()), signature->size())),
            kRfc8032Signature);
}

TEST(KnownAnswerTest, SignerFromTheRfc8032SecretHasTheRfc8032PublicKey) {
  const std::string seed = Unhex(kRfc8032Secret);
  const std::string public_key = Unhex(kRfc8032Public);
  // FromSigningKey recomputes the key id from the public key it derives, so
  // this only parses if the derived key is the RFC's.
  absl::StatusOr<NoteSigner> signer =
      NoteSigner::FromSigningKey(SigningKeyText("rfc8032.example", seed, public_key));
  ASSERT_TRUE(signer.ok()) << signer.status();
  EXPECT_EQ(signer->key_id(), ExpectedKeyId("rfc8032.example", public_key));
  EXPECT_EQ(signer->VerifierKey(), absl::StrCat("rfc8032.example+", KeyIdHex(signer->key_id()), "+",
                                                Base64Encode(absl::StrCat("\x01", public_key))));
}

TEST(KnownAnswerTest, GoSumdbExampleNoteVerifies) {
  absl::StatusOr<NoteVerifier> verifier = NoteVerifier::Parse(kGoVerifierKey);
  ASSERT_TRUE(verifier.ok()) << verifier.status();
  EXPECT_EQ(verifier->name(), "PeterNeumann");
  EXPECT_EQ(verifier->key_id(), 0xc74f20a3u);
  absl::StatusOr<std::string> text = verifier->Open(kGoNote);
  ASSERT_TRUE(text.ok()) << text.status();
  EXPECT_EQ(*text, kGoText);
}

TEST(KnownAnswerTest, GoSumdbExampleKeySignsTheSameNoteByteForByte) {
  // The key data contains a '+', which must not be taken for a separator.
  absl::StatusOr<NoteSigner> signer = NoteSigner::FromSigningKey(kGoSigningKey);
  ASSERT_TRUE(signer.ok()) << signer.status();
  EXPECT_EQ(signer->key_id(), 0xc74f20a3u);
  EXPECT_EQ(signer->VerifierKey(), kGoVerifierKey);
  EXPECT_EQ(signer->SigningKey(), absl::StrCat(kGoSigningKey, "\n"));
  absl::StatusOr<std::string> note = signer->Sign(kGoText);
  ASSERT_TRUE(note.ok()) << note.status();
  EXPECT_EQ(*note, kGoNote);
}

TEST(KnownAnswerTest, NoteTextMayContainBlankLinesWhenAnotherSignerMadeIt) {
  // signed-note splits at the last blank line; Sign never makes such texts,
  // but Open accepts them from other implementations.
  const std::string seed = Unhex(kRfc8032Secret);
  const std::string public_key = Unhex(kRfc8032Public);
  absl::StatusOr<NoteSigner> signer =
      NoteSigner::FromSigningKey(SigningKeyText("rfc8032.example", seed, public_key));
  ASSERT_TRUE(signer.ok()) << signer.status();
  absl::StatusOr<NoteVerifier> verifier = NoteVerifier::Parse(signer->VerifierKey());
  ASSERT_TRUE(verifier.ok()) << verifier.status();
  const std::string text = "first\n\nthird\n";
  absl::StatusOr<std::array<uint8_t, 64>> signature =
      Ed25519Sign(UnhexArray<32>(kRfc8032Secret), text);
  ASSERT_TRUE(signature.ok());
  std::string bytes = Unhex(KeyIdHex(signer->key_id()));
  bytes.append(signature->begin(), signature->end());
  const std::string note =
      absl::StrCat(text, "\n", kEmDashSpace, "rfc8032.example ", Base64Encode(bytes), "\n");
  absl::StatusOr<std::string> opened = verifier->Open(note);
  ASSERT_TRUE(opened.ok()) << opened.status();
  EXPECT_EQ(*opened, text);
}

// ---- Key texts. ----

TEST(VerifierKeyTest, RoundTripsAndItsKeyIdIsRecomputable) {
  absl::StatusOr<NoteSigner> signer = NoteSigner::Generate(kOrigin);
  ASSERT_TRUE(signer.ok()) << signer.status();
  const std::string key = signer->VerifierKey();
  const std::string prefix = absl::StrCat(kOrigin, "+", KeyIdHex(signer->key_id()), "+");
  ASSERT_THAT(key, StartsWith(prefix));
  absl::StatusOr<std::string> typed = Base64Decode(key.substr(prefix.size()));
  ASSERT_TRUE(typed.ok()) << typed.status();
  ASSERT_EQ(typed->size(), 33u);
  EXPECT_EQ((*typed)[0], '\x01');
  EXPECT_EQ(signer->key_id(), ExpectedKeyId(kOrigin, typed->substr(1)));

  absl::StatusOr<NoteVerifier> verifier = NoteVerifier::Parse(key);
  ASSERT_TRUE(verifier.ok()) << verifier.status();
  EXPECT_EQ(verifier->name(), kOrigin);
  EXPECT_EQ(verifier->key_id(), signer->key_id());
}

TEST(VerifierKeyTest, UppercaseKeyIdIsAccepted) {
  absl::StatusOr<NoteVerifier> verifier =
      NoteVerifier::Parse("PeterNeumann+C74F20A3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW");
  ASSERT_TRUE(verifier.ok()) << verifier.status();
  EXPECT_EQ(verifier->key_id(), 0xc74f20a3u);
}

TEST(VerifierKeyTest, MalformedKeysAreRejectedNamingThePart) {
  const std::string key64 = "ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
  const std::string pub = Base64Decode(key64)->substr(1);
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"", "too few"},
      {"PeterNeumann", "too few"},
      {"PeterNeumann+c74f20a3", "too few"},
      {"+c74f20a3+" + key64, "key name is empty"},
      {"Peter Neumann+c74f20a3+" + key64, "key name"},
      {"PeterNeumann+c74f20a+" + key64, "not 8 hex digits"},
      {"PeterNeumann+c74f20a30+" + key64, "not 8 hex digits"},
      {"PeterNeumann+c74f20g3+" + key64, "not 8 hex digits"},
      {"PeterNeumann+0xc74f20+" + key64, "not 8 hex digits"},
      {"PeterNeumann+c74f20a3+", "key data is empty"},
      {"PeterNeumann+c74f20a3+!" + key64.substr(1), "base64"},
      {"PeterNeumann+c74f20a3+" + key64 + "\n", "base64"},
      {"PeterNeumann+c74f20a3+" + Base64Encode("\x02" + pub), "type byte is 0x02"},
      {"PeterNeumann+c74f20a3+" + Base64Encode("\x01" + pub.substr(1)), "31 bytes"},
      {"PeterNeumann+c74f20a3+" + Base64Encode("\x01" + pub + "x"), "33 bytes"},
      {"PeterNeumann+c74f20a4+" + key64, "key id c74f20a4 does not match"},
      {"Peterneumann+c74f20a3+" + key64, "does not match"},
  };
  for (const auto& [key, why] : cases) {
    absl::StatusOr<NoteVerifier> verifier = NoteVerifier::Parse(key);
    EXPECT_EQ(verifier.status().code(), absl::StatusCode::kInvalidArgument) << key;
    EXPECT_THAT(std::string(verifier.status().message()), HasSubstr("verifier key")) << key;
    EXPECT_THAT(std::string(verifier.status().message()), HasSubstr(why)) << key;
  }
}

TEST(SigningKeyTest, RoundTripsWithOrWithoutTheNewline) {
  absl::StatusOr<NoteSigner> signer = NoteSigner::Generate(kOrigin);
  ASSERT_TRUE(signer.ok()) << signer.status();
  const std::string key = signer->SigningKey();
  EXPECT_THAT(
      key, StartsWith(absl::StrCat("PRIVATE+KEY+", kOrigin, "+", KeyIdHex(signer->key_id()), "+")));
  EXPECT_THAT(key, EndsWith("\n"));
  for (const std::string& text : {key, key.substr(0, key.size() - 1)}) {
    absl::StatusOr<NoteSigner> parsed = NoteSigner::FromSigningKey(text);
    ASSERT_TRUE(parsed.ok()) << parsed.status();
    EXPECT_EQ(parsed->name(), kOrigin);
    EXPECT_EQ(parsed->key_id(), signer->key_id());
    EXPECT_EQ(parsed->VerifierKey(), signer->VerifierKey());
    EXPECT_EQ(parsed->SigningKey(), key);
  }
}

TEST(SigningKeyTest, MalformedKeysAreRejectedWithoutEchoingTheKey) {
  const std::string key64 = "AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
  const std::string seed = Base64Decode(key64)->substr(1);
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"", "PRIVATE+KEY+"},
      {"PeterNeumann+c74f20a3+" + key64, "PRIVATE+KEY+"},
      {"PUBLIC+KEY+PeterNeumann+c74f20a3+" + key64, "PRIVATE+KEY+"},
      {"PRIVATE+KEY+PeterNeumann", "too few"},
      {"PRIVATE+KEY+PeterNeumann+c74f20a3", "too few"},
      {"PRIVATE+KEY++c74f20a3+" + key64, "key name is empty"},
      {"PRIVATE+KEY+Peter\tNeumann+c74f20a3+" + key64, "key name"},
      {"PRIVATE+KEY+PeterNeumann+c74f2+" + key64, "not 8 hex digits"},
      {"PRIVATE+KEY+PeterNeumann+c74f20a3+" + key64 + "\n\n", "base64"},
      {"PRIVATE+KEY+PeterNeumann+c74f20a3+" + key64.substr(0, 41), "base64"},
      {"PRIVATE+KEY+PeterNeumann+c74f20a3+" + key64.substr(0, 40), "29 bytes"},
      {"PRIVATE+KEY+PeterNeumann+c74f20a3+" + Base64Encode("\x02" + seed), "type byte"},
      {"PRIVATE+KEY+PeterNeumann+c74f20a3+" + Base64Encode("\x01" + seed.substr(2)), "30 bytes"},
      {"PRIVATE+KEY+PeterNeumann+c74f20a2+" + key64, "key id c74f20a2 does not match"},
      {"PRIVATE+KEY+PeterNeumanm+c74f20a3+" + key64, "does not match"},
  };
  for (const auto& [key, why] : cases) {
    absl::StatusOr<NoteSigner> signer = NoteSigner::FromSigningKey(key);
    EXPECT_EQ(signer.status().code(), absl::StatusCode::kInvalidArgument) << key;
    const std::string message(signer.status().message());
    EXPECT_THAT(message, HasSubstr("signing key")) << key;
    EXPECT_THAT(message, HasSubstr(why)) << key;
    EXPECT_THAT(message, Not(HasSubstr(key64.substr(0, 12)))) << key;
  }
}

// ---- LoadOrCreate. ----

class LoadOrCreateTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = ::testing::TempDir() + "/note_test.XXXXXX";
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  static int Mode(const std::string& path) {
    struct stat st {};
    EXPECT_EQ(::stat(path.c_str(), &st), 0) << path;
    return static_cast<int>(st.st_mode & 07777);
  }

  static std::string ReadFile(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }

  static void WriteFile(const std::string& path, const std::string& contents, mode_t mode) {
    {
      std::ofstream out(path, std::ios::binary);
      out << contents;
    }
    ASSERT_EQ(::chmod(path.c_str(), mode), 0);
  }

  std::vector<std::string> Listing(const std::string& dir) {
    std::vector<std::string> names;
    for (const auto& e : std::filesystem::directory_iterator(dir)) {
      names.push_back(e.path().filename().string());
    }
    return names;
  }

  std::string dir_;
};

TEST_F(LoadOrCreateTest, CreatesAnOwnerOnlyFileAndReloadsTheSameKey) {
  const std::string path = dir_ + "/log.key";
  absl::StatusOr<NoteSigner> created = NoteSigner::LoadOrCreate(path, kOrigin);
  ASSERT_TRUE(created.ok()) << created.status();
  EXPECT_EQ(Mode(path), 0600);
  EXPECT_EQ(ReadFile(path), created->SigningKey());
  EXPECT_THAT(Listing(dir_), ::testing::ElementsAre("log.key"));  // no temporary left

  absl::StatusOr<NoteSigner> loaded = NoteSigner::LoadOrCreate(path, kOrigin);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(loaded->VerifierKey(), created->VerifierKey());
  EXPECT_EQ(loaded->SigningKey(), created->SigningKey());
}

TEST_F(LoadOrCreateTest, CreatesMissingParentFoldersOwnerOnly) {
  const std::string path = dir_ + "/a/b/keys/log.key";
  absl::StatusOr<NoteSigner> created = NoteSigner::LoadOrCreate(path, kOrigin);
  ASSERT_TRUE(created.ok()) << created.status();
  EXPECT_EQ(Mode(dir_ + "/a"), 0700);
  EXPECT_EQ(Mode(dir_ + "/a/b/keys"), 0700);
  EXPECT_EQ(Mode(path), 0600);
}

TEST_F(LoadOrCreateTest, LoadsAKeyWrittenByHand) {
  const std::string path = dir_ + "/log.key";
  WriteFile(path, kGoSigningKey, 0600);  // no trailing newline
  absl::StatusOr<NoteSigner> loaded = NoteSigner::LoadOrCreate(path, "PeterNeumann");
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(loaded->VerifierKey(), kGoVerifierKey);
}

TEST_F(LoadOrCreateTest, RejectsAFileForAnotherName) {
  const std::string path = dir_ + "/log.key";
  ASSERT_TRUE(NoteSigner::LoadOrCreate(path, "a.example/log").ok());
  absl::StatusOr<NoteSigner> loaded = NoteSigner::LoadOrCreate(path, "b.example/log");
  EXPECT_EQ(loaded.status().code(), absl::StatusCode::kFailedPrecondition);
  const std::string message(loaded.status().message());
  EXPECT_THAT(message, HasSubstr(path));
  EXPECT_THAT(message, HasSubstr("a.example/log"));
  EXPECT_THAT(message, HasSubstr("b.example/log"));
}

TEST_F(LoadOrCreateTest, RejectsAFileReadableByOthers) {
  const std::string path = dir_ + "/log.key";
  ASSERT_TRUE(NoteSigner::LoadOrCreate(path, kOrigin).ok());
  for (mode_t mode : {0644, 0640, 0604, 0620}) {
    ASSERT_EQ(::chmod(path.c_str(), mode), 0);
    absl::StatusOr<NoteSigner> loaded = NoteSigner::LoadOrCreate(path, kOrigin);
    EXPECT_EQ(loaded.status().code(), absl::StatusCode::kFailedPrecondition) << mode;
    EXPECT_THAT(std::string(loaded.status().message()),
                HasSubstr(absl::StrCat("must not be readable by others; chmod 600 ", path)));
  }
  ASSERT_EQ(::chmod(path.c_str(), 0400), 0);
  EXPECT_TRUE(NoteSigner::LoadOrCreate(path, kOrigin).ok());
}

TEST_F(LoadOrCreateTest, RejectsACorruptFileNamingThePath) {
  const std::string path = dir_ + "/log.key";
  for (const std::string& contents :
       {std::string(), std::string("garbage\n"), std::string(kGoSigningKey) + "\nmore\n",
        std::string(5000, 'x')}) {
    WriteFile(path, contents, 0600);
    absl::StatusOr<NoteSigner> loaded = NoteSigner::LoadOrCreate(path, "PeterNeumann");
    EXPECT_EQ(loaded.status().code(), absl::StatusCode::kFailedPrecondition)
        << absl::CHexEscape(contents.substr(0, 40));
    EXPECT_THAT(std::string(loaded.status().message()), HasSubstr(path));
  }
}

TEST_F(LoadOrCreateTest, RejectsAnInvalidNameWithoutCreatingAFile) {
  const std::string path = dir_ + "/log.key";
  EXPECT_EQ(NoteSigner::LoadOrCreate(path, "bad name").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(Listing(dir_).empty());
}

TEST_F(LoadOrCreateTest, AFileWhereAFolderShouldBeIsFailedPrecondition) {
  WriteFile(dir_ + "/keys", "not a folder", 0600);
  for (const std::string& path : {dir_ + "/keys/log.key", dir_ + "/keys/sub/log.key"}) {
    absl::StatusOr<NoteSigner> loaded = NoteSigner::LoadOrCreate(path, kOrigin);
    EXPECT_EQ(loaded.status().code(), absl::StatusCode::kFailedPrecondition) << loaded.status();
    EXPECT_THAT(std::string(loaded.status().message()), HasSubstr(path));
  }
}

TEST_F(LoadOrCreateTest, AFolderAtThePathIsRejected) {
  const std::string path = dir_ + "/log.key";
  ASSERT_EQ(::mkdir(path.c_str(), 0700), 0);
  absl::StatusOr<NoteSigner> loaded = NoteSigner::LoadOrCreate(path, kOrigin);
  EXPECT_EQ(loaded.status().code(), absl::StatusCode::kFailedPrecondition) << loaded.status();
}

// ---- Checkpoints. ----

TEST(CheckpointTest, FormatMatchesTheSpecExample) {
  Checkpoint c;
  c.origin = "example.com/behind-the-sofa";
  c.size = 20852163;
  absl::StatusOr<std::string> root = Base64Decode("CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=");
  ASSERT_TRUE(root.ok());
  std::copy(root->begin(), root->end(), c.root.begin());
  EXPECT_EQ(
      FormatCheckpoint(c),
      "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n");
}

TEST(CheckpointTest, ParsesBackWhatItFormats) {
  for (uint64_t size : {uint64_t{0}, uint64_t{1}, uint64_t{20852163}, UINT64_MAX}) {
    Checkpoint c = SampleCheckpoint();
    c.size = size;
    absl::StatusOr<Checkpoint> parsed = ParseCheckpoint(FormatCheckpoint(c));
    ASSERT_TRUE(parsed.ok()) << parsed.status();
    EXPECT_EQ(*parsed, c);
  }
}

TEST(CheckpointTest, ExtensionLinesAreAllowedAndIgnored) {
  const std::string text = FormatCheckpoint(SampleCheckpoint()) + "ext one\n\xE2\x80\x94 two\n";
  absl::StatusOr<Checkpoint> parsed = ParseCheckpoint(text);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(*parsed, SampleCheckpoint());
}

TEST(CheckpointTest, MalformedCheckpointsAreRejectedNamingTheLine) {
  const std::string root = Base64Encode(AsString(Sha256("root")));
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"", "empty"},
      {"o\n5\n" + root, "newline"},
      {"o\n5\n", "has 2 lines"},
      {"\n5\n" + root + "\n", "line 1 (origin): empty"},
      {"o\r\n5\n" + root + "\n", "line 1: control character"},
      {"o\n\n" + root + "\n", "line 2 (tree size): empty"},
      {"o\n05\n" + root + "\n", "line 2 (tree size): \"05\" has a leading zero"},
      {"o\n00\n" + root + "\n", "leading zero"},
      {"o\n+5\n" + root + "\n", "line 2 (tree size): \"+5\" is not a decimal number"},
      {"o\n-1\n" + root + "\n", "line 2 (tree size)"},
      {"o\n 5\n" + root + "\n", "line 2 (tree size)"},
      {"o\n5 \n" + root + "\n", "line 2 (tree size)"},
      {"o\n0x5\n" + root + "\n", "line 2 (tree size)"},
      {"o\n18446744073709551616\n" + root + "\n",
       "line 2 (tree size): \"18446744073709551616\" "
       "does not fit in 64 bits"},
      {"o\n5\n\n", "line 3 (root hash): 0 bytes"},
      {"o\n5\nAAAA\n", "line 3 (root hash): 3 bytes, expected 32"},
      {"o\n5\n" + root.substr(0, root.size() - 1) + "\n", "line 3 (root hash)"},
      {"o\n5\n" + Base64Encode(std::string(33, 'r')) + "\n", "line 3 (root hash): 33 bytes"},
      {"o\n5\n" + root + "\n\n", "line 4 (extension): empty"},
      {"o\n5\n" + root + "\next\n\n", "line 5 (extension): empty"},
  };
  for (const auto& [text, why] : cases) {
    absl::StatusOr<Checkpoint> parsed = ParseCheckpoint(text);
    EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument) << text;
    EXPECT_THAT(std::string(parsed.status().message()), HasSubstr("checkpoint")) << text;
    EXPECT_THAT(std::string(parsed.status().message()), HasSubstr(why)) << text;
  }
}

// ---- Receipts. ----

Receipt SampleReceipt(const std::string& checkpoint) {
  Receipt r;
  r.entry_bytes = std::string("\x00\x01 entry \xFF bytes", 16);
  r.index = 73894;
  r.proof = {Sha256("a"), Sha256("b"), Sha256("c")};
  r.checkpoint = checkpoint;
  return r;
}

void ExpectSameReceipt(const Receipt& a, const Receipt& b) {
  EXPECT_EQ(a.entry_bytes, b.entry_bytes);
  EXPECT_EQ(a.index, b.index);
  EXPECT_EQ(a.proof, b.proof);
  EXPECT_EQ(a.checkpoint, b.checkpoint);
}

TEST(ReceiptTest, FormatIsTheTlogProofLayout) {
  Receipt r;
  r.entry_bytes = "abc";
  r.index = 7;
  r.proof = {Sha256("a")};
  r.checkpoint = "o\n8\nroot\n\n\xE2\x80\x94 o sig\n";
  EXPECT_EQ(FormatReceipt(r), absl::StrCat("c2sp.org/tlog-proof@v1\n"
                                           "extra YWJj\n"
                                           "index 7\n",
                                           Base64Encode(AsString(Sha256("a"))), "\n",
                                           "\n"
                                           "o\n8\nroot\n\n\xE2\x80\x94 o sig\n"));
}

TEST(ReceiptTest, ParsesBackWhatItFormats) {
  Receipt r = SampleReceipt("o\n8\nroot\n\n\xE2\x80\x94 o sig\n");
  absl::StatusOr<Receipt> parsed = ParseReceipt(FormatReceipt(r));
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  ExpectSameReceipt(*parsed, r);

  r.proof.clear();  // a one-leaf tree
  r.index = 0;
  parsed = ParseReceipt(FormatReceipt(r));
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  ExpectSameReceipt(*parsed, r);
}

TEST(ReceiptTest, CarriesACheckpointThatStillVerifies) {
  absl::StatusOr<NoteSigner> signer = NoteSigner::Generate(kOrigin);
  ASSERT_TRUE(signer.ok()) << signer.status();
  absl::StatusOr<std::string> note = signer->Sign(FormatCheckpoint(SampleCheckpoint()));
  ASSERT_TRUE(note.ok()) << note.status();
  absl::StatusOr<Receipt> parsed = ParseReceipt(FormatReceipt(SampleReceipt(*note)));
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  absl::StatusOr<NoteVerifier> verifier = NoteVerifier::Parse(signer->VerifierKey());
  ASSERT_TRUE(verifier.ok()) << verifier.status();
  absl::StatusOr<std::string> text = verifier->Open(parsed->checkpoint);
  ASSERT_TRUE(text.ok()) << text.status();
  absl::StatusOr<Checkpoint> checkpoint = ParseCheckpoint(*text);
  ASSERT_TRUE(checkpoint.ok()) << checkpoint.status();
  EXPECT_EQ(*checkpoint, SampleCheckpoint());
}

TEST(ReceiptTest, MalformedReceiptsAreRejectedNamingTheLine) {
  const std::string h = Base64Encode(AsString(Sha256("a")));
  const std::string cp = "o\n8\nroot\n\n\xE2\x80\x94 o sig\n";
  const std::string head = "c2sp.org/tlog-proof@v1\n";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"", "line 1: expected \"c2sp.org/tlog-proof@v1\""},
      {"c2sp.org/tlog-proof@v2\nextra YWJj\nindex 7\n\n" + cp, "line 1"},
      {"c2sp.org/tlog-proof@v1 \nextra YWJj\nindex 7\n\n" + cp, "line 1"},
      {head, "line 2: expected \"extra <base64 entry>\""},
      {head + "index 7\n\n" + cp, "line 2: expected \"extra"},
      {head + "extra\nindex 7\n\n" + cp, "line 2"},
      {head + "extra YWJ\nindex 7\n\n" + cp, "line 2: extra: base64"},
      {head + "extra YW Jj\nindex 7\n\n" + cp, "line 2: extra"},
      {head + "extra YWJj\n\n" + cp, "line 3: expected \"index <leaf index>\""},
      {head + "extra YWJj\nindex\n\n" + cp, "line 3"},
      {head + "extra YWJj\nindex \n\n" + cp, "line 3: index: empty"},
      {head + "extra YWJj\nindex 07\n\n" + cp, "line 3: index: \"07\" has a leading zero"},
      {head + "extra YWJj\nindex -7\n\n" + cp, "line 3: index"},
      {head + "extra YWJj\nindex 7 \n\n" + cp, "line 3: index"},
      {head + "extra YWJj\nindex 18446744073709551616\n\n" + cp, "does not fit in 64 bits"},
      {head + "extra YWJj\nindex 7\n" + h.substr(1) + "\n\n" + cp, "line 4: proof hash: base64"},
      {head + "extra YWJj\nindex 7\n" + h + "\nYWJj\n\n" + cp,
       "line 5: proof hash is 3 bytes, expected 32"},
      {head + "extra YWJj\nindex 7\n" + h + "\n",
       "line 5: expected a base64 proof hash or the "
       "blank line"},
      {head + "extra YWJj\nindex 7\n" + h, "line 4"},
      {head + "extra YWJj\nindex 7\n\n", "line 5: expected the signed checkpoint"},
      {head + "extra YWJj\nindex 7\n\n" + cp.substr(0, cp.size() - 1),
       "line 5: signed checkpoint does not end in a newline"},
  };
  for (const auto& [text, why] : cases) {
    absl::StatusOr<Receipt> parsed = ParseReceipt(text);
    EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument) << absl::CHexEscape(text);
    EXPECT_THAT(std::string(parsed.status().message()), HasSubstr("receipt line"))
        << absl::CHexEscape(text);
    EXPECT_THAT(std::string(parsed.status().message()), HasSubstr(why)) << absl::CHexEscape(text);
  }
}

TEST(ReceiptTest, AtMost64ProofHashesAreAccepted) {
  Receipt r = SampleReceipt("o\n8\nroot\n\n\xE2\x80\x94 o sig\n");
  r.proof.assign(64, Sha256("p"));
  EXPECT_TRUE(ParseReceipt(FormatReceipt(r)).ok());
  r.proof.push_back(Sha256("p"));
  absl::StatusOr<Receipt> parsed = ParseReceipt(FormatReceipt(r));
  EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(parsed.status().message()),
              HasSubstr("receipt line 68: more than 64 proof hashes"));
}

TEST(ReceiptTest, EntriesOver8MiBAreRejected) {
  Receipt r = SampleReceipt("o\n8\nroot\n\n\xE2\x80\x94 o sig\n");
  r.entry_bytes.assign(8 << 20, 'e');
  EXPECT_TRUE(ParseReceipt(FormatReceipt(r)).ok());
  for (size_t size : {(8u << 20) + 1, (8u << 20) + 4}) {
    r.entry_bytes.assign(size, 'e');
    absl::StatusOr<Receipt> parsed = ParseReceipt(FormatReceipt(r));
    EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument) << size;
    EXPECT_THAT(std::string(parsed.status().message()), HasSubstr("receipt line 2"));
  }
}

// ---- Base64. ----

TEST(Base64Test, EncodesAndDecodesTheRfc4648Vectors) {
  const std::vector<std::pair<std::string, std::string>> vectors = {
      {"", ""},
      {"f", "Zg=="},
      {"fo", "Zm8="},
      {"foo", "Zm9v"},
      {"foob", "Zm9vYg=="},
      {"fooba", "Zm9vYmE="},
      {"foobar", "Zm9vYmFy"},
  };
  for (const auto& [plain, encoded] : vectors) {
    EXPECT_EQ(Base64Encode(plain), encoded);
    absl::StatusOr<std::string> decoded = Base64Decode(encoded);
    ASSERT_TRUE(decoded.ok()) << encoded << ": " << decoded.status();
    EXPECT_EQ(*decoded, plain);
  }
}

TEST(Base64Test, RoundTripsEveryByteValueAtEveryLength) {
  std::string bytes;
  for (int i = 0; i < 300; ++i) {
    std::string encoded = Base64Encode(bytes);
    EXPECT_EQ(encoded, absl::Base64Escape(bytes));  // Abseil's encoder agrees
    absl::StatusOr<std::string> decoded = Base64Decode(encoded);
    ASSERT_TRUE(decoded.ok()) << decoded.status();
    EXPECT_EQ(*decoded, bytes);
    bytes.push_back(static_cast<char>((i * 151 + 7) & 0xFF));
  }
}

TEST(Base64Test, AnythingButCanonicalPaddedStandardBase64IsRejected) {
  const std::vector<std::string> bad = {
      "Zg",        // padding missing
      "Zg=",       // padding short
      "Zg===",     // padding long
      "Zm9",       // padding missing
      "Zh==",      // non-zero bits before padding
      "Zm9=",      // non-zero bits before padding
      "Zg==Zg==",  // padding in the middle
      "=Zm9",      // padding first
      "Zm=v",      // padding inside a quantum
      "====",      // only padding
      "Z===",      // too much padding
      "Zm9v=",     // length
      "Zm 9v",     // whitespace
      " Zm9v",     // whitespace
      "Zm9v\n",    // newline
      "Zm9v\r\n",  // CRLF
      "Zm-v",      // URL-safe alphabet
      "Zm_v",      // URL-safe alphabet
      "Zm9\xFF",   // non-ASCII
      std::string("Zm9\0", 4),
  };
  for (const std::string& text : bad) {
    absl::StatusOr<std::string> decoded = Base64Decode(text);
    EXPECT_EQ(decoded.status().code(), absl::StatusCode::kInvalidArgument)
        << absl::CHexEscape(text);
    EXPECT_THAT(std::string(decoded.status().message()), HasSubstr("base64"))
        << absl::CHexEscape(text);
  }
}

}  // namespace
}  // namespace warmledger

// Signed notes (C2SP signed-note) with Ed25519 keys through OpenSSL, the
// checkpoint body they carry (C2SP tlog-checkpoint), and the donor receipt
// file (shaped as C2SP tlog-proof). docs/verify.md describes every byte.
//
//   checkpoint note text:  <origin>\n<tree size, decimal>\n<base64 root>\n
//   signed note:           <text>\n— <key name> <base64(key id[4] || signature[64])>\n
//   key id:                SHA-256(<key name> || 0x0A || 0x01 || public key[32])[:4]
//   verifier key:          <key name>+<key id, 8 hex digits>+<base64(0x01 || public key)>
//   signing key file:      PRIVATE+KEY+<key name>+<key id hex>+<base64(0x01 || seed[32])>\n
//
// The signature is Ed25519 over the note text (every byte before the blank
// line, including the text's final newline).
#ifndef WARMLEDGER_LEDGER_NOTE_H_
#define WARMLEDGER_LEDGER_NOTE_H_

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "ledger/types.h"

namespace warmledger {

// Key names follow signed-note: non-empty, no '+', no whitespace, printable.
absl::Status ValidateKeyName(std::string_view name);

// The Ed25519 (RFC 8032) signature of `message` by the key whose 32-byte
// private seed (RFC 8032's "secret key") is `seed`. Deterministic. NoteSigner
// signs with it; exposed for known-answer tests.
absl::StatusOr<std::array<uint8_t, 64>> Ed25519Sign(const std::array<uint8_t, 32>& seed,
                                                    std::string_view message);

class NoteSigner {
 public:
  // A new random key.
  static absl::StatusOr<NoteSigner> Generate(std::string_view name);
  // From the signing-key text form above (trailing newline optional).
  static absl::StatusOr<NoteSigner> FromSigningKey(std::string_view text);
  // Reads the signing key file at `path`; if it does not exist, creates one
  // with a new key for `name` (mode 0600, parent folder created). A file for
  // another key name is kFailedPrecondition naming both.
  static absl::StatusOr<NoteSigner> LoadOrCreate(const std::string& path,
                                                 std::string_view name);

  const std::string& name() const { return name_; }
  uint32_t key_id() const { return key_id_; }
  std::string SigningKey() const;   // the text form above, with newline
  std::string VerifierKey() const;  // the text form above, no newline

  // `text` must be non-empty, end with '\n' and contain no blank line.
  // Returns the signed note: text, blank line, one signature line.
  absl::StatusOr<std::string> Sign(std::string_view text) const;

  NoteSigner(NoteSigner&&) noexcept;
  NoteSigner& operator=(NoteSigner&&) noexcept;
  ~NoteSigner();

 private:
  NoteSigner() = default;
  std::string name_;
  uint32_t key_id_ = 0;
  std::array<uint8_t, 32> seed_{};
  std::array<uint8_t, 32> public_key_{};
};

class NoteVerifier {
 public:
  // Parses the verifier-key text form. Errors are kInvalidArgument naming
  // the part that is wrong.
  static absl::StatusOr<NoteVerifier> Parse(std::string_view verifier_key);

  const std::string& name() const { return name_; }
  uint32_t key_id() const { return key_id_; }

  // Checks that `note` is a well-formed signed note with a signature line for
  // this key (name and key id) whose signature verifies over the text. Other
  // signature lines are ignored. Returns the note text. Errors:
  // kInvalidArgument (malformed note), kNotFound (no signature by this key),
  // kFailedPrecondition (signature does not verify).
  absl::StatusOr<std::string> Open(std::string_view note) const;

 private:
  std::string name_;
  uint32_t key_id_ = 0;
  std::array<uint8_t, 32> public_key_{};
};

struct Checkpoint {
  std::string origin;
  uint64_t size = 0;
  Hash root{};
  bool operator==(const Checkpoint&) const = default;
};

// The checkpoint a signed note carries, read WITHOUT checking any signature:
// for notes this process signed itself, or when no key is at hand (and the
// caller says so). The text ends at the note's last blank line, as in
// NoteVerifier::Open.
absl::StatusOr<Checkpoint> ParseCheckpointUnverified(std::string_view note);

// The note text of a checkpoint (three lines, each ending in '\n').
std::string FormatCheckpoint(const Checkpoint& checkpoint);
// Parses a checkpoint note text (extension lines after the third are
// allowed and ignored). kInvalidArgument naming the line that is wrong.
absl::StatusOr<Checkpoint> ParseCheckpoint(std::string_view text);

// A donor's receipt: everything needed to check offline that an entry is in
// the tree a signed checkpoint commits to.
//
//   c2sp.org/tlog-proof@v1
//   extra <base64 entry_bytes>
//   index <leaf index, decimal>        (entry seq - 1)
//   <base64 inclusion-proof hash>      (one line per hash, leaf to root)
//   ...
//   <blank line>
//   <signed checkpoint note>
struct Receipt {
  std::string entry_bytes;  // raw bytes, not base64
  uint64_t index = 0;
  std::vector<Hash> proof;
  std::string checkpoint;   // the signed note, verbatim
};

std::string FormatReceipt(const Receipt& receipt);
// kInvalidArgument naming the line that is wrong.
absl::StatusOr<Receipt> ParseReceipt(std::string_view text);

std::string Base64Encode(std::string_view bytes);
// Standard alphabet with padding (RFC 4648 section 4); anything else is
// kInvalidArgument.
absl::StatusOr<std::string> Base64Decode(std::string_view text);

}  // namespace warmledger

#endif  // WARMLEDGER_LEDGER_NOTE_H_

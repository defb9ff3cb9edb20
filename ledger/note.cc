#include "ledger/note.h"

#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstring>
#include <memory>
#include <optional>
#include <system_error>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "ledger/sha256.h"
#include "ledger/status_macros.h"

namespace warmledger {
namespace {

// Signature type byte of Ed25519 in signed-note key ids and key encodings.
constexpr uint8_t kEd25519Type = 0x01;
constexpr size_t kEd25519KeyBytes = 32;
constexpr size_t kEd25519SignatureBytes = 64;
constexpr size_t kKeyIdBytes = 4;

constexpr size_t kMaxKeyNameBytes = 256;
// A signed note larger than this is refused before any parsing. Checkpoints
// are about a hundred bytes plus ~110 per signature line.
constexpr size_t kMaxNoteBytes = 1 << 20;
// The spec asks verifiers to accept at least 16 signatures.
constexpr int kMaxNoteSignatures = 100;
// A signing key file is one short line; anything much larger is not one.
constexpr off_t kMaxSigningKeyFileBytes = 4096;
// Receipt limits: the entry carried on the extra line, and the number of
// inclusion-proof hashes (a proof in a tree of fewer than 2^64 leaves has at
// most 64).
constexpr size_t kMaxReceiptEntryBytes = 8 << 20;
constexpr size_t kMaxReceiptProofHashes = 64;

// "— " : U+2014 EM DASH in UTF-8, then a space.
constexpr std::string_view kSignaturePrefix = "\xE2\x80\x94 ";
constexpr std::string_view kSigningKeyPrefix = "PRIVATE+KEY+";
constexpr std::string_view kReceiptHeader = "c2sp.org/tlog-proof@v1";
constexpr std::string_view kReceiptExtraPrefix = "extra ";
constexpr std::string_view kReceiptIndexPrefix = "index ";

using Seed = std::array<uint8_t, kEd25519KeyBytes>;
using PublicKey = std::array<uint8_t, kEd25519KeyBytes>;

// ---- Small string helpers. ----

std::string_view AsChars(const uint8_t* data, size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

template <size_t N>
std::string_view AsChars(const std::array<uint8_t, N>& bytes) {
  return AsChars(bytes.data(), bytes.size());
}

// Quoted, with non-printable bytes escaped, for error messages.
std::string Quote(std::string_view s) {
  return absl::StrCat("\"", absl::CHexEscape(ToAbsl(s)), "\"");
}

std::string KeyIdHex(uint32_t key_id) { return absl::StrCat(absl::Hex(key_id, absl::kZeroPad8)); }

// "0x1f" for error messages.
std::string ByteHex(uint32_t b) { return absl::StrCat("0x", absl::Hex(b, absl::kZeroPad2)); }

// "U+00A0" for error messages.
std::string CodePointName(uint32_t cp) {
  return absl::StrCat("U+", absl::AsciiStrToUpper(absl::StrCat(absl::Hex(cp, absl::kZeroPad4))));
}

// "0644" for error messages.
std::string OctalMode(mode_t mode) {
  std::string out;
  for (int shift = 9; shift >= 0; shift -= 3) {
    out.push_back(static_cast<char>('0' + ((mode >> shift) & 7)));
  }
  return out;
}

// Splits `s` at the first `sep`: returns the part before it and leaves the
// rest in `s`; nullopt (and `s` unchanged) if there is no `sep`.
std::optional<std::string_view> ChopAt(std::string_view* s, char sep) {
  size_t i = s->find(sep);
  if (i == std::string_view::npos) return std::nullopt;
  std::string_view before = s->substr(0, i);
  s->remove_prefix(i + 1);
  return before;
}

// Decimal ASCII, no sign, no leading zeros except "0" itself, fits uint64.
// Returns what is wrong, or nullopt.
std::optional<std::string> ParseDecimal(std::string_view s, uint64_t* out) {
  if (s.empty()) return "empty";
  uint64_t value = 0;
  for (char c : s) {
    if (c < '0' || c > '9') {
      return absl::StrCat(Quote(s), " is not a decimal number");
    }
    uint64_t digit = static_cast<uint64_t>(c - '0');
    if (value > (UINT64_MAX - digit) / 10) {
      return absl::StrCat(Quote(s), " does not fit in 64 bits");
    }
    value = value * 10 + digit;
  }
  if (s.size() > 1 && s[0] == '0') return absl::StrCat(Quote(s), " has a leading zero");
  *out = value;
  return std::nullopt;
}

// Exactly 8 hex digits (either case).
std::optional<uint32_t> ParseKeyIdHex(std::string_view s) {
  if (s.size() != 8) return std::nullopt;
  uint32_t value = 0;
  for (char c : s) {
    uint32_t digit;
    if (c >= '0' && c <= '9') {
      digit = static_cast<uint32_t>(c - '0');
    } else if (c >= 'a' && c <= 'f') {
      digit = static_cast<uint32_t>(c - 'a' + 10);
    } else if (c >= 'A' && c <= 'F') {
      digit = static_cast<uint32_t>(c - 'A' + 10);
    } else {
      return std::nullopt;
    }
    value = (value << 4) | digit;
  }
  return value;
}

uint32_t ReadBigEndian32(const char* p) {
  return (uint32_t{static_cast<uint8_t>(p[0])} << 24) |
         (uint32_t{static_cast<uint8_t>(p[1])} << 16) |
         (uint32_t{static_cast<uint8_t>(p[2])} << 8) | uint32_t{static_cast<uint8_t>(p[3])};
}

void AppendBigEndian32(uint32_t v, std::string* out) {
  out->push_back(static_cast<char>(v >> 24));
  out->push_back(static_cast<char>(v >> 16));
  out->push_back(static_cast<char>(v >> 8));
  out->push_back(static_cast<char>(v));
}

// ---- UTF-8. ----

// Decodes one code point at `s[*pos]` strictly (no overlong forms, no
// surrogates, nothing above U+10FFFF) and advances `*pos`. False if invalid.
bool NextCodePoint(std::string_view s, size_t* pos, uint32_t* cp) {
  const size_t i = *pos;
  const uint8_t b0 = static_cast<uint8_t>(s[i]);
  size_t len;
  uint32_t min;
  if (b0 < 0x80) {
    *cp = b0;
    *pos = i + 1;
    return true;
  } else if ((b0 & 0xE0) == 0xC0) {
    len = 2, min = 0x80, *cp = b0 & 0x1F;
  } else if ((b0 & 0xF0) == 0xE0) {
    len = 3, min = 0x800, *cp = b0 & 0x0F;
  } else if ((b0 & 0xF8) == 0xF0) {
    len = 4, min = 0x10000, *cp = b0 & 0x07;
  } else {
    return false;
  }
  if (s.size() - i < len) return false;
  for (size_t k = 1; k < len; ++k) {
    const uint8_t b = static_cast<uint8_t>(s[i + k]);
    if ((b & 0xC0) != 0x80) return false;
    *cp = (*cp << 6) | (b & 0x3F);
  }
  if (*cp < min || *cp > 0x10FFFF || (*cp >= 0xD800 && *cp <= 0xDFFF)) return false;
  *pos = i + len;
  return true;
}

// Unicode White_Space (what Go's unicode.IsSpace reports, which is what
// signed-note implementations check key names against).
bool IsUnicodeSpace(uint32_t cp) {
  return (cp >= 0x09 && cp <= 0x0D) || cp == 0x20 || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
         (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F ||
         cp == 0x205F || cp == 0x3000;
}

bool IsControl(uint32_t cp) { return cp < 0x20 || (cp >= 0x7F && cp <= 0x9F); }

// Signed notes must be valid UTF-8 without ASCII control characters other
// than newline. Errors name `what` and the line.
absl::Status CheckNoteCharacters(std::string_view s, std::string_view what) {
  size_t pos = 0;
  int line = 1;
  while (pos < s.size()) {
    uint32_t cp;
    if (!NextCodePoint(s, &pos, &cp)) {
      return absl::InvalidArgumentError(
          absl::StrCat(ToAbsl(what), " line ", line, ": not valid UTF-8"));
    }
    if (cp == '\n') {
      ++line;
    } else if (cp < 0x20) {
      return absl::InvalidArgumentError(absl::StrCat(ToAbsl(what), " line ", line,
                                                     ": control character ", ByteHex(cp),
                                                     " (only newline is allowed)"));
    }
  }
  return absl::OkStatus();
}

// ---- OpenSSL Ed25519. ----

struct PkeyDeleter {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
struct MdCtxDeleter {
  void operator()(EVP_MD_CTX* p) const { EVP_MD_CTX_free(p); }
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyDeleter>;
using MdCtxPtr = std::unique_ptr<EVP_MD_CTX, MdCtxDeleter>;

// An internal error naming the OpenSSL call and its queued error; clears the
// thread's error queue.
absl::Status OpenSslError(std::string_view call) {
  unsigned long code = ERR_get_error();
  char detail[256] = "no OpenSSL error queued";
  if (code != 0) ERR_error_string_n(code, detail, sizeof(detail));
  ERR_clear_error();
  return absl::InternalError(absl::StrCat("OpenSSL ", ToAbsl(call), " failed: ", detail));
}

absl::StatusOr<PkeyPtr> PrivateKeyFromSeed(const Seed& seed) {
  PkeyPtr pkey(EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, nullptr, seed.data(), seed.size()));
  if (pkey == nullptr) return OpenSslError("EVP_PKEY_new_raw_private_key(Ed25519)");
  return pkey;
}

absl::StatusOr<PublicKey> PublicKeyFromSeed(const Seed& seed) {
  WL_ASSIGN_OR_RETURN(PkeyPtr pkey, PrivateKeyFromSeed(seed));
  PublicKey public_key;
  size_t len = public_key.size();
  if (EVP_PKEY_get_raw_public_key(pkey.get(), public_key.data(), &len) != 1) {
    return OpenSslError("EVP_PKEY_get_raw_public_key");
  }
  if (len != public_key.size()) {
    return absl::InternalError(absl::StrCat("Ed25519 public key is ", len, " bytes"));
  }
  return public_key;
}

absl::StatusOr<PkeyPtr> PublicKeyObject(const PublicKey& public_key) {
  PkeyPtr pkey(
      EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, nullptr, public_key.data(), public_key.size()));
  if (pkey == nullptr) return OpenSslError("EVP_PKEY_new_raw_public_key(Ed25519)");
  return pkey;
}

// True if `signature` is a valid Ed25519 signature of `message`. A malformed
// key or signature is simply "does not verify".
bool Ed25519Verify(const PublicKey& public_key, std::string_view message,
                   std::string_view signature) {
  if (signature.size() != kEd25519SignatureBytes) return false;
  absl::StatusOr<PkeyPtr> pkey = PublicKeyObject(public_key);
  if (!pkey.ok()) return false;
  MdCtxPtr ctx(EVP_MD_CTX_new());
  bool ok =
      ctx != nullptr &&
      EVP_DigestVerifyInit(ctx.get(), nullptr, nullptr, nullptr, pkey->get()) == 1 &&
      EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char*>(signature.data()),
                       signature.size(), reinterpret_cast<const unsigned char*>(message.data()),
                       message.size()) == 1;
  // A failed verification may leave entries in the thread's error queue.
  if (!ok) ERR_clear_error();
  return ok;
}

// SHA-256(name || '\n' || 0x01 || public key)[:4], big-endian.
uint32_t ComputeKeyId(std::string_view name, const PublicKey& public_key) {
  std::string preimage(name);
  preimage.push_back('\n');
  preimage.push_back(static_cast<char>(kEd25519Type));
  preimage.append(AsChars(public_key));
  Hash h = Sha256(preimage);
  return ReadBigEndian32(reinterpret_cast<const char*>(h.data()));
}

// Decodes base64(0x01 || 32-byte key) as found in key texts into `key`.
// `what` names the key text for errors ("verifier key", "signing key"); the
// key bytes never appear in a message, and no copy of them is left behind.
absl::Status DecodeTypedKey(std::string_view b64, std::string_view what,
                            std::array<uint8_t, kEd25519KeyBytes>* key) {
  absl::StatusOr<std::string> decoded = Base64Decode(b64);
  if (!decoded.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(ToAbsl(what), ": key data is not valid base64 (",
                                                   decoded.status().message(), ")"));
  }
  std::string& bytes = *decoded;
  absl::Status status;
  if (bytes.empty()) {
    status = absl::InvalidArgumentError(absl::StrCat(ToAbsl(what), ": key data is empty"));
  } else if (static_cast<uint8_t>(bytes[0]) != kEd25519Type) {
    status = absl::InvalidArgumentError(absl::StrCat(ToAbsl(what), ": key type byte is ",
                                                     ByteHex(static_cast<uint8_t>(bytes[0])),
                                                     "; only 0x01 (Ed25519) is supported"));
  } else if (bytes.size() != 1 + kEd25519KeyBytes) {
    status =
        absl::InvalidArgumentError(absl::StrCat(ToAbsl(what), ": Ed25519 key is ", bytes.size() - 1,
                                                " bytes, expected ", kEd25519KeyBytes));
  } else {
    std::memcpy(key->data(), bytes.data() + 1, key->size());
  }
  OPENSSL_cleanse(bytes.data(), bytes.size());
  return status;
}

absl::Status PrefixError(const absl::Status& status, std::string_view prefix) {
  return absl::Status(status.code(), absl::StrCat(ToAbsl(prefix), status.message()));
}

// ---- Files. ----

class FdCloser {
 public:
  explicit FdCloser(int fd) : fd_(fd) {}
  FdCloser(const FdCloser&) = delete;
  FdCloser& operator=(const FdCloser&) = delete;
  ~FdCloser() {
    if (fd_ >= 0) ::close(fd_);
  }
  // Closes now and reports the result (close can report a failed write).
  int Close() {
    int rc = ::close(fd_);
    fd_ = -1;
    return rc;
  }

 private:
  int fd_;
};

// Errors a person has to fix (permissions, a file where a folder should be)
// are kFailedPrecondition; the rest (I/O errors, full disk) kUnavailable.
absl::Status FileError(const std::string& path, std::string_view action, int err) {
  absl::StatusCode code;
  switch (err) {
    case EACCES:
    case EPERM:
    case EROFS:
    case ENOTDIR:
    case EISDIR:
    case ELOOP:
    case ENAMETOOLONG:
      code = absl::StatusCode::kFailedPrecondition;
      break;
    default:
      code = absl::StatusCode::kUnavailable;
  }
  return absl::Status(code, absl::StrCat("signing key file ", path, ": ", ToAbsl(action), ": ",
                                         std::generic_category().message(err)));
}

std::string ParentDir(const std::string& path) {
  size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

absl::Status FsyncDir(const std::string& dir, const std::string& path_for_errors) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return FileError(path_for_errors, absl::StrCat("open folder ", dir), errno);
  FdCloser closer(fd);
  if (::fsync(fd) != 0) {
    return FileError(path_for_errors, absl::StrCat("fsync folder ", dir), errno);
  }
  return absl::OkStatus();
}

// mkdir -p with mode 0700; makes each folder it creates durable.
absl::Status CreateDirectories(const std::string& dir, const std::string& path_for_errors) {
  std::vector<std::string> created;
  for (size_t end = 1; end <= dir.size(); ++end) {
    if (end != dir.size() && dir[end] != '/') continue;
    std::string prefix = dir.substr(0, end);
    if (::mkdir(prefix.c_str(), 0700) == 0) {
      created.push_back(prefix);
      continue;
    }
    int err = errno;
    struct stat st {};
    if (err == EEXIST && ::stat(prefix.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) continue;
    if (err == EEXIST) err = ENOTDIR;
    return FileError(path_for_errors, absl::StrCat("create folder ", prefix), err);
  }
  for (const std::string& d : created) {
    WL_RETURN_IF_ERROR(FsyncDir(ParentDir(d), path_for_errors));
  }
  return absl::OkStatus();
}

absl::Status WriteAll(int fd, std::string_view data, const std::string& path) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return FileError(path, "write", errno);
    data.remove_prefix(static_cast<size_t>(n));
  }
  return absl::OkStatus();
}

}  // namespace

// ---- Key names and Ed25519. ----

absl::Status ValidateKeyName(std::string_view name) {
  if (name.empty()) return absl::InvalidArgumentError("key name is empty");
  if (name.size() > kMaxKeyNameBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("key name is ", name.size(), " bytes; at most ", kMaxKeyNameBytes));
  }
  size_t pos = 0;
  while (pos < name.size()) {
    const size_t at = pos;
    uint32_t cp;
    if (!NextCodePoint(name, &pos, &cp)) {
      return absl::InvalidArgumentError(
          absl::StrCat("key name ", Quote(name), " is not valid UTF-8 (byte ", at, ")"));
    }
    if (cp == '+') {
      return absl::InvalidArgumentError(
          absl::StrCat("key name ", Quote(name), " must not contain '+'"));
    }
    if (IsUnicodeSpace(cp)) {
      return absl::InvalidArgumentError(absl::StrCat("key name ", Quote(name),
                                                     " must not contain spaces (",
                                                     CodePointName(cp), " at byte ", at, ")"));
    }
    if (IsControl(cp)) {
      return absl::InvalidArgumentError(absl::StrCat("key name ", Quote(name),
                                                     " must not contain control characters (",
                                                     CodePointName(cp), " at byte ", at, ")"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::array<uint8_t, 64>> Ed25519Sign(const std::array<uint8_t, 32>& seed,
                                                    std::string_view message) {
  WL_ASSIGN_OR_RETURN(PkeyPtr pkey, PrivateKeyFromSeed(seed));
  MdCtxPtr ctx(EVP_MD_CTX_new());
  if (ctx == nullptr) return OpenSslError("EVP_MD_CTX_new");
  // Ed25519 is one-shot and hashes internally: no digest, no update calls.
  if (EVP_DigestSignInit(ctx.get(), nullptr, nullptr, nullptr, pkey.get()) != 1) {
    return OpenSslError("EVP_DigestSignInit(Ed25519)");
  }
  std::array<uint8_t, 64> signature;
  size_t len = signature.size();
  if (EVP_DigestSign(ctx.get(), signature.data(), &len,
                     reinterpret_cast<const unsigned char*>(message.data()), message.size()) != 1) {
    return OpenSslError("EVP_DigestSign(Ed25519)");
  }
  if (len != signature.size()) {
    return absl::InternalError(absl::StrCat("Ed25519 signature is ", len, " bytes"));
  }
  return signature;
}

// ---- NoteSigner. ----

NoteSigner::NoteSigner(NoteSigner&& other) noexcept
    : name_(std::move(other.name_)),
      key_id_(other.key_id_),
      seed_(other.seed_),
      public_key_(other.public_key_) {
  OPENSSL_cleanse(other.seed_.data(), other.seed_.size());
}

NoteSigner& NoteSigner::operator=(NoteSigner&& other) noexcept {
  if (this != &other) {
    name_ = std::move(other.name_);
    key_id_ = other.key_id_;
    seed_ = other.seed_;
    public_key_ = other.public_key_;
    OPENSSL_cleanse(other.seed_.data(), other.seed_.size());
  }
  return *this;
}

NoteSigner::~NoteSigner() { OPENSSL_cleanse(seed_.data(), seed_.size()); }

absl::StatusOr<NoteSigner> NoteSigner::Generate(std::string_view name) {
  WL_RETURN_IF_ERROR(ValidateKeyName(name));
  NoteSigner signer;
  if (RAND_bytes(signer.seed_.data(), static_cast<int>(signer.seed_.size())) != 1) {
    return absl::UnavailableError(
        absl::StrCat("generating a signing key: ", OpenSslError("RAND_bytes").message()));
  }
  WL_ASSIGN_OR_RETURN(signer.public_key_, PublicKeyFromSeed(signer.seed_));
  signer.name_ = std::string(name);
  signer.key_id_ = ComputeKeyId(name, signer.public_key_);
  return signer;
}

absl::StatusOr<NoteSigner> NoteSigner::FromSigningKey(std::string_view text) {
  constexpr std::string_view kWhat = "signing key";
  if (!text.empty() && text.back() == '\n') text.remove_suffix(1);
  if (text.substr(0, kSigningKeyPrefix.size()) != kSigningKeyPrefix) {
    return absl::InvalidArgumentError(
        "signing key: does not start with PRIVATE+KEY+ (expected "
        "PRIVATE+KEY+<name>+<key id>+<key>)");
  }
  std::string_view rest = text.substr(kSigningKeyPrefix.size());
  // The name and key id contain no '+'; the base64 key data may.
  std::optional<std::string_view> name = ChopAt(&rest, '+');
  std::optional<std::string_view> id_hex = name.has_value() ? ChopAt(&rest, '+') : std::nullopt;
  if (!id_hex.has_value()) {
    return absl::InvalidArgumentError(
        "signing key: too few '+'-separated parts (expected "
        "PRIVATE+KEY+<name>+<key id>+<key>)");
  }
  if (absl::Status s = ValidateKeyName(*name); !s.ok()) return PrefixError(s, "signing key: ");
  std::optional<uint32_t> key_id = ParseKeyIdHex(*id_hex);
  if (!key_id.has_value()) {
    return absl::InvalidArgumentError(
        absl::StrCat("signing key: key id ", Quote(*id_hex), " is not 8 hex digits"));
  }
  NoteSigner signer;
  WL_RETURN_IF_ERROR(DecodeTypedKey(rest, kWhat, &signer.seed_));
  WL_ASSIGN_OR_RETURN(signer.public_key_, PublicKeyFromSeed(signer.seed_));
  signer.name_ = std::string(*name);
  signer.key_id_ = ComputeKeyId(signer.name_, signer.public_key_);
  if (signer.key_id_ != *key_id) {
    return absl::InvalidArgumentError(absl::StrCat("signing key: key id ", KeyIdHex(*key_id),
                                                   " does not match the key (its key id is ",
                                                   KeyIdHex(signer.key_id_), ")"));
  }
  return signer;
}

namespace {

// Reads and checks an open signing key file; takes ownership of `fd`.
absl::StatusOr<NoteSigner> LoadSigningKeyFile(int fd, const std::string& path,
                                              std::string_view name) {
  FdCloser closer(fd);
  struct stat st {};
  if (::fstat(fd, &st) != 0) return FileError(path, "stat", errno);
  if (!S_ISREG(st.st_mode)) {
    return absl::FailedPreconditionError(
        absl::StrCat("signing key file ", path, ": not a regular file"));
  }
  if ((st.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("signing key file ", path, " has mode ", OctalMode(st.st_mode & 07777),
                     ": it must not be readable by others; chmod 600 ", path));
  }
  if (st.st_size > kMaxSigningKeyFileBytes) {
    return absl::FailedPreconditionError(
        absl::StrCat("signing key file ", path, ": ", st.st_size,
                     " bytes is too large for a signing key (one line)"));
  }
  std::string contents(static_cast<size_t>(kMaxSigningKeyFileBytes) + 1, '\0');
  size_t used = 0;
  while (used < contents.size()) {
    ssize_t n = ::read(fd, contents.data() + used, contents.size() - used);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      OPENSSL_cleanse(contents.data(), contents.size());
      return FileError(path, "read", errno);
    }
    if (n == 0) break;
    used += static_cast<size_t>(n);
  }
  absl::StatusOr<NoteSigner> signer = absl::FailedPreconditionError("grew while being read");
  if (used <= static_cast<size_t>(kMaxSigningKeyFileBytes)) {
    signer = NoteSigner::FromSigningKey(std::string_view(contents.data(), used));
  }
  OPENSSL_cleanse(contents.data(), contents.size());
  if (!signer.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat("signing key file ", path, ": ", signer.status().message()));
  }
  if (signer->name() != name) {
    return absl::FailedPreconditionError(absl::StrCat("signing key file ", path,
                                                      " holds the key for ", Quote(signer->name()),
                                                      ", but this log signs as ", Quote(name)));
  }
  return signer;
}

absl::StatusOr<NoteSigner> LoadSigningKeyPath(const std::string& path, std::string_view name) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return FileError(path, "open", errno);
  return LoadSigningKeyFile(fd, path, name);
}

// Writes a new key to a temporary file (O_CREAT|O_EXCL, 0600), makes it
// durable, then hard-links it into place: link() never replaces an existing
// file, so two processes racing here end up with the same key, and a crash
// never leaves a half-written key at `path`.
absl::StatusOr<NoteSigner> CreateSigningKeyFile(const std::string& path, std::string_view name) {
  const std::string dir = ParentDir(path);
  WL_RETURN_IF_ERROR(CreateDirectories(dir, path));
  WL_ASSIGN_OR_RETURN(NoteSigner signer, NoteSigner::Generate(name));

  std::array<uint8_t, 8> suffix;
  if (RAND_bytes(suffix.data(), static_cast<int>(suffix.size())) != 1) {
    return absl::UnavailableError(
        absl::StrCat("signing key file ", path, ": ", OpenSslError("RAND_bytes").message()));
  }
  const std::string tmp =
      absl::StrCat(path, ".tmp-", absl::BytesToHexString(ToAbsl(AsChars(suffix))));
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return FileError(path, absl::StrCat("create ", tmp), errno);
  FdCloser closer(fd);

  std::string contents = signer.SigningKey();
  absl::Status status = WriteAll(fd, contents, path);
  OPENSSL_cleanse(contents.data(), contents.size());
  if (status.ok() && ::fsync(fd) != 0) status = FileError(path, "fsync", errno);
  if (status.ok() && closer.Close() != 0) status = FileError(path, "close", errno);
  bool raced = false;
  if (status.ok() && ::link(tmp.c_str(), path.c_str()) != 0) {
    if (errno == EEXIST) {
      raced = true;
    } else {
      status = FileError(path, absl::StrCat("link from ", tmp), errno);
    }
  }
  ::unlink(tmp.c_str());
  WL_RETURN_IF_ERROR(status);
  // Another process created the key first: use theirs.
  if (raced) return LoadSigningKeyPath(path, name);
  WL_RETURN_IF_ERROR(FsyncDir(dir, path));
  return signer;
}

}  // namespace

absl::StatusOr<NoteSigner> NoteSigner::LoadOrCreate(const std::string& path,
                                                    std::string_view name) {
  WL_RETURN_IF_ERROR(ValidateKeyName(name));
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd >= 0) return LoadSigningKeyFile(fd, path, name);
  if (errno != ENOENT) return FileError(path, "open", errno);
  return CreateSigningKeyFile(path, name);
}

std::string NoteSigner::SigningKey() const {
  std::string typed_seed(1, static_cast<char>(kEd25519Type));
  typed_seed.append(AsChars(seed_));
  std::string encoded = Base64Encode(typed_seed);
  std::string out =
      absl::StrCat(ToAbsl(kSigningKeyPrefix), name_, "+", KeyIdHex(key_id_), "+", encoded, "\n");
  OPENSSL_cleanse(typed_seed.data(), typed_seed.size());
  OPENSSL_cleanse(encoded.data(), encoded.size());
  return out;
}

std::string NoteSigner::VerifierKey() const {
  std::string typed_key(1, static_cast<char>(kEd25519Type));
  typed_key.append(AsChars(public_key_));
  return absl::StrCat(name_, "+", KeyIdHex(key_id_), "+", Base64Encode(typed_key));
}

absl::StatusOr<std::string> NoteSigner::Sign(std::string_view text) const {
  if (text.empty()) return absl::InvalidArgumentError("note text is empty");
  if (text.back() != '\n') {
    return absl::InvalidArgumentError("note text does not end in a newline");
  }
  if (text.front() == '\n') return absl::InvalidArgumentError("note text starts with a blank line");
  if (size_t blank = text.find("\n\n"); blank != std::string_view::npos) {
    int line = 2;
    for (size_t i = 0; i < blank; ++i) line += text[i] == '\n';
    return absl::InvalidArgumentError(absl::StrCat("note text line ", line, " is blank"));
  }
  WL_RETURN_IF_ERROR(CheckNoteCharacters(text, "note text"));
  WL_ASSIGN_OR_RETURN(const auto signature, Ed25519Sign(seed_, text));
  std::string signature_bytes;
  AppendBigEndian32(key_id_, &signature_bytes);
  signature_bytes.append(AsChars(signature));
  std::string note = absl::StrCat(ToAbsl(text), "\n", ToAbsl(kSignaturePrefix), name_, " ",
                                  Base64Encode(signature_bytes), "\n");
  if (note.size() > kMaxNoteBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("signed note would be ", note.size(), " bytes; the limit is ", kMaxNoteBytes));
  }
  return note;
}

// ---- NoteVerifier. ----

absl::StatusOr<NoteVerifier> NoteVerifier::Parse(std::string_view verifier_key) {
  constexpr std::string_view kWhat = "verifier key";
  std::string_view rest = verifier_key;
  // The name and key id contain no '+'; the base64 key data may.
  std::optional<std::string_view> name = ChopAt(&rest, '+');
  std::optional<std::string_view> id_hex = name.has_value() ? ChopAt(&rest, '+') : std::nullopt;
  if (!id_hex.has_value()) {
    return absl::InvalidArgumentError(
        "verifier key: too few '+'-separated parts (expected <name>+<key id>+<key>)");
  }
  if (absl::Status s = ValidateKeyName(*name); !s.ok()) return PrefixError(s, "verifier key: ");
  std::optional<uint32_t> key_id = ParseKeyIdHex(*id_hex);
  if (!key_id.has_value()) {
    return absl::InvalidArgumentError(
        absl::StrCat("verifier key: key id ", Quote(*id_hex), " is not 8 hex digits"));
  }
  NoteVerifier verifier;
  WL_RETURN_IF_ERROR(DecodeTypedKey(rest, kWhat, &verifier.public_key_));
  if (!PublicKeyObject(verifier.public_key_).ok()) {
    return absl::InvalidArgumentError("verifier key: not a valid Ed25519 public key");
  }
  verifier.name_ = std::string(*name);
  verifier.key_id_ = ComputeKeyId(verifier.name_, verifier.public_key_);
  if (verifier.key_id_ != *key_id) {
    return absl::InvalidArgumentError(absl::StrCat("verifier key: key id ", KeyIdHex(*key_id),
                                                   " does not match the key (its key id is ",
                                                   KeyIdHex(verifier.key_id_), ")"));
  }
  return verifier;
}

absl::StatusOr<Checkpoint> ParseCheckpointUnverified(std::string_view note) {
  const size_t split = note.rfind("\n\n");
  if (split == std::string_view::npos) {
    return absl::InvalidArgumentError("signed note has no blank line before its signatures");
  }
  return ParseCheckpoint(note.substr(0, split + 1));
}

absl::StatusOr<std::string> NoteVerifier::Open(std::string_view note) const {
  if (note.size() > kMaxNoteBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("signed note is ", note.size(), " bytes; the limit is ", kMaxNoteBytes));
  }
  WL_RETURN_IF_ERROR(CheckNoteCharacters(note, "signed note"));
  if (note.empty() || note.back() != '\n') {
    return absl::InvalidArgumentError("signed note does not end in a newline");
  }
  // The text ends at the last blank line (signed-note: the text may contain
  // blank lines, signature lines never do).
  const size_t split = note.rfind("\n\n");
  if (split == std::string_view::npos) {
    return absl::InvalidArgumentError("signed note has no blank line before its signatures");
  }
  const std::string_view text = note.substr(0, split + 1);
  std::string_view signatures = note.substr(split + 2);
  if (signatures.empty()) {
    return absl::InvalidArgumentError("signed note has no signature lines after the blank line");
  }
  int line_number = 1;  // the blank line
  for (char c : text) line_number += c == '\n';

  // Parse every line first: a malformed note is rejected as such whatever
  // our own signature says.
  std::vector<std::string> ours;
  int count = 0;
  while (!signatures.empty()) {
    std::optional<std::string_view> line = ChopAt(&signatures, '\n');  // always found
    ++line_number;
    auto malformed = [&](absl::string_view why) {
      return absl::InvalidArgumentError(absl::StrCat("signed note line ", line_number, ": ", why));
    };
    if (++count > kMaxNoteSignatures) {
      return malformed(absl::StrCat("more than ", kMaxNoteSignatures, " signatures"));
    }
    std::string_view rest = *line;
    if (rest.substr(0, kSignaturePrefix.size()) != kSignaturePrefix) {
      return malformed("signature line does not start with an em dash (U+2014) and a space");
    }
    rest.remove_prefix(kSignaturePrefix.size());
    std::optional<std::string_view> name = ChopAt(&rest, ' ');
    if (!name.has_value()) return malformed("expected \"— <key name> <base64 signature>\"");
    if (absl::Status s = ValidateKeyName(*name); !s.ok()) return malformed(s.message());
    if (rest.empty()) return malformed("signature is empty");
    absl::StatusOr<std::string> bytes = Base64Decode(rest);
    if (!bytes.ok()) {
      return malformed(absl::StrCat("signature: ", bytes.status().message()));
    }
    if (bytes->size() <= kKeyIdBytes) {
      return malformed(absl::StrCat("signature is ", bytes->size(),
                                    " bytes; needs a 4-byte key id and a signature"));
    }
    if (*name == name_ && ReadBigEndian32(bytes->data()) == key_id_) {
      ours.push_back(bytes->substr(kKeyIdBytes));
    }
  }
  if (ours.empty()) {
    return absl::NotFoundError(
        absl::StrCat("signed note has no signature by key ", name_, "+", KeyIdHex(key_id_)));
  }
  for (const std::string& signature : ours) {
    if (!Ed25519Verify(public_key_, text, signature)) {
      return absl::FailedPreconditionError(
          absl::StrCat("signed note: signature by ", name_, " does not verify"));
    }
  }
  return std::string(text);
}

// ---- Checkpoints. ----

std::string FormatCheckpoint(const Checkpoint& checkpoint) {
  return absl::StrCat(checkpoint.origin, "\n", checkpoint.size, "\n",
                      Base64Encode(AsChars(checkpoint.root)), "\n");
}

absl::StatusOr<Checkpoint> ParseCheckpoint(std::string_view text) {
  if (text.empty()) return absl::InvalidArgumentError("checkpoint is empty");
  if (text.back() != '\n') {
    return absl::InvalidArgumentError("checkpoint does not end in a newline");
  }
  WL_RETURN_IF_ERROR(CheckNoteCharacters(text, "checkpoint"));
  Checkpoint checkpoint;
  int line_number = 0;
  std::string_view rest = text;
  while (!rest.empty()) {
    std::string_view line = *ChopAt(&rest, '\n');
    ++line_number;
    auto bad = [&](absl::string_view field, absl::string_view why) {
      return absl::InvalidArgumentError(
          absl::StrCat("checkpoint line ", line_number, " (", field, "): ", why));
    };
    switch (line_number) {
      case 1:
        if (line.empty()) return bad("origin", "empty");
        checkpoint.origin = std::string(line);
        break;
      case 2:
        if (std::optional<std::string> why = ParseDecimal(line, &checkpoint.size)) {
          return bad("tree size", *why);
        }
        break;
      case 3: {
        absl::StatusOr<std::string> root = Base64Decode(line);
        if (!root.ok()) return bad("root hash", root.status().message());
        if (root->size() != checkpoint.root.size()) {
          return bad("root hash", absl::StrCat(root->size(), " bytes, expected 32"));
        }
        std::memcpy(checkpoint.root.data(), root->data(), checkpoint.root.size());
        break;
      }
      default:
        if (line.empty()) return bad("extension", "empty");
    }
  }
  if (line_number < 3) {
    return absl::InvalidArgumentError(absl::StrCat(
        "checkpoint has ", line_number, " lines; needs origin, tree size and root hash"));
  }
  return checkpoint;
}

// ---- Receipts. ----

std::string FormatReceipt(const Receipt& receipt) {
  std::string out = absl::StrCat(ToAbsl(kReceiptHeader), "\n", ToAbsl(kReceiptExtraPrefix),
                                 Base64Encode(receipt.entry_bytes), "\n",
                                 ToAbsl(kReceiptIndexPrefix), receipt.index, "\n");
  for (const Hash& h : receipt.proof) absl::StrAppend(&out, Base64Encode(AsChars(h)), "\n");
  absl::StrAppend(&out, "\n", receipt.checkpoint);
  return out;
}

absl::StatusOr<Receipt> ParseReceipt(std::string_view text) {
  Receipt receipt;
  std::string_view rest = text;
  int line_number = 0;
  auto bad = [&](absl::string_view why) {
    return absl::InvalidArgumentError(absl::StrCat("receipt line ", line_number, ": ", why));
  };
  // The next line without its newline; nullopt at the end of the text or if
  // the text ends without a newline.
  auto next_line = [&]() -> std::optional<std::string_view> {
    ++line_number;
    return ChopAt(&rest, '\n');
  };

  std::optional<std::string_view> line = next_line();
  if (!line.has_value() || *line != kReceiptHeader) {
    return bad(absl::StrCat("expected \"", ToAbsl(kReceiptHeader), "\""));
  }

  line = next_line();
  if (!line.has_value() || line->substr(0, kReceiptExtraPrefix.size()) != kReceiptExtraPrefix) {
    return bad("expected \"extra <base64 entry>\"");
  }
  std::string_view extra = line->substr(kReceiptExtraPrefix.size());
  if (extra.size() > (kMaxReceiptEntryBytes + 2) / 3 * 4) {
    return bad(absl::StrCat("extra: entry is larger than ", kMaxReceiptEntryBytes, " bytes"));
  }
  absl::StatusOr<std::string> entry = Base64Decode(extra);
  if (!entry.ok()) return bad(absl::StrCat("extra: ", entry.status().message()));
  if (entry->size() > kMaxReceiptEntryBytes) {
    return bad(absl::StrCat("extra: entry is larger than ", kMaxReceiptEntryBytes, " bytes"));
  }
  receipt.entry_bytes = *std::move(entry);

  line = next_line();
  if (!line.has_value() || line->substr(0, kReceiptIndexPrefix.size()) != kReceiptIndexPrefix) {
    return bad("expected \"index <leaf index>\"");
  }
  if (std::optional<std::string> why =
          ParseDecimal(line->substr(kReceiptIndexPrefix.size()), &receipt.index)) {
    return bad(absl::StrCat("index: ", *why));
  }

  while (true) {
    line = next_line();
    if (!line.has_value()) {
      return bad("expected a base64 proof hash or the blank line before the checkpoint");
    }
    if (line->empty()) break;
    if (receipt.proof.size() == kMaxReceiptProofHashes) {
      return bad(absl::StrCat("more than ", kMaxReceiptProofHashes, " proof hashes"));
    }
    absl::StatusOr<std::string> h = Base64Decode(*line);
    if (!h.ok()) return bad(absl::StrCat("proof hash: ", h.status().message()));
    if (h->size() != sizeof(Hash)) {
      return bad(absl::StrCat("proof hash is ", h->size(), " bytes, expected 32"));
    }
    Hash& out = receipt.proof.emplace_back();
    std::memcpy(out.data(), h->data(), out.size());
  }

  ++line_number;
  if (rest.empty()) return bad("expected the signed checkpoint after the blank line");
  if (rest.back() != '\n') return bad("signed checkpoint does not end in a newline");
  if (rest.size() > kMaxNoteBytes) {
    return bad(
        absl::StrCat("signed checkpoint is ", rest.size(), " bytes; the limit is ", kMaxNoteBytes));
  }
  receipt.checkpoint = std::string(rest);
  return receipt;
}

// ---- Base64 (RFC 4648 section 4, padded, canonical). ----

namespace {

constexpr char kBase64Alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

constexpr std::array<int8_t, 256> MakeBase64Values() {
  std::array<int8_t, 256> values{};
  for (auto& v : values) v = -1;
  for (int i = 0; i < 64; ++i)
    values[static_cast<uint8_t>(kBase64Alphabet[i])] = static_cast<int8_t>(i);
  return values;
}
constexpr std::array<int8_t, 256> kBase64Values = MakeBase64Values();

}  // namespace

std::string Base64Encode(std::string_view bytes) {
  std::string out((bytes.size() + 2) / 3 * 4, '=');
  char* o = out.data();
  size_t i = 0;
  for (; i + 3 <= bytes.size(); i += 3, o += 4) {
    const uint32_t v = (uint32_t{static_cast<uint8_t>(bytes[i])} << 16) |
                       (uint32_t{static_cast<uint8_t>(bytes[i + 1])} << 8) |
                       uint32_t{static_cast<uint8_t>(bytes[i + 2])};
    o[0] = kBase64Alphabet[(v >> 18) & 63];
    o[1] = kBase64Alphabet[(v >> 12) & 63];
    o[2] = kBase64Alphabet[(v >> 6) & 63];
    o[3] = kBase64Alphabet[v & 63];
  }
  const size_t left = bytes.size() - i;
  if (left > 0) {  // the last quantum, padded with '=' already
    uint32_t v = uint32_t{static_cast<uint8_t>(bytes[i])} << 16;
    if (left == 2) v |= uint32_t{static_cast<uint8_t>(bytes[i + 1])} << 8;
    o[0] = kBase64Alphabet[(v >> 18) & 63];
    o[1] = kBase64Alphabet[(v >> 12) & 63];
    if (left == 2) o[2] = kBase64Alphabet[(v >> 6) & 63];
  }
  return out;
}

absl::StatusOr<std::string> Base64Decode(std::string_view text) {
  if (text.size() % 4 != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("base64 length ", text.size(), " is not a multiple of 4"));
  }
  size_t padding = 0;
  if (!text.empty() && text.back() == '=') ++padding;
  if (text.size() >= 2 && text[text.size() - 2] == '=') ++padding;
  // Every byte before the padding must be in the alphabet: '=' elsewhere,
  // whitespace and the URL-safe alphabet are all rejected.
  const std::string_view data = text.substr(0, text.size() - padding);
  const int8_t* values = kBase64Values.data();
  const auto* in = reinterpret_cast<const uint8_t*>(data.data());
  std::string out(text.size() / 4 * 3 - padding, '\0');
  char* o = out.data();
  const size_t full = data.size() / 4 * 4;
  int32_t invalid = 0;  // negative once any character is outside the alphabet
  for (size_t i = 0; i < full; i += 4, o += 3) {
    const int32_t a = values[in[i]], b = values[in[i + 1]], c = values[in[i + 2]],
                  d = values[in[i + 3]];
    invalid |= a | b | c | d;
    const uint32_t v = (static_cast<uint32_t>(a) << 18) | (static_cast<uint32_t>(b) << 12) |
                       (static_cast<uint32_t>(c) << 6) | static_cast<uint32_t>(d);
    o[0] = static_cast<char>(v >> 16);
    o[1] = static_cast<char>(v >> 8);
    o[2] = static_cast<char>(v);
  }
  uint32_t tail = 0;
  for (size_t i = full; i < data.size(); ++i) {
    invalid |= values[in[i]];
    tail |= static_cast<uint32_t>(values[in[i]] & 63) << (18 - 6 * (i - full));
  }
  if (invalid < 0) {
    for (size_t i = 0; i < data.size(); ++i) {
      if (values[in[i]] >= 0) continue;
      return absl::InvalidArgumentError(
          data[i] == '='
              ? absl::StrCat("base64 has a misplaced '=' at offset ", i)
              : absl::StrCat("base64 has an invalid byte ", ByteHex(in[i]), " at offset ", i));
    }
  }
  if (padding > 0) {
    // 2 (padding 2) or 3 (padding 1) characters carry 1 or 2 bytes; the 4 or
    // 2 bits left over must be zero in the canonical encoding.
    const uint32_t unused_bits = padding == 2 ? 0xFFFF : 0xFF;
    if ((tail & unused_bits) != 0) {
      return absl::InvalidArgumentError("base64 is not canonical: non-zero bits before padding");
    }
    o[0] = static_cast<char>(tail >> 16);
    if (padding == 1) o[1] = static_cast<char>(tail >> 8);
  }
  return out;
}

}  // namespace warmledger

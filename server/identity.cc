#include "server/identity.h"

#include <fcntl.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "ledger/status_macros.h"

namespace warmledger::server {
namespace {

EVP_MAC* HmacAlgorithm() {
  static EVP_MAC* mac = [] {
    EVP_MAC* fetched = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
    WL_CHECK(fetched != nullptr);
    return fetched;
  }();
  return mac;
}

bool IsLeap(int y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

// Each thread's copy of the keyed state of the SecretKey it used last, so
// that a MAC is a reset, an update and a final. Keys are told apart by a
// number never reused, not by address.
struct ThreadMac {
  uint64_t key_id = 0;
  EVP_MAC_CTX* ctx = nullptr;
  ~ThreadMac() { EVP_MAC_CTX_free(ctx); }
};

std::atomic<uint64_t> next_key_id{1};

}  // namespace

SecretKey::SecretKey(std::string_view key)
    : keyed_(EVP_MAC_CTX_new(HmacAlgorithm())), id_(next_key_id.fetch_add(1)) {
  auto* ctx = static_cast<EVP_MAC_CTX*>(keyed_);
  WL_CHECK(ctx != nullptr);
  char digest[] = "SHA2-256";
  const OSSL_PARAM params[] = {
      OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
      OSSL_PARAM_construct_end()};
  WL_CHECK(EVP_MAC_init(ctx, reinterpret_cast<const unsigned char*>(key.data()), key.size(),
                        params) == 1);
}

SecretKey::~SecretKey() { EVP_MAC_CTX_free(static_cast<EVP_MAC_CTX*>(keyed_)); }

SecretKey::SecretKey(SecretKey&& other) noexcept : keyed_(other.keyed_), id_(other.id_) {
  other.keyed_ = nullptr;
}

SecretKey& SecretKey::operator=(SecretKey&& other) noexcept {
  if (this != &other) {
    EVP_MAC_CTX_free(static_cast<EVP_MAC_CTX*>(keyed_));
    keyed_ = other.keyed_;
    id_ = other.id_;
    other.keyed_ = nullptr;
  }
  return *this;
}

Hash SecretKey::Mac(std::string_view data) const {
  WL_CHECK(keyed_ != nullptr);
  thread_local ThreadMac mine;
  if (mine.key_id != id_) {
    // The copy leaves the keyed state untouched, so threads share it.
    EVP_MAC_CTX_free(mine.ctx);
    mine.ctx = EVP_MAC_CTX_dup(static_cast<const EVP_MAC_CTX*>(keyed_));
    WL_CHECK(mine.ctx != nullptr);
    mine.key_id = id_;
  } else {
    // No key: HMAC starts again from the key it holds.
    WL_CHECK(EVP_MAC_init(mine.ctx, nullptr, 0, nullptr) == 1);
  }
  Hash out;
  size_t len = 0;
  WL_CHECK(EVP_MAC_update(mine.ctx, reinterpret_cast<const unsigned char*>(data.data()),
                          data.size()) == 1);
  WL_CHECK(EVP_MAC_final(mine.ctx, out.data(), &len, out.size()) == 1);
  WL_CHECK(len == out.size());
  return out;
}

char ResidentIdCheckChar(std::string_view first17) {
  static constexpr int kWeights[17] = {7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2};
  static constexpr char kCheck[] = "10X98765432";
  int sum = 0;
  for (int i = 0; i < 17; ++i) sum += (first17[i] - '0') * kWeights[i];
  return kCheck[sum % 11];
}

absl::Status ValidateResidentId(std::string_view id, int today_yyyymmdd) {
  if (id.size() != 18) {
    return absl::InvalidArgumentError(
        absl::StrCat("id_number: must be 18 characters, got ", id.size()));
  }
  for (int i = 0; i < 17; ++i) {
    if (id[i] < '0' || id[i] > '9') {
      return absl::InvalidArgumentError(
          absl::StrCat("id_number: character ", i + 1, " must be a digit"));
    }
  }
  if (!((id[17] >= '0' && id[17] <= '9') || id[17] == 'X' || id[17] == 'x')) {
    return absl::InvalidArgumentError("id_number: character 18 must be a digit or X");
  }
  auto num = [&](int pos, int len) {
    int v = 0;
    for (int i = 0; i < len; ++i) v = v * 10 + (id[pos + i] - '0');
    return v;
  };
  int year = num(6, 4), month = num(10, 2), day = num(12, 2);
  static constexpr int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  bool valid_date = year >= 1900 && month >= 1 && month <= 12 && day >= 1 &&
                    day <= kDays[month - 1] + (month == 2 && IsLeap(year) ? 1 : 0) &&
                    year * 10000 + month * 100 + day <= today_yyyymmdd;
  if (!valid_date) {
    return absl::InvalidArgumentError("id_number: characters 7-14 are not a real date of birth");
  }
  char check = id[17] == 'x' ? 'X' : id[17];
  if (ResidentIdCheckChar(id.substr(0, 17)) != check) {
    return absl::InvalidArgumentError(
        "id_number: check character does not match (ISO 7064 MOD 11-2)");
  }
  return absl::OkStatus();
}

std::string RecipientPseudonym(const SecretKey& key, std::string_view id_number) {
  std::string normalized(id_number);
  if (!normalized.empty() && normalized.back() == 'x') normalized.back() = 'X';
  const Hash mac = key.Mac(normalized);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out = "recipient/";
  for (int i = 0; i < 16; ++i) {
    out.push_back(kHex[static_cast<uint8_t>(mac[i]) >> 4]);
    out.push_back(kHex[static_cast<uint8_t>(mac[i]) & 15]);
  }
  return out;
}

namespace {

// 26 base32 characters (130 bits) of HMAC-SHA256(key, domain 0x00 client_id).
std::string KeyedCode(const SecretKey& key, std::string_view domain,
                      std::string_view client_id) {
  std::string input(domain);
  input.push_back('\0');
  input.append(client_id);
  const Hash mac = key.Mac(input);
  static constexpr char kBase32[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  std::string out;
  uint32_t buffer = 0;
  int bits = 0;
  for (size_t i = 0; out.size() < 26; ++i) {
    buffer = (buffer << 8) | static_cast<uint8_t>(mac[i]);
    bits += 8;
    while (bits >= 5 && out.size() < 26) {
      out.push_back(kBase32[(buffer >> (bits - 5)) & 31]);
      bits -= 5;
    }
  }
  return out;
}

}  // namespace

std::string TraceCode(const SecretKey& key, std::string_view client_id) {
  return KeyedCode(key, "trace", client_id);
}

std::string VoucherCode(const SecretKey& key, std::string_view client_id) {
  return KeyedCode(key, "voucher", client_id);
}

absl::StatusOr<std::string> LoadOrCreateKey(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0) {
    if (st.st_mode & (S_IRWXG | S_IRWXO)) {
      return absl::FailedPreconditionError(absl::StrCat(
          "key file ", path, ": readable by group or others; chmod 600 it"));
    }
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return absl::UnavailableError(absl::StrCat("key file ", path, ": ", std::strerror(errno)));
    std::string key(33, '\0');
    ssize_t n = ::read(fd, key.data(), key.size());
    ::close(fd);
    if (n != 32) {
      return absl::DataLossError(absl::StrCat("key file ", path, ": expected 32 bytes"));
    }
    key.resize(32);
    return key;
  }
  std::error_code ec;
  std::filesystem::create_directories(std::filesystem::path(path).parent_path(), ec);
  std::string key(32, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(key.data()), 32) != 1) {
    return absl::UnavailableError("key: no randomness available");
  }
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) {
    return absl::UnavailableError(absl::StrCat("key file ", path, ": ", std::strerror(errno)));
  }
  bool ok = ::write(fd, key.data(), key.size()) == 32 && ::fsync(fd) == 0;
  ::close(fd);
  if (!ok) return absl::UnavailableError(absl::StrCat("key file ", path, ": write failed"));
  return key;
}

}  // namespace warmledger::server

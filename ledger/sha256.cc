#include "ledger/sha256.h"

#include <openssl/evp.h>
#include <openssl/sha.h>

#include "ledger/status_macros.h"

namespace warmledger {

Hash Sha256(std::string_view data) {
  Hash out;
  SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(), out.data());
  return out;
}

// OpenSSL 3 looks the algorithm up in its provider on every EVP_sha256()
// initialisation; fetching it once makes a reset cost almost nothing.
const ::evp_md_st* Sha256Md() {
  static const EVP_MD* md = [] {
    EVP_MD* fetched = EVP_MD_fetch(nullptr, "SHA2-256", nullptr);
    WL_CHECK(fetched != nullptr);
    return fetched;
  }();
  return md;
}

Sha256Hasher::Sha256Hasher() : ctx_(EVP_MD_CTX_new()) {
  WL_CHECK(ctx_ != nullptr);
  WL_CHECK(EVP_DigestInit_ex(static_cast<EVP_MD_CTX*>(ctx_), Sha256Md(), nullptr) == 1);
}

Sha256Hasher::~Sha256Hasher() { EVP_MD_CTX_free(static_cast<EVP_MD_CTX*>(ctx_)); }

void Sha256Hasher::Update(std::string_view data) {
  WL_CHECK(EVP_DigestUpdate(static_cast<EVP_MD_CTX*>(ctx_), data.data(), data.size()) == 1);
}

Hash Sha256Hasher::Finish() {
  Hash out;
  unsigned int len = 0;
  auto* ctx = static_cast<EVP_MD_CTX*>(ctx_);
  WL_CHECK(EVP_DigestFinal_ex(ctx, out.data(), &len) == 1);
  WL_CHECK(len == out.size());
  // Ready for the next message.
  WL_CHECK(EVP_DigestInit_ex(ctx, Sha256Md(), nullptr) == 1);
  return out;
}

std::string HashToHex(const Hash& hash) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(64);
  for (uint8_t b : hash) {
    out.push_back(kHex[b >> 4]);
    out.push_back(kHex[b & 15]);
  }
  return out;
}

}  // namespace warmledger

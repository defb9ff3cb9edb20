// SHA-256 through OpenSSL, in the two shapes the ledger needs: one-shot and
// incremental.
#ifndef WARMLEDGER_LEDGER_SHA256_H_
#define WARMLEDGER_LEDGER_SHA256_H_

#include <string_view>

#include "ledger/types.h"

namespace warmledger {

Hash Sha256(std::string_view data);

// Incremental hashing. Not thread-safe; one per thread.
class Sha256Hasher {
 public:
  Sha256Hasher();
  ~Sha256Hasher();
  Sha256Hasher(const Sha256Hasher&) = delete;
  Sha256Hasher& operator=(const Sha256Hasher&) = delete;

  void Update(std::string_view data);
  // Returns the hash of everything updated so far and resets the hasher.
  Hash Finish();

 private:
  void* ctx_;  // SHA256_CTX
};

std::string HashToHex(const Hash& hash);

}  // namespace warmledger

#endif  // WARMLEDGER_LEDGER_SHA256_H_

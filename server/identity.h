// Recipients' privacy, donors' trace codes and aid voucher codes: resident ID
// validation, the keyed pseudonym that replaces an ID number, trace and
// voucher codes, and the secret key file all of them are derived with.
#ifndef WARMLEDGER_SERVER_IDENTITY_H_
#define WARMLEDGER_SERVER_IDENTITY_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "ledger/codes.h"
#include "ledger/types.h"

namespace warmledger::server {

// Checks an 18-character PRC resident ID number: 17 digits and a check
// character (digit or 'X'), a real date of birth (1900-01-01 .. today, given
// as YYYYMMDD), and the ISO 7064 MOD 11-2 check character. Errors are
// kInvalidArgument naming the field `id_number` and never quoting the number.
absl::Status ValidateResidentId(std::string_view id_number, int today_yyyymmdd);

// The ISO 7064 MOD 11-2 check character of the first 17 digits.
char ResidentIdCheckChar(std::string_view first17);

// The server's secret key, ready for HMAC-SHA256. OpenSSL's HMAC is keyed
// once here; each thread keeps a copy of that keyed state and starts every
// MAC from it. The one-shot HMAC() looks the algorithm up and absorbs the
// key on every call, which cost more than the rest of planning a donation.
// Thread-safe.
class SecretKey {
 public:
  explicit SecretKey(std::string_view key);
  ~SecretKey();
  SecretKey(SecretKey&& other) noexcept;
  SecretKey& operator=(SecretKey&& other) noexcept;
  SecretKey(const SecretKey&) = delete;
  SecretKey& operator=(const SecretKey&) = delete;

  // HMAC-SHA256(key, data).
  Hash Mac(std::string_view data) const;

 private:
  void* keyed_;  // EVP_MAC_CTX
  uint64_t id_;  // never reused; names this key in each thread's MAC state
};

// "recipient/" + the first 128 bits, in hex, of HMAC-SHA256(key, id_number).
// A plain hash of an ID number can be brute-forced; the keyed one cannot
// without the key.
std::string RecipientPseudonym(const SecretKey& key, std::string_view id_number);

// A donation's trace code: 26 base32 characters (130 bits) of
// HMAC-SHA256(key, "trace" 0x00 client_id). Deterministic, so a retried
// donation returns the same code; unguessable without the key.
std::string TraceCode(const SecretKey& key, std::string_view client_id);

// An aid voucher's code: 26 base32 characters (130 bits) of
// HMAC-SHA256(key, "voucher" 0x00 client_id), client_id being the issuing
// clerk's idempotency id. The domain differs from TraceCode's, so that no
// trace code is ever a voucher code. Deterministic, so a retried issue
// returns the same code; unguessable without the key.
std::string VoucherCode(const SecretKey& key, std::string_view client_id);

// IsCodeForm, NormalizeVoucherCode and CodeHash are in ledger/codes.h.

// Reads a 32-byte secret key file, or creates one with mode 0600 from
// OpenSSL's RAND_bytes if it does not exist. A key file readable by group or
// others is refused (kFailedPrecondition).
absl::StatusOr<std::string> LoadOrCreateKey(const std::string& path);

}  // namespace warmledger::server

#endif  // WARMLEDGER_SERVER_IDENTITY_H_

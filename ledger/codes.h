// Trace codes and voucher codes: the bearer secrets a donor or a recipient
// holds. Both are 26 characters of A-Z and 2-7 (RFC 4648 base32 without
// padding, 130 bits); the ledger stores only their SHA-256. How the server
// derives them is server/identity.h.
#ifndef WARMLEDGER_LEDGER_CODES_H_
#define WARMLEDGER_LEDGER_CODES_H_

#include <cstddef>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace warmledger {

inline constexpr size_t kCodeLength = 26;

// Whether `code` has the form of a trace or voucher code: exactly 26
// characters of A-Z and 2-7.
bool IsCodeForm(std::string_view code);

// A voucher code as typed at a till or printed in groups ("abcd-efgh ..."):
// upper-cased, without '-' and white space. kInvalidArgument unless the
// result has the form of a code; the message never repeats the input (a
// code is a bearer secret).
absl::StatusOr<std::string> NormalizeVoucherCode(std::string_view typed);

// What the ledger stores of a trace or voucher code: its raw 32-byte SHA-256.
std::string CodeHash(std::string_view code);

}  // namespace warmledger

#endif  // WARMLEDGER_LEDGER_CODES_H_

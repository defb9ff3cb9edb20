#include "ledger/codes.h"

#include "absl/status/status.h"
#include "ledger/sha256.h"

namespace warmledger {

bool IsCodeForm(std::string_view code) {
  bool well_formed = code.size() == kCodeLength;
  for (char c : code) well_formed &= (c >= 'A' && c <= 'Z') || (c >= '2' && c <= '7');
  return well_formed;
}

absl::StatusOr<std::string> NormalizeVoucherCode(std::string_view typed) {
  // A code with a separator after each character: longer input is no code.
  constexpr size_t kTypedBytesMax = 2 * kCodeLength;
  if (typed.size() > kTypedBytesMax) typed = typed.substr(0, kTypedBytesMax + 1);
  std::string out;
  for (char c : typed) {
    if (c == '-' || c == ' ' || c == '\t' || c == '\r' || c == '\n') continue;
    out.push_back(c >= 'a' && c <= 'z' ? static_cast<char>(c - 'a' + 'A') : c);
  }
  if (!IsCodeForm(out)) {
    return absl::InvalidArgumentError(
        "a voucher code is 26 characters of A-Z and 2-7 (dashes and spaces are ignored)");
  }
  return out;
}

std::string CodeHash(std::string_view code) {
  const Hash h = Sha256(code);
  return std::string(reinterpret_cast<const char*>(h.data()), h.size());
}

}  // namespace warmledger

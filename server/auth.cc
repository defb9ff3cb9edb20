#include "server/auth.h"

#include <openssl/crypto.h>

#include <fstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "ledger/sha256.h"

namespace warmledger::server {

const char* RoleName(Role role) {
  switch (role) {
    case Role::kNone: return "public";
    case Role::kMall: return "mall";
    case Role::kClerk: return "clerk";
    case Role::kAuditor: return "auditor";
    case Role::kAdmin: return "admin";
  }
  return "unknown";
}

bool RoleAllows(Role role, Access access) {
  switch (access) {
    case Access::kPublic: return true;
    case Access::kRead: return role == Role::kClerk || role == Role::kAuditor || role == Role::kAdmin;
    case Access::kWrite: return role == Role::kClerk || role == Role::kAdmin;
    case Access::kExport: return role == Role::kAuditor || role == Role::kAdmin;
    case Access::kAdmin: return role == Role::kAdmin;
    case Access::kCheckout: return role == Role::kMall || role == Role::kAdmin;
    case Access::kCheckoutRead: return role != Role::kNone;
  }
  return false;
}

namespace {

bool ParseHex(std::string_view hex, Hash* out) {
  if (hex.size() != 64) return false;
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  };
  for (size_t i = 0; i < 32; ++i) {
    int hi = nibble(hex[2 * i]), lo = nibble(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return false;
    (*out)[i] = static_cast<uint8_t>(hi * 16 + lo);
  }
  return true;
}

}  // namespace

absl::StatusOr<Authenticator> Authenticator::FromFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("auth_file: cannot read ", path));
  Authenticator auth;
  std::string line;
  int line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (line.empty() || line[0] == '#') continue;
    std::vector<std::string> parts = absl::StrSplit(line, ' ', absl::SkipEmpty());
    Token t;
    if (parts.size() != 3 || !ParseHex(parts[0], &t.hash)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "auth_file: ", path, ":", line_no, ": expected '<sha256 hex> <role> <name>'"));
    }
    if (parts[1] == "admin") t.role = Role::kAdmin;
    else if (parts[1] == "clerk") t.role = Role::kClerk;
    else if (parts[1] == "mall") t.role = Role::kMall;
    else if (parts[1] == "auditor") t.role = Role::kAuditor;
    else {
      return absl::InvalidArgumentError(absl::StrCat(
          "auth_file: ", path, ":", line_no, ": unknown role '", parts[1], "'"));
    }
    auth.tokens_.push_back(t);
  }
  return auth;
}

Authenticator Authenticator::Dev() {
  Authenticator auth;
  auth.dev_ = true;
  return auth;
}

absl::StatusOr<Role> Authenticator::Authenticate(std::string_view authorization) const {
  if (dev_) return Role::kAdmin;
  if (authorization.empty()) return Role::kNone;
  constexpr std::string_view kBearer = "Bearer ";
  if (authorization.substr(0, kBearer.size()) != kBearer ||
      authorization.size() == kBearer.size()) {
    return absl::UnauthenticatedError("authorization: expected 'Bearer <token>'");
  }
  Hash presented = Sha256(authorization.substr(kBearer.size()));
  // Compare against every token in constant time, without an early exit.
  Role found = Role::kNone;
  for (const Token& t : tokens_) {
    bool equal = CRYPTO_memcmp(t.hash.data(), presented.data(), presented.size()) == 0;
    if (equal) found = t.role;
  }
  if (found == Role::kNone) return absl::UnauthenticatedError("authorization: unknown token");
  return found;
}

absl::StatusOr<Role> Authenticator::Authorize(std::string_view authorization,
                                              Access access) const {
  absl::StatusOr<Role> role = Authenticate(authorization);
  if (!role.ok()) return role;
  if (RoleAllows(*role, access)) return role;
  if (*role == Role::kNone) {
    return absl::UnauthenticatedError("authorization: this call needs a bearer token");
  }
  return absl::PermissionDeniedError(
      absl::StrCat("role '", RoleName(*role), "' may not make this call"));
}

}  // namespace warmledger::server

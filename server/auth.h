// Bearer-token authentication and role-based authorisation for the gRPC
// services. Tokens are never stored: the auth file holds their SHA-256.
//
// Auth file grammar (one token per line, '#' starts a comment):
//   line := sha256_hex:64 SP role SP name
//   role := "admin" | "clerk" | "mall" | "auditor"
#ifndef WARMLEDGER_SERVER_AUTH_H_
#define WARMLEDGER_SERVER_AUTH_H_

#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "ledger/types.h"

namespace warmledger::server {

enum class Role { kNone, kMall, kClerk, kAuditor, kAdmin };
const char* RoleName(Role role);

// What an RPC needs.
enum class Access {
  kPublic,        // anyone, without a token
  kRead,          // clerk, auditor, admin
  kWrite,         // clerk, admin
  kExport,        // auditor, admin
  kAdmin,         // admin
  kCheckout,      // mall, admin: purchases, refunds, redemptions
  kCheckoutRead,  // mall, clerk, auditor, admin: settlements, vouchers by code
};

bool RoleAllows(Role role, Access access);

class Authenticator {
 public:
  // Parses an auth file. Malformed lines are kInvalidArgument naming the line.
  static absl::StatusOr<Authenticator> FromFile(const std::string& path);
  // Authentication off: every caller is admin (--dev).
  static Authenticator Dev();

  // The role of the caller whose `authorization` metadata value is given
  // (empty when absent). No header: kNone. A header that names no known
  // token: kUnauthenticated.
  absl::StatusOr<Role> Authenticate(std::string_view authorization) const;

  // Authenticate + RoleAllows: kUnauthenticated or kPermissionDenied.
  absl::StatusOr<Role> Authorize(std::string_view authorization, Access access) const;

  size_t token_count() const { return tokens_.size(); }

 private:
  struct Token {
    Hash hash;
    Role role;
  };
  bool dev_ = false;
  std::vector<Token> tokens_;
};

}  // namespace warmledger::server

#endif  // WARMLEDGER_SERVER_AUTH_H_

// The small client library behind the `warmledger` CLI: how to reach a
// warmledger server (channel, TLS, deadline, bearer token), how to create
// tokens for the server's auth file, exact money parsing and formatting, an
// entry-chain verifier for exported entries, and the offline checks of signed
// checkpoints and donor receipts (docs/verify.md). Usable without the CLI.
//
// Nothing here keeps global state; every function is safe to call from any
// thread.
#ifndef WARMLEDGER_CLIENT_CLIENT_H_
#define WARMLEDGER_CLIENT_CLIENT_H_

#include <grpcpp/channel.h>
#include <grpcpp/client_context.h>
#include <grpcpp/support/status.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "ledger/codes.h"
#include "ledger/note.h"
#include "ledger/types.h"
#include "warmledger/v1/ledger.pb.h"

namespace warmledger::client {

// The largest gRPC message in either direction; docs/api.md fixes it at 16 MiB
// so that a maximal entry (8 MiB, ledger/limits.h) always fits.
inline constexpr int kMessageBytesMax = 16 * 1024 * 1024;

// How to reach a server. TLS is used as soon as any tls_* field is set.
struct ClientOptions {
  std::string server = "127.0.0.1:7420";  // host:port
  std::string token;                      // sent as "authorization: Bearer <token>"
  std::string tls_ca;                     // PEM file of root CAs; empty: system roots
  std::string tls_cert;                   // PEM client certificate (mutual TLS) ...
  std::string tls_key;                    // ... and its private key; both or neither
  std::string tls_server_name;            // overrides the name checked in the cert
  int64_t deadline_ms = 10000;            // per call; must be > 0
};

// True when `options` asks for TLS.
bool UsesTls(const ClientOptions& options);

// Creates a channel to options.server: insecure without TLS options, otherwise
// SSL credentials with the given roots and optional client certificate. Both
// directions allow kMessageBytesMax. Errors: kInvalidArgument for an
// inconsistent option set (a cert without its key), kNotFound /
// kPermissionDenied when a PEM file cannot be read.
absl::StatusOr<std::shared_ptr<grpc::Channel>> CreateChannel(const ClientOptions& options);

// Whether a call gets options.deadline_ms. Only endless streams (TailEntries)
// go without one.
enum class DeadlinePolicy { kApply, kNone };

// Sets the deadline and, when a token is set, the authorization metadata on a
// fresh context. (grpc::ClientContext can be neither copied nor moved, so the
// caller owns it.)
void PrepareContext(const ClientOptions& options, DeadlinePolicy deadline,
                    grpc::ClientContext* context);

// gRPC and Abseil share the canonical code numbering; the message is kept.
absl::Status FromGrpcStatus(const grpc::Status& status);

// grpc.health.v1 serving states (numbered as in health.proto).
enum class HealthState { kUnknown = 0, kServing = 1, kNotServing = 2, kServiceUnknown = 3 };
std::string_view HealthStateName(HealthState state);

// Calls grpc.health.v1.Health/Check for `service` ("" = the whole server).
// Debian ships no generated health stubs, so the two one-field messages are
// encoded by hand over grpc::GenericStub.
absl::StatusOr<HealthState> CheckHealth(const std::shared_ptr<grpc::Channel>& channel,
                                        const ClientOptions& options, std::string_view service);

// ---------------------------------------------------------------- tokens

// "wl_" followed by 64 lower-case hex characters of 32 bytes from OpenSSL's
// RAND_bytes. kInternal if the generator fails.
absl::StatusOr<std::string> GenerateToken();

// Lower-case hex SHA-256 of the whole token string (including "wl_"): what
// the auth file stores and the server compares against.
std::string TokenHash(std::string_view token);

// Validates a role: admin, clerk, mall or auditor.
absl::Status ValidateRole(std::string_view role);
// Validates a token owner's name: 1..64 characters of [A-Za-z0-9._-].
absl::Status ValidateTokenName(std::string_view name);

// Creates a token for (role, name) and appends "<TokenHash> <role> <name>\n"
// to `auth_file`, then fsyncs it, and returns the token (shown once; only its
// hash is kept). The file is created with mode 0600 if missing; an existing
// file that grants any group or other permission, or is not a regular file, is
// refused with kFailedPrecondition and left untouched.
//
// Auth file grammar (the server parses exactly this):
//   file := line*
//   line := ( "#" any-text | hash " " role " " name | "" ) "\n"
//   hash := 64 lower-case hex characters
absl::StatusOr<std::string> AppendToken(const std::string& auth_file, std::string_view role,
                                        std::string_view name);

// ---------------------------------------------------------------- amounts

// Parses a non-negative yuan amount written in decimal, "12.34", "5", "0.5",
// into fen by string arithmetic (never floating point). Grammar:
//   digit+ ( "." digit digit? )?
// kInvalidArgument for anything else (sign, exponent, a third decimal,
// spaces, empty) and kOutOfRange if the fen value overflows int64.
absl::StatusOr<int64_t> ParseYuanToFen(std::string_view text);

// Formats fen as yuan with exactly two decimals: 1234 -> "12.34",
// -5 -> "-0.05", INT64_MIN handled exactly.
std::string FormatFen(int64_t fen);

// Formats an amount of `asset`: goods ("item:...") as whole units, money
// (three-letter codes such as CNY) as FormatFen.
std::string FormatAmount(std::string_view asset, int64_t amount);

// Parses a decimal integer flag value (optional leading '-' for signed).
absl::StatusOr<int64_t> ParseInt64(std::string_view text);
absl::StatusOr<uint64_t> ParseUint64(std::string_view text);

// ---------------------------------------------------------------- times

// The district reports by days in China Standard Time: UTC+08:00 all year (no
// daylight saving time), whatever the time zone of the machine running the
// CLI.
inline constexpr int64_t kChinaUtcOffsetSeconds = 8 * 3600;

// Parses a point in time given on the command line, in microseconds since the
// Unix epoch. Grammar:
//   day      := YYYY "-" MM "-" DD                 midnight China time, at the day's start
//   rfc3339  := day ("T"|"t") hh ":" mm ":" ss ("." digit+)? ("Z"|"z"|("+"|"-") hh ":" mm)
// An RFC 3339 time must carry its offset (no guessing of time zones); more
// than six fraction digits are truncated to the microsecond. kInvalidArgument
// for anything else, and kOutOfRange before 1970.
absl::StatusOr<int64_t> ParseTimeUs(std::string_view text);

// A half-open interval of ledger time, [from_us, to_us).
struct TimeRangeUs {
  int64_t from_us = 0;
  int64_t to_us = 0;
};

// The day "YYYY-MM-DD" in China time: from its midnight to the next one
// (exactly 24 hours). kInvalidArgument unless `day` is a valid calendar date.
absl::StatusOr<TimeRangeUs> ChinaDayRangeUs(std::string_view day);

// ---------------------------------------------------------------- vouchers

// Voucher codes as typed are normalised by NormalizeVoucherCode
// (ledger/codes.h).

// ---------------------------------------------------------------- entries

// SHA-256("warmledger/entry/v1" 0x00 entry_bytes), docs/format.md.
std::string EntryHash(std::string_view entry_bytes);

// Checks one received entry against docs/format.md without re-encoding it:
// entry.hash is EntryHash(entry_bytes), the version byte is 1 or 2, the seq,
// type and prev_hash inside entry_bytes equal the proto fields, and, when
// `prev_hash` is non-null (the hash of entry seq-1), entry.prev_hash equals
// it. kDataLoss naming the seq on any mismatch.
absl::Status VerifyEntry(const warmledger::v1::Entry& entry, const std::string* prev_hash);

// Lower-case hex of raw bytes.
std::string HexEncode(std::string_view bytes);

// ---------------------------------------------------------------- files

// Reads the whole file at `path`, refusing one larger than `max_bytes`.
// kNotFound / kPermissionDenied when it cannot be opened, kInvalidArgument
// when it is too large; messages name `what` and the path.
absl::StatusOr<std::string> ReadFileCapped(const std::string& path, size_t max_bytes,
                                           std::string_view what);

// Replaces `path` with `contents` atomically: writes path + ".tmp" (mode
// 0644), fsyncs it, renames it over `path` and fsyncs the directory. A reader
// sees the old file or the new one, never a mixture; on failure `path` is
// untouched.
absl::Status WriteFileAtomically(const std::string& path, std::string_view contents);

// ---------------------------------------------------------------- transparency

// The largest receipt file `verify-receipt` reads: a maximal entry (8 MiB,
// base64: ~11 MiB) plus its proof and checkpoint fit.
inline constexpr size_t kReceiptFileBytesMax = 16 * 1024 * 1024;

// Base64 (padded, standard alphabet) of a hash, as checkpoints write roots.
std::string HashToBase64(const Hash& hash);
// A hash from 32 raw bytes (a proto `bytes` field). kInvalidArgument naming
// `what` for any other length.
absl::StatusOr<Hash> HashFromBytes(std::string_view bytes, std::string_view what);

// Verifies the signature on a signed checkpoint note with `verifier` and
// parses the checkpoint it carries. Errors: "signature: ..." (the code
// NoteVerifier::Open gave: kInvalidArgument, kNotFound or
// kFailedPrecondition) or kInvalidArgument naming the checkpoint line.
absl::StatusOr<Checkpoint> OpenCheckpoint(const NoteVerifier& verifier, std::string_view note);

// What a verified receipt proves: this entry is leaf entry.seq - 1 of the
// tree that `checkpoint`, signed by `key_name`, commits to.
struct VerifiedReceipt {
  Entry entry;
  Checkpoint checkpoint;
  std::string key_name;
};

// Checks a receipt file (ledger/note.h, docs/verify.md) offline, in this
// order, each failure naming its step:
//   1. the file parses                    "receipt line N: ..."
//   2. the checkpoint signature verifies  "signature: ..."
//   3. the checkpoint text parses         "checkpoint line N (...): ..."
//   4. index < tree size, and the Merkle audit path from
//      LeafHash(entry bytes) leads to the signed root
//                                         "inclusion proof: ..."
//   5. the entry bytes decode and their seq is index + 1
//                                         "entry: ..."
// Codes: kInvalidArgument for malformed text, the signature codes of
// OpenCheckpoint, kFailedPrecondition for a failed proof, kDataLoss for an
// undecodable or misplaced entry.
absl::StatusOr<VerifiedReceipt> VerifyReceipt(std::string_view receipt_text,
                                              const NoteVerifier& verifier);

// Whether checkpoint `now` may follow checkpoint `verified`, the last one a
// monitor verified (both signatures already checked). `consistency_proof` is
// PROOF(verified.size, now.size) and is only looked at when now.size >
// verified.size > 0. Errors:
//   kFailedPrecondition  the origins differ (another log);
//   kDataLoss            "ROLLBACK: ..." (now.size < verified.size),
//                        "FORK: two different checkpoints of N entries"
//                        (same size, different roots), or "FORK: checkpoint
//                        of N entries does not extend the verified checkpoint
//                        of M entries: <why>" (the proof does not verify).
absl::Status CheckAdvance(const Checkpoint& verified, const Checkpoint& now,
                          const std::vector<Hash>& consistency_proof);

}  // namespace warmledger::client

#endif  // WARMLEDGER_CLIENT_CLIENT_H_

// warmledger-audit's checks, as a library so that they can be tested: an
// independent re-verification of a ledger from nothing but its stored bytes
// (docs/format.md).
//
// The auditor never opens a ledger through Ledger::Open: it reads the raw
// RocksDB database (opened strictly read-only) or an export file written by
// `warmledger entries --out=FILE`, and uses only the engine's pure pieces:
// the entry codec, the Merkle tree, the signed-note code and LedgerState.
//
// What it checks, recomputing everything, stopping at the first failure:
//
//   1. entries: dense seq from 1, entry_hash = SHA-256(domain || entry_bytes)
//      equals the stored trailer, the decoded seq equals the position, and
//      prev_hash equals the previous entry's hash (zeros for entry 1);
//   2. replay: re-applying every entry to a fresh LedgerState reproduces its
//      stored bytes exactly (which re-derives every allocation under its
//      named policy), and no client_id is used twice;
//   3. the Merkle tree: every stored tile equals the tile the entries make
//      and no extra tile exists; every checkpoint's root equals the root of
//      the first `size` entries;
//   4. checkpoints (stored and given): each parses, verifies under the
//      verifier key (when given), all carry one origin, and none covers more
//      entries than there are;
//   5. the balance snapshot, if stored, equals the replayed state after its
//      seq;
//   6. value is conserved: every asset's balances sum to zero.
//
// Two threads share the work: the calling thread reads the source in chunks
// and does the hashing, chain and tree checks; a second thread replays the
// same chunks.
#ifndef WARMLEDGER_TOOLS_AUDIT_H_
#define WARMLEDGER_TOOLS_AUDIT_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "ledger/types.h"

namespace warmledger::audit {

struct AuditOptions {
  // Exactly one of these. data_dir: a server data folder whose RocksDB is
  // data_dir/db, or the RocksDB folder itself when data_dir/db does not exist.
  std::string data_dir;
  std::string export_path;
  // The checkpoint verifier key (signed-note text form). Empty: signatures
  // are not checked (checkpoints are still parsed and their roots checked).
  std::string verifier_key;
  // Paths of extra signed checkpoint notes the auditor has seen.
  std::vector<std::string> checkpoint_files;
};

// A holding account (fund, project, voucher, stock) and its balances.
struct HoldingReport {
  std::string account;
  AccountKind kind = AccountKind::kFund;
  std::vector<Balance> balances;
};

struct AuditReport {
  std::string source;  // "data_dir PATH" or "export PATH"
  bool ok = false;
  // When !ok: the first failure. failed_seq is 0 when it is not about one
  // entry.
  uint64_t failed_seq = 0;
  std::string failure;

  uint64_t entries_verified = 0;  // entries that passed every entry check
  uint64_t head_seq = 0;
  Hash head_hash{};
  Hash tree_root{};  // of all entries

  // data_dir only: stored tiles checked (0 for a format 1 ledger).
  bool tiles_stored = false;
  uint64_t tiles_checked = 0;

  uint64_t checkpoints_verified = 0;  // stored ones plus --checkpoint files
  uint64_t newest_checkpoint_size = 0;
  std::string origin;  // of the checkpoints; empty without any
  bool signatures_checked = false;
  std::string key_name;  // of the verifier key, when given

  // The seq of the stored balance snapshot that was checked, if any.
  std::optional<uint64_t> snapshot_seq;
  uint64_t snapshot_accounts = 0;

  // After a successful replay: holding accounts in opening order, the sum
  // of their balances per asset, and the sum of all balances per asset
  // (zero for every asset: value conserved).
  std::vector<HoldingReport> holdings;
  std::vector<Balance> held_totals;
  std::vector<Balance> all_totals;
  uint64_t account_count = 0;

  double elapsed_seconds = 0;
};

// Runs the audit. A non-OK status means the audit could not be run at all
// (bad options, an unreadable key or checkpoint file, a missing source);
// every finding about the ledger itself is in the report (ok = false).
absl::StatusOr<AuditReport> RunAudit(const AuditOptions& options);

// The report as text lines ("FAILED at entry N: ..." first when it failed).
std::string FormatText(const AuditReport& report);
// The report as one JSON object (with a trailing newline).
std::string FormatJson(const AuditReport& report);

}  // namespace warmledger::audit

#endif  // WARMLEDGER_TOOLS_AUDIT_H_

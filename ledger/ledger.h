// The public face of the engine: an append-only, hash-chained, double-entry
// ledger with exact provenance, stored in RocksDB.
//
// Thread contract: every method is thread-safe. Writes from any number of
// threads are handed to one sequencer through a bounded queue. The sequencer
// has two stages: the apply stage validates a group of queued operations and
// applies them to the in-memory derived state (one writer owns the chain);
// the sync stage writes the group as one fsynced RocksDB WriteBatch and
// publishes the durable head; the answer stage then completes its callers.
// The stages overlap: group N+1 is applied while group N is fsynced and
// group N-1's callers are answered.
//
//   Submit ──► [bounded queue] ──► apply ──► [≤ 3 groups] ──► sync ──────────► answer
//                                  (state lock,               WriteBatch{E seq → entry},   callbacks,
//                                   undo journal              sync = true; publish the     in order
//                                   for linked chains)        durable head
//
// Readers never see what is not durable: they copy what they need under a
// shared lock held only for the copy, then wait (without the lock) until the
// durable head covers what they saw; a trace waits only for the entries it
// shows. The writer is never blocked by a reader for longer than one copy,
// and releases the lock between linked chains every kApplyOpsPerStateLock
// operations, so a reader never waits for a whole group to be applied.
#ifndef WARMLEDGER_LEDGER_LEDGER_H_
#define WARMLEDGER_LEDGER_LEDGER_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "ledger/clock.h"
#include "ledger/note.h"
#include "ledger/types.h"

namespace rocksdb {
class Env;
}  // namespace rocksdb

namespace warmledger {

struct LedgerOptions {
  // Folder of the RocksDB database; created if missing.
  std::string path;
  // Stamps entries; must outlive the ledger. Null means the system clock.
  Clock* clock = nullptr;
  // Bytes of RocksDB block cache for entry reads.
  uint64_t block_cache_bytes = 64ull << 20;

  // Signs checkpoints of the Merkle tree (docs/verify.md). Null: the tree is
  // still kept and stored checkpoints are still checked against it, but no
  // new checkpoint is issued and stored signatures are not checked.
  std::shared_ptr<const NoteSigner> checkpoint_signer;
  // First line of every checkpoint; stored checkpoints must carry it.
  std::string checkpoint_origin = "warmledger";
  // A checkpoint is issued once this many entries are not yet covered...
  uint64_t checkpoint_every_entries = 10'000;
  // ...or once uncovered entries are this old, whichever comes first...
  int64_t checkpoint_every_ms = 1'000;
  // ...but never sooner than this after the previous one, even when a caller
  // waits for a receipt (WaitForCheckpoint).
  int64_t checkpoint_interval_min_ms = 50;

  // The RocksDB environment (files, threads); null means the default. Tests
  // pass one whose fsyncs they can hold back. Must outlive the ledger.
  rocksdb::Env* env = nullptr;
};

struct LedgerHead {
  uint64_t seq = 0;  // entries in the ledger (0 when empty)
  Hash hash{};       // entry_hash of the last entry (zeros when empty)
};

// What the sync stage's fsynced commits wrote since the ledger was opened:
// the cost of the write path in RocksDB keys and bytes per entry.
struct WriteStats {
  uint64_t commits = 0;  // fsynced WriteBatches (each covers one or more groups)
  uint64_t entries = 0;  // entries they wrote
  uint64_t keys = 0;     // RocksDB keys they wrote (entries, tiles, snapshots)
  uint64_t bytes = 0;    // their WriteBatch data, keys and values included
  // Wall time spent in those writes: the fsync, and any wait for a
  // checkpoint's write, included.
  int64_t write_ns = 0;
};

class Ledger {
 public:
  // Opens (or creates) the ledger at options.path, verifies every entry (hash,
  // chain, density, and that replaying it reproduces its bytes) and rebuilds
  // the derived state. A broken ledger is kDataLoss naming the first bad seq.
  static absl::StatusOr<std::unique_ptr<Ledger>> Open(const LedgerOptions& options);

  // Stops accepting work, lets the sequencer finish what is queued, closes
  // the database.
  ~Ledger();
  Ledger(const Ledger&) = delete;
  Ledger& operator=(const Ledger&) = delete;

  using Callback = std::function<void(std::vector<OpResult>)>;

  // Queues up to kBatchOpsMax operations and calls `done` on the sequencer
  // thread, once, with one result per operation, after their entries are
  // durable. If the queue is full every result is kResourceExhausted; after
  // shutdown began, kUnavailable. `done` must not block.
  void SubmitAsync(std::vector<Operation> ops, Callback done);

  // Blocking form of SubmitAsync.
  std::vector<OpResult> Submit(std::vector<Operation> ops);
  // One operation.
  OpResult SubmitOne(Operation op);

  // ---- Reads (only durable entries are visible). ----

  LedgerHead Head() const;
  WriteStats GetWriteStats() const;

  // kNotFound if seq is 0 or beyond the head; kDataLoss if the stored bytes
  // do not verify.
  absl::StatusOr<StoredEntry> ReadEntry(uint64_t seq) const;
  // Up to `count_max` entries starting at `from_seq`, verified as read.
  absl::StatusOr<std::vector<StoredEntry>> ReadEntries(uint64_t from_seq,
                                                       uint64_t count_max) const;

  absl::StatusOr<AccountInfo> GetAccount(const std::string& account) const;
  // Lot slices of a holding account in allocation order, paged.
  absl::StatusOr<HoldingsPage> GetHoldings(const std::string& account,
                                           uint64_t offset, uint64_t limit) const;

  absl::StatusOr<LotInfo> GetLot(uint64_t lot) const;
  // Forward trace: every movement of the lot's value and where it is now.
  absl::StatusOr<LotTrace> TraceLot(uint64_t lot) const;
  // Backward trace: the lots (hence donors) behind an entry's postings, paged.
  absl::StatusOr<EntryTracePage> TraceEntry(uint64_t seq, uint64_t offset,
                                            uint64_t limit) const;
  // All lots of a donor with their forward traces, paged by lot.
  absl::StatusOr<DonorStatementPage> DonorStatement(const std::string& donor,
                                                    uint64_t offset,
                                                    uint64_t limit) const;

  // Entries that touched `account` with from_time_us <= time < to_time_us,
  // with the running balance, paged.
  absl::StatusOr<StatementPage> Statement(const std::string& account, int64_t from_time_us,
                                          int64_t to_time_us, uint64_t offset,
                                          uint64_t limit) const;
  // Account ids in opening order, optionally only of one kind.
  std::vector<std::string> ListAccounts(std::optional<AccountKind> kind, uint64_t offset,
                                        uint64_t limit, uint64_t* total) const;
  // The lot whose donation recorded SHA-256(trace code) == trace_hash.
  absl::StatusOr<uint64_t> FindLotByTraceHash(const std::string& trace_hash) const;
  // Sum of all balances per asset; every amount is zero when value is conserved.
  absl::StatusOr<std::vector<Balance>> TotalsPerAsset() const;

  // ---- Goods. ----

  // The goods catalogue in order of definition, with what all stocks hold.
  absl::StatusOr<std::vector<ItemInfo>> ListItems() const;
  // kNotFound if `item` is not in the catalogue.
  absl::StatusOr<ItemInfo> GetItem(const std::string& item) const;

  // ---- Aid supervision. ----

  // The aid rules in force, by aid name.
  absl::StatusOr<std::vector<AidRuleInfo>> ListAidRules() const;
  // Aid to recipients with from_time_us <= time < to_time_us by category,
  // community, type and asset; the public view leaves out every cell of
  // fewer than kAidReportMinPeople people. kInvalidArgument if from > to.
  absl::StatusOr<AidReport> GetAidReport(int64_t from_time_us, int64_t to_time_us,
                                         bool public_view) const;

  // ---- Checkout and vouchers. ----

  // A voucher by the seq of its issuing entry.
  absl::StatusOr<VoucherInfo> GetVoucher(uint64_t voucher) const;
  // The voucher whose code hashes (SHA-256) to `code_hash`; kNotFound if none.
  absl::StatusOr<VoucherInfo> FindVoucherByCodeHash(const std::string& code_hash) const;
  // Voucher totals now (by the ledger's clock), by fund, by recipient
  // category and in all.
  absl::StatusOr<VoucherReport> GetVoucherReport() const;
  // Checkout figures of `store` (empty: every store) for entries with
  // from_time_us <= time < to_time_us, one row per store and asset.
  absl::StatusOr<std::vector<StoreSettlement>> Settlement(const std::string& store,
                                                          int64_t from_time_us,
                                                          int64_t to_time_us) const;
  // The expiry sweep: ends up to `max` active vouchers that hold value and
  // whose expiry has passed (by the ledger's clock), returning what they
  // hold to the fund or project that funded them. Returns each voucher's
  // account id and result. Idempotent: each expiry has a natural client id.
  absl::StatusOr<std::vector<std::pair<std::string, OpResult>>> ExpireDueVouchers(size_t max);

  // Blocks until entry `seq` is durable or `timeout_ms` passes; returns
  // whether it is durable.
  bool WaitForSeq(uint64_t seq, int64_t timeout_ms) const;

  // Writes a consistent copy of the database (a RocksDB checkpoint: hard
  // links where possible) into `dir`, which must not exist. Returns the
  // number of entries in the copy. No write commits while it is taken.
  absl::StatusOr<uint64_t> Backup(const std::string& dir) const;

  // Checks every stored entry's hash, density and chain (not replay).
  absl::Status VerifyChain() const;

  // ---- Verifiability: the Merkle tree over all entries (RFC 9162) and
  // signed checkpoints of it (docs/format.md, docs/verify.md). Leaf i is
  // entry seq i + 1. Only durable entries are in the tree. ----

  // Root of the tree of the first `tree_size` entries; kOutOfRange beyond
  // the head.
  absl::StatusOr<Hash> TreeRoot(uint64_t tree_size) const;
  // Inclusion proof of entry `seq` in the tree of `tree_size` entries.
  absl::StatusOr<std::vector<Hash>> InclusionProof(uint64_t seq, uint64_t tree_size) const;
  // Consistency proof from the tree of `old_size` entries to `new_size`.
  absl::StatusOr<std::vector<Hash>> ConsistencyProof(uint64_t old_size,
                                                     uint64_t new_size) const;
  // The newest signed checkpoint (a signed note); kNotFound if none yet.
  absl::StatusOr<std::string> LatestCheckpoint() const;
  // The stored checkpoint of exactly `tree_size` entries; kNotFound if none.
  absl::StatusOr<std::string> CheckpointAt(uint64_t tree_size) const;
  // Asks for a checkpoint covering entry `seq` (the checkpointer then signs
  // within checkpoint_interval_min_ms of its previous one) and calls `done`
  // once, on the checkpointer thread, with the newest checkpoint as soon as
  // it covers `seq`, or kDeadlineExceeded after `timeout_ms`
  // (kFailedPrecondition at once when no signer is configured; kUnavailable
  // on shutdown). `done` must not block.
  using CheckpointCallback = std::function<void(absl::StatusOr<std::string>)>;
  void WhenCheckpointCovers(uint64_t seq, int64_t timeout_ms, CheckpointCallback done) const;
  // Blocking form of WhenCheckpointCovers.
  absl::StatusOr<std::string> WaitForCheckpoint(uint64_t seq, int64_t timeout_ms) const;
  // A receipt for entry `seq` against the newest checkpoint covering it
  // (kFailedPrecondition if none covers it yet).
  absl::StatusOr<Receipt> MakeReceipt(uint64_t seq) const;
  // The verifier key of the checkpoint signer; empty without one.
  std::string VerifierKey() const;

  // SHA-256 (hex) over a canonical serialisation of the live derived state;
  // on a failed ledger, the error message instead (never a valid digest).
  std::string StateDigest() const;
  // Rebuilds the derived state from the stored entries into a fresh state and
  // returns its digest; equal to StateDigest() unless something is wrong.
  absl::StatusOr<std::string> RebuildStateDigest() const;

 private:
  class Impl;
  explicit Ledger(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace warmledger

#endif  // WARMLEDGER_LEDGER_LEDGER_H_

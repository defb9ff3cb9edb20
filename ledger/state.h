// The derived state of a ledger — accounts, balances, lot slices, lots, the
// lot → entries index, donors' lots, idempotency ids, reversals and the chain
// head — and the rules that turn an operation into the next entry.
//
// The state is a pure function of the entries: Apply() on a fresh state, fed
// the stored entries' bodies and times in order, reproduces every stored entry
// byte for byte. That is how the ledger rebuilds it on open and how the
// auditor re-checks it.
//
// Thread contract: not thread-safe. The ledger's sequencer is the only writer
// and guards it with a lock that readers share.
//
// Layout of one holding account's provenance (fifo/v1):
//
//   fund/general   balance 1,250
//     slices:  [lot 7: 200][lot 9: 1,000][lot 12: 50]   <- arrival order
//              ^ consumed first; a partial need splits the head slice
#ifndef WARMLEDGER_LEDGER_STATE_H_
#define WARMLEDGER_LEDGER_STATE_H_

#include <array>
#include <cstdint>
#include <deque>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "ledger/types.h"

namespace warmledger {

inline constexpr std::string_view kPolicyFifoV1 = "fifo/v1";
inline constexpr std::string_view kPolicyReverseV1 = "reverse/v1";
inline constexpr std::string_view kPolicyNone = "none";

// Records how to undo each mutation of the state, so that a failed operation,
// a failed linked chain or a failed durable write leaves no trace.
class Journal {
 public:
  // A journal that records nothing, for replay: there a failure abandons the
  // whole state, so nothing needs undoing and the bookkeeping is saved.
  static Journal NotRecording() {
    Journal j;
    j.recording_ = false;
    return j;
  }
  bool recording() const { return recording_; }
  size_t Mark() const { return records_.size(); }
  void Clear() {
    records_.clear();
    saved_slices_.clear();
    saved_strings_.clear();
  }

 private:
  friend class LedgerState;
  enum class Kind : uint8_t {
    kNewBalance,     // account a gained a balance entry (appended)
    kBalance,        // account a, asset b, delta c
    kPopFront,       // account a, slice {b, c} popped
    kHeadReduce,     // account a, head slice reduced by c
    kPushBack,       // account a, one slice appended
    kMergeTail,      // account a, tail slice grew by c
    kRestoreSlices,  // account a, saved_slices_[b] is the old list
    kNewAccount,     // the last account was created
    kNewLot,         // the last lot was created
    kLotMove,        // lot index a gained one move
    kDonorLot,       // account a gained one lot
    kClientId,       // saved_strings_[b] was inserted
    kClosed,         // account a was closed
    kReversed,       // entry b was marked reversed
    kHead,           // head moved: old seq b, old time c, old hash saved_strings_[a]
    kTouch,          // account a gained one statement line
    kFlow,           // account a, flow slot b grew by c
    kTraceHash,      // saved_strings_[b] was inserted as a trace hash
  };
  struct Record {
    Kind kind;
    uint32_t a = 0;
    uint64_t b = 0;
    int64_t c = 0;
  };
  void Add(const Record& r) {
    if (recording_) records_.push_back(r);
  }

  bool recording_ = true;
  std::vector<Record> records_;
  std::vector<std::deque<Slice>> saved_slices_;
  std::vector<std::string> saved_strings_;
};

// Looks up an earlier entry (for reversals). Entries not yet durable but
// applied in the current group must be visible to it.
using EntryLookup = std::function<absl::StatusOr<Entry>(uint64_t seq)>;

struct AppliedEntry {
  uint64_t seq = 0;
  int64_t time_us = 0;
  Hash hash{};
  std::string stored_value;  // entry bytes followed by the hash
};

class LedgerState {
 public:
  LedgerState() = default;
  LedgerState(const LedgerState&) = delete;
  LedgerState& operator=(const LedgerState&) = delete;

  // Validates `body` against the rules (docs/rules.md) and, if it holds,
  // applies it as entry head+1 at time max(time_us, head time), records the
  // undo steps in `journal` and returns the encoded entry. On error nothing
  // changes. Requires that `client_id` is not yet used (see FindClientId).
  // `replayed_hash`, when given, is the verified stored hash of the entry
  // being replayed; the caller compares the produced bytes with the stored
  // ones, so hashing them again is skipped.
  absl::StatusOr<AppliedEntry> Apply(const std::string& client_id, OpBody body,
                                     int64_t time_us, const EntryLookup& lookup,
                                     Journal* journal, const Hash* replayed_hash = nullptr);

  // Undoes every journaled mutation after `mark`, newest first. Requires a
  // recording journal.
  void UndoTo(Journal* journal, size_t mark);

  // The seq of the entry that used `client_id`, if any.
  std::optional<uint64_t> FindClientId(const std::string& client_id) const;

  uint64_t head_seq() const { return head_seq_; }
  const Hash& head_hash() const { return head_hash_; }
  int64_t head_time_us() const { return head_time_us_; }

  // ---- Reads. ----
  absl::StatusOr<AccountInfo> GetAccount(const std::string& account) const;
  absl::StatusOr<HoldingsPage> GetHoldings(const std::string& account, uint64_t offset,
                                           uint64_t limit) const;
  std::optional<AccountKind> KindOf(const std::string& account) const;
  // Statement lines of `account` with from_time_us <= time < to_time_us; the
  // counterparty is left empty (it lives in the entries).
  absl::StatusOr<StatementPage> Statement(const std::string& account, int64_t from_time_us,
                                          int64_t to_time_us, uint64_t offset,
                                          uint64_t limit) const;
  // Account ids in opening order, optionally of one kind; `total` gets the
  // number that match.
  std::vector<std::string> ListAccounts(std::optional<AccountKind> kind, uint64_t offset,
                                        uint64_t limit, uint64_t* total) const;
  // The lot whose donation recorded this trace hash.
  std::optional<uint64_t> FindLotByTraceHash(const std::string& trace_hash) const;
  absl::StatusOr<LotInfo> GetLot(uint64_t lot) const;
  // Seqs of the entries after the donation that moved part of the lot.
  absl::StatusOr<std::vector<uint64_t>> LotMoves(uint64_t lot) const;
  // Lots given by a source account, oldest first.
  absl::StatusOr<std::vector<uint64_t>> DonorLots(const std::string& donor) const;
  // Sum of all balances per asset code (zero for every asset when conserved).
  std::vector<Balance> TotalsPerAsset() const;
  uint64_t account_count() const { return accounts_.size(); }
  uint64_t lot_count() const { return lots_.size(); }

  // SHA-256 (hex) over a canonical serialisation of everything above.
  std::string Digest() const;

  // Balances and holdings of every account now (docs/format.md, "Balance
  // snapshot").
  BalanceSnapshot Snapshot() const;

 private:
  static constexpr uint32_t kNoAsset = UINT32_MAX;

  // Flow slots: in[type] at type, out[type] at kFlowOut + type.
  static constexpr size_t kFlowOut = 8;
  struct Touch {
    uint64_t seq;
    int64_t time_us;
    int64_t delta;
    int64_t balance_after;
    uint32_t asset;
  };
  struct AccountState {
    std::string id;
    std::string category;
    std::string community;
    std::vector<Touch> touches;
    std::array<int64_t, 2 * kFlowOut> flows{};
    AccountKind kind;
    uint32_t asset;  // kNoAsset: any asset (external kinds only)
    uint32_t flags;
    std::string name;
    bool closed = false;
    uint64_t opened_seq;
    std::vector<std::pair<uint32_t, int64_t>> balances;  // asset → amount
    std::deque<Slice> slices;                             // holding kinds
    std::vector<uint32_t> lots;                           // source kinds: lot indexes
  };
  struct LotState {
    uint64_t lot;
    uint32_t donor;
    uint32_t to;
    uint32_t asset;
    int64_t amount;
    int64_t time_us;
    bool anonymous;
    std::vector<uint64_t> moves;
  };

  // Everything Apply() computes before mutating, per operation type.
  absl::Status ApplyOpen(const OpenAccountOp& op, uint64_t seq, Journal* j, Entry* e);
  absl::Status ApplyClose(const CloseAccountOp& op, Journal* j, Entry* e);
  absl::Status ApplyDonation(const DonationOp& op, uint64_t seq, int64_t time_us,
                             Journal* j, Entry* e);
  absl::Status ApplyAllocation(const AllocationOp& op, uint64_t seq, Journal* j, Entry* e);
  absl::Status ApplyDisbursement(const DisbursementOp& op, uint64_t seq, Journal* j,
                                 Entry* e);
  absl::Status ApplyCorrection(const CorrectionOp& op, uint64_t seq,
                               const EntryLookup& lookup, Journal* j, Entry* e);

  // Finds an open account: kNotFound / kFailedPrecondition naming `field`.
  absl::StatusOr<uint32_t> FindOpen(absl::string_view field, const std::string& id) const;
  absl::StatusOr<uint32_t> AssetFor(absl::string_view field, uint32_t account,
                                    const std::string& asset);
  uint32_t InternAsset(const std::string& code);
  int64_t BalanceOf(uint32_t account, uint32_t asset) const;
  // Checks that moving `amount` from → to keeps every balance in range and
  // holding accounts non-negative.
  absl::Status CheckMove(absl::string_view field, uint32_t from, uint32_t to, uint32_t asset,
                         int64_t amount) const;
  // Moves value and slices; `slices` are what leaves `from` (already taken).
  void Move(uint32_t from, uint32_t to, uint32_t asset, int64_t amount,
            const std::vector<Slice>& slices, uint64_t seq, bool record_moves,
            Journal* j);
  void AddBalance(uint32_t account, uint32_t asset, int64_t delta, Journal* j);
  // Takes `amount` from the head of a holding account's slices (fifo/v1).
  absl::Status TakeFifo(absl::string_view field, uint32_t account, int64_t amount,
                        Journal* j, std::vector<Slice>* out);
  // Takes exactly `wanted` (lot, amount) from a holding account (reverse/v1).
  absl::Status TakeLots(absl::string_view field, uint32_t account,
                        const std::vector<Slice>& wanted, Journal* j);
  void PushBack(uint32_t account, const std::vector<Slice>& slices, Journal* j);
  void SetHead(uint64_t seq, const Hash& hash, int64_t time_us, Journal* j);
  void AddTouch(uint32_t account, uint32_t asset, int64_t delta, Journal* j);
  void AddFlow(uint32_t account, size_t slot, int64_t amount, Journal* j);

  // The entry being applied.
  uint64_t cur_seq_ = 0;
  int64_t cur_time_us_ = 0;
  EntryType cur_type_ = EntryType::kOpenAccount;

  std::vector<std::string> assets_;
  absl::flat_hash_map<std::string, uint32_t> asset_index_;
  // A deque: growing it never moves (or copies) the accounts' slice lists.
  std::deque<AccountState> accounts_;
  absl::flat_hash_map<std::string, uint32_t> account_index_;
  std::vector<LotState> lots_;
  absl::flat_hash_map<uint64_t, uint32_t> lot_index_;
  absl::flat_hash_map<std::string, uint64_t> client_ids_;
  absl::flat_hash_map<uint64_t, uint64_t> reversed_;  // entry → reversing entry
  absl::flat_hash_map<std::string, uint64_t> trace_hashes_;  // trace hash → lot
  uint64_t head_seq_ = 0;
  Hash head_hash_{};
  int64_t head_time_us_ = 0;
};

// OK if `stored` equals `replayed`; otherwise kDataLoss naming the first
// account (and asset) that differs.
absl::Status CompareSnapshots(const BalanceSnapshot& stored, const BalanceSnapshot& replayed);

}  // namespace warmledger

#endif  // WARMLEDGER_LEDGER_STATE_H_

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
#include <bit>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/inlined_vector.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "ledger/client_id_index.h"
#include "ledger/entry_codec.h"
#include "ledger/segmented_vector.h"
#include "ledger/types.h"

namespace warmledger {

inline constexpr std::string_view kPolicyFifoV1 = "fifo/v1";
inline constexpr std::string_view kPolicyReverseV1 = "reverse/v1";
inline constexpr std::string_view kPolicyNone = "none";
// Refunds: the reversal left the fund from the purchase's own lot...
inline constexpr std::string_view kPolicyLotV1 = "lot/v1";
// ...or, that lot being (partly) spent, also from the fund's oldest money.
inline constexpr std::string_view kPolicyLotFifoV1 = "lot+fifo/v1";
// Goods leaving a stock: earliest expiry first.
inline constexpr std::string_view kPolicyFefoV1 = "fefo/v1";

// An account's lot slices, oldest first: a std::deque that exists only once
// the account holds a slice. Most accounts (donors, recipients, suppliers)
// never hold one, and an empty std::deque already allocates its map and a
// 512-byte block: with 200,000 donors, 115 MB of allocations for nothing.
class SliceQueue {
 public:
  using const_iterator = std::deque<Slice>::const_iterator;

  SliceQueue() = default;
  SliceQueue(const SliceQueue& other)
      : q_(other.q_ ? std::make_unique<std::deque<Slice>>(*other.q_) : nullptr) {}
  SliceQueue& operator=(const SliceQueue& other) {
    if (this != &other) *this = SliceQueue(other);
    return *this;
  }
  SliceQueue(SliceQueue&&) noexcept = default;
  SliceQueue& operator=(SliceQueue&&) noexcept = default;
  SliceQueue& operator=(std::deque<Slice>&& slices) {
    if (slices.empty()) {
      q_.reset();
    } else {
      q_ = std::make_unique<std::deque<Slice>>(std::move(slices));
    }
    return *this;
  }

  size_t size() const { return q_ ? q_->size() : 0; }
  bool empty() const { return !q_ || q_->empty(); }
  // Like std::deque's: only on a non-empty queue, or an index below size().
  Slice& operator[](size_t i) { return (*q_)[i]; }
  const Slice& operator[](size_t i) const { return (*q_)[i]; }
  Slice& front() { return q_->front(); }
  const Slice& front() const { return q_->front(); }
  Slice& back() { return q_->back(); }
  const Slice& back() const { return q_->back(); }
  const_iterator begin() const { return q_ ? q_->cbegin() : Empty().cbegin(); }
  const_iterator end() const { return q_ ? q_->cend() : Empty().cend(); }

  void push_back(const Slice& slice) { Allocated().push_back(slice); }
  void push_front(const Slice& slice) { Allocated().push_front(slice); }
  void pop_front() { q_->pop_front(); }
  void pop_back() { q_->pop_back(); }

 private:
  std::deque<Slice>& Allocated() {
    if (!q_) q_ = std::make_unique<std::deque<Slice>>();
    return *q_;
  }
  static const std::deque<Slice>& Empty() {
    static const std::deque<Slice> empty;
    return empty;
  }
  std::unique_ptr<std::deque<Slice>> q_;
};

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
    saved_hashes_.clear();
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
    kRestoreSlices,  // account a, saved_slices_[b] is the old list, c its tombstones
    kNewAccount,     // the last account was created
    kNewLot,         // the last lot was created
    kLotMove,        // lot index a gained one move
    kDonorLot,       // account a gained one lot
    kClientId,       // entry b's client id was added (the newest)
    kClosed,         // account a was closed
    kReversed,       // entry b was marked reversed
    kHead,           // head moved: old seq b, old time c, old hash saved_hashes_[a]
    kTouch,          // account a gained one statement line
    kFlow,           // account a, flow slot b grew by c
    kTraceHash,      // saved_hashes_[b] was inserted as a trace hash
    kSliceReduce,    // account a, slice at index b reduced by c
    kNewMember,      // the last member was created
    kMemberLot,      // member a gained one lot
    kRefundTotals,   // purchase b: refunded grew by c (reversed: see kRefundReversed)
    kRefundReversed, // purchase b: reversed grew by c
    kStoreEvent,     // store account a gained one event
    kNewVoucher,     // the last voucher was created
    kVoucherRedeem,  // voucher a: redeemed grew by c (one redemption more)
    kVoucherUnredeem,  // voucher a: a redemption of c was reversed
    kVoucherClose,   // voucher a was closed, returning c
    kLotOrigin,      // lot index a: at_origin grew by c
    kNewItem,        // the last catalogue item was added
    kAidRule,        // the last aid rule version was added
    kAidEvent,       // recipient a gained one aid event
    kLotDetail,       // lot_details_ gained lot b
  };
  struct Record {
    Kind kind;
    uint32_t a = 0;
    uint64_t b = 0;
    int64_t c = 0;
  };
  // Copies the fields one by one: callers build `r` in place with narrow
  // stores, and reading it back as one wide load (what copying the whole
  // struct into the vector compiles to) stalls on store forwarding.
  void Add(const Record& r) {
    if (recording_) records_.emplace_back(r.kind, r.a, r.b, r.c);
  }

  bool recording_ = true;
  std::vector<Record> records_;
  std::vector<SliceQueue> saved_slices_;
  // Hashes in their own vector: a 32-byte std::string would allocate.
  std::vector<Hash> saved_hashes_;
};

namespace internal {

// A vector of separately allocated elements: adding one never moves the
// others (unlike std::vector), and indexing is one load (unlike std::deque,
// whose index arithmetic showed up in profiles of Apply).
template <typename T>
class StableVector {
 public:
  class const_iterator {
   public:
    using Base = typename std::vector<std::unique_ptr<T>>::const_iterator;
    explicit const_iterator(Base it) : it_(it) {}
    const T& operator*() const { return **it_; }
    const T* operator->() const { return it_->get(); }
    const_iterator& operator++() {
      ++it_;
      return *this;
    }
    bool operator==(const const_iterator& other) const { return it_ == other.it_; }

   private:
    Base it_;
  };

  size_t size() const { return items_.size(); }
  T& operator[](size_t i) { return *items_[i]; }
  const T& operator[](size_t i) const { return *items_[i]; }
  T& back() { return *items_.back(); }
  const T& back() const { return *items_.back(); }
  void push_back(T&& v) { items_.push_back(std::make_unique<T>(std::move(v))); }
  void pop_back() { items_.pop_back(); }
  const_iterator begin() const { return const_iterator(items_.begin()); }
  const_iterator end() const { return const_iterator(items_.end()); }

 private:
  std::vector<std::unique_ptr<T>> items_;
};

}  // namespace internal

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
  // What the state keeps besides what applying entries needs. kFull: also
  // what only queries read (accounts' statement lines, lots' moves, donors'
  // and members' lists of lots, stores' settlement events). kVerify: only
  // what applying entries needs, for a replay that checks the ledger and is
  // then dropped (warmledger-audit): it applies every entry exactly as kFull
  // does and has the same balances, holdings, snapshots and totals, but its
  // statements, lot traces, donor statements and settlements are empty.
  enum class Keep { kFull, kVerify };
  explicit LedgerState(Keep keep = Keep::kFull) : keep_query_indexes_(keep == Keep::kFull) {}
  LedgerState(const LedgerState&) = delete;
  LedgerState& operator=(const LedgerState&) = delete;

  // Validates `body` against the rules (docs/rules.md) and, if it holds,
  // applies it as entry head+1 at time max(time_us, head time), records the
  // undo steps in `journal` and returns the encoded entry. On error nothing
  // changes. Requires that `client_id` is not yet used (see FindClientId,
  // whose lookup also brings in the table slot the id will take).
  // `replayed_hash`, when given, is the verified stored hash of the entry
  // being replayed; the caller compares the produced bytes with the stored
  // ones, so hashing them again is skipped.
  // `version` is the entry version to write: kEntryVersion for new
  // entries, the stored one in replay.
  absl::StatusOr<AppliedEntry> Apply(const std::string& client_id, OpBody&& body,
                                     int64_t time_us, const EntryLookup& lookup,
                                     Journal* journal, const Hash* replayed_hash = nullptr,
                                     uint8_t version = kEntryVersion);
  absl::StatusOr<AppliedEntry> Apply(const std::string& client_id, const OpBody& body,
                                     int64_t time_us, const EntryLookup& lookup,
                                     Journal* journal, const Hash* replayed_hash = nullptr,
                                     uint8_t version = kEntryVersion) {
    return Apply(client_id, OpBody(body), time_us, lookup, journal, replayed_hash, version);
  }
  // Apply for a stored entry whose hash `stored_hash` the caller verified:
  // returns the entry bytes the rules produce (valid until the next call
  // that changes the state), for the caller to compare with the stored ones.
  // Nothing is allocated per entry once warm: `body` is copied into a
  // reused buffer, and no stored value is built.
  absl::StatusOr<std::string_view> Replay(const std::string& client_id, const OpBody& body,
                                           int64_t time_us, const EntryLookup& lookup,
                                           Journal* journal, const Hash& stored_hash,
                                           uint8_t version);

  // Undoes every journaled mutation after `mark`, newest first. Requires a
  // recording journal.
  void UndoTo(Journal* journal, size_t mark);

  // The seq of the entry that used `client_id`, if any.
  std::optional<uint64_t> FindClientId(const std::string& client_id) const;
  // Starts fetching what FindClientId(client_id) will read, a cache miss on
  // a large ledger: callers that know the next ids call it a little ahead.
  void PrefetchClientId(const std::string& client_id) const { client_ids_.Prefetch(client_id); }

  // Optional hint: the state will soon hold about `entries` entries in all
  // (e.g. replay knows how many are stored). Sizes the per-entry indexes
  // (client ids, lot ids) once instead of growing and rehashing them step
  // by step. Changes no behaviour; a wrong hint only costs memory or time.
  // Pass a real count, not a bound such as UINT64_MAX (hints are capped at
  // 2^27 entries).
  void Reserve(uint64_t entries);

  uint64_t head_seq() const { return head_seq_; }
  const Hash& head_hash() const { return head_hash_; }
  int64_t head_time_us() const { return head_time_us_; }

  // ---- Reads. ----
  absl::StatusOr<AccountInfo> GetAccount(const std::string& account) const;
  absl::StatusOr<HoldingsPage> GetHoldings(const std::string& account, uint64_t offset,
                                           uint64_t limit) const;
  std::optional<AccountKind> KindOf(const std::string& account) const;
  // The kind of the account at `index` in Snapshot()'s order (the order the
  // accounts were opened in), index < account_count().
  AccountKind KindAt(size_t index) const { return accounts_[index].kind; }
  // A recipient's category and community (what a trace shows of them);
  // nullopt for an account that is not a recipient.
  std::optional<std::pair<std::string, std::string>> RecipientPlace(
      const std::string& account) const;
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
  // `with_parents`: fill LotInfo::parents (parent_count is always set).
  absl::StatusOr<LotInfo> GetLot(uint64_t lot, bool with_parents = true) const;
  // The amounts each conversion parent of `lot` consumed, in parent order
  // (empty for lots not made by a conversion): the weights of every
  // apportionment across the conversion.
  std::vector<int64_t> ParentWeights(uint64_t lot) const;
  // Parent `index` of `lot` (index < ParentWeights(lot).size()).
  LotParent ParentAt(uint64_t lot, size_t index) const;
  // The parent `parent` of `lot`, if it is one.
  std::optional<LotParent> FindParent(uint64_t lot, uint64_t parent) const;
  // An entry after the donation that moved part of a lot. For a one-posting
  // allocation or disbursement that lists the lot in one slice (nearly every
  // move) the state keeps the movement itself (`known`), so that a trace
  // need not read the entry; for any other, the entry has the details.
  struct LotMoveRecord {
    uint64_t seq = 0;
    bool known = false;
    EntryType type = EntryType::kAllocation;  // the rest only when known
    int64_t time_us = 0;
    std::string from;
    std::string to;
    int64_t amount = 0;  // of this lot
  };
  // The lot's moves, oldest first.
  absl::StatusOr<std::vector<LotMoveRecord>> LotMoves(uint64_t lot) const;
  // Lots given by a source account, oldest first.
  absl::StatusOr<std::vector<uint64_t>> DonorLots(const std::string& donor) const;
  // Sum of all balances per asset code (zero for every asset when conserved).
  std::vector<Balance> TotalsPerAsset() const;
  uint64_t account_count() const { return accounts_.size(); }
  uint64_t lot_count() const { return lots_.size(); }

  // Fills the checkout and voucher details of `result` (types.h, OpResult)
  // for `entry`, an entry of this state: the one just applied (LastEntry())
  // or an earlier one answered to a retry.
  void FillDetails(const Entry& entry, OpResult* result) const;
  // The entry the last successful Apply() built (valid until the next one).
  const Entry& LastEntry() const { return scratch_; }

  // The aid rules in force, by aid name.
  std::vector<AidRuleInfo> ListAidRules() const;
  // Aid to recipients (disbursements, vouchers, handout lines) with
  // from_time_us <= time < to_time_us, by category, community, type and
  // asset; the public view leaves out cells of fewer than
  // kAidReportMinPeople people.
  AidReport GetAidReport(int64_t from_time_us, int64_t to_time_us, bool public_view) const;

  // The goods catalogue, in order of definition.
  std::vector<ItemInfo> ListItems() const;
  absl::StatusOr<ItemInfo> GetItem(const std::string& item) const;

  absl::StatusOr<VoucherInfo> GetVoucher(uint64_t voucher) const;
  std::optional<uint64_t> FindVoucherByCodeHash(const std::string& code_hash) const;
  // Account ids of the active vouchers that still hold value and whose
  // expiry is at or before `now_us`, oldest first, at most `max`.
  std::vector<std::string> DueVouchers(int64_t now_us, size_t max) const;
  VoucherReport GetVoucherReport(int64_t now_us) const;
  // Checkout figures per store (or of one store) for entries with
  // from_time_us <= time < to_time_us, by store id then asset.
  absl::StatusOr<std::vector<StoreSettlement>> Settlement(const std::string& store,
                                                          int64_t from_time_us,
                                                          int64_t to_time_us) const;

  // SHA-256 (hex) over a canonical serialisation of everything above.
  std::string Digest() const;

  // Balances and holdings of every account now (docs/format.md, "Balance
  // snapshot").
  BalanceSnapshot Snapshot() const;

 private:
  static constexpr uint32_t kNoAsset = UINT32_MAX;

  // Flow slots: one per entry type that moves value, densely (kFlowTypes
  // order); in[slot] at slot, out[slot] at kFlowOut + slot.
  static constexpr EntryType kFlowTypes[] = {
      EntryType::kDonation,     EntryType::kAllocation,    EntryType::kDisbursement,
      EntryType::kCorrection,   EntryType::kPurchase,      EntryType::kRefund,
      EntryType::kVoucherIssue, EntryType::kRedemption,    EntryType::kVoucherClose,
      EntryType::kGoodsGift,    EntryType::kGoodsPurchase, EntryType::kHandout,
      EntryType::kWriteOff,     EntryType::kGoodsSale};
  static constexpr size_t kFlowOut = 16;
  static_assert(std::size(kFlowTypes) <= kFlowOut);
  // The flow slot of each entry type (types that move nothing: 0, unused).
  static constexpr std::array<uint8_t, kEntryTypeMax + 1> kFlowSlot = [] {
    std::array<uint8_t, kEntryTypeMax + 1> slot{};
    for (size_t i = 0; i < std::size(kFlowTypes); ++i) {
      slot[static_cast<size_t>(kFlowTypes[i])] = static_cast<uint8_t>(i);
    }
    return slot;
  }();
  static constexpr uint32_t kNone = UINT32_MAX;
  struct Touch {
    uint64_t seq;
    int64_t time_us;
    int64_t delta;
    int64_t balance_after;
    uint32_t asset;
  };
  // What Apply reads or writes for most entries comes first, so that it
  // shares cache lines (an entry touches two accounts, often not cached);
  // descriptive strings, read by queries, come last.
  struct AccountState {
    AccountKind kind;
    bool closed = false;
    // IsHolding(kind) and IsSource(kind), asked several times per entry.
    bool holding = false;
    bool source = false;
    uint32_t asset;  // kNoAsset: any asset (external kinds only)
    uint32_t flags;
    // asset → amount. Nearly every account holds a single asset: keeping
    // it inline saves a heap block and a cache miss per balance look-up.
    absl::InlinedVector<std::pair<uint32_t, int64_t>, 1> balances;
    // Statement lines, in blocks of 2, 4, 8... lines: small for the many
    // accounts with few lines, never copied for those with millions.
    internal::SegmentedVector<Touch, 1> touches;
    std::vector<uint32_t> lots;  // source kinds: lot indexes
    std::array<int64_t, 2 * kFlowOut> flows{};
    // Holding kinds: lot slices in arrival order. A slice that a refund
    // emptied in the middle stays as a tombstone (amount 0) until fifo
    // reaches it, instead of shifting every slice behind it.
    SliceQueue slices;
    uint64_t dead_slices = 0;    // tombstones among `slices`
    uint64_t front_ordinal = 0;  // slices ever popped from the front
    uint64_t opened_seq;
    std::string id;
    std::string name;
    std::string category;
    std::string community;
  };
  // One entry that moved part of a lot. A lot's moves form a list through
  // `prev`, newest first, stored in one vector (lot_moves_) for all lots:
  // appending never allocates per lot, and undo always removes the newest
  // move of all.
  static constexpr uint64_t kNoMove = UINT64_MAX;
  struct LotMove {
    uint64_t seq;
    uint64_t prev;  // index in lot_moves_; kNoMove: the lot's first move
    // The movement, for LotMoveRecord (meaningful only when `known`).
    int64_t amount = 0;
    int64_t time_us = 0;
    uint32_t from = 0;
    uint32_t to = 0;
    EntryType type = EntryType::kAllocation;
    bool known = false;
  };
  struct LotState {
    uint64_t lot;
    uint32_t donor;
    uint32_t to;
    uint32_t asset;
    uint32_t member = kNone;  // purchases: index in members_
    bool anonymous;
    bool purchase = false;    // created by a PURCHASE (donor: the store)
    EntryType created_by = EntryType::kDonation;
    int64_t expires_us = 0;   // goods lots: the batch's expiry (0: none)
    // Purchase lots: how much of the lot its fund (`to`) holds now, so that
    // a refund knows without searching the fund's slices, and the ordinal
    // (front_ordinal + index) at which the lot arrived there: while no
    // reversal has rebuilt the fund's slices, that is where it still is.
    int64_t at_origin = 0;
    uint64_t origin_ordinal = 0;
    int64_t amount;
    int64_t time_us;
    uint64_t last_move = kNoMove;  // index in lot_moves_
    uint64_t last_move_seq = 0;    // its seq (0: none), kept here to skip a read
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
  absl::Status ApplyPurchase(const PurchaseOp& op, uint64_t seq, int64_t time_us, Journal* j,
                             Entry* e);
  absl::Status ApplyRefund(const RefundOp& op, uint64_t seq, const EntryLookup& lookup,
                           Journal* j, Entry* e);
  absl::Status ApplyVoucherIssue(const VoucherIssueOp& op, uint64_t seq, int64_t time_us,
                                 Journal* j, Entry* e);
  absl::Status ApplyRedemption(const RedemptionOp& op, uint64_t seq, Journal* j, Entry* e);
  absl::Status ApplyVoucherClose(const VoucherCloseOp& op, uint64_t seq, Journal* j,
                                 Entry* e);
  absl::Status ApplyItem(const ItemOp& op, uint64_t seq, Journal* j, Entry* e);
  absl::Status ApplyAidRule(const AidRuleOp& op, uint64_t seq, Journal* j, Entry* e);
  // Checks aid of `type` from `source` in `asset` to `recipient` now
  // against the rules: kFailedPrecondition naming `field`, the rule and the
  // earlier entry if one is broken and `override_reason` is empty.
  absl::Status CheckAidRules(absl::string_view field, EntryType type, uint32_t source,
                             uint32_t asset, uint32_t recipient,
                             const std::string& override_reason) const;
  // Records aid to `recipient` (an account of kind recipient) by this entry.
  void RecordAid(uint32_t recipient, uint32_t source, uint32_t asset, int64_t amount,
                 Journal* j);
  absl::Status ApplyGoodsGift(const GoodsGiftOp& op, uint64_t seq, int64_t time_us,
                              Journal* j, Entry* e);
  absl::Status ApplyGoodsPurchase(const GoodsPurchaseOp& op, uint64_t seq, int64_t time_us,
                                  Journal* j, Entry* e);
  absl::Status ApplyHandout(const HandoutOp& op, uint64_t seq, Journal* j, Entry* e);
  absl::Status ApplyWriteOff(const WriteOffOp& op, uint64_t seq, Journal* j, Entry* e);
  absl::Status ApplyGoodsSale(const GoodsSaleOp& op, uint64_t seq, int64_t time_us,
                              Journal* j, Entry* e);

  // The asset index of a catalogued item: kInvalidArgument if `item` is not
  // an item code, kFailedPrecondition if it is not in the catalogue.
  absl::StatusOr<uint32_t> CatalogueItem(absl::string_view field, const std::string& item) const;
  // An open stock account holding `asset`.
  absl::StatusOr<uint32_t> FindStock(absl::string_view field, const std::string& id,
                                     uint32_t asset) const;
  // Takes `amount` from a stock, walking `order` (indexes into its slices,
  // from FefoOrder) from `*cursor`; emptied slices stay as empty slices.
  absl::Status TakeInOrder(absl::string_view field, uint32_t account,
                           const std::vector<size_t>& order, size_t* cursor, int64_t amount,
                           Journal* j, std::vector<Slice>* out);
  // The stock's non-empty slices in fefo/v1 order.
  std::vector<size_t> FefoOrder(uint32_t account) const;
  // Drops empty slices at the front of a holding account's slices.
  void PopEmptyFront(uint32_t account, Journal* j);
  // Records the conversion parents of lot `seq` from the slices that paid
  // for it, with their shares of `amount`.
  void RecordParents(uint64_t seq, const std::vector<Slice>& paid, int64_t amount, Journal* j);

  // Records a new lot of `amount` created by entry `seq` (a donation or a
  // purchase contribution) and moves it donor → to as the entry's posting.
  // `p` is the entry's posting to fill.
  void CreateLot(uint32_t donor, uint32_t to, uint32_t asset, int64_t amount, uint64_t seq,
                 int64_t time_us, bool anonymous, uint32_t member, const Hash* trace,
                 Journal* j, Posting& p);
  // A donation's or purchase's trace hash: empty, or 32 bytes not yet used
  // (kAlreadyExists naming the lot); `out` gets it when given.
  absl::Status CheckNewTraceHash(absl::string_view field, const std::string& trace_hash,
                                 Hash* out) const;
  // Adds an account (the checks are the caller's) and returns its index.
  uint32_t AddAccount(AccountState a, Journal* j);
  // Takes up to `max` of purchase lot `lot` from the account it entered
  // (the fund): as much as it still holds there, from the slice it arrived
  // as, or else found by a search from whichever end of the account's
  // slices is nearer the lot. Emptied slices become tombstones.
  int64_t TakeOwnLot(uint32_t account, uint64_t lot, int64_t max, Journal* j,
                     std::vector<Slice>* out);
  // The purchase of (store, order_id), or nullopt.
  std::optional<uint64_t> FindPurchase(const std::string& store,
                                       const std::string& order_id) const;
  // Index in members_ of `member`, creating it if needed.
  uint32_t InternMember(const std::string& member, Journal* j);
  void AddStoreEvent(uint32_t store, uint8_t kind, uint32_t asset, int64_t amount,
                     int64_t moved, Journal* j);
  VoucherInfo InfoOf(uint32_t voucher) const;

  // Finds an open account: kNotFound / kFailedPrecondition naming `field`.
  absl::StatusOr<uint32_t> FindOpen(absl::string_view field, const std::string& id) const;
  // The index of `asset` if `account` may hold it. `known`, if given, is
  // the index of `asset` (found for the other account of the move): it
  // spares a look-up.
  absl::StatusOr<uint32_t> AssetFor(absl::string_view field, uint32_t account,
                                    const std::string& asset, uint32_t known = kNoAsset);
  uint32_t InternAsset(const std::string& code);
  // The index in lots_ of lot `lot`, or kNone.
  uint32_t LotIndex(uint64_t lot) const {
    return lot < lot_by_seq_.size() ? lot_by_seq_[lot] : kNone;
  }
  // Live (non-tombstone) slices of a holding account.
  uint64_t LiveSlices(const AccountState& a) const { return a.slices.size() - a.dead_slices; }
  // Makes e->postings one posting (reusing the scratch entry's strings and
  // vectors) and returns it with empty slices.
  static Posting& OnePosting(Entry* e);
  // Releases scratch buffers that an unusually large entry grew.
  void TrimScratch();
  // The client id's own checks, and those that tie it to `body`.
  absl::Status CheckIdAndBody(const std::string& client_id, const OpBody& body) const;
  // Apply, for the body already in scratch_.body; leaves the entry's bytes
  // in encode_buf_. The returned value has no stored_value.
  absl::StatusOr<AppliedEntry> ApplyScratch(const std::string& client_id, int64_t time_us,
                                            const EntryLookup& lookup, Journal* journal,
                                            const Hash* replayed_hash, uint8_t version);
  int64_t BalanceOf(uint32_t account, uint32_t asset) const;
  // Checks that moving `amount` from → to keeps every balance in range and
  // holding accounts non-negative.
  // `from_gives`: `from` gives value it need not hold, as sources do (a
  // supplier delivering goods).
  absl::Status CheckMove(absl::string_view field, uint32_t from, uint32_t to, uint32_t asset,
                         int64_t amount, bool from_gives = false) const;
  // Moves value and slices; `slices` are what leaves `from` (already taken).
  void Move(uint32_t from, uint32_t to, uint32_t asset, int64_t amount,
            const std::vector<Slice>& slices, uint64_t seq, bool record_moves,
            Journal* j);
  // Returns the new balance.
  int64_t AddBalance(uint32_t account, uint32_t asset, int64_t delta, Journal* j);
  // The one posting of an allocation, disbursement or adjustment: checks the
  // asset of both accounts and the move, takes the slices under fifo/v1,
  // moves the value and records the posting in `e`.
  absl::Status PostFifo(absl::string_view asset_field, absl::string_view amount_field,
                        uint32_t from, uint32_t to, const std::string& from_id,
                        const std::string& to_id, const std::string& asset_code, int64_t amount,
                        uint64_t seq, Journal* j, Entry* e);
  // Takes `amount` from the head of a holding account's slices (fifo/v1).
  absl::Status TakeFifo(absl::string_view field, uint32_t account, int64_t amount,
                        Journal* j, std::vector<Slice>* out);
  // Takes exactly `wanted` (lot, amount) from a holding account (reverse/v1).
  absl::Status TakeLots(absl::string_view field, uint32_t account,
                        const std::vector<Slice>& wanted, Journal* j);
  void PushBack(uint32_t account, const std::vector<Slice>& slices, Journal* j);
  void SetHead(uint64_t seq, const Hash& hash, int64_t time_us, Journal* j);
  // Records a statement line; `balance_after` is the account's balance of
  // `asset` now (0 for kNoAsset).
  void AddTouch(uint32_t account, uint32_t asset, int64_t delta, int64_t balance_after,
                Journal* j);
  void AddFlow(uint32_t account, size_t slot, int64_t amount, Journal* j);

  // Refund totals of a purchase that has refunds.
  struct RefundTotals {
    int64_t refunded = 0;  // purchase money refunded
    int64_t reversed = 0;  // contribution reversed
  };
  // One checkout event at a store, for settlement reports.
  static constexpr uint8_t kStorePurchase = 0;
  static constexpr uint8_t kStoreRefund = 1;
  static constexpr uint8_t kStoreRedemption = 2;
  static constexpr uint8_t kStoreRedemptionReversal = 3;
  struct StoreEvent {
    int64_t time_us;
    int64_t amount;  // sale, refund or redemption amount
    int64_t moved;   // contribution or reversal (0 for redemptions)
    uint32_t asset;
    uint8_t kind;
  };
  enum class VoucherState : uint8_t { kActive, kExpired, kVoided };
  struct Voucher {
    uint64_t seq;  // issuing entry
    uint32_t account;
    uint32_t from;
    uint32_t recipient;
    uint32_t asset;
    int64_t face;
    int64_t redeemed = 0;
    int64_t returned = 0;
    uint64_t redemptions = 0;
    int64_t issued_us;
    int64_t expires_us;
    std::vector<uint32_t> stores;
    Hash code;  // SHA-256 of the voucher code
    VoucherState state = VoucherState::kActive;
    uint64_t closed_seq = 0;
  };

  // The entry being applied.
  uint64_t cur_seq_ = 0;
  int64_t cur_time_us_ = 0;
  uint8_t cur_version_ = kEntryVersion;
  EntryType cur_type_ = EntryType::kOpenAccount;
  const bool keep_query_indexes_ = true;

  std::vector<std::string> assets_;
  absl::flat_hash_map<std::string, uint32_t> asset_index_;
  // Growing it never moves (or copies) the accounts' slice lists.
  internal::StableVector<AccountState> accounts_;
  absl::flat_hash_map<std::string, uint32_t> account_index_;
  internal::SegmentedVector<LotState, 10> lots_;
  // Lot id (the seq of its donation) → index in lots_, or kNone: a dense
  // table indexed by seq. Lots are a large share of entries, so this is
  // smaller than a hash map and needs no hashing or probing.
  std::vector<uint32_t> lot_by_seq_;
  internal::SegmentedVector<LotMove, 10> lot_moves_;
  ClientIdIndex client_ids_;
  absl::flat_hash_map<uint64_t, uint64_t> reversed_;  // entry → reversing entry
  // Trace hash (always 32 bytes) → lot, keyed by value: no heap string each.
  absl::flat_hash_map<Hash, uint64_t> trace_hashes_;
  // Shop members credited with purchase contributions, and their lots.
  std::vector<std::string> members_;
  absl::flat_hash_map<std::string, uint32_t> member_index_;
  std::vector<std::vector<uint32_t>> member_lots_;  // lot indexes
  // Purchases (by seq) that have refunds.
  absl::flat_hash_map<uint64_t, RefundTotals> refunds_;
  // Store account → its checkout events in entry order.
  absl::flat_hash_map<uint32_t, internal::SegmentedVector<StoreEvent, 6>> store_events_;
  // Goods lots' batch details and converted lots' parents, by lot id.
  struct Parent {
    uint64_t lot;
    int64_t consumed;
    int64_t share;
  };
  struct LotDetail {
    std::string grade;
    std::string value_asset;
    int64_t value = 0;
    std::vector<Parent> parents;
  };
  absl::flat_hash_map<uint64_t, LotDetail> lot_details_;
  struct Item {
    uint32_t asset;
    uint64_t seq;
    std::string name;
    std::string unit;
  };
  std::vector<Item> items_;
  // Aid rules: every version, in entry order; the one in force per aid.
  struct AidRuleState {
    AidRuleOp op;
    uint64_t seq;
    uint32_t replaced;  // index of the version it replaced, or kNone
  };
  std::vector<AidRuleState> aid_rules_;
  absl::flat_hash_map<std::string, uint32_t> aid_rule_in_force_;
  // Aid received, per recipient, in entry order.
  struct AidEvent {
    uint64_t seq;
    int64_t time_us;
    int64_t amount;
    uint32_t source;
    uint32_t asset;
    EntryType type;
  };
  absl::flat_hash_map<uint32_t, std::vector<AidEvent>> aid_events_;
  absl::flat_hash_map<uint32_t, uint32_t> item_by_asset_;
  std::vector<Voucher> vouchers_;
  absl::flat_hash_map<uint64_t, uint32_t> voucher_by_seq_;
  absl::flat_hash_map<Hash, uint32_t> voucher_codes_;
  uint64_t head_seq_ = 0;
  Hash head_hash_{};
  int64_t head_time_us_ = 0;

  // Reused by every Apply so that, once warm, building and encoding an
  // entry allocates nothing but the returned stored value.
  Entry scratch_;
  std::string encode_buf_;
};

// OK if `stored` equals `replayed`; otherwise kDataLoss naming the first
// account (and asset) that differs.
absl::Status CompareSnapshots(const BalanceSnapshot& stored, const BalanceSnapshot& replayed);

}  // namespace warmledger

#endif  // WARMLEDGER_LEDGER_STATE_H_

// The ledger's vocabulary: account kinds, entry types, operations (what a
// client asks for), entries (what the ledger records) and the shapes of query
// results. Persisted enum values are listed in docs/format.md: do not renumber.
#ifndef WARMLEDGER_LEDGER_TYPES_H_
#define WARMLEDGER_LEDGER_TYPES_H_

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "absl/status/status.h"

namespace warmledger {

using Hash = std::array<uint8_t, 32>;

// Persisted (OPEN_ACCOUNT.kind). Do not renumber.
enum class AccountKind : uint8_t {
  kDonor = 1,
  kFund = 2,
  kProject = 3,
  kVoucher = 4,
  kStock = 5,
  kRecipient = 6,
  kMerchant = 7,
  kSupplier = 8,
  kExpense = 9,
};
inline constexpr uint8_t kAccountKindMax = 9;

// Holding accounts keep lot slices and never go below zero.
bool IsHolding(AccountKind kind);
// Sources give value into the ledger (their balance goes negative).
bool IsSource(AccountKind kind);
// Sinks are where value ends: recipients, suppliers, expenses.
bool IsSink(AccountKind kind);
const char* AccountKindName(AccountKind kind);
std::optional<AccountKind> AccountKindFromName(std::string_view name);

// Persisted (entry type byte). Do not renumber.
enum class EntryType : uint8_t {
  kOpenAccount = 1,
  kCloseAccount = 2,
  kDonation = 3,
  kAllocation = 4,
  kDisbursement = 5,
  kCorrection = 6,
};
const char* EntryTypeName(EntryType type);

// Persisted (DONATION.channel). Do not renumber.
enum class DonationChannel : uint8_t {
  kUnspecified = 0,
  kOnlineCampaign = 1,
  kCounter = 2,
  kBankTransfer = 3,
  kCompanyGift = 4,
};
inline constexpr uint8_t kDonationChannelMax = 4;

// Persisted (CORRECTION.mode). Do not renumber.
enum class CorrectionMode : uint8_t {
  kReverse = 1,
  kAdjust = 2,
};

// OPEN_ACCOUNT.flags bits.
inline constexpr uint32_t kAccountRestricted = 1u << 0;
inline constexpr uint32_t kAccountFlagsKnown = kAccountRestricted;
// DONATION.flags bits.
inline constexpr uint32_t kDonationAnonymous = 1u << 0;
inline constexpr uint32_t kDonationFlagsKnown = kDonationAnonymous;

enum class AssetKind { kMoney, kGoods };
// Returns the kind of a well-formed asset code, or nullopt if malformed.
std::optional<AssetKind> ParseAssetCode(std::string_view code);

// ---- Operations: what a client asks the ledger to do. ----

struct OpenAccountOp {
  std::string account;
  AccountKind kind = AccountKind::kFund;
  std::string asset;  // required for holding kinds; optional for external ones
  uint32_t flags = 0;
  std::string name;
  // Recipients only: the configured category and community codes. A
  // recipient's account id is a keyed pseudonym, never a name or ID number.
  std::string category;
  std::string community;
  bool operator==(const OpenAccountOp&) const = default;
};

struct CloseAccountOp {
  std::string account;
  std::string reason;
  bool operator==(const CloseAccountOp&) const = default;
};

struct DonationOp {
  std::string donor;
  std::string to;
  std::string asset;
  int64_t amount = 0;
  DonationChannel channel = DonationChannel::kUnspecified;
  uint32_t flags = 0;
  std::string memo;
  // Empty, or the 32-byte SHA-256 of the donor's trace code: whoever holds
  // the code can find this lot; the code itself is never stored.
  std::string trace_hash;
  bool operator==(const DonationOp&) const = default;
};

struct AllocationOp {
  std::string from;
  std::string to;
  std::string asset;
  int64_t amount = 0;
  std::string reason;
  bool operator==(const AllocationOp&) const = default;
};

struct DisbursementOp {
  std::string from;
  std::string to;
  std::string asset;
  int64_t amount = 0;
  std::string purpose;
  bool operator==(const DisbursementOp&) const = default;
};

struct CorrectionOp {
  uint64_t ref_seq = 0;
  CorrectionMode mode = CorrectionMode::kReverse;
  std::string reason;
  // ADJUST only; empty/zero for REVERSE.
  std::string from;
  std::string to;
  std::string asset;
  int64_t amount = 0;
  bool operator==(const CorrectionOp&) const = default;
};

using OpBody = std::variant<OpenAccountOp, CloseAccountOp, DonationOp,
                            AllocationOp, DisbursementOp, CorrectionOp>;

EntryType TypeOf(const OpBody& body);

struct Operation {
  // The client's idempotency id: a retry with the same id and content returns
  // the original result; the same id with other content is kAlreadyExists.
  std::string client_id;
  // Links this operation with the next one in the same Submit call: a chain of
  // linked operations (ending with one whose `linked` is false) succeeds or
  // fails as a unit.
  bool linked = false;
  OpBody body;
  // OPEN_ACCOUNT only: if the account already exists with the same kind and
  // asset, succeed without writing anything (the result carries the seq that
  // opened it and duplicate = true) instead of answering kAlreadyExists.
  // Lets "open the donor if new, then donate" run concurrently.
  bool if_absent = false;
};

// Names the first field in which two operation bodies differ ("type" if the
// types differ), or nullopt if they are equal.
std::optional<std::string> FirstDifference(const OpBody& a, const OpBody& b);

// ---- Entries: what the ledger records. ----

// A part of one lot: `amount` units of lot `lot` (the seq of the entry that
// created the lot).
struct Slice {
  uint64_t lot = 0;
  int64_t amount = 0;
  bool operator==(const Slice&) const = default;
};

struct Posting {
  std::string from;
  std::string to;
  std::string asset;
  int64_t amount = 0;
  std::vector<Slice> slices;  // sum to `amount`
  bool operator==(const Posting&) const = default;
};

struct Entry {
  uint8_t version = 1;
  uint64_t seq = 0;
  int64_t time_us = 0;
  Hash prev_hash{};
  std::string client_id;
  std::string policy;
  OpBody body;
  std::vector<Posting> postings;

  EntryType type() const { return TypeOf(body); }
};

// An entry as read from storage: the decoded entry, the exact bytes that were
// hashed, and the stored hash (verified on read).
struct StoredEntry {
  Entry entry;
  std::string bytes;
  Hash hash{};
};

// kInvalidArgument if a page `limit` exceeds kPageItemsMax.
absl::Status CheckPageLimit(uint64_t limit);

// ---- Results. ----

struct OpResult {
  absl::Status status;
  uint64_t seq = 0;        // the entry's seq (also the lot id of a donation)
  int64_t time_us = 0;
  bool duplicate = false;  // a retry answered with the original result
};

struct Balance {
  std::string asset;
  int64_t amount = 0;
  bool operator==(const Balance&) const = default;
};

// One account in a balance snapshot (docs/format.md, "Balance snapshot").
struct AccountSnapshot {
  std::string account;
  std::vector<Balance> balances;  // in first-use order
  uint64_t slice_count = 0;       // lot slices held
  Hash slices_hash{};             // SHA-256 of (lot:u64 amount:i64)* in allocation order
  bool operator==(const AccountSnapshot&) const = default;
};

// The balances and holdings of every account after entry `seq`.
struct BalanceSnapshot {
  uint64_t seq = 0;
  std::vector<AccountSnapshot> accounts;  // in opening order
};

// Value that entered or left a holding account, by entry type.
struct AccountFlow {
  EntryType type = EntryType::kDonation;
  int64_t in = 0;
  int64_t out = 0;
};

struct AccountInfo {
  std::string account;
  AccountKind kind = AccountKind::kFund;
  std::string asset;
  uint32_t flags = 0;
  std::string name;
  bool closed = false;
  uint64_t opened_seq = 0;
  std::string category;            // recipients
  std::string community;           // recipients
  std::vector<Balance> balances;   // one per asset held or moved
  uint64_t slice_count = 0;        // holding accounts: slices currently held
  std::vector<AccountFlow> flows;  // holding accounts: totals by entry type
  uint64_t entry_count = 0;        // entries that touched the account
};

// One line of an account statement: an entry that touched the account.
struct StatementLine {
  uint64_t seq = 0;
  int64_t time_us = 0;
  EntryType type = EntryType::kOpenAccount;
  std::string counterparty;  // the other account of the posting, if any
  std::string asset;
  int64_t delta = 0;          // + in, - out
  int64_t balance_after = 0;  // of `asset` in this account
};

struct StatementPage {
  std::string account;
  int64_t from_time_us = 0;
  int64_t to_time_us = 0;
  uint64_t total_count = 0;  // lines in the period
  uint64_t offset = 0;
  std::vector<StatementLine> lines;
};

struct LotInfo {
  uint64_t lot = 0;  // seq of the creating entry
  std::string donor;
  std::string to;
  std::string asset;
  int64_t amount = 0;
  int64_t time_us = 0;
  bool anonymous = false;
};

// One movement of (part of) a lot.
struct TraceHop {
  uint64_t seq = 0;
  int64_t time_us = 0;
  EntryType type = EntryType::kDonation;
  std::string from;
  std::string to;
  int64_t amount = 0;
};

// Where (part of) a lot is now: a holding account that still holds it, or a
// sink (recipient, supplier, expense) or source (a returned gift) where it
// ended.
struct TracePlace {
  std::string account;
  AccountKind kind = AccountKind::kFund;
  int64_t amount = 0;
};

struct LotTrace {
  LotInfo lot;
  std::vector<TraceHop> hops;       // in seq order, the donation first
  std::vector<TracePlace> held;     // still in holding accounts
  std::vector<TracePlace> reached;  // ended in sinks or returned to sources
  // Invariant: sum(held) + sum(reached) == lot.amount.
};

// One lot behind an outflow.
struct TraceSource {
  uint64_t posting_index = 0;
  uint64_t lot = 0;
  std::string donor;
  bool anonymous = false;
  int64_t amount = 0;
};

struct EntryTracePage {
  uint64_t seq = 0;
  EntryType type = EntryType::kDonation;
  std::string asset;         // of the first posting
  int64_t outflow = 0;       // sum of all postings' amounts
  uint64_t total_count = 0;  // slices across all postings
  uint64_t offset = 0;
  std::vector<TraceSource> sources;  // [offset, offset + limit)
};

struct DonorStatementPage {
  std::string donor;
  uint64_t total_lots = 0;
  uint64_t offset = 0;
  std::vector<LotTrace> lots;
};

struct HoldingsPage {
  std::string account;
  uint64_t total_count = 0;
  uint64_t offset = 0;
  std::vector<Slice> slices;
};

}  // namespace warmledger

#endif  // WARMLEDGER_LEDGER_TYPES_H_

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
  kPurchase = 7,
  kRefund = 8,
  kVoucherIssue = 9,
  kRedemption = 10,
  kVoucherClose = 11,
  kItem = 12,
  kGoodsGift = 13,
  kGoodsPurchase = 14,
  kHandout = 15,
  kWriteOff = 16,
  kGoodsSale = 17,
  kAidRule = 18,
};
inline constexpr uint8_t kEntryTypeMax = 18;
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

// Persisted (VOUCHER_CLOSE.mode). Do not renumber.
enum class VoucherCloseMode : uint8_t {
  kExpire = 1,  // at or after the expiry time (the sweep)
  kVoid = 2,    // early, by a clerk, with a reason
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
  // The clerk's reason for paying despite an aid rule; empty if none.
  std::string override_reason;
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

// A sale in the charity supermarket or the Warm Mall. The contribution
// (amount × rate_bp / 10,000, rounded half up to the minor unit) enters
// `fund` as a lot whose donor is the store; `member`, if given, is credited.
// Identified by (store, order_id): its client id is NaturalClientId().
struct PurchaseOp {
  std::string store;     // a merchant account
  std::string order_id;  // the shop's order number, unique per store
  std::string asset;     // a money asset (CNY)
  int64_t amount = 0;    // the sale, in minor units
  std::string member;    // optional: the shopper's member id, credited
  int64_t sale_time_us = 0;  // optional: the shop's time of sale (0: not given)
  uint32_t rate_bp = 0;  // contribution rate in basis points (the server's configuration)
  std::string fund;      // the charity fund (the server's configuration)
  std::string trace_hash;  // optional, as in DonationOp
  bool operator==(const PurchaseOp&) const = default;
};

// A full or partial refund of a purchase. Its reversal is cumulative and
// proportional (docs/rules.md): after it, the reversals of all the order's
// refunds total round_half_up(contribution × refunded / amount).
struct RefundOp {
  std::string store;
  std::string order_id;
  std::string refund_id;  // unique per store
  int64_t amount = 0;     // purchase money refunded, in minor units
  bool operator==(const RefundOp&) const = default;
};

// Issues an aid voucher: `amount` moves from the fund or project `from`
// (fifo/v1, keeping provenance) into a new voucher account "voucher/<seq>".
struct VoucherIssueOp {
  std::string from;
  std::string recipient;  // a registered recipient
  std::string asset;
  int64_t amount = 0;       // face value
  int64_t expires_us = 0;   // redeemable while entry time < expires_us
  std::vector<std::string> stores;  // merchant accounts; empty: any store
  std::string code_hash;    // SHA-256 of the voucher code (32 bytes)
  std::string memo;
  // The clerk's reason for issuing despite an aid rule; empty if none.
  std::string override_reason;
  bool operator==(const VoucherIssueOp&) const = default;
};

// Redeems (part of) a voucher at a store for an order. Identified by
// (store, order_id, code_hash).
struct RedemptionOp {
  std::string code_hash;  // SHA-256 of the voucher code (32 bytes)
  std::string store;
  std::string order_id;
  int64_t amount = 0;
  bool operator==(const RedemptionOp&) const = default;
};

// Ends a voucher: what it still holds returns, slice by slice, to the fund
// or project that funded it.
struct VoucherCloseOp {
  std::string voucher;  // "voucher/<seq>"
  VoucherCloseMode mode = VoucherCloseMode::kExpire;
  std::string reason;   // required for kVoid
  bool operator==(const VoucherCloseOp&) const = default;
};

// Adds an item to the goods catalogue. Goods entries (gift, purchase,
// handout, write-off, sale) name catalogued items only.
struct ItemOp {
  std::string item;  // the asset code, "item:<code>"
  std::string name;  // "Box of daily necessities"
  std::string unit;  // [a-z]{1,16}: box, kg, piece, bottle...
  bool operator==(const ItemOp&) const = default;
};

// A gift in kind: `quantity` units of `item` from a donor into a stock
// account, as a new goods lot. The batch may carry a grade and an expiry
// date (handouts pick the earliest expiry first) and an appraised value,
// recorded as given and never counted in money balances.
struct GoodsGiftOp {
  std::string donor;
  std::string to;    // a stock account of `item`
  std::string item;
  int64_t quantity = 0;
  std::string grade;         // optional code, e.g. "A"
  int64_t expires_us = 0;    // optional: 0 = does not expire
  std::string value_asset;   // optional appraisal: money asset...
  int64_t value = 0;         // ...and amount in minor units (0 with an empty asset)
  DonationChannel channel = DonationChannel::kUnspecified;
  uint32_t flags = 0;        // kDonationAnonymous
  std::string memo;
  std::string trace_hash;    // as in DonationOp
  bool operator==(const GoodsGiftOp&) const = default;
};

// Buys goods with fund money, in one entry: `price` leaves `from` (a fund
// or project, fifo/v1) for the supplier, and `quantity` of `item` enters
// the stock `to` as a new goods lot whose parents are the money lots that
// paid, each with its share of the quantity (largest remainder).
struct GoodsPurchaseOp {
  std::string from;      // fund or project
  std::string supplier;  // a supplier account
  std::string asset;     // money
  int64_t price = 0;
  std::string to;        // a stock account of `item`
  std::string item;
  int64_t quantity = 0;
  std::string grade;
  int64_t expires_us = 0;
  std::string memo;      // invoice number, what was bought
  bool operator==(const GoodsPurchaseOp&) const = default;
};

struct HandoutLine {
  std::string recipient;
  int64_t quantity = 0;
  bool operator==(const HandoutLine&) const = default;
};

// Hands goods from a stock to one or many recipients (at most
// kHandoutLinesMax, each once), earliest expiry first (fefo/v1).
struct HandoutOp {
  std::string from;  // a stock account
  std::string item;
  std::vector<HandoutLine> lines;
  std::string purpose;
  // The clerk's reason for handing out despite an aid rule; empty if none.
  std::string override_reason;
  bool operator==(const HandoutOp&) const = default;
};

// Writes goods off (spoilage, damage, loss) to an expense account, with a
// reason: from lot `lot` only if given (a spoiled batch), else fefo/v1.
struct WriteOffOp {
  std::string from;  // a stock account
  std::string to;    // an expense account
  std::string item;
  int64_t quantity = 0;
  uint64_t lot = 0;  // 0: earliest expiry first
  std::string reason;
  bool operator==(const WriteOffOp&) const = default;
};

// Sells goods (fefo/v1) to a buyer (a merchant, e.g. the charity
// supermarket); the proceeds enter the fund `to` as a new money lot whose
// parents are the goods lots sold, each with its share of the proceeds.
struct GoodsSaleOp {
  std::string from;   // a stock account
  std::string buyer;  // a merchant account
  std::string item;
  int64_t quantity = 0;
  std::string to;     // fund or project receiving the proceeds
  std::string asset;  // money
  int64_t proceeds = 0;
  std::string memo;
  bool operator==(const GoodsSaleOp&) const = default;
};

// Calendar periods of aid rules, in China Standard Time (UTC+8). Persisted
// (AID_RULE.period). Do not renumber.
enum class AidPeriod : uint8_t {
  kDay = 1,
  kWeek = 2,  // Monday to Sunday
  kMonth = 3,
  kQuarter = 4,
  kYear = 5,
};
inline constexpr uint8_t kAidPeriodMax = 5;
const char* AidPeriodName(AidPeriod period);
std::optional<AidPeriod> AidPeriodFromName(std::string_view name);
// The number of the calendar period (of its kind) containing `time_us`:
// equal numbers, same period.
int64_t AidPeriodIndex(AidPeriod period, int64_t time_us);

// Sets (or replaces, or with max_count 0 lifts) the rule of one kind of aid:
// each recipient may receive it at most `max_count` times per `period`. A
// disbursement, voucher issue or handout line to a recipient counts for the
// rule if its type is `type` and it leaves `source` (empty: any fund,
// project or stock) in `asset` (empty: any asset). Breaking a rule is
// refused unless the operation carries an override reason.
struct AidRuleOp {
  std::string aid;  // code naming the kind of aid: "cash-aid", "meal-card", "daily-box"
  EntryType type = EntryType::kDisbursement;  // kDisbursement, kVoucherIssue or kHandout
  std::string source;
  std::string asset;
  uint32_t max_count = 0;  // 0: the rule is lifted
  AidPeriod period = AidPeriod::kMonth;
  std::string memo;
  bool operator==(const AidRuleOp&) const = default;
};

using OpBody = std::variant<OpenAccountOp, CloseAccountOp, DonationOp,
                            AllocationOp, DisbursementOp, CorrectionOp, PurchaseOp,
                            RefundOp, VoucherIssueOp, RedemptionOp, VoucherCloseOp,
                            ItemOp, GoodsGiftOp, GoodsPurchaseOp, HandoutOp, WriteOffOp,
                            GoodsSaleOp, AidRuleOp>;

EntryType TypeOf(const OpBody& body);

// Operations that the trade identifies by their own keys have a client id
// derived from them, so that retries are recognised whatever the caller
// sends: purchases by (store, order_id), refunds by (store, refund_id),
// redemptions by (store, order_id, code_hash), expiries by voucher. Other
// operations: nullopt (the caller chooses).
std::optional<std::string> NaturalClientId(const OpBody& body);
// Whether `client_id` has the form of a natural client id ("purchase:",
// "refund:", "redeem:" or "expire:" followed by 40 hex digits); no other
// operation may use one.
bool IsNaturalClientIdForm(std::string_view client_id);
// The natural client id of the purchase of `order_id` at `store`.
std::string PurchaseClientId(std::string_view store, std::string_view order_id);

// The contribution of a sale: amount × rate_bp / 10,000 rounded half up
// (exact, in 128-bit arithmetic). Requires 0 <= amount, rate_bp <= 10,000.
int64_t ContributionOf(int64_t amount, uint32_t rate_bp);
// round_half_up(total × part / whole), exact. Requires 0 <= part <= whole,
// whole > 0, total >= 0.
int64_t ProportionOf(int64_t total, int64_t part, int64_t whole);
// Splits `total` into whole parts proportional to `weights` by the largest
// remainder method: part i is floor(total × w_i / W) (W = sum of weights),
// and the units still missing go, one each, to the largest remainders
// (total × w_i mod W), ties to the earlier index. The parts always sum to
// `total`. Requires total >= 0, weights >= 0, and W > 0 unless total == 0.
std::vector<int64_t> Apportion(int64_t total, const std::vector<int64_t>& weights);

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

// The account id of the voucher issued by entry `seq`.
std::string VoucherAccountId(uint64_t seq);
// The issuing seq of a voucher account id, or 0 if `account` is not one.
uint64_t VoucherSeqFromAccountId(std::string_view account);

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
  uint8_t version = 2;  // kEntryVersion (entry_codec.h) for new entries
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
  // Filled for the checkout and voucher types (also for duplicates):
  // purchase: the contribution; refund: the reversal; voucher issue: the
  // face value; redemption: the amount; voucher close: the value returned.
  int64_t moved = 0;
  // Refund: the part of the reversal that the fund covered from its oldest
  // money because the purchase's own lot was already spent.
  int64_t covered_by_fund = 0;
  // Redemption: what the voucher held right after it.
  int64_t voucher_balance_after = 0;
  // Voucher issue, redemption and close: the voucher (its issuing seq).
  uint64_t voucher = 0;
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

// One lot behind a lot made by a conversion: `consumed` of it (in its own
// asset) went into the conversion, and `share` of the new lot (in the new
// lot's asset) is attributed to it (largest remainder over the parents, by
// consumed: the shares sum to the new lot's amount).
struct LotParent {
  uint64_t lot = 0;
  std::string donor;
  bool anonymous = false;
  std::string asset;
  int64_t consumed = 0;
  int64_t share = 0;
  bool operator==(const LotParent&) const = default;
};

struct LotInfo {
  uint64_t lot = 0;  // seq of the creating entry
  std::string donor;
  std::string to;
  std::string asset;
  int64_t amount = 0;
  int64_t time_us = 0;
  bool anonymous = false;
  // kDonation, kPurchase (a contribution: the donor is the store),
  // kGoodsGift, kGoodsPurchase (goods bought: the donor is the supplier) or
  // kGoodsSale (proceeds: the donor is the buyer).
  EntryType created_by = EntryType::kDonation;
  std::string member;    // purchase contributions: the member credited, if any
  std::string order_id;  // purchase contributions: the order (TraceLot fills it)
  // Goods lots (gifts and purchases): the batch's grade and expiry (0: none);
  // gifts: the appraised value as given (never counted in balances).
  std::string grade;
  int64_t expires_us = 0;
  std::string value_asset;
  int64_t value = 0;
  // Lots made by a conversion (goods purchase or sale): the lots behind
  // them, in the order they were consumed (GetLot lists the first
  // kPageItemsMax of `parent_count`).
  std::vector<LotParent> parents;
  uint64_t parent_count = 0;
};

// One movement of (part of) a lot.
struct TraceHop {
  uint64_t seq = 0;
  int64_t time_us = 0;
  EntryType type = EntryType::kDonation;
  std::string from;
  std::string to;
  int64_t amount = 0;
  // Refunds and redemptions: the order; voucher issues: the recipient's
  // category and community (never the recipient).
  std::string order_id;
  std::string category;
  std::string community;
};

// Where (part of) a lot is now: a holding account that still holds it, or a
// sink (recipient, supplier, expense) or source (a returned gift) where it
// ended.
struct TracePlace {
  std::string account;
  AccountKind kind = AccountKind::kFund;
  int64_t amount = 0;
};

// Where the part of a converted lot attributed to one parent is now: a
// holding account, a sink, or recipients grouped by category and community
// (account empty). `amount` is in the converted lot's asset, `source_amount`
// in the parent's; each is apportioned by largest remainder over the places,
// by the converted lot's amounts there.
struct ConversionPlace {
  std::string account;  // empty for a group of recipients
  AccountKind kind = AccountKind::kFund;
  std::string category;
  std::string community;
  int64_t amount = 0;
  int64_t source_amount = 0;
};

// A conversion that consumed part of a lot: money that bought goods, or
// goods sold for money.
struct LotConversion {
  uint64_t seq = 0;  // the conversion entry, also the new lot's id
  EntryType type = EntryType::kGoodsPurchase;
  std::string asset;       // of the new lot
  int64_t lot_amount = 0;  // the new lot's amount
  int64_t consumed = 0;    // of the traced lot, in its asset
  int64_t share = 0;       // of the new lot attributed to the traced lot
  // Invariants: sum(amount) == share, sum(source_amount) == consumed.
  std::vector<ConversionPlace> places;
};

struct LotTrace {
  LotInfo lot;
  std::vector<TraceHop> hops;       // in seq order, the donation first
  std::vector<TracePlace> held;     // still in holding accounts
  std::vector<TracePlace> reached;  // ended in sinks or returned to sources
  // Invariant: sum(held) + sum(reached) == lot.amount.
  // What the parts that went into a conversion became (one level: a
  // converted lot's own conversions are in its trace).
  std::vector<LotConversion> conversions;
};

// One lot behind an outflow.
struct TraceSource {
  uint64_t posting_index = 0;
  uint64_t lot = 0;
  std::string donor;
  bool anonymous = false;
  int64_t amount = 0;
  // A lot made by a conversion (goods bought, proceeds of a sale): its
  // `behind_count` parents — the lots that paid for it, with what each
  // consumed and its share of the whole lot (this slice is `amount` of
  // the lot's LotInfo::amount). Listed once per page, on the page's first
  // source of that lot, at most kPageItemsMax in all; GetLot lists them too.
  std::vector<LotParent> behind;
  uint64_t behind_count = 0;
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

// One store's checkout figures over a period, in one asset.
struct StoreSettlement {
  std::string store;
  std::string asset;
  uint64_t purchases = 0;
  int64_t purchase_amount = 0;
  int64_t contributions = 0;
  uint64_t refunds = 0;
  int64_t refund_amount = 0;
  int64_t reversals = 0;     // contributions reversed by the refunds
  uint64_t redemptions = 0;  // voucher redemptions at the store
  int64_t redeemed = 0;
  uint64_t redemptions_reversed = 0;  // of them (or earlier ones) taken back by corrections
  int64_t redeemed_reversed = 0;
  bool operator==(const StoreSettlement&) const = default;
};

enum class VoucherStatus {
  kActive,    // holds value and may be redeemed (until its expiry)
  kRedeemed,  // fully redeemed
  kExpired,   // swept after expiry; what was left returned to its fund
  kVoided,    // voided early; what was left returned to its fund
};
const char* VoucherStatusName(VoucherStatus status);

struct VoucherInfo {
  uint64_t voucher = 0;  // seq of the issuing entry
  std::string account;   // "voucher/<seq>"
  std::string from;      // the funding fund or project
  std::string recipient;
  std::string category;
  std::string community;
  std::string asset;
  int64_t face = 0;
  int64_t redeemed = 0;
  int64_t returned = 0;   // returned to `from` by expiry or void
  int64_t remaining = 0;  // face - redeemed - returned
  uint64_t redemptions = 0;  // not counting reversed ones
  int64_t issued_us = 0;
  int64_t expires_us = 0;
  std::vector<std::string> stores;  // empty: any store
  VoucherStatus status = VoucherStatus::kActive;
  uint64_t closed_seq = 0;  // the VOUCHER_CLOSE entry, if any
};

// Voucher totals of one group (a fund, a recipient category, or all).
struct VoucherTotals {
  std::string key;
  std::string asset;
  uint64_t issued = 0;
  int64_t issued_amount = 0;
  uint64_t redemptions = 0;
  int64_t redeemed_amount = 0;
  uint64_t fully_redeemed = 0;  // vouchers with nothing left by redemption
  uint64_t expired = 0;
  int64_t expired_amount = 0;   // returned at expiry
  uint64_t voided = 0;
  int64_t voided_amount = 0;    // returned by voiding
  uint64_t outstanding = 0;     // active vouchers still holding value
  int64_t outstanding_amount = 0;
  uint64_t overdue = 0;         // of those, past their expiry (the sweep is due)
  bool operator==(const VoucherTotals&) const = default;
};

struct VoucherReport {
  int64_t as_of_us = 0;
  std::vector<VoucherTotals> by_fund;      // key: fund or project, per asset
  std::vector<VoucherTotals> by_category;  // key: recipient category, per asset
  std::vector<VoucherTotals> total;        // key: "", per asset
};

struct ItemInfo {
  std::string item;  // "item:<code>"
  std::string name;
  std::string unit;
  uint64_t defined_seq = 0;
  int64_t in_stock = 0;  // held by all stock accounts
};

struct AidRuleInfo {
  AidRuleOp rule;
  uint64_t seq = 0;  // the AID_RULE entry that set it
};

// One cell of the aid report: aid of one type in one asset to the
// recipients of one category in one community, over a period.
struct AidCell {
  std::string category;
  std::string community;
  EntryType type = EntryType::kDisbursement;  // cash aid, voucher or goods handout
  std::string asset;
  uint64_t people = 0;   // distinct recipients
  uint64_t entries = 0;  // disbursements, vouchers or handout lines
  int64_t amount = 0;    // minor units or goods units
  bool operator==(const AidCell&) const = default;
};

struct AidReport {
  int64_t from_time_us = 0;
  int64_t to_time_us = 0;
  bool public_view = false;
  std::vector<AidCell> cells;  // by category, community, type, asset
  // Public view: cells covering fewer than kAidReportMinPeople people are
  // left out (so that no one can be singled out); this many were.
  uint64_t suppressed_cells = 0;
};

struct HoldingsPage {
  std::string account;
  uint64_t total_count = 0;
  uint64_t offset = 0;
  std::vector<Slice> slices;
};

}  // namespace warmledger

#endif  // WARMLEDGER_LEDGER_TYPES_H_

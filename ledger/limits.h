// Every bound the engine enforces, with its unit and the reason for it.
// Requests beyond a bound are rejected with kInvalidArgument (or
// kResourceExhausted for queues); nothing in the engine grows without limit.
#ifndef WARMLEDGER_LEDGER_LIMITS_H_
#define WARMLEDGER_LEDGER_LIMITS_H_

#include <cstddef>
#include <cstdint>

namespace warmledger {

// Largest amount of one posting, in minor units or goods units: 10^15 fen is
// ten trillion yuan, far above any real gift, and leaves room for 9,000 such
// amounts in one int64 sum before overflow checks are needed at all.
inline constexpr int64_t kAmountMax = 1'000'000'000'000'000;

// Idempotency ids are chosen by clients; 64 bytes holds a UUID or an order key.
inline constexpr size_t kClientIdBytesMax = 64;
// Account ids such as "fund/general" or "donor/2026-99-000001".
inline constexpr size_t kAccountIdBytesMax = 64;
// Asset codes: "CNY" or "item:" plus up to 40 characters.
inline constexpr size_t kAssetCodeBytesMax = 45;
// Order, refund and member ids chosen by shops.
inline constexpr size_t kOrderIdBytesMax = 64;
// Stores named on one voucher (empty: any store).
inline constexpr size_t kVoucherStoresMax = 64;
// A contribution rate is at most the whole sale: 10,000 basis points.
inline constexpr uint32_t kRateBpMax = 10'000;
// Display names of accounts.
inline constexpr size_t kNameBytesMax = 256;
// Recipient category and community codes (configured tables).
inline constexpr size_t kCodeBytesMax = 64;
// Units of goods items: "box", "kg", "piece".
inline constexpr size_t kUnitBytesMax = 16;
// Recipients in one handout entry: a distribution day of 700 households
// fits in one operation; each line is one posting of about 150 bytes.
inline constexpr size_t kHandoutLinesMax = 1000;
// The public aid report withholds every cell that covers fewer people, so
// that no one can be singled out.
inline constexpr uint64_t kAidReportMinPeople = 5;
// Aid rules in force at once.
inline constexpr size_t kAidRulesMax = 1000;
// Free text: memos, reasons, purposes.
inline constexpr size_t kTextBytesMax = 1024;

// Operations in one Submit call; also the largest gRPC batch.
inline constexpr size_t kBatchOpsMax = 8192;
// Operations in one linked group (all succeed or all fail).
inline constexpr size_t kLinkedGroupOpsMax = 1024;
// Operations waiting for the sequencer; beyond it Submit answers
// kResourceExhausted instead of queueing without bound.
inline constexpr size_t kQueueOpsMax = 65536;
// Operations the sequencer puts into one durable WriteBatch.
inline constexpr size_t kCommitOpsMax = 8192;

// Groups applied to the in-memory state but not yet answered: one whose
// callers are being answered, one being fsynced, one applied and waiting.
// More would only add memory and latency.
inline constexpr size_t kGroupsInFlightMax = 3;

// Operations the apply stage applies before it lets waiting readers of the
// derived state in (it releases the state lock only between linked chains).
// At a few µs per operation, a reader waits well under a millisecond.
inline constexpr size_t kApplyOpsPerStateLock = 32;

// Slices one posting may consume. One 99 Giving Day campaign (200,000 lots)
// paying one bill must fit in one entry.
inline constexpr size_t kPostingSlicesMax = 400'000;
// Bytes of one stored entry: kPostingSlicesMax slices of 16 bytes plus the
// header and body.
inline constexpr size_t kEntryBytesMax = 8 * 1024 * 1024;
static_assert(kPostingSlicesMax * 16 + 64 * 1024 <= kEntryBytesMax,
              "a maximal posting must fit in one entry");

// Items in one page of a trace, statement or holdings listing; a larger
// page limit is kInvalidArgument. (ReadEntries and ListAccounts, whose count
// is a maximum rather than a page size, cap at it instead.)
inline constexpr size_t kPageItemsMax = 10'000;
// Movements the forward trace of one lot may return; a lot that moved more
// often is answered with kResourceExhausted naming the lot.
inline constexpr size_t kTraceHopsMax = 100'000;

// Entries between two balance snapshots (docs/format.md). Writing one costs
// about 40 bytes per account on the apply stage; every 100,000 entries keeps
// that well under 1% of the write path.
inline constexpr uint64_t kSnapshotEveryEntries = 100'000;

// Callers waiting at once for a checkpoint to cover their entry (donors
// asking for a receipt); more are answered kUnavailable at once.
inline constexpr size_t kCheckpointWaitersMax = 65536;

static_assert(kLinkedGroupOpsMax <= kBatchOpsMax);
static_assert(kBatchOpsMax <= kQueueOpsMax);
static_assert(kCommitOpsMax >= kBatchOpsMax,
              "one Submit call must fit in one group commit");

}  // namespace warmledger

#endif  // WARMLEDGER_LEDGER_LIMITS_H_

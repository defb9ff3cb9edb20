// Seeded simulation of the ledger engine.
//
// For each seed a random stream of operations — valid and invalid, standalone
// and in linked chains, fresh and retried — is submitted in batches of 1–200,
// and after every batch the ledger is held against a model written again from
// docs/rules.md and docs/format.md, not from the engine's code:
//
//   generate op ──► predict its outcome ──► Submit ──► compare result
//                   (ok / must fail with                  │
//                    these codes / cannot                 ▼
//                    tell in advance)              apply each new entry to the
//                                                  model: header, body, policy,
//                                                  postings and their fifo/v1 or
//                                                  reverse/v1 slices
//                                                         │
//                                                         ▼
//   after every batch: balances, holdings (slice by slice), the forward
//   trace of every lot the batch moved (or whose conversions' lots it
//   moved), every new entry's backward trace, conservation per asset, no
//   holding account below zero, the catalogue, VerifyChain; every few
//   batches the forward trace of every lot and RebuildStateDigest() ==
//   StateDigest(); at the end donor statements and a reopen that must
//   reproduce the same state.
//
// The generator knows, per batch, an upper bound of what may leave and what
// may arrive in each account, so it can say for certain that an operation
// succeeds or fails, and says "unknown" otherwise. Inside a linked chain a
// prediction assumes the earlier operations of the chain succeeded (if one
// does not, the whole chain fails anyway).
//
// Goods (docs/rules.md, "Goods") run in the same stream: a catalogue of
// items (and attempts to use an item that is not in it), stocks, suppliers
// and buyers, gifts in kind with and without expiry, purchases paid from
// funds and projects, handouts to one or many recipients, write-offs with
// and without a lot, and sales whose proceeds enter a fund. The model keeps
// every stock's slices with the empty slices that fefo/v1 leaves in place,
// and each lot's expiry, so it predicts fefo/v1 picks slice by slice; it
// derives each converted lot's parents, their shares (largest remainder,
// written again here) and the places of every conversion in a forward
// trace. Conservation holds per asset: money and each item.
//
// A failure names the seed (SCOPED_TRACE) and the batch; the stream depends
// only on the seed, so rerunning the test reproduces it. The checks do not
// draw from the stream's random generator, so adding a check does not change
// the stream.
#include <stdlib.h>

#include <algorithm>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <functional>
#include <initializer_list>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <system_error>
#include <tuple>
#include <utility>
#include <variant>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "gtest/gtest.h"
#include "ledger/clock.h"
#include "ledger/ledger.h"
#include "ledger/limits.h"
#include "ledger/temp_dir_testing.h"
#include "ledger/types.h"

namespace warmledger {

// Readable gtest output for slices (found by argument-dependent lookup).
static void PrintTo(const Slice& s, std::ostream* os) { *os << s.lot << ":" << s.amount; }

namespace {

using ::absl::StatusCode;

// ---- Size of the run. ----

#ifdef WARMLEDGER_SANITIZED
constexpr int64_t kStreamOpsPerSeed = 500;
#else
constexpr int64_t kStreamOpsPerSeed = 4000;
#endif
constexpr int64_t kTestBatchOpsMax = 200;
// RebuildStateDigest replays the whole ledger; every few batches is enough.
constexpr int kDigestEveryBatches = 5;

constexpr char kCny[] = "CNY";
// Donated into funds from the start (as an asset, not a catalogued item);
// the stream may add it to the catalogue later.
constexpr char kRice[] = "item:rice";
// Catalogued by the bootstrap batch. Oil batches mostly expire, blankets
// mostly do not.
constexpr char kOil[] = "item:oil";
constexpr char kBlanket[] = "item:blanket";
// Items the stream may add to the catalogue at some point.
constexpr const char* kLaterItems[] = {kRice, "item:soap"};
// Never catalogued: every goods entry naming it must fail.
constexpr char kUnlisted[] = "item:unlisted";
constexpr int64_t kDayUs = 86'400'000'000;
// Above any balance the stream can build (at most ~10^9 fen), below kAmountMax.
constexpr int64_t kFarBeyondAnyBalance = 1'000'000'000'000;

template <class... Ts>
struct Overloaded : Ts... {
  using Ts::operator()...;
};
template <class... Ts>
Overloaded(Ts...) -> Overloaded<Ts...>;

// ---- The rules, written again from docs/rules.md. ----

bool IsValidClientId(const std::string& id) {
  if (id.empty() || id.size() > kClientIdBytesMax) return false;
  for (unsigned char c : id) {
    if (c < 0x21 || c > 0x7e) return false;
  }
  return true;
}

bool IsValidAccountId(const std::string& id) {
  if (id.empty() || id.size() > kAccountIdBytesMax) return false;
  for (char c : id) {
    const bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                    (c >= '0' && c <= '9') || c == '.' || c == '_' || c == ':' ||
                    c == '/' || c == '-';
    if (!ok) return false;
  }
  return true;
}

bool IsValidAssetCode(const std::string& code) {
  if (code.size() == 3) {
    return std::all_of(code.begin(), code.end(), [](char c) { return c >= 'A' && c <= 'Z'; });
  }
  const std::string prefix = "item:";
  if (code.size() <= prefix.size() || code.size() > prefix.size() + 40 ||
      code.compare(0, prefix.size(), prefix) != 0) {
    return false;
  }
  return std::all_of(code.begin() + prefix.size(), code.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
  });
}

bool IsValidAmount(int64_t amount) { return amount >= 1 && amount <= kAmountMax; }

bool IsMoneyCode(const std::string& code) { return IsValidAssetCode(code) && code.size() == 3; }
bool IsGoodsCode(const std::string& code) { return IsValidAssetCode(code) && code.size() > 3; }

// An item's unit: 1..kUnitBytesMax lower-case letters.
bool IsValidUnit(const std::string& unit) {
  return !unit.empty() && unit.size() <= kUnitBytesMax &&
         std::all_of(unit.begin(), unit.end(), [](char c) { return c >= 'a' && c <= 'z'; });
}

// A batch's grade: empty, or a code of account-id characters.
bool IsValidGrade(const std::string& grade) {
  return grade.empty() || (grade.size() <= kCodeBytesMax && IsValidAccountId(grade));
}

bool HoldingKind(AccountKind k) {
  return k == AccountKind::kFund || k == AccountKind::kProject || k == AccountKind::kVoucher ||
         k == AccountKind::kStock;
}
bool SourceKind(AccountKind k) { return k == AccountKind::kDonor || k == AccountKind::kMerchant; }
bool SinkKind(AccountKind k) {
  return k == AccountKind::kRecipient || k == AccountKind::kSupplier || k == AccountKind::kExpense;
}
// Where donations go and between which allocations move.
// "voucher/" followed by a decimal number without leading zeros.
bool IsVoucherAccountId(const std::string& id) {
  constexpr std::string_view kPrefix = "voucher/";
  if (id.size() <= kPrefix.size() || id.compare(0, kPrefix.size(), kPrefix) != 0) return false;
  const std::string digits = id.substr(kPrefix.size());
  return digits.size() <= 19 && digits[0] != '0' &&
         std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; });
}
bool PoolKind(AccountKind k) { return k == AccountKind::kFund || k == AccountKind::kProject; }

// Builders that set only what the test cares about, so that fields added to
// these structs later keep their defaults.
OpenAccountOp MakeOpen(std::string account, AccountKind kind, std::string asset, uint32_t flags,
                       std::string name) {
  OpenAccountOp o;
  o.account = std::move(account);
  o.kind = kind;
  o.asset = std::move(asset);
  o.flags = flags;
  o.name = std::move(name);
  return o;
}
CloseAccountOp MakeClose(std::string account, std::string reason) {
  CloseAccountOp o;
  o.account = std::move(account);
  o.reason = std::move(reason);
  return o;
}
DonationOp MakeDonation(std::string donor, std::string to, std::string asset, int64_t amount) {
  DonationOp o;
  o.donor = std::move(donor);
  o.to = std::move(to);
  o.asset = std::move(asset);
  o.amount = amount;
  return o;
}
AllocationOp MakeAllocation(std::string from, std::string to, std::string asset, int64_t amount) {
  AllocationOp o;
  o.from = std::move(from);
  o.to = std::move(to);
  o.asset = std::move(asset);
  o.amount = amount;
  return o;
}
DisbursementOp MakeDisbursement(std::string from, std::string to, std::string asset, int64_t amount) {
  DisbursementOp o;
  o.from = std::move(from);
  o.to = std::move(to);
  o.asset = std::move(asset);
  o.amount = amount;
  return o;
}
CorrectionOp MakeReverse(uint64_t ref_seq, std::string reason) {
  CorrectionOp o;
  o.ref_seq = ref_seq;
  o.mode = CorrectionMode::kReverse;
  o.reason = std::move(reason);
  return o;
}
CorrectionOp MakeAdjust(uint64_t ref_seq, std::string reason, std::string from, std::string to,
                        std::string asset, int64_t amount) {
  CorrectionOp o;
  o.ref_seq = ref_seq;
  o.mode = CorrectionMode::kAdjust;
  o.reason = std::move(reason);
  o.from = std::move(from);
  o.to = std::move(to);
  o.asset = std::move(asset);
  o.amount = amount;
  return o;
}
Posting MakePosting(std::string from, std::string to, std::string asset, int64_t amount,
                    std::vector<Slice> slices) {
  Posting p;
  p.from = std::move(from);
  p.to = std::move(to);
  p.asset = std::move(asset);
  p.amount = amount;
  p.slices = std::move(slices);
  return p;
}

// Our own names: the stream must not depend on the engine's spelling.
std::string KindPrefix(AccountKind kind) {
  switch (kind) {
    case AccountKind::kDonor: return "donor";
    case AccountKind::kFund: return "fund";
    case AccountKind::kProject: return "project";
    case AccountKind::kVoucher: return "voucher";
    case AccountKind::kStock: return "stock";
    case AccountKind::kRecipient: return "recipient";
    case AccountKind::kMerchant: return "merchant";
    case AccountKind::kSupplier: return "supplier";
    case AccountKind::kExpense: return "expense";
  }
  return "unknown";
}

std::string TypeLabel(const OpBody& body) {
  return std::visit(Overloaded{
                        [](const OpenAccountOp&) -> std::string { return "open"; },
                        [](const CloseAccountOp&) -> std::string { return "close"; },
                        [](const DonationOp&) -> std::string { return "donation"; },
                        [](const AllocationOp&) -> std::string { return "allocation"; },
                        [](const DisbursementOp&) -> std::string { return "disbursement"; },
                        [](const CorrectionOp& c) -> std::string {
                          return c.mode == CorrectionMode::kReverse ? "reverse" : "adjust";
                        },
                        [](const ItemOp&) -> std::string { return "item"; },
                        [](const GoodsGiftOp&) -> std::string { return "goods_gift"; },
                        [](const GoodsPurchaseOp&) -> std::string { return "goods_purchase"; },
                        [](const HandoutOp&) -> std::string { return "handout"; },
                        [](const WriteOffOp& w) -> std::string {
                          return w.lot == 0 ? "write_off" : "write_off_lot";
                        },
                        [](const GoodsSaleOp&) -> std::string { return "goods_sale"; },
                        // Checkout and voucher types are covered by checkout_test.
                        [](const auto& other) -> std::string {
                          return EntryTypeName(TypeOf(OpBody(other)));
                        },
                    },
                    body);
}

std::string Describe(const Operation& op) {
  std::ostringstream out;
  out << "[" << op.client_id << (op.linked ? ", linked" : "") << "] ";
  std::visit(Overloaded{
                 [&](const OpenAccountOp& o) {
                   out << "open " << o.account << " kind=" << int{static_cast<uint8_t>(o.kind)}
                       << " asset='" << o.asset << "' flags=" << o.flags;
                 },
                 [&](const CloseAccountOp& o) {
                   out << "close " << o.account << " reason='" << o.reason << "'";
                 },
                 [&](const DonationOp& o) {
                   out << "donation " << o.donor << " -> " << o.to << " " << o.amount << " '"
                       << o.asset << "' channel=" << int{static_cast<uint8_t>(o.channel)}
                       << " flags=" << o.flags << " memo_bytes=" << o.memo.size();
                 },
                 [&](const AllocationOp& o) {
                   out << "allocation " << o.from << " -> " << o.to << " " << o.amount << " '"
                       << o.asset << "'";
                 },
                 [&](const DisbursementOp& o) {
                   out << "disbursement " << o.from << " -> " << o.to << " " << o.amount << " '"
                       << o.asset << "'";
                 },
                 [&](const CorrectionOp& o) {
                   out << "correction mode=" << int{static_cast<uint8_t>(o.mode)}
                       << " ref=" << o.ref_seq << " " << o.from << " -> " << o.to << " "
                       << o.amount << " '" << o.asset << "' reason='" << o.reason << "'";
                 },
                 [&](const ItemOp& o) {
                   out << "item " << o.item << " name_bytes=" << o.name.size() << " unit='" << o.unit
                       << "'";
                 },
                 [&](const GoodsGiftOp& o) {
                   out << "goods_gift " << o.donor << " -> " << o.to << " " << o.quantity << " '"
                       << o.item << "' expires=" << o.expires_us << " grade='" << o.grade
                       << "' value=" << o.value << " '" << o.value_asset << "' flags=" << o.flags;
                 },
                 [&](const GoodsPurchaseOp& o) {
                   out << "goods_purchase " << o.from << " -> " << o.supplier << " " << o.price << " '"
                       << o.asset << "' for " << o.quantity << " '" << o.item << "' -> " << o.to
                       << " expires=" << o.expires_us;
                 },
                 [&](const HandoutOp& o) {
                   out << "handout " << o.from << " '" << o.item << "' to";
                   for (const HandoutLine& l : o.lines) out << " " << l.recipient << ":" << l.quantity;
                 },
                 [&](const WriteOffOp& o) {
                   out << "write_off " << o.from << " -> " << o.to << " " << o.quantity << " '" << o.item
                       << "' lot=" << o.lot << " reason='" << o.reason << "'";
                 },
                 [&](const GoodsSaleOp& o) {
                   out << "goods_sale " << o.from << " -> " << o.buyer << " " << o.quantity << " '"
                       << o.item << "' for " << o.proceeds << " '" << o.asset << "' -> " << o.to;
                 },
                 [&](const auto&) { ADD_FAILURE() << "the stream has no checkout operations"; },
             },
             op.body);
  return out.str();
}

std::string Describe(const std::vector<Posting>& postings) {
  std::ostringstream out;
  for (const Posting& p : postings) {
    out << "{" << p.from << " -> " << p.to << " " << p.amount << " " << p.asset << " [";
    for (const Slice& s : p.slices) out << " " << s.lot << ":" << s.amount;
    out << " ]} ";
  }
  return out.str();
}

// ---- Predictions. ----

enum class Expect { kOk, kDuplicate, kFail, kUnknown };

struct Prediction {
  Expect expect = Expect::kOk;
  // kFail and kUnknown: the codes a failure may carry; empty means any code
  // other than ABORTED.
  std::set<StatusCode> codes;
  uint64_t duplicate_seq = 0;  // kDuplicate of a committed entry
  int64_t duplicate_of = -1;   // kDuplicate of an earlier op of the same batch

  static Prediction Ok() { return {}; }
  static Prediction Fail(std::set<StatusCode> codes) {
    Prediction p;
    p.expect = Expect::kFail;
    p.codes = std::move(codes);
    return p;
  }
  static Prediction Unknown(std::set<StatusCode> codes) {
    Prediction p;
    p.expect = Expect::kUnknown;
    p.codes = std::move(codes);
    return p;
  }
  static Prediction DuplicateOfSeq(uint64_t seq) {
    Prediction p;
    p.expect = Expect::kDuplicate;
    p.duplicate_seq = seq;
    return p;
  }
  static Prediction DuplicateOfOp(int64_t index) {
    Prediction p;
    p.expect = Expect::kDuplicate;
    p.duplicate_of = index;
    return p;
  }

  bool Allows(StatusCode code) const {
    return code != StatusCode::kAborted && (codes.empty() || codes.count(code) > 0);
  }
  // A defect that needs no state: the request can never succeed.
  bool IsStateless() const {
    return expect == Expect::kFail && codes == std::set<StatusCode>{StatusCode::kInvalidArgument};
  }
};

std::string ToString(const Prediction& p) {
  std::ostringstream out;
  switch (p.expect) {
    case Expect::kOk:
      return "ok";
    case Expect::kDuplicate:
      out << "duplicate of " << (p.duplicate_of >= 0 ? "op #" : "seq ")
          << (p.duplicate_of >= 0 ? static_cast<uint64_t>(p.duplicate_of) : p.duplicate_seq);
      return out.str();
    case Expect::kFail:
      out << "fail";
      break;
    case Expect::kUnknown:
      out << "unknown";
      break;
  }
  out << " {";
  for (StatusCode c : p.codes) out << " " << absl::StatusCodeToString(c);
  out << (p.codes.empty() ? " any" : "") << " }";
  return out.str();
}

// Collects what is certainly or possibly wrong with one operation.
class Verdict {
 public:
  // A defect of the request itself: the request can never succeed. Checked
  // before any state, so it decides the code.
  void Invalid() { invalid_ = true; }
  void Fails(StatusCode code) {
    fails_ = true;
    codes_.insert(code);
  }
  void FailsWithOneOf(std::initializer_list<StatusCode> codes) {
    fails_ = true;
    codes_.insert(codes.begin(), codes.end());
  }
  void MayFail(std::initializer_list<StatusCode> codes) {
    maybe_ = true;
    codes_.insert(codes.begin(), codes.end());
  }
  // A defect of the request that the engine finds only after some checks of
  // state: a state check before it that may fail decides the code instead.
  // Predictors that call it follow the engine's order of checks and stop at
  // the first certain failure (Decided()).
  void InvalidLate() {
    if (maybe_ || fails_) {
      Fails(StatusCode::kInvalidArgument);
    } else {
      invalid_ = true;
    }
  }
  // Whether a check so far certainly fails: later checks cannot decide the code.
  bool Decided() const { return invalid_ || fails_; }
  Prediction Get() const {
    if (invalid_) return Prediction::Fail({StatusCode::kInvalidArgument});
    if (fails_) return Prediction::Fail(codes_);
    if (maybe_) return Prediction::Unknown(codes_);
    return Prediction::Ok();
  }

 private:
  bool invalid_ = false;
  bool fails_ = false;
  bool maybe_ = false;
  std::set<StatusCode> codes_;
};

// Reproducible across standard libraries: only mt19937_64's raw output, whose
// sequence the standard fixes, is used.
class Rng {
 public:
  explicit Rng(uint64_t seed) : gen_(seed) {}
  // Uniform in [lo, hi]; hi >= lo.
  int64_t Uniform(int64_t lo, int64_t hi) {
    const uint64_t span = static_cast<uint64_t>(hi - lo) + 1;
    return lo + static_cast<int64_t>(span == 0 ? gen_() : gen_() % span);
  }
  size_t Index(size_t size) { return static_cast<size_t>(Uniform(0, static_cast<int64_t>(size) - 1)); }
  bool Chance(double p) { return static_cast<double>(gen_() >> 11) * 0x1.0p-53 < p; }

 private:
  std::mt19937_64 gen_;
};

// ---- The model of the committed ledger. ----

struct ModelAccount {
  std::string id;
  AccountKind kind = AccountKind::kFund;
  std::string asset;
  uint32_t flags = 0;
  std::string name;
  bool restricted = false;  // money may not be allocated out of it
  bool closed = false;
  uint64_t opened_seq = 0;
};

struct ModelEntry {
  Operation op;
  EntryType type = EntryType::kOpenAccount;
  int64_t time_us = 0;
  std::vector<Posting> postings;  // as the model computed them
  bool reversed = false;
};

// A conversion (goods purchase or sale) that consumed part of a lot.
struct ModelConversion {
  uint64_t seq = 0;       // the conversion entry, also the new lot
  int64_t consumed = 0;   // of the consumed lot, in its asset
  int64_t share = 0;      // of the new lot attributed to it
};

struct ModelLot {
  LotInfo info;  // with expires_us (fefo/v1) and, for a converted lot, parents
  std::vector<TraceHop> hops;
  std::map<std::string, int64_t> reached;  // sinks and sources where it ended
  std::vector<ModelConversion> conversions;  // in seq order
};

struct PlannedOp {
  Operation op;
  Prediction prediction;
  std::string label;  // what the generator meant, for failure messages
  bool standalone = true;
};

// A standalone operation or a linked chain: ops [begin, end) of the batch.
struct Group {
  size_t begin = 0;
  size_t end = 0;
  bool open_ended = false;  // the last op is linked: the chain is never closed
};

// What the generator knows about the batch it is building.
struct Batch {
  std::vector<PlannedOp> ops;
  std::vector<Group> groups;
  // Upper bounds of what earlier ops of the batch may take from / bring to
  // each account.
  std::map<std::string, int64_t> debit_max;
  std::map<std::string, int64_t> credit_max;
  // Inside a chain: what earlier ops of the chain bring (they succeed, or the
  // chain fails anyway), and the accounts they open.
  bool in_chain = false;
  size_t chain_begin = 0;
  std::map<std::string, int64_t> chain_credit;
  std::map<std::string, ModelAccount> chain_new;
  // The time every entry of the batch gets: the clock, or the head's time
  // if the clock went back (entry times never decrease).
  int64_t now_us = 0;
  // Items an ITEM op earlier in the batch defines: true if certainly.
  std::map<std::string, bool> defining;
  // Items defined by earlier ops of the chain.
  std::set<std::string> chain_items;
  // Accounts opened earlier in the batch (their ops may have failed).
  std::set<std::string> opened;
  // Accounts a close earlier in the batch was aimed at: true if certainly closed.
  std::map<std::string, bool> closing;
  // Entries a reversal earlier in the batch was aimed at: true if certainly reversed.
  std::map<uint64_t, bool> reversing;
  std::map<std::string, size_t> client_index;
};

int64_t Get(const std::map<std::string, int64_t>& m, const std::string& key) {
  auto it = m.find(key);
  return it == m.end() ? 0 : it->second;
}

// "Adjacent slices of the same lot in an account are merged"; a slice
// arriving right behind an empty slice of its own lot refills it.
void AppendSlice(std::deque<Slice>& slices, const Slice& s) {
  if (!slices.empty() && slices.back().lot == s.lot) {
    slices.back().amount += s.amount;
  } else {
    slices.push_back(s);
  }
}

// fifo/v1: oldest first; a partly needed slice is split and its remainder
// stays at the head. An empty slice (left by fefo/v1 or lot/v1) is passed
// over, and dropped when it is at the head while more is needed. Returns the
// consumed slices; false if there was not enough.
bool TakeFifo(std::deque<Slice>& slices, int64_t amount, std::vector<Slice>* taken) {
  while (amount > 0 && !slices.empty()) {
    Slice& head = slices.front();
    if (head.amount == 0) {
      slices.pop_front();
      continue;
    }
    const int64_t part = std::min(amount, head.amount);
    taken->push_back({head.lot, part});
    head.amount -= part;
    amount -= part;
    if (head.amount == 0) slices.pop_front();
  }
  return amount == 0;
}

// reverse/v1: takes the slices `wanted` back from the account, each lot's
// slices in arrival order, and rebuilds the list without empty slices,
// merging neighbours of one lot. False (and the list unchanged) if the
// account no longer holds enough of a lot.
bool TakeLots(std::deque<Slice>& slices, const std::vector<Slice>& wanted) {
  std::map<uint64_t, int64_t> need;
  for (const Slice& s : wanted) need[s.lot] += s.amount;
  std::deque<Slice> kept;
  for (Slice s : slices) {
    if (auto it = need.find(s.lot); it != need.end()) {
      const int64_t part = std::min(it->second, s.amount);
      it->second -= part;
      s.amount -= part;
    }
    if (s.amount > 0) AppendSlice(kept, s);
  }
  for (const auto& [lot, amount] : need) {
    if (amount > 0) return false;
  }
  slices.swap(kept);
  return true;
}

// fefo/v1: the non-empty slices of a stock by their lot's expiry (a lot
// that does not expire after every lot that does), ties in arrival order.
std::vector<size_t> FefoOrder(const std::deque<Slice>& slices,
                              const std::function<int64_t(uint64_t)>& expires_of) {
  std::vector<std::pair<int64_t, size_t>> keyed;
  for (size_t i = 0; i < slices.size(); ++i) {
    if (slices[i].amount == 0) continue;
    const int64_t expires = expires_of(slices[i].lot);
    keyed.emplace_back(expires == 0 ? INT64_MAX : expires, i);
  }
  std::stable_sort(keyed.begin(), keyed.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<size_t> order;
  for (const auto& [expires, i] : keyed) order.push_back(i);
  return order;
}

// Takes `amount` from the slices at `order[*cursor]`, `order[*cursor + 1]`...
// (shared by the postings of one entry). An emptied slice stays in place,
// empty; consecutive takes of one lot merge within the posting. False if
// the slices in `order` did not hold enough.
bool TakeInOrder(std::deque<Slice>& slices, const std::vector<size_t>& order, size_t* cursor,
                 int64_t amount, std::vector<Slice>* taken) {
  while (amount > 0 && *cursor < order.size()) {
    Slice& s = slices[order[*cursor]];
    const int64_t part = std::min(amount, s.amount);
    if (!taken->empty() && taken->back().lot == s.lot) {
      taken->back().amount += part;
    } else {
      taken->push_back({s.lot, part});
    }
    s.amount -= part;
    amount -= part;
    if (s.amount == 0) ++*cursor;
  }
  return amount == 0;
}

// Empty slices at the head of a stock are dropped after a fefo/v1 or lot/v1 take.
void PopEmptyFront(std::deque<Slice>& slices) {
  while (!slices.empty() && slices.front().amount == 0) slices.pop_front();
}

std::vector<Slice> LiveSlices(const std::deque<Slice>& slices) {
  std::vector<Slice> live;
  for (const Slice& s : slices) {
    if (s.amount != 0) live.push_back(s);
  }
  return live;
}

// The largest remainder method (docs/format.md, "Conversions and
// apportionment"), written again: floor(total × w_i / W) each, and the units
// still missing one each to the largest remainders, ties to the earlier index.
std::vector<int64_t> LargestRemainder(int64_t total, const std::vector<int64_t>& weights) {
  std::vector<int64_t> parts(weights.size(), 0);
  __int128 whole = 0;
  for (int64_t w : weights) whole += w;
  if (whole == 0) return parts;
  std::vector<std::pair<__int128, size_t>> remainders;
  int64_t given = 0;
  for (size_t i = 0; i < weights.size(); ++i) {
    const __int128 product = static_cast<__int128>(total) * weights[i];
    parts[i] = static_cast<int64_t>(product / whole);
    given += parts[i];
    remainders.emplace_back(product % whole, i);
  }
  std::stable_sort(remainders.begin(), remainders.end(),
                   [](const auto& a, const auto& b) { return a.first > b.first; });
  for (int64_t k = 0; k < total - given; ++k) ++parts[remainders[static_cast<size_t>(k)].second];
  return parts;
}

class Simulation {
 public:
  Simulation(uint64_t seed, std::string path)
      : seed_(seed), path_(std::move(path)), rng_(seed), check_rng_(seed ^ 0x5eed5eedULL) {}

  void Run(int64_t stream_ops) {
    OpenLedger();
    if (::testing::Test::HasFailure()) return;
    CheckEmpty();
    Bootstrap();
    if (::testing::Test::HasFailure()) return;
    while (submitted_ops_ < stream_ops) {
      ++batch_index_;
      SCOPED_TRACE("batch " + std::to_string(batch_index_) + " (head seq " +
                   std::to_string(entries_.size()) + ")");
      RunBatch();
      if (::testing::Test::HasFailure()) return;
    }
    SCOPED_TRACE("final checks after " + std::to_string(batch_index_) + " batches");
    FinalChecks();
  }

 private:
  // ---- Ledger lifetime. ----

  void OpenLedger() {
    LedgerOptions options;
    options.path = path_;
    options.clock = &clock_;
    auto ledger = Ledger::Open(options);
    ASSERT_TRUE(ledger.ok()) << ledger.status();
    ledger_ = std::move(*ledger);
  }

  void CheckEmpty() {
    const LedgerHead head = ledger_->Head();
    EXPECT_EQ(head.seq, 0u);
    EXPECT_EQ(head.hash, Hash{});
    EXPECT_TRUE(ledger_->VerifyChain().ok());
    auto rebuilt = ledger_->RebuildStateDigest();
    ASSERT_TRUE(rebuilt.ok()) << rebuilt.status();
    EXPECT_EQ(*rebuilt, ledger_->StateDigest());
  }

  // ---- Building a batch. ----

  std::string NewClientId() { return "s" + std::to_string(seed_) + "-op" + std::to_string(next_client_++); }
  std::string NewAccountId(const std::string& prefix) {
    return prefix + "/s" + std::to_string(seed_) + "-" + std::to_string(next_account_++);
  }
  Operation MakeOp(OpBody body) {
    Operation op;
    op.client_id = NewClientId();
    op.body = std::move(body);
    return op;
  }

  int64_t Balance(const std::string& id, const std::string& asset) const {
    auto it = balances_.find(id);
    return it == balances_.end() ? 0 : Get(it->second, asset);
  }
  // Least the account certainly holds at this point of the batch.
  int64_t Lo(const std::string& id, const std::string& asset) const {
    int64_t lo = Balance(id, asset) - Get(b_.debit_max, id);
    if (b_.in_chain) lo += Get(b_.chain_credit, id);
    return lo;
  }
  // Most the account may hold at this point of the batch.
  int64_t Hi(const std::string& id, const std::string& asset) const {
    return Balance(id, asset) + Get(b_.credit_max, id);
  }

  enum class Presence { kOpen, kClosed, kMissing, kUncertain };
  struct View {
    Presence presence;
    const ModelAccount* account;
  };
  View Lookup(const std::string& id) const {
    if (b_.in_chain) {
      auto it = b_.chain_new.find(id);
      if (it != b_.chain_new.end()) return {Presence::kOpen, &it->second};
    }
    if (b_.opened.count(id) > 0) return {Presence::kUncertain, nullptr};
    auto it = accounts_.find(id);
    if (it == accounts_.end()) return {Presence::kMissing, nullptr};
    if (it->second.closed) return {Presence::kClosed, &it->second};
    auto closing = b_.closing.find(id);
    if (closing != b_.closing.end()) {
      return {closing->second ? Presence::kClosed : Presence::kUncertain, &it->second};
    }
    return {Presence::kOpen, &it->second};
  }
  // The account an op names; records why the op fails if it is not open.
  const ModelAccount* Need(Verdict& v, const std::string& id) const {
    const View view = Lookup(id);
    switch (view.presence) {
      case Presence::kOpen:
        break;
      case Presence::kClosed:
        v.Fails(StatusCode::kFailedPrecondition);
        break;
      case Presence::kMissing:
        v.Fails(StatusCode::kNotFound);
        break;
      case Presence::kUncertain:
        v.MayFail({StatusCode::kNotFound, StatusCode::kFailedPrecondition});
        break;
    }
    return view.account;
  }
  void CheckFunds(Verdict& v, const ModelAccount* from, const std::string& asset,
                  int64_t amount) const {
    if (from == nullptr || !HoldingKind(from->kind) || from->asset != asset ||
        !IsValidAmount(amount)) {
      return;  // fails for another reason already
    }
    if (amount > Hi(from->id, asset)) {
      v.Fails(StatusCode::kFailedPrecondition);
    } else if (amount > Lo(from->id, asset)) {
      v.MayFail({StatusCode::kFailedPrecondition});
    }
  }
  const ModelEntry* NeedEntry(Verdict& v, uint64_t seq) const {
    if (seq >= 1 && seq <= entries_.size()) return &entries_[seq - 1];
    if (seq == 0) {
      v.FailsWithOneOf({StatusCode::kInvalidArgument, StatusCode::kNotFound});
    } else if (seq > entries_.size() + kBatchOpsMax) {
      v.Fails(StatusCode::kNotFound);
    } else {
      v.MayFail({});  // may have been created earlier in this batch
    }
    return nullptr;
  }
  static void CheckText(Verdict& v, const std::string& text, size_t bytes_max, bool required) {
    if (text.size() > bytes_max || (required && text.empty())) v.Invalid();
  }
  static void CheckId(Verdict& v, const std::string& id) {
    if (!IsValidAccountId(id)) v.Invalid();
  }
  static void CheckAsset(Verdict& v, const std::string& asset) {
    if (!IsValidAssetCode(asset)) v.Invalid();
  }
  static void CheckAmount(Verdict& v, int64_t amount) {
    if (!IsValidAmount(amount)) v.Invalid();
  }
  // The asset an external account accepts: its own, or any if it names none.
  static bool Accepts(const ModelAccount& a, const std::string& asset) {
    return a.asset.empty() || a.asset == asset;
  }

  Prediction Predict(const Operation& op) const {
    if (!IsValidClientId(op.client_id)) return Prediction::Fail({StatusCode::kInvalidArgument});
    if (auto it = client_seq_.find(op.client_id); it != client_seq_.end()) {
      if (entries_[it->second - 1].op.body == op.body) return Prediction::DuplicateOfSeq(it->second);
      return Prediction::Fail({StatusCode::kAlreadyExists});
    }
    if (auto it = b_.client_index.find(op.client_id); it != b_.client_index.end()) {
      const PlannedOp& prior = b_.ops[it->second];
      if (prior.standalone && prior.prediction.expect == Expect::kOk) {
        if (prior.op.body == op.body) return Prediction::DuplicateOfOp(static_cast<int64_t>(it->second));
        return Prediction::Fail({StatusCode::kAlreadyExists});
      }
      return Prediction::Unknown({});
    }
    Verdict v;
    std::visit(Overloaded{
                   [&](const OpenAccountOp& o) { PredictOpen(v, o); },
                   [&](const CloseAccountOp& o) { PredictClose(v, o); },
                   [&](const DonationOp& o) { PredictDonation(v, o); },
                   [&](const AllocationOp& o) { PredictAllocation(v, o); },
                   [&](const DisbursementOp& o) { PredictDisbursement(v, o); },
                   [&](const CorrectionOp& o) { PredictCorrection(v, o); },
                   [&](const ItemOp& o) { PredictItem(v, o); },
                   [&](const GoodsGiftOp& o) { PredictGoodsGift(v, o); },
                   [&](const GoodsPurchaseOp& o) { PredictGoodsPurchase(v, o); },
                   [&](const HandoutOp& o) { PredictHandout(v, o); },
                   [&](const WriteOffOp& o) { PredictWriteOff(v, o); },
                   [&](const GoodsSaleOp& o) { PredictGoodsSale(v, o); },
                   [&](const auto&) { ADD_FAILURE() << "the stream has no checkout operations"; },
               },
               op.body);
    return v.Get();
  }

  void PredictOpen(Verdict& v, const OpenAccountOp& o) const {
    CheckId(v, o.account);
    const uint8_t kind = static_cast<uint8_t>(o.kind);
    if (kind < 1 || kind > kAccountKindMax) v.Invalid();
    // Voucher accounts ("voucher/<seq>") are opened only by a voucher issue.
    if (o.kind == AccountKind::kVoucher || IsVoucherAccountId(o.account)) v.Invalid();
    if (HoldingKind(o.kind) && o.asset.empty()) v.Invalid();
    if (!o.asset.empty()) CheckAsset(v, o.asset);
    if ((o.flags & ~kAccountFlagsKnown) != 0) v.Invalid();
    if ((o.flags & kAccountRestricted) != 0 && o.kind != AccountKind::kFund) v.Invalid();
    CheckText(v, o.name, kNameBytesMax, /*required=*/false);
    if (accounts_.count(o.account) > 0 || (b_.in_chain && b_.chain_new.count(o.account) > 0)) {
      v.Fails(StatusCode::kAlreadyExists);
    } else if (b_.opened.count(o.account) > 0) {
      v.MayFail({StatusCode::kAlreadyExists});
    }
  }

  void PredictClose(Verdict& v, const CloseAccountOp& o) const {
    CheckId(v, o.account);
    CheckText(v, o.reason, kTextBytesMax, /*required=*/true);
    const ModelAccount* a = Need(v, o.account);
    if (a == nullptr || !HoldingKind(a->kind)) return;
    if (Lo(a->id, a->asset) > 0) {
      v.Fails(StatusCode::kFailedPrecondition);
    } else if (Hi(a->id, a->asset) > 0) {
      v.MayFail({StatusCode::kFailedPrecondition});
    }
  }

  void PredictDonation(Verdict& v, const DonationOp& o) const {
    CheckId(v, o.donor);
    CheckId(v, o.to);
    CheckAsset(v, o.asset);
    CheckAmount(v, o.amount);
    if (static_cast<uint8_t>(o.channel) > kDonationChannelMax) v.Invalid();
    if ((o.flags & ~kDonationFlagsKnown) != 0) v.Invalid();
    CheckText(v, o.memo, kTextBytesMax, /*required=*/false);
    const ModelAccount* donor = Need(v, o.donor);
    const ModelAccount* to = Need(v, o.to);
    if (donor != nullptr && (!SourceKind(donor->kind) || !Accepts(*donor, o.asset))) {
      v.Fails(StatusCode::kFailedPrecondition);
    }
    // "to is a fund, a project, or a stock (a gift in kind)".
    if (to != nullptr &&
        (!(PoolKind(to->kind) || to->kind == AccountKind::kStock) || to->asset != o.asset)) {
      v.Fails(StatusCode::kFailedPrecondition);
    }
  }

  void PredictAllocation(Verdict& v, const AllocationOp& o) const {
    CheckId(v, o.from);
    CheckId(v, o.to);
    CheckAsset(v, o.asset);
    CheckAmount(v, o.amount);
    CheckText(v, o.reason, kTextBytesMax, /*required=*/false);
    const ModelAccount* from = Need(v, o.from);
    const ModelAccount* to = Need(v, o.to);
    if (o.from == o.to) v.FailsWithOneOf({StatusCode::kInvalidArgument, StatusCode::kFailedPrecondition});
    if (from != nullptr && (!PoolKind(from->kind) || from->restricted || from->asset != o.asset)) {
      v.Fails(StatusCode::kFailedPrecondition);
    }
    if (to != nullptr && (!PoolKind(to->kind) || to->asset != o.asset)) {
      v.Fails(StatusCode::kFailedPrecondition);
    }
    CheckFunds(v, from, o.asset, o.amount);
  }

  void PredictDisbursement(Verdict& v, const DisbursementOp& o) const {
    CheckId(v, o.from);
    CheckId(v, o.to);
    CheckAsset(v, o.asset);
    CheckAmount(v, o.amount);
    CheckText(v, o.purpose, kTextBytesMax, /*required=*/false);
    const ModelAccount* from = Need(v, o.from);
    const ModelAccount* to = Need(v, o.to);
    if (from != nullptr && (!PoolKind(from->kind) || from->asset != o.asset)) {
      v.Fails(StatusCode::kFailedPrecondition);
    }
    if (to != nullptr && (!SinkKind(to->kind) || !Accepts(*to, o.asset))) {
      v.Fails(StatusCode::kFailedPrecondition);
    }
    CheckFunds(v, from, o.asset, o.amount);
  }

  void PredictCorrection(Verdict& v, const CorrectionOp& o) const {
    CheckText(v, o.reason, kTextBytesMax, /*required=*/true);
    if (o.mode == CorrectionMode::kReverse) {
      PredictReverse(v, o);
    } else if (o.mode == CorrectionMode::kAdjust) {
      PredictAdjust(v, o);
    } else {
      v.Invalid();
    }
  }

  void PredictAdjust(Verdict& v, const CorrectionOp& o) const {
    CheckId(v, o.from);
    CheckId(v, o.to);
    CheckAsset(v, o.asset);
    CheckAmount(v, o.amount);
    NeedEntry(v, o.ref_seq);
    const ModelAccount* from = Need(v, o.from);
    const ModelAccount* to = Need(v, o.to);
    if (o.from == o.to) v.FailsWithOneOf({StatusCode::kInvalidArgument, StatusCode::kFailedPrecondition});
    if (from != nullptr && (!HoldingKind(from->kind) || from->asset != o.asset)) {
      v.Fails(StatusCode::kFailedPrecondition);
    }
    if (to != nullptr && (SourceKind(to->kind) ||
                          (HoldingKind(to->kind) ? to->asset != o.asset : !Accepts(*to, o.asset)))) {
      v.Fails(StatusCode::kFailedPrecondition);
    }
    CheckFunds(v, from, o.asset, o.amount);
  }

  void PredictReverse(Verdict& v, const CorrectionOp& o) const {
    if (!o.from.empty() || !o.to.empty() || !o.asset.empty() || o.amount != 0) v.Invalid();
    const ModelEntry* ref = NeedEntry(v, o.ref_seq);
    if (ref == nullptr) return;
    if (ref->type != EntryType::kDonation && ref->type != EntryType::kAllocation &&
        ref->type != EntryType::kDisbursement && ref->type != EntryType::kGoodsGift) {
      v.FailsWithOneOf({StatusCode::kFailedPrecondition, StatusCode::kInvalidArgument});
      return;
    }
    if (ref->reversed) v.Fails(StatusCode::kFailedPrecondition);
    if (auto it = b_.reversing.find(o.ref_seq); it != b_.reversing.end()) {
      if (it->second) {
        v.Fails(StatusCode::kFailedPrecondition);
      } else {
        v.MayFail({StatusCode::kFailedPrecondition});
      }
    }
    const Posting& original = ref->postings.at(0);
    Need(v, original.from);
    const ModelAccount* to = Need(v, original.to);
    if (to == nullptr || !HoldingKind(to->kind)) return;  // a sink gives back regardless
    // The value must still be where the original put it, lot by lot.
    std::map<uint64_t, int64_t> needed;
    for (const Slice& s : original.slices) needed[s.lot] += s.amount;
    bool enough = true;
    for (const auto& [lot, amount] : needed) {
      if (HeldOfLot(original.to, lot) < amount) enough = false;
    }
    if (enough && Get(b_.debit_max, original.to) == 0) return;
    if (!enough && Get(b_.credit_max, original.to) == 0) {
      v.Fails(StatusCode::kFailedPrecondition);
      return;
    }
    v.MayFail({StatusCode::kFailedPrecondition});
  }

  // ---- Goods. The predictors below follow the engine's order of checks
  // (docs/rules.md does not fix it) and stop at the first certain failure,
  // because the code of a request with a defect found late depends on it.

  enum class ItemPresence { kDefined, kMissing, kUncertain };
  ItemPresence LookupItem(const std::string& item) const {
    if (items_.count(item) > 0) return ItemPresence::kDefined;
    if (b_.in_chain && b_.chain_items.count(item) > 0) return ItemPresence::kDefined;
    if (auto it = b_.defining.find(item); it != b_.defining.end()) {
      return it->second ? ItemPresence::kDefined : ItemPresence::kUncertain;
    }
    return ItemPresence::kMissing;
  }
  bool Catalogued(const std::string& item) const {
    return LookupItem(item) == ItemPresence::kDefined;
  }
  // "Every goods entry names a catalogued item (FAILED_PRECONDITION)."
  void NeedItem(Verdict& v, const std::string& item) const {
    if (!IsGoodsCode(item)) {
      v.InvalidLate();
      return;
    }
    switch (LookupItem(item)) {
      case ItemPresence::kDefined:
        break;
      case ItemPresence::kMissing:
        v.Fails(StatusCode::kFailedPrecondition);
        break;
      case ItemPresence::kUncertain:
        v.MayFail({StatusCode::kFailedPrecondition});
        break;
    }
  }
  // An open stock of `item`.
  const ModelAccount* NeedStock(Verdict& v, const std::string& id, const std::string& item) const {
    if (!IsValidAccountId(id)) {
      v.InvalidLate();
      return nullptr;
    }
    const ModelAccount* a = Need(v, id);
    if (a != nullptr && (a->kind != AccountKind::kStock || a->asset != item)) {
      v.Fails(StatusCode::kFailedPrecondition);
    }
    return a;
  }
  // A batch's expiry: 0 or after the entry's time.
  void CheckExpiry(Verdict& v, int64_t expires_us) const {
    if (expires_us < 0) {
      v.InvalidLate();
    } else if (expires_us != 0 && expires_us <= b_.now_us) {
      v.Fails(StatusCode::kFailedPrecondition);
    }
  }

  void PredictItem(Verdict& v, const ItemOp& o) const {
    if (!IsGoodsCode(o.item)) v.Invalid();
    CheckText(v, o.name, kNameBytesMax, /*required=*/true);
    if (!IsValidUnit(o.unit)) v.Invalid();
    if (v.Decided()) return;
    switch (LookupItem(o.item)) {
      case ItemPresence::kDefined:
        v.Fails(StatusCode::kAlreadyExists);
        break;
      case ItemPresence::kMissing:
        break;
      case ItemPresence::kUncertain:
        v.MayFail({StatusCode::kAlreadyExists});
        break;
    }
  }

  void PredictGoodsGift(Verdict& v, const GoodsGiftOp& o) const {
    CheckId(v, o.donor);
    if (v.Decided()) return;
    NeedItem(v, o.item);
    if (v.Decided()) return;
    if (!IsValidAmount(o.quantity) || !IsValidGrade(o.grade)) v.InvalidLate();
    if (v.Decided()) return;
    CheckExpiry(v, o.expires_us);
    if (v.Decided()) return;
    const bool value_ok = o.value_asset.empty()
                              ? o.value == 0
                              : IsMoneyCode(o.value_asset) && IsValidAmount(o.value);
    if (!value_ok || static_cast<uint8_t>(o.channel) > kDonationChannelMax ||
        (o.flags & ~kDonationFlagsKnown) != 0 || o.memo.size() > kTextBytesMax) {
      v.InvalidLate();  // (the stream sends no trace hashes)
    }
    if (v.Decided()) return;
    const ModelAccount* donor = Need(v, o.donor);
    if (v.Decided()) return;
    if (donor != nullptr && !SourceKind(donor->kind)) v.Fails(StatusCode::kFailedPrecondition);
    if (v.Decided()) return;
    NeedStock(v, o.to, o.item);
    if (v.Decided()) return;
    if (donor != nullptr && !Accepts(*donor, o.item)) v.Fails(StatusCode::kFailedPrecondition);
  }

  void PredictGoodsPurchase(Verdict& v, const GoodsPurchaseOp& o) const {
    CheckId(v, o.from);
    CheckId(v, o.supplier);
    if (!IsMoneyCode(o.asset)) v.Invalid();
    CheckAmount(v, o.price);
    if (v.Decided()) return;
    NeedItem(v, o.item);
    if (v.Decided()) return;
    if (!IsValidAmount(o.quantity) || !IsValidGrade(o.grade)) v.InvalidLate();
    if (v.Decided()) return;
    CheckExpiry(v, o.expires_us);
    if (v.Decided()) return;
    if (o.memo.size() > kTextBytesMax) v.InvalidLate();
    if (v.Decided()) return;
    const ModelAccount* from = Need(v, o.from);
    if (v.Decided()) return;
    if (from != nullptr && !PoolKind(from->kind)) v.Fails(StatusCode::kFailedPrecondition);
    if (v.Decided()) return;
    const ModelAccount* supplier = Need(v, o.supplier);
    if (v.Decided()) return;
    if (supplier != nullptr && supplier->kind != AccountKind::kSupplier) {
      v.Fails(StatusCode::kFailedPrecondition);
    }
    if (v.Decided()) return;
    NeedStock(v, o.to, o.item);
    if (v.Decided()) return;
    if (from != nullptr && from->asset != o.asset) v.Fails(StatusCode::kFailedPrecondition);
    // Paid money and delivering goods, a supplier with a fixed asset refuses one of them.
    if (supplier != nullptr && !supplier->asset.empty()) v.Fails(StatusCode::kFailedPrecondition);
    if (v.Decided()) return;
    CheckFunds(v, from, o.asset, o.price);
  }

  void PredictHandout(Verdict& v, const HandoutOp& o) const {
    NeedItem(v, o.item);
    if (v.Decided()) return;
    if (o.lines.empty() || o.lines.size() > kHandoutLinesMax || o.purpose.size() > kTextBytesMax ||
        o.override_reason.size() > kTextBytesMax) {
      v.InvalidLate();
    }
    if (v.Decided()) return;
    const ModelAccount* from = NeedStock(v, o.from, o.item);
    if (v.Decided()) return;
    std::set<std::string> seen;
    int64_t total = 0;
    for (const HandoutLine& line : o.lines) {
      if (!IsValidAccountId(line.recipient) || !IsValidAmount(line.quantity)) v.InvalidLate();
      if (v.Decided()) return;
      const ModelAccount* r = Need(v, line.recipient);
      if (v.Decided()) return;
      if (r != nullptr && r->kind != AccountKind::kRecipient) v.Fails(StatusCode::kFailedPrecondition);
      if (v.Decided()) return;
      if (!seen.insert(line.recipient).second) v.InvalidLate();  // each recipient once
      if (v.Decided()) return;
      if (r != nullptr && !Accepts(*r, o.item)) v.Fails(StatusCode::kFailedPrecondition);
      if (v.Decided()) return;
      CheckFunds(v, from, o.item, line.quantity);  // each line against the whole stock
      if (v.Decided()) return;
      total += line.quantity;
    }
    CheckFunds(v, from, o.item, total);  // then the sum
  }

  void PredictWriteOff(Verdict& v, const WriteOffOp& o) const {
    NeedItem(v, o.item);
    if (v.Decided()) return;
    if (!IsValidAccountId(o.to) || !IsValidAmount(o.quantity) || o.reason.empty() ||
        o.reason.size() > kTextBytesMax) {
      v.InvalidLate();
    }
    if (v.Decided()) return;
    const ModelAccount* from = NeedStock(v, o.from, o.item);
    if (v.Decided()) return;
    const ModelAccount* to = Need(v, o.to);
    if (v.Decided()) return;
    if (to != nullptr && (to->kind != AccountKind::kExpense || !Accepts(*to, o.item))) {
      v.Fails(StatusCode::kFailedPrecondition);
    }
    if (v.Decided()) return;
    CheckFunds(v, from, o.item, o.quantity);
    if (v.Decided() || o.lot == 0) return;
    auto lot = lots_.find(o.lot);
    if (lot == lots_.end()) {
      if (o.lot <= entries_.size()) {
        v.Fails(StatusCode::kNotFound);
      } else {
        v.MayFail({StatusCode::kNotFound, StatusCode::kFailedPrecondition});
      }
      return;
    }
    // What the stock holds of the lot: as committed, less what the batch
    // may take, plus what it may bring (of any lot: a bound).
    const int64_t held = lot->second.info.asset == o.item ? HeldOfLot(o.from, o.lot) : 0;
    const int64_t hi = lot->second.info.asset == o.item ? held + Get(b_.credit_max, o.from) : 0;
    if (o.quantity > hi) {
      v.Fails(StatusCode::kFailedPrecondition);
    } else if (o.quantity > held - Get(b_.debit_max, o.from)) {
      v.MayFail({StatusCode::kFailedPrecondition});
    }
  }

  void PredictGoodsSale(Verdict& v, const GoodsSaleOp& o) const {
    NeedItem(v, o.item);
    if (v.Decided()) return;
    if (!IsValidAccountId(o.buyer) || !IsValidAccountId(o.to) || !IsValidAmount(o.quantity) ||
        !IsMoneyCode(o.asset) || !IsValidAmount(o.proceeds) || o.memo.size() > kTextBytesMax) {
      v.InvalidLate();
    }
    if (v.Decided()) return;
    const ModelAccount* from = NeedStock(v, o.from, o.item);
    if (v.Decided()) return;
    const ModelAccount* buyer = Need(v, o.buyer);
    if (v.Decided()) return;
    if (buyer != nullptr && buyer->kind != AccountKind::kMerchant) {
      v.Fails(StatusCode::kFailedPrecondition);
    }
    if (v.Decided()) return;
    const ModelAccount* to = Need(v, o.to);
    if (v.Decided()) return;
    if (to != nullptr && !PoolKind(to->kind)) v.Fails(StatusCode::kFailedPrecondition);
    if (v.Decided()) return;
    // Given goods and paying money, a buyer with a fixed asset refuses one of them.
    if (buyer != nullptr && !buyer->asset.empty()) v.Fails(StatusCode::kFailedPrecondition);
    if (to != nullptr && to->asset != o.asset) v.Fails(StatusCode::kFailedPrecondition);
    if (v.Decided()) return;
    CheckFunds(v, from, o.item, o.quantity);
  }

  int64_t HeldOfLot(const std::string& account, uint64_t lot) const {
    auto it = holdings_.find(account);
    if (it == holdings_.end()) return 0;
    int64_t sum = 0;
    for (const Slice& s : it->second) {
      if (s.lot == lot) sum += s.amount;
    }
    return sum;
  }

  // Records what an op may do to the rest of the batch.
  void NoteEffects(const Operation& op, const Prediction& p) {
    if (p.expect == Expect::kFail || p.expect == Expect::kDuplicate) return;
    auto debit = [&](const std::string& id, int64_t amount) {
      if (IsValidAmount(amount)) b_.debit_max[id] += amount;
    };
    auto credit = [&](const std::string& id, int64_t amount) {
      if (!IsValidAmount(amount)) return;
      b_.credit_max[id] += amount;
      if (b_.in_chain) b_.chain_credit[id] += amount;
    };
    std::visit(Overloaded{
                   [&](const OpenAccountOp& o) {
                     if (b_.in_chain && p.expect == Expect::kOk) {
                       ModelAccount a;
                       a.id = o.account;
                       a.kind = o.kind;
                       a.asset = o.asset;
                       a.flags = o.flags;
                       a.restricted = o.kind == AccountKind::kProject ||
                                      (o.flags & kAccountRestricted) != 0;
                       b_.chain_new[o.account] = a;
                     } else {
                       b_.opened.insert(o.account);
                     }
                   },
                   [&](const CloseAccountOp& o) {
                     bool& certain = b_.closing[o.account];
                     certain = certain || (p.expect == Expect::kOk && !b_.in_chain);
                   },
                   [&](const DonationOp& o) { credit(o.to, o.amount); },
                   [&](const AllocationOp& o) {
                     debit(o.from, o.amount);
                     credit(o.to, o.amount);
                   },
                   [&](const DisbursementOp& o) {
                     debit(o.from, o.amount);
                     credit(o.to, o.amount);
                   },
                   [&](const CorrectionOp& o) {
                     if (o.mode == CorrectionMode::kAdjust) {
                       debit(o.from, o.amount);
                       credit(o.to, o.amount);
                       return;
                     }
                     if (o.ref_seq < 1 || o.ref_seq > entries_.size()) return;
                     const ModelEntry& ref = entries_[o.ref_seq - 1];
                     if (ref.postings.empty()) return;
                     const Posting& original = ref.postings[0];
                     debit(original.to, original.amount);
                     credit(original.from, original.amount);
                     bool& certain = b_.reversing[o.ref_seq];
                     certain = certain || (p.expect == Expect::kOk && !b_.in_chain);
                   },
                   [&](const ItemOp& o) {
                     bool& certain = b_.defining[o.item];
                     certain = certain || (p.expect == Expect::kOk && !b_.in_chain);
                     if (b_.in_chain && p.expect == Expect::kOk) b_.chain_items.insert(o.item);
                   },
                   [&](const GoodsGiftOp& o) { credit(o.to, o.quantity); },
                   [&](const GoodsPurchaseOp& o) {
                     debit(o.from, o.price);
                     credit(o.to, o.quantity);
                   },
                   [&](const HandoutOp& o) {
                     for (const HandoutLine& line : o.lines) debit(o.from, line.quantity);
                   },
                   [&](const WriteOffOp& o) { debit(o.from, o.quantity); },
                   [&](const GoodsSaleOp& o) {
                     debit(o.from, o.quantity);
                     credit(o.to, o.proceeds);
                   },
                   [&](const auto&) { ADD_FAILURE() << "the stream has no checkout operations"; },
               },
               op.body);
  }

  void Add(Operation op, std::string label) {
    PlannedOp planned;
    planned.prediction = Predict(op);
    planned.label = std::move(label);
    planned.standalone = !b_.in_chain;
    NoteEffects(op, planned.prediction);
    const size_t index = b_.ops.size();
    if (IsValidClientId(op.client_id) && b_.client_index.count(op.client_id) == 0) {
      b_.client_index[op.client_id] = index;
    }
    planned.op = std::move(op);
    ++predicted_[static_cast<int>(planned.prediction.expect)];
    b_.ops.push_back(std::move(planned));
    if (!b_.in_chain) b_.groups.push_back({index, index + 1, false});
  }

  void BeginChain() {
    b_.in_chain = true;
    b_.chain_begin = b_.ops.size();
    b_.chain_credit.clear();
    b_.chain_new.clear();
    b_.chain_items.clear();
  }

  void EndChain(bool open_ended) {
    const size_t begin = b_.chain_begin;
    const size_t end = b_.ops.size();
    b_.in_chain = false;
    for (const auto& [id, account] : b_.chain_new) b_.opened.insert(id);
    b_.chain_new.clear();
    b_.chain_credit.clear();
    b_.chain_items.clear();  // b_.defining holds them as uncertain
    if (begin == end) return;
    for (size_t i = begin; i < end; ++i) b_.ops[i].op.linked = open_ended || i + 1 < end;
    if (open_ended) {
      for (size_t i = begin; i < end; ++i) {
        b_.ops[i].prediction = Prediction::Fail({StatusCode::kInvalidArgument});
      }
    } else if (end - begin == 1) {
      b_.ops[begin].standalone = true;  // nothing preceded it in the chain
    }
    b_.groups.push_back({begin, end, open_ended});
  }

  // ---- Generators of operations. ----

  using Filter = std::function<bool(const ModelAccount&)>;

  std::vector<const ModelAccount*> OpenAccounts(const Filter& filter) const {
    std::vector<const ModelAccount*> out;
    for (const auto& [id, account] : accounts_) {
      if (Lookup(id).presence == Presence::kOpen && filter(account)) out.push_back(&account);
    }
    if (b_.in_chain) {
      for (const auto& [id, account] : b_.chain_new) {
        if (filter(account)) out.push_back(&account);
      }
    }
    return out;
  }
  const ModelAccount* PickOpen(const Filter& filter) {
    const auto candidates = OpenAccounts(filter);
    return candidates.empty() ? nullptr : candidates[rng_.Index(candidates.size())];
  }
  // Prefers accounts that certainly hold something.
  const ModelAccount* PickFunded(const Filter& filter) {
    const auto candidates = OpenAccounts(filter);
    if (candidates.empty()) return nullptr;
    std::vector<const ModelAccount*> funded;
    for (const ModelAccount* a : candidates) {
      if (Lo(a->id, a->asset) > 0) funded.push_back(a);
    }
    if (!funded.empty() && rng_.Chance(0.9)) return funded[rng_.Index(funded.size())];
    return candidates[rng_.Index(candidates.size())];
  }

  int64_t GiftAmount(const std::string& asset) {
    return asset == kCny ? rng_.Uniform(1, 200'000) : rng_.Uniform(1, 500);
  }

  // Mostly what the account certainly holds; sometimes what it may or may not
  // hold, just over what it can hold, or far beyond.
  int64_t SpendAmount(const std::string& from, const std::string& asset) {
    const int64_t lo = std::max<int64_t>(0, Lo(from, asset));
    const int64_t hi = std::max<int64_t>(0, Hi(from, asset));
    const int64_t r = rng_.Uniform(0, 99);
    if (lo > 0 && r < 82) {
      return rng_.Chance(0.5) ? rng_.Uniform(1, lo) : rng_.Uniform(1, std::max<int64_t>(1, lo / 8));
    }
    if (r < 92) return rng_.Uniform(lo + 1, hi + 1);
    if (r < 97) return hi + 1 + rng_.Uniform(0, 1000);
    return kFarBeyondAnyBalance;
  }

  std::optional<Operation> GenDonation() {
    const ModelAccount* to = nullptr;
    if (b_.in_chain && !b_.chain_new.empty() && rng_.Chance(0.7)) {
      std::vector<const ModelAccount*> fresh;
      for (const auto& [id, a] : b_.chain_new) {
        if (PoolKind(a.kind)) fresh.push_back(&a);
      }
      if (!fresh.empty()) to = fresh[rng_.Index(fresh.size())];
    }
    if (to == nullptr) to = PickOpen([](const ModelAccount& a) { return PoolKind(a.kind); });
    if (to == nullptr) return std::nullopt;
    const std::string to_id = to->id;
    const std::string asset = to->asset;
    const ModelAccount* donor = PickOpen(
        [&](const ModelAccount& a) { return SourceKind(a.kind) && Accepts(a, asset); });
    if (donor == nullptr) return std::nullopt;
    DonationOp d;
    d.donor = donor->id;
    d.to = to_id;
    d.asset = asset;
    d.amount = GiftAmount(asset);
    d.channel = static_cast<DonationChannel>(rng_.Uniform(0, kDonationChannelMax));
    d.flags = rng_.Chance(0.2) ? kDonationAnonymous : 0;
    if (rng_.Chance(0.5)) d.memo = "gift " + std::to_string(next_client_);
    return MakeOp(d);
  }

  std::optional<Operation> GenAllocation() {
    const ModelAccount* from = PickFunded([](const ModelAccount& a) {
      return a.kind == AccountKind::kFund && !a.restricted;
    });
    if (from == nullptr) return std::nullopt;
    const std::string from_id = from->id;
    const std::string asset = from->asset;
    const ModelAccount* to = PickOpen([&](const ModelAccount& a) {
      return PoolKind(a.kind) && a.asset == asset && a.id != from_id;
    });
    if (to == nullptr) return std::nullopt;
    AllocationOp o;
    o.from = from_id;
    o.to = to->id;
    o.asset = asset;
    o.amount = SpendAmount(from_id, asset);
    o.reason = rng_.Chance(0.5) ? "" : "board decision";
    return MakeOp(o);
  }

  std::optional<Operation> GenDisbursement() {
    const ModelAccount* from = PickFunded([](const ModelAccount& a) { return PoolKind(a.kind); });
    if (from == nullptr) return std::nullopt;
    const std::string from_id = from->id;
    const std::string asset = from->asset;
    const ModelAccount* to =
        PickOpen([&](const ModelAccount& a) { return SinkKind(a.kind) && Accepts(a, asset); });
    if (to == nullptr) return std::nullopt;
    DisbursementOp o;
    o.from = from_id;
    o.to = to->id;
    o.asset = asset;
    o.amount = SpendAmount(from_id, asset);
    o.purpose = rng_.Chance(0.5) ? "" : "monthly aid";
    return MakeOp(o);
  }

  std::optional<Operation> GenAdjust() {
    if (entries_.empty()) return std::nullopt;
    const ModelAccount* from = PickFunded([](const ModelAccount& a) { return HoldingKind(a.kind); });
    if (from == nullptr) return std::nullopt;
    const std::string from_id = from->id;
    const std::string asset = from->asset;
    const ModelAccount* to = PickOpen([&](const ModelAccount& a) {
      if (a.id == from_id || SourceKind(a.kind)) return false;
      return HoldingKind(a.kind) ? a.asset == asset : Accepts(a, asset);
    });
    if (to == nullptr) return std::nullopt;
    CorrectionOp o;
    o.ref_seq = static_cast<uint64_t>(rng_.Uniform(1, static_cast<int64_t>(entries_.size())));
    o.mode = CorrectionMode::kAdjust;
    o.reason = "recorded against the wrong project";
    o.from = from_id;
    o.to = to->id;
    o.asset = asset;
    o.amount = SpendAmount(from_id, asset);
    return MakeOp(o);
  }

  std::optional<Operation> GenReverse() {
    if (value_seqs_.empty()) return std::nullopt;
    uint64_t ref = 0;
    for (int attempt = 0; attempt < 8; ++attempt) {
      const size_t n = value_seqs_.size();
      const size_t index = rng_.Chance(0.7) ? n - 1 - rng_.Index(std::min<size_t>(n, 40)) : rng_.Index(n);
      ref = value_seqs_[index];
      if (!entries_[ref - 1].reversed) break;
    }
    CorrectionOp o;
    o.ref_seq = ref;
    o.mode = CorrectionMode::kReverse;
    o.reason = "entered twice";
    return MakeOp(o);
  }

  // ---- Goods. ----

  // A catalogued item (oil, blankets, and rice or soap once the stream
  // has added them).
  std::string CataloguedItem() {
    std::vector<std::string> items;
    for (const char* item : {kOil, kBlanket, kLaterItems[0], kLaterItems[1]}) {
      if (Catalogued(item)) items.push_back(item);
    }
    return items[rng_.Index(items.size())];
  }
  // 0 (does not expire) or midnight of a day ahead, so that batches often
  // share an expiry (ties go in arrival order); oil mostly expires.
  int64_t NewExpiry(const std::string& item) {
    if (rng_.Chance(item == kOil ? 0.15 : 0.6)) return 0;
    return (b_.now_us / kDayUs + rng_.Uniform(1, 40)) * kDayUs;
  }
  std::string NewGrade() {
    static const char* const kGrades[] = {"", "", "", "A", "B"};
    return kGrades[rng_.Index(std::size(kGrades))];
  }
  // Open stocks of catalogued items.
  Filter StockOfCatalogued() const {
    return [this](const ModelAccount& a) {
      return a.kind == AccountKind::kStock && Catalogued(a.asset);
    };
  }

  std::optional<Operation> GenItem() {
    std::vector<std::string> missing;
    for (const char* item : kLaterItems) {
      if (LookupItem(item) == ItemPresence::kMissing) missing.push_back(item);
    }
    if (missing.empty()) return std::nullopt;
    ItemOp o;
    o.item = missing[rng_.Index(missing.size())];
    o.name = "Item " + o.item.substr(5);
    o.unit = rng_.Chance(0.5) ? "kg" : "piece";
    return MakeOp(o);
  }

  std::optional<Operation> GenGoodsGift() {
    const ModelAccount* to = nullptr;
    if (b_.in_chain && !b_.chain_new.empty() && rng_.Chance(0.7)) {
      for (const auto& [id, a] : b_.chain_new) {
        if (StockOfCatalogued()(a)) to = &a;
      }
    }
    if (to == nullptr) to = PickOpen(StockOfCatalogued());
    if (to == nullptr) return std::nullopt;
    const std::string to_id = to->id;
    const std::string item = to->asset;
    const ModelAccount* donor = PickOpen(
        [&](const ModelAccount& a) { return SourceKind(a.kind) && Accepts(a, item); });
    if (donor == nullptr) return std::nullopt;
    GoodsGiftOp g;
    g.donor = donor->id;
    g.to = to_id;
    g.item = item;
    g.quantity = rng_.Uniform(1, 400);
    g.grade = NewGrade();
    g.expires_us = NewExpiry(item);
    if (rng_.Chance(0.3)) {
      g.value_asset = kCny;
      g.value = rng_.Uniform(100, 500'000);
    }
    g.channel = static_cast<DonationChannel>(rng_.Uniform(0, kDonationChannelMax));
    g.flags = rng_.Chance(0.2) ? kDonationAnonymous : 0;
    if (rng_.Chance(0.5)) g.memo = "gift in kind " + std::to_string(next_client_);
    return MakeOp(g);
  }

  std::optional<Operation> GenGoodsPurchase() {
    const ModelAccount* from = PickFunded(
        [](const ModelAccount& a) { return PoolKind(a.kind) && a.asset == kCny; });
    if (from == nullptr) return std::nullopt;
    const std::string from_id = from->id;
    const ModelAccount* supplier = PickOpen([](const ModelAccount& a) {
      return a.kind == AccountKind::kSupplier && a.asset.empty();
    });
    if (supplier == nullptr) return std::nullopt;
    const std::string supplier_id = supplier->id;
    const ModelAccount* to = PickOpen(StockOfCatalogued());
    if (to == nullptr) return std::nullopt;
    GoodsPurchaseOp o;
    o.from = from_id;
    o.supplier = supplier_id;
    o.asset = kCny;
    o.price = SpendAmount(from_id, kCny);
    o.to = to->id;
    o.item = to->asset;
    o.quantity = rng_.Uniform(1, 300);
    o.grade = NewGrade();
    o.expires_us = NewExpiry(o.item);
    o.memo = "invoice " + std::to_string(next_client_);
    return MakeOp(o);
  }

  // Up to `lines_max` distinct recipients that take the item, the quantity
  // spread over them (each at least 1).
  std::optional<Operation> GenHandout(size_t lines_max) {
    const ModelAccount* from = PickFunded(StockOfCatalogued());
    if (from == nullptr) return std::nullopt;
    const std::string from_id = from->id;
    const std::string item = from->asset;
    std::vector<const ModelAccount*> recipients = OpenAccounts([&](const ModelAccount& a) {
      return a.kind == AccountKind::kRecipient && Accepts(a, item);
    });
    if (recipients.empty()) return std::nullopt;
    const int64_t total = SpendAmount(from_id, item);
    const size_t count = std::min<size_t>(
        {static_cast<size_t>(rng_.Uniform(1, static_cast<int64_t>(lines_max))), recipients.size(),
         static_cast<size_t>(total)});
    HandoutOp o;
    o.from = from_id;
    o.item = item;
    o.purpose = rng_.Chance(0.5) ? "" : "winter distribution";
    if (rng_.Chance(0.1)) o.override_reason = "household of six";
    int64_t left = total - static_cast<int64_t>(count);
    for (size_t i = 0; i < count; ++i) {
      const size_t pick = i + rng_.Index(recipients.size() - i);
      std::swap(recipients[i], recipients[pick]);
      const int64_t extra = i + 1 == count ? left : rng_.Uniform(0, left / 2);
      left -= extra;
      o.lines.push_back({recipients[i]->id, 1 + extra});
    }
    return MakeOp(o);
  }

  std::optional<Operation> GenWriteOff() {
    const ModelAccount* from = PickFunded(StockOfCatalogued());
    if (from == nullptr) return std::nullopt;
    const std::string from_id = from->id;
    const std::string item = from->asset;
    const ModelAccount* to = PickOpen(
        [&](const ModelAccount& a) { return a.kind == AccountKind::kExpense && Accepts(a, item); });
    if (to == nullptr) return std::nullopt;
    WriteOffOp o;
    o.from = from_id;
    o.to = to->id;
    o.item = item;
    o.reason = rng_.Chance(0.5) ? "spoiled" : "damaged in storage";
    std::vector<Slice> live;
    if (auto it = holdings_.find(from_id); it != holdings_.end()) live = LiveSlices(it->second);
    if (!live.empty() && rng_.Chance(0.4)) {
      // A spoiled batch: from one lot only, mostly no more than the stock holds of it.
      o.lot = live[rng_.Index(live.size())].lot;
      const int64_t held = HeldOfLot(from_id, o.lot);
      o.quantity = rng_.Chance(0.85) ? rng_.Uniform(1, held) : held + rng_.Uniform(1, 5);
    } else {
      o.quantity = SpendAmount(from_id, item);
    }
    return MakeOp(o);
  }

  std::optional<Operation> GenGoodsSale() {
    const ModelAccount* from = PickFunded(StockOfCatalogued());
    if (from == nullptr) return std::nullopt;
    const std::string from_id = from->id;
    const ModelAccount* buyer = PickOpen([](const ModelAccount& a) {
      return a.kind == AccountKind::kMerchant && a.asset.empty();
    });
    if (buyer == nullptr) return std::nullopt;
    const std::string buyer_id = buyer->id;
    const ModelAccount* to =
        PickOpen([](const ModelAccount& a) { return PoolKind(a.kind) && a.asset == kCny; });
    if (to == nullptr) return std::nullopt;
    GoodsSaleOp o;
    o.from = from_id;
    o.buyer = buyer_id;
    o.item = from->asset;
    o.quantity = SpendAmount(from_id, o.item);
    o.to = to->id;
    o.asset = kCny;
    o.proceeds = rng_.Uniform(1, 200'000);
    if (rng_.Chance(0.5)) o.memo = "sold before spoiling";
    return MakeOp(o);
  }

  // Goods recorded in the wrong stock, moved by an adjustment (fifo/v1).
  // Lots that go back and forth land behind the empty slices fefo/v1
  // leaves, which keep them from merging with their neighbours.
  std::optional<Operation> GenStockAdjust() {
    if (entries_.empty()) return std::nullopt;
    const ModelAccount* from = PickFunded(StockOfCatalogued());
    if (from == nullptr) return std::nullopt;
    const std::string from_id = from->id;
    const std::string item = from->asset;
    const ModelAccount* to = PickOpen([&](const ModelAccount& a) {
      return a.kind == AccountKind::kStock && a.asset == item && a.id != from_id;
    });
    if (to == nullptr) return std::nullopt;
    CorrectionOp o = MakeAdjust(entries_.size(), "recorded in the wrong stock", from_id, to->id, item,
                                SpendAmount(from_id, item));
    return MakeOp(o);
  }

  std::optional<Operation> GenGoods() {
    const int64_t r = rng_.Uniform(0, 99);
    if (r < 28) return GenGoodsGift();
    if (r < 44) return GenGoodsPurchase();
    if (r < 68) return GenHandout(rng_.Chance(0.1) ? 40 : 5);
    if (r < 80) return GenWriteOff();
    if (r < 90) return GenGoodsSale();
    if (r < 99) return GenStockAdjust();
    return GenItem();
  }

  Operation GenOpen(std::optional<AccountKind> wanted_kind = std::nullopt) {
    static constexpr AccountKind kKinds[] = {
        AccountKind::kDonor,     AccountKind::kDonor,    AccountKind::kMerchant,
        AccountKind::kFund,      AccountKind::kFund,     AccountKind::kProject,
        AccountKind::kRecipient, AccountKind::kSupplier, AccountKind::kExpense,
        AccountKind::kStock,     AccountKind::kRecipient,
    };
    const AccountKind kind = wanted_kind ? *wanted_kind : kKinds[rng_.Index(std::size(kKinds))];
    OpenAccountOp o;
    o.kind = kind;
    o.account = NewAccountId(KindPrefix(kind));
    if (kind == AccountKind::kStock) {
      static const char* const kStockItems[] = {kOil, kOil, kBlanket, kRice, "item:soap", kUnlisted};
      o.asset = kStockItems[rng_.Index(std::size(kStockItems))];
    } else if (HoldingKind(kind)) {
      o.asset = rng_.Chance(0.75) ? kCny : kRice;
    } else {
      const int64_t r = rng_.Uniform(0, 9);
      o.asset = r < 6 ? "" : (r < 9 ? kCny : kRice);
    }
    if (kind == AccountKind::kFund && rng_.Chance(0.3)) o.flags = kAccountRestricted;
    o.name = "account " + std::to_string(next_account_);
    return MakeOp(o);
  }

  std::optional<Operation> GenClose() {
    const auto candidates = OpenAccounts([&](const ModelAccount& a) {
      return core_accounts_.count(a.id) == 0 && accounts_.count(a.id) > 0;
    });
    if (candidates.empty()) return std::nullopt;
    std::vector<const ModelAccount*> closable;
    for (const ModelAccount* a : candidates) {
      if (!HoldingKind(a->kind) || Hi(a->id, a->asset) == 0) closable.push_back(a);
    }
    const ModelAccount* target = !closable.empty() && rng_.Chance(0.8)
                                     ? closable[rng_.Index(closable.size())]
                                     : candidates[rng_.Index(candidates.size())];
    CloseAccountOp o;
    o.account = target->id;
    o.reason = "no longer needed";
    return MakeOp(o);
  }

  std::optional<Operation> GenRetrySame() {
    if (entries_.empty()) return std::nullopt;
    Operation op = entries_[rng_.Index(entries_.size())].op;
    op.linked = false;
    return op;
  }

  std::optional<Operation> GenRetryDifferent() {
    if (entries_.empty()) return std::nullopt;
    Operation op = entries_[rng_.Index(entries_.size())].op;
    op.linked = false;
    if (rng_.Chance(0.25)) {
      op.body = MakeClose("fund/general", "same id, other type");
      return op;
    }
    std::visit(Overloaded{
                   [](OpenAccountOp& o) { o.name += " (renamed)"; },
                   [](CloseAccountOp& o) { o.reason += " (again)"; },
                   [](DonationOp& o) { o.amount = o.amount < kAmountMax ? o.amount + 1 : 1; },
                   [](AllocationOp& o) { o.reason += " (again)"; },
                   [](DisbursementOp& o) { o.purpose += " (again)"; },
                   [](CorrectionOp& o) { o.reason += " (again)"; },
                   [](ItemOp& o) { o.name += " (renamed)"; },
                   [](GoodsGiftOp& o) { o.quantity = o.quantity < kAmountMax ? o.quantity + 1 : 1; },
                   [](GoodsPurchaseOp& o) { o.memo += " (again)"; },
                   [](HandoutOp& o) { o.purpose += " (again)"; },
                   [](WriteOffOp& o) { o.reason += " (again)"; },
                   [](GoodsSaleOp& o) { o.proceeds = o.proceeds < kAmountMax ? o.proceeds + 1 : 1; },
                   [](auto&) { ADD_FAILURE() << "the stream has no checkout operations"; },
               },
               op.body);
    return op;
  }

  // An earlier standalone op of this batch that must succeed, sent again.
  std::optional<Operation> GenRepeatInBatch(bool same_content) {
    std::vector<size_t> candidates;
    for (size_t i = 0; i < b_.ops.size(); ++i) {
      if (b_.ops[i].standalone && b_.ops[i].prediction.expect == Expect::kOk) candidates.push_back(i);
    }
    if (candidates.empty()) return std::nullopt;
    Operation op = b_.ops[candidates[rng_.Index(candidates.size())]].op;
    op.linked = false;
    if (!same_content) {
      if (auto* d = std::get_if<DonationOp>(&op.body)) {
        d->memo += " (edited)";
      } else {
        op.body = MakeClose("fund/general", "same id, other type");
      }
    }
    return op;
  }

  // A fresh, valid op under the client id of an op that failed earlier: a
  // failed op must not have used up its client id.
  std::optional<Operation> GenReuseFailedClientId() {
    if (failed_client_ids_.empty()) return std::nullopt;
    std::optional<Operation> op = GenDonation();
    if (!op) return std::nullopt;
    op->client_id = failed_client_ids_[rng_.Index(failed_client_ids_.size())];
    return op;
  }

  std::optional<Operation> GenValid() {
    const int64_t r = rng_.Uniform(0, 99);
    if (r < 34) return GenDonation();
    if (r < 52) return GenAllocation();
    if (r < 67) return GenDisbursement();
    if (r < 72) return GenAdjust();
    if (r < 80) return GenReverse();
    if (r < 82) return GenOpen();
    return GenGoods();
  }

  // An op with exactly one defect, designed to fail.
  std::optional<std::pair<Operation, std::string>> TryInvalid(int64_t which) {
    auto with = [](std::optional<Operation> op, const std::string& label,
                   const std::function<void(Operation&)>& mutate)
        -> std::optional<std::pair<Operation, std::string>> {
      if (!op) return std::nullopt;
      mutate(*op);
      return std::make_pair(std::move(*op), label);
    };
    auto donation = [](Operation& op) -> DonationOp& { return std::get<DonationOp>(op.body); };
    auto pick_closed = [&](const Filter& filter) -> const ModelAccount* {
      std::vector<const ModelAccount*> closed;
      for (const auto& [id, a] : accounts_) {
        if (a.closed && filter(a)) closed.push_back(&a);
      }
      return closed.empty() ? nullptr : closed[rng_.Index(closed.size())];
    };
    auto unrestricted_fund = [](const ModelAccount& a) {
      return a.kind == AccountKind::kFund && !a.restricted;
    };
    switch (which) {
      case 0:
        return with(GenDonation(), "donation of zero", [&](Operation& op) { donation(op).amount = 0; });
      case 1:
        return with(GenDonation(), "negative donation",
                    [&](Operation& op) { donation(op).amount = -rng_.Uniform(1, 1000); });
      case 2:
        return with(GenDonation(), "donation over kAmountMax",
                    [&](Operation& op) { donation(op).amount = kAmountMax + 1; });
      case 3: {
        static const char* const kBad[] = {"cny", "CNYY", "C1Y", "item:", "item:Rice", "item:a b", ""};
        const char* bad = kBad[rng_.Index(std::size(kBad))];
        return with(GenDonation(), "donation of a malformed asset",
                    [&](Operation& op) { donation(op).asset = bad; });
      }
      case 4:
        return with(GenDonation(), "donation to an unknown fund",
                    [&](Operation& op) { donation(op).to = NewAccountId("fund"); });
      case 5:
        return with(GenDonation(), "donation from an unknown donor",
                    [&](Operation& op) { donation(op).donor = NewAccountId("donor"); });
      case 6: {
        const ModelAccount* sink =
            PickOpen([](const ModelAccount& a) { return SinkKind(a.kind) && Accepts(a, kCny); });
        const ModelAccount* donor =
            PickOpen([](const ModelAccount& a) { return SourceKind(a.kind) && Accepts(a, kCny); });
        if (sink == nullptr || donor == nullptr) return std::nullopt;
        DonationOp d = MakeDonation(donor->id, sink->id, kCny, 100);
        return std::make_pair(MakeOp(d), std::string("donation to a recipient"));
      }
      case 7: {
        const ModelAccount* fund = PickOpen([](const ModelAccount& a) { return PoolKind(a.kind); });
        if (fund == nullptr) return std::nullopt;
        const std::string fund_id = fund->id;
        const std::string asset = fund->asset;
        const ModelAccount* to = PickOpen([&](const ModelAccount& a) {
          return PoolKind(a.kind) && a.asset == asset && a.id != fund_id;
        });
        if (to == nullptr) return std::nullopt;
        DonationOp d = MakeDonation(fund_id, to->id, asset, 100);
        return std::make_pair(MakeOp(d), std::string("donation from a fund"));
      }
      case 8:
        return with(GenDonation(), "donation of another asset than the fund's", [&](Operation& op) {
          DonationOp& d = donation(op);
          d.asset = d.asset == kCny ? kRice : kCny;
        });
      case 9:
        return with(GenDonation(), "donation with an unknown channel", [&](Operation& op) {
          donation(op).channel = static_cast<DonationChannel>(kDonationChannelMax + 5);
        });
      case 10:
        return with(GenDonation(), "donation with an unknown flag",
                    [&](Operation& op) { donation(op).flags = 1u << 7; });
      case 11:
        return with(GenDonation(), "donation with an over-long memo",
                    [&](Operation& op) { donation(op).memo = std::string(kTextBytesMax + 1, 'm'); });
      case 12:
      case 13: {
        const bool project = which == 12;
        const ModelAccount* from = PickFunded([&](const ModelAccount& a) {
          return project ? a.kind == AccountKind::kProject
                         : a.kind == AccountKind::kFund && a.restricted;
        });
        if (from == nullptr) return std::nullopt;
        const std::string from_id = from->id;
        const std::string asset = from->asset;
        const ModelAccount* to = PickOpen([&](const ModelAccount& a) {
          return PoolKind(a.kind) && a.asset == asset && a.id != from_id;
        });
        if (to == nullptr) return std::nullopt;
        AllocationOp o = MakeAllocation(from_id, to->id, asset, 1);
        return std::make_pair(MakeOp(o), std::string(project ? "allocation out of a project"
                                                             : "allocation out of a restricted fund"));
      }
      case 14: {
        const ModelAccount* from = PickFunded(unrestricted_fund);
        if (from == nullptr) return std::nullopt;
        const std::string from_id = from->id;
        const std::string asset = from->asset;
        const ModelAccount* to =
            PickOpen([&](const ModelAccount& a) { return SinkKind(a.kind) && Accepts(a, asset); });
        if (to == nullptr) return std::nullopt;
        AllocationOp o = MakeAllocation(from_id, to->id, asset, 1);
        return std::make_pair(MakeOp(o), std::string("allocation to a recipient"));
      }
      case 15: {
        const ModelAccount* from = PickFunded(unrestricted_fund);
        if (from == nullptr) return std::nullopt;
        AllocationOp o = MakeAllocation(from->id, from->id, from->asset, 1);
        return std::make_pair(MakeOp(o), std::string("allocation to itself"));
      }
      case 16:
        return with(rng_.Chance(0.5) ? GenAllocation() : GenDisbursement(), "overspend, far beyond",
                    [&](Operation& op) {
                      if (auto* a = std::get_if<AllocationOp>(&op.body)) a->amount = kFarBeyondAnyBalance;
                      if (auto* d = std::get_if<DisbursementOp>(&op.body)) d->amount = kFarBeyondAnyBalance;
                    });
      case 17:
        return with(GenDisbursement(), "overspend by one", [&](Operation& op) {
          DisbursementOp& d = std::get<DisbursementOp>(op.body);
          d.amount = Hi(d.from, d.asset) + 1;
        });
      case 18: {
        const ModelAccount* from = PickFunded([](const ModelAccount& a) { return PoolKind(a.kind); });
        if (from == nullptr) return std::nullopt;
        const std::string from_id = from->id;
        const std::string asset = from->asset;
        const ModelAccount* to = PickOpen([&](const ModelAccount& a) {
          return PoolKind(a.kind) && a.asset == asset && a.id != from_id;
        });
        if (to == nullptr) return std::nullopt;
        DisbursementOp o = MakeDisbursement(from_id, to->id, asset, 1);
        return std::make_pair(MakeOp(o), std::string("disbursement to a fund"));
      }
      case 19: {
        const ModelAccount* from =
            PickOpen([](const ModelAccount& a) { return SinkKind(a.kind) && Accepts(a, kCny); });
        if (from == nullptr) return std::nullopt;
        const std::string from_id = from->id;
        const ModelAccount* to = PickOpen([&](const ModelAccount& a) {
          return SinkKind(a.kind) && Accepts(a, kCny) && a.id != from_id;
        });
        if (to == nullptr) return std::nullopt;
        DisbursementOp o = MakeDisbursement(from_id, to->id, kCny, 1);
        return std::make_pair(MakeOp(o), std::string("disbursement from a recipient"));
      }
      case 20: {
        const ModelAccount* closed = pick_closed([](const ModelAccount& a) { return PoolKind(a.kind); });
        if (closed == nullptr) return std::nullopt;
        const std::string to_id = closed->id;
        const std::string asset = closed->asset;
        const ModelAccount* donor =
            PickOpen([&](const ModelAccount& a) { return SourceKind(a.kind) && Accepts(a, asset); });
        if (donor == nullptr) return std::nullopt;
        DonationOp d = MakeDonation(donor->id, to_id, asset, 100);
        return std::make_pair(MakeOp(d), std::string("donation to a closed fund"));
      }
      case 21: {
        const ModelAccount* closed = pick_closed([](const ModelAccount& a) { return SinkKind(a.kind); });
        if (closed == nullptr) return std::nullopt;
        const std::string to_id = closed->id;
        const std::string to_asset = closed->asset;
        const ModelAccount* from = PickFunded([&](const ModelAccount& a) {
          return PoolKind(a.kind) && (to_asset.empty() || a.asset == to_asset);
        });
        if (from == nullptr) return std::nullopt;
        DisbursementOp o = MakeDisbursement(from->id, to_id, from->asset, 1);
        return std::make_pair(MakeOp(o), std::string("disbursement to a closed recipient"));
      }
      case 22: {
        if (accounts_.empty()) return std::nullopt;
        auto it = accounts_.begin();
        std::advance(it, static_cast<long>(rng_.Index(accounts_.size())));
        Operation op = GenOpen(it->second.kind);
        std::get<OpenAccountOp>(op.body).account = it->first;
        return std::make_pair(std::move(op), std::string("open an existing id"));
      }
      case 23: {
        Operation op = GenOpen();
        std::get<OpenAccountOp>(op.body).kind =
            static_cast<AccountKind>(rng_.Chance(0.5) ? 0 : kAccountKindMax + 1);
        return std::make_pair(std::move(op), std::string("open an unknown kind"));
      }
      case 24: {
        Operation op = GenOpen(rng_.Chance(0.5) ? AccountKind::kFund : AccountKind::kProject);
        std::get<OpenAccountOp>(op.body).asset = "";
        return std::make_pair(std::move(op), std::string("open a holding account without an asset"));
      }
      case 25: {
        Operation op = GenOpen(rng_.Chance(0.5) ? AccountKind::kProject : AccountKind::kRecipient);
        std::get<OpenAccountOp>(op.body).flags = kAccountRestricted;
        return std::make_pair(std::move(op), std::string("RESTRICTED on an account that is not a fund"));
      }
      case 26: {
        Operation op = GenOpen();
        std::get<OpenAccountOp>(op.body).flags = 1u << 3;
        return std::make_pair(std::move(op), std::string("open with an unknown flag"));
      }
      case 27: {
        static const std::string kBad[] = {"", "fund/with space", std::string(kAccountIdBytesMax + 1, 'f'),
                                           "fund/caf\xc3\xa9", "fund/a*b"};
        Operation op = GenOpen();
        std::get<OpenAccountOp>(op.body).account = kBad[rng_.Index(std::size(kBad))];
        return std::make_pair(std::move(op), std::string("open a malformed id"));
      }
      case 28: {
        Operation op = GenOpen(AccountKind::kFund);
        std::get<OpenAccountOp>(op.body).asset = "yuan";
        return std::make_pair(std::move(op), std::string("open with a malformed asset"));
      }
      case 29: {
        CloseAccountOp o = MakeClose(NewAccountId("fund"), "never existed");
        return std::make_pair(MakeOp(o), std::string("close an unknown account"));
      }
      case 30:
        return with(GenClose(), "close without a reason",
                    [](Operation& op) { std::get<CloseAccountOp>(op.body).reason.clear(); });
      case 31: {
        const ModelAccount* full = PickOpen([&](const ModelAccount& a) {
          return HoldingKind(a.kind) && Lo(a.id, a.asset) > 0;
        });
        if (full == nullptr) return std::nullopt;
        CloseAccountOp o = MakeClose(full->id, "winding down");
        return std::make_pair(MakeOp(o), std::string("close a holding account that is not empty"));
      }
      case 32: {
        const ModelAccount* closed = pick_closed([](const ModelAccount&) { return true; });
        if (closed == nullptr) return std::nullopt;
        CloseAccountOp o = MakeClose(closed->id, "again");
        return std::make_pair(MakeOp(o), std::string("close a closed account"));
      }
      case 33: {
        CorrectionOp o = MakeReverse(entries_.size() + 100'000, "no such entry");
        return std::make_pair(MakeOp(o), std::string("reverse an entry beyond the head"));
      }
      case 34: {
        if (entries_.empty()) return std::nullopt;
        const uint64_t seq = static_cast<uint64_t>(rng_.Uniform(1, static_cast<int64_t>(entries_.size())));
        if (entries_[seq - 1].type != EntryType::kOpenAccount) return std::nullopt;
        CorrectionOp o = MakeReverse(seq, "undo an opening");
        return std::make_pair(MakeOp(o), std::string("reverse an OPEN_ACCOUNT entry"));
      }
      case 35:
        return with(GenReverse(), "reverse without a reason",
                    [](Operation& op) { std::get<CorrectionOp>(op.body).reason.clear(); });
      case 36:
        return with(GenReverse(), "reverse with an amount",
                    [](Operation& op) { std::get<CorrectionOp>(op.body).amount = 5; });
      case 37: {
        if (reversed_seqs_.empty()) return std::nullopt;
        CorrectionOp o =
            MakeReverse(reversed_seqs_[rng_.Index(reversed_seqs_.size())], "reverse again");
        return std::make_pair(MakeOp(o), std::string("reverse an entry already reversed"));
      }
      case 38:
      case 39: {
        if (entries_.empty()) return std::nullopt;
        const bool to_donor = which == 38;
        const ModelAccount* from = to_donor
            ? PickFunded([](const ModelAccount& a) { return HoldingKind(a.kind); })
            : PickOpen([](const ModelAccount& a) { return SinkKind(a.kind) && Accepts(a, kCny); });
        if (from == nullptr) return std::nullopt;
        const std::string from_id = from->id;
        const std::string asset = to_donor ? from->asset : std::string(kCny);
        const ModelAccount* to = PickOpen([&](const ModelAccount& a) {
          if (a.id == from_id || !Accepts(a, asset)) return false;
          return to_donor ? SourceKind(a.kind) : SinkKind(a.kind);
        });
        if (to == nullptr) return std::nullopt;
        CorrectionOp o = MakeAdjust(1, "adjust", from_id, to->id, asset, 1);
        return std::make_pair(MakeOp(o), std::string(to_donor ? "adjust to a donor"
                                                              : "adjust out of a recipient"));
      }
      case 40:
        return with(GenAdjust(), "adjust without a reason",
                    [](Operation& op) { std::get<CorrectionOp>(op.body).reason.clear(); });
      case 41: {
        static const std::string kBad[] = {"", "has space", std::string(kClientIdBytesMax + 1, 'c'),
                                           "tab\tid"};
        const std::string bad = kBad[rng_.Index(std::size(kBad))];
        return with(GenDonation(), "malformed client id", [&](Operation& op) { op.client_id = bad; });
      }
      case 42:
        return with(GenReverse(), "correction of an unknown mode", [](Operation& op) {
          std::get<CorrectionOp>(op.body).mode = static_cast<CorrectionMode>(7);
        });
      case 43: {
        std::optional<Operation> op = GenRetryDifferent();
        if (!op) return std::nullopt;
        return std::make_pair(std::move(*op), std::string("client id reused for other content"));
      }
      case 44: {
        Operation op = GenOpen();
        std::get<OpenAccountOp>(op.body).name = std::string(kNameBytesMax + 1, 'n');
        return std::make_pair(std::move(op), std::string("open with an over-long name"));
      }
      case 46:
      case 47:
      case 48: {
        // An item not in the catalogue: never listed, or not yet.
        const ModelAccount* stock = PickOpen([&](const ModelAccount& a) {
          return a.kind == AccountKind::kStock && LookupItem(a.asset) == ItemPresence::kMissing;
        });
        if (stock == nullptr) return std::nullopt;
        const std::string stock_id = stock->id;
        const std::string item = stock->asset;
        if (which == 46) {
          const ModelAccount* donor = PickOpen(
              [&](const ModelAccount& a) { return SourceKind(a.kind) && Accepts(a, item); });
          if (donor == nullptr) return std::nullopt;
          GoodsGiftOp g;
          g.donor = donor->id;
          g.to = stock_id;
          g.item = item;
          g.quantity = 10;
          return std::make_pair(MakeOp(g), std::string("goods gift of an item not in the catalogue"));
        }
        if (which == 47) {
          return with(GenGoodsPurchase(), "goods purchase of an item not in the catalogue",
                      [&](Operation& op) {
                        auto& o = std::get<GoodsPurchaseOp>(op.body);
                        o.to = stock_id;
                        o.item = item;
                      });
        }
        const int64_t kind = rng_.Uniform(0, 2);
        if (kind == 0) {
          return with(GenHandout(3), "handout of an item not in the catalogue", [&](Operation& op) {
            auto& o = std::get<HandoutOp>(op.body);
            o.from = stock_id;
            o.item = item;
          });
        }
        if (kind == 1) {
          return with(GenWriteOff(), "write-off of an item not in the catalogue", [&](Operation& op) {
            auto& o = std::get<WriteOffOp>(op.body);
            o.from = stock_id;
            o.item = item;
            o.lot = 0;
          });
        }
        return with(GenGoodsSale(), "goods sale of an item not in the catalogue", [&](Operation& op) {
          auto& o = std::get<GoodsSaleOp>(op.body);
          o.from = stock_id;
          o.item = item;
        });
      }
      case 49:
        return with(GenGoodsGift(), "goods gift of zero",
                    [](Operation& op) { std::get<GoodsGiftOp>(op.body).quantity = 0; });
      case 50:
        return with(GenGoodsGift(), "goods gift of an expired batch", [&](Operation& op) {
          std::get<GoodsGiftOp>(op.body).expires_us = b_.now_us - rng_.Uniform(0, 3) * kDayUs;
        });
      case 51: {
        // Into a fund: gifts in kind go into a stock of the item.
        const ModelAccount* fund = PickOpen([](const ModelAccount& a) { return PoolKind(a.kind); });
        if (fund == nullptr) return std::nullopt;
        const std::string fund_id = fund->id;
        return with(GenGoodsGift(), "goods gift into a fund",
                    [&](Operation& op) { std::get<GoodsGiftOp>(op.body).to = fund_id; });
      }
      case 52:
        return with(GenGoodsGift(), "goods gift with a value but no value asset", [](Operation& op) {
          auto& g = std::get<GoodsGiftOp>(op.body);
          g.value_asset.clear();
          g.value = 5'000;
        });
      case 53:
        return with(GenHandout(4), "handout naming a recipient twice", [](Operation& op) {
          auto& o = std::get<HandoutOp>(op.body);
          for (HandoutLine& line : o.lines) line.quantity = 1;
          o.lines.push_back(o.lines.front());
        });
      case 54:
        return with(GenHandout(5), "handout of more than the stock holds", [&](Operation& op) {
          auto& o = std::get<HandoutOp>(op.body);
          int64_t others = 0;
          for (size_t i = 1; i < o.lines.size(); ++i) others += o.lines[i].quantity;
          o.lines[0].quantity = std::max<int64_t>(1, Hi(o.from, o.item) + 1 - others);
        });
      case 55:
        return with(GenHandout(3), "handout without lines",
                    [](Operation& op) { std::get<HandoutOp>(op.body).lines.clear(); });
      case 56: {
        const ModelAccount* other = PickOpen([](const ModelAccount& a) {
          return a.asset.empty() && (a.kind == AccountKind::kExpense || a.kind == AccountKind::kSupplier ||
                                     a.kind == AccountKind::kDonor);
        });
        if (other == nullptr) return std::nullopt;
        const std::string other_id = other->id;
        return with(GenHandout(3), "handout to an account that is not a recipient",
                    [&](Operation& op) { std::get<HandoutOp>(op.body).lines.back().recipient = other_id; });
      }
      case 57: {
        // The stock holds another item than the op names.
        const ModelAccount* stock = PickOpen(StockOfCatalogued());
        if (stock == nullptr) return std::nullopt;
        const std::string stock_id = stock->id;
        const std::string stock_item = stock->asset;
        std::optional<Operation> op = rng_.Chance(0.5) ? GenHandout(2) : GenWriteOff();
        if (!op) return std::nullopt;
        const std::string item = std::holds_alternative<HandoutOp>(op->body)
                                     ? std::get<HandoutOp>(op->body).item
                                     : std::get<WriteOffOp>(op->body).item;
        if (item == stock_item) return std::nullopt;
        if (auto* h = std::get_if<HandoutOp>(&op->body)) h->from = stock_id;
        if (auto* w = std::get_if<WriteOffOp>(&op->body)) w->from = stock_id;
        return std::make_pair(std::move(*op), std::string("goods from a stock of another item"));
      }
      case 58: {
        // A money lot: no stock can ever hold it.
        std::vector<uint64_t> money_lots;
        for (const auto& [lot, model] : lots_) {
          if (model.info.asset == kCny) money_lots.push_back(lot);
        }
        if (money_lots.empty()) return std::nullopt;
        const uint64_t lot = money_lots[rng_.Index(money_lots.size())];
        return with(GenWriteOff(), "write-off of a lot the stock does not hold", [&](Operation& op) {
          auto& o = std::get<WriteOffOp>(op.body);
          o.lot = lot;
          o.quantity = 1;
        });
      }
      case 59:
        // Entry 1 opened an account: it made no lot.
        return with(GenWriteOff(), "write-off of a lot that does not exist", [](Operation& op) {
          auto& o = std::get<WriteOffOp>(op.body);
          o.lot = 1;
          o.quantity = 1;
        });
      case 60:
        return with(GenWriteOff(), "write-off without a reason",
                    [](Operation& op) { std::get<WriteOffOp>(op.body).reason.clear(); });
      case 61: {
        const ModelAccount* recipient = PickOpen([](const ModelAccount& a) {
          return a.kind == AccountKind::kRecipient && a.asset.empty();
        });
        if (recipient == nullptr) return std::nullopt;
        const std::string recipient_id = recipient->id;
        return with(GenWriteOff(), "write-off to a recipient",
                    [&](Operation& op) { std::get<WriteOffOp>(op.body).to = recipient_id; });
      }
      case 62: {
        const ModelAccount* supplier = PickOpen([](const ModelAccount& a) {
          return a.kind == AccountKind::kSupplier && !a.asset.empty();
        });
        if (supplier == nullptr) return std::nullopt;
        const std::string supplier_id = supplier->id;
        return with(GenGoodsPurchase(), "goods purchase from a supplier with a fixed asset",
                    [&](Operation& op) { std::get<GoodsPurchaseOp>(op.body).supplier = supplier_id; });
      }
      case 63: {
        const ModelAccount* stock = PickOpen(StockOfCatalogued());
        if (stock == nullptr) return std::nullopt;
        const std::string stock_id = stock->id;
        return with(GenGoodsPurchase(), "goods purchase paid from a stock",
                    [&](Operation& op) { std::get<GoodsPurchaseOp>(op.body).from = stock_id; });
      }
      case 64: {
        const ModelAccount* buyer = PickOpen([](const ModelAccount& a) {
          return a.kind == AccountKind::kMerchant && !a.asset.empty();
        });
        if (buyer == nullptr) return std::nullopt;
        const std::string buyer_id = buyer->id;
        return with(GenGoodsSale(), "goods sale to a buyer with a fixed asset",
                    [&](Operation& op) { std::get<GoodsSaleOp>(op.body).buyer = buyer_id; });
      }
      case 65: {
        const ModelAccount* fund = PickOpen(
            [](const ModelAccount& a) { return PoolKind(a.kind) && a.asset != kCny; });
        if (fund == nullptr) return std::nullopt;
        const std::string fund_id = fund->id;
        return with(GenGoodsSale(), "goods sale with the proceeds into a fund of goods",
                    [&](Operation& op) { std::get<GoodsSaleOp>(op.body).to = fund_id; });
      }
      case 66: {
        ItemOp o;
        o.item = CataloguedItem();
        o.name = "again";
        o.unit = "box";
        return std::make_pair(MakeOp(o), std::string("item already in the catalogue"));
      }
      case 67: {
        static const char* const kBadUnits[] = {"", "Box", "kg2", "abcdefghijklmnopq"};
        ItemOp o;
        o.item = rng_.Chance(0.3) ? (rng_.Chance(0.5) ? "CNY" : "item:Tea") : "item:tea";
        o.name = rng_.Chance(0.2) ? "" : "Tea";
        o.unit = o.item == "item:tea" && !o.name.empty() ? kBadUnits[rng_.Index(std::size(kBadUnits))]
                                                          : "box";
        return std::make_pair(MakeOp(o), std::string("item with a malformed code, name or unit"));
      }
      case 68: {
        if (goods_seqs_.empty()) return std::nullopt;
        CorrectionOp o = MakeReverse(goods_seqs_[rng_.Index(goods_seqs_.size())], "undo goods");
        return std::make_pair(MakeOp(o), std::string("reverse a goods entry other than a gift"));
      }
      case 69:
        return with(GenGoodsSale(), "goods sale of more than the stock holds", [&](Operation& op) {
          auto& o = std::get<GoodsSaleOp>(op.body);
          o.quantity = Hi(o.from, o.item) + 1;
        });
      default: {
        CorrectionOp o = MakeAdjust(entries_.size() + kBatchOpsMax + 1, "no such entry", "fund/general",
                                    "fund/relief", kCny, 1);
        return std::make_pair(MakeOp(o), std::string("adjust referring to no entry"));
      }
    }
  }

  void AddInvalid() {
    std::optional<std::pair<Operation, std::string>> designed;
    for (int attempt = 0; attempt < 6 && !designed; ++attempt) designed = TryInvalid(rng_.Uniform(0, 69));
    if (!designed) {
      Operation op = MakeOp(MakeClose("fund/general", "x"));
      op.client_id.clear();
      designed = std::make_pair(std::move(op), std::string("empty client id"));
    }
    const size_t index = b_.ops.size();
    Add(std::move(designed->first), "invalid: " + designed->second);
    const PlannedOp& added = b_.ops[index];
    EXPECT_EQ(added.prediction.expect, Expect::kFail)
        << "test bug: an op designed to fail is not predicted to: " << Describe(added.op) << " ("
        << added.label << ")";
  }

  void AddChain(bool open_ended) {
    BeginChain();
    const int64_t length = rng_.Uniform(2, 6);
    const int64_t invalid_at = !open_ended && rng_.Chance(0.25) ? rng_.Uniform(0, length - 1) : -1;
    const bool new_fund_first = rng_.Chance(0.25);
    for (int64_t i = 0; i < length; ++i) {
      if (i == invalid_at) {
        AddInvalid();
        continue;
      }
      std::optional<Operation> op;
      std::string label = "chain";
      if (i == 0 && new_fund_first) {
        op = GenOpen(rng_.Chance(0.7) ? AccountKind::kFund : AccountKind::kProject);
        label = "chain: open a pool, then use it";
      } else {
        op = GenValid();
      }
      if (!op) op = GenDonation();
      if (op) Add(std::move(*op), label);
    }
    EndChain(open_ended);
  }

  void AddSomething() {
    // 100..119: goods.
    const int64_t r = rng_.Uniform(0, 119);
    std::optional<Operation> op;
    std::string label;
    if (r < 27) {
      op = GenDonation(), label = "donation";
    } else if (r < 42) {
      op = GenAllocation(), label = "allocation";
    } else if (r < 54) {
      op = GenDisbursement(), label = "disbursement";
    } else if (r < 58) {
      op = GenAdjust(), label = "adjust";
    } else if (r < 65) {
      op = GenReverse(), label = "reverse";
    } else if (r < 68) {
      op = GenOpen(), label = "open";
    } else if (r < 70) {
      op = GenClose(), label = "close";
    } else if (r < 74) {
      op = GenRetrySame(), label = "retry, same content";
    } else if (r < 75) {
      op = GenRepeatInBatch(/*same_content=*/true), label = "repeat within the batch";
    } else if (r < 76) {
      op = GenRepeatInBatch(/*same_content=*/false), label = "client id reused within the batch";
    } else if (r < 77) {
      op = GenReuseFailedClientId(), label = "client id of a failed op, reused";
    } else if (r < 92) {
      AddInvalid();
      return;
    } else if (r < 100) {
      AddChain(/*open_ended=*/false);
      return;
    } else {
      op = GenGoods(), label = "goods";
    }
    if (!op) op = GenDonation(), label = "donation (fallback)";
    if (!op) op = GenOpen(), label = "open (fallback)";
    Add(std::move(*op), label);
  }

  void Bootstrap() {
    SCOPED_TRACE("bootstrap batch");
    b_ = Batch{};
    struct Core {
      const char* id;
      AccountKind kind;
      const char* asset;
      uint32_t flags;
    };
    static constexpr Core kCore[] = {
        {"donor/alice", AccountKind::kDonor, "", 0},
        {"donor/bob", AccountKind::kDonor, "", 0},
        {"donor/medical-co", AccountKind::kDonor, kCny, 0},
        {"donor/farm", AccountKind::kDonor, kRice, 0},
        {"merchant/warm-mall", AccountKind::kMerchant, kCny, 0},
        {"fund/general", AccountKind::kFund, kCny, 0},
        {"fund/relief", AccountKind::kFund, kCny, 0},
        {"fund/education", AccountKind::kFund, kCny, kAccountRestricted},
        {"fund/goods", AccountKind::kFund, kRice, 0},
        {"project/homes", AccountKind::kProject, kCny, 0},
        {"project/bench", AccountKind::kProject, kCny, 0},
        {"project/vegetables", AccountKind::kProject, kRice, 0},
        {"recipient/r1", AccountKind::kRecipient, "", 0},
        {"recipient/r2", AccountKind::kRecipient, kCny, 0},
        {"recipient/r3", AccountKind::kRecipient, kRice, 0},
        {"supplier/builder", AccountKind::kSupplier, kCny, 0},
        {"supplier/grocer", AccountKind::kSupplier, "", 0},
        {"expense/office", AccountKind::kExpense, "", 0},
        // Goods: suppliers and buyers of goods name no asset (they take one
        // and give the other); a stock holds one item.
        {"donor/oil-mill", AccountKind::kDonor, kOil, 0},
        {"merchant/charity-shop", AccountKind::kMerchant, "", 0},
        {"supplier/wholesale", AccountKind::kSupplier, "", 0},
        {"stock/oil", AccountKind::kStock, kOil, 0},
        {"stock/oil-annex", AccountKind::kStock, kOil, 0},
        {"stock/blankets", AccountKind::kStock, kBlanket, 0},
        {"stock/rice", AccountKind::kStock, kRice, 0},
        {"stock/unlisted", AccountKind::kStock, kUnlisted, 0},
        {"recipient/r4", AccountKind::kRecipient, "", 0},
        {"recipient/r5", AccountKind::kRecipient, kOil, 0},
        {"recipient/r6", AccountKind::kRecipient, "", 0},
        {"expense/spoilage", AccountKind::kExpense, "", 0},
    };
    b_.now_us = std::max(clock_.NowMicros(), last_time_us_);
    for (const Core& c : kCore) {
      OpenAccountOp o = MakeOpen(c.id, c.kind, c.asset, c.flags, std::string("core ") + c.id);
      core_accounts_.insert(c.id);
      Add(MakeOp(o), "bootstrap open");
    }
    Add(MakeOp(ItemOp{kOil, "Cooking oil, 5 L", "bottle"}), "bootstrap item");
    Add(MakeOp(ItemOp{kBlanket, "Winter blanket", "piece"}), "bootstrap item");
    for (const PlannedOp& p : b_.ops) {
      EXPECT_EQ(p.prediction.expect, Expect::kOk) << "test bug: " << Describe(p.op);
    }
    SubmitAndCheck(/*deep=*/true);
  }

  void RunBatch() {
    b_ = Batch{};
    // The clock mostly moves forward, sometimes not at all and sometimes
    // back: entry times must stay non-decreasing whatever it says.
    if (rng_.Chance(0.03)) {
      clock_.AdvanceMicros(-5'000'000);
    } else {
      clock_.AdvanceMicros(rng_.Uniform(0, 2'000));
    }
    b_.now_us = std::max(clock_.NowMicros(), last_time_us_);
    const int64_t target = rng_.Chance(0.1) ? rng_.Uniform(1, 5) : rng_.Uniform(1, kTestBatchOpsMax);
    while (static_cast<int64_t>(b_.ops.size()) < target) AddSomething();
    if (rng_.Chance(0.03)) AddChain(/*open_ended=*/true);
    SubmitAndCheck(batch_index_ % kDigestEveryBatches == 0);
  }

  // ---- Submitting and checking. ----

  void SubmitAndCheck(bool deep) {
    const LedgerHead before = ledger_->Head();
    std::vector<Operation> ops;
    ops.reserve(b_.ops.size());
    for (const PlannedOp& p : b_.ops) ops.push_back(p.op);
    submitted_ops_ += static_cast<int64_t>(ops.size());
    const std::vector<OpResult> results = ledger_->Submit(ops);
    ASSERT_EQ(results.size(), ops.size());
    for (const Group& g : b_.groups) CheckGroup(g, results);
    ApplyResults(results, before);
    if (::testing::Test::HasFailure()) return;
    CheckState(deep);
  }

  std::string Explain(size_t i, const std::vector<OpResult>& results) const {
    const PlannedOp& p = b_.ops[i];
    std::ostringstream out;
    out << "op #" << i << " " << Describe(p.op) << " (" << p.label << "; predicted "
        << ToString(p.prediction) << ") -> " << results[i].status
        << (results[i].duplicate ? " duplicate" : "") << " seq=" << results[i].seq;
    return out.str();
  }

  void CheckGroup(const Group& g, const std::vector<OpResult>& results) {
    if (g.open_ended) {
      for (size_t i = g.begin; i < g.end; ++i) {
        EXPECT_EQ(results[i].status.code(), StatusCode::kInvalidArgument)
            << "a chain left open must be INVALID_ARGUMENT for all its ops: " << Explain(i, results);
      }
      return;
    }
    if (g.end - g.begin == 1) {
      CheckStandalone(g.begin, results);
      return;
    }
    bool all_ok = true;
    for (size_t i = g.begin; i < g.end; ++i) all_ok = all_ok && results[i].status.ok();
    if (all_ok) {
      for (size_t i = g.begin; i < g.end; ++i) {
        EXPECT_NE(b_.ops[i].prediction.expect, Expect::kFail)
            << "a chain succeeded although this op had to fail: " << Explain(i, results);
        EXPECT_FALSE(results[i].duplicate) << Explain(i, results);
      }
      return;
    }
    // A failed chain: one op carries its real error, all others ABORTED.
    size_t first_certain = g.end;
    for (size_t i = g.begin; i < g.end; ++i) {
      if (b_.ops[i].prediction.expect == Expect::kFail) {
        first_certain = i;
        break;
      }
    }
    std::vector<size_t> real;
    std::string all;
    for (size_t i = g.begin; i < g.end; ++i) {
      all += "\n  " + Explain(i, results);
      if (results[i].status.ok()) continue;
      if (results[i].status.code() != StatusCode::kAborted) real.push_back(i);
    }
    for (size_t i = g.begin; i < g.end; ++i) {
      EXPECT_FALSE(results[i].status.ok()) << "an op of a failed chain succeeded:" << all;
    }
    ASSERT_EQ(real.size(), 1u) << "a failed chain must give exactly one real error:" << all;
    const size_t k = real[0];
    const Prediction& p = b_.ops[k].prediction;
    const bool may_fail = p.expect == Expect::kFail || p.expect == Expect::kUnknown;
    // Stateless defects may be found before anything is applied, so such an
    // op may carry the error even after an op that fails on state.
    EXPECT_TRUE(may_fail && (k <= first_certain || p.IsStateless()) && p.Allows(results[k].status.code()))
        << "unexpected failing op #" << k << " in chain:" << all;
  }

  void CheckStandalone(size_t i, const std::vector<OpResult>& results) {
    const Prediction& p = b_.ops[i].prediction;
    const OpResult& r = results[i];
    switch (p.expect) {
      case Expect::kOk:
        EXPECT_TRUE(r.status.ok() && !r.duplicate) << Explain(i, results);
        break;
      case Expect::kDuplicate: {
        ASSERT_TRUE(r.status.ok() && r.duplicate) << Explain(i, results);
        uint64_t seq = p.duplicate_seq;
        int64_t time_us = 0;
        if (p.duplicate_of >= 0) {
          seq = results[static_cast<size_t>(p.duplicate_of)].seq;
          time_us = results[static_cast<size_t>(p.duplicate_of)].time_us;
        } else {
          time_us = entries_[seq - 1].time_us;
        }
        EXPECT_EQ(r.seq, seq) << "a retry must return the original seq: " << Explain(i, results);
        EXPECT_EQ(r.time_us, time_us) << "a retry must return the original result: " << Explain(i, results);
        break;
      }
      case Expect::kFail:
        EXPECT_TRUE(!r.status.ok() && p.Allows(r.status.code())) << Explain(i, results);
        break;
      case Expect::kUnknown:
        if (r.status.ok()) {
          EXPECT_FALSE(r.duplicate) << Explain(i, results);
        } else {
          EXPECT_TRUE(p.Allows(r.status.code())) << Explain(i, results);
        }
        break;
    }
  }

  void ApplyResults(const std::vector<OpResult>& results, const LedgerHead& before) {
    uint64_t fresh = 0;
    for (const OpResult& r : results) {
      if (r.status.ok() && !r.duplicate) ++fresh;
    }
    EXPECT_EQ(ledger_->Head().seq, before.seq + fresh)
        << "the head must advance by exactly the number of new entries";
    std::vector<StoredEntry> stored;
    if (fresh > 0) {
      auto read = ledger_->ReadEntries(before.seq + 1, fresh);
      ASSERT_TRUE(read.ok()) << read.status();
      stored = std::move(*read);
      ASSERT_EQ(stored.size(), fresh);
    }
    std::vector<std::string> failed_opens;
    size_t k = 0;
    for (size_t i = 0; i < results.size(); ++i) {
      const OpResult& r = results[i];
      const PlannedOp& p = b_.ops[i];
      if (!r.status.ok()) {
        ++failure_codes_[absl::StatusCodeToString(r.status.code())];
        if (auto* o = std::get_if<OpenAccountOp>(&p.op.body); o && IsValidAccountId(o->account)) {
          failed_opens.push_back(o->account);
        }
        continue;
      }
      if (r.duplicate) {
        ++duplicates_;
        continue;
      }
      EXPECT_EQ(r.seq, before.seq + k + 1) << "seqs are dense, in op order: " << Explain(i, results);
      ApplyEntry(p.op, stored[k], r);
      ++k;
      if (::testing::Test::HasFailure()) return;
    }
    for (size_t i = 0; i < results.size(); ++i) {
      const std::string& id = b_.ops[i].op.client_id;
      if (!results[i].status.ok() && IsValidClientId(id) && client_seq_.count(id) == 0) {
        failed_client_ids_.push_back(id);
      }
    }
    // A rejected OPEN_ACCOUNT must leave no account behind.
    for (const std::string& id : failed_opens) {
      if (accounts_.count(id) > 0) continue;
      auto info = ledger_->GetAccount(id);
      EXPECT_EQ(info.status().code(), StatusCode::kNotFound) << id << " after a failed open";
    }
  }

  // Applies one new entry to the model, checking what the engine recorded.
  void ApplyEntry(const Operation& op, const StoredEntry& stored, const OpResult& r) {
    const Entry& e = stored.entry;
    const uint64_t seq = entries_.size() + 1;
    EXPECT_EQ(e.version, Entry{}.version) << "new entries carry the current entry version";
    EXPECT_EQ(e.seq, seq);
    EXPECT_EQ(e.client_id, op.client_id);
    EXPECT_TRUE(e.body == op.body) << "the entry must record the operation as requested: "
                                   << Describe(op);
    EXPECT_EQ(e.time_us, r.time_us);
    EXPECT_GE(e.time_us, last_time_us_) << "entry times must not decrease (seq " << seq << ")";
    // Expiries are predicted against this time.
    EXPECT_EQ(e.time_us, b_.now_us) << "seq " << seq << ": the clock, or the head's time";
    EXPECT_EQ(e.prev_hash, last_hash_) << "seq " << seq;
    EXPECT_FALSE(stored.bytes.empty());

    ModelEntry me;
    me.op = op;
    me.op.linked = false;
    me.type = TypeOf(op.body);
    me.time_us = e.time_us;
    std::string policy = "none";
    auto fifo_posting = [&](const std::string& from, const std::string& to, const std::string& asset,
                            int64_t amount) {
      Posting p = MakePosting(from, to, asset, amount, {});
      if (!TakeFifo(holdings_[from], amount, &p.slices)) {
        ADD_FAILURE() << "seq " << seq << " took more out of " << from << " than it held: "
                      << Describe(op);
      }
      if (HoldingKind(accounts_.at(to).kind)) {
        for (const Slice& s : p.slices) AppendSlice(holdings_[to], s);
      }
      policy = "fifo/v1";
      return p;
    };
    // Takes from a stock in `order` (fefo/v1 or lot/v1), to a place that
    // holds nothing (recipients, expenses, buyers).
    auto ordered_posting = [&](const std::string& from, const std::string& to, const std::string& item,
                               int64_t amount, const std::vector<size_t>& order, size_t* cursor) {
      Posting p = MakePosting(from, to, item, amount, {});
      if (!TakeInOrder(holdings_[from], order, cursor, amount, &p.slices)) {
        ADD_FAILURE() << "seq " << seq << " took more out of " << from << " than it held: "
                      << Describe(op);
      }
      return p;
    };
    auto fefo_order = [&](const std::string& stock) {
      return FefoOrder(holdings_[stock], [&](uint64_t lot) { return lots_.at(lot).info.expires_us; });
    };
    auto new_lot = [&](const std::string& donor, const std::string& to, const std::string& asset,
                       int64_t amount, bool anonymous) -> ModelLot& {
      ModelLot& lot = lots_[seq];
      lot.info.lot = seq;
      lot.info.donor = donor;
      lot.info.to = to;
      lot.info.asset = asset;
      lot.info.amount = amount;
      lot.info.time_us = e.time_us;
      lot.info.anonymous = anonymous;
      lot.info.created_by = me.type;
      return lot;
    };
    // A conversion: the lots of the first posting are the new lot's parents,
    // in the order they first appear, each with what it gave and its share.
    auto record_parents = [&](ModelLot& made) {
      std::map<uint64_t, size_t> index;
      std::vector<LotParent>& parents = made.info.parents;
      for (const Slice& s : me.postings.at(0).slices) {
        auto [it, added] = index.try_emplace(s.lot, parents.size());
        if (added) {
          const LotInfo& parent = lots_.at(s.lot).info;
          parents.push_back({s.lot, parent.donor, parent.anonymous, parent.asset, 0, 0});
        }
        parents[it->second].consumed += s.amount;
      }
      std::vector<int64_t> weights;
      for (const LotParent& p : parents) weights.push_back(p.consumed);
      const std::vector<int64_t> shares = LargestRemainder(made.info.amount, weights);
      for (size_t i = 0; i < parents.size(); ++i) {
        parents[i].share = shares[i];
        lots_.at(parents[i].lot).conversions.push_back({seq, parents[i].consumed, shares[i]});
      }
      made.info.parent_count = parents.size();
    };
    std::visit(Overloaded{
                   [&](const OpenAccountOp& o) {
                     ModelAccount a;
                     a.id = o.account;
                     a.kind = o.kind;
                     a.asset = o.asset;
                     a.flags = o.flags;
                     a.name = o.name;
                     a.restricted = o.kind == AccountKind::kProject || (o.flags & kAccountRestricted) != 0;
                     a.opened_seq = seq;
                     accounts_[o.account] = a;
                     if (HoldingKind(o.kind)) holdings_[o.account];
                   },
                   [&](const CloseAccountOp& o) { accounts_.at(o.account).closed = true; },
                   [&](const DonationOp& o) {
                     me.postings.push_back(MakePosting(o.donor, o.to, o.asset, o.amount, {{seq, o.amount}}));
                     AppendSlice(holdings_[o.to], {seq, o.amount});
                     ModelLot lot;
                     lot.info.lot = seq;
                     lot.info.donor = o.donor;
                     lot.info.to = o.to;
                     lot.info.asset = o.asset;
                     lot.info.amount = o.amount;
                     lot.info.time_us = e.time_us;
                     lot.info.anonymous = (o.flags & kDonationAnonymous) != 0;
                     lots_[seq] = lot;
                     value_seqs_.push_back(seq);
                   },
                   [&](const AllocationOp& o) {
                     me.postings.push_back(fifo_posting(o.from, o.to, o.asset, o.amount));
                     value_seqs_.push_back(seq);
                   },
                   [&](const DisbursementOp& o) {
                     me.postings.push_back(fifo_posting(o.from, o.to, o.asset, o.amount));
                     value_seqs_.push_back(seq);
                   },
                   [&](const CorrectionOp& o) {
                     if (o.mode == CorrectionMode::kAdjust) {
                       me.postings.push_back(fifo_posting(o.from, o.to, o.asset, o.amount));
                       return;
                     }
                     ModelEntry& ref = entries_.at(o.ref_seq - 1);
                     const Posting original = ref.postings.at(0);
                     EXPECT_FALSE(ref.reversed) << "seq " << seq << " reversed seq " << o.ref_seq << " twice";
                     ref.reversed = true;
                     reversed_seqs_.push_back(o.ref_seq);
                     if (ref.type == EntryType::kGoodsGift) ++reversed_goods_gifts_;
                     policy = "reverse/v1";
                     if (HoldingKind(accounts_.at(original.to).kind) &&
                         !TakeLots(holdings_[original.to], original.slices)) {
                       ADD_FAILURE() << "seq " << seq << " reversed seq " << o.ref_seq
                                     << " although its lots were no longer in " << original.to;
                     }
                     if (HoldingKind(accounts_.at(original.from).kind)) {
                       for (const Slice& s : original.slices) AppendSlice(holdings_[original.from], s);
                     }
                     me.postings.push_back(MakePosting(original.to, original.from, original.asset,
                                                       original.amount, original.slices));
                   },
                   [&](const ItemOp& o) {
                     items_[o.item] = ItemInfo{o.item, o.name, o.unit, seq, 0};
                     item_order_.push_back(o.item);
                   },
                   [&](const GoodsGiftOp& o) {
                     me.postings.push_back(
                         MakePosting(o.donor, o.to, o.item, o.quantity, {{seq, o.quantity}}));
                     AppendSlice(holdings_[o.to], {seq, o.quantity});
                     ModelLot& lot =
                         new_lot(o.donor, o.to, o.item, o.quantity, (o.flags & kDonationAnonymous) != 0);
                     lot.info.grade = o.grade;
                     lot.info.expires_us = o.expires_us;
                     lot.info.value_asset = o.value_asset;
                     lot.info.value = o.value;
                     value_seqs_.push_back(seq);
                   },
                   [&](const GoodsPurchaseOp& o) {
                     me.postings.push_back(fifo_posting(o.from, o.supplier, o.asset, o.price));
                     me.postings.push_back(
                         MakePosting(o.supplier, o.to, o.item, o.quantity, {{seq, o.quantity}}));
                     AppendSlice(holdings_[o.to], {seq, o.quantity});
                     ModelLot& lot = new_lot(o.supplier, o.to, o.item, o.quantity, false);
                     lot.info.grade = o.grade;
                     lot.info.expires_us = o.expires_us;
                     record_parents(lot);
                     goods_seqs_.push_back(seq);
                   },
                   [&](const HandoutOp& o) {
                     const std::vector<size_t> order = fefo_order(o.from);
                     size_t cursor = 0;
                     for (const HandoutLine& line : o.lines) {
                       me.postings.push_back(
                           ordered_posting(o.from, line.recipient, o.item, line.quantity, order, &cursor));
                     }
                     PopEmptyFront(holdings_[o.from]);
                     policy = "fefo/v1";
                     goods_seqs_.push_back(seq);
                   },
                   [&](const WriteOffOp& o) {
                     std::vector<size_t> order;
                     if (o.lot == 0) {
                       order = fefo_order(o.from);
                       policy = "fefo/v1";
                     } else {
                       const std::deque<Slice>& slices = holdings_[o.from];
                       for (size_t i = 0; i < slices.size(); ++i) {
                         if (slices[i].lot == o.lot && slices[i].amount > 0) order.push_back(i);
                       }
                       policy = "lot/v1";
                     }
                     size_t cursor = 0;
                     me.postings.push_back(
                         ordered_posting(o.from, o.to, o.item, o.quantity, order, &cursor));
                     PopEmptyFront(holdings_[o.from]);
                     goods_seqs_.push_back(seq);
                   },
                   [&](const GoodsSaleOp& o) {
                     const std::vector<size_t> order = fefo_order(o.from);
                     size_t cursor = 0;
                     me.postings.push_back(
                         ordered_posting(o.from, o.buyer, o.item, o.quantity, order, &cursor));
                     PopEmptyFront(holdings_[o.from]);
                     policy = "fefo/v1";
                     me.postings.push_back(
                         MakePosting(o.buyer, o.to, o.asset, o.proceeds, {{seq, o.proceeds}}));
                     AppendSlice(holdings_[o.to], {seq, o.proceeds});
                     record_parents(new_lot(o.buyer, o.to, o.asset, o.proceeds, false));
                     goods_seqs_.push_back(seq);
                   },
                   [&](const auto&) { ADD_FAILURE() << "the stream has no checkout operations"; },
               },
               op.body);
    EXPECT_EQ(e.policy, policy) << "seq " << seq << " " << Describe(op);
    EXPECT_TRUE(e.postings == me.postings)
        << "seq " << seq << " " << Describe(op) << "\n  recorded: " << Describe(e.postings)
        << "\n  expected: " << Describe(me.postings);

    for (const Posting& p : me.postings) {
      for (const Slice& s : p.slices) {
        changed_lots_.insert(s.lot);
        for (const LotParent& parent : lots_.at(s.lot).info.parents) changed_lots_.insert(parent.lot);
      }
      balances_[p.from][p.asset] -= p.amount;
      balances_[p.to][p.asset] += p.amount;
      // One hop per lot per posting; where the lot ended if it left the
      // holding accounts (a sink, or a source for a returned gift).
      std::vector<uint64_t> order;
      std::map<uint64_t, int64_t> per_lot;
      for (const Slice& s : p.slices) {
        if (per_lot[s.lot] == 0) order.push_back(s.lot);
        per_lot[s.lot] += s.amount;
      }
      for (uint64_t lot : order) {
        ModelLot& ml = lots_.at(lot);
        TraceHop hop;
        hop.seq = seq;
        hop.time_us = e.time_us;
        hop.type = me.type;
        hop.from = p.from;
        hop.to = p.to;
        hop.amount = per_lot[lot];
        ml.hops.push_back(hop);
        if (!HoldingKind(accounts_.at(p.to).kind)) ml.reached[p.to] += per_lot[lot];
        // A disbursement taken back; not the lot's creation (a supplier's
        // delivery: the source's own debit is no place of the lot).
        if (SinkKind(accounts_.at(p.from).kind) && lot != seq) {
          if ((ml.reached[p.from] -= per_lot[lot]) == 0) ml.reached.erase(p.from);
        }
      }
    }
    ++ok_by_type_[TypeLabel(op.body)];
    client_seq_[op.client_id] = seq;
    entries_.push_back(std::move(me));
    last_hash_ = stored.hash;
    last_time_us_ = e.time_us;

    if (lots_.count(seq) > 0) {  // the entry made a lot
      auto lot = ledger_->GetLot(seq);
      ASSERT_TRUE(lot.ok()) << lot.status();
      CheckLotInfo(*lot, lots_.at(seq).info);
    }
    CheckEntryTrace(seq);
  }

  void CheckLotInfo(const LotInfo& got, const LotInfo& want) {
    EXPECT_EQ(got.lot, want.lot);
    EXPECT_EQ(got.donor, want.donor) << "lot " << want.lot;
    EXPECT_EQ(got.to, want.to) << "lot " << want.lot;
    EXPECT_EQ(got.asset, want.asset) << "lot " << want.lot;
    EXPECT_EQ(got.amount, want.amount) << "lot " << want.lot;
    EXPECT_EQ(got.time_us, want.time_us) << "lot " << want.lot;
    EXPECT_EQ(got.anonymous, want.anonymous) << "lot " << want.lot;
    EXPECT_EQ(got.created_by, want.created_by) << "lot " << want.lot;
    EXPECT_EQ(got.grade, want.grade) << "lot " << want.lot;
    EXPECT_EQ(got.expires_us, want.expires_us) << "lot " << want.lot;
    EXPECT_EQ(got.value_asset, want.value_asset) << "lot " << want.lot;
    EXPECT_EQ(got.value, want.value) << "lot " << want.lot;
    EXPECT_EQ(got.parent_count, want.parent_count) << "lot " << want.lot;
    EXPECT_EQ(got.parents, want.parents) << "parents of lot " << want.lot;
    if (got.created_by != EntryType::kGoodsPurchase && got.created_by != EntryType::kGoodsSale) {
      EXPECT_TRUE(got.parents.empty()) << "lot " << want.lot << " was made by no conversion";
      return;
    }
    // The parents' shares make up the lot; what they gave is the first posting.
    int64_t shares = 0;
    int64_t consumed = 0;
    for (const LotParent& p : got.parents) {
      EXPECT_GT(p.consumed, 0) << "lot " << want.lot << " parent " << p.lot;
      EXPECT_GE(p.share, 0) << "lot " << want.lot << " parent " << p.lot;
      shares += p.share;
      consumed += p.consumed;
    }
    EXPECT_EQ(shares, got.amount) << "the parents' shares of lot " << want.lot;
    ASSERT_LE(want.lot, entries_.size());
    EXPECT_EQ(consumed, entries_[want.lot - 1].postings.at(0).amount)
        << "what the parents of lot " << want.lot << " gave";
  }

  // (d) The backward trace of an entry, read page by page, is its slices and
  // sums to its outflow.
  void CheckEntryTrace(uint64_t seq) {
    const ModelEntry& me = entries_.at(seq - 1);
    std::vector<std::tuple<uint64_t, uint64_t, int64_t>> expected;  // posting, lot, amount
    int64_t outflow = 0;
    for (size_t pi = 0; pi < me.postings.size(); ++pi) {
      outflow += me.postings[pi].amount;
      for (const Slice& s : me.postings[pi].slices) expected.emplace_back(pi, s.lot, s.amount);
    }
    const uint64_t limit = static_cast<uint64_t>(check_rng_.Uniform(1, 64));
    std::vector<std::tuple<uint64_t, uint64_t, int64_t>> got;
    int64_t sum = 0;
    uint64_t offset = 0;
    for (size_t page_count = 0; page_count <= expected.size() / limit + 1; ++page_count) {
      auto page = ledger_->TraceEntry(seq, offset, limit);
      ASSERT_TRUE(page.ok()) << "TraceEntry(" << seq << "): " << page.status();
      EXPECT_EQ(page->seq, seq);
      EXPECT_EQ(page->type, me.type) << "seq " << seq;
      EXPECT_EQ(page->outflow, outflow) << "seq " << seq;
      EXPECT_EQ(page->total_count, expected.size()) << "seq " << seq;
      EXPECT_EQ(page->offset, offset) << "seq " << seq;
      EXPECT_LE(page->sources.size(), limit);
      std::set<uint64_t> listed_on_page;
      for (const TraceSource& s : page->sources) {
        got.emplace_back(s.posting_index, s.lot, s.amount);
        sum += s.amount;
        EXPECT_GT(s.amount, 0) << "seq " << seq;
        auto lot = lots_.find(s.lot);
        if (lot == lots_.end()) {
          ADD_FAILURE() << "seq " << seq << " traces to lot " << s.lot << " that is no donation";
          continue;
        }
        EXPECT_EQ(s.anonymous, lot->second.info.anonymous) << "seq " << seq << " lot " << s.lot;
        // An anonymous lot may hide its donor in a trace.
        if (!s.anonymous || !s.donor.empty()) {
          EXPECT_EQ(s.donor, lot->second.info.donor) << "seq " << seq << " lot " << s.lot;
        }
        // Behind a converted lot: its parents (what each paid and its share
        // of the whole lot), listed on the page's first source of the lot.
        const std::vector<LotParent>& parents = lot->second.info.parents;
        EXPECT_EQ(s.behind_count, parents.size()) << "seq " << seq << " lot " << s.lot;
        const bool first_of_lot = listed_on_page.insert(s.lot).second;
        if (!first_of_lot) {
          EXPECT_TRUE(s.behind.empty()) << "seq " << seq << " lot " << s.lot;
        } else if (s.behind.size() == s.behind_count) {  // not cut by the page's bound
          std::vector<std::pair<uint64_t, int64_t>> got_behind;
          std::vector<std::pair<uint64_t, int64_t>> want_behind;
          int64_t share_sum = 0;
          for (const LotParent& p : s.behind) {
            got_behind.emplace_back(p.lot, p.share);
            share_sum += p.share;
          }
          for (const LotParent& p : parents) want_behind.emplace_back(p.lot, p.share);
          EXPECT_EQ(got_behind, want_behind) << "behind seq " << seq << " lot " << s.lot;
          if (!parents.empty()) {
            EXPECT_EQ(share_sum, lot->second.info.amount) << "seq " << seq << " lot " << s.lot;
          }
        }
      }
      offset += page->sources.size();
      if (page->sources.empty() || offset >= page->total_count) break;
    }
    EXPECT_EQ(got, expected) << "backward trace of seq " << seq;
    EXPECT_EQ(sum, outflow) << "backward trace of seq " << seq << " must sum to its outflow";
  }

  std::vector<Slice> ReadHoldings(const std::string& id, uint64_t* total_count) {
    std::vector<Slice> all;
    const uint64_t limit = static_cast<uint64_t>(check_rng_.Uniform(16, 1000));
    uint64_t offset = 0;
    for (int page_count = 0; page_count < 100'000; ++page_count) {
      auto page = ledger_->GetHoldings(id, offset, limit);
      if (!page.ok()) {
        ADD_FAILURE() << "GetHoldings(" << id << "): " << page.status();
        break;
      }
      EXPECT_EQ(page->offset, offset);
      EXPECT_LE(page->slices.size(), limit);
      *total_count = page->total_count;
      all.insert(all.end(), page->slices.begin(), page->slices.end());
      offset += page->slices.size();
      if (page->slices.empty() || offset >= page->total_count) break;
    }
    return all;
  }

  // (a) conservation, (b) no holding account below zero, balances and
  // holdings as modelled, (c) every lot's forward trace, (e) digests, (f) chain.
  void CheckState(bool deep) {
    const absl::Status chain = ledger_->VerifyChain();
    EXPECT_TRUE(chain.ok()) << chain;
    const LedgerHead head = ledger_->Head();
    EXPECT_EQ(head.seq, entries_.size());
    EXPECT_EQ(head.hash, last_hash_);

    std::map<std::string, int64_t> sum_by_asset;
    std::map<uint64_t, std::map<std::string, int64_t>> held_by_lot;
    std::map<std::string, int64_t> in_stock;  // by item
    for (const auto& [id, model] : accounts_) {
      auto info = ledger_->GetAccount(id);
      if (!info.ok()) {
        ADD_FAILURE() << "GetAccount(" << id << "): " << info.status();
        continue;
      }
      EXPECT_EQ(info->account, id);
      EXPECT_EQ(info->kind, model.kind) << id;
      EXPECT_EQ(info->asset, model.asset) << id;
      EXPECT_EQ(info->flags, model.flags) << id;
      EXPECT_EQ(info->name, model.name) << id;
      EXPECT_EQ(info->closed, model.closed) << id;
      EXPECT_EQ(info->opened_seq, model.opened_seq) << id;
      std::map<std::string, int64_t> got;
      for (const warmledger::Balance& b : info->balances) {
        EXPECT_EQ(got.count(b.asset), 0u) << id << " lists " << b.asset << " twice";
        got[b.asset] += b.amount;
        sum_by_asset[b.asset] += b.amount;
      }
      std::map<std::string, int64_t> want;
      if (auto it = balances_.find(id); it != balances_.end()) want = it->second;
      std::erase_if(got, [](const auto& kv) { return kv.second == 0; });
      std::erase_if(want, [](const auto& kv) { return kv.second == 0; });
      EXPECT_EQ(got, want) << "balances of " << id;
      if (!HoldingKind(model.kind)) continue;
      EXPECT_GE(Get(got, model.asset), 0) << id << " is a holding account below zero";
      for (const auto& [asset, amount] : got) {
        EXPECT_EQ(asset, model.asset) << id << " holds an asset not its own";
      }
      // Empty slices (kept by fefo/v1 and lot/v1 to place later slices
      // exactly) are no holdings: they are neither listed nor counted.
      const std::vector<Slice> slices = LiveSlices(holdings_[id]);
      uint64_t total_count = 0;
      const std::vector<Slice> listed = ReadHoldings(id, &total_count);
      EXPECT_EQ(info->slice_count, slices.size()) << id;
      EXPECT_EQ(total_count, slices.size()) << id;
      EXPECT_EQ(listed, slices) << "holdings of " << id;
      int64_t held = 0;
      for (const Slice& s : slices) {
        EXPECT_GT(s.amount, 0) << id;
        held += s.amount;
        held_by_lot[s.lot][id] += s.amount;
      }
      EXPECT_EQ(held, Get(got, model.asset)) << "slices of " << id << " must sum to its balance";
      if (model.kind == AccountKind::kStock) in_stock[model.asset] += held;
    }
    // Conservation per asset, money and each item: a supplier's goods
    // balance is negative by what it delivered, like a donor's.
    for (const auto& [asset, sum] : sum_by_asset) {
      EXPECT_EQ(sum, 0) << "conservation: balances of " << asset << " over all accounts";
    }
    auto totals = ledger_->TotalsPerAsset();
    ASSERT_TRUE(totals.ok()) << totals.status();
    for (const warmledger::Balance& b : *totals) {
      EXPECT_EQ(b.amount, 0) << "conservation: TotalsPerAsset of " << b.asset;
    }
    CheckCatalogue(in_stock);

    // A trace changes only when its lot, or a lot made from it, moves: the
    // others are traced again every few batches.
    for (const auto& [lot_id, model] : lots_) {
      if (!deep && changed_lots_.count(lot_id) == 0) continue;
      auto trace = ledger_->TraceLot(lot_id);
      if (!trace.ok()) {
        ADD_FAILURE() << "TraceLot(" << lot_id << "): " << trace.status();
        continue;
      }
      CheckLotTrace(*trace, model, held_by_lot);
      if (::testing::Test::HasFailure()) return;
    }

    changed_lots_.clear();
    if (deep) {
      auto rebuilt = ledger_->RebuildStateDigest();
      ASSERT_TRUE(rebuilt.ok()) << rebuilt.status();
      EXPECT_EQ(*rebuilt, ledger_->StateDigest()) << "replay must reproduce the live state";
    }
  }

  // The catalogue in the order items were added, with what all stocks hold.
  void CheckCatalogue(const std::map<std::string, int64_t>& in_stock) {
    auto items = ledger_->ListItems();
    ASSERT_TRUE(items.ok()) << items.status();
    ASSERT_EQ(items->size(), item_order_.size()) << "items in the catalogue";
    for (size_t i = 0; i < items->size(); ++i) {
      const ItemInfo& got = (*items)[i];
      const ItemInfo& want = items_.at(item_order_[i]);
      EXPECT_EQ(got.item, want.item);
      EXPECT_EQ(got.name, want.name) << want.item;
      EXPECT_EQ(got.unit, want.unit) << want.item;
      EXPECT_EQ(got.defined_seq, want.defined_seq) << want.item;
      EXPECT_EQ(got.in_stock, Get(in_stock, want.item)) << "what the stocks hold of " << want.item;
    }
    EXPECT_EQ(ledger_->GetItem(kUnlisted).status().code(), StatusCode::kNotFound);
  }

  using HeldByLot = std::map<uint64_t, std::map<std::string, int64_t>>;

  // Where the part of converted lot `made` attributed to one parent (`share`
  // of it, made of `consumed` of the parent) is now: the new lot's holding
  // places, then its sinks and sources with its recipients in one group
  // (the stream's recipients have no category or community), each split by
  // largest remainder over the new lot's amounts there.
  std::vector<std::tuple<std::string, AccountKind, int64_t, int64_t>> ExpectedPlaces(
      const ModelLot& made, const HeldByLot& held_by_lot, int64_t share, int64_t consumed) const {
    std::vector<std::pair<std::string, AccountKind>> places;
    std::vector<int64_t> weights;
    if (auto it = held_by_lot.find(made.info.lot); it != held_by_lot.end()) {
      for (const auto& [account, amount] : it->second) {
        places.emplace_back(account, accounts_.at(account).kind);
        weights.push_back(amount);
      }
    }
    std::optional<size_t> recipients;
    for (const auto& [account, amount] : made.reached) {
      const AccountKind kind = accounts_.at(account).kind;
      if (kind == AccountKind::kRecipient) {
        if (!recipients) {
          recipients = places.size();
          places.emplace_back("", kind);
          weights.push_back(0);
        }
        weights[*recipients] += amount;
        continue;
      }
      places.emplace_back(account, kind);
      weights.push_back(amount);
    }
    const std::vector<int64_t> amounts = LargestRemainder(share, weights);
    const std::vector<int64_t> sources = LargestRemainder(consumed, weights);
    std::vector<std::tuple<std::string, AccountKind, int64_t, int64_t>> out;
    for (size_t i = 0; i < places.size(); ++i) {
      if (amounts[i] == 0 && sources[i] == 0) continue;
      out.emplace_back(places[i].first, places[i].second, amounts[i], sources[i]);
    }
    return out;
  }

  void CheckLotTrace(const LotTrace& t, const ModelLot& model, const HeldByLot& held_by_lot) {
    const uint64_t lot = model.info.lot;
    static const std::map<std::string, int64_t> kNowhere;
    auto held_it = held_by_lot.find(lot);
    const std::map<std::string, int64_t>& expected_held =
        held_it == held_by_lot.end() ? kNowhere : held_it->second;
    CheckLotInfo(t.lot, model.info);
    ASSERT_FALSE(t.hops.empty()) << "lot " << lot;
    EXPECT_EQ(t.hops[0].seq, lot) << "the creating entry is the first hop of lot " << lot;
    EXPECT_EQ(t.hops[0].type, model.info.created_by) << "lot " << lot;
    using HopKey = std::tuple<uint64_t, std::string, std::string>;
    std::map<HopKey, int64_t> got_hops;
    std::map<HopKey, int64_t> want_hops;
    uint64_t previous_seq = 0;
    for (const TraceHop& h : t.hops) {
      EXPECT_GT(h.amount, 0) << "hop at seq " << h.seq << " of lot " << lot;
      EXPECT_GE(h.seq, previous_seq) << "hops of lot " << lot << " must be in seq order";
      previous_seq = h.seq;
      if (h.seq < 1 || h.seq > entries_.size()) {
        ADD_FAILURE() << "lot " << lot << " has a hop at seq " << h.seq << " beyond the head";
        continue;
      }
      EXPECT_EQ(h.type, entries_[h.seq - 1].type) << "hop at seq " << h.seq << " of lot " << lot;
      EXPECT_EQ(h.time_us, entries_[h.seq - 1].time_us) << "hop at seq " << h.seq << " of lot " << lot;
      got_hops[{h.seq, h.from, h.to}] += h.amount;
    }
    for (const TraceHop& h : model.hops) want_hops[{h.seq, h.from, h.to}] += h.amount;
    EXPECT_EQ(got_hops, want_hops) << "hops of lot " << lot;

    int64_t total = 0;
    std::map<std::string, int64_t> got_held;
    for (const TracePlace& p : t.held) {
      EXPECT_GT(p.amount, 0) << "lot " << lot << " held in " << p.account;
      EXPECT_TRUE(HoldingKind(p.kind)) << "lot " << lot << " held in " << p.account;
      if (auto it = accounts_.find(p.account); it != accounts_.end()) {
        EXPECT_EQ(p.kind, it->second.kind) << p.account;
      }
      got_held[p.account] += p.amount;
      total += p.amount;
    }
    std::map<std::string, int64_t> got_reached;
    for (const TracePlace& p : t.reached) {
      EXPECT_GT(p.amount, 0) << "lot " << lot << " reached " << p.account;
      EXPECT_TRUE(SinkKind(p.kind) || SourceKind(p.kind)) << "lot " << lot << " reached " << p.account;
      if (auto it = accounts_.find(p.account); it != accounts_.end()) {
        EXPECT_EQ(p.kind, it->second.kind) << p.account;
      }
      got_reached[p.account] += p.amount;
      total += p.amount;
    }
    EXPECT_EQ(total, model.info.amount) << "sum(held) + sum(reached) of lot " << lot;
    EXPECT_EQ(got_held, expected_held) << "where lot " << lot << " is held";
    EXPECT_EQ(got_reached, model.reached) << "where lot " << lot << " ended";

    // What the parts of the lot that went into conversions became.
    ASSERT_EQ(t.conversions.size(), model.conversions.size()) << "conversions of lot " << lot;
    for (size_t i = 0; i < t.conversions.size(); ++i) {
      const LotConversion& c = t.conversions[i];
      const ModelConversion& want = model.conversions[i];
      const ModelLot& made = lots_.at(want.seq);
      SCOPED_TRACE("conversion of lot " + std::to_string(lot) + " into lot " + std::to_string(want.seq));
      EXPECT_EQ(c.seq, want.seq);
      EXPECT_EQ(c.type, made.info.created_by);
      EXPECT_EQ(c.asset, made.info.asset);
      EXPECT_EQ(c.lot_amount, made.info.amount);
      EXPECT_EQ(c.consumed, want.consumed);
      EXPECT_EQ(c.share, want.share);
      int64_t amounts = 0;
      int64_t sources = 0;
      std::vector<std::tuple<std::string, AccountKind, int64_t, int64_t>> got_places;
      for (const ConversionPlace& p : c.places) {
        EXPECT_GE(p.amount, 0);
        EXPECT_GE(p.source_amount, 0);
        amounts += p.amount;
        sources += p.source_amount;
        got_places.emplace_back(p.account, p.kind, p.amount, p.source_amount);
      }
      EXPECT_EQ(amounts, c.share) << "sum(places.amount) must be the share";
      EXPECT_EQ(sources, c.consumed) << "sum(places.source_amount) must be what was consumed";
      EXPECT_EQ(got_places, ExpectedPlaces(made, held_by_lot, want.share, want.consumed));
    }
  }

  void FinalChecks() {
    CheckState(/*deep=*/true);
    if (::testing::Test::HasFailure()) return;

    // Donor statements: all lots of each source, paged, with their traces.
    HeldByLot held_by_lot;
    for (const auto& [id, slices] : holdings_) {
      for (const Slice& s : LiveSlices(slices)) held_by_lot[s.lot][id] += s.amount;
    }
    for (const auto& [id, account] : accounts_) {
      if (!SourceKind(account.kind)) continue;
      std::vector<uint64_t> want;
      for (const auto& [lot, model] : lots_) {
        if (model.info.donor == id) want.push_back(lot);
      }
      std::vector<uint64_t> got;
      const uint64_t limit = static_cast<uint64_t>(check_rng_.Uniform(1, 7));
      uint64_t offset = 0;
      for (size_t page_count = 0; page_count <= want.size() / limit + 1; ++page_count) {
        auto page = ledger_->DonorStatement(id, offset, limit);
        ASSERT_TRUE(page.ok()) << "DonorStatement(" << id << "): " << page.status();
        EXPECT_EQ(page->donor, id);
        EXPECT_EQ(page->total_lots, want.size()) << id;
        EXPECT_EQ(page->offset, offset) << id;
        EXPECT_LE(page->lots.size(), limit);
        for (const LotTrace& t : page->lots) {
          got.push_back(t.lot.lot);
          auto model = lots_.find(t.lot.lot);
          if (model == lots_.end()) {
            ADD_FAILURE() << "statement of " << id << " lists lot " << t.lot.lot << " that does not exist";
            continue;
          }
          CheckLotTrace(t, model->second, held_by_lot);
        }
        offset += page->lots.size();
        if (page->lots.empty() || offset >= page->total_lots) break;
      }
      EXPECT_EQ(got, want) << "lots in the statement of " << id << ", in lot order";
    }

    // A reopen replays every entry and must arrive at the same state.
    const std::string digest = ledger_->StateDigest();
    const LedgerHead head = ledger_->Head();
    ledger_.reset();
    OpenLedger();
    if (::testing::Test::HasFailure()) return;
    EXPECT_EQ(ledger_->Head().seq, head.seq);
    EXPECT_EQ(ledger_->Head().hash, head.hash);
    EXPECT_EQ(ledger_->StateDigest(), digest) << "the state after a reopen";
    CheckState(/*deep=*/true);

    // The stream must have exercised what it claims to.
    std::ostringstream summary;
    summary << "seed " << seed_ << ": " << batch_index_ << " batches, " << submitted_ops_ << " ops, "
            << entries_.size() << " entries, " << lots_.size() << " lots, " << duplicates_
            << " duplicates, " << reversed_goods_gifts_ << " goods gifts reversed; predicted ok="
            << predicted_[0] << " duplicate=" << predicted_[1]
            << " fail=" << predicted_[2] << " unknown=" << predicted_[3] << ";";
    for (const auto& [type, count] : ok_by_type_) summary << " " << type << "=" << count;
    summary << "; failures:";
    for (const auto& [code, count] : failure_codes_) summary << " " << code << "=" << count;
    std::cout << summary.str() << "\n";
    if (kStreamOpsPerSeed < 2000) return;  // short sanitizer runs may miss a kind
    for (const char* type : {"open", "close", "donation", "allocation", "disbursement", "reverse", "adjust",
                             "item", "goods_gift", "goods_purchase", "handout", "write_off",
                             "write_off_lot", "goods_sale"}) {
      EXPECT_GT(ok_by_type_[type], 0) << type << " never succeeded. " << summary.str();
    }
    EXPECT_GT(duplicates_, 0) << summary.str();
    EXPECT_GT(reversed_goods_gifts_, 0) << summary.str();
    for (const char* code : {"INVALID_ARGUMENT", "NOT_FOUND", "ALREADY_EXISTS", "FAILED_PRECONDITION",
                             "ABORTED"}) {
      EXPECT_GT(failure_codes_[code], 0) << code << " never seen. " << summary.str();
    }
  }

  const uint64_t seed_;
  const std::string path_;
  ManualClock clock_;
  std::unique_ptr<Ledger> ledger_;
  Rng rng_;        // drives the stream
  Rng check_rng_;  // page sizes of the checks; never touches the stream
  uint64_t next_client_ = 0;
  uint64_t next_account_ = 0;
  int64_t submitted_ops_ = 0;
  int batch_index_ = 0;

  // The model of the committed ledger.
  std::map<std::string, ModelAccount> accounts_;
  std::set<std::string> core_accounts_;  // bootstrap accounts, never closed
  std::map<std::string, std::map<std::string, int64_t>> balances_;  // account -> asset -> amount
  std::map<std::string, std::deque<Slice>> holdings_;              // holding accounts
  std::vector<ModelEntry> entries_;                                 // entries_[seq - 1]
  std::vector<uint64_t> value_seqs_;     // donations, allocations, disbursements, goods gifts
  std::vector<uint64_t> goods_seqs_;     // goods entries that cannot be reversed
  std::vector<uint64_t> reversed_seqs_;
  std::map<std::string, ItemInfo> items_;  // the catalogue (in_stock unused)
  std::vector<std::string> item_order_;    // in the order items were added
  std::map<std::string, uint64_t> client_seq_;
  std::vector<std::string> failed_client_ids_;
  std::map<uint64_t, ModelLot> lots_;
  std::set<uint64_t> changed_lots_;  // whose forward trace changed since the last check
  Hash last_hash_{};
  int64_t last_time_us_ = 0;

  Batch b_;

  std::map<std::string, int> ok_by_type_;
  std::map<std::string, int> failure_codes_;
  int duplicates_ = 0;
  int reversed_goods_gifts_ = 0;
  int predicted_[4] = {};  // by Expect
};

class SimulationTest : public ::testing::TestWithParam<uint64_t> {};

TEST_P(SimulationTest, RandomStreamKeepsEveryInvariantAfterEveryBatch) {
  const uint64_t seed = GetParam();
  SCOPED_TRACE("seed " + std::to_string(seed));
  TempDir dir;
  Simulation simulation(seed, dir.path() + "/ledger");
  simulation.Run(kStreamOpsPerSeed);
}

INSTANTIATE_TEST_SUITE_P(Seeds, SimulationTest, ::testing::Range<uint64_t>(1, 6),
                         [](const ::testing::TestParamInfo<uint64_t>& info) {
                           return "Seed" + std::to_string(info.param);
                         });

}  // namespace
}  // namespace warmledger

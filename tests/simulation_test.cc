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
//   after every batch: balances, holdings (slice by slice), every lot's
//   forward trace, every new entry's backward trace, conservation per asset,
//   no holding account below zero, VerifyChain; every few batches
//   RebuildStateDigest() == StateDigest(); at the end donor statements and a
//   reopen that must reproduce the same state.
//
// The generator knows, per batch, an upper bound of what may leave and what
// may arrive in each account, so it can say for certain that an operation
// succeeds or fails, and says "unknown" otherwise. Inside a linked chain a
// prediction assumes the earlier operations of the chain succeeded (if one
// does not, the whole chain fails anyway).
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
constexpr char kRice[] = "item:rice";
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

struct ModelLot {
  LotInfo info;
  std::vector<TraceHop> hops;
  std::map<std::string, int64_t> reached;  // sinks and sources where it ended
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

void AppendSlice(std::deque<Slice>& slices, const Slice& s) {
  if (!slices.empty() && slices.back().lot == s.lot) {
    slices.back().amount += s.amount;
  } else {
    slices.push_back(s);
  }
}

// "Adjacent slices of the same lot in an account are merged."
void MergeAdjacent(std::deque<Slice>& slices) {
  std::deque<Slice> merged;
  for (const Slice& s : slices) AppendSlice(merged, s);
  slices.swap(merged);
}

// fifo/v1: oldest first; a partly needed slice is split and its remainder
// stays at the head. Returns the consumed slices; false if there was not enough.
bool TakeFifo(std::deque<Slice>& slices, int64_t amount, std::vector<Slice>* taken) {
  while (amount > 0 && !slices.empty()) {
    Slice& head = slices.front();
    const int64_t part = std::min(amount, head.amount);
    taken->push_back({head.lot, part});
    head.amount -= part;
    amount -= part;
    if (head.amount == 0) slices.pop_front();
  }
  return amount == 0;
}

// reverse/v1: takes `amount` of `lot` from the account, the lot's slices in
// arrival order. False if there was not enough of the lot.
bool TakeLot(std::deque<Slice>& slices, uint64_t lot, int64_t amount) {
  for (auto it = slices.begin(); it != slices.end() && amount > 0;) {
    if (it->lot != lot) {
      ++it;
      continue;
    }
    const int64_t part = std::min(amount, it->amount);
    it->amount -= part;
    amount -= part;
    it = it->amount == 0 ? slices.erase(it) : it + 1;
  }
  MergeAdjacent(slices);
  return amount == 0;
}

class TempDir {
 public:
  TempDir() {
    std::string pattern = ::testing::TempDir() + "warmledger-sim-XXXXXX";
    if (mkdtemp(pattern.data()) == nullptr) {
      ADD_FAILURE() << "mkdtemp failed for " << pattern;
    }
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ignored;  // best effort: a leftover temp dir is harmless
    std::filesystem::remove_all(path_, ignored);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

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
    if (to != nullptr && (!PoolKind(to->kind) || to->asset != o.asset)) {
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
        ref->type != EntryType::kDisbursement) {
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
  }

  void EndChain(bool open_ended) {
    const size_t begin = b_.chain_begin;
    const size_t end = b_.ops.size();
    b_.in_chain = false;
    for (const auto& [id, account] : b_.chain_new) b_.opened.insert(id);
    b_.chain_new.clear();
    b_.chain_credit.clear();
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

  Operation GenOpen(std::optional<AccountKind> wanted_kind = std::nullopt) {
    static constexpr AccountKind kKinds[] = {
        AccountKind::kDonor,     AccountKind::kDonor,    AccountKind::kMerchant,
        AccountKind::kFund,      AccountKind::kFund,     AccountKind::kProject,
        AccountKind::kRecipient, AccountKind::kSupplier, AccountKind::kExpense,
    };
    const AccountKind kind = wanted_kind ? *wanted_kind : kKinds[rng_.Index(std::size(kKinds))];
    OpenAccountOp o;
    o.kind = kind;
    o.account = NewAccountId(KindPrefix(kind));
    if (HoldingKind(kind)) {
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
    if (r < 40) return GenDonation();
    if (r < 62) return GenAllocation();
    if (r < 80) return GenDisbursement();
    if (r < 86) return GenAdjust();
    if (r < 96) return GenReverse();
    return GenOpen();
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
      default: {
        CorrectionOp o = MakeAdjust(entries_.size() + kBatchOpsMax + 1, "no such entry", "fund/general",
                                    "fund/relief", kCny, 1);
        return std::make_pair(MakeOp(o), std::string("adjust referring to no entry"));
      }
    }
  }

  void AddInvalid() {
    std::optional<std::pair<Operation, std::string>> designed;
    for (int attempt = 0; attempt < 6 && !designed; ++attempt) designed = TryInvalid(rng_.Uniform(0, 45));
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
    const int64_t r = rng_.Uniform(0, 99);
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
    } else {
      AddChain(/*open_ended=*/false);
      return;
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
    };
    for (const Core& c : kCore) {
      OpenAccountOp o = MakeOpen(c.id, c.kind, c.asset, c.flags, std::string("core ") + c.id);
      core_accounts_.insert(c.id);
      Add(MakeOp(o), "bootstrap open");
    }
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
    EXPECT_EQ(e.version, 1);
    EXPECT_EQ(e.seq, seq);
    EXPECT_EQ(e.client_id, op.client_id);
    EXPECT_TRUE(e.body == op.body) << "the entry must record the operation as requested: "
                                   << Describe(op);
    EXPECT_EQ(e.time_us, r.time_us);
    EXPECT_GE(e.time_us, last_time_us_) << "entry times must not decrease (seq " << seq << ")";
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
                     policy = "reverse/v1";
                     if (HoldingKind(accounts_.at(original.to).kind)) {
                       for (const Slice& s : original.slices) {
                         if (!TakeLot(holdings_[original.to], s.lot, s.amount)) {
                           ADD_FAILURE() << "seq " << seq << " reversed seq " << o.ref_seq << " although lot "
                                         << s.lot << " was no longer in " << original.to;
                         }
                       }
                     }
                     if (HoldingKind(accounts_.at(original.from).kind)) {
                       for (const Slice& s : original.slices) AppendSlice(holdings_[original.from], s);
                     }
                     me.postings.push_back(MakePosting(original.to, original.from, original.asset,
                                                       original.amount, original.slices));
                   },
                   [&](const auto&) { ADD_FAILURE() << "the stream has no checkout operations"; },
               },
               op.body);
    EXPECT_EQ(e.policy, policy) << "seq " << seq << " " << Describe(op);
    EXPECT_TRUE(e.postings == me.postings)
        << "seq " << seq << " " << Describe(op) << "\n  recorded: " << Describe(e.postings)
        << "\n  expected: " << Describe(me.postings);

    for (const Posting& p : me.postings) {
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
        if (SinkKind(accounts_.at(p.from).kind)) {  // a disbursement taken back
          if ((ml.reached[p.from] -= per_lot[lot]) == 0) ml.reached.erase(p.from);
        }
      }
    }
    ++ok_by_type_[TypeLabel(op.body)];
    const EntryType type = me.type;
    client_seq_[op.client_id] = seq;
    entries_.push_back(std::move(me));
    last_hash_ = stored.hash;
    last_time_us_ = e.time_us;

    if (type == EntryType::kDonation) {
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
      const std::deque<Slice>& slices = holdings_[id];
      uint64_t total_count = 0;
      const std::vector<Slice> listed = ReadHoldings(id, &total_count);
      EXPECT_EQ(info->slice_count, slices.size()) << id;
      EXPECT_EQ(total_count, slices.size()) << id;
      EXPECT_EQ(listed, std::vector<Slice>(slices.begin(), slices.end())) << "holdings of " << id;
      int64_t held = 0;
      for (const Slice& s : slices) {
        held += s.amount;
        held_by_lot[s.lot][id] += s.amount;
      }
      EXPECT_EQ(held, Get(got, model.asset)) << "slices of " << id << " must sum to its balance";
    }
    for (const auto& [asset, sum] : sum_by_asset) {
      EXPECT_EQ(sum, 0) << "conservation: balances of " << asset << " over all accounts";
    }

    for (const auto& [lot_id, model] : lots_) {
      auto trace = ledger_->TraceLot(lot_id);
      if (!trace.ok()) {
        ADD_FAILURE() << "TraceLot(" << lot_id << "): " << trace.status();
        continue;
      }
      CheckLotTrace(*trace, model, held_by_lot[lot_id]);
      if (::testing::Test::HasFailure()) return;
    }

    if (deep) {
      auto rebuilt = ledger_->RebuildStateDigest();
      ASSERT_TRUE(rebuilt.ok()) << rebuilt.status();
      EXPECT_EQ(*rebuilt, ledger_->StateDigest()) << "replay must reproduce the live state";
    }
  }

  void CheckLotTrace(const LotTrace& t, const ModelLot& model,
                     const std::map<std::string, int64_t>& expected_held) {
    const uint64_t lot = model.info.lot;
    CheckLotInfo(t.lot, model.info);
    ASSERT_FALSE(t.hops.empty()) << "lot " << lot;
    EXPECT_EQ(t.hops[0].seq, lot) << "the donation is the first hop of lot " << lot;
    EXPECT_EQ(t.hops[0].type, EntryType::kDonation) << "lot " << lot;
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
  }

  void FinalChecks() {
    CheckState(/*deep=*/true);
    if (::testing::Test::HasFailure()) return;

    // Donor statements: all lots of each source, paged, with their traces.
    std::map<uint64_t, std::map<std::string, int64_t>> held_by_lot;
    for (const auto& [id, slices] : holdings_) {
      for (const Slice& s : slices) held_by_lot[s.lot][id] += s.amount;
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
          CheckLotTrace(t, model->second, held_by_lot[t.lot.lot]);
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
            << " duplicates; predicted ok=" << predicted_[0] << " duplicate=" << predicted_[1]
            << " fail=" << predicted_[2] << " unknown=" << predicted_[3] << ";";
    for (const auto& [type, count] : ok_by_type_) summary << " " << type << "=" << count;
    summary << "; failures:";
    for (const auto& [code, count] : failure_codes_) summary << " " << code << "=" << count;
    std::cout << summary.str() << "\n";
    if (kStreamOpsPerSeed < 2000) return;  // short sanitizer runs may miss a kind
    for (const char* type : {"open", "close", "donation", "allocation", "disbursement", "reverse", "adjust"}) {
      EXPECT_GT(ok_by_type_[type], 0) << type << " never succeeded. " << summary.str();
    }
    EXPECT_GT(duplicates_, 0) << summary.str();
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
  std::vector<uint64_t> value_seqs_;     // donations, allocations, disbursements
  std::vector<uint64_t> reversed_seqs_;
  std::map<std::string, uint64_t> client_seq_;
  std::vector<std::string> failed_client_ids_;
  std::map<uint64_t, ModelLot> lots_;
  Hash last_hash_{};
  int64_t last_time_us_ = 0;

  Batch b_;

  std::map<std::string, int> ok_by_type_;
  std::map<std::string, int> failure_codes_;
  int duplicates_ = 0;
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

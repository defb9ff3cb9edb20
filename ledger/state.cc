#include "ledger/state.h"

#include <algorithm>
#include <cstring>
#include <map>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "ledger/entry_codec.h"
#include "ledger/limits.h"
#include "ledger/sha256.h"
#include "ledger/status_macros.h"

namespace warmledger {
namespace {

// The character checks below run on every field of every entry (also on
// replay), so they scan without branching per character; which character
// is bad does not change the error.

// Byte-parallel tests on 8 bytes at a time ("bit twiddling hacks"). Each
// is exact as a yes/no answer; only which byte matched would be unreliable,
// and that is never used.
constexpr uint64_t kEachByte = 0x0101010101010101;
constexpr uint64_t kHighBits = 0x8080808080808080;
// Some byte of `x` is below `n` (n <= 128).
constexpr uint64_t AnyByteBelow(uint64_t x, uint8_t n) {
  return (x - kEachByte * n) & ~x & kHighBits;
}
// Some byte of `x` is above `n` (n <= 127).
constexpr uint64_t AnyByteAbove(uint64_t x, uint8_t n) {
  return ((x + kEachByte * (127 - n)) | x) & kHighBits;
}
// Some byte of `x` equals `n`.
constexpr uint64_t AnyByteIs(uint64_t x, uint8_t n) {
  return AnyByteBelow(x ^ (kEachByte * n), 1);
}
uint64_t Load8(const char* p) {
  uint64_t x;
  std::memcpy(&x, p, sizeof(x));
  return x;  // byte order does not matter to the tests above
}

// Some byte of `s` is outside [lo, hi] (hi <= 127).
bool AnyByteOutside(const std::string& s, uint8_t lo, uint8_t hi) {
  uint64_t found = 0;
  size_t i = 0;
  for (; i + 8 <= s.size(); i += 8) {
    const uint64_t x = Load8(s.data() + i);
    found |= AnyByteBelow(x, lo) | AnyByteAbove(x, hi);
  }
  for (; i < s.size(); ++i) {
    const auto u = static_cast<unsigned char>(s[i]);
    found |= (u < lo) | (u > hi);
  }
  return found != 0;
}

// Ids chosen by clients and shops (client ids; order, refund and member
// numbers): 1..max bytes of printable ASCII without spaces.
absl::Status CheckKey(absl::string_view field, const std::string& id, size_t max) {
  if (id.empty()) return absl::InvalidArgumentError(absl::StrCat(field, ": required"));
  if (id.size() > max) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": ", id.size(), " bytes, at most ", max, " allowed"));
  }
  if (AnyByteOutside(id, 0x21, 0x7e)) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": only printable ASCII without spaces"));
  }
  return absl::OkStatus();
}

absl::Status CheckClientId(const std::string& id) {
  static_assert(kClientIdBytesMax <= ClientIdIndex::kIdBytesMax);
  return CheckKey("client_id", id, kClientIdBytesMax);
}

// Characters allowed in account ids: A-Z a-z 0-9 . _ : / -
constexpr std::array<bool, 256> kAccountIdChars = [] {
  std::array<bool, 256> t{};
  for (int c = 'a'; c <= 'z'; ++c) t[c] = true;
  for (int c = 'A'; c <= 'Z'; ++c) t[c] = true;
  for (int c = '0'; c <= '9'; ++c) t[c] = true;
  for (char c : {'.', '_', ':', '/', '-'}) t[static_cast<unsigned char>(c)] = true;
  return t;
}();

absl::Status CheckAccountId(absl::string_view field, const std::string& id) {
  if (id.empty()) return absl::InvalidArgumentError(absl::StrCat(field, ": required"));
  if (id.size() > kAccountIdBytesMax) {
    return absl::InvalidArgumentError(absl::StrCat(
        field, ": ", id.size(), " bytes, at most ", kAccountIdBytesMax, " allowed"));
  }
  bool ok = true;
  for (char c : id) ok &= kAccountIdChars[static_cast<unsigned char>(c)];
  if (!ok) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": '", id, "' may contain only A-Z a-z 0-9 . _ : / -"));
  }
  return absl::OkStatus();
}

absl::Status CheckAsset(absl::string_view field, const std::string& code) {
  if (code.empty()) return absl::InvalidArgumentError(absl::StrCat(field, ": required"));
  if (code.size() > kAssetCodeBytesMax || !ParseAssetCode(code)) {
    return absl::InvalidArgumentError(absl::StrCat(
        field, ": '", code.substr(0, kAssetCodeBytesMax),
        "' is not an asset code (three upper-case letters such as CNY, or item:<code>)"));
  }
  return absl::OkStatus();
}

absl::Status CheckAmount(absl::string_view field, int64_t amount) {
  if (amount <= 0 || amount > kAmountMax) {
    return absl::InvalidArgumentError(absl::StrCat(
        field, ": ", amount, " is outside 1..", kAmountMax, " (minor units or goods units)"));
  }
  return absl::OkStatus();
}

absl::Status CheckText(absl::string_view field, const std::string& text, size_t max,
                       bool required) {
  if (required && text.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": required"));
  }
  if (text.size() > max) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": ", text.size(), " bytes, at most ", max, " allowed"));
  }
  // Control characters could rewrite a terminal or a report line.
  uint64_t control = 0;
  size_t i = 0;
  for (; i + 8 <= text.size(); i += 8) {
    const uint64_t x = Load8(text.data() + i);
    control |= AnyByteBelow(x, 0x20) | AnyByteIs(x, 0x7f);
  }
  for (; i < text.size(); ++i) {
    const auto u = static_cast<unsigned char>(text[i]);
    control |= (u < 0x20) | (u == 0x7f);
  }
  if (control != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": control characters are not allowed"));
  }
  return absl::OkStatus();
}

absl::Status CheckHash(absl::string_view field, const std::string& hash, bool required) {
  if (hash.empty() && !required) return absl::OkStatus();
  if (hash.size() != 32) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": ", hash.size(), " bytes; ",
                                                   required ? "" : "empty or ",
                                                   "32 (SHA-256)"));
  }
  return absl::OkStatus();
}

Hash ToHash(const std::string& bytes) {
  Hash h{};
  std::memcpy(h.data(), bytes.data(), h.size());
  return h;
}

absl::Status CheckMoneyAsset(absl::string_view field, const std::string& code) {
  WL_RETURN_IF_ERROR(CheckAsset(field, code));
  if (ParseAssetCode(code) != AssetKind::kMoney) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": '", code, "' is goods; only money (such as CNY) is allowed"));
  }
  return absl::OkStatus();
}

bool IsFundOrProject(AccountKind k) {
  return k == AccountKind::kFund || k == AccountKind::kProject;
}

}  // namespace

// ---------------------------------------------------------------------------
// Apply

absl::StatusOr<AppliedEntry> LedgerState::Apply(const std::string& client_id,
                                                OpBody&& body, int64_t time_us,
                                                const EntryLookup& lookup, Journal* journal,
                                                const Hash* replayed_hash,
                                                uint8_t version) {
  WL_RETURN_IF_ERROR(CheckIdAndBody(client_id, body));
  scratch_.body = std::move(body);
  WL_ASSIGN_OR_RETURN(AppliedEntry out,
                      ApplyScratch(client_id, time_us, lookup, journal, replayed_hash, version));
  out.stored_value.reserve(encode_buf_.size() + out.hash.size());
  out.stored_value.append(encode_buf_);
  out.stored_value.append(reinterpret_cast<const char*>(out.hash.data()), out.hash.size());
  return out;
}

absl::StatusOr<std::string_view> LedgerState::Replay(const std::string& client_id,
                                                     const OpBody& body, int64_t time_us,
                                                     const EntryLookup& lookup, Journal* journal,
                                                     const Hash& stored_hash, uint8_t version) {
  WL_RETURN_IF_ERROR(CheckIdAndBody(client_id, body));
  // Copy-assigned: a body of the same type as the last keeps its buffers.
  scratch_.body = body;
  WL_RETURN_IF_ERROR(
      ApplyScratch(client_id, time_us, lookup, journal, &stored_hash, version).status());
  return std::string_view(encode_buf_);
}

absl::Status LedgerState::CheckIdAndBody(const std::string& client_id,
                                         const OpBody& body) const {
  WL_RETURN_IF_ERROR(CheckClientId(client_id));
  WL_DCHECK(!client_ids_.Find(client_id));
  if (std::optional<std::string> natural = NaturalClientId(body)) {
    if (*natural != client_id) {
      return absl::InvalidArgumentError(absl::StrCat(
          "client_id: a ", EntryTypeName(TypeOf(body)),
          " is identified by its own keys; its client id must be '", *natural, "'"));
    }
  } else if (IsNaturalClientIdForm(client_id)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "client_id: '", client_id,
        "' has the form of a purchase, refund, redemption or expiry id, kept for those"));
  }
  return absl::OkStatus();
}

absl::StatusOr<AppliedEntry> LedgerState::ApplyScratch(const std::string& client_id,
                                                       int64_t time_us,
                                                       const EntryLookup& lookup,
                                                       Journal* journal,
                                                       const Hash* replayed_hash,
                                                       uint8_t version) {
  // Buffers an exceptionally large previous entry left are released first
  // (the last entry's bytes are read from encode_buf_ until this call).
  TrimScratch();
  const size_t mark = journal->Mark();
  // The entry is built in scratch_, whose strings and vectors keep their
  // capacity from the previous entry: once warm, this allocates nothing.
  // Every field is set below or by the Apply* function that runs.
  Entry& e = scratch_;
  e.version = version;
  e.seq = head_seq_ + 1;
  e.time_us = std::max(time_us, head_time_us_);
  e.prev_hash = head_hash_;
  e.client_id.assign(client_id);
  e.policy.assign(kPolicyNone);
  cur_seq_ = e.seq;
  cur_time_us_ = e.time_us;
  cur_version_ = e.version;
  cur_type_ = TypeOf(e.body);
  static_assert(kAccountKindMax < 16);

  absl::Status status = std::visit(
      [&](const auto& op) -> absl::Status {
        using T = std::decay_t<decltype(op)>;
        if constexpr (std::is_same_v<T, OpenAccountOp>) {
          return ApplyOpen(op, e.seq, journal, &e);
        } else if constexpr (std::is_same_v<T, CloseAccountOp>) {
          return ApplyClose(op, journal, &e);
        } else if constexpr (std::is_same_v<T, DonationOp>) {
          return ApplyDonation(op, e.seq, e.time_us, journal, &e);
        } else if constexpr (std::is_same_v<T, AllocationOp>) {
          return ApplyAllocation(op, e.seq, journal, &e);
        } else if constexpr (std::is_same_v<T, DisbursementOp>) {
          return ApplyDisbursement(op, e.seq, journal, &e);
        } else if constexpr (std::is_same_v<T, CorrectionOp>) {
          return ApplyCorrection(op, e.seq, lookup, journal, &e);
        } else if constexpr (std::is_same_v<T, PurchaseOp>) {
          return ApplyPurchase(op, e.seq, e.time_us, journal, &e);
        } else if constexpr (std::is_same_v<T, RefundOp>) {
          return ApplyRefund(op, e.seq, lookup, journal, &e);
        } else if constexpr (std::is_same_v<T, VoucherIssueOp>) {
          return ApplyVoucherIssue(op, e.seq, e.time_us, journal, &e);
        } else if constexpr (std::is_same_v<T, RedemptionOp>) {
          return ApplyRedemption(op, e.seq, journal, &e);
        } else if constexpr (std::is_same_v<T, VoucherCloseOp>) {
          return ApplyVoucherClose(op, e.seq, journal, &e);
        } else if constexpr (std::is_same_v<T, ItemOp>) {
          return ApplyItem(op, e.seq, journal, &e);
        } else if constexpr (std::is_same_v<T, GoodsGiftOp>) {
          return ApplyGoodsGift(op, e.seq, e.time_us, journal, &e);
        } else if constexpr (std::is_same_v<T, GoodsPurchaseOp>) {
          return ApplyGoodsPurchase(op, e.seq, e.time_us, journal, &e);
        } else if constexpr (std::is_same_v<T, HandoutOp>) {
          return ApplyHandout(op, e.seq, journal, &e);
        } else if constexpr (std::is_same_v<T, WriteOffOp>) {
          return ApplyWriteOff(op, e.seq, journal, &e);
        } else if constexpr (std::is_same_v<T, AidRuleOp>) {
          return ApplyAidRule(op, e.seq, journal, &e);
        } else {
          static_assert(std::is_same_v<T, GoodsSaleOp>);
          return ApplyGoodsSale(op, e.seq, e.time_us, journal, &e);
        }
      },
      e.body);
  if (!status.ok()) {
    UndoTo(journal, mark);
    TrimScratch();
    return status;
  }

  // Invariant: every posting is positive and carried exactly by its slices.
  // A violation here is a bug that would corrupt the ledger: crash first.
  for (const Posting& p : e.postings) {
    WL_CHECK(p.amount > 0);
    int64_t sum = 0;
    for (const Slice& s : p.slices) {
      WL_CHECK(s.amount > 0);
      WL_CHECK(!__builtin_add_overflow(sum, s.amount, &sum));
    }
    WL_CHECK(sum == p.amount);
  }

  // Encoded into a reused buffer first, so that the returned value is
  // allocated once at its exact size.
  encode_buf_.clear();
  EncodeEntry(e, &encode_buf_);
  if (encode_buf_.size() > kEntryBytesMax) {
    UndoTo(journal, mark);
    const size_t size = encode_buf_.size();
    TrimScratch();
    return absl::FailedPreconditionError(absl::StrCat(
        "entry would take ", size, " bytes, above the limit of ", kEntryBytesMax,
        "; split the operation"));
  }
  AppliedEntry out;
  out.seq = e.seq;
  out.time_us = e.time_us;
  out.hash = replayed_hash ? *replayed_hash : EntryHash(encode_buf_);

  client_ids_.Insert(client_id, e.seq);
  if (journal->recording()) journal->Add({Journal::Kind::kClientId, 0, e.seq, 0});
  SetHead(e.seq, out.hash, e.time_us, journal);
  return out;
}

void LedgerState::TrimScratch() {
  // An exceptionally large entry (up to kEntryBytesMax) should not pin its
  // buffers for the state's lifetime; typical entries are a few hundred
  // bytes and a handful of slices.
  constexpr size_t kKeepBytes = 64 * 1024;
  if (encode_buf_.capacity() > kKeepBytes) std::string().swap(encode_buf_);
  for (Posting& p : scratch_.postings) {
    if (p.slices.capacity() * sizeof(Slice) > kKeepBytes) std::vector<Slice>().swap(p.slices);
  }
}

Posting& LedgerState::OnePosting(Entry* e) {
  e->postings.resize(1);
  Posting& p = e->postings.front();
  p.slices.clear();
  return p;
}

absl::Status LedgerState::ApplyOpen(const OpenAccountOp& op, uint64_t seq, Journal* j,
                                    Entry* e) {
  e->postings.clear();
  WL_RETURN_IF_ERROR(CheckAccountId("open_account.account", op.account));
  auto k = static_cast<uint8_t>(op.kind);
  if (k < 1 || k > kAccountKindMax) {
    return absl::InvalidArgumentError(
        absl::StrCat("open_account.kind: ", k, " is not an account kind (1..",
                     kAccountKindMax, ")"));
  }
  if (op.kind == AccountKind::kVoucher) {
    return absl::InvalidArgumentError(
        "open_account.kind: voucher accounts are opened by voucher_issue, not directly");
  }
  if (VoucherSeqFromAccountId(op.account) != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "open_account.account: '", op.account,
        "' has the form voucher/<n>, which is kept for vouchers"));
  }
  if (IsHolding(op.kind) || !op.asset.empty()) {
    if (op.asset.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "open_account.asset: required for a ", AccountKindName(op.kind), " account"));
    }
    WL_RETURN_IF_ERROR(CheckAsset("open_account.asset", op.asset));
  }
  // Stocks hold goods (version 1 ledgers did not check it).
  if (op.kind == AccountKind::kStock && cur_version_ >= 2 &&
      ParseAssetCode(op.asset) != AssetKind::kGoods) {
    return absl::InvalidArgumentError(absl::StrCat(
        "open_account.asset: a stock holds goods (item:<code>), not '", op.asset, "'"));
  }
  if (op.flags & ~kAccountFlagsKnown) {
    return absl::InvalidArgumentError(
        absl::StrCat("open_account.flags: unknown bits ", op.flags & ~kAccountFlagsKnown));
  }
  if ((op.flags & kAccountRestricted) && op.kind != AccountKind::kFund) {
    return absl::InvalidArgumentError(
        "open_account.flags: RESTRICTED applies only to funds (projects are always "
        "restricted)");
  }
  WL_RETURN_IF_ERROR(CheckText("open_account.name", op.name, kNameBytesMax, false));
  for (auto [field, code] : {std::pair<const char*, const std::string*>{"open_account.category", &op.category},
                             std::pair<const char*, const std::string*>{"open_account.community", &op.community}}) {
    if (code->empty()) continue;
    if (op.kind != AccountKind::kRecipient) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, ": only recipient accounts have one"));
    }
    if (code->size() > kCodeBytesMax) {
      return absl::InvalidArgumentError(absl::StrCat(field, ": ", code->size(),
                                                     " bytes, at most ", kCodeBytesMax));
    }
    WL_RETURN_IF_ERROR(CheckAccountId(field, *code));
  }
  if (auto it = account_index_.find(op.account); it != account_index_.end()) {
    return absl::AlreadyExistsError(
        absl::StrCat("open_account.account: account '", op.account,
                     "' already exists (opened by entry ",
                     accounts_[it->second].opened_seq, ")"));
  }
  AccountState a;
  a.id = op.account;
  a.kind = op.kind;
  a.holding = IsHolding(op.kind);
  a.source = IsSource(op.kind);
  a.asset = op.asset.empty() ? kNoAsset : InternAsset(op.asset);
  a.flags = op.flags;
  a.name = op.name;
  a.category = op.category;
  a.community = op.community;
  a.opened_seq = seq;
  const uint32_t idx = AddAccount(std::move(a), j);
  const uint32_t asset = accounts_.back().asset;
  AddTouch(idx, asset, 0, asset == kNoAsset ? 0 : BalanceOf(idx, asset), j);
  return absl::OkStatus();
}

absl::Status LedgerState::CheckNewTraceHash(absl::string_view field, const std::string& trace_hash,
                                             Hash* out) const {
  WL_RETURN_IF_ERROR(CheckHash(field, trace_hash, /*required=*/false));
  if (trace_hash.empty()) return absl::OkStatus();
  *out = ToHash(trace_hash);
  if (auto it = trace_hashes_.find(*out); it != trace_hashes_.end()) {
    return absl::AlreadyExistsError(
        absl::StrCat(field, ": already identifies lot ", it->second));
  }
  return absl::OkStatus();
}

uint32_t LedgerState::AddAccount(AccountState a, Journal* j) {
  const auto idx = static_cast<uint32_t>(accounts_.size());
  account_index_.emplace(a.id, idx);
  accounts_.push_back(std::move(a));
  j->Add({Journal::Kind::kNewAccount});
  return idx;
}

absl::Status LedgerState::ApplyClose(const CloseAccountOp& op, Journal* j, Entry* e) {
  e->postings.clear();
  WL_RETURN_IF_ERROR(CheckAccountId("close_account.account", op.account));
  WL_RETURN_IF_ERROR(CheckText("close_account.reason", op.reason, kTextBytesMax, true));
  WL_ASSIGN_OR_RETURN(uint32_t idx, FindOpen("close_account.account", op.account));
  AccountState& a = accounts_[idx];
  if (IsHolding(a.kind)) {
    int64_t held = BalanceOf(idx, a.asset);
    if (held != 0) {
      return absl::FailedPreconditionError(
          absl::StrCat("close_account.account: account '", a.id, "' still holds ", held,
                       " ", assets_[a.asset], "; only an empty account can be closed"));
    }
  }
  if (a.kind == AccountKind::kVoucher) {
    return absl::FailedPreconditionError(absl::StrCat(
        "close_account.account: '", a.id, "' is a voucher; vouchers end by voucher_close"));
  }
  for (const Voucher& v : vouchers_) {
    if (v.from == idx && v.state == VoucherState::kActive && v.redeemed + v.returned < v.face) {
      return absl::FailedPreconditionError(absl::StrCat(
          "close_account.account: '", a.id, "' funded voucher ", v.seq,
          ", which is still outstanding; expire or void it first"));
    }
  }
  a.closed = true;
  j->Add({Journal::Kind::kClosed, idx});
  AddTouch(idx, a.asset, 0, a.asset == kNoAsset ? 0 : BalanceOf(idx, a.asset), j);
  return absl::OkStatus();
}

absl::Status LedgerState::ApplyDonation(const DonationOp& op, uint64_t seq, int64_t time_us,
                                        Journal* j, Entry* e) {
  WL_RETURN_IF_ERROR(CheckAccountId("donation.donor", op.donor));
  WL_RETURN_IF_ERROR(CheckAccountId("donation.to", op.to));
  WL_RETURN_IF_ERROR(CheckAsset("donation.asset", op.asset));
  WL_RETURN_IF_ERROR(CheckAmount("donation.amount", op.amount));
  if (static_cast<uint8_t>(op.channel) > kDonationChannelMax) {
    return absl::InvalidArgumentError(
        absl::StrCat("donation.channel: ", static_cast<int>(op.channel),
                     " is not a channel (0..", kDonationChannelMax, ")"));
  }
  if (op.flags & ~kDonationFlagsKnown) {
    return absl::InvalidArgumentError(
        absl::StrCat("donation.flags: unknown bits ", op.flags & ~kDonationFlagsKnown));
  }
  WL_RETURN_IF_ERROR(CheckText("donation.memo", op.memo, kTextBytesMax, false));
  Hash trace{};
  WL_RETURN_IF_ERROR(CheckNewTraceHash("donation.trace_hash", op.trace_hash, &trace));
  WL_ASSIGN_OR_RETURN(uint32_t donor, FindOpen("donation.donor", op.donor));
  // The new lot goes at the end of the donor's list (see FindOpen).
  if (const auto& lots = accounts_[donor].lots; lots.size() < lots.capacity()) {
    __builtin_prefetch(lots.data() + lots.size(), 1);
  }
  WL_ASSIGN_OR_RETURN(uint32_t to, FindOpen("donation.to", op.to));
  if (!accounts_[donor].source) {
    return absl::FailedPreconditionError(
        absl::StrCat("donation.donor: account '", op.donor, "' is a ",
                     AccountKindName(accounts_[donor].kind), ", not a donor or merchant"));
  }
  AccountKind to_kind = accounts_[to].kind;
  if (!accounts_[to].holding || to_kind == AccountKind::kVoucher) {
    return absl::FailedPreconditionError(
        absl::StrCat("donation.to: account '", op.to, "' is a ", AccountKindName(to_kind),
                     "; gifts go into a fund, project or stock"));
  }
  WL_ASSIGN_OR_RETURN(uint32_t asset, AssetFor("donation.asset", to, op.asset));
  if (to_kind == AccountKind::kStock && cur_version_ >= 2) {
    // Goods are catalogued (version 1 ledgers predate the catalogue).
    WL_RETURN_IF_ERROR(CatalogueItem("donation.asset", op.asset).status());
  }
  WL_RETURN_IF_ERROR(AssetFor("donation.asset", donor, op.asset, asset).status());
  WL_RETURN_IF_ERROR(CheckMove("donation.amount", donor, to, asset, op.amount));

  CreateLot(donor, to, asset, op.amount, seq, time_us, (op.flags & kDonationAnonymous) != 0,
            kNone, op.trace_hash.empty() ? nullptr : &trace, j, OnePosting(e));
  return absl::OkStatus();
}

void LedgerState::CreateLot(uint32_t donor, uint32_t to, uint32_t asset, int64_t amount,
                            uint64_t seq, int64_t time_us, bool anonymous, uint32_t member,
                            const Hash* trace, Journal* j, Posting& p) {
  LotState lot;
  lot.lot = seq;
  lot.donor = donor;
  lot.to = to;
  lot.asset = asset;
  lot.amount = amount;
  lot.time_us = time_us;
  lot.anonymous = anonymous;
  lot.member = member;
  lot.purchase = cur_type_ == EntryType::kPurchase;
  lot.created_by = cur_type_;
  if (lot.purchase) {
    lot.at_origin = amount;
    // Move() below appends it as a new slice (a new lot merges with none).
    lot.origin_ordinal = accounts_[to].front_ordinal + accounts_[to].slices.size();
  }
  const auto lot_idx = static_cast<uint32_t>(lots_.size());
  if (lot_by_seq_.size() <= seq) lot_by_seq_.resize(seq + 1, kNone);
  lot_by_seq_[seq] = lot_idx;
  lots_.push_back(lot);
  j->Add({Journal::Kind::kNewLot});
  // Donors' and members' lists of lots are read only by donor statements.
  if (keep_query_indexes_) {
    accounts_[donor].lots.push_back(lot_idx);
    j->Add({Journal::Kind::kDonorLot, donor});
    if (member != kNone) {
      member_lots_[member].push_back(lot_idx);
      j->Add({Journal::Kind::kMemberLot, member});
    }
  }
  if (trace != nullptr) {
    trace_hashes_.emplace(*trace, seq);
    if (j->recording()) {
      j->saved_hashes_.push_back(*trace);
      j->Add({Journal::Kind::kTraceHash, 0, j->saved_hashes_.size() - 1});
    }
  }

  p.slices.clear();
  p.slices.push_back({seq, amount});
  Move(donor, to, asset, amount, p.slices, seq, /*record_moves=*/false, j);
  p.from.assign(accounts_[donor].id);
  p.to.assign(accounts_[to].id);
  p.asset.assign(assets_[asset]);
  p.amount = amount;
}

absl::Status LedgerState::ApplyAllocation(const AllocationOp& op, uint64_t seq, Journal* j,
                                          Entry* e) {
  WL_RETURN_IF_ERROR(CheckAccountId("allocation.from", op.from));
  WL_RETURN_IF_ERROR(CheckAccountId("allocation.to", op.to));
  WL_RETURN_IF_ERROR(CheckAsset("allocation.asset", op.asset));
  WL_RETURN_IF_ERROR(CheckAmount("allocation.amount", op.amount));
  WL_RETURN_IF_ERROR(CheckText("allocation.reason", op.reason, kTextBytesMax, false));
  if (op.from == op.to) {
    return absl::InvalidArgumentError(
        absl::StrCat("allocation.to: '", op.to, "' is also allocation.from"));
  }
  WL_ASSIGN_OR_RETURN(uint32_t from, FindOpen("allocation.from", op.from));
  WL_ASSIGN_OR_RETURN(uint32_t to, FindOpen("allocation.to", op.to));
  for (auto [field, idx] : {std::pair{"allocation.from", from}, std::pair{"allocation.to", to}}) {
    if (!IsFundOrProject(accounts_[idx].kind)) {
      return absl::FailedPreconditionError(
          absl::StrCat(field, ": account '", accounts_[idx].id, "' is a ",
                       AccountKindName(accounts_[idx].kind),
                       "; allocations move money between funds and projects"));
    }
  }
  const AccountState& src = accounts_[from];
  if (src.kind == AccountKind::kProject || (src.flags & kAccountRestricted)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "allocation.from: account '", op.from, "' is restricted: its money may leave only ",
        "by a disbursement for its purpose or by a correction with a reason"));
  }
  return PostFifo("allocation.asset", "allocation.amount", from, to, op.from, op.to, op.asset,
                  op.amount, seq, j, e);
}

absl::Status LedgerState::PostFifo(absl::string_view asset_field, absl::string_view amount_field,
                                  uint32_t from, uint32_t to, const std::string& from_id,
                                  const std::string& to_id, const std::string& asset_code,
                                  int64_t amount, uint64_t seq, Journal* j, Entry* e) {
  WL_ASSIGN_OR_RETURN(uint32_t asset, AssetFor(asset_field, from, asset_code));
  WL_RETURN_IF_ERROR(AssetFor(asset_field, to, asset_code, asset).status());
  WL_RETURN_IF_ERROR(CheckMove(amount_field, from, to, asset, amount));
  Posting& p = OnePosting(e);
  WL_RETURN_IF_ERROR(TakeFifo(amount_field, from, amount, j, &p.slices));
  Move(from, to, asset, amount, p.slices, seq, /*record_moves=*/true, j);
  e->policy.assign(kPolicyFifoV1);
  p.from.assign(from_id);
  p.to.assign(to_id);
  p.asset.assign(asset_code);
  p.amount = amount;
  return absl::OkStatus();
}

absl::Status LedgerState::ApplyDisbursement(const DisbursementOp& op, uint64_t seq,
                                            Journal* j, Entry* e) {
  WL_RETURN_IF_ERROR(CheckAccountId("disbursement.from", op.from));
  WL_RETURN_IF_ERROR(CheckAccountId("disbursement.to", op.to));
  WL_RETURN_IF_ERROR(CheckAsset("disbursement.asset", op.asset));
  WL_RETURN_IF_ERROR(CheckAmount("disbursement.amount", op.amount));
  WL_RETURN_IF_ERROR(CheckText("disbursement.purpose", op.purpose, kTextBytesMax, false));
  WL_ASSIGN_OR_RETURN(uint32_t from, FindOpen("disbursement.from", op.from));
  WL_ASSIGN_OR_RETURN(uint32_t to, FindOpen("disbursement.to", op.to));
  if (!IsFundOrProject(accounts_[from].kind)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "disbursement.from: account '", op.from, "' is a ",
        AccountKindName(accounts_[from].kind), "; disbursements leave a fund or project"));
  }
  if (!IsSink(accounts_[to].kind)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "disbursement.to: account '", op.to, "' is a ", AccountKindName(accounts_[to].kind),
        "; disbursements go to a recipient, supplier or expense"));
  }
  WL_RETURN_IF_ERROR(
      CheckText("disbursement.override", op.override_reason, kTextBytesMax, false));
  WL_RETURN_IF_ERROR(PostFifo("disbursement.asset", "disbursement.amount", from, to, op.from,
                              op.to, op.asset, op.amount, seq, j, e));
  if (accounts_[to].kind == AccountKind::kRecipient) {
    // Checked after the move (undone on failure): the asset is known.
    const uint32_t asset = accounts_[from].asset;
    WL_RETURN_IF_ERROR(CheckAidRules("disbursement.to", EntryType::kDisbursement, from, asset,
                                     to, op.override_reason));
    RecordAid(to, from, asset, op.amount, j);
  }
  return absl::OkStatus();
}

absl::Status LedgerState::ApplyCorrection(const CorrectionOp& op, uint64_t seq,
                                          const EntryLookup& lookup, Journal* j, Entry* e) {
  WL_RETURN_IF_ERROR(CheckText("correction.reason", op.reason, kTextBytesMax, true));
  if (op.mode != CorrectionMode::kReverse && op.mode != CorrectionMode::kAdjust) {
    return absl::InvalidArgumentError(absl::StrCat(
        "correction.mode: ", static_cast<int>(op.mode), " is not 1 (reverse) or 2 (adjust)"));
  }
  if (op.ref_seq == 0 || op.ref_seq >= seq) {
    return absl::NotFoundError(
        absl::StrCat("correction.ref_seq: entry ", op.ref_seq, " not found"));
  }

  if (op.mode == CorrectionMode::kAdjust) {
    WL_RETURN_IF_ERROR(CheckAccountId("correction.from", op.from));
    WL_RETURN_IF_ERROR(CheckAccountId("correction.to", op.to));
    WL_RETURN_IF_ERROR(CheckAsset("correction.asset", op.asset));
    WL_RETURN_IF_ERROR(CheckAmount("correction.amount", op.amount));
    if (op.from == op.to) {
      return absl::InvalidArgumentError(
          absl::StrCat("correction.to: '", op.to, "' is also correction.from"));
    }
    WL_ASSIGN_OR_RETURN(uint32_t from, FindOpen("correction.from", op.from));
    WL_ASSIGN_OR_RETURN(uint32_t to, FindOpen("correction.to", op.to));
    if (!IsHolding(accounts_[from].kind)) {
      return absl::FailedPreconditionError(absl::StrCat(
          "correction.from: account '", op.from, "' is a ",
          AccountKindName(accounts_[from].kind), "; an adjustment moves held value"));
    }
    if (IsSource(accounts_[to].kind)) {
      return absl::FailedPreconditionError(absl::StrCat(
          "correction.to: account '", op.to, "' is a ", AccountKindName(accounts_[to].kind),
          "; to return a gift, reverse its donation"));
    }
    for (auto [field, idx] :
         {std::pair{"correction.from", from}, std::pair{"correction.to", to}}) {
      if (accounts_[idx].kind == AccountKind::kVoucher) {
        return absl::FailedPreconditionError(absl::StrCat(
            field, ": account '", accounts_[idx].id,
            "' is a voucher; a voucher's value changes only by redemption and voucher_close"));
      }
    }
    return PostFifo("correction.asset", "correction.amount", from, to, op.from, op.to, op.asset,
                    op.amount, seq, j, e);
  }

  // Reverse.
  if (!op.from.empty() || !op.to.empty() || !op.asset.empty() || op.amount != 0) {
    return absl::InvalidArgumentError(
        "correction.from: from, to, asset and amount must be empty for a reversal");
  }
  if (auto it = reversed_.find(op.ref_seq); it != reversed_.end()) {
    return absl::FailedPreconditionError(absl::StrCat("correction.ref_seq: entry ", op.ref_seq,
                                                      " was already reversed by entry ",
                                                      it->second));
  }
  WL_ASSIGN_OR_RETURN(Entry original, lookup(op.ref_seq));
  EntryType type = original.type();
  if (type != EntryType::kDonation && type != EntryType::kAllocation &&
      type != EntryType::kDisbursement && type != EntryType::kRedemption &&
      type != EntryType::kGoodsGift) {
    return absl::FailedPreconditionError(absl::StrCat(
        "correction.ref_seq: entry ", op.ref_seq, " is a ", EntryTypeName(type),
        "; only donations, goods gifts, allocations, disbursements and redemptions can be "
        "reversed"));
  }
  if (original.postings.size() != 1) {
    return absl::DataLossError(absl::StrCat("entry ", op.ref_seq, ": expected one posting"));
  }
  const Posting& p = original.postings[0];
  // A redemption taken back (goods returned, a till's mistake) gives the
  // voucher its value again, while it can still be used.
  uint32_t voucher = kNone;
  if (type == EntryType::kRedemption) {
    auto found = voucher_by_seq_.find(VoucherSeqFromAccountId(p.from));
    if (found == voucher_by_seq_.end()) {
      return absl::DataLossError(
          absl::StrCat("entry ", op.ref_seq, ": '", p.from, "' is not a voucher"));
    }
    voucher = found->second;
    const Voucher& v = vouchers_[voucher];
    if (v.state != VoucherState::kActive) {
      return absl::FailedPreconditionError(absl::StrCat(
          "correction.ref_seq: voucher ", v.seq, " was ",
          v.state == VoucherState::kExpired ? "expired" : "voided", " by entry ", v.closed_seq,
          "; the redemption can no longer return to it"));
    }
  }
  // The value goes back the way it came: from the original destination to the
  // original source.
  WL_ASSIGN_OR_RETURN(uint32_t from, FindOpen("correction.ref_seq", p.to));
  WL_ASSIGN_OR_RETURN(uint32_t to, FindOpen("correction.ref_seq", p.from));
  WL_ASSIGN_OR_RETURN(uint32_t asset, AssetFor("correction.ref_seq", from, p.asset));
  // A sink's balance is taken back regardless (a supplier may since have
  // delivered goods out of what it was given).
  WL_RETURN_IF_ERROR(CheckMove("correction.ref_seq", from, to, asset, p.amount,
                               /*from_gives=*/!accounts_[from].holding));
  if (accounts_[from].holding) {
    WL_RETURN_IF_ERROR(TakeLots("correction.ref_seq", from, p.slices, j));
  }
  Move(from, to, asset, p.amount, p.slices, seq, /*record_moves=*/true, j);
  reversed_.emplace(op.ref_seq, seq);
  j->Add({Journal::Kind::kReversed, 0, op.ref_seq});
  if (voucher != kNone) {
    vouchers_[voucher].redeemed -= p.amount;
    --vouchers_[voucher].redemptions;
    j->Add({Journal::Kind::kVoucherUnredeem, voucher, 0, p.amount});
    AddStoreEvent(from, kStoreRedemptionReversal, asset, p.amount, 0, j);
  }
  e->policy.assign(kPolicyReverseV1);
  Posting& back = OnePosting(e);
  back.from.assign(p.to);
  back.to.assign(p.from);
  back.asset.assign(p.asset);
  back.amount = p.amount;
  back.slices.assign(p.slices.begin(), p.slices.end());
  return absl::OkStatus();
}


// ---------------------------------------------------------------------------
// Checkout and vouchers

absl::Status LedgerState::ApplyPurchase(const PurchaseOp& op, uint64_t seq, int64_t time_us,
                                        Journal* j, Entry* e) {
  e->postings.clear();
  WL_RETURN_IF_ERROR(CheckAccountId("purchase.store", op.store));
  WL_RETURN_IF_ERROR(CheckKey("purchase.order_id", op.order_id, kOrderIdBytesMax));
  WL_RETURN_IF_ERROR(CheckMoneyAsset("purchase.asset", op.asset));
  WL_RETURN_IF_ERROR(CheckAmount("purchase.amount", op.amount));
  if (!op.member.empty()) WL_RETURN_IF_ERROR(CheckAccountId("purchase.member", op.member));
  if (op.sale_time_us < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("purchase.sale_time_us: ", op.sale_time_us, " is negative"));
  }
  if (op.rate_bp > kRateBpMax) {
    return absl::InvalidArgumentError(absl::StrCat(
        "purchase.rate_bp: ", op.rate_bp, " basis points, at most ", kRateBpMax));
  }
  WL_RETURN_IF_ERROR(CheckAccountId("purchase.fund", op.fund));
  const int64_t contribution = ContributionOf(op.amount, op.rate_bp);
  if (contribution == 0 && !op.trace_hash.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("purchase.trace_hash: the contribution of ", op.amount, " at ",
                     op.rate_bp, " basis points rounds to 0; there is no lot to trace"));
  }
  Hash trace{};
  WL_RETURN_IF_ERROR(CheckNewTraceHash("purchase.trace_hash", op.trace_hash, &trace));
  WL_ASSIGN_OR_RETURN(uint32_t store, FindOpen("purchase.store", op.store));
  if (accounts_[store].kind != AccountKind::kMerchant) {
    return absl::FailedPreconditionError(
        absl::StrCat("purchase.store: account '", op.store, "' is a ",
                     AccountKindName(accounts_[store].kind), ", not a merchant"));
  }
  WL_ASSIGN_OR_RETURN(uint32_t fund, FindOpen("purchase.fund", op.fund));
  if (!IsFundOrProject(accounts_[fund].kind)) {
    return absl::FailedPreconditionError(
        absl::StrCat("purchase.fund: account '", op.fund, "' is a ",
                     AccountKindName(accounts_[fund].kind), ", not a fund or project"));
  }
  WL_ASSIGN_OR_RETURN(uint32_t asset, AssetFor("purchase.asset", fund, op.asset));
  WL_RETURN_IF_ERROR(AssetFor("purchase.asset", store, op.asset, asset).status());
  if (contribution > 0) {
    WL_RETURN_IF_ERROR(CheckMove("purchase.amount", store, fund, asset, contribution));
    const uint32_t member = op.member.empty() ? kNone : InternMember(op.member, j);
    CreateLot(store, fund, asset, contribution, seq, time_us, /*anonymous=*/false, member,
              op.trace_hash.empty() ? nullptr : &trace, j, OnePosting(e));
  } else {
    // No value moves; the sale still counts in the store's settlement and
    // its statement.
    AddTouch(store, asset, 0, BalanceOf(store, asset), j);
  }
  AddStoreEvent(store, kStorePurchase, asset, op.amount, contribution, j);
  return absl::OkStatus();
}

std::optional<uint64_t> LedgerState::FindPurchase(const std::string& store,
                                                  const std::string& order_id) const {
  // Only a purchase can hold its natural id (Apply refuses it to others).
  return FindClientId(PurchaseClientId(store, order_id));
}

absl::Status LedgerState::ApplyRefund(const RefundOp& op, uint64_t seq,
                                      const EntryLookup& lookup, Journal* j, Entry* e) {
  e->postings.clear();
  WL_RETURN_IF_ERROR(CheckAccountId("refund.store", op.store));
  WL_RETURN_IF_ERROR(CheckKey("refund.order_id", op.order_id, kOrderIdBytesMax));
  WL_RETURN_IF_ERROR(CheckKey("refund.refund_id", op.refund_id, kOrderIdBytesMax));
  WL_RETURN_IF_ERROR(CheckAmount("refund.amount", op.amount));
  WL_ASSIGN_OR_RETURN(uint32_t store, FindOpen("refund.store", op.store));
  const std::optional<uint64_t> purchase_seq = FindPurchase(op.store, op.order_id);
  if (!purchase_seq) {
    return absl::NotFoundError(absl::StrCat("refund.order_id: no purchase of order '",
                                            op.order_id, "' at store '", op.store, "'"));
  }
  WL_ASSIGN_OR_RETURN(Entry original, lookup(*purchase_seq));
  const auto* purchase = std::get_if<PurchaseOp>(&original.body);
  if (purchase == nullptr) {
    return absl::DataLossError(
        absl::StrCat("entry ", *purchase_seq, ": expected the purchase of order '",
                     op.order_id, "'"));
  }
  const int64_t contribution = original.postings.empty() ? 0 : original.postings[0].amount;
  RefundTotals totals;
  if (auto it = refunds_.find(*purchase_seq); it != refunds_.end()) totals = it->second;
  const int64_t refundable = purchase->amount - totals.refunded;
  if (op.amount > refundable) {
    return absl::FailedPreconditionError(absl::StrCat(
        "refund.amount: order '", op.order_id, "' at store '", op.store, "' has ", refundable,
        " of ", purchase->amount, " left to refund, asked ", op.amount));
  }
  const int64_t refunded = totals.refunded + op.amount;
  const int64_t reversal = ProportionOf(contribution, refunded, purchase->amount) - totals.reversed;
  WL_CHECK(reversal >= 0 && totals.reversed + reversal <= contribution);
  WL_ASSIGN_OR_RETURN(uint32_t asset, AssetFor("refund.store", store, purchase->asset));
  if (reversal > 0) {
    WL_ASSIGN_OR_RETURN(uint32_t fund, FindOpen("refund.order_id", purchase->fund));
    WL_RETURN_IF_ERROR(CheckMove("refund.amount", fund, store, asset, reversal));
    Posting& p = OnePosting(e);
    // The purchase's own lot first, from wherever it still is in the fund;
    // the rest (its lot was already spent) from the fund's oldest money.
    const int64_t own = TakeOwnLot(fund, *purchase_seq, reversal, j, &p.slices);
    if (own < reversal) {
      WL_RETURN_IF_ERROR(TakeFifo("refund.amount", fund, reversal - own, j, &p.slices));
    }
    Move(fund, store, asset, reversal, p.slices, seq, /*record_moves=*/true, j);
    e->policy.assign(own == reversal ? kPolicyLotV1 : kPolicyLotFifoV1);
    p.from.assign(purchase->fund);
    p.to.assign(op.store);
    p.asset.assign(purchase->asset);
    p.amount = reversal;
  } else {
    AddTouch(store, asset, 0, BalanceOf(store, asset), j);
  }
  auto [it, inserted] = refunds_.try_emplace(*purchase_seq);
  it->second.refunded += op.amount;
  it->second.reversed += reversal;
  j->Add({Journal::Kind::kRefundTotals, 0, *purchase_seq, op.amount});
  j->Add({Journal::Kind::kRefundReversed, 0, *purchase_seq, reversal});
  AddStoreEvent(store, kStoreRefund, asset, op.amount, reversal, j);
  return absl::OkStatus();
}

int64_t LedgerState::TakeOwnLot(uint32_t account, uint64_t lot, int64_t max, Journal* j,
                                std::vector<Slice>* out) {
  const uint32_t idx = LotIndex(lot);
  if (idx == kNone || lots_[idx].to != account) return 0;
  const int64_t want = std::min(max, lots_[idx].at_origin);
  AccountState& a = accounts_[account];
  auto& slices = a.slices;
  if (want == 0) return 0;
  int64_t taken = 0;
  std::vector<std::pair<size_t, int64_t>> found;  // (index, amount taken)
  auto take_at = [&](size_t i) {
    Slice& s = slices[i];
    const int64_t take = std::min(s.amount, want - taken);
    taken += take;
    found.push_back({i, take});
    s.amount -= take;
    j->Add({Journal::Kind::kSliceReduce, account, i, take});
    if (s.amount == 0) ++a.dead_slices;
  };
  // The slice the lot arrived as, if it is still where it was put.
  const uint64_t ordinal = lots_[idx].origin_ordinal;
  size_t hint = SIZE_MAX;
  if (ordinal >= a.front_ordinal && ordinal - a.front_ordinal < slices.size()) {
    hint = ordinal - a.front_ordinal;
    if (slices[hint].lot == lot && slices[hint].amount > 0) take_at(hint);
  }
  if (taken < want) {
    // Moved since (part spent, or a reversal rebuilt the slices): search.
    // Slices that arrived as lots sit in seq order, so start from the end
    // whose lot is nearer in seq.
    const bool from_back = lot - std::min(lot, slices.front().lot) >
                           std::max(lot, slices.back().lot) - lot;
    for (size_t k = 0; k < slices.size() && taken < want; ++k) {
      const size_t i = from_back ? slices.size() - 1 - k : k;
      if (i != hint && slices[i].lot == lot && slices[i].amount > 0) take_at(i);
    }
  }
  // at_origin counts exactly what the fund holds of the lot. Were it ever
  // wrong, the caller takes the rest by fifo/v1: the entry stays balanced
  // and replays the same, rather than the ledger refusing to open.
  WL_DCHECK(taken == want);
  // Recorded in the account's order, as fifo/v1 would list them.
  std::sort(found.begin(), found.end());
  for (const auto& [index, amount] : found) out->push_back({lot, amount});
  return taken;
}

absl::Status LedgerState::ApplyVoucherIssue(const VoucherIssueOp& op, uint64_t seq,
                                            int64_t time_us, Journal* j, Entry* e) {
  WL_RETURN_IF_ERROR(CheckAccountId("voucher_issue.from", op.from));
  WL_RETURN_IF_ERROR(CheckAccountId("voucher_issue.recipient", op.recipient));
  WL_RETURN_IF_ERROR(CheckMoneyAsset("voucher_issue.asset", op.asset));
  WL_RETURN_IF_ERROR(CheckAmount("voucher_issue.amount", op.amount));
  if (op.expires_us <= time_us) {
    return absl::InvalidArgumentError(
        absl::StrCat("voucher_issue.expires_us: ", op.expires_us,
                     " is not after the time of issue (", time_us, ")"));
  }
  if (op.stores.size() > kVoucherStoresMax) {
    return absl::InvalidArgumentError(absl::StrCat("voucher_issue.stores: ", op.stores.size(),
                                                   " stores, at most ", kVoucherStoresMax));
  }
  WL_RETURN_IF_ERROR(CheckHash("voucher_issue.code_hash", op.code_hash, true));
  WL_RETURN_IF_ERROR(CheckText("voucher_issue.memo", op.memo, kTextBytesMax, false));
  const Hash code = ToHash(op.code_hash);
  if (auto it = voucher_codes_.find(code); it != voucher_codes_.end()) {
    return absl::AlreadyExistsError(absl::StrCat(
        "voucher_issue.code_hash: already the code of voucher ", vouchers_[it->second].seq));
  }
  std::vector<uint32_t> stores;
  for (size_t i = 0; i < op.stores.size(); ++i) {
    const std::string field = absl::StrCat("voucher_issue.stores[", i, "]");
    WL_RETURN_IF_ERROR(CheckAccountId(field, op.stores[i]));
    WL_ASSIGN_OR_RETURN(uint32_t store, FindOpen(field, op.stores[i]));
    if (accounts_[store].kind != AccountKind::kMerchant) {
      return absl::FailedPreconditionError(
          absl::StrCat(field, ": account '", op.stores[i], "' is a ",
                       AccountKindName(accounts_[store].kind), ", not a merchant"));
    }
    if (std::find(stores.begin(), stores.end(), store) != stores.end()) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, ": '", op.stores[i], "' is listed twice"));
    }
    stores.push_back(store);
  }
  WL_ASSIGN_OR_RETURN(uint32_t from, FindOpen("voucher_issue.from", op.from));
  if (!IsFundOrProject(accounts_[from].kind)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "voucher_issue.from: account '", op.from, "' is a ",
        AccountKindName(accounts_[from].kind), "; vouchers are funded by a fund or project"));
  }
  WL_ASSIGN_OR_RETURN(uint32_t recipient, FindOpen("voucher_issue.recipient", op.recipient));
  if (accounts_[recipient].kind != AccountKind::kRecipient) {
    return absl::FailedPreconditionError(absl::StrCat(
        "voucher_issue.recipient: account '", op.recipient, "' is a ",
        AccountKindName(accounts_[recipient].kind), ", not a registered recipient"));
  }
  WL_ASSIGN_OR_RETURN(uint32_t asset, AssetFor("voucher_issue.asset", from, op.asset));
  // Checked before the voucher account exists, so that a fund that cannot
  // pay creates nothing.
  const int64_t held = BalanceOf(from, asset);
  if (held < op.amount) {
    return absl::FailedPreconditionError(
        absl::StrCat("voucher_issue.amount: account '", op.from, "' holds ", held, " ",
                     op.asset, ", asked ", op.amount));
  }
  WL_RETURN_IF_ERROR(
      CheckText("voucher_issue.override", op.override_reason, kTextBytesMax, false));
  WL_RETURN_IF_ERROR(CheckAidRules("voucher_issue.recipient", EntryType::kVoucherIssue, from,
                                   asset, recipient, op.override_reason));

  AccountState a;
  a.id = VoucherAccountId(seq);
  WL_CHECK(!account_index_.contains(a.id));  // OPEN_ACCOUNT never makes one
  a.kind = AccountKind::kVoucher;
  a.holding = true;
  a.source = false;
  a.asset = asset;
  a.flags = 0;
  a.opened_seq = seq;
  const uint32_t account = AddAccount(std::move(a), j);
  WL_RETURN_IF_ERROR(PostFifo("voucher_issue.asset", "voucher_issue.amount", from, account,
                              op.from, accounts_[account].id, op.asset, op.amount, seq, j, e));
  Voucher v;
  v.seq = seq;
  v.account = account;
  v.from = from;
  v.recipient = recipient;
  v.asset = asset;
  v.face = op.amount;
  v.issued_us = time_us;
  v.expires_us = op.expires_us;
  v.stores = std::move(stores);
  v.code = code;
  const auto idx = static_cast<uint32_t>(vouchers_.size());
  vouchers_.push_back(std::move(v));
  voucher_by_seq_.emplace(seq, idx);
  voucher_codes_.emplace(code, idx);
  j->Add({Journal::Kind::kNewVoucher});
  RecordAid(recipient, from, asset, op.amount, j);
  return absl::OkStatus();
}

absl::Status LedgerState::ApplyRedemption(const RedemptionOp& op, uint64_t seq, Journal* j,
                                          Entry* e) {
  WL_RETURN_IF_ERROR(CheckHash("redemption.code_hash", op.code_hash, true));
  WL_RETURN_IF_ERROR(CheckAccountId("redemption.store", op.store));
  WL_RETURN_IF_ERROR(CheckKey("redemption.order_id", op.order_id, kOrderIdBytesMax));
  WL_RETURN_IF_ERROR(CheckAmount("redemption.amount", op.amount));
  auto found = voucher_codes_.find(ToHash(op.code_hash));
  if (found == voucher_codes_.end()) {
    return absl::NotFoundError("redemption.code: no voucher has this code");
  }
  const uint32_t vi = found->second;
  const Voucher& v = vouchers_[vi];
  if (v.state != VoucherState::kActive) {
    return absl::FailedPreconditionError(absl::StrCat(
        "redemption.code: voucher ", v.seq, " was ",
        v.state == VoucherState::kExpired ? "expired" : "voided", " by entry ", v.closed_seq));
  }
  if (cur_time_us_ >= v.expires_us) {
    return absl::FailedPreconditionError(
        absl::StrCat("redemption.code: voucher ", v.seq, " expired at ", v.expires_us,
                     " (now ", cur_time_us_, ")"));
  }
  WL_ASSIGN_OR_RETURN(uint32_t store, FindOpen("redemption.store", op.store));
  if (accounts_[store].kind != AccountKind::kMerchant) {
    return absl::FailedPreconditionError(
        absl::StrCat("redemption.store: account '", op.store, "' is a ",
                     AccountKindName(accounts_[store].kind), ", not a merchant"));
  }
  if (!v.stores.empty() && std::find(v.stores.begin(), v.stores.end(), store) == v.stores.end()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "redemption.store: voucher ", v.seq, " is not accepted at store '", op.store, "'"));
  }
  const AccountState& account = accounts_[v.account];
  WL_RETURN_IF_ERROR(PostFifo("redemption.code", "redemption.amount", v.account, store,
                              account.id, op.store, assets_[v.asset], op.amount, seq, j, e));
  vouchers_[vi].redeemed += op.amount;
  ++vouchers_[vi].redemptions;
  j->Add({Journal::Kind::kVoucherRedeem, vi, 0, op.amount});
  AddStoreEvent(store, kStoreRedemption, v.asset, op.amount, 0, j);
  return absl::OkStatus();
}

absl::Status LedgerState::ApplyVoucherClose(const VoucherCloseOp& op, uint64_t seq, Journal* j,
                                            Entry* e) {
  e->postings.clear();
  WL_RETURN_IF_ERROR(CheckAccountId("voucher_close.voucher", op.voucher));
  if (op.mode != VoucherCloseMode::kExpire && op.mode != VoucherCloseMode::kVoid) {
    return absl::InvalidArgumentError(absl::StrCat("voucher_close.mode: ",
                                                   static_cast<int>(op.mode),
                                                   " is not 1 (expire) or 2 (void)"));
  }
  WL_RETURN_IF_ERROR(CheckText("voucher_close.reason", op.reason, kTextBytesMax,
                               op.mode == VoucherCloseMode::kVoid));
  auto found = voucher_by_seq_.find(VoucherSeqFromAccountId(op.voucher));
  if (found == voucher_by_seq_.end()) {
    return absl::NotFoundError(
        absl::StrCat("voucher_close.voucher: '", op.voucher, "' is not a voucher"));
  }
  const uint32_t vi = found->second;
  const Voucher& v = vouchers_[vi];
  if (v.state != VoucherState::kActive) {
    return absl::FailedPreconditionError(absl::StrCat(
        "voucher_close.voucher: voucher ", v.seq, " was already ",
        v.state == VoucherState::kExpired ? "expired" : "voided", " by entry ", v.closed_seq));
  }
  if (op.mode == VoucherCloseMode::kExpire && cur_time_us_ < v.expires_us) {
    return absl::FailedPreconditionError(
        absl::StrCat("voucher_close.mode: voucher ", v.seq, " expires at ", v.expires_us,
                     ", after now (", cur_time_us_, "); void it to end it early"));
  }
  const int64_t remaining = BalanceOf(v.account, v.asset);
  if (remaining == 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "voucher_close.voucher: voucher ", v.seq, " was fully redeemed; nothing to return"));
  }
  WL_ASSIGN_OR_RETURN(uint32_t from, FindOpen("voucher_close.voucher", accounts_[v.from].id));
  // Every slice it still holds goes back, in order: the fund gets back the
  // very lots that funded the voucher.
  WL_RETURN_IF_ERROR(PostFifo("voucher_close.voucher", "voucher_close.voucher", v.account,
                              from, accounts_[v.account].id, accounts_[from].id,
                              assets_[v.asset], remaining, seq, j, e));
  Voucher& w = vouchers_[vi];
  w.state = op.mode == VoucherCloseMode::kExpire ? VoucherState::kExpired : VoucherState::kVoided;
  w.closed_seq = seq;
  w.returned = remaining;
  j->Add({Journal::Kind::kVoucherClose, vi, 0, remaining});
  accounts_[w.account].closed = true;
  j->Add({Journal::Kind::kClosed, w.account});
  return absl::OkStatus();
}

// ---------------------------------------------------------------------------
// Goods

namespace {

// Optional short codes (a batch's grade): account-id characters.
absl::Status CheckOptionalCode(absl::string_view field, const std::string& code) {
  if (code.empty()) return absl::OkStatus();
  if (code.size() > kCodeBytesMax) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": ", code.size(), " bytes, at most ", kCodeBytesMax));
  }
  return CheckAccountId(field, code);
}

absl::Status CheckGoodsAsset(absl::string_view field, const std::string& code) {
  WL_RETURN_IF_ERROR(CheckAsset(field, code));
  if (ParseAssetCode(code) != AssetKind::kGoods) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": '", code, "' is money; an item code (item:<code>) is needed"));
  }
  return absl::OkStatus();
}

// A batch's expiry: 0 (none) or a time after now.
absl::Status CheckBatchExpiry(absl::string_view field, int64_t expires_us, int64_t now_us) {
  if (expires_us < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": ", expires_us, " is negative (0: does not expire)"));
  }
  if (expires_us != 0 && expires_us <= now_us) {
    return absl::FailedPreconditionError(absl::StrCat(
        field, ": the batch expired at ", expires_us, ", not after now (", now_us, ")"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<uint32_t> LedgerState::CatalogueItem(absl::string_view field,
                                                    const std::string& item) const {
  WL_RETURN_IF_ERROR(CheckGoodsAsset(field, item));
  auto asset = asset_index_.find(item);
  if (asset != asset_index_.end() && item_by_asset_.contains(asset->second)) {
    return asset->second;
  }
  return absl::FailedPreconditionError(
      absl::StrCat(field, ": '", item, "' is not in the catalogue; add it with an item entry"));
}

absl::StatusOr<uint32_t> LedgerState::FindStock(absl::string_view field, const std::string& id,
                                                uint32_t asset) const {
  WL_RETURN_IF_ERROR(CheckAccountId(field, id));
  WL_ASSIGN_OR_RETURN(uint32_t account, FindOpen(field, id));
  const AccountState& a = accounts_[account];
  if (a.kind != AccountKind::kStock) {
    return absl::FailedPreconditionError(absl::StrCat(
        field, ": account '", id, "' is a ", AccountKindName(a.kind), ", not a stock"));
  }
  if (a.asset != asset) {
    return absl::FailedPreconditionError(absl::StrCat(field, ": stock '", id, "' holds ",
                                                      assets_[a.asset], ", not ",
                                                      assets_[asset]));
  }
  return account;
}

absl::Status LedgerState::ApplyItem(const ItemOp& op, uint64_t seq, Journal* j, Entry* e) {
  e->postings.clear();
  WL_RETURN_IF_ERROR(CheckGoodsAsset("item.item", op.item));
  WL_RETURN_IF_ERROR(CheckText("item.name", op.name, kNameBytesMax, true));
  if (op.unit.empty() || op.unit.size() > kUnitBytesMax ||
      !std::all_of(op.unit.begin(), op.unit.end(), [](char c) { return c >= 'a' && c <= 'z'; })) {
    return absl::InvalidArgumentError(absl::StrCat(
        "item.unit: '", op.unit.substr(0, kUnitBytesMax), "' is not 1..", kUnitBytesMax,
        " lower-case letters (box, kg, piece)"));
  }
  if (auto a = asset_index_.find(op.item); a != asset_index_.end()) {
    if (auto it = item_by_asset_.find(a->second); it != item_by_asset_.end()) {
      return absl::AlreadyExistsError(absl::StrCat("item.item: '", op.item,
                                                   "' is already in the catalogue (entry ",
                                                   items_[it->second].seq, ")"));
    }
  }
  const uint32_t asset = InternAsset(op.item);
  item_by_asset_.emplace(asset, static_cast<uint32_t>(items_.size()));
  items_.push_back({asset, seq, op.name, op.unit});
  j->Add({Journal::Kind::kNewItem});
  return absl::OkStatus();
}

absl::Status LedgerState::ApplyGoodsGift(const GoodsGiftOp& op, uint64_t seq, int64_t time_us,
                                         Journal* j, Entry* e) {
  WL_RETURN_IF_ERROR(CheckAccountId("goods_gift.donor", op.donor));
  WL_ASSIGN_OR_RETURN(uint32_t asset, CatalogueItem("goods_gift.item", op.item));
  WL_RETURN_IF_ERROR(CheckAmount("goods_gift.quantity", op.quantity));
  WL_RETURN_IF_ERROR(CheckOptionalCode("goods_gift.grade", op.grade));
  WL_RETURN_IF_ERROR(CheckBatchExpiry("goods_gift.expires_us", op.expires_us, time_us));
  if (op.value_asset.empty()) {
    if (op.value != 0) {
      return absl::InvalidArgumentError("goods_gift.value_asset: required with a value");
    }
  } else {
    WL_RETURN_IF_ERROR(CheckMoneyAsset("goods_gift.value_asset", op.value_asset));
    WL_RETURN_IF_ERROR(CheckAmount("goods_gift.value", op.value));
  }
  if (static_cast<uint8_t>(op.channel) > kDonationChannelMax) {
    return absl::InvalidArgumentError(
        absl::StrCat("goods_gift.channel: ", static_cast<int>(op.channel),
                     " is not a channel (0..", kDonationChannelMax, ")"));
  }
  if (op.flags & ~kDonationFlagsKnown) {
    return absl::InvalidArgumentError(
        absl::StrCat("goods_gift.flags: unknown bits ", op.flags & ~kDonationFlagsKnown));
  }
  WL_RETURN_IF_ERROR(CheckText("goods_gift.memo", op.memo, kTextBytesMax, false));
  Hash trace{};
  WL_RETURN_IF_ERROR(CheckNewTraceHash("goods_gift.trace_hash", op.trace_hash, &trace));
  WL_ASSIGN_OR_RETURN(uint32_t donor, FindOpen("goods_gift.donor", op.donor));
  if (!accounts_[donor].source) {
    return absl::FailedPreconditionError(
        absl::StrCat("goods_gift.donor: account '", op.donor, "' is a ",
                     AccountKindName(accounts_[donor].kind), ", not a donor or merchant"));
  }
  WL_ASSIGN_OR_RETURN(uint32_t to, FindStock("goods_gift.to", op.to, asset));
  WL_RETURN_IF_ERROR(AssetFor("goods_gift.item", donor, op.item, asset).status());
  WL_RETURN_IF_ERROR(CheckMove("goods_gift.quantity", donor, to, asset, op.quantity));

  CreateLot(donor, to, asset, op.quantity, seq, time_us, (op.flags & kDonationAnonymous) != 0,
            kNone, op.trace_hash.empty() ? nullptr : &trace, j, OnePosting(e));
  lots_.back().expires_us = op.expires_us;
  lot_details_.emplace(seq, LotDetail{op.grade, op.value_asset, op.value, {}});
  j->Add({Journal::Kind::kLotDetail, 0, seq});
  return absl::OkStatus();
}

void LedgerState::RecordParents(uint64_t seq, const std::vector<Slice>& paid, int64_t amount,
                                Journal* j) {
  LotDetail& lot = lot_details_[seq];
  j->Add({Journal::Kind::kLotDetail, 0, seq});
  // One parent per lot, in the order the lots first appear.
  absl::flat_hash_map<uint64_t, size_t> index;
  for (const Slice& s : paid) {
    auto [it, added] = index.try_emplace(s.lot, lot.parents.size());
    if (added) {
      lot.parents.push_back({s.lot, s.amount, 0});
    } else {
      lot.parents[it->second].consumed += s.amount;
    }
  }
  std::vector<int64_t> weights;
  weights.reserve(lot.parents.size());
  for (const Parent& p : lot.parents) weights.push_back(p.consumed);
  const std::vector<int64_t> shares = Apportion(amount, weights);
  for (size_t i = 0; i < shares.size(); ++i) lot.parents[i].share = shares[i];
}

absl::Status LedgerState::ApplyGoodsPurchase(const GoodsPurchaseOp& op, uint64_t seq,
                                             int64_t time_us, Journal* j, Entry* e) {
  WL_RETURN_IF_ERROR(CheckAccountId("goods_purchase.from", op.from));
  WL_RETURN_IF_ERROR(CheckAccountId("goods_purchase.supplier", op.supplier));
  WL_RETURN_IF_ERROR(CheckMoneyAsset("goods_purchase.asset", op.asset));
  WL_RETURN_IF_ERROR(CheckAmount("goods_purchase.price", op.price));
  WL_ASSIGN_OR_RETURN(uint32_t item, CatalogueItem("goods_purchase.item", op.item));
  WL_RETURN_IF_ERROR(CheckAmount("goods_purchase.quantity", op.quantity));
  WL_RETURN_IF_ERROR(CheckOptionalCode("goods_purchase.grade", op.grade));
  WL_RETURN_IF_ERROR(CheckBatchExpiry("goods_purchase.expires_us", op.expires_us, time_us));
  WL_RETURN_IF_ERROR(CheckText("goods_purchase.memo", op.memo, kTextBytesMax, false));
  WL_ASSIGN_OR_RETURN(uint32_t from, FindOpen("goods_purchase.from", op.from));
  if (!IsFundOrProject(accounts_[from].kind)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "goods_purchase.from: account '", op.from, "' is a ",
        AccountKindName(accounts_[from].kind), "; goods are paid from a fund or project"));
  }
  WL_ASSIGN_OR_RETURN(uint32_t supplier, FindOpen("goods_purchase.supplier", op.supplier));
  if (accounts_[supplier].kind != AccountKind::kSupplier) {
    return absl::FailedPreconditionError(absl::StrCat(
        "goods_purchase.supplier: account '", op.supplier, "' is a ",
        AccountKindName(accounts_[supplier].kind), ", not a supplier"));
  }
  WL_ASSIGN_OR_RETURN(uint32_t to, FindStock("goods_purchase.to", op.to, item));
  WL_ASSIGN_OR_RETURN(uint32_t money, AssetFor("goods_purchase.asset", from, op.asset));
  WL_RETURN_IF_ERROR(AssetFor("goods_purchase.asset", supplier, op.asset, money).status());
  WL_RETURN_IF_ERROR(AssetFor("goods_purchase.item", supplier, op.item, item).status());
  WL_RETURN_IF_ERROR(CheckMove("goods_purchase.price", from, supplier, money, op.price));
  WL_RETURN_IF_ERROR(CheckMove("goods_purchase.quantity", supplier, to, item, op.quantity,
                               /*from_gives=*/true));

  e->postings.resize(2);
  Posting& paid = e->postings[0];
  Posting& goods = e->postings[1];
  paid.slices.clear();
  WL_RETURN_IF_ERROR(TakeFifo("goods_purchase.price", from, op.price, j, &paid.slices));
  Move(from, supplier, money, op.price, paid.slices, seq, /*record_moves=*/true, j);
  paid.from.assign(op.from);
  paid.to.assign(op.supplier);
  paid.asset.assign(op.asset);
  paid.amount = op.price;
  e->policy.assign(kPolicyFifoV1);
  CreateLot(supplier, to, item, op.quantity, seq, time_us, /*anonymous=*/false, kNone,
            nullptr, j, goods);
  lots_.back().expires_us = op.expires_us;
  RecordParents(seq, paid.slices, op.quantity, j);
  lot_details_[seq].grade = op.grade;
  return absl::OkStatus();
}

std::vector<size_t> LedgerState::FefoOrder(uint32_t account) const {
  const auto& slices = accounts_[account].slices;
  std::vector<std::pair<int64_t, size_t>> keyed;
  keyed.reserve(slices.size());
  bool expiring = false;
  for (size_t i = 0; i < slices.size(); ++i) {
    if (slices[i].amount == 0) continue;
    const int64_t expires = lots_[LotIndex(slices[i].lot)].expires_us;
    expiring |= expires != 0;
    // A lot that does not expire comes after every lot that does.
    keyed.push_back({expires == 0 ? INT64_MAX : expires, i});
  }
  if (expiring) std::stable_sort(keyed.begin(), keyed.end());
  std::vector<size_t> order;
  order.reserve(keyed.size());
  for (const auto& [expires, i] : keyed) order.push_back(i);
  return order;
}

absl::Status LedgerState::TakeInOrder(absl::string_view field, uint32_t account,
                                      const std::vector<size_t>& order, size_t* cursor,
                                      int64_t amount, Journal* j, std::vector<Slice>* out) {
  AccountState& a = accounts_[account];
  int64_t need = amount;
  while (need > 0) {
    WL_CHECK(*cursor < order.size());  // the caller proved the stock covers it
    if (out->size() >= kPostingSlicesMax) {
      return absl::FailedPreconditionError(absl::StrCat(
          field, ": the posting would consume more than ", kPostingSlicesMax,
          " lot slices of account '", a.id, "'; split it"));
    }
    const size_t i = order[*cursor];
    Slice& s = a.slices[i];
    const int64_t take = std::min(s.amount, need);
    // Adjacent takes from one lot (a slice split between two postings is
    // two takes, in two postings) merge within a posting.
    if (!out->empty() && out->back().lot == s.lot) {
      out->back().amount += take;
    } else {
      out->push_back({s.lot, take});
    }
    s.amount -= take;
    need -= take;
    j->Add({Journal::Kind::kSliceReduce, account, i, take});
    if (s.amount == 0) {
      ++a.dead_slices;
      ++*cursor;
    }
  }
  return absl::OkStatus();
}

void LedgerState::PopEmptyFront(uint32_t account, Journal* j) {
  AccountState& a = accounts_[account];
  while (!a.slices.empty() && a.slices.front().amount == 0) {
    j->Add({Journal::Kind::kPopFront, account, a.slices.front().lot, 0});
    a.slices.pop_front();
    --a.dead_slices;
    ++a.front_ordinal;
  }
}

absl::Status LedgerState::ApplyHandout(const HandoutOp& op, uint64_t seq, Journal* j,
                                       Entry* e) {
  WL_ASSIGN_OR_RETURN(uint32_t asset, CatalogueItem("handout.item", op.item));
  if (op.lines.empty() || op.lines.size() > kHandoutLinesMax) {
    return absl::InvalidArgumentError(absl::StrCat("handout.lines: ", op.lines.size(),
                                                   " lines; 1..", kHandoutLinesMax, " allowed"));
  }
  WL_RETURN_IF_ERROR(CheckText("handout.purpose", op.purpose, kTextBytesMax, false));
  WL_RETURN_IF_ERROR(CheckText("handout.override", op.override_reason, kTextBytesMax, false));
  WL_ASSIGN_OR_RETURN(uint32_t from, FindStock("handout.from", op.from, asset));
  std::vector<uint32_t> recipients;
  recipients.reserve(op.lines.size());
  absl::flat_hash_map<uint32_t, size_t> seen;
  int64_t total = 0;
  for (size_t i = 0; i < op.lines.size(); ++i) {
    const HandoutLine& line = op.lines[i];
    const std::string field = absl::StrCat("handout.lines[", i, "]");
    WL_RETURN_IF_ERROR(CheckAccountId(absl::StrCat(field, ".recipient"), line.recipient));
    WL_RETURN_IF_ERROR(CheckAmount(absl::StrCat(field, ".quantity"), line.quantity));
    WL_ASSIGN_OR_RETURN(uint32_t r, FindOpen(absl::StrCat(field, ".recipient"), line.recipient));
    if (accounts_[r].kind != AccountKind::kRecipient) {
      return absl::FailedPreconditionError(
          absl::StrCat(field, ".recipient: account '", line.recipient, "' is a ",
                       AccountKindName(accounts_[r].kind), ", not a registered recipient"));
    }
    if (auto [it, added] = seen.try_emplace(r, i); !added) {
      return absl::InvalidArgumentError(absl::StrCat(field, ".recipient: '", line.recipient,
                                                     "' is also in line ", it->second));
    }
    WL_RETURN_IF_ERROR(AssetFor(absl::StrCat(field, ".recipient"), r, op.item, asset).status());
    WL_RETURN_IF_ERROR(CheckMove(absl::StrCat(field, ".quantity"), from, r, asset,
                                 line.quantity));
    WL_RETURN_IF_ERROR(CheckAidRules(absl::StrCat(field, ".recipient"), EntryType::kHandout,
                                     from, asset, r, op.override_reason));
    if (__builtin_add_overflow(total, line.quantity, &total)) {
      return absl::InvalidArgumentError("handout.lines: the quantities' sum overflows");
    }
    recipients.push_back(r);
  }
  const int64_t held = BalanceOf(from, asset);
  if (held < total) {
    return absl::FailedPreconditionError(absl::StrCat("handout.lines: stock '", op.from,
                                                      "' holds ", held, " ", op.item,
                                                      ", the lines ask ", total));
  }

  const std::vector<size_t> order = FefoOrder(from);
  size_t cursor = 0;
  e->postings.resize(op.lines.size());
  for (size_t i = 0; i < op.lines.size(); ++i) {
    Posting& p = e->postings[i];
    p.slices.clear();
    WL_RETURN_IF_ERROR(TakeInOrder(absl::StrCat("handout.lines[", i, "].quantity"), from,
                                   order, &cursor, op.lines[i].quantity, j, &p.slices));
    p.from.assign(op.from);
    p.to.assign(op.lines[i].recipient);
    p.asset.assign(op.item);
    p.amount = op.lines[i].quantity;
  }
  PopEmptyFront(from, j);
  for (size_t i = 0; i < op.lines.size(); ++i) {
    const Posting& p = e->postings[i];
    Move(from, recipients[i], asset, p.amount, p.slices, seq, /*record_moves=*/true, j);
    RecordAid(recipients[i], from, asset, p.amount, j);
  }
  e->policy.assign(kPolicyFefoV1);
  return absl::OkStatus();
}

absl::Status LedgerState::ApplyWriteOff(const WriteOffOp& op, uint64_t seq, Journal* j,
                                        Entry* e) {
  WL_ASSIGN_OR_RETURN(uint32_t asset, CatalogueItem("write_off.item", op.item));
  WL_RETURN_IF_ERROR(CheckAccountId("write_off.to", op.to));
  WL_RETURN_IF_ERROR(CheckAmount("write_off.quantity", op.quantity));
  WL_RETURN_IF_ERROR(CheckText("write_off.reason", op.reason, kTextBytesMax, true));
  WL_ASSIGN_OR_RETURN(uint32_t from, FindStock("write_off.from", op.from, asset));
  WL_ASSIGN_OR_RETURN(uint32_t to, FindOpen("write_off.to", op.to));
  if (accounts_[to].kind != AccountKind::kExpense) {
    return absl::FailedPreconditionError(
        absl::StrCat("write_off.to: account '", op.to, "' is a ",
                     AccountKindName(accounts_[to].kind), ", not an expense account"));
  }
  WL_RETURN_IF_ERROR(AssetFor("write_off.to", to, op.item, asset).status());
  WL_RETURN_IF_ERROR(CheckMove("write_off.quantity", from, to, asset, op.quantity));
  std::vector<size_t> order;
  if (op.lot == 0) {
    order = FefoOrder(from);
    e->policy.assign(kPolicyFefoV1);
  } else {
    const uint32_t li = LotIndex(op.lot);
    if (li == kNone) {
      return absl::NotFoundError(absl::StrCat("write_off.lot: ", op.lot, " is not a lot"));
    }
    int64_t held = 0;
    const auto& slices = accounts_[from].slices;
    for (size_t i = 0; i < slices.size(); ++i) {
      if (slices[i].lot == op.lot && slices[i].amount > 0) {
        order.push_back(i);
        held += slices[i].amount;
      }
    }
    if (held < op.quantity) {
      return absl::FailedPreconditionError(absl::StrCat("write_off.lot: stock '", op.from,
                                                        "' holds ", held, " of lot ", op.lot,
                                                        ", asked ", op.quantity));
    }
    e->policy.assign(kPolicyLotV1);
  }
  Posting& p = OnePosting(e);
  size_t cursor = 0;
  WL_RETURN_IF_ERROR(
      TakeInOrder("write_off.quantity", from, order, &cursor, op.quantity, j, &p.slices));
  PopEmptyFront(from, j);
  Move(from, to, asset, op.quantity, p.slices, seq, /*record_moves=*/true, j);
  p.from.assign(op.from);
  p.to.assign(op.to);
  p.asset.assign(op.item);
  p.amount = op.quantity;
  return absl::OkStatus();
}

absl::Status LedgerState::ApplyGoodsSale(const GoodsSaleOp& op, uint64_t seq, int64_t time_us,
                                         Journal* j, Entry* e) {
  WL_ASSIGN_OR_RETURN(uint32_t item, CatalogueItem("goods_sale.item", op.item));
  WL_RETURN_IF_ERROR(CheckAccountId("goods_sale.buyer", op.buyer));
  WL_RETURN_IF_ERROR(CheckAccountId("goods_sale.to", op.to));
  WL_RETURN_IF_ERROR(CheckAmount("goods_sale.quantity", op.quantity));
  WL_RETURN_IF_ERROR(CheckMoneyAsset("goods_sale.asset", op.asset));
  WL_RETURN_IF_ERROR(CheckAmount("goods_sale.proceeds", op.proceeds));
  WL_RETURN_IF_ERROR(CheckText("goods_sale.memo", op.memo, kTextBytesMax, false));
  WL_ASSIGN_OR_RETURN(uint32_t from, FindStock("goods_sale.from", op.from, item));
  WL_ASSIGN_OR_RETURN(uint32_t buyer, FindOpen("goods_sale.buyer", op.buyer));
  if (accounts_[buyer].kind != AccountKind::kMerchant) {
    return absl::FailedPreconditionError(
        absl::StrCat("goods_sale.buyer: account '", op.buyer, "' is a ",
                     AccountKindName(accounts_[buyer].kind), ", not a merchant"));
  }
  WL_ASSIGN_OR_RETURN(uint32_t to, FindOpen("goods_sale.to", op.to));
  if (!IsFundOrProject(accounts_[to].kind)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "goods_sale.to: account '", op.to, "' is a ", AccountKindName(accounts_[to].kind),
        "; the proceeds go into a fund or project"));
  }
  WL_RETURN_IF_ERROR(AssetFor("goods_sale.item", buyer, op.item, item).status());
  WL_ASSIGN_OR_RETURN(uint32_t money, AssetFor("goods_sale.asset", to, op.asset));
  WL_RETURN_IF_ERROR(AssetFor("goods_sale.asset", buyer, op.asset, money).status());
  WL_RETURN_IF_ERROR(CheckMove("goods_sale.quantity", from, buyer, item, op.quantity));
  WL_RETURN_IF_ERROR(CheckMove("goods_sale.proceeds", buyer, to, money, op.proceeds));

  e->postings.resize(2);
  Posting& sold = e->postings[0];
  Posting& proceeds = e->postings[1];
  sold.slices.clear();
  const std::vector<size_t> order = FefoOrder(from);
  size_t cursor = 0;
  WL_RETURN_IF_ERROR(
      TakeInOrder("goods_sale.quantity", from, order, &cursor, op.quantity, j, &sold.slices));
  PopEmptyFront(from, j);
  Move(from, buyer, item, op.quantity, sold.slices, seq, /*record_moves=*/true, j);
  sold.from.assign(op.from);
  sold.to.assign(op.buyer);
  sold.asset.assign(op.item);
  sold.amount = op.quantity;
  e->policy.assign(kPolicyFefoV1);
  CreateLot(buyer, to, money, op.proceeds, seq, time_us, /*anonymous=*/false, kNone, nullptr,
            j, proceeds);
  RecordParents(seq, sold.slices, op.proceeds, j);
  return absl::OkStatus();
}

std::vector<ItemInfo> LedgerState::ListItems() const {
  std::vector<ItemInfo> out;
  out.reserve(items_.size());
  for (const Item& item : items_) {
    ItemInfo info{assets_[item.asset], item.name, item.unit, item.seq, 0};
    out.push_back(std::move(info));
  }
  // What every stock holds, per item.
  for (const AccountState& a : accounts_) {
    if (a.kind != AccountKind::kStock) continue;
    auto it = item_by_asset_.find(a.asset);
    if (it == item_by_asset_.end()) continue;
    for (const auto& [asset, amount] : a.balances) {
      if (asset == a.asset) out[it->second].in_stock += amount;
    }
  }
  return out;
}

absl::StatusOr<ItemInfo> LedgerState::GetItem(const std::string& item) const {
  WL_RETURN_IF_ERROR(CheckGoodsAsset("item", item));
  auto a = asset_index_.find(item);
  if (a == asset_index_.end() || !item_by_asset_.contains(a->second)) {
    return absl::NotFoundError(absl::StrCat("item: '", item, "' is not in the catalogue"));
  }
  return ListItems()[item_by_asset_.at(a->second)];
}

// ---------------------------------------------------------------------------
// Aid supervision

absl::Status LedgerState::ApplyAidRule(const AidRuleOp& op, uint64_t seq, Journal* j,
                                       Entry* e) {
  e->postings.clear();
  if (op.aid.empty() || op.aid.size() > kCodeBytesMax) {
    return absl::InvalidArgumentError(
        absl::StrCat("aid_rule.aid: ", op.aid.size(), " bytes; 1..", kCodeBytesMax));
  }
  WL_RETURN_IF_ERROR(CheckAccountId("aid_rule.aid", op.aid));
  if (op.type != EntryType::kDisbursement && op.type != EntryType::kVoucherIssue &&
      op.type != EntryType::kHandout) {
    return absl::InvalidArgumentError(absl::StrCat(
        "aid_rule.type: ", static_cast<int>(op.type),
        " is not disbursement (5), voucher_issue (9) or handout (15)"));
  }
  const auto period = static_cast<uint8_t>(op.period);
  if (period < 1 || period > kAidPeriodMax) {
    return absl::InvalidArgumentError(absl::StrCat("aid_rule.period: ", period,
                                                   " is not a period (1..", kAidPeriodMax,
                                                   ": day, week, month, quarter, year)"));
  }
  if (!op.asset.empty()) WL_RETURN_IF_ERROR(CheckAsset("aid_rule.asset", op.asset));
  WL_RETURN_IF_ERROR(CheckText("aid_rule.memo", op.memo, kTextBytesMax, false));
  if (!op.source.empty()) {
    WL_RETURN_IF_ERROR(CheckAccountId("aid_rule.source", op.source));
    WL_ASSIGN_OR_RETURN(uint32_t source, FindOpen("aid_rule.source", op.source));
    const AccountKind kind = accounts_[source].kind;
    const bool fits = op.type == EntryType::kHandout ? kind == AccountKind::kStock
                                                     : IsFundOrProject(kind);
    if (!fits) {
      return absl::FailedPreconditionError(absl::StrCat(
          "aid_rule.source: account '", op.source, "' is a ", AccountKindName(kind), "; ",
          EntryTypeName(op.type), "s leave ",
          op.type == EntryType::kHandout ? "a stock" : "a fund or project"));
    }
  }
  auto in_force = aid_rule_in_force_.find(op.aid);
  if (op.max_count == 0 && in_force == aid_rule_in_force_.end()) {
    return absl::FailedPreconditionError(
        absl::StrCat("aid_rule.max_count: 0 lifts a rule, and aid '", op.aid, "' has none"));
  }
  if (in_force == aid_rule_in_force_.end() && aid_rule_in_force_.size() >= kAidRulesMax) {
    return absl::FailedPreconditionError(
        absl::StrCat("aid_rule.aid: ", kAidRulesMax, " rules are in force, the most allowed"));
  }
  const uint32_t replaced = in_force == aid_rule_in_force_.end() ? kNone : in_force->second;
  const auto index = static_cast<uint32_t>(aid_rules_.size());
  aid_rules_.push_back({op, seq, replaced});
  if (op.max_count == 0) {
    aid_rule_in_force_.erase(op.aid);
  } else {
    aid_rule_in_force_[op.aid] = index;
  }
  j->Add({Journal::Kind::kAidRule});
  return absl::OkStatus();
}

absl::Status LedgerState::CheckAidRules(absl::string_view field, EntryType type,
                                        uint32_t source, uint32_t asset, uint32_t recipient,
                                        const std::string& override_reason) const {
  if (aid_rule_in_force_.empty() || !override_reason.empty()) return absl::OkStatus();
  auto events = aid_events_.find(recipient);
  if (events == aid_events_.end()) return absl::OkStatus();
  auto matches = [&](const AidRuleOp& rule, EntryType t, uint32_t src, uint32_t a) {
    return rule.type == t && (rule.source.empty() || rule.source == accounts_[src].id) &&
           (rule.asset.empty() || rule.asset == assets_[a]);
  };
  for (const auto& [aid, index] : aid_rule_in_force_) {
    const AidRuleOp& rule = aid_rules_[index].op;
    if (!matches(rule, type, source, asset)) continue;
    const int64_t period = AidPeriodIndex(rule.period, cur_time_us_);
    uint32_t count = 0;
    uint64_t last = 0;
    for (auto it = events->second.rbegin(); it != events->second.rend(); ++it) {
      if (AidPeriodIndex(rule.period, it->time_us) != period) break;
      if (!matches(rule, it->type, it->source, it->asset) || reversed_.contains(it->seq)) {
        continue;
      }
      if (last == 0) last = it->seq;
      ++count;
    }
    if (count >= rule.max_count) {
      return absl::FailedPreconditionError(absl::StrCat(
          field, ": recipient '", accounts_[recipient].id, "' already received '", aid, "' ",
          count, count == 1 ? " time" : " times", " this ", AidPeriodName(rule.period),
          " (at most ", rule.max_count, "), last by entry ", last,
          "; to give it again, give an override reason"));
    }
  }
  return absl::OkStatus();
}

void LedgerState::RecordAid(uint32_t recipient, uint32_t source, uint32_t asset,
                            int64_t amount, Journal* j) {
  aid_events_[recipient].push_back({cur_seq_, cur_time_us_, amount, source, asset, cur_type_});
  j->Add({Journal::Kind::kAidEvent, recipient});
}

std::vector<AidRuleInfo> LedgerState::ListAidRules() const {
  std::vector<AidRuleInfo> out;
  for (const auto& [aid, index] : aid_rule_in_force_) {
    out.push_back({aid_rules_[index].op, aid_rules_[index].seq});
  }
  std::sort(out.begin(), out.end(),
            [](const AidRuleInfo& a, const AidRuleInfo& b) { return a.rule.aid < b.rule.aid; });
  return out;
}

AidReport LedgerState::GetAidReport(int64_t from_time_us, int64_t to_time_us,
                                    bool public_view) const {
  AidReport report;
  report.from_time_us = from_time_us;
  report.to_time_us = to_time_us;
  report.public_view = public_view;
  using Key = std::tuple<std::string, std::string, uint8_t, std::string>;
  struct Cell {
    AidCell cell;
    uint32_t last_recipient = kNone;
  };
  std::map<Key, Cell> cells;
  for (const auto& [recipient, events] : aid_events_) {
    const AccountState& r = accounts_[recipient];
    for (const AidEvent& ev : events) {
      if (ev.time_us < from_time_us || ev.time_us >= to_time_us) continue;
      if (reversed_.contains(ev.seq)) continue;
      Cell& c = cells[Key{r.category, r.community, static_cast<uint8_t>(ev.type),
                          assets_[ev.asset]}];
      if (c.last_recipient != recipient) {
        // Each recipient's events are visited together: one per person.
        c.last_recipient = recipient;
        ++c.cell.people;
      }
      ++c.cell.entries;
      c.cell.amount += ev.amount;  // each ≤ kAmountMax: a sum overflows only past 9,000 of them
    }
  }
  for (auto& [key, c] : cells) {
    if (public_view && c.cell.people < kAidReportMinPeople) {
      ++report.suppressed_cells;
      continue;
    }
    std::tie(c.cell.category, c.cell.community, std::ignore, c.cell.asset) = key;
    c.cell.type = static_cast<EntryType>(std::get<2>(key));
    report.cells.push_back(std::move(c.cell));
  }
  return report;
}

uint32_t LedgerState::InternMember(const std::string& member, Journal* j) {
  if (auto it = member_index_.find(member); it != member_index_.end()) return it->second;
  const auto idx = static_cast<uint32_t>(members_.size());
  members_.push_back(member);
  member_lots_.emplace_back();
  member_index_.emplace(member, idx);
  j->Add({Journal::Kind::kNewMember});
  return idx;
}

void LedgerState::AddStoreEvent(uint32_t store, uint8_t kind, uint32_t asset, int64_t amount,
                                int64_t moved, Journal* j) {
  if (!keep_query_indexes_) return;  // read only by settlement reports
  store_events_[store].push_back({cur_time_us_, amount, moved, asset, kind});
  j->Add({Journal::Kind::kStoreEvent, store});
}

// ---------------------------------------------------------------------------
// Primitives

absl::StatusOr<uint32_t> LedgerState::FindOpen(absl::string_view field,
                                               const std::string& id) const {
  auto it = account_index_.find(id);
  if (it == account_index_.end()) {
    return absl::NotFoundError(absl::StrCat(field, ": account '", id, "' not found"));
  }
  const AccountState& a = accounts_[it->second];
  if (a.closed) {
    return absl::FailedPreconditionError(
        absl::StrCat(field, ": account '", id, "' is closed"));
  }
  // The entry will most likely add a statement line to this account, at the
  // end of a list that is seldom in cache: start fetching it now.
  if (keep_query_indexes_) a.touches.PrefetchEnd();
  return it->second;
}

absl::StatusOr<uint32_t> LedgerState::AssetFor(absl::string_view field, uint32_t account,
                                               const std::string& asset, uint32_t known) {
  const AccountState& a = accounts_[account];
  if (a.asset != kNoAsset) {
    if (assets_[a.asset] != asset) {
      return absl::FailedPreconditionError(absl::StrCat(field, ": account '", a.id,
                                                        "' holds ", assets_[a.asset], ", not ",
                                                        asset));
    }
    return a.asset;  // what InternAsset(asset) would return, without hashing
  }
  if (known != kNoAsset) return known;
  return InternAsset(asset);
}

uint32_t LedgerState::InternAsset(const std::string& code) {
  if (auto it = asset_index_.find(code); it != asset_index_.end()) return it->second;
  auto index = static_cast<uint32_t>(assets_.size());
  asset_index_.emplace(code, index);
  assets_.push_back(code);
  return index;
}

int64_t LedgerState::BalanceOf(uint32_t account, uint32_t asset) const {
  for (const auto& [a, amount] : accounts_[account].balances) {
    if (a == asset) return amount;
  }
  return 0;
}

absl::Status LedgerState::CheckMove(absl::string_view field, uint32_t from, uint32_t to,
                                    uint32_t asset, int64_t amount, bool from_gives) const {
  const AccountState& f = accounts_[from];
  int64_t from_balance = BalanceOf(from, asset);
  if (!f.source && !from_gives && from_balance < amount) {
    return absl::FailedPreconditionError(
        absl::StrCat(field, ": account '", f.id, "' holds ", from_balance, " ",
                     assets_[asset], ", asked ", amount));
  }
  int64_t ignored;
  if (__builtin_sub_overflow(from_balance, amount, &ignored)) {
    return absl::FailedPreconditionError(
        absl::StrCat(field, ": balance of account '", f.id, "' would overflow"));
  }
  if (__builtin_add_overflow(BalanceOf(to, asset), amount, &ignored)) {
    return absl::FailedPreconditionError(
        absl::StrCat(field, ": balance of account '", accounts_[to].id, "' would overflow"));
  }
  const size_t type = kFlowSlot[static_cast<size_t>(cur_type_)];
  // Only holding accounts' flows ever change (Move); the others' stay zero
  // and cannot overflow, so their flows (a cache line apart) are not read.
  const AccountState& t = accounts_[to];
  if ((f.holding && __builtin_add_overflow(f.flows[kFlowOut + type], amount, &ignored)) ||
      (t.holding && __builtin_add_overflow(t.flows[type], amount, &ignored))) {
    return absl::FailedPreconditionError(
        absl::StrCat(field, ": flow totals of account '", f.id, "' or '", accounts_[to].id,
                     "' would overflow"));
  }
  return absl::OkStatus();
}

int64_t LedgerState::AddBalance(uint32_t account, uint32_t asset, int64_t delta,
                                Journal* j) {
  auto& balances = accounts_[account].balances;
  auto it = std::find_if(balances.begin(), balances.end(),
                         [&](const auto& b) { return b.first == asset; });
  if (it == balances.end()) {
    balances.emplace_back(asset, 0);
    j->Add({Journal::Kind::kNewBalance, account});
    it = balances.end() - 1;
  }
  WL_CHECK(!__builtin_add_overflow(it->second, delta, &it->second));
  if (accounts_[account].holding) WL_CHECK(it->second >= 0);
  j->Add({Journal::Kind::kBalance, account, asset, delta});
  return it->second;
}

void LedgerState::Move(uint32_t from, uint32_t to, uint32_t asset, int64_t amount,
                       const std::vector<Slice>& slices, uint64_t seq, bool record_moves,
                       Journal* j) {
  int64_t from_after = AddBalance(from, asset, -amount, j);
  const int64_t to_after = AddBalance(to, asset, amount, j);
  // The lines show the balances after both changes (the rules never let
  // `from` be `to`; this keeps the lines exact even so).
  if (from == to) from_after = to_after;
  AddTouch(from, asset, -amount, from_after, j);
  AddTouch(to, asset, amount, to_after, j);
  const size_t type = kFlowSlot[static_cast<size_t>(cur_type_)];
  if (accounts_[from].holding) AddFlow(from, kFlowOut + type, amount, j);
  if (accounts_[to].holding) {
    AddFlow(to, type, amount, j);
    PushBack(to, slices, j);
  }
  if (!record_moves) return;
  for (const Slice& s : slices) {
    const uint32_t idx = LotIndex(s.lot);
    WL_CHECK(idx != kNone);
    LotState& lot = lots_[idx];
    if (lot.purchase && (from == lot.to || to == lot.to)) {
      const int64_t delta = from == lot.to ? -s.amount : s.amount;
      lot.at_origin += delta;
      j->Add({Journal::Kind::kLotOrigin, idx, 0, delta});
    }
    if (!keep_query_indexes_) continue;  // moves are read only by traces
    // A lot listed in several slices is recorded once per entry, and then
    // its movement is left to the entry (an undo of this entry removes the
    // move along with the mark).
    if (lot.last_move == kNoMove || lot.last_move_seq != seq) {
      const bool known =
          cur_type_ == EntryType::kAllocation || cur_type_ == EntryType::kDisbursement;
      lot_moves_.push_back({seq, lot.last_move, s.amount, cur_time_us_, from, to, cur_type_,
                            known});
      lot.last_move = lot_moves_.size() - 1;
      lot.last_move_seq = seq;
      j->Add({Journal::Kind::kLotMove, idx});
    } else {
      lot_moves_[lot.last_move].known = false;
    }
  }
}

absl::Status LedgerState::TakeFifo(absl::string_view field, uint32_t account, int64_t amount,
                                   Journal* j, std::vector<Slice>* out) {
  auto& slices = accounts_[account].slices;
  int64_t need = amount;
  while (need > 0) {
    WL_CHECK(!slices.empty());  // CheckMove proved the balance covers `amount`
    if (out->size() >= kPostingSlicesMax) {
      return absl::FailedPreconditionError(absl::StrCat(
          field, ": the posting would consume more than ", kPostingSlicesMax,
          " lot slices of account '", accounts_[account].id, "'; split it"));
    }
    Slice& head = slices.front();
    if (head.amount == 0) {  // a tombstone left by a refund
      j->Add({Journal::Kind::kPopFront, account, head.lot, 0});
      slices.pop_front();
      --accounts_[account].dead_slices;
      ++accounts_[account].front_ordinal;
      continue;
    }
    if (head.amount <= need) {
      out->push_back(head);
      need -= head.amount;
      j->Add({Journal::Kind::kPopFront, account, head.lot, head.amount});
      slices.pop_front();
      ++accounts_[account].front_ordinal;
    } else {
      out->push_back({head.lot, need});
      head.amount -= need;
      j->Add({Journal::Kind::kHeadReduce, account, 0, need});
      need = 0;
    }
  }
  return absl::OkStatus();
}

absl::Status LedgerState::TakeLots(absl::string_view field, uint32_t account,
                                   const std::vector<Slice>& wanted, Journal* j) {
  auto& slices = accounts_[account].slices;
  absl::flat_hash_map<uint64_t, int64_t> need;
  for (const Slice& s : wanted) need[s.lot] += s.amount;
  std::deque<Slice> kept;
  for (const Slice& s : slices) {
    Slice rest = s;
    auto it = need.find(s.lot);
    if (it != need.end() && it->second > 0) {
      int64_t take = std::min(it->second, s.amount);
      it->second -= take;
      rest.amount -= take;
    }
    if (rest.amount == 0) continue;
    if (!kept.empty() && kept.back().lot == rest.lot) {
      kept.back().amount += rest.amount;
    } else {
      kept.push_back(rest);
    }
  }
  for (const Slice& s : wanted) {
    if (need[s.lot] > 0) {
      return absl::FailedPreconditionError(absl::StrCat(
          field, ": account '", accounts_[account].id, "' no longer holds ", need[s.lot],
          " of lot ", s.lot, " that the reversal must take back"));
    }
  }
  if (j->recording()) {
    j->saved_slices_.push_back(std::move(slices));
    j->Add({Journal::Kind::kRestoreSlices, account, j->saved_slices_.size() - 1,
            static_cast<int64_t>(accounts_[account].dead_slices)});
  }
  slices = std::move(kept);  // without tombstones
  accounts_[account].dead_slices = 0;
  return absl::OkStatus();
}

void LedgerState::PushBack(uint32_t account, const std::vector<Slice>& in, Journal* j) {
  auto& slices = accounts_[account].slices;
  for (const Slice& s : in) {
    if (!slices.empty() && slices.back().lot == s.lot) {
      if (slices.back().amount == 0) --accounts_[account].dead_slices;
      slices.back().amount += s.amount;
      j->Add({Journal::Kind::kMergeTail, account, 0, s.amount});
    } else {
      slices.push_back(s);
      j->Add({Journal::Kind::kPushBack, account});
    }
  }
}

void LedgerState::SetHead(uint64_t seq, const Hash& hash, int64_t time_us, Journal* j) {
  if (j->recording()) {
    j->saved_hashes_.push_back(head_hash_);
    j->Add({Journal::Kind::kHead, static_cast<uint32_t>(j->saved_hashes_.size() - 1),
            head_seq_, head_time_us_});
  }
  head_seq_ = seq;
  head_hash_ = hash;
  head_time_us_ = time_us;
}

void LedgerState::AddTouch(uint32_t account, uint32_t asset, int64_t delta,
                           int64_t balance_after, Journal* j) {
  if (!keep_query_indexes_) return;  // statement lines are read only by queries
  accounts_[account].touches.push_back({cur_seq_, cur_time_us_, delta, balance_after, asset});
  j->Add({Journal::Kind::kTouch, account});
}

void LedgerState::AddFlow(uint32_t account, size_t slot, int64_t amount, Journal* j) {
  WL_CHECK(!__builtin_add_overflow(accounts_[account].flows[slot], amount,
                                   &accounts_[account].flows[slot]));
  j->Add({Journal::Kind::kFlow, account, slot, amount});
}

void LedgerState::UndoTo(Journal* j, size_t mark) {
  using K = Journal::Kind;
  while (j->records_.size() > mark) {
    Journal::Record r = j->records_.back();
    j->records_.pop_back();
    switch (r.kind) {
      case K::kNewBalance:
        accounts_[r.a].balances.pop_back();
        break;
      case K::kBalance: {
        for (auto& [asset, amount] : accounts_[r.a].balances) {
          if (asset == r.b) amount -= r.c;
        }
        break;
      }
      case K::kPopFront:
        accounts_[r.a].slices.push_front({r.b, r.c});
        --accounts_[r.a].front_ordinal;
        if (r.c == 0) ++accounts_[r.a].dead_slices;
        break;
      case K::kHeadReduce:
        accounts_[r.a].slices.front().amount += r.c;
        break;
      case K::kPushBack:
        accounts_[r.a].slices.pop_back();
        break;
      case K::kMergeTail:
        accounts_[r.a].slices.back().amount -= r.c;
        if (accounts_[r.a].slices.back().amount == 0) ++accounts_[r.a].dead_slices;
        break;
      case K::kRestoreSlices:
        accounts_[r.a].slices = std::move(j->saved_slices_[r.b]);
        accounts_[r.a].dead_slices = static_cast<uint64_t>(r.c);
        break;
      case K::kNewAccount:
        account_index_.erase(accounts_.back().id);
        accounts_.pop_back();
        break;
      case K::kNewLot:
        lot_by_seq_[lots_.back().lot] = kNone;
        lots_.pop_back();
        break;
      case K::kLotMove: {
        // Moves are undone newest first, so this is the newest of all.
        LotState& lot = lots_[r.a];
        WL_DCHECK(lot.last_move == lot_moves_.size() - 1);
        lot.last_move = lot_moves_.back().prev;
        lot.last_move_seq = lot.last_move == kNoMove ? 0 : lot_moves_[lot.last_move].seq;
        lot_moves_.pop_back();
        break;
      }
      case K::kDonorLot:
        accounts_[r.a].lots.pop_back();
        break;
      case K::kClientId:
        client_ids_.PopBack(r.b);
        break;
      case K::kClosed:
        accounts_[r.a].closed = false;
        break;
      case K::kReversed:
        reversed_.erase(r.b);
        break;
      case K::kTouch:
        accounts_[r.a].touches.pop_back();
        break;
      case K::kFlow:
        accounts_[r.a].flows[r.b] -= r.c;
        break;
      case K::kTraceHash:
        trace_hashes_.erase(j->saved_hashes_[r.b]);
        break;
      case K::kLotOrigin:
        lots_[r.a].at_origin -= r.c;
        break;
      case K::kSliceReduce: {
        Slice& slice = accounts_[r.a].slices[r.b];
        if (slice.amount == 0) --accounts_[r.a].dead_slices;
        slice.amount += r.c;
        break;
      }
      case K::kNewMember:
        member_index_.erase(members_.back());
        members_.pop_back();
        member_lots_.pop_back();
        break;
      case K::kMemberLot:
        member_lots_[r.a].pop_back();
        break;
      case K::kRefundTotals:
      case K::kRefundReversed: {
        auto it = refunds_.find(r.b);
        (r.kind == K::kRefundTotals ? it->second.refunded : it->second.reversed) -= r.c;
        if (it->second.refunded == 0 && it->second.reversed == 0) refunds_.erase(it);
        break;
      }
      case K::kStoreEvent: {
        auto it = store_events_.find(r.a);
        it->second.pop_back();
        if (it->second.empty()) store_events_.erase(it);
        break;
      }
      case K::kNewVoucher: {
        const Voucher& v = vouchers_.back();
        voucher_by_seq_.erase(v.seq);
        voucher_codes_.erase(v.code);
        vouchers_.pop_back();
        break;
      }
      case K::kVoucherRedeem:
        vouchers_[r.a].redeemed -= r.c;
        --vouchers_[r.a].redemptions;
        break;
      case K::kVoucherUnredeem:
        vouchers_[r.a].redeemed += r.c;
        ++vouchers_[r.a].redemptions;
        break;
      case K::kVoucherClose:
        vouchers_[r.a].state = VoucherState::kActive;
        vouchers_[r.a].closed_seq = 0;
        vouchers_[r.a].returned -= r.c;
        break;
      case K::kAidRule: {
        const AidRuleState& rule = aid_rules_.back();
        if (rule.replaced == kNone) {
          aid_rule_in_force_.erase(rule.op.aid);
        } else {
          aid_rule_in_force_[rule.op.aid] = rule.replaced;
        }
        aid_rules_.pop_back();
        break;
      }
      case K::kAidEvent: {
        auto it = aid_events_.find(r.a);
        it->second.pop_back();
        if (it->second.empty()) aid_events_.erase(it);
        break;
      }
      case K::kNewItem:
        item_by_asset_.erase(items_.back().asset);
        items_.pop_back();
        break;
      case K::kLotDetail:
        lot_details_.erase(r.b);
        break;
      case K::kHead:
        head_seq_ = r.b;
        head_time_us_ = r.c;
        head_hash_ = j->saved_hashes_[r.a];
        break;
    }
  }
}

// ---------------------------------------------------------------------------
// Reads

std::optional<uint64_t> LedgerState::FindClientId(const std::string& client_id) const {
  return client_ids_.Find(client_id);
}

void LedgerState::Reserve(uint64_t entries) {
  // A hint, not a bound: a mistaken one (such as UINT64_MAX for "all") must
  // not make the state allocate gigabytes up front.
  constexpr uint64_t kReserveMax = uint64_t{1} << 27;
  entries = std::min(entries, kReserveMax);
  client_ids_.Reserve(entries);
  lot_by_seq_.reserve(entries + 1);
}

absl::StatusOr<AccountInfo> LedgerState::GetAccount(const std::string& account) const {
  auto it = account_index_.find(account);
  if (it == account_index_.end()) {
    return absl::NotFoundError(absl::StrCat("account: '", account, "' not found"));
  }
  const AccountState& a = accounts_[it->second];
  AccountInfo info;
  info.account = a.id;
  info.kind = a.kind;
  info.asset = a.asset == kNoAsset ? "" : assets_[a.asset];
  info.flags = a.flags;
  info.name = a.name;
  info.closed = a.closed;
  info.opened_seq = a.opened_seq;
  for (const auto& [asset, amount] : a.balances) info.balances.push_back({assets_[asset], amount});
  std::sort(info.balances.begin(), info.balances.end(),
            [](const Balance& x, const Balance& y) { return x.asset < y.asset; });
  info.slice_count = LiveSlices(a);
  info.category = a.category;
  info.community = a.community;
  info.entry_count = a.touches.size();
  for (size_t t = 0; t < std::size(kFlowTypes); ++t) {
    if (a.flows[t] != 0 || a.flows[kFlowOut + t] != 0) {
      info.flows.push_back({kFlowTypes[t], a.flows[t], a.flows[kFlowOut + t]});
    }
  }
  return info;
}

absl::StatusOr<HoldingsPage> LedgerState::GetHoldings(const std::string& account,
                                                      uint64_t offset, uint64_t limit) const {
  auto it = account_index_.find(account);
  if (it == account_index_.end()) {
    return absl::NotFoundError(absl::StrCat("account: '", account, "' not found"));
  }
  const AccountState& a = accounts_[it->second];
  WL_RETURN_IF_ERROR(CheckPageLimit(limit));
  HoldingsPage page;
  page.account = account;
  page.total_count = LiveSlices(a);
  page.offset = offset;
  if (a.dead_slices == 0) {
    for (uint64_t i = offset; i < a.slices.size() && i < offset + limit; ++i) {
      page.slices.push_back(a.slices[i]);
    }
    return page;
  }
  uint64_t live = 0;  // tombstones are not holdings
  for (const Slice& s : a.slices) {
    if (s.amount == 0) continue;
    if (live >= offset + limit) break;
    if (live++ >= offset) page.slices.push_back(s);
  }
  return page;
}

absl::StatusOr<StatementPage> LedgerState::Statement(const std::string& account,
                                                     int64_t from_time_us, int64_t to_time_us,
                                                     uint64_t offset, uint64_t limit) const {
  auto it = account_index_.find(account);
  if (it == account_index_.end()) {
    return absl::NotFoundError(absl::StrCat("account: '", account, "' not found"));
  }
  if (to_time_us <= from_time_us) {
    return absl::InvalidArgumentError("to_time_us: must be after from_time_us");
  }
  WL_RETURN_IF_ERROR(CheckPageLimit(limit));
  const auto& touches = accounts_[it->second].touches;
  // Entry times never decrease, so the period is one contiguous range.
  // The first line at or after `time`, searching from `lo` (lower_bound).
  auto first_from = [&](size_t lo, int64_t time) {
    size_t hi = touches.size();
    while (lo < hi) {
      const size_t mid = lo + (hi - lo) / 2;
      if (touches[mid].time_us < time) {
        lo = mid + 1;
      } else {
        hi = mid;
      }
    }
    return lo;
  };
  const size_t first = first_from(0, from_time_us);
  const size_t last = first_from(first, to_time_us);
  StatementPage page;
  page.account = account;
  page.from_time_us = from_time_us;
  page.to_time_us = to_time_us;
  page.total_count = last - first;
  page.offset = offset;
  for (size_t i = first + std::min<uint64_t>(offset, page.total_count);
       i < last && page.lines.size() < limit; ++i) {
    const Touch& t = touches[i];
    StatementLine line;
    line.seq = t.seq;
    line.time_us = t.time_us;
    line.asset = t.asset == kNoAsset ? "" : assets_[t.asset];
    line.delta = t.delta;
    line.balance_after = t.balance_after;
    page.lines.push_back(std::move(line));
  }
  return page;
}

std::vector<std::string> LedgerState::ListAccounts(std::optional<AccountKind> kind,
                                                   uint64_t offset, uint64_t limit,
                                                   uint64_t* total) const {
  std::vector<std::string> out;
  uint64_t matched = 0;
  limit = std::min<uint64_t>(limit, kPageItemsMax);
  for (const AccountState& a : accounts_) {
    if (kind && a.kind != *kind) continue;
    if (matched >= offset && out.size() < limit) out.push_back(a.id);
    ++matched;
  }
  *total = matched;
  return out;
}

std::optional<uint64_t> LedgerState::FindLotByTraceHash(const std::string& trace_hash) const {
  if (trace_hash.size() != sizeof(Hash)) return std::nullopt;  // only 32-byte ones are kept
  auto it = trace_hashes_.find(ToHash(trace_hash));
  if (it == trace_hashes_.end()) return std::nullopt;
  return it->second;
}

std::optional<AccountKind> LedgerState::KindOf(const std::string& account) const {
  auto it = account_index_.find(account);
  if (it == account_index_.end()) return std::nullopt;
  return accounts_[it->second].kind;
}

std::optional<std::pair<std::string, std::string>> LedgerState::RecipientPlace(
    const std::string& account) const {
  auto it = account_index_.find(account);
  if (it == account_index_.end()) return std::nullopt;
  const AccountState& a = accounts_[it->second];
  if (a.kind != AccountKind::kRecipient) return std::nullopt;
  return std::pair{a.category, a.community};
}

absl::StatusOr<LotInfo> LedgerState::GetLot(uint64_t lot, bool with_parents) const {
  const uint32_t idx = LotIndex(lot);
  if (idx == kNone) {
    return absl::NotFoundError(absl::StrCat("lot: ", lot, " not found"));
  }
  const LotState& l = lots_[idx];
  LotInfo info{l.lot,    accounts_[l.donor].id, accounts_[l.to].id, assets_[l.asset],
               l.amount, l.time_us,             l.anonymous};
  info.created_by = l.created_by;
  info.expires_us = l.expires_us;
  if (l.member != kNone) info.member = members_[l.member];
  if (auto d = lot_details_.find(lot); d != lot_details_.end()) {
    info.grade = d->second.grade;
    info.value_asset = d->second.value_asset;
    info.value = d->second.value;
    info.parent_count = d->second.parents.size();
    const size_t shown =
        with_parents ? std::min<size_t>(d->second.parents.size(), kPageItemsMax) : 0;
    info.parents.reserve(shown);
    for (size_t i = 0; i < shown; ++i) info.parents.push_back(ParentAt(lot, i));
  }
  return info;
}

std::vector<int64_t> LedgerState::ParentWeights(uint64_t lot) const {
  std::vector<int64_t> out;
  auto d = lot_details_.find(lot);
  if (d == lot_details_.end()) return out;
  out.reserve(d->second.parents.size());
  for (const Parent& p : d->second.parents) out.push_back(p.consumed);
  return out;
}

LotParent LedgerState::ParentAt(uint64_t lot, size_t index) const {
  const Parent& p = lot_details_.at(lot).parents[index];
  const LotState& parent = lots_[LotIndex(p.lot)];
  return {p.lot, accounts_[parent.donor].id, parent.anonymous, assets_[parent.asset],
          p.consumed, p.share};
}

std::optional<LotParent> LedgerState::FindParent(uint64_t lot, uint64_t parent) const {
  auto d = lot_details_.find(lot);
  if (d == lot_details_.end()) return std::nullopt;
  const auto& parents = d->second.parents;
  for (size_t i = 0; i < parents.size(); ++i) {
    if (parents[i].lot == parent) return ParentAt(lot, i);
  }
  return std::nullopt;
}

absl::StatusOr<std::vector<LedgerState::LotMoveRecord>> LedgerState::LotMoves(
    uint64_t lot) const {
  const uint32_t idx = LotIndex(lot);
  if (idx == kNone) {
    return absl::NotFoundError(absl::StrCat("lot: ", lot, " not found"));
  }
  std::vector<LotMoveRecord> moves;
  for (uint64_t m = lots_[idx].last_move; m != kNoMove; m = lot_moves_[m].prev) {
    const LotMove& move = lot_moves_[m];
    LotMoveRecord& out = moves.emplace_back();
    out.seq = move.seq;
    out.known = move.known;
    if (!move.known) continue;
    out.type = move.type;
    out.time_us = move.time_us;
    out.from = accounts_[move.from].id;
    out.to = accounts_[move.to].id;
    out.amount = move.amount;
  }
  std::reverse(moves.begin(), moves.end());
  return moves;
}

absl::StatusOr<std::vector<uint64_t>> LedgerState::DonorLots(const std::string& donor) const {
  auto it = account_index_.find(donor);
  auto member = member_index_.find(donor);
  if (it == account_index_.end() && member == member_index_.end()) {
    return absl::NotFoundError(
        absl::StrCat("donor: no account or shop member '", donor, "' found"));
  }
  std::vector<uint64_t> out;
  if (it != account_index_.end()) {
    for (uint32_t idx : accounts_[it->second].lots) out.push_back(lots_[idx].lot);
  }
  if (member != member_index_.end()) {
    for (uint32_t idx : member_lots_[member->second]) out.push_back(lots_[idx].lot);
    // An id that is both an account and a member: one list, oldest first.
    if (it != account_index_.end()) std::sort(out.begin(), out.end());
  }
  return out;
}

void LedgerState::FillDetails(const Entry& entry, OpResult* result) const {
  int64_t moved = 0;
  for (const Posting& p : entry.postings) moved += p.amount;
  switch (entry.type()) {
    case EntryType::kPurchase:
    case EntryType::kGoodsGift:
    case EntryType::kHandout:
    case EntryType::kWriteOff:
      result->moved = moved;
      break;
    case EntryType::kGoodsPurchase:
    case EntryType::kGoodsSale:
      // The new lot: goods bought, or the proceeds.
      result->moved = entry.postings.size() == 2 ? entry.postings[1].amount : 0;
      break;
    case EntryType::kVoucherClose:
      result->moved = moved;
      result->voucher = VoucherSeqFromAccountId(std::get<VoucherCloseOp>(entry.body).voucher);
      break;
    case EntryType::kRefund: {
      result->moved = moved;
      const auto& op = std::get<RefundOp>(entry.body);
      const std::optional<uint64_t> purchase = FindPurchase(op.store, op.order_id);
      int64_t covered = 0;
      for (const Posting& p : entry.postings) {
        for (const Slice& s : p.slices) {
          if (!purchase || s.lot != *purchase) covered += s.amount;
        }
      }
      result->covered_by_fund = covered;
      break;
    }
    case EntryType::kVoucherIssue:
      result->moved = std::get<VoucherIssueOp>(entry.body).amount;
      result->voucher = entry.seq;
      break;
    case EntryType::kRedemption: {
      result->moved = std::get<RedemptionOp>(entry.body).amount;
      const auto it = voucher_codes_.find(ToHash(std::get<RedemptionOp>(entry.body).code_hash));
      if (it == voucher_codes_.end()) break;
      result->voucher = vouchers_[it->second].seq;
      // The voucher's statement line of this entry carries its balance after.
      const auto& touches = accounts_[vouchers_[it->second].account].touches;
      size_t lo = 0;
      size_t hi = touches.size();
      while (lo < hi) {
        const size_t mid = lo + (hi - lo) / 2;
        if (touches[mid].seq < entry.seq) {
          lo = mid + 1;
        } else {
          hi = mid;
        }
      }
      if (lo < touches.size() && touches[lo].seq == entry.seq) {
        result->voucher_balance_after = touches[lo].balance_after;
      }
      break;
    }
    default:
      break;
  }
}

VoucherInfo LedgerState::InfoOf(uint32_t vi) const {
  const Voucher& v = vouchers_[vi];
  VoucherInfo info;
  info.voucher = v.seq;
  info.account = accounts_[v.account].id;
  info.from = accounts_[v.from].id;
  info.recipient = accounts_[v.recipient].id;
  info.category = accounts_[v.recipient].category;
  info.community = accounts_[v.recipient].community;
  info.asset = assets_[v.asset];
  info.face = v.face;
  info.redeemed = v.redeemed;
  info.returned = v.returned;
  info.remaining = BalanceOf(v.account, v.asset);
  info.redemptions = v.redemptions;
  info.issued_us = v.issued_us;
  info.expires_us = v.expires_us;
  for (uint32_t store : v.stores) info.stores.push_back(accounts_[store].id);
  switch (v.state) {
    case VoucherState::kActive:
      info.status = info.remaining == 0 ? VoucherStatus::kRedeemed : VoucherStatus::kActive;
      break;
    case VoucherState::kExpired:
      info.status = VoucherStatus::kExpired;
      break;
    case VoucherState::kVoided:
      info.status = VoucherStatus::kVoided;
      break;
  }
  info.closed_seq = v.closed_seq;
  return info;
}

absl::StatusOr<VoucherInfo> LedgerState::GetVoucher(uint64_t voucher) const {
  auto it = voucher_by_seq_.find(voucher);
  if (it == voucher_by_seq_.end()) {
    return absl::NotFoundError(absl::StrCat("voucher: ", voucher, " not found"));
  }
  return InfoOf(it->second);
}

std::optional<uint64_t> LedgerState::FindVoucherByCodeHash(const std::string& code_hash) const {
  if (code_hash.size() != 32) return std::nullopt;
  auto it = voucher_codes_.find(ToHash(code_hash));
  if (it == voucher_codes_.end()) return std::nullopt;
  return vouchers_[it->second].seq;
}

std::vector<std::string> LedgerState::DueVouchers(int64_t now_us, size_t max) const {
  std::vector<std::string> out;
  for (const Voucher& v : vouchers_) {
    if (out.size() >= max) break;
    if (v.state == VoucherState::kActive && v.expires_us <= now_us &&
        BalanceOf(v.account, v.asset) > 0) {
      out.push_back(accounts_[v.account].id);
    }
  }
  return out;
}

VoucherReport LedgerState::GetVoucherReport(int64_t now_us) const {
  // Keyed by (group, asset), sorted.
  std::map<std::pair<std::string, std::string>, VoucherTotals> by_fund, by_category, total;
  auto add = [](VoucherTotals& t, const VoucherInfo& info, int64_t now) {
    ++t.issued;
    t.issued_amount += info.face;
    t.redemptions += info.redemptions;
    t.redeemed_amount += info.redeemed;
    switch (info.status) {
      case VoucherStatus::kRedeemed:
        ++t.fully_redeemed;
        break;
      case VoucherStatus::kExpired:
        ++t.expired;
        t.expired_amount += info.returned;
        break;
      case VoucherStatus::kVoided:
        ++t.voided;
        t.voided_amount += info.returned;
        break;
      case VoucherStatus::kActive:
        ++t.outstanding;
        t.outstanding_amount += info.remaining;
        if (info.expires_us <= now) ++t.overdue;
        break;
    }
  };
  for (uint32_t i = 0; i < vouchers_.size(); ++i) {
    const VoucherInfo info = InfoOf(i);
    add(by_fund[{info.from, info.asset}], info, now_us);
    add(by_category[{info.category, info.asset}], info, now_us);
    add(total[{"", info.asset}], info, now_us);
  }
  VoucherReport report;
  report.as_of_us = now_us;
  auto flatten = [](auto& groups, std::vector<VoucherTotals>* out) {
    for (auto& [key, t] : groups) {
      t.key = key.first;
      t.asset = key.second;
      out->push_back(std::move(t));
    }
  };
  flatten(by_fund, &report.by_fund);
  flatten(by_category, &report.by_category);
  flatten(total, &report.total);
  return report;
}

absl::StatusOr<std::vector<StoreSettlement>> LedgerState::Settlement(
    const std::string& store, int64_t from_time_us, int64_t to_time_us) const {
  if (to_time_us <= from_time_us) {
    return absl::InvalidArgumentError("to_time_us: must be after from_time_us");
  }
  std::vector<uint32_t> stores;
  if (!store.empty()) {
    auto it = account_index_.find(store);
    if (it == account_index_.end()) {
      return absl::NotFoundError(absl::StrCat("store: account '", store, "' not found"));
    }
    if (accounts_[it->second].kind != AccountKind::kMerchant) {
      return absl::FailedPreconditionError(absl::StrCat(
          "store: account '", store, "' is a ", AccountKindName(accounts_[it->second].kind),
          ", not a merchant"));
    }
    stores.push_back(it->second);
  } else {
    for (const auto& [idx, events] : store_events_) stores.push_back(idx);
  }
  std::map<std::pair<std::string, std::string>, StoreSettlement> rows;
  for (uint32_t idx : stores) {
    auto it = store_events_.find(idx);
    if (it == store_events_.end()) continue;
    const auto& events = it->second;
    // Entry times never decrease: the period is one contiguous range.
    size_t lo = 0;
    size_t hi = events.size();
    while (lo < hi) {
      const size_t mid = lo + (hi - lo) / 2;
      if (events[mid].time_us < from_time_us) {
        lo = mid + 1;
      } else {
        hi = mid;
      }
    }
    for (size_t i = lo; i < events.size() && events[i].time_us < to_time_us; ++i) {
      const StoreEvent& ev = events[i];
      StoreSettlement& row = rows[{accounts_[idx].id, assets_[ev.asset]}];
      switch (ev.kind) {
        case kStorePurchase:
          ++row.purchases;
          row.purchase_amount += ev.amount;
          row.contributions += ev.moved;
          break;
        case kStoreRefund:
          ++row.refunds;
          row.refund_amount += ev.amount;
          row.reversals += ev.moved;
          break;
        case kStoreRedemption:
          ++row.redemptions;
          row.redeemed += ev.amount;
          break;
        case kStoreRedemptionReversal:
          ++row.redemptions_reversed;
          row.redeemed_reversed += ev.amount;
          break;
      }
    }
  }
  std::vector<StoreSettlement> out;
  for (auto& [key, row] : rows) {
    row.store = key.first;
    row.asset = key.second;
    out.push_back(std::move(row));
  }
  return out;
}

std::vector<Balance> LedgerState::TotalsPerAsset() const {
  // Summed per asset index, then named: no string look-up per account.
  std::vector<int64_t> sums(assets_.size(), 0);
  std::vector<bool> held(assets_.size(), false);
  for (const AccountState& a : accounts_) {
    for (const auto& [asset, amount] : a.balances) {
      sums[asset] += amount;
      held[asset] = true;
    }
  }
  std::vector<Balance> out;
  for (size_t i = 0; i < assets_.size(); ++i) {
    if (held[i]) out.push_back({assets_[i], sums[i]});
  }
  // Asset codes are interned once each: sorting orders them, nothing merges.
  std::sort(out.begin(), out.end(),
            [](const Balance& a, const Balance& b) { return a.asset < b.asset; });
  return out;
}

BalanceSnapshot LedgerState::Snapshot() const {
  BalanceSnapshot snapshot;
  snapshot.seq = head_seq_;
  snapshot.accounts.reserve(accounts_.size());
  Sha256Hasher hasher;
  std::string buf;
  for (const AccountState& a : accounts_) {
    AccountSnapshot out;
    out.account = a.id;
    for (const auto& [asset, amount] : a.balances) out.balances.push_back({assets_[asset], amount});
    out.slice_count = LiveSlices(a);
    for (const Slice& s : a.slices) {
      if (s.amount == 0) continue;  // a tombstone
      for (int i = 0; i < 8; ++i) buf.push_back(static_cast<char>((s.lot >> (8 * i)) & 0xff));
      const auto amount = static_cast<uint64_t>(s.amount);
      for (int i = 0; i < 8; ++i) buf.push_back(static_cast<char>((amount >> (8 * i)) & 0xff));
      if (buf.size() >= 1 << 16) {
        hasher.Update(buf);
        buf.clear();
      }
    }
    hasher.Update(buf);
    buf.clear();
    out.slices_hash = hasher.Finish();
    snapshot.accounts.push_back(std::move(out));
  }
  return snapshot;
}

absl::Status CompareSnapshots(const BalanceSnapshot& stored, const BalanceSnapshot& replayed) {
  const std::string where = absl::StrCat("balance snapshot after entry ", stored.seq, ": ");
  if (stored.seq != replayed.seq) {
    return absl::DataLossError(absl::StrCat(where, "compared with the state after entry ",
                                            replayed.seq));
  }
  const size_t n = std::max(stored.accounts.size(), replayed.accounts.size());
  for (size_t i = 0; i < n; ++i) {
    if (i >= stored.accounts.size() || i >= replayed.accounts.size()) {
      return absl::DataLossError(absl::StrCat(where, "lists ", stored.accounts.size(),
                                              " accounts, the entries open ",
                                              replayed.accounts.size()));
    }
    const AccountSnapshot& s = stored.accounts[i];
    const AccountSnapshot& r = replayed.accounts[i];
    if (s.account != r.account) {
      return absl::DataLossError(absl::StrCat(where, "account ", i + 1, " is '", s.account,
                                              "', the entries opened '", r.account, "'"));
    }
    for (size_t k = 0; k < std::max(s.balances.size(), r.balances.size()); ++k) {
      const Balance none{"(none)", 0};
      const Balance& sb = k < s.balances.size() ? s.balances[k] : none;
      const Balance& rb = k < r.balances.size() ? r.balances[k] : none;
      if (!(sb == rb)) {
        return absl::DataLossError(absl::StrCat(
            where, "account '", s.account, "' stores a balance of ", sb.amount, " ", sb.asset,
            ", replaying the entries gives ", rb.amount, " ", rb.asset));
      }
    }
    if (s.slice_count != r.slice_count || s.slices_hash != r.slices_hash) {
      return absl::DataLossError(absl::StrCat(
          where, "account '", s.account, "' stores holdings of ", s.slice_count,
          " lot slices that differ from the ", r.slice_count, " the entries give"));
    }
  }
  return absl::OkStatus();
}

std::string LedgerState::Digest() const {
  Sha256Hasher h;
  std::string buf;
  auto flush = [&] {
    h.Update(buf);
    buf.clear();
  };
  auto put_u64 = [&](uint64_t v) { buf.append(reinterpret_cast<const char*>(&v), 8); };
  auto put_str = [&](std::string_view s) {
    put_u64(s.size());
    buf.append(s);
  };
  put_u64(head_seq_);
  put_u64(static_cast<uint64_t>(head_time_us_));
  buf.append(reinterpret_cast<const char*>(head_hash_.data()), head_hash_.size());

  std::vector<uint32_t> order(accounts_.size());
  for (uint32_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(),
            [&](uint32_t x, uint32_t y) { return accounts_[x].id < accounts_[y].id; });
  for (uint32_t i : order) {
    const AccountState& a = accounts_[i];
    put_str(a.id);
    put_u64(static_cast<uint64_t>(a.kind));
    put_str(a.asset == kNoAsset ? "" : assets_[a.asset]);
    put_u64(a.flags);
    put_str(a.name);
    put_u64(a.closed);
    put_u64(a.opened_seq);
    std::vector<std::pair<std::string, int64_t>> balances;
    for (const auto& [asset, amount] : a.balances) balances.emplace_back(assets_[asset], amount);
    std::sort(balances.begin(), balances.end());
    put_u64(balances.size());
    for (const auto& [asset, amount] : balances) {
      put_str(asset);
      put_u64(static_cast<uint64_t>(amount));
    }
    put_u64(LiveSlices(a));
    for (const Slice& s : a.slices) {
      if (s.amount == 0) continue;  // a tombstone
      put_u64(s.lot);
      put_u64(static_cast<uint64_t>(s.amount));
      if (buf.size() > 1 << 16) flush();
    }
    put_u64(a.lots.size());
    for (uint32_t l : a.lots) put_u64(lots_[l].lot);
    put_str(a.category);
    put_str(a.community);
    for (int64_t f : a.flows) put_u64(static_cast<uint64_t>(f));
    put_u64(a.touches.size());
    for (size_t i = 0; i < a.touches.size(); ++i) {
      const Touch& t = a.touches[i];
      put_u64(t.seq);
      put_u64(static_cast<uint64_t>(t.time_us));
      put_u64(static_cast<uint64_t>(t.delta));
      put_u64(static_cast<uint64_t>(t.balance_after));
      put_str(t.asset == kNoAsset ? "" : assets_[t.asset]);
      if (buf.size() > 1 << 16) flush();
    }
    flush();
  }
  for (size_t i = 0; i < lots_.size(); ++i) {
    const LotState& l = lots_[i];
    put_u64(l.lot);
    put_str(accounts_[l.donor].id);
    put_str(accounts_[l.to].id);
    put_str(assets_[l.asset]);
    put_u64(static_cast<uint64_t>(l.amount));
    put_u64(static_cast<uint64_t>(l.time_us));
    put_u64(l.anonymous);
    // The lot's moves, newest first, with what a trace takes from them.
    for (uint64_t m = l.last_move; m != kNoMove; m = lot_moves_[m].prev) {
      const LotMove& move = lot_moves_[m];
      put_u64(move.seq);
      put_u64(move.known);
      if (!move.known) continue;
      put_u64(static_cast<uint64_t>(move.type));
      put_u64(static_cast<uint64_t>(move.time_us));
      put_str(accounts_[move.from].id);
      put_str(accounts_[move.to].id);
      put_u64(static_cast<uint64_t>(move.amount));
    }
    put_u64(kNoMove);
    if (buf.size() > 1 << 16) flush();
  }
  std::vector<std::pair<absl::string_view, uint64_t>> ids;
  ids.reserve(client_ids_.size());
  for (uint64_t seq = 1; seq <= client_ids_.size(); ++seq) {
    ids.emplace_back(client_ids_.IdOf(seq), seq);
  }
  std::sort(ids.begin(), ids.end());
  for (const auto& [id, seq] : ids) {
    put_str(std::string_view(id.data(), id.size()));
    put_u64(seq);
    if (buf.size() > 1 << 16) flush();
  }
  // Hash compares its bytes as unsigned, like std::string: the same order.
  std::vector<std::pair<Hash, uint64_t>> traces(trace_hashes_.begin(), trace_hashes_.end());
  std::sort(traces.begin(), traces.end());
  for (const auto& [hash, lot] : traces) {
    put_str(std::string_view(reinterpret_cast<const char*>(hash.data()), hash.size()));
    put_u64(lot);
    if (buf.size() > 1 << 16) flush();
  }
  std::vector<std::pair<uint64_t, uint64_t>> rev(reversed_.begin(), reversed_.end());
  std::sort(rev.begin(), rev.end());
  for (const auto& [a, b] : rev) {
    put_u64(a);
    put_u64(b);
  }
  // Checkout and vouchers.
  put_u64(members_.size());
  for (size_t m = 0; m < members_.size(); ++m) {
    put_str(members_[m]);
    put_u64(member_lots_[m].size());
    for (uint32_t l : member_lots_[m]) put_u64(lots_[l].lot);
    if (buf.size() > 1 << 16) flush();
  }
  for (size_t i = 0; i < lots_.size(); ++i) {
    put_u64(lots_[i].purchase);
    put_u64(static_cast<uint64_t>(lots_[i].at_origin));
    if (buf.size() > 1 << 16) flush();
  }
  std::vector<std::pair<uint64_t, RefundTotals>> refunds(refunds_.begin(), refunds_.end());
  std::sort(refunds.begin(), refunds.end(),
            [](const auto& x, const auto& y) { return x.first < y.first; });
  for (const auto& [seq, t] : refunds) {
    put_u64(seq);
    put_u64(static_cast<uint64_t>(t.refunded));
    put_u64(static_cast<uint64_t>(t.reversed));
    if (buf.size() > 1 << 16) flush();
  }
  std::vector<std::pair<std::string, uint32_t>> stores;
  for (const auto& [idx, events] : store_events_) stores.emplace_back(accounts_[idx].id, idx);
  std::sort(stores.begin(), stores.end());
  for (const auto& [id, idx] : stores) {
    const auto& events = store_events_.at(idx);
    put_str(id);
    put_u64(events.size());
    for (size_t i = 0; i < events.size(); ++i) {
      const StoreEvent& ev = events[i];
      put_u64(static_cast<uint64_t>(ev.time_us));
      put_u64(static_cast<uint64_t>(ev.amount));
      put_u64(static_cast<uint64_t>(ev.moved));
      put_str(assets_[ev.asset]);
      put_u64(ev.kind);
      if (buf.size() > 1 << 16) flush();
    }
  }
  put_u64(vouchers_.size());
  for (const Voucher& v : vouchers_) {
    put_u64(v.seq);
    put_str(accounts_[v.account].id);
    put_str(accounts_[v.from].id);
    put_str(accounts_[v.recipient].id);
    put_str(assets_[v.asset]);
    put_u64(static_cast<uint64_t>(v.face));
    put_u64(static_cast<uint64_t>(v.redeemed));
    put_u64(static_cast<uint64_t>(v.returned));
    put_u64(v.redemptions);
    put_u64(static_cast<uint64_t>(v.issued_us));
    put_u64(static_cast<uint64_t>(v.expires_us));
    put_u64(v.stores.size());
    for (uint32_t st : v.stores) put_str(accounts_[st].id);
    put_str(std::string_view(reinterpret_cast<const char*>(v.code.data()), v.code.size()));
    put_u64(static_cast<uint64_t>(v.state));
    put_u64(v.closed_seq);
    if (buf.size() > 1 << 16) flush();
  }
  // Goods.
  put_u64(items_.size());
  for (const Item& item : items_) {
    put_str(assets_[item.asset]);
    put_u64(item.seq);
    put_str(item.name);
    put_str(item.unit);
  }
  // Aid rules and aid received.
  put_u64(aid_rules_.size());
  for (const AidRuleState& r : aid_rules_) {
    put_str(r.op.aid);
    put_u64(static_cast<uint64_t>(r.op.type));
    put_str(r.op.source);
    put_str(r.op.asset);
    put_u64(r.op.max_count);
    put_u64(static_cast<uint64_t>(r.op.period));
    put_str(r.op.memo);
    put_u64(r.seq);
    put_u64(r.replaced);
  }
  for (const AidRuleInfo& r : ListAidRules()) put_u64(r.seq);
  std::vector<std::pair<std::string, uint32_t>> aided;
  for (const auto& [idx, events] : aid_events_) aided.emplace_back(accounts_[idx].id, idx);
  std::sort(aided.begin(), aided.end());
  for (const auto& [id, idx] : aided) {
    put_str(id);
    for (const AidEvent& ev : aid_events_.at(idx)) {
      put_u64(ev.seq);
      put_u64(static_cast<uint64_t>(ev.time_us));
      put_u64(static_cast<uint64_t>(ev.amount));
      put_str(accounts_[ev.source].id);
      put_str(assets_[ev.asset]);
      put_u64(static_cast<uint64_t>(ev.type));
    }
    if (buf.size() > 1 << 16) flush();
  }
  for (size_t i = 0; i < lots_.size(); ++i) {
    put_u64(static_cast<uint64_t>(lots_[i].created_by));
    put_u64(static_cast<uint64_t>(lots_[i].expires_us));
    auto d = lot_details_.find(lots_[i].lot);
    if (d == lot_details_.end()) continue;
    put_str(d->second.grade);
    put_str(d->second.value_asset);
    put_u64(static_cast<uint64_t>(d->second.value));
    put_u64(d->second.parents.size());
    for (const Parent& p : d->second.parents) {
      put_u64(p.lot);
      put_u64(static_cast<uint64_t>(p.consumed));
      put_u64(static_cast<uint64_t>(p.share));
      if (buf.size() > 1 << 16) flush();
    }
  }
  flush();
  return HashToHex(h.Finish());
}

}  // namespace warmledger

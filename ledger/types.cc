#include "ledger/types.h"

#include <algorithm>
#include <type_traits>

#include "absl/strings/str_cat.h"
#include "absl/time/civil_time.h"
#include "absl/time/time.h"
#include "ledger/limits.h"
#include "ledger/sha256.h"

namespace warmledger {

absl::Status CheckPageLimit(uint64_t limit) {
  if (limit > kPageItemsMax) {
    return absl::InvalidArgumentError(absl::StrCat("limit: ", limit, " items, at most ",
                                                   kPageItemsMax, " per page"));
  }
  return absl::OkStatus();
}

bool IsHolding(AccountKind kind) {
  return kind == AccountKind::kFund || kind == AccountKind::kProject ||
         kind == AccountKind::kVoucher || kind == AccountKind::kStock;
}

bool IsSource(AccountKind kind) {
  return kind == AccountKind::kDonor || kind == AccountKind::kMerchant;
}

bool IsSink(AccountKind kind) {
  return kind == AccountKind::kRecipient || kind == AccountKind::kSupplier ||
         kind == AccountKind::kExpense;
}

namespace {
constexpr const char* kKindNames[] = {
    "", "donor", "fund", "project", "voucher", "stock",
    "recipient", "merchant", "supplier", "expense"};
}  // namespace

const char* AccountKindName(AccountKind kind) {
  auto i = static_cast<size_t>(kind);
  return i > 0 && i < std::size(kKindNames) ? kKindNames[i] : "unknown";
}

std::optional<AccountKind> AccountKindFromName(std::string_view name) {
  for (size_t i = 1; i < std::size(kKindNames); ++i) {
    if (kKindNames[i] == name) return static_cast<AccountKind>(i);
  }
  return std::nullopt;
}

const char* EntryTypeName(EntryType type) {
  switch (type) {
    case EntryType::kOpenAccount: return "open_account";
    case EntryType::kCloseAccount: return "close_account";
    case EntryType::kDonation: return "donation";
    case EntryType::kAllocation: return "allocation";
    case EntryType::kDisbursement: return "disbursement";
    case EntryType::kCorrection: return "correction";
    case EntryType::kPurchase: return "purchase";
    case EntryType::kRefund: return "refund";
    case EntryType::kVoucherIssue: return "voucher_issue";
    case EntryType::kRedemption: return "redemption";
    case EntryType::kVoucherClose: return "voucher_close";
    case EntryType::kItem: return "item";
    case EntryType::kGoodsGift: return "goods_gift";
    case EntryType::kGoodsPurchase: return "goods_purchase";
    case EntryType::kHandout: return "handout";
    case EntryType::kWriteOff: return "write_off";
    case EntryType::kGoodsSale: return "goods_sale";
    case EntryType::kAidRule: return "aid_rule";
  }
  return "unknown";
}

std::optional<AssetKind> ParseAssetCode(std::string_view code) {
  if (code.size() == 3) {
    for (char c : code) {
      if (c < 'A' || c > 'Z') return std::nullopt;
    }
    return AssetKind::kMoney;
  }
  constexpr std::string_view kItemPrefix = "item:";
  if (code.size() > kItemPrefix.size() && code.size() <= kItemPrefix.size() + 40 &&
      code.substr(0, kItemPrefix.size()) == kItemPrefix) {
    for (char c : code.substr(kItemPrefix.size())) {
      bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
                c == '_' || c == '-';
      if (!ok) return std::nullopt;
    }
    return AssetKind::kGoods;
  }
  return std::nullopt;
}

EntryType TypeOf(const OpBody& body) {
  return static_cast<EntryType>(body.index() + 1);
}
static_assert(std::is_same_v<std::variant_alternative_t<0, OpBody>, OpenAccountOp>);
static_assert(std::is_same_v<std::variant_alternative_t<5, OpBody>, CorrectionOp>);
static_assert(std::is_same_v<std::variant_alternative_t<10, OpBody>, VoucherCloseOp>);
static_assert(std::is_same_v<std::variant_alternative_t<16, OpBody>, GoodsSaleOp>);
static_assert(std::is_same_v<std::variant_alternative_t<17, OpBody>, AidRuleOp>);
static_assert(std::variant_size_v<OpBody> == kEntryTypeMax);

namespace {

// "<tag>:" followed by the first 20 bytes (160 bits) of
// SHA-256("warmledger/natural-id/v1" 0x00 tag 0x00 part (0x00 part)*) in hex:
// 42 bytes at most, within kClientIdBytesMax.
std::string HashedId(std::string_view tag, std::initializer_list<std::string_view> parts) {
  Sha256Hasher h;
  h.Update(std::string_view("warmledger/natural-id/v1\0", 25));
  h.Update(tag);
  for (std::string_view part : parts) {
    h.Update(std::string_view("\0", 1));
    h.Update(part);
  }
  const Hash digest = h.Finish();
  std::string out(tag);
  out.push_back(':');
  static constexpr char kHex[] = "0123456789abcdef";
  for (size_t i = 0; i < 20; ++i) {
    out.push_back(kHex[digest[i] >> 4]);
    out.push_back(kHex[digest[i] & 15]);
  }
  return out;
}

}  // namespace

std::optional<std::string> NaturalClientId(const OpBody& body) {
  if (const auto* p = std::get_if<PurchaseOp>(&body)) {
    return PurchaseClientId(p->store, p->order_id);
  }
  if (const auto* r = std::get_if<RefundOp>(&body)) {
    return HashedId("refund", {r->store, r->refund_id});
  }
  if (const auto* r = std::get_if<RedemptionOp>(&body)) {
    return HashedId("redeem", {r->store, r->order_id, r->code_hash});
  }
  if (const auto* c = std::get_if<VoucherCloseOp>(&body);
      c && c->mode == VoucherCloseMode::kExpire) {
    return HashedId("expire", {c->voucher});
  }
  return std::nullopt;
}

bool IsNaturalClientIdForm(std::string_view id) {
  const size_t colon = id.find(':');
  if (colon == std::string_view::npos || id.size() - colon - 1 != 40) return false;
  const std::string_view tag = id.substr(0, colon);
  if (tag != "purchase" && tag != "refund" && tag != "redeem" && tag != "expire") return false;
  for (char c : id.substr(colon + 1)) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

std::string PurchaseClientId(std::string_view store, std::string_view order_id) {
  return HashedId("purchase", {store, order_id});
}

int64_t ContributionOf(int64_t amount, uint32_t rate_bp) {
  return ProportionOf(amount, rate_bp, 10'000);
}

int64_t ProportionOf(int64_t total, int64_t part, int64_t whole) {
  // total × part < 2^63 × 2^63 fits in 127 bits; adding whole/2 cannot
  // overflow 128; the quotient is at most total.
  const __int128 product = static_cast<__int128>(total) * part;
  return static_cast<int64_t>((product * 2 + whole) / (static_cast<__int128>(whole) * 2));
}

std::vector<int64_t> Apportion(int64_t total, const std::vector<int64_t>& weights) {
  std::vector<int64_t> parts(weights.size(), 0);
  __int128 whole = 0;
  for (int64_t w : weights) whole += w;
  if (total == 0 || whole == 0) return parts;
  // total × w_i < 2^126 and whole < 2^63 × 2^32: every product and sum fits.
  std::vector<std::pair<__int128, size_t>> remainders;
  remainders.reserve(weights.size());
  int64_t given = 0;
  for (size_t i = 0; i < weights.size(); ++i) {
    const __int128 product = static_cast<__int128>(total) * weights[i];
    parts[i] = static_cast<int64_t>(product / whole);
    given += parts[i];
    remainders.push_back({product % whole, i});
  }
  // Fewer than weights.size() units are missing: each goes to one of the
  // largest remainders, ties to the earlier index.
  const auto missing = static_cast<size_t>(total - given);
  std::partial_sort(remainders.begin(), remainders.begin() + missing, remainders.end(),
                    [](const auto& a, const auto& b) {
                      return a.first != b.first ? a.first > b.first : a.second < b.second;
                    });
  for (size_t k = 0; k < missing; ++k) ++parts[remainders[k].second];
  return parts;
}

namespace {
constexpr const char* kAidPeriodNames[] = {"", "day", "week", "month", "quarter", "year"};
}  // namespace

const char* AidPeriodName(AidPeriod period) {
  auto i = static_cast<size_t>(period);
  return i > 0 && i < std::size(kAidPeriodNames) ? kAidPeriodNames[i] : "unknown";
}

std::optional<AidPeriod> AidPeriodFromName(std::string_view name) {
  for (size_t i = 1; i < std::size(kAidPeriodNames); ++i) {
    if (kAidPeriodNames[i] == name) return static_cast<AidPeriod>(i);
  }
  return std::nullopt;
}

int64_t AidPeriodIndex(AidPeriod period, int64_t time_us) {
  static const absl::TimeZone kChina = absl::FixedTimeZone(8 * 3600);
  const absl::CivilDay day = absl::ToCivilDay(absl::FromUnixMicros(time_us), kChina);
  const int64_t days = day - absl::CivilDay(1970, 1, 1);
  switch (period) {
    case AidPeriod::kDay:
      return days;
    case AidPeriod::kWeek:
      // 1970-01-01 was a Thursday: +3 makes weeks start on Monday.
      return (days + 3 >= 0 ? days + 3 : days + 3 - 6) / 7;
    case AidPeriod::kMonth:
      return day.year() * 12 + (day.month() - 1);
    case AidPeriod::kQuarter:
      return day.year() * 4 + (day.month() - 1) / 3;
    case AidPeriod::kYear:
      return day.year();
  }
  return 0;
}

std::string VoucherAccountId(uint64_t seq) { return absl::StrCat("voucher/", seq); }

uint64_t VoucherSeqFromAccountId(std::string_view account) {
  constexpr std::string_view kPrefix = "voucher/";
  if (account.size() <= kPrefix.size() || account.substr(0, kPrefix.size()) != kPrefix) {
    return 0;
  }
  std::string_view digits = account.substr(kPrefix.size());
  if (digits.size() > 19 || digits[0] == '0') return 0;
  uint64_t seq = 0;
  for (char c : digits) {
    if (c < '0' || c > '9') return 0;
    seq = seq * 10 + static_cast<uint64_t>(c - '0');
  }
  return seq;
}

const char* VoucherStatusName(VoucherStatus status) {
  switch (status) {
    case VoucherStatus::kActive: return "active";
    case VoucherStatus::kRedeemed: return "redeemed";
    case VoucherStatus::kExpired: return "expired";
    case VoucherStatus::kVoided: return "voided";
  }
  return "unknown";
}

namespace {

// Appends "<prefix>.<field>" for the first differing field of two bodies of
// the same type.
struct DiffVisitor {
  const OpBody& other;

  template <typename T>
  std::optional<std::string> Field(std::string_view prefix, std::string_view field,
                                   const T& a, const T& b) const {
    if (a == b) return std::nullopt;
    return std::string(prefix) + "." + std::string(field);
  }

#define WL_DIFF(field)                                          \
  if (auto d = Field(prefix, #field, a.field, b.field)) return d

  std::optional<std::string> operator()(const OpenAccountOp& a) const {
    const auto& b = std::get<OpenAccountOp>(other);
    constexpr std::string_view prefix = "open_account";
    WL_DIFF(account); WL_DIFF(kind); WL_DIFF(asset); WL_DIFF(flags); WL_DIFF(name);
    WL_DIFF(category); WL_DIFF(community);
    return std::nullopt;
  }
  std::optional<std::string> operator()(const CloseAccountOp& a) const {
    const auto& b = std::get<CloseAccountOp>(other);
    constexpr std::string_view prefix = "close_account";
    WL_DIFF(account); WL_DIFF(reason);
    return std::nullopt;
  }
  std::optional<std::string> operator()(const DonationOp& a) const {
    const auto& b = std::get<DonationOp>(other);
    constexpr std::string_view prefix = "donation";
    WL_DIFF(donor); WL_DIFF(to); WL_DIFF(asset); WL_DIFF(amount);
    WL_DIFF(channel); WL_DIFF(flags); WL_DIFF(memo); WL_DIFF(trace_hash);
    return std::nullopt;
  }
  std::optional<std::string> operator()(const AllocationOp& a) const {
    const auto& b = std::get<AllocationOp>(other);
    constexpr std::string_view prefix = "allocation";
    WL_DIFF(from); WL_DIFF(to); WL_DIFF(asset); WL_DIFF(amount); WL_DIFF(reason);
    return std::nullopt;
  }
  std::optional<std::string> operator()(const DisbursementOp& a) const {
    const auto& b = std::get<DisbursementOp>(other);
    constexpr std::string_view prefix = "disbursement";
    WL_DIFF(from); WL_DIFF(to); WL_DIFF(asset); WL_DIFF(amount); WL_DIFF(purpose);
    WL_DIFF(override_reason);
    return std::nullopt;
  }
  std::optional<std::string> operator()(const CorrectionOp& a) const {
    const auto& b = std::get<CorrectionOp>(other);
    constexpr std::string_view prefix = "correction";
    WL_DIFF(ref_seq); WL_DIFF(mode); WL_DIFF(reason); WL_DIFF(from); WL_DIFF(to);
    WL_DIFF(asset); WL_DIFF(amount);
    return std::nullopt;
  }
  std::optional<std::string> operator()(const PurchaseOp& a) const {
    const auto& b = std::get<PurchaseOp>(other);
    constexpr std::string_view prefix = "purchase";
    WL_DIFF(store); WL_DIFF(order_id); WL_DIFF(asset); WL_DIFF(amount); WL_DIFF(member);
    WL_DIFF(sale_time_us); WL_DIFF(rate_bp); WL_DIFF(fund); WL_DIFF(trace_hash);
    return std::nullopt;
  }
  std::optional<std::string> operator()(const RefundOp& a) const {
    const auto& b = std::get<RefundOp>(other);
    constexpr std::string_view prefix = "refund";
    WL_DIFF(store); WL_DIFF(order_id); WL_DIFF(refund_id); WL_DIFF(amount);
    return std::nullopt;
  }
  std::optional<std::string> operator()(const VoucherIssueOp& a) const {
    const auto& b = std::get<VoucherIssueOp>(other);
    constexpr std::string_view prefix = "voucher_issue";
    WL_DIFF(from); WL_DIFF(recipient); WL_DIFF(asset); WL_DIFF(amount); WL_DIFF(expires_us);
    WL_DIFF(stores); WL_DIFF(code_hash); WL_DIFF(memo); WL_DIFF(override_reason);
    return std::nullopt;
  }
  std::optional<std::string> operator()(const RedemptionOp& a) const {
    const auto& b = std::get<RedemptionOp>(other);
    constexpr std::string_view prefix = "redemption";
    WL_DIFF(code_hash); WL_DIFF(store); WL_DIFF(order_id); WL_DIFF(amount);
    return std::nullopt;
  }
  std::optional<std::string> operator()(const VoucherCloseOp& a) const {
    const auto& b = std::get<VoucherCloseOp>(other);
    constexpr std::string_view prefix = "voucher_close";
    WL_DIFF(voucher); WL_DIFF(mode); WL_DIFF(reason);
    return std::nullopt;
  }
  std::optional<std::string> operator()(const ItemOp& a) const {
    const auto& b = std::get<ItemOp>(other);
    constexpr std::string_view prefix = "item";
    WL_DIFF(item); WL_DIFF(name); WL_DIFF(unit);
    return std::nullopt;
  }
  std::optional<std::string> operator()(const GoodsGiftOp& a) const {
    const auto& b = std::get<GoodsGiftOp>(other);
    constexpr std::string_view prefix = "goods_gift";
    WL_DIFF(donor); WL_DIFF(to); WL_DIFF(item); WL_DIFF(quantity); WL_DIFF(grade);
    WL_DIFF(expires_us); WL_DIFF(value_asset); WL_DIFF(value); WL_DIFF(channel);
    WL_DIFF(flags); WL_DIFF(memo); WL_DIFF(trace_hash);
    return std::nullopt;
  }
  std::optional<std::string> operator()(const GoodsPurchaseOp& a) const {
    const auto& b = std::get<GoodsPurchaseOp>(other);
    constexpr std::string_view prefix = "goods_purchase";
    WL_DIFF(from); WL_DIFF(supplier); WL_DIFF(asset); WL_DIFF(price); WL_DIFF(to);
    WL_DIFF(item); WL_DIFF(quantity); WL_DIFF(grade); WL_DIFF(expires_us); WL_DIFF(memo);
    return std::nullopt;
  }
  std::optional<std::string> operator()(const HandoutOp& a) const {
    const auto& b = std::get<HandoutOp>(other);
    constexpr std::string_view prefix = "handout";
    WL_DIFF(from); WL_DIFF(item); WL_DIFF(lines); WL_DIFF(purpose); WL_DIFF(override_reason);
    return std::nullopt;
  }
  std::optional<std::string> operator()(const WriteOffOp& a) const {
    const auto& b = std::get<WriteOffOp>(other);
    constexpr std::string_view prefix = "write_off";
    WL_DIFF(from); WL_DIFF(to); WL_DIFF(item); WL_DIFF(quantity); WL_DIFF(lot); WL_DIFF(reason);
    return std::nullopt;
  }
  std::optional<std::string> operator()(const GoodsSaleOp& a) const {
    const auto& b = std::get<GoodsSaleOp>(other);
    constexpr std::string_view prefix = "goods_sale";
    WL_DIFF(from); WL_DIFF(buyer); WL_DIFF(item); WL_DIFF(quantity); WL_DIFF(to);
    WL_DIFF(asset); WL_DIFF(proceeds); WL_DIFF(memo);
    return std::nullopt;
  }
  std::optional<std::string> operator()(const AidRuleOp& a) const {
    const auto& b = std::get<AidRuleOp>(other);
    constexpr std::string_view prefix = "aid_rule";
    WL_DIFF(aid); WL_DIFF(type); WL_DIFF(source); WL_DIFF(asset); WL_DIFF(max_count);
    WL_DIFF(period); WL_DIFF(memo);
    return std::nullopt;
  }
#undef WL_DIFF
};

}  // namespace

std::optional<std::string> FirstDifference(const OpBody& a, const OpBody& b) {
  if (a.index() != b.index()) return std::string("type");
  return std::visit(DiffVisitor{b}, a);
}

}  // namespace warmledger

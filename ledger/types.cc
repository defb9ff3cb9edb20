#include "ledger/types.h"

#include <type_traits>

#include "absl/strings/str_cat.h"
#include "ledger/limits.h"

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
    return std::nullopt;
  }
  std::optional<std::string> operator()(const CorrectionOp& a) const {
    const auto& b = std::get<CorrectionOp>(other);
    constexpr std::string_view prefix = "correction";
    WL_DIFF(ref_seq); WL_DIFF(mode); WL_DIFF(reason); WL_DIFF(from); WL_DIFF(to);
    WL_DIFF(asset); WL_DIFF(amount);
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

#include "server/convert.h"

#include <ctime>

#include "absl/strings/str_cat.h"
#include "ledger/limits.h"
#include "ledger/state.h"

namespace warmledger::server {

// The API's enums carry the engine's values (persisted: docs/format.md), so
// the conversions are casts.
static_assert(pb::AID_RULE == static_cast<int>(EntryType::kAidRule));
static_assert(pb::HANDOUT == static_cast<int>(EntryType::kHandout));
static_assert(pb::VOUCHER_ISSUE == static_cast<int>(EntryType::kVoucherIssue));
static_assert(pb::DISBURSEMENT == static_cast<int>(EntryType::kDisbursement));
static_assert(pb::DAY == static_cast<int>(AidPeriod::kDay));
static_assert(pb::WEEK == static_cast<int>(AidPeriod::kWeek));
static_assert(pb::MONTH == static_cast<int>(AidPeriod::kMonth));
static_assert(pb::QUARTER == static_cast<int>(AidPeriod::kQuarter));
static_assert(pb::YEAR == static_cast<int>(AidPeriod::kYear));
static_assert(pb::AidPeriod_MAX == kAidPeriodMax);

grpc::Status ToGrpc(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  // absl::StatusCode mirrors grpc::StatusCode value for value.
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()),
                      std::string(status.message()));
}

const char* CodeName(absl::StatusCode code) {
  switch (code) {
    case absl::StatusCode::kOk: return "OK";
    case absl::StatusCode::kCancelled: return "CANCELLED";
    case absl::StatusCode::kUnknown: return "UNKNOWN";
    case absl::StatusCode::kInvalidArgument: return "INVALID_ARGUMENT";
    case absl::StatusCode::kDeadlineExceeded: return "DEADLINE_EXCEEDED";
    case absl::StatusCode::kNotFound: return "NOT_FOUND";
    case absl::StatusCode::kAlreadyExists: return "ALREADY_EXISTS";
    case absl::StatusCode::kPermissionDenied: return "PERMISSION_DENIED";
    case absl::StatusCode::kResourceExhausted: return "RESOURCE_EXHAUSTED";
    case absl::StatusCode::kFailedPrecondition: return "FAILED_PRECONDITION";
    case absl::StatusCode::kAborted: return "ABORTED";
    case absl::StatusCode::kOutOfRange: return "OUT_OF_RANGE";
    case absl::StatusCode::kUnimplemented: return "UNIMPLEMENTED";
    case absl::StatusCode::kInternal: return "INTERNAL";
    case absl::StatusCode::kUnavailable: return "UNAVAILABLE";
    case absl::StatusCode::kDataLoss: return "DATA_LOSS";
    case absl::StatusCode::kUnauthenticated: return "UNAUTHENTICATED";
    default: return "UNKNOWN";
  }
}

namespace {
// "300.25 CNY" for yuan; whole units for goods and other currencies.
std::string Amount(int64_t amount, const std::string& asset) {
  if (asset != "CNY") return absl::StrCat(amount, " ", asset);
  std::string sign = amount < 0 ? "-" : "";
  uint64_t abs = amount < 0 ? 0 - static_cast<uint64_t>(amount) : amount;
  return absl::StrCat(sign, abs / 100, ".", abs % 100 < 10 ? "0" : "", abs % 100, " CNY");
}

// "2026-11-28 10:00:00 UTC".
std::string UtcTime(int64_t time_us) {
  const std::time_t t = static_cast<std::time_t>(time_us / 1'000'000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S UTC", &tm);
  return buf;
}

// Value moved by an entry: the sum of its postings (0 when nothing moved).
int64_t Moved(const Entry& entry) {
  int64_t moved = 0;
  for (const Posting& p : entry.postings) moved += p.amount;
  return moved;
}

// " (override: <reason>)" when an operation was recorded despite an aid rule.
std::string OverrideNote(const std::string& reason) {
  return reason.empty() ? "" : absl::StrCat(" (override: ", reason, ")");
}
}  // namespace

std::string EntrySummary(const Entry& entry) {
  return std::visit(
      [&entry](const auto& op) -> std::string {
        using T = std::decay_t<decltype(op)>;
        if constexpr (std::is_same_v<T, OpenAccountOp>) {
          return absl::StrCat("open ", AccountKindName(op.kind), " ", op.account,
                              op.asset.empty() ? "" : absl::StrCat(" (", op.asset, ")"));
        } else if constexpr (std::is_same_v<T, CloseAccountOp>) {
          return absl::StrCat("close ", op.account, ": ", op.reason);
        } else if constexpr (std::is_same_v<T, DonationOp>) {
          return absl::StrCat("donation of ", Amount(op.amount, op.asset), " from ",
                              (op.flags & kDonationAnonymous) ? "an anonymous donor" : op.donor,
                              " to ", op.to);
        } else if constexpr (std::is_same_v<T, AllocationOp>) {
          return absl::StrCat("allocation of ", Amount(op.amount, op.asset), " from ", op.from,
                              " to ", op.to);
        } else if constexpr (std::is_same_v<T, DisbursementOp>) {
          return absl::StrCat("disbursement of ", Amount(op.amount, op.asset), " from ", op.from,
                              " to ", op.to, op.purpose.empty() ? "" : ": ", op.purpose,
                              OverrideNote(op.override_reason));
        } else if constexpr (std::is_same_v<T, CorrectionOp>) {
          return op.mode == CorrectionMode::kReverse
                     ? absl::StrCat("reversal of entry ", op.ref_seq, ": ", op.reason)
                     : absl::StrCat("adjustment (entry ", op.ref_seq, ") of ",
                                    Amount(op.amount, op.asset), " from ", op.from, " to ",
                                    op.to, ": ", op.reason);
        } else if constexpr (std::is_same_v<T, PurchaseOp>) {
          return absl::StrCat("purchase order ", op.order_id, " at store ", op.store, ": ",
                              Amount(op.amount, op.asset), ", contribution ",
                              Amount(Moved(entry), op.asset), " to ", op.fund);
        } else if constexpr (std::is_same_v<T, RefundOp>) {
          // The asset and the fund are the purchase's; only the reversal's
          // posting names them here.
          if (entry.postings.empty()) {
            return absl::StrCat("refund ", op.refund_id, " of order ", op.order_id,
                                " at store ", op.store, ": ", op.amount,
                                " minor units, no contribution to reverse");
          }
          const Posting& p = entry.postings[0];
          return absl::StrCat(
              "refund ", op.refund_id, " of order ", op.order_id, " at store ", op.store, ": ",
              Amount(op.amount, p.asset), ", reversal ", Amount(Moved(entry), p.asset),
              " from ", p.from,
              entry.policy == kPolicyLotFifoV1 ? " (partly from the fund's oldest money)" : "");
        } else if constexpr (std::is_same_v<T, VoucherIssueOp>) {
          return absl::StrCat("voucher ", VoucherAccountId(entry.seq), " of ",
                              Amount(op.amount, op.asset), " from ", op.from, " for ", op.recipient,
                              ", redeemable until ", UtcTime(op.expires_us),
                              op.stores.empty()
                                  ? " at any store"
                                  : absl::StrCat(" at ", op.stores.size(),
                                                 op.stores.size() == 1 ? " store" : " stores"),
                              OverrideNote(op.override_reason));
        } else if constexpr (std::is_same_v<T, RedemptionOp>) {
          const std::string voucher =
              entry.postings.empty() ? std::string("a voucher") : entry.postings[0].from;
          const std::string asset = entry.postings.empty() ? "" : entry.postings[0].asset;
          return absl::StrCat("redemption of ", Amount(op.amount, asset), " from ", voucher,
                              " at store ", op.store, " for order ", op.order_id);
        } else if constexpr (std::is_same_v<T, VoucherCloseOp>) {
          const std::string asset = entry.postings.empty() ? "" : entry.postings[0].asset;
          const std::string to = entry.postings.empty() ? "its fund" : entry.postings[0].to;
          return op.mode == VoucherCloseMode::kVoid
                     ? absl::StrCat("void of ", op.voucher, ": ", Amount(Moved(entry), asset),
                                    " back to ", to, ": ", op.reason)
                     : absl::StrCat("expiry of ", op.voucher, ": ", Amount(Moved(entry), asset),
                                    " back to ", to);
        } else if constexpr (std::is_same_v<T, ItemOp>) {
          return absl::StrCat("catalogue item ", op.item, " counted in ", op.unit, ": ",
                              op.name);
        } else if constexpr (std::is_same_v<T, GoodsGiftOp>) {
          std::string s = absl::StrCat(
              "goods gift of ", Amount(op.quantity, op.item), " from ",
              (op.flags & kDonationAnonymous) ? "an anonymous donor" : op.donor, " to ", op.to);
          if (!op.grade.empty()) absl::StrAppend(&s, ", grade ", op.grade);
          if (op.expires_us != 0) absl::StrAppend(&s, ", expires ", UtcTime(op.expires_us));
          if (!op.value_asset.empty()) {
            absl::StrAppend(&s, ", appraised at ", Amount(op.value, op.value_asset));
          }
          return s;
        } else if constexpr (std::is_same_v<T, GoodsPurchaseOp>) {
          std::string s = absl::StrCat("goods purchase of ", Amount(op.quantity, op.item),
                                       " from ", op.supplier, " into ", op.to, " for ",
                                       Amount(op.price, op.asset), " from ", op.from);
          if (!op.grade.empty()) absl::StrAppend(&s, ", grade ", op.grade);
          if (op.expires_us != 0) absl::StrAppend(&s, ", expires ", UtcTime(op.expires_us));
          if (!op.memo.empty()) absl::StrAppend(&s, ": ", op.memo);
          return s;
        } else if constexpr (std::is_same_v<T, HandoutOp>) {
          // Recipients by count only: one summary line, whatever the lines.
          return absl::StrCat(
              "handout of ", Amount(Moved(entry), op.item), " from ", op.from, " to ",
              op.lines.size(), op.lines.size() == 1 ? " recipient" : " recipients",
              op.purpose.empty() ? "" : ": ", op.purpose, OverrideNote(op.override_reason));
        } else if constexpr (std::is_same_v<T, WriteOffOp>) {
          return absl::StrCat("write-off of ", Amount(op.quantity, op.item), " from ", op.from,
                              op.lot == 0 ? "" : absl::StrCat(" (lot ", op.lot, ")"), " to ",
                              op.to, ": ", op.reason);
        } else if constexpr (std::is_same_v<T, GoodsSaleOp>) {
          return absl::StrCat("goods sale of ", Amount(op.quantity, op.item), " from ", op.from,
                              " to ", op.buyer, " for ", Amount(op.proceeds, op.asset), " into ",
                              op.to, op.memo.empty() ? "" : ": ", op.memo);
        } else {
          static_assert(std::is_same_v<T, AidRuleOp>);
          if (op.max_count == 0) return absl::StrCat("aid rule ", op.aid, " lifted");
          return absl::StrCat("aid rule ", op.aid, ": at most ", op.max_count, " ",
                              EntryTypeName(op.type), " per ", AidPeriodName(op.period),
                              " to each recipient from ",
                              op.source.empty() ? std::string("any source") : op.source,
                              op.asset.empty() ? "" : absl::StrCat(" in ", op.asset),
                              op.memo.empty() ? "" : ": ", op.memo);
        }
      },
      entry.body);
}

void ToProto(const StoredEntry& stored, pb::Entry* out) {
  const Entry& e = stored.entry;
  out->set_seq(e.seq);
  out->set_time_us(e.time_us);
  out->set_type(static_cast<pb::EntryType>(e.type()));
  out->set_client_id(e.client_id);
  out->set_policy(e.policy);
  out->set_prev_hash(reinterpret_cast<const char*>(e.prev_hash.data()), e.prev_hash.size());
  out->set_hash(reinterpret_cast<const char*>(stored.hash.data()), stored.hash.size());
  out->set_entry_bytes(stored.bytes);
  for (const Posting& p : e.postings) {
    pb::Posting* q = out->add_postings();
    q->set_from(p.from);
    q->set_to(p.to);
    q->set_asset(p.asset);
    q->set_amount(p.amount);
    for (const Slice& s : p.slices) {
      pb::Slice* r = q->add_slices();
      r->set_lot(s.lot);
      r->set_amount(s.amount);
    }
  }
  out->set_summary(EntrySummary(e));
}

void ToProto(const OpResult& result, pb::WriteResult* out) {
  out->set_seq(result.seq);
  out->set_time_us(result.time_us);
  out->set_duplicate(result.duplicate);
}

void ToProto(const AccountInfo& info, pb::Account* out) {
  out->set_account(info.account);
  out->set_kind(static_cast<pb::AccountKind>(info.kind));
  out->set_asset(info.asset);
  out->set_restricted(info.kind == AccountKind::kProject || (info.flags & kAccountRestricted));
  out->set_name(info.name);
  out->set_closed(info.closed);
  out->set_opened_seq(info.opened_seq);
  out->set_category(info.category);
  out->set_community(info.community);
  for (const Balance& b : info.balances) {
    pb::Balance* q = out->add_balances();
    q->set_asset(b.asset);
    q->set_amount(b.amount);
  }
  out->set_slice_count(info.slice_count);
  for (const AccountFlow& f : info.flows) {
    pb::Flow* q = out->add_flows();
    q->set_type(static_cast<pb::EntryType>(f.type));
    q->set_in(f.in);
    q->set_out(f.out);
  }
  out->set_entry_count(info.entry_count);
}

void ToProto(const StatementPage& page, pb::Statement* out) {
  out->set_account(page.account);
  out->set_total_count(page.total_count);
  out->set_offset(page.offset);
  for (const StatementLine& l : page.lines) {
    pb::StatementLine* q = out->add_lines();
    q->set_seq(l.seq);
    q->set_time_us(l.time_us);
    q->set_type(static_cast<pb::EntryType>(l.type));
    q->set_counterparty(l.counterparty);
    q->set_asset(l.asset);
    q->set_delta(l.delta);
    q->set_balance_after(l.balance_after);
  }
}

void ToProto(const EntryTracePage& page, pb::EntryTrace* out) {
  out->set_seq(page.seq);
  out->set_asset(page.asset);
  out->set_type(static_cast<pb::EntryType>(page.type));
  out->set_outflow(page.outflow);
  out->set_total_count(page.total_count);
  out->set_offset(page.offset);
  for (const TraceSource& s : page.sources) {
    pb::TraceSource* q = out->add_sources();
    q->set_posting_index(static_cast<uint32_t>(s.posting_index));
    q->set_lot(s.lot);
    q->set_donor(s.donor);
    q->set_anonymous(s.anonymous);
    q->set_amount(s.amount);
    for (const LotParent& b : s.behind) ToProto(b, q->add_behind());
    q->set_behind_count(s.behind_count);
  }
}

void ToProto(const LotParent& parent, pb::LotParent* out) {
  out->set_lot(parent.lot);
  out->set_donor(parent.donor);
  out->set_anonymous(parent.anonymous);
  out->set_asset(parent.asset);
  out->set_consumed(parent.consumed);
  out->set_share(parent.share);
}

void ToProto(const ItemInfo& info, pb::Item* out) {
  out->set_item(info.item);
  out->set_name(info.name);
  out->set_unit(info.unit);
  out->set_defined_seq(info.defined_seq);
  out->set_in_stock(info.in_stock);
}

void ToFundSummary(const AccountInfo& info, pb::FundSummary* out) {
  out->set_account(info.account);
  out->set_name(info.name);
  out->set_kind(static_cast<pb::AccountKind>(info.kind));
  out->set_asset(info.asset);
  out->set_restricted(info.kind == AccountKind::kProject || (info.flags & kAccountRestricted));
  for (const AccountFlow& f : info.flows) {
    switch (f.type) {
      case EntryType::kDonation: out->set_raised(f.in); break;
      case EntryType::kAllocation:
        out->set_allocated_in(f.in);
        out->set_allocated_out(f.out);
        break;
      case EntryType::kDisbursement: out->set_spent(f.out); break;
      case EntryType::kCorrection:
        out->set_corrected_in(f.in);
        out->set_corrected_out(f.out);
        break;
      case EntryType::kPurchase: out->set_contributions(f.in); break;
      case EntryType::kRefund: out->set_refund_reversals(f.out); break;
      case EntryType::kVoucherIssue: out->set_vouchers_issued(f.out); break;
      case EntryType::kVoucherClose: out->set_vouchers_returned(f.in); break;
      case EntryType::kGoodsPurchase: out->set_goods_bought(f.out); break;
      case EntryType::kGoodsSale: out->set_goods_sales(f.in); break;
      default: break;
    }
  }
  for (const Balance& b : info.balances) {
    if (b.asset == info.asset) out->set_held(b.amount);
  }
}

void ToProto(const VoucherInfo& info, pb::Voucher* out) {
  out->set_voucher(info.voucher);
  out->set_account(info.account);
  out->set_from(info.from);
  out->set_recipient(info.recipient);
  out->set_category(info.category);
  out->set_community(info.community);
  out->set_asset(info.asset);
  out->set_face(info.face);
  out->set_redeemed(info.redeemed);
  out->set_returned(info.returned);
  out->set_remaining(info.remaining);
  out->set_redemptions(info.redemptions);
  out->set_issued_us(info.issued_us);
  out->set_expires_us(info.expires_us);
  for (const std::string& store : info.stores) out->add_stores(store);
  switch (info.status) {
    case VoucherStatus::kActive: out->set_status(pb::ACTIVE); break;
    case VoucherStatus::kRedeemed: out->set_status(pb::REDEEMED); break;
    case VoucherStatus::kExpired: out->set_status(pb::EXPIRED); break;
    case VoucherStatus::kVoided: out->set_status(pb::VOIDED); break;
  }
  out->set_closed_seq(info.closed_seq);
}

namespace {
void ToProto(const VoucherTotals& t, pb::VoucherTotals* out) {
  out->set_key(t.key);
  out->set_asset(t.asset);
  out->set_issued(t.issued);
  out->set_issued_amount(t.issued_amount);
  out->set_redemptions(t.redemptions);
  out->set_redeemed_amount(t.redeemed_amount);
  out->set_fully_redeemed(t.fully_redeemed);
  out->set_expired(t.expired);
  out->set_expired_amount(t.expired_amount);
  out->set_voided(t.voided);
  out->set_voided_amount(t.voided_amount);
  out->set_outstanding(t.outstanding);
  out->set_outstanding_amount(t.outstanding_amount);
  out->set_overdue(t.overdue);
}
}  // namespace

void ToProto(const VoucherReport& report, pb::VoucherReport* out) {
  out->set_as_of_us(report.as_of_us);
  for (const VoucherTotals& t : report.by_fund) ToProto(t, out->add_by_fund());
  for (const VoucherTotals& t : report.by_category) ToProto(t, out->add_by_category());
  for (const VoucherTotals& t : report.total) ToProto(t, out->add_total());
}

void ToProto(const StoreSettlement& row, pb::StoreSettlement* out) {
  out->set_store(row.store);
  out->set_asset(row.asset);
  out->set_purchases(row.purchases);
  out->set_purchase_amount(row.purchase_amount);
  out->set_contributions(row.contributions);
  out->set_refunds(row.refunds);
  out->set_refund_amount(row.refund_amount);
  out->set_reversals(row.reversals);
  out->set_redemptions(row.redemptions);
  out->set_redeemed(row.redeemed);
  out->set_net_contribution(row.contributions - row.reversals);
  out->set_redemptions_reversed(row.redemptions_reversed);
  out->set_redeemed_reversed(row.redeemed_reversed);
}

void ToProto(const AidRuleInfo& info, pb::AidRule* out) {
  const AidRuleOp& r = info.rule;
  out->set_aid(r.aid);
  out->set_type(static_cast<pb::EntryType>(r.type));
  out->set_source(r.source);
  out->set_asset(r.asset);
  out->set_max_count(r.max_count);
  out->set_period(static_cast<pb::AidPeriod>(r.period));
  out->set_memo(r.memo);
  out->set_seq(info.seq);
}

void ToProto(const AidReport& report, pb::AidReport* out) {
  out->set_from_time_us(report.from_time_us);
  out->set_to_time_us(report.to_time_us);
  out->set_public_view(report.public_view);
  out->set_min_people(kAidReportMinPeople);
  uint64_t suppressed = report.suppressed_cells;
  for (const AidCell& c : report.cells) {
    // The privacy boundary of the public report: fail closed.
    if (report.public_view && c.people < kAidReportMinPeople) {
      ++suppressed;
      continue;
    }
    pb::AidCell* q = out->add_cells();
    q->set_category(c.category);
    q->set_community(c.community);
    q->set_type(static_cast<pb::EntryType>(c.type));
    q->set_asset(c.asset);
    q->set_people(c.people);
    q->set_entries(c.entries);
    q->set_amount(c.amount);
  }
  out->set_suppressed_cells(suppressed);
}

}  // namespace warmledger::server

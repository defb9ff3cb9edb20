#include "server/convert.h"

#include "absl/strings/str_cat.h"

namespace warmledger::server {

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
}  // namespace

std::string EntrySummary(const Entry& entry) {
  return std::visit(
      [](const auto& op) -> std::string {
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
                              " to ", op.to, op.purpose.empty() ? "" : ": ", op.purpose);
        } else {
          return op.mode == CorrectionMode::kReverse
                     ? absl::StrCat("reversal of entry ", op.ref_seq, ": ", op.reason)
                     : absl::StrCat("adjustment (entry ", op.ref_seq, ") of ",
                                    Amount(op.amount, op.asset), " from ", op.from, " to ",
                                    op.to, ": ", op.reason);
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
  }
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
      default: break;
    }
  }
  for (const Balance& b : info.balances) {
    if (b.asset == info.asset) out->set_held(b.amount);
  }
}

}  // namespace warmledger::server

#include "server/server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <map>
#include <optional>
#include <thread>
#include <type_traits>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/time/time.h"
#include "ledger/sha256.h"
#include "ledger/limits.h"
#include "ledger/merkle.h"
#include "ledger/monitor.h"
#include "ledger/note.h"
#include "ledger/status_macros.h"
#include "server/auth.h"
#include "server/convert.h"
#include "server/identity.h"
#include "server/log_writer.h"
#include "server/registry.h"
#include "warmledger/v1/ledger.grpc.pb.h"

namespace warmledger::server {
namespace {

// Operations in one SubmitBatch call. A donation with create_donor writes two
// entries, so a full batch stays within the engine's kBatchOpsMax.
constexpr size_t kRpcBatchOpsMax = kBatchOpsMax / 2;
// Items in one SubmitCheckoutBatch call: each is one engine operation.
constexpr size_t kCheckoutBatchItemsMax = kBatchOpsMax;
// Vouchers one expiry sweep (the background one or the RPC) ends at most.
constexpr size_t kSweepVouchersMax = kBatchOpsMax;
// The asset of purchases and vouchers that name none.
constexpr char kDefaultMoneyAsset[] = "CNY";
// gRPC messages in each direction.
constexpr int kMessageBytesMax = 16 << 20;
// Default page size when a request says 0.
constexpr uint64_t kDefaultPageItems = 100;
// Entries per read while streaming an export.
constexpr uint64_t kExportChunkEntries = 1000;
// Longest wait for a checkpoint covering a new entry (receipts).
constexpr int64_t kReceiptWaitMaxMs = 5'000;
// How long a tail waits for a new entry before re-checking for cancellation
// and shutdown.
constexpr int64_t kTailPollMs = 200;

int64_t NowMicros() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

uint64_t PageLimit(uint64_t limit) { return limit == 0 ? kDefaultPageItems : limit; }

// Milliseconds until a call's deadline (a large number without one).
int64_t MillisUntil(std::chrono::system_clock::time_point deadline) {
  const auto left = deadline - std::chrono::system_clock::now();
  if (left > std::chrono::hours(24)) return int64_t{24} * 3600 * 1000;
  return std::chrono::duration_cast<std::chrono::milliseconds>(left).count();
}

absl::Status CheckTraceCode(const std::string& code) {
  if (!IsCodeForm(code)) {
    return absl::InvalidArgumentError(
        "trace_code: expected 26 characters of A-Z and 2-7 (as printed on the receipt)");
  }
  return absl::OkStatus();
}

// A request's voucher code as typed, normalised; errors name the field.
absl::StatusOr<std::string> RequestVoucherCode(std::string_view typed) {
  absl::StatusOr<std::string> code = NormalizeVoucherCode(typed);
  if (!code.ok()) return absl::InvalidArgumentError(absl::StrCat("code: ", code.status().message()));
  return code;
}

std::string_view AuthorizationOf(const grpc::ServerContextBase* ctx) {
  const auto& md = ctx->client_metadata();
  auto it = md.find("authorization");
  if (it == md.end()) return {};
  return std::string_view(it->second.data(), it->second.size());
}

}  // namespace

bool IsLoopbackListen(std::string_view listen) {
  size_t colon = listen.rfind(':');
  if (colon == std::string_view::npos) return false;
  std::string_view host = listen.substr(0, colon);
  if (host == "localhost" || host == "[::1]") return true;
  // An IPv4 address in 127.0.0.0/8: exactly four decimal octets. A DNS name
  // that merely starts with "127." may resolve anywhere.
  int octets = 0;
  size_t i = 0;
  while (i <= host.size()) {
    size_t dot = host.find('.', i);
    if (dot == std::string_view::npos) dot = host.size();
    std::string_view part = host.substr(i, dot - i);
    if (part.empty() || part.size() > 3) return false;
    int value = 0;
    for (char c : part) {
      if (c < '0' || c > '9') return false;
      value = value * 10 + (c - '0');
    }
    if (value > 255 || (octets == 0 && value != 127)) return false;
    ++octets;
    i = dot + 1;
  }
  return octets == 4;
}

// Everything the services share.
struct Shared {
  ServerOptions options;
  std::unique_ptr<Ledger> ledger;
  Authenticator auth = Authenticator::Dev();
  Registry registry = Registry::Default();
  std::optional<SecretKey> key;  // set by Start before any service runs
  std::atomic<bool> shutting_down{false};
  // Where log lines go when options.log is not set: stderr, in bulk.
  std::unique_ptr<LogWriter> stderr_log;

  // Now on the server's (injected) clock, the one that stamps entries.
  int64_t ClockMicros() const {
    Clock* clock = options.clock ? options.clock : SystemClock::Default();
    return clock->NowMicros();
  }

  // Today's date (UTC) on the server's clock, as YYYYMMDD.
  int TodayYyyymmdd() const {
    std::time_t t = static_cast<std::time_t>(ClockMicros() / 1'000'000);
    std::tm tm{};
    gmtime_r(&t, &tm);
    return (tm.tm_year + 1900) * 10000 + (tm.tm_mon + 1) * 100 + tm.tm_mday;
  }

  void Log(const char* method, Role role, absl::StatusCode code, int64_t start_us) const {
    LogLine(absl::StrCat("{\"rpc\":\"", method, "\",\"role\":\"", RoleName(role),
                         "\",\"code\":\"", CodeName(code),
                         "\",\"latency_us\":", NowMicros() - start_us, "}"));
  }

  // One structured line to options.log, or to stderr (see LogWriter).
  void LogLine(const std::string& line) const {
    if (options.log) {
      options.log(line);
    } else {
      stderr_log->Write(line);
    }
  }
};

namespace {

// One unary call on the callback API: authorises it, logs it once, finishes
// its reactor once (possibly on the sequencer thread).
class UnaryCall {
 public:
  UnaryCall(const Shared* shared, grpc::CallbackServerContext* ctx, const char* method)
      : shared_(shared), reactor_(ctx->DefaultReactor()), method_(method),
        start_us_(NowMicros()) {}

  // Checks the caller's role; on failure finishes the call and returns false.
  bool Authorize(grpc::CallbackServerContext* ctx, Access access) {
    absl::StatusOr<Role> role = shared_->auth.Authorize(AuthorizationOf(ctx), access);
    if (!role.ok()) {
      Finish(role.status());
      return false;
    }
    role_ = *role;
    return true;
  }

  void Finish(const absl::Status& status) const {
    shared_->Log(method_, role_, status.code(), start_us_);
    reactor_->Finish(ToGrpc(status));
  }

  Role role() const { return role_; }
  grpc::ServerUnaryReactor* reactor() const { return reactor_; }

 private:
  const Shared* shared_;
  grpc::ServerUnaryReactor* reactor_;
  const char* method_;
  int64_t start_us_;
  Role role_ = Role::kNone;
};

// Turns API write requests into engine operations and engine results back
// into API results. One BatchOperation becomes one or two engine operations
// (a donation with create_donor first opens the donor if it is absent,
// linked); a checkout item or a voucher request becomes one. Errors always
// number operations as the caller sent them.
class WritePlanner {
 public:
  explicit WritePlanner(const Shared* shared) : shared_(shared) {}

  struct Planned {
    size_t first = 0;  // index of its first engine operation
    size_t count = 0;  // engine operations (0 when not submitted)
    absl::Status error;
    bool linked = false;
    bool makes_lot = false;    // donations, goods gifts, purchases and sales: lot = seq
    bool is_goods = false;     // goods operations report `moved`
    bool opens_donor = false;
    std::string trace_code;    // donations, goods gifts; purchases with want_trace_code
    std::string recipient;     // recipient registrations
    std::string voucher_code;  // voucher issues
    uint64_t voucher = 0;      // redemptions: the voucher's seq (from the engine)
    pb::WriteResult result;
    // The engine's checkout and voucher details (OpResult), also of retries.
    int64_t moved = 0;
    int64_t covered_by_fund = 0;
    int64_t voucher_balance_after = 0;
  };

  // Plans one request of any kind that has a Convert overload: a
  // BatchOperation, a CheckoutItem (or the purchase, refund or redemption
  // it holds), a voucher issue or void, or a goods write.
  template <typename Request>
  void Add(const Request& request) {
    Planned p;
    if constexpr (std::is_same_v<Request, pb::BatchOperation>) p.linked = request.linked();
    std::vector<Operation> ops;
    p.error = Convert(request, &p, &ops);
    if (!p.error.ok()) ops.clear();
    if (!ops.empty()) ops.back().linked = p.linked;
    pending_.push_back(std::move(ops));
    planned_.push_back(std::move(p));
  }

  // Checks the chains and returns the engine operations to submit. A chain
  // with an operation rejected here is not submitted at all.
  std::vector<Operation> TakeOperations() {
    std::vector<Operation> ops;
    ForEachChain([&](size_t first, size_t last) {
      size_t engine_ops = 0;
      for (size_t k = first; k <= last; ++k) engine_ops += pending_[k].size();
      if (planned_[last].linked) {
        for (size_t k = first; k <= last; ++k) {
          planned_[k].error = absl::InvalidArgumentError(absl::StrCat(
              "operations[", k, "].linked: the chain starting at operation ", first,
              " is not closed (its last operation must have linked = false)"));
        }
      } else if (engine_ops > kLinkedGroupOpsMax) {
        for (size_t k = first; k <= last; ++k) {
          planned_[k].error = absl::InvalidArgumentError(absl::StrCat(
              "operations[", k, "].linked: the chain starting at operation ", first,
              " is too long (", engine_ops, " entries, at most ", kLinkedGroupOpsMax, ")"));
        }
      }
      if (FailChain(first, last)) return;
      for (size_t k = first; k <= last; ++k) {
        planned_[k].first = ops.size();
        planned_[k].count = pending_[k].size();
        for (Operation& o : pending_[k]) ops.push_back(std::move(o));
      }
    });
    pending_.clear();
    return ops;
  }

  // Maps the engine's results back to the planned operations.
  void Resolve(const std::vector<OpResult>& results) {
    for (Planned& p : planned_) {
      if (p.count == 0) continue;
      const OpResult& last = results[p.first + p.count - 1];
      for (size_t k = p.first; k < p.first + p.count; ++k) {
        const absl::Status& s = results[k].status;
        if (!s.ok() && s.code() != absl::StatusCode::kAborted) {
          p.error = Rephrase(p, k == p.first && p.opens_donor, s);
          break;
        }
        if (!s.ok() && p.error.ok()) p.error = s;
      }
      if (p.error.ok()) {
        ToProto(last, &p.result);
        p.moved = last.moved;
        p.covered_by_fund = last.covered_by_fund;
        p.voucher_balance_after = last.voucher_balance_after;
        p.voucher = last.voucher;
      }
    }
    // The engine numbers chain members by its own operations; renumber.
    ForEachChain([&](size_t first, size_t last) { FailChain(first, last); });
  }

  const Planned& planned(size_t index) const { return planned_[index]; }
  size_t size() const { return planned_.size(); }

 private:
  template <typename F>
  void ForEachChain(F f) {
    size_t i = 0;
    while (i < planned_.size()) {
      size_t end = i;
      while (end + 1 < planned_.size() && planned_[end].linked) ++end;
      f(i, end);
      i = end + 1;
    }
  }

  // If a member of the chain [first, last] failed for a reason of its own,
  // every other member fails with ABORTED naming it. Returns whether the
  // chain failed.
  bool FailChain(size_t first, size_t last) {
    size_t failed = SIZE_MAX;
    for (size_t k = first; k <= last && failed == SIZE_MAX; ++k) {
      const absl::Status& e = planned_[k].error;
      if (!e.ok() && (e.code() != absl::StatusCode::kAborted || first == last)) failed = k;
    }
    if (failed == SIZE_MAX) return false;
    if (last == first) return true;
    for (size_t k = first; k <= last; ++k) {
      if (k == failed) continue;
      if (planned_[k].error.code() == absl::StatusCode::kInvalidArgument &&
          planned_[failed].error.code() == absl::StatusCode::kInvalidArgument &&
          absl::StrContains(planned_[k].error.message(), ".linked:")) {
        continue;  // every member already names the broken chain
      }
      planned_[k].error = absl::AbortedError(
          absl::StrCat("linked operation failed: operation ", failed, ": ",
                       planned_[failed].error.message()));
    }
    return true;
  }

  absl::Status Convert(const pb::BatchOperation& op, Planned* p, std::vector<Operation>* ops) {
    switch (op.op_case()) {
      case pb::BatchOperation::kOpenAccount: return OpenAccount(op.open_account(), ops);
      case pb::BatchOperation::kCloseAccount: {
        const auto& r = op.close_account();
        WL_RETURN_IF_ERROR(CheckClientId(r.client_id()));
        ops->push_back({r.client_id(), false, CloseAccountOp{r.account(), r.reason()}});
        return absl::OkStatus();
      }
      case pb::BatchOperation::kDonate: return Donate(op.donate(), p, ops);
      case pb::BatchOperation::kAllocate: {
        const auto& r = op.allocate();
        WL_RETURN_IF_ERROR(CheckClientId(r.client_id()));
        ops->push_back({r.client_id(), false,
                        AllocationOp{r.from(), r.to(), r.asset(), r.amount(), r.reason()}});
        return absl::OkStatus();
      }
      case pb::BatchOperation::kDisburse: {
        const auto& r = op.disburse();
        WL_RETURN_IF_ERROR(CheckClientId(r.client_id()));
        ops->push_back({r.client_id(), false,
                        DisbursementOp{r.from(), r.to(), r.asset(), r.amount(), r.purpose(),
                                       r.override_reason()}});
        return absl::OkStatus();
      }
      case pb::BatchOperation::kCorrect: {
        const auto& r = op.correct();
        WL_RETURN_IF_ERROR(CheckClientId(r.client_id()));
        if (r.mode() != pb::REVERSE && r.mode() != pb::ADJUST) {
          return absl::InvalidArgumentError(
              absl::StrCat("mode: ", static_cast<int>(r.mode()), " is not REVERSE or ADJUST"));
        }
        ops->push_back({r.client_id(), false,
                        CorrectionOp{r.ref_seq(), static_cast<CorrectionMode>(r.mode()),
                                     r.reason(), r.from(), r.to(), r.asset(), r.amount()}});
        return absl::OkStatus();
      }
      case pb::BatchOperation::kRegisterRecipient:
        return RegisterRecipient(op.register_recipient(), p, ops);
      case pb::BatchOperation::kIssueVoucher: return Convert(op.issue_voucher(), p, ops);
      case pb::BatchOperation::kVoidVoucher: return Convert(op.void_voucher(), p, ops);
      case pb::BatchOperation::kDefineItem: return Convert(op.define_item(), p, ops);
      case pb::BatchOperation::kGiveGoods: return Convert(op.give_goods(), p, ops);
      case pb::BatchOperation::kBuyGoods: return Convert(op.buy_goods(), p, ops);
      case pb::BatchOperation::kHandOut: return Convert(op.hand_out(), p, ops);
      case pb::BatchOperation::kWriteOffGoods: return Convert(op.write_off_goods(), p, ops);
      case pb::BatchOperation::kSellGoods: return Convert(op.sell_goods(), p, ops);
      case pb::BatchOperation::kSetAidRule: return Convert(op.set_aid_rule(), p, ops);
      case pb::BatchOperation::OP_NOT_SET:
        break;
    }
    return absl::InvalidArgumentError("op: no operation set");
  }

  // Client ids starting with '~' are reserved for operations the server
  // derives (opening a donor).
  static absl::Status CheckClientId(const std::string& id) {
    if (!id.empty() && id[0] == '~') {
      return absl::InvalidArgumentError("client_id: ids starting with '~' are reserved");
    }
    return absl::OkStatus();
  }

  // For requests whose answer the server derives from the client id (trace
  // and voucher codes): it must be there before anything is derived.
  static absl::Status CheckRequiredClientId(const std::string& id) {
    WL_RETURN_IF_ERROR(CheckClientId(id));
    if (id.empty()) return absl::InvalidArgumentError("client_id: required");
    return absl::OkStatus();
  }

  absl::Status OpenAccount(const pb::OpenAccountRequest& r, std::vector<Operation>* ops) {
    WL_RETURN_IF_ERROR(CheckClientId(r.client_id()));
    if (r.kind() == pb::ACCOUNT_KIND_UNSPECIFIED) {
      return absl::InvalidArgumentError("kind: required");
    }
    if (r.kind() == pb::RECIPIENT) {
      return absl::InvalidArgumentError("kind: recipients are registered with RegisterRecipient");
    }
    if (!pb::AccountKind_IsValid(r.kind())) {
      return absl::InvalidArgumentError(
          absl::StrCat("kind: ", static_cast<int>(r.kind()), " is not an account kind"));
    }
    OpenAccountOp op{r.account(), static_cast<AccountKind>(r.kind()), r.asset(),
                     r.restricted() ? kAccountRestricted : 0u, r.name()};
    ops->push_back({r.client_id(), false, std::move(op)});
    return absl::OkStatus();
  }

  // A gift's client id (required: its trace code is derived from it), its
  // channel, and with create_donor the linked open of the donor (any asset)
  // that goes before it.
  absl::Status PlanGift(const std::string& client_id, pb::DonationChannel channel,
                        bool create_donor, const std::string& donor,
                        const std::string& donor_name, Planned* p,
                        std::vector<Operation>* ops) {
    p->makes_lot = true;
    WL_RETURN_IF_ERROR(CheckRequiredClientId(client_id));
    if (!pb::DonationChannel_IsValid(channel)) {
      return absl::InvalidArgumentError(
          absl::StrCat("channel: ", static_cast<int>(channel), " is not a channel"));
    }
    if (create_donor) {
      // The open's id is derived from the gift's, so a retry derives the
      // same one; if_absent makes concurrent first gifts of one donor safe.
      Hash h = Sha256(client_id);
      ops->push_back({absl::StrCat("~donor/", HashToHex(h).substr(0, 32)), true,
                      OpenAccountOp{donor, AccountKind::kDonor, "", 0, donor_name},
                      /*if_absent=*/true});
      p->opens_donor = true;
    }
    p->trace_code = TraceCode(*shared_->key, client_id);
    return absl::OkStatus();
  }

  absl::Status Donate(const pb::DonateRequest& r, Planned* p, std::vector<Operation>* ops) {
    WL_RETURN_IF_ERROR(PlanGift(r.client_id(), r.channel(), r.create_donor(), r.donor(),
                                r.donor_name(), p, ops));
    DonationOp op{r.donor(), r.to(), r.asset(), r.amount(),
                  static_cast<DonationChannel>(r.channel()),
                  r.anonymous() ? kDonationAnonymous : 0u, r.memo(), CodeHash(p->trace_code)};
    ops->push_back({r.client_id(), false, std::move(op)});
    return absl::OkStatus();
  }

  absl::Status RegisterRecipient(const pb::RegisterRecipientRequest& r, Planned* p,
                                 std::vector<Operation>* ops) {
    WL_RETURN_IF_ERROR(CheckClientId(r.client_id()));
    WL_RETURN_IF_ERROR(ValidateResidentId(r.id_number(), shared_->TodayYyyymmdd()));
    if (!shared_->registry.HasCategory(r.category())) {
      return absl::InvalidArgumentError(
          absl::StrCat("category: '", r.category(), "' is not a configured category"));
    }
    if (!shared_->registry.HasCommunity(r.community())) {
      return absl::InvalidArgumentError(
          absl::StrCat("community: '", r.community(), "' is not a configured community"));
    }
    p->recipient = RecipientPseudonym(*shared_->key, r.id_number());
    OpenAccountOp op{p->recipient, AccountKind::kRecipient, "", 0, "", r.category(),
                     r.community()};
    ops->push_back({r.client_id(), false, std::move(op)});
    return absl::OkStatus();
  }

  // ---- checkout and vouchers ----

  absl::Status Convert(const pb::CheckoutItem& item, Planned* p, std::vector<Operation>* ops) {
    switch (item.item_case()) {
      case pb::CheckoutItem::kPurchase: return Convert(item.purchase(), p, ops);
      case pb::CheckoutItem::kRefund: return Convert(item.refund(), p, ops);
      case pb::CheckoutItem::kRedeem: return Convert(item.redeem(), p, ops);
      case pb::CheckoutItem::ITEM_NOT_SET: break;
    }
    // Not appended yet: its index is the number planned so far.
    return absl::InvalidArgumentError(absl::StrCat("items[", planned_.size(), "]: empty"));
  }

  // Purchases, refunds and redemptions carry no client id: the engine gives
  // each its natural one, derived from the trade's own keys (types.h).
  absl::Status Convert(const pb::PurchaseRequest& r, Planned* p, std::vector<Operation>* ops) {
    const ServerOptions& o = shared_->options;
    PurchaseOp op{r.store(), r.order_id(), r.asset().empty() ? kDefaultMoneyAsset : r.asset(),
                  r.amount(), r.member(), r.sale_time_us(), o.contribution_rate_bp,
                  o.charity_fund};
    // The contribution's lot gets a trace code derived, like a donation's,
    // from the operation's client id, so a retry returns the same code. A
    // sale whose contribution rounds to 0 creates no lot and has none.
    if (r.want_trace_code() && op.amount > 0 && ContributionOf(op.amount, op.rate_bp) > 0) {
      p->trace_code = TraceCode(*shared_->key, PurchaseClientId(op.store, op.order_id));
      op.trace_hash = CodeHash(p->trace_code);
    }
    ops->push_back({"", false, std::move(op)});
    return absl::OkStatus();
  }

  absl::Status Convert(const pb::RefundRequest& r, Planned*, std::vector<Operation>* ops) {
    ops->push_back({"", false, RefundOp{r.store(), r.order_id(), r.refund_id(), r.amount()}});
    return absl::OkStatus();
  }

  absl::Status Convert(const pb::RedeemRequest& r, Planned* p, std::vector<Operation>* ops) {
    WL_ASSIGN_OR_RETURN(std::string code, RequestVoucherCode(r.code()));
    std::string code_hash = CodeHash(code);
    ops->push_back(
        {"", false, RedemptionOp{std::move(code_hash), r.store(), r.order_id(), r.amount()}});
    return absl::OkStatus();
  }

  absl::Status Convert(const pb::IssueVoucherRequest& r, Planned* p,
                       std::vector<Operation>* ops) {
    WL_RETURN_IF_ERROR(CheckRequiredClientId(r.client_id()));
    p->voucher_code = VoucherCode(*shared_->key, r.client_id());
    VoucherIssueOp op{r.from(),
                      r.recipient(),
                      r.asset().empty() ? kDefaultMoneyAsset : r.asset(),
                      r.amount(),
                      r.expires_us(),
                      {r.stores().begin(), r.stores().end()},
                      CodeHash(p->voucher_code),
                      r.memo(),
                      r.override_reason()};
    ops->push_back({r.client_id(), false, std::move(op)});
    return absl::OkStatus();
  }

  absl::Status Convert(const pb::VoidVoucherRequest& r, Planned*, std::vector<Operation>* ops) {
    WL_RETURN_IF_ERROR(CheckClientId(r.client_id()));
    if (r.voucher() == 0) return absl::InvalidArgumentError("voucher: required");
    ops->push_back({r.client_id(), false,
                    VoucherCloseOp{VoucherAccountId(r.voucher()), VoucherCloseMode::kVoid,
                                   r.reason()}});
    return absl::OkStatus();
  }

  // ---- goods ----

  absl::Status Convert(const pb::DefineItemRequest& r, Planned* p, std::vector<Operation>* ops) {
    WL_RETURN_IF_ERROR(CheckClientId(r.client_id()));
    ops->push_back({r.client_id(), false, ItemOp{r.item(), r.name(), r.unit()}});
    return absl::OkStatus();
  }

  absl::Status Convert(const pb::GiveGoodsRequest& r, Planned* p, std::vector<Operation>* ops) {
    p->is_goods = true;
    WL_RETURN_IF_ERROR(PlanGift(r.client_id(), r.channel(), r.create_donor(), r.donor(),
                                r.donor_name(), p, ops));
    GoodsGiftOp op{r.donor(),
                   r.to(),
                   r.item(),
                   r.quantity(),
                   r.grade(),
                   r.expires_us(),
                   r.value_asset(),
                   r.value(),
                   static_cast<DonationChannel>(r.channel()),
                   r.anonymous() ? kDonationAnonymous : 0u,
                   r.memo(),
                   CodeHash(p->trace_code)};
    ops->push_back({r.client_id(), false, std::move(op)});
    return absl::OkStatus();
  }

  absl::Status Convert(const pb::BuyGoodsRequest& r, Planned* p, std::vector<Operation>* ops) {
    p->makes_lot = true;
    p->is_goods = true;
    WL_RETURN_IF_ERROR(CheckClientId(r.client_id()));
    GoodsPurchaseOp op{r.from(),       r.supplier(),
                       r.asset().empty() ? kDefaultMoneyAsset : r.asset(),
                       r.price(),      r.to(),
                       r.item(),       r.quantity(),
                       r.grade(),      r.expires_us(),
                       r.memo()};
    ops->push_back({r.client_id(), false, std::move(op)});
    return absl::OkStatus();
  }

  absl::Status Convert(const pb::HandOutRequest& r, Planned* p, std::vector<Operation>* ops) {
    p->is_goods = true;
    WL_RETURN_IF_ERROR(CheckClientId(r.client_id()));
    // The engine bounds the lines (kHandoutLinesMax); refuse a larger list
    // before copying it.
    if (r.lines().empty() || static_cast<size_t>(r.lines_size()) > kHandoutLinesMax) {
      return absl::InvalidArgumentError(absl::StrCat(
          "lines: ", r.lines_size(), " lines; 1..", kHandoutLinesMax, " allowed"));
    }
    HandoutOp op{r.from(), r.item(), {}, r.purpose(), r.override_reason()};
    op.lines.reserve(r.lines_size());
    for (const pb::HandoutLine& line : r.lines()) {
      op.lines.push_back({line.recipient(), line.quantity()});
    }
    ops->push_back({r.client_id(), false, std::move(op)});
    return absl::OkStatus();
  }

  absl::Status Convert(const pb::WriteOffGoodsRequest& r, Planned* p,
                       std::vector<Operation>* ops) {
    p->is_goods = true;
    WL_RETURN_IF_ERROR(CheckClientId(r.client_id()));
    ops->push_back({r.client_id(), false,
                    WriteOffOp{r.from(), r.to(), r.item(), r.quantity(), r.lot(), r.reason()}});
    return absl::OkStatus();
  }

  absl::Status Convert(const pb::SellGoodsRequest& r, Planned* p, std::vector<Operation>* ops) {
    p->makes_lot = true;
    p->is_goods = true;
    WL_RETURN_IF_ERROR(CheckClientId(r.client_id()));
    GoodsSaleOp op{r.from(),
                   r.buyer(),
                   r.item(),
                   r.quantity(),
                   r.to(),
                   r.asset().empty() ? kDefaultMoneyAsset : r.asset(),
                   r.proceeds(),
                   r.memo()};
    ops->push_back({r.client_id(), false, std::move(op)});
    return absl::OkStatus();
  }

  // ---- aid supervision ----

  absl::Status Convert(const pb::SetAidRuleRequest& r, Planned*, std::vector<Operation>* ops) {
    WL_RETURN_IF_ERROR(CheckClientId(r.client_id()));
    // Checked before the casts: the engine keeps both in a byte, where a
    // value beyond the enums could alias a valid one.
    if (r.type() != pb::DISBURSEMENT && r.type() != pb::VOUCHER_ISSUE && r.type() != pb::HANDOUT) {
      return absl::InvalidArgumentError(
          absl::StrCat("type: ", static_cast<int>(r.type()),
                       " is not DISBURSEMENT (5), VOUCHER_ISSUE (9) or HANDOUT (15)"));
    }
    if (r.period() < pb::DAY || r.period() > pb::YEAR) {
      return absl::InvalidArgumentError(
          absl::StrCat("period: ", static_cast<int>(r.period()),
                       " is not DAY (1), WEEK (2), MONTH (3), QUARTER (4) or YEAR (5)"));
    }
    ops->push_back({r.client_id(), false,
                    AidRuleOp{r.aid(), static_cast<EntryType>(r.type()), r.source(), r.asset(),
                              r.max_count(), static_cast<AidPeriod>(r.period()), r.memo()}});
    return absl::OkStatus();
  }

  // Engine messages name engine fields; say it in the caller's words.
  static absl::Status Rephrase(const Planned& p, bool from_donor_open, const absl::Status& s) {
    std::string msg(s.message());
    if (!p.recipient.empty() && s.code() == absl::StatusCode::kAlreadyExists &&
        absl::StrContains(msg, "open_account.account")) {
      return absl::AlreadyExistsError(
          absl::StrCat("id_number: this person is already registered as ", p.recipient));
    }
    if (from_donor_open) {
      absl::StrReplaceAll({{"open_account.account", "donor"}, {"open_account.name", "donor_name"},
                           {"open_account", "donor"}},
                          &msg);
      return absl::Status(s.code(), msg);
    }
    // The engine calls the requests' override_reason "<entry>.override".
    if (absl::StrContains(msg, ".override:")) {
      absl::StrReplaceAll({{"disbursement.override:", "disbursement.override_reason:"},
                           {"voucher_issue.override:", "voucher_issue.override_reason:"},
                           {"handout.override:", "handout.override_reason:"}},
                          &msg);
      return absl::Status(s.code(), msg);
    }
    return s;
  }

  const Shared* shared_;
  std::vector<Planned> planned_;
  std::vector<std::vector<Operation>> pending_;
};

// The request and response of a batch RPC live on one protobuf arena per
// call: parsing 1,000 operations then takes a few large blocks instead of
// several heap blocks per operation, and the call frees them all at once.
template <typename Request, typename Response>
class ArenaMessages final : public grpc::MessageAllocator<Request, Response> {
 public:
  grpc::MessageHolder<Request, Response>* AllocateMessages() override { return new Holder; }

 private:
  // A batch request of 1,000 donations is about 150 KiB parsed.
  static google::protobuf::ArenaOptions Options() {
    google::protobuf::ArenaOptions options;
    options.start_block_size = 16 * 1024;
    options.max_block_size = 256 * 1024;
    return options;
  }
  class Holder final : public grpc::MessageHolder<Request, Response> {
   public:
    Holder() : arena_(Options()) {
      this->set_request(google::protobuf::Arena::CreateMessage<Request>(&arena_));
      this->set_response(google::protobuf::Arena::CreateMessage<Response>(&arena_));
    }
    void Release() override { delete this; }

   private:
    google::protobuf::Arena arena_;
  };
};

// The unary paths the callback services share: reads answered on the gRPC
// thread, writes planned by a WritePlanner and answered from the sequencer's
// callback without blocking a gRPC thread, and batches of writes submitted
// as one engine call with a result per item.
class CallbackCalls {
 protected:
  explicit CallbackCalls(Shared* shared) : shared_(shared) {}

  template <typename Body>
  grpc::ServerUnaryReactor* Read(grpc::CallbackServerContext* ctx, const char* method,
                                 Access access, Body body) {
    UnaryCall call(shared_, ctx, method);
    if (!call.Authorize(ctx, access)) return call.reactor();
    call.Finish(body(call.role()));
    return call.reactor();
  }

  // A unary write: plans one request, submits it, and calls `fill` with the
  // plan and its WriteResult once it succeeded.
  // `then`, if given, runs after a successful write instead of finishing the
  // call; it gets a function that finishes it.
  using Finisher = std::function<void(const absl::Status&)>;
  template <typename Request, typename Fill>
  grpc::ServerUnaryReactor* Write(grpc::CallbackServerContext* ctx, const char* method,
                                  Access access, const Request& request, Fill fill,
                                  std::function<void(Finisher)> then = nullptr) {
    auto call = std::make_shared<UnaryCall>(shared_, ctx, method);
    if (!call->Authorize(ctx, access)) return call->reactor();
    auto planner = std::make_shared<WritePlanner>(shared_);
    planner->Add(request);
    std::vector<Operation> ops = planner->TakeOperations();
    if (ops.empty()) {
      call->Finish(planner->planned(0).error);
      return call->reactor();
    }
    shared_->ledger->SubmitAsync(
        std::move(ops), [call, planner, fill, then](std::vector<OpResult> results) {
          planner->Resolve(results);
          const WritePlanner::Planned& p = planner->planned(0);
          if (p.error.ok()) fill(p, p.result);
          if (p.error.ok() && then) {
            then([call](const absl::Status& s) { call->Finish(s); });
          } else {
            call->Finish(p.error);
          }
        });
    return call->reactor();
  }

  // A batch of 1..items_max writes (`field` names the repeated field): every
  // item is planned, the plans go to the engine in one call, and each item
  // gets a result with its own code and message in resp->results, in order;
  // `fill(index, plan, result)` completes the results of the items that
  // succeeded. The call itself fails only for a bad role or batch size.
  template <typename Item, typename Response, typename Fill>
  grpc::ServerUnaryReactor* Batch(grpc::CallbackServerContext* ctx, const char* method,
                                  Access access,
                                  const google::protobuf::RepeatedPtrField<Item>& items,
                                  const char* field, size_t items_max, Response* resp,
                                  Fill fill) {
    auto call = std::make_shared<UnaryCall>(shared_, ctx, method);
    if (!call->Authorize(ctx, access)) return call->reactor();
    if (items.empty() || static_cast<size_t>(items.size()) > items_max) {
      call->Finish(absl::InvalidArgumentError(absl::StrCat(
          field, ": ", items.size(), " ", field, "; 1..", items_max, " allowed")));
      return call->reactor();
    }
    auto planner = std::make_shared<WritePlanner>(shared_);
    for (const Item& item : items) planner->Add(item);
    shared_->ledger->SubmitAsync(
        planner->TakeOperations(), [call, planner, resp, fill](std::vector<OpResult> results) {
          planner->Resolve(results);
          for (size_t i = 0; i < planner->size(); ++i) {
            const WritePlanner::Planned& p = planner->planned(i);
            auto* out = resp->add_results();
            out->set_code(static_cast<int32_t>(p.error.code()));
            out->set_message(std::string(p.error.message()));
            if (p.error.ok()) fill(i, p, out);
          }
          call->Finish(absl::OkStatus());
        });
    return call->reactor();
  }

  Shared* shared_;
};

// A synchronous (blocking) call, for the services whose work blocks: checks
// the caller's role, runs `body` and logs the call once.
template <typename Body>
grpc::Status ServeBlocking(const Shared* shared, grpc::ServerContext* ctx, const char* method,
                           Access access, Body body) {
  const int64_t start = NowMicros();
  absl::StatusOr<Role> role = shared->auth.Authorize(AuthorizationOf(ctx), access);
  absl::Status s = role.ok() ? body() : role.status();
  shared->Log(method, role.ok() ? *role : Role::kNone, s.code(), start);
  return ToGrpc(s);
}

class LedgerService final : public pb::Ledger::CallbackService, private CallbackCalls {
 public:
  explicit LedgerService(Shared* shared) : CallbackCalls(shared) {
    SetMessageAllocatorFor_SubmitBatch(&batch_messages_);
  }

  // ---- writes ----

  grpc::ServerUnaryReactor* OpenAccount(grpc::CallbackServerContext* ctx,
                                        const pb::OpenAccountRequest* req,
                                        pb::WriteResult* resp) override {
    pb::BatchOperation op;
    *op.mutable_open_account() = *req;
    return Write(ctx, "OpenAccount", Access::kWrite, op,
                 [resp](const auto&, const pb::WriteResult& r) { *resp = r; });
  }
  grpc::ServerUnaryReactor* CloseAccount(grpc::CallbackServerContext* ctx,
                                         const pb::CloseAccountRequest* req,
                                         pb::WriteResult* resp) override {
    pb::BatchOperation op;
    *op.mutable_close_account() = *req;
    return Write(ctx, "CloseAccount", Access::kWrite, op,
                 [resp](const auto&, const pb::WriteResult& r) { *resp = r; });
  }
  grpc::ServerUnaryReactor* Donate(grpc::CallbackServerContext* ctx,
                                   const pb::DonateRequest* req,
                                   pb::DonateResponse* resp) override {
    pb::BatchOperation op;
    *op.mutable_donate() = *req;
    auto fill = [resp](const WritePlanner::Planned& p, const pb::WriteResult& r) {
      *resp->mutable_result() = r;
      resp->set_lot(r.seq());
      resp->set_trace_code(p.trace_code);
    };
    if (!req->wait_for_receipt()) return Write(ctx, "Donate", Access::kWrite, op, fill);
    // Answer once a checkpoint covers the donation (or the wait is over):
    // the receipt is a courtesy, the donation is recorded either way.
    const int64_t wait_ms = std::min(kReceiptWaitMaxMs, MillisUntil(ctx->deadline()) - 50);
    return Write(ctx, "Donate", Access::kWrite, op, fill, [this, resp, wait_ms](auto finish) {
      if (wait_ms <= 0) return finish(absl::OkStatus());
      const uint64_t seq = resp->result().seq();
      shared_->ledger->WhenCheckpointCovers(
          seq, wait_ms, [this, resp, seq, finish](absl::StatusOr<std::string> checkpoint) {
            if (checkpoint.ok()) {
              auto receipt = shared_->ledger->MakeReceipt(seq);
              if (receipt.ok()) resp->set_receipt(FormatReceipt(*receipt));
            }
            finish(absl::OkStatus());
          });
    });
  }
  grpc::ServerUnaryReactor* Allocate(grpc::CallbackServerContext* ctx,
                                     const pb::AllocateRequest* req,
                                     pb::WriteResult* resp) override {
    pb::BatchOperation op;
    *op.mutable_allocate() = *req;
    return Write(ctx, "Allocate", Access::kWrite, op,
                 [resp](const auto&, const pb::WriteResult& r) { *resp = r; });
  }
  grpc::ServerUnaryReactor* Disburse(grpc::CallbackServerContext* ctx,
                                     const pb::DisburseRequest* req,
                                     pb::WriteResult* resp) override {
    pb::BatchOperation op;
    *op.mutable_disburse() = *req;
    return Write(ctx, "Disburse", Access::kWrite, op,
                 [resp](const auto&, const pb::WriteResult& r) { *resp = r; });
  }
  grpc::ServerUnaryReactor* Correct(grpc::CallbackServerContext* ctx,
                                    const pb::CorrectRequest* req,
                                    pb::WriteResult* resp) override {
    pb::BatchOperation op;
    *op.mutable_correct() = *req;
    return Write(ctx, "Correct", Access::kWrite, op,
                 [resp](const auto&, const pb::WriteResult& r) { *resp = r; });
  }
  grpc::ServerUnaryReactor* RegisterRecipient(grpc::CallbackServerContext* ctx,
                                              const pb::RegisterRecipientRequest* req,
                                              pb::RegisterRecipientResponse* resp) override {
    pb::BatchOperation op;
    *op.mutable_register_recipient() = *req;
    return Write(ctx, "RegisterRecipient", Access::kWrite, op,
                 [resp](const WritePlanner::Planned& p, const pb::WriteResult& r) {
                   *resp->mutable_result() = r;
                   resp->set_recipient(p.recipient);
                 });
  }

  grpc::ServerUnaryReactor* SubmitBatch(grpc::CallbackServerContext* ctx,
                                        const pb::BatchRequest* req,
                                        pb::BatchResponse* resp) override {
    return Batch(ctx, "SubmitBatch", Access::kWrite, req->operations(), "operations",
                 kRpcBatchOpsMax, resp,
                 [](size_t, const WritePlanner::Planned& p, pb::BatchResult* out) {
                   *out->mutable_result() = p.result;
                   if (p.makes_lot) out->set_lot(p.result.seq());
                   out->set_trace_code(p.trace_code);
                   out->set_recipient(p.recipient);
                   out->set_voucher_code(p.voucher_code);
                   if (p.is_goods) out->set_moved(p.moved);
                 });
  }

  // ---- reads ----

  grpc::ServerUnaryReactor* GetHead(grpc::CallbackServerContext* ctx, const pb::GetHeadRequest*,
                                    pb::Head* resp) override {
    return Read(ctx, "GetHead", Access::kPublic, [&](Role) {
      LedgerHead head = shared_->ledger->Head();
      resp->set_seq(head.seq);
      resp->set_hash(reinterpret_cast<const char*>(head.hash.data()), head.hash.size());
      return absl::OkStatus();
    });
  }

  grpc::ServerUnaryReactor* GetEntry(grpc::CallbackServerContext* ctx,
                                     const pb::GetEntryRequest* req, pb::Entry* resp) override {
    return Read(ctx, "GetEntry", Access::kRead, [&](Role) -> absl::Status {
      WL_ASSIGN_OR_RETURN(StoredEntry e, shared_->ledger->ReadEntry(req->seq()));
      ToProto(e, resp);
      return absl::OkStatus();
    });
  }

  grpc::ServerUnaryReactor* GetAccount(grpc::CallbackServerContext* ctx,
                                       const pb::GetAccountRequest* req,
                                       pb::Account* resp) override {
    return Read(ctx, "GetAccount", Access::kRead, [&](Role) -> absl::Status {
      WL_ASSIGN_OR_RETURN(AccountInfo info, shared_->ledger->GetAccount(req->account()));
      ToProto(info, resp);
      return absl::OkStatus();
    });
  }

  grpc::ServerUnaryReactor* ListAccounts(grpc::CallbackServerContext* ctx,
                                         const pb::ListAccountsRequest* req,
                                         pb::AccountList* resp) override {
    return Read(ctx, "ListAccounts", Access::kRead, [&](Role) -> absl::Status {
      WL_RETURN_IF_ERROR(CheckPageLimit(req->limit()));
      std::optional<AccountKind> kind;
      if (req->kind() != pb::ACCOUNT_KIND_UNSPECIFIED) {
        if (!pb::AccountKind_IsValid(req->kind())) {
          return absl::InvalidArgumentError(
              absl::StrCat("kind: ", static_cast<int>(req->kind()), " is not an account kind"));
        }
        kind = static_cast<AccountKind>(req->kind());
      }
      uint64_t total = 0;
      for (std::string& id : shared_->ledger->ListAccounts(kind, req->offset(),
                                                           PageLimit(req->limit()), &total)) {
        resp->add_accounts(std::move(id));
      }
      resp->set_total_count(total);
      return absl::OkStatus();
    });
  }

  grpc::ServerUnaryReactor* GetStatement(grpc::CallbackServerContext* ctx,
                                         const pb::StatementRequest* req,
                                         pb::Statement* resp) override {
    return Read(ctx, "GetStatement", Access::kRead, [&](Role) -> absl::Status {
      int64_t to = req->to_time_us() == 0 ? INT64_MAX : req->to_time_us();
      WL_ASSIGN_OR_RETURN(StatementPage page,
                          shared_->ledger->Statement(req->account(), req->from_time_us(), to,
                                                     req->offset(), PageLimit(req->limit())));
      ToProto(page, resp);
      return absl::OkStatus();
    });
  }

  grpc::ServerUnaryReactor* GetFundSummary(grpc::CallbackServerContext* ctx,
                                           const pb::FundSummaryRequest* req,
                                           pb::FundSummary* resp) override {
    return Read(ctx, "GetFundSummary", Access::kPublic, [&](Role) -> absl::Status {
      WL_ASSIGN_OR_RETURN(AccountInfo info, shared_->ledger->GetAccount(req->account()));
      if (info.kind != AccountKind::kFund && info.kind != AccountKind::kProject) {
        // Do not confirm which other accounts exist to the public.
        return absl::NotFoundError(
            absl::StrCat("account: no fund or project '", req->account(), "'"));
      }
      ToFundSummary(info, resp);
      return absl::OkStatus();
    });
  }

  grpc::ServerUnaryReactor* ListFundSummaries(grpc::CallbackServerContext* ctx,
                                              const pb::ListFundSummariesRequest*,
                                              pb::FundSummaries* resp) override {
    return Read(ctx, "ListFundSummaries", Access::kPublic, [&](Role) -> absl::Status {
      for (AccountKind kind : {AccountKind::kFund, AccountKind::kProject}) {
        uint64_t total = 0;
        for (const std::string& id :
             shared_->ledger->ListAccounts(kind, 0, kPageItemsMax, &total)) {
          WL_ASSIGN_OR_RETURN(AccountInfo info, shared_->ledger->GetAccount(id));
          ToFundSummary(info, resp->add_funds());
        }
      }
      return absl::OkStatus();
    });
  }

  grpc::ServerUnaryReactor* TraceDonation(grpc::CallbackServerContext* ctx,
                                          const pb::TraceDonationRequest* req,
                                          pb::Trace* resp) override {
    return Read(ctx, "TraceDonation", Access::kRead, [&](Role) -> absl::Status {
      WL_ASSIGN_OR_RETURN(LotTrace trace, shared_->ledger->TraceLot(req->lot()));
      return TraceToProto(trace, /*public_view=*/false, resp);
    });
  }

  grpc::ServerUnaryReactor* TraceByCode(grpc::CallbackServerContext* ctx,
                                        const pb::TraceByCodeRequest* req,
                                        pb::Trace* resp) override {
    return Read(ctx, "TraceByCode", Access::kPublic, [&](Role) -> absl::Status {
      const std::string& code = req->trace_code();
      WL_RETURN_IF_ERROR(CheckTraceCode(code));
      WL_ASSIGN_OR_RETURN(uint64_t lot, shared_->ledger->FindLotByTraceHash(CodeHash(code)));
      WL_ASSIGN_OR_RETURN(LotTrace trace, shared_->ledger->TraceLot(lot));
      return TraceToProto(trace, /*public_view=*/true, resp);
    });
  }

  grpc::ServerUnaryReactor* TraceEntry(grpc::CallbackServerContext* ctx,
                                       const pb::TraceEntryRequest* req,
                                       pb::EntryTrace* resp) override {
    return Read(ctx, "TraceEntry", Access::kRead, [&](Role) -> absl::Status {
      WL_ASSIGN_OR_RETURN(EntryTracePage page,
                          shared_->ledger->TraceEntry(req->seq(), req->offset(),
                                                      PageLimit(req->limit())));
      ToProto(page, resp);
      return absl::OkStatus();
    });
  }

  grpc::ServerUnaryReactor* GetDonorStatement(grpc::CallbackServerContext* ctx,
                                              const pb::DonorStatementRequest* req,
                                              pb::DonorStatement* resp) override {
    return Read(ctx, "GetDonorStatement", Access::kRead, [&](Role) -> absl::Status {
      WL_ASSIGN_OR_RETURN(DonorStatementPage page,
                          shared_->ledger->DonorStatement(req->donor(), req->offset(),
                                                          PageLimit(req->limit())));
      resp->set_donor(page.donor);
      resp->set_total_lots(page.total_lots);
      resp->set_offset(page.offset);
      for (const LotTrace& t : page.lots) {
        WL_RETURN_IF_ERROR(TraceToProto(t, /*public_view=*/false, resp->add_lots()));
      }
      return absl::OkStatus();
    });
  }

  grpc::ServerUnaryReactor* GetRegistry(grpc::CallbackServerContext* ctx,
                                        const pb::GetRegistryRequest*,
                                        pb::Registry* resp) override {
    return Read(ctx, "GetRegistry", Access::kPublic, [&](Role) {
      for (const auto& [code, name] : shared_->registry.categories()) {
        pb::Code* c = resp->add_categories();
        c->set_code(code);
        c->set_name(name);
      }
      for (const auto& [code, name] : shared_->registry.communities()) {
        pb::Code* c = resp->add_communities();
        c->set_code(code);
        c->set_name(name);
      }
      return absl::OkStatus();
    });
  }

 private:
  // Public views hide anonymous donors and shop members, and show recipients
  // only by category and community: in hops, places, conversion places.
  absl::Status TraceToProto(const LotTrace& t, bool public_view, pb::Trace* out) const {
    const bool hide_donor = public_view && t.lot.anonymous;
    auto shown = [&](const std::string& account) -> std::string {
      if (hide_donor && account == t.lot.donor) return "anonymous";
      if (public_view && account.rfind("recipient/", 0) == 0) return "recipient";
      return account;
    };
    // Category and community of the recipients met, looked up once each.
    std::map<std::string, std::pair<std::string, std::string>> recipients;
    auto recipient = [&](const std::string& account)
        -> absl::StatusOr<const std::pair<std::string, std::string>*> {
      auto it = recipients.find(account);
      if (it == recipients.end()) {
        WL_ASSIGN_OR_RETURN(AccountInfo info, shared_->ledger->GetAccount(account));
        it = recipients.emplace(account, std::pair(info.category, info.community)).first;
      }
      return &it->second;
    };
    out->set_lot(t.lot.lot);
    out->set_donor(hide_donor ? "" : t.lot.donor);
    out->set_anonymous(t.lot.anonymous);
    out->set_to(t.lot.to);
    out->set_asset(t.lot.asset);
    out->set_amount(t.lot.amount);
    out->set_time_us(t.lot.time_us);
    if (!public_view) out->set_member(t.lot.member);
    out->set_order_id(t.lot.order_id);
    out->set_created_by(static_cast<pb::EntryType>(t.lot.created_by));
    out->set_grade(t.lot.grade);
    out->set_expires_us(t.lot.expires_us);
    out->set_value_asset(t.lot.value_asset);
    out->set_value(t.lot.value);
    for (const LotParent& parent : t.lot.parents) {
      pb::LotParent* q = out->add_parents();
      ToProto(parent, q);
      if (public_view && parent.anonymous) q->clear_donor();
    }
    out->set_parent_count(t.lot.parent_count);
    for (const TraceHop& h : t.hops) {
      pb::TraceHop* q = out->add_hops();
      q->set_seq(h.seq);
      q->set_time_us(h.time_us);
      q->set_type(static_cast<pb::EntryType>(h.type));
      q->set_from(shown(h.from));
      q->set_to(shown(h.to));
      q->set_amount(h.amount);
      q->set_order_id(h.order_id);
      // A hop to a person (a handout line, a disbursement, a voucher) says
      // which group the value reached; the engine fills these in.
      q->set_category(h.category);
      q->set_community(h.community);
    }
    auto places = [&](const std::vector<TracePlace>& in,
                      google::protobuf::RepeatedPtrField<pb::TracePlace>* to) -> absl::Status {
      for (const TracePlace& p : in) {
        pb::TracePlace* q = to->Add();
        q->set_account(shown(p.account));
        q->set_kind(static_cast<pb::AccountKind>(p.kind));
        q->set_amount(p.amount);
        if (p.kind == AccountKind::kRecipient) {
          WL_ASSIGN_OR_RETURN(auto group, recipient(p.account));
          q->set_category(group->first);
          q->set_community(group->second);
        }
      }
      return absl::OkStatus();
    };
    WL_RETURN_IF_ERROR(places(t.held, out->mutable_held()));
    WL_RETURN_IF_ERROR(places(t.reached, out->mutable_reached()));
    for (const LotConversion& c : t.conversions) {
      pb::LotConversion* q = out->add_conversions();
      q->set_seq(c.seq);
      q->set_type(static_cast<pb::EntryType>(c.type));
      q->set_asset(c.asset);
      q->set_lot_amount(c.lot_amount);
      q->set_consumed(c.consumed);
      q->set_share(c.share);
      for (const ConversionPlace& p : c.places) {
        pb::ConversionPlace* r = q->add_places();
        r->set_account(shown(p.account));
        r->set_kind(static_cast<pb::AccountKind>(p.kind));
        r->set_category(p.category);
        r->set_community(p.community);
        r->set_amount(p.amount);
        r->set_source_amount(p.source_amount);
        // Recipients come grouped (no account); should one come named, it
        // is shown like any other recipient place.
        if (p.kind == AccountKind::kRecipient && !p.account.empty() && p.category.empty()) {
          WL_ASSIGN_OR_RETURN(auto group, recipient(p.account));
          r->set_category(group->first);
          r->set_community(group->second);
        }
      }
    }
    return absl::OkStatus();
  }

  ArenaMessages<pb::BatchRequest, pb::BatchResponse> batch_messages_;
};

class TransparencyService final : public pb::Transparency::CallbackService,
                                  private CallbackCalls {
 public:
  explicit TransparencyService(Shared* shared) : CallbackCalls(shared) {}

  grpc::ServerUnaryReactor* GetVerifierKey(grpc::CallbackServerContext* ctx,
                                           const pb::GetVerifierKeyRequest*,
                                           pb::VerifierKey* resp) override {
    return Read(ctx, "GetVerifierKey", Access::kPublic, [&](Role) {
      resp->set_verifier_key(shared_->ledger->VerifierKey());
      resp->set_origin(shared_->options.checkpoint_origin);
      return absl::OkStatus();
    });
  }

  grpc::ServerUnaryReactor* GetCheckpoint(grpc::CallbackServerContext* ctx,
                                          const pb::GetCheckpointRequest* req,
                                          pb::SignedCheckpoint* resp) override {
    return Read(ctx, "GetCheckpoint", Access::kPublic, [&](Role) -> absl::Status {
      WL_ASSIGN_OR_RETURN(std::string note, req->tree_size() == 0
                                                ? shared_->ledger->LatestCheckpoint()
                                                : shared_->ledger->CheckpointAt(req->tree_size()));
      return FillCheckpoint(std::move(note), resp);
    });
  }

  grpc::ServerUnaryReactor* GetInclusionProof(grpc::CallbackServerContext* ctx,
                                              const pb::InclusionProofRequest* req,
                                              pb::InclusionProof* resp) override {
    return Read(ctx, "GetInclusionProof", Access::kPublic, [&](Role) -> absl::Status {
      WL_ASSIGN_OR_RETURN(const uint64_t size, SizeOrNewest(req->tree_size()));
      return FillInclusion(req->seq(), size, resp);
    });
  }

  grpc::ServerUnaryReactor* GetConsistencyProof(grpc::CallbackServerContext* ctx,
                                                const pb::ConsistencyProofRequest* req,
                                                pb::ConsistencyProof* resp) override {
    return Read(ctx, "GetConsistencyProof", Access::kPublic, [&](Role) -> absl::Status {
      WL_ASSIGN_OR_RETURN(const uint64_t size, SizeOrNewest(req->new_size()));
      WL_ASSIGN_OR_RETURN(std::vector<Hash> proof,
                          shared_->ledger->ConsistencyProof(req->old_size(), size));
      resp->set_old_size(req->old_size());
      resp->set_new_size(size);
      for (const Hash& h : proof) resp->add_hashes(HashBytes(h));
      return absl::OkStatus();
    });
  }

  grpc::ServerUnaryReactor* GetEntryProof(grpc::CallbackServerContext* ctx,
                                          const pb::EntryProofRequest* req,
                                          pb::EntryProof* resp) override {
    return Read(ctx, "GetEntryProof", Access::kRead, [&](Role) -> absl::Status {
      WL_ASSIGN_OR_RETURN(std::string note, shared_->ledger->LatestCheckpoint());
      WL_RETURN_IF_ERROR(FillCheckpoint(std::move(note), resp->mutable_checkpoint()));
      const uint64_t size = resp->checkpoint().tree_size();
      if (req->seq() > size) {
        return absl::FailedPreconditionError(absl::StrCat(
            "seq: entry ", req->seq(), " is not covered by a checkpoint yet (the newest covers ",
            size, " entries); retry shortly"));
      }
      WL_ASSIGN_OR_RETURN(StoredEntry entry, shared_->ledger->ReadEntry(req->seq()));
      ToProto(entry, resp->mutable_entry());
      return FillInclusion(req->seq(), size, resp->mutable_proof());
    });
  }

  grpc::ServerUnaryReactor* GetReceipt(grpc::CallbackServerContext* ctx,
                                       const pb::GetReceiptRequest* req,
                                       pb::Receipt* resp) override {
    auto call = std::make_shared<UnaryCall>(shared_, ctx, "GetReceipt");
    const bool by_code = !req->trace_code().empty();
    if (by_code == (req->seq() != 0)) {
      call->Finish(absl::InvalidArgumentError("trace_code, seq: give exactly one"));
      return call->reactor();
    }
    if (!call->Authorize(ctx, by_code ? Access::kPublic : Access::kRead)) return call->reactor();
    if (req->wait_ms() < 0 || req->wait_ms() > kReceiptWaitMaxMs) {
      call->Finish(absl::InvalidArgumentError(
          absl::StrCat("wait_ms: must be 0..", kReceiptWaitMaxMs, ", got ", req->wait_ms())));
      return call->reactor();
    }
    uint64_t seq = req->seq();
    if (by_code) {
      absl::Status well_formed = CheckTraceCode(req->trace_code());
      auto lot = well_formed.ok()
                     ? shared_->ledger->FindLotByTraceHash(CodeHash(req->trace_code()))
                     : absl::StatusOr<uint64_t>(well_formed);
      if (!lot.ok()) {
        call->Finish(lot.status());
        return call->reactor();
      }
      seq = *lot;
    } else if (seq > shared_->ledger->Head().seq) {
      call->Finish(absl::NotFoundError(absl::StrCat("seq: entry ", seq, " not found")));
      return call->reactor();
    }
    auto answer = [this, call, resp, seq](absl::StatusOr<std::string> checkpoint) {
      if (!checkpoint.ok() && !absl::IsDeadlineExceeded(checkpoint.status())) {
        return call->Finish(checkpoint.status());
      }
      absl::StatusOr<Receipt> receipt = shared_->ledger->MakeReceipt(seq);
      if (!receipt.ok()) return call->Finish(receipt.status());
      auto parsed = ParseCheckpointUnverified(receipt->checkpoint);
      if (!parsed.ok()) return call->Finish(parsed.status());
      resp->set_text(FormatReceipt(*receipt));
      resp->set_seq(seq);
      resp->set_tree_size(parsed->size);
      call->Finish(absl::OkStatus());
    };
    if (req->wait_ms() == 0) {
      answer(absl::DeadlineExceededError("not waiting"));
    } else {
      shared_->ledger->WhenCheckpointCovers(seq, req->wait_ms(), answer);
    }
    return call->reactor();
  }

 private:
  static std::string HashBytes(const Hash& h) {
    return std::string(reinterpret_cast<const char*>(h.data()), h.size());
  }

  // The newest checkpoint's parsed body.
  // `size`, or the newest checkpoint's size when it is 0.
  absl::StatusOr<uint64_t> SizeOrNewest(uint64_t size) const {
    if (size != 0) return size;
    WL_ASSIGN_OR_RETURN(std::string note, shared_->ledger->LatestCheckpoint());
    WL_ASSIGN_OR_RETURN(Checkpoint newest, ParseCheckpointUnverified(note));
    return newest.size;
  }

  static absl::Status FillCheckpoint(std::string note, pb::SignedCheckpoint* out) {
    WL_ASSIGN_OR_RETURN(Checkpoint checkpoint, ParseCheckpointUnverified(note));
    out->set_tree_size(checkpoint.size);
    out->set_root_hash(HashBytes(checkpoint.root));
    out->set_note(std::move(note));
    return absl::OkStatus();
  }

  absl::Status FillInclusion(uint64_t seq, uint64_t size, pb::InclusionProof* out) const {
    WL_ASSIGN_OR_RETURN(std::vector<Hash> proof, shared_->ledger->InclusionProof(seq, size));
    WL_ASSIGN_OR_RETURN(StoredEntry entry, shared_->ledger->ReadEntry(seq));
    out->set_seq(seq);
    out->set_leaf_index(seq - 1);
    out->set_tree_size(size);
    out->set_leaf_hash(HashBytes(merkle::LeafHash(entry.bytes)));
    for (const Hash& h : proof) out->add_hashes(HashBytes(h));
    return absl::OkStatus();
  }
};

class ExportService final : public pb::Export::Service {
 public:
  explicit ExportService(Shared* shared) : shared_(shared) {}

  grpc::Status ListEntries(grpc::ServerContext* ctx, const pb::ListEntriesRequest* req,
                           grpc::ServerWriter<pb::Entry>* writer) override {
    return ServeBlocking(shared_, ctx, "ListEntries", Access::kExport, [&] {
      uint64_t from = req->from_seq() == 0 ? 1 : req->from_seq();
      uint64_t head = shared_->ledger->Head().seq;
      uint64_t last = head;
      if (req->count_max() != 0 && req->count_max() - 1 < head - std::min(head, from)) {
        last = from + req->count_max() - 1;
      }
      return Stream(ctx, writer, from, last);
    });
  }

  grpc::Status TailEntries(grpc::ServerContext* ctx, const pb::TailEntriesRequest* req,
                           grpc::ServerWriter<pb::Entry>* writer) override {
    return ServeBlocking(shared_, ctx, "TailEntries", Access::kExport, [&] {
      uint64_t next = req->from_seq() == 0 ? shared_->ledger->Head().seq + 1 : req->from_seq();
      while (true) {
        if (ctx->IsCancelled()) return absl::CancelledError("tail: cancelled by the caller");
        if (shared_->shutting_down.load()) {
          return absl::UnavailableError("tail: the server is shutting down");
        }
        uint64_t head = shared_->ledger->Head().seq;
        if (head >= next) {
          WL_RETURN_IF_ERROR(Stream(ctx, writer, next, head));
          next = head + 1;
        } else {
          shared_->ledger->WaitForSeq(next, kTailPollMs);
        }
      }
    });
  }

 private:
  absl::Status Stream(grpc::ServerContext* ctx, grpc::ServerWriter<pb::Entry>* writer,
                      uint64_t from, uint64_t last) {
    while (from <= last) {
      if (ctx->IsCancelled()) return absl::CancelledError("export: cancelled by the caller");
      uint64_t count = std::min(kExportChunkEntries, last - from + 1);
      WL_ASSIGN_OR_RETURN(std::vector<StoredEntry> entries,
                          shared_->ledger->ReadEntries(from, count));
      if (entries.empty()) break;
      for (const StoredEntry& e : entries) {
        pb::Entry msg;
        ToProto(e, &msg);
        if (!writer->Write(msg)) return absl::CancelledError("export: the caller went away");
      }
      from += entries.size();
    }
    return absl::OkStatus();
  }

  Shared* shared_;
};

class AdminService final : public pb::Admin::Service {
 public:
  explicit AdminService(Shared* shared) : shared_(shared) {}

  grpc::Status Backup(grpc::ServerContext* ctx, const pb::BackupRequest* req,
                      pb::BackupResponse* resp) override {
    return ServeBlocking(shared_, ctx, "Backup", Access::kAdmin,
                         [&] { return DoBackup(req->dir(), resp); });
  }

 private:
  absl::Status DoBackup(const std::string& dir, pb::BackupResponse* resp) {
    if (dir.empty()) return absl::InvalidArgumentError("dir: required");
    std::error_code ec;
    if (std::filesystem::exists(dir, ec)) {
      return absl::FailedPreconditionError(absl::StrCat("dir: '", dir, "' already exists"));
    }
    WL_ASSIGN_OR_RETURN(uint64_t seq, shared_->ledger->Backup(dir));
    resp->set_dir(dir);
    resp->set_seq(seq);
    return absl::OkStatus();
  }

  Shared* shared_;
};

class CheckoutService final : public pb::Checkout::CallbackService, private CallbackCalls {
 public:
  explicit CheckoutService(Shared* shared) : CallbackCalls(shared) {
    SetMessageAllocatorFor_SubmitCheckoutBatch(&batch_messages_);
  }

  grpc::ServerUnaryReactor* RecordPurchase(grpc::CallbackServerContext* ctx,
                                           const pb::PurchaseRequest* req,
                                           pb::PurchaseResult* resp) override {
    return Write(ctx, "RecordPurchase", Access::kCheckout, *req,
                 [this, resp](const WritePlanner::Planned& p, const pb::WriteResult&) {
                   FillPurchase(p, resp);
                 });
  }

  grpc::ServerUnaryReactor* RecordRefund(grpc::CallbackServerContext* ctx,
                                         const pb::RefundRequest* req,
                                         pb::RefundResult* resp) override {
    return Write(ctx, "RecordRefund", Access::kCheckout, *req,
                 [resp](const WritePlanner::Planned& p, const pb::WriteResult&) {
                   FillRefund(p, resp);
                 });
  }

  grpc::ServerUnaryReactor* RedeemVoucher(grpc::CallbackServerContext* ctx,
                                          const pb::RedeemRequest* req,
                                          pb::RedemptionResult* resp) override {
    return Write(ctx, "RedeemVoucher", Access::kCheckout, *req,
                 [resp](const WritePlanner::Planned& p, const pb::WriteResult&) {
                   FillRedemption(p, resp);
                 });
  }

  grpc::ServerUnaryReactor* SubmitCheckoutBatch(grpc::CallbackServerContext* ctx,
                                                const pb::CheckoutBatchRequest* req,
                                                pb::CheckoutBatchResponse* resp) override {
    return Batch(ctx, "SubmitCheckoutBatch", Access::kCheckout, req->items(), "items",
                 kCheckoutBatchItemsMax, resp,
                 [this, req](size_t i, const WritePlanner::Planned& p,
                             pb::CheckoutItemResult* out) {
                   switch (req->items(static_cast<int>(i)).item_case()) {
                     case pb::CheckoutItem::kPurchase:
                       return FillPurchase(p, out->mutable_purchase());
                     case pb::CheckoutItem::kRefund: return FillRefund(p, out->mutable_refund());
                     case pb::CheckoutItem::kRedeem:
                       return FillRedemption(p, out->mutable_redemption());
                     case pb::CheckoutItem::ITEM_NOT_SET: return;  // failed: not filled
                   }
                 });
  }

  grpc::ServerUnaryReactor* GetStoreSettlement(grpc::CallbackServerContext* ctx,
                                               const pb::SettlementRequest* req,
                                               pb::Settlement* resp) override {
    return Read(ctx, "GetStoreSettlement", Access::kCheckoutRead, [&](Role) -> absl::Status {
      const int64_t to = req->to_time_us() == 0 ? shared_->ClockMicros() : req->to_time_us();
      WL_ASSIGN_OR_RETURN(std::vector<StoreSettlement> rows,
                          shared_->ledger->Settlement(req->store(), req->from_time_us(), to));
      resp->set_from_time_us(req->from_time_us());
      resp->set_to_time_us(to);
      for (const StoreSettlement& row : rows) ToProto(row, resp->add_stores());
      return absl::OkStatus();
    });
  }

 private:
  void FillPurchase(const WritePlanner::Planned& p, pb::PurchaseResult* out) const {
    *out->mutable_result() = p.result;
    out->set_contribution(p.moved);
    if (p.moved > 0) out->set_lot(p.result.seq());
    out->set_rate_bp(shared_->options.contribution_rate_bp);
    out->set_trace_code(p.trace_code);
  }
  static void FillRefund(const WritePlanner::Planned& p, pb::RefundResult* out) {
    *out->mutable_result() = p.result;
    out->set_reversal(p.moved);
    out->set_covered_by_fund(p.covered_by_fund);
  }
  static void FillRedemption(const WritePlanner::Planned& p, pb::RedemptionResult* out) {
    *out->mutable_result() = p.result;
    out->set_voucher(p.voucher);
    out->set_amount(p.moved);
    out->set_remaining(p.voucher_balance_after);
  }

  ArenaMessages<pb::CheckoutBatchRequest, pb::CheckoutBatchResponse> batch_messages_;
};

// The expiry sweep blocks until its entries are durable, so
// SweepExpiredVouchers is a synchronous method; the others use the callback
// paths like the Ledger service.
using VouchersServiceBase = pb::Vouchers::WithCallbackMethod_IssueVoucher<
    pb::Vouchers::WithCallbackMethod_VoidVoucher<pb::Vouchers::WithCallbackMethod_GetVoucher<
        pb::Vouchers::WithCallbackMethod_GetVoucherReport<pb::Vouchers::Service>>>>;

class VouchersService final : public VouchersServiceBase, private CallbackCalls {
 public:
  explicit VouchersService(Shared* shared) : CallbackCalls(shared) {}

  grpc::ServerUnaryReactor* IssueVoucher(grpc::CallbackServerContext* ctx,
                                         const pb::IssueVoucherRequest* req,
                                         pb::IssueVoucherResponse* resp) override {
    return Write(ctx, "IssueVoucher", Access::kWrite, *req,
                 [resp](const WritePlanner::Planned& p, const pb::WriteResult& r) {
                   *resp->mutable_result() = r;
                   resp->set_voucher(r.seq());
                   resp->set_account(VoucherAccountId(r.seq()));
                   resp->set_code(p.voucher_code);
                 });
  }

  grpc::ServerUnaryReactor* VoidVoucher(grpc::CallbackServerContext* ctx,
                                        const pb::VoidVoucherRequest* req,
                                        pb::WriteResult* resp) override {
    return Write(ctx, "VoidVoucher", Access::kWrite, *req,
                 [resp](const auto&, const pb::WriteResult& r) { *resp = r; });
  }

  grpc::Status SweepExpiredVouchers(grpc::ServerContext* ctx,
                                    const pb::SweepVouchersRequest* req,
                                    pb::SweepVouchersResponse* resp) override {
    return ServeBlocking(shared_, ctx, "SweepExpiredVouchers", Access::kWrite, [&] {
      if (req->max() > kSweepVouchersMax) {
        return absl::InvalidArgumentError(absl::StrCat(
            "max: ", req->max(), " vouchers; at most ", kSweepVouchersMax, " per call"));
      }
      return SweepVouchers(*shared_, req->max() == 0 ? kSweepVouchersMax : req->max(), resp);
    });
  }

  grpc::ServerUnaryReactor* GetVoucher(grpc::CallbackServerContext* ctx,
                                       const pb::GetVoucherRequest* req,
                                       pb::Voucher* resp) override {
    // The checkout looks vouchers up by the code the recipient shows; by
    // number only the office and the auditor.
    const bool by_code = req->key_case() == pb::GetVoucherRequest::kCode;
    return Read(ctx, "GetVoucher", by_code ? Access::kCheckoutRead : Access::kRead,
                [&](Role role) -> absl::Status {
                  absl::StatusOr<VoucherInfo> info;
                  switch (req->key_case()) {
                    case pb::GetVoucherRequest::kVoucher:
                      info = shared_->ledger->GetVoucher(req->voucher());
                      break;
                    case pb::GetVoucherRequest::kCode: {
                      WL_ASSIGN_OR_RETURN(std::string code, RequestVoucherCode(req->code()));
                      info = shared_->ledger->FindVoucherByCodeHash(CodeHash(code));
                      break;
                    }
                    case pb::GetVoucherRequest::KEY_NOT_SET:
                      return absl::InvalidArgumentError("voucher, code: give one");
                  }
                  WL_RETURN_IF_ERROR(info.status());
                  ToProto(*info, resp);
                  // A till needs what a voucher holds, not whose it is.
                  if (role == Role::kMall) resp->clear_recipient();
                  return absl::OkStatus();
                });
  }

  grpc::ServerUnaryReactor* GetVoucherReport(grpc::CallbackServerContext* ctx,
                                             const pb::VoucherReportRequest*,
                                             pb::VoucherReport* resp) override {
    return Read(ctx, "GetVoucherReport", Access::kRead, [&](Role) -> absl::Status {
      WL_ASSIGN_OR_RETURN(VoucherReport report, shared_->ledger->GetVoucherReport());
      ToProto(report, resp);
      return absl::OkStatus();
    });
  }

  // Ends up to `max` expired vouchers that still hold value (blocking until
  // the entries are durable) and lists each one's result in `resp`.
  static absl::Status SweepVouchers(const Shared& shared, size_t max,
                                    pb::SweepVouchersResponse* resp) {
    WL_ASSIGN_OR_RETURN(auto expired, shared.ledger->ExpireDueVouchers(max));
    for (const auto& [account, r] : expired) {
      pb::SweepVouchersResponse::Expired* out = resp->add_expired();
      out->set_voucher(VoucherSeqFromAccountId(account));
      out->set_code(static_cast<int32_t>(r.status.code()));
      out->set_message(std::string(r.status.message()));
      if (!r.status.ok()) continue;
      ToProto(r, out->mutable_result());
      out->set_returned(r.moved);
    }
    return absl::OkStatus();
  }
};

// Goods: the catalogue (public reads) and the office's goods writes, each
// planned and answered like the Ledger service's writes.
class GoodsService final : public pb::Goods::CallbackService, private CallbackCalls {
 public:
  explicit GoodsService(Shared* shared) : CallbackCalls(shared) {}

  grpc::ServerUnaryReactor* DefineItem(grpc::CallbackServerContext* ctx,
                                       const pb::DefineItemRequest* req,
                                       pb::WriteResult* resp) override {
    return Write(ctx, "DefineItem", Access::kWrite, *req,
                 [resp](const auto&, const pb::WriteResult& r) { *resp = r; });
  }

  grpc::ServerUnaryReactor* ListItems(grpc::CallbackServerContext* ctx,
                                      const pb::ListItemsRequest*, pb::Items* resp) override {
    return Read(ctx, "ListItems", Access::kPublic, [&](Role) -> absl::Status {
      WL_ASSIGN_OR_RETURN(std::vector<ItemInfo> items, shared_->ledger->ListItems());
      for (const ItemInfo& item : items) ToProto(item, resp->add_items());
      return absl::OkStatus();
    });
  }

  grpc::ServerUnaryReactor* GetItem(grpc::CallbackServerContext* ctx,
                                    const pb::GetItemRequest* req, pb::Item* resp) override {
    return Read(ctx, "GetItem", Access::kPublic, [&](Role) -> absl::Status {
      WL_ASSIGN_OR_RETURN(ItemInfo item, shared_->ledger->GetItem(req->item()));
      ToProto(item, resp);
      return absl::OkStatus();
    });
  }

  grpc::ServerUnaryReactor* GiveGoods(grpc::CallbackServerContext* ctx,
                                      const pb::GiveGoodsRequest* req,
                                      pb::GiveGoodsResponse* resp) override {
    return Write(ctx, "GiveGoods", Access::kWrite, *req,
                 [resp](const WritePlanner::Planned& p, const pb::WriteResult& r) {
                   *resp->mutable_result() = r;
                   resp->set_lot(r.seq());
                   resp->set_trace_code(p.trace_code);
                 });
  }

  grpc::ServerUnaryReactor* BuyGoods(grpc::CallbackServerContext* ctx,
                                     const pb::BuyGoodsRequest* req,
                                     pb::BuyGoodsResponse* resp) override {
    return Write(ctx, "BuyGoods", Access::kWrite, *req,
                 [resp](const WritePlanner::Planned& p, const pb::WriteResult& r) {
                   *resp->mutable_result() = r;
                   resp->set_lot(r.seq());
                   resp->set_quantity(p.moved);
                 });
  }

  grpc::ServerUnaryReactor* HandOut(grpc::CallbackServerContext* ctx,
                                    const pb::HandOutRequest* req,
                                    pb::HandOutResponse* resp) override {
    return Write(ctx, "HandOut", Access::kWrite, *req,
                 [resp](const WritePlanner::Planned& p, const pb::WriteResult& r) {
                   *resp->mutable_result() = r;
                   resp->set_quantity(p.moved);
                 });
  }

  grpc::ServerUnaryReactor* WriteOffGoods(grpc::CallbackServerContext* ctx,
                                          const pb::WriteOffGoodsRequest* req,
                                          pb::WriteOffGoodsResponse* resp) override {
    return Write(ctx, "WriteOffGoods", Access::kWrite, *req,
                 [resp](const WritePlanner::Planned& p, const pb::WriteResult& r) {
                   *resp->mutable_result() = r;
                   resp->set_quantity(p.moved);
                 });
  }

  grpc::ServerUnaryReactor* SellGoods(grpc::CallbackServerContext* ctx,
                                      const pb::SellGoodsRequest* req,
                                      pb::SellGoodsResponse* resp) override {
    return Write(ctx, "SellGoods", Access::kWrite, *req,
                 [resp](const WritePlanner::Planned& p, const pb::WriteResult& r) {
                   *resp->mutable_result() = r;
                   resp->set_lot(r.seq());
                   resp->set_proceeds(p.moved);
                 });
  }
};

// Aid supervision: rules are written like the office's other writes; the
// office's report and the rules are read by the office and the auditor, the
// public report by anyone.
class AidService final : public pb::Aid::CallbackService, private CallbackCalls {
 public:
  explicit AidService(Shared* shared) : CallbackCalls(shared) {}

  grpc::ServerUnaryReactor* SetAidRule(grpc::CallbackServerContext* ctx,
                                       const pb::SetAidRuleRequest* req,
                                       pb::WriteResult* resp) override {
    return Write(ctx, "SetAidRule", Access::kWrite, *req,
                 [resp](const auto&, const pb::WriteResult& r) { *resp = r; });
  }

  grpc::ServerUnaryReactor* ListAidRules(grpc::CallbackServerContext* ctx,
                                         const pb::ListAidRulesRequest*,
                                         pb::AidRules* resp) override {
    return Read(ctx, "ListAidRules", Access::kRead, [&](Role) -> absl::Status {
      WL_ASSIGN_OR_RETURN(std::vector<AidRuleInfo> rules, shared_->ledger->ListAidRules());
      for (const AidRuleInfo& rule : rules) ToProto(rule, resp->add_rules());
      return absl::OkStatus();
    });
  }

  grpc::ServerUnaryReactor* GetAidReport(grpc::CallbackServerContext* ctx,
                                         const pb::AidReportRequest* req,
                                         pb::AidReport* resp) override {
    // Who received aid, even by category and community, is sensitive
    // (PIPL): the office view needs a reader's token; the public view shows
    // only cells of enough people.
    const Access access = req->public_view() ? Access::kPublic : Access::kRead;
    return Read(ctx, "GetAidReport", access, [&](Role) -> absl::Status {
      if (req->from_time_us() < 0) {
        return absl::InvalidArgumentError(
            absl::StrCat("from_time_us: ", req->from_time_us(), " is negative"));
      }
      if (req->to_time_us() < 0) {
        return absl::InvalidArgumentError(
            absl::StrCat("to_time_us: ", req->to_time_us(), " is negative (0 means now)"));
      }
      const int64_t to = req->to_time_us() == 0 ? shared_->ClockMicros() : req->to_time_us();
      WL_ASSIGN_OR_RETURN(AidReport report, shared_->ledger->GetAidReport(req->from_time_us(), to,
                                                                          req->public_view()));
      ToProto(report, resp);
      return absl::OkStatus();
    });
  }
};

// The background expiry sweep: every `interval_ms` (on the real clock; the
// vouchers' expiry is judged on the ledger's), one sweep of at most
// kSweepVouchersMax vouchers, logged when it ended any. A longer backlog
// clears over the following sweeps.
//
// Thread contract: constructed and destroyed by one thread; the destructor
// stops the sweep (letting a running one finish) and joins its thread.
class VoucherSweeper {
 public:
  VoucherSweeper(const Shared* shared, int64_t interval_ms)
      : shared_(shared), interval_ms_(interval_ms), thread_([this] { Run(); }) {}
  ~VoucherSweeper() {
    {
      Monitor::Lock lock(&mu_);
      stop_ = true;
    }
    thread_.join();
  }
  VoucherSweeper(const VoucherSweeper&) = delete;
  VoucherSweeper& operator=(const VoucherSweeper&) = delete;

 private:
  void Run() {
    while (!StoppedWithinInterval()) SweepOnce();
  }

  // Waits one interval; returns whether the sweeper is being stopped.
  bool StoppedWithinInterval() {
    Monitor::Lock lock(&mu_);
    return lock.AwaitWithTimeout([this] { return stop_; }, absl::Milliseconds(interval_ms_));
  }

  void SweepOnce() const {
    const int64_t start = NowMicros();
    pb::SweepVouchersResponse swept;
    absl::Status s = VouchersService::SweepVouchers(*shared_, kSweepVouchersMax, &swept);
    if (s.ok() && swept.expired().empty()) return;
    size_t failed = 0;
    int64_t returned = 0;
    for (const auto& e : swept.expired()) {
      if (e.code() != grpc::OK) ++failed;
      returned += e.returned();
    }
    shared_->LogLine(absl::StrCat(
        "{\"sweep\":\"vouchers\",\"code\":\"", CodeName(s.code()),
        "\",\"expired\":", swept.expired_size() - failed, ",\"failed\":", failed,
        ",\"returned\":", returned, ",\"latency_us\":", NowMicros() - start, "}"));
  }

  const Shared* shared_;
  const int64_t interval_ms_;
  Monitor mu_;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;  // last: starts once everything above is initialised
};

}  // namespace

class Server::Impl {
 public:
  absl::Status Start(ServerOptions options) {
    shared_.options = std::move(options);
    const ServerOptions& o = shared_.options;
    if (!o.log) shared_.stderr_log = std::make_unique<LogWriter>(STDERR_FILENO);
    if (o.data_dir.empty()) return absl::InvalidArgumentError("data_dir: required");
    if (o.dev && !IsLoopbackListen(o.listen)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "listen: --dev serves only loopback addresses (127.0.0.1, localhost, [::1]), not '",
          o.listen, "'"));
    }
    if (o.tls_cert.empty() != o.tls_key.empty()) {
      return absl::InvalidArgumentError("tls_cert, tls_key: give both or neither");
    }
    if (!o.tls_client_ca.empty() && o.tls_cert.empty()) {
      return absl::InvalidArgumentError("tls_client_ca: needs tls_cert and tls_key");
    }
    if (o.contribution_rate_bp > kRateBpMax) {
      return absl::InvalidArgumentError(absl::StrCat("contribution_rate_bp: ",
                                                     o.contribution_rate_bp,
                                                     " basis points; at most ", kRateBpMax));
    }
    if (o.charity_fund.empty()) return absl::InvalidArgumentError("charity_fund: required");
    if (o.voucher_sweep_ms < 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "voucher_sweep_ms: ", o.voucher_sweep_ms, " is negative (0 turns the sweep off)"));
    }
    if (o.dev) {
      shared_.auth = Authenticator::Dev();
    } else {
      if (o.auth_file.empty()) {
        return absl::InvalidArgumentError("auth_file: required unless --dev");
      }
      WL_ASSIGN_OR_RETURN(shared_.auth, Authenticator::FromFile(o.auth_file));
    }
    if (!o.registry_file.empty()) {
      WL_ASSIGN_OR_RETURN(shared_.registry, Registry::FromFile(o.registry_file));
    }
    std::error_code ec;
    std::filesystem::create_directories(o.data_dir, ec);
    if (ec) return absl::UnavailableError(absl::StrCat("data_dir: ", ec.message()));
    std::string key_file = o.key_file.empty() ? o.data_dir + "/keys/pseudonym.key" : o.key_file;
    WL_ASSIGN_OR_RETURN(const std::string key, LoadOrCreateKey(key_file));
    shared_.key.emplace(key);
    const std::string signer_file = o.checkpoint_key_file.empty()
                                        ? o.data_dir + "/keys/checkpoint.key"
                                        : o.checkpoint_key_file;
    WL_ASSIGN_OR_RETURN(NoteSigner signer,
                        NoteSigner::LoadOrCreate(signer_file, o.checkpoint_origin));
    verifier_key_ = signer.VerifierKey();
    // The verifier key beside the signing key, for people and scripts.
    const std::string vkey_file =
        std::filesystem::path(signer_file).replace_extension(".vkey").string();
    WL_RETURN_IF_ERROR(WritePublicFile(vkey_file, verifier_key_ + "\n"));
    LedgerOptions ledger_options;
    ledger_options.path = o.data_dir + "/db";
    ledger_options.clock = o.clock;
    ledger_options.checkpoint_signer = std::make_shared<const NoteSigner>(std::move(signer));
    ledger_options.checkpoint_origin = o.checkpoint_origin;
    ledger_options.checkpoint_every_entries = o.checkpoint_every_entries;
    ledger_options.checkpoint_every_ms = o.checkpoint_every_ms;
    WL_ASSIGN_OR_RETURN(shared_.ledger, Ledger::Open(ledger_options));

    std::shared_ptr<grpc::ServerCredentials> creds = grpc::InsecureServerCredentials();
    if (!o.tls_cert.empty()) {
      WL_ASSIGN_OR_RETURN(std::string cert, ReadFile("tls_cert", o.tls_cert));
      WL_ASSIGN_OR_RETURN(std::string key, ReadFile("tls_key", o.tls_key));
      grpc::SslServerCredentialsOptions ssl;
      ssl.pem_key_cert_pairs.push_back({key, cert});
      if (!o.tls_client_ca.empty()) {
        WL_ASSIGN_OR_RETURN(ssl.pem_root_certs, ReadFile("tls_client_ca", o.tls_client_ca));
        ssl.client_certificate_request =
            GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY;
      }
      creds = grpc::SslServerCredentials(ssl);
    }

    grpc::EnableDefaultHealthCheckService(true);
    grpc::reflection::InitProtoReflectionServerBuilderPlugin();
    ledger_service_ = std::make_unique<LedgerService>(&shared_);
    export_service_ = std::make_unique<ExportService>(&shared_);
    admin_service_ = std::make_unique<AdminService>(&shared_);
    transparency_service_ = std::make_unique<TransparencyService>(&shared_);
    checkout_service_ = std::make_unique<CheckoutService>(&shared_);
    vouchers_service_ = std::make_unique<VouchersService>(&shared_);
    goods_service_ = std::make_unique<GoodsService>(&shared_);
    aid_service_ = std::make_unique<AidService>(&shared_);
    grpc::ServerBuilder builder;
    builder.AddListeningPort(o.listen, creds, &port_);
    builder.SetMaxReceiveMessageSize(kMessageBytesMax);
    builder.SetMaxSendMessageSize(kMessageBytesMax);
    builder.RegisterService(ledger_service_.get());
    builder.RegisterService(export_service_.get());
    builder.RegisterService(admin_service_.get());
    builder.RegisterService(transparency_service_.get());
    builder.RegisterService(checkout_service_.get());
    builder.RegisterService(vouchers_service_.get());
    builder.RegisterService(goods_service_.get());
    builder.RegisterService(aid_service_.get());
    server_ = builder.BuildAndStart();
    if (!server_ || port_ == 0) {
      return absl::UnavailableError(absl::StrCat("listen: cannot bind ", o.listen));
    }
    if (o.voucher_sweep_ms > 0) {
      sweeper_ = std::make_unique<VoucherSweeper>(&shared_, o.voucher_sweep_ms);
    }
    return absl::OkStatus();
  }

  void Shutdown() {
    if (stopped_) return;
    stopped_ = true;
    shared_.shutting_down.store(true);
    sweeper_.reset();  // lets a running sweep commit, then ends the thread
    if (server_) {
      // In-flight calls get a few seconds to finish; queued writes complete
      // because the ledger's sequencer is still running.
      server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
      server_->Wait();
    }
    shared_.ledger.reset();  // drains the write queue, closes the database
    FlushLog();
  }

  void FlushLog() {
    if (shared_.stderr_log) shared_.stderr_log->Flush();
  }
  int port() const { return port_; }
  Ledger& ledger() { return *shared_.ledger; }
  const std::string& verifier_key() const { return verifier_key_; }

 private:
  // Writes a file anyone may read (write to a temporary name, then rename).
  static absl::Status WritePublicFile(const std::string& path, const std::string& data) {
    const std::string tmp = path + ".tmp";
    FILE* f = std::fopen(tmp.c_str(), "wb");
    if (!f) return absl::UnavailableError(absl::StrCat("cannot write ", tmp));
    const bool written = std::fwrite(data.data(), 1, data.size(), f) == data.size();
    if (std::fclose(f) != 0 || !written || std::rename(tmp.c_str(), path.c_str()) != 0) {
      return absl::UnavailableError(absl::StrCat("cannot write ", path));
    }
    return absl::OkStatus();
  }

  static absl::StatusOr<std::string> ReadFile(const char* field, const std::string& path) {
    FILE* f = std::fopen(path.c_str(), "rb");
    if (!f) return absl::NotFoundError(absl::StrCat(field, ": cannot read ", path));
    std::string data;
    char buf[4096];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) data.append(buf, n);
    std::fclose(f);
    return data;
  }

  Shared shared_;
  std::unique_ptr<LedgerService> ledger_service_;
  std::unique_ptr<ExportService> export_service_;
  std::unique_ptr<AdminService> admin_service_;
  std::unique_ptr<TransparencyService> transparency_service_;
  std::unique_ptr<CheckoutService> checkout_service_;
  std::unique_ptr<VouchersService> vouchers_service_;
  std::unique_ptr<GoodsService> goods_service_;
  std::unique_ptr<AidService> aid_service_;
  std::unique_ptr<VoucherSweeper> sweeper_;
  std::string verifier_key_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
  bool stopped_ = false;
};

absl::StatusOr<std::unique_ptr<Server>> Server::Start(ServerOptions options) {
  auto impl = std::make_unique<Impl>();
  absl::Status s = impl->Start(std::move(options));
  if (!s.ok()) {
    impl->Shutdown();
    return s;
  }
  return std::unique_ptr<Server>(new Server(std::move(impl)));
}

Server::Server(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Server::~Server() { impl_->Shutdown(); }
void Server::Shutdown() { impl_->Shutdown(); }
void Server::FlushLog() { impl_->FlushLog(); }
int Server::port() const { return impl_->port(); }
Ledger& Server::ledger() { return impl_->ledger(); }
std::string Server::verifier_key() const { return impl_->verifier_key(); }

}  // namespace warmledger::server

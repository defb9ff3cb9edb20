#include "server/server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <optional>

#include "absl/strings/str_cat.h"
#include "ledger/limits.h"
#include "ledger/status_macros.h"
#include "server/auth.h"
#include "server/convert.h"
#include "server/identity.h"
#include "server/registry.h"
#include "warmledger/v1/ledger.grpc.pb.h"

namespace warmledger::server {
namespace {

// Operations in one SubmitBatch call. A donation with create_donor writes two
// entries, so a full batch stays within the engine's kBatchOpsMax.
constexpr size_t kRpcBatchOpsMax = kBatchOpsMax / 2;
// gRPC messages in each direction.
constexpr int kMessageBytesMax = 16 << 20;
// Default page size when a request says 0.
constexpr uint64_t kDefaultPageItems = 100;
// Entries per read while streaming an export.
constexpr uint64_t kExportChunkEntries = 1000;
// How long a tail waits for a new entry before re-checking for cancellation
// and shutdown.
constexpr int64_t kTailPollMs = 200;

int64_t NowMicros() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

uint64_t PageLimit(uint64_t limit) { return limit == 0 ? kDefaultPageItems : limit; }

std::string_view AuthorizationOf(const grpc::ServerContextBase* ctx) {
  const auto& md = ctx->client_metadata();
  auto it = md.find("authorization");
  if (it == md.end()) return {};
  return std::string_view(it->second.data(), it->second.size());
}

int CurrentYear() {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  return tm.tm_year + 1900;
}

}  // namespace

bool IsLoopbackListen(std::string_view listen) {
  size_t colon = listen.rfind(':');
  if (colon == std::string_view::npos) return false;
  std::string_view host = listen.substr(0, colon);
  if (host == "localhost" || host == "[::1]") return true;
  return host.substr(0, 4) == "127.";
}

// Everything the services share.
struct Shared {
  ServerOptions options;
  std::unique_ptr<Ledger> ledger;
  Authenticator auth = Authenticator::Dev();
  Registry registry = Registry::Default();
  std::string key;
  std::atomic<bool> shutting_down{false};

  void Log(const char* method, Role role, absl::StatusCode code, int64_t start_us) const {
    std::string line = absl::StrCat("{\"rpc\":\"", method, "\",\"role\":\"", RoleName(role),
                                    "\",\"code\":\"", CodeName(code),
                                    "\",\"latency_us\":", NowMicros() - start_us, "}");
    if (options.log) {
      options.log(line);
    } else {
      std::fprintf(stderr, "%s\n", line.c_str());
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
// (a donation with create_donor opens the donor first, linked).
class WritePlanner {
 public:
  explicit WritePlanner(const Shared* shared) : shared_(shared) {}

  struct Planned {
    size_t first = 0;  // index of its first engine operation
    size_t count = 0;  // engine operations (0 when rejected before submission)
    absl::Status error;
    bool linked = false;
    bool is_donation = false;
    std::string trace_code;
    std::string recipient;
  };

  void Add(const pb::BatchOperation& op) {
    Planned p;
    p.linked = op.linked();
    p.error = Convert(op, &p);
    planned_.push_back(std::move(p));
  }

  // Drops every chain that contains a rejected operation (the chain fails as
  // a unit) and returns the engine operations to submit.
  std::vector<Operation> TakeOperations() {
    std::vector<Operation> ops;
    size_t i = 0;
    while (i < planned_.size()) {
      size_t end = i;
      while (end + 1 < planned_.size() && planned_[end].linked) ++end;
      size_t failed = SIZE_MAX;
      for (size_t k = i; k <= end; ++k) {
        if (!planned_[k].error.ok()) {
          failed = k;
          break;
        }
      }
      for (size_t k = i; k <= end; ++k) {
        Planned& p = planned_[k];
        if (failed != SIZE_MAX) {
          if (k != failed) {
            p.error = absl::AbortedError(absl::StrCat(
                "linked operation failed: operation ", failed, ": ",
                planned_[failed].error.message()));
          }
          p.count = 0;
          continue;
        }
        p.first = ops.size();
        for (Operation& o : pending_[k]) ops.push_back(std::move(o));
      }
      i = end + 1;
    }
    pending_.clear();
    return ops;
  }

  // The status and result of planned operation `index`.
  absl::Status Result(size_t index, const std::vector<OpResult>& results,
                      pb::WriteResult* out) const {
    const Planned& p = planned_[index];
    if (!p.error.ok()) return p.error;
    absl::Status status;
    const OpResult* last = nullptr;
    for (size_t k = p.first; k < p.first + p.count; ++k) {
      const OpResult& r = results[k];
      last = &r;
      if (!r.status.ok() && (status.ok() || status.code() == absl::StatusCode::kAborted)) {
        status = r.status;
      }
    }
    if (!status.ok()) return Rephrase(p, status);
    out->set_seq(last->seq);
    out->set_time_us(last->time_us);
    out->set_duplicate(last->duplicate);
    return absl::OkStatus();
  }

  const Planned& planned(size_t index) const { return planned_[index]; }
  size_t size() const { return planned_.size(); }

 private:
  absl::Status Convert(const pb::BatchOperation& op, Planned* p) {
    std::vector<Operation> ops;
    absl::Status s;
    switch (op.op_case()) {
      case pb::BatchOperation::kOpenAccount: s = OpenAccount(op.open_account(), &ops); break;
      case pb::BatchOperation::kCloseAccount: {
        const auto& r = op.close_account();
        ops.push_back({r.client_id(), false, CloseAccountOp{r.account(), r.reason()}});
        break;
      }
      case pb::BatchOperation::kDonate: s = Donate(op.donate(), p, &ops); break;
      case pb::BatchOperation::kAllocate: {
        const auto& r = op.allocate();
        ops.push_back({r.client_id(), false,
                       AllocationOp{r.from(), r.to(), r.asset(), r.amount(), r.reason()}});
        break;
      }
      case pb::BatchOperation::kDisburse: {
        const auto& r = op.disburse();
        ops.push_back({r.client_id(), false,
                       DisbursementOp{r.from(), r.to(), r.asset(), r.amount(), r.purpose()}});
        break;
      }
      case pb::BatchOperation::kCorrect: {
        const auto& r = op.correct();
        ops.push_back({r.client_id(), false,
                       CorrectionOp{r.ref_seq(), static_cast<CorrectionMode>(r.mode()),
                                    r.reason(), r.from(), r.to(), r.asset(), r.amount()}});
        break;
      }
      case pb::BatchOperation::kRegisterRecipient:
        s = RegisterRecipient(op.register_recipient(), p, &ops);
        break;
      case pb::BatchOperation::OP_NOT_SET:
        s = absl::InvalidArgumentError("op: no operation set");
        break;
    }
    if (!s.ok()) ops.clear();
    if (!ops.empty()) ops.back().linked = op.linked();
    p->count = ops.size();
    pending_.push_back(std::move(ops));
    return s;
  }

  absl::Status OpenAccount(const pb::OpenAccountRequest& r, std::vector<Operation>* ops) {
    if (r.kind() == pb::ACCOUNT_KIND_UNSPECIFIED) {
      return absl::InvalidArgumentError("kind: required");
    }
    if (r.kind() == pb::RECIPIENT) {
      return absl::InvalidArgumentError("kind: recipients are registered with RegisterRecipient");
    }
    OpenAccountOp op{r.account(), static_cast<AccountKind>(r.kind()), r.asset(),
                     r.restricted() ? kAccountRestricted : 0u, r.name()};
    ops->push_back({r.client_id(), false, std::move(op)});
    return absl::OkStatus();
  }

  absl::Status Donate(const pb::DonateRequest& r, Planned* p, std::vector<Operation>* ops) {
    p->is_donation = true;
    if (r.client_id().empty()) return absl::InvalidArgumentError("client_id: required");
    if (r.create_donor() && !donors_opened_.contains(r.donor()) &&
        !shared_->ledger->GetAccount(r.donor()).ok()) {
      donors_opened_.insert(r.donor());
      ops->push_back({r.client_id() + "/donor", true,
                      OpenAccountOp{r.donor(), AccountKind::kDonor, "", 0, r.donor_name()}});
    }
    p->trace_code = TraceCode(shared_->key, r.client_id());
    DonationOp op{r.donor(), r.to(), r.asset(), r.amount(),
                  static_cast<DonationChannel>(r.channel()),
                  r.anonymous() ? kDonationAnonymous : 0u, r.memo(), TraceHash(p->trace_code)};
    ops->push_back({r.client_id(), false, std::move(op)});
    return absl::OkStatus();
  }

  absl::Status RegisterRecipient(const pb::RegisterRecipientRequest& r, Planned* p,
                                 std::vector<Operation>* ops) {
    WL_RETURN_IF_ERROR(ValidateResidentId(r.id_number(), CurrentYear()));
    if (!shared_->registry.HasCategory(r.category())) {
      return absl::InvalidArgumentError(
          absl::StrCat("category: '", r.category(), "' is not a configured category"));
    }
    if (!shared_->registry.HasCommunity(r.community())) {
      return absl::InvalidArgumentError(
          absl::StrCat("community: '", r.community(), "' is not a configured community"));
    }
    p->recipient = RecipientPseudonym(shared_->key, r.id_number());
    OpenAccountOp op{p->recipient, AccountKind::kRecipient, "", 0, "", r.category(),
                     r.community()};
    ops->push_back({r.client_id(), false, std::move(op)});
    return absl::OkStatus();
  }

  // Engine messages name engine fields; a second registration of the same
  // person should say so in the caller's words.
  static absl::Status Rephrase(const Planned& p, const absl::Status& s) {
    if (!p.recipient.empty() && s.code() == absl::StatusCode::kAlreadyExists &&
        s.message().find("open_account.account") != absl::string_view::npos) {
      return absl::AlreadyExistsError(
          absl::StrCat("id_number: this person is already registered as ", p.recipient));
    }
    return s;
  }

  const Shared* shared_;
  std::vector<Planned> planned_;
  std::vector<std::vector<Operation>> pending_;
  absl::flat_hash_set<std::string> donors_opened_;
};

class LedgerService final : public pb::Ledger::CallbackService {
 public:
  explicit LedgerService(Shared* shared) : shared_(shared) {}

  // ---- writes ----

  grpc::ServerUnaryReactor* OpenAccount(grpc::CallbackServerContext* ctx,
                                        const pb::OpenAccountRequest* req,
                                        pb::WriteResult* resp) override {
    pb::BatchOperation op;
    *op.mutable_open_account() = *req;
    return Write(ctx, "OpenAccount", op, [resp](const auto&, const pb::WriteResult& r) {
      *resp = r;
    });
  }
  grpc::ServerUnaryReactor* CloseAccount(grpc::CallbackServerContext* ctx,
                                         const pb::CloseAccountRequest* req,
                                         pb::WriteResult* resp) override {
    pb::BatchOperation op;
    *op.mutable_close_account() = *req;
    return Write(ctx, "CloseAccount", op, [resp](const auto&, const pb::WriteResult& r) {
      *resp = r;
    });
  }
  grpc::ServerUnaryReactor* Donate(grpc::CallbackServerContext* ctx,
                                   const pb::DonateRequest* req,
                                   pb::DonateResponse* resp) override {
    pb::BatchOperation op;
    *op.mutable_donate() = *req;
    return Write(ctx, "Donate", op,
                 [resp](const WritePlanner::Planned& p, const pb::WriteResult& r) {
                   *resp->mutable_result() = r;
                   resp->set_lot(r.seq());
                   resp->set_trace_code(p.trace_code);
                 });
  }
  grpc::ServerUnaryReactor* Allocate(grpc::CallbackServerContext* ctx,
                                     const pb::AllocateRequest* req,
                                     pb::WriteResult* resp) override {
    pb::BatchOperation op;
    *op.mutable_allocate() = *req;
    return Write(ctx, "Allocate", op, [resp](const auto&, const pb::WriteResult& r) {
      *resp = r;
    });
  }
  grpc::ServerUnaryReactor* Disburse(grpc::CallbackServerContext* ctx,
                                     const pb::DisburseRequest* req,
                                     pb::WriteResult* resp) override {
    pb::BatchOperation op;
    *op.mutable_disburse() = *req;
    return Write(ctx, "Disburse", op, [resp](const auto&, const pb::WriteResult& r) {
      *resp = r;
    });
  }
  grpc::ServerUnaryReactor* Correct(grpc::CallbackServerContext* ctx,
                                    const pb::CorrectRequest* req,
                                    pb::WriteResult* resp) override {
    pb::BatchOperation op;
    *op.mutable_correct() = *req;
    return Write(ctx, "Correct", op, [resp](const auto&, const pb::WriteResult& r) {
      *resp = r;
    });
  }
  grpc::ServerUnaryReactor* RegisterRecipient(grpc::CallbackServerContext* ctx,
                                              const pb::RegisterRecipientRequest* req,
                                              pb::RegisterRecipientResponse* resp) override {
    pb::BatchOperation op;
    *op.mutable_register_recipient() = *req;
    return Write(ctx, "RegisterRecipient", op,
                 [resp](const WritePlanner::Planned& p, const pb::WriteResult& r) {
                   *resp->mutable_result() = r;
                   resp->set_recipient(p.recipient);
                 });
  }

  grpc::ServerUnaryReactor* SubmitBatch(grpc::CallbackServerContext* ctx,
                                        const pb::BatchRequest* req,
                                        pb::BatchResponse* resp) override {
    auto call = std::make_shared<UnaryCall>(shared_, ctx, "SubmitBatch");
    if (!call->Authorize(ctx, Access::kWrite)) return call->reactor();
    if (req->operations_size() == 0 ||
        static_cast<size_t>(req->operations_size()) > kRpcBatchOpsMax) {
      call->Finish(absl::InvalidArgumentError(absl::StrCat(
          "operations: ", req->operations_size(), " operations; 1..", kRpcBatchOpsMax,
          " allowed")));
      return call->reactor();
    }
    auto planner = std::make_shared<WritePlanner>(shared_);
    for (const pb::BatchOperation& op : req->operations()) planner->Add(op);
    shared_->ledger->SubmitAsync(
        planner->TakeOperations(), [call, planner, resp](std::vector<OpResult> results) {
          for (size_t i = 0; i < planner->size(); ++i) {
            pb::BatchResult* out = resp->add_results();
            absl::Status s = planner->Result(i, results, out->mutable_result());
            out->set_code(static_cast<int32_t>(s.code()));
            out->set_message(std::string(s.message()));
            const WritePlanner::Planned& p = planner->planned(i);
            if (s.ok() && p.is_donation) {
              out->set_lot(out->result().seq());
              out->set_trace_code(p.trace_code);
            }
            if (s.ok()) out->set_recipient(p.recipient);
          }
          call->Finish(absl::OkStatus());
        });
    return call->reactor();
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
      bool well_formed = code.size() == 26;
      for (char c : code) well_formed &= (c >= 'A' && c <= 'Z') || (c >= '2' && c <= '7');
      if (!well_formed) {
        return absl::InvalidArgumentError(
            "trace_code: expected 26 characters of A-Z and 2-7 (as printed on the receipt)");
      }
      WL_ASSIGN_OR_RETURN(uint64_t lot, shared_->ledger->FindLotByTraceHash(TraceHash(code)));
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
  // A unary write: plans one operation, submits it, and answers from the
  // sequencer's callback without blocking a gRPC thread.
  template <typename Fill>
  grpc::ServerUnaryReactor* Write(grpc::CallbackServerContext* ctx, const char* method,
                                  const pb::BatchOperation& op, Fill fill) {
    auto call = std::make_shared<UnaryCall>(shared_, ctx, method);
    if (!call->Authorize(ctx, Access::kWrite)) return call->reactor();
    auto planner = std::make_shared<WritePlanner>(shared_);
    planner->Add(op);
    std::vector<Operation> ops = planner->TakeOperations();
    if (ops.empty()) {
      pb::WriteResult ignored;
      call->Finish(planner->Result(0, {}, &ignored));
      return call->reactor();
    }
    shared_->ledger->SubmitAsync(std::move(ops),
                                 [call, planner, fill](std::vector<OpResult> results) {
                                   pb::WriteResult r;
                                   absl::Status s = planner->Result(0, results, &r);
                                   if (s.ok()) fill(planner->planned(0), r);
                                   call->Finish(s);
                                 });
    return call->reactor();
  }

  template <typename Body>
  grpc::ServerUnaryReactor* Read(grpc::CallbackServerContext* ctx, const char* method,
                                 Access access, Body body) {
    UnaryCall call(shared_, ctx, method);
    if (!call.Authorize(ctx, access)) return call.reactor();
    call.Finish(body(call.role()));
    return call.reactor();
  }

  // Public views hide anonymous donors and show recipients only by category
  // and community.
  absl::Status TraceToProto(const LotTrace& t, bool public_view, pb::Trace* out) const {
    const bool hide_donor = public_view && t.lot.anonymous;
    auto shown = [&](const std::string& account) -> std::string {
      if (hide_donor && account == t.lot.donor) return "anonymous";
      if (public_view && account.rfind("recipient/", 0) == 0) return "recipient";
      return account;
    };
    out->set_lot(t.lot.lot);
    out->set_donor(hide_donor ? "" : t.lot.donor);
    out->set_anonymous(t.lot.anonymous);
    out->set_to(t.lot.to);
    out->set_asset(t.lot.asset);
    out->set_amount(t.lot.amount);
    out->set_time_us(t.lot.time_us);
    for (const TraceHop& h : t.hops) {
      pb::TraceHop* q = out->add_hops();
      q->set_seq(h.seq);
      q->set_time_us(h.time_us);
      q->set_type(static_cast<pb::EntryType>(h.type));
      q->set_from(shown(h.from));
      q->set_to(shown(h.to));
      q->set_amount(h.amount);
    }
    auto places = [&](const std::vector<TracePlace>& in,
                      google::protobuf::RepeatedPtrField<pb::TracePlace>* to) -> absl::Status {
      for (const TracePlace& p : in) {
        pb::TracePlace* q = to->Add();
        q->set_account(shown(p.account));
        q->set_kind(static_cast<pb::AccountKind>(p.kind));
        q->set_amount(p.amount);
        if (p.kind == AccountKind::kRecipient) {
          WL_ASSIGN_OR_RETURN(AccountInfo info, shared_->ledger->GetAccount(p.account));
          q->set_category(info.category);
          q->set_community(info.community);
        }
      }
      return absl::OkStatus();
    };
    WL_RETURN_IF_ERROR(places(t.held, out->mutable_held()));
    return places(t.reached, out->mutable_reached());
  }

  Shared* shared_;
};

class ExportService final : public pb::Export::Service {
 public:
  explicit ExportService(Shared* shared) : shared_(shared) {}

  grpc::Status ListEntries(grpc::ServerContext* ctx, const pb::ListEntriesRequest* req,
                           grpc::ServerWriter<pb::Entry>* writer) override {
    int64_t start = NowMicros();
    absl::StatusOr<Role> role = shared_->auth.Authorize(AuthorizationOf(ctx), Access::kExport);
    absl::Status s = role.status();
    if (s.ok()) {
      uint64_t from = req->from_seq() == 0 ? 1 : req->from_seq();
      uint64_t head = shared_->ledger->Head().seq;
      uint64_t last = req->count_max() == 0 ? head
                                            : std::min(head, from + req->count_max() - 1);
      s = Stream(ctx, writer, from, last);
    }
    shared_->Log("ListEntries", role.ok() ? *role : Role::kNone, s.code(), start);
    return ToGrpc(s);
  }

  grpc::Status TailEntries(grpc::ServerContext* ctx, const pb::TailEntriesRequest* req,
                           grpc::ServerWriter<pb::Entry>* writer) override {
    int64_t start = NowMicros();
    absl::StatusOr<Role> role = shared_->auth.Authorize(AuthorizationOf(ctx), Access::kExport);
    absl::Status s = role.status();
    uint64_t next = req->from_seq() == 0 ? shared_->ledger->Head().seq + 1 : req->from_seq();
    while (s.ok()) {
      if (ctx->IsCancelled()) {
        s = absl::CancelledError("tail: cancelled by the caller");
        break;
      }
      if (shared_->shutting_down.load()) {
        s = absl::UnavailableError("tail: the server is shutting down");
        break;
      }
      uint64_t head = shared_->ledger->Head().seq;
      if (head >= next) {
        s = Stream(ctx, writer, next, head);
        next = head + 1;
      } else {
        shared_->ledger->WaitForSeq(next, kTailPollMs);
      }
    }
    shared_->Log("TailEntries", role.ok() ? *role : Role::kNone, s.code(), start);
    return ToGrpc(s);
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
    int64_t start = NowMicros();
    absl::StatusOr<Role> role = shared_->auth.Authorize(AuthorizationOf(ctx), Access::kAdmin);
    absl::Status s = role.status();
    if (s.ok()) s = DoBackup(req->dir(), resp);
    shared_->Log("Backup", role.ok() ? *role : Role::kNone, s.code(), start);
    return ToGrpc(s);
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

}  // namespace

class Server::Impl {
 public:
  absl::Status Start(ServerOptions options) {
    shared_.options = std::move(options);
    const ServerOptions& o = shared_.options;
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
    WL_ASSIGN_OR_RETURN(shared_.key, LoadOrCreateKey(key_file));
    WL_ASSIGN_OR_RETURN(shared_.ledger,
                        Ledger::Open({.path = o.data_dir + "/db", .clock = o.clock}));

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
    grpc::ServerBuilder builder;
    builder.AddListeningPort(o.listen, creds, &port_);
    builder.SetMaxReceiveMessageSize(kMessageBytesMax);
    builder.SetMaxSendMessageSize(kMessageBytesMax);
    builder.RegisterService(ledger_service_.get());
    builder.RegisterService(export_service_.get());
    builder.RegisterService(admin_service_.get());
    server_ = builder.BuildAndStart();
    if (!server_ || port_ == 0) {
      return absl::UnavailableError(absl::StrCat("listen: cannot bind ", o.listen));
    }
    return absl::OkStatus();
  }

  void Shutdown() {
    if (stopped_) return;
    stopped_ = true;
    shared_.shutting_down.store(true);
    if (server_) {
      // In-flight calls get a few seconds to finish; queued writes complete
      // because the ledger's sequencer is still running.
      server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
      server_->Wait();
    }
    shared_.ledger.reset();  // drains the write queue, closes the database
  }

  int port() const { return port_; }
  Ledger& ledger() { return *shared_.ledger; }

 private:
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
int Server::port() const { return impl_->port(); }
Ledger& Server::ledger() { return impl_->ledger(); }

}  // namespace warmledger::server

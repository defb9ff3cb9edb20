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

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "ledger/sha256.h"
#include "ledger/limits.h"
#include "ledger/merkle.h"
#include "ledger/note.h"
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
  bool well_formed = code.size() == 26;
  for (char c : code) well_formed &= (c >= 'A' && c <= 'Z') || (c >= '2' && c <= '7');
  if (!well_formed) {
    return absl::InvalidArgumentError(
        "trace_code: expected 26 characters of A-Z and 2-7 (as printed on the receipt)");
  }
  return absl::OkStatus();
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
  std::string key;
  std::atomic<bool> shutting_down{false};

  // Today's date (UTC) on the server's clock, as YYYYMMDD.
  int TodayYyyymmdd() const {
    Clock* clock = options.clock ? options.clock : SystemClock::Default();
    std::time_t t = static_cast<std::time_t>(clock->NowMicros() / 1'000'000);
    std::tm tm{};
    gmtime_r(&t, &tm);
    return (tm.tm_year + 1900) * 10000 + (tm.tm_mon + 1) * 100 + tm.tm_mday;
  }

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
// (a donation with create_donor first opens the donor if it is absent,
// linked). Errors always number operations as the caller sent them.
class WritePlanner {
 public:
  explicit WritePlanner(const Shared* shared) : shared_(shared) {}

  struct Planned {
    size_t first = 0;  // index of its first engine operation
    size_t count = 0;  // engine operations (0 when not submitted)
    absl::Status error;
    bool linked = false;
    bool is_donation = false;
    bool opens_donor = false;
    std::string trace_code;
    std::string recipient;
    pb::WriteResult result;
  };

  void Add(const pb::BatchOperation& op) {
    Planned p;
    p.linked = op.linked();
    std::vector<Operation> ops;
    p.error = Convert(op, &p, &ops);
    if (!p.error.ok()) ops.clear();
    if (!ops.empty()) ops.back().linked = op.linked();
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
        p.result.set_seq(last.seq);
        p.result.set_time_us(last.time_us);
        p.result.set_duplicate(last.duplicate);
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
                        DisbursementOp{r.from(), r.to(), r.asset(), r.amount(), r.purpose()}});
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

  absl::Status Donate(const pb::DonateRequest& r, Planned* p, std::vector<Operation>* ops) {
    p->is_donation = true;
    WL_RETURN_IF_ERROR(CheckClientId(r.client_id()));
    if (r.client_id().empty()) return absl::InvalidArgumentError("client_id: required");
    if (!pb::DonationChannel_IsValid(r.channel())) {
      return absl::InvalidArgumentError(
          absl::StrCat("channel: ", static_cast<int>(r.channel()), " is not a channel"));
    }
    if (r.create_donor()) {
      // The open's id is derived from the donation's, so a retry derives the
      // same one; if_absent makes concurrent first gifts of one donor safe.
      Hash h = Sha256(r.client_id());
      ops->push_back({absl::StrCat("~donor/", HashToHex(h).substr(0, 32)), true,
                      OpenAccountOp{r.donor(), AccountKind::kDonor, "", 0, r.donor_name()},
                      /*if_absent=*/true});
      p->opens_donor = true;
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
    p->recipient = RecipientPseudonym(shared_->key, r.id_number());
    OpenAccountOp op{p->recipient, AccountKind::kRecipient, "", 0, "", r.category(),
                     r.community()};
    ops->push_back({r.client_id(), false, std::move(op)});
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
    return s;
  }

  const Shared* shared_;
  std::vector<Planned> planned_;
  std::vector<std::vector<Operation>> pending_;
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
    auto fill = [resp](const WritePlanner::Planned& p, const pb::WriteResult& r) {
      *resp->mutable_result() = r;
      resp->set_lot(r.seq());
      resp->set_trace_code(p.trace_code);
    };
    if (!req->wait_for_receipt()) return Write(ctx, "Donate", op, fill);
    // Answer once a checkpoint covers the donation (or the wait is over):
    // the receipt is a courtesy, the donation is recorded either way.
    const int64_t wait_ms = std::min(kReceiptWaitMaxMs, MillisUntil(ctx->deadline()) - 50);
    return Write(ctx, "Donate", op, fill, [this, resp, wait_ms](auto finish) {
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
          planner->Resolve(results);
          for (size_t i = 0; i < planner->size(); ++i) {
            const WritePlanner::Planned& p = planner->planned(i);
            pb::BatchResult* out = resp->add_results();
            out->set_code(static_cast<int32_t>(p.error.code()));
            out->set_message(std::string(p.error.message()));
            if (!p.error.ok()) continue;
            *out->mutable_result() = p.result;
            if (p.is_donation) {
              out->set_lot(p.result.seq());
              out->set_trace_code(p.trace_code);
            }
            out->set_recipient(p.recipient);
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
  // `then`, if given, runs after a successful write instead of finishing the
  // call; it gets a function that finishes it.
  using Finisher = std::function<void(const absl::Status&)>;
  template <typename Fill>
  grpc::ServerUnaryReactor* Write(grpc::CallbackServerContext* ctx, const char* method,
                                  const pb::BatchOperation& op, Fill fill,
                                  std::function<void(Finisher)> then = nullptr) {
    auto call = std::make_shared<UnaryCall>(shared_, ctx, method);
    if (!call->Authorize(ctx, Access::kWrite)) return call->reactor();
    auto planner = std::make_shared<WritePlanner>(shared_);
    planner->Add(op);
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

class TransparencyService final : public pb::Transparency::CallbackService {
 public:
  explicit TransparencyService(Shared* shared) : shared_(shared) {}

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
                     ? shared_->ledger->FindLotByTraceHash(TraceHash(req->trace_code()))
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
  template <typename Body>
  grpc::ServerUnaryReactor* Read(grpc::CallbackServerContext* ctx, const char* method,
                                 Access access, Body body) {
    UnaryCall call(shared_, ctx, method);
    if (!call.Authorize(ctx, access)) return call.reactor();
    call.Finish(body(call.role()));
    return call.reactor();
  }

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
      uint64_t last = head;
      if (req->count_max() != 0 && req->count_max() - 1 < head - std::min(head, from)) {
        last = from + req->count_max() - 1;
      }
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
    grpc::ServerBuilder builder;
    builder.AddListeningPort(o.listen, creds, &port_);
    builder.SetMaxReceiveMessageSize(kMessageBytesMax);
    builder.SetMaxSendMessageSize(kMessageBytesMax);
    builder.RegisterService(ledger_service_.get());
    builder.RegisterService(export_service_.get());
    builder.RegisterService(admin_service_.get());
    builder.RegisterService(transparency_service_.get());
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
int Server::port() const { return impl_->port(); }
Ledger& Server::ledger() { return impl_->ledger(); }
std::string Server::verifier_key() const { return impl_->verifier_key(); }

}  // namespace warmledger::server

// Integration tests of warmledgerd over real gRPC: every RPC's happy path,
// bad input, roles, concurrency, restart, backup/restore, the privacy of ID
// numbers, and the warmledgerd process itself.
//
// Each test starts its own server in a fresh temporary folder on 127.0.0.1:0
// with an injected ManualClock (except the process tests, which run the real
// binary) and talks to it through generated stubs on an insecure channel.
// Nothing sleeps for correctness; the only waits are bounded polls on a
// child process (its port file and its exit).
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <atomic>
#include <barrier>
#include <cctype>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <latch>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <type_traits>
#include <tuple>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "ledger/clock.h"
#include "ledger/entry_codec.h"
#include "ledger/limits.h"
#include "ledger/merkle.h"
#include "ledger/note.h"
#include "ledger/sha256.h"
#include "ledger/temp_dir_testing.h"
#include "server/convert.h"
#include "server/identity.h"
#include "server/server.h"
#include "warmledger/v1/ledger.grpc.pb.h"

namespace warmledger::server {
namespace {

namespace pb = ::warmledger::v1;
using ::testing::HasSubstr;
using ::testing::StartsWith;
using Stub = pb::Ledger::Stub;
using TStub = pb::Transparency::Stub;
using CStub = pb::Checkout::Stub;
using VStub = pb::Vouchers::Stub;
using GStub = pb::Goods::Stub;
using AStub = pb::Aid::Stub;

// Every client call carries a deadline (STYLE.md); generous for sanitizers.
constexpr auto kCallTimeout = std::chrono::seconds(30);
// Bounds of the process tests' polls on the child.
constexpr auto kChildStartMax = std::chrono::seconds(10);
constexpr auto kChildExitMax = std::chrono::seconds(20);
constexpr long kChildPollIntervalNs = 10'000'000;  // 10 ms
// The API's batch bound (ledger.proto: 1..4096 operations).
constexpr int kRpcBatchOpsMax = 4096;
// The checkout batch bound (ledger.proto: 1..8192 items).
constexpr int kCheckoutBatchItemsMax = 8192;

// ---------------------------------------------------------------- helpers

const char* CodeText(grpc::StatusCode code) {
  switch (code) {
    case grpc::OK: return "OK";
    case grpc::CANCELLED: return "CANCELLED";
    case grpc::UNKNOWN: return "UNKNOWN";
    case grpc::INVALID_ARGUMENT: return "INVALID_ARGUMENT";
    case grpc::DEADLINE_EXCEEDED: return "DEADLINE_EXCEEDED";
    case grpc::NOT_FOUND: return "NOT_FOUND";
    case grpc::ALREADY_EXISTS: return "ALREADY_EXISTS";
    case grpc::PERMISSION_DENIED: return "PERMISSION_DENIED";
    case grpc::RESOURCE_EXHAUSTED: return "RESOURCE_EXHAUSTED";
    case grpc::FAILED_PRECONDITION: return "FAILED_PRECONDITION";
    case grpc::ABORTED: return "ABORTED";
    case grpc::OUT_OF_RANGE: return "OUT_OF_RANGE";
    case grpc::UNIMPLEMENTED: return "UNIMPLEMENTED";
    case grpc::INTERNAL: return "INTERNAL";
    case grpc::UNAVAILABLE: return "UNAVAILABLE";
    case grpc::DATA_LOSS: return "DATA_LOSS";
    case grpc::UNAUTHENTICATED: return "UNAUTHENTICATED";
    default: return "?";
  }
}

std::string Describe(const grpc::Status& s) {
  return std::string(CodeText(s.error_code())) + ": " + s.error_message();
}

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// The status has `code` and, unless `field` is empty, a message naming it.
::testing::AssertionResult IsError(const grpc::Status& s, grpc::StatusCode code,
                                   std::string_view field = "") {
  if (s.error_code() != code) {
    return ::testing::AssertionFailure()
           << "expected " << CodeText(code) << ", got " << Describe(s);
  }
  if (!field.empty() &&
      Lower(s.error_message()).find(Lower(std::string(field))) == std::string::npos) {
    return ::testing::AssertionFailure()
           << "expected a message naming '" << field << "', got " << Describe(s);
  }
  return ::testing::AssertionSuccess();
}

::testing::AssertionResult IsOk(const grpc::Status& s) {
  if (s.ok()) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << Describe(s);
}

// A valid 18-character resident ID number (region 410103, Erqi district),
// distinct for every n in 0..999.
std::string ValidId(int n) {
  char first17[32];
  std::snprintf(first17, sizeof first17, "410103%04d%02d%02d%03d", 1940 + n % 60,
                1 + (n / 7) % 12, 1 + n % 28, n % 1000);
  std::string id(first17, 17);
  id.push_back(ResidentIdCheckChar(id));
  return id;
}

// An ID number with the given 8-digit date of birth and a correct check
// character, so that only the date can be wrong.
std::string IdBornOn(std::string_view yyyymmdd) {
  std::string id = "410103" + std::string(yyyymmdd) + "123";
  id.push_back(ResidentIdCheckChar(id));
  return id;
}

std::string WithWrongCheckChar(std::string id) {
  static constexpr char kChecks[] = "0123456789X";
  const char* at = std::strchr(kChecks, id.back());
  id.back() = kChecks[((at ? at - kChecks : 0) + 1) % 11];
  return id;
}

bool IsTraceCode(const std::string& code) {
  if (code.size() != 26) return false;
  for (char c : code) {
    if (!((c >= 'A' && c <= 'Z') || (c >= '2' && c <= '7'))) return false;
  }
  return true;
}

// Collects the server's per-RPC log lines. Thread-safe; must outlive the
// server that writes into it.
class LogSink {
 public:
  std::function<void(std::string_view)> Writer() {
    return [this](std::string_view line) {
      std::lock_guard<std::mutex> lock(mu_);
      lines_.emplace_back(line);
    };
  }
  std::vector<std::string> Lines() const {
    std::lock_guard<std::mutex> lock(mu_);
    return lines_;
  }

 private:
  mutable std::mutex mu_;
  std::vector<std::string> lines_;
};

// One channel with every service's stub. `authorization` is the whole
// metadata value ("Bearer <token>"); empty sends none.
class Client {
 public:
  explicit Client(int port, std::string authorization = "")
      : channel_(grpc::CreateChannel("127.0.0.1:" + std::to_string(port),
                                     grpc::InsecureChannelCredentials())),
        ledger_(pb::Ledger::NewStub(channel_)),
        export_(pb::Export::NewStub(channel_)),
        admin_(pb::Admin::NewStub(channel_)),
        transparency_(pb::Transparency::NewStub(channel_)),
        checkout_(pb::Checkout::NewStub(channel_)),
        vouchers_(pb::Vouchers::NewStub(channel_)),
        goods_(pb::Goods::NewStub(channel_)),
        aid_(pb::Aid::NewStub(channel_)),
        authorization_(std::move(authorization)) {}

  void Prepare(grpc::ClientContext* ctx) const {
    ctx->set_deadline(std::chrono::system_clock::now() + kCallTimeout);
    if (!authorization_.empty()) ctx->AddMetadata("authorization", authorization_);
  }

  // Any unary RPC of any of the services: client.Call(&Stub::Donate,
  // request, &response), client.Call(&GStub::GiveGoods, ...).
  template <typename S, typename Req, typename Resp>
  grpc::Status Call(grpc::Status (S::*method)(grpc::ClientContext*, const Req&, Resp*),
                    const Req& req, Resp* resp) const {
    grpc::ClientContext ctx;
    Prepare(&ctx);
    return (StubOf<S>().*method)(&ctx, req, resp);
  }

  grpc::Status Backup(const std::string& dir, pb::BackupResponse* resp) const {
    grpc::ClientContext ctx;
    Prepare(&ctx);
    pb::BackupRequest req;
    req.set_dir(dir);
    return admin_->Backup(&ctx, req, resp);
  }

  grpc::Status ListEntries(uint64_t from_seq, uint64_t count_max,
                           std::vector<pb::Entry>* out) const {
    grpc::ClientContext ctx;
    Prepare(&ctx);
    pb::ListEntriesRequest req;
    req.set_from_seq(from_seq);
    req.set_count_max(count_max);
    auto reader = export_->ListEntries(&ctx, req);
    pb::Entry e;
    while (reader->Read(&e)) out->push_back(e);
    return reader->Finish();
  }

  // Opens a tail from `from_seq`, reads one entry and cancels. OK if an entry
  // arrived; otherwise the stream's status.
  grpc::Status TailOne(uint64_t from_seq, pb::Entry* first) const {
    grpc::ClientContext ctx;
    Prepare(&ctx);
    pb::TailEntriesRequest req;
    req.set_from_seq(from_seq);
    auto reader = export_->TailEntries(&ctx, req);
    bool got = reader->Read(first);
    if (got) ctx.TryCancel();
    grpc::Status s = reader->Finish();
    return got ? grpc::Status::OK : s;
  }

  uint64_t HeadSeq() const {
    pb::Head head;
    grpc::Status s = Call(&Stub::GetHead, pb::GetHeadRequest(), &head);
    EXPECT_TRUE(s.ok()) << Describe(s);
    return head.seq();
  }

  pb::Head Head() const {
    pb::Head head;
    grpc::Status s = Call(&Stub::GetHead, pb::GetHeadRequest(), &head);
    EXPECT_TRUE(s.ok()) << Describe(s);
    return head;
  }

  std::shared_ptr<grpc::Channel> channel() const { return channel_; }
  Stub* ledger() const { return ledger_.get(); }
  pb::Export::Stub* exporter() const { return export_.get(); }

 private:
  // The stub of the service whose Stub type is S.
  template <typename S>
  S& StubOf() const {
    if constexpr (std::is_same_v<S, Stub>) {
      return *ledger_;
    } else if constexpr (std::is_same_v<S, TStub>) {
      return *transparency_;
    } else if constexpr (std::is_same_v<S, CStub>) {
      return *checkout_;
    } else if constexpr (std::is_same_v<S, VStub>) {
      return *vouchers_;
    } else if constexpr (std::is_same_v<S, GStub>) {
      return *goods_;
    } else {
      static_assert(std::is_same_v<S, AStub>, "Call: no stub of that service");
      return *aid_;
    }
  }

  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<Stub> ledger_;
  std::unique_ptr<pb::Export::Stub> export_;
  std::unique_ptr<pb::Admin::Stub> admin_;
  std::unique_ptr<pb::Transparency::Stub> transparency_;
  std::unique_ptr<pb::Checkout::Stub> checkout_;
  std::unique_ptr<pb::Vouchers::Stub> vouchers_;
  std::unique_ptr<pb::Goods::Stub> goods_;
  std::unique_ptr<pb::Aid::Stub> aid_;
  std::string authorization_;
};

// ---------------------------------------------------------------- requests

pb::OpenAccountRequest OpenReq(const std::string& account, pb::AccountKind kind,
                               const std::string& asset = "", bool restricted = false) {
  pb::OpenAccountRequest r;
  r.set_client_id("open:" + account);
  r.set_account(account);
  r.set_kind(kind);
  r.set_asset(asset);
  r.set_restricted(restricted);
  r.set_name("name of " + account);
  return r;
}

pb::DonateRequest DonateReq(const std::string& client_id, const std::string& donor,
                            const std::string& to, int64_t amount,
                            const std::string& asset = "CNY") {
  pb::DonateRequest r;
  r.set_client_id(client_id);
  r.set_donor(donor);
  r.set_to(to);
  r.set_asset(asset);
  r.set_amount(amount);
  r.set_channel(pb::COUNTER);
  r.set_memo("memo " + client_id);
  return r;
}

pb::AllocateRequest AllocateReq(const std::string& client_id, const std::string& from,
                                const std::string& to, int64_t amount) {
  pb::AllocateRequest r;
  r.set_client_id(client_id);
  r.set_from(from);
  r.set_to(to);
  r.set_asset("CNY");
  r.set_amount(amount);
  r.set_reason("reason " + client_id);
  return r;
}

pb::DisburseRequest DisburseReq(const std::string& client_id, const std::string& from,
                                const std::string& to, int64_t amount) {
  pb::DisburseRequest r;
  r.set_client_id(client_id);
  r.set_from(from);
  r.set_to(to);
  r.set_asset("CNY");
  r.set_amount(amount);
  r.set_purpose("purpose " + client_id);
  return r;
}

pb::CorrectRequest ReverseReq(const std::string& client_id, uint64_t ref_seq) {
  pb::CorrectRequest r;
  r.set_client_id(client_id);
  r.set_ref_seq(ref_seq);
  r.set_mode(pb::REVERSE);
  r.set_reason("entered by mistake");
  return r;
}

pb::CorrectRequest AdjustReq(const std::string& client_id, uint64_t ref_seq,
                             const std::string& from, const std::string& to, int64_t amount) {
  pb::CorrectRequest r;
  r.set_client_id(client_id);
  r.set_ref_seq(ref_seq);
  r.set_mode(pb::ADJUST);
  r.set_reason("bank fee charged to the fund");
  r.set_from(from);
  r.set_to(to);
  r.set_asset("CNY");
  r.set_amount(amount);
  return r;
}

pb::RegisterRecipientRequest RegisterReq(const std::string& client_id,
                                         const std::string& id_number,
                                         const std::string& category = "dibao",
                                         const std::string& community = "c001") {
  pb::RegisterRecipientRequest r;
  r.set_client_id(client_id);
  r.set_id_number(id_number);
  r.set_category(category);
  r.set_community(community);
  return r;
}

pb::PurchaseRequest PurchaseReq(const std::string& store, const std::string& order_id,
                                int64_t amount, const std::string& member = "") {
  pb::PurchaseRequest r;
  r.set_store(store);
  r.set_order_id(order_id);
  r.set_amount(amount);  // asset left empty: CNY
  r.set_member(member);
  return r;
}

pb::RefundRequest RefundReq(const std::string& store, const std::string& order_id,
                            const std::string& refund_id, int64_t amount) {
  pb::RefundRequest r;
  r.set_store(store);
  r.set_order_id(order_id);
  r.set_refund_id(refund_id);
  r.set_amount(amount);
  return r;
}

pb::RedeemRequest RedeemReq(const std::string& store, const std::string& order_id,
                            const std::string& code, int64_t amount) {
  pb::RedeemRequest r;
  r.set_store(store);
  r.set_order_id(order_id);
  r.set_code(code);
  r.set_amount(amount);
  return r;
}

pb::IssueVoucherRequest IssueReq(const std::string& client_id, const std::string& from,
                                 const std::string& recipient, int64_t amount,
                                 int64_t expires_us) {
  pb::IssueVoucherRequest r;
  r.set_client_id(client_id);
  r.set_from(from);
  r.set_recipient(recipient);
  r.set_amount(amount);  // asset left empty: CNY
  r.set_expires_us(expires_us);
  r.set_memo("winter aid " + client_id);
  return r;
}

pb::DefineItemRequest DefineItemReq(const std::string& item, const std::string& unit = "box") {
  pb::DefineItemRequest r;
  r.set_client_id("item:" + item);
  r.set_item(item);
  r.set_name("name of " + item);
  r.set_unit(unit);
  return r;
}

pb::GiveGoodsRequest GiveGoodsReq(const std::string& client_id, const std::string& donor,
                                  const std::string& to, const std::string& item,
                                  int64_t quantity) {
  pb::GiveGoodsRequest r;
  r.set_client_id(client_id);
  r.set_donor(donor);
  r.set_to(to);
  r.set_item(item);
  r.set_quantity(quantity);
  r.set_channel(pb::COMPANY_GIFT);
  r.set_memo("gift in kind " + client_id);
  return r;
}

pb::BuyGoodsRequest BuyGoodsReq(const std::string& client_id, const std::string& from,
                                const std::string& supplier, int64_t price,
                                const std::string& to, const std::string& item,
                                int64_t quantity) {
  pb::BuyGoodsRequest r;
  r.set_client_id(client_id);
  r.set_from(from);
  r.set_supplier(supplier);
  r.set_price(price);  // asset left empty: CNY
  r.set_to(to);
  r.set_item(item);
  r.set_quantity(quantity);
  r.set_memo("invoice " + client_id);
  return r;
}

pb::HandOutRequest HandOutReq(const std::string& client_id, const std::string& from,
                              const std::string& item,
                              const std::vector<std::pair<std::string, int64_t>>& lines) {
  pb::HandOutRequest r;
  r.set_client_id(client_id);
  r.set_from(from);
  r.set_item(item);
  for (const auto& [recipient, quantity] : lines) {
    pb::HandoutLine* line = r.add_lines();
    line->set_recipient(recipient);
    line->set_quantity(quantity);
  }
  r.set_purpose("handout " + client_id);
  return r;
}

pb::WriteOffGoodsRequest WriteOffReq(const std::string& client_id, const std::string& from,
                                     const std::string& to, const std::string& item,
                                     int64_t quantity, uint64_t lot = 0) {
  pb::WriteOffGoodsRequest r;
  r.set_client_id(client_id);
  r.set_from(from);
  r.set_to(to);
  r.set_item(item);
  r.set_quantity(quantity);
  r.set_lot(lot);
  r.set_reason("spoiled");
  return r;
}

pb::SellGoodsRequest SellGoodsReq(const std::string& client_id, const std::string& from,
                                  const std::string& buyer, const std::string& item,
                                  int64_t quantity, const std::string& to, int64_t proceeds) {
  pb::SellGoodsRequest r;
  r.set_client_id(client_id);
  r.set_from(from);
  r.set_buyer(buyer);
  r.set_item(item);
  r.set_quantity(quantity);
  r.set_to(to);
  r.set_proceeds(proceeds);  // asset left empty: CNY
  r.set_memo("sale " + client_id);
  return r;
}

pb::SetAidRuleRequest AidRuleReq(const std::string& client_id, const std::string& aid,
                                 pb::EntryType type, const std::string& source, uint32_t max_count,
                                 pb::AidPeriod period) {
  pb::SetAidRuleRequest r;
  r.set_client_id(client_id);
  r.set_aid(aid);
  r.set_type(type);
  r.set_source(source);
  r.set_max_count(max_count);
  r.set_period(period);
  r.set_memo("policy " + client_id);
  return r;
}

pb::AidReportRequest AidReportReq(int64_t from_time_us, int64_t to_time_us, bool public_view) {
  pb::AidReportRequest r;
  r.set_from_time_us(from_time_us);
  r.set_to_time_us(to_time_us);
  r.set_public_view(public_view);
  return r;
}

// A code as a cashier might type it: lower case, in dashed groups of four.
std::string AsTyped(const std::string& code) {
  std::string typed;
  for (size_t i = 0; i < code.size(); ++i) {
    if (i > 0 && i % 4 == 0) typed.push_back('-');
    typed.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(code[i]))));
  }
  return typed;
}

// Puts a goods request into a BatchOperation.
void SetOperation(const pb::DefineItemRequest& r, pb::BatchOperation* op) {
  *op->mutable_define_item() = r;
}
void SetOperation(const pb::GiveGoodsRequest& r, pb::BatchOperation* op) {
  *op->mutable_give_goods() = r;
}
void SetOperation(const pb::BuyGoodsRequest& r, pb::BatchOperation* op) {
  *op->mutable_buy_goods() = r;
}
void SetOperation(const pb::HandOutRequest& r, pb::BatchOperation* op) {
  *op->mutable_hand_out() = r;
}
void SetOperation(const pb::WriteOffGoodsRequest& r, pb::BatchOperation* op) {
  *op->mutable_write_off_goods() = r;
}
void SetOperation(const pb::SellGoodsRequest& r, pb::BatchOperation* op) {
  *op->mutable_sell_goods() = r;
}
void SetOperation(const pb::SetAidRuleRequest& r, pb::BatchOperation* op) {
  *op->mutable_set_aid_rule() = r;
}
void SetOperation(const pb::DisburseRequest& r, pb::BatchOperation* op) {
  *op->mutable_disburse() = r;
}
void SetOperation(const pb::IssueVoucherRequest& r, pb::BatchOperation* op) {
  *op->mutable_issue_voucher() = r;
}

// Sends one BatchOperation through its own unary RPC and returns the status.
grpc::Status CallUnary(const Client& c, const pb::BatchOperation& op) {
  switch (op.op_case()) {
    case pb::BatchOperation::kOpenAccount: {
      pb::WriteResult r;
      return c.Call(&Stub::OpenAccount, op.open_account(), &r);
    }
    case pb::BatchOperation::kCloseAccount: {
      pb::WriteResult r;
      return c.Call(&Stub::CloseAccount, op.close_account(), &r);
    }
    case pb::BatchOperation::kDonate: {
      pb::DonateResponse r;
      return c.Call(&Stub::Donate, op.donate(), &r);
    }
    case pb::BatchOperation::kAllocate: {
      pb::WriteResult r;
      return c.Call(&Stub::Allocate, op.allocate(), &r);
    }
    case pb::BatchOperation::kDisburse: {
      pb::WriteResult r;
      return c.Call(&Stub::Disburse, op.disburse(), &r);
    }
    case pb::BatchOperation::kCorrect: {
      pb::WriteResult r;
      return c.Call(&Stub::Correct, op.correct(), &r);
    }
    case pb::BatchOperation::kRegisterRecipient: {
      pb::RegisterRecipientResponse r;
      return c.Call(&Stub::RegisterRecipient, op.register_recipient(), &r);
    }
    case pb::BatchOperation::kIssueVoucher: {
      pb::IssueVoucherResponse r;
      return c.Call(&VStub::IssueVoucher, op.issue_voucher(), &r);
    }
    case pb::BatchOperation::kVoidVoucher: {
      pb::WriteResult r;
      return c.Call(&VStub::VoidVoucher, op.void_voucher(), &r);
    }
    case pb::BatchOperation::kDefineItem: {
      pb::WriteResult r;
      return c.Call(&GStub::DefineItem, op.define_item(), &r);
    }
    case pb::BatchOperation::kGiveGoods: {
      pb::GiveGoodsResponse r;
      return c.Call(&GStub::GiveGoods, op.give_goods(), &r);
    }
    case pb::BatchOperation::kBuyGoods: {
      pb::BuyGoodsResponse r;
      return c.Call(&GStub::BuyGoods, op.buy_goods(), &r);
    }
    case pb::BatchOperation::kHandOut: {
      pb::HandOutResponse r;
      return c.Call(&GStub::HandOut, op.hand_out(), &r);
    }
    case pb::BatchOperation::kWriteOffGoods: {
      pb::WriteOffGoodsResponse r;
      return c.Call(&GStub::WriteOffGoods, op.write_off_goods(), &r);
    }
    case pb::BatchOperation::kSellGoods: {
      pb::SellGoodsResponse r;
      return c.Call(&GStub::SellGoods, op.sell_goods(), &r);
    }
    case pb::BatchOperation::kSetAidRule: {
      pb::WriteResult r;
      return c.Call(&AStub::SetAidRule, op.set_aid_rule(), &r);
    }
    case pb::BatchOperation::OP_NOT_SET: break;
  }
  return grpc::Status(grpc::INTERNAL, "test: no operation");
}

// Sends one BatchOperation alone in a SubmitBatch and returns its result as a
// status (or the call's status if the call failed).
grpc::Status CallInBatch(const Client& c, const pb::BatchOperation& op) {
  pb::BatchRequest req;
  *req.add_operations() = op;
  pb::BatchResponse resp;
  grpc::Status s = c.Call(&Stub::SubmitBatch, req, &resp);
  if (!s.ok()) return s;
  if (resp.results_size() != 1) {
    return grpc::Status(grpc::INTERNAL, "test: expected one result, got " +
                                            std::to_string(resp.results_size()));
  }
  return grpc::Status(static_cast<grpc::StatusCode>(resp.results(0).code()),
                      resp.results(0).message());
}

// ---------------------------------------------------------------- fixture

// A --dev server (every caller is admin) on a fresh folder with a manual
// clock, and a client for it.
class ServerTest : public ::testing::Test {
 protected:
  void SetUp() override { StartServer(); }

  ServerOptions Options() {
    ServerOptions o;
    o.data_dir = dir_.Sub("data");
    o.listen = "127.0.0.1:0";
    o.dev = true;
    o.clock = &clock_;
    o.log = logs_.Writer();
    o.voucher_sweep_ms = 0;  // hermetic: sweeps run only when a test asks
    return o;
  }

  void StartServer() { StartServer(Options()); }
  void StartServer(ServerOptions options) {
    auto server = Server::Start(std::move(options));
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
    ASSERT_GT(server_->port(), 0);
    client_ = std::make_unique<Client>(server_->port());
  }

  void StopServer() {
    client_.reset();
    if (server_) server_->Shutdown();
    server_.reset();
  }

  void RestartServer() {
    StopServer();
    StartServer();
  }

  // ---- writes that must succeed ----

  pb::WriteResult Open(const std::string& account, pb::AccountKind kind,
                       const std::string& asset = "", bool restricted = false) {
    pb::WriteResult out;
    grpc::Status s = client_->Call(&Stub::OpenAccount, OpenReq(account, kind, asset, restricted),
                                   &out);
    EXPECT_TRUE(s.ok()) << "open " << account << ": " << Describe(s);
    clock_.AdvanceMicros(1000);
    return out;
  }

  pb::DonateResponse Donate(const pb::DonateRequest& req) {
    pb::DonateResponse out;
    grpc::Status s = client_->Call(&Stub::Donate, req, &out);
    EXPECT_TRUE(s.ok()) << "donate " << req.client_id() << ": " << Describe(s);
    clock_.AdvanceMicros(1000);
    return out;
  }

  pb::DonateResponse Donate(const std::string& client_id, const std::string& donor,
                            const std::string& to, int64_t amount) {
    return Donate(DonateReq(client_id, donor, to, amount));
  }

  // A write answered by a WriteResult, of any service, that must succeed.
  template <typename AnyStub, typename Req>
  pb::WriteResult Write(grpc::Status (AnyStub::*method)(grpc::ClientContext*, const Req&,
                                                        pb::WriteResult*),
                        const Req& req) {
    pb::WriteResult out;
    grpc::Status s = client_->Call(method, req, &out);
    EXPECT_TRUE(s.ok()) << req.client_id() << ": " << Describe(s);
    clock_.AdvanceMicros(1000);
    return out;
  }

  std::string Register(const std::string& client_id, const std::string& id_number,
                       const std::string& category = "dibao",
                       const std::string& community = "c001") {
    pb::RegisterRecipientResponse out;
    grpc::Status s = client_->Call(&Stub::RegisterRecipient,
                                   RegisterReq(client_id, id_number, category, community), &out);
    EXPECT_TRUE(s.ok()) << "register " << client_id << ": " << Describe(s);
    clock_.AdvanceMicros(1000);
    return out.recipient();
  }

  pb::Account Account(const std::string& account) {
    pb::GetAccountRequest req;
    req.set_account(account);
    pb::Account out;
    grpc::Status s = client_->Call(&Stub::GetAccount, req, &out);
    EXPECT_TRUE(s.ok()) << account << ": " << Describe(s);
    return out;
  }

  int64_t BalanceOf(const std::string& account, const std::string& asset = "CNY") {
    const pb::Account info = Account(account);
    for (const pb::Balance& b : info.balances()) {
      if (b.asset() == asset) return b.amount();
    }
    return 0;
  }

  bool AccountExists(const std::string& account) {
    pb::GetAccountRequest req;
    req.set_account(account);
    pb::Account out;
    return client_->Call(&Stub::GetAccount, req, &out).ok();
  }

  // ---- checkout and vouchers ----

  pb::PurchaseResult Purchase(const pb::PurchaseRequest& req) {
    pb::PurchaseResult out;
    grpc::Status s = client_->Call(&CStub::RecordPurchase, req, &out);
    EXPECT_TRUE(s.ok()) << "purchase " << req.order_id() << ": " << Describe(s);
    clock_.AdvanceMicros(1000);
    return out;
  }

  pb::RefundResult Refund(const pb::RefundRequest& req) {
    pb::RefundResult out;
    grpc::Status s = client_->Call(&CStub::RecordRefund, req, &out);
    EXPECT_TRUE(s.ok()) << "refund " << req.refund_id() << ": " << Describe(s);
    clock_.AdvanceMicros(1000);
    return out;
  }

  pb::RedemptionResult Redeem(const pb::RedeemRequest& req) {
    pb::RedemptionResult out;
    grpc::Status s = client_->Call(&CStub::RedeemVoucher, req, &out);
    EXPECT_TRUE(s.ok()) << "redeem " << req.order_id() << ": " << Describe(s);
    clock_.AdvanceMicros(1000);
    return out;
  }

  pb::IssueVoucherResponse Issue(const pb::IssueVoucherRequest& req) {
    pb::IssueVoucherResponse out;
    grpc::Status s = client_->Call(&VStub::IssueVoucher, req, &out);
    EXPECT_TRUE(s.ok()) << "issue " << req.client_id() << ": " << Describe(s);
    clock_.AdvanceMicros(1000);
    return out;
  }

  pb::Voucher VoucherById(uint64_t voucher) {
    pb::GetVoucherRequest req;
    req.set_voucher(voucher);
    pb::Voucher out;
    grpc::Status s = client_->Call(&VStub::GetVoucher, req, &out);
    EXPECT_TRUE(s.ok()) << "voucher " << voucher << ": " << Describe(s);
    return out;
  }

  pb::Trace TraceOf(uint64_t lot) {
    pb::TraceDonationRequest req;
    req.set_lot(lot);
    pb::Trace out;
    grpc::Status s = client_->Call(&Stub::TraceDonation, req, &out);
    EXPECT_TRUE(s.ok()) << "trace " << lot << ": " << Describe(s);
    return out;
  }

  // Two stores, the charity fund with one 100,000 fen gift and a registered
  // recipient (category dibao, community c001).
  struct Shop {
    uint64_t gift_lot = 0;
    std::string gift_trace_code;
    std::string recipient;
  };

  Shop SetUpShop() {
    Shop shop;
    Open("fund/general", pb::FUND, "CNY");
    Open("store/a", pb::MERCHANT);
    Open("store/b", pb::MERCHANT);
    Open("donor/alice", pb::DONOR);
    const pb::DonateResponse gift = Donate("shop-gift", "donor/alice", "fund/general", 100000);
    shop.gift_lot = gift.lot();
    shop.gift_trace_code = gift.trace_code();
    shop.recipient = Register("shop-reg", ValidId(7));
    return shop;
  }

  // The standard district used by most tests.
  struct World {
    uint64_t donation_seq = 0;   // 100,000 fen from donor/alice to fund/general
    std::string trace_code;      // of that donation
    uint64_t allocation_seq = 0; // 20,000 fen fund/general -> project/school
    uint64_t reversed_seq = 0;   // a 500 fen donation, reversed
    std::string recipient;       // registered from ValidId(1)
  };

  World SetUpWorld() {
    World w;
    Open("fund/general", pb::FUND, "CNY");
    Open("fund/restricted", pb::FUND, "CNY", /*restricted=*/true);
    Open("project/school", pb::PROJECT, "CNY");
    Open("donor/alice", pb::DONOR);
    Open("expense/ops", pb::EXPENSE);
    Open("expense/spare", pb::EXPENSE);
    Open("stock/food", pb::STOCK, "item:rice");
    w.recipient = Register("setup-reg-1", ValidId(1));
    pb::DonateResponse d = Donate("setup-don-1", "donor/alice", "fund/general", 100000);
    w.donation_seq = d.lot();
    w.trace_code = d.trace_code();
    w.allocation_seq =
        Write(&Stub::Allocate, AllocateReq("setup-alloc-1", "fund/general", "project/school",
                                           20000))
            .seq();
    w.reversed_seq = Donate("setup-don-2", "donor/alice", "fund/general", 500).lot();
    Write(&Stub::Correct, ReverseReq("setup-rev-1", w.reversed_seq));
    return w;
  }

  // ---- goods ----

  // A goods write that must succeed.
  template <typename Req, typename Resp>
  Resp GoodsWrite(grpc::Status (GStub::*method)(grpc::ClientContext*, const Req&, Resp*),
                  const Req& req) {
    Resp out;
    grpc::Status s = client_->Call(method, req, &out);
    EXPECT_TRUE(s.ok()) << req.client_id() << ": " << Describe(s);
    clock_.AdvanceMicros(1000);
    return out;
  }

  // A goods depot: the general fund with three gifts from donor/alice
  // (1,000, 2,000 and 3,000 fen, oldest first), items rice (kg) and oil
  // (bottle) with their stocks, a supplier, an expense for spoilage, a shop
  // that buys goods (store/a, any asset) and two recipients: dibao in c001
  // and elderly-poverty in c002.
  struct Depot {
    std::vector<uint64_t> money_lots;
    std::vector<std::string> money_codes;
    std::string r1;
    std::string r2;
  };

  Depot SetUpDepot() {
    Depot d;
    Open("fund/general", pb::FUND, "CNY");
    Open("donor/alice", pb::DONOR);
    Open("supplier/farm", pb::SUPPLIER);
    Open("expense/spoilage", pb::EXPENSE);
    Open("store/a", pb::MERCHANT);
    Open("stock/rice", pb::STOCK, "item:rice");
    Open("stock/oil", pb::STOCK, "item:oil");
    GoodsWrite(&GStub::DefineItem, DefineItemReq("item:rice", "kg"));
    GoodsWrite(&GStub::DefineItem, DefineItemReq("item:oil", "bottle"));
    for (int i = 1; i <= 3; ++i) {
      const pb::DonateResponse gift = Donate("depot-gift-" + std::to_string(i), "donor/alice",
                                             "fund/general", 1000 * i);
      d.money_lots.push_back(gift.lot());
      d.money_codes.push_back(gift.trace_code());
    }
    d.r1 = Register("depot-r1", ValidId(11), "dibao", "c001");
    d.r2 = Register("depot-r2", ValidId(12), "elderly-poverty", "c002");
    return d;
  }

  TempDir dir_;
  ManualClock clock_;
  LogSink logs_;  // declared before server_: outlives it
  std::unique_ptr<Server> server_;
  std::unique_ptr<Client> client_;
};

// ================================================================ happy paths

TEST_F(ServerTest, OpenAccountThenCloseAccountSucceedOverGrpc) {
  pb::WriteResult opened;
  ASSERT_TRUE(IsOk(client_->Call(&Stub::OpenAccount, OpenReq("expense/rent", pb::EXPENSE),
                                 &opened)));
  EXPECT_EQ(opened.seq(), 1u);
  EXPECT_FALSE(opened.duplicate());
  EXPECT_EQ(opened.time_us(), clock_.NowMicros());

  pb::WriteResult again;
  ASSERT_TRUE(IsOk(client_->Call(&Stub::OpenAccount, OpenReq("expense/rent", pb::EXPENSE),
                                 &again)));
  EXPECT_TRUE(again.duplicate());
  EXPECT_EQ(again.seq(), 1u);

  pb::Account account = Account("expense/rent");
  EXPECT_EQ(account.kind(), pb::EXPENSE);
  EXPECT_EQ(account.name(), "name of expense/rent");
  EXPECT_FALSE(account.closed());
  EXPECT_EQ(account.opened_seq(), 1u);

  pb::CloseAccountRequest close;
  close.set_client_id("close-rent");
  close.set_account("expense/rent");
  close.set_reason("the lease ended");
  pb::WriteResult closed;
  ASSERT_TRUE(IsOk(client_->Call(&Stub::CloseAccount, close, &closed)));
  EXPECT_EQ(closed.seq(), 2u);
  EXPECT_TRUE(Account("expense/rent").closed());
  EXPECT_EQ(client_->HeadSeq(), 2u);
}

TEST_F(ServerTest, DonateWithCreateDonorReturnsLotAndTraceCodeAndRetryIsDuplicate) {
  Open("fund/general", pb::FUND, "CNY");
  pb::DonateRequest req = DonateReq("gift-1", "donor/bob", "fund/general", 8800);
  req.set_create_donor(true);
  req.set_donor_name("Bob");

  pb::DonateResponse first;
  ASSERT_TRUE(IsOk(client_->Call(&Stub::Donate, req, &first)));
  EXPECT_EQ(first.lot(), first.result().seq());
  EXPECT_EQ(first.result().seq(), 3u);  // fund, then the donor, then the gift
  EXPECT_FALSE(first.result().duplicate());
  EXPECT_TRUE(IsTraceCode(first.trace_code())) << first.trace_code();

  pb::Account donor = Account("donor/bob");
  EXPECT_EQ(donor.kind(), pb::DONOR);
  EXPECT_EQ(donor.name(), "Bob");
  EXPECT_EQ(BalanceOf("fund/general"), 8800);

  clock_.AdvanceMicros(5000);
  pb::DonateResponse retry;
  ASSERT_TRUE(IsOk(client_->Call(&Stub::Donate, req, &retry)));
  EXPECT_TRUE(retry.result().duplicate());
  EXPECT_EQ(retry.result().seq(), first.result().seq());
  EXPECT_EQ(retry.result().time_us(), first.result().time_us());
  EXPECT_EQ(retry.lot(), first.lot());
  EXPECT_EQ(retry.trace_code(), first.trace_code());
  EXPECT_EQ(client_->HeadSeq(), 3u);
  EXPECT_EQ(BalanceOf("fund/general"), 8800);

  // Another gift gets another code.
  pb::DonateResponse second = Donate("gift-2", "donor/bob", "fund/general", 100);
  EXPECT_TRUE(IsTraceCode(second.trace_code()));
  EXPECT_NE(second.trace_code(), first.trace_code());
}

TEST_F(ServerTest, AllocateAndDisburseMoveMoneyBetweenAccounts) {
  World w = SetUpWorld();
  EXPECT_EQ(BalanceOf("fund/general"), 80000);
  EXPECT_EQ(BalanceOf("project/school"), 20000);

  pb::WriteResult alloc = Write(
      &Stub::Allocate, AllocateReq("alloc-2", "fund/general", "fund/restricted", 30000));
  EXPECT_GT(alloc.seq(), w.allocation_seq);
  EXPECT_EQ(BalanceOf("fund/general"), 50000);
  EXPECT_EQ(BalanceOf("fund/restricted"), 30000);

  Write(&Stub::Disburse, DisburseReq("pay-1", "project/school", w.recipient, 1200));
  Write(&Stub::Disburse, DisburseReq("pay-2", "fund/restricted", "expense/ops", 300));
  EXPECT_EQ(BalanceOf("project/school"), 18800);
  EXPECT_EQ(BalanceOf(w.recipient), 1200);
  EXPECT_EQ(BalanceOf("fund/restricted"), 29700);
  EXPECT_EQ(BalanceOf("expense/ops"), 300);

  pb::WriteResult retry;
  ASSERT_TRUE(IsOk(client_->Call(
      &Stub::Disburse, DisburseReq("pay-1", "project/school", w.recipient, 1200), &retry)));
  EXPECT_TRUE(retry.duplicate());
  EXPECT_EQ(BalanceOf(w.recipient), 1200);
}

TEST_F(ServerTest, CorrectReversesAndAdjusts) {
  Open("fund/general", pb::FUND, "CNY");
  Open("donor/alice", pb::DONOR);
  Open("expense/fees", pb::EXPENSE);
  uint64_t wrong = Donate("don-wrong", "donor/alice", "fund/general", 500).lot();
  EXPECT_EQ(BalanceOf("fund/general"), 500);

  pb::WriteResult reversal = Write(&Stub::Correct, ReverseReq("rev-1", wrong));
  EXPECT_EQ(reversal.seq(), wrong + 1);
  EXPECT_EQ(BalanceOf("fund/general"), 0);
  EXPECT_EQ(BalanceOf("donor/alice"), 0);

  // Reversing twice is refused.
  pb::WriteResult ignored;
  EXPECT_TRUE(IsError(client_->Call(&Stub::Correct, ReverseReq("rev-2", wrong), &ignored),
                      grpc::FAILED_PRECONDITION, "ref_seq"));

  uint64_t good = Donate("don-good", "donor/alice", "fund/general", 800).lot();
  Write(&Stub::Correct, AdjustReq("adj-1", good, "fund/general", "expense/fees", 300));
  EXPECT_EQ(BalanceOf("fund/general"), 500);
  EXPECT_EQ(BalanceOf("expense/fees"), 300);

  pb::GetEntryRequest get;
  get.set_seq(reversal.seq());
  pb::Entry entry;
  ASSERT_TRUE(IsOk(client_->Call(&Stub::GetEntry, get, &entry)));
  EXPECT_EQ(entry.type(), pb::CORRECTION);
  ASSERT_EQ(entry.postings_size(), 1);
  EXPECT_EQ(entry.postings(0).from(), "fund/general");
  EXPECT_EQ(entry.postings(0).to(), "donor/alice");
  EXPECT_EQ(entry.postings(0).amount(), 500);
}

TEST_F(ServerTest, RegisterRecipientReturnsAPseudonymNeverTheIdNumber) {
  const std::string id = ValidId(42);
  pb::RegisterRecipientResponse first;
  ASSERT_TRUE(IsOk(client_->Call(&Stub::RegisterRecipient,
                                 RegisterReq("reg-42", id, "disabled", "c175"), &first)));
  EXPECT_EQ(first.result().seq(), 1u);
  ASSERT_THAT(first.recipient(), StartsWith("recipient/"));
  EXPECT_EQ(first.recipient().size(), std::string("recipient/").size() + 32);
  EXPECT_EQ(first.recipient().find(id), std::string::npos);

  pb::Account account = Account(first.recipient());
  EXPECT_EQ(account.kind(), pb::RECIPIENT);
  EXPECT_EQ(account.category(), "disabled");
  EXPECT_EQ(account.community(), "c175");

  pb::RegisterRecipientResponse retry;
  ASSERT_TRUE(IsOk(client_->Call(&Stub::RegisterRecipient,
                                 RegisterReq("reg-42", id, "disabled", "c175"), &retry)));
  EXPECT_TRUE(retry.result().duplicate());
  EXPECT_EQ(retry.recipient(), first.recipient());

  // The same person under another client id is already registered.
  pb::RegisterRecipientResponse again;
  EXPECT_TRUE(IsError(client_->Call(&Stub::RegisterRecipient,
                                    RegisterReq("reg-42b", id, "dibao", "c001"), &again),
                      grpc::ALREADY_EXISTS, "id_number"));
  EXPECT_EQ(client_->HeadSeq(), 1u);
}

TEST_F(ServerTest, SubmitBatchReturnsPerOperationResultsAndLinkedChainsFailAsAUnit) {
  Open("donor/alice", pb::DONOR);
  pb::BatchRequest req;
  *req.add_operations()->mutable_open_account() = OpenReq("fund/a", pb::FUND, "CNY");
  *req.add_operations()->mutable_donate() = DonateReq("b-don-1", "donor/alice", "fund/a", 700);
  *req.add_operations()->mutable_register_recipient() = RegisterReq("b-reg-1", ValidId(5));
  // A chain of three whose last operation fails: none of it is written.
  {
    pb::BatchOperation* op = req.add_operations();
    op->set_linked(true);
    *op->mutable_open_account() = OpenReq("fund/b", pb::FUND, "CNY");
  }
  {
    pb::BatchOperation* op = req.add_operations();
    op->set_linked(true);
    pb::DonateRequest d = DonateReq("b-don-2", "donor/carol", "fund/b", 10);
    d.set_create_donor(true);
    *op->mutable_donate() = d;
  }
  *req.add_operations()->mutable_donate() = DonateReq("b-don-3", "donor/alice", "fund/b", 0);
  // An independent operation after the failed chain still applies.
  *req.add_operations()->mutable_donate() = DonateReq("b-don-4", "donor/alice", "fund/a", 5);

  const uint64_t before = client_->HeadSeq();
  pb::BatchResponse resp;
  ASSERT_TRUE(IsOk(client_->Call(&Stub::SubmitBatch, req, &resp)));
  ASSERT_EQ(resp.results_size(), 7);

  EXPECT_EQ(resp.results(0).code(), grpc::OK) << resp.results(0).message();
  EXPECT_EQ(resp.results(0).result().seq(), before + 1);

  EXPECT_EQ(resp.results(1).code(), grpc::OK) << resp.results(1).message();
  EXPECT_EQ(resp.results(1).lot(), resp.results(1).result().seq());
  EXPECT_TRUE(IsTraceCode(resp.results(1).trace_code()));

  EXPECT_EQ(resp.results(2).code(), grpc::OK) << resp.results(2).message();
  EXPECT_THAT(resp.results(2).recipient(), StartsWith("recipient/"));

  EXPECT_EQ(resp.results(3).code(), grpc::ABORTED) << resp.results(3).message();
  EXPECT_EQ(resp.results(4).code(), grpc::ABORTED) << resp.results(4).message();
  EXPECT_EQ(resp.results(5).code(), grpc::INVALID_ARGUMENT) << resp.results(5).message();
  EXPECT_THAT(resp.results(5).message(), HasSubstr("amount"));
  EXPECT_THAT(resp.results(3).message(), HasSubstr("linked operation failed"));
  EXPECT_EQ(resp.results(3).lot(), 0u);
  EXPECT_TRUE(resp.results(4).trace_code().empty());

  EXPECT_EQ(resp.results(6).code(), grpc::OK) << resp.results(6).message();
  EXPECT_EQ(resp.results(6).lot(), resp.results(6).result().seq());

  EXPECT_EQ(client_->HeadSeq(), before + 4);
  EXPECT_FALSE(AccountExists("fund/b"));
  EXPECT_FALSE(AccountExists("donor/carol"));
  EXPECT_EQ(BalanceOf("fund/a"), 705);

  // Resubmitting the whole batch writes nothing new.
  pb::BatchResponse again;
  ASSERT_TRUE(IsOk(client_->Call(&Stub::SubmitBatch, req, &again)));
  ASSERT_EQ(again.results_size(), 7);
  for (int i : {0, 1, 2, 6}) {
    EXPECT_EQ(again.results(i).code(), grpc::OK);
    EXPECT_TRUE(again.results(i).result().duplicate()) << i;
    EXPECT_EQ(again.results(i).result().seq(), resp.results(i).result().seq());
    EXPECT_EQ(again.results(i).trace_code(), resp.results(i).trace_code());
    EXPECT_EQ(again.results(i).recipient(), resp.results(i).recipient());
  }
  EXPECT_EQ(client_->HeadSeq(), before + 4);
}

TEST_F(ServerTest, SubmitBatchAcceptsTheMaximumOf4096DonationsWithNewDonors) {
  Open("fund/general", pb::FUND, "CNY");
  pb::BatchRequest req;
  for (int i = 0; i < kRpcBatchOpsMax; ++i) {
    pb::DonateRequest d = DonateReq("max-" + std::to_string(i),
                                    "donor/d" + std::to_string(i), "fund/general", 1);
    d.set_create_donor(true);
    *req.add_operations()->mutable_donate() = d;
  }
  pb::BatchResponse resp;
  ASSERT_TRUE(IsOk(client_->Call(&Stub::SubmitBatch, req, &resp)));
  ASSERT_EQ(resp.results_size(), kRpcBatchOpsMax);
  for (int i = 0; i < kRpcBatchOpsMax; ++i) {
    ASSERT_EQ(resp.results(i).code(), grpc::OK) << i << ": " << resp.results(i).message();
  }
  EXPECT_EQ(client_->HeadSeq(), 1u + 2 * kRpcBatchOpsMax);
  EXPECT_EQ(BalanceOf("fund/general"), kRpcBatchOpsMax);
}

TEST_F(ServerTest, GetHeadAndGetEntryReturnTheHashChain) {
  SetUpWorld();
  pb::Head head = client_->Head();
  ASSERT_GT(head.seq(), 2u);
  EXPECT_EQ(head.hash().size(), 32u);

  std::string prev(32, '\0');
  for (uint64_t seq = 1; seq <= head.seq(); ++seq) {
    pb::GetEntryRequest req;
    req.set_seq(seq);
    pb::Entry e;
    ASSERT_TRUE(IsOk(client_->Call(&Stub::GetEntry, req, &e))) << seq;
    EXPECT_EQ(e.seq(), seq);
    EXPECT_FALSE(e.entry_bytes().empty());
    EXPECT_EQ(e.hash().size(), 32u);
    EXPECT_EQ(e.prev_hash(), prev) << seq;
    EXPECT_FALSE(e.summary().empty());
    EXPECT_FALSE(e.client_id().empty());
    prev = e.hash();
  }
  EXPECT_EQ(prev, head.hash());

  pb::GetEntryRequest first;
  first.set_seq(1);
  pb::Entry e1;
  ASSERT_TRUE(IsOk(client_->Call(&Stub::GetEntry, first, &e1)));
  EXPECT_EQ(e1.type(), pb::OPEN_ACCOUNT);
  EXPECT_EQ(e1.client_id(), "open:fund/general");

  for (uint64_t missing : {uint64_t{0}, head.seq() + 1}) {
    pb::GetEntryRequest req;
    req.set_seq(missing);
    pb::Entry e;
    EXPECT_TRUE(IsError(client_->Call(&Stub::GetEntry, req, &e), grpc::NOT_FOUND, "seq"));
  }
}

TEST_F(ServerTest, GetAccountListAccountsAndGetStatementShowBalancesAndHistory) {
  World w = SetUpWorld();
  pb::Account fund = Account("fund/general");
  EXPECT_EQ(fund.kind(), pb::FUND);
  EXPECT_EQ(fund.asset(), "CNY");
  EXPECT_FALSE(fund.restricted());
  EXPECT_EQ(fund.opened_seq(), 1u);
  EXPECT_GT(fund.slice_count(), 0u);
  EXPECT_EQ(BalanceOf("fund/general"), 80000);
  EXPECT_TRUE(Account("project/school").restricted());
  EXPECT_TRUE(Account("fund/restricted").restricted());

  pb::GetAccountRequest missing;
  missing.set_account("fund/nowhere");
  pb::Account ignored;
  EXPECT_TRUE(IsError(client_->Call(&Stub::GetAccount, missing, &ignored), grpc::NOT_FOUND,
                      "fund/nowhere"));

  pb::ListAccountsRequest all;
  pb::AccountList list;
  ASSERT_TRUE(IsOk(client_->Call(&Stub::ListAccounts, all, &list)));
  EXPECT_EQ(list.total_count(), 8u);
  ASSERT_EQ(list.accounts_size(), 8);
  EXPECT_EQ(list.accounts(0), "fund/general");  // opening order

  pb::ListAccountsRequest funds;
  funds.set_kind(pb::FUND);
  funds.set_offset(1);
  funds.set_limit(1);
  pb::AccountList fund_list;
  ASSERT_TRUE(IsOk(client_->Call(&Stub::ListAccounts, funds, &fund_list)));
  EXPECT_EQ(fund_list.total_count(), 2u);
  ASSERT_EQ(fund_list.accounts_size(), 1);
  EXPECT_EQ(fund_list.accounts(0), "fund/restricted");

  pb::ListAccountsRequest too_big;
  too_big.set_limit(kPageItemsMax + 1);
  EXPECT_TRUE(IsError(client_->Call(&Stub::ListAccounts, too_big, &list),
                      grpc::INVALID_ARGUMENT, "limit"));

  // The statement: open, donation, allocation out, donation, reversal.
  pb::StatementRequest sreq;
  sreq.set_account("fund/general");
  pb::Statement st;
  ASSERT_TRUE(IsOk(client_->Call(&Stub::GetStatement, sreq, &st)));
  EXPECT_EQ(st.account(), "fund/general");
  ASSERT_EQ(st.total_count(), 5u);
  ASSERT_EQ(st.lines_size(), 5);
  EXPECT_EQ(st.lines(1).seq(), w.donation_seq);
  EXPECT_EQ(st.lines(1).type(), pb::DONATION);
  EXPECT_EQ(st.lines(1).counterparty(), "donor/alice");
  EXPECT_EQ(st.lines(1).delta(), 100000);
  EXPECT_EQ(st.lines(2).type(), pb::ALLOCATION);
  EXPECT_EQ(st.lines(2).counterparty(), "project/school");
  EXPECT_EQ(st.lines(2).delta(), -20000);
  EXPECT_EQ(st.lines(2).balance_after(), 80000);
  EXPECT_EQ(st.lines(4).type(), pb::CORRECTION);
  EXPECT_EQ(st.lines(4).balance_after(), 80000);

  // A time window and a page of it.
  pb::StatementRequest window;
  window.set_account("fund/general");
  window.set_from_time_us(st.lines(1).time_us());
  window.set_to_time_us(st.lines(4).time_us());
  window.set_offset(1);
  window.set_limit(1);
  pb::Statement page;
  ASSERT_TRUE(IsOk(client_->Call(&Stub::GetStatement, window, &page)));
  EXPECT_EQ(page.total_count(), 3u);
  EXPECT_EQ(page.offset(), 1u);
  ASSERT_EQ(page.lines_size(), 1);
  EXPECT_EQ(page.lines(0).seq(), st.lines(2).seq());
}

TEST_F(ServerTest, FundSummariesReportRaisedAllocatedSpentCorrectedAndHeld) {
  World w = SetUpWorld();
  Write(&Stub::Disburse, DisburseReq("pay-1", "project/school", w.recipient, 1500));
  Write(&Stub::Correct, AdjustReq("adj-1", w.donation_seq, "fund/general", "expense/ops", 250));

  pb::FundSummaryRequest req;
  req.set_account("fund/general");
  pb::FundSummary general;
  ASSERT_TRUE(IsOk(client_->Call(&Stub::GetFundSummary, req, &general)));
  EXPECT_EQ(general.kind(), pb::FUND);
  EXPECT_EQ(general.asset(), "CNY");
  EXPECT_EQ(general.raised(), 100500);
  EXPECT_EQ(general.allocated_out(), 20000);
  EXPECT_EQ(general.corrected_out(), 750);  // the reversal and the adjustment
  EXPECT_EQ(general.held(), 79750);

  req.set_account("project/school");
  pb::FundSummary school;
  ASSERT_TRUE(IsOk(client_->Call(&Stub::GetFundSummary, req, &school)));
  EXPECT_TRUE(school.restricted());
  EXPECT_EQ(school.allocated_in(), 20000);
  EXPECT_EQ(school.spent(), 1500);
  EXPECT_EQ(school.held(), 18500);

  // Other kinds are not summarised (and not confirmed to exist).
  for (const std::string& other : {std::string("donor/alice"), w.recipient,
                                   std::string("fund/nowhere")}) {
    req.set_account(other);
    pb::FundSummary ignored;
    EXPECT_TRUE(IsError(client_->Call(&Stub::GetFundSummary, req, &ignored), grpc::NOT_FOUND))
        << other;
  }

  pb::FundSummaries all;
  ASSERT_TRUE(IsOk(client_->Call(&Stub::ListFundSummaries, pb::ListFundSummariesRequest(), &all)));
  std::set<std::string> names;
  for (const pb::FundSummary& f : all.funds()) names.insert(f.account());
  EXPECT_EQ(names, (std::set<std::string>{"fund/general", "fund/restricted", "project/school"}));
}

TEST_F(ServerTest, TraceDonationShowsEveryMovementAndWhereTheMoneyIs) {
  World w = SetUpWorld();
  Write(&Stub::Disburse, DisburseReq("pay-1", "project/school", w.recipient, 1500));

  pb::TraceDonationRequest req;
  req.set_lot(w.donation_seq);
  pb::Trace t;
  ASSERT_TRUE(IsOk(client_->Call(&Stub::TraceDonation, req, &t)));
  EXPECT_EQ(t.lot(), w.donation_seq);
  EXPECT_EQ(t.donor(), "donor/alice");
  EXPECT_EQ(t.to(), "fund/general");
  EXPECT_EQ(t.amount(), 100000);
  ASSERT_EQ(t.hops_size(), 3);  // donation, allocation, disbursement
  EXPECT_EQ(t.hops(0).type(), pb::DONATION);
  EXPECT_EQ(t.hops(1).type(), pb::ALLOCATION);
  EXPECT_EQ(t.hops(1).to(), "project/school");
  EXPECT_EQ(t.hops(2).type(), pb::DISBURSEMENT);
  EXPECT_EQ(t.hops(2).to(), w.recipient);  // the private view shows the pseudonym
  int64_t sum = 0;
  for (const pb::TracePlace& p : t.held()) sum += p.amount();
  for (const pb::TracePlace& p : t.reached()) {
    sum += p.amount();
    EXPECT_EQ(p.account(), w.recipient);
    EXPECT_EQ(p.category(), "dibao");
    EXPECT_EQ(p.community(), "c001");
  }
  EXPECT_EQ(sum, t.amount());

  req.set_lot(w.allocation_seq);  // not a lot
  EXPECT_TRUE(IsError(client_->Call(&Stub::TraceDonation, req, &t), grpc::NOT_FOUND, "lot"));
}

TEST_F(ServerTest, TraceByCodeIsPublicAndHidesAnonymousDonorsAndRecipients) {
  World w = SetUpWorld();
  pb::DonateRequest anon = DonateReq("anon-1", "donor/alice", "project/school", 3000);
  anon.set_anonymous(true);
  pb::DonateResponse gift = Donate(anon);
  // The project holds 20,000 of the big lot and then this one: pay it all.
  Write(&Stub::Disburse, DisburseReq("pay-1", "project/school", w.recipient, 23000));

  pb::TraceByCodeRequest req;
  req.set_trace_code(gift.trace_code());
  pb::Trace t;
  ASSERT_TRUE(IsOk(client_->Call(&Stub::TraceByCode, req, &t)));
  EXPECT_EQ(t.lot(), gift.lot());
  EXPECT_TRUE(t.anonymous());
  EXPECT_EQ(t.donor(), "");
  EXPECT_EQ(t.amount(), 3000);
  std::string everything = t.DebugString();
  EXPECT_EQ(everything.find("donor/alice"), std::string::npos) << everything;
  EXPECT_EQ(everything.find(w.recipient), std::string::npos) << everything;
  ASSERT_GE(t.hops_size(), 2);
  EXPECT_EQ(t.hops(0).from(), "anonymous");
  EXPECT_EQ(t.hops(1).to(), "recipient");
  ASSERT_EQ(t.reached_size(), 1);
  EXPECT_EQ(t.reached(0).account(), "recipient");
  EXPECT_EQ(t.reached(0).kind(), pb::RECIPIENT);
  EXPECT_EQ(t.reached(0).category(), "dibao");
  EXPECT_EQ(t.reached(0).community(), "c001");
  EXPECT_EQ(t.reached(0).amount(), 3000);

  // A named donor stays named in the public view; recipients do not.
  req.set_trace_code(w.trace_code);
  pb::Trace named;
  ASSERT_TRUE(IsOk(client_->Call(&Stub::TraceByCode, req, &named)));
  EXPECT_EQ(named.donor(), "donor/alice");
  EXPECT_FALSE(named.anonymous());
  EXPECT_EQ(named.DebugString().find(w.recipient), std::string::npos);

  req.set_trace_code("not-a-code");
  EXPECT_TRUE(IsError(client_->Call(&Stub::TraceByCode, req, &t), grpc::INVALID_ARGUMENT,
                      "trace_code"));
  req.set_trace_code(std::string(26, 'A'));
  EXPECT_TRUE(IsError(client_->Call(&Stub::TraceByCode, req, &t), grpc::NOT_FOUND,
                      "trace_code"));
}

TEST_F(ServerTest, TraceEntryIsPagedOverTheLotsBehindAnEntry) {
  Open("fund/general", pb::FUND, "CNY");
  Open("project/p", pb::PROJECT, "CNY");
  Open("donor/alice", pb::DONOR);
  pb::DonateRequest anon = DonateReq("don-0", "donor/alice", "fund/general", 100);
  anon.set_anonymous(true);
  std::vector<uint64_t> lots{Donate(anon).lot()};
  for (int i = 1; i < 5; ++i) {
    lots.push_back(
        Donate("don-" + std::to_string(i), "donor/alice", "fund/general", 100).lot());
  }
  uint64_t alloc =
      Write(&Stub::Allocate, AllocateReq("alloc", "fund/general", "project/p", 450)).seq();

  pb::TraceEntryRequest req;
  req.set_seq(alloc);
  req.set_limit(2);
  std::vector<pb::TraceSource> sources;
  for (uint64_t offset = 0; offset < 5; offset += 2) {
    req.set_offset(offset);
    pb::EntryTrace page;
    ASSERT_TRUE(IsOk(client_->Call(&Stub::TraceEntry, req, &page)));
    EXPECT_EQ(page.seq(), alloc);
    EXPECT_EQ(page.type(), pb::ALLOCATION);
    EXPECT_EQ(page.outflow(), 450);
    EXPECT_EQ(page.total_count(), 5u);
    EXPECT_EQ(page.offset(), offset);
    EXPECT_EQ(page.sources_size(), offset == 4 ? 1 : 2);
    for (const pb::TraceSource& s : page.sources()) sources.push_back(s);
  }
  ASSERT_EQ(sources.size(), 5u);
  int64_t sum = 0;
  for (size_t i = 0; i < sources.size(); ++i) {
    EXPECT_EQ(sources[i].lot(), lots[i]);  // first in, first out
    EXPECT_EQ(sources[i].donor(), "donor/alice");
    sum += sources[i].amount();
  }
  EXPECT_TRUE(sources[0].anonymous());
  EXPECT_EQ(sources[4].amount(), 50);
  EXPECT_EQ(sum, 450);

  req.set_limit(kPageItemsMax + 1);
  pb::EntryTrace ignored;
  EXPECT_TRUE(IsError(client_->Call(&Stub::TraceEntry, req, &ignored), grpc::INVALID_ARGUMENT,
                      "limit"));
}

TEST_F(ServerTest, GetDonorStatementListsADonorsLotsWithTraces) {
  Open("fund/general", pb::FUND, "CNY");
  Open("donor/alice", pb::DONOR);
  Open("donor/bob", pb::DONOR);
  std::vector<uint64_t> lots;
  for (int i = 0; i < 3; ++i) {
    lots.push_back(Donate("a-" + std::to_string(i), "donor/alice", "fund/general", 10 + i).lot());
  }
  Donate("b-0", "donor/bob", "fund/general", 99);

  pb::DonorStatementRequest req;
  req.set_donor("donor/alice");
  req.set_offset(1);
  req.set_limit(5);
  pb::DonorStatement st;
  ASSERT_TRUE(IsOk(client_->Call(&Stub::GetDonorStatement, req, &st)));
  EXPECT_EQ(st.donor(), "donor/alice");
  EXPECT_EQ(st.total_lots(), 3u);
  EXPECT_EQ(st.offset(), 1u);
  ASSERT_EQ(st.lots_size(), 2);
  EXPECT_EQ(st.lots(0).lot(), lots[1]);
  EXPECT_EQ(st.lots(0).amount(), 11);
  EXPECT_EQ(st.lots(1).lot(), lots[2]);
  ASSERT_EQ(st.lots(1).held_size(), 1);
  EXPECT_EQ(st.lots(1).held(0).account(), "fund/general");

  req.set_donor("donor/nobody");
  EXPECT_TRUE(IsError(client_->Call(&Stub::GetDonorStatement, req, &st), grpc::NOT_FOUND,
                      "donor"));
}

TEST_F(ServerTest, GetRegistryListsTheDistrictsCategoriesAndCommunities) {
  pb::Registry reg;
  ASSERT_TRUE(IsOk(client_->Call(&Stub::GetRegistry, pb::GetRegistryRequest(), &reg)));
  EXPECT_EQ(reg.categories_size(), 11);
  EXPECT_EQ(reg.communities_size(), 175);
  std::set<std::string> categories;
  for (const pb::Code& c : reg.categories()) {
    categories.insert(c.code());
    EXPECT_FALSE(c.name().empty());
  }
  EXPECT_TRUE(categories.contains("dibao"));
  EXPECT_TRUE(categories.contains("disaster-victims"));
  EXPECT_EQ(reg.communities(0).code(), "c001");
  EXPECT_EQ(reg.communities(174).code(), "c175");
}

TEST_F(ServerTest, ExportListEntriesStreamsAllEntriesInOrder) {
  SetUpWorld();
  const pb::Head head = client_->Head();
  std::vector<pb::Entry> entries;
  ASSERT_TRUE(IsOk(client_->ListEntries(0, 0, &entries)));
  ASSERT_EQ(entries.size(), head.seq());
  std::string prev(32, '\0');
  for (size_t i = 0; i < entries.size(); ++i) {
    EXPECT_EQ(entries[i].seq(), i + 1);
    EXPECT_EQ(entries[i].prev_hash(), prev);
    EXPECT_FALSE(entries[i].entry_bytes().empty());
    prev = entries[i].hash();
  }
  EXPECT_EQ(prev, head.hash());

  std::vector<pb::Entry> middle;
  ASSERT_TRUE(IsOk(client_->ListEntries(3, 4, &middle)));
  ASSERT_EQ(middle.size(), 4u);
  EXPECT_EQ(middle.front().seq(), 3u);
  EXPECT_EQ(middle.back().seq(), 6u);
  EXPECT_EQ(middle.back().hash(), entries[5].hash());

  std::vector<pb::Entry> beyond;
  ASSERT_TRUE(IsOk(client_->ListEntries(head.seq() + 1, 0, &beyond)));
  EXPECT_TRUE(beyond.empty());
}

TEST_F(ServerTest, ExportTailEntriesStreamsNewEntriesUntilCancelled) {
  Open("fund/general", pb::FUND, "CNY");
  Open("donor/alice", pb::DONOR);
  const uint64_t next = client_->HeadSeq() + 1;

  grpc::ClientContext ctx;
  client_->Prepare(&ctx);
  pb::TailEntriesRequest req;
  req.set_from_seq(next);
  auto reader = client_->exporter()->TailEntries(&ctx, req);
  std::vector<pb::Entry> got;
  std::thread tail([&] {
    pb::Entry e;
    while (got.size() < 2 && reader->Read(&e)) got.push_back(e);
  });

  uint64_t a = Donate("tail-1", "donor/alice", "fund/general", 1).lot();
  uint64_t b = Donate("tail-2", "donor/alice", "fund/general", 2).lot();
  tail.join();
  ctx.TryCancel();
  grpc::Status s = reader->Finish();
  EXPECT_EQ(s.error_code(), grpc::CANCELLED) << Describe(s);

  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].seq(), a);
  EXPECT_EQ(got[1].seq(), b);
  EXPECT_EQ(got[0].client_id(), "tail-1");
  EXPECT_EQ(got[1].prev_hash(), got[0].hash());

  // A tail from an old seq first replays what exists.
  pb::Entry first;
  ASSERT_TRUE(IsOk(client_->TailOne(1, &first)));
  EXPECT_EQ(first.seq(), 1u);
}

TEST_F(ServerTest, ShutdownEndsAnOpenTail) {
  Open("fund/general", pb::FUND, "CNY");
  grpc::ClientContext ctx;
  client_->Prepare(&ctx);
  pb::TailEntriesRequest req;
  req.set_from_seq(1);
  auto reader = client_->exporter()->TailEntries(&ctx, req);
  pb::Entry first;
  ASSERT_TRUE(reader->Read(&first));  // the tail is running on the server
  EXPECT_EQ(first.seq(), 1u);
  std::thread reading([&] {
    pb::Entry e;
    while (reader->Read(&e)) {
    }
  });
  const auto start = std::chrono::steady_clock::now();
  StopServer();
  const auto took = std::chrono::steady_clock::now() - start;
  reading.join();
  grpc::Status s = reader->Finish();
  EXPECT_EQ(s.error_code(), grpc::UNAVAILABLE) << Describe(s);
  // The tail notices within its poll interval; Shutdown does not wait for
  // its grace period to run out.
  EXPECT_LT(took, std::chrono::seconds(4));
}

TEST_F(ServerTest, ReadRpcsRejectBadPagesRangesAndUnknownIds) {
  SetUpWorld();
  pb::Statement st;
  pb::StatementRequest sreq;
  sreq.set_account("fund/general");
  sreq.set_from_time_us(2000);
  sreq.set_to_time_us(1000);
  EXPECT_TRUE(IsError(client_->Call(&Stub::GetStatement, sreq, &st), grpc::INVALID_ARGUMENT,
                      "to_time_us"));
  sreq.set_to_time_us(0);
  sreq.set_limit(kPageItemsMax + 1);
  EXPECT_TRUE(IsError(client_->Call(&Stub::GetStatement, sreq, &st), grpc::INVALID_ARGUMENT,
                      "limit"));
  sreq.set_limit(0);
  sreq.set_account("fund/nowhere");
  EXPECT_TRUE(IsError(client_->Call(&Stub::GetStatement, sreq, &st), grpc::NOT_FOUND,
                      "account"));

  pb::DonorStatementRequest dreq;
  dreq.set_donor("donor/alice");
  dreq.set_limit(kPageItemsMax + 1);
  pb::DonorStatement ds;
  EXPECT_TRUE(IsError(client_->Call(&Stub::GetDonorStatement, dreq, &ds),
                      grpc::INVALID_ARGUMENT, "limit"));

  pb::TraceEntryRequest treq;
  treq.set_seq(0);
  pb::EntryTrace et;
  EXPECT_TRUE(IsError(client_->Call(&Stub::TraceEntry, treq, &et), grpc::NOT_FOUND, "seq"));

  pb::TraceDonationRequest lreq;
  lreq.set_lot(0);
  pb::Trace t;
  EXPECT_TRUE(IsError(client_->Call(&Stub::TraceDonation, lreq, &t), grpc::NOT_FOUND, "lot"));

  pb::ListAccountsRequest beyond;
  beyond.set_offset(1000);
  pb::AccountList list;
  ASSERT_TRUE(IsOk(client_->Call(&Stub::ListAccounts, beyond, &list)));
  EXPECT_EQ(list.accounts_size(), 0);
  EXPECT_EQ(list.total_count(), 8u);
}

TEST_F(ServerTest, AdminBackupWritesAConsistentCopyIntoANewDirectory) {
  SetUpWorld();
  const uint64_t head = client_->HeadSeq();
  pb::BackupResponse resp;
  const std::string dir = dir_.Sub("backup");
  ASSERT_TRUE(IsOk(client_->Backup(dir, &resp)));
  EXPECT_EQ(resp.dir(), dir);
  EXPECT_EQ(resp.seq(), head);
  EXPECT_TRUE(std::filesystem::is_directory(dir));
  EXPECT_TRUE(std::filesystem::exists(dir + "/CURRENT"));

  EXPECT_TRUE(IsError(client_->Backup(dir, &resp), grpc::FAILED_PRECONDITION, "dir"));
  EXPECT_TRUE(IsError(client_->Backup("", &resp), grpc::INVALID_ARGUMENT, "dir"));
}

TEST_F(ServerTest, HealthCheckAnswersServing) {
  grpc::GenericStub stub(client_->channel());
  grpc::ClientContext ctx;
  client_->Prepare(&ctx);
  const std::string nothing;
  grpc::Slice empty(nothing);
  grpc::ByteBuffer request(&empty, 1);  // an empty HealthCheckRequest is zero bytes
  grpc::ByteBuffer response;
  std::promise<grpc::Status> done;
  stub.UnaryCall(&ctx, "/grpc.health.v1.Health/Check", grpc::StubOptions(), &request, &response,
                 [&done](grpc::Status s) { done.set_value(std::move(s)); });
  grpc::Status s = done.get_future().get();
  ASSERT_TRUE(IsOk(s));
  std::vector<grpc::Slice> slices;
  ASSERT_TRUE(response.Dump(&slices).ok());
  std::string bytes;
  for (const grpc::Slice& slice : slices) {
    bytes.append(reinterpret_cast<const char*>(slice.begin()), slice.size());
  }
  EXPECT_EQ(bytes, std::string("\x08\x01", 2));  // status = SERVING
}

TEST_F(ServerTest, EveryRpcIsLoggedOnceWithoutRequestContent) {
  SetUpWorld();
  const size_t before = logs_.Lines().size();
  pb::Head head;
  ASSERT_TRUE(IsOk(client_->Call(&Stub::GetHead, pb::GetHeadRequest(), &head)));
  pb::DonateResponse ignored;
  ASSERT_FALSE(client_->Call(&Stub::Donate, DonateReq("x", "donor/alice", "fund/general", 0),
                             &ignored)
                   .ok());
  std::vector<std::string> lines = logs_.Lines();
  ASSERT_EQ(lines.size(), before + 2);
  EXPECT_THAT(lines[before], HasSubstr("\"rpc\":\"GetHead\""));
  EXPECT_THAT(lines[before], HasSubstr("\"code\":\"OK\""));
  EXPECT_THAT(lines[before + 1], HasSubstr("\"rpc\":\"Donate\""));
  EXPECT_THAT(lines[before + 1], HasSubstr("\"code\":\"INVALID_ARGUMENT\""));
  for (const std::string& line : lines) EXPECT_EQ(line.find("donor/alice"), std::string::npos);
}

// ================================================================ deadlines

TEST_F(ServerTest, ACallWithAnExpiredDeadlineReturnsDeadlineExceeded) {
  Open("fund/general", pb::FUND, "CNY");
  Open("donor/alice", pb::DONOR);
  const uint64_t before = client_->HeadSeq();
  {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() - std::chrono::seconds(1));
    pb::Head head;
    grpc::Status s = client_->ledger()->GetHead(&ctx, pb::GetHeadRequest(), &head);
    EXPECT_EQ(s.error_code(), grpc::DEADLINE_EXCEEDED) << Describe(s);
  }
  {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() - std::chrono::seconds(1));
    pb::DonateResponse resp;
    grpc::Status s = client_->ledger()->Donate(
        &ctx, DonateReq("late", "donor/alice", "fund/general", 5), &resp);
    EXPECT_EQ(s.error_code(), grpc::DEADLINE_EXCEEDED) << Describe(s);
  }
  EXPECT_EQ(client_->HeadSeq(), before);
}

TEST_F(ServerTest, ARequestAboveTheMaximumMessageSizeIsResourceExhaustedAndWritesNothing) {
  Open("fund/general", pb::FUND, "CNY");
  Open("donor/alice", pb::DONOR);
  const uint64_t before = client_->HeadSeq();
  pb::DonateResponse resp;
  // docs/api.md: at most 16 MiB a message; a 16 MiB memo makes it larger.
  pb::DonateRequest huge = DonateReq("huge", "donor/alice", "fund/general", 5);
  huge.set_memo(std::string(size_t{16} << 20, 'm'));
  grpc::Status s = client_->Call(&Stub::Donate, huge, &resp);
  EXPECT_EQ(s.error_code(), grpc::RESOURCE_EXHAUSTED) << Describe(s);
  // Below the message limit the request reaches the ledger, whose own limit
  // on free text then names the field.
  pb::DonateRequest long_memo = DonateReq("long-memo", "donor/alice", "fund/general", 5);
  long_memo.set_memo(std::string(size_t{1} << 20, 'm'));
  s = client_->Call(&Stub::Donate, long_memo, &resp);
  EXPECT_EQ(s.error_code(), grpc::INVALID_ARGUMENT) << Describe(s);
  EXPECT_THAT(s.error_message(), HasSubstr("memo"));
  EXPECT_EQ(client_->HeadSeq(), before);
}


// ================================================================ checkout and vouchers

// One hour of ledger time, for voucher expiries.
constexpr int64_t kHourUs = int64_t{3600} * 1'000'000;

TEST_F(ServerTest, RecordPurchaseRetryIsADuplicateAndAChangedAmountIsAlreadyExists) {
  SetUpShop();
  pb::PurchaseRequest req = PurchaseReq("store/a", "A-1001", 123456, "member/42");
  req.set_want_trace_code(true);
  const pb::PurchaseResult first = Purchase(req);
  EXPECT_FALSE(first.result().duplicate());
  EXPECT_EQ(first.rate_bp(), 200u);
  EXPECT_EQ(first.contribution(), 2469);  // 123,456 × 2% = 2,469.12, rounded half up
  EXPECT_EQ(first.lot(), first.result().seq());
  EXPECT_TRUE(IsTraceCode(first.trace_code())) << first.trace_code();

  const pb::Head head = client_->Head();
  const pb::PurchaseResult retry = Purchase(req);
  EXPECT_TRUE(retry.result().duplicate());
  EXPECT_EQ(retry.result().seq(), first.result().seq());
  EXPECT_EQ(retry.result().time_us(), first.result().time_us());
  EXPECT_EQ(retry.contribution(), first.contribution());
  EXPECT_EQ(retry.lot(), first.lot());
  EXPECT_EQ(retry.trace_code(), first.trace_code());

  pb::PurchaseRequest changed = req;
  changed.set_amount(123457);
  pb::PurchaseResult out;
  EXPECT_TRUE(IsError(client_->Call(&CStub::RecordPurchase, changed, &out), grpc::ALREADY_EXISTS,
                      "purchase.amount"));
  EXPECT_EQ(client_->Head().hash(), head.hash());
  EXPECT_EQ(BalanceOf("fund/general"), 100000 + 2469);

  // Half a fen rounds up; less than half rounds to nothing: no lot, no code.
  EXPECT_EQ(Purchase(PurchaseReq("store/a", "A-1002", 25)).contribution(), 1);
  pb::PurchaseRequest tiny = PurchaseReq("store/a", "A-1003", 24);
  tiny.set_want_trace_code(true);
  const pb::PurchaseResult nothing = Purchase(tiny);
  EXPECT_EQ(nothing.contribution(), 0);
  EXPECT_EQ(nothing.lot(), 0u);
  EXPECT_EQ(nothing.trace_code(), "");
  EXPECT_GT(nothing.result().seq(), 0u);  // the sale is still recorded

  pb::GetEntryRequest entry_req;
  entry_req.set_seq(first.result().seq());
  pb::Entry entry;
  ASSERT_TRUE(IsOk(client_->Call(&Stub::GetEntry, entry_req, &entry)));
  EXPECT_EQ(entry.type(), pb::PURCHASE);
  EXPECT_EQ(entry.summary(),
            "purchase order A-1001 at store store/a: 1234.56 CNY, contribution 24.69 CNY to "
            "fund/general");
}

TEST_F(ServerTest, RecordRefundRetryIsADuplicateAndReversesTheContributionInProportion) {
  SetUpShop();
  ASSERT_EQ(Purchase(PurchaseReq("store/a", "A-1", 10000)).contribution(), 200);

  const pb::RefundResult first = Refund(RefundReq("store/a", "A-1", "R-1", 3333));
  EXPECT_EQ(first.reversal(), 67);  // round_half_up(200 × 3,333 / 10,000) = 66.66 → 67
  EXPECT_EQ(first.covered_by_fund(), 0);
  const pb::Head head = client_->Head();
  const pb::RefundResult retry = Refund(RefundReq("store/a", "A-1", "R-1", 3333));
  EXPECT_TRUE(retry.result().duplicate());
  EXPECT_EQ(retry.result().seq(), first.result().seq());
  EXPECT_EQ(retry.reversal(), first.reversal());
  pb::RefundResult out;
  EXPECT_TRUE(IsError(client_->Call(&CStub::RecordRefund, RefundReq("store/a", "A-1", "R-1", 3334),
                                    &out),
                      grpc::ALREADY_EXISTS, "refund.amount"));
  EXPECT_EQ(client_->Head().hash(), head.hash());

  // The rest of the sale: the reversals add up to the whole contribution.
  EXPECT_EQ(Refund(RefundReq("store/a", "A-1", "R-2", 6667)).reversal(), 133);
  EXPECT_TRUE(IsError(
      client_->Call(&CStub::RecordRefund, RefundReq("store/a", "A-1", "R-3", 1), &out),
      grpc::FAILED_PRECONDITION, "refund.amount"));
  EXPECT_TRUE(IsError(
      client_->Call(&CStub::RecordRefund, RefundReq("store/a", "A-404", "R-4", 1), &out),
      grpc::NOT_FOUND, "order_id"));
  EXPECT_EQ(BalanceOf("fund/general"), 100000);
}

TEST_F(ServerTest, RedeemVoucherRetryIsADuplicateAndMalformedOrUnknownCodesAreRejected) {
  Shop shop = SetUpShop();
  const pb::IssueVoucherResponse v = Issue(
      IssueReq("iss-1", "fund/general", shop.recipient, 5000, clock_.NowMicros() + kHourUs));

  const pb::RedemptionResult first = Redeem(RedeemReq("store/a", "A-7", AsTyped(v.code()), 1200));
  EXPECT_FALSE(first.result().duplicate());
  EXPECT_EQ(first.voucher(), v.voucher());
  EXPECT_EQ(first.amount(), 1200);
  EXPECT_EQ(first.remaining(), 3800);
  // The same redemption, the code sent as printed this time.
  const pb::Head head = client_->Head();
  const pb::RedemptionResult retry = Redeem(RedeemReq("store/a", "A-7", v.code(), 1200));
  EXPECT_TRUE(retry.result().duplicate());
  EXPECT_EQ(retry.result().seq(), first.result().seq());
  EXPECT_EQ(retry.voucher(), v.voucher());
  EXPECT_EQ(retry.remaining(), 3800);

  pb::RedemptionResult out;
  EXPECT_TRUE(IsError(client_->Call(&CStub::RedeemVoucher,
                                    RedeemReq("store/a", "A-7", v.code(), 1300), &out),
                      grpc::ALREADY_EXISTS, "redemption.amount"));
  for (const std::string& bad : {std::string(), std::string("short"), v.code() + "A",
                                 v.code().substr(1) + "1", v.code().substr(1) + "="}) {
    EXPECT_TRUE(IsError(
        client_->Call(&CStub::RedeemVoucher, RedeemReq("store/a", "A-8", bad, 100), &out),
        grpc::INVALID_ARGUMENT, "code"))
        << bad;
  }
  EXPECT_TRUE(IsError(client_->Call(&CStub::RedeemVoucher,
                                    RedeemReq("store/a", "A-8", std::string(26, 'A'), 100), &out),
                      grpc::NOT_FOUND, "code"));
  EXPECT_TRUE(IsError(
      client_->Call(&CStub::RedeemVoucher, RedeemReq("store/a", "A-8", v.code(), 3801), &out),
      grpc::FAILED_PRECONDITION, "redemption.amount"));
  EXPECT_EQ(client_->Head().hash(), head.hash());
  EXPECT_EQ(VoucherById(v.voucher()).remaining(), 3800);
}

TEST_F(ServerTest, SubmitCheckoutBatchAnswersEveryItemAndARetriedBatchIsAllDuplicates) {
  Shop shop = SetUpShop();
  Purchase(PurchaseReq("store/a", "A-1", 10000));
  const pb::IssueVoucherResponse v = Issue(
      IssueReq("iss-1", "fund/general", shop.recipient, 5000, clock_.NowMicros() + kHourUs));

  pb::CheckoutBatchRequest req;
  *req.add_items()->mutable_purchase() = PurchaseReq("store/b", "B-1", 5000);
  *req.add_items()->mutable_refund() = RefundReq("store/a", "A-1", "R-1", 5000);
  *req.add_items()->mutable_redeem() = RedeemReq("store/b", "B-1", v.code(), 2000);
  req.add_items();  // nothing set
  *req.add_items()->mutable_purchase() = PurchaseReq("store/b", "B-2", -5);
  *req.add_items()->mutable_redeem() = RedeemReq("store/b", "B-3", "not a code", 1);

  const uint64_t before = client_->HeadSeq();
  pb::CheckoutBatchResponse first;
  ASSERT_TRUE(IsOk(client_->Call(&CStub::SubmitCheckoutBatch, req, &first)));
  ASSERT_EQ(first.results_size(), 6);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(first.results(i).code(), grpc::OK) << i << ": " << first.results(i).message();
  }
  EXPECT_EQ(first.results(0).purchase().contribution(), 100);
  EXPECT_EQ(first.results(0).purchase().lot(), first.results(0).purchase().result().seq());
  EXPECT_EQ(first.results(1).refund().reversal(), 100);
  EXPECT_EQ(first.results(2).redemption().voucher(), v.voucher());
  EXPECT_EQ(first.results(2).redemption().remaining(), 3000);
  EXPECT_EQ(first.results(3).code(), grpc::INVALID_ARGUMENT);
  EXPECT_EQ(first.results(3).message(), "items[3]: empty");
  EXPECT_EQ(first.results(4).code(), grpc::INVALID_ARGUMENT);
  EXPECT_THAT(first.results(4).message(), HasSubstr("purchase.amount"));
  EXPECT_EQ(first.results(5).code(), grpc::INVALID_ARGUMENT);
  EXPECT_THAT(first.results(5).message(), HasSubstr("code"));
  EXPECT_EQ(client_->HeadSeq(), before + 3);

  // The whole batch again: the same answers, nothing written.
  pb::CheckoutBatchResponse again;
  ASSERT_TRUE(IsOk(client_->Call(&CStub::SubmitCheckoutBatch, req, &again)));
  ASSERT_EQ(again.results_size(), 6);
  EXPECT_TRUE(again.results(0).purchase().result().duplicate());
  EXPECT_TRUE(again.results(1).refund().result().duplicate());
  EXPECT_TRUE(again.results(2).redemption().result().duplicate());
  for (int i = 0; i < 6; ++i) {
    pb::CheckoutItemResult expected = first.results(i);
    pb::CheckoutItemResult got = again.results(i);
    for (pb::CheckoutItemResult* r : {&expected, &got}) {
      r->mutable_purchase()->mutable_result()->clear_duplicate();
      r->mutable_refund()->mutable_result()->clear_duplicate();
      r->mutable_redemption()->mutable_result()->clear_duplicate();
    }
    EXPECT_EQ(got.DebugString(), expected.DebugString()) << i;
  }
  EXPECT_EQ(client_->HeadSeq(), before + 3);

  // A retried item with another amount.
  pb::CheckoutBatchRequest changed;
  *changed.add_items()->mutable_purchase() = PurchaseReq("store/b", "B-1", 5001);
  pb::CheckoutBatchResponse resp;
  ASSERT_TRUE(IsOk(client_->Call(&CStub::SubmitCheckoutBatch, changed, &resp)));
  ASSERT_EQ(resp.results_size(), 1);
  EXPECT_EQ(resp.results(0).code(), grpc::ALREADY_EXISTS);
  EXPECT_THAT(resp.results(0).message(), HasSubstr("purchase.amount"));

  pb::CheckoutBatchRequest empty;
  EXPECT_TRUE(IsError(client_->Call(&CStub::SubmitCheckoutBatch, empty, &resp),
                      grpc::INVALID_ARGUMENT, "items"));
  pb::CheckoutBatchRequest oversized;
  for (int i = 0; i <= kCheckoutBatchItemsMax; ++i) {
    *oversized.add_items()->mutable_purchase() =
        PurchaseReq("store/a", "O-" + std::to_string(i), 100);
  }
  EXPECT_TRUE(IsError(client_->Call(&CStub::SubmitCheckoutBatch, oversized, &resp),
                      grpc::INVALID_ARGUMENT, "items"));
  EXPECT_EQ(client_->HeadSeq(), before + 3);
}

TEST_F(ServerTest, ACorrectionTakesARedemptionBackIntoTheVoucher) {
  Shop shop = SetUpShop();
  const pb::IssueVoucherResponse voucher =
      Issue(IssueReq("iss-rev", "fund/general", shop.recipient, 5000, clock_.NowMicros() + kHourUs));
  const int64_t from = clock_.NowMicros();
  const pb::RedemptionResult used = Redeem(RedeemReq("store/a", "A-9", voucher.code(), 2000));
  pb::CorrectRequest correct;
  correct.set_client_id("rev-1");
  correct.set_ref_seq(used.result().seq());
  correct.set_mode(pb::REVERSE);
  correct.set_reason("goods returned at the till");
  pb::WriteResult corrected;
  ASSERT_TRUE(IsOk(client_->Call(&Stub::Correct, correct, &corrected)));
  clock_.AdvanceMicros(1000);  // the period below ends now, exclusive
  const pb::Voucher after = VoucherById(voucher.voucher());
  EXPECT_EQ(after.remaining(), 5000);
  EXPECT_EQ(after.redeemed(), 0);
  pb::SettlementRequest req;
  req.set_store("store/a");
  req.set_from_time_us(from);
  pb::Settlement settlement;
  ASSERT_TRUE(IsOk(client_->Call(&CStub::GetStoreSettlement, req, &settlement)));
  ASSERT_EQ(settlement.stores_size(), 1);
  EXPECT_EQ(settlement.stores(0).redemptions(), 1u);
  EXPECT_EQ(settlement.stores(0).redemptions_reversed(), 1u);
  EXPECT_EQ(settlement.stores(0).redeemed_reversed(), 2000);
}

TEST_F(ServerTest, TheOfficeBatchIssuesAndVoidsVouchersWithTheirCodes) {
  Shop shop = SetUpShop();
  pb::BatchRequest batch;
  for (int i = 1; i <= 3; ++i) {
    *batch.add_operations()->mutable_issue_voucher() =
        IssueReq("bat-" + std::to_string(i), "fund/general", shop.recipient, 1000 * i,
                 clock_.NowMicros() + kHourUs);
  }
  pb::BatchResponse resp;
  ASSERT_TRUE(IsOk(client_->Call(&Stub::SubmitBatch, batch, &resp)));
  ASSERT_EQ(resp.results_size(), 3);
  for (int i = 0; i < 3; ++i) {
    SCOPED_TRACE(i);
    EXPECT_EQ(resp.results(i).code(), 0) << resp.results(i).message();
    EXPECT_TRUE(IsTraceCode(resp.results(i).voucher_code())) << resp.results(i).voucher_code();
    EXPECT_EQ(VoucherById(resp.results(i).result().seq()).face(), 1000 * (i + 1));
  }
  // The same request alone answers the same code.
  const pb::IssueVoucherResponse alone = Issue(batch.operations(1).issue_voucher());
  EXPECT_TRUE(alone.result().duplicate());
  EXPECT_EQ(alone.code(), resp.results(1).voucher_code());

  pb::BatchRequest voids;
  pb::VoidVoucherRequest* v = voids.add_operations()->mutable_void_voucher();
  v->set_client_id("bat-void-1");
  v->set_voucher(resp.results(0).result().seq());
  v->set_reason("issued twice");
  voids.add_operations()->mutable_void_voucher()->set_client_id("bat-void-2");  // no voucher
  ASSERT_TRUE(IsOk(client_->Call(&Stub::SubmitBatch, voids, &resp)));
  ASSERT_EQ(resp.results_size(), 2);
  EXPECT_EQ(resp.results(0).code(), 0) << resp.results(0).message();
  EXPECT_EQ(resp.results(1).code(), static_cast<int>(grpc::INVALID_ARGUMENT));
  EXPECT_EQ(VoucherById(v->voucher()).status(), pb::VOIDED);
}

TEST_F(ServerTest, IssueVoucherRetryReturnsTheSameCodeAndVoidingReturnsWhatIsLeft) {
  Shop shop = SetUpShop();
  pb::IssueVoucherRequest req =
      IssueReq("iss-1", "fund/general", shop.recipient, 5000, clock_.NowMicros() + kHourUs);
  req.add_stores("store/a");
  const pb::IssueVoucherResponse first = Issue(req);
  EXPECT_TRUE(IsTraceCode(first.code())) << first.code();  // 26 of A-Z, 2-7
  EXPECT_EQ(first.voucher(), first.result().seq());
  EXPECT_EQ(first.account(), "voucher/" + std::to_string(first.voucher()));
  const pb::IssueVoucherResponse retry = Issue(req);
  EXPECT_TRUE(retry.result().duplicate());
  EXPECT_EQ(retry.voucher(), first.voucher());
  EXPECT_EQ(retry.code(), first.code());
  const pb::IssueVoucherResponse other = Issue(
      IssueReq("iss-2", "fund/general", shop.recipient, 5000, clock_.NowMicros() + kHourUs));
  EXPECT_NE(other.code(), first.code());

  pb::IssueVoucherResponse out;
  pb::IssueVoucherRequest changed = req;
  changed.set_amount(6000);
  EXPECT_TRUE(IsError(client_->Call(&VStub::IssueVoucher, changed, &out), grpc::ALREADY_EXISTS,
                      "voucher_issue.amount"));
  pb::IssueVoucherRequest anonymous = req;
  anonymous.clear_client_id();
  EXPECT_TRUE(IsError(client_->Call(&VStub::IssueVoucher, anonymous, &out),
                      grpc::INVALID_ARGUMENT, "client_id"));

  pb::GetVoucherRequest by_code;
  by_code.set_code(AsTyped(first.code()));
  pb::Voucher voucher;
  ASSERT_TRUE(IsOk(client_->Call(&VStub::GetVoucher, by_code, &voucher)));
  EXPECT_EQ(voucher.voucher(), first.voucher());
  EXPECT_EQ(voucher.recipient(), shop.recipient);  // admin sees whose it is
  EXPECT_EQ(voucher.category(), "dibao");
  EXPECT_EQ(voucher.face(), 5000);
  EXPECT_EQ(voucher.status(), pb::ACTIVE);
  ASSERT_EQ(voucher.stores_size(), 1);
  EXPECT_EQ(voucher.stores(0), "store/a");
  by_code.set_code("0000");
  EXPECT_TRUE(IsError(client_->Call(&VStub::GetVoucher, by_code, &voucher),
                      grpc::INVALID_ARGUMENT, "code"));
  EXPECT_TRUE(IsError(client_->Call(&VStub::GetVoucher, pb::GetVoucherRequest(), &voucher),
                      grpc::INVALID_ARGUMENT, "voucher"));

  pb::RedemptionResult redeemed;
  EXPECT_TRUE(IsError(client_->Call(&CStub::RedeemVoucher,
                                    RedeemReq("store/b", "B-1", first.code(), 100), &redeemed),
                      grpc::FAILED_PRECONDITION, "store"));
  Redeem(RedeemReq("store/a", "A-1", first.code(), 1000));

  pb::VoidVoucherRequest void_req;
  void_req.set_client_id("void-1");
  void_req.set_voucher(first.voucher());
  pb::WriteResult voided;
  EXPECT_TRUE(IsError(client_->Call(&VStub::VoidVoucher, void_req, &voided),
                      grpc::INVALID_ARGUMENT, "reason"));
  void_req.set_reason("the family moved away");
  ASSERT_TRUE(IsOk(client_->Call(&VStub::VoidVoucher, void_req, &voided)));
  pb::WriteResult void_retry;
  ASSERT_TRUE(IsOk(client_->Call(&VStub::VoidVoucher, void_req, &void_retry)));
  EXPECT_TRUE(void_retry.duplicate());
  EXPECT_EQ(void_retry.seq(), voided.seq());
  pb::VoidVoucherRequest no_voucher = void_req;
  no_voucher.set_voucher(0);
  EXPECT_TRUE(IsError(client_->Call(&VStub::VoidVoucher, no_voucher, &voided),
                      grpc::INVALID_ARGUMENT, "voucher"));
  EXPECT_TRUE(IsError(client_->Call(&CStub::RedeemVoucher,
                                    RedeemReq("store/a", "A-2", first.code(), 100), &redeemed),
                      grpc::FAILED_PRECONDITION, "voided"));

  const pb::Voucher after = VoucherById(first.voucher());
  EXPECT_EQ(after.status(), pb::VOIDED);
  EXPECT_EQ(after.redeemed(), 1000);
  EXPECT_EQ(after.returned(), 4000);
  EXPECT_EQ(after.remaining(), 0);
  EXPECT_EQ(after.closed_seq(), voided.seq());

  pb::FundSummaryRequest summary_req;
  summary_req.set_account("fund/general");
  pb::FundSummary summary;
  ASSERT_TRUE(IsOk(client_->Call(&Stub::GetFundSummary, summary_req, &summary)));
  EXPECT_EQ(summary.raised(), 100000);
  EXPECT_EQ(summary.vouchers_issued(), 10000);
  EXPECT_EQ(summary.vouchers_returned(), 4000);
  EXPECT_EQ(summary.held(), 100000 - 10000 + 4000);

  pb::VoucherReport report;
  ASSERT_TRUE(IsOk(client_->Call(&VStub::GetVoucherReport, pb::VoucherReportRequest(), &report)));
  ASSERT_EQ(report.total_size(), 1);
  const pb::VoucherTotals& total = report.total(0);
  EXPECT_EQ(total.asset(), "CNY");
  EXPECT_EQ(total.issued(), 2u);
  EXPECT_EQ(total.issued_amount(), 10000);
  EXPECT_EQ(total.redeemed_amount(), 1000);
  EXPECT_EQ(total.voided(), 1u);
  EXPECT_EQ(total.voided_amount(), 4000);
  EXPECT_EQ(total.outstanding(), 1u);
  EXPECT_EQ(total.outstanding_amount(), 5000);
  ASSERT_EQ(report.by_category_size(), 1);
  EXPECT_EQ(report.by_category(0).key(), "dibao");
  ASSERT_EQ(report.by_fund_size(), 1);
  EXPECT_EQ(report.by_fund(0).key(), "fund/general");
}

TEST_F(ServerTest, StoreSettlementOverGrpcEqualsTheSumsOfTheEntries) {
  Shop shop = SetUpShop();
  const pb::IssueVoucherResponse v = Issue(
      IssueReq("iss-1", "fund/general", shop.recipient, 10000, clock_.NowMicros() + kHourUs));
  const int64_t from = clock_.NowMicros();
  std::map<std::string, pb::StoreSettlement> want;
  auto purchase = [&](const std::string& store, const std::string& order, int64_t amount) {
    const pb::PurchaseResult r = Purchase(PurchaseReq(store, order, amount));
    pb::StoreSettlement& row = want[store];
    row.set_purchases(row.purchases() + 1);
    row.set_purchase_amount(row.purchase_amount() + amount);
    row.set_contributions(row.contributions() + r.contribution());
  };
  auto refund = [&](const std::string& store, const std::string& order, const std::string& id,
                    int64_t amount) {
    const pb::RefundResult r = Refund(RefundReq(store, order, id, amount));
    pb::StoreSettlement& row = want[store];
    row.set_refunds(row.refunds() + 1);
    row.set_refund_amount(row.refund_amount() + amount);
    row.set_reversals(row.reversals() + r.reversal());
  };
  auto redeem = [&](const std::string& store, const std::string& order, int64_t amount) {
    const pb::RedemptionResult r = Redeem(RedeemReq(store, order, v.code(), amount));
    pb::StoreSettlement& row = want[store];
    row.set_redemptions(row.redemptions() + 1);
    row.set_redeemed(row.redeemed() + r.amount());
  };
  purchase("store/a", "A-1", 12345);
  purchase("store/a", "A-2", 99);
  purchase("store/a", "A-3", 50000);
  refund("store/a", "A-3", "R-1", 20000);
  refund("store/a", "A-1", "R-2", 45);
  purchase("store/b", "B-1", 777);
  redeem("store/b", "B-1", 1500);
  redeem("store/b", "B-2", 2500);
  const int64_t to = clock_.NowMicros();
  Purchase(PurchaseReq("store/a", "A-4", 100000));  // after the period: not in `want`

  pb::SettlementRequest req;
  req.set_from_time_us(from);
  req.set_to_time_us(to);
  pb::Settlement settlement;
  ASSERT_TRUE(IsOk(client_->Call(&CStub::GetStoreSettlement, req, &settlement)));
  EXPECT_EQ(settlement.from_time_us(), from);
  EXPECT_EQ(settlement.to_time_us(), to);
  ASSERT_EQ(settlement.stores_size(), 2);
  for (const pb::StoreSettlement& row : settlement.stores()) {
    SCOPED_TRACE(row.store());
    ASSERT_TRUE(want.contains(row.store()));
    pb::StoreSettlement expected = want[row.store()];
    expected.set_store(row.store());
    expected.set_asset("CNY");
    expected.set_net_contribution(expected.contributions() - expected.reversals());
    EXPECT_EQ(row.DebugString(), expected.DebugString());
  }
  EXPECT_EQ(settlement.stores(0).store(), "store/a");
  EXPECT_EQ(settlement.stores(0).contributions(), 247 + 2 + 1000);
  EXPECT_EQ(settlement.stores(0).reversals(), 400 + 1);

  // One store, until now: the later purchase is in.
  req.set_store("store/a");
  req.set_to_time_us(0);
  ASSERT_TRUE(IsOk(client_->Call(&CStub::GetStoreSettlement, req, &settlement)));
  EXPECT_EQ(settlement.to_time_us(), clock_.NowMicros());
  ASSERT_EQ(settlement.stores_size(), 1);
  EXPECT_EQ(settlement.stores(0).purchases(), 4u);
  EXPECT_EQ(settlement.stores(0).contributions(), want["store/a"].contributions() + 2000);

  req.set_store("store/nowhere");
  EXPECT_TRUE(IsError(client_->Call(&CStub::GetStoreSettlement, req, &settlement),
                      grpc::NOT_FOUND, "store"));
  req.set_store("");
  req.set_to_time_us(from);
  EXPECT_TRUE(IsError(client_->Call(&CStub::GetStoreSettlement, req, &settlement),
                      grpc::INVALID_ARGUMENT, "to_time_us"));
}

TEST_F(ServerTest, APurchaseLotsTraceShowsTheOrderAndThePublicViewHidesTheMember) {
  SetUpShop();
  pb::PurchaseRequest req = PurchaseReq("store/a", "A-9", 50000, "member/42");
  req.set_want_trace_code(true);
  const pb::PurchaseResult p = Purchase(req);
  ASSERT_EQ(p.contribution(), 1000);
  const pb::RefundResult r = Refund(RefundReq("store/a", "A-9", "R-1", 10000));
  ASSERT_EQ(r.reversal(), 200);

  const pb::Trace t = TraceOf(p.lot());
  EXPECT_EQ(t.donor(), "store/a");  // the store is the lot's legal donor
  EXPECT_EQ(t.member(), "member/42");
  EXPECT_EQ(t.order_id(), "A-9");
  EXPECT_EQ(t.amount(), 1000);
  ASSERT_EQ(t.hops_size(), 2);
  EXPECT_EQ(t.hops(0).type(), pb::PURCHASE);
  EXPECT_EQ(t.hops(0).order_id(), "A-9");
  EXPECT_EQ(t.hops(0).to(), "fund/general");
  EXPECT_EQ(t.hops(1).type(), pb::REFUND);
  EXPECT_EQ(t.hops(1).order_id(), "A-9");
  EXPECT_EQ(t.hops(1).from(), "fund/general");
  EXPECT_EQ(t.hops(1).to(), "store/a");
  EXPECT_EQ(t.hops(1).amount(), 200);

  // The shopper's slip code: the same trace, without the member.
  pb::TraceByCodeRequest by_code;
  by_code.set_trace_code(p.trace_code());
  pb::Trace pub;
  ASSERT_TRUE(IsOk(client_->Call(&Stub::TraceByCode, by_code, &pub)));
  EXPECT_EQ(pub.lot(), p.lot());
  EXPECT_EQ(pub.member(), "");
  EXPECT_EQ(pub.order_id(), "A-9");
  EXPECT_EQ(pub.DebugString().find("member/42"), std::string::npos) << pub.DebugString();
}

TEST_F(ServerTest, ADonorsTraceFollowsTheGiftIntoAVoucherAndItsRedemption) {
  Shop shop = SetUpShop();
  const pb::IssueVoucherResponse v = Issue(
      IssueReq("iss-1", "fund/general", shop.recipient, 3000, clock_.NowMicros() + kHourUs));
  Redeem(RedeemReq("store/a", "A-55", v.code(), 1000));

  const pb::Trace t = TraceOf(shop.gift_lot);
  ASSERT_EQ(t.hops_size(), 3);
  EXPECT_EQ(t.hops(0).type(), pb::DONATION);
  EXPECT_EQ(t.hops(1).type(), pb::VOUCHER_ISSUE);
  EXPECT_EQ(t.hops(1).from(), "fund/general");
  EXPECT_EQ(t.hops(1).to(), v.account());
  EXPECT_EQ(t.hops(1).amount(), 3000);
  EXPECT_EQ(t.hops(1).category(), "dibao");
  EXPECT_EQ(t.hops(1).community(), "c001");
  EXPECT_EQ(t.hops(2).type(), pb::REDEMPTION);
  EXPECT_EQ(t.hops(2).from(), v.account());
  EXPECT_EQ(t.hops(2).to(), "store/a");
  EXPECT_EQ(t.hops(2).order_id(), "A-55");
  EXPECT_EQ(t.hops(2).amount(), 1000);
  EXPECT_EQ(t.DebugString().find(shop.recipient), std::string::npos);
  int64_t sum = 0;
  for (const pb::TracePlace& p : t.held()) sum += p.amount();
  for (const pb::TracePlace& p : t.reached()) sum += p.amount();
  EXPECT_EQ(sum, t.amount());

  // The donor's own view by trace code: the same chain, the recipient only
  // by category and community.
  pb::TraceByCodeRequest by_code;
  by_code.set_trace_code(shop.gift_trace_code);
  pb::Trace pub;
  ASSERT_TRUE(IsOk(client_->Call(&Stub::TraceByCode, by_code, &pub)));
  ASSERT_EQ(pub.hops_size(), 3);
  EXPECT_EQ(pub.hops(1).category(), "dibao");
  EXPECT_EQ(pub.hops(2).order_id(), "A-55");
  EXPECT_EQ(pub.DebugString().find(shop.recipient), std::string::npos);

  pb::GetEntryRequest entry_req;
  pb::Entry entry;
  entry_req.set_seq(v.voucher());
  ASSERT_TRUE(IsOk(client_->Call(&Stub::GetEntry, entry_req, &entry)));
  EXPECT_EQ(entry.type(), pb::VOUCHER_ISSUE);
  EXPECT_THAT(entry.summary(), StartsWith("voucher " + v.account() +
                                          " of 30.00 CNY from fund/general for " +
                                          shop.recipient));
  entry_req.set_seq(t.hops(2).seq());
  ASSERT_TRUE(IsOk(client_->Call(&Stub::GetEntry, entry_req, &entry)));
  EXPECT_EQ(entry.summary(),
            "redemption of 10.00 CNY from " + v.account() + " at store store/a for order A-55");
}

TEST_F(ServerTest, ExpiredVouchersAreSweptBackToTheirFundAndExpiryIsHalfOpen) {
  Shop shop = SetUpShop();
  const int64_t expires = clock_.NowMicros() + 10'000'000;
  const pb::IssueVoucherResponse v =
      Issue(IssueReq("iss-1", "fund/general", shop.recipient, 4000, expires));
  Redeem(RedeemReq("store/a", "A-1", v.code(), 1000));

  pb::SweepVouchersResponse swept;
  ASSERT_TRUE(IsOk(client_->Call(&VStub::SweepExpiredVouchers, pb::SweepVouchersRequest(),
                                 &swept)));
  EXPECT_EQ(swept.expired_size(), 0);

  // Redeemable while the ledger's time is before the expiry, not at it.
  clock_.SetMicros(expires - 1);
  Redeem(RedeemReq("store/a", "A-2", v.code(), 500));
  clock_.SetMicros(expires);
  pb::RedemptionResult late;
  EXPECT_TRUE(IsError(
      client_->Call(&CStub::RedeemVoucher, RedeemReq("store/a", "A-3", v.code(), 1), &late),
      grpc::FAILED_PRECONDITION, "expired"));

  pb::SweepVouchersRequest too_many;
  too_many.set_max(8193);
  EXPECT_TRUE(IsError(client_->Call(&VStub::SweepExpiredVouchers, too_many, &swept),
                      grpc::INVALID_ARGUMENT, "max"));
  ASSERT_TRUE(IsOk(client_->Call(&VStub::SweepExpiredVouchers, pb::SweepVouchersRequest(),
                                 &swept)));
  ASSERT_EQ(swept.expired_size(), 1);
  EXPECT_EQ(swept.expired(0).voucher(), v.voucher());
  EXPECT_EQ(swept.expired(0).code(), grpc::OK) << swept.expired(0).message();
  EXPECT_EQ(swept.expired(0).returned(), 2500);
  EXPECT_GT(swept.expired(0).result().seq(), v.voucher());
  const pb::Voucher after = VoucherById(v.voucher());
  EXPECT_EQ(after.status(), pb::EXPIRED);
  EXPECT_EQ(after.returned(), 2500);
  EXPECT_EQ(after.closed_seq(), swept.expired(0).result().seq());
  swept.Clear();
  ASSERT_TRUE(IsOk(client_->Call(&VStub::SweepExpiredVouchers, pb::SweepVouchersRequest(),
                                 &swept)));
  EXPECT_EQ(swept.expired_size(), 0);

  // The value went back as the very lot it came from.
  const pb::Trace t = TraceOf(shop.gift_lot);
  ASSERT_GE(t.hops_size(), 1);
  const pb::TraceHop& back = t.hops(t.hops_size() - 1);
  EXPECT_EQ(back.type(), pb::VOUCHER_CLOSE);
  EXPECT_EQ(back.from(), v.account());
  EXPECT_EQ(back.to(), "fund/general");
  EXPECT_EQ(back.amount(), 2500);
  EXPECT_EQ(BalanceOf("fund/general"), 100000 - 4000 + 2500);
}

TEST_F(ServerTest, TheBackgroundSweepExpiresDueVouchersAndLogsIt) {
  Shop shop = SetUpShop();
  const pb::IssueVoucherResponse v = Issue(
      IssueReq("iss-1", "fund/general", shop.recipient, 4000, clock_.NowMicros() + kHourUs));
  StopServer();
  ServerOptions o = Options();
  o.voucher_sweep_ms = 1;
  StartServer(o);
  EXPECT_EQ(VoucherById(v.voucher()).status(), pb::ACTIVE);  // not yet due
  clock_.AdvanceMicros(kHourUs);
  const uint64_t head = server_->ledger().Head().seq;
  ASSERT_TRUE(server_->ledger().WaitForSeq(head + 1, 10'000));
  const pb::Voucher after = VoucherById(v.voucher());
  EXPECT_EQ(after.status(), pb::EXPIRED);
  EXPECT_EQ(after.returned(), 4000);
  StopServer();  // joins the sweep: its log line is written
  bool logged = false;
  for (const std::string& line : logs_.Lines()) {
    logged |= line.find("\"sweep\":\"vouchers\"") != std::string::npos &&
              line.find("\"expired\":1,") != std::string::npos &&
              line.find("\"returned\":4000,") != std::string::npos;
  }
  EXPECT_TRUE(logged);
}

TEST_F(ServerTest, TheContributionRateAndFundComeFromTheServersOptions) {
  StopServer();
  for (auto [field, change] :
       std::vector<std::pair<std::string, std::function<void(ServerOptions*)>>>{
           {"contribution_rate_bp", [](ServerOptions* o) { o->contribution_rate_bp = 10001; }},
           {"charity_fund", [](ServerOptions* o) { o->charity_fund = ""; }},
           {"voucher_sweep_ms", [](ServerOptions* o) { o->voucher_sweep_ms = -1; }}}) {
    ServerOptions o = Options();
    change(&o);
    auto server = Server::Start(std::move(o));
    ASSERT_FALSE(server.ok()) << field;
    EXPECT_EQ(server.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(server.status().message()), HasSubstr(field));
  }

  ServerOptions o = Options();
  o.contribution_rate_bp = 150;
  o.charity_fund = "project/warm-mall";
  StartServer(o);
  Open("project/warm-mall", pb::PROJECT, "CNY");
  Open("store/a", pb::MERCHANT);
  const pb::PurchaseResult p = Purchase(PurchaseReq("store/a", "A-1", 10001));
  EXPECT_EQ(p.rate_bp(), 150u);
  EXPECT_EQ(p.contribution(), 150);  // 150.015 rounds half up to 150
  pb::FundSummaryRequest req;
  req.set_account("project/warm-mall");
  pb::FundSummary summary;
  ASSERT_TRUE(IsOk(client_->Call(&Stub::GetFundSummary, req, &summary)));
  EXPECT_EQ(summary.contributions(), 150);
  EXPECT_EQ(summary.held(), 150);
  Refund(RefundReq("store/a", "A-1", "R-1", 10001));
  ASSERT_TRUE(IsOk(client_->Call(&Stub::GetFundSummary, req, &summary)));
  EXPECT_EQ(summary.refund_reversals(), 150);
  EXPECT_EQ(summary.held(), 0);

  // A retry that meets another configuration is not the same purchase.
  StopServer();
  o = Options();
  o.charity_fund = "project/warm-mall";
  StartServer(o);
  pb::PurchaseResult out;
  EXPECT_TRUE(IsError(client_->Call(&CStub::RecordPurchase, PurchaseReq("store/a", "A-1", 10001),
                                    &out),
                      grpc::ALREADY_EXISTS, "purchase.rate_bp"));
}

// ================================================================ bad input

// One invalid request: the code it must get and the field its message names.
struct BadCase {
  std::string name;
  pb::BatchOperation op;
  grpc::StatusCode code;
  std::string field;
};

// Bad cases of write requests, each a valid base request under a client id
// of its own ("<prefix>-N") changed by `mutate` (which may change the id).
class BadCaseList {
 public:
  explicit BadCaseList(std::string prefix) : prefix_(std::move(prefix)) {}

  template <typename Request, typename Mutate>
  void Add(std::string name, grpc::StatusCode code, std::string field, Request base,
           Mutate mutate) {
    base.set_client_id(prefix_ + "-" + std::to_string(cases_.size()));
    mutate(base);
    pb::BatchOperation op;
    SetOperation(base, &op);
    cases_.push_back({std::move(name), std::move(op), code, std::move(field)});
  }

  const std::vector<BadCase>& cases() const { return cases_; }

 private:
  std::string prefix_;
  std::vector<BadCase> cases_;
};

// Request `r` under client id `id`, as one batch operation.
template <typename Request>
pb::BatchOperation AsOperation(Request r, const std::string& id) {
  r.set_client_id(id);
  pb::BatchOperation op;
  SetOperation(r, &op);
  return op;
}

// Each base request, sent unchanged, succeeds and writes one entry after
// `head_seq`: the bad cases made of them failed because of their changes.
void ExpectBasesValid(const Client& client, uint64_t head_seq,
                      const std::vector<pb::BatchOperation>& bases) {
  for (size_t i = 0; i < bases.size(); ++i) {
    EXPECT_TRUE(IsOk(CallUnary(client, bases[i]))) << "base " << i;
  }
  EXPECT_EQ(client.HeadSeq(), head_seq + bases.size());
}

// Sends every case alone and in a batch: each gets its code and names its
// field, and none writes anything (head and derived state unchanged).
void ExpectRefusedWritingNothing(const Client& client, const Ledger& ledger,
                                 const std::vector<BadCase>& cases) {
  const pb::Head head = client.Head();
  const std::string digest = ledger.StateDigest();
  for (const BadCase& bad : cases) {
    SCOPED_TRACE(bad.name);
    EXPECT_TRUE(IsError(CallUnary(client, bad.op), bad.code, bad.field)) << "(unary)";
    EXPECT_TRUE(IsError(CallInBatch(client, bad.op), bad.code, bad.field)) << "(batch)";
    const pb::Head now = client.Head();
    ASSERT_EQ(now.seq(), head.seq()) << "an invalid request wrote an entry";
    ASSERT_EQ(now.hash(), head.hash());
  }
  EXPECT_EQ(ledger.StateDigest(), digest);
}

class BadCases {
 public:
  BadCases(const pb::OpenAccountRequest& open, const pb::CloseAccountRequest& close,
           const pb::DonateRequest& donate, const pb::AllocateRequest& allocate,
           const pb::DisburseRequest& disburse, const pb::CorrectRequest& adjust,
           const pb::CorrectRequest& reverse, const pb::RegisterRecipientRequest& reg)
      : open_(open), close_(close), donate_(donate), allocate_(allocate), disburse_(disburse),
        adjust_(adjust), reverse_(reverse), reg_(reg) {}

  // Each adder takes the base request, mutates it and records the case with
  // a client id of its own.
  void Open(std::string name, grpc::StatusCode code, std::string field,
            std::function<void(pb::OpenAccountRequest&)> mutate) {
    pb::BatchOperation op;
    *op.mutable_open_account() = open_;
    op.mutable_open_account()->set_client_id(Id());
    mutate(*op.mutable_open_account());
    Add("OpenAccount/" + name, op, code, field);
  }
  void Close(std::string name, grpc::StatusCode code, std::string field,
             std::function<void(pb::CloseAccountRequest&)> mutate) {
    pb::BatchOperation op;
    *op.mutable_close_account() = close_;
    op.mutable_close_account()->set_client_id(Id());
    mutate(*op.mutable_close_account());
    Add("CloseAccount/" + name, op, code, field);
  }
  void Donate(std::string name, grpc::StatusCode code, std::string field,
              std::function<void(pb::DonateRequest&)> mutate) {
    pb::BatchOperation op;
    *op.mutable_donate() = donate_;
    op.mutable_donate()->set_client_id(Id());
    mutate(*op.mutable_donate());
    Add("Donate/" + name, op, code, field);
  }
  void Allocate(std::string name, grpc::StatusCode code, std::string field,
                std::function<void(pb::AllocateRequest&)> mutate) {
    pb::BatchOperation op;
    *op.mutable_allocate() = allocate_;
    op.mutable_allocate()->set_client_id(Id());
    mutate(*op.mutable_allocate());
    Add("Allocate/" + name, op, code, field);
  }
  void Disburse(std::string name, grpc::StatusCode code, std::string field,
                std::function<void(pb::DisburseRequest&)> mutate) {
    pb::BatchOperation op;
    *op.mutable_disburse() = disburse_;
    op.mutable_disburse()->set_client_id(Id());
    mutate(*op.mutable_disburse());
    Add("Disburse/" + name, op, code, field);
  }
  void Adjust(std::string name, grpc::StatusCode code, std::string field,
              std::function<void(pb::CorrectRequest&)> mutate) {
    pb::BatchOperation op;
    *op.mutable_correct() = adjust_;
    op.mutable_correct()->set_client_id(Id());
    mutate(*op.mutable_correct());
    Add("Correct(adjust)/" + name, op, code, field);
  }
  void Reverse(std::string name, grpc::StatusCode code, std::string field,
               std::function<void(pb::CorrectRequest&)> mutate) {
    pb::BatchOperation op;
    *op.mutable_correct() = reverse_;
    op.mutable_correct()->set_client_id(Id());
    mutate(*op.mutable_correct());
    Add("Correct(reverse)/" + name, op, code, field);
  }
  void Register(std::string name, grpc::StatusCode code, std::string field,
                std::function<void(pb::RegisterRecipientRequest&)> mutate) {
    pb::BatchOperation op;
    *op.mutable_register_recipient() = reg_;
    op.mutable_register_recipient()->set_client_id(Id());
    mutate(*op.mutable_register_recipient());
    Add("RegisterRecipient/" + name, op, code, field);
  }

  const std::vector<BadCase>& cases() const { return cases_; }

 private:
  std::string Id() { return "bad-" + std::to_string(next_id_++); }
  void Add(std::string name, pb::BatchOperation op, grpc::StatusCode code, std::string field) {
    cases_.push_back({std::move(name), std::move(op), code, std::move(field)});
  }

  pb::OpenAccountRequest open_;
  pb::CloseAccountRequest close_;
  pb::DonateRequest donate_;
  pb::AllocateRequest allocate_;
  pb::DisburseRequest disburse_;
  pb::CorrectRequest adjust_;
  pb::CorrectRequest reverse_;
  pb::RegisterRecipientRequest reg_;
  int next_id_ = 0;
  std::vector<BadCase> cases_;
};

TEST_F(ServerTest, EveryInvalidFieldOfEveryWriteIsRejectedNamingTheFieldAndWritesNothing) {
  const World w = SetUpWorld();
  using grpc::StatusCode;
  constexpr StatusCode kInvalid = grpc::INVALID_ARGUMENT;
  constexpr StatusCode kNotFound = grpc::NOT_FOUND;
  constexpr StatusCode kExists = grpc::ALREADY_EXISTS;
  constexpr StatusCode kState = grpc::FAILED_PRECONDITION;
  const std::string long_client_id(kClientIdBytesMax + 1, 'c');
  const std::string long_account = "fund/" + std::string(kAccountIdBytesMax - 4, 'x');
  const std::string long_text(kTextBytesMax + 1, 't');

  // Valid base requests: every case below differs from one of them in one
  // field. (The end of the test submits the bases themselves: they succeed.)
  pb::OpenAccountRequest open = OpenReq("fund/new", pb::FUND, "CNY");
  pb::CloseAccountRequest close;
  close.set_account("expense/spare");
  close.set_reason("no longer used");
  pb::DonateRequest donate = DonateReq("", "donor/alice", "fund/general", 100);
  pb::AllocateRequest allocate = AllocateReq("", "fund/general", "fund/restricted", 100);
  pb::DisburseRequest disburse = DisburseReq("", "project/school", "expense/ops", 10);
  pb::CorrectRequest adjust = AdjustReq("", w.donation_seq, "fund/general", "expense/ops", 10);
  const uint64_t spare_lot = Donate("matrix-don", "donor/alice", "fund/restricted", 300).lot();
  pb::CorrectRequest reverse = ReverseReq("", spare_lot);
  pb::RegisterRecipientRequest reg = RegisterReq("", ValidId(7), "disabled", "c042");
  BadCases c(open, close, donate, allocate, disburse, adjust, reverse, reg);

  // ---- OpenAccount ----
  c.Open("empty client_id", kInvalid, "client_id", [](auto& r) { r.set_client_id(""); });
  c.Open("over-long client_id", kInvalid, "client_id",
         [&](auto& r) { r.set_client_id(long_client_id); });
  c.Open("client_id with a space", kInvalid, "client_id", [](auto& r) { r.set_client_id("a b"); });
  c.Open("client_id with a control byte", kInvalid, "client_id",
         [](auto& r) { r.set_client_id("a\nb"); });
  c.Open("empty account", kInvalid, "account", [](auto& r) { r.set_account(""); });
  c.Open("account with a space", kInvalid, "account", [](auto& r) { r.set_account("fund/a b"); });
  c.Open("account with non-ASCII", kInvalid, "account",
         [](auto& r) { r.set_account("fund/\xe7\xa6\x8f"); });
  c.Open("over-long account", kInvalid, "account", [&](auto& r) { r.set_account(long_account); });
  c.Open("unspecified kind", kInvalid, "kind",
         [](auto& r) { r.set_kind(pb::ACCOUNT_KIND_UNSPECIFIED); });
  c.Open("recipient kind", kInvalid, "kind", [](auto& r) { r.set_kind(pb::RECIPIENT); });
  c.Open("unknown kind 42", kInvalid, "kind",
         [](auto& r) { r.set_kind(static_cast<pb::AccountKind>(42)); });
  c.Open("negative kind", kInvalid, "kind",
         [](auto& r) { r.set_kind(static_cast<pb::AccountKind>(-1)); });
  c.Open("fund without asset", kInvalid, "asset", [](auto& r) { r.set_asset(""); });
  c.Open("lower-case asset", kInvalid, "asset", [](auto& r) { r.set_asset("cny"); });
  c.Open("four-letter asset", kInvalid, "asset", [](auto& r) { r.set_asset("CNYY"); });
  c.Open("empty goods code", kInvalid, "asset", [](auto& r) { r.set_asset("item:"); });
  c.Open("upper-case goods code", kInvalid, "asset", [](auto& r) { r.set_asset("item:Rice"); });
  c.Open("over-long goods code", kInvalid, "asset",
         [](auto& r) { r.set_asset("item:" + std::string(41, 'r')); });
  c.Open("restricted project", kInvalid, "restricted", [](auto& r) {
    r.set_account("project/new");
    r.set_kind(pb::PROJECT);
    r.set_restricted(true);
  });
  c.Open("restricted donor", kInvalid, "restricted", [](auto& r) {
    r.set_account("donor/new");
    r.set_kind(pb::DONOR);
    r.set_asset("");
    r.set_restricted(true);
  });
  c.Open("over-long name", kInvalid, "name",
         [](auto& r) { r.set_name(std::string(kNameBytesMax + 1, 'n')); });
  c.Open("existing account", kExists, "account", [](auto& r) { r.set_account("fund/general"); });

  // ---- CloseAccount ----
  c.Close("empty client_id", kInvalid, "client_id", [](auto& r) { r.set_client_id(""); });
  c.Close("over-long client_id", kInvalid, "client_id",
          [&](auto& r) { r.set_client_id(long_client_id); });
  c.Close("empty account", kInvalid, "account", [](auto& r) { r.set_account(""); });
  c.Close("malformed account", kInvalid, "account", [](auto& r) { r.set_account("expense/a b"); });
  c.Close("empty reason", kInvalid, "reason", [](auto& r) { r.set_reason(""); });
  c.Close("over-long reason", kInvalid, "reason", [&](auto& r) { r.set_reason(long_text); });
  c.Close("unknown account", kNotFound, "account",
          [](auto& r) { r.set_account("expense/nobody"); });
  c.Close("account still holding money", kState, "account",
          [](auto& r) { r.set_account("fund/general"); });

  // ---- Donate ----
  c.Donate("empty client_id", kInvalid, "client_id", [](auto& r) { r.set_client_id(""); });
  c.Donate("over-long client_id", kInvalid, "client_id",
           [&](auto& r) { r.set_client_id(long_client_id); });
  c.Donate("client_id with a space", kInvalid, "client_id",
           [](auto& r) { r.set_client_id("a b"); });
  c.Donate("empty donor", kInvalid, "donor", [](auto& r) { r.set_donor(""); });
  c.Donate("malformed donor", kInvalid, "donor", [](auto& r) { r.set_donor("donor/a b"); });
  c.Donate("over-long donor", kInvalid, "donor",
           [&](auto& r) { r.set_donor("donor/" + std::string(kAccountIdBytesMax, 'd')); });
  c.Donate("empty to", kInvalid, "to", [](auto& r) { r.set_to(""); });
  c.Donate("malformed to", kInvalid, "to", [](auto& r) { r.set_to("fund/a b"); });
  c.Donate("empty asset", kInvalid, "asset", [](auto& r) { r.set_asset(""); });
  c.Donate("malformed asset", kInvalid, "asset", [](auto& r) { r.set_asset("cny"); });
  c.Donate("amount 0", kInvalid, "amount", [](auto& r) { r.set_amount(0); });
  c.Donate("amount -1", kInvalid, "amount", [](auto& r) { r.set_amount(-1); });
  c.Donate("amount above the maximum", kInvalid, "amount",
           [](auto& r) { r.set_amount(kAmountMax + 1); });
  c.Donate("amount INT64_MIN", kInvalid, "amount",
           [](auto& r) { r.set_amount(std::numeric_limits<int64_t>::min()); });
  c.Donate("unknown channel 5", kInvalid, "channel",
           [](auto& r) { r.set_channel(static_cast<pb::DonationChannel>(5)); });
  c.Donate("negative channel", kInvalid, "channel",
           [](auto& r) { r.set_channel(static_cast<pb::DonationChannel>(-1)); });
  c.Donate("over-long memo", kInvalid, "memo", [&](auto& r) { r.set_memo(long_text); });
  c.Donate("unknown donor", kNotFound, "donor", [](auto& r) { r.set_donor("donor/nobody"); });
  c.Donate("unknown fund", kNotFound, "to", [](auto& r) { r.set_to("fund/nowhere"); });
  c.Donate("asset not the fund's", kState, "asset", [](auto& r) { r.set_asset("USD"); });
  c.Donate("donor is a project", kState, "donor",
           [](auto& r) { r.set_donor("project/school"); });
  c.Donate("into an expense", kState, "to", [](auto& r) { r.set_to("expense/ops"); });
  c.Donate("create_donor with amount 0", kInvalid, "amount", [](auto& r) {
    r.set_donor("donor/new");
    r.set_create_donor(true);
    r.set_amount(0);
  });
  c.Donate("client_id reused with another amount", kExists, "client_id", [](auto& r) {
    r.set_client_id("setup-don-1");
    r.set_amount(5);
  });

  // ---- Allocate ----
  c.Allocate("empty client_id", kInvalid, "client_id", [](auto& r) { r.set_client_id(""); });
  c.Allocate("over-long client_id", kInvalid, "client_id",
             [&](auto& r) { r.set_client_id(long_client_id); });
  c.Allocate("empty from", kInvalid, "from", [](auto& r) { r.set_from(""); });
  c.Allocate("malformed from", kInvalid, "from", [](auto& r) { r.set_from("fund/a b"); });
  c.Allocate("empty to", kInvalid, "to", [](auto& r) { r.set_to(""); });
  c.Allocate("malformed to", kInvalid, "to", [](auto& r) { r.set_to("fund/a b"); });
  c.Allocate("to equals from", kInvalid, "to", [](auto& r) { r.set_to("fund/general"); });
  c.Allocate("empty asset", kInvalid, "asset", [](auto& r) { r.set_asset(""); });
  c.Allocate("malformed asset", kInvalid, "asset", [](auto& r) { r.set_asset("C1Y"); });
  c.Allocate("amount 0", kInvalid, "amount", [](auto& r) { r.set_amount(0); });
  c.Allocate("amount -1", kInvalid, "amount", [](auto& r) { r.set_amount(-1); });
  c.Allocate("amount above the maximum", kInvalid, "amount",
             [](auto& r) { r.set_amount(kAmountMax + 1); });
  c.Allocate("over-long reason", kInvalid, "reason", [&](auto& r) { r.set_reason(long_text); });
  c.Allocate("unknown from", kNotFound, "from", [](auto& r) { r.set_from("fund/nowhere"); });
  c.Allocate("unknown to", kNotFound, "to", [](auto& r) { r.set_to("fund/nowhere"); });
  c.Allocate("from a project", kState, "from", [](auto& r) {
    r.set_from("project/school");
    r.set_to("fund/general");
  });
  c.Allocate("from a restricted fund", kState, "from", [](auto& r) {
    r.set_from("fund/restricted");
    r.set_to("fund/general");
  });
  c.Allocate("to an expense", kState, "to", [](auto& r) { r.set_to("expense/ops"); });
  c.Allocate("more than held", kState, "amount", [](auto& r) { r.set_amount(80001); });
  c.Allocate("asset not the fund's", kState, "asset", [](auto& r) { r.set_asset("USD"); });

  // ---- Disburse ----
  c.Disburse("empty client_id", kInvalid, "client_id", [](auto& r) { r.set_client_id(""); });
  c.Disburse("over-long client_id", kInvalid, "client_id",
             [&](auto& r) { r.set_client_id(long_client_id); });
  c.Disburse("empty from", kInvalid, "from", [](auto& r) { r.set_from(""); });
  c.Disburse("malformed from", kInvalid, "from", [](auto& r) { r.set_from("project/a b"); });
  c.Disburse("empty to", kInvalid, "to", [](auto& r) { r.set_to(""); });
  c.Disburse("malformed to", kInvalid, "to", [](auto& r) { r.set_to("expense/a b"); });
  c.Disburse("empty asset", kInvalid, "asset", [](auto& r) { r.set_asset(""); });
  c.Disburse("malformed asset", kInvalid, "asset", [](auto& r) { r.set_asset("item:A"); });
  c.Disburse("amount 0", kInvalid, "amount", [](auto& r) { r.set_amount(0); });
  c.Disburse("amount -1", kInvalid, "amount", [](auto& r) { r.set_amount(-1); });
  c.Disburse("amount above the maximum", kInvalid, "amount",
             [](auto& r) { r.set_amount(kAmountMax + 1); });
  c.Disburse("over-long purpose", kInvalid, "purpose", [&](auto& r) { r.set_purpose(long_text); });
  c.Disburse("unknown from", kNotFound, "from", [](auto& r) { r.set_from("project/nowhere"); });
  c.Disburse("unknown recipient", kNotFound, "to",
             [](auto& r) { r.set_to("recipient/00000000000000000000000000000000"); });
  c.Disburse("to a fund", kState, "to", [](auto& r) { r.set_to("fund/general"); });
  c.Disburse("from an expense", kState, "from", [](auto& r) {
    r.set_from("expense/ops");
    r.set_to("expense/spare");
  });
  c.Disburse("more than held", kState, "amount", [](auto& r) { r.set_amount(20001); });

  // ---- Correct ----
  c.Adjust("empty client_id", kInvalid, "client_id", [](auto& r) { r.set_client_id(""); });
  c.Adjust("over-long client_id", kInvalid, "client_id",
           [&](auto& r) { r.set_client_id(long_client_id); });
  c.Adjust("unspecified mode", kInvalid, "mode",
           [](auto& r) { r.set_mode(pb::CORRECTION_MODE_UNSPECIFIED); });
  c.Adjust("unknown mode 3", kInvalid, "mode",
           [](auto& r) { r.set_mode(static_cast<pb::CorrectionMode>(3)); });
  c.Adjust("negative mode", kInvalid, "mode",
           [](auto& r) { r.set_mode(static_cast<pb::CorrectionMode>(-1)); });
  c.Adjust("empty reason", kInvalid, "reason", [](auto& r) { r.set_reason(""); });
  c.Adjust("over-long reason", kInvalid, "reason", [&](auto& r) { r.set_reason(long_text); });
  c.Adjust("ref_seq 0", kNotFound, "ref_seq", [](auto& r) { r.set_ref_seq(0); });
  c.Adjust("ref_seq beyond the head", kNotFound, "ref_seq",
           [](auto& r) { r.set_ref_seq(1'000'000'000); });
  c.Adjust("empty from", kInvalid, "from", [](auto& r) { r.set_from(""); });
  c.Adjust("malformed to", kInvalid, "to", [](auto& r) { r.set_to("expense/a b"); });
  c.Adjust("malformed asset", kInvalid, "asset", [](auto& r) { r.set_asset("yuan"); });
  c.Adjust("amount 0", kInvalid, "amount", [](auto& r) { r.set_amount(0); });
  c.Adjust("amount -1", kInvalid, "amount", [](auto& r) { r.set_amount(-1); });
  c.Adjust("amount above the maximum", kInvalid, "amount",
           [](auto& r) { r.set_amount(kAmountMax + 1); });
  c.Adjust("to equals from", kInvalid, "to", [](auto& r) { r.set_to("fund/general"); });
  c.Adjust("unknown from", kNotFound, "from", [](auto& r) { r.set_from("fund/nowhere"); });
  c.Adjust("from an expense", kState, "from", [](auto& r) {
    r.set_from("expense/ops");
    r.set_to("expense/spare");
  });
  c.Adjust("to a donor", kState, "to", [](auto& r) { r.set_to("donor/alice"); });
  c.Adjust("more than held", kState, "amount", [](auto& r) { r.set_amount(80001); });
  c.Reverse("ref_seq 0", kNotFound, "ref_seq", [](auto& r) { r.set_ref_seq(0); });
  c.Reverse("with an amount", kInvalid, "amount", [](auto& r) { r.set_amount(5); });
  c.Reverse("with a from", kInvalid, "from", [](auto& r) { r.set_from("fund/general"); });
  c.Reverse("of an account opening", kState, "ref_seq", [](auto& r) { r.set_ref_seq(1); });
  c.Reverse("of an already reversed donation", kState, "ref_seq",
            [&](auto& r) { r.set_ref_seq(w.reversed_seq); });
  c.Reverse("empty reason", kInvalid, "reason", [](auto& r) { r.set_reason(""); });

  // ---- RegisterRecipient ----
  c.Register("empty client_id", kInvalid, "client_id", [](auto& r) { r.set_client_id(""); });
  c.Register("over-long client_id", kInvalid, "client_id",
             [&](auto& r) { r.set_client_id(long_client_id); });
  c.Register("empty id_number", kInvalid, "id_number", [](auto& r) { r.set_id_number(""); });
  c.Register("17-character id_number", kInvalid, "id_number",
             [](auto& r) { r.set_id_number(ValidId(7).substr(0, 17)); });
  c.Register("19-character id_number", kInvalid, "id_number",
             [](auto& r) { r.set_id_number(ValidId(7) + "0"); });
  c.Register("letter among the digits", kInvalid, "id_number", [](auto& r) {
    std::string id = ValidId(7);
    id[3] = 'A';
    r.set_id_number(id);
  });
  c.Register("check character Y", kInvalid, "id_number", [](auto& r) {
    std::string id = ValidId(7);
    id.back() = 'Y';
    r.set_id_number(id);
  });
  c.Register("wrong check character", kInvalid, "id_number",
             [](auto& r) { r.set_id_number(WithWrongCheckChar(ValidId(7))); });
  c.Register("born in month 13", kInvalid, "id_number",
             [](auto& r) { r.set_id_number(IdBornOn("19801301")); });
  c.Register("born on day 0", kInvalid, "id_number",
             [](auto& r) { r.set_id_number(IdBornOn("19800100")); });
  c.Register("born on 30 February", kInvalid, "id_number",
             [](auto& r) { r.set_id_number(IdBornOn("19800230")); });
  c.Register("born on 29 February of a common year", kInvalid, "id_number",
             [](auto& r) { r.set_id_number(IdBornOn("19810229")); });
  c.Register("born on 31 April", kInvalid, "id_number",
             [](auto& r) { r.set_id_number(IdBornOn("19800431")); });
  c.Register("born before 1900", kInvalid, "id_number",
             [](auto& r) { r.set_id_number(IdBornOn("18991231")); });
  c.Register("born in a future year", kInvalid, "id_number",
             [](auto& r) { r.set_id_number(IdBornOn("29990101")); });
  c.Register("empty category", kInvalid, "category", [](auto& r) { r.set_category(""); });
  c.Register("unknown category", kInvalid, "category",
             [](auto& r) { r.set_category("millionaires"); });
  c.Register("category in the wrong case", kInvalid, "category",
             [](auto& r) { r.set_category("DIBAO"); });
  c.Register("empty community", kInvalid, "community", [](auto& r) { r.set_community(""); });
  c.Register("community c000", kInvalid, "community", [](auto& r) { r.set_community("c000"); });
  c.Register("community c176", kInvalid, "community", [](auto& r) { r.set_community("c176"); });
  c.Register("person already registered", kExists, "id_number",
             [](auto& r) { r.set_id_number(ValidId(1)); });

  const pb::Head head = client_->Head();
  ExpectRefusedWritingNothing(*client_, server_->ledger(), c.cases());
  EXPECT_FALSE(AccountExists("donor/new"));
  // No log line carries a rejected ID number.
  for (const std::string& line : logs_.Lines()) {
    EXPECT_EQ(line.find(ValidId(7).substr(0, 17)), std::string::npos) << line;
  }

  // The bases themselves are valid: each case failed because of its change.
  std::vector<pb::BatchOperation> bases(8);
  *bases[0].mutable_open_account() = open;
  *bases[1].mutable_close_account() = close;
  *bases[2].mutable_donate() = donate;
  *bases[3].mutable_allocate() = allocate;
  *bases[4].mutable_disburse() = disburse;
  *bases[5].mutable_correct() = adjust;
  *bases[6].mutable_correct() = reverse;
  *bases[7].mutable_register_recipient() = reg;
  for (size_t i = 0; i < bases.size(); ++i) {
    pb::BatchOperation op = bases[i];
    std::string id = "base-" + std::to_string(i);
    switch (op.op_case()) {
      case pb::BatchOperation::kOpenAccount: op.mutable_open_account()->set_client_id(id); break;
      case pb::BatchOperation::kCloseAccount: op.mutable_close_account()->set_client_id(id); break;
      case pb::BatchOperation::kDonate: op.mutable_donate()->set_client_id(id); break;
      case pb::BatchOperation::kAllocate: op.mutable_allocate()->set_client_id(id); break;
      case pb::BatchOperation::kDisburse: op.mutable_disburse()->set_client_id(id); break;
      case pb::BatchOperation::kCorrect: op.mutable_correct()->set_client_id(id); break;
      case pb::BatchOperation::kRegisterRecipient:
        op.mutable_register_recipient()->set_client_id(id);
        break;
      case pb::BatchOperation::kIssueVoucher: op.mutable_issue_voucher()->set_client_id(id); break;
      case pb::BatchOperation::kVoidVoucher: op.mutable_void_voucher()->set_client_id(id); break;
      // The goods writes and aid rules have tests of their own.
      case pb::BatchOperation::kSetAidRule:
      case pb::BatchOperation::kDefineItem:
      case pb::BatchOperation::kGiveGoods:
      case pb::BatchOperation::kBuyGoods:
      case pb::BatchOperation::kHandOut:
      case pb::BatchOperation::kWriteOffGoods:
      case pb::BatchOperation::kSellGoods:
      case pb::BatchOperation::OP_NOT_SET: break;
    }
    EXPECT_TRUE(IsOk(CallUnary(*client_, op))) << "base " << i;
  }
  EXPECT_EQ(client_->HeadSeq(), head.seq() + bases.size());
}

TEST_F(ServerTest, SubmitBatchRejectsEmptyAndOversizedBatchesAndMalformedOperations) {
  SetUpWorld();
  const pb::Head head = client_->Head();
  pb::BatchResponse resp;

  pb::BatchRequest empty;
  EXPECT_TRUE(IsError(client_->Call(&Stub::SubmitBatch, empty, &resp), grpc::INVALID_ARGUMENT,
                      "operations"));

  pb::BatchRequest oversized;
  for (int i = 0; i <= kRpcBatchOpsMax; ++i) {
    *oversized.add_operations()->mutable_open_account() =
        OpenReq("expense/e" + std::to_string(i), pb::EXPENSE);
  }
  EXPECT_TRUE(IsError(client_->Call(&Stub::SubmitBatch, oversized, &resp),
                      grpc::INVALID_ARGUMENT, "operations"));

  // An operation with nothing set.
  pb::BatchRequest unset;
  unset.add_operations();
  ASSERT_TRUE(IsOk(client_->Call(&Stub::SubmitBatch, unset, &resp)));
  ASSERT_EQ(resp.results_size(), 1);
  EXPECT_EQ(resp.results(0).code(), grpc::INVALID_ARGUMENT);
  EXPECT_THAT(resp.results(0).message(), HasSubstr("op"));

  // A chain left open at the end of the batch.
  pb::BatchRequest open_chain;
  {
    pb::BatchOperation* op = open_chain.add_operations();
    op->set_linked(true);
    *op->mutable_open_account() = OpenReq("expense/x", pb::EXPENSE);
  }
  {
    pb::BatchOperation* op = open_chain.add_operations();
    op->set_linked(true);
    *op->mutable_open_account() = OpenReq("expense/y", pb::EXPENSE);
  }
  resp.Clear();
  ASSERT_TRUE(IsOk(client_->Call(&Stub::SubmitBatch, open_chain, &resp)));
  ASSERT_EQ(resp.results_size(), 2);
  for (const pb::BatchResult& r : resp.results()) {
    EXPECT_EQ(r.code(), grpc::INVALID_ARGUMENT) << r.message();
    EXPECT_THAT(r.message(), HasSubstr("linked"));
  }

  // A chain whose second operation is rejected before reaching the engine.
  pb::BatchRequest rejected_chain;
  {
    pb::BatchOperation* op = rejected_chain.add_operations();
    op->set_linked(true);
    *op->mutable_open_account() = OpenReq("expense/z", pb::EXPENSE);
  }
  *rejected_chain.add_operations()->mutable_register_recipient() =
      RegisterReq("chain-reg", WithWrongCheckChar(ValidId(9)));
  resp.Clear();
  ASSERT_TRUE(IsOk(client_->Call(&Stub::SubmitBatch, rejected_chain, &resp)));
  ASSERT_EQ(resp.results_size(), 2);
  EXPECT_EQ(resp.results(0).code(), grpc::ABORTED) << resp.results(0).message();
  EXPECT_EQ(resp.results(1).code(), grpc::INVALID_ARGUMENT);
  EXPECT_THAT(resp.results(1).message(), HasSubstr("id_number"));

  pb::Head now = client_->Head();
  EXPECT_EQ(now.seq(), head.seq());
  EXPECT_EQ(now.hash(), head.hash());
  EXPECT_FALSE(AccountExists("expense/x"));
  EXPECT_FALSE(AccountExists("expense/z"));
}

// ================================================================ goods

TEST_F(ServerTest, DefineItemAddsAnItemOnceAndTheCatalogueShowsWhatTheStocksHold) {
  Open("donor/alice", pb::DONOR);
  Open("stock/rice", pb::STOCK, "item:rice");
  Open("stock/rice-2", pb::STOCK, "item:rice");
  pb::WriteResult first;
  ASSERT_TRUE(IsOk(client_->Call(&GStub::DefineItem, DefineItemReq("item:rice", "kg"), &first)));
  EXPECT_FALSE(first.duplicate());
  pb::WriteResult again;
  ASSERT_TRUE(IsOk(client_->Call(&GStub::DefineItem, DefineItemReq("item:rice", "kg"), &again)));
  EXPECT_TRUE(again.duplicate());
  EXPECT_EQ(again.seq(), first.seq());
  pb::DefineItemRequest twice = DefineItemReq("item:rice", "kg");
  twice.set_client_id("define-rice-again");
  EXPECT_TRUE(IsError(client_->Call(&GStub::DefineItem, twice, &again), grpc::ALREADY_EXISTS,
                      "item.item"));
  const uint64_t oil_seq = GoodsWrite(&GStub::DefineItem, DefineItemReq("item:oil", "bottle")).seq();
  GoodsWrite(&GStub::GiveGoods, GiveGoodsReq("g-1", "donor/alice", "stock/rice", "item:rice", 30));
  GoodsWrite(&GStub::GiveGoods, GiveGoodsReq("g-2", "donor/alice", "stock/rice-2", "item:rice", 12));

  pb::Items items;
  ASSERT_TRUE(IsOk(client_->Call(&GStub::ListItems, pb::ListItemsRequest(), &items)));
  ASSERT_EQ(items.items_size(), 2);
  EXPECT_EQ(items.items(0).item(), "item:rice");
  EXPECT_EQ(items.items(0).name(), "name of item:rice");
  EXPECT_EQ(items.items(0).unit(), "kg");
  EXPECT_EQ(items.items(0).defined_seq(), first.seq());
  EXPECT_EQ(items.items(0).in_stock(), 42);  // both stocks
  EXPECT_EQ(items.items(1).item(), "item:oil");
  EXPECT_EQ(items.items(1).defined_seq(), oil_seq);
  EXPECT_EQ(items.items(1).in_stock(), 0);

  pb::GetItemRequest get;
  get.set_item("item:oil");
  pb::Item item;
  ASSERT_TRUE(IsOk(client_->Call(&GStub::GetItem, get, &item)));
  EXPECT_EQ(item.unit(), "bottle");
  EXPECT_EQ(item.defined_seq(), oil_seq);
  get.set_item("item:salt");
  EXPECT_TRUE(IsError(client_->Call(&GStub::GetItem, get, &item), grpc::NOT_FOUND, "item"));
  get.set_item("CNY");
  EXPECT_TRUE(IsError(client_->Call(&GStub::GetItem, get, &item), grpc::INVALID_ARGUMENT, "item"));

  pb::GetEntryRequest entry_req;
  entry_req.set_seq(first.seq());
  pb::Entry entry;
  ASSERT_TRUE(IsOk(client_->Call(&Stub::GetEntry, entry_req, &entry)));
  EXPECT_EQ(entry.type(), pb::ITEM);
  EXPECT_EQ(entry.summary(), "catalogue item item:rice counted in kg: name of item:rice");
}

TEST_F(ServerTest, GiveGoodsReturnsALotAndATraceCodeAndARetryIsADuplicate) {
  Open("stock/rice", pb::STOCK, "item:rice");
  GoodsWrite(&GStub::DefineItem, DefineItemReq("item:rice", "kg"));
  pb::GiveGoodsRequest req =
      GiveGoodsReq("gift-1", "donor/grain-co", "stock/rice", "item:rice", 500);
  req.set_create_donor(true);
  req.set_donor_name("Grain company");
  req.set_grade("A");
  const int64_t expires_us = clock_.NowMicros() + 30 * 24 * kHourUs;
  req.set_expires_us(expires_us);
  req.set_value_asset("CNY");
  req.set_value(250000);
  pb::GiveGoodsResponse gift;
  ASSERT_TRUE(IsOk(client_->Call(&GStub::GiveGoods, req, &gift)));
  EXPECT_FALSE(gift.result().duplicate());
  EXPECT_EQ(gift.lot(), gift.result().seq());
  EXPECT_TRUE(IsTraceCode(gift.trace_code())) << gift.trace_code();
  clock_.AdvanceMicros(1000);

  pb::GiveGoodsResponse again;
  ASSERT_TRUE(IsOk(client_->Call(&GStub::GiveGoods, req, &again)));
  EXPECT_TRUE(again.result().duplicate());
  EXPECT_EQ(again.result().seq(), gift.result().seq());
  EXPECT_EQ(again.lot(), gift.lot());
  EXPECT_EQ(again.trace_code(), gift.trace_code());
  EXPECT_EQ(BalanceOf("stock/rice", "item:rice"), 500);
  EXPECT_EQ(Account("donor/grain-co").kind(), pb::DONOR);
  EXPECT_EQ(Account("donor/grain-co").name(), "Grain company");

  pb::GiveGoodsRequest changed = req;
  changed.set_quantity(501);
  EXPECT_TRUE(IsError(client_->Call(&GStub::GiveGoods, changed, &again), grpc::ALREADY_EXISTS,
                      "quantity"));

  const pb::Trace t = TraceOf(gift.lot());
  EXPECT_EQ(t.created_by(), pb::GOODS_GIFT);
  EXPECT_EQ(t.donor(), "donor/grain-co");
  EXPECT_EQ(t.asset(), "item:rice");
  EXPECT_EQ(t.amount(), 500);
  EXPECT_EQ(t.grade(), "A");
  EXPECT_EQ(t.expires_us(), expires_us);
  EXPECT_EQ(t.value_asset(), "CNY");
  EXPECT_EQ(t.value(), 250000);
  EXPECT_EQ(t.parent_count(), 0u);
  ASSERT_EQ(t.hops_size(), 1);
  EXPECT_EQ(t.hops(0).type(), pb::GOODS_GIFT);
  // The appraisal is recorded, never counted: no money moved.
  const pb::Account donor = Account("donor/grain-co");
  for (const pb::Balance& b : donor.balances()) EXPECT_NE(b.asset(), "CNY");
}

TEST_F(ServerTest, BuyGoodsPaysOldestMoneyFirstAndTheGoodsLotNamesTheMoneyLotsBehindIt) {
  const Depot d = SetUpDepot();
  const pb::BuyGoodsRequest req =
      BuyGoodsReq("buy-1", "fund/general", "supplier/farm", 4500, "stock/rice", "item:rice", 6);
  pb::BuyGoodsResponse bought;
  ASSERT_TRUE(IsOk(client_->Call(&GStub::BuyGoods, req, &bought)));
  EXPECT_EQ(bought.lot(), bought.result().seq());
  EXPECT_EQ(bought.quantity(), 6);
  clock_.AdvanceMicros(1000);
  pb::BuyGoodsResponse again;
  ASSERT_TRUE(IsOk(client_->Call(&GStub::BuyGoods, req, &again)));
  EXPECT_TRUE(again.result().duplicate());
  EXPECT_EQ(again.lot(), bought.lot());
  EXPECT_EQ(again.quantity(), 6);

  EXPECT_EQ(BalanceOf("fund/general"), 6000 - 4500);
  EXPECT_EQ(BalanceOf("stock/rice", "item:rice"), 6);
  EXPECT_EQ(BalanceOf("supplier/farm"), 4500);

  // Lots 1,000 + 2,000 + 1,500 of 3,000 paid; 6 kg shared by largest
  // remainder: 1.33, 2.67, 2.00 -> 1, 3, 2.
  const pb::Trace t = TraceOf(bought.lot());
  EXPECT_EQ(t.created_by(), pb::GOODS_PURCHASE);
  EXPECT_EQ(t.donor(), "supplier/farm");
  EXPECT_EQ(t.amount(), 6);
  ASSERT_EQ(t.parent_count(), 3u);
  ASSERT_EQ(t.parents_size(), 3);
  const int64_t consumed[] = {1000, 2000, 1500};
  const int64_t shares[] = {1, 3, 2};
  for (int i = 0; i < 3; ++i) {
    SCOPED_TRACE(i);
    EXPECT_EQ(t.parents(i).lot(), d.money_lots[i]);
    EXPECT_EQ(t.parents(i).donor(), "donor/alice");
    EXPECT_EQ(t.parents(i).asset(), "CNY");
    EXPECT_EQ(t.parents(i).consumed(), consumed[i]);
    EXPECT_EQ(t.parents(i).share(), shares[i]);
  }

  pb::FundSummaryRequest fund;
  fund.set_account("fund/general");
  pb::FundSummary summary;
  ASSERT_TRUE(IsOk(client_->Call(&Stub::GetFundSummary, fund, &summary)));
  EXPECT_EQ(summary.goods_bought(), 4500);
  EXPECT_EQ(summary.held(), 1500);

  pb::GetEntryRequest entry_req;
  entry_req.set_seq(bought.result().seq());
  pb::Entry entry;
  ASSERT_TRUE(IsOk(client_->Call(&Stub::GetEntry, entry_req, &entry)));
  EXPECT_EQ(entry.type(), pb::GOODS_PURCHASE);
  EXPECT_EQ(entry.summary(),
            "goods purchase of 6 item:rice from supplier/farm into stock/rice for 45.00 CNY "
            "from fund/general: invoice buy-1");
}

TEST_F(ServerTest, HandOutGivesEachRecipientItsLineInOneEntryAndARetryIsADuplicate) {
  const Depot d = SetUpDepot();
  GoodsWrite(&GStub::GiveGoods, GiveGoodsReq("rice", "donor/alice", "stock/rice", "item:rice", 10));
  const pb::HandOutRequest req =
      HandOutReq("hand-1", "stock/rice", "item:rice", {{d.r1, 2}, {d.r2, 3}});
  pb::HandOutResponse out;
  ASSERT_TRUE(IsOk(client_->Call(&GStub::HandOut, req, &out)));
  EXPECT_EQ(out.quantity(), 5);
  clock_.AdvanceMicros(1000);
  pb::HandOutResponse again;
  ASSERT_TRUE(IsOk(client_->Call(&GStub::HandOut, req, &again)));
  EXPECT_TRUE(again.result().duplicate());
  EXPECT_EQ(again.result().seq(), out.result().seq());
  EXPECT_EQ(again.quantity(), 5);

  EXPECT_EQ(BalanceOf("stock/rice", "item:rice"), 5);
  EXPECT_EQ(BalanceOf(d.r1, "item:rice"), 2);
  EXPECT_EQ(BalanceOf(d.r2, "item:rice"), 3);
  pb::GetEntryRequest entry_req;
  entry_req.set_seq(out.result().seq());
  pb::Entry entry;
  ASSERT_TRUE(IsOk(client_->Call(&Stub::GetEntry, entry_req, &entry)));
  EXPECT_EQ(entry.type(), pb::HANDOUT);
  EXPECT_EQ(entry.policy(), "fefo/v1");
  ASSERT_EQ(entry.postings_size(), 2);
  EXPECT_EQ(entry.postings(0).to(), d.r1);
  EXPECT_EQ(entry.postings(1).to(), d.r2);
  // One line for people: how many, not who.
  EXPECT_EQ(entry.summary(), "handout of 5 item:rice from stock/rice to 2 recipients: handout hand-1");
}

TEST_F(ServerTest, HandOutAcceptsTheMaximumOf1000LinesInOneEntry) {
  Open("donor/alice", pb::DONOR);
  Open("stock/rice", pb::STOCK, "item:rice");
  GoodsWrite(&GStub::DefineItem, DefineItemReq("item:rice", "kg"));
  GoodsWrite(&GStub::GiveGoods,
             GiveGoodsReq("rice", "donor/alice", "stock/rice", "item:rice", 2000));
  ASSERT_EQ(kHandoutLinesMax, 1000u);
  pb::BatchRequest registrations;
  for (int i = 0; i < static_cast<int>(kHandoutLinesMax); ++i) {
    *registrations.add_operations()->mutable_register_recipient() =
        RegisterReq("reg-" + std::to_string(i), ValidId(i));
  }
  pb::BatchResponse registered;
  ASSERT_TRUE(IsOk(client_->Call(&Stub::SubmitBatch, registrations, &registered)));
  std::vector<std::pair<std::string, int64_t>> lines;
  for (const pb::BatchResult& r : registered.results()) {
    ASSERT_EQ(r.code(), grpc::OK) << r.message();
    lines.push_back({r.recipient(), 1});
  }
  pb::HandOutResponse out;
  ASSERT_TRUE(IsOk(client_->Call(&GStub::HandOut,
                                 HandOutReq("hand-max", "stock/rice", "item:rice", lines), &out)));
  EXPECT_EQ(out.quantity(), 1000);
  EXPECT_EQ(BalanceOf("stock/rice", "item:rice"), 1000);

  lines.push_back({lines[0].first, 1});  // 1,001 lines
  EXPECT_TRUE(IsError(client_->Call(&GStub::HandOut,
                                    HandOutReq("hand-over", "stock/rice", "item:rice", lines), &out),
                      grpc::INVALID_ARGUMENT, "lines"));
}

TEST_F(ServerTest, WriteOffGoodsTakesTheGivenLotOrTheEarliestExpiry) {
  SetUpDepot();
  pb::GiveGoodsRequest late = GiveGoodsReq("late", "donor/alice", "stock/rice", "item:rice", 10);
  late.set_expires_us(clock_.NowMicros() + 48 * kHourUs);
  const uint64_t late_lot = GoodsWrite(&GStub::GiveGoods, late).lot();
  pb::GiveGoodsRequest soon = GiveGoodsReq("soon", "donor/alice", "stock/rice", "item:rice", 10);
  soon.set_expires_us(clock_.NowMicros() + 24 * kHourUs);
  const uint64_t soon_lot = GoodsWrite(&GStub::GiveGoods, soon).lot();

  auto slices_of = [&](uint64_t seq) {
    pb::GetEntryRequest req;
    req.set_seq(seq);
    pb::Entry entry;
    EXPECT_TRUE(IsOk(client_->Call(&Stub::GetEntry, req, &entry)));
    std::vector<std::pair<uint64_t, int64_t>> out;
    for (const pb::Slice& s : entry.postings(0).slices()) out.push_back({s.lot(), s.amount()});
    return out;
  };
  // Earliest expiry first: the later gift's lot expires sooner.
  const pb::WriteOffGoodsRequest fefo =
      WriteOffReq("off-1", "stock/rice", "expense/spoilage", "item:rice", 3);
  const pb::WriteOffGoodsResponse off = GoodsWrite(&GStub::WriteOffGoods, fefo);
  EXPECT_EQ(off.quantity(), 3);
  EXPECT_EQ(slices_of(off.result().seq()),
            (std::vector<std::pair<uint64_t, int64_t>>{{soon_lot, 3}}));
  // A spoiled batch: only from its lot.
  const pb::WriteOffGoodsResponse batch = GoodsWrite(
      &GStub::WriteOffGoods,
      WriteOffReq("off-2", "stock/rice", "expense/spoilage", "item:rice", 4, late_lot));
  EXPECT_EQ(slices_of(batch.result().seq()),
            (std::vector<std::pair<uint64_t, int64_t>>{{late_lot, 4}}));
  pb::WriteOffGoodsResponse again;
  ASSERT_TRUE(IsOk(client_->Call(&GStub::WriteOffGoods, fefo, &again)));
  EXPECT_TRUE(again.result().duplicate());
  EXPECT_EQ(again.result().seq(), off.result().seq());
  EXPECT_EQ(BalanceOf("stock/rice", "item:rice"), 13);
  EXPECT_EQ(BalanceOf("expense/spoilage", "item:rice"), 7);
}

TEST_F(ServerTest, SellGoodsPutsTheProceedsIntoAFundAsALotWhoseParentsAreTheGoodsSold) {
  SetUpDepot();
  const uint64_t gift_a =
      GoodsWrite(&GStub::GiveGoods, GiveGoodsReq("a", "donor/alice", "stock/rice", "item:rice", 3))
          .lot();
  Open("donor/bob", pb::DONOR);
  const uint64_t gift_b =
      GoodsWrite(&GStub::GiveGoods, GiveGoodsReq("b", "donor/bob", "stock/rice", "item:rice", 5))
          .lot();
  const pb::SellGoodsRequest req =
      SellGoodsReq("sale-1", "stock/rice", "store/a", "item:rice", 6, "fund/general", 1200);
  pb::SellGoodsResponse sold;
  ASSERT_TRUE(IsOk(client_->Call(&GStub::SellGoods, req, &sold)));
  EXPECT_EQ(sold.lot(), sold.result().seq());
  EXPECT_EQ(sold.proceeds(), 1200);
  clock_.AdvanceMicros(1000);
  pb::SellGoodsResponse again;
  ASSERT_TRUE(IsOk(client_->Call(&GStub::SellGoods, req, &again)));
  EXPECT_TRUE(again.result().duplicate());
  EXPECT_EQ(again.lot(), sold.lot());
  EXPECT_EQ(again.proceeds(), 1200);

  EXPECT_EQ(BalanceOf("fund/general"), 6000 + 1200);
  EXPECT_EQ(BalanceOf("stock/rice", "item:rice"), 2);
  EXPECT_EQ(BalanceOf("store/a", "item:rice"), 6);

  const pb::Trace t = TraceOf(sold.lot());
  EXPECT_EQ(t.created_by(), pb::GOODS_SALE);
  EXPECT_EQ(t.donor(), "store/a");
  EXPECT_EQ(t.asset(), "CNY");
  EXPECT_EQ(t.amount(), 1200);
  ASSERT_EQ(t.parents_size(), 2);
  EXPECT_EQ(t.parents(0).lot(), gift_a);
  EXPECT_EQ(t.parents(0).donor(), "donor/alice");
  EXPECT_EQ(t.parents(0).consumed(), 3);
  EXPECT_EQ(t.parents(0).share(), 600);
  EXPECT_EQ(t.parents(1).lot(), gift_b);
  EXPECT_EQ(t.parents(1).donor(), "donor/bob");
  EXPECT_EQ(t.parents(1).consumed(), 3);
  EXPECT_EQ(t.parents(1).share(), 600);

  pb::FundSummaryRequest fund;
  fund.set_account("fund/general");
  pb::FundSummary summary;
  ASSERT_TRUE(IsOk(client_->Call(&Stub::GetFundSummary, fund, &summary)));
  EXPECT_EQ(summary.goods_sales(), 1200);
}

TEST_F(ServerTest, TheGoodsWritesInSubmitBatchAnswerLotsTraceCodesAndQuantities) {
  const Depot d = SetUpDepot();
  Open("stock/beans", pb::STOCK, "item:beans");
  pb::BatchRequest req;
  *req.add_operations()->mutable_define_item() = DefineItemReq("item:beans", "kg");
  {
    pb::GiveGoodsRequest g = GiveGoodsReq("b-give", "donor/new-co", "stock/beans", "item:beans", 9);
    g.set_create_donor(true);
    *req.add_operations()->mutable_give_goods() = g;
  }
  *req.add_operations()->mutable_buy_goods() =
      BuyGoodsReq("b-buy", "fund/general", "supplier/farm", 1000, "stock/beans", "item:beans", 4);
  *req.add_operations()->mutable_hand_out() =
      HandOutReq("b-hand", "stock/beans", "item:beans", {{d.r1, 5}, {d.r2, 1}});
  *req.add_operations()->mutable_write_off_goods() =
      WriteOffReq("b-off", "stock/beans", "expense/spoilage", "item:beans", 2);
  *req.add_operations()->mutable_sell_goods() =
      SellGoodsReq("b-sell", "stock/beans", "store/a", "item:beans", 5, "fund/general", 500);
  const uint64_t before = client_->HeadSeq();
  pb::BatchResponse resp;
  ASSERT_TRUE(IsOk(client_->Call(&Stub::SubmitBatch, req, &resp)));
  ASSERT_EQ(resp.results_size(), 6);
  for (const pb::BatchResult& r : resp.results()) ASSERT_EQ(r.code(), grpc::OK) << r.message();
  EXPECT_EQ(client_->HeadSeq(), before + 7);  // the gift also opened its donor

  EXPECT_EQ(resp.results(0).lot(), 0u);
  EXPECT_EQ(resp.results(0).moved(), 0);
  EXPECT_EQ(resp.results(1).lot(), resp.results(1).result().seq());
  EXPECT_TRUE(IsTraceCode(resp.results(1).trace_code()));
  EXPECT_EQ(resp.results(1).moved(), 9);
  EXPECT_EQ(resp.results(2).lot(), resp.results(2).result().seq());
  EXPECT_TRUE(resp.results(2).trace_code().empty());
  EXPECT_EQ(resp.results(2).moved(), 4);
  EXPECT_EQ(resp.results(3).lot(), 0u);
  EXPECT_EQ(resp.results(3).moved(), 6);
  EXPECT_EQ(resp.results(4).moved(), 2);
  EXPECT_EQ(resp.results(5).lot(), resp.results(5).result().seq());
  EXPECT_EQ(resp.results(5).moved(), 500);
  EXPECT_EQ(BalanceOf("stock/beans", "item:beans"), 0);
  EXPECT_EQ(BalanceOf("fund/general"), 6000 - 1000 + 500);

  pb::BatchResponse again;
  ASSERT_TRUE(IsOk(client_->Call(&Stub::SubmitBatch, req, &again)));
  for (int i = 0; i < again.results_size(); ++i) {
    SCOPED_TRACE(i);
    EXPECT_EQ(again.results(i).code(), grpc::OK) << again.results(i).message();
    EXPECT_TRUE(again.results(i).result().duplicate());
    EXPECT_EQ(again.results(i).lot(), resp.results(i).lot());
    EXPECT_EQ(again.results(i).trace_code(), resp.results(i).trace_code());
    EXPECT_EQ(again.results(i).moved(), resp.results(i).moved());
  }
  EXPECT_EQ(client_->HeadSeq(), before + 7);
}

TEST_F(ServerTest, EveryInvalidFieldOfEveryGoodsWriteIsRejectedNamingTheFieldAndWritesNothing) {
  const Depot d = SetUpDepot();
  using grpc::StatusCode;
  constexpr StatusCode kInvalid = grpc::INVALID_ARGUMENT;
  constexpr StatusCode kNotFound = grpc::NOT_FOUND;
  constexpr StatusCode kExists = grpc::ALREADY_EXISTS;
  constexpr StatusCode kState = grpc::FAILED_PRECONDITION;
  const std::string long_text(kTextBytesMax + 1, 't');
  const uint64_t rice_lot =
      GoodsWrite(&GStub::GiveGoods,
                 GiveGoodsReq("matrix-rice", "donor/alice", "stock/rice", "item:rice", 20))
          .lot();
  GoodsWrite(&GStub::GiveGoods,
             GiveGoodsReq("matrix-rice-2", "donor/alice", "stock/rice", "item:rice", 10));
  GoodsWrite(&GStub::GiveGoods,
             GiveGoodsReq("matrix-oil", "donor/alice", "stock/oil", "item:oil", 5));
  Open("stock/salt", pb::STOCK, "item:salt");  // salt is not in the catalogue

  // Valid bases; every case changes one field.
  const pb::DefineItemRequest define = DefineItemReq("item:beans", "kg");
  const pb::GiveGoodsRequest give =
      GiveGoodsReq("", "donor/alice", "stock/rice", "item:rice", 5);
  const pb::BuyGoodsRequest buy =
      BuyGoodsReq("", "fund/general", "supplier/farm", 100, "stock/rice", "item:rice", 2);
  const pb::HandOutRequest hand =
      HandOutReq("", "stock/rice", "item:rice", {{d.r1, 1}, {d.r2, 2}});
  const pb::WriteOffGoodsRequest off =
      WriteOffReq("", "stock/rice", "expense/spoilage", "item:rice", 1);
  const pb::SellGoodsRequest sell =
      SellGoodsReq("", "stock/rice", "store/a", "item:rice", 1, "fund/general", 50);

  BadCaseList bad("goods-bad");

  // ---- DefineItem ----
  bad.Add("DefineItem/reserved client_id", kInvalid, "client_id", define,
      [](auto& r) { r.set_client_id("~x"); });
  bad.Add("DefineItem/money code", kInvalid, "item", define, [](auto& r) { r.set_item("CNY"); });
  bad.Add("DefineItem/malformed code", kInvalid, "item", define,
      [](auto& r) { r.set_item("item:Beans"); });
  bad.Add("DefineItem/empty name", kInvalid, "name", define, [](auto& r) { r.set_name(""); });
  bad.Add("DefineItem/empty unit", kInvalid, "unit", define, [](auto& r) { r.set_unit(""); });
  bad.Add("DefineItem/upper-case unit", kInvalid, "unit", define, [](auto& r) { r.set_unit("Kg"); });
  bad.Add("DefineItem/17-letter unit", kInvalid, "unit", define,
      [](auto& r) { r.set_unit(std::string(17, 'k')); });
  bad.Add("DefineItem/already in the catalogue", kExists, "item", define,
      [](auto& r) { r.set_item("item:rice"); });

  // ---- GiveGoods ----
  bad.Add("GiveGoods/empty client_id", kInvalid, "client_id", give,
      [](auto& r) { r.set_client_id(""); });
  bad.Add("GiveGoods/unknown channel", kInvalid, "channel", give,
      [](auto& r) { r.set_channel(static_cast<pb::DonationChannel>(9)); });
  bad.Add("GiveGoods/empty donor", kInvalid, "donor", give, [](auto& r) { r.set_donor(""); });
  bad.Add("GiveGoods/quantity 0", kInvalid, "quantity", give, [](auto& r) { r.set_quantity(0); });
  bad.Add("GiveGoods/quantity -1", kInvalid, "quantity", give, [](auto& r) { r.set_quantity(-1); });
  bad.Add("GiveGoods/quantity above the maximum", kInvalid, "quantity", give,
      [](auto& r) { r.set_quantity(kAmountMax + 1); });
  bad.Add("GiveGoods/money as the item", kInvalid, "item", give, [](auto& r) { r.set_item("CNY"); });
  bad.Add("GiveGoods/item not in the catalogue", kState, "item", give, [](auto& r) {
    r.set_to("stock/salt");
    r.set_item("item:salt");
  });
  bad.Add("GiveGoods/malformed grade", kInvalid, "grade", give, [](auto& r) { r.set_grade("a b"); });
  bad.Add("GiveGoods/negative expiry", kInvalid, "expires_us", give,
      [](auto& r) { r.set_expires_us(-1); });
  bad.Add("GiveGoods/expired batch", kState, "expires_us", give,
      [&](auto& r) { r.set_expires_us(clock_.NowMicros() - 1); });
  bad.Add("GiveGoods/value without its asset", kInvalid, "value_asset", give,
      [](auto& r) { r.set_value(100); });
  bad.Add("GiveGoods/goods as the value asset", kInvalid, "value_asset", give, [](auto& r) {
    r.set_value_asset("item:rice");
    r.set_value(100);
  });
  bad.Add("GiveGoods/value 0 with an asset", kInvalid, "value", give, [](auto& r) {
    r.set_value_asset("CNY");
    r.set_value(0);
  });
  bad.Add("GiveGoods/over-long memo", kInvalid, "memo", give,
      [&](auto& r) { r.set_memo(long_text); });
  bad.Add("GiveGoods/unknown donor", kNotFound, "donor", give,
      [](auto& r) { r.set_donor("donor/nobody"); });
  bad.Add("GiveGoods/donor is a fund", kState, "donor", give,
      [](auto& r) { r.set_donor("fund/general"); });
  bad.Add("GiveGoods/into a fund", kState, "to", give, [](auto& r) { r.set_to("fund/general"); });
  bad.Add("GiveGoods/into the stock of another item", kState, "to", give,
      [](auto& r) { r.set_to("stock/oil"); });
  bad.Add("GiveGoods/unknown stock", kNotFound, "to", give,
      [](auto& r) { r.set_to("stock/nowhere"); });
  bad.Add("GiveGoods/client_id reused with another quantity", kExists, "quantity", give, [](auto& r) {
    r.set_client_id("matrix-rice");
    r.set_quantity(21);
  });

  // ---- BuyGoods ----
  bad.Add("BuyGoods/reserved client_id", kInvalid, "client_id", buy,
      [](auto& r) { r.set_client_id("~x"); });
  bad.Add("BuyGoods/empty from", kInvalid, "from", buy, [](auto& r) { r.set_from(""); });
  bad.Add("BuyGoods/goods as the asset", kInvalid, "asset", buy,
      [](auto& r) { r.set_asset("item:rice"); });
  bad.Add("BuyGoods/price 0", kInvalid, "price", buy, [](auto& r) { r.set_price(0); });
  bad.Add("BuyGoods/quantity 0", kInvalid, "quantity", buy, [](auto& r) { r.set_quantity(0); });
  bad.Add("BuyGoods/expired batch", kState, "expires_us", buy,
      [&](auto& r) { r.set_expires_us(clock_.NowMicros()); });
  bad.Add("BuyGoods/more than the fund holds", kState, "price", buy,
      [](auto& r) { r.set_price(6001); });
  bad.Add("BuyGoods/from a stock", kState, "from", buy, [](auto& r) { r.set_from("stock/oil"); });
  bad.Add("BuyGoods/supplier is an expense", kState, "supplier", buy,
      [](auto& r) { r.set_supplier("expense/spoilage"); });
  bad.Add("BuyGoods/unknown supplier", kNotFound, "supplier", buy,
      [](auto& r) { r.set_supplier("supplier/nobody"); });
  bad.Add("BuyGoods/into the stock of another item", kState, "to", buy,
      [](auto& r) { r.set_to("stock/oil"); });
  bad.Add("BuyGoods/item not in the catalogue", kState, "item", buy, [](auto& r) {
    r.set_to("stock/salt");
    r.set_item("item:salt");
  });

  // ---- HandOut ----
  bad.Add("HandOut/no lines", kInvalid, "lines", hand, [](auto& r) { r.clear_lines(); });
  bad.Add("HandOut/1,001 lines", kInvalid, "lines", hand, [&](auto& r) {
    while (static_cast<size_t>(r.lines_size()) <= kHandoutLinesMax) *r.add_lines() = r.lines(0);
  });
  bad.Add("HandOut/empty recipient", kInvalid, "lines[1].recipient", hand,
      [](auto& r) { r.mutable_lines(1)->set_recipient(""); });
  bad.Add("HandOut/quantity 0", kInvalid, "lines[0].quantity", hand,
      [](auto& r) { r.mutable_lines(0)->set_quantity(0); });
  bad.Add("HandOut/recipient twice", kInvalid, "lines[1].recipient", hand,
      [&](auto& r) { r.mutable_lines(1)->set_recipient(d.r1); });
  bad.Add("HandOut/unknown recipient", kNotFound, "lines[1].recipient", hand, [](auto& r) {
    r.mutable_lines(1)->set_recipient("recipient/00000000000000000000000000000000");
  });
  bad.Add("HandOut/to an expense", kState, "lines[0].recipient", hand,
      [](auto& r) { r.mutable_lines(0)->set_recipient("expense/spoilage"); });
  bad.Add("HandOut/more than the stock holds", kState, "lines", hand,
      [](auto& r) { r.mutable_lines(1)->set_quantity(30); });
  bad.Add("HandOut/from the stock of another item", kState, "from", hand,
      [](auto& r) { r.set_from("stock/oil"); });
  bad.Add("HandOut/from a fund", kState, "from", hand, [](auto& r) { r.set_from("fund/general"); });
  bad.Add("HandOut/item not in the catalogue", kState, "item", hand,
      [](auto& r) { r.set_item("item:salt"); });
  bad.Add("HandOut/over-long purpose", kInvalid, "purpose", hand,
      [&](auto& r) { r.set_purpose(long_text); });
  bad.Add("HandOut/over-long override_reason", kInvalid, "override_reason", hand,
      [&](auto& r) { r.set_override_reason(long_text); });

  // ---- WriteOffGoods ----
  bad.Add("WriteOffGoods/empty reason", kInvalid, "reason", off, [](auto& r) { r.set_reason(""); });
  bad.Add("WriteOffGoods/quantity 0", kInvalid, "quantity", off, [](auto& r) { r.set_quantity(0); });
  bad.Add("WriteOffGoods/to a fund", kState, "to", off, [](auto& r) { r.set_to("fund/general"); });
  bad.Add("WriteOffGoods/to a recipient", kState, "to", off, [&](auto& r) { r.set_to(d.r1); });
  bad.Add("WriteOffGoods/from an unknown stock", kNotFound, "from", off,
      [](auto& r) { r.set_from("stock/nowhere"); });
  bad.Add("WriteOffGoods/unknown lot", kNotFound, "lot", off,
      [](auto& r) { r.set_lot(1'000'000); });
  bad.Add("WriteOffGoods/lot the stock does not hold", kState, "lot", off,
      [&](auto& r) { r.set_lot(d.money_lots[0]); });
  bad.Add("WriteOffGoods/more of the lot than held", kState, "lot", off, [&](auto& r) {
    r.set_lot(rice_lot);
    r.set_quantity(21);
  });
  bad.Add("WriteOffGoods/more than the stock holds", kState, "quantity", off,
      [](auto& r) { r.set_quantity(31); });

  // ---- SellGoods ----
  bad.Add("SellGoods/empty buyer", kInvalid, "buyer", sell, [](auto& r) { r.set_buyer(""); });
  bad.Add("SellGoods/proceeds 0", kInvalid, "proceeds", sell, [](auto& r) { r.set_proceeds(0); });
  bad.Add("SellGoods/goods as the asset", kInvalid, "asset", sell,
      [](auto& r) { r.set_asset("item:oil"); });
  bad.Add("SellGoods/quantity 0", kInvalid, "quantity", sell, [](auto& r) { r.set_quantity(0); });
  bad.Add("SellGoods/buyer is a supplier", kState, "buyer", sell,
      [](auto& r) { r.set_buyer("supplier/farm"); });
  bad.Add("SellGoods/unknown buyer", kNotFound, "buyer", sell,
      [](auto& r) { r.set_buyer("store/nobody"); });
  bad.Add("SellGoods/proceeds into a stock", kState, "to", sell,
      [](auto& r) { r.set_to("stock/oil"); });
  bad.Add("SellGoods/more than the stock holds", kState, "quantity", sell,
      [](auto& r) { r.set_quantity(31); });

  const pb::Head head = client_->Head();
  ExpectRefusedWritingNothing(*client_, server_->ledger(), bad.cases());

  // The bases themselves are valid: each case failed because of its change.
  ExpectBasesValid(*client_, head.seq(),
                   {AsOperation(define, "base-define"), AsOperation(give, "base-give"),
                    AsOperation(buy, "base-buy"), AsOperation(hand, "base-hand"),
                    AsOperation(off, "base-off"), AsOperation(sell, "base-sell")});
}

TEST_F(ServerTest, APublicTraceOfAGiftInKindShowsItsRecipientsOnlyByCategoryAndCommunity) {
  const Depot d = SetUpDepot();
  pb::GiveGoodsRequest named = GiveGoodsReq("named", "donor/alice", "stock/oil", "item:oil", 10);
  const pb::GiveGoodsResponse gift = GoodsWrite(&GStub::GiveGoods, named);
  GoodsWrite(&GStub::HandOut, HandOutReq("hand-oil", "stock/oil", "item:oil", {{d.r1, 4}, {d.r2, 3}}));

  pb::TraceByCodeRequest by_code;
  by_code.set_trace_code(gift.trace_code());
  pb::Trace pub;
  ASSERT_TRUE(IsOk(client_->Call(&Stub::TraceByCode, by_code, &pub)));
  const std::string everything = pub.DebugString();
  EXPECT_EQ(everything.find(d.r1), std::string::npos) << everything;
  EXPECT_EQ(everything.find(d.r2), std::string::npos) << everything;
  EXPECT_EQ(pub.donor(), "donor/alice");
  EXPECT_EQ(pub.created_by(), pb::GOODS_GIFT);
  ASSERT_EQ(pub.hops_size(), 3);
  EXPECT_EQ(pub.hops(1).type(), pb::HANDOUT);
  EXPECT_EQ(pub.hops(1).to(), "recipient");
  EXPECT_EQ(pub.hops(1).amount(), 4);
  EXPECT_EQ(pub.hops(1).category(), "dibao");
  EXPECT_EQ(pub.hops(1).community(), "c001");
  EXPECT_EQ(pub.hops(2).to(), "recipient");
  EXPECT_EQ(pub.hops(2).category(), "elderly-poverty");
  EXPECT_EQ(pub.hops(2).community(), "c002");
  std::map<std::string, int64_t> reached;
  for (const pb::TracePlace& p : pub.reached()) {
    EXPECT_EQ(p.account(), "recipient");
    EXPECT_EQ(p.kind(), pb::RECIPIENT);
    reached[p.category() + "/" + p.community()] += p.amount();
  }
  EXPECT_EQ(reached, (std::map<std::string, int64_t>{{"dibao/c001", 4},
                                                      {"elderly-poverty/c002", 3}}));
  ASSERT_EQ(pub.held_size(), 1);
  EXPECT_EQ(pub.held(0).account(), "stock/oil");
  EXPECT_EQ(pub.held(0).amount(), 3);

  // The office's view names the pseudonyms; the public one never does.
  const pb::Trace office = TraceOf(gift.lot());
  EXPECT_EQ(office.hops(1).to(), d.r1);
  EXPECT_EQ(office.hops(1).category(), "dibao");

  // An anonymous gift in kind: the public never learns the donor.
  pb::GiveGoodsRequest anon = GiveGoodsReq("anon", "donor/alice", "stock/oil", "item:oil", 2);
  anon.set_anonymous(true);
  const pb::GiveGoodsResponse anon_gift = GoodsWrite(&GStub::GiveGoods, anon);
  by_code.set_trace_code(anon_gift.trace_code());
  ASSERT_TRUE(IsOk(client_->Call(&Stub::TraceByCode, by_code, &pub)));
  EXPECT_TRUE(pub.anonymous());
  EXPECT_EQ(pub.donor(), "");
  EXPECT_EQ(pub.hops(0).from(), "anonymous");
  EXPECT_EQ(pub.DebugString().find("donor/alice"), std::string::npos) << pub.DebugString();
}

TEST_F(ServerTest, AMoneyDonorsTraceShowsTheGoodsItBoughtAndWhoReceivedThemByCategory) {
  const Depot d = SetUpDepot();
  // The first gift (1,000 fen) and the second (2,000) buy 10 kg of rice:
  // their shares, 3.33 and 6.67 kg, are 3 and 7 by largest remainder.
  const pb::BuyGoodsResponse bought = GoodsWrite(
      &GStub::BuyGoods,
      BuyGoodsReq("buy-rice", "fund/general", "supplier/farm", 3000, "stock/rice", "item:rice", 10));
  GoodsWrite(&GStub::HandOut,
             HandOutReq("hand-rice", "stock/rice", "item:rice", {{d.r1, 4}, {d.r2, 3}}));
  GoodsWrite(&GStub::WriteOffGoods,
             WriteOffReq("off-rice", "stock/rice", "expense/spoilage", "item:rice", 1));
  // 2 kg stay in stock.

  pb::TraceByCodeRequest by_code;
  by_code.set_trace_code(d.money_codes[0]);
  pb::Trace pub;
  ASSERT_TRUE(IsOk(client_->Call(&Stub::TraceByCode, by_code, &pub)));
  const std::string everything = pub.DebugString();
  EXPECT_EQ(everything.find(d.r1), std::string::npos) << everything;
  EXPECT_EQ(everything.find(d.r2), std::string::npos) << everything;
  // The money itself reached the supplier...
  ASSERT_EQ(pub.reached_size(), 1);
  EXPECT_EQ(pub.reached(0).account(), "supplier/farm");
  EXPECT_EQ(pub.reached(0).amount(), 1000);
  // ...and became a third of the rice.
  ASSERT_EQ(pub.conversions_size(), 1);
  const pb::LotConversion& c = pub.conversions(0);
  EXPECT_EQ(c.seq(), bought.lot());
  EXPECT_EQ(c.type(), pb::GOODS_PURCHASE);
  EXPECT_EQ(c.asset(), "item:rice");
  EXPECT_EQ(c.lot_amount(), 10);
  EXPECT_EQ(c.consumed(), 1000);
  EXPECT_EQ(c.share(), 3);
  int64_t amount_sum = 0, source_sum = 0;
  std::map<std::string, std::pair<int64_t, int64_t>> places;
  for (const pb::ConversionPlace& p : c.places()) {
    amount_sum += p.amount();
    source_sum += p.source_amount();
    if (p.kind() == pb::RECIPIENT) {
      EXPECT_EQ(p.account(), "");  // a group, never a person
      places[p.category() + "/" + p.community()] = {p.amount(), p.source_amount()};
    } else {
      places[p.account()] = {p.amount(), p.source_amount()};
    }
  }
  EXPECT_EQ(amount_sum, c.share());
  EXPECT_EQ(source_sum, c.consumed());
  // The 1,000 fen follow the rice: 2 kg in stock, 4 with dibao/c001, 3 with
  // elderly-poverty/c002, 1 spoiled (100 fen a kg).
  ASSERT_EQ(places.size(), 4u);
  EXPECT_EQ(places["stock/rice"].second, 200);
  EXPECT_EQ(places["dibao/c001"].second, 400);
  EXPECT_EQ(places["elderly-poverty/c002"].second, 300);
  EXPECT_EQ(places["expense/spoilage"].second, 100);

  // The handout's backward trace: the rice lot, and the gifts behind it,
  // listed once, with the first source of the lot.
  pb::TraceEntryRequest entry_req;
  entry_req.set_seq(bought.result().seq() + 1);  // the handout
  pb::EntryTrace back;
  ASSERT_TRUE(IsOk(client_->Call(&Stub::TraceEntry, entry_req, &back)));
  EXPECT_EQ(back.type(), pb::HANDOUT);
  ASSERT_EQ(back.sources_size(), 2);  // one slice per line
  EXPECT_EQ(back.sources(0).lot(), bought.lot());
  EXPECT_EQ(back.sources(0).donor(), "supplier/farm");
  EXPECT_EQ(back.sources(0).amount(), 4);
  EXPECT_EQ(back.sources(0).behind_count(), 2u);
  ASSERT_EQ(back.sources(0).behind_size(), 2);
  EXPECT_EQ(back.sources(0).behind(0).lot(), d.money_lots[0]);
  EXPECT_EQ(back.sources(0).behind(0).donor(), "donor/alice");
  EXPECT_EQ(back.sources(0).behind(0).consumed(), 1000);
  EXPECT_EQ(back.sources(0).behind(0).share(), 3);
  EXPECT_EQ(back.sources(0).behind(1).lot(), d.money_lots[1]);
  EXPECT_EQ(back.sources(0).behind(1).consumed(), 2000);
  EXPECT_EQ(back.sources(0).behind(1).share(), 7);
  EXPECT_EQ(back.sources(1).lot(), bought.lot());
  EXPECT_EQ(back.sources(1).behind_count(), 2u);
  EXPECT_EQ(back.sources(1).behind_size(), 0);
}

// ================================================================ aid supervision

// The entry with `seq`, decoded from the bytes the server stored.
Entry DecodedEntry(const Client& c, uint64_t seq) {
  pb::GetEntryRequest req;
  req.set_seq(seq);
  pb::Entry entry;
  EXPECT_TRUE(IsOk(c.Call(&Stub::GetEntry, req, &entry)));
  absl::StatusOr<Entry> decoded = DecodeEntry(entry.entry_bytes());
  EXPECT_TRUE(decoded.ok()) << decoded.status();
  return decoded.ok() ? *decoded : Entry();
}

std::string SummaryOf(const Client& c, uint64_t seq) {
  pb::GetEntryRequest req;
  req.set_seq(seq);
  pb::Entry entry;
  EXPECT_TRUE(IsOk(c.Call(&Stub::GetEntry, req, &entry)));
  return entry.summary();
}

TEST_F(ServerTest, SetAidRuleIsIdempotentListedReplacedAndLiftedWithMaxCountZero) {
  SetUpWorld();
  const pb::SetAidRuleRequest rule =
      AidRuleReq("rule-1", "cash-aid", pb::DISBURSEMENT, "fund/general", 1, pb::MONTH);
  pb::WriteResult set;
  ASSERT_TRUE(IsOk(client_->Call(&AStub::SetAidRule, rule, &set)));
  EXPECT_FALSE(set.duplicate());
  clock_.AdvanceMicros(1000);
  pb::WriteResult again;
  ASSERT_TRUE(IsOk(client_->Call(&AStub::SetAidRule, rule, &again)));
  EXPECT_TRUE(again.duplicate());
  EXPECT_EQ(again.seq(), set.seq());
  pb::SetAidRuleRequest changed = rule;
  changed.set_max_count(2);
  EXPECT_TRUE(IsError(client_->Call(&AStub::SetAidRule, changed, &again), grpc::ALREADY_EXISTS,
                      "max_count"));

  pb::GetEntryRequest get;
  get.set_seq(set.seq());
  pb::Entry entry;
  ASSERT_TRUE(IsOk(client_->Call(&Stub::GetEntry, get, &entry)));
  EXPECT_EQ(entry.type(), pb::AID_RULE);
  EXPECT_EQ(entry.postings_size(), 0);
  EXPECT_EQ(entry.summary(),
            "aid rule cash-aid: at most 1 disbursement per month to each recipient from "
            "fund/general: policy rule-1");

  // A second rule, set through SubmitBatch.
  pb::BatchRequest batch;
  *batch.add_operations()->mutable_set_aid_rule() =
      AidRuleReq("rule-2", "daily-box", pb::HANDOUT, "stock/food", 1, pb::YEAR);
  pb::BatchResponse batched;
  ASSERT_TRUE(IsOk(client_->Call(&Stub::SubmitBatch, batch, &batched)));
  ASSERT_EQ(batched.results_size(), 1);
  EXPECT_EQ(batched.results(0).code(), grpc::OK) << batched.results(0).message();
  const uint64_t box_seq = batched.results(0).result().seq();

  pb::AidRules rules;
  ASSERT_TRUE(IsOk(client_->Call(&AStub::ListAidRules, pb::ListAidRulesRequest(), &rules)));
  ASSERT_EQ(rules.rules_size(), 2);  // by aid
  EXPECT_EQ(rules.rules(0).aid(), "cash-aid");
  EXPECT_EQ(rules.rules(0).type(), pb::DISBURSEMENT);
  EXPECT_EQ(rules.rules(0).source(), "fund/general");
  EXPECT_EQ(rules.rules(0).asset(), "");
  EXPECT_EQ(rules.rules(0).max_count(), 1u);
  EXPECT_EQ(rules.rules(0).period(), pb::MONTH);
  EXPECT_EQ(rules.rules(0).memo(), "policy rule-1");
  EXPECT_EQ(rules.rules(0).seq(), set.seq());
  EXPECT_EQ(rules.rules(1).aid(), "daily-box");
  EXPECT_EQ(rules.rules(1).type(), pb::HANDOUT);
  EXPECT_EQ(rules.rules(1).period(), pb::YEAR);
  EXPECT_EQ(rules.rules(1).seq(), box_seq);

  // The same aid again replaces the rule; max_count 0 lifts it.
  pb::SetAidRuleRequest weekly =
      AidRuleReq("rule-3", "cash-aid", pb::DISBURSEMENT, "", 3, pb::WEEK);
  weekly.set_asset("CNY");
  const uint64_t weekly_seq = Write(&AStub::SetAidRule, weekly).seq();
  ASSERT_TRUE(IsOk(client_->Call(&AStub::ListAidRules, pb::ListAidRulesRequest(), &rules)));
  ASSERT_EQ(rules.rules_size(), 2);
  EXPECT_EQ(rules.rules(0).max_count(), 3u);
  EXPECT_EQ(rules.rules(0).period(), pb::WEEK);
  EXPECT_EQ(rules.rules(0).source(), "");
  EXPECT_EQ(rules.rules(0).asset(), "CNY");
  EXPECT_EQ(rules.rules(0).seq(), weekly_seq);
  const uint64_t lifted = Write(&AStub::SetAidRule, AidRuleReq("rule-4", "cash-aid",
                                                               pb::DISBURSEMENT, "", 0, pb::MONTH))
                              .seq();
  EXPECT_EQ(SummaryOf(*client_, lifted), "aid rule cash-aid lifted");
  ASSERT_TRUE(IsOk(client_->Call(&AStub::ListAidRules, pb::ListAidRulesRequest(), &rules)));
  ASSERT_EQ(rules.rules_size(), 1);
  EXPECT_EQ(rules.rules(0).aid(), "daily-box");
  // Lifting a rule that is not in force is refused.
  EXPECT_TRUE(IsError(
      client_->Call(&AStub::SetAidRule,
                    AidRuleReq("rule-5", "cash-aid", pb::DISBURSEMENT, "", 0, pb::MONTH), &again),
      grpc::FAILED_PRECONDITION, "max_count"));
}

TEST_F(ServerTest, ADisbursementBreakingARuleIsRefusedNamingTheEarlierEntryUntilOverridden) {
  const World w = SetUpWorld();
  Write(&AStub::SetAidRule,
        AidRuleReq("rule-cash", "cash-aid", pb::DISBURSEMENT, "fund/general", 1, pb::MONTH));
  const uint64_t first =
      Write(&Stub::Disburse, DisburseReq("pay-1", "fund/general", w.recipient, 1000)).seq();

  // A second payment this month: refused, naming the earlier entry, and
  // nothing is written, alone or in a batch.
  const uint64_t head = client_->HeadSeq();
  const std::string digest = server_->ledger().StateDigest();
  pb::DisburseRequest second = DisburseReq("pay-2", "fund/general", w.recipient, 1500);
  pb::WriteResult out;
  grpc::Status refused = client_->Call(&Stub::Disburse, second, &out);
  EXPECT_TRUE(IsError(refused, grpc::FAILED_PRECONDITION, "disbursement.to"));
  EXPECT_THAT(refused.error_message(), HasSubstr("'cash-aid'"));
  EXPECT_THAT(refused.error_message(), HasSubstr(w.recipient));
  EXPECT_THAT(refused.error_message(), HasSubstr("entry " + std::to_string(first)));
  EXPECT_THAT(refused.error_message(), HasSubstr("override"));
  pb::BatchOperation op;
  SetOperation(second, &op);
  const grpc::Status in_batch = CallInBatch(*client_, op);
  EXPECT_EQ(in_batch.error_code(), grpc::FAILED_PRECONDITION);
  EXPECT_EQ(in_batch.error_message(), refused.error_message());
  EXPECT_EQ(client_->HeadSeq(), head);
  EXPECT_EQ(server_->ledger().StateDigest(), digest);
  EXPECT_EQ(BalanceOf(w.recipient), 1000);

  // Aid the rule does not count passes: from another fund, to a supplier.
  Write(&Stub::Disburse, DisburseReq("pay-school", "project/school", w.recipient, 100));
  Write(&Stub::Disburse, DisburseReq("pay-ops", "fund/general", "expense/ops", 100));

  // The same request with an override reason is recorded, with the reason.
  second.set_override_reason("house fire: second payment approved by the director");
  const pb::WriteResult overridden = Write(&Stub::Disburse, second);
  EXPECT_FALSE(overridden.duplicate());
  const Entry stored = DecodedEntry(*client_, overridden.seq());
  const auto* body = std::get_if<DisbursementOp>(&stored.body);
  ASSERT_NE(body, nullptr);
  EXPECT_EQ(body->override_reason, "house fire: second payment approved by the director");
  EXPECT_EQ(SummaryOf(*client_, overridden.seq()),
            "disbursement of 15.00 CNY from fund/general to " + w.recipient +
                ": purpose pay-2 (override: house fire: second payment approved by the "
                "director)");
  EXPECT_EQ(BalanceOf(w.recipient), 2600);
  // A retry is a duplicate; the same id without the reason is another request.
  pb::WriteResult retried;
  ASSERT_TRUE(IsOk(client_->Call(&Stub::Disburse, second, &retried)));
  EXPECT_TRUE(retried.duplicate());
  EXPECT_EQ(retried.seq(), overridden.seq());
  second.clear_override_reason();
  EXPECT_TRUE(IsError(client_->Call(&Stub::Disburse, second, &retried), grpc::ALREADY_EXISTS,
                      "override_reason"));

  // Overridden aid counts like any other: the next one names it.
  grpc::Status third =
      client_->Call(&Stub::Disburse, DisburseReq("pay-3", "fund/general", w.recipient, 100), &out);
  EXPECT_TRUE(IsError(third, grpc::FAILED_PRECONDITION, "disbursement.to"));
  EXPECT_THAT(third.error_message(), HasSubstr("2 times"));
  EXPECT_THAT(third.error_message(), HasSubstr("entry " + std::to_string(overridden.seq())));

  // Next month (China time) the count starts again.
  clock_.AdvanceMicros(int64_t{31} * 24 * 3600 * 1'000'000);
  Write(&Stub::Disburse, DisburseReq("pay-3", "fund/general", w.recipient, 100));
}

TEST_F(ServerTest, AVoucherIssueAndAHandoutLineBreakingARuleAreRefusedUntilOverridden) {
  const Depot d = SetUpDepot();
  GoodsWrite(&GStub::GiveGoods, GiveGoodsReq("rice", "donor/alice", "stock/rice", "item:rice", 10));
  Write(&AStub::SetAidRule, AidRuleReq("rule-v", "voucher", pb::VOUCHER_ISSUE, "", 1, pb::QUARTER));
  Write(&AStub::SetAidRule, AidRuleReq("rule-h", "rice", pb::HANDOUT, "stock/rice", 1, pb::MONTH));
  const int64_t expires = clock_.NowMicros() + int64_t{3600} * 1'000'000;

  const uint64_t voucher = Issue(IssueReq("v-1", "fund/general", d.r1, 100, expires)).voucher();
  pb::IssueVoucherRequest again = IssueReq("v-2", "fund/general", d.r1, 200, expires);
  pb::IssueVoucherResponse issued;
  grpc::Status refused = client_->Call(&VStub::IssueVoucher, again, &issued);
  EXPECT_TRUE(IsError(refused, grpc::FAILED_PRECONDITION, "voucher_issue.recipient"));
  EXPECT_THAT(refused.error_message(), HasSubstr("entry " + std::to_string(voucher)));
  again.set_override_reason("winter top-up for a household of six");
  const pb::IssueVoucherResponse overridden = Issue(again);
  EXPECT_EQ(
      std::get<VoucherIssueOp>(DecodedEntry(*client_, overridden.voucher()).body).override_reason,
      "winter top-up for a household of six");
  EXPECT_THAT(SummaryOf(*client_, overridden.voucher()),
              HasSubstr(" (override: winter top-up for a household of six)"));

  const uint64_t handout =
      GoodsWrite(&GStub::HandOut, HandOutReq("h-1", "stock/rice", "item:rice", {{d.r1, 2}}))
          .result()
          .seq();
  // The second line is d.r1's second handout this month: the whole handout
  // is refused, naming the line.
  pb::HandOutRequest hand = HandOutReq("h-2", "stock/rice", "item:rice", {{d.r2, 1}, {d.r1, 1}});
  pb::HandOutResponse handed;
  refused = client_->Call(&GStub::HandOut, hand, &handed);
  EXPECT_TRUE(IsError(refused, grpc::FAILED_PRECONDITION, "handout.lines[1].recipient"));
  EXPECT_THAT(refused.error_message(), HasSubstr("entry " + std::to_string(handout)));
  EXPECT_EQ(BalanceOf(d.r2, "item:rice"), 0);
  hand.set_override_reason("the first box was damaged");
  const pb::HandOutResponse given = GoodsWrite(&GStub::HandOut, hand);
  EXPECT_EQ(given.quantity(), 2);
  EXPECT_EQ(std::get<HandoutOp>(DecodedEntry(*client_, given.result().seq()).body).override_reason,
            "the first box was damaged");
  EXPECT_EQ(BalanceOf(d.r1, "item:rice"), 3);
}

TEST_F(ServerTest, TheAidReportCountsPeopleAndThePublicViewLeavesOutSmallCells) {
  const World w = SetUpWorld();
  const int64_t start = clock_.NowMicros();
  // Five people in (dibao, c001) — with w.recipient — and one in
  // (dibao, c002); one more payment in c001 that is reversed.
  std::vector<std::string> c001 = {w.recipient};
  for (int i = 0; i < 4; ++i) {
    c001.push_back(Register("rep-reg-" + std::to_string(i), ValidId(100 + i), "dibao", "c001"));
  }
  const std::string alone = Register("rep-reg-alone", ValidId(110), "dibao", "c002");
  for (size_t i = 0; i < c001.size(); ++i) {
    Write(&Stub::Disburse,
          DisburseReq("rep-pay-" + std::to_string(i), "fund/general", c001[i], 1000));
  }
  Write(&Stub::Disburse, DisburseReq("rep-pay-twice", "fund/general", c001[0], 500));
  Write(&Stub::Disburse, DisburseReq("rep-pay-alone", "fund/general", alone, 700));
  const uint64_t mistake =
      Write(&Stub::Disburse, DisburseReq("rep-pay-mistake", "fund/general", c001[1], 9999)).seq();
  Write(&Stub::Correct, ReverseReq("rep-rev", mistake));

  pb::AidReport office;
  ASSERT_TRUE(IsOk(client_->Call(&AStub::GetAidReport, AidReportReq(start, 0, false), &office)));
  EXPECT_FALSE(office.public_view());
  EXPECT_EQ(office.from_time_us(), start);
  EXPECT_EQ(office.to_time_us(), clock_.NowMicros());  // 0: now
  EXPECT_EQ(office.suppressed_cells(), 0u);
  ASSERT_EQ(office.cells_size(), 2);
  const pb::AidCell& big = office.cells(0);
  EXPECT_EQ(big.category(), "dibao");
  EXPECT_EQ(big.community(), "c001");
  EXPECT_EQ(big.type(), pb::DISBURSEMENT);
  EXPECT_EQ(big.asset(), "CNY");
  EXPECT_EQ(big.people(), 5u);
  EXPECT_EQ(big.entries(), 6u);  // the reversed payment is left out
  EXPECT_EQ(big.amount(), 5500);
  EXPECT_EQ(office.cells(1).community(), "c002");
  EXPECT_EQ(office.cells(1).people(), 1u);
  EXPECT_EQ(office.cells(1).amount(), 700);

  pb::AidReport published;
  ASSERT_TRUE(IsOk(client_->Call(&AStub::GetAidReport, AidReportReq(start, 0, true), &published)));
  EXPECT_TRUE(published.public_view());
  EXPECT_EQ(published.min_people(), kAidReportMinPeople);
  EXPECT_EQ(published.suppressed_cells(), 1u);
  ASSERT_EQ(published.cells_size(), 1);
  EXPECT_EQ(published.cells(0).SerializeAsString(), big.SerializeAsString());
  for (const pb::AidCell& cell : published.cells()) {
    EXPECT_GE(cell.people(), kAidReportMinPeople);
  }
  EXPECT_EQ(published.DebugString().find("c002"), std::string::npos);

  // The period is half-open and ledger time: nothing before `start`, and a
  // period ending at `start` is empty.
  ASSERT_TRUE(IsOk(client_->Call(&AStub::GetAidReport, AidReportReq(0, start, false), &office)));
  EXPECT_EQ(office.cells_size(), 0);
  pb::AidReport ignored;
  EXPECT_TRUE(
      IsError(client_->Call(&AStub::GetAidReport, AidReportReq(start + 10, start, false), &ignored),
              grpc::INVALID_ARGUMENT, "from_time_us"));
  EXPECT_TRUE(IsError(client_->Call(&AStub::GetAidReport, AidReportReq(0, -1, true), &ignored),
                      grpc::INVALID_ARGUMENT, "to_time_us"));
  EXPECT_TRUE(IsError(client_->Call(&AStub::GetAidReport, AidReportReq(-1, 0, true), &ignored),
                      grpc::INVALID_ARGUMENT, "from_time_us"));
}

TEST_F(ServerTest, EveryInvalidFieldOfAnAidRuleOrOverrideIsRejectedNamingTheFieldAndWritesNothing) {
  const Depot d = SetUpDepot();
  using grpc::StatusCode;
  constexpr StatusCode kInvalid = grpc::INVALID_ARGUMENT;
  constexpr StatusCode kNotFound = grpc::NOT_FOUND;
  constexpr StatusCode kExists = grpc::ALREADY_EXISTS;
  constexpr StatusCode kState = grpc::FAILED_PRECONDITION;
  const std::string long_text(kTextBytesMax + 1, 't');
  Write(&AStub::SetAidRule,
        AidRuleReq("matrix-rule", "in-force", pb::DISBURSEMENT, "", 1, pb::MONTH));

  const pb::SetAidRuleRequest rule =
      AidRuleReq("", "cash-aid", pb::DISBURSEMENT, "fund/general", 1, pb::MONTH);
  pb::DisburseRequest pay = DisburseReq("", "fund/general", d.r1, 100);
  pay.set_override_reason("approved");
  pb::IssueVoucherRequest issue =
      IssueReq("", "fund/general", d.r1, 100, clock_.NowMicros() + int64_t{3600} * 1'000'000);
  issue.set_override_reason("approved");

  BadCaseList bad("aid-bad");
  // ---- SetAidRule ----
  bad.Add("SetAidRule/reserved client_id", kInvalid, "client_id", rule,
      [](auto& r) { r.set_client_id("~x"); });
  bad.Add("SetAidRule/empty aid", kInvalid, "aid", rule, [](auto& r) { r.set_aid(""); });
  bad.Add("SetAidRule/aid with a space", kInvalid, "aid", rule, [](auto& r) { r.set_aid("cash aid"); });
  bad.Add("SetAidRule/65-byte aid", kInvalid, "aid", rule,
      [](auto& r) { r.set_aid(std::string(kCodeBytesMax + 1, 'a')); });
  bad.Add("SetAidRule/no type", kInvalid, "type", rule,
      [](auto& r) { r.set_type(pb::ENTRY_TYPE_UNSPECIFIED); });
  bad.Add("SetAidRule/a donation", kInvalid, "type", rule, [](auto& r) { r.set_type(pb::DONATION); });
  bad.Add("SetAidRule/type beyond the enum whose low byte is DISBURSEMENT", kInvalid, "type", rule,
      [](auto& r) { r.set_type(static_cast<pb::EntryType>(256 + pb::DISBURSEMENT)); });
  bad.Add("SetAidRule/no period", kInvalid, "period", rule,
      [](auto& r) { r.set_period(pb::AID_PERIOD_UNSPECIFIED); });
  bad.Add("SetAidRule/period 6", kInvalid, "period", rule,
      [](auto& r) { r.set_period(static_cast<pb::AidPeriod>(6)); });
  bad.Add("SetAidRule/period beyond the enum whose low byte is MONTH", kInvalid, "period", rule,
      [](auto& r) { r.set_period(static_cast<pb::AidPeriod>(256 + pb::MONTH)); });
  bad.Add("SetAidRule/malformed asset", kInvalid, "asset", rule, [](auto& r) { r.set_asset("cny"); });
  bad.Add("SetAidRule/over-long memo", kInvalid, "memo", rule, [&](auto& r) { r.set_memo(long_text); });
  bad.Add("SetAidRule/unknown source", kNotFound, "source", rule,
      [](auto& r) { r.set_source("fund/nowhere"); });
  bad.Add("SetAidRule/disbursements from a stock", kState, "source", rule,
      [](auto& r) { r.set_source("stock/rice"); });
  bad.Add("SetAidRule/handouts from a fund", kState, "source", rule,
      [](auto& r) { r.set_type(pb::HANDOUT); });
  bad.Add("SetAidRule/lifting a rule not in force", kState, "max_count", rule,
      [](auto& r) { r.set_max_count(0); });
  bad.Add("SetAidRule/client_id reused with another period", kExists, "period", rule, [](auto& r) {
    r.set_client_id("matrix-rule");
    r.set_aid("in-force");
    r.set_source("");
    r.set_period(pb::YEAR);
  });
  // ---- overrides ----
  bad.Add("Disburse/over-long override_reason", kInvalid, "override_reason", pay,
      [&](auto& r) { r.set_override_reason(long_text); });
  bad.Add("IssueVoucher/over-long override_reason", kInvalid, "override_reason", issue,
      [&](auto& r) { r.set_override_reason(long_text); });

  const pb::Head head = client_->Head();
  ExpectRefusedWritingNothing(*client_, server_->ledger(), bad.cases());

  // The bases themselves are valid.
  ExpectBasesValid(*client_, head.seq(),
                   {AsOperation(rule, "base-rule"), AsOperation(pay, "base-pay"),
                    AsOperation(issue, "base-issue")});
}

// The conversion is the public report's last line of defence: even a cell
// of too few people that reached it is never sent.
TEST(AidReportConversionTest, APublicReportNeverCarriesACellOfTooFewPeople) {
  AidReport report;
  report.public_view = true;
  report.suppressed_cells = 2;
  report.cells.push_back({"dibao", "c001", EntryType::kDisbursement, "CNY", 5, 6, 5500});
  report.cells.push_back({"dibao", "c002", EntryType::kDisbursement, "CNY", 4, 4, 400});
  pb::AidReport out;
  ToProto(report, &out);
  ASSERT_EQ(out.cells_size(), 1);
  EXPECT_EQ(out.cells(0).community(), "c001");
  EXPECT_EQ(out.suppressed_cells(), 3u);
  EXPECT_EQ(out.min_people(), kAidReportMinPeople);
  // The office view carries every cell.
  report.public_view = false;
  report.suppressed_cells = 0;
  out.Clear();
  ToProto(report, &out);
  EXPECT_EQ(out.cells_size(), 2);
  EXPECT_EQ(out.suppressed_cells(), 0u);
}

TEST_F(ServerTest, AtMost1000AidRulesAreInForceAtOnce) {
  pb::BatchRequest batch;
  for (size_t i = 0; i < kAidRulesMax; ++i) {
    *batch.add_operations()->mutable_set_aid_rule() = AidRuleReq(
        "many-" + std::to_string(i), "aid-" + std::to_string(i), pb::DISBURSEMENT, "", 1, pb::DAY);
  }
  pb::BatchResponse resp;
  ASSERT_TRUE(IsOk(client_->Call(&Stub::SubmitBatch, batch, &resp)));
  for (const pb::BatchResult& r : resp.results()) ASSERT_EQ(r.code(), grpc::OK) << r.message();
  pb::WriteResult out;
  EXPECT_TRUE(IsError(
      client_->Call(&AStub::SetAidRule,
                    AidRuleReq("one-more", "aid-x", pb::DISBURSEMENT, "", 1, pb::DAY), &out),
      grpc::FAILED_PRECONDITION, "aid"));
  // Replacing or lifting one in force is still allowed.
  Write(&AStub::SetAidRule, AidRuleReq("replace", "aid-7", pb::DISBURSEMENT, "", 2, pb::DAY));
  Write(&AStub::SetAidRule, AidRuleReq("lift", "aid-8", pb::DISBURSEMENT, "", 0, pb::DAY));
  Write(&AStub::SetAidRule, AidRuleReq("one-more", "aid-x", pb::DISBURSEMENT, "", 1, pb::DAY));
  pb::AidRules rules;
  ASSERT_TRUE(IsOk(client_->Call(&AStub::ListAidRules, pb::ListAidRulesRequest(), &rules)));
  EXPECT_EQ(static_cast<size_t>(rules.rules_size()), kAidRulesMax);
}

TEST_F(ServerTest, IdNumberBornAfterTodayIsRejected) {
  // The date of birth may be at most today (identity.h). "Today" depends on
  // a clock, so the server's injected clock is set to the wall clock's day:
  // the answer is then the same whichever clock the server consults.
  const int64_t now_us = SystemClock::Default()->NowMicros();
  clock_.SetMicros(now_us);
  std::time_t now = static_cast<std::time_t>(now_us / 1'000'000);
  std::tm tm{};
  gmtime_r(&now, &tm);
  if (tm.tm_mon == 11 && tm.tm_mday == 31) GTEST_SKIP() << "no later day in this year";
  char later[16], earlier[16];
  std::snprintf(later, sizeof later, "%04d1231", tm.tm_year + 1900);
  std::snprintf(earlier, sizeof earlier, "%04d0101", tm.tm_year + 1900);
  pb::RegisterRecipientResponse resp;
  EXPECT_TRUE(IsError(client_->Call(&Stub::RegisterRecipient,
                                    RegisterReq("unborn", IdBornOn(later)), &resp),
                      grpc::INVALID_ARGUMENT, "id_number"));
  EXPECT_EQ(client_->HeadSeq(), 0u);
  EXPECT_TRUE(IsOk(client_->Call(&Stub::RegisterRecipient,
                                 RegisterReq("newborn", IdBornOn(earlier)), &resp)));
}

// Proto3 enums are open: a value the schema does not know arrives as is.
// Values that only coincide with a known kind/channel/mode in their low byte
// must be rejected like every other unknown value.
TEST_F(ServerTest, OpenAccountRejectsKindValuesBeyondTheEnumEvenIfTheirLowByteIsKnown) {
  SetUpWorld();
  const uint64_t before = client_->HeadSeq();
  pb::OpenAccountRequest as_fund = OpenReq("fund/wrapped", static_cast<pb::AccountKind>(256 + 2),
                                           "CNY");
  pb::WriteResult r;
  EXPECT_TRUE(IsError(client_->Call(&Stub::OpenAccount, as_fund, &r), grpc::INVALID_ARGUMENT,
                      "kind"));
  // 262 = 256 + RECIPIENT: would open a recipient with a chosen id, bypassing
  // RegisterRecipient's pseudonym.
  pb::OpenAccountRequest as_recipient =
      OpenReq("recipient/zhang-san-410103198001011234", static_cast<pb::AccountKind>(256 + 6));
  EXPECT_TRUE(IsError(client_->Call(&Stub::OpenAccount, as_recipient, &r),
                      grpc::INVALID_ARGUMENT, "kind"));
  EXPECT_EQ(client_->HeadSeq(), before);
  EXPECT_FALSE(AccountExists("recipient/zhang-san-410103198001011234"));
}

TEST_F(ServerTest, DonateRejectsChannelValuesBeyondTheEnumEvenIfTheirLowByteIsKnown) {
  SetUpWorld();
  const uint64_t before = client_->HeadSeq();
  pb::DonateRequest req = DonateReq("wrapped-channel", "donor/alice", "fund/general", 10);
  req.set_channel(static_cast<pb::DonationChannel>(256 + 1));
  pb::DonateResponse r;
  EXPECT_TRUE(IsError(client_->Call(&Stub::Donate, req, &r), grpc::INVALID_ARGUMENT, "channel"));
  EXPECT_EQ(client_->HeadSeq(), before);
}

TEST_F(ServerTest, CorrectRejectsModeValuesBeyondTheEnumEvenIfTheirLowByteIsKnown) {
  SetUpWorld();
  const uint64_t gift = Donate("to-keep", "donor/alice", "fund/general", 700).lot();
  const uint64_t before = client_->HeadSeq();
  pb::CorrectRequest req = ReverseReq("wrapped-mode", gift);
  req.set_mode(static_cast<pb::CorrectionMode>(256 + 1));  // low byte: REVERSE
  pb::WriteResult r;
  EXPECT_TRUE(IsError(client_->Call(&Stub::Correct, req, &r), grpc::INVALID_ARGUMENT, "mode"));
  EXPECT_EQ(client_->HeadSeq(), before);
  EXPECT_EQ(BalanceOf("fund/general"), 80700);
}

TEST_F(ServerTest, DonateWithCreateDonorAcceptsAClientIdOfTheMaximumLength) {
  Open("fund/general", pb::FUND, "CNY");
  pb::DonateRequest req = DonateReq(std::string(kClientIdBytesMax, 'k'), "donor/new",
                                    "fund/general", 100);
  req.set_create_donor(true);
  pb::DonateResponse r;
  EXPECT_TRUE(IsOk(client_->Call(&Stub::Donate, req, &r)));
  EXPECT_TRUE(AccountExists("donor/new"));
}

TEST_F(ServerTest, DonateWithCreateDonorNamesTheCallersFieldsInErrors) {
  Open("fund/general", pb::FUND, "CNY");
  pb::DonateRequest bad_donor = DonateReq("cd-1", "x y", "fund/general", 100);
  bad_donor.set_create_donor(true);
  pb::DonateResponse r;
  EXPECT_TRUE(IsError(client_->Call(&Stub::Donate, bad_donor, &r), grpc::INVALID_ARGUMENT,
                      "donor"));
  pb::DonateRequest long_name = DonateReq("cd-2", "donor/new", "fund/general", 100);
  long_name.set_create_donor(true);
  long_name.set_donor_name(std::string(kNameBytesMax + 1, 'n'));
  EXPECT_TRUE(IsError(client_->Call(&Stub::Donate, long_name, &r), grpc::INVALID_ARGUMENT,
                      "donor_name"));
  EXPECT_EQ(client_->HeadSeq(), 1u);
}

TEST_F(ServerTest, SubmitBatchOpensADonorForALaterDonationWhenAnEarlierOneFailed) {
  Open("fund/general", pb::FUND, "CNY");
  pb::BatchRequest req;
  pb::DonateRequest failing = DonateReq("cd-fail", "donor/dora", "fund/general", 0);
  failing.set_create_donor(true);
  pb::DonateRequest good = DonateReq("cd-good", "donor/dora", "fund/general", 100);
  good.set_create_donor(true);
  *req.add_operations()->mutable_donate() = failing;
  *req.add_operations()->mutable_donate() = good;
  pb::BatchResponse resp;
  ASSERT_TRUE(IsOk(client_->Call(&Stub::SubmitBatch, req, &resp)));
  ASSERT_EQ(resp.results_size(), 2);
  EXPECT_EQ(resp.results(0).code(), grpc::INVALID_ARGUMENT) << resp.results(0).message();
  EXPECT_EQ(resp.results(1).code(), grpc::OK) << resp.results(1).message();
  EXPECT_TRUE(AccountExists("donor/dora"));
}

TEST_F(ServerTest, SubmitBatchErrorMessagesNumberOperationsAsTheCallerSentThem) {
  // The caller sent two operations; a donation with create_donor becomes two
  // engine operations, which must not shift the numbers in messages.
  Open("fund/general", pb::FUND, "CNY");
  pb::BatchRequest req;
  {
    pb::BatchOperation* op = req.add_operations();
    op->set_linked(true);
    pb::DonateRequest d = DonateReq("num-don", "donor/new", "fund/general", 10);
    d.set_create_donor(true);
    *op->mutable_donate() = d;
  }
  pb::OpenAccountRequest bad = OpenReq("expense/a b", pb::EXPENSE);
  bad.set_client_id("num-open");
  *req.add_operations()->mutable_open_account() = bad;
  pb::BatchResponse resp;
  ASSERT_TRUE(IsOk(client_->Call(&Stub::SubmitBatch, req, &resp)));
  ASSERT_EQ(resp.results_size(), 2);
  EXPECT_EQ(resp.results(0).code(), grpc::ABORTED);
  EXPECT_THAT(resp.results(0).message(), HasSubstr("operation 1"));
  EXPECT_THAT(resp.results(0).message(), ::testing::Not(HasSubstr("operation 2")));
  EXPECT_EQ(resp.results(1).code(), grpc::INVALID_ARGUMENT);
  EXPECT_EQ(client_->HeadSeq(), 1u);
}

TEST_F(ServerTest, ConcurrentFirstDonationsOfOneNewDonorAllSucceed) {
  // create_donor's check ("does the donor exist?") runs when the call is
  // planned, before it is queued; concurrent first gifts of the same new
  // donor must still all succeed. A race: a correct server always passes,
  // a racy one fails in some of the rounds with high probability.
  Open("fund/general", pb::FUND, "CNY");
  constexpr int kThreads = 8;
  constexpr int kRounds = 8;
  std::vector<std::unique_ptr<Client>> clients;
  for (int t = 0; t < kThreads; ++t) {
    clients.push_back(std::make_unique<Client>(server_->port()));
    ASSERT_TRUE(clients.back()->channel()->WaitForConnected(std::chrono::system_clock::now() +
                                                            kCallTimeout));
  }
  std::vector<std::vector<grpc::Status>> statuses(kRounds, std::vector<grpc::Status>(kThreads));
  std::barrier round(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int r = 0; r < kRounds; ++r) {
        pb::DonateRequest req =
            DonateReq("first-" + std::to_string(r) + "-" + std::to_string(t),
                      "donor/eve-" + std::to_string(r), "fund/general", 10);
        req.set_create_donor(true);
        pb::DonateResponse resp;
        round.arrive_and_wait();
        statuses[r][t] = clients[t]->Call(&Stub::Donate, req, &resp);
      }
    });
  }
  for (std::thread& t : threads) t.join();
  int failed = 0;
  for (int r = 0; r < kRounds; ++r) {
    for (int t = 0; t < kThreads; ++t) {
      if (statuses[r][t].ok()) continue;
      if (failed++ == 0) {
        ADD_FAILURE() << "round " << r << ", donation " << t << ": "
                      << Describe(statuses[r][t]);
      }
    }
  }
  EXPECT_EQ(failed, 0) << "of " << kRounds * kThreads << " first donations failed";
  EXPECT_EQ(BalanceOf("fund/general"), 10 * (kRounds * kThreads - failed));
}

TEST_F(ServerTest, ExportListEntriesWithTheLargestCountMaxStreamsToTheHead) {
  SetUpWorld();
  const uint64_t head = client_->HeadSeq();
  std::vector<pb::Entry> entries;
  ASSERT_TRUE(IsOk(client_->ListEntries(5, std::numeric_limits<uint64_t>::max(), &entries)));
  ASSERT_EQ(entries.size(), head - 4);
  EXPECT_EQ(entries.front().seq(), 5u);
}

TEST(ListenTest, DevModeRefusesHostnamesThatOnlyLookLikeLoopback) {
  EXPECT_TRUE(IsLoopbackListen("127.0.0.1:7420"));
  EXPECT_TRUE(IsLoopbackListen("localhost:0"));
  EXPECT_TRUE(IsLoopbackListen("[::1]:0"));
  EXPECT_FALSE(IsLoopbackListen("0.0.0.0:0"));
  EXPECT_FALSE(IsLoopbackListen("[::]:0"));
  // A DNS name, not an address in 127.0.0.0/8: it may resolve anywhere.
  EXPECT_FALSE(IsLoopbackListen("127.0.0.1.nip.io:7420"));
  EXPECT_FALSE(IsLoopbackListen("127.example.com:7420"));
}

// ================================================================ verifiability


Hash ToHash(const std::string& bytes) {
  Hash h{};
  EXPECT_EQ(bytes.size(), h.size());
  std::copy_n(bytes.begin(), std::min(bytes.size(), h.size()), h.begin());
  return h;
}

TEST_F(ServerTest, CheckpointsAndProofsAreServedAndVerifyWithThePublishedKey) {
  World w = SetUpWorld();
  const uint64_t head = client_->HeadSeq();
  ASSERT_TRUE(server_->ledger().WaitForCheckpoint(head, 10'000).ok());

  pb::VerifierKey key;
  ASSERT_TRUE(IsOk(client_->Call(&TStub::GetVerifierKey, pb::GetVerifierKeyRequest(), &key)));
  EXPECT_EQ(key.origin(), "warmledger.local/ledger");
  EXPECT_EQ(key.verifier_key(), server_->verifier_key());
  // The same key is published beside the signing key.
  std::ifstream vkey_file(dir_.Sub("data") + "/keys/checkpoint.vkey");
  std::string vkey_line;
  std::getline(vkey_file, vkey_line);
  EXPECT_EQ(vkey_line, key.verifier_key());
  auto verifier = NoteVerifier::Parse(key.verifier_key());
  ASSERT_TRUE(verifier.ok()) << verifier.status();

  pb::SignedCheckpoint latest;
  ASSERT_TRUE(IsOk(client_->Call(&TStub::GetCheckpoint, pb::GetCheckpointRequest(), &latest)));
  auto text = verifier->Open(latest.note());
  ASSERT_TRUE(text.ok()) << text.status();
  auto checkpoint = ParseCheckpoint(*text);
  ASSERT_TRUE(checkpoint.ok());
  EXPECT_EQ(checkpoint->size, head);
  EXPECT_EQ(latest.tree_size(), head);
  EXPECT_EQ(ToHash(latest.root_hash()), checkpoint->root);
  pb::GetCheckpointRequest at;
  at.set_tree_size(head);
  pb::SignedCheckpoint same;
  ASSERT_TRUE(IsOk(client_->Call(&TStub::GetCheckpoint, at, &same)));
  EXPECT_EQ(same.note(), latest.note());
  at.set_tree_size(head - 1);
  EXPECT_TRUE(IsError(client_->Call(&TStub::GetCheckpoint, at, &same), grpc::NOT_FOUND,
                      "tree_size"));

  // Every entry's inclusion proof against the checkpoint.
  for (uint64_t seq = 1; seq <= head; ++seq) {
    pb::InclusionProofRequest req;
    req.set_seq(seq);
    pb::InclusionProof proof;
    ASSERT_TRUE(IsOk(client_->Call(&TStub::GetInclusionProof, req, &proof)));
    EXPECT_EQ(proof.tree_size(), head);
    EXPECT_EQ(proof.leaf_index(), seq - 1);
    pb::GetEntryRequest get;
    get.set_seq(seq);
    pb::Entry entry;
    ASSERT_TRUE(IsOk(client_->Call(&Stub::GetEntry, get, &entry)));
    const Hash leaf = merkle::LeafHash(entry.entry_bytes());
    EXPECT_EQ(ToHash(proof.leaf_hash()), leaf);
    std::vector<Hash> path;
    for (const std::string& h : proof.hashes()) path.push_back(ToHash(h));
    EXPECT_TRUE(merkle::VerifyInclusion(seq - 1, head, leaf, path, checkpoint->root).ok())
        << seq;
  }

  // A later checkpoint extends this one.
  Donate("later-1", "donor/alice", "fund/general", 7);
  ASSERT_TRUE(server_->ledger().WaitForCheckpoint(head + 1, 10'000).ok());
  pb::SignedCheckpoint newer;
  ASSERT_TRUE(IsOk(client_->Call(&TStub::GetCheckpoint, pb::GetCheckpointRequest(), &newer)));
  pb::ConsistencyProofRequest creq;
  creq.set_old_size(head);
  pb::ConsistencyProof cproof;
  ASSERT_TRUE(IsOk(client_->Call(&TStub::GetConsistencyProof, creq, &cproof)));
  EXPECT_EQ(cproof.new_size(), head + 1);
  std::vector<Hash> hashes;
  for (const std::string& h : cproof.hashes()) hashes.push_back(ToHash(h));
  EXPECT_TRUE(merkle::VerifyConsistency(head, head + 1, checkpoint->root,
                                        ToHash(newer.root_hash()), hashes)
                  .ok());
  creq.set_old_size(head + 5);
  EXPECT_TRUE(IsError(client_->Call(&TStub::GetConsistencyProof, creq, &cproof),
                      grpc::INVALID_ARGUMENT, "old_size"));

  // An entry with its proof in one call.
  pb::EntryProofRequest ereq;
  ereq.set_seq(w.donation_seq);
  pb::EntryProof eproof;
  ASSERT_TRUE(IsOk(client_->Call(&TStub::GetEntryProof, ereq, &eproof)));
  EXPECT_EQ(eproof.entry().seq(), w.donation_seq);
  EXPECT_EQ(eproof.checkpoint().note(), newer.note());
  EXPECT_EQ(eproof.proof().tree_size(), head + 1);
}

TEST_F(ServerTest, ADonationWaitingForItsReceiptGetsOneThatVerifiesOfflineAfterTheServerStops) {
  SetUpWorld();
  pb::DonateRequest req = DonateReq("receipt-gift", "donor/alice", "fund/general", 8800);
  req.set_wait_for_receipt(true);
  pb::DonateResponse resp = Donate(req);
  ASSERT_FALSE(resp.receipt().empty());
  const std::string vkey = server_->verifier_key();
  StopServer();

  // Offline: nothing but the receipt text and the verifier key.
  auto receipt = ParseReceipt(resp.receipt());
  ASSERT_TRUE(receipt.ok()) << receipt.status();
  auto verifier = NoteVerifier::Parse(vkey);
  ASSERT_TRUE(verifier.ok());
  auto text = verifier->Open(receipt->checkpoint);
  ASSERT_TRUE(text.ok()) << text.status();
  auto checkpoint = ParseCheckpoint(*text);
  ASSERT_TRUE(checkpoint.ok());
  EXPECT_EQ(receipt->index, resp.result().seq() - 1);
  EXPECT_TRUE(merkle::VerifyInclusion(receipt->index, checkpoint->size,
                                      merkle::LeafHash(receipt->entry_bytes), receipt->proof,
                                      checkpoint->root)
                  .ok());
  auto entry = DecodeEntry(receipt->entry_bytes);
  ASSERT_TRUE(entry.ok());
  const auto* donation = std::get_if<DonationOp>(&entry->body);
  ASSERT_NE(donation, nullptr);
  EXPECT_EQ(donation->donor, "donor/alice");
  EXPECT_EQ(donation->to, "fund/general");
  EXPECT_EQ(donation->amount, 8800);
}

TEST_F(ServerTest, AReceiptIsFetchedLaterByTraceCodeWithoutAnAccount) {
  World w = SetUpWorld();
  pb::GetReceiptRequest req;
  req.set_trace_code(w.trace_code);
  req.set_wait_ms(5000);
  pb::Receipt receipt;
  ASSERT_TRUE(IsOk(client_->Call(&TStub::GetReceipt, req, &receipt)));
  EXPECT_EQ(receipt.seq(), w.donation_seq);
  auto parsed = ParseReceipt(receipt.text());
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->index, w.donation_seq - 1);

  req.set_trace_code("AAAAAAAAAAAAAAAAAAAAAAAAAA");
  EXPECT_TRUE(IsError(client_->Call(&TStub::GetReceipt, req, &receipt), grpc::NOT_FOUND,
                      "trace_code"));
  req.set_trace_code("short");
  EXPECT_TRUE(IsError(client_->Call(&TStub::GetReceipt, req, &receipt),
                      grpc::INVALID_ARGUMENT, "trace_code"));
  req.set_trace_code(w.trace_code);
  req.set_seq(3);
  EXPECT_TRUE(IsError(client_->Call(&TStub::GetReceipt, req, &receipt),
                      grpc::INVALID_ARGUMENT, "trace_code, seq"));
  req.clear_seq();
  req.set_wait_ms(5001);
  EXPECT_TRUE(IsError(client_->Call(&TStub::GetReceipt, req, &receipt),
                      grpc::INVALID_ARGUMENT, "wait_ms"));
}

TEST_F(ServerTest, ARestartedServerReverifiesItsCheckpointsAndRefusesAForeignKey) {
  SetUpWorld();
  ASSERT_TRUE(server_->ledger().WaitForCheckpoint(client_->HeadSeq(), 10'000).ok());
  const std::string vkey = server_->verifier_key();
  RestartServer();
  EXPECT_EQ(server_->verifier_key(), vkey);
  StopServer();
  // Another signing key cannot vouch for checkpoints signed by the first.
  ServerOptions o = Options();
  o.checkpoint_key_file = dir_.Sub("other.key");
  auto refused = Server::Start(o);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kDataLoss) << refused.status();
  EXPECT_THAT(std::string(refused.status().message()), HasSubstr("checkpoint"));
}

// ================================================================ roles

class AuthTest : public ::testing::Test {
 protected:
  // The callers of the matrix; a token's metadata value is "Bearer <token>".
  struct Caller {
    std::string name;
    std::string authorization;
  };

  void SetUp() override {
    const std::string auth_file = dir_.Sub("auth");
    std::ofstream out(auth_file);
    out << "# test tokens\n";
    for (const char* role : {"admin", "clerk", "mall", "auditor"}) {
      const std::string token = std::string("token-of-the-") + role + "-0123456789abcdef";
      out << HashToHex(Sha256(token)) << " " << role << " " << role << "-user\n";
      callers_.push_back({role, "Bearer " + token});
    }
    out.close();
    callers_.push_back({"none", ""});
    callers_.push_back({"bad token", "Bearer not-a-known-token"});
    callers_.push_back({"not bearer", "Basic dXNlcjpwYXNz"});

    ServerOptions o;
    o.data_dir = dir_.Sub("data");
    o.listen = "127.0.0.1:0";
    o.auth_file = auth_file;
    o.clock = &clock_;
    o.log = logs_.Writer();
    o.voucher_sweep_ms = 0;
    auto server = Server::Start(std::move(o));
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
  }

  Client As(const std::string& name) {
    for (const Caller& c : callers_) {
      if (c.name == name) return Client(server_->port(), c.authorization);
    }
    ADD_FAILURE() << "no caller " << name;
    return Client(server_->port());
  }

  TempDir dir_;
  ManualClock clock_;
  LogSink logs_;
  std::vector<Caller> callers_;
  std::unique_ptr<Server> server_;
};

TEST_F(AuthTest, EachRoleMayCallExactlyTheRpcsOfTheApiTable) {
  // Set-up as admin.
  Client admin = As("admin");
  auto must = [](const grpc::Status& s, const std::string& what) {
    ASSERT_TRUE(s.ok()) << what << ": " << Describe(s);
  };
  pb::WriteResult wr;
  for (const auto& [account, kind, asset] :
       std::vector<std::tuple<std::string, pb::AccountKind, std::string>>{
           {"fund/general", pb::FUND, "CNY"},
           {"project/school", pb::PROJECT, "CNY"},
           {"donor/alice", pb::DONOR, ""},
           {"expense/ops", pb::EXPENSE, ""}}) {
    must(admin.Call(&Stub::OpenAccount, OpenReq(account, kind, asset), &wr), account);
  }
  for (size_t i = 0; i < callers_.size(); ++i) {
    must(admin.Call(&Stub::OpenAccount, OpenReq("expense/close-" + std::to_string(i), pb::EXPENSE),
                    &wr),
         "close target");
  }
  pb::DonateResponse gift;
  must(admin.Call(&Stub::Donate, DonateReq("setup-gift", "donor/alice", "fund/general", 1000000),
                  &gift),
       "gift");
  pb::WriteResult alloc;
  must(admin.Call(&Stub::Allocate,
                  AllocateReq("setup-alloc", "fund/general", "project/school", 10000), &alloc),
       "allocation");

  // Checkout and vouchers: a store and a recipient; a voucher every allowed
  // till redeems from; per caller a purchase to refund, a voucher to void and
  // a voucher that is due for the sweep.
  must(admin.Call(&Stub::OpenAccount, OpenReq("store/a", pb::MERCHANT), &wr), "store");
  pb::RegisterRecipientResponse reg;
  must(admin.Call(&Stub::RegisterRecipient, RegisterReq("setup-reg", ValidId(900)), &reg),
       "recipient");
  const std::string recipient = reg.recipient();
  // Goods: a catalogued item whose stock holds enough for every caller.
  must(admin.Call(&Stub::OpenAccount, OpenReq("stock/rice", pb::STOCK, "item:rice"), &wr),
       "stock");
  must(admin.Call(&Stub::OpenAccount, OpenReq("supplier/farm", pb::SUPPLIER), &wr), "supplier");
  must(admin.Call(&GStub::DefineItem, DefineItemReq("item:rice", "kg"), &wr), "item");
  pb::GiveGoodsResponse rice;
  must(admin.Call(&GStub::GiveGoods,
                  GiveGoodsReq("setup-rice", "donor/alice", "stock/rice", "item:rice", 1000),
                  &rice),
       "rice");
  const int64_t far_us = clock_.NowMicros() + int64_t{24} * 3600 * 1'000'000;
  auto issue = [&](const std::string& id, int64_t amount, int64_t expires_us) {
    pb::IssueVoucherResponse r;
    must(admin.Call(&VStub::IssueVoucher,
                    IssueReq(id, "fund/general", recipient, amount, expires_us), &r),
         id);
    return r;
  };
  const pb::IssueVoucherResponse till = issue("setup-till", 100000, far_us);
  std::vector<uint64_t> to_void;
  for (size_t i = 0; i < callers_.size(); ++i) {
    const std::string n = std::to_string(i);
    pb::PurchaseResult bought;
    must(admin.Call(&CStub::RecordPurchase, PurchaseReq("store/a", "refund-target-" + n, 10000),
                    &bought),
         "purchase");
    to_void.push_back(issue("setup-void-" + n, 100, far_us).voucher());
    issue("setup-sweep-" + n, 100, clock_.NowMicros() + 1000);
  }
  clock_.AdvanceMicros(10'000);  // the sweep's vouchers are due

  // Checkpoints exist before the matrix runs (the Transparency reads need one).
  ASSERT_TRUE(server_->ledger().WaitForCheckpoint(server_->ledger().Head().seq, 10'000).ok());

  // Who may call what, from docs/api.md.
  enum class Need { kPublic, kRead, kWrite, kExport, kAdmin, kCheckout, kCheckoutRead };
  const std::map<Need, std::set<std::string>> allowed = {
      {Need::kPublic, {"none", "mall", "clerk", "auditor", "admin"}},
      {Need::kRead, {"clerk", "auditor", "admin"}},
      {Need::kWrite, {"clerk", "admin"}},
      {Need::kExport, {"auditor", "admin"}},
      {Need::kAdmin, {"admin"}},
      {Need::kCheckout, {"mall", "admin"}},
      {Need::kCheckoutRead, {"mall", "clerk", "auditor", "admin"}},
  };

  struct Rpc {
    std::string name;
    Need need;
    // Calls the RPC as caller number `i` with a request that succeeds when
    // the caller is allowed.
    std::function<grpc::Status(const Client&, size_t i)> call;
  };
  const std::string trace_code = gift.trace_code();
  const uint64_t lot = gift.lot();
  const uint64_t alloc_seq = alloc.seq();
  std::vector<Rpc> rpcs = {
      {"OpenAccount", Need::kWrite,
       [](const Client& c, size_t i) {
         pb::WriteResult r;
         return c.Call(&Stub::OpenAccount, OpenReq("fund/f" + std::to_string(i), pb::FUND, "CNY"),
                       &r);
       }},
      {"CloseAccount", Need::kWrite,
       [](const Client& c, size_t i) {
         pb::CloseAccountRequest req;
         req.set_client_id("close-" + std::to_string(i));
         req.set_account("expense/close-" + std::to_string(i));
         req.set_reason("test");
         pb::WriteResult r;
         return c.Call(&Stub::CloseAccount, req, &r);
       }},
      {"Donate", Need::kWrite,
       [](const Client& c, size_t i) {
         pb::DonateResponse r;
         return c.Call(&Stub::Donate,
                       DonateReq("don-" + std::to_string(i), "donor/alice", "fund/general", 100),
                       &r);
       }},
      {"Allocate", Need::kWrite,
       [](const Client& c, size_t i) {
         pb::WriteResult r;
         return c.Call(&Stub::Allocate,
                       AllocateReq("alloc-" + std::to_string(i), "fund/general", "project/school",
                                   10),
                       &r);
       }},
      {"Disburse", Need::kWrite,
       [](const Client& c, size_t i) {
         pb::WriteResult r;
         return c.Call(&Stub::Disburse,
                       DisburseReq("pay-" + std::to_string(i), "project/school", "expense/ops", 1),
                       &r);
       }},
      {"Correct", Need::kWrite,
       [lot](const Client& c, size_t i) {
         pb::WriteResult r;
         return c.Call(&Stub::Correct,
                       AdjustReq("adj-" + std::to_string(i), lot, "fund/general", "expense/ops", 1),
                       &r);
       }},
      {"RegisterRecipient", Need::kWrite,
       [](const Client& c, size_t i) {
         pb::RegisterRecipientResponse r;
         return c.Call(&Stub::RegisterRecipient,
                       RegisterReq("reg-" + std::to_string(i), ValidId(100 + static_cast<int>(i))),
                       &r);
       }},
      {"SubmitBatch", Need::kWrite,
       [](const Client& c, size_t i) {
         pb::BatchRequest req;
         *req.add_operations()->mutable_open_account() =
             OpenReq("fund/b" + std::to_string(i), pb::FUND, "CNY");
         pb::BatchResponse r;
         grpc::Status s = c.Call(&Stub::SubmitBatch, req, &r);
         if (s.ok() && (r.results_size() != 1 || r.results(0).code() != grpc::OK)) {
           return grpc::Status(grpc::INTERNAL, "test: batch operation failed");
         }
         return s;
       }},
      {"GetHead", Need::kPublic,
       [](const Client& c, size_t) {
         pb::Head r;
         return c.Call(&Stub::GetHead, pb::GetHeadRequest(), &r);
       }},
      {"GetEntry", Need::kRead,
       [](const Client& c, size_t) {
         pb::GetEntryRequest req;
         req.set_seq(1);
         pb::Entry r;
         return c.Call(&Stub::GetEntry, req, &r);
       }},
      {"GetAccount", Need::kRead,
       [](const Client& c, size_t) {
         pb::GetAccountRequest req;
         req.set_account("fund/general");
         pb::Account r;
         return c.Call(&Stub::GetAccount, req, &r);
       }},
      {"ListAccounts", Need::kRead,
       [](const Client& c, size_t) {
         pb::AccountList r;
         return c.Call(&Stub::ListAccounts, pb::ListAccountsRequest(), &r);
       }},
      {"GetStatement", Need::kRead,
       [](const Client& c, size_t) {
         pb::StatementRequest req;
         req.set_account("fund/general");
         pb::Statement r;
         return c.Call(&Stub::GetStatement, req, &r);
       }},
      {"GetFundSummary", Need::kPublic,
       [](const Client& c, size_t) {
         pb::FundSummaryRequest req;
         req.set_account("fund/general");
         pb::FundSummary r;
         return c.Call(&Stub::GetFundSummary, req, &r);
       }},
      {"ListFundSummaries", Need::kPublic,
       [](const Client& c, size_t) {
         pb::FundSummaries r;
         return c.Call(&Stub::ListFundSummaries, pb::ListFundSummariesRequest(), &r);
       }},
      {"TraceDonation", Need::kRead,
       [lot](const Client& c, size_t) {
         pb::TraceDonationRequest req;
         req.set_lot(lot);
         pb::Trace r;
         return c.Call(&Stub::TraceDonation, req, &r);
       }},
      {"TraceByCode", Need::kPublic,
       [trace_code](const Client& c, size_t) {
         pb::TraceByCodeRequest req;
         req.set_trace_code(trace_code);
         pb::Trace r;
         return c.Call(&Stub::TraceByCode, req, &r);
       }},
      {"TraceEntry", Need::kRead,
       [alloc_seq](const Client& c, size_t) {
         pb::TraceEntryRequest req;
         req.set_seq(alloc_seq);
         pb::EntryTrace r;
         return c.Call(&Stub::TraceEntry, req, &r);
       }},
      {"GetDonorStatement", Need::kRead,
       [](const Client& c, size_t) {
         pb::DonorStatementRequest req;
         req.set_donor("donor/alice");
         pb::DonorStatement r;
         return c.Call(&Stub::GetDonorStatement, req, &r);
       }},
      {"GetRegistry", Need::kPublic,
       [](const Client& c, size_t) {
         pb::Registry r;
         return c.Call(&Stub::GetRegistry, pb::GetRegistryRequest(), &r);
       }},
      {"Transparency.GetVerifierKey", Need::kPublic,
       [](const Client& c, size_t) {
         pb::VerifierKey r;
         return c.Call(&TStub::GetVerifierKey, pb::GetVerifierKeyRequest(), &r);
       }},
      {"Transparency.GetCheckpoint", Need::kPublic,
       [](const Client& c, size_t) {
         pb::SignedCheckpoint r;
         return c.Call(&TStub::GetCheckpoint, pb::GetCheckpointRequest(), &r);
       }},
      {"Transparency.GetInclusionProof", Need::kPublic,
       [](const Client& c, size_t) {
         pb::InclusionProofRequest req;
         req.set_seq(1);
         pb::InclusionProof r;
         return c.Call(&TStub::GetInclusionProof, req, &r);
       }},
      {"Transparency.GetConsistencyProof", Need::kPublic,
       [](const Client& c, size_t) {
         pb::ConsistencyProofRequest req;
         req.set_old_size(1);
         pb::ConsistencyProof r;
         return c.Call(&TStub::GetConsistencyProof, req, &r);
       }},
      {"Transparency.GetEntryProof", Need::kRead,
       [](const Client& c, size_t) {
         pb::EntryProofRequest req;
         req.set_seq(1);
         pb::EntryProof r;
         return c.Call(&TStub::GetEntryProof, req, &r);
       }},
      {"Transparency.GetReceipt(trace_code)", Need::kPublic,
       [trace_code](const Client& c, size_t) {
         pb::GetReceiptRequest req;
         req.set_trace_code(trace_code);
         pb::Receipt r;
         return c.Call(&TStub::GetReceipt, req, &r);
       }},
      {"Transparency.GetReceipt(seq)", Need::kRead,
       [lot](const Client& c, size_t) {
         pb::GetReceiptRequest req;
         req.set_seq(lot);
         pb::Receipt r;
         return c.Call(&TStub::GetReceipt, req, &r);
       }},
      {"Export.ListEntries", Need::kExport,
       [](const Client& c, size_t) {
         std::vector<pb::Entry> entries;
         grpc::Status s = c.ListEntries(0, 0, &entries);
         if (s.ok() && entries.empty()) return grpc::Status(grpc::INTERNAL, "test: no entries");
         return s;
       }},
      {"Export.TailEntries", Need::kExport,
       [](const Client& c, size_t) {
         pb::Entry first;
         return c.TailOne(1, &first);
       }},
      {"Admin.Backup", Need::kAdmin,
       [this](const Client& c, size_t i) {
         pb::BackupResponse r;
         return c.Backup(dir_.Sub("backup-" + std::to_string(i)), &r);
       }},
      {"Checkout.RecordPurchase", Need::kCheckout,
       [](const Client& c, size_t i) {
         pb::PurchaseResult r;
         return c.Call(&CStub::RecordPurchase,
                       PurchaseReq("store/a", "order-" + std::to_string(i), 5000), &r);
       }},
      {"Checkout.RecordRefund", Need::kCheckout,
       [](const Client& c, size_t i) {
         const std::string n = std::to_string(i);
         pb::RefundResult r;
         return c.Call(&CStub::RecordRefund,
                       RefundReq("store/a", "refund-target-" + n, "refund-" + n, 1000), &r);
       }},
      {"Checkout.RedeemVoucher", Need::kCheckout,
       [code = till.code()](const Client& c, size_t i) {
         pb::RedemptionResult r;
         return c.Call(&CStub::RedeemVoucher,
                       RedeemReq("store/a", "redeem-" + std::to_string(i), code, 100), &r);
       }},
      {"Checkout.SubmitCheckoutBatch", Need::kCheckout,
       [](const Client& c, size_t i) {
         pb::CheckoutBatchRequest req;
         *req.add_items()->mutable_purchase() =
             PurchaseReq("store/a", "batch-" + std::to_string(i), 5000);
         pb::CheckoutBatchResponse r;
         grpc::Status s = c.Call(&CStub::SubmitCheckoutBatch, req, &r);
         if (s.ok() && (r.results_size() != 1 || r.results(0).code() != grpc::OK)) {
           return grpc::Status(grpc::INTERNAL, "test: batch item failed");
         }
         return s;
       }},
      {"Checkout.GetStoreSettlement", Need::kCheckoutRead,
       [](const Client& c, size_t) {
         pb::Settlement r;
         return c.Call(&CStub::GetStoreSettlement, pb::SettlementRequest(), &r);
       }},
      {"Vouchers.IssueVoucher", Need::kWrite,
       [recipient, far_us](const Client& c, size_t i) {
         pb::IssueVoucherResponse r;
         return c.Call(&VStub::IssueVoucher,
                       IssueReq("issue-" + std::to_string(i), "fund/general", recipient, 100,
                                far_us),
                       &r);
       }},
      {"Vouchers.VoidVoucher", Need::kWrite,
       [to_void](const Client& c, size_t i) {
         pb::VoidVoucherRequest req;
         req.set_client_id("void-" + std::to_string(i));
         req.set_voucher(to_void[i]);
         req.set_reason("test");
         pb::WriteResult r;
         return c.Call(&VStub::VoidVoucher, req, &r);
       }},
      {"Vouchers.SweepExpiredVouchers", Need::kWrite,
       [](const Client& c, size_t) {
         pb::SweepVouchersRequest req;
         req.set_max(1);
         pb::SweepVouchersResponse r;
         grpc::Status s = c.Call(&VStub::SweepExpiredVouchers, req, &r);
         if (s.ok() && (r.expired_size() != 1 || r.expired(0).code() != grpc::OK)) {
           return grpc::Status(grpc::INTERNAL, "test: nothing swept");
         }
         return s;
       }},
      {"Vouchers.GetVoucher(voucher)", Need::kRead,
       [voucher = till.voucher()](const Client& c, size_t) {
         pb::GetVoucherRequest req;
         req.set_voucher(voucher);
         pb::Voucher r;
         return c.Call(&VStub::GetVoucher, req, &r);
       }},
      {"Vouchers.GetVoucher(code)", Need::kCheckoutRead,
       [code = till.code()](const Client& c, size_t) {
         pb::GetVoucherRequest req;
         req.set_code(code);
         pb::Voucher r;
         return c.Call(&VStub::GetVoucher, req, &r);
       }},
      {"Vouchers.GetVoucherReport", Need::kRead,
       [](const Client& c, size_t) {
         pb::VoucherReport r;
         return c.Call(&VStub::GetVoucherReport, pb::VoucherReportRequest(), &r);
       }},
      {"Goods.DefineItem", Need::kWrite,
       [](const Client& c, size_t i) {
         pb::WriteResult r;
         return c.Call(&GStub::DefineItem, DefineItemReq("item:x" + std::to_string(i)), &r);
       }},
      {"Goods.ListItems", Need::kPublic,
       [](const Client& c, size_t) {
         pb::Items r;
         grpc::Status s = c.Call(&GStub::ListItems, pb::ListItemsRequest(), &r);
         if (s.ok() && r.items_size() == 0) return grpc::Status(grpc::INTERNAL, "test: no items");
         return s;
       }},
      {"Goods.GetItem", Need::kPublic,
       [](const Client& c, size_t) {
         pb::GetItemRequest req;
         req.set_item("item:rice");
         pb::Item r;
         return c.Call(&GStub::GetItem, req, &r);
       }},
      {"Goods.GiveGoods", Need::kWrite,
       [](const Client& c, size_t i) {
         pb::GiveGoodsResponse r;
         return c.Call(&GStub::GiveGoods,
                       GiveGoodsReq("give-" + std::to_string(i), "donor/alice", "stock/rice",
                                    "item:rice", 1),
                       &r);
       }},
      {"Goods.BuyGoods", Need::kWrite,
       [](const Client& c, size_t i) {
         pb::BuyGoodsResponse r;
         return c.Call(&GStub::BuyGoods,
                       BuyGoodsReq("buy-" + std::to_string(i), "fund/general", "supplier/farm",
                                   10, "stock/rice", "item:rice", 1),
                       &r);
       }},
      {"Goods.HandOut", Need::kWrite,
       [recipient](const Client& c, size_t i) {
         pb::HandOutResponse r;
         return c.Call(&GStub::HandOut,
                       HandOutReq("hand-" + std::to_string(i), "stock/rice", "item:rice",
                                  {{recipient, 1}}),
                       &r);
       }},
      {"Goods.WriteOffGoods", Need::kWrite,
       [](const Client& c, size_t i) {
         pb::WriteOffGoodsResponse r;
         return c.Call(&GStub::WriteOffGoods,
                       WriteOffReq("off-" + std::to_string(i), "stock/rice", "expense/ops",
                                   "item:rice", 1),
                       &r);
       }},
      {"Goods.SellGoods", Need::kWrite,
       [](const Client& c, size_t i) {
         pb::SellGoodsResponse r;
         return c.Call(&GStub::SellGoods,
                       SellGoodsReq("sell-" + std::to_string(i), "stock/rice", "store/a",
                                    "item:rice", 1, "fund/general", 10),
                       &r);
       }},
      // Rules so generous that they never refuse the matrix's own aid.
      {"Aid.SetAidRule", Need::kWrite,
       [](const Client& c, size_t i) {
         pb::WriteResult r;
         return c.Call(&AStub::SetAidRule,
                       AidRuleReq("rule-" + std::to_string(i), "aid-" + std::to_string(i),
                                  pb::DISBURSEMENT, "", 1'000'000, pb::DAY),
                       &r);
       }},
      {"Aid.ListAidRules", Need::kRead,
       [](const Client& c, size_t) {
         pb::AidRules r;
         return c.Call(&AStub::ListAidRules, pb::ListAidRulesRequest(), &r);
       }},
      {"Aid.GetAidReport(office)", Need::kRead,
       [](const Client& c, size_t) {
         pb::AidReport r;
         return c.Call(&AStub::GetAidReport, AidReportReq(0, 0, false), &r);
       }},
      {"Aid.GetAidReport(public)", Need::kPublic,
       [](const Client& c, size_t) {
         pb::AidReport r;
         return c.Call(&AStub::GetAidReport, AidReportReq(0, 0, true), &r);
       }},
  };

  for (size_t i = 0; i < callers_.size(); ++i) {
    const Caller& caller = callers_[i];
    Client c(server_->port(), caller.authorization);
    for (const Rpc& rpc : rpcs) {
      SCOPED_TRACE(rpc.name + " as " + caller.name);
      const uint64_t before = server_->ledger().Head().seq;
      const std::string digest = server_->ledger().StateDigest();
      grpc::Status s = rpc.call(c, i);
      const bool known_role = caller.name != "none" && caller.name != "bad token" &&
                              caller.name != "not bearer";
      if (allowed.at(rpc.need).contains(caller.name)) {
        EXPECT_TRUE(IsOk(s));
        if (rpc.need == Need::kWrite || rpc.need == Need::kCheckout) {
          EXPECT_GT(server_->ledger().Head().seq, before);
        }
        continue;
      }
      // A caller without a valid token is unauthenticated (also on a public
      // RPC when it presents a bad token); a known role lacking the RPC is
      // denied.
      EXPECT_TRUE(IsError(s, known_role ? grpc::PERMISSION_DENIED : grpc::UNAUTHENTICATED));
      EXPECT_EQ(server_->ledger().Head().seq, before);
      EXPECT_EQ(server_->ledger().StateDigest(), digest);
      if (rpc.name == "Admin.Backup") {
        EXPECT_FALSE(std::filesystem::exists(dir_.Sub("backup-" + std::to_string(i))));
      }
    }
  }
}

TEST_F(AuthTest, TheMallLooksVouchersUpByCodeWithoutSeeingTheRecipient) {
  Client admin = As("admin");
  pb::WriteResult wr;
  ASSERT_TRUE(IsOk(admin.Call(&Stub::OpenAccount, OpenReq("fund/general", pb::FUND, "CNY"), &wr)));
  ASSERT_TRUE(IsOk(admin.Call(&Stub::OpenAccount, OpenReq("donor/alice", pb::DONOR), &wr)));
  pb::DonateResponse gift;
  ASSERT_TRUE(IsOk(admin.Call(&Stub::Donate,
                              DonateReq("gift", "donor/alice", "fund/general", 10000), &gift)));
  pb::RegisterRecipientResponse reg;
  ASSERT_TRUE(IsOk(admin.Call(&Stub::RegisterRecipient, RegisterReq("reg", ValidId(3)), &reg)));
  pb::IssueVoucherResponse issued;
  ASSERT_TRUE(IsOk(admin.Call(
      &VStub::IssueVoucher,
      IssueReq("iss", "fund/general", reg.recipient(), 2000,
               clock_.NowMicros() + int64_t{3600} * 1'000'000),
      &issued)));

  pb::GetVoucherRequest by_code;
  by_code.set_code(AsTyped(issued.code()));
  pb::Voucher at_till;
  ASSERT_TRUE(IsOk(As("mall").Call(&VStub::GetVoucher, by_code, &at_till)));
  EXPECT_EQ(at_till.voucher(), issued.voucher());
  EXPECT_EQ(at_till.remaining(), 2000);
  EXPECT_EQ(at_till.category(), "dibao");
  EXPECT_EQ(at_till.recipient(), "");
  EXPECT_EQ(at_till.DebugString().find(reg.recipient()), std::string::npos);

  pb::Voucher at_office;
  ASSERT_TRUE(IsOk(As("clerk").Call(&VStub::GetVoucher, by_code, &at_office)));
  EXPECT_EQ(at_office.recipient(), reg.recipient());

  pb::GetVoucherRequest by_number;
  by_number.set_voucher(issued.voucher());
  EXPECT_TRUE(IsError(As("mall").Call(&VStub::GetVoucher, by_number, &at_till),
                      grpc::PERMISSION_DENIED));
}

TEST_F(AuthTest, TheOfficeAidReportNeedsAReaderAndThePublicOneIsOpenToAll) {
  Client admin = As("admin");
  pb::WriteResult wr;
  ASSERT_TRUE(IsOk(admin.Call(&Stub::OpenAccount, OpenReq("fund/general", pb::FUND, "CNY"), &wr)));
  ASSERT_TRUE(IsOk(admin.Call(&Stub::OpenAccount, OpenReq("donor/alice", pb::DONOR), &wr)));
  pb::DonateResponse gift;
  ASSERT_TRUE(IsOk(
      admin.Call(&Stub::Donate, DonateReq("gift", "donor/alice", "fund/general", 100000), &gift)));
  // Five people of one community, and one of another: a cell the public
  // must not see.
  for (int i = 0; i < 6; ++i) {
    const std::string n = std::to_string(i);
    pb::RegisterRecipientResponse reg;
    ASSERT_TRUE(IsOk(admin.Call(
        &Stub::RegisterRecipient,
        RegisterReq("reg-" + n, ValidId(200 + i), "disabled", i < 5 ? "c010" : "c011"), &reg)));
    ASSERT_TRUE(IsOk(admin.Call(
        &Stub::Disburse, DisburseReq("pay-" + n, "fund/general", reg.recipient(), 100), &wr)));
  }
  clock_.AdvanceMicros(1000);

  pb::AidReport report;
  EXPECT_TRUE(IsError(As("none").Call(&AStub::GetAidReport, AidReportReq(0, 0, false), &report),
                      grpc::UNAUTHENTICATED));
  EXPECT_TRUE(IsError(As("mall").Call(&AStub::GetAidReport, AidReportReq(0, 0, false), &report),
                      grpc::PERMISSION_DENIED));
  for (const char* caller : {"none", "mall", "clerk", "auditor", "admin"}) {
    SCOPED_TRACE(caller);
    pb::AidReport published;
    ASSERT_TRUE(IsOk(As(caller).Call(&AStub::GetAidReport, AidReportReq(0, 0, true), &published)));
    EXPECT_TRUE(published.public_view());
    ASSERT_EQ(published.cells_size(), 1);
    EXPECT_EQ(published.cells(0).community(), "c010");
    EXPECT_EQ(published.cells(0).people(), 5u);
    EXPECT_EQ(published.suppressed_cells(), 1u);
  }
  for (const char* caller : {"clerk", "auditor", "admin"}) {
    SCOPED_TRACE(caller);
    pb::AidReport office;
    ASSERT_TRUE(IsOk(As(caller).Call(&AStub::GetAidReport, AidReportReq(0, 0, false), &office)));
    EXPECT_EQ(office.cells_size(), 2);
    EXPECT_EQ(office.suppressed_cells(), 0u);
  }
}

TEST_F(AuthTest, ServerWithoutDevNeedsAnAuthFile) {
  ServerOptions o;
  o.data_dir = dir_.Sub("other");
  o.listen = "127.0.0.1:0";
  auto server = Server::Start(std::move(o));
  ASSERT_FALSE(server.ok());
  EXPECT_EQ(server.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(server.status().message()), HasSubstr("auth_file"));
}

// ================================================================ concurrency

TEST_F(ServerTest, ConcurrentTillsNeverRedeemMoreThanAVouchersFaceValue) {
  Shop shop = SetUpShop();
  const pb::IssueVoucherResponse v = Issue(
      IssueReq("iss-1", "fund/general", shop.recipient, 1000, clock_.NowMicros() + kHourUs));
  constexpr int kThreads = 16;
  constexpr int kTriesPerThread = 4;  // 64 tries of 100 at a voucher of 1,000
  std::atomic<int64_t> redeemed{0};
  std::atomic<int> refused{0};
  std::latch start(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      Client till(server_->port());
      start.arrive_and_wait();
      for (int k = 0; k < kTriesPerThread; ++k) {
        const std::string order = "T" + std::to_string(t) + "-" + std::to_string(k);
        pb::RedemptionResult r;
        grpc::Status s = till.Call(&CStub::RedeemVoucher,
                                   RedeemReq(t % 2 ? "store/a" : "store/b", order, v.code(), 100),
                                   &r);
        if (s.ok()) {
          redeemed += r.amount();
        } else {
          EXPECT_TRUE(IsError(s, grpc::FAILED_PRECONDITION, "redemption.amount"));
          ++refused;
        }
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(redeemed.load(), 1000);
  EXPECT_EQ(refused.load(), kThreads * kTriesPerThread - 10);
  const pb::Voucher after = VoucherById(v.voucher());
  EXPECT_EQ(after.redeemed(), 1000);
  EXPECT_EQ(after.remaining(), 0);
  EXPECT_EQ(after.status(), pb::REDEEMED);
}

TEST_F(ServerTest, ConcurrentClientsRetryingTheSameIdsApplyEachOperationExactlyOnce) {
  Open("fund/general", pb::FUND, "CNY");
  Open("donor/alice", pb::DONOR);
  const uint64_t setup = client_->HeadSeq();
  constexpr int kThreads = 32;
  constexpr int kIds = 64;
  constexpr int kSubmitters = 4;  // distinct threads per id
  // Thread t submits every id i with i % 32 in {t, t-8, t-16, t-24} (mod 32):
  // 8 ids per thread, each id from 4 different threads.
  struct Outcome {
    int id;
    grpc::Status status;
    pb::DonateResponse resp;
  };
  std::vector<std::vector<Outcome>> outcomes(kThreads);
  std::latch start(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      Client c(server_->port());
      std::vector<int> ids;
      for (int i = 0; i < kIds; ++i) {
        int r = i % kThreads;
        for (int k = 0; k < kSubmitters; ++k) {
          if ((t - 8 * k + kThreads) % kThreads == r) ids.push_back(i);
        }
      }
      std::shuffle(ids.begin(), ids.end(), std::mt19937(t));
      start.arrive_and_wait();
      for (int i : ids) {
        Outcome o;
        o.id = i;
        o.status = c.Call(&Stub::Donate,
                          DonateReq("conc-" + std::to_string(i), "donor/alice", "fund/general",
                                    1 + i),
                          &o.resp);
        outcomes[t].push_back(std::move(o));
      }
    });
  }
  for (std::thread& t : threads) t.join();

  std::map<int, std::vector<const Outcome*>> by_id;
  for (const auto& list : outcomes) {
    for (const Outcome& o : list) by_id[o.id].push_back(&o);
  }
  ASSERT_EQ(by_id.size(), static_cast<size_t>(kIds));
  std::set<uint64_t> seqs;
  int64_t expected_total = 0;
  for (const auto& [id, list] : by_id) {
    SCOPED_TRACE("conc-" + std::to_string(id));
    ASSERT_EQ(list.size(), static_cast<size_t>(kSubmitters));
    int originals = 0;
    for (const Outcome* o : list) {
      ASSERT_TRUE(IsOk(o->status));
      EXPECT_EQ(o->resp.result().seq(), list[0]->resp.result().seq());
      EXPECT_EQ(o->resp.lot(), list[0]->resp.result().seq());
      EXPECT_EQ(o->resp.trace_code(), list[0]->resp.trace_code());
      if (!o->resp.result().duplicate()) ++originals;
    }
    EXPECT_EQ(originals, 1);
    seqs.insert(list[0]->resp.result().seq());
    expected_total += 1 + id;
  }
  EXPECT_EQ(seqs.size(), static_cast<size_t>(kIds));
  EXPECT_EQ(client_->HeadSeq(), setup + kIds);
  EXPECT_EQ(BalanceOf("fund/general"), expected_total);
  EXPECT_TRUE(server_->ledger().VerifyChain().ok());
}

// ================================================================ durability

TEST_F(ServerTest, RestartKeepsEntriesBalancesAndTraceCodes) {
  World w = SetUpWorld();
  Write(&Stub::Disburse, DisburseReq("pay-1", "project/school", w.recipient, 700));
  const pb::Head head = client_->Head();
  const std::string digest = server_->ledger().StateDigest();
  const int64_t general = BalanceOf("fund/general");
  const int64_t school = BalanceOf("project/school");

  RestartServer();
  pb::Head after = client_->Head();
  EXPECT_EQ(after.seq(), head.seq());
  EXPECT_EQ(after.hash(), head.hash());
  EXPECT_EQ(server_->ledger().StateDigest(), digest);
  EXPECT_EQ(BalanceOf("fund/general"), general);
  EXPECT_EQ(BalanceOf("project/school"), school);
  EXPECT_EQ(BalanceOf(w.recipient), 700);

  pb::TraceByCodeRequest req;
  req.set_trace_code(w.trace_code);
  pb::Trace t;
  ASSERT_TRUE(IsOk(client_->Call(&Stub::TraceByCode, req, &t)));
  EXPECT_EQ(t.lot(), w.donation_seq);

  // Idempotency and the pseudonym key survive too.
  pb::DonateResponse retry;
  ASSERT_TRUE(IsOk(client_->Call(
      &Stub::Donate, DonateReq("setup-don-1", "donor/alice", "fund/general", 100000), &retry)));
  EXPECT_TRUE(retry.result().duplicate());
  EXPECT_EQ(retry.trace_code(), w.trace_code);
  pb::RegisterRecipientResponse again;
  EXPECT_TRUE(IsError(client_->Call(&Stub::RegisterRecipient,
                                    RegisterReq("reg-again", ValidId(1)), &again),
                      grpc::ALREADY_EXISTS, "id_number"));
  EXPECT_EQ(client_->HeadSeq(), head.seq());
}

TEST_F(ServerTest, BackupRestoresToTheSameHeadAndState) {
  World w = SetUpWorld();
  // The copy holds a signed checkpoint, which the restored server re-verifies.
  ASSERT_TRUE(server_->ledger().WaitForCheckpoint(client_->HeadSeq(), 10'000).ok());
  pb::BackupResponse backup;
  const std::string backup_dir = dir_.Sub("backup");
  ASSERT_TRUE(IsOk(client_->Backup(backup_dir, &backup)));
  const pb::Head head = client_->Head();
  ASSERT_EQ(backup.seq(), head.seq());
  const std::string digest = server_->ledger().StateDigest();
  // A write after the backup is not in it.
  Donate("after-backup", "donor/alice", "fund/general", 1);
  StopServer();

  const std::string restored = dir_.Sub("restored");
  std::filesystem::create_directories(restored);
  std::filesystem::copy(backup_dir, restored + "/db", std::filesystem::copy_options::recursive);
  ServerOptions o = Options();
  o.data_dir = restored;
  o.key_file = dir_.Sub("data") + "/keys/pseudonym.key";
  o.checkpoint_key_file = dir_.Sub("data") + "/keys/checkpoint.key";
  StartServer(o);

  pb::Head now = client_->Head();
  EXPECT_EQ(now.seq(), head.seq());
  EXPECT_EQ(now.hash(), head.hash());
  EXPECT_EQ(server_->ledger().StateDigest(), digest);
  EXPECT_TRUE(server_->ledger().VerifyChain().ok());
  auto rebuilt = server_->ledger().RebuildStateDigest();
  ASSERT_TRUE(rebuilt.ok()) << rebuilt.status();
  EXPECT_EQ(*rebuilt, digest);
  EXPECT_FALSE(std::filesystem::exists(restored + "/keys"));

  pb::TraceByCodeRequest req;
  req.set_trace_code(w.trace_code);
  pb::Trace t;
  ASSERT_TRUE(IsOk(client_->Call(&Stub::TraceByCode, req, &t)));
  EXPECT_EQ(t.lot(), w.donation_seq);
  // The same key: the same person is recognised.
  pb::RegisterRecipientResponse again;
  EXPECT_TRUE(IsError(client_->Call(&Stub::RegisterRecipient,
                                    RegisterReq("reg-again", ValidId(1)), &again),
                      grpc::ALREADY_EXISTS, "id_number"));
}

// ================================================================ privacy

// Every regular file under `root`, read whole.
std::vector<std::pair<std::string, std::string>> ReadAllFiles(const std::string& root) {
  std::vector<std::pair<std::string, std::string>> files;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(root)) {
    if (!entry.is_regular_file()) continue;
    std::ifstream in(entry.path(), std::ios::binary);
    std::stringstream buf;
    buf << in.rdbuf();
    files.emplace_back(entry.path().string(), buf.str());
  }
  return files;
}

TEST_F(ServerTest, IdNumbersNeverReachTheDataFolderOrTheLogs) {
  std::vector<std::string> ids;
  for (int i = 0; i < 50; ++i) ids.push_back(ValidId(200 + i));
  // Some with a lower-case check 'x' (normalised by the server).
  int lower_x = 0;
  for (std::string& id : ids) {
    if (id.back() == 'X' && lower_x++ % 2 == 0) id.back() = 'x';
  }
  Open("fund/general", pb::FUND, "CNY");
  Open("donor/alice", pb::DONOR);
  Donate("gift", "donor/alice", "fund/general", 100000);
  for (size_t i = 0; i < ids.size(); ++i) {
    std::string recipient = Register("reg-" + std::to_string(i), ids[i], "dibao",
                                     "c" + std::string(i < 9 ? "00" : "0") +
                                         std::to_string(i + 1));
    Write(&Stub::Disburse, DisburseReq("pay-" + std::to_string(i), "fund/general", recipient,
                                       100 + static_cast<int64_t>(i)));
  }
  // Rejected attempts must not leak either: a duplicate person, a bad check
  // character, and a batch with registrations.
  std::vector<std::string> rejected = {WithWrongCheckChar(ValidId(300)),
                                       WithWrongCheckChar(ValidId(301))};
  for (size_t i = 0; i < rejected.size(); ++i) {
    pb::RegisterRecipientResponse r;
    EXPECT_FALSE(client_->Call(&Stub::RegisterRecipient,
                               RegisterReq("bad-" + std::to_string(i), rejected[i]), &r)
                     .ok());
  }
  pb::RegisterRecipientResponse dup;
  EXPECT_TRUE(IsError(client_->Call(&Stub::RegisterRecipient, RegisterReq("dup", ids[0]), &dup),
                      grpc::ALREADY_EXISTS));
  pb::BatchRequest batch;
  for (int i = 0; i < 5; ++i) {
    ids.push_back(ValidId(400 + i));
    *batch.add_operations()->mutable_register_recipient() =
        RegisterReq("batch-reg-" + std::to_string(i), ids.back(), "disabled", "c100");
  }
  pb::BatchResponse resp;
  ASSERT_TRUE(IsOk(client_->Call(&Stub::SubmitBatch, batch, &resp)));
  for (const pb::BatchResult& r : resp.results()) EXPECT_EQ(r.code(), grpc::OK) << r.message();
  StopServer();

  std::vector<std::string> needles;
  for (const std::string& id : ids) {
    needles.push_back(id);
    needles.push_back(id.substr(0, 17));
  }
  for (const std::string& id : rejected) needles.push_back(id.substr(0, 17));

  auto files = ReadAllFiles(dir_.Sub("data"));
  ASSERT_FALSE(files.empty());
  size_t bytes = 0;
  for (const auto& [path, content] : files) {
    bytes += content.size();
    for (const std::string& needle : needles) {
      EXPECT_EQ(content.find(needle), std::string::npos) << needle << " found in " << path;
    }
  }
  EXPECT_GT(bytes, 0u);
  std::vector<std::string> lines = logs_.Lines();
  EXPECT_GE(lines.size(), 100u);
  for (const std::string& line : lines) {
    for (const std::string& needle : needles) {
      EXPECT_EQ(line.find(needle), std::string::npos) << needle << " logged: " << line;
    }
  }
}

// ================================================================ process

// Runs argv with stdout and stderr into `log_path`. Only async-signal-safe
// calls between fork and exec.
pid_t Spawn(const std::vector<std::string>& args, const std::string& log_path) {
  std::vector<char*> argv;
  for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  int log_fd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (log_fd < 0) {
    ADD_FAILURE() << "open " << log_path << ": " << std::strerror(errno);
    return -1;
  }
  pid_t pid = fork();
  if (pid == 0) {
    ::dup2(log_fd, 1);
    ::dup2(log_fd, 2);
    ::execv(argv[0], argv.data());
    _exit(127);
  }
  ::close(log_fd);
  if (pid < 0) ADD_FAILURE() << "fork: " << std::strerror(errno);
  return pid;
}

void PollPause() {
  struct timespec ts {0, kChildPollIntervalNs};
  nanosleep(&ts, nullptr);
}

// The child's exit status, or nullopt if it did not exit within `bound`
// (then it is killed).
std::optional<int> WaitExit(pid_t pid, std::chrono::steady_clock::duration bound) {
  const auto until = std::chrono::steady_clock::now() + bound;
  while (true) {
    int status = 0;
    pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid) return status;
    if (r < 0) return std::nullopt;
    if (std::chrono::steady_clock::now() > until) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      return std::nullopt;
    }
    PollPause();
  }
}

// The port the child wrote, or 0 if the file did not appear within the bound
// or the child exited.
int WaitForPortFile(pid_t pid, const std::string& path) {
  const auto until = std::chrono::steady_clock::now() + kChildStartMax;
  while (std::chrono::steady_clock::now() < until) {
    std::ifstream in(path);
    int port = 0;
    if (in >> port && port > 0) return port;
    int status = 0;
    if (waitpid(pid, &status, WNOHANG) == pid) return 0;
    PollPause();
  }
  return 0;
}

std::string ReadText(const std::string& path) {
  std::ifstream in(path);
  std::stringstream buf;
  buf << in.rdbuf();
  return buf.str();
}

class ProcessTest : public ::testing::Test {
 protected:
  // A daemon still running when the test ends (an assertion returned
  // early) is killed, so that a failing test leaves no process behind.
  void TearDown() override {
    for (pid_t pid : running_) {
      kill(pid, SIGKILL);
      waitpid(pid, nullptr, 0);
    }
    running_.clear();
  }

  // Starts warmledgerd --dev on the data folder; returns its port (0 on
  // failure, with the child reaped).
  int StartDaemon(pid_t* pid) {
    const std::string port_file = dir_.Sub("port");
    std::filesystem::remove(port_file);
    *pid = Spawn({WARMLEDGERD, "--dev", "--data_dir=" + dir_.Sub("data"),
                  "--listen=127.0.0.1:0", "--port_file=" + port_file},
                 dir_.Sub("daemon.log"));
    if (*pid < 0) return 0;
    running_.insert(*pid);
    int port = WaitForPortFile(*pid, port_file);
    if (port == 0) {
      Reap(*pid, std::chrono::seconds(0));
      ADD_FAILURE() << "warmledgerd did not start; its output:\n" << ReadText(dir_.Sub("daemon.log"));
    }
    return port;
  }

  // SIGTERM, then the exit status.
  std::optional<int> StopDaemon(pid_t pid) {
    kill(pid, SIGTERM);
    return Reap(pid, kChildExitMax);
  }

  // SIGKILL, then the wait status.
  std::optional<int> KillDaemon(pid_t pid) {
    kill(pid, SIGKILL);
    return Reap(pid, kChildExitMax);
  }

  TempDir dir_;

 private:
  // WaitExit, which reaps the child whatever it returns.
  std::optional<int> Reap(pid_t pid, std::chrono::steady_clock::duration bound) {
    std::optional<int> status = WaitExit(pid, bound);
    running_.erase(pid);
    return status;
  }

  std::set<pid_t> running_;
};

TEST_F(ProcessTest, DaemonServesStopsCleanlyOnSigtermAndKeepsItsWrites) {
  pid_t pid = -1;
  int port = StartDaemon(&pid);
  ASSERT_GT(port, 0);
  pb::Head head;
  {
    Client c(port);
    pb::WriteResult r;
    ASSERT_TRUE(IsOk(c.Call(&Stub::OpenAccount, OpenReq("fund/general", pb::FUND, "CNY"), &r)));
    pb::DonateResponse gift;
    pb::DonateRequest d = DonateReq("proc-gift", "donor/pat", "fund/general", 4200);
    d.set_create_donor(true);
    ASSERT_TRUE(IsOk(c.Call(&Stub::Donate, d, &gift)));
    head = c.Head();
    EXPECT_EQ(head.seq(), 3u);
  }
  std::optional<int> status = StopDaemon(pid);
  ASSERT_TRUE(status.has_value()) << "warmledgerd did not exit after SIGTERM";
  ASSERT_TRUE(WIFEXITED(*status)) << "status " << *status;
  EXPECT_EQ(WEXITSTATUS(*status), 0) << ReadText(dir_.Sub("daemon.log"));
  const std::string log = ReadText(dir_.Sub("daemon.log"));
  EXPECT_THAT(log, HasSubstr("stopped cleanly"));
  // Every RPC's log line reached stderr before the daemon exited, and the
  // lines of the calls answered before the signal come before its message
  // (they are written in bulk, every 100 ms, and the signal came sooner).
  const size_t donate = log.find("{\"rpc\":\"Donate\",\"role\":\"admin\"");
  const size_t head_line = log.find("{\"rpc\":\"GetHead\"");
  const size_t signal = log.find("SIGTERM received");
  ASSERT_NE(donate, std::string::npos) << log;
  ASSERT_NE(head_line, std::string::npos) << log;
  ASSERT_NE(signal, std::string::npos) << log;
  EXPECT_LT(donate, signal) << log;
  EXPECT_LT(head_line, signal) << log;

  port = StartDaemon(&pid);
  ASSERT_GT(port, 0);
  {
    Client c(port);
    pb::Head again = c.Head();
    EXPECT_EQ(again.seq(), head.seq());
    EXPECT_EQ(again.hash(), head.hash());
    pb::GetAccountRequest req;
    req.set_account("fund/general");
    pb::Account fund;
    ASSERT_TRUE(IsOk(c.Call(&Stub::GetAccount, req, &fund)));
    ASSERT_EQ(fund.balances_size(), 1);
    EXPECT_EQ(fund.balances(0).amount(), 4200);
  }
  status = StopDaemon(pid);
  ASSERT_TRUE(status.has_value());
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << "status " << *status;
}

// Runs a program to completion; its exit code (-1 if it did not exit).
int RunToExit(const std::vector<std::string>& args, const std::string& log_path) {
  pid_t pid = Spawn(args, log_path);
  if (pid < 0) return -1;
  std::optional<int> status = WaitExit(pid, kChildExitMax);
  if (!status.has_value() || !WIFEXITED(*status)) return -1;
  return WEXITSTATUS(*status);
}

// An acknowledgement means durable, through the whole server: donations
// that 8 concurrent clients were told succeeded survive a SIGKILL of the
// daemon while more are in flight. The moment of the kill is a number of
// acknowledgements (seeded), never a sleep. After each restart every
// acknowledged donation, sent again, is a duplicate with its original seq;
// after the last round the auditor accepts the folder.
TEST_F(ProcessTest, AcknowledgedDonationsSurviveSigkillOfTheDaemon) {
  constexpr int kWriters = 8;
  constexpr int kRounds = 3;
  constexpr auto kWritesMax = std::chrono::seconds(60);
  std::mt19937_64 rng(20261129);
  struct Acked {
    pb::DonateRequest request;
    uint64_t seq;
  };
  std::vector<Acked> all_acked;
  for (int round = 0; round < kRounds; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    const size_t kill_after = std::uniform_int_distribution<size_t>(20, 400)(rng);
    pid_t pid = -1;
    int port = StartDaemon(&pid);
    ASSERT_GT(port, 0);
    {
      Client c(port);
      pb::WriteResult r;
      ASSERT_TRUE(IsOk(c.Call(&Stub::OpenAccount, OpenReq("fund/general", pb::FUND, "CNY"), &r)));
    }
    std::mutex mu;
    std::vector<Acked> acked;  // guarded by mu
    bool killed = false;  // guarded by mu
    std::vector<std::string> unexpected;  // guarded by mu
    std::vector<std::thread> writers;
    for (int w = 0; w < kWriters; ++w) {
      writers.emplace_back([&, w] {
        Client c(port);
        for (int n = 0;; ++n) {
          pb::DonateRequest d =
              DonateReq("kill-" + std::to_string(round) + "-" + std::to_string(w) + "-" +
                            std::to_string(n),
                        "donor/k" + std::to_string(w), "fund/general", 1 + n % 97);
          d.set_create_donor(true);
          pb::DonateResponse resp;
          const grpc::Status s = c.Call(&Stub::Donate, d, &resp);
          std::lock_guard lock(mu);
          if (!s.ok()) {
            // Once the daemon is gone every call fails; before, none may.
            if (!killed) unexpected.push_back(s.error_message());
            return;
          }
          acked.push_back({std::move(d), resp.result().seq()});
        }
      });
    }
    const auto until = std::chrono::steady_clock::now() + kWritesMax;
    while (std::chrono::steady_clock::now() < until) {
      {
        std::lock_guard lock(mu);
        if (acked.size() >= kill_after || !unexpected.empty()) break;
      }
      PollPause();
    }
    {
      std::lock_guard lock(mu);
      killed = true;
    }
    const std::optional<int> status = KillDaemon(pid);
    for (std::thread& t : writers) t.join();
    ASSERT_THAT(unexpected, ::testing::IsEmpty());
    ASSERT_GE(acked.size(), kill_after) << "the writers were too slow";
    ASSERT_TRUE(status.has_value() && WIFSIGNALED(*status) && WTERMSIG(*status) == SIGKILL)
        << "status " << status.value_or(-1);
    all_acked.insert(all_acked.end(), acked.begin(), acked.end());

    port = StartDaemon(&pid);
    ASSERT_GT(port, 0);
    {
      Client c(port);
      uint64_t highest = 0;
      for (const Acked& a : all_acked) {
        pb::DonateResponse again;
        ASSERT_TRUE(IsOk(c.Call(&Stub::Donate, a.request, &again))) << a.request.client_id();
        EXPECT_TRUE(again.result().duplicate()) << a.request.client_id() << " was lost";
        EXPECT_EQ(again.result().seq(), a.seq) << a.request.client_id();
        highest = std::max(highest, a.seq);
      }
      EXPECT_GE(c.Head().seq(), highest);
    }
    std::optional<int> stopped = StopDaemon(pid);
    ASSERT_TRUE(stopped.has_value()) << "warmledgerd did not exit after SIGTERM";
  }
  const std::string key = "--key=@" + dir_.Sub("data") + "/keys/checkpoint.vkey";
  const std::string audit_log = dir_.Sub("audit.log");
  EXPECT_EQ(RunToExit({WARMLEDGER_AUDIT, "--data_dir=" + dir_.Sub("data"), key}, audit_log), 0)
      << ReadText(audit_log);
}

TEST_F(ProcessTest, ADonorsReceiptFromTheCliVerifiesOfflineAndTheAuditorAcceptsTheFolder) {
  pid_t pid = -1;
  const int port = StartDaemon(&pid);
  ASSERT_GT(port, 0);
  const std::string server = "--server=127.0.0.1:" + std::to_string(port);
  const std::string cli_log = dir_.Sub("cli.log");
  ASSERT_EQ(RunToExit({WARMLEDGER_CLI, server, "open-account", "--client_id=open-fund",
                       "--account=fund/general", "--kind=fund", "--asset=CNY"},
                      cli_log),
            0)
      << ReadText(cli_log);
  const std::string receipt = dir_.Sub("gift.tlog-proof");
  ASSERT_EQ(RunToExit({WARMLEDGER_CLI, server, "donate", "--client_id=cli-gift",
                       "--donor=donor/lin", "--create_donor", "--to=fund/general", "--yuan=88.00",
                       "--memo=for the elderly", "--receipt=" + receipt},
                      cli_log),
            0)
      << ReadText(cli_log);
  std::optional<int> status = StopDaemon(pid);
  ASSERT_TRUE(status.has_value());

  // Offline: no server runs any more.
  const std::string key = "--key=@" + dir_.Sub("data") + "/keys/checkpoint.vkey";
  const std::string verify_log = dir_.Sub("verify.log");
  EXPECT_EQ(RunToExit({WARMLEDGER_CLI, "verify-receipt", receipt, key}, verify_log), 0)
      << ReadText(verify_log);
  EXPECT_THAT(ReadText(verify_log), HasSubstr("receipt verified"));
  EXPECT_THAT(ReadText(verify_log), HasSubstr("donor/lin"));
  EXPECT_THAT(ReadText(verify_log), HasSubstr("88.00"));

  // A receipt whose entry was altered fails.
  std::string text = ReadText(receipt);
  const size_t extra = text.find("extra ") + 6;
  text[extra + 20] = text[extra + 20] == 'A' ? 'B' : 'A';
  const std::string forged = dir_.Sub("forged.tlog-proof");
  std::ofstream(forged) << text;
  EXPECT_EQ(RunToExit({WARMLEDGER_CLI, "verify-receipt", forged, key}, dir_.Sub("forged.log")), 1)
      << ReadText(dir_.Sub("forged.log"));

  const std::string audit_log = dir_.Sub("audit.log");
  EXPECT_EQ(RunToExit({WARMLEDGER_AUDIT, "--data_dir=" + dir_.Sub("data"), key}, audit_log), 0)
      << ReadText(audit_log);
}

TEST_F(ProcessTest, DevModeOnANonLoopbackAddressExitsWithAnError) {
  pid_t pid = Spawn({WARMLEDGERD, "--dev", "--data_dir=" + dir_.Sub("data"),
                     "--listen=0.0.0.0:0", "--port_file=" + dir_.Sub("port")},
                    dir_.Sub("daemon.log"));
  ASSERT_GT(pid, 0);
  std::optional<int> status = WaitExit(pid, kChildExitMax);
  ASSERT_TRUE(status.has_value()) << "warmledgerd kept running on 0.0.0.0 in --dev mode";
  ASSERT_TRUE(WIFEXITED(*status)) << "status " << *status;
  EXPECT_NE(WEXITSTATUS(*status), 0);
  EXPECT_THAT(ReadText(dir_.Sub("daemon.log")), HasSubstr("listen"));
  EXPECT_FALSE(std::filesystem::exists(dir_.Sub("port")));
}

TEST_F(ProcessTest, DaemonWithoutAuthFileOutsideDevModeExitsWithAnError) {
  pid_t pid = Spawn({WARMLEDGERD, "--data_dir=" + dir_.Sub("data"), "--listen=127.0.0.1:0"},
                    dir_.Sub("daemon.log"));
  ASSERT_GT(pid, 0);
  std::optional<int> status = WaitExit(pid, kChildExitMax);
  ASSERT_TRUE(status.has_value());
  ASSERT_TRUE(WIFEXITED(*status));
  EXPECT_NE(WEXITSTATUS(*status), 0);
  EXPECT_THAT(ReadText(dir_.Sub("daemon.log")), HasSubstr("auth_file"));
}

}  // namespace
}  // namespace warmledger::server

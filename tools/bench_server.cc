// warmledger-bench --server=HOST:PORT: measures donations through a running
// warmledgerd over gRPC, as a charity office or a campaign front end would
// send them, or (--workload=checkout) purchases, voucher redemptions and
// refunds as the shops' checkout would.
//
// Usage:
//   warmledger-bench --server=HOST:PORT [--token=T] [--mode=unary|batch]
//                    [--workload=donations|checkout] [--charity_fund=ACCOUNT]
//                    [--callers=N] [--batch=N] [--entries=N] [--seed=N]
//                    [--deadline_ms=N] [--server_pid=PID]
//
//   --server=HOST:PORT  the server (required)
//   --token=T           bearer token (a clerk or admin; admin for checkout,
//                       which needs clerk and mall rights); none for --dev
//   --workload=W        donations (default), checkout or health (below)
//   --charity_fund=A    checkout: the server's charity fund, where purchase
//                       contributions go (default fund/general); opened by
//                       the set-up if the server has no such account yet
//   --mode=M            unary: one Ledger.Donate per call; batch (default):
//                       --batch donations per Ledger.SubmitBatch
//   --callers=N         concurrent callers, 1..256 (default 64 for unary, 4
//                       for batch); each has one call outstanding at a time
//   --connections=N     HTTP/2 connections the callers share, 1..callers
//                       (default: as many as callers, at most 4); caller c
//                       uses connection c mod N, as a checkout front end's
//                       tills share its pool of channels
//   --batch=N           donations per SubmitBatch, 1..4096 (default 1000);
//                       unary mode ignores it and reports 1
//   --entries=N         donations in the timed phase (default 200000)
//   --seed=N            seeds the amounts and the run id (default 1)
//   --deadline_ms=N     deadline of every timed call (default 30000); the
//                       setup and GetHead get at least 30000
//   --server_pid=PID    also report the server's peak RSS (VmHWM of
//                       /proc/PID/status, read at the end) and its CPU time
//                       over the timed phase (/proc/PID/stat); the server
//                       must run on this machine
//
// Setup (untimed): one SubmitBatch opens the fund "fund/bench-<run>" and
// kDonorsCount donors "donor/bench-<run>-NNNN". The run id is the seed and
// the current time in microseconds, so repeated runs against one server never
// collide; the setup's client ids derive from it, so a setup call that fails
// in transit is retried with the same ids and answered as duplicates.
//
// Timed phase: --callers callers, sharing --connections channels (connected
// before the clock starts), claim donations from one shared counter until
// --entries are claimed, and send them one per Donate (unary) or --batch per
// SubmitBatch, each caller with one call outstanding. Batch callers wait for
// their calls on threads of their own; unary callers are driven from gRPC's
// completion callbacks (UnaryLoop), so that the load generator's own CPU
// per call stays well below the server's on a shared machine. Donation i goes from donor i mod kDonorsCount into the fund,
// with an amount of 1..20000 fen that depends only on the seed and i, and the
// client id "<run>:d:<i>". Every call's latency is recorded; every status and
// every per-operation result is checked (a non-OK code, a missing result, a
// zero seq or a duplicate counts as a failure). A call refused as a whole
// with RESOURCE_EXHAUSTED (the server's write queue is full; nothing was
// written) is retried with the same client ids after a back-off, and counted.
// ops_per_s is donations over the wall time of the timed phase.
//
// Output: human-readable lines, then as the last line one JSON object (mode
// "server-unary" or "server-batch", ops_per_s, p50_ms, p99_ms, max_ms per
// call, calls, callers, batch, entries = the head seq from GetHead at the end,
// donations, seed, run, failed_calls, failed_ops, retries, timed_s,
// bench_cpu_s and server_cpu_s (CPU seconds over the timed phase; the
// server's null without --server_pid), server_peak_rss_mib (null without
// --server_pid), peak_rss_mib of this process, ok). Field names follow the
// in-process mode's. Exit status: 0 success, 1 a failure (including any
// failed call or operation), 2 a usage error.
//
// --workload=checkout measures the Warm Mall checkout instead (Checkout
// service): set-up (untimed) opens a fund "fund/bench-<run>" and 16 stores
// (MERCHANT accounts), registers 64 recipients with synthetic ID numbers
// (redrawn when an earlier run registered the same one), funds the fund with
// one donation and issues 256 vouchers from it, each accepted at every store,
// valid for 24 hours and worth the most the operations mapped to it could
// redeem. The timed phase is --entries operations, operation i
// being a purchase (80%), a voucher redemption (15%) or a refund (5%) by a
// function of (seed, i): purchases of 1..20000 fen at store i mod 16 with
// order id "<run>:<i>" (every fourth with a member), redemptions of 1..2000
// fen of voucher i mod 256, refunds (every other one partial) of a purchase
// the same caller already saw confirmed (a refund slot with none becomes a
// purchase). Batch mode sends --batch of them per SubmitCheckoutBatch, unary
// mode one RecordPurchase, RedeemVoucher or RecordRefund per call. Every
// result is checked (OK, a seq, not a duplicate, the redeemed amount, the
// lot); failures are counted by code ("errors_by_code"). Its JSON line has
// mode "server-checkout-unary" or "server-checkout-batch", and purchases,
// redemptions and refunds in place of donations.
//
// --workload=health (with --mode=unary) calls the standard health check,
// grpc.health.v1.Health/Check for the whole server, and expects SERVING: no
// ledger work, no disk, so it measures what gRPC itself costs per unary call
// on this machine, with this load generator: the ceiling any unary RPC of
// the server can reach. Its JSON line has mode "server-health-unary" and
// "checks" for the confirmed calls.
//
// Money is int64 fen throughout; floating point is used only for timing.

#include "tools/bench_server.h"
#include "tools/bench_util.h"
#include "tools/rng.h"

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <chrono>
#include <cinttypes>
#include <cmath>
#include <condition_variable>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <deque>
#include <functional>
#include <latch>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "warmledger/v1/ledger.grpc.pb.h"
#include "warmledger/v1/ledger.pb.h"

namespace warmledger::bench {
namespace {

namespace pb = ::warmledger::v1;
using SteadyClock = std::chrono::steady_clock;

// ---- Bounds of the benchmark's own inputs. ----

// The server's SubmitBatch limit (docs/api.md; server.cc's kRpcBatchOpsMax).
inline constexpr uint64_t kBatchOpsMax = 4096;
inline constexpr uint64_t kCallersMax = 256;
inline constexpr uint64_t kEntriesMax = 1'000'000'000;
inline constexpr uint64_t kDeadlineMsMax = 3'600'000;
// Donor accounts opened in the setup; donations use them round-robin. With
// the fund they fit in one SubmitBatch.
inline constexpr size_t kDonorsCount = 1000;
static_assert(kDonorsCount + 1 <= kBatchOpsMax);
// Donation amounts, fen.
inline constexpr int64_t kAmountMinFen = 1;
inline constexpr int64_t kAmountMaxFen = 20000;
// Attempts of the setup call when the failure may be transient.
inline constexpr int kSetupAttemptsMax = 5;
// Retries of one call refused with RESOURCE_EXHAUSTED, and the back-off
// between them (doubling up to the maximum).
inline constexpr int kQueueFullRetriesMax = 1000;
inline constexpr auto kQueueFullBackoffMin = std::chrono::milliseconds(1);
inline constexpr auto kQueueFullBackoffMax = std::chrono::milliseconds(64);
// Deadline of the untimed calls (setup, GetHead) at least: --deadline_ms is
// for the measured calls, and a short one must not stop the setup.
inline constexpr uint64_t kUntimedDeadlineMsMin = 30'000;
// How long a channel may take to connect, apart from the per-call deadline
// (a short --deadline_ms measures calls, not connection set-up).
inline constexpr auto kConnectWaitMax = std::chrono::seconds(10);
// gRPC messages in each direction (docs/api.md).
inline constexpr int kMessageBytesMax = 16 * 1024 * 1024;
// Error messages kept for the report.
inline constexpr size_t kErrorSamplesMax = 5;

inline constexpr char kAsset[] = "CNY";

// ---- Small helpers. ----

// Nearest-rank percentile of nanosecond samples, as the in-process mode
// computes it; NaN (reported as null) when there are none. `samples` must be
// sorted.
double PercentileNanos(const std::vector<int64_t>& samples, double fraction) {
  if (samples.empty()) return std::nan("");
  size_t rank = static_cast<size_t>(std::ceil(fraction * static_cast<double>(samples.size())));
  rank = std::clamp<size_t>(rank, 1, samples.size());
  return static_cast<double>(samples[rank - 1]);
}

// VmHWM of another process, from /proc/PID/status (in kB there); nullopt if
// the process or the line is missing.
std::optional<double> ProcessPeakRssMib(uint64_t pid) {
  std::ifstream status(Format("/proc/%" PRIu64 "/status", pid));
  std::string line;
  while (std::getline(status, line)) {
    if (!line.starts_with("VmHWM:")) continue;
    std::string_view rest = std::string_view(line).substr(6);
    while (!rest.empty() && (rest.front() == ' ' || rest.front() == '\t')) rest.remove_prefix(1);
    uint64_t kib = 0;
    auto [ptr, ec] = std::from_chars(rest.data(), rest.data() + rest.size(), kib);
    if (ec != std::errc()) return std::nullopt;
    return static_cast<double>(kib) / 1024.0;
  }
  return std::nullopt;
}

// CPU time (user + system) this process has used so far, in seconds.
double ProcessCpuSeconds() {
  rusage usage{};
  if (getrusage(RUSAGE_SELF, &usage) != 0) return std::nan("");
  auto seconds = [](const timeval& t) {
    return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6;
  };
  return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

// CPU time (utime + stime) another process has used so far, from
// /proc/PID/stat; NaN if it cannot be read. The fields are counted after the
// command name's closing parenthesis, since the name may hold spaces.
double OtherProcessCpuSeconds(uint64_t pid) {
  std::ifstream stat(Format("/proc/%" PRIu64 "/stat", pid));
  std::string text;
  std::getline(stat, text);
  const size_t paren = text.rfind(')');
  if (paren == std::string::npos) return std::nan("");
  std::string_view rest = std::string_view(text).substr(paren + 1);
  // After ") ": state(3) ppid(4) ... utime(14) stime(15).
  uint64_t ticks[2] = {0, 0};
  for (int field = 3, got = 0; field <= 15 && got < 2; ++field) {
    while (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
    const size_t end = std::min(rest.find(' '), rest.size());
    if (field >= 14) {
      auto [ptr, ec] = std::from_chars(rest.data(), rest.data() + end, ticks[got]);
      if (ec != std::errc()) return std::nan("");
      ++got;
    }
    rest.remove_prefix(end);
  }
  const long ticks_per_s = sysconf(_SC_CLK_TCK);
  if (ticks_per_s <= 0) return std::nan("");
  return static_cast<double>(ticks[0] + ticks[1]) / static_cast<double>(ticks_per_s);
}


// The amount of donation i depends only on (seed, i), so a run is the same
// whatever order the callers claim their donations in.
int64_t DonationAmountFen(uint64_t seed, uint64_t index) {
  const uint64_t span = static_cast<uint64_t>(kAmountMaxFen - kAmountMinFen) + 1;
  return kAmountMinFen + static_cast<int64_t>(SplitMix64(SplitMix64(seed) ^ index) % span);
}

// Canonical code names, indexed by number (gRPC and google.rpc share them).
constexpr const char* kCodeNames[] = {
    "OK",        "CANCELLED",      "UNKNOWN",           "INVALID_ARGUMENT",   "DEADLINE_EXCEEDED",
    "NOT_FOUND", "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
    "ABORTED",   "OUT_OF_RANGE",   "UNIMPLEMENTED",     "INTERNAL",           "UNAVAILABLE",
    "DATA_LOSS", "UNAUTHENTICATED"};

const char* CodeName(grpc::StatusCode code) {
  const auto index = static_cast<size_t>(code);
  return index < std::size(kCodeNames) ? kCodeNames[index] : "CODE_UNKNOWN";
}

std::string Describe(const grpc::Status& status) {
  return Format("%s: %s", CodeName(status.error_code()), status.error_message().c_str());
}

// ---- Flags. ----

enum class Mode { kUnary, kBatch };
enum class Workload { kDonations, kCheckout, kHealth };

struct Flags {
  std::string server;
  std::string token;
  Workload workload = Workload::kDonations;
  std::string charity_fund = "fund/general";  // checkout: the server's charity fund
  Mode mode = Mode::kBatch;
  uint64_t callers = 0;  // 0: the mode's default
  uint64_t connections = 0;  // 0: min(callers, kConnectionsDefaultMax)
  uint64_t batch = 1000;
  uint64_t entries = 200'000;
  uint64_t seed = 1;
  uint64_t deadline_ms = 30'000;
  std::optional<uint64_t> server_pid;
};

inline constexpr uint64_t kUnaryCallersDefault = 64;
inline constexpr uint64_t kBatchCallersDefault = 4;
inline constexpr uint64_t kConnectionsDefaultMax = 4;

constexpr char kUsage[] =
    "usage: warmledger-bench --server=HOST:PORT [--token=T] [--mode=unary|batch (default batch)]\n"
    "                        [--workload=donations|checkout|health (default donations)]\n"
    "                        [--charity_fund=ACCOUNT (checkout; default fund/general)]\n"
    "                        [--callers=N (1..256; default 64 unary, 4 batch)]\n"
    "                        [--connections=N (1..callers; default min(callers, 4))]\n"
    "                        [--batch=N (1..4096, default 1000)]\n"
    "                        [--entries=N (donations, default 200000)] [--seed=N (default 1)]\n"
    "                        [--deadline_ms=N (per call, default 30000)] [--server_pid=PID]\n";

// A usage error: the message for stderr. Parsing never exits the process.
struct UsageError {
  std::string message;
};

std::optional<UsageError> ParseUint(std::string_view name, std::string_view text, uint64_t min,
                                    uint64_t max, uint64_t* out) {
  uint64_t value = 0;
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, value);
  if (text.empty() || ec != std::errc() || ptr != end) {
    return UsageError{Format("--%.*s: '%.*s' is not a non-negative integer",
                             static_cast<int>(name.size()), name.data(),
                             static_cast<int>(text.size()), text.data())};
  }
  if (value < min || value > max) {
    return UsageError{Format("--%.*s=%" PRIu64 " is outside %" PRIu64 "..%" PRIu64,
                             static_cast<int>(name.size()), name.data(), value, min, max)};
  }
  *out = value;
  return std::nullopt;
}

// Fills `flags` from `args`; a usage error otherwise. `help` is set for
// --help.
std::optional<UsageError> ParseFlags(const std::vector<std::string>& args, Flags* flags,
                                     bool* help) {
  for (const std::string& arg_text : args) {
    const std::string_view arg = arg_text;
    if (arg == "--help" || arg == "-h") {
      *help = true;
      return std::nullopt;
    }
    const size_t equals = arg.find('=');
    if (!arg.starts_with("--") || equals == std::string_view::npos) {
      return UsageError{Format("unknown argument '%s'", arg_text.c_str())};
    }
    const std::string_view name = arg.substr(2, equals - 2);
    const std::string_view value = arg.substr(equals + 1);
    std::optional<UsageError> error;
    if (name == "server") {
      if (value.empty() || value.find(':') == std::string_view::npos) {
        return UsageError{"--server needs HOST:PORT"};
      }
      flags->server = std::string(value);
    } else if (name == "token") {
      if (value.empty()) return UsageError{"--token needs a token"};
      flags->token = std::string(value);
    } else if (name == "workload") {
      if (value == "donations") {
        flags->workload = Workload::kDonations;
      } else if (value == "checkout") {
        flags->workload = Workload::kCheckout;
      } else if (value == "health") {
        flags->workload = Workload::kHealth;
      } else {
        return UsageError{
            Format("--workload=%s: donations, checkout or health", std::string(value).c_str())};
      }
    } else if (name == "charity_fund") {
      if (value.empty()) return UsageError{"--charity_fund needs an account"};
      flags->charity_fund = std::string(value);
    } else if (name == "mode") {
      if (value == "unary") {
        flags->mode = Mode::kUnary;
      } else if (value == "batch") {
        flags->mode = Mode::kBatch;
      } else {
        return UsageError{Format("--mode=%s: unary or batch", std::string(value).c_str())};
      }
    } else if (name == "callers") {
      error = ParseUint(name, value, 1, kCallersMax, &flags->callers);
    } else if (name == "connections") {
      error = ParseUint(name, value, 1, kCallersMax, &flags->connections);
    } else if (name == "batch") {
      error = ParseUint(name, value, 1, kBatchOpsMax, &flags->batch);
    } else if (name == "entries") {
      error = ParseUint(name, value, 1, kEntriesMax, &flags->entries);
    } else if (name == "seed") {
      error = ParseUint(name, value, 0, UINT64_MAX, &flags->seed);
    } else if (name == "deadline_ms") {
      error = ParseUint(name, value, 1, kDeadlineMsMax, &flags->deadline_ms);
    } else if (name == "server_pid") {
      uint64_t pid = 0;
      error = ParseUint(name, value, 1, INT32_MAX, &pid);
      flags->server_pid = pid;
    } else {
      return UsageError{Format("unknown flag '%s'", arg_text.c_str())};
    }
    if (error) return error;
  }
  if (flags->server.empty()) return UsageError{"--server=HOST:PORT is required"};
  if (flags->callers == 0) {
    flags->callers = flags->mode == Mode::kUnary ? kUnaryCallersDefault : kBatchCallersDefault;
  }
  if (flags->workload == Workload::kHealth && flags->mode != Mode::kUnary) {
    return UsageError{"--workload=health needs --mode=unary (Health.Check has no batch form)"};
  }
  if (flags->connections == 0) {
    flags->connections = std::min(flags->callers, kConnectionsDefaultMax);
  } else if (flags->connections > flags->callers) {
    return UsageError{Format("--connections=%" PRIu64 " is more than --callers=%" PRIu64,
                             flags->connections, flags->callers)};
  }
  return std::nullopt;
}

// ---- Calls. ----

// One channel per connection. Both arguments keep gRPC from sharing one
// subchannel (one HTTP/2 connection) between the channels, so that
// --connections is the number of connections.
std::shared_ptr<grpc::Channel> MakeChannel(const Flags& flags, int channel_id) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(kMessageBytesMax);
  args.SetMaxSendMessageSize(kMessageBytesMax);
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  args.SetInt(GRPC_ARG_CHANNEL_ID, channel_id);
  // A light client stack, so that more of the machine goes to the server
  // under test: no retry machinery (the bench does its own back-off on
  // RESOURCE_EXHAUSTED) and gRPC's minimal filter stack (no compression;
  // the server enforces the message limits), with deadlines still enforced
  // on this side.
  args.SetInt(GRPC_ARG_ENABLE_RETRIES, 0);
  args.SetInt(GRPC_ARG_MINIMAL_STACK, 1);
  args.SetInt(GRPC_ARG_ENABLE_DEADLINE_CHECKS, 1);
  return grpc::CreateCustomChannel(flags.server, grpc::InsecureChannelCredentials(), args);
}

enum class CallKind { kTimed, kUntimed };

void PrepareContext(const Flags& flags, CallKind kind, grpc::ClientContext* context) {
  const uint64_t deadline_ms = kind == CallKind::kTimed
                                   ? flags.deadline_ms
                                   : std::max(flags.deadline_ms, kUntimedDeadlineMsMin);
  context->set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(deadline_ms));
  if (!flags.token.empty()) context->AddMetadata("authorization", "Bearer " + flags.token);
}

bool WaitConnected(const std::shared_ptr<grpc::Channel>& channel) {
  return channel->WaitForConnected(std::chrono::system_clock::now() + kConnectWaitMax);
}

std::optional<uint64_t> GetHeadSeq(pb::Ledger::Stub& stub, const Flags& flags, std::string* error) {
  grpc::ClientContext context;
  PrepareContext(flags, CallKind::kUntimed, &context);
  pb::Head head;
  const grpc::Status status = stub.GetHead(&context, pb::GetHeadRequest(), &head);
  if (!status.ok()) {
    *error = "GetHead: " + Describe(status);
    return std::nullopt;
  }
  return head.seq();
}

// The run's names: accounts and client ids. Ids stay within the API's 64
// bytes: the run is at most 20 + 1 + 16 characters.
struct RunNames {
  std::string run;
  uint64_t key = 0;  // the run id as a number: seeds the checkout set-up's ID numbers
  std::string fund;
  std::vector<std::string> donors;

  std::string SetupClientId(size_t index) const { return Format("%s:o:%zu", run.c_str(), index); }
  std::string DonationClientId(uint64_t index) const {
    return Format("%s:d:%" PRIu64, run.c_str(), index);
  }
};

RunNames MakeRunNames(uint64_t seed) {
  const uint64_t now_us =
      static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(
                                std::chrono::system_clock::now().time_since_epoch())
                                .count());
  RunNames names;
  names.run = Format("%" PRIu64 "-%" PRIx64, seed, now_us);
  names.key = SplitMix64(SplitMix64(seed) ^ now_us);
  names.fund = "fund/bench-" + names.run;
  for (size_t i = 0; i < kDonorsCount; ++i) {
    names.donors.push_back(Format("donor/bench-%s-%04zu", names.run.c_str(), i));
  }
  return names;
}

// Whether a call that failed as a whole with `code` may succeed if repeated.
bool MayBeTransient(grpc::StatusCode code) {
  return code == grpc::StatusCode::UNAVAILABLE || code == grpc::StatusCode::DEADLINE_EXCEEDED ||
         code == grpc::StatusCode::RESOURCE_EXHAUSTED;
}

// Makes one untimed set-up call: `call` (given a prepared context, returning
// the status) is repeated while it fails with a code that may be transient,
// up to kSetupAttemptsMax attempts with a growing pause after each. The
// caller must send the same client ids every time, so that the server
// answers what an earlier attempt wrote as duplicates. Returns the last
// attempt's status.
template <typename Call>
grpc::Status CallSetupWithRetries(const Flags& flags, Call call) {
  grpc::Status status;
  for (int attempt = 1; attempt <= kSetupAttemptsMax; ++attempt) {
    grpc::ClientContext context;
    PrepareContext(flags, CallKind::kUntimed, &context);
    status = call(context);
    if (status.ok() || !MayBeTransient(status.error_code())) break;
    std::this_thread::sleep_for(kQueueFullBackoffMax * attempt);
  }
  return status;
}

// Submits one untimed SubmitBatch, retried as CallSetupWithRetries does.
// Per-operation results are the caller's to check; false (with `error`) if
// the call failed.
bool SubmitSetupBatch(pb::Ledger::Stub& stub, const Flags& flags, const char* what,
                      const pb::BatchRequest& request, pb::BatchResponse* response,
                      std::string* error) {
  const grpc::Status status = CallSetupWithRetries(flags, [&](grpc::ClientContext& context) {
    response->Clear();
    return stub.SubmitBatch(&context, request, response);
  });
  if (!status.ok()) {
    *error = Format("%s SubmitBatch: %s", what, Describe(status).c_str());
    return false;
  }
  if (response->results_size() != request.operations_size()) {
    *error = Format("%s SubmitBatch: %d results for %d operations", what,
                    response->results_size(), request.operations_size());
    return false;
  }
  return true;
}

// The client id of a batch operation, for error messages.
std::string BatchClientId(const pb::BatchOperation& op) {
  switch (op.op_case()) {
    case pb::BatchOperation::kOpenAccount: return op.open_account().client_id();
    case pb::BatchOperation::kDonate: return op.donate().client_id();
    case pb::BatchOperation::kRegisterRecipient: return op.register_recipient().client_id();
    default: return "?";
  }
}

// Checks that every operation of a set-up batch succeeded.
bool CheckSetupResults(const char* what, const pb::BatchRequest& request,
                       const pb::BatchResponse& response, std::string* error) {
  for (int i = 0; i < response.results_size(); ++i) {
    const pb::BatchResult& r = response.results(i);
    if (r.code() != 0 || r.result().seq() == 0) {
      *error = Format("%s operation %d (%s): %s: %s", what, i,
                      BatchClientId(request.operations(i)).c_str(),
                      CodeName(static_cast<grpc::StatusCode>(r.code())), r.message().c_str());
      return false;
    }
  }
  return true;
}

// Opens the fund and the donors in one SubmitBatch.
bool RunSetup(pb::Ledger::Stub& stub, const Flags& flags, const RunNames& names,
              std::string* error) {
  pb::BatchRequest request;
  pb::OpenAccountRequest* fund = request.add_operations()->mutable_open_account();
  fund->set_client_id(names.SetupClientId(0));
  fund->set_account(names.fund);
  fund->set_kind(pb::FUND);
  fund->set_asset(kAsset);
  fund->set_name("warmledger-bench fund, run " + names.run);
  for (size_t i = 0; i < names.donors.size(); ++i) {
    pb::OpenAccountRequest* donor = request.add_operations()->mutable_open_account();
    donor->set_client_id(names.SetupClientId(i + 1));
    donor->set_account(names.donors[i]);
    donor->set_kind(pb::DONOR);
    donor->set_name(Format("Bench donor %04zu", i));
  }
  pb::BatchResponse response;
  return SubmitSetupBatch(stub, flags, "setup", request, &response, error) &&
         CheckSetupResults("setup", request, response, error);
}

// ---- The timed phase. ----

// What one caller saw. Owned by its thread until the threads are joined.
struct CallerStats {
  std::vector<int64_t> call_ns;  // every call, retries included
  uint64_t donations_ok = 0;
  uint64_t failed_calls = 0;  // a non-OK status (after retries)
  uint64_t failed_ops = 0;    // donations not confirmed: failed calls' and per-op failures
  uint64_t retries = 0;       // calls repeated after RESOURCE_EXHAUSTED
  // The checkout workload: operations confirmed, by kind, and failed
  // operations by their google.rpc code.
  uint64_t purchases_ok = 0;
  uint64_t redemptions_ok = 0;
  uint64_t refunds_ok = 0;
  uint64_t checks_ok = 0;  // the health workload: SERVING answers
  std::map<int, uint64_t> errors_by_code;
  std::vector<std::string> error_samples;

  void Sample(std::string text) {
    if (error_samples.size() < kErrorSamplesMax) error_samples.push_back(std::move(text));
  }
  // A call that ended in `status` (not OK), so none of its `ops` operations
  // is confirmed.
  void FailedCall(const grpc::Status& status, uint64_t ops, std::string sample) {
    ++failed_calls;
    failed_ops += ops;
    errors_by_code[static_cast<int>(status.error_code())] += ops;
    Sample(std::move(sample));
  }
};

// Work shared by the callers: donations are claimed from one counter, so the
// callers together submit exactly `entries`.
struct Work {
  const Flags* flags;
  const RunNames* names;
  std::atomic<uint64_t> next_index{0};

  // Claims up to `count` donation indices; false when none are left.
  bool Claim(uint64_t count, uint64_t* first, uint64_t* claimed) {
    const uint64_t start = next_index.fetch_add(count, std::memory_order_relaxed);
    if (start >= flags->entries) return false;
    *first = start;
    *claimed = std::min(count, flags->entries - start);
    return true;
  }

  void FillDonation(uint64_t index, pb::DonateRequest* donation) const {
    donation->set_client_id(names->DonationClientId(index));
    donation->set_donor(names->donors[index % names->donors.size()]);
    donation->set_to(names->fund);
    donation->set_asset(kAsset);
    donation->set_amount(DonationAmountFen(flags->seed, index));
    donation->set_channel(pb::ONLINE_CAMPAIGN);
  }
};

// What a timed call's lambda is given: a context with the timed deadline,
// and the callback that the call's completion must run with its status.
using Done = std::function<void(grpc::Status)>;

// The back-off between repeats of one call refused as a whole with
// RESOURCE_EXHAUSTED (the server's write queue is full; nothing was written).
class QueueFullRetry {
 public:
  // Whether the call that ended with `status` is to be repeated; if so, the
  // retry is counted and the back-off slept first. Any other outcome (or
  // the last allowed retry) starts the next call afresh.
  bool Repeat(const grpc::Status& status, CallerStats& stats) {
    if (status.error_code() != grpc::StatusCode::RESOURCE_EXHAUSTED ||
        retries_ == kQueueFullRetriesMax) {
      retries_ = 0;
      backoff_ = kQueueFullBackoffMin;
      return false;
    }
    ++retries_;
    ++stats.retries;
    std::this_thread::sleep_for(backoff_);
    backoff_ = std::min(backoff_ * 2, kQueueFullBackoffMax);
    return true;
  }

 private:
  int retries_ = 0;
  std::chrono::milliseconds backoff_ = kQueueFullBackoffMin;
};

// Makes one timed call: `call` (which starts the call through the stub's
// callback interface, `stub.async()`) is repeated until it is not refused as
// a whole with RESOURCE_EXHAUSTED, timing each attempt. The caller's thread
// waits for the completion; gRPC's own threads drive the calls, so the
// callers' threads never poll the connections themselves (the synchronous
// stubs' way, which costs the load generator about twice the CPU per call).
//
// The wait is a mutex and a condition variable, which sleep at once:
// std::binary_semaphore spins with sched_yield first, and 64 spinning
// callers took a tenth of the machine's CPU from the server.
template <typename Call>
grpc::Status CallWithRetries(const Flags& flags, CallerStats& stats, Call call) {
  QueueFullRetry retry;
  std::mutex mutex;
  std::condition_variable completed;
  while (true) {
    const auto start = SteadyClock::now();
    grpc::Status status;
    {
      grpc::ClientContext context;
      PrepareContext(flags, CallKind::kTimed, &context);
      bool done = false;
      call(context, [&](grpc::Status s) {
        std::lock_guard lock(mutex);
        status = std::move(s);
        done = true;
        completed.notify_one();
      });
      std::unique_lock lock(mutex);
      completed.wait(lock, [&] { return done; });
    }
    stats.call_ns.push_back(NanosSince(start));
    if (!retry.Repeat(status, stats)) return status;
  }
}

// The status of a batch call (SubmitBatch, SubmitCheckoutBatch) for
// CallWithRetries. The engine refuses a whole submission when its queue is
// full: every result is RESOURCE_EXHAUSTED and nothing was written, so the
// call is to be repeated as if the status said so.
template <typename BatchResponse>
grpc::Status BatchCallStatus(grpc::Status status, const BatchResponse& response) {
  const auto refused = [](const auto& result) {
    return result.code() == static_cast<int>(grpc::StatusCode::RESOURCE_EXHAUSTED);
  };
  if (status.ok() && response.results_size() > 0 &&
      std::all_of(response.results().begin(), response.results().end(), refused)) {
    return grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED, response.results(0).message());
  }
  return status;
}

// Drives one caller's unary calls from gRPC's completion callbacks: each
// completion checks its outcome, claims the next operation and starts its
// call from the callback, so that a caller costs no thread wake-up per call
// and gRPC can send a call together with the replies it is reading. `Ops`
// supplies bool Next() (claims and prepares the next operation; false when
// none are left), void Start(grpc::ClientContext*, Done) (starts the
// prepared operation's call through the stub's callback interface) and
// void Finished(const grpc::Status&) (checks the outcome, after retries).
// Run blocks the calling thread until the caller's operations are done.
//
// A call refused as a whole with RESOURCE_EXHAUSTED is repeated after a
// back-off slept on the callback's thread: the server's queue is full only
// when it is overloaded, and delaying gRPC's thread then is what a client
// should do.
template <typename Ops>
class UnaryLoop {
 public:
  UnaryLoop(const Flags& flags, CallerStats& stats, Ops& ops)
      : flags_(flags), stats_(stats), ops_(ops) {}

  void Run() {
    if (!ops_.Next()) return;
    StartAttempt();
    std::unique_lock lock(mutex_);
    finished_.wait(lock, [&] { return done_; });
  }

 private:
  void StartAttempt() {
    context_ = std::make_unique<grpc::ClientContext>();
    PrepareContext(flags_, CallKind::kTimed, context_.get());
    start_ = SteadyClock::now();
    ops_.Start(context_.get(), [this](grpc::Status status) { Completed(std::move(status)); });
  }

  void Completed(grpc::Status status) {
    stats_.call_ns.push_back(NanosSince(start_));
    if (retry_.Repeat(status, stats_)) {
      StartAttempt();
      return;
    }
    ops_.Finished(status);
    if (ops_.Next()) {
      StartAttempt();
      return;
    }
    std::lock_guard lock(mutex_);
    done_ = true;
    finished_.notify_one();
  }

  const Flags& flags_;
  CallerStats& stats_;
  Ops& ops_;
  std::unique_ptr<grpc::ClientContext> context_;
  SteadyClock::time_point start_;
  QueueFullRetry retry_;
  std::mutex mutex_;
  std::condition_variable finished_;
  bool done_ = false;
};

// Unary donations: one Donate per call.
class DonationOps {
 public:
  DonationOps(Work& work, pb::Ledger::Stub& stub, CallerStats& stats)
      : work_(work), stub_(stub), stats_(stats) {}

  bool Next() {
    uint64_t claimed = 0;
    if (!work_.Claim(1, &index_, &claimed)) return false;
    request_.Clear();
    work_.FillDonation(index_, &request_);
    return true;
  }

  void Start(grpc::ClientContext* context, Done done) {
    response_.Clear();
    stub_.async()->Donate(context, &request_, &response_, std::move(done));
  }

  void Finished(const grpc::Status& status) {
    if (!status.ok()) {
      stats_.FailedCall(status, 1,
                        Format("Donate %s: %s", request_.client_id().c_str(),
                               Describe(status).c_str()));
    } else if (response_.result().seq() == 0 || response_.result().duplicate() ||
               response_.lot() == 0) {
      ++stats_.failed_ops;
      stats_.Sample(Format("Donate %s: OK but seq %" PRIu64 ", lot %" PRIu64 ", duplicate %d",
                           request_.client_id().c_str(), response_.result().seq(),
                           response_.lot(), response_.result().duplicate() ? 1 : 0));
    } else {
      ++stats_.donations_ok;
    }
  }

 private:
  Work& work_;
  pb::Ledger::Stub& stub_;
  CallerStats& stats_;
  uint64_t index_ = 0;
  pb::DonateRequest request_;
  pb::DonateResponse response_;
};

void RunBatchCaller(Work& work, pb::Ledger::Stub& stub, CallerStats& stats) {
  const Flags& flags = *work.flags;
  pb::BatchRequest request;
  pb::BatchResponse response;
  uint64_t first = 0;
  uint64_t claimed = 0;
  while (work.Claim(flags.batch, &first, &claimed)) {
    request.Clear();
    for (uint64_t i = first; i < first + claimed; ++i) {
      work.FillDonation(i, request.add_operations()->mutable_donate());
    }
    const grpc::Status status =
        CallWithRetries(flags, stats, [&](grpc::ClientContext& context, Done done) {
          response.Clear();
          stub.async()->SubmitBatch(&context, &request, &response,
                                    [&, done = std::move(done)](grpc::Status s) {
                                      done(BatchCallStatus(std::move(s), response));
                                    });
        });
    if (!status.ok()) {
      stats.FailedCall(status, claimed,
                       Format("SubmitBatch of donations %" PRIu64 "..%" PRIu64 ": %s", first,
                              first + claimed - 1, Describe(status).c_str()));
      continue;
    }
    if (static_cast<uint64_t>(response.results_size()) != claimed) {
      stats.Sample(Format("SubmitBatch of donations %" PRIu64 "..%" PRIu64
                          ": %d results for %" PRIu64 " operations",
                          first, first + claimed - 1, response.results_size(), claimed));
    }
    for (uint64_t k = 0; k < claimed; ++k) {
      if (k >= static_cast<uint64_t>(response.results_size())) {
        ++stats.failed_ops;
        continue;
      }
      const pb::BatchResult& r = response.results(static_cast<int>(k));
      if (r.code() != 0 || r.result().seq() == 0 || r.result().duplicate() || r.lot() == 0) {
        ++stats.failed_ops;
        if (r.code() != 0) ++stats.errors_by_code[r.code()];
        stats.Sample(Format("donation %" PRIu64 ": %s: %s (seq %" PRIu64 ", duplicate %d)",
                            first + k, CodeName(static_cast<grpc::StatusCode>(r.code())),
                            r.message().c_str(), r.result().seq(), r.result().duplicate() ? 1 : 0));
      } else {
        ++stats.donations_ok;
      }
    }
  }
}

struct TimedResult {
  double wall_s = 0;
  double cpu_s = 0;         // this process, over the timed phase
  double server_cpu_s = 0;  // the --server_pid process; NaN without it
  CallerStats total;        // merged; call_ns sorted
};

// What one caller does in the timed phase, on its connected channel.
using CallerBody = std::function<void(uint64_t caller, const std::shared_ptr<grpc::Channel>&,
                                      CallerStats& stats)>;

// Connects every caller's channel, then starts the clock and all callers at
// once. nullopt (with `error`) if a channel cannot connect.
std::optional<TimedResult> RunTimed(const Flags& flags, const CallerBody& body,
                                    std::string* error) {
  std::vector<std::shared_ptr<grpc::Channel>> channels;
  for (uint64_t c = 0; c < flags.connections; ++c) {
    // Channel id 0 is the setup's channel.
    channels.push_back(MakeChannel(flags, static_cast<int>(c + 1)));
    if (!WaitConnected(channels[c])) {
      *error = Format("connection %" PRIu64 ": cannot connect to %s within %lld s", c,
                      flags.server.c_str(), static_cast<long long>(kConnectWaitMax.count()));
      return std::nullopt;
    }
  }

  std::vector<CallerStats> stats(flags.callers);
  std::latch start_line(static_cast<std::ptrdiff_t>(flags.callers) + 1);
  std::vector<std::thread> threads;
  for (uint64_t c = 0; c < flags.callers; ++c) {
    threads.emplace_back([&, c] {
      stats[c].call_ns.reserve(flags.entries / flags.callers + 16);
      start_line.arrive_and_wait();
      body(c, channels[c % channels.size()], stats[c]);
    });
  }
  const double cpu_start_s = ProcessCpuSeconds();
  const double server_cpu_start_s =
      flags.server_pid ? OtherProcessCpuSeconds(*flags.server_pid) : std::nan("");
  start_line.arrive_and_wait();
  const auto start = SteadyClock::now();
  for (std::thread& t : threads) t.join();
  TimedResult result;
  result.wall_s = SecondsSince(start);
  result.cpu_s = ProcessCpuSeconds() - cpu_start_s;
  result.server_cpu_s = flags.server_pid
                            ? OtherProcessCpuSeconds(*flags.server_pid) - server_cpu_start_s
                            : std::nan("");

  CallerStats& total = result.total;
  for (CallerStats& s : stats) {
    total.call_ns.insert(total.call_ns.end(), s.call_ns.begin(), s.call_ns.end());
    total.donations_ok += s.donations_ok;
    total.failed_calls += s.failed_calls;
    total.failed_ops += s.failed_ops;
    total.retries += s.retries;
    total.purchases_ok += s.purchases_ok;
    total.redemptions_ok += s.redemptions_ok;
    total.refunds_ok += s.refunds_ok;
    total.checks_ok += s.checks_ok;
    for (const auto& [code, count] : s.errors_by_code) total.errors_by_code[code] += count;
    for (std::string& e : s.error_samples) total.Sample(std::move(e));
  }
  std::sort(total.call_ns.begin(), total.call_ns.end());
  return result;
}

// ---- Output. ----

// Prints the failure and the JSON line of a run that ended before measuring.
int Abort(JsonLine& json, const std::string& what) {
  std::printf("server bench: FAILED: %s\n", what.c_str());
  for (const char* name :
       {"ops_per_s", "p50_ms", "p99_ms", "max_ms", "calls", "entries", "server_peak_rss_mib"}) {
    json.Null(name);
  }
  json.Number("peak_rss_mib", PeakRssMib(), 1);
  json.String("error", what);
  json.Bool("ok", false);
  std::printf("%s\n", json.Done().c_str());
  std::fflush(stdout);
  return 1;
}

// ---- A run of either workload. ----

// Operations per timed call: --batch, or one in unary mode.
uint64_t OpsPerCall(const Flags& flags) { return flags.mode == Mode::kUnary ? 1 : flags.batch; }

// The operations of one kind that the timed phase confirmed.
struct KindCount {
  const char* name;  // plural, as in the report and the JSON line: "donations"
  uint64_t count;
};

// What a workload brings to a run (RunWorkload): its set-up, its callers,
// its counts and the words of its report.
struct WorkloadSpec {
  // The first word of the report's lines ("server-batch") and the JSON
  // line's "mode".
  std::string label;
  std::string json_mode;
  // Appended to the banner line, after the run id.
  std::string banner_note;
  // What the operations are called in the report ("donations").
  const char* ops_noun = "operations";
  // What the latency line measures ("SubmitBatch of 1000").
  std::string call_text;
  // If set, the CPU line also gives CPU per confirmed operation, so named
  // ("donation"); it tells a client-bound run from a server-bound one.
  const char* cpu_per_op_noun = nullptr;
  // The untimed set-up, on the setup channel: what it made, for the
  // "setup:" line ("opened ... and 1000 donors"); nullopt (with `error`) if
  // it failed.
  std::function<std::optional<std::string>(const std::shared_ptr<grpc::Channel>& channel,
                                           std::string* error)>
      setup;
  // What each caller does in the timed phase.
  CallerBody caller;
  // The confirmed operations by kind, from the callers' merged stats, in the
  // JSON line's order; together they are the operations confirmed. The
  // report gives them on a line of their own when there are several kinds.
  std::function<std::vector<KindCount>(const CallerStats&)> counts;
};

// Runs a workload: the banner; the set-up (untimed), on its own channel and
// between two GetHeads; the timed phase; GetHead again; the report and, as
// the last line, the JSON object. Returns the exit status.
int RunWorkload(const Flags& flags, const RunNames& names, const WorkloadSpec& spec) {
  const char* label = spec.label.c_str();
  const uint64_t ops_per_call = OpsPerCall(flags);
  std::printf("warmledger-bench: %s against %s; callers=%" PRIu64 " connections=%" PRIu64
              " batch=%" PRIu64 " entries=%" PRIu64 " seed=%" PRIu64 " deadline=%" PRIu64
              " ms run=%s%s\n",
              label, flags.server.c_str(), flags.callers, flags.connections, ops_per_call,
              flags.entries, flags.seed, flags.deadline_ms, names.run.c_str(),
              spec.banner_note.c_str());
  std::fflush(stdout);

  JsonLine json;
  json.String("mode", spec.json_mode);
  json.Integer("callers", flags.callers);
  json.Integer("connections", flags.connections);
  json.Integer("batch", ops_per_call);
  json.Integer("seed", flags.seed);
  json.String("run", names.run);

  // Setup, untimed.
  const auto setup_start = SteadyClock::now();
  std::shared_ptr<grpc::Channel> setup_channel = MakeChannel(flags, 0);
  if (!WaitConnected(setup_channel)) {
    return Abort(json, Format("cannot connect to %s within %lld s", flags.server.c_str(),
                              static_cast<long long>(kConnectWaitMax.count())));
  }
  std::unique_ptr<pb::Ledger::Stub> setup_stub = pb::Ledger::NewStub(setup_channel);
  std::string error;
  const std::optional<uint64_t> head_start = GetHeadSeq(*setup_stub, flags, &error);
  if (!head_start) return Abort(json, error);
  const std::optional<std::string> made = spec.setup(setup_channel, &error);
  if (!made) return Abort(json, error);
  const std::optional<uint64_t> head_setup = GetHeadSeq(*setup_stub, flags, &error);
  if (!head_setup) return Abort(json, error);
  std::printf("setup: %s in %.2f s; head seq %" PRIu64 " -> %" PRIu64 "\n", made->c_str(),
              SecondsSince(setup_start), *head_start, *head_setup);
  std::fflush(stdout);

  // The timed phase.
  std::optional<TimedResult> timed = RunTimed(flags, spec.caller, &error);
  if (!timed) return Abort(json, error);
  const CallerStats& s = timed->total;
  const std::optional<uint64_t> head_end = GetHeadSeq(*setup_stub, flags, &error);
  std::optional<double> server_rss_mib;
  if (flags.server_pid) {
    server_rss_mib = ProcessPeakRssMib(*flags.server_pid);
    if (!server_rss_mib) {
      std::printf("warning: no VmHWM in /proc/%" PRIu64 "/status; server_peak_rss_mib is null\n",
                  *flags.server_pid);
    }
  }

  // The report.
  const std::vector<KindCount> counts = spec.counts(s);
  uint64_t ops_ok = 0;
  for (const KindCount& kind : counts) ops_ok += kind.count;
  const double ops_per_s = static_cast<double>(ops_ok) / timed->wall_s;
  const double p50_ns = PercentileNanos(s.call_ns, 0.50);
  const double p99_ns = PercentileNanos(s.call_ns, 0.99);
  const double max_ns = s.call_ns.empty() ? std::nan("") : static_cast<double>(s.call_ns.back());
  const uint64_t calls = s.call_ns.size();
  std::printf("%s: %" PRIu64 " %s written in %.2f s by %" PRIu64 " callers: %.0f ops/s\n", label,
              ops_ok, spec.ops_noun, timed->wall_s, flags.callers, ops_per_s);
  if (counts.size() > 1) {
    std::string by_kind;
    for (const KindCount& kind : counts) {
      by_kind += Format("%s%" PRIu64 " %s", by_kind.empty() ? "" : ", ", kind.count, kind.name);
    }
    std::printf("%s: %s\n", label, by_kind.c_str());
  }
  std::printf("%s: latency per call (%s): p50 %.2f ms, p99 %.2f ms, max %.2f ms over %" PRIu64
              " calls (%.0f calls/s)\n",
              label, spec.call_text.c_str(), Millis(p50_ns), Millis(p99_ns), Millis(max_ns), calls,
              static_cast<double>(calls) / timed->wall_s);
  auto per_op = [&](double cpu_s) {
    return spec.cpu_per_op_noun == nullptr || ops_ok == 0
               ? std::string()
               : Format(" (%.1f us/%s)", cpu_s / static_cast<double>(ops_ok) * 1e6,
                        spec.cpu_per_op_noun);
  };
  std::printf("%s: CPU over the timed phase: bench %.2f s%s", label, timed->cpu_s,
              per_op(timed->cpu_s).c_str());
  if (flags.server_pid) {
    std::printf(", server %.2f s%s", timed->server_cpu_s, per_op(timed->server_cpu_s).c_str());
  }
  std::printf("\n");
  if (s.retries > 0) {
    std::printf("%s: %" PRIu64 " calls repeated after RESOURCE_EXHAUSTED (write queue full)\n",
                label, s.retries);
  }
  if (head_end) {
    // Only a server nobody else writes to gains exactly the operations.
    std::printf("%s: head seq %" PRIu64 " (%" PRIu64 " entries during the timed phase)\n", label,
                *head_end, *head_end - *head_setup);
  } else {
    std::printf("%s: %s\n", label, error.c_str());
  }
  const double peak_rss_mib = PeakRssMib();
  if (server_rss_mib) {
    std::printf("server peak RSS %.1f MiB (VmHWM of pid %" PRIu64 ")\n", *server_rss_mib,
                *flags.server_pid);
  }
  std::printf("bench peak RSS %.1f MiB (whole process)\n", peak_rss_mib);
  std::string errors_text;
  for (const auto& [code, count] : s.errors_by_code) {
    errors_text += Format("%s%s=%" PRIu64, errors_text.empty() ? "" : " ",
                          CodeName(static_cast<grpc::StatusCode>(code)), count);
  }
  const bool failed =
      s.failed_calls > 0 || s.failed_ops > 0 || ops_ok != flags.entries || !head_end;
  if (failed) {
    // A call that failed (a deadline, say) may still have been written:
    // the server completes a queued write; a retry with the same client id
    // would say so.
    const std::string by_code =
        "; errors by code: " + (errors_text.empty() ? std::string("none") : errors_text);
    std::printf("%s: PROBLEMS: %" PRIu64 " calls failed, %" PRIu64 " %s not confirmed (of %" PRIu64
                ")%s%s\n",
                label, s.failed_calls, s.failed_ops, spec.ops_noun, flags.entries, by_code.c_str(),
                head_end ? "" : "; GetHead failed at the end");
  } else {
    std::printf("%s: errors by code: none\n", label);
  }
  for (const std::string& e : s.error_samples) std::printf("error sample: %s\n", e.c_str());

  json.Number("ops_per_s", ops_per_s, 1);
  json.Number("p50_ms", Millis(p50_ns), 3);
  json.Number("p99_ms", Millis(p99_ns), 3);
  json.Number("max_ms", Millis(max_ns), 3);
  json.Integer("calls", calls);
  if (head_end) {
    json.Integer("entries", *head_end);
  } else {
    json.Null("entries");
  }
  for (const KindCount& kind : counts) json.Integer(kind.name, kind.count);
  json.Integer("failed_calls", s.failed_calls);
  json.Integer("failed_ops", s.failed_ops);
  json.String("errors_by_code", errors_text);
  json.Integer("retries", s.retries);
  json.Number("timed_s", timed->wall_s, 3);
  json.Number("bench_cpu_s", timed->cpu_s, 3);
  json.Number("server_cpu_s", timed->server_cpu_s, 3);
  // Null without --server_pid or if unreadable.
  if (server_rss_mib) {
    json.Number("server_peak_rss_mib", *server_rss_mib, 1);
  } else {
    json.Null("server_peak_rss_mib");
  }
  json.Number("peak_rss_mib", peak_rss_mib, 1);
  json.Bool("ok", !failed);
  std::printf("%s\n", json.Done().c_str());
  std::fflush(stdout);
  return failed ? 1 : 0;
}

// ---- The donations workload (the default). ----

// Donations from kDonorsCount donors into one fund: RunSetup, then
// RunUnaryCaller or RunBatchCaller on every caller.
int RunDonationsBench(const Flags& flags) {
  const bool unary = flags.mode == Mode::kUnary;
  const std::string label = unary ? "server-unary" : "server-batch";
  const RunNames names = MakeRunNames(flags.seed);
  Work work{.flags = &flags, .names = &names};
  return RunWorkload(
      flags, names,
      {.label = label,
       .json_mode = label,
       .banner_note = unary && flags.batch != 1000 ? " (--batch ignored in unary mode)" : "",
       .ops_noun = "donations",
       .call_text = Format("%s of %" PRIu64, unary ? "Donate" : "SubmitBatch", OpsPerCall(flags)),
       .cpu_per_op_noun = "donation",
       .setup =
           [&](const std::shared_ptr<grpc::Channel>& channel, std::string* error) {
             std::unique_ptr<pb::Ledger::Stub> stub = pb::Ledger::NewStub(channel);
             if (!RunSetup(*stub, flags, names, error)) return std::optional<std::string>();
             return std::optional<std::string>(
                 Format("opened %s and %zu donors", names.fund.c_str(), names.donors.size()));
           },
       .caller =
           [&](uint64_t, const std::shared_ptr<grpc::Channel>& channel, CallerStats& stats) {
             std::unique_ptr<pb::Ledger::Stub> stub = pb::Ledger::NewStub(channel);
             if (unary) {
               DonationOps ops(work, *stub, stats);
               UnaryLoop(flags, stats, ops).Run();
             } else {
               RunBatchCaller(work, *stub, stats);
             }
           },
       .counts =
           [](const CallerStats& s) {
             return std::vector<KindCount>{{"donations", s.donations_ok}};
           }});
}

// ---- The checkout workload (--workload=checkout). ----

// Stores opened in the set-up; operations use them round-robin. Every
// voucher is accepted at all of them (the server allows 64 per voucher).
inline constexpr size_t kStoresCount = 16;
// Recipients registered in the set-up; the vouchers go to them in turn.
inline constexpr size_t kRecipientsCount = 64;
// Vouchers issued in the set-up; redemption i uses voucher i mod this, so
// that concurrent callers rarely redeem the same voucher at once.
inline constexpr size_t kVouchersCount = 256;
static_assert(kStoresCount + 1 + kRecipientsCount <= kBatchOpsMax);
// Redemption amounts, fen; each voucher's face value covers its share of
// the redemptions at the largest amount.
inline constexpr int64_t kRedeemMaxFen = 2000;
// The mix, in percent of the timed operations; the rest are refunds.
inline constexpr uint64_t kPurchasePercent = 80;
inline constexpr uint64_t kRedeemPercent = 15;
// Vouchers expire this long after the set-up: far beyond any run.
inline constexpr auto kVoucherValidity = std::chrono::hours(24);
// Confirmed purchases a caller keeps to refund later; older ones are dropped.
inline constexpr size_t kRefundablesMax = 100'000;
// Redraws of a synthetic recipient whose ID number an earlier run registered.
inline constexpr int kIdNumberDrawsMax = 20;
// Erqi District, Zhengzhou: the area code of every synthetic ID number.
inline constexpr char kAreaCode[] = "410103";

// What the set-up created and the timed phase uses.
struct CheckoutSetup {
  std::vector<std::string> stores;
  std::vector<std::string> recipients;
  std::vector<std::string> codes;  // one per voucher
  int64_t voucher_face_fen = 0;
};

enum class CheckoutKind { kPurchase, kRedeem, kRefund };

// The kind of operation `index`, from the seed and the index alone.
CheckoutKind KindOf(uint64_t seed, uint64_t index) {
  const uint64_t roll = SplitMix64(SplitMix64(seed ^ 0xc3ec0u) ^ index) % 100;
  if (roll < kPurchasePercent) return CheckoutKind::kPurchase;
  if (roll < kPurchasePercent + kRedeemPercent) return CheckoutKind::kRedeem;
  return CheckoutKind::kRefund;
}

int64_t RedeemAmountFen(uint64_t seed, uint64_t index) {
  return 1 + static_cast<int64_t>(SplitMix64(SplitMix64(seed ^ 0x7edee3u) ^ index) %
                                  static_cast<uint64_t>(kRedeemMaxFen));
}

// A synthetic 18-character resident ID number: area code, a date of birth
// between 1940 and 1999, a sequence and the ISO 7064 MOD 11-2 check
// character. Drawn from (run key, recipient, draw) so that runs differ.
std::string IdNumber(uint64_t run_key, size_t recipient, int draw) {
  const uint64_t r = SplitMix64(SplitMix64(run_key ^ (static_cast<uint64_t>(recipient) << 8)) ^
                           static_cast<uint64_t>(draw));
  const int year = 1940 + static_cast<int>(r % 60);
  const int month = 1 + static_cast<int>((r >> 8) % 12);
  const int day = 1 + static_cast<int>((r >> 16) % 28);
  const int sequence = static_cast<int>((r >> 24) % 999) + 1;
  const std::string body = Format("%s%04d%02d%02d%03d", kAreaCode, year, month, day, sequence);
  static constexpr int kWeights[17] = {7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2};
  int sum = 0;
  for (size_t i = 0; i < 17; ++i) sum += (body[i] - '0') * kWeights[i];
  return body + "10X98765432"[sum % 11];
}

// Issues one voucher, retried as CallSetupWithRetries does (a retry with
// the same client id returns the same code).
bool IssueSetupVoucher(pb::Vouchers::Stub& stub, const Flags& flags,
                       const pb::IssueVoucherRequest& request, std::string* code,
                       std::string* error) {
  pb::IssueVoucherResponse response;
  const grpc::Status status = CallSetupWithRetries(flags, [&](grpc::ClientContext& context) {
    response.Clear();
    return stub.IssueVoucher(&context, request, &response);
  });
  if (!status.ok()) {
    *error = Format("setup IssueVoucher %s: %s", request.client_id().c_str(),
                    Describe(status).c_str());
    return false;
  }
  *code = response.code();
  return true;
}

// Opens the fund and the stores, registers the recipients, funds the fund
// and issues the vouchers. Untimed.
bool RunCheckoutSetup(const std::shared_ptr<grpc::Channel>& channel, const Flags& flags,
                      const RunNames& names, CheckoutSetup* setup, std::string* error) {
  std::unique_ptr<pb::Ledger::Stub> ledger = pb::Ledger::NewStub(channel);
  std::unique_ptr<pb::Vouchers::Stub> vouchers = pb::Vouchers::NewStub(channel);

  pb::Registry registry;
  {
    grpc::ClientContext context;
    PrepareContext(flags, CallKind::kUntimed, &context);
    const grpc::Status status = ledger->GetRegistry(&context, pb::GetRegistryRequest(), &registry);
    if (!status.ok()) {
      *error = "GetRegistry: " + Describe(status);
      return false;
    }
    if (registry.categories().empty() || registry.communities().empty()) {
      *error = "the server's registry has no categories or no communities";
      return false;
    }
  }

  // The server's charity fund receives the contributions; a fresh server
  // has none. One that exists (opened by anyone) is used as it is.
  {
    grpc::ClientContext context;
    PrepareContext(flags, CallKind::kUntimed, &context);
    pb::GetAccountRequest request;
    request.set_account(flags.charity_fund);
    pb::Account account;
    const grpc::Status status = ledger->GetAccount(&context, request, &account);
    if (status.error_code() == grpc::StatusCode::NOT_FOUND) {
      pb::BatchRequest open;
      pb::OpenAccountRequest* fund = open.add_operations()->mutable_open_account();
      fund->set_client_id("warmledger-bench:open:" + flags.charity_fund);
      fund->set_account(flags.charity_fund);
      fund->set_kind(pb::FUND);
      fund->set_asset(kAsset);
      fund->set_name("Charity fund (opened by warmledger-bench)");
      pb::BatchResponse response;
      if (!SubmitSetupBatch(*ledger, flags, "setup", open, &response, error) ||
          !CheckSetupResults("setup", open, response, error)) {
        return false;
      }
    } else if (!status.ok()) {
      *error = Format("GetAccount %s: %s", flags.charity_fund.c_str(), Describe(status).c_str());
      return false;
    }
  }

  // Accounts.
  pb::BatchRequest opens;
  pb::OpenAccountRequest* fund = opens.add_operations()->mutable_open_account();
  fund->set_client_id(names.SetupClientId(0));
  fund->set_account(names.fund);
  fund->set_kind(pb::FUND);
  fund->set_asset(kAsset);
  fund->set_name("warmledger-bench voucher fund, run " + names.run);
  for (size_t i = 0; i < kStoresCount; ++i) {
    setup->stores.push_back(Format("store/bench-%s-%02zu", names.run.c_str(), i));
    pb::OpenAccountRequest* store = opens.add_operations()->mutable_open_account();
    store->set_client_id(names.SetupClientId(1 + i));
    store->set_account(setup->stores.back());
    store->set_kind(pb::MERCHANT);
    store->set_asset(kAsset);
    store->set_name(Format("Bench store %02zu", i));
  }
  pb::BatchResponse response;
  if (!SubmitSetupBatch(*ledger, flags, "setup", opens, &response, error) ||
      !CheckSetupResults("setup", opens, response, error)) {
    return false;
  }

  // Recipients: a person an earlier run registered is drawn again.
  setup->recipients.assign(kRecipientsCount, "");
  for (int draw = 0; draw < kIdNumberDrawsMax; ++draw) {
    pb::BatchRequest registrations;
    std::vector<size_t> which;
    for (size_t k = 0; k < kRecipientsCount; ++k) {
      if (!setup->recipients[k].empty()) continue;
      pb::RegisterRecipientRequest* r =
          registrations.add_operations()->mutable_register_recipient();
      r->set_client_id(Format("%s:p:%zu:%d", names.run.c_str(), k, draw));
      r->set_id_number(IdNumber(names.key, k, draw));
      r->set_category(registry.categories(static_cast<int>(k) % registry.categories_size()).code());
      r->set_community(
          registry.communities(static_cast<int>(k) % registry.communities_size()).code());
      which.push_back(k);
    }
    if (which.empty()) break;
    if (!SubmitSetupBatch(*ledger, flags, "setup", registrations, &response, error)) return false;
    for (size_t j = 0; j < which.size(); ++j) {
      const pb::BatchResult& r = response.results(static_cast<int>(j));
      if (r.code() == 0 && !r.recipient().empty()) {
        setup->recipients[which[j]] = r.recipient();
      } else if (r.code() != static_cast<int>(grpc::StatusCode::ALREADY_EXISTS)) {
        *error = Format("setup RegisterRecipient: %s: %s",
                        CodeName(static_cast<grpc::StatusCode>(r.code())), r.message().c_str());
        return false;
      }
    }
  }
  for (const std::string& r : setup->recipients) {
    if (r.empty()) {
      *error = "setup: no free synthetic ID number for a recipient";
      return false;
    }
  }

  // Money for the vouchers: operation i may redeem voucher i mod
  // kVouchersCount, so each voucher is worth the most the operations that
  // map to it could redeem (the 15% are not spread evenly over them).
  setup->voucher_face_fen =
      static_cast<int64_t>(flags.entries / kVouchersCount + 1) * kRedeemMaxFen;
  pb::BatchRequest funding;
  pb::DonateRequest* gift = funding.add_operations()->mutable_donate();
  gift->set_client_id(names.SetupClientId(1 + kStoresCount));
  gift->set_donor("donor/bench-" + names.run);
  gift->set_to(names.fund);
  gift->set_asset(kAsset);
  gift->set_amount(setup->voucher_face_fen * static_cast<int64_t>(kVouchersCount));
  gift->set_channel(pb::COMPANY_GIFT);
  gift->set_create_donor(true);
  gift->set_donor_name("warmledger-bench voucher sponsor");
  if (!SubmitSetupBatch(*ledger, flags, "setup", funding, &response, error) ||
      !CheckSetupResults("setup", funding, response, error)) {
    return false;
  }

  // Vouchers: IssueVoucher has no batch form; one call each.
  const int64_t expires_us =
      std::chrono::duration_cast<std::chrono::microseconds>(
          (std::chrono::system_clock::now() + kVoucherValidity).time_since_epoch())
          .count();
  for (size_t v = 0; v < kVouchersCount; ++v) {
    pb::IssueVoucherRequest request;
    request.set_client_id(Format("%s:v:%zu", names.run.c_str(), v));
    request.set_from(names.fund);
    request.set_recipient(setup->recipients[v % kRecipientsCount]);
    request.set_asset(kAsset);
    request.set_amount(setup->voucher_face_fen);
    request.set_expires_us(expires_us);
    for (const std::string& store : setup->stores) request.add_stores(store);
    request.set_memo("warmledger-bench");
    std::string code;
    if (!IssueSetupVoucher(*vouchers, flags, request, &code, error)) return false;
    setup->codes.push_back(std::move(code));
  }
  return true;
}

// A purchase this caller saw confirmed, kept to be refunded later.
struct Refundable {
  uint64_t index;
  int64_t amount;
};

// One caller of the checkout workload. Refunds only purchases this caller
// already saw confirmed (in an earlier call), so that a refund never races
// its purchase; when it has none, the refund's slot is a purchase instead.
class CheckoutCaller {
 public:
  CheckoutCaller(Work& work, const CheckoutSetup& setup, pb::Checkout::Stub& stub,
                 CallerStats& stats)
      : work_(work), flags_(*work.flags), setup_(setup), stub_(&stub), stats_(stats) {}

  // The UnaryLoop interface: one RecordPurchase, RedeemVoucher or
  // RecordRefund per call.
  bool Next() {
    uint64_t claimed = 0;
    if (!work_.Claim(1, &index_, &claimed)) return false;
    item_.Clear();
    kind_ = Fill(index_, &item_);
    return true;
  }

  void Start(grpc::ClientContext* context, Done done) {
    result_.Clear();
    switch (kind_) {
      case CheckoutKind::kPurchase:
        stub_->async()->RecordPurchase(context, &item_.purchase(), result_.mutable_purchase(),
                                       std::move(done));
        return;
      case CheckoutKind::kRedeem:
        stub_->async()->RedeemVoucher(context, &item_.redeem(), result_.mutable_redemption(),
                                      std::move(done));
        return;
      case CheckoutKind::kRefund:
        stub_->async()->RecordRefund(context, &item_.refund(), result_.mutable_refund(),
                                     std::move(done));
        return;
    }
    done(grpc::Status(grpc::StatusCode::INTERNAL, "no kind"));
  }

  void Finished(const grpc::Status& status) {
    if (!status.ok()) {
      ++stats_.failed_calls;
      FailedOp(index_, static_cast<int>(status.error_code()), status.error_message());
      return;
    }
    Check(index_, kind_, item_, result_);
  }

  void RunBatch() {
    pb::CheckoutBatchRequest request;
    pb::CheckoutBatchResponse response;
    std::vector<CheckoutKind> kinds;
    uint64_t first = 0;
    uint64_t claimed = 0;
    while (work_.Claim(flags_.batch, &first, &claimed)) {
      request.Clear();
      kinds.clear();
      for (uint64_t i = first; i < first + claimed; ++i) {
        kinds.push_back(Fill(i, request.add_items()));
      }
      const grpc::Status status =
          CallWithRetries(flags_, stats_, [&](grpc::ClientContext& context, Done done) {
            response.Clear();
            stub_->async()->SubmitCheckoutBatch(&context, &request, &response,
                                              [&, done = std::move(done)](grpc::Status s) {
                                                done(BatchCallStatus(std::move(s), response));
                                              });
          });
      if (!status.ok()) {
        ++stats_.failed_calls;
        for (uint64_t k = 0; k < claimed; ++k) {
          FailedOp(first + k, static_cast<int>(status.error_code()), status.error_message());
        }
        continue;
      }
      for (uint64_t k = 0; k < claimed; ++k) {
        if (k >= static_cast<uint64_t>(response.results_size())) {
          FailedOp(first + k, static_cast<int>(grpc::StatusCode::INTERNAL),
                   Format("%d results for %" PRIu64 " items", response.results_size(), claimed));
          continue;
        }
        Check(first + k, kinds[k], request.items(static_cast<int>(k)),
              response.results(static_cast<int>(k)));
      }
    }
  }

 private:
  std::string OrderId(uint64_t index) const {
    return Format("%s:%" PRIu64, work_.names->run.c_str(), index);
  }
  const std::string& Store(uint64_t index) const {
    return setup_.stores[index % setup_.stores.size()];
  }

  CheckoutKind Fill(uint64_t index, pb::CheckoutItem* item) {
    CheckoutKind kind = KindOf(flags_.seed, index);
    if (kind == CheckoutKind::kRefund && refundable_.empty()) kind = CheckoutKind::kPurchase;
    switch (kind) {
      case CheckoutKind::kPurchase: {
        pb::PurchaseRequest* p = item->mutable_purchase();
        p->set_store(Store(index));
        p->set_order_id(OrderId(index));
        p->set_asset(kAsset);
        p->set_amount(DonationAmountFen(flags_.seed, index));
        if (index % 4 == 0) p->set_member(Format("m-%" PRIu64, index % 1000));
        break;
      }
      case CheckoutKind::kRedeem: {
        pb::RedeemRequest* r = item->mutable_redeem();
        r->set_store(Store(index));
        r->set_order_id(OrderId(index));
        r->set_code(setup_.codes[index % setup_.codes.size()]);
        r->set_amount(RedeemAmountFen(flags_.seed, index));
        break;
      }
      case CheckoutKind::kRefund: {
        const Refundable p = refundable_.front();
        refundable_.pop_front();
        pb::RefundRequest* r = item->mutable_refund();
        r->set_store(Store(p.index));
        r->set_order_id(OrderId(p.index));
        r->set_refund_id(Format("%s:r:%" PRIu64, work_.names->run.c_str(), index));
        // Every other refund is partial.
        r->set_amount(index % 2 == 0 || p.amount < 2 ? p.amount : p.amount / 2);
        break;
      }
    }
    return kind;
  }

  void FailedOp(uint64_t index, int code, const std::string& message) {
    ++stats_.failed_ops;
    ++stats_.errors_by_code[code];
    stats_.Sample(Format("operation %" PRIu64 ": %s: %s", index,
                         CodeName(static_cast<grpc::StatusCode>(code)), message.c_str()));
  }

  void Check(uint64_t index, CheckoutKind kind, const pb::CheckoutItem& item,
             const pb::CheckoutItemResult& r) {
    if (r.code() != 0) {
      FailedOp(index, r.code(), r.message());
      return;
    }
    const pb::WriteResult* written = nullptr;
    bool consistent = false;
    switch (kind) {
      case CheckoutKind::kPurchase:
        written = &r.purchase().result();
        consistent = r.has_purchase() &&
                     (r.purchase().contribution() == 0 ||
                      r.purchase().lot() == r.purchase().result().seq());
        break;
      case CheckoutKind::kRedeem:
        written = &r.redemption().result();
        consistent = r.has_redemption() && r.redemption().amount() == item.redeem().amount();
        break;
      case CheckoutKind::kRefund:
        written = &r.refund().result();
        consistent = r.has_refund();
        break;
    }
    if (!consistent || written->seq() == 0 || written->duplicate()) {
      ++stats_.failed_ops;
      stats_.Sample(Format("operation %" PRIu64 ": OK but inconsistent (seq %" PRIu64
                           ", duplicate %d)",
                           index, written->seq(), written->duplicate() ? 1 : 0));
      return;
    }
    switch (kind) {
      case CheckoutKind::kPurchase:
        ++stats_.purchases_ok;
        if (refundable_.size() == kRefundablesMax) refundable_.pop_front();
        refundable_.push_back({index, item.purchase().amount()});
        break;
      case CheckoutKind::kRedeem:
        ++stats_.redemptions_ok;
        break;
      case CheckoutKind::kRefund:
        ++stats_.refunds_ok;
        break;
    }
  }

  Work& work_;
  const Flags& flags_;
  const CheckoutSetup& setup_;
  pb::Checkout::Stub* stub_;
  CallerStats& stats_;
  std::deque<Refundable> refundable_;
  // The operation of the unary call in progress.
  uint64_t index_ = 0;
  CheckoutKind kind_ = CheckoutKind::kPurchase;
  pb::CheckoutItem item_;
  pb::CheckoutItemResult result_;
};

// The checkout mix: RunCheckoutSetup, then a CheckoutCaller on every caller.
int RunCheckoutBench(const Flags& flags) {
  const bool unary = flags.mode == Mode::kUnary;
  const std::string label = unary ? "checkout-unary" : "checkout-batch";
  const RunNames names = MakeRunNames(flags.seed);
  CheckoutSetup setup;
  Work work{.flags = &flags, .names = &names};
  return RunWorkload(
      flags, names,
      {.label = label,
       .json_mode = "server-" + label,
       .banner_note =
           Format("; mix %" PRIu64 "%% purchases, %" PRIu64 "%% redemptions, %" PRIu64 "%% refunds",
                  kPurchasePercent, kRedeemPercent, 100 - kPurchasePercent - kRedeemPercent),
       .ops_noun = "operations",
       .call_text = unary ? "RecordPurchase, RedeemVoucher or RecordRefund"
                          : Format("SubmitCheckoutBatch of %" PRIu64, OpsPerCall(flags)),
       .cpu_per_op_noun = "operation",
       .setup =
           [&](const std::shared_ptr<grpc::Channel>& channel, std::string* error) {
             if (!RunCheckoutSetup(channel, flags, names, &setup, error)) {
               return std::optional<std::string>();
             }
             return std::optional<std::string>(
                 Format("%zu stores, %zu recipients, %zu vouchers of %s fen from %s",
                        setup.stores.size(), setup.recipients.size(), setup.codes.size(),
                        std::to_string(setup.voucher_face_fen).c_str(), names.fund.c_str()));
           },
       .caller =
           [&](uint64_t, const std::shared_ptr<grpc::Channel>& channel, CallerStats& stats) {
             std::unique_ptr<pb::Checkout::Stub> stub = pb::Checkout::NewStub(channel);
             CheckoutCaller caller(work, setup, *stub, stats);
             if (unary) {
               UnaryLoop(flags, stats, caller).Run();
             } else {
               caller.RunBatch();
             }
           },
       .counts =
           [](const CallerStats& s) {
             return std::vector<KindCount>{{"purchases", s.purchases_ok},
                                           {"redemptions", s.redemptions_ok},
                                           {"refunds", s.refunds_ok}};
           }});
}

// ---- The health workload (--workload=health). ----

// grpc.health.v1: an empty HealthCheckRequest (the whole server) is zero
// bytes; a HealthCheckResponse of status SERVING (1) is field 1, varint 1.
inline constexpr char kHealthCheckMethod[] = "/grpc.health.v1.Health/Check";
inline constexpr char kHealthServing[] = "\x08\x01";

// Unary health checks: one Health/Check per call, through the generic stub
// (the project has no copy of health.proto; the messages are trivial).
class HealthOps {
 public:
  HealthOps(Work& work, grpc::GenericStub& stub, CallerStats& stats)
      : work_(work), stub_(stub), stats_(stats) {
    // A default ByteBuffer is no message at all; the request is one of zero
    // bytes.
    grpc::Slice empty;
    request_ = grpc::ByteBuffer(&empty, 1);
  }

  bool Next() {
    uint64_t claimed = 0;
    return work_.Claim(1, &index_, &claimed);
  }

  void Start(grpc::ClientContext* context, Done done) {
    response_.Clear();
    stub_.UnaryCall(context, kHealthCheckMethod, grpc::StubOptions(), &request_, &response_,
                    std::move(done));
  }

  void Finished(const grpc::Status& status) {
    if (!status.ok()) {
      stats_.FailedCall(status, 1,
                        Format("Health/Check %" PRIu64 ": %s", index_, Describe(status).c_str()));
      return;
    }
    std::vector<grpc::Slice> slices;
    std::string body;
    if (response_.Dump(&slices).ok()) {
      for (const grpc::Slice& slice : slices) {
        body.append(reinterpret_cast<const char*>(slice.begin()), slice.size());
      }
    }
    if (body != std::string_view(kHealthServing, 2)) {
      ++stats_.failed_ops;
      stats_.Sample(Format("Health/Check %" PRIu64 ": OK but not SERVING (%zu bytes)", index_,
                           body.size()));
      return;
    }
    ++stats_.checks_ok;
  }

 private:
  Work& work_;
  grpc::GenericStub& stub_;
  CallerStats& stats_;
  uint64_t index_ = 0;
  grpc::ByteBuffer request_;  // zero bytes: the whole server
  grpc::ByteBuffer response_;
};

int RunHealthBench(const Flags& flags) {
  const RunNames names = MakeRunNames(flags.seed);
  Work work{.flags = &flags, .names = &names};
  return RunWorkload(
      flags, names,
      {.label = "health-unary",
       .json_mode = "server-health-unary",
       .banner_note = "; grpc.health.v1.Health/Check, no ledger work",
       .ops_noun = "checks",
       .call_text = "Health/Check",
       .cpu_per_op_noun = "check",
       .setup = [](const std::shared_ptr<grpc::Channel>&,
                   std::string*) { return std::optional<std::string>("nothing"); },
       .caller =
           [&](uint64_t, const std::shared_ptr<grpc::Channel>& channel, CallerStats& stats) {
             grpc::GenericStub stub(channel);
             HealthOps ops(work, stub, stats);
             UnaryLoop(flags, stats, ops).Run();
           },
       .counts =
           [](const CallerStats& s) { return std::vector<KindCount>{{"checks", s.checks_ok}}; }});
}

}  // namespace

int RunServerBench(const std::vector<std::string>& args) {
  Flags flags;
  bool help = false;
  if (std::optional<UsageError> usage = ParseFlags(args, &flags, &help)) {
    std::fprintf(stderr, "warmledger-bench: %s\n%s", usage->message.c_str(), kUsage);
    return 2;
  }
  if (help) {
    std::fputs(kUsage, stdout);
    return 0;
  }
  switch (flags.workload) {
    case Workload::kCheckout:
      return RunCheckoutBench(flags);
    case Workload::kHealth:
      return RunHealthBench(flags);
    case Workload::kDonations:
      break;
  }
  return RunDonationsBench(flags);
}

}  // namespace warmledger::bench

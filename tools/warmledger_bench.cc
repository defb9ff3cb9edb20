// warmledger-bench: measures the ledger engine in-process against the raw
// RocksDB limit on the same disk.
//
// Usage:
//   warmledger-bench [--batch=N] [--entries=N] [--seed=N] [--threads=N]
//                    [--data_dir=DIR] [--keep] [--no_raw]
//                    [--trace_ledger_entries=N]
//
//   --batch=N          write operations per Ledger::Submit call, 1..8192
//                      (default 1000)
//   --entries=N        operations in the mixed run, traces included
//                      (default 200000; 0 skips the mixed run)
//   --seed=N           seed of the workload generator (default 1)
//   --inflight=N       batches each thread keeps submitted without waiting for
//                      their results (Ledger::SubmitAsync), 1..8 (default 1:
//                      each batch waits for its fsync before the next is built)
//   --threads=N        submitting threads, 1..64 (default 1); the sequencer
//                      group-commits their batches
//   --data_dir=DIR     where the databases go (DIR must be missing or empty;
//                      it is never removed). Default: a fresh temporary
//                      folder, removed at the end unless --keep.
//   --keep             keep the temporary folder
//   --no_raw           skip the raw RocksDB measurement
//   --trace_ledger_entries=N
//                      also build a separate ledger of N entries and measure
//                      TraceLot latency over 1,000 random lots and the time
//                      Ledger::Open takes to reopen it (default 0: skip)
//   --server=HOST:PORT run against a running server instead (tools/bench_server.cc),
//                      with --workload=donations (default) or --workload=checkout
//
// The mixed run: 60% donations (small), 25% allocations (general fund into
// projects) and disbursements (projects or fund to recipients and suppliers),
// each worth 3-10 average donations (or what the source still holds) and so
// consuming several lots, and 15% traces (half TraceLot of a random lot, half
// TraceEntry of a random written entry). Writes go to Ledger::Submit in
// batches of --batch operations (every commit is fsynced by the ledger); the
// traces drawn while a batch was being filled run on the same thread right
// after it, each timed on its own. ops_per_s is durable writes over the wall
// time of the whole mixed run, traces included. Each thread owns its fund and
// projects and keeps an exact model of their balances, so every planned write
// is valid; failures are counted and reported, never expected.
//
// The raw limit: a separate RocksDB in its own folder on the same disk
// appends a sample of the ledger's stored entry values (read back with
// ReadEntry) under 'E' + big-endian counter keys, in WriteBatches of --batch
// keys with WriteOptions::sync = true, as many times as the mixed run wrote
// (at least 100,000).
//
// The write path: beside the raw run, the ledger's own fsynced commits during
// the mixed run (Ledger::GetWriteStats): RocksDB keys and WriteBatch bytes per
// entry, and entries per second of time spent in DB::Write, against the raw
// run's appends per second of its DB::Write time (write_path_ratio). That
// isolates what storage costs per operation from the CPU the rest of the mix
// (validation, provenance, hashing, the load itself) needs.
//
// Output: human-readable lines, then as the last line one JSON object
// (ops_per_s, raw_rocksdb_appends_per_s, limit_ratio, p50_batch_ms,
// p99_batch_ms, peak_rss_mib, entries, batch, seed, trace_p50_us,
// trace_p99_us, write_keys_per_entry, write_bytes_per_entry,
// write_entries_per_s, raw_write_appends_per_s, write_path_ratio, and
// trace_ledger_p50_us, trace_ledger_p99_us, reopen_s when
// --trace_ledger_entries is given; null for what was not measured; "ok").
// Exit status: 0 success, 1 a failure (including any rejected operation or
// unbalanced trace), 2 a usage error.
//
// Money is int64 fen throughout; floating point is used only for timing.

#include <stdlib.h>
#include <sys/resource.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cinttypes>
#include <cmath>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <deque>
#include <filesystem>
#include <latch>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "ledger/ledger.h"
#include "ledger/limits.h"
#include "ledger/monitor.h"
#include "ledger/types.h"
#include "rocksdb/db.h"
#include "rocksdb/options.h"
#include "rocksdb/write_batch.h"
#include "tools/bench_server.h"
#include "tools/bench_util.h"
#include "tools/rng.h"

namespace warmledger {
namespace {

using SteadyClock = std::chrono::steady_clock;
using bench::Format;
using bench::JsonLine;
using bench::Micros;
using bench::Millis;
using bench::NanosSince;
using bench::PeakRssMib;
using bench::SecondsSince;

// ---- Bounds of the benchmark's own inputs. ----

inline constexpr uint64_t kOperationsMax = 1'000'000'000;
inline constexpr uint64_t kTraceLedgerEntriesMax = 100'000'000;
inline constexpr uint32_t kThreadsMax = 64;
// The raw RocksDB run writes at least this many keys, so that a short mixed
// run still gives a stable limit.
inline constexpr uint64_t kRawWritesMin = 100'000;
// Stored entries sampled from the ledger for the raw run.
inline constexpr size_t kRawSampleEntriesMax = 1000;
// Random lots traced in the --trace_ledger_entries measurement.
inline constexpr size_t kTraceLedgerLotsCount = 1000;
// Sources per TraceEntry page in the mixed run (a client's page size).
inline constexpr uint64_t kTraceEntryPageItems = 100;
// Ops per Submit while building the --trace_ledger_entries ledger.
inline constexpr size_t kBuildBatchOps = kBatchOpsMax;
// Error messages kept for the report.
inline constexpr size_t kErrorSamplesMax = 5;
// Back-off when the sequencer queue is full, and how often to retry.
inline constexpr auto kQueueFullBackoff = std::chrono::milliseconds(1);
inline constexpr uint32_t kQueueFullRetriesMax = 10'000;

// Accounts opened before the timed run.
inline constexpr size_t kDonorsCount = 2000;
inline constexpr size_t kRecipientsCount = 150;
inline constexpr size_t kSuppliersCount = 50;
inline constexpr size_t kProjectsPerThreadCount = 16;

inline constexpr char kAsset[] = "CNY";

// Donations are small: three in four come from this table of typical gifts,
// one in four is any amount in [kDonationOddMinFen, kDonationOddMaxFen].
inline constexpr int64_t kDonationTableFen[] = {
    500, 990, 1000, 2000, 2000, 5000, 5000, 9900, 10000, 10000, 20000, 50000, 100000};
inline constexpr int64_t kDonationOddMinFen = 100;
inline constexpr int64_t kDonationOddMaxFen = 30000;
constexpr int64_t DonationTableMeanFen() {
  int64_t sum = 0;
  for (int64_t v : kDonationTableFen) sum += v;
  return sum / static_cast<int64_t>(std::size(kDonationTableFen));
}
inline constexpr int64_t kDonationMeanFen =
    (3 * DonationTableMeanFen() + (kDonationOddMinFen + kDonationOddMaxFen) / 2) / 4;
// Allocations and disbursements are worth this many average donations.
inline constexpr int64_t kOutflowDonationsMin = 3;
inline constexpr int64_t kOutflowDonationsMax = 10;

// ---- Small helpers. ----

[[noreturn]] void Fatal(const std::string& what) {
  std::fprintf(stderr, "warmledger-bench: %s\n", what.c_str());
  std::exit(1);
}

// Nearest-rank percentile of nanosecond samples; NaN (reported as null) when
// there are none.
// Sorts `samples`.
double PercentileNanos(std::vector<int64_t>& samples, double fraction) {
  if (samples.empty()) return std::nan("");
  std::sort(samples.begin(), samples.end());
  size_t rank = static_cast<size_t>(std::ceil(fraction * static_cast<double>(samples.size())));
  rank = std::clamp<size_t>(rank, 1, samples.size());
  return static_cast<double>(samples[rank - 1]);
}

struct Latency {
  double p50_ns = 0;
  double p99_ns = 0;
  double max_ns = 0;
  size_t count = 0;
};

Latency Summarise(std::vector<int64_t> samples) {
  Latency latency;
  latency.count = samples.size();
  latency.p50_ns = PercentileNanos(samples, 0.50);
  latency.p99_ns = PercentileNanos(samples, 0.99);
  latency.max_ns = samples.empty() ? std::nan("") : static_cast<double>(samples.back());
  return latency;
}

using Rng = Xoshiro256;

template <typename T>
const T& Pick(Rng& rng, const std::vector<T>& items) {
  return items[rng.Below(items.size())];
}
template <typename T, size_t N>
const T& Pick(Rng& rng, const T (&items)[N]) {
  return items[rng.Below(N)];
}

// ---- Flags. ----

struct Flags {
  uint32_t batch = 1000;
  uint64_t entries = 200'000;
  uint64_t seed = 1;
  uint32_t threads = 1;
  uint32_t inflight = 1;
  std::string data_dir;
  bool keep = false;
  bool raw = true;
  uint64_t trace_ledger_entries = 0;
};

constexpr char kUsage[] =
    "usage: warmledger-bench [--batch=N (1..8192, default 1000)]\n"
    "                        [--entries=N (operations, default 200000; 0 skips the mix)]\n"
    "                        [--seed=N (default 1)] [--threads=N (1..64, default 1)]\n"
    "                        [--inflight=N (batches in flight per thread, 1..8, default 1)]\n"
    "                        [--data_dir=DIR] [--keep] [--no_raw]\n"
    "                        [--trace_ledger_entries=N (default 0: skip)]\n"
    "       warmledger-bench --server=HOST:PORT [--workload=donations|checkout] ...\n"
    "                        (against a running server; add --help for its flags)\n";

[[noreturn]] void UsageError(const std::string& what) {
  std::fprintf(stderr, "warmledger-bench: %s\n%s", what.c_str(), kUsage);
  std::exit(2);
}

uint64_t ParseUint(std::string_view name, std::string_view text, uint64_t min, uint64_t max) {
  uint64_t value = 0;
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, value);
  if (text.empty() || ec != std::errc() || ptr != end) {
    UsageError(Format("--%.*s: '%.*s' is not a non-negative integer",
                      static_cast<int>(name.size()), name.data(),
                      static_cast<int>(text.size()), text.data()));
  }
  if (value < min || value > max) {
    UsageError(Format("--%.*s=%" PRIu64 " is outside %" PRIu64 "..%" PRIu64,
                      static_cast<int>(name.size()), name.data(), value, min, max));
  }
  return value;
}

Flags ParseFlags(int argc, char** argv) {
  Flags flags;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      std::fputs(kUsage, stdout);
      std::exit(0);
    }
    if (arg == "--server") {
      std::fprintf(stderr, "warmledger-bench: --server needs =HOST:PORT\n");
      std::exit(2);
    }
    if (arg == "--keep") {
      flags.keep = true;
      continue;
    }
    if (arg == "--no_raw") {
      flags.raw = false;
      continue;
    }
    const size_t equals = arg.find('=');
    if (!arg.starts_with("--") || equals == std::string_view::npos) {
      UsageError(Format("unknown argument '%s'", argv[i]));
    }
    const std::string_view name = arg.substr(2, equals - 2);
    const std::string_view value = arg.substr(equals + 1);
    if (name == "batch") {
      flags.batch = static_cast<uint32_t>(ParseUint(name, value, 1, kBatchOpsMax));
    } else if (name == "entries") {
      flags.entries = ParseUint(name, value, 0, kOperationsMax);
    } else if (name == "seed") {
      flags.seed = ParseUint(name, value, 0, UINT64_MAX);
    } else if (name == "threads") {
      flags.threads = static_cast<uint32_t>(ParseUint(name, value, 1, kThreadsMax));
    } else if (name == "inflight") {
      flags.inflight = static_cast<uint32_t>(ParseUint(name, value, 1, 8));
    } else if (name == "data_dir") {
      if (value.empty()) UsageError("--data_dir needs a folder");
      flags.data_dir = std::string(value);
    } else if (name == "trace_ledger_entries") {
      flags.trace_ledger_entries = ParseUint(name, value, 0, kTraceLedgerEntriesMax);
    } else {
      UsageError(Format("unknown flag '%s'", argv[i]));
    }
  }
  // Checked before anything is made: a usage error leaves no folder behind.
  if (flags.inflight > 1 &&
      uint64_t{flags.threads} * flags.batch * flags.inflight > kQueueOpsMax) {
    UsageError(Format("--threads x --batch x --inflight must be at most %zu (the ledger's "
                      "queue) when batches are kept in flight",
                      kQueueOpsMax));
  }
  return flags;
}

// ---- Accounts and the workload generator. ----

// External accounts, shared by all threads: they have no balance to keep
// non-negative, so concurrent use cannot make a planned write invalid.
struct ExternalAccounts {
  std::vector<std::string> donors;
  std::vector<std::string> sinks;  // recipients and suppliers
};

// Holding accounts owned by one generator, whose balances it models exactly.
struct HoldingAccounts {
  std::string fund;
  std::vector<std::string> projects;
};

constexpr const char* kProjectNames[] = {
    "Rural school meals", "Winter clothing", "Clean water wells", "Library books",
    "Elder care visits", "Flood relief", "Scholarships", "Medical aid"};
constexpr const char* kDonationMemos[] = {
    "99 Giving Day online gift", "monthly pledge", "counter gift, Hangzhou office",
    "company matching gift", "in memory of my grandmother", ""};
constexpr const char* kAllocationReasons[] = {
    "quarterly allocation to project", "emergency top-up", "board decision 2026-07"};
constexpr const char* kDisbursementPurposes[] = {
    "school meals for 40 pupils, March", "winter coats, invoice 2026-0312",
    "medical aid, case 1187", "well drilling, second instalment"};

HoldingAccounts MakeHoldingAccounts(const std::string& tag) {
  HoldingAccounts holding;
  holding.fund = tag.empty() ? "fund/general" : "fund/general-" + tag;
  for (size_t j = 0; j < kProjectsPerThreadCount; ++j) {
    holding.projects.push_back(Format("project/%s%sp%02zu", tag.c_str(),
                                      tag.empty() ? "" : "-", j));
  }
  return holding;
}

ExternalAccounts MakeExternalAccounts() {
  ExternalAccounts external;
  for (size_t i = 1; i <= kDonorsCount; ++i) {
    external.donors.push_back(Format("donor/2026-99-%06zu", i));
  }
  for (size_t i = 1; i <= kRecipientsCount; ++i) {
    // Recipients' ids are keyed pseudonyms, never names.
    external.sinks.push_back(Format("recipient/%016" PRIx64, Rng(i).Next()));
  }
  for (size_t i = 1; i <= kSuppliersCount; ++i) {
    external.sinks.push_back(Format("supplier/s-%04zu", i));
  }
  return external;
}

// Recipients carry a category and a community code from configured tables.
constexpr const char* kRecipientCategories[] = {"low-income", "elderly-alone", "disabled",
                                                "student", "disaster-hit"};
constexpr const char* kRecipientCommunities[] = {
    "cn-330106-001", "cn-330106-002", "cn-330110-014", "cn-330182-203", "cn-330127-011"};

Operation OpenOp(std::string client_id, std::string account, AccountKind kind,
                 std::string name, std::string category = "", std::string community = "") {
  Operation op;
  op.client_id = std::move(client_id);
  op.body = OpenAccountOp{.account = std::move(account),
                          .kind = kind,
                          .asset = kAsset,
                          .flags = 0,
                          .name = std::move(name),
                          .category = std::move(category),
                          .community = std::move(community)};
  return op;
}

std::vector<Operation> OpenExternalOps(const ExternalAccounts& external) {
  std::vector<Operation> ops;
  for (size_t i = 0; i < external.donors.size(); ++i) {
    ops.push_back(OpenOp("open-" + external.donors[i], external.donors[i],
                         AccountKind::kDonor, Format("Donor %zu", i + 1)));
  }
  for (size_t i = 0; i < external.sinks.size(); ++i) {
    const std::string& sink = external.sinks[i];
    if (sink.starts_with("supplier/")) {
      ops.push_back(OpenOp("open-" + sink, sink, AccountKind::kSupplier, "Supplier"));
    } else {
      ops.push_back(OpenOp("open-" + sink, sink, AccountKind::kRecipient, "",
                           kRecipientCategories[i % std::size(kRecipientCategories)],
                           kRecipientCommunities[i % std::size(kRecipientCommunities)]));
    }
  }
  return ops;
}

std::vector<Operation> OpenHoldingOps(const HoldingAccounts& holding) {
  std::vector<Operation> ops;
  ops.push_back(OpenOp("open-" + holding.fund, holding.fund, AccountKind::kFund,
                       "General fund"));
  for (size_t j = 0; j < holding.projects.size(); ++j) {
    ops.push_back(OpenOp("open-" + holding.projects[j], holding.projects[j],
                         AccountKind::kProject,
                         kProjectNames[j % std::size(kProjectNames)]));
  }
  return ops;
}

// Per-mille weights of the operation kinds; they sum to 1000.
struct MixWeights {
  uint32_t donation = 0;
  uint32_t allocation = 0;
  uint32_t disbursement = 0;
  uint32_t trace_lot = 0;
  uint32_t trace_entry = 0;
};
// 60% donations, 25% allocations and disbursements, 15% traces.
inline constexpr MixWeights kMixWeights{600, 125, 125, 75, 75};
// The --trace_ledger_entries ledger: mostly donations, no traces.
inline constexpr MixWeights kBuildWeights{800, 100, 100, 0, 0};

enum class OpKind { kDonation, kAllocation, kDisbursement, kTraceLot, kTraceEntry };

// Plans valid operations against one set of holding accounts, keeping a
// model of their balances that assumes every planned write succeeds (the
// caller resyncs it from the ledger if one does not).
class Workload {
 public:
  Workload(const ExternalAccounts* external, HoldingAccounts holding, uint64_t seed,
           std::string client_id_prefix, MixWeights weights)
      : external_(external),
        holding_(std::move(holding)),
        rng_(seed),
        client_id_prefix_(std::move(client_id_prefix)),
        weights_(weights),
        project_fen_(holding_.projects.size(), 0) {}

  Rng& rng() { return rng_; }
  // Allocations and disbursements that found no money where they were to
  // take it from and became another kind.
  uint64_t fallback_count() const { return fallback_count_; }

  OpKind NextKind() {
    uint32_t draw = static_cast<uint32_t>(rng_.Below(1000));
    if (draw < weights_.donation) return OpKind::kDonation;
    draw -= weights_.donation;
    if (draw < weights_.allocation) return OpKind::kAllocation;
    draw -= weights_.allocation;
    if (draw < weights_.disbursement) return OpKind::kDisbursement;
    draw -= weights_.disbursement;
    if (draw < weights_.trace_lot) return OpKind::kTraceLot;
    return OpKind::kTraceEntry;
  }

  // Plans a write of `kind`. An allocation finding the fund empty becomes a
  // disbursement (from a project), and a disbursement finding no money
  // anywhere becomes a donation, so that the mix stays close to its weights.
  // Returns the operation and the kind it became.
  std::pair<Operation, OpKind> PlanWrite(OpKind kind) {
    if (kind == OpKind::kAllocation) {
      if (auto op = PlanAllocation()) return {std::move(*op), kind};
      ++fallback_count_;
      kind = OpKind::kDisbursement;
    }
    if (kind == OpKind::kDisbursement) {
      if (auto op = PlanDisbursement()) return {std::move(*op), kind};
      ++fallback_count_;
    }
    return {PlanDonation(), OpKind::kDonation};
  }

  // Reloads the modelled balances from the ledger (after a rejected write).
  absl::Status Resync(const Ledger& ledger) {
    auto fund = LedgerBalance(ledger, holding_.fund);
    if (!fund.ok()) return fund.status();
    fund_fen_ = *fund;
    for (size_t j = 0; j < holding_.projects.size(); ++j) {
      auto project = LedgerBalance(ledger, holding_.projects[j]);
      if (!project.ok()) return project.status();
      project_fen_[j] = *project;
    }
    return absl::OkStatus();
  }

 private:
  static absl::StatusOr<int64_t> LedgerBalance(const Ledger& ledger,
                                               const std::string& account) {
    auto info = ledger.GetAccount(account);
    if (!info.ok()) return info.status();
    for (const Balance& balance : info->balances) {
      if (balance.asset == kAsset) return balance.amount;
    }
    return 0;
  }

  std::string NextClientId() {
    return client_id_prefix_ + std::to_string(++client_id_count_);
  }

  int64_t OutflowTargetFen() {
    return rng_.Between(kOutflowDonationsMin, kOutflowDonationsMax) * kDonationMeanFen;
  }

  Operation PlanDonation() {
    DonationOp donation;
    // Half the gifts come from the most loyal tenth of the donors.
    const size_t donors = external_->donors.size();
    const size_t loyal = std::max<size_t>(1, donors / 10);
    donation.donor = external_->donors[rng_.Below(2) == 0 ? rng_.Below(loyal)
                                                          : rng_.Below(donors)];
    donation.asset = kAsset;
    donation.amount = rng_.Below(4) == 0
                          ? rng_.Between(kDonationOddMinFen, kDonationOddMaxFen)
                          : Pick(rng_, kDonationTableFen);
    donation.channel = static_cast<DonationChannel>(rng_.Between(1, kDonationChannelMax));
    donation.flags = rng_.Below(20) == 0 ? kDonationAnonymous : 0;
    donation.memo = Pick(rng_, kDonationMemos);
    // Online gifts come with a trace code; the ledger keeps SHA-256 of it.
    // Random bytes stand in for the hash (a collision is out of reach).
    if (donation.channel == DonationChannel::kOnlineCampaign) {
      donation.trace_hash.resize(32);
      for (size_t i = 0; i < 32; i += 8) {
        const uint64_t word = rng_.Next();
        std::memcpy(donation.trace_hash.data() + i, &word, 8);
      }
    }
    // One gift in ten is earmarked for a project.
    if (rng_.Below(10) == 0) {
      const size_t j = rng_.Below(holding_.projects.size());
      donation.to = holding_.projects[j];
      project_fen_[j] += donation.amount;
    } else {
      donation.to = holding_.fund;
      fund_fen_ += donation.amount;
    }
    Operation op;
    op.client_id = NextClientId();
    op.body = std::move(donation);
    return op;
  }

  std::optional<Operation> PlanAllocation() {
    if (fund_fen_ <= 0) return std::nullopt;
    const size_t j = rng_.Below(holding_.projects.size());
    const int64_t amount = std::min(OutflowTargetFen(), fund_fen_);
    fund_fen_ -= amount;
    project_fen_[j] += amount;
    Operation op;
    op.client_id = NextClientId();
    op.body = AllocationOp{.from = holding_.fund,
                           .to = holding_.projects[j],
                           .asset = kAsset,
                           .amount = amount,
                           .reason = Pick(rng_, kAllocationReasons)};
    return op;
  }

  std::optional<Operation> PlanDisbursement() {
    // Seven in ten from a project, the rest straight from the fund; a source
    // with nothing left falls over to the richest project, then the fund.
    int64_t* balance = nullptr;
    const std::string* from = nullptr;
    if (rng_.Below(10) < 7) {
      const size_t j = rng_.Below(holding_.projects.size());
      if (project_fen_[j] > 0) {
        balance = &project_fen_[j];
        from = &holding_.projects[j];
      }
    } else if (fund_fen_ > 0) {
      balance = &fund_fen_;
      from = &holding_.fund;
    }
    if (balance == nullptr) {
      const auto richest = std::max_element(project_fen_.begin(), project_fen_.end());
      if (*richest > 0) {
        balance = &*richest;
        from = &holding_.projects[static_cast<size_t>(richest - project_fen_.begin())];
      } else if (fund_fen_ > 0) {
        balance = &fund_fen_;
        from = &holding_.fund;
      } else {
        return std::nullopt;
      }
    }
    const int64_t amount = std::min(OutflowTargetFen(), *balance);
    *balance -= amount;
    Operation op;
    op.client_id = NextClientId();
    op.body = DisbursementOp{.from = *from,
                             .to = Pick(rng_, external_->sinks),
                             .asset = kAsset,
                             .amount = amount,
                             .purpose = Pick(rng_, kDisbursementPurposes)};
    return op;
  }

  const ExternalAccounts* external_;
  HoldingAccounts holding_;
  Rng rng_;
  std::string client_id_prefix_;
  uint64_t client_id_count_ = 0;
  MixWeights weights_;
  int64_t fund_fen_ = 0;
  std::vector<int64_t> project_fen_;
  uint64_t fallback_count_ = 0;
};

// Submits `ops`. The sequencer queue holds kQueueOpsMax operations and each
// submitting thread has one Submit in flight, so the queue can only be full
// when threads * batch exceeds it; only then are the operations copied (the
// copy is needed for a retry: a full queue writes nothing), and the call
// retried after a short back-off. Fatal if the queue stays full.
std::vector<OpResult> SubmitRetrying(Ledger& ledger, std::vector<Operation> ops,
                                     bool queue_may_fill, uint64_t* queue_full_retries) {
  if (!queue_may_fill) return ledger.Submit(std::move(ops));
  for (uint32_t attempt = 0;; ++attempt) {
    std::vector<OpResult> results = ledger.Submit(ops);
    const bool queue_full =
        !results.empty() && std::all_of(results.begin(), results.end(), [](const OpResult& r) {
          return r.status.code() == absl::StatusCode::kResourceExhausted;
        });
    if (!queue_full) return results;
    if (attempt + 1 >= kQueueFullRetriesMax) {
      Fatal("the sequencer queue stayed full: " + results[0].status.ToString());
    }
    ++*queue_full_retries;
    std::this_thread::sleep_for(kQueueFullBackoff);
  }
}

// Opens accounts in Submit calls of at most kBatchOpsMax; fatal on any error.
void SubmitSetup(Ledger& ledger, std::vector<Operation> ops) {
  uint64_t retries = 0;
  for (size_t begin = 0; begin < ops.size(); begin += kBatchOpsMax) {
    const size_t end = std::min(ops.size(), begin + kBatchOpsMax);
    std::vector<Operation> chunk(std::make_move_iterator(ops.begin() + begin),
                                 std::make_move_iterator(ops.begin() + end));
    const std::vector<OpResult> results =
        SubmitRetrying(ledger, std::move(chunk), /*queue_may_fill=*/false, &retries);
    if (results.size() != end - begin) {
      Fatal(Format("setup: Submit returned %zu results for %zu operations", results.size(),
                   end - begin));
    }
    for (const OpResult& result : results) {
      if (!result.status.ok()) Fatal("setup: " + result.status.ToString());
    }
  }
}

std::unique_ptr<Ledger> OpenLedger(const std::string& path) {
  LedgerOptions options;
  options.path = path;
  absl::StatusOr<std::unique_ptr<Ledger>> ledger = Ledger::Open(options);
  if (!ledger.ok()) Fatal("Ledger::Open(" + path + "): " + ledger.status().ToString());
  return std::move(*ledger);
}

// Checks the forward-trace invariant sum(held) + sum(reached) == lot.amount.
bool TraceBalances(const LotTrace& trace) {
  int64_t sum = 0;
  for (const TracePlace& place : trace.held) sum += place.amount;
  for (const TracePlace& place : trace.reached) sum += place.amount;
  return sum == trace.lot.amount;
}

// ---- The mixed run. ----

struct MixStats {
  std::vector<int64_t> batch_ns;
  std::vector<int64_t> trace_lot_ns;
  std::vector<int64_t> trace_entry_ns;
  uint64_t donation_count = 0;
  uint64_t allocation_count = 0;
  uint64_t disbursement_count = 0;
  uint64_t fallback_count = 0;
  uint64_t write_failed_count = 0;
  uint64_t trace_failed_count = 0;
  uint64_t trace_unbalanced_count = 0;
  uint64_t queue_full_retries = 0;
  int64_t submit_ns = 0;
  std::vector<std::string> error_samples;
  std::vector<uint64_t> write_seqs;  // entries written by successful writes
  std::vector<uint64_t> lots;        // donations' seqs

  uint64_t write_ok_count() const { return write_seqs.size(); }
  void NoteError(const std::string& what) {
    if (error_samples.size() < kErrorSamplesMax) error_samples.push_back(what);
  }
  void Merge(MixStats&& other) {
    auto append = [](auto& to, auto& from) { to.insert(to.end(), from.begin(), from.end()); };
    append(batch_ns, other.batch_ns);
    append(trace_lot_ns, other.trace_lot_ns);
    append(trace_entry_ns, other.trace_entry_ns);
    append(write_seqs, other.write_seqs);
    append(lots, other.lots);
    donation_count += other.donation_count;
    allocation_count += other.allocation_count;
    disbursement_count += other.disbursement_count;
    fallback_count += other.fallback_count;
    write_failed_count += other.write_failed_count;
    trace_failed_count += other.trace_failed_count;
    trace_unbalanced_count += other.trace_unbalanced_count;
    queue_full_retries += other.queue_full_retries;
    submit_ns += other.submit_ns;
    for (std::string& e : other.error_samples) NoteError(e);
  }
};

// Runs `operations` operations of the mix on one thread, keeping up to
// `inflight` batches submitted at once. Results are processed on this thread.
void RunMixThread(Ledger& ledger, Workload& workload, uint64_t operations, uint32_t batch,
                  uint32_t inflight, bool queue_may_fill, std::latch& start,
                  MixStats& stats) {
  struct Completed {
    std::vector<OpKind> kinds;
    std::vector<OpResult> results;
    int64_t submit_ns = 0;
  };
  Monitor mu;
  std::deque<Completed> completed;  // guarded by mu
  uint32_t submitted = 0;           // guarded by mu: batches not yet processed

  // Processes finished batches; first waits until fewer than `max_open`
  // batches are outstanding.
  auto process_completed = [&](uint32_t max_open) {
    std::deque<Completed> ready;
    {
      Monitor::Lock lock(&mu);
      lock.Await([&] { return submitted - completed.size() < max_open; });
      ready.swap(completed);
      submitted -= static_cast<uint32_t>(ready.size());
    }
    bool any_failed = false;
    for (Completed& c : ready) {
      stats.batch_ns.push_back(c.submit_ns);
      stats.submit_ns += c.submit_ns;
      if (c.results.size() != c.kinds.size()) {
        Fatal(Format("Submit returned %zu results for %zu operations", c.results.size(),
                     c.kinds.size()));
      }
      for (size_t i = 0; i < c.results.size(); ++i) {
        const OpResult& result = c.results[i];
        if (!result.status.ok()) {
          any_failed = true;
          ++stats.write_failed_count;
          stats.NoteError(result.status.ToString());
          continue;
        }
        stats.write_seqs.push_back(result.seq);
        switch (c.kinds[i]) {
          case OpKind::kDonation:
            ++stats.donation_count;
            stats.lots.push_back(result.seq);
            break;
          case OpKind::kAllocation:
            ++stats.allocation_count;
            break;
          default:
            ++stats.disbursement_count;
            break;
        }
      }
    }
    if (any_failed) {
      // Wait for everything outstanding first: the model resyncs from the
      // ledger as it is after them.
      {
        Monitor::Lock lock(&mu);
        lock.Await([&] { return submitted == completed.size(); });
      }
      const absl::Status status = workload.Resync(ledger);
      if (!status.ok()) Fatal("resync after a rejected write: " + status.ToString());
    }
  };

  std::vector<OpKind> pending_traces;
  start.arrive_and_wait();
  uint64_t done = 0;
  while (done < operations) {
    std::vector<Operation> ops;
    ops.reserve(batch);
    std::vector<OpKind> batch_kinds;
    pending_traces.clear();
    while (ops.size() < batch && done < operations) {
      ++done;
      const OpKind kind = workload.NextKind();
      if (kind == OpKind::kTraceLot || kind == OpKind::kTraceEntry) {
        pending_traces.push_back(kind);
        continue;
      }
      auto [op, planned] = workload.PlanWrite(kind);
      ops.push_back(std::move(op));
      batch_kinds.push_back(planned);
    }

    if (!ops.empty()) {
      if (inflight == 1) {
        const auto submit_start = SteadyClock::now();
        Completed c;
        c.results =
            SubmitRetrying(ledger, std::move(ops), queue_may_fill, &stats.queue_full_retries);
        c.submit_ns = NanosSince(submit_start);
        c.kinds = std::move(batch_kinds);
        {
          Monitor::Lock lock(&mu);
          ++submitted;
          completed.push_back(std::move(c));
        }
        process_completed(1);
      } else {
        process_completed(inflight);  // room for one more batch
        const auto submit_start = SteadyClock::now();
        {
          Monitor::Lock lock(&mu);
          ++submitted;
        }
        ledger.SubmitAsync(std::move(ops), [&, submit_start, kinds = std::move(batch_kinds)](
                                               std::vector<OpResult> results) mutable {
          Completed c{std::move(kinds), std::move(results), NanosSince(submit_start)};
          Monitor::Lock lock(&mu);
          completed.push_back(std::move(c));
        });
      }
    }

    for (OpKind kind : pending_traces) {
      if (kind == OpKind::kTraceLot && !stats.lots.empty()) {
        const uint64_t lot = Pick(workload.rng(), stats.lots);
        const auto trace_start = SteadyClock::now();
        const absl::StatusOr<LotTrace> trace = ledger.TraceLot(lot);
        stats.trace_lot_ns.push_back(NanosSince(trace_start));
        if (!trace.ok()) {
          ++stats.trace_failed_count;
          stats.NoteError(Format("TraceLot(%" PRIu64 "): ", lot) + trace.status().ToString());
        } else if (!TraceBalances(*trace)) {
          ++stats.trace_unbalanced_count;
          stats.NoteError(Format("TraceLot(%" PRIu64 "): held + reached != lot amount", lot));
        }
      } else if (kind == OpKind::kTraceEntry && !stats.write_seqs.empty()) {
        const uint64_t seq = Pick(workload.rng(), stats.write_seqs);
        const auto trace_start = SteadyClock::now();
        const absl::StatusOr<EntryTracePage> page =
            ledger.TraceEntry(seq, 0, kTraceEntryPageItems);
        stats.trace_entry_ns.push_back(NanosSince(trace_start));
        if (!page.ok()) {
          ++stats.trace_failed_count;
          stats.NoteError(Format("TraceEntry(%" PRIu64 "): ", seq) + page.status().ToString());
        }
      }
    }
  }
  process_completed(1);  // waits for the last batches
  stats.fallback_count = workload.fallback_count();
}

struct MixResult {
  MixStats stats;
  double wall_s = 0;
  uint64_t setup_entries = 0;
  uint64_t head_seq = 0;
  WriteStats writes;  // the ledger's fsynced commits during the mix
};

MixResult RunMix(Ledger& ledger, const Flags& flags, const ExternalAccounts& external) {
  MixResult result;
  std::vector<Workload> workloads;
  std::vector<Operation> setup = OpenExternalOps(external);
  for (uint32_t t = 0; t < flags.threads; ++t) {
    const std::string tag = flags.threads == 1 ? "" : Format("t%u", t);
    HoldingAccounts holding = MakeHoldingAccounts(tag);
    std::vector<Operation> open = OpenHoldingOps(holding);
    setup.insert(setup.end(), std::make_move_iterator(open.begin()),
                 std::make_move_iterator(open.end()));
    // Distinct streams per thread; thread 0 of seed s is the same whatever
    // the thread count.
    workloads.emplace_back(&external, std::move(holding),
                           flags.seed * 0x100000001b3ull + t, Format("mix-t%u-", t),
                           kMixWeights);
  }
  const auto setup_start = SteadyClock::now();
  SubmitSetup(ledger, std::move(setup));
  result.setup_entries = ledger.Head().seq;
  std::printf("setup: %" PRIu64 " accounts opened in %.2f s\n", result.setup_entries,
              SecondsSince(setup_start));
  std::fflush(stdout);

  const WriteStats writes_before = ledger.GetWriteStats();
  std::vector<MixStats> stats(flags.threads);
  const bool queue_may_fill = uint64_t{flags.threads} * flags.batch > kQueueOpsMax;
  std::latch start(flags.threads + 1);
  std::vector<std::thread> threads;
  for (uint32_t t = 0; t < flags.threads; ++t) {
    const uint64_t operations =
        flags.entries / flags.threads + (t < flags.entries % flags.threads ? 1 : 0);
    threads.emplace_back([&, t, operations] {
      RunMixThread(ledger, workloads[t], operations, flags.batch, flags.inflight,
                   queue_may_fill, start, stats[t]);
    });
  }
  start.arrive_and_wait();
  const auto mix_start = SteadyClock::now();
  for (std::thread& thread : threads) thread.join();
  result.wall_s = SecondsSince(mix_start);
  for (MixStats& s : stats) result.stats.Merge(std::move(s));
  result.head_seq = ledger.Head().seq;
  const WriteStats writes_after = ledger.GetWriteStats();
  result.writes = {.commits = writes_after.commits - writes_before.commits,
                   .entries = writes_after.entries - writes_before.entries,
                   .keys = writes_after.keys - writes_before.keys,
                   .bytes = writes_after.bytes - writes_before.bytes,
                   .write_ns = writes_after.write_ns - writes_before.write_ns};
  return result;
}

// ---- Sampling entries and the raw RocksDB limit. ----

struct EntrySample {
  std::vector<std::string> values;  // stored values: entry bytes + hash
  uint64_t bytes_total = 0;
  uint64_t outflow_count = 0;         // allocations and disbursements sampled
  uint64_t outflow_slices_total = 0;  // slices in their postings
};

EntrySample SampleEntries(const Ledger& ledger, const std::vector<uint64_t>& seqs,
                          uint64_t seed) {
  EntrySample sample;
  if (seqs.empty()) return sample;
  Rng rng(seed ^ 0x5a4d504c45ull);
  const size_t count = std::min(seqs.size(), kRawSampleEntriesMax);
  for (size_t i = 0; i < count; ++i) {
    const uint64_t seq = Pick(rng, seqs);
    absl::StatusOr<StoredEntry> stored = ledger.ReadEntry(seq);
    if (!stored.ok()) Fatal(Format("ReadEntry(%" PRIu64 "): ", seq) + stored.status().ToString());
    std::string value = stored->bytes;
    value.append(reinterpret_cast<const char*>(stored->hash.data()), stored->hash.size());
    sample.bytes_total += value.size();
    sample.values.push_back(std::move(value));
    const EntryType type = stored->entry.type();
    if (type == EntryType::kAllocation || type == EntryType::kDisbursement) {
      ++sample.outflow_count;
      for (const Posting& posting : stored->entry.postings) {
        sample.outflow_slices_total += posting.slices.size();
      }
    }
  }
  return sample;
}

struct RawResult {
  uint64_t writes = 0;
  uint64_t bytes = 0;  // WriteBatch data, keys and values included
  int64_t write_ns = 0;  // time in DB::Write, fsync included
  double wall_s = 0;
  double appends_per_s = 0;
  Latency batch;
};

RawResult RunRaw(const std::string& path, const std::vector<std::string>& values,
                 uint64_t writes, uint32_t batch) {
  // The write-path options Ledger::Open sets, so that only the engine's own
  // work separates the two figures.
  rocksdb::Options options;
  options.create_if_missing = true;
  options.error_if_exists = true;
  options.max_background_jobs = 2;
  options.write_buffer_size = 64 << 20;
  rocksdb::DB* raw_db = nullptr;
  const rocksdb::Status open = rocksdb::DB::Open(options, path, &raw_db);
  if (!open.ok()) Fatal("raw RocksDB open " + path + ": " + open.ToString());
  std::unique_ptr<rocksdb::DB> db(raw_db);

  rocksdb::WriteOptions write_options;
  write_options.sync = true;  // the same durability as a ledger commit
  RawResult result;
  result.writes = writes;
  std::vector<int64_t> batch_ns;
  batch_ns.reserve(writes / batch + 1);
  char key[9];
  key[0] = 'E';
  uint64_t counter = 0;
  const auto start = SteadyClock::now();
  while (counter < writes) {
    rocksdb::WriteBatch write_batch;
    const uint64_t end = std::min<uint64_t>(writes, counter + batch);
    for (; counter < end; ++counter) {
      const uint64_t seq = counter + 1;
      for (int i = 0; i < 8; ++i) key[1 + i] = static_cast<char>(seq >> (56 - 8 * i));
      const rocksdb::Status put =
          write_batch.Put(rocksdb::Slice(key, sizeof(key)), values[counter % values.size()]);
      if (!put.ok()) Fatal("raw RocksDB WriteBatch::Put: " + put.ToString());
    }
    result.bytes += write_batch.GetDataSize();
    const auto write_start = SteadyClock::now();
    const rocksdb::Status write = db->Write(write_options, &write_batch);
    batch_ns.push_back(NanosSince(write_start));
    result.write_ns += batch_ns.back();
    if (!write.ok()) Fatal("raw RocksDB Write: " + write.ToString());
  }
  result.wall_s = SecondsSince(start);
  result.appends_per_s = static_cast<double>(writes) / result.wall_s;
  result.batch = Summarise(std::move(batch_ns));
  const rocksdb::Status close = db->Close();
  if (!close.ok()) Fatal("raw RocksDB close: " + close.ToString());
  return result;
}

// The write path alone: what the ledger's fsynced commits cost in RocksDB
// keys, bytes and time per entry, beside the raw appends of the same bytes.
// The ledger's commits ran while the other stages used the CPU; the raw
// appends ran alone.
void ReportWritePath(const WriteStats& w, const RawResult& raw, JsonLine& json) {
  if (w.entries == 0 || w.write_ns <= 0 || raw.write_ns <= 0) return;
  const double entries = static_cast<double>(w.entries);
  const double keys_per_entry = static_cast<double>(w.keys) / entries;
  const double bytes_per_entry = static_cast<double>(w.bytes) / entries;
  const double raw_bytes_per_append =
      static_cast<double>(raw.bytes) / static_cast<double>(raw.writes);
  const double write_entries_per_s = entries / (static_cast<double>(w.write_ns) / 1e9);
  const double raw_write_appends_per_s =
      static_cast<double>(raw.writes) / (static_cast<double>(raw.write_ns) / 1e9);
  std::printf("write path: the ledger's %" PRIu64 " fsynced commits wrote %" PRIu64
              " entries as %.3f keys and %.1f bytes each (raw appends: 1 key, %.1f bytes); "
              "%.0f entries per second of DB::Write time (raw: %.0f); ratio %.3f\n",
              w.commits, w.entries, keys_per_entry, bytes_per_entry, raw_bytes_per_append,
              write_entries_per_s, raw_write_appends_per_s,
              write_entries_per_s / raw_write_appends_per_s);
  json.Integer("write_commits", w.commits);
  json.Number("write_keys_per_entry", keys_per_entry, 4);
  json.Number("write_bytes_per_entry", bytes_per_entry, 1);
  json.Number("raw_bytes_per_append", raw_bytes_per_append, 1);
  json.Number("write_entries_per_s", write_entries_per_s, 1);
  json.Number("raw_write_appends_per_s", raw_write_appends_per_s, 1);
  json.Number("write_path_ratio", write_entries_per_s / raw_write_appends_per_s, 4);
}

// ---- The --trace_ledger_entries measurement. ----

struct TraceLedgerResult {
  uint64_t entries = 0;
  double build_s = 0;
  Latency trace;           // before the reopen
  Latency trace_reopened;  // right after the reopen (cold block cache)
  uint64_t trace_failed_count = 0;
  double close_s = 0;
  double reopen_s = 0;
  std::vector<uint64_t> write_seqs;
};

Latency TimeLotTraces(const Ledger& ledger, const std::vector<uint64_t>& lots, Rng& rng,
                      uint64_t* failed_count, std::vector<std::string>* errors) {
  std::vector<int64_t> trace_ns;
  for (size_t i = 0; i < kTraceLedgerLotsCount && !lots.empty(); ++i) {
    const uint64_t lot = Pick(rng, lots);
    const auto start = SteadyClock::now();
    const absl::StatusOr<LotTrace> trace = ledger.TraceLot(lot);
    trace_ns.push_back(NanosSince(start));
    if (!trace.ok() || !TraceBalances(*trace)) {
      ++*failed_count;
      if (errors->size() < kErrorSamplesMax) {
        errors->push_back(Format("TraceLot(%" PRIu64 "): ", lot) +
                          (trace.ok() ? std::string("held + reached != lot amount")
                                      : trace.status().ToString()));
      }
    }
  }
  return Summarise(std::move(trace_ns));
}

TraceLedgerResult RunTraceLedger(const std::string& path, const Flags& flags,
                                 const ExternalAccounts& external,
                                 std::vector<std::string>* errors) {
  TraceLedgerResult result;
  std::unique_ptr<Ledger> ledger = OpenLedger(path);
  HoldingAccounts holding = MakeHoldingAccounts("");
  std::vector<Operation> setup = OpenExternalOps(external);
  std::vector<Operation> open = OpenHoldingOps(holding);
  setup.insert(setup.end(), std::make_move_iterator(open.begin()),
               std::make_move_iterator(open.end()));
  Workload workload(&external, std::move(holding), flags.seed * 0x100000001b3ull + 0xb11d,
                    "build-", kBuildWeights);

  const auto build_start = SteadyClock::now();
  SubmitSetup(*ledger, std::move(setup));
  std::vector<uint64_t> lots;
  uint64_t head = ledger->Head().seq;
  uint64_t retries = 0;
  uint64_t next_report = flags.trace_ledger_entries / 4;
  while (head < flags.trace_ledger_entries) {
    const size_t count =
        static_cast<size_t>(std::min<uint64_t>(kBuildBatchOps, flags.trace_ledger_entries - head));
    std::vector<Operation> ops;
    std::vector<OpKind> kinds;
    ops.reserve(count);
    for (size_t i = 0; i < count; ++i) {
      auto [op, planned] = workload.PlanWrite(workload.NextKind());
      ops.push_back(std::move(op));
      kinds.push_back(planned);
    }
    const std::vector<OpResult> results =
        SubmitRetrying(*ledger, std::move(ops), /*queue_may_fill=*/false, &retries);
    if (results.size() != count) Fatal("trace ledger: Submit returned the wrong result count");
    bool any_failed = false;
    for (size_t i = 0; i < count; ++i) {
      if (!results[i].status.ok()) {
        any_failed = true;
        if (errors->size() < kErrorSamplesMax) {
          errors->push_back("trace ledger build: " + results[i].status.ToString());
        }
        continue;
      }
      result.write_seqs.push_back(results[i].seq);
      if (kinds[i] == OpKind::kDonation) lots.push_back(results[i].seq);
    }
    if (any_failed) {
      const absl::Status status = workload.Resync(*ledger);
      if (!status.ok()) Fatal("trace ledger: resync: " + status.ToString());
    }
    const uint64_t new_head = ledger->Head().seq;
    if (new_head == head) Fatal("trace ledger: a whole batch was rejected; giving up");
    head = new_head;
    if (head >= next_report && head < flags.trace_ledger_entries) {
      std::printf("trace ledger: %" PRIu64 " entries, %.1f s\n", head, SecondsSince(build_start));
      std::fflush(stdout);
      next_report += flags.trace_ledger_entries / 4;
    }
  }
  result.build_s = SecondsSince(build_start);
  result.entries = head;

  Rng rng(flags.seed ^ 0x74726163ull);
  result.trace = TimeLotTraces(*ledger, lots, rng, &result.trace_failed_count, errors);

  const LedgerHead before = ledger->Head();
  const auto close_start = SteadyClock::now();
  ledger.reset();
  result.close_s = SecondsSince(close_start);
  const auto reopen_start = SteadyClock::now();
  ledger = OpenLedger(path);
  result.reopen_s = SecondsSince(reopen_start);
  const LedgerHead after = ledger->Head();
  if (after.seq != before.seq || after.hash != before.hash) {
    Fatal(Format("trace ledger: head after reopen is seq %" PRIu64 ", before it was %" PRIu64
                 " (or the head hash changed)",
                 after.seq, before.seq));
  }
  result.trace_reopened = TimeLotTraces(*ledger, lots, rng, &result.trace_failed_count, errors);
  return result;
}

// ---- Output. ----


// Makes a fresh folder for the run: --data_dir (missing or empty) or a new
// temporary folder.
std::string MakeBaseDir(const Flags& flags) {
  std::error_code error;
  if (!flags.data_dir.empty()) {
    if (std::filesystem::exists(flags.data_dir, error) &&
        !std::filesystem::is_empty(flags.data_dir, error)) {
      UsageError("--data_dir=" + flags.data_dir + " is not empty; the benchmark needs a fresh ledger");
    }
    std::filesystem::create_directories(flags.data_dir, error);
    if (error) Fatal("cannot create " + flags.data_dir + ": " + error.message());
    return flags.data_dir;
  }
  std::string pattern =
      (std::filesystem::temp_directory_path(error) / "warmledger-bench-XXXXXX").string();
  if (error) Fatal("no temporary folder: " + error.message());
  if (mkdtemp(pattern.data()) == nullptr) Fatal("mkdtemp(" + pattern + ") failed");
  return pattern;
}

// Prints the mixed run's figures and adds them to `json`; true if anything
// failed.
bool ReportMix(const MixResult& mix, const Flags& flags, JsonLine& json,
               std::vector<std::string>& errors) {
  const MixStats& s = mix.stats;
  const uint64_t writes = s.write_ok_count();
  const uint64_t traces = s.trace_lot_ns.size() + s.trace_entry_ns.size();
  std::vector<int64_t> all_traces = s.trace_lot_ns;
  all_traces.insert(all_traces.end(), s.trace_entry_ns.begin(), s.trace_entry_ns.end());
  const Latency batch = Summarise(s.batch_ns);
  const Latency trace = Summarise(std::move(all_traces));
  const Latency trace_lot = Summarise(s.trace_lot_ns);
  const Latency trace_entry = Summarise(s.trace_entry_ns);
  const double ops_per_s = static_cast<double>(writes) / mix.wall_s;
  const double submit_s = static_cast<double>(s.submit_ns) / 1e9 / flags.threads;
  std::printf("mix: %" PRIu64 " writes (%" PRIu64 " donations, %" PRIu64 " allocations, %" PRIu64
              " disbursements; %" PRIu64
              " outflows found no money and changed kind) and %" PRIu64
              " traces in %.2f s\n",
              writes, s.donation_count, s.allocation_count, s.disbursement_count,
              s.fallback_count, traces, mix.wall_s);
  std::printf("mix: %.0f durable write ops/s over the run; %.0f counting only time in "
              "Submit%s\n",
              ops_per_s, submit_s > 0 ? static_cast<double>(writes) / submit_s : 0.0,
              flags.threads > 1 ? " (averaged over threads)" : "");
  std::printf("mix: Submit latency per batch of %u: p50 %.2f ms, p99 %.2f ms, max %.2f ms "
              "over %zu batches\n",
              flags.batch, Millis(batch.p50_ns), Millis(batch.p99_ns), Millis(batch.max_ns),
              batch.count);
  std::printf("mix: traces p50 %.1f us p99 %.1f us; TraceLot p50 %.1f us p99 %.1f us (%zu); "
              "TraceEntry (page of %" PRIu64 ") p50 %.1f us p99 %.1f us (%zu)\n",
              Micros(trace.p50_ns), Micros(trace.p99_ns), Micros(trace_lot.p50_ns),
              Micros(trace_lot.p99_ns), trace_lot.count, kTraceEntryPageItems,
              Micros(trace_entry.p50_ns), Micros(trace_entry.p99_ns), trace_entry.count);
  if (s.queue_full_retries > 0) {
    std::printf("mix: %" PRIu64 " Submit retries after a full queue\n", s.queue_full_retries);
  }
  const uint64_t problems =
      s.write_failed_count + s.trace_failed_count + s.trace_unbalanced_count;
  if (problems > 0) {
    std::printf("mix: PROBLEMS: %" PRIu64 " writes rejected, %" PRIu64 " traces failed, %" PRIu64
                " lot traces unbalanced\n",
                s.write_failed_count, s.trace_failed_count, s.trace_unbalanced_count);
  }
  for (const std::string& e : s.error_samples) errors.push_back("mix: " + e);
  const double mix_rss_mib = PeakRssMib();
  std::printf("mix: ledger head seq %" PRIu64 " (%" PRIu64 " setup entries); peak RSS so far "
              "%.1f MiB\n",
              mix.head_seq, mix.setup_entries, mix_rss_mib);
  std::fflush(stdout);

  json.Number("ops_per_s", ops_per_s, 1);
  json.Number("p50_batch_ms", Millis(batch.p50_ns), 3);
  json.Number("p99_batch_ms", Millis(batch.p99_ns), 3);
  json.Number("trace_p50_us", Micros(trace.p50_ns), 2);
  json.Number("trace_p99_us", Micros(trace.p99_ns), 2);
  json.Number("trace_lot_p50_us", Micros(trace_lot.p50_ns), 2);
  json.Number("trace_lot_p99_us", Micros(trace_lot.p99_ns), 2);
  json.Number("trace_entry_p50_us", Micros(trace_entry.p50_ns), 2);
  json.Number("trace_entry_p99_us", Micros(trace_entry.p99_ns), 2);
  json.Integer("entries", mix.head_seq);
  json.Integer("write_ops", writes);
  json.Integer("trace_ops", traces);
  json.Integer("failed_ops", problems);
  json.Number("mix_s", mix.wall_s, 3);
  json.Number("mix_peak_rss_mib", mix_rss_mib, 1);
  return problems > 0;
}

// Prints the --trace_ledger_entries figures and adds them to `json`; true if
// anything failed.
bool ReportTraceLedger(const TraceLedgerResult& t, JsonLine& json) {
  std::printf("trace ledger: %" PRIu64 " entries built in %.1f s (%.0f entries/s)\n", t.entries,
              t.build_s, static_cast<double>(t.entries) / t.build_s);
  std::printf("trace ledger: TraceLot over %zu random lots: p50 %.1f us, p99 %.1f us, max %.1f "
              "us; after the reopen p50 %.1f us, p99 %.1f us\n",
              t.trace.count, Micros(t.trace.p50_ns), Micros(t.trace.p99_ns),
              Micros(t.trace.max_ns), Micros(t.trace_reopened.p50_ns),
              Micros(t.trace_reopened.p99_ns));
  std::printf("trace ledger: close %.2f s; reopen (Ledger::Open, full verify and replay) %.2f s\n",
              t.close_s, t.reopen_s);
  if (t.trace_failed_count > 0) {
    std::printf("trace ledger: PROBLEMS: %" PRIu64 " lot traces failed or unbalanced\n",
                t.trace_failed_count);
  }
  std::fflush(stdout);
  json.Integer("trace_ledger_entries", t.entries);
  json.Number("trace_ledger_build_s", t.build_s, 3);
  json.Number("trace_ledger_p50_us", Micros(t.trace.p50_ns), 2);
  json.Number("trace_ledger_p99_us", Micros(t.trace.p99_ns), 2);
  json.Number("trace_ledger_reopened_p50_us", Micros(t.trace_reopened.p50_ns), 2);
  json.Number("trace_ledger_reopened_p99_us", Micros(t.trace_reopened.p99_ns), 2);
  json.Number("reopen_s", t.reopen_s, 3);
  return t.trace_failed_count > 0;
}

int Main(int argc, char** argv) {
  const Flags flags = ParseFlags(argc, argv);
  const std::string base_dir = MakeBaseDir(flags);
  const bool remove_base = flags.data_dir.empty() && !flags.keep;
  const std::string ledger_dir = base_dir + "/ledger";
  const std::string raw_dir = base_dir + "/raw-rocksdb";
  const std::string trace_dir = base_dir + "/trace-ledger";
  std::printf("warmledger-bench: in-process; batch=%u entries=%" PRIu64 " seed=%" PRIu64
              " threads=%u dir=%s%s\n",
              flags.batch, flags.entries, flags.seed, flags.threads, base_dir.c_str(),
              remove_base ? " (removed at the end)" : "");
  std::fflush(stdout);

  const ExternalAccounts external = MakeExternalAccounts();
  std::vector<std::string> errors;
  bool failed = false;
  JsonLine json;
  json.String("mode", "in-process");
  json.Integer("batch", flags.batch);
  json.Integer("seed", flags.seed);
  json.Integer("threads", flags.threads);
  json.Integer("inflight", flags.inflight);
  json.Integer("operations", flags.entries);

  // 1. The mixed run, then a sample of its entries for the raw run; the
  //    ledger is closed before anything else runs.
  std::optional<MixResult> mix;
  EntrySample sample;
  if (flags.entries > 0) {
    std::unique_ptr<Ledger> ledger = OpenLedger(ledger_dir);
    mix = RunMix(*ledger, flags, external);
    failed |= ReportMix(*mix, flags, json, errors);
    if (flags.raw) sample = SampleEntries(*ledger, mix->stats.write_seqs, flags.seed);
  } else {
    for (const char* name : {"ops_per_s", "p50_batch_ms", "p99_batch_ms", "trace_p50_us",
                             "trace_p99_us", "entries"}) {
      json.Null(name);
    }
  }

  // 2. Without a mixed run, the trace ledger comes first and is sampled.
  std::optional<TraceLedgerResult> trace_ledger;
  auto run_trace_ledger = [&] {
    std::printf("trace ledger: building %" PRIu64 " entries in batches of %zu\n",
                flags.trace_ledger_entries, kBuildBatchOps);
    std::fflush(stdout);
    trace_ledger = RunTraceLedger(trace_dir, flags, external, &errors);
    failed |= ReportTraceLedger(*trace_ledger, json);
  };
  if (!mix && flags.trace_ledger_entries > 0) {
    run_trace_ledger();
    if (flags.raw) {
      std::unique_ptr<Ledger> ledger = OpenLedger(trace_dir);
      sample = SampleEntries(*ledger, trace_ledger->write_seqs, flags.seed);
    }
  }

  // 3. The raw RocksDB limit, on the same disk.
  if (flags.raw && !sample.values.empty()) {
    const uint64_t writes =
        std::max<uint64_t>(kRawWritesMin, mix ? mix->stats.write_ok_count() : 0);
    const double value_mean_bytes =
        static_cast<double>(sample.bytes_total) / static_cast<double>(sample.values.size());
    std::printf("raw rocksdb: sampled %zu stored entries, mean %.0f bytes; the allocations and "
                "disbursements among them carry %.1f slices each\n",
                sample.values.size(), value_mean_bytes,
                sample.outflow_count == 0 ? 0.0
                                          : static_cast<double>(sample.outflow_slices_total) /
                                                static_cast<double>(sample.outflow_count));
    std::fflush(stdout);
    const RawResult raw = RunRaw(raw_dir, sample.values, writes, flags.batch);
    std::printf("raw rocksdb: %" PRIu64 " appends in WriteBatches of %u, sync=true: %.2f s, "
                "%.0f appends/s; Write p50 %.2f ms, p99 %.2f ms\n",
                raw.writes, flags.batch, raw.wall_s, raw.appends_per_s, Millis(raw.batch.p50_ns),
                Millis(raw.batch.p99_ns));
    json.Number("raw_rocksdb_appends_per_s", raw.appends_per_s, 1);
    if (mix) {
      const double ratio =
          static_cast<double>(mix->stats.write_ok_count()) / mix->wall_s / raw.appends_per_s;
      std::printf("limit ratio (ledger write ops/s / raw appends/s): %.3f\n", ratio);
      json.Number("limit_ratio", ratio, 4);
      ReportWritePath(mix->writes, raw, json);
    } else {
      json.Null("limit_ratio");
    }
    json.Integer("raw_rocksdb_writes", raw.writes);
    json.Number("raw_p50_batch_ms", Millis(raw.batch.p50_ns), 3);
    json.Number("raw_p99_batch_ms", Millis(raw.batch.p99_ns), 3);
    json.Number("entry_value_mean_bytes", value_mean_bytes, 1);
    std::fflush(stdout);
  } else {
    if (flags.raw) std::printf("raw rocksdb: skipped (no ledger entries to sample)\n");
    json.Null("raw_rocksdb_appends_per_s");
    json.Null("limit_ratio");
  }

  // 4. After a mixed run, the trace ledger comes last.
  if (mix && flags.trace_ledger_entries > 0) run_trace_ledger();

  const double peak_rss_mib = PeakRssMib();
  std::printf("peak RSS %.1f MiB (whole process)\n", peak_rss_mib);
  json.Number("peak_rss_mib", peak_rss_mib, 1);
  for (const std::string& e : errors) std::printf("error sample: %s\n", e.c_str());

  if (remove_base) {
    std::error_code error;
    std::filesystem::remove_all(base_dir, error);
    if (error) std::printf("could not remove %s: %s\n", base_dir.c_str(), error.message().c_str());
  } else {
    std::printf("kept %s\n", base_dir.c_str());
  }
  json.Bool("ok", !failed);
  std::printf("%s\n", json.Done().c_str());
  return failed ? 1 : 0;
}

}  // namespace
}  // namespace warmledger

int main(int argc, char** argv) {
  // gRPC's threads lock often (its mutexes are absl::Mutex); absl's
  // deadlock-graph bookkeeping would dominate their cost.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  std::vector<std::string> args(argv + 1, argv + argc);
  for (const std::string& a : args) {
    if (a.rfind("--server=", 0) == 0) return warmledger::bench::RunServerBench(args);
  }
  return warmledger::Main(argc, argv);
}

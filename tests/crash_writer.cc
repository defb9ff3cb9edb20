// crash_writer DIR START_INDEX — the process that tests/crash_test.cc kills.
//
// Opens (or creates) the ledger at DIR with the system clock, makes sure its
// donor and fund exist (fixed client ids, so a rerun after a kill gets
// duplicates, not errors), then submits donations forever in batches of 1–64.
// Donation n has client id "don-<n>", n counting up from START_INDEX, and its
// content is a pure function of n (CrashDonation, tests/crash_donation.h,
// shared with crash_test.cc). After each Submit returns, one line
// "don-<n>\n" per acknowledged id is written to stdout and flushed: an id is
// printed only once its entry is durable, so every printed id must survive a
// SIGKILL.
//
// Exit codes: 2 bad arguments, 3 open failed, 4 set-up failed, 5 a donation
// was rejected, 6 stdout failed. It never exits on its own otherwise; a
// closed pipe kills it with SIGPIPE, and it stops after kDonationsMax.
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "ledger/ledger.h"
#include "ledger/types.h"
#include "tests/crash_donation.h"

namespace warmledger {
namespace {

using crash::CrashDonation;
using crash::kDonor;
using crash::kFund;
constexpr int64_t kBatchOpsMax = 64;
// A bound on one run, far above what a test round waits for.
constexpr int64_t kDonationsMax = 10'000'000;

Operation SetUpOp(const char* client_id, const char* account, AccountKind kind) {
  OpenAccountOp o;
  o.account = account;
  o.kind = kind;
  o.asset = "CNY";
  o.name = account;
  Operation op;
  op.client_id = client_id;
  op.body = std::move(o);
  return op;
}

int Run(const char* dir, uint64_t start_index) {
  LedgerOptions options;
  options.path = dir;
  options.clock = nullptr;  // the system clock
  auto ledger = Ledger::Open(options);
  if (!ledger.ok()) {
    std::fprintf(stderr, "crash_writer: open %s: %s\n", dir, ledger.status().ToString().c_str());
    return 3;
  }
  std::vector<Operation> set_up;
  set_up.push_back(SetUpOp("setup-donor", kDonor, AccountKind::kDonor));
  set_up.push_back(SetUpOp("setup-fund", kFund, AccountKind::kFund));
  for (const OpResult& r : (*ledger)->Submit(std::move(set_up))) {
    if (!r.status.ok()) {
      std::fprintf(stderr, "crash_writer: set-up: %s\n", r.status.ToString().c_str());
      return 4;
    }
  }

  std::mt19937_64 rng(start_index);
  uint64_t next = start_index;
  while (next - start_index < static_cast<uint64_t>(kDonationsMax)) {
    const int64_t batch_size = 1 + static_cast<int64_t>(rng() % kBatchOpsMax);
    std::vector<Operation> ops;
    ops.reserve(static_cast<size_t>(batch_size));
    for (int64_t i = 0; i < batch_size; ++i) ops.push_back(CrashDonation(next + static_cast<uint64_t>(i)));
    const std::vector<OpResult> results = (*ledger)->Submit(std::move(ops));
    std::string lines;
    for (int64_t i = 0; i < batch_size; ++i) {
      const OpResult& r = results[static_cast<size_t>(i)];
      if (!r.status.ok()) {
        std::fprintf(stderr, "crash_writer: don-%" PRIu64 ": %s\n", next + static_cast<uint64_t>(i),
                     r.status.ToString().c_str());
        return 5;
      }
      lines += "don-" + std::to_string(next + static_cast<uint64_t>(i)) + "\n";
    }
    next += static_cast<uint64_t>(batch_size);
    if (std::fwrite(lines.data(), 1, lines.size(), stdout) != lines.size() || std::fflush(stdout) != 0) {
      return 6;
    }
  }
  return 0;
}

}  // namespace
}  // namespace warmledger

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: crash_writer DIR START_INDEX\n");
    return 2;
  }
  char* end = nullptr;
  const unsigned long long start_index = std::strtoull(argv[2], &end, 10);
  if (end == argv[2] || *end != '\0') {
    std::fprintf(stderr, "crash_writer: bad START_INDEX '%s'\n", argv[2]);
    return 2;
  }
  return warmledger::Run(argv[1], start_index);
}

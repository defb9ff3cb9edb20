// warmledger-goods-bench: the cost of goods at the scale of a campaign,
// in-process on a real (fsynced) ledger.
//
// Builds a ledger in which `--gifts` small gifts (one per donor) fill the
// general fund, then measures, `--runs` times each:
//   - one goods purchase paid by all of them (one entry of `--gifts` slices),
//   - one handout of one box each to `--households` recipients,
//   - the forward trace of one small gift through the purchase to the
//     households (grouped by category and community),
//   - the backward trace of the handout (every line's box and the gifts
//     behind it, one page),
// and prints the medians, the replay time of the whole ledger on reopen and
// the peak resident memory, as one JSON line.
//
//   warmledger-goods-bench [--gifts=200000] [--households=700] [--runs=5]
//                          [--dir=PATH]

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "ledger/clock.h"
#include "ledger/ledger.h"
#include "ledger/limits.h"
#include "tools/bench_util.h"

namespace warmledger {
namespace {

using bench::Format;
using Clock = std::chrono::steady_clock;

struct Flags {
  uint64_t gifts = 200'000;
  uint64_t households = 700;
  uint64_t runs = 5;
  std::string dir;
};

bool ParseFlags(int argc, char** argv, Flags* flags) {
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&](const char* name) -> const char* {
      const std::string prefix = absl::StrCat("--", name, "=");
      return arg.rfind(prefix, 0) == 0 ? argv[i] + prefix.size() : nullptr;
    };
    const char* v = nullptr;
    if ((v = value("gifts")) && absl::SimpleAtoi(v, &flags->gifts) && flags->gifts > 0) continue;
    if ((v = value("households")) && absl::SimpleAtoi(v, &flags->households) &&
        flags->households > 0 && flags->households <= kHandoutLinesMax) {
      continue;
    }
    if ((v = value("runs")) && absl::SimpleAtoi(v, &flags->runs) && flags->runs > 0) continue;
    if ((v = value("dir"))) {
      flags->dir = v;
      continue;
    }
    std::fprintf(stderr,
                 "warmledger-goods-bench: bad flag '%s'\n"
                 "usage: warmledger-goods-bench [--gifts=N] [--households=1..%zu] [--runs=N] "
                 "[--dir=PATH]\n",
                 arg.c_str(), kHandoutLinesMax);
    return false;
  }
  return true;
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// Submits `ops` in calls of at most kBatchOpsMax; exits on any failure.
std::vector<OpResult> MustSubmit(Ledger& ledger, std::vector<Operation> ops) {
  std::vector<OpResult> all;
  for (size_t start = 0; start < ops.size(); start += kBatchOpsMax) {
    const size_t end = std::min(ops.size(), start + kBatchOpsMax);
    std::vector<Operation> batch(std::make_move_iterator(ops.begin() + start),
                                 std::make_move_iterator(ops.begin() + end));
    for (OpResult& r : ledger.Submit(std::move(batch))) {
      if (!r.status.ok()) {
        std::fprintf(stderr, "warmledger-goods-bench: %s\n", r.status.ToString().c_str());
        std::exit(1);
      }
      all.push_back(std::move(r));
    }
  }
  return all;
}

uint64_t next_id = 0;
Operation Op(OpBody body) { return Operation{absl::StrCat("b-", ++next_id), false, std::move(body)}; }

int Run(const Flags& flags) {
  const std::string dir =
      flags.dir.empty() ? absl::StrCat(std::filesystem::temp_directory_path().string(),
                                       "/warmledger-goods-bench-", getpid())
                        : flags.dir;
  std::filesystem::remove_all(dir);
  SystemClock clock;
  auto opened = Ledger::Open(LedgerOptions{.path = dir, .clock = &clock});
  if (!opened.ok()) {
    std::fprintf(stderr, "warmledger-goods-bench: %s\n", opened.status().ToString().c_str());
    return 1;
  }
  std::unique_ptr<Ledger> ledger = std::move(opened).value();

  // The district: a fund, a supplier, a warehouse, households, donors.
  std::vector<Operation> setup;
  setup.push_back(Op(OpenAccountOp{"fund/general", AccountKind::kFund, "CNY"}));
  setup.push_back(Op(OpenAccountOp{"supplier/daily-goods", AccountKind::kSupplier}));
  setup.push_back(Op(ItemOp{"item:daily-box", "Box of daily necessities", "box"}));
  setup.push_back(Op(OpenAccountOp{"stock/warehouse", AccountKind::kStock, "item:daily-box"}));
  std::vector<std::string> households;
  for (uint64_t i = 0; i < flags.households; ++i) {
    OpenAccountOp op{absl::StrCat("recipient/h-", i), AccountKind::kRecipient};
    op.category = i % 2 == 0 ? "returning-resident" : "hardship";
    op.community = absl::StrCat("c-", i % 175);
    households.push_back(op.account);
    setup.push_back(Op(std::move(op)));
  }
  for (uint64_t i = 0; i < flags.gifts; ++i) {
    setup.push_back(Op(OpenAccountOp{absl::StrCat("donor/d-", i), AccountKind::kDonor}));
  }
  MustSubmit(*ledger, std::move(setup));

  std::vector<double> buy_ms, handout_ms, trace_ms, back_ms;
  uint64_t traced_lot = 0;
  size_t places = 0;
  uint64_t behind = 0;
  for (uint64_t run = 0; run < flags.runs; ++run) {
    // Fill the fund: one small gift per donor (1.00 to 99.99 yuan).
    std::vector<Operation> gifts;
    int64_t raised = 0;
    for (uint64_t i = 0; i < flags.gifts; ++i) {
      DonationOp d;
      d.donor = absl::StrCat("donor/d-", i);
      d.to = "fund/general";
      d.asset = "CNY";
      d.amount = 100 + static_cast<int64_t>((i * 7919 + run) % 9900);
      raised += d.amount;
      gifts.push_back(Op(std::move(d)));
    }
    const std::vector<OpResult> given = MustSubmit(*ledger, std::move(gifts));
    traced_lot = given[given.size() / 2].seq;

    GoodsPurchaseOp buy{"fund/general", "supplier/daily-goods", "CNY", raised, "stock/warehouse",
                        "item:daily-box", static_cast<int64_t>(flags.households), "",
                        0, "bench"};
    auto start = Clock::now();
    MustSubmit(*ledger, {Op(buy)});
    buy_ms.push_back(bench::Millis(static_cast<double>(bench::NanosSince(start))));

    HandoutOp handout{"stock/warehouse", "item:daily-box", {}, "bench", ""};
    for (const std::string& h : households) handout.lines.push_back({h, 1});
    start = Clock::now();
    const uint64_t handout_seq = MustSubmit(*ledger, {Op(std::move(handout))})[0].seq;
    handout_ms.push_back(bench::Millis(static_cast<double>(bench::NanosSince(start))));

    start = Clock::now();
    absl::StatusOr<LotTrace> trace = ledger->TraceLot(traced_lot);
    trace_ms.push_back(bench::Millis(static_cast<double>(bench::NanosSince(start))));
    if (!trace.ok() || trace->conversions.size() != 1) {
      std::fprintf(stderr, "warmledger-goods-bench: trace of lot %llu: %s\n",
                   static_cast<unsigned long long>(traced_lot), trace.status().ToString().c_str());
      return 1;
    }
    places = trace->conversions[0].places.size();

    start = Clock::now();
    absl::StatusOr<EntryTracePage> back = ledger->TraceEntry(handout_seq, 0, flags.households);
    back_ms.push_back(bench::Millis(static_cast<double>(bench::NanosSince(start))));
    if (!back.ok()) {
      std::fprintf(stderr, "warmledger-goods-bench: %s\n", back.status().ToString().c_str());
      return 1;
    }
    behind = back->sources.empty() ? 0 : back->sources[0].behind_count;
  }

  const uint64_t entries = ledger->Head().seq;
  ledger.reset();
  auto start = Clock::now();
  opened = Ledger::Open(LedgerOptions{.path = dir, .clock = &clock});
  const double reopen_s = bench::SecondsSince(start);
  if (!opened.ok()) {
    std::fprintf(stderr, "warmledger-goods-bench: reopen: %s\n",
                 opened.status().ToString().c_str());
    return 1;
  }
  opened->reset();
  if (flags.dir.empty()) std::filesystem::remove_all(dir);

  bench::JsonLine json;
  json.Integer("gifts_per_purchase", flags.gifts);
  json.Integer("households", flags.households);
  json.Integer("runs", flags.runs);
  json.Number("purchase_ms_median", Median(buy_ms), 1);
  json.Number("handout_ms_median", Median(handout_ms), 1);
  json.Number("donor_trace_ms_median", Median(trace_ms), 2);
  json.Integer("donor_trace_places", places);
  json.Number("handout_backward_trace_ms_median", Median(back_ms), 1);
  json.Integer("gifts_behind_the_boxes", behind);
  json.Integer("entries", entries);
  json.Number("reopen_replay_s", reopen_s, 2);
  json.Number("peak_rss_mib", bench::PeakRssMib(), 0);
  std::printf("%s\n", json.Done().c_str());
  std::fprintf(stderr,
               "%s", Format("purchase paid by %llu gifts: %.1f ms; handout to %llu: %.1f ms; "
                            "donor trace: %.2f ms; backward trace of the handout: %.1f ms\n",
                            static_cast<unsigned long long>(flags.gifts), Median(buy_ms),
                            static_cast<unsigned long long>(flags.households),
                            Median(handout_ms), Median(trace_ms), Median(back_ms))
                         .c_str());
  return 0;
}

}  // namespace
}  // namespace warmledger

int main(int argc, char** argv) {
  warmledger::Flags flags;
  if (!warmledger::ParseFlags(argc, argv, &flags)) return 2;
  return warmledger::Run(flags);
}

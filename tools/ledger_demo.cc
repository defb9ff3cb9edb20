// warmledger-ledger-demo: loads a small district into an embedded ledger
// through the engine API and shows what a donor, the office and an auditor can
// ask of it. A second run reuses the data: every operation carries a fixed
// client id, so the load is idempotent.
//
// Usage: warmledger-ledger-demo [--data_dir=DIR] [--donations=N]
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "ledger/ledger.h"
#include "ledger/sha256.h"

namespace wl = warmledger;

namespace {

std::string Yuan(int64_t fen) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%s%lld.%02lld", fen < 0 ? "-" : "",
                static_cast<long long>(std::llabs(fen) / 100),
                static_cast<long long>(std::llabs(fen) % 100));
  return buf;
}

void Fail(const std::string& what, const absl::Status& s) {
  std::fprintf(stderr, "ledger-demo: %s: %s\n", what.c_str(), s.ToString().c_str());
  std::exit(1);
}

void SubmitAll(wl::Ledger& ledger, std::vector<wl::Operation> ops) {
  for (size_t start = 0; start < ops.size(); start += 4096) {
    size_t end = std::min(ops.size(), start + 4096);
    std::vector<wl::Operation> batch(ops.begin() + start, ops.begin() + end);
    auto results = ledger.Submit(std::move(batch));
    for (size_t i = 0; i < results.size(); ++i) {
      if (!results[i].status.ok()) Fail(ops[start + i].client_id, results[i].status);
    }
  }
}

wl::Operation Open(const std::string& id, wl::AccountKind kind, const std::string& asset,
                   const std::string& name, uint32_t flags = 0) {
  return {"demo/open/" + id, false, wl::OpenAccountOp{id, kind, asset, flags, name}};
}

}  // namespace

int main(int argc, char** argv) {
  std::string data_dir = "data/ledger-demo";
  int64_t donations = 2000;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg.rfind("--data_dir=", 0) == 0) {
      data_dir = arg.substr(11);
    } else if (arg.rfind("--donations=", 0) == 0) {
      donations = std::atoll(arg.c_str() + 12);
      if (donations < 1 || donations > 1'000'000) {
        std::fprintf(stderr, "--donations: must be 1..1000000\n");
        return 2;
      }
    } else {
      std::fprintf(stderr, "usage: %s [--data_dir=DIR] [--donations=N]\n", argv[0]);
      return 2;
    }
  }
  auto opened = wl::Ledger::Open({.path = data_dir});
  if (!opened.ok()) Fail("open " + data_dir, opened.status());
  wl::Ledger& ledger = **opened;
  std::printf("ledger at %s: %llu entries on open (verified and replayed)\n", data_dir.c_str(),
              static_cast<unsigned long long>(ledger.Head().seq));

  using K = wl::AccountKind;
  std::vector<wl::Operation> ops = {
      Open("fund/general", K::kFund, "CNY", "Warm Erqi general charity fund"),
      Open("fund/education", K::kFund, "CNY", "Education fund", wl::kAccountRestricted),
      Open("project/elderly-home", K::kProject, "CNY", "A home for the elderly"),
      Open("project/one-bench", K::kProject, "CNY", "One heart, one bench"),
      Open("donor/medical-equipment-co", K::kDonor, "", "A medical-equipment company"),
      Open("supplier/house-repair", K::kSupplier, "", "House repair contractor"),
      Open("supplier/bench-maker", K::kSupplier, "", "Bench maker"),
  };
  for (int i = 1; i <= 20; ++i) {
    ops.push_back(Open("recipient/r" + std::to_string(i), K::kRecipient, "CNY",
                       "recipient (pseudonymous)"));
  }
  SubmitAll(ledger, std::move(ops));

  // 99 Giving Day: many small online gifts into the general fund.
  ops.clear();
  for (int64_t i = 1; i <= donations; ++i) {
    std::string donor = "donor/99-" + std::to_string(i);
    ops.push_back({"demo/open/" + donor, true, wl::OpenAccountOp{donor, K::kDonor, "", 0, ""}});
    ops.push_back({"demo/99/" + std::to_string(i), false,
                   wl::DonationOp{donor, "fund/general", "CNY", 1000 + (i * 7919) % 20000,
                                  wl::DonationChannel::kOnlineCampaign, 0, "99 Giving Day"}});
  }
  ops.push_back({"demo/bench-gift", false,
                 wl::DonationOp{"donor/medical-equipment-co", "project/one-bench", "CNY",
                                500000, wl::DonationChannel::kCompanyGift, 0,
                                "benches for two courtyards"}});
  SubmitAll(ledger, std::move(ops));

  // The office plans and spends.
  ops = {
      {"demo/alloc-elderly", false,
       wl::AllocationOp{"fund/general", "project/elderly-home", "CNY", 2'500'000,
                        "repair 5 old people's houses"}},
      {"demo/alloc-edu", false,
       wl::AllocationOp{"fund/general", "fund/education", "CNY", 1'000'000, "scholarships"}},
      {"demo/pay-repair", false,
       wl::DisbursementOp{"project/elderly-home", "supplier/house-repair", "CNY", 2'000'000,
                          "house repairs, 4 houses"}},
      {"demo/pay-bench", false,
       wl::DisbursementOp{"project/one-bench", "supplier/bench-maker", "CNY", 500000,
                          "benches in two courtyards"}},
  };
  for (int i = 1; i <= 20; ++i) {
    ops.push_back({"demo/aid/" + std::to_string(i), false,
                   wl::DisbursementOp{"fund/education", "recipient/r" + std::to_string(i),
                                      "CNY", 50000, "scholarship"}});
  }
  SubmitAll(ledger, std::move(ops));

  wl::LedgerHead head = ledger.Head();
  std::printf("head: seq %llu hash %s\n", static_cast<unsigned long long>(head.seq),
              wl::HashToHex(head.hash).c_str());
  for (const char* account : {"fund/general", "fund/education", "project/elderly-home"}) {
    auto info = ledger.GetAccount(account);
    if (!info.ok()) Fail(account, info.status());
    std::printf("%-22s holds %s yuan in %llu lot slices\n", account,
                Yuan(info->balances.empty() ? 0 : info->balances[0].amount).c_str(),
                static_cast<unsigned long long>(info->slice_count));
  }

  // A donor asks: where did my money go?
  auto statement = ledger.DonorStatement("donor/99-1", 0, 10);
  if (!statement.ok()) Fail("statement", statement.status());
  for (const wl::LotTrace& t : statement->lots) {
    std::printf("\ndonor/99-1 gave %s yuan (lot %llu):\n", Yuan(t.lot.amount).c_str(),
                static_cast<unsigned long long>(t.lot.lot));
    for (const wl::TraceHop& h : t.hops) {
      std::printf("  entry %-6llu %-13s %s -> %s  %s yuan\n",
                  static_cast<unsigned long long>(h.seq), wl::EntryTypeName(h.type),
                  h.from.c_str(), h.to.c_str(), Yuan(h.amount).c_str());
    }
    for (const wl::TracePlace& p : t.reached) {
      std::printf("  reached %s: %s yuan\n", p.account.c_str(), Yuan(p.amount).c_str());
    }
    for (const wl::TracePlace& p : t.held) {
      std::printf("  still held in %s: %s yuan\n", p.account.c_str(), Yuan(p.amount).c_str());
    }
  }

  // The office asks: who paid for the house repairs?
  auto repair = ledger.SubmitOne({"demo/pay-repair", false,
                                  wl::DisbursementOp{"project/elderly-home",
                                                     "supplier/house-repair", "CNY", 2'000'000,
                                                     "house repairs, 4 houses"}});
  if (!repair.status.ok()) Fail("repair lookup", repair.status);
  auto backward = ledger.TraceEntry(repair.seq, 0, 5);
  if (!backward.ok()) Fail("backward trace", backward.status());
  std::printf("\nentry %llu (house repairs, %s yuan) was paid by %llu lots; the first %zu:\n",
              static_cast<unsigned long long>(repair.seq), Yuan(backward->outflow).c_str(),
              static_cast<unsigned long long>(backward->total_count), backward->sources.size());
  for (const wl::TraceSource& s : backward->sources) {
    std::printf("  lot %-6llu %-12s %s yuan\n", static_cast<unsigned long long>(s.lot),
                s.anonymous ? "(anonymous)" : s.donor.c_str(), Yuan(s.amount).c_str());
  }

  absl::Status chain = ledger.VerifyChain();
  auto rebuilt = ledger.RebuildStateDigest();
  if (!chain.ok()) Fail("verify chain", chain);
  if (!rebuilt.ok()) Fail("rebuild", rebuilt.status());
  std::printf("\nchain verifies; derived state rebuilt from the entries %s the live state\n",
              *rebuilt == ledger.StateDigest() ? "equals" : "DIFFERS FROM");
  return *rebuilt == ledger.StateDigest() ? 0 : 1;
}

// The donations tests/crash_writer.cc submits and tests/crash_test.cc
// checks: donation n's content is a pure function of n, so the test can
// resubmit what the writer was told is durable and expect a duplicate.
#ifndef WARMLEDGER_TESTS_CRASH_DONATION_H_
#define WARMLEDGER_TESTS_CRASH_DONATION_H_

#include <cstdint>
#include <string>
#include <utility>

#include "ledger/ledger.h"
#include "ledger/types.h"

namespace warmledger::crash {

constexpr char kDonor[] = "donor/crash";
constexpr char kFund[] = "fund/crash";

// Donation n: client id "don-<n>".
inline Operation CrashDonation(uint64_t n) {
  DonationOp d;
  d.donor = kDonor;
  d.to = kFund;
  d.asset = "CNY";
  d.amount = 1 + static_cast<int64_t>(n % 9973);
  d.channel = DonationChannel::kCounter;
  d.memo = "crash " + std::to_string(n);
  Operation op;
  op.client_id = "don-" + std::to_string(n);
  op.body = std::move(d);
  return op;
}

}  // namespace warmledger::crash

#endif  // WARMLEDGER_TESTS_CRASH_DONATION_H_

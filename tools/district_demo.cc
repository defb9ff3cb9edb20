// warmledger-demo: loads a realistic demo district ("Warm Erqi", DOMAIN.md)
// into a running warmledger server through its gRPC API, then shows where
// some gifts went and which CLI commands to try.
//
// Usage:
//   warmledger-demo [--server=HOST:PORT] [--token=TOKEN] [--scale=F]
//                   [--seed=N] [--deadline_ms=N]
//
//   --server=HOST:PORT  the server (default 127.0.0.1:7420); plaintext gRPC
//   --token=TOKEN       bearer token of a clerk or admin (not needed in --dev)
//   --scale=F           decimal, 0.0001..10 (default 1): scales the number of
//                       recipients, donations and the money that follows them.
//                       Parsed as parts per 10,000; no floating point.
//   --seed=N            seed of the generator (default 1)
//   --deadline_ms=N     deadline of every call (default 30000)
//
// What it loads, in this order (so that oldest-first provenance gives every
// kind of trace): accounts (three funds, three projects, four suppliers, one
// expense), 16,000 recipients, the 99 Giving Day (200,000 online gifts
// averaging 70.65 yuan: 14.13 million yuan), "One heart, one bench" (a
// medical-equipment company's 5,000 yuan), "A home for the elderly" (250,000
// yuan from 25 donors), disaster relief (105 million yuan from 2,000 donors),
// allocations from the general fund to the education and scholarship funds,
// and then the spending: benches, five house repairs, scholarships and
// education aid to children, cash aid by category, meal-aid payments,
// management costs, disaster cash aid and relief goods. Then the checkout
// (through SubmitCheckoutBatch): five stores (the charity supermarket and four
// Warm Mall shops, merchant accounts opened with the other accounts), 20,000
// purchases over a year (1.72 million yuan of sales, 34,400 yuan of 2%
// contributions to the general fund; a third with a member), refunds of one
// purchase in 50 (full, half, or two quarters), 1,260 aid vouchers of 1,000
// yuan (1.26 million yuan) from the general fund to recipients, redeemed in
// full, in part or not yet at the supermarket (some also at the Warm Mall
// grocery), and one unused voucher voided. Before the checkout, the goods
// (through the Goods operations of SubmitBatch): a catalogue of three items,
// a pharmaceutical company's gift in kind of 2,000 bottles of disinfectant
// (appraised, with an expiry), 700 boxes of daily necessities bought from the
// general fund (paid by the many small 99 Giving Day gifts it still holds)
// and handed out in one handout to 700 households in hardship, with two
// bottles of disinfectant each, and a farm's gift of 5,000 kg of vegetables:
// 200 kg of it spoiled and written off, the rest sold at a low price to the
// charity supermarket, the proceeds going into the general fund. Counts and
// the money driven by them scale with --scale; the two named projects and the
// two gifts in kind keep their real amounts.
//
// Aid supervision: right after the recipients are registered, before any aid
// is paid, the office sets its aid rules (Aid.SetAidRule through SubmitBatch):
// cash aid from the general fund and disaster cash aid at most once a month
// per person, education aid and scholarships once a year, a box of daily
// necessities once a month, and at most two supermarket vouchers a quarter.
// The plan counts every aid it gives against them and never breaks one. At
// the end, a second cash aid this month to one person is refused, naming the
// earlier entry, and then paid with an override reason (Ledger.Disburse); the
// demo checks both answers, the rules in force (ListAidRules) and the office
// and public aid reports (GetAidReport; the public one asked without a token
// must leave out every cell of fewer than 5 people).
//
// Determinism: every operation and client id ("demo/<seed>/<kind>/<n>")
// follows from the seed, the scale and the server's registry alone, and
// recipients and gifts are generated in prefix-stable blocks, so a second run
// is answered entirely with duplicate=true and writes nothing. The plan keeps
// its own model of every holding account and never spends more than it
// holds. Before writing, the server's fund summaries must be a prefix of the
// plan (empty, a partial or a complete earlier run of the same seed and
// scale); a ledger holding another district is refused. After the load the
// summaries, and the settlement of every demo store, must equal the plan.
// The contributions are planned at the server's default rate (2%, half up);
// a server configured otherwise is refused at the first purchase.
//
// Output: progress lines (about every 10%), a summary, the fund summaries,
// the store settlements, the goods catalogue, the aid rules, the refused and
// overridden cash aid, the aid reports, and a few trace codes with the
// commands to follow them.
// Exit status: 0 success, 1 a failure (a rejected operation prints its index,
// code and message), 2 a usage error.
//
// Money is int64 fen throughout; floating point is used only for timing.

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include "tools/bench_util.h"
#include "tools/rng.h"
#include "warmledger/v1/ledger.grpc.pb.h"

namespace warmledger::demo {
namespace {

namespace v1 = ::warmledger::v1;
using SteadyClock = std::chrono::steady_clock;

// ---- Bounds and constants. ----

// Scale is a rational: parts per 10,000 (1 = 0.0001, 10,000 = 1).
inline constexpr int64_t kScaleDenominator = 10'000;
inline constexpr int kScaleFractionDigitsMax = 4;
inline constexpr int64_t kScalePartsMax = 10 * kScaleDenominator;
inline constexpr int64_t kDeadlineMsMax = 3'600'000;
// Operations per SubmitBatch call: the API's maximum (a donation with
// create_donor writes two entries, and one batch must fit the engine's 8,192).
inline constexpr size_t kBatchOpsMax = 4096;
// Small loads are cut into at least this many batches (of at least
// kBatchOpsMin operations) so that progress shows.
inline constexpr size_t kProgressBatchesMin = 20;
inline constexpr size_t kBatchOpsMin = 64;
inline constexpr int kMessageBytesMax = 16 * 1024 * 1024;
// Retries of one call on UNAVAILABLE, RESOURCE_EXHAUSTED or DEADLINE_EXCEEDED
// (all safe: client ids are idempotent), with doubling back-off.
inline constexpr int kRetriesMax = 8;
inline constexpr auto kBackoffMin = std::chrono::milliseconds(100);
inline constexpr auto kBackoffMax = std::chrono::milliseconds(5000);
// Lots among which the demo picks a gift that paid for boxes to show.
inline constexpr uint64_t kBoxPayersLookedAtMax = 100;
// Trace codes printed at the end: five gifts of money, the two gifts in
// kind and a 99 Giving Day gift that paid for boxes of daily necessities.
inline constexpr size_t kShownTracesMax = 8;
// Redraws of a recipient whose ID number was already drawn.
inline constexpr int kIdNumberDrawsMax = 10'000;

inline constexpr char kAsset[] = "CNY";
inline constexpr char kDefaultServer[] = "127.0.0.1:7420";

// Base numbers of the district at scale 1 (DOMAIN.md).
inline constexpr int64_t kRecipientsCount = 16'000;
inline constexpr int64_t kGivingDayDonationsCount = 200'000;
inline constexpr int64_t kGivingDayMeanFen = 7'065;  // 14.13 million yuan / 200,000
inline constexpr size_t kGivingDayBlockCount = 100;  // each block sums exactly
inline constexpr int64_t kReliefDonationsCount = 2'000;
inline constexpr int64_t kReliefMeanFen = 5'250'000;  // 105 million yuan / 2,000
inline constexpr size_t kReliefBlockCount = 10;
inline constexpr int64_t kMealsCount = 247'000;      // meals a year on meal-aid cards
inline constexpr int64_t kMealSubsidyFen = 800;      // per meal
// Fixed projects, not scaled.
inline constexpr int64_t kBenchGiftFen = 500'000;          // 5,000 yuan
inline constexpr int64_t kElderlyHomeFen = 25'000'000;     // 250,000 yuan
inline constexpr size_t kElderlyHomeDonorsCount = 25;
inline constexpr int64_t kHouseRepairFen[] = {5'230'000, 4'870'000, 5'115'000, 4'960'000,
                                              4'825'000};
static_assert(kHouseRepairFen[0] + kHouseRepairFen[1] + kHouseRepairFen[2] + kHouseRepairFen[3] +
                  kHouseRepairFen[4] ==
              kElderlyHomeFen);
// Shares of the general fund, in basis points of what the 99 Giving Day raised.
inline constexpr int64_t kEducationAllocationBp = 1'500;
inline constexpr int64_t kScholarshipAllocationBp = 1'500;
inline constexpr int64_t kAdministrationBp = 100;  // management costs, paid quarterly
inline constexpr int64_t kReserveBp = 500;         // kept in the general fund
static_assert(kEducationAllocationBp + kScholarshipAllocationBp + kAdministrationBp + kReserveBp <
              10'000);
inline constexpr int64_t kScholarshipFen = 200'000;    // 2,000 yuan a student
inline constexpr int64_t kEducationAidFen = 100'000;   // 1,000 yuan: tuition and books
inline constexpr int64_t kReliefCashAidFen = 100'000;  // 1,000 yuan a disaster victim
inline constexpr int64_t kReliefGoodsBp = 6'000;       // of what relief raised
inline constexpr int kReliefGoodsPurchasesCount = 10;
// Checkout (DOMAIN.md): 2% of each sale goes to the general fund; ~34,400
// yuan of contributions means ~1.72 million yuan of sales: 20,000 purchases
// averaging 86 yuan. The demo plans with the server's default rate and
// checks every answer against it.
inline constexpr int64_t kPurchasesCount = 20'000;
inline constexpr int64_t kPurchaseMeanFen = 8'600;
inline constexpr size_t kPurchaseBlockCount = 100;  // each block sums exactly
inline constexpr int64_t kContributionRateBp = 200;
// One purchase in this many is refunded (alternately in full and in half);
// one in kTwoRefundsEvery of those gets two partial refunds instead.
inline constexpr size_t kRefundEvery = 50;
inline constexpr size_t kTwoRefundsEvery = 10;
// Aid vouchers: 1.26 million yuan in vouchers of 1,000 yuan (a household's
// supermarket aid for a year).
inline constexpr int64_t kVouchersCount = 1'260;
inline constexpr int64_t kVoucherFaceFen = 100'000;
// Far ahead, so that a rerun, whenever it happens, asks for exactly the same
// vouchers (an expiry derived from the clock would differ, and the server
// would refuse the retry as another voucher under the same client id):
// 2099-12-31T00:00:00+08:00.
inline constexpr int64_t kVoucherExpiresUs = 4'102'329'600'000'000;
// Goods (DOMAIN.md). A box of daily necessities costs 150 yuan; 700 are
// bought (scaled, and never more than the households in hardship or than the
// general fund can pay) and each household gets one, and two bottles of the
// gifted disinfectant. The gifts in kind are not scaled.
inline constexpr int64_t kBoxHouseholdsCount = 700;
inline constexpr int64_t kBoxPriceFen = 15'000;
inline constexpr int64_t kDisinfectantBottles = 2'000;
inline constexpr int64_t kDisinfectantBottleValueFen = 1'250;  // appraised, 12.50 yuan
inline constexpr int64_t kDisinfectantPerHousehold = 2;
static_assert(kBoxHouseholdsCount * kDisinfectantPerHousehold <= kDisinfectantBottles);
inline constexpr int64_t kVegetablesKg = 5'000;
inline constexpr int64_t kVegetablesSpoiledKg = 200;
inline constexpr int64_t kVegetablePriceFen = 100;  // 1 yuan a kg: a low price, for charity
// Fixed and far ahead, like the vouchers' expiry, so that a rerun asks for
// exactly the same gift: 2099-12-31T00:00:00+08:00.
inline constexpr int64_t kDisinfectantExpiresUs = 4'102'329'600'000'000;
// The aid rules the office sets before paying any aid (do not change their
// client ids' numbering: rule n is "demo/<seed>/aid-rule/<n>"). The plan keeps
// to them; the one override at the end breaks "cash-aid" on purpose.
struct AidRulePlan {
  const char* aid;
  v1::EntryType type;
  const char* source;
  const char* asset;
  uint32_t max_count;
  v1::AidPeriod period;
  const char* memo;
};
inline constexpr AidRulePlan kAidRules[] = {
    {"cash-aid", v1::DISBURSEMENT, "fund/general", "CNY", 1, v1::MONTH,
     "cash aid by category: once a month per person"},
    {"relief-aid", v1::DISBURSEMENT, "project/disaster-relief", "CNY", 1, v1::MONTH,
     "disaster cash aid: once a month per person"},
    {"education-aid", v1::DISBURSEMENT, "fund/education", "CNY", 1, v1::YEAR,
     "tuition and books: once a year per child"},
    {"scholarship", v1::DISBURSEMENT, "fund/scholarship", "CNY", 1, v1::YEAR,
     "one scholarship a year per student"},
    {"daily-box", v1::HANDOUT, "stock/daily-necessities", "", 1, v1::MONTH,
     "one box of daily necessities a month per household"},
    {"supermarket-voucher", v1::VOUCHER_ISSUE, "fund/general", "CNY", 2, v1::QUARTER,
     "at most two supermarket vouchers a quarter per household"},
};
// The rule the demo breaks once, on purpose, with an override reason.
inline constexpr char kOverriddenAid[] = "cash-aid";
inline constexpr char kOverrideReason[] =
    "house fire: emergency second payment approved by the office director";
inline constexpr char kDisinfectant[] = "item:disinfectant";
inline constexpr char kDailyBox[] = "item:daily-box";
inline constexpr char kVegetables[] = "item:vegetables";

// The shops' own sale times are spread over one year from 2024-01-01T00:00
// China time (the ledger times are the server's).
inline constexpr int64_t kSalePeriodStartUs = 1'704'038'400'000'000;
inline constexpr int64_t kSalePeriodUs = 365LL * 86'400 * 1'000'000;
// Basket amounts at the till.
inline constexpr int64_t kBasketTableFen[] = {990,  1'550, 2'880, 3'600,  4'990,  6'800,
                                              8'800, 9'900, 12'800, 15'800, 19'900, 25'800};

// The one area code of every synthetic ID number: Erqi District, Zhengzhou.
inline constexpr char kAreaCode[] = "410103";

// Typical gifts; three in four donations come from the table, one in four is
// an odd amount whose range is chosen so the mean is the campaign's mean.
inline constexpr int64_t kGivingDayTableFen[] = {100,  500,  520,   990,   1000,  1000,
                                                 2000, 2000, 5000,  5000,  6600,  8800,
                                                 9900, 10000, 10000, 20000, 50000};
inline constexpr int64_t kReliefTableFen[] = {100'000,   200'000,   500'000,
                                              1'000'000, 1'000'000, 2'000'000,
                                              5'000'000, 10'000'000, 20'000'000};
inline constexpr int64_t kElderlyHomeTableFen[] = {100'000,   200'000,   500'000,  500'000,
                                                   1'000'000, 1'000'000, 2'000'000};

// ---- Small helpers. ----

using ::warmledger::bench::Format;

[[noreturn]] void Fail(const std::string& what) {
  std::fflush(stdout);
  std::fprintf(stderr, "warmledger-demo: %s\n", what.c_str());
  std::exit(1);
}

// A broken invariant of the plan itself: a bug in this program.
#define DEMO_CHECK(cond, what)                                              \
  do {                                                                      \
    if (!(cond)) Fail(std::string("internal error: ") + (what) + " (" #cond ")"); \
  } while (0)

// 1234567 -> "1,234,567".
std::string Grouped(uint64_t value) {
  std::string digits = std::to_string(value);
  std::string out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

// Fen as yuan: 141300000 -> "1,413,000.00".
std::string Yuan(int64_t fen) {
  const uint64_t magnitude =
      fen < 0 ? static_cast<uint64_t>(-(fen + 1)) + 1 : static_cast<uint64_t>(fen);
  return Format("%s%s.%02" PRIu64, fen < 0 ? "-" : "", Grouped(magnitude / 100).c_str(),
                magnitude % 100);
}

double SecondsSince(SteadyClock::time_point start) {
  return std::chrono::duration<double>(SteadyClock::now() - start).count();
}

const char* CodeName(int code) {
  static constexpr const char* kNames[] = {
      "OK",           "CANCELLED",         "UNKNOWN",        "INVALID_ARGUMENT",
      "DEADLINE_EXCEEDED", "NOT_FOUND",    "ALREADY_EXISTS", "PERMISSION_DENIED",
      "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE",
      "UNIMPLEMENTED", "INTERNAL",         "UNAVAILABLE",    "DATA_LOSS",
      "UNAUTHENTICATED"};
  if (code >= 0 && code < static_cast<int>(std::size(kNames))) return kNames[code];
  return "CODE_OUT_OF_RANGE";
}

bool Retryable(int code) {
  return code == grpc::StatusCode::UNAVAILABLE || code == grpc::StatusCode::RESOURCE_EXHAUSTED ||
         code == grpc::StatusCode::DEADLINE_EXCEEDED;
}

// An independent stream for (seed, stream, index): blocks of gifts and the
// recipient table each draw from their own stream, so a block's content does
// not depend on how many blocks there are.
class Rng : public Xoshiro256 {
 public:
  Rng(uint64_t seed, uint64_t stream, uint64_t index)
      : Xoshiro256(MixBits(MixBits(seed ^ MixBits(stream + 0x632be59bd9b4e019ull)) ^
                           MixBits(index + 0x8cb92ba72f3d8dd7ull))) {}
};

// Stream ids (do not renumber: they define the demo data of every seed).
enum Stream : uint64_t {
  kStreamRecipients = 1,
  kStreamGivingDay = 2,
  kStreamRelief = 3,
  kStreamElderlyHome = 4,
  kStreamLayout = 5,
  kStreamPurchases = 6,
  kStreamCheckout = 7,
};

// ---- Flags. ----

struct Flags {
  std::string server = kDefaultServer;
  std::string token;
  int64_t scale_parts = kScaleDenominator;  // parts per 10,000
  std::string scale_text = "1";
  uint64_t seed = 1;
  int64_t deadline_ms = 30'000;
};

constexpr char kUsage[] =
    "usage: warmledger-demo [--server=HOST:PORT (default 127.0.0.1:7420)] [--token=TOKEN]\n"
    "                       [--scale=F (0.0001..10, default 1)] [--seed=N (default 1)]\n"
    "                       [--deadline_ms=N (default 30000)]\n";

[[noreturn]] void UsageError(const std::string& what) {
  std::fprintf(stderr, "warmledger-demo: %s\n%s", what.c_str(), kUsage);
  std::exit(2);
}

std::optional<uint64_t> ParseUnsigned(std::string_view text) {
  uint64_t value = 0;
  if (text.empty()) return std::nullopt;
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return value;
}

// "1" -> 10000, "0.01" -> 100, "2.5" -> 25000; at most four significant
// fraction digits (trailing zeros beyond them are fine).
std::optional<int64_t> ParseScaleParts(std::string_view text) {
  const size_t dot = text.find('.');
  std::string_view whole = text.substr(0, dot);
  std::string_view fraction = dot == std::string_view::npos ? "" : text.substr(dot + 1);
  if (whole.empty() && fraction.empty()) return std::nullopt;
  if (whole.size() > 6) return std::nullopt;
  for (char c : whole) {
    if (c < '0' || c > '9') return std::nullopt;
  }
  for (char c : fraction) {
    if (c < '0' || c > '9') return std::nullopt;
  }
  while (fraction.size() > kScaleFractionDigitsMax && fraction.back() == '0') {
    fraction.remove_suffix(1);
  }
  if (fraction.size() > kScaleFractionDigitsMax) return std::nullopt;
  int64_t parts = 0;
  for (char c : whole) parts = parts * 10 + (c - '0');
  parts *= kScaleDenominator;
  int64_t unit = kScaleDenominator / 10;
  for (char c : fraction) {
    parts += (c - '0') * unit;
    unit /= 10;
  }
  return parts;
}

std::string ScaleText(int64_t parts) {
  std::string text = std::to_string(parts / kScaleDenominator);
  int64_t rest = parts % kScaleDenominator;
  if (rest == 0) return text;
  std::string fraction = Format("%04" PRId64, rest);
  while (fraction.back() == '0') fraction.pop_back();
  return text + "." + fraction;
}

Flags ParseFlags(int argc, char** argv) {
  Flags flags;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    const size_t eq = arg.find('=');
    const std::string_view name = arg.substr(0, eq);
    const std::string_view value = eq == std::string_view::npos ? "" : arg.substr(eq + 1);
    const bool has_value = eq != std::string_view::npos;
    if (name == "--help" || name == "-h") {
      std::printf("%s", kUsage);
      std::exit(0);
    } else if (name == "--server" && has_value) {
      if (value.empty()) UsageError("--server: empty");
      flags.server = std::string(value);
    } else if (name == "--token" && has_value) {
      for (char c : value) {
        if (c < 0x21 || c > 0x7e) UsageError("--token: printable ASCII without spaces only");
      }
      flags.token = std::string(value);
    } else if (name == "--scale" && has_value) {
      std::optional<int64_t> parts = ParseScaleParts(value);
      if (!parts || *parts < 1 || *parts > kScalePartsMax) {
        UsageError("--scale: a decimal from 0.0001 to 10 with at most 4 fraction digits");
      }
      flags.scale_parts = *parts;
      flags.scale_text = ScaleText(*parts);
    } else if (name == "--seed" && has_value) {
      std::optional<uint64_t> seed = ParseUnsigned(value);
      if (!seed) UsageError("--seed: an unsigned decimal integer");
      flags.seed = *seed;
    } else if (name == "--deadline_ms" && has_value) {
      std::optional<uint64_t> ms = ParseUnsigned(value);
      if (!ms || *ms < 1 || *ms > static_cast<uint64_t>(kDeadlineMsMax)) {
        UsageError("--deadline_ms: 1..3600000");
      }
      flags.deadline_ms = static_cast<int64_t>(*ms);
    } else {
      UsageError("unknown flag or missing value: " + std::string(arg));
    }
  }
  return flags;
}

// ---- Synthetic resident ID numbers. ----

// ISO 7064 MOD 11-2 check character of the first 17 digits.
char IdCheckCharacter(std::string_view body17) {
  static constexpr int kWeights[17] = {7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2};
  static constexpr char kCheck[] = "10X98765432";
  int sum = 0;
  for (size_t i = 0; i < 17; ++i) sum += (body17[i] - '0') * kWeights[i];
  return kCheck[sum % 11];
}

bool IsLeapYear(int year) { return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0; }

int DaysInMonth(int year, int month) {
  static constexpr int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return month == 2 && IsLeapYear(year) ? 29 : kDays[month - 1];
}

// ---- The district's tables, learned from GetRegistry. ----

enum class AgeClass { kChild, kAdult, kElderly };
enum class AidSource { kNone, kGeneralFund, kDisasterRelief };

// What the demo does for the people of one configured category. The codes
// are configured on the server, so the kind is recognised from the code and
// name; an unrecognised category gets modest cash aid.
struct CategoryPlan {
  std::string code;
  std::string name;
  AgeClass age = AgeClass::kAdult;
  AidSource source = AidSource::kGeneralFund;
  int64_t cash_aid_fen = 30'000;
  int64_t weight = 5;
  bool female = false;
  bool student = false;
  std::string purpose = "cash aid";
};

std::string Lower(std::string text) {
  for (char& c : text) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return text;
}

CategoryPlan PlanCategory(const v1::Code& code) {
  CategoryPlan plan;
  plan.code = code.code();
  plan.name = code.name();
  const std::string text = Lower(code.code() + " " + code.name());
  auto has = [&text](std::initializer_list<const char*> words) {
    for (const char* word : words) {
      if (text.find(word) != std::string::npos) return true;
    }
    return false;
  };
  if (has({"marginal", "near the subsistence", "边缘"})) {
    plan.cash_aid_fen = 30'000, plan.weight = 10;
    plan.purpose = "cash aid to a household near the subsistence line";
  } else if (has({"dibao", "subsist", "minimum living", "低保"})) {
    plan.cash_aid_fen = 50'000, plan.weight = 25;
    plan.purpose = "cash aid to a subsistence-allowance household";
  } else if (has({"veteran", "youfu", "martyr", "military", "优抚"})) {
    plan.cash_aid_fen = 80'000, plan.weight = 5;
    plan.purpose = "special care for a veteran's family";
  } else if (has({"child", "student", "orphan", "kid", "youth", "ertong", "儿童", "学生"})) {
    plan.age = AgeClass::kChild, plan.source = AidSource::kNone, plan.cash_aid_fen = 0;
    plan.weight = 10, plan.student = true;
    plan.purpose = "scholarship";
  } else if (has({"disaster", "victim", "flood", "zaimin", "灾"})) {
    plan.source = AidSource::kDisasterRelief, plan.cash_aid_fen = kReliefCashAidFen;
    plan.weight = 6;
    plan.purpose = "disaster relief cash aid";
  } else if (has({"elder", "aged", "senior", "laonian", "old people", "old-age", "老"})) {
    plan.age = AgeClass::kElderly, plan.cash_aid_fen = 30'000, plan.weight = 20;
    plan.purpose = "cash aid to an elderly person in poverty";
  } else if (has({"disab", "canji", "handicap", "残"})) {
    plan.cash_aid_fen = 50'000, plan.weight = 10;
    plan.purpose = "cash aid to a disabled person";
  } else if (has({"women", "woman", "female", "funü", "funu", "妇"})) {
    plan.cash_aid_fen = 30'000, plan.weight = 8, plan.female = true;
    plan.purpose = "cash aid to a woman in hardship";
  } else if (has({"worker", "employee", "labor", "labour", "zhigong", "职工"})) {
    plan.cash_aid_fen = 40'000, plan.weight = 8;
    plan.purpose = "cash aid to a worker in hardship";
  } else if (has({"illness", "sick", "disease", "serious", "dabing", "大病"})) {
    plan.cash_aid_fen = 100'000, plan.weight = 5;
    plan.purpose = "cash aid for serious illness";
  } else if (has({"family", "planning", "jisheng", "计生"})) {
    plan.cash_aid_fen = 50'000, plan.weight = 3;
    plan.purpose = "cash aid to a family-planning special-hardship family";
  }
  return plan;
}

// ---- The plan: every operation, and a model of every holding account. ----

// Figures of a fund or project as ListFundSummaries reports them.
struct Figures {
  int64_t raised = 0;
  int64_t allocated_in = 0;
  int64_t allocated_out = 0;
  int64_t spent = 0;
  int64_t held = 0;
  uint64_t donations = 0;
  int64_t contributions = 0;      // purchase contributions in
  int64_t refund_reversals = 0;   // reversed by refunds, out
  int64_t vouchers_issued = 0;    // face values out
  int64_t vouchers_returned = 0;  // unredeemed value back in (the voided voucher)
  int64_t goods_bought = 0;       // paid for goods, out
  int64_t goods_sales = 0;        // proceeds of goods sold, in
};

// A goods item and what its stock must hold after the load.
struct ItemFigures {
  std::string name;
  std::string unit;
  std::string stock;
  int64_t in_stock = 0;
};

// A store's figures as GetStoreSettlement reports them for all time.
struct StoreFigures {
  uint64_t purchases = 0;
  int64_t purchase_amount = 0;
  int64_t contributions = 0;
  uint64_t refunds = 0;
  int64_t refund_amount = 0;
  int64_t reversals = 0;
  uint64_t redemptions = 0;
  int64_t redeemed = 0;
};

// The demo's stores: the office's charity supermarket and four Warm Mall
// shops. Vouchers are accepted at the first two.
struct StoreInfo {
  const char* account;
  const char* name;
  int64_t weight;  // share of the purchases
};
// The store that buys the vegetables (GoodsSale): the charity supermarket.
inline constexpr char kGoodsBuyer[] = "store/charity-supermarket";
inline constexpr StoreInfo kStores[] = {
    {"store/charity-supermarket", "Warm Erqi charity supermarket", 60},
    {"store/warm-mall-grocery", "Warm Mall: grocery", 15},
    {"store/warm-mall-household", "Warm Mall: household goods", 10},
    {"store/warm-mall-fresh", "Warm Mall: fresh vegetables and fruit", 10},
    {"store/warm-mall-pharmacy", "Warm Mall: pharmacy", 5},
};

struct Recipient {
  std::string id_number;  // synthetic; sent once to RegisterRecipient, never printed
  size_t category = 0;
  size_t community = 0;
};

// One operation of a small phase; bulk donations are generated on the fly.
struct Op {
  enum class Kind { kOpen, kDonate, kAllocate, kDisburse };
  Kind kind = Kind::kOpen;
  std::string client_id;
  std::string account;  // open: the account; donate: the donor; else: from
  std::string to;       // donate, allocate, disburse (unless to_recipient)
  std::optional<size_t> to_recipient;  // disburse: index into the recipients
  v1::AccountKind open_kind = v1::ACCOUNT_KIND_UNSPECIFIED;
  std::string open_asset;
  bool restricted = false;
  std::string name;  // open: name; donate: donor name
  int64_t amount = 0;
  v1::DonationChannel channel = v1::CHANNEL_UNSPECIFIED;
  bool anonymous = false;
  std::string text;  // memo, reason or purpose
  std::string override_reason;  // disburse: despite an aid rule
};

// A donation whose trace is shown at the end.
struct ShownTrace {
  size_t op_index = 0;  // global
  std::string label;
  int64_t amount = 0;
  std::string trace_code;
  uint64_t lot = 0;
  std::string asset = kAsset;  // an item code for gifts in kind
};

// A named run of operations. `build` writes operation `index` (0-based within
// the phase) into a BatchOperation; `done` sees its result once it succeeded.
// A checkout phase sets `checkout` (SubmitCheckoutBatch) instead of `build`.
struct Phase {
  std::string name;
  size_t count = 0;
  std::function<void(size_t index, v1::BatchOperation* op)> build;
  std::function<void(size_t index, const v1::BatchResult& result)> done;
  std::function<void(size_t index, v1::CheckoutItem* item)> checkout;
  std::function<void(size_t index, const v1::CheckoutItemResult& result)> checkout_done;
};

void ToProto(const Op& op, const std::vector<std::string>& recipient_ids,
             v1::BatchOperation* out) {
  out->set_linked(false);
  switch (op.kind) {
    case Op::Kind::kOpen: {
      v1::OpenAccountRequest* r = out->mutable_open_account();
      r->set_client_id(op.client_id);
      r->set_account(op.account);
      r->set_kind(op.open_kind);
      r->set_asset(op.open_asset);
      r->set_restricted(op.restricted);
      r->set_name(op.name);
      break;
    }
    case Op::Kind::kDonate: {
      v1::DonateRequest* r = out->mutable_donate();
      r->set_client_id(op.client_id);
      r->set_donor(op.account);
      r->set_to(op.to);
      r->set_asset(kAsset);
      r->set_amount(op.amount);
      r->set_channel(op.channel);
      r->set_anonymous(op.anonymous);
      r->set_memo(op.text);
      r->set_create_donor(true);
      r->set_donor_name(op.name);
      break;
    }
    case Op::Kind::kAllocate: {
      v1::AllocateRequest* r = out->mutable_allocate();
      r->set_client_id(op.client_id);
      r->set_from(op.account);
      r->set_to(op.to);
      r->set_asset(kAsset);
      r->set_amount(op.amount);
      r->set_reason(op.text);
      break;
    }
    case Op::Kind::kDisburse: {
      v1::DisburseRequest* r = out->mutable_disburse();
      r->set_client_id(op.client_id);
      r->set_from(op.account);
      if (op.to_recipient) {
        const std::string& id = recipient_ids.at(*op.to_recipient);
        DEMO_CHECK(!id.empty(), "recipient id known before paying");
        r->set_to(id);
      } else {
        r->set_to(op.to);
      }
      r->set_asset(kAsset);
      r->set_amount(op.amount);
      r->set_purpose(op.text);
      r->set_override_reason(op.override_reason);
      break;
    }
  }
}

// No cap on what one gift gives back when a block's sum is settled.
inline constexpr int64_t kAmountUnbounded = INT64_MAX;

// Draws `count` gifts of one block that sum exactly to `total`. Three in
// four come from `table`; the rest are odd amounts whose range centres the
// mean on total / count; the difference left by chance is spread over the
// odd amounts first (so round gifts stay round), never taking a gift below
// `floor`.
std::vector<int64_t> BlockAmounts(Rng rng, size_t count, int64_t total,
                                  const int64_t* table, size_t table_count, int64_t floor) {
  DEMO_CHECK(count > 0 && total >= floor * static_cast<int64_t>(count), "block is fundable");
  int64_t table_sum = 0;
  for (size_t i = 0; i < table_count; ++i) table_sum += table[i];
  const int64_t table_mean = table_sum / static_cast<int64_t>(table_count);
  const int64_t mean = total / static_cast<int64_t>(count);
  const int64_t odd_mean = std::max(floor, 4 * mean - 3 * table_mean);
  const int64_t odd_max = 2 * odd_mean - floor;
  std::vector<int64_t> amounts(count);
  std::vector<size_t> odd;
  int64_t sum = 0;
  for (size_t i = 0; i < count; ++i) {
    if (rng.Below(4) == 0) {
      amounts[i] = rng.Between(floor, odd_max);
      odd.push_back(i);
    } else {
      amounts[i] = table[rng.Below(table_count)];
    }
    sum += amounts[i];
  }
  std::vector<size_t> all(count);
  for (size_t i = 0; i < count; ++i) all[i] = i;
  int64_t left = total - sum;
  for (const std::vector<size_t>* group : {&odd, &all}) {
    if (left == 0 || group->empty()) continue;
    const int64_t k = static_cast<int64_t>(group->size());
    if (left > 0) {
      for (size_t j = 0; j < group->size(); ++j) {
        amounts[(*group)[j]] += left / k + (static_cast<int64_t>(j) < left % k ? 1 : 0);
      }
      left = 0;
      continue;
    }
    // Take back an even share from each, at most down to the floor; then
    // whatever is still missing from each in turn.
    const int64_t share = (-left + k - 1) / k;
    for (int64_t cap : {share, kAmountUnbounded}) {
      for (size_t idx : *group) {
        const int64_t take = std::min({cap, amounts[idx] - floor, -left});
        if (take > 0) {
          amounts[idx] -= take;
          left += take;
        }
      }
    }
  }
  DEMO_CHECK(left == 0, "block sums to its total");
  return amounts;
}

// The first `count` gifts of a campaign made of blocks of `block_count`
// gifts summing to `block_total` each. Each block draws from its own stream,
// so a smaller scale loads a prefix of a larger one.
std::vector<int64_t> CampaignAmounts(uint64_t seed, Stream stream, size_t count,
                                     size_t block_count, int64_t block_total,
                                     const int64_t* table, size_t table_count, int64_t floor) {
  std::vector<int64_t> amounts;
  amounts.reserve(count);
  for (size_t block = 0; amounts.size() < count; ++block) {
    std::vector<int64_t> drawn = BlockAmounts(Rng(seed, stream, block), block_count, block_total,
                                              table, table_count, floor);
    for (int64_t a : drawn) {
      if (amounts.size() == count) break;
      amounts.push_back(a);
    }
  }
  return amounts;
}

// Builds the whole load from (seed, scale, registry) and keeps a model of every
// holding account; any plan that would overspend is a bug of this program.
class Plan {
 public:
  Plan(const Flags& flags, const v1::Registry& registry)
      : seed_(flags.seed), scale_parts_(flags.scale_parts) {
    for (const v1::Code& c : registry.categories()) categories_.push_back(PlanCategory(c));
    for (const v1::Code& c : registry.communities()) communities_.push_back(c);
    Build();
  }

  const std::vector<Phase>& phases() const { return phases_; }
  const std::map<std::string, Figures>& figures() const { return figures_; }
  std::vector<ShownTrace>& shown() { return shown_; }
  size_t total_ops() const {
    size_t total = 0;
    for (const Phase& p : phases_) total += p.count;
    return total;
  }
  // Counts for the summary.
  size_t recipients_count() const { return recipients_.size(); }
  size_t giving_day_count() const { return giving_day_.size(); }
  int64_t giving_day_amount(size_t i) const { return giving_day_.at(i); }
  int64_t giving_day_fen() const { return giving_day_fen_; }
  size_t anonymous_count() const { return anonymous_count_; }
  size_t relief_count() const { return relief_.size(); }
  int64_t relief_fen() const { return relief_fen_; }
  size_t donations_count() const { return donations_count_; }
  int64_t raised_fen() const { return raised_fen_; }
  size_t allocations_count() const { return allocations_count_; }
  size_t disbursements_count() const { return disbursements_count_; }
  int64_t disbursed_fen() const { return disbursed_fen_; }
  size_t scholarships_count() const { return scholarships_count_; }
  size_t cash_aid_count() const { return cash_aid_count_; }
  const std::vector<CategoryPlan>& categories() const { return categories_; }
  const std::map<std::string, StoreFigures>& stores() const { return stores_; }
  size_t purchases_count() const { return purchases_.size(); }
  int64_t sales_fen() const { return sales_fen_; }
  size_t members_count() const { return members_count_; }
  size_t refunds_count() const { return refunds_.size(); }
  size_t partial_refunds_count() const { return partial_refunds_count_; }
  size_t vouchers_count() const { return vouchers_.size(); }
  size_t redemptions_count() const { return redemptions_.size(); }
  const Figures& general() const { return figures_.at("fund/general"); }
  int64_t redeemed_fen() const { return redeemed_fen_; }
  std::optional<size_t> voided_voucher() const { return voided_; }
  const std::string& voucher_code(size_t v) const { return voucher_codes_.at(v); }
  // Goods.
  const std::map<std::string, ItemFigures>& items() const { return items_; }
  size_t box_households_count() const { return box_households_.size(); }
  int64_t goods_bought_fen() const { return general().goods_bought; }
  int64_t goods_sales_fen() const { return general().goods_sales; }
  uint64_t box_purchase_seq() const { return box_purchase_seq_; }
  // The 99 Giving Day gift that created `lot`, as an index into the
  // campaign, if it is one.
  std::optional<size_t> GivingDayGiftOfLot(uint64_t lot) const {
    auto it = std::lower_bound(giving_lots_.begin(), giving_lots_.end(), lot);
    if (it == giving_lots_.end() || *it != lot) return std::nullopt;
    return static_cast<size_t>(it - giving_lots_.begin());
  }
  // The 99 Giving Day phase (to ask again for one gift's trace code).
  const Phase& giving_day_phase() const { return phases_.at(giving_day_phase_); }
  uint64_t voucher_number(size_t v) const { return voucher_numbers_.at(v); }
  // Aid supervision: the disbursement that breaks kOverriddenAid on purpose
  // (with its override reason), if the plan could afford one, and the entry
  // of the earlier aid it breaks the rule with (known once loaded).
  const std::optional<Op>& aid_override() const { return aid_override_; }
  uint64_t earlier_aid_seq() const { return earlier_aid_seq_; }
  const std::vector<std::string>& recipient_ids() const { return recipient_ids_; }

 private:
  std::string Id(const std::string& kind, uint64_t n) const {
    return Format("demo/%" PRIu64 "/%s/%" PRIu64, seed_, kind.c_str(), n);
  }
  int64_t Scaled(int64_t base) const {
    return std::max<int64_t>(1, base * scale_parts_ / kScaleDenominator);
  }

  void Open(std::vector<Op>& ops, const std::string& account, v1::AccountKind kind,
            bool holding, bool restricted, const std::string& name) {
    Op op;
    op.kind = Op::Kind::kOpen;
    op.client_id = Format("demo/%" PRIu64 "/open/%s", seed_, account.c_str());
    op.account = account;
    op.open_kind = kind;
    op.open_asset = holding ? kAsset : "";
    op.restricted = restricted;
    op.name = name;
    if (holding) figures_[account];  // a holding account the summaries must show
    ops.push_back(std::move(op));
  }

  void Donated(const std::string& to, int64_t amount) {
    Figures& f = figures_.at(to);
    f.raised += amount;
    f.held += amount;
    f.donations += 1;
    raised_fen_ += amount;
    donations_count_ += 1;
  }

  Op Donation(const std::string& client_id, const std::string& donor, const std::string& name,
              const std::string& to, int64_t amount, v1::DonationChannel channel,
              const std::string& memo) {
    Donated(to, amount);
    Op op;
    op.kind = Op::Kind::kDonate;
    op.client_id = client_id;
    op.account = donor;
    op.name = name;
    op.to = to;
    op.amount = amount;
    op.channel = channel;
    op.text = memo;
    return op;
  }

  // Moves value out of `from` in the model; the caller checked CanSpend.
  void Spend(const std::string& from, int64_t amount) {
    Figures& f = figures_.at(from);
    DEMO_CHECK(amount > 0 && f.held >= amount, "never overspend " + from);
    f.held -= amount;
  }
  bool CanSpend(const std::string& from, int64_t amount) const {
    return figures_.at(from).held >= amount;
  }

  Op Allocation(const std::string& kind, const std::string& from, const std::string& to,
                int64_t amount, const std::string& reason) {
    Spend(from, amount);
    figures_.at(from).allocated_out += amount;
    Figures& t = figures_.at(to);
    t.allocated_in += amount;
    t.held += amount;
    allocations_count_ += 1;
    Op op;
    op.kind = Op::Kind::kAllocate;
    op.client_id = Id(kind, 1);
    op.account = from;
    op.to = to;
    op.amount = amount;
    op.text = reason;
    return op;
  }

  // A disbursement; to a recipient, it counts for the aid rules, which it
  // must keep unless it carries an override reason.
  Op Disbursement(const std::string& client_id, const std::string& from, const std::string& to,
                  std::optional<size_t> to_recipient, int64_t amount, const std::string& purpose,
                  const std::string& override_reason = "") {
    if (to_recipient) {
      CountAid(v1::DISBURSEMENT, from, kAsset, *to_recipient, !override_reason.empty());
    }
    Spend(from, amount);
    figures_.at(from).spent += amount;
    disbursements_count_ += 1;
    disbursed_fen_ += amount;
    Op op;
    op.kind = Op::Kind::kDisburse;
    op.client_id = client_id;
    op.account = from;
    op.to = to;
    op.to_recipient = to_recipient;
    op.amount = amount;
    op.text = purpose;
    op.override_reason = override_reason;
    return op;
  }

  // Whether one more aid of `type` from `source` in `asset` to `recipient`
  // keeps every aid rule. The whole load counts as one period: stricter than
  // the server, which counts calendar periods, so a load that crosses
  // midnight at the end of a month still keeps them.
  bool AidAllowed(v1::EntryType type, const std::string& source, const std::string& asset,
                  size_t recipient) const {
    for (size_t k = 0; k < std::size(kAidRules); ++k) {
      const AidRulePlan& rule = kAidRules[k];
      if (!AidRuleCounts(rule, type, source, asset)) continue;
      auto it = aid_given_.find({k, recipient});
      if (it != aid_given_.end() && it->second >= rule.max_count) return false;
    }
    return true;
  }
  void CountAid(v1::EntryType type, const std::string& source, const std::string& asset,
                size_t recipient, bool overridden = false) {
    DEMO_CHECK(overridden || AidAllowed(type, source, asset, recipient),
               "the plan keeps the aid rules: " + source);
    for (size_t k = 0; k < std::size(kAidRules); ++k) {
      if (AidRuleCounts(kAidRules[k], type, source, asset)) aid_given_[{k, recipient}] += 1;
    }
  }
  static bool AidRuleCounts(const AidRulePlan& rule, v1::EntryType type, const std::string& source,
                            const std::string& asset) {
    return rule.type == type && (rule.source[0] == '\0' || source == rule.source) &&
           (rule.asset[0] == '\0' || asset == rule.asset);
  }

  // A phase over a vector of fully planned operations.
  void AddPhase(const std::string& name, std::vector<Op> ops) {
    auto shared = std::make_shared<std::vector<Op>>(std::move(ops));
    Phase phase;
    phase.name = name;
    phase.count = shared->size();
    phase.build = [shared, this](size_t i, v1::BatchOperation* out) {
      ToProto((*shared)[i], recipient_ids_, out);
    };
    phases_.push_back(std::move(phase));
  }

  void PlanRecipients();
  void PlanAidRules();
  void PlanAidOverride(std::optional<size_t> recipient, int64_t amount, const std::string& purpose);
  void PlanCatalogue();
  void PlanGoods();
  void PlanCheckout();
  void Build();

  // A sale at a store; its contribution at the planned rate.
  struct Purchase {
    size_t store = 0;
    int64_t amount = 0;
    int64_t contribution = 0;
    std::string member;
    int64_t refunded = 0;  // by all its refunds
    int64_t reversed = 0;  // their reversals
  };
  struct Refund {
    size_t purchase = 0;
    size_t number = 0;  // 1-based, names the refund id
    int64_t amount = 0;
    int64_t reversal = 0;
  };
  struct PlannedVoucher {
    size_t recipient = 0;
    bool also_grocery = false;  // accepted at the Warm Mall grocery as well
  };
  struct Redemption {
    size_t voucher = 0;
    size_t part = 0;  // 1-based, names the order
    size_t store = 0;
    int64_t amount = 0;
  };

  const uint64_t seed_;
  const int64_t scale_parts_;
  std::vector<CategoryPlan> categories_;
  std::vector<v1::Code> communities_;
  std::vector<Recipient> recipients_;
  std::vector<std::string> recipient_ids_;  // filled by the registration results
  std::vector<int64_t> giving_day_;
  std::vector<int64_t> relief_;
  std::vector<Phase> phases_;
  std::map<std::string, Figures> figures_;
  std::vector<ShownTrace> shown_;
  int64_t giving_day_fen_ = 0;
  int64_t relief_fen_ = 0;
  size_t anonymous_count_ = 0;
  size_t donations_count_ = 0;
  int64_t raised_fen_ = 0;
  size_t allocations_count_ = 0;
  size_t disbursements_count_ = 0;
  int64_t disbursed_fen_ = 0;
  size_t scholarships_count_ = 0;
  size_t cash_aid_count_ = 0;
  std::map<std::string, StoreFigures> stores_;
  std::vector<Purchase> purchases_;
  std::vector<Refund> refunds_;
  std::vector<PlannedVoucher> vouchers_;
  std::vector<Redemption> redemptions_;
  std::vector<std::string> voucher_codes_;    // filled by the issue results
  std::vector<uint64_t> voucher_numbers_;     // likewise
  std::optional<size_t> voided_;
  int64_t sales_fen_ = 0;
  size_t members_count_ = 0;
  size_t partial_refunds_count_ = 0;
  int64_t redeemed_fen_ = 0;
  std::map<std::string, ItemFigures> items_;
  std::vector<size_t> box_households_;  // indexes into recipients_
  uint64_t vegetables_lot_ = 0;         // filled by the gift's result
  uint64_t box_purchase_seq_ = 0;       // likewise
  std::vector<uint64_t> giving_lots_;   // the 99 Giving Day lots, filled by the results
  size_t giving_day_phase_ = 0;
  // Aid given per (rule in kAidRules, recipient).
  std::map<std::pair<size_t, size_t>, uint32_t> aid_given_;
  std::optional<Op> aid_override_;
  uint64_t earlier_aid_seq_ = 0;  // filled by the spending phase's result
};

// Recipients are drawn one after another from one stream, so recipient n is
// the same person at every scale. The first ones cover every category and
// every community once (in a seeded order); the rest are drawn by weight.
void Plan::PlanRecipients() {
  const size_t count = static_cast<size_t>(Scaled(kRecipientsCount));
  Rng layout(seed_, kStreamLayout, 0);
  std::vector<size_t> category_order(categories_.size());
  std::vector<size_t> community_order(communities_.size());
  for (size_t i = 0; i < category_order.size(); ++i) category_order[i] = i;
  for (size_t i = 0; i < community_order.size(); ++i) community_order[i] = i;
  for (std::vector<size_t>* order : {&category_order, &community_order}) {
    for (size_t i = order->size(); i > 1; --i) {
      std::swap((*order)[i - 1], (*order)[layout.Below(i)]);
    }
  }
  int64_t weight_sum = 0;
  for (const CategoryPlan& c : categories_) weight_sum += c.weight;

  Rng rng(seed_, kStreamRecipients, 0);
  std::set<std::string> bodies;
  recipients_.reserve(count);
  for (size_t n = 0; n < count; ++n) {
    Recipient r;
    if (n < category_order.size()) {
      r.category = category_order[n];
    } else {
      int64_t pick = static_cast<int64_t>(rng.Below(static_cast<uint64_t>(weight_sum)));
      for (r.category = 0; pick >= categories_[r.category].weight; ++r.category) {
        pick -= categories_[r.category].weight;
      }
    }
    r.community = n < community_order.size() ? community_order[n]
                                              : static_cast<size_t>(rng.Below(communities_.size()));
    const CategoryPlan& c = categories_[r.category];
    // Children in other categories: one in ten adults' places goes to a child
    // or an old person, so every category has a realistic age mix.
    AgeClass age = c.age;
    if (age == AgeClass::kAdult) {
      const uint64_t roll = rng.Below(10);
      age = roll == 0 ? AgeClass::kChild : roll <= 2 ? AgeClass::kElderly : AgeClass::kAdult;
    }
    const int year_min = age == AgeClass::kChild ? 2006 : age == AgeClass::kElderly ? 1928 : 1958;
    const int year_max = age == AgeClass::kChild ? 2018 : age == AgeClass::kElderly ? 1957 : 2005;
    for (int draw = 0;; ++draw) {
      DEMO_CHECK(draw < kIdNumberDrawsMax, "a free ID number");
      const int year = static_cast<int>(rng.Between(year_min, year_max));
      const int month = static_cast<int>(rng.Between(1, 12));
      const int day = static_cast<int>(rng.Between(1, DaysInMonth(year, month)));
      // The sequence's last digit is odd for men, even for women.
      int sequence = static_cast<int>(rng.Between(1, 999));
      if (c.female && sequence % 2 == 1) sequence = sequence == 999 ? 998 : sequence + 1;
      std::string body = Format("%s%04d%02d%02d%03d", kAreaCode, year, month, day, sequence);
      if (!bodies.insert(body).second) continue;
      r.id_number = body + IdCheckCharacter(body);
      break;
    }
    recipients_.push_back(std::move(r));
  }
  recipient_ids_.assign(count, "");
}

void Plan::Build() {
  using K = v1::AccountKind;
  // ---- Accounts. ----
  std::vector<Op> opens;
  Open(opens, "fund/general", K::FUND, true, false, "Warm Erqi charity fund");
  Open(opens, "fund/education", K::FUND, true, true, "Education fund");
  Open(opens, "fund/scholarship", K::FUND, true, true, "Scholarship fund");
  Open(opens, "project/elderly-home", K::PROJECT, true, false, "A home for the elderly");
  Open(opens, "project/one-bench", K::PROJECT, true, false, "One heart, one bench");
  Open(opens, "project/disaster-relief", K::PROJECT, true, false, "Disaster relief");
  Open(opens, "supplier/house-repair", K::SUPPLIER, false, false, "House repair contractor");
  Open(opens, "supplier/bench-maker", K::SUPPLIER, false, false, "Bench maker");
  Open(opens, "supplier/meal-service", K::SUPPLIER, false, false,
       "Meal service (elderly meal-aid cards)");
  Open(opens, "supplier/relief-goods", K::SUPPLIER, false, false,
       "Relief goods wholesaler");
  Open(opens, "expense/administration", K::EXPENSE, false, false,
       "Office administration (management costs)");
  for (const StoreInfo& store : kStores) {
    Open(opens, store.account, K::MERCHANT, false, false, store.name);
    // A store sells in CNY; it holds no fund. The charity supermarket also
    // buys goods from the office, so it takes any asset.
    opens.back().open_asset = store.account == std::string_view(kGoodsBuyer) ? "" : kAsset;
    stores_[store.account];
  }
  // Goods: stocks of the three items (catalogued next), the supplier of the
  // boxes and where spoiled goods end. A supplier takes money and goods.
  Open(opens, "supplier/daily-necessities", K::SUPPLIER, false, false,
       "Daily necessities wholesaler");
  Open(opens, "expense/spoilage", K::EXPENSE, false, false, "Spoiled and damaged goods");
  for (const auto& [item, stock, name] :
       {std::tuple<const char*, const char*, const char*>{kDisinfectant, "stock/disinfectant",
                                                          "Disinfectant store"},
        {kDailyBox, "stock/daily-necessities", "Boxes of daily necessities"},
        {kVegetables, "stock/vegetables", "Vegetables cold store"}}) {
    Open(opens, stock, K::STOCK, false, false, name);
    opens.back().open_asset = item;  // a stock is not a fund: no fund summary
  }
  AddPhase("accounts", std::move(opens));
  PlanCatalogue();

  // ---- Recipients. ----
  PlanRecipients();
  {
    Phase phase;
    phase.name = "recipients";
    phase.count = recipients_.size();
    phase.build = [this](size_t i, v1::BatchOperation* out) {
      const Recipient& r = recipients_[i];
      v1::RegisterRecipientRequest* req = out->mutable_register_recipient();
      req->set_client_id(Id("recipient", i + 1));
      req->set_id_number(r.id_number);
      req->set_category(categories_[r.category].code);
      req->set_community(communities_[r.community].code());
    };
    phase.done = [this](size_t i, const v1::BatchResult& result) {
      if (result.recipient().rfind("recipient/", 0) != 0) {
        Fail(Format("contract: registration %s answered recipient \"%s\" (duplicate=%d); "
                    "need the recipient account id to pay aid",
                    Id("recipient", i + 1).c_str(), result.recipient().c_str(),
                    result.result().duplicate() ? 1 : 0));
      }
      recipient_ids_[i] = result.recipient();
    };
    phases_.push_back(std::move(phase));
  }
  PlanAidRules();

  // ---- 99 Giving Day: online gifts into the general fund. ----
  const size_t giving_count = static_cast<size_t>(Scaled(kGivingDayDonationsCount));
  giving_day_ = CampaignAmounts(seed_, kStreamGivingDay, giving_count, kGivingDayBlockCount,
                                kGivingDayMeanFen * static_cast<int64_t>(kGivingDayBlockCount),
                                kGivingDayTableFen, std::size(kGivingDayTableFen), 100);
  auto anonymous = [](size_t n) { return n % 499 == 7; };  // n is 1-based: a few
  const size_t giving_phase_start = total_ops();
  for (size_t i = 0; i < giving_count; ++i) {
    Donated("fund/general", giving_day_[i]);
    giving_day_fen_ += giving_day_[i];
    if (anonymous(i + 1)) anonymous_count_ += 1;
  }
  {
    Phase phase;
    phase.name = "99 Giving Day";
    phase.count = giving_count;
    phase.build = [this, anonymous](size_t i, v1::BatchOperation* out) {
      const uint64_t n = i + 1;
      v1::DonateRequest* r = out->mutable_donate();
      r->set_client_id(Id("99", n));
      r->set_donor(Format("donor/99-%" PRIu64, n));
      r->set_to("fund/general");
      r->set_asset(kAsset);
      r->set_amount(giving_day_[i]);
      r->set_channel(v1::ONLINE_CAMPAIGN);
      r->set_anonymous(anonymous(n));
      r->set_memo("99 Giving Day");
      r->set_create_donor(true);
      r->set_donor_name(Format("Online donor %" PRIu64, n));
    };
    phase.done = [this](size_t i, const v1::BatchResult& result) {
      giving_lots_[i] = result.lot();
    };
    giving_lots_.assign(giving_count, 0);
    giving_day_phase_ = phases_.size();
    phases_.push_back(std::move(phase));
  }
  // Shown traces: the oldest gift (spent first), the first anonymous one and
  // the newest (likely still held in the general fund).
  shown_.push_back({giving_phase_start, "99 Giving Day gift #1", giving_day_[0], "", 0});
  for (size_t i = 0; i < giving_count; ++i) {
    if (anonymous(i + 1)) {
      shown_.push_back({giving_phase_start + i,
                        Format("99 Giving Day gift #%zu (anonymous)", i + 1), giving_day_[i],
                        "", 0});
      break;
    }
  }
  if (giving_count > 1) {
    shown_.push_back({giving_phase_start + giving_count - 1,
                      Format("99 Giving Day gift #%zu (the last)", giving_count),
                      giving_day_[giving_count - 1], "", 0});
  }

  // ---- Named projects and disaster relief. ----
  std::vector<Op> gifts;
  const size_t gifts_start = total_ops();
  shown_.push_back({gifts_start, "the medical-equipment company's bench gift", kBenchGiftFen, "",
                    0});
  gifts.push_back(Donation(Id("bench-gift", 1), "donor/medical-equipment-co",
                           "Medical-equipment company", "project/one-bench", kBenchGiftFen,
                           v1::COMPANY_GIFT, "One heart, one bench: benches for two courtyards"));
  const std::vector<int64_t> elderly = CampaignAmounts(
      seed_, kStreamElderlyHome, kElderlyHomeDonorsCount, kElderlyHomeDonorsCount,
      kElderlyHomeFen, kElderlyHomeTableFen, std::size(kElderlyHomeTableFen), 100'000);
  for (size_t i = 0; i < elderly.size(); ++i) {
    const bool company = elderly[i] >= 1'000'000;
    if (i == 0) {
      shown_.push_back({gifts_start + gifts.size(), "a gift to \"A home for the elderly\"",
                        elderly[i], "", 0});
    }
    gifts.push_back(Donation(
        Id("elderly-gift", i + 1), Format("donor/elderly-home-%zu", i + 1),
        company ? Format("Local company %zu", i + 1) : Format("Erqi resident %zu", i + 1),
        "project/elderly-home", elderly[i],
        company ? v1::COMPANY_GIFT : (i % 2 == 0 ? v1::COUNTER : v1::BANK_TRANSFER),
        "A home for the elderly: repair old people's houses"));
  }
  relief_ = CampaignAmounts(seed_, kStreamRelief,
                            static_cast<size_t>(Scaled(kReliefDonationsCount)), kReliefBlockCount,
                            kReliefMeanFen * static_cast<int64_t>(kReliefBlockCount),
                            kReliefTableFen, std::size(kReliefTableFen), 100'000);
  for (size_t i = 0; i < relief_.size(); ++i) {
    const bool company = relief_[i] >= 1'000'000;
    relief_fen_ += relief_[i];
    gifts.push_back(Donation(
        Id("relief-gift", i + 1), Format("donor/relief-%zu", i + 1),
        company ? Format("Relief company %zu", i + 1) : Format("Relief donor %zu", i + 1),
        "project/disaster-relief", relief_[i], company ? v1::COMPANY_GIFT : v1::BANK_TRANSFER,
        "Disaster relief"));
  }
  AddPhase("project gifts", std::move(gifts));

  // ---- Allocations from the general fund. ----
  std::vector<Op> allocations;
  allocations.push_back(Allocation("alloc/education", "fund/general", "fund/education",
                                    giving_day_fen_ * kEducationAllocationBp / 10'000,
                                    "education fund: tuition and books for children in need"));
  allocations.push_back(Allocation("alloc/scholarship", "fund/general", "fund/scholarship",
                                   giving_day_fen_ * kScholarshipAllocationBp / 10'000,
                                   "scholarship fund: school year scholarships"));
  AddPhase("allocations", std::move(allocations));

  // ---- Spending. ----
  std::vector<Op> pays;
  // Two benches, one in each of two named courtyards.
  Rng layout(seed_, kStreamLayout, 1);
  for (int k = 0; k < 2; ++k) {
    const v1::Code& place = communities_[(layout.Below(communities_.size()) + k) %
                                         communities_.size()];
    pays.push_back(Disbursement(
        Id("bench", k + 1), "project/one-bench", "supplier/bench-maker", std::nullopt,
        kBenchGiftFen / 2,
        Format("One heart, one bench: benches in the courtyard of %s (%s)",
               place.name().empty() ? place.code().c_str() : place.name().c_str(),
               place.code().c_str())));
  }
  // Five old people's houses repaired.
  for (size_t k = 0; k < std::size(kHouseRepairFen); ++k) {
    const v1::Code& place = communities_[layout.Below(communities_.size())];
    pays.push_back(Disbursement(
        Id("repair", k + 1), "project/elderly-home", "supplier/house-repair", std::nullopt,
        kHouseRepairFen[k],
        Format("A home for the elderly: repair of house %zu of 5, %s", k + 1,
               place.code().c_str())));
  }
  // Children: education aid to each, scholarships while the fund lasts.
  for (size_t i = 0; i < recipients_.size(); ++i) {
    const CategoryPlan& c = categories_[recipients_[i].category];
    if (!c.student) continue;
    if (CanSpend("fund/education", kEducationAidFen)) {
      pays.push_back(Disbursement(Id("education-aid", i + 1), "fund/education", "", i,
                                  kEducationAidFen, "education aid: tuition and books"));
    }
    if (CanSpend("fund/scholarship", kScholarshipFen)) {
      pays.push_back(Disbursement(Id("scholarship", i + 1), "fund/scholarship", "", i,
                                  kScholarshipFen, "scholarship for the school year"));
      scholarships_count_ += 1;
    }
  }
  // Meal-aid cards for the elderly: twelve monthly payments.
  const int64_t meals = Scaled(kMealsCount);
  for (int64_t month = 1; month <= 12; ++month) {
    const int64_t served = meals / 12 + (month <= meals % 12 ? 1 : 0);
    if (served == 0) continue;
    pays.push_back(Disbursement(
        Id("meals", static_cast<uint64_t>(month)), "fund/general", "supplier/meal-service",
        std::nullopt, served * kMealSubsidyFen,
        Format("meal aid: %" PRId64 " meals on elderly meal-aid cards, month %" PRId64, served,
               month)));
  }
  // Management costs, quarterly.
  const int64_t administration = giving_day_fen_ * kAdministrationBp / 10'000;
  for (int64_t quarter = 1; quarter <= 4; ++quarter) {
    const int64_t amount = administration / 4 + (quarter == 4 ? administration % 4 : 0);
    if (amount == 0) continue;
    pays.push_back(Disbursement(Id("administration", static_cast<uint64_t>(quarter)),
                                "fund/general", "expense/administration", std::nullopt, amount,
                                Format("management costs, quarter %" PRId64, quarter)));
  }
  // Cash aid by category from the general fund, keeping a reserve. The
  // first person paid is the one the office pays a second time at the end.
  const int64_t reserve = giving_day_fen_ * kReserveBp / 10'000;
  std::optional<size_t> paid_twice;
  size_t paid_twice_op = 0;
  for (size_t i = 0; i < recipients_.size(); ++i) {
    const CategoryPlan& c = categories_[recipients_[i].category];
    if (c.source != AidSource::kGeneralFund || c.cash_aid_fen == 0) continue;
    if (!CanSpend("fund/general", c.cash_aid_fen + reserve)) continue;
    if (!paid_twice) {
      paid_twice = i;
      paid_twice_op = pays.size();
    }
    pays.push_back(Disbursement(Id("cash-aid", i + 1), "fund/general", "", i, c.cash_aid_fen,
                                c.purpose));
    cash_aid_count_ += 1;
  }
  // Disaster relief: cash aid to disaster victims, then relief goods.
  for (size_t i = 0; i < recipients_.size(); ++i) {
    const CategoryPlan& c = categories_[recipients_[i].category];
    if (c.source != AidSource::kDisasterRelief) continue;
    if (!CanSpend("project/disaster-relief", c.cash_aid_fen)) continue;
    pays.push_back(Disbursement(Id("relief-aid", i + 1), "project/disaster-relief", "", i,
                                c.cash_aid_fen, c.purpose));
    cash_aid_count_ += 1;
  }
  const int64_t goods = std::min(relief_fen_ * kReliefGoodsBp / 10'000,
                                 figures_.at("project/disaster-relief").held);
  for (int k = 1; k <= kReliefGoodsPurchasesCount; ++k) {
    const int64_t amount =
        goods / kReliefGoodsPurchasesCount + (k == kReliefGoodsPurchasesCount
                                                  ? goods % kReliefGoodsPurchasesCount
                                                  : 0);
    if (amount == 0) continue;
    pays.push_back(Disbursement(Id("relief-goods", static_cast<uint64_t>(k)),
                                "project/disaster-relief", "supplier/relief-goods", std::nullopt,
                                amount,
                                Format("relief goods: food, water and disinfectant, "
                                       "purchase %d of %d",
                                       k, kReliefGoodsPurchasesCount)));
  }
  AddPhase("spending", std::move(pays));
  if (paid_twice) {
    phases_.back().done = [this, paid_twice_op](size_t i, const v1::BatchResult& result) {
      if (i == paid_twice_op) earlier_aid_seq_ = result.result().seq();
    };
  }

  PlanGoods();

  PlanCheckout();

  if (paid_twice) {
    const CategoryPlan& c = categories_[recipients_[*paid_twice].category];
    PlanAidOverride(paid_twice, c.cash_aid_fen, c.purpose);
  }

  // The plan as a whole: conservation in the model. Contributions come from
  // the stores (net of reversals); what vouchers took and did not give back
  // sits in them or was redeemed at the stores.
  int64_t held = 0;
  int64_t net_contributions = 0;
  int64_t in_vouchers = 0;
  int64_t goods_net = 0;  // paid for goods less what goods sold for
  for (const auto& [account, f] : figures_) {
    DEMO_CHECK(f.held == f.raised + f.allocated_in - f.allocated_out - f.spent +
                             f.contributions - f.refund_reversals - f.vouchers_issued +
                             f.vouchers_returned - f.goods_bought + f.goods_sales,
               "model balances " + account);
    DEMO_CHECK(f.held >= 0, "model never negative " + account);
    held += f.held;
    net_contributions += f.contributions - f.refund_reversals;
    in_vouchers += f.vouchers_issued - f.vouchers_returned;
    goods_net += f.goods_bought - f.goods_sales;
  }
  DEMO_CHECK(in_vouchers >= redeemed_fen_, "vouchers never redeem more than they hold");
  DEMO_CHECK(held + disbursed_fen_ + in_vouchers + goods_net == raised_fen_ + net_contributions,
             "model conserves money");
}

// The aid rules, set once the recipients are registered and before any aid.
void Plan::PlanAidRules() {
  Phase phase;
  phase.name = "aid rules";
  phase.count = std::size(kAidRules);
  phase.build = [this](size_t i, v1::BatchOperation* out) {
    const AidRulePlan& rule = kAidRules[i];
    v1::SetAidRuleRequest* r = out->mutable_set_aid_rule();
    r->set_client_id(Id("aid-rule", i + 1));
    r->set_aid(rule.aid);
    r->set_type(rule.type);
    r->set_source(rule.source);
    r->set_asset(rule.asset);
    r->set_max_count(rule.max_count);
    r->set_period(rule.period);
    r->set_memo(rule.memo);
  };
  phases_.push_back(std::move(phase));
}

// At the end, once the office has given everything else: a second cash aid
// this month to someone who already had one breaks kOverriddenAid; the demo
// tries it without a reason (refused) and then with one (paid). Not a phase:
// Main sends it, checking both answers.
void Plan::PlanAidOverride(std::optional<size_t> recipient, int64_t amount,
                           const std::string& purpose) {
  if (!recipient || amount == 0 || !CanSpend("fund/general", amount)) return;
  DEMO_CHECK(!AidAllowed(v1::DISBURSEMENT, "fund/general", kAsset, *recipient),
             "the second cash aid breaks a rule");
  aid_override_ = Disbursement(Id("cash-aid-again", *recipient + 1), "fund/general", "", *recipient,
                               amount, purpose + " (second payment this month)", kOverrideReason);
  cash_aid_count_ += 1;
}

// The goods catalogue: three items, each defined once.
void Plan::PlanCatalogue() {
  static constexpr std::tuple<const char*, const char*, const char*, const char*> kItems[] = {
      {kDisinfectant, "Disinfectant, 500 ml bottle", "bottle", "stock/disinfectant"},
      {kDailyBox, "Box of daily necessities", "box", "stock/daily-necessities"},
      {kVegetables, "Fresh vegetables", "kg", "stock/vegetables"},
  };
  for (const auto& [item, name, unit, stock] : kItems) items_[item] = {name, unit, stock, 0};
  Phase phase;
  phase.name = "goods catalogue";
  phase.count = std::size(kItems);
  phase.build = [this](size_t i, v1::BatchOperation* out) {
    const auto& [item, name, unit, stock] = kItems[i];
    v1::DefineItemRequest* r = out->mutable_define_item();
    r->set_client_id(Format("demo/%" PRIu64 "/item/%s", seed_, item));
    r->set_item(item);
    r->set_name(name);
    r->set_unit(unit);
  };
  phases_.push_back(std::move(phase));
}

// Checks a goods operation's answer against the plan: the quantity moved
// (or a sale's proceeds).
void CheckMoved(const std::string& what, const v1::BatchResult& result, int64_t planned) {
  if (result.moved() != planned) {
    Fail(Format("%s: the server moved %" PRId64 ", the plan %" PRId64, what.c_str(),
                result.moved(), planned));
  }
}

// The goods after the spending (so that the boxes are paid by the small 99
// Giving Day gifts the general fund still holds) and before the checkout.
void Plan::PlanGoods() {
  Figures& general = figures_.at("fund/general");
  // Households in hardship: the categories the general fund helps, not the
  // children's; spread evenly over the register, each once.
  std::vector<size_t> eligible;
  for (size_t i = 0; i < recipients_.size(); ++i) {
    const CategoryPlan& c = categories_[recipients_[i].category];
    if (c.source == AidSource::kGeneralFund && !c.student) eligible.push_back(i);
  }
  int64_t households = std::min<int64_t>(Scaled(kBoxHouseholdsCount),
                                         static_cast<int64_t>(eligible.size()));
  households = std::min(households, general.held / kBoxPriceFen);
  for (int64_t k = 0; k < households; ++k) {
    box_households_.push_back(
        eligible[static_cast<size_t>(k) * eligible.size() / static_cast<size_t>(households)]);
    // One line in each of the two handouts (daily-box counts the first).
    CountAid(v1::HANDOUT, "stock/daily-necessities", kDailyBox, box_households_.back());
    CountAid(v1::HANDOUT, "stock/disinfectant", kDisinfectant, box_households_.back());
  }

  // Gifts in kind: disinfectant from a pharmaceutical company, vegetables
  // from a farm.
  const int64_t bottles_out = households * kDisinfectantPerHousehold;
  items_.at(kDisinfectant).in_stock = kDisinfectantBottles - bottles_out;
  {
    const size_t start = total_ops();
    shown_.push_back({start, "the pharmaceutical company's gift of disinfectant",
                      kDisinfectantBottles, "", 0, kDisinfectant});
    shown_.push_back({start + 1, "the farm's gift of vegetables", kVegetablesKg, "", 0,
                      kVegetables});
    Phase phase;
    phase.name = "gifts in kind";
    phase.count = 2;
    phase.build = [this](size_t i, v1::BatchOperation* out) {
      v1::GiveGoodsRequest* r = out->mutable_give_goods();
      r->set_create_donor(true);
      r->set_channel(v1::COMPANY_GIFT);
      if (i == 0) {
        r->set_client_id(Id("disinfectant-gift", 1));
        r->set_donor("donor/pharma-co");
        r->set_donor_name("Zhengzhou pharmaceutical company");
        r->set_to("stock/disinfectant");
        r->set_item(kDisinfectant);
        r->set_quantity(kDisinfectantBottles);
        r->set_grade("A");
        r->set_expires_us(kDisinfectantExpiresUs);
        r->set_value_asset(kAsset);
        r->set_value(kDisinfectantBottles * kDisinfectantBottleValueFen);
        r->set_memo("epidemic prevention: disinfectant for households in hardship");
      } else {
        r->set_client_id(Id("vegetables-gift", 1));
        r->set_donor("donor/vegetable-farm");
        r->set_donor_name("Erqi vegetable farm co-operative");
        r->set_to("stock/vegetables");
        r->set_item(kVegetables);
        r->set_quantity(kVegetablesKg);
        r->set_grade("B");
        r->set_memo("vegetables for the charity supermarket");
      }
    };
    phase.done = [this](size_t i, const v1::BatchResult& result) {
      CheckMoved(i == 0 ? "the disinfectant gift" : "the vegetables gift", result,
                 i == 0 ? kDisinfectantBottles : kVegetablesKg);
      if (i == 1) vegetables_lot_ = result.lot();
    };
    phases_.push_back(std::move(phase));
  }

  // The boxes: bought in one purchase, handed out in one handout (each
  // household once), with the disinfectant in a second one.
  if (households > 0) {
    const int64_t price = households * kBoxPriceFen;
    Spend("fund/general", price);
    general.goods_bought += price;
    Phase buy;
    buy.name = "goods purchase";
    buy.count = 1;
    buy.build = [this, households, price](size_t, v1::BatchOperation* out) {
      v1::BuyGoodsRequest* r = out->mutable_buy_goods();
      r->set_client_id(Id("boxes", 1));
      r->set_from("fund/general");
      r->set_supplier("supplier/daily-necessities");
      r->set_asset(kAsset);
      r->set_price(price);
      r->set_to("stock/daily-necessities");
      r->set_item(kDailyBox);
      r->set_quantity(households);
      r->set_memo(Format("%" PRId64 " boxes of daily necessities (rice, oil, soap) at %s yuan",
                         households, Yuan(kBoxPriceFen).c_str()));
    };
    buy.done = [this, households](size_t, const v1::BatchResult& result) {
      CheckMoved("the purchase of boxes", result, households);
      box_purchase_seq_ = result.result().seq();
    };
    phases_.push_back(std::move(buy));

    Phase handouts;
    handouts.name = "handouts";
    handouts.count = 2;
    handouts.build = [this](size_t i, v1::BatchOperation* out) {
      v1::HandOutRequest* r = out->mutable_hand_out();
      r->set_client_id(Id(i == 0 ? "box-handout" : "disinfectant-handout", 1));
      r->set_from(i == 0 ? "stock/daily-necessities" : "stock/disinfectant");
      r->set_item(i == 0 ? kDailyBox : kDisinfectant);
      r->set_purpose(i == 0 ? "Spring Festival: a box of daily necessities for each household"
                            : "epidemic prevention: disinfectant for each household");
      for (size_t h : box_households_) {
        const std::string& id = recipient_ids_.at(h);
        DEMO_CHECK(!id.empty(), "recipient id known before a handout");
        v1::HandoutLine* line = r->add_lines();
        line->set_recipient(id);
        line->set_quantity(i == 0 ? 1 : kDisinfectantPerHousehold);
      }
    };
    handouts.done = [this, households](size_t i, const v1::BatchResult& result) {
      CheckMoved(i == 0 ? "the handout of boxes" : "the handout of disinfectant", result,
                 i == 0 ? households : households * kDisinfectantPerHousehold);
    };
    phases_.push_back(std::move(handouts));
  }

  // The vegetables: one spoiled batch written off, the rest sold to the
  // charity supermarket.
  const int64_t sold = kVegetablesKg - kVegetablesSpoiledKg;
  const int64_t proceeds = sold * kVegetablePriceFen;
  general.held += proceeds;
  general.goods_sales += proceeds;
  Phase vegetables;
  vegetables.name = "vegetables";
  vegetables.count = 2;
  vegetables.build = [this, sold, proceeds](size_t i, v1::BatchOperation* out) {
    if (i == 0) {
      DEMO_CHECK(vegetables_lot_ != 0, "the vegetables' lot known before writing off");
      v1::WriteOffGoodsRequest* r = out->mutable_write_off_goods();
      r->set_client_id(Id("vegetables-spoiled", 1));
      r->set_from("stock/vegetables");
      r->set_to("expense/spoilage");
      r->set_item(kVegetables);
      r->set_quantity(kVegetablesSpoiledKg);
      r->set_lot(vegetables_lot_);
      r->set_reason("spoiled in the cold store after a power cut");
      return;
    }
    v1::SellGoodsRequest* r = out->mutable_sell_goods();
    r->set_client_id(Id("vegetables-sale", 1));
    r->set_from("stock/vegetables");
    r->set_buyer(kGoodsBuyer);
    r->set_item(kVegetables);
    r->set_quantity(sold);
    r->set_to("fund/general");
    r->set_asset(kAsset);
    r->set_proceeds(proceeds);
    r->set_memo("sold at 1 yuan a kg to the charity supermarket");
  };
  vegetables.done = [proceeds](size_t i, const v1::BatchResult& result) {
    CheckMoved(i == 0 ? "the write-off of spoiled vegetables" : "the sale of vegetables", result,
               i == 0 ? kVegetablesSpoiledKg : proceeds);
  };
  phases_.push_back(std::move(vegetables));
}

// Half up to the fen, as the server rounds contributions and reversals
// (ledger/types.h ProportionOf).
int64_t ProportionOf(int64_t total, int64_t part, int64_t whole) {
  const __int128 product = static_cast<__int128>(total) * part;
  return static_cast<int64_t>((product * 2 + whole) / (static_cast<__int128>(whole) * 2));
}

// Purchases over the year at the five stores (members on about one in
// three), refunds of one in kRefundEvery of them, vouchers from the general
// fund to recipients, their redemptions (full, partial or none) and one
// voided voucher. Purchases are drawn in prefix-stable blocks like gifts.
void Plan::PlanCheckout() {
  Figures& general = figures_.at("fund/general");
  const size_t purchase_count = static_cast<size_t>(Scaled(kPurchasesCount));
  const std::vector<int64_t> amounts = CampaignAmounts(
      seed_, kStreamPurchases, purchase_count, kPurchaseBlockCount,
      kPurchaseMeanFen * static_cast<int64_t>(kPurchaseBlockCount), kBasketTableFen,
      std::size(kBasketTableFen), 100);
  int64_t store_weight_sum = 0;
  for (const StoreInfo& store : kStores) store_weight_sum += store.weight;
  for (size_t i = 0; i < purchase_count; ++i) {
    Rng rng(seed_, kStreamCheckout, i);
    Purchase p;
    int64_t pick = static_cast<int64_t>(rng.Below(static_cast<uint64_t>(store_weight_sum)));
    for (p.store = 0; pick >= kStores[p.store].weight; ++p.store) pick -= kStores[p.store].weight;
    p.amount = amounts[i];
    p.contribution = ProportionOf(p.amount, kContributionRateBp, 10'000);
    if (rng.Below(3) == 0) {
      p.member = Format("member/%05" PRIu64, rng.Below(5'000) + 1);
      members_count_ += 1;
    }
    StoreFigures& sf = stores_.at(kStores[p.store].account);
    sf.purchases += 1;
    sf.purchase_amount += p.amount;
    sf.contributions += p.contribution;
    general.contributions += p.contribution;
    general.held += p.contribution;
    sales_fen_ += p.amount;
    purchases_.push_back(std::move(p));
  }
  const auto refund = [&](size_t i, int64_t amount) {
    Purchase& p = purchases_[i];
    DEMO_CHECK(amount > 0 && p.refunded + amount <= p.amount, "refund within the sale");
    p.refunded += amount;
    const int64_t reversal = ProportionOf(p.contribution, p.refunded, p.amount) - p.reversed;
    p.reversed += reversal;
    refunds_.push_back({i, refunds_.size() + 1, amount, reversal});
    StoreFigures& sf = stores_.at(kStores[p.store].account);
    sf.refunds += 1;
    sf.refund_amount += amount;
    sf.reversals += reversal;
    general.refund_reversals += reversal;
    if (reversal > 0) Spend("fund/general", reversal);
  };
  for (size_t i = kRefundEvery / 2, n = 0; i < purchases_.size(); i += kRefundEvery, ++n) {
    const int64_t amount = purchases_[i].amount;
    if (n % kTwoRefundsEvery == kTwoRefundsEvery - 1 && amount >= 4) {
      refund(i, amount / 4);  // two partial refunds of a quarter each
      refund(i, amount / 4);
      partial_refunds_count_ += 2;
    } else if (n % 2 == 1 && amount >= 2) {
      refund(i, amount / 2);
      partial_refunds_count_ += 1;
    } else {
      refund(i, amount);
    }
  }
  {
    Phase phase;
    phase.name = "purchases";
    phase.count = purchases_.size();
    phase.checkout = [this](size_t i, v1::CheckoutItem* item) {
      const Purchase& p = purchases_[i];
      v1::PurchaseRequest* r = item->mutable_purchase();
      r->set_store(kStores[p.store].account);
      r->set_order_id(Format("order/%zu", i + 1));
      r->set_asset(kAsset);
      r->set_amount(p.amount);
      r->set_member(p.member);
      r->set_sale_time_us(kSalePeriodStartUs +
                          static_cast<int64_t>(i) * (kSalePeriodUs / static_cast<int64_t>(
                                                                        purchases_.size())));
    };
    phase.checkout_done = [this](size_t i, const v1::CheckoutItemResult& r) {
      if (r.purchase().contribution() != purchases_[i].contribution) {
        Fail(Format("purchase order/%zu: the server's contribution is %s yuan at %u bp; this "
                    "demo plans with %" PRId64 " bp (%s yuan); load it into a server with the "
                    "default purchase contribution rate",
                    i + 1, Yuan(r.purchase().contribution()).c_str(), r.purchase().rate_bp(),
                    kContributionRateBp, Yuan(purchases_[i].contribution).c_str()));
      }
    };
    phases_.push_back(std::move(phase));
  }
  {
    Phase phase;
    phase.name = "refunds";
    phase.count = refunds_.size();
    phase.checkout = [this](size_t i, v1::CheckoutItem* item) {
      const Refund& f = refunds_[i];
      v1::RefundRequest* r = item->mutable_refund();
      r->set_store(kStores[purchases_[f.purchase].store].account);
      r->set_order_id(Format("order/%zu", f.purchase + 1));
      r->set_refund_id(Format("refund/%zu", f.number));
      r->set_amount(f.amount);
    };
    phase.checkout_done = [this](size_t i, const v1::CheckoutItemResult& r) {
      if (r.refund().reversal() != refunds_[i].reversal) {
        Fail(Format("refund/%zu: the server reversed %s yuan, the plan %s", i + 1,
                    Yuan(r.refund().reversal()).c_str(), Yuan(refunds_[i].reversal).c_str()));
      }
    };
    phases_.push_back(std::move(phase));
  }

  // Vouchers: to recipients of the categories the general fund helps, in a
  // seeded stride through the register, while the fund can pay them.
  std::vector<size_t> eligible;
  for (size_t i = 0; i < recipients_.size(); ++i) {
    const CategoryPlan& c = categories_[recipients_[i].category];
    if (c.source == AidSource::kGeneralFund && !c.student) eligible.push_back(i);
  }
  if (eligible.empty()) {
    for (size_t i = 0; i < recipients_.size(); ++i) eligible.push_back(i);
  }
  // The stride visits every eligible person once before anyone a second
  // time; it stops when the next one already has the vouchers the
  // "supermarket-voucher" rule allows.
  const size_t voucher_count = static_cast<size_t>(Scaled(kVouchersCount));
  for (size_t v = 0; v < voucher_count && CanSpend("fund/general", kVoucherFaceFen); ++v) {
    const size_t recipient = eligible[(v * 7919) % eligible.size()];
    if (!AidAllowed(v1::VOUCHER_ISSUE, "fund/general", kAsset, recipient)) break;
    CountAid(v1::VOUCHER_ISSUE, "fund/general", kAsset, recipient);
    Spend("fund/general", kVoucherFaceFen);
    general.vouchers_issued += kVoucherFaceFen;
    vouchers_.push_back({recipient, v % 5 == 4});
  }
  voucher_codes_.assign(vouchers_.size(), "");
  voucher_numbers_.assign(vouchers_.size(), 0);
  {
    Phase phase;
    phase.name = "vouchers";
    phase.count = vouchers_.size();
    phase.build = [this](size_t v, v1::BatchOperation* out) {
      const PlannedVoucher& planned = vouchers_[v];
      const std::string& recipient = recipient_ids_.at(planned.recipient);
      DEMO_CHECK(!recipient.empty(), "recipient id known before issuing a voucher");
      v1::IssueVoucherRequest* r = out->mutable_issue_voucher();
      r->set_client_id(Id("voucher", v + 1));
      r->set_from("fund/general");
      r->set_recipient(recipient);
      r->set_asset(kAsset);
      r->set_amount(kVoucherFaceFen);
      r->set_expires_us(kVoucherExpiresUs);
      r->add_stores(kStores[0].account);
      if (planned.also_grocery) r->add_stores(kStores[1].account);
      r->set_memo("aid voucher for the charity supermarket");
    };
    phase.done = [this](size_t v, const v1::BatchResult& result) {
      voucher_codes_[v] = result.voucher_code();
      voucher_numbers_[v] = result.result().seq();
    };
    phases_.push_back(std::move(phase));
  }
  // Redemptions: six in ten vouchers are used up in one to three visits,
  // three in ten partly, one in ten not yet; the first of those is voided.
  for (size_t v = 0; v < vouchers_.size(); ++v) {
    Rng rng(seed_, kStreamCheckout, purchase_count + v);
    const uint64_t roll = rng.Below(10);
    const int64_t target = roll < 6 ? kVoucherFaceFen
                           : roll < 9 ? kVoucherFaceFen * rng.Between(20, 80) / 100
                                      : 0;
    if (target == 0) {
      if (!voided_) voided_ = v;
      continue;
    }
    const size_t parts = static_cast<size_t>(rng.Between(1, roll < 6 ? 3 : 2));
    int64_t left = target;
    for (size_t k = 1; k <= parts && left > 0; ++k) {
      const int64_t amount =
          k == parts ? left : std::max<int64_t>(1, left * rng.Between(30, 70) / 100);
      left -= amount;
      const size_t store = vouchers_[v].also_grocery && rng.Below(2) == 1 ? 1 : 0;
      redemptions_.push_back({v, k, store, amount});
      StoreFigures& sf = stores_.at(kStores[store].account);
      sf.redemptions += 1;
      sf.redeemed += amount;
      redeemed_fen_ += amount;
    }
  }
  if (voided_) {
    general.vouchers_returned += kVoucherFaceFen;
    general.held += kVoucherFaceFen;
    Phase phase;
    phase.name = "voided voucher";
    phase.count = 1;
    phase.build = [this](size_t, v1::BatchOperation* out) {
      v1::VoidVoucherRequest* r = out->mutable_void_voucher();
      r->set_client_id(Id("void-voucher", *voided_ + 1));
      r->set_voucher(voucher_numbers_.at(*voided_));
      r->set_reason("the recipient moved out of the district before using the voucher");
    };
    phases_.push_back(std::move(phase));
  }
  {
    Phase phase;
    phase.name = "redemptions";
    phase.count = redemptions_.size();
    phase.checkout = [this](size_t i, v1::CheckoutItem* item) {
      const Redemption& d = redemptions_[i];
      const std::string& code = voucher_codes_.at(d.voucher);
      DEMO_CHECK(!code.empty(), "voucher code known before redeeming");
      v1::RedeemRequest* r = item->mutable_redeem();
      r->set_store(kStores[d.store].account);
      r->set_order_id(Format("voucher-order/%zu-%zu", d.voucher + 1, d.part));
      r->set_code(code);
      r->set_amount(d.amount);
    };
    phases_.push_back(std::move(phase));
  }
}

// ---- The connection. ----

class Client {
 public:
  explicit Client(const Flags& flags) : flags_(flags) {
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(kMessageBytesMax);
    args.SetMaxSendMessageSize(kMessageBytesMax);
    channel_ = grpc::CreateCustomChannel(flags.server, grpc::InsecureChannelCredentials(), args);
    stub_ = v1::Ledger::NewStub(channel_);
    checkout_ = v1::Checkout::NewStub(channel_);
    goods_ = v1::Goods::NewStub(channel_);
    aid_ = v1::Aid::NewStub(channel_);
  }

  // Calls `rpc` with a fresh context (deadline, token) until it is not a
  // retryable failure or the retries run out.
  // A public call (`token` kTokenless) goes without the token, as anyone's
  // would.
  enum class Token { kSend, kTokenless };
  template <typename Call>
  grpc::Status WithRetries(const char* what, Call call, Token token = Token::kSend) {
    auto backoff = std::chrono::duration_cast<std::chrono::milliseconds>(kBackoffMin);
    grpc::Status status;
    for (int attempt = 0;; ++attempt) {
      grpc::ClientContext context;
      Prepare(&context, token);
      status = call(&context);
      if (status.ok() || !Retryable(status.error_code()) || attempt == kRetriesMax) return status;
      retries_ += 1;
      std::printf("  %s: %s (%s), retrying in %lld ms\n", what,
                  CodeName(status.error_code()), status.error_message().c_str(),
                  static_cast<long long>(backoff.count()));
      std::fflush(stdout);
      std::this_thread::sleep_for(backoff);
      backoff = std::min(backoff * 2, std::chrono::duration_cast<std::chrono::milliseconds>(
                                          kBackoffMax));
    }
  }

  void Prepare(grpc::ClientContext* context, Token token = Token::kSend) const {
    context->set_deadline(std::chrono::system_clock::now() +
                          std::chrono::milliseconds(flags_.deadline_ms));
    if (!flags_.token.empty() && token == Token::kSend) {
      context->AddMetadata("authorization", "Bearer " + flags_.token);
    }
  }

  v1::Ledger::Stub& stub() { return *stub_; }
  v1::Checkout::Stub& checkout() { return *checkout_; }
  v1::Goods::Stub& goods() { return *goods_; }
  v1::Aid::Stub& aid() { return *aid_; }
  uint64_t retries() const { return retries_; }

 private:
  const Flags& flags_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::Ledger::Stub> stub_;
  std::unique_ptr<v1::Checkout::Stub> checkout_;
  std::unique_ptr<v1::Goods::Stub> goods_;
  std::unique_ptr<v1::Aid::Stub> aid_;
  uint64_t retries_ = 0;
};

[[noreturn]] void FailRpc(const char* what, const grpc::Status& status) {
  std::string hint;
  if (status.error_code() == grpc::StatusCode::UNAUTHENTICATED ||
      status.error_code() == grpc::StatusCode::PERMISSION_DENIED) {
    hint = " (writes need a clerk or admin token: --token=...; or run the server with --dev)";
  } else if (status.error_code() == grpc::StatusCode::UNAVAILABLE) {
    hint = " (is the server running at --server?)";
  }
  Fail(Format("%s: %s: %s%s", what, CodeName(status.error_code()),
              status.error_message().c_str(), hint.c_str()));
}

// ---- Loading. ----

struct Counters {
  uint64_t written = 0;
  uint64_t duplicate = 0;
  uint64_t existing_accounts = 0;  // opened earlier by another run or tool
};

// Submits every phase in batches, in order, one batch at a time (so the ledger
// order, and with it the oldest-first provenance, is the same on every run).
class Loader {
 public:
  Loader(Client& client, Plan& plan) : client_(client), plan_(plan) {}

  Counters Run() {
    start_ = SteadyClock::now();
    total_ = plan_.total_ops();
    size_t global_base = 0;
    // Small loads use smaller batches so that progress still shows about
    // every 10%; batching changes neither the operations nor their order.
    const size_t batch_ops =
        std::clamp<size_t>(total_ / kProgressBatchesMin, kBatchOpsMin, kBatchOpsMax);
    for (const Phase& phase : plan_.phases()) {
      std::printf("loading %s: %s operations (at %.1f s)\n", phase.name.c_str(),
                  Grouped(phase.count).c_str(), SecondsSince(start_));
      std::fflush(stdout);
      for (size_t start = 0; start < phase.count; start += batch_ops) {
        const size_t end = std::min(phase.count, start + batch_ops);
        if (phase.checkout) {
          SubmitCheckoutBatch(phase, start, end, global_base);
        } else {
          SubmitBatch(phase, start, end, global_base);
        }
        Progress(global_base + end, phase.name);
      }
      global_base += phase.count;
    }
    return counters_;
  }

 private:
  void SubmitBatch(const Phase& phase, size_t start, size_t end, size_t global_base) {
    v1::BatchRequest request;
    request.mutable_operations()->Reserve(static_cast<int>(end - start));
    for (size_t i = start; i < end; ++i) phase.build(i, request.add_operations());
    const size_t count = end - start;
    std::vector<bool> written(count, false);
    v1::BatchResponse response;
    for (int attempt = 0;; ++attempt) {
      response.Clear();
      grpc::Status status = client_.WithRetries("SubmitBatch", [&](grpc::ClientContext* c) {
        return client_.stub().SubmitBatch(c, request, &response);
      });
      if (!status.ok()) {
        FailRpc(Format("SubmitBatch of operations %zu..%zu (%s)", global_base + start,
                       global_base + end - 1, phase.name.c_str())
                    .c_str(),
                status);
      }
      if (static_cast<size_t>(response.results_size()) != count) {
        Fail(Format("contract: SubmitBatch answered %d results for %zu operations",
                    response.results_size(), count));
      }
      // An operation refused because the queue filled is retried with its
      // whole batch: the others come back as duplicates.
      bool retry = false;
      for (size_t j = 0; j < count; ++j) {
        const v1::BatchResult& r = response.results(static_cast<int>(j));
        if (r.code() == grpc::StatusCode::OK && !r.result().duplicate()) written[j] = true;
        if (Retryable(r.code())) retry = true;
      }
      if (!retry) break;
      if (attempt == kRetriesMax) break;  // reported below as an error
      std::this_thread::sleep_for(kBackoffMin * (1 << std::min(attempt, 5)));
    }
    for (size_t j = 0; j < count; ++j) {
      const v1::BatchResult& r = response.results(static_cast<int>(j));
      const v1::BatchOperation& op = request.operations(static_cast<int>(j));
      const size_t index = global_base + start + j;
      if (r.code() == grpc::StatusCode::OK) {
        if (written[j]) {
          counters_.written += 1;
        } else {
          counters_.duplicate += 1;
        }
        if (phase.done) phase.done(start + j, r);
        for (ShownTrace& shown : plan_.shown()) {
          if (shown.op_index == index) {
            shown.trace_code = r.trace_code();
            shown.lot = r.lot();
          }
        }
        continue;
      }
      if (r.code() == grpc::StatusCode::ALREADY_EXISTS && op.has_open_account() &&
          AccountAlreadyOpen(op.open_account())) {
        counters_.existing_accounts += 1;
        continue;
      }
      std::string hint;
      if (r.code() == grpc::StatusCode::ALREADY_EXISTS) {
        hint = "\n  hint: this ledger already holds a different demo district (another --seed "
               "or --scale, or one loaded by another version of this program); load into a "
               "fresh data directory";
      }
      Fail(Format("operation %zu (%s, client_id %s) failed: %s: %s%s", index,
                  phase.name.c_str(), ClientId(op).c_str(), CodeName(r.code()),
                  r.message().c_str(), hint.c_str()));
    }
  }

  // Checkout items go through SubmitCheckoutBatch; the same handling of
  // whole-call retries and of items refused because the queue filled.
  void SubmitCheckoutBatch(const Phase& phase, size_t start, size_t end, size_t global_base) {
    v1::CheckoutBatchRequest request;
    request.mutable_items()->Reserve(static_cast<int>(end - start));
    for (size_t i = start; i < end; ++i) phase.checkout(i, request.add_items());
    const size_t count = end - start;
    std::vector<bool> written(count, false);
    v1::CheckoutBatchResponse response;
    const auto write_result = [](const v1::CheckoutItemResult& r) -> const v1::WriteResult& {
      if (r.has_purchase()) return r.purchase().result();
      if (r.has_refund()) return r.refund().result();
      return r.redemption().result();
    };
    for (int attempt = 0;; ++attempt) {
      response.Clear();
      grpc::Status status =
          client_.WithRetries("SubmitCheckoutBatch", [&](grpc::ClientContext* c) {
            return client_.checkout().SubmitCheckoutBatch(c, request, &response);
          });
      if (!status.ok()) {
        FailRpc(Format("SubmitCheckoutBatch of operations %zu..%zu (%s)", global_base + start,
                       global_base + end - 1, phase.name.c_str())
                    .c_str(),
                status);
      }
      if (static_cast<size_t>(response.results_size()) != count) {
        Fail(Format("contract: SubmitCheckoutBatch answered %d results for %zu items",
                    response.results_size(), count));
      }
      bool retry = false;
      for (size_t j = 0; j < count; ++j) {
        const v1::CheckoutItemResult& r = response.results(static_cast<int>(j));
        if (r.code() == grpc::StatusCode::OK && !write_result(r).duplicate()) written[j] = true;
        if (Retryable(r.code())) retry = true;
      }
      if (!retry) break;
      if (attempt == kRetriesMax) break;  // reported below as an error
      std::this_thread::sleep_for(kBackoffMin * (1 << std::min(attempt, 5)));
    }
    for (size_t j = 0; j < count; ++j) {
      const v1::CheckoutItemResult& r = response.results(static_cast<int>(j));
      if (r.code() != grpc::StatusCode::OK) {
        const v1::CheckoutItem& item = request.items(static_cast<int>(j));
        const std::string what =
            item.has_purchase()
                ? Format("purchase %s at %s", item.purchase().order_id().c_str(),
                         item.purchase().store().c_str())
            : item.has_refund() ? Format("refund %s at %s", item.refund().refund_id().c_str(),
                                         item.refund().store().c_str())
                                : Format("redemption for %s at %s",
                                         item.redeem().order_id().c_str(),
                                         item.redeem().store().c_str());
        Fail(Format("operation %zu (%s, %s) failed: %s: %s", global_base + start + j,
                    phase.name.c_str(), what.c_str(), CodeName(r.code()), r.message().c_str()));
      }
      if (written[j]) {
        counters_.written += 1;
      } else {
        counters_.duplicate += 1;
      }
      if (phase.checkout_done) phase.checkout_done(start + j, r);
    }
  }

  // An account of the plan that exists already (opened by another run or
  // tool) is fine if it is of the same kind, asset and restriction.
  bool AccountAlreadyOpen(const v1::OpenAccountRequest& open) {
    v1::GetAccountRequest request;
    request.set_account(open.account());
    v1::Account account;
    grpc::Status status = client_.WithRetries("GetAccount", [&](grpc::ClientContext* c) {
      return client_.stub().GetAccount(c, request, &account);
    });
    if (!status.ok()) return false;
    const bool same = account.kind() == open.kind() && account.asset() == open.asset() &&
                      (open.kind() != v1::FUND || account.restricted() == open.restricted()) &&
                      !account.closed();
    if (same) {
      std::printf("  %s was already open (opened by another client id); using it\n",
                  open.account().c_str());
    }
    return same;
  }

  static std::string ClientId(const v1::BatchOperation& op) {
    switch (op.op_case()) {
      case v1::BatchOperation::kOpenAccount: return op.open_account().client_id();
      case v1::BatchOperation::kCloseAccount: return op.close_account().client_id();
      case v1::BatchOperation::kDonate: return op.donate().client_id();
      case v1::BatchOperation::kAllocate: return op.allocate().client_id();
      case v1::BatchOperation::kDisburse: return op.disburse().client_id();
      case v1::BatchOperation::kCorrect: return op.correct().client_id();
      case v1::BatchOperation::kRegisterRecipient: return op.register_recipient().client_id();
      case v1::BatchOperation::kIssueVoucher: return op.issue_voucher().client_id();
      case v1::BatchOperation::kVoidVoucher: return op.void_voucher().client_id();
      case v1::BatchOperation::kDefineItem: return op.define_item().client_id();
      case v1::BatchOperation::kGiveGoods: return op.give_goods().client_id();
      case v1::BatchOperation::kBuyGoods: return op.buy_goods().client_id();
      case v1::BatchOperation::kHandOut: return op.hand_out().client_id();
      case v1::BatchOperation::kWriteOffGoods: return op.write_off_goods().client_id();
      case v1::BatchOperation::kSellGoods: return op.sell_goods().client_id();
      case v1::BatchOperation::kSetAidRule: return op.set_aid_rule().client_id();
      case v1::BatchOperation::OP_NOT_SET: break;
    }
    return "?";
  }

  void Progress(size_t done, const std::string& phase) {
    const size_t tenth = done * 10 / std::max<size_t>(total_, 1);
    if (tenth == last_tenth_ && done != total_) return;
    if (done == total_ && final_printed_) return;
    last_tenth_ = tenth;
    final_printed_ = done == total_;
    const double seconds = SecondsSince(start_);
    std::printf("[%3zu%%] %s/%s operations (%s written, %s duplicate) in %.1f s, %.0f ops/s  %s\n",
                done * 100 / std::max<size_t>(total_, 1), Grouped(done).c_str(),
                Grouped(total_).c_str(), Grouped(counters_.written).c_str(),
                Grouped(counters_.duplicate).c_str(), seconds,
                seconds > 0 ? static_cast<double>(done) / seconds : 0.0, phase.c_str());
    std::fflush(stdout);
  }

  Client& client_;
  Plan& plan_;
  Counters counters_;
  SteadyClock::time_point start_;
  size_t total_ = 0;
  size_t last_tenth_ = 0;
  bool final_printed_ = false;
};

// ---- Checks against the server's own accounting. ----

std::map<std::string, v1::FundSummary> FundSummaries(Client& client) {
  v1::ListFundSummariesRequest request;
  v1::FundSummaries response;
  grpc::Status status = client.WithRetries("ListFundSummaries", [&](grpc::ClientContext* c) {
    return client.stub().ListFundSummaries(c, request, &response);
  });
  if (!status.ok()) FailRpc("ListFundSummaries", status);
  std::map<std::string, v1::FundSummary> out;
  for (const v1::FundSummary& f : response.funds()) out[f.account()] = f;
  return out;
}

// Before writing: the ledger must hold nothing of this plan's accounts, or a
// prefix of this very plan (an earlier full or interrupted run). All gifts
// precede all outflows in the plan, so once anything went out, everything
// raised must be exactly what the plan raises.
void CheckServerIsPrefix(const Plan& plan, const std::map<std::string, v1::FundSummary>& server) {
  bool outflows = false;
  std::vector<std::string> problems;
  for (const auto& [account, f] : plan.figures()) {
    auto it = server.find(account);
    if (it == server.end()) continue;
    const v1::FundSummary& s = it->second;
    if (s.allocated_out() > 0 || s.spent() > 0 || s.vouchers_issued() > 0 ||
        s.goods_bought() > 0) {
      outflows = true;
    }
    if (s.corrected_in() > 0 || s.corrected_out() > 0) {
      problems.push_back(account + " has corrections (the demo makes none)");
    }
    auto over = [&](const char* field, int64_t have, int64_t plan_value) {
      if (have > plan_value) {
        problems.push_back(Format("%s %s is %s yuan, more than this plan's %s", account.c_str(),
                                  field, Yuan(have).c_str(), Yuan(plan_value).c_str()));
      }
    };
    over("raised", s.raised(), f.raised);
    over("allocated_in", s.allocated_in(), f.allocated_in);
    over("allocated_out", s.allocated_out(), f.allocated_out);
    over("spent", s.spent(), f.spent);
    over("contributions", s.contributions(), f.contributions);
    over("vouchers_issued", s.vouchers_issued(), f.vouchers_issued);
    over("goods_bought", s.goods_bought(), f.goods_bought);
    over("goods_sales", s.goods_sales(), f.goods_sales);
  }
  if (outflows) {
    for (const auto& [account, f] : plan.figures()) {
      auto it = server.find(account);
      const int64_t raised = it == server.end() ? 0 : it->second.raised();
      if (raised != f.raised) {
        problems.push_back(Format("%s raised %s yuan, this plan raises %s", account.c_str(),
                                  Yuan(raised).c_str(), Yuan(f.raised).c_str()));
      }
    }
  }
  if (problems.empty()) return;
  std::string text =
      "this ledger already holds a different district than --seed and --scale describe:";
  for (const std::string& p : problems) text += "\n  " + p;
  text += "\nload the demo into a fresh data directory, or rerun with the earlier --seed/--scale";
  Fail(text);
}

// After the load: the server's accounting must equal the plan's model.
bool CheckServerEqualsPlan(const Plan& plan, const std::map<std::string, v1::FundSummary>& server) {
  bool same = true;
  std::printf("\n%-24s %18s %16s %16s %16s %18s\n", "fund or project", "raised", "allocated in",
              "allocated out", "spent", "held");
  for (const auto& [account, f] : plan.figures()) {
    auto it = server.find(account);
    if (it == server.end()) {
      std::printf("%-24s missing from ListFundSummaries\n", account.c_str());
      same = false;
      continue;
    }
    const v1::FundSummary& s = it->second;
    const bool row_same = s.raised() == f.raised && s.allocated_in() == f.allocated_in &&
                          s.allocated_out() == f.allocated_out && s.spent() == f.spent &&
                          s.held() == f.held && s.contributions() == f.contributions &&
                          s.refund_reversals() == f.refund_reversals &&
                          s.vouchers_issued() == f.vouchers_issued &&
                          s.vouchers_returned() == f.vouchers_returned &&
                          s.goods_bought() == f.goods_bought && s.goods_sales() == f.goods_sales;
    std::printf("%-24s %18s %16s %16s %16s %18s%s\n", account.c_str(), Yuan(s.raised()).c_str(),
                Yuan(s.allocated_in()).c_str(), Yuan(s.allocated_out()).c_str(),
                Yuan(s.spent()).c_str(), Yuan(s.held()).c_str(), row_same ? "" : "  <- differs");
    if (!row_same) {
      std::printf("%-24s %18s %16s %16s %16s %18s  (plan)\n", "", Yuan(f.raised).c_str(),
                  Yuan(f.allocated_in).c_str(), Yuan(f.allocated_out).c_str(),
                  Yuan(f.spent).c_str(), Yuan(f.held).c_str());
      std::printf("%-24s contributions %s, reversals %s, vouchers issued %s, returned %s; "
                  "plan %s, %s, %s, %s\n",
                  "", Yuan(s.contributions()).c_str(), Yuan(s.refund_reversals()).c_str(),
                  Yuan(s.vouchers_issued()).c_str(), Yuan(s.vouchers_returned()).c_str(),
                  Yuan(f.contributions).c_str(), Yuan(f.refund_reversals).c_str(),
                  Yuan(f.vouchers_issued).c_str(), Yuan(f.vouchers_returned).c_str());
      std::printf("%-24s goods bought %s, goods sold %s; plan %s, %s\n", "",
                  Yuan(s.goods_bought()).c_str(), Yuan(s.goods_sales()).c_str(),
                  Yuan(f.goods_bought).c_str(), Yuan(f.goods_sales).c_str());
      same = false;
    }
  }
  const Figures& g = plan.general();
  std::printf("%-24s contributions %s, reversed by refunds %s, vouchers issued %s, "
              "returned %s\n",
              "fund/general", Yuan(g.contributions).c_str(), Yuan(g.refund_reversals).c_str(),
              Yuan(g.vouchers_issued).c_str(), Yuan(g.vouchers_returned).c_str());
  std::printf("%-24s goods bought %s, goods sold %s\n", "fund/general",
              Yuan(g.goods_bought).c_str(), Yuan(g.goods_sales).c_str());
  return same;
}

// After the load: the server's settlement of every demo store over all time
// must equal the plan's (the stores are the demo's own).
bool CheckSettlementEqualsPlan(Client& client, const Plan& plan) {
  v1::SettlementRequest request;  // every store, from the start until now
  v1::Settlement settlement;
  grpc::Status status = client.WithRetries("GetStoreSettlement", [&](grpc::ClientContext* c) {
    return client.checkout().GetStoreSettlement(c, request, &settlement);
  });
  if (!status.ok()) FailRpc("GetStoreSettlement", status);
  std::map<std::string, const v1::StoreSettlement*> server;
  for (const v1::StoreSettlement& s : settlement.stores()) {
    if (s.asset() == kAsset) server[s.store()] = &s;
  }
  bool same = true;
  std::printf("\n%-28s %9s %16s %12s %7s %12s %10s %11s %14s\n", "store", "purchases", "sales",
              "contributed", "refunds", "refunded", "reversed", "redemptions", "redeemed");
  for (const auto& [store, f] : plan.stores()) {
    auto it = server.find(store);
    if (it == server.end()) {
      std::printf("%-28s missing from GetStoreSettlement\n", store.c_str());
      same = false;
      continue;
    }
    const v1::StoreSettlement& s = *it->second;
    const bool row_same = s.purchases() == f.purchases &&
                          s.purchase_amount() == f.purchase_amount &&
                          s.contributions() == f.contributions && s.refunds() == f.refunds &&
                          s.refund_amount() == f.refund_amount && s.reversals() == f.reversals &&
                          s.redemptions() == f.redemptions && s.redeemed() == f.redeemed &&
                          s.net_contribution() == f.contributions - f.reversals;
    std::printf("%-28s %9s %16s %12s %7s %12s %10s %11s %14s%s\n", store.c_str(),
                Grouped(s.purchases()).c_str(), Yuan(s.purchase_amount()).c_str(),
                Yuan(s.contributions()).c_str(), Grouped(s.refunds()).c_str(),
                Yuan(s.refund_amount()).c_str(), Yuan(s.reversals()).c_str(),
                Grouped(s.redemptions()).c_str(), Yuan(s.redeemed()).c_str(),
                row_same ? "" : "  <- differs");
    if (!row_same) {
      std::printf("%-28s %9s %16s %12s %7s %12s %10s %11s %14s  (plan)\n", "",
                  Grouped(f.purchases).c_str(), Yuan(f.purchase_amount).c_str(),
                  Yuan(f.contributions).c_str(), Grouped(f.refunds).c_str(),
                  Yuan(f.refund_amount).c_str(), Yuan(f.reversals).c_str(),
                  Grouped(f.redemptions).c_str(), Yuan(f.redeemed).c_str());
      same = false;
    }
  }
  return same;
}

// After the load: what the server's catalogue says every stock holds must
// equal the plan (the stocks are the demo's own).
bool CheckItemsEqualPlan(Client& client, const Plan& plan) {
  v1::Items items;
  grpc::Status status = client.WithRetries("ListItems", [&](grpc::ClientContext* c) {
    return client.goods().ListItems(c, v1::ListItemsRequest(), &items);
  });
  if (!status.ok()) FailRpc("ListItems", status);
  std::map<std::string, const v1::Item*> server;
  for (const v1::Item& i : items.items()) server[i.item()] = &i;
  bool same = true;
  std::printf("\n%-20s %-30s %-7s %12s\n", "item", "name", "unit", "in stock");
  for (const auto& [item, f] : plan.items()) {
    auto it = server.find(item);
    if (it == server.end()) {
      std::printf("%-20s missing from ListItems\n", item.c_str());
      same = false;
      continue;
    }
    const v1::Item& i = *it->second;
    const bool row_same = i.name() == f.name && i.unit() == f.unit && i.in_stock() == f.in_stock;
    std::printf("%-20s %-30s %-7s %12s%s\n", item.c_str(), i.name().c_str(), i.unit().c_str(),
                Grouped(static_cast<uint64_t>(std::max<int64_t>(0, i.in_stock()))).c_str(),
                row_same ? "" : "  <- differs");
    if (!row_same) {
      std::printf("%-20s %-30s %-7s %12s  (plan)\n", "", f.name.c_str(), f.unit.c_str(),
                  Grouped(static_cast<uint64_t>(f.in_stock)).c_str());
      same = false;
    }
  }
  return same;
}

// "70.65 yuan" for money, "2,000 item:disinfectant" for goods.
std::string AmountText(const std::string& asset, int64_t amount) {
  if (asset == kAsset) return Yuan(amount) + " yuan";
  const uint64_t magnitude =
      amount < 0 ? static_cast<uint64_t>(-(amount + 1)) + 1 : static_cast<uint64_t>(amount);
  return (amount < 0 ? "-" : "") + Grouped(magnitude) + " " + asset;
}

// Group key of a place: recipients by category, anything else by account.
std::string PlaceKey(v1::AccountKind kind, const std::string& account,
                     const std::string& category) {
  return kind == v1::RECIPIENT ? "recipients in category " + category : account;
}

// Where one shown gift went, from the public TraceByCode; the trace must
// account for every fen (or unit) of the gift, and what it became in each
// conversion for every part that went into it.
bool ShowTrace(Client& client, const ShownTrace& shown) {
  v1::TraceByCodeRequest request;
  request.set_trace_code(shown.trace_code);
  v1::Trace trace;
  grpc::Status status = client.WithRetries("TraceByCode", [&](grpc::ClientContext* c) {
    return client.stub().TraceByCode(c, request, &trace);
  });
  std::printf("\n%s, %s, lot %" PRIu64 "\n", shown.label.c_str(),
              AmountText(shown.asset, shown.amount).c_str(), shown.lot);
  if (!status.ok()) {
    std::printf("  TraceByCode failed: %s: %s\n", CodeName(status.error_code()),
                status.error_message().c_str());
    return false;
  }
  const std::string& asset = trace.asset();
  // Group places: recipients by category, the rest by account.
  std::map<std::string, std::pair<int64_t, uint64_t>> reached;
  int64_t sum = 0;
  for (const v1::TracePlace& p : trace.reached()) {
    const std::string key = PlaceKey(p.kind(), p.account(), p.category());
    reached[key].first += p.amount();
    reached[key].second += 1;
    sum += p.amount();
  }
  for (const auto& [place, amount_count] : reached) {
    std::printf("  reached %-48s %20s (%s place%s)\n", place.c_str(),
                AmountText(asset, amount_count.first).c_str(),
                Grouped(amount_count.second).c_str(), amount_count.second == 1 ? "" : "s");
  }
  for (const v1::TracePlace& p : trace.held()) {
    std::printf("  held in %-48s %20s\n", p.account().c_str(),
                AmountText(asset, p.amount()).c_str());
    sum += p.amount();
  }
  // What the parts converted became: the goods a gift's money bought and
  // who received them, or the money goods were sold for.
  bool conversions_exact = true;
  for (const v1::LotConversion& c : trace.conversions()) {
    std::printf("  %s of it went into the %s of entry %" PRIu64
                "; its share of what that made, %s of %s, is now with:\n",
                AmountText(asset, c.consumed()).c_str(),
                c.type() == v1::GOODS_PURCHASE ? "goods purchase" : "goods sale", c.seq(),
                AmountText(c.asset(), c.share()).c_str(),
                AmountText(c.asset(), c.lot_amount()).c_str());
    std::map<std::string, std::pair<int64_t, int64_t>> places;  // made, source
    int64_t made = 0, source = 0;
    for (const v1::ConversionPlace& p : c.places()) {
      auto& place = places[PlaceKey(p.kind(), p.account(), p.category())];
      place.first += p.amount();
      place.second += p.source_amount();
      made += p.amount();
      source += p.source_amount();
    }
    for (const auto& [place, amounts] : places) {
      std::printf("    %-48s %20s (%s of the gift)\n", place.c_str(),
                  AmountText(c.asset(), amounts.first).c_str(),
                  AmountText(asset, amounts.second).c_str());
    }
    conversions_exact = conversions_exact && made == c.share() && source == c.consumed();
  }
  std::printf("  %zu movement%s; ", static_cast<size_t>(trace.hops_size()),
              trace.hops_size() == 1 ? "" : "s");
  const bool exact = sum == shown.amount && trace.amount() == shown.amount && conversions_exact;
  std::printf("%s\n", exact ? (asset == kAsset ? "accounts for every fen" : "accounts for every unit")
                            : Format("DOES NOT ADD UP: %s of %s",
                                     AmountText(asset, sum).c_str(),
                                     AmountText(shown.asset, shown.amount).c_str())
                                  .c_str());
  return exact;
}

// A 99 Giving Day gift whose money paid for boxes (among the oldest lots in
// the purchase's slices, the one that paid most), with its trace code: the
// gift is asked for again, which the server answers as a duplicate with the
// same code.
std::optional<ShownTrace> GiftThatBoughtBoxes(Client& client, const Plan& plan) {
  if (plan.box_purchase_seq() == 0) return std::nullopt;
  v1::TraceEntryRequest request;
  request.set_seq(plan.box_purchase_seq());
  request.set_limit(kBoxPayersLookedAtMax);
  v1::EntryTrace sources;
  grpc::Status status = client.WithRetries("TraceEntry", [&](grpc::ClientContext* c) {
    return client.stub().TraceEntry(c, request, &sources);
  });
  if (!status.ok()) FailRpc("TraceEntry", status);
  const v1::TraceSource* most = nullptr;
  for (const v1::TraceSource& source : sources.sources()) {
    if (most == nullptr || source.amount() > most->amount()) most = &source;
  }
  if (most == nullptr) return std::nullopt;
  const std::optional<size_t> gift = plan.GivingDayGiftOfLot(most->lot());
  if (!gift) return std::nullopt;
  v1::BatchRequest again;
  plan.giving_day_phase().build(*gift, again.add_operations());
  v1::BatchResponse answer;
  status = client.WithRetries("SubmitBatch", [&](grpc::ClientContext* c) {
    return client.stub().SubmitBatch(c, again, &answer);
  });
  if (!status.ok()) FailRpc("SubmitBatch (the gift that bought boxes, again)", status);
  if (answer.results_size() != 1 || answer.results(0).code() != grpc::StatusCode::OK ||
      !answer.results(0).result().duplicate()) {
    Fail(Format("99 Giving Day gift #%zu asked for again was not answered as a duplicate",
                *gift + 1));
  }
  return ShownTrace{0, Format("99 Giving Day gift #%zu, whose money bought boxes of daily "
                              "necessities",
                              *gift + 1),
                    plan.giving_day_amount(*gift), answer.results(0).trace_code(),
                    answer.results(0).lot()};
}

// ---- Aid supervision. ----

// What the override step did, for the summary.
struct AidOverrideOutcome {
  bool tried = false;
  bool refused = false;    // this run saw the refusal (a rerun sees the recorded override)
  uint64_t seq = 0;        // the overridden disbursement
  bool duplicate = false;  // recorded by an earlier run
};

// The second cash aid: first without a reason, which the server must refuse
// naming the earlier entry, then the same request (same client id) with the
// override reason, which it must record. The attempt without a reason goes
// in a linked chain closed by an operation that can never succeed (amount
// 0), so that it writes nothing even if no rule stops it (a run resumed in a
// later month, when the earlier aid no longer counts). On a rerun the
// override is already recorded under that client id, and the attempt is
// ALREADY_EXISTS naming override_reason instead.
AidOverrideOutcome ShowAidOverride(Client& client, const Plan& plan) {
  AidOverrideOutcome outcome;
  if (!plan.aid_override()) return outcome;
  outcome.tried = true;
  v1::BatchOperation planned;
  ToProto(*plan.aid_override(), plan.recipient_ids(), &planned);
  const v1::DisburseRequest with_reason = planned.disburse();
  v1::DisburseRequest without = with_reason;
  without.clear_override_reason();
  v1::BatchRequest probe;
  v1::BatchOperation* attempt = probe.add_operations();
  attempt->set_linked(true);
  *attempt->mutable_disburse() = without;
  v1::DisburseRequest* guard = probe.add_operations()->mutable_disburse();
  *guard = without;
  guard->set_client_id(without.client_id() + "/guard");
  guard->set_amount(0);
  v1::BatchResponse answer;
  grpc::Status status = client.WithRetries("SubmitBatch", [&](grpc::ClientContext* c) {
    return client.stub().SubmitBatch(c, probe, &answer);
  });
  if (!status.ok()) FailRpc("SubmitBatch (a second cash aid without a reason)", status);
  if (answer.results_size() != 2) Fail("contract: SubmitBatch answered the wrong count");
  const v1::BatchResult& r = answer.results(0);
  std::printf("\naid supervision: a second cash aid this month to %s (%s yuan)\n",
              without.to().c_str(), Yuan(without.amount()).c_str());
  std::printf("  without a reason: %s: %s\n", CodeName(r.code()), r.message().c_str());
  const std::string earlier = Format("entry %" PRIu64, plan.earlier_aid_seq());
  if (r.code() == grpc::StatusCode::FAILED_PRECONDITION) {
    if (r.message().find(Format("'%s'", kOverriddenAid)) == std::string::npos ||
        (plan.earlier_aid_seq() != 0 && r.message().find(earlier) == std::string::npos)) {
      Fail(Format("the refusal should name the rule '%s' and the earlier %s", kOverriddenAid,
                  earlier.c_str()));
    }
    outcome.refused = true;
  } else if (r.code() == grpc::StatusCode::ALREADY_EXISTS &&
             r.message().find("override_reason") != std::string::npos) {
    std::printf("  (an earlier run recorded it with an override reason)\n");
  } else if (r.code() == grpc::StatusCode::ABORTED) {
    std::printf(
        "  (no rule stopped it: the earlier cash aid was in an earlier month; the "
        "chain wrote nothing)\n");
  } else {
    Fail("a second cash aid this month without a reason must be refused by the aid rule");
  }

  v1::WriteResult paid;
  status = client.WithRetries("Disburse", [&](grpc::ClientContext* c) {
    return client.stub().Disburse(c, with_reason, &paid);
  });
  if (!status.ok()) FailRpc("Disburse (the second cash aid, with an override reason)", status);
  outcome.seq = paid.seq();
  outcome.duplicate = paid.duplicate();
  v1::GetEntryRequest get;
  get.set_seq(paid.seq());
  v1::Entry entry;
  status = client.WithRetries(
      "GetEntry", [&](grpc::ClientContext* c) { return client.stub().GetEntry(c, get, &entry); });
  if (!status.ok()) FailRpc("GetEntry (the overridden cash aid)", status);
  std::printf("  with the reason \"%s\": entry %" PRIu64 "%s\n    %s\n", kOverrideReason,
              paid.seq(), paid.duplicate() ? " (recorded by an earlier run)" : "",
              entry.summary().c_str());
  if (entry.summary().find(Format("(override: %s)", kOverrideReason)) == std::string::npos) {
    Fail("the overridden disbursement's entry should show its override reason");
  }
  return outcome;
}

// The rules in force must be the plan's (the demo's district sets no other).
bool CheckAidRulesEqualPlan(Client& client) {
  v1::AidRules rules;
  grpc::Status status = client.WithRetries("ListAidRules", [&](grpc::ClientContext* c) {
    return client.aid().ListAidRules(c, v1::ListAidRulesRequest(), &rules);
  });
  if (!status.ok()) FailRpc("ListAidRules", status);
  std::map<std::string, const v1::AidRule*> server;
  for (const v1::AidRule& r : rules.rules()) server[r.aid()] = &r;
  bool same = true;
  std::printf("\n%-20s %-14s %-24s %-5s %4s %-8s %9s\n", "aid rule", "counts", "source", "asset",
              "max", "per", "set by");
  for (const AidRulePlan& plan : kAidRules) {
    auto it = server.find(plan.aid);
    if (it == server.end()) {
      std::printf("%-20s missing from ListAidRules\n", plan.aid);
      same = false;
      continue;
    }
    const v1::AidRule& r = *it->second;
    const bool row_same = r.type() == plan.type && r.source() == plan.source &&
                          r.asset() == plan.asset && r.max_count() == plan.max_count &&
                          r.period() == plan.period && r.memo() == plan.memo;
    std::printf("%-20s %-14s %-24s %-5s %4u %-8s %9s%s\n", r.aid().c_str(),
                Lower(v1::EntryType_Name(r.type())).c_str(), r.source().c_str(),
                r.asset().empty() ? "any" : r.asset().c_str(), r.max_count(),
                Lower(v1::AidPeriod_Name(r.period())).c_str(),
                Format("entry %" PRIu64, r.seq()).c_str(), row_same ? "" : "  <- differs");
    same = same && row_same;
  }
  return same;
}

// Totals of a report's cells by type, for the summary lines.
struct AidTotals {
  uint64_t cells = 0;
  uint64_t people = 0;  // summed over cells (one person in two cells counts twice)
  uint64_t entries = 0;
  int64_t amount = 0;
};

// The office and the public aid report over all time. The public one, asked
// without a token, must show only cells of at least min_people people, each
// exactly as the office sees it, and account for the rest in
// suppressed_cells.
bool ShowAidReports(Client& client) {
  v1::AidReportRequest request;  // from the start until now
  v1::AidReport office;
  grpc::Status status = client.WithRetries("GetAidReport", [&](grpc::ClientContext* c) {
    return client.aid().GetAidReport(c, request, &office);
  });
  if (!status.ok()) FailRpc("GetAidReport (office)", status);
  request.set_public_view(true);
  v1::AidReport published;
  status = client.WithRetries(
      "GetAidReport",
      [&](grpc::ClientContext* c) { return client.aid().GetAidReport(c, request, &published); },
      Client::Token::kTokenless);
  if (!status.ok()) FailRpc("GetAidReport (public, without a token)", status);

  const auto key = [](const v1::AidCell& c) {
    return std::make_tuple(c.category(), c.community(), static_cast<int>(c.type()), c.asset());
  };
  std::map<std::tuple<std::string, std::string, int, std::string>, const v1::AidCell*> cells;
  for (const v1::AidCell& c : office.cells()) cells[key(c)] = &c;
  std::map<std::pair<int, std::string>, AidTotals> office_totals, public_totals;
  for (const v1::AidCell& c : office.cells()) {
    AidTotals& t = office_totals[{static_cast<int>(c.type()), c.asset()}];
    t.cells += 1;
    t.people += c.people();
    t.entries += c.entries();
    t.amount += c.amount();
  }
  bool ok = published.min_people() > 0 && published.public_view() && !office.public_view();
  for (const v1::AidCell& c : published.cells()) {
    auto it = cells.find(key(c));
    if (c.people() < published.min_people() || it == cells.end() ||
        it->second->SerializeAsString() != c.SerializeAsString()) {
      std::printf("public cell %s/%s %s %s: %" PRIu64 " people, not as the office sees it\n",
                  c.category().c_str(), c.community().c_str(), v1::EntryType_Name(c.type()).c_str(),
                  c.asset().c_str(), c.people());
      ok = false;
    }
    AidTotals& t = public_totals[{static_cast<int>(c.type()), c.asset()}];
    t.cells += 1;
    t.people += c.people();
    t.entries += c.entries();
    t.amount += c.amount();
  }
  uint64_t small = 0;
  for (const v1::AidCell& c : office.cells()) {
    if (c.people() < published.min_people()) small += 1;
  }
  ok = ok && small == published.suppressed_cells() &&
       static_cast<uint64_t>(published.cells_size()) + small ==
           static_cast<uint64_t>(office.cells_size());

  const auto aid_name = [](int type) {
    return type == v1::DISBURSEMENT    ? "cash aid"
           : type == v1::VOUCHER_ISSUE ? "vouchers"
                                       : "goods handouts";
  };
  std::printf("\naid report, all time, by category and community (%s office cells)\n",
              Grouped(static_cast<uint64_t>(office.cells_size())).c_str());
  std::printf(
      "%-16s %-20s %10s %10s %24s   %s\n", "aid", "asset", "people", "entries", "amount",
      ("public view (cells of at least " + std::to_string(published.min_people()) + " people)")
          .c_str());
  for (const auto& [type_asset, t] : office_totals) {
    const AidTotals& p = public_totals[type_asset];
    const std::string& asset = type_asset.second;
    std::printf("%-16s %-20s %10s %10s %24s   %s of %s cells, %s people\n",
                aid_name(type_asset.first), asset.c_str(), Grouped(t.people).c_str(),
                Grouped(t.entries).c_str(), AmountText(asset, t.amount).c_str(),
                Grouped(p.cells).c_str(), Grouped(t.cells).c_str(), Grouped(p.people).c_str());
  }
  std::printf(
      "the public report (asked without a token) shows %s cells and leaves out %s of "
      "fewer than %" PRIu64 " people, so that no one can be singled out%s\n",
      Grouped(static_cast<uint64_t>(published.cells_size())).c_str(),
      Grouped(published.suppressed_cells()).c_str(), published.min_people(),
      ok ? "" : "  <- WRONG");
  return ok;
}

int Main(int argc, char** argv) {
  const Flags flags = ParseFlags(argc, argv);
  const SteadyClock::time_point start = SteadyClock::now();
  Client client(flags);
  std::printf("warmledger-demo: server %s, seed %" PRIu64 ", scale %s\n", flags.server.c_str(),
              flags.seed, flags.scale_text.c_str());

  v1::Registry registry;
  {
    v1::GetRegistryRequest request;
    grpc::Status status = client.WithRetries("GetRegistry", [&](grpc::ClientContext* c) {
      return client.stub().GetRegistry(c, request, &registry);
    });
    if (!status.ok()) FailRpc("GetRegistry", status);
  }
  if (registry.categories().empty() || registry.communities().empty()) {
    Fail(Format("the server's registry has %d categories and %d communities; the demo needs both",
                registry.categories_size(), registry.communities_size()));
  }
  std::printf("registry: %d categories, %d communities%s\n", registry.categories_size(),
              registry.communities_size(),
              registry.categories_size() == 11 && registry.communities_size() == 175
                  ? " (the district's 11 and 175)"
                  : " (the district has 11 and 175; loading with what is configured)");

  Plan plan(flags, registry);
  std::printf("plan: %s operations (%s recipients, %s donations, %s allocations, %s "
              "disbursements)\n",
              Grouped(plan.total_ops()).c_str(), Grouped(plan.recipients_count()).c_str(),
              Grouped(plan.donations_count()).c_str(), Grouped(plan.allocations_count()).c_str(),
              Grouped(plan.disbursements_count()).c_str());
  for (const CategoryPlan& c : plan.categories()) {
    std::printf("  category %-24s %s\n", c.code.c_str(),
                c.student ? "children: education aid and scholarships"
                : c.source == AidSource::kDisasterRelief
                    ? Format("disaster relief cash aid, %s yuan", Yuan(c.cash_aid_fen).c_str())
                          .c_str()
                    : Format("cash aid, %s yuan", Yuan(c.cash_aid_fen).c_str()).c_str());
  }

  v1::Head head_before;
  {
    v1::GetHeadRequest request;
    grpc::Status status = client.WithRetries("GetHead", [&](grpc::ClientContext* c) {
      return client.stub().GetHead(c, request, &head_before);
    });
    if (!status.ok()) FailRpc("GetHead", status);
  }
  std::printf("ledger head before: seq %s\n", Grouped(head_before.seq()).c_str());
  CheckServerIsPrefix(plan, FundSummaries(client));

  Loader loader(client, plan);
  const SteadyClock::time_point load_start = SteadyClock::now();
  const Counters counters = loader.Run();
  const double load_seconds = SecondsSince(load_start);
  const AidOverrideOutcome aid_override = ShowAidOverride(client, plan);

  v1::Head head_after;
  {
    v1::GetHeadRequest request;
    grpc::Status status = client.WithRetries("GetHead", [&](grpc::ClientContext* c) {
      return client.stub().GetHead(c, request, &head_after);
    });
    if (!status.ok()) FailRpc("GetHead", status);
  }

  std::printf("\nsummary (seed %" PRIu64 ", scale %s)\n", flags.seed, flags.scale_text.c_str());
  std::printf("  operations     %s: %s written, %s duplicate (already in the ledger)%s\n",
              Grouped(plan.total_ops()).c_str(), Grouped(counters.written).c_str(),
              Grouped(counters.duplicate).c_str(),
              counters.existing_accounts > 0
                  ? Format(", %s accounts opened earlier",
                           Grouped(counters.existing_accounts).c_str())
                        .c_str()
                  : "");
  std::printf("  recipients     %s in %d categories and %d communities\n",
              Grouped(plan.recipients_count()).c_str(), registry.categories_size(),
              registry.communities_size());
  std::printf("  99 Giving Day  %s donations (%s anonymous), %s yuan\n",
              Grouped(plan.giving_day_count()).c_str(), Grouped(plan.anonymous_count()).c_str(),
              Yuan(plan.giving_day_fen()).c_str());
  std::printf("  named projects One heart, one bench %s yuan; A home for the elderly %s yuan\n",
              Yuan(kBenchGiftFen).c_str(), Yuan(kElderlyHomeFen).c_str());
  std::printf("  relief         %s donations, %s yuan\n", Grouped(plan.relief_count()).c_str(),
              Yuan(plan.relief_fen()).c_str());
  std::printf("  total raised   %s yuan in %s donations\n", Yuan(plan.raised_fen()).c_str(),
              Grouped(plan.donations_count()).c_str());
  std::printf("  spent          %s yuan in %s disbursements (%s cash aid, %s scholarships); "
              "%s allocations\n",
              Yuan(plan.disbursed_fen()).c_str(), Grouped(plan.disbursements_count()).c_str(),
              Grouped(plan.cash_aid_count()).c_str(), Grouped(plan.scholarships_count()).c_str(),
              Grouped(plan.allocations_count()).c_str());
  const Figures& general = plan.general();
  std::printf("  checkout       %s purchases at %zu stores, %s yuan of sales (%s with a member), "
              "%s yuan to fund/general; %s refunds (%s partial) reversing %s yuan\n",
              Grouped(plan.purchases_count()).c_str(), std::size(kStores),
              Yuan(plan.sales_fen()).c_str(), Grouped(plan.members_count()).c_str(),
              Yuan(general.contributions).c_str(), Grouped(plan.refunds_count()).c_str(),
              Grouped(plan.partial_refunds_count()).c_str(),
              Yuan(general.refund_reversals).c_str());
  std::printf("  vouchers       %s issued from fund/general, %s yuan; %s redemptions, %s yuan; "
              "%s voided (%s yuan back); %s yuan outstanding\n",
              Grouped(plan.vouchers_count()).c_str(), Yuan(general.vouchers_issued).c_str(),
              Grouped(plan.redemptions_count()).c_str(), Yuan(plan.redeemed_fen()).c_str(),
              plan.voided_voucher() ? "1" : "0", Yuan(general.vouchers_returned).c_str(),
              Yuan(general.vouchers_issued - general.vouchers_returned - plan.redeemed_fen())
                  .c_str());
  std::printf("  goods          %zu items; %s bottles of disinfectant given (appraised %s yuan); "
              "%s boxes of daily necessities bought for %s yuan and handed out to %s "
              "households with %s bottles of disinfectant; %s kg of vegetables given, %s kg "
              "spoiled and written off, %s kg sold to the charity supermarket for %s yuan\n",
              plan.items().size(), Grouped(kDisinfectantBottles).c_str(),
              Yuan(kDisinfectantBottles * kDisinfectantBottleValueFen).c_str(),
              Grouped(plan.box_households_count()).c_str(), Yuan(plan.goods_bought_fen()).c_str(),
              Grouped(plan.box_households_count()).c_str(),
              Grouped(plan.box_households_count() * kDisinfectantPerHousehold).c_str(),
              Grouped(kVegetablesKg).c_str(), Grouped(kVegetablesSpoiledKg).c_str(),
              Grouped(kVegetablesKg - kVegetablesSpoiledKg).c_str(),
              Yuan(plan.goods_sales_fen()).c_str());
  std::printf(
      "  aid rules      %zu set before any aid; the plan keeps them%s\n", std::size(kAidRules),
      !aid_override.tried ? ""
      : aid_override.refused
          ? Format("; a second cash aid was refused and then paid with an override "
                   "(entry %" PRIu64 ")",
                   aid_override.seq)
                .c_str()
          : Format("; the cash aid paid with an override is entry %" PRIu64, aid_override.seq)
                .c_str());
  std::printf("  ledger head    seq %s -> %s\n", Grouped(head_before.seq()).c_str(),
              Grouped(head_after.seq()).c_str());
  std::printf("  time           %.2f s loading (%.0f ops/s), %.2f s in all, %s retries\n",
              load_seconds,
              load_seconds > 0 ? static_cast<double>(plan.total_ops()) / load_seconds : 0.0,
              SecondsSince(start), Grouped(client.retries()).c_str());

  bool ok = CheckServerEqualsPlan(plan, FundSummaries(client));
  std::printf(ok ? "the server's fund summaries equal the plan to the fen\n"
                 : "THE SERVER'S FUND SUMMARIES DIFFER FROM THE PLAN\n");
  const bool settled = CheckSettlementEqualsPlan(client, plan);
  std::printf(settled ? "the server's store settlements equal the plan to the fen\n"
                      : "THE SERVER'S STORE SETTLEMENTS DIFFER FROM THE PLAN\n");
  ok = ok && settled;
  const bool stocked = CheckItemsEqualPlan(client, plan);
  std::printf(stocked ? "the server's goods catalogue and stocks equal the plan to the unit\n"
                      : "THE SERVER'S STOCKS DIFFER FROM THE PLAN\n");
  ok = ok && stocked;
  const bool ruled = CheckAidRulesEqualPlan(client);
  std::printf(ruled ? "the server's aid rules equal the plan\n"
                    : "THE SERVER'S AID RULES DIFFER FROM THE PLAN\n");
  ok = ok && ruled;
  const bool reported = ShowAidReports(client);
  std::printf(reported ? "the public aid report is the office's without its small cells\n"
                       : "THE PUBLIC AID REPORT IS WRONG\n");
  ok = ok && reported;
  if (std::optional<ShownTrace> boxes = GiftThatBoughtBoxes(client, plan)) {
    plan.shown().push_back(*std::move(boxes));
  }

  size_t shown_count = 0;
  for (const ShownTrace& shown : plan.shown()) {
    if (shown_count == kShownTracesMax) break;
    if (shown.trace_code.empty()) {
      std::printf("\n%s: the server returned no trace code\n", shown.label.c_str());
      ok = false;
      continue;
    }
    ok = ShowTrace(client, shown) && ok;
    shown_count += 1;
  }

  const bool default_server = flags.server == kDefaultServer;
  const std::string server_flag = default_server ? "" : " --server=" + flags.server;
  std::printf("\nTry it (the CLI speaks gRPC itself; no grpcurl needed):\n");
  for (const ShownTrace& shown : plan.shown()) {
    if (shown.trace_code.empty()) continue;
    std::printf("  build/bin/warmledger trace --code=%s%s   # %s\n", shown.trace_code.c_str(),
                server_flag.c_str(), shown.label.c_str());
  }
  std::printf("  build/bin/warmledger funds%s        # every fund and project: raised, spent, "
              "held\n",
              server_flag.c_str());
  std::printf("  build/bin/warmledger settlement --from=2024-01-01%s   # per store: sales, 2%% "
              "contributions, refunds, vouchers redeemed\n",
              server_flag.c_str());
  std::printf("  build/bin/warmledger voucher-report%s   # vouchers by fund and category\n",
              server_flag.c_str());
  std::printf("  build/bin/warmledger items%s   # the goods catalogue and what the stocks hold\n",
              server_flag.c_str());
  std::printf("  build/bin/warmledger aid-rules%s   # how often one person may get one aid\n",
              server_flag.c_str());
  std::printf(
      "  build/bin/warmledger aid-report --from=2024-01-01 --public%s   # aid by "
      "category and community, small cells left out (no token needed)\n",
      server_flag.c_str());
  if (plan.box_purchase_seq() != 0) {
    std::printf("  build/bin/warmledger trace-entry --seq=%" PRIu64
                " --limit=5%s   # the gifts that paid for the boxes\n",
                plan.box_purchase_seq(), server_flag.c_str());
  }
  if (plan.vouchers_count() > 0 && !plan.voucher_code(0).empty()) {
    std::printf("  build/bin/warmledger voucher --code=%s%s   # one aid voucher\n",
                plan.voucher_code(0).c_str(), server_flag.c_str());
  }
  std::printf("  build/bin/warmledger tail --from=%" PRIu64
              "%s   # the last entries, then each new one as it is committed (auditor or "
              "admin token%s)\n",
              head_after.seq() > 9 ? head_after.seq() - 9 : 1, server_flag.c_str(),
              flags.token.empty() ? "; none needed in --dev" : "");
  std::printf("A trace code is all a donor needs: TraceByCode is public, no account or token.\n");
  std::printf("Run this demo again with the same --seed and --scale: every write comes back as a "
              "duplicate and nothing changes.\n");
  return ok ? 0 : 1;
}

}  // namespace
}  // namespace warmledger::demo

int main(int argc, char** argv) { return warmledger::demo::Main(argc, argv); }

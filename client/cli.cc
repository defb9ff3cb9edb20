#include "client/cli.h"

#include <fcntl.h>
#include <google/protobuf/util/json_util.h>
#include <grpcpp/client_context.h>
#include <grpcpp/support/sync_stream.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstring>
#include <ctime>
#include <functional>
#include <istream>
#include <limits>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <variant>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "client/client.h"
#include "client/flag_parser.h"
#include "ledger/limits.h"
#include "ledger/note.h"
#include "ledger/status_macros.h"
#include "ledger/types.h"
#include "warmledger/v1/ledger.grpc.pb.h"

namespace warmledger::client {
namespace {

namespace v1 = ::warmledger::v1;

// ---------------------------------------------------------------- limits

// Entries asked for per Export.ListEntries call by `entries`: each call gets
// its own deadline, so a long export is many short, bounded calls.
constexpr uint64_t kExportEntriesPerCall = 10'000;
// Bytes buffered before a write() while exporting to a file.
constexpr size_t kExportBufferBytes = 1 << 20;
// Slices of one posting that `entry` prints in human form (--json has all).
constexpr int kSlicesShownMax = 20;
// Characters of an ID number read from stdin (18 expected; a bound on input).
constexpr size_t kIdNumberLineBytesMax = 64;
// A verifier key file (`--key=@PATH`): one line of about 100 characters.
constexpr size_t kVerifierKeyFileBytesMax = 64 * 1024;
// A saved checkpoint note (`watch --state`): a few lines and signatures.
constexpr size_t kStateFileBytesMax = 1024 * 1024;
// The longest wait for a receipt the server accepts (GetReceiptRequest.wait_ms).
constexpr int64_t kReceiptWaitMsMax = 5000;
// `watch` checks for SIGINT/SIGTERM this often while it sleeps.
constexpr int64_t kWatchSignalPollMs = 100;
// A `handout --lines_file`: kHandoutLinesMax lines of a recipient id (at
// most 64 bytes) and a quantity, with room for comments.
constexpr size_t kHandoutLinesFileBytesMax = 1024 * 1024;
// Rows of parents, conversion places and lots behind a source that the
// human form of a trace prints (--json has all the server sent).
constexpr int kTraceRowsShownMax = 50;

// Marks a status as a command-line mistake (exit code 2) rather than a failed
// call (exit code 1).
constexpr char kUsagePayloadUrl[] = "type.warmledger/client.usage";

absl::Status UsageError(absl::string_view message) {
  absl::Status status = absl::InvalidArgumentError(message);
  status.SetPayload(kUsagePayloadUrl, absl::Cord("1"));
  return status;
}

bool IsUsageError(const absl::Status& status) {
  return status.GetPayload(kUsagePayloadUrl).has_value();
}

void PrintError(std::ostream& err, const absl::Status& status) {
  err << "error: " << absl::StatusCodeToString(status.code()) << ": " << status.message() << '\n';
}

// ---------------------------------------------------------------- text

bool IsWide(uint32_t cp) {
  return (cp >= 0x1100 && cp <= 0x115F) || (cp >= 0x2E80 && cp <= 0x303E) ||
         (cp >= 0x3041 && cp <= 0x33FF) || (cp >= 0x3400 && cp <= 0x4DBF) ||
         (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0xA000 && cp <= 0xA4CF) ||
         (cp >= 0xAC00 && cp <= 0xD7A3) || (cp >= 0xF900 && cp <= 0xFAFF) ||
         (cp >= 0xFE30 && cp <= 0xFE4F) || (cp >= 0xFF00 && cp <= 0xFF60) ||
         (cp >= 0xFFE0 && cp <= 0xFFE6) || (cp >= 0x20000 && cp <= 0x3FFFD);
}

// Decodes one UTF-8 code point at s[*i]; malformed bytes decode as U+FFFD.
uint32_t NextCodePoint(std::string_view s, size_t* i) {
  const auto c = static_cast<unsigned char>(s[*i]);
  size_t n = 1;
  uint32_t cp = c;
  if (c >= 0xC2 && c <= 0xDF) {
    n = 2;
    cp = c & 0x1F;
  } else if (c >= 0xE0 && c <= 0xEF) {
    n = 3;
    cp = c & 0x0F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    n = 4;
    cp = c & 0x07;
  } else if (c >= 0x80) {
    ++*i;
    return 0xFFFD;
  }
  if (*i + n > s.size()) {
    ++*i;
    return 0xFFFD;
  }
  for (size_t k = 1; k < n; ++k) {
    const auto cc = static_cast<unsigned char>(s[*i + k]);
    if ((cc & 0xC0) != 0x80) {
      ++*i;
      return 0xFFFD;
    }
    cp = (cp << 6) | (cc & 0x3F);
  }
  *i += n;
  return cp;
}

// Text from the server (names, memos, summaries) may contain anything; a
// terminal must never receive its control characters (escape sequences).
std::string Printable(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    const size_t start = i;
    const uint32_t cp = NextCodePoint(s, &i);
    if (cp < 0x20 || cp == 0x7F || (cp >= 0x80 && cp <= 0x9F) || cp == 0xFFFD) {
      out.push_back('?');
    } else {
      out.append(s.substr(start, i - start));
    }
  }
  return out;
}

// A JSON string literal. Malformed UTF-8 becomes U+FFFD; control characters
// are escaped.
std::string JsonString(std::string_view s) {
  std::string out = "\"";
  size_t i = 0;
  while (i < s.size()) {
    const size_t start = i;
    const uint32_t cp = NextCodePoint(s, &i);
    if (cp == '"') {
      out += "\\\"";
    } else if (cp == '\\') {
      out += "\\\\";
    } else if (cp < 0x20) {
      out += absl::StrFormat("\\u%04x", cp);
    } else if (cp == 0xFFFD && i - start == 1) {
      out += "\\ufffd";
    } else {
      out.append(s.substr(start, i - start));
    }
  }
  out += '"';
  return out;
}

// One JSON object for answers that are not protos. Names are lowerCamelCase
// and 64-bit integers decimal strings, as in the proto JSON of the others.
class JsonObject {
 public:
  JsonObject& Add(std::string_view name, std::string_view value) {
    absl::StrAppend(&text_, text_.empty() ? "{" : ",", JsonString(name), ":", JsonString(value));
    return *this;
  }
  JsonObject& AddBool(std::string_view name, bool value) {
    return AddEncoded(name, value ? "true" : "false");
  }
  // `value` is already a JSON value.
  JsonObject& AddEncoded(std::string_view name, std::string_view value) {
    absl::StrAppend(&text_, text_.empty() ? "{" : ",", JsonString(name), ":", ToAbsl(value));
    return *this;
  }
  std::string Text() const { return text_.empty() ? "{}" : text_ + "}"; }

 private:
  std::string text_;
};

// Text from the server that is printed raw (a note, a receipt) so that it can
// be saved and checked byte for byte: refused rather than altered if it holds
// anything a terminal would interpret.
absl::Status CheckPrintableText(std::string_view text, std::string_view what) {
  for (std::string_view rest = text; !rest.empty();) {
    const size_t newline = rest.find('\n');
    const std::string_view line = rest.substr(0, newline);
    if (Printable(line) != line) {
      return absl::DataLossError(
          absl::StrCat("the server's ", ToAbsl(what), " holds control characters"));
    }
    rest = newline == std::string_view::npos ? std::string_view() : rest.substr(newline + 1);
  }
  return absl::OkStatus();
}

size_t DisplayWidth(std::string_view s) {
  size_t width = 0;
  size_t i = 0;
  while (i < s.size()) width += IsWide(NextCodePoint(s, &i)) ? 2 : 1;
  return width;
}

enum class Align { kLeft, kRight };

// An aligned text table. Cells are made printable when added.
class Table {
 public:
  struct Column {
    std::string header;
    Align align = Align::kLeft;
  };
  explicit Table(std::vector<Column> columns) : columns_(std::move(columns)) {}

  void AddRow(std::vector<std::string> cells) {
    WL_CHECK(cells.size() == columns_.size());
    for (std::string& c : cells) c = Printable(c);
    rows_.push_back(std::move(cells));
  }
  bool empty() const { return rows_.empty(); }

  void Print(std::ostream& out) const {
    std::vector<size_t> widths(columns_.size());
    for (size_t c = 0; c < columns_.size(); ++c) widths[c] = DisplayWidth(columns_[c].header);
    for (const auto& row : rows_) {
      for (size_t c = 0; c < row.size(); ++c) {
        widths[c] = std::max(widths[c], DisplayWidth(row[c]));
      }
    }
    const auto print_row = [&](const std::vector<std::string>& cells) {
      std::string line;
      for (size_t c = 0; c < cells.size(); ++c) {
        const std::string pad(widths[c] - DisplayWidth(cells[c]), ' ');
        const bool last = c + 1 == cells.size();
        if (columns_[c].align == Align::kRight) {
          absl::StrAppend(&line, pad, cells[c]);
        } else {
          absl::StrAppend(&line, cells[c], last ? "" : pad);
        }
        if (!last) line += "  ";
      }
      out << line << '\n';
    };
    if (rows_.empty()) {
      out << "(none)\n";
      return;
    }
    std::vector<std::string> headers;
    for (const Column& c : columns_) headers.push_back(c.header);
    print_row(headers);
    for (const auto& row : rows_) print_row(row);
  }

 private:
  std::vector<Column> columns_;
  std::vector<std::vector<std::string>> rows_;
};

// "key   value" lines with the values aligned.
void PrintFields(std::ostream& out,
                 const std::vector<std::pair<std::string, std::string>>& fields) {
  size_t width = 0;
  for (const auto& [key, value] : fields) width = std::max(width, key.size());
  for (const auto& [key, value] : fields) {
    out << key << std::string(width - key.size() + 2, ' ') << Printable(value) << '\n';
  }
}

// China time (UTC+08:00, no daylight saving), to the second.
std::string FormatChinaTimeUs(int64_t time_us) {
  constexpr int64_t kChinaOffsetS = 8 * 3600;
  int64_t seconds = time_us / 1'000'000;
  if (time_us % 1'000'000 < 0) --seconds;
  const time_t t = static_cast<time_t>(seconds + kChinaOffsetS);
  struct tm tm;
  if (gmtime_r(&t, &tm) == nullptr) return absl::StrCat(time_us, "us");
  char buf[64];
  return std::string(buf, std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", &tm));
}

// Local time, to the second (or microsecond); "-" for 0 (unset).
std::string FormatTimeUs(int64_t time_us, bool with_micros = false) {
  if (time_us == 0) return "-";
  int64_t seconds = time_us / 1'000'000;
  int64_t micros = time_us % 1'000'000;
  if (micros < 0) {
    micros += 1'000'000;
    --seconds;
  }
  const time_t t = static_cast<time_t>(seconds);
  struct tm tm;
  if (localtime_r(&t, &tm) == nullptr) return absl::StrCat(time_us, "us");
  char buf[64];
  const size_t n = std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", &tm);
  std::string out(buf, n);
  if (with_micros) {
    char frac[16];
    std::snprintf(frac, sizeof frac, ".%06lld", static_cast<long long>(micros));
    out += frac;
  }
  return out;
}

// "DONATION" -> "donation", "OPEN_ACCOUNT" -> "open-account".
std::string LowerName(const std::string& proto_name, int value, std::string_view unknown_prefix) {
  if (proto_name.empty()) return absl::StrCat(ToAbsl(unknown_prefix), value);
  std::string s = absl::AsciiStrToLower(proto_name);
  for (char& c : s) {
    if (c == '_') c = '-';
  }
  return s;
}

std::string TypeName(v1::EntryType type) {
  return LowerName(v1::EntryType_Name(type), static_cast<int>(type), "type-");
}

std::string KindName(v1::AccountKind kind) {
  if (kind == v1::ACCOUNT_KIND_UNSPECIFIED) return "-";
  return LowerName(v1::AccountKind_Name(kind), static_cast<int>(kind), "kind-");
}

std::string SignedAmount(std::string_view asset, int64_t amount) {
  std::string s = FormatAmount(asset, amount);
  return amount > 0 ? "+" + s : s;
}

std::string DonorText(const std::string& donor, bool anonymous) {
  if (donor.empty()) return anonymous ? "(anonymous)" : "-";
  return anonymous ? donor + " (anonymous)" : donor;
}

std::string YesNo(bool b) { return b ? "yes" : "no"; }

// ---------------------------------------------------------------- flag values

absl::StatusOr<v1::AccountKind> ParseKind(std::string_view text, bool allow_recipient) {
  static constexpr std::pair<std::string_view, v1::AccountKind> kKinds[] = {
      {"donor", v1::DONOR},       {"fund", v1::FUND},       {"project", v1::PROJECT},
      {"voucher", v1::VOUCHER},   {"stock", v1::STOCK},     {"merchant", v1::MERCHANT},
      {"supplier", v1::SUPPLIER}, {"expense", v1::EXPENSE}, {"recipient", v1::RECIPIENT},
  };
  for (const auto& [name, kind] : kKinds) {
    if (name == text && (allow_recipient || kind != v1::RECIPIENT)) return kind;
  }
  return UsageError(absl::StrCat(
      "--kind must be one of fund, project, donor, supplier, expense, merchant, voucher, stock",
      allow_recipient ? ", recipient" : "", " (not \"", ToAbsl(text), "\")"));
}

// --channel names; the persisted numbering is the proto's (docs/format.md).
constexpr std::pair<std::string_view, v1::DonationChannel> kChannels[] = {
    {"counter", v1::COUNTER},
    {"online", v1::ONLINE_CAMPAIGN},
    {"bank", v1::BANK_TRANSFER},
    {"company", v1::COMPANY_GIFT},
};

// The --channel name of a channel value; "-" when unspecified.
std::string ChannelName(int value) {
  if (value == v1::CHANNEL_UNSPECIFIED) return "-";
  for (const auto& [name, channel] : kChannels) {
    if (channel == value) return std::string(name);
  }
  return absl::StrCat("channel-", value);
}

absl::StatusOr<v1::DonationChannel> ParseChannel(std::string_view text) {
  if (text.empty()) return v1::CHANNEL_UNSPECIFIED;
  for (const auto& [name, channel] : kChannels) {
    if (name == text) return channel;
  }
  return UsageError(absl::StrCat("--channel must be counter, online, bank or company (not \"",
                                 ToAbsl(text), "\")"));
}

// The amount of a write: exactly one of --amount (minor units or goods units)
// and --yuan (money only, converted exactly).
struct AmountFlags {
  int64_t amount = 0;
  std::string yuan;
  std::string asset = "CNY";

  void Register(FlagSet& flags) {
    flags.AddInt64("amount", &amount, "amount in minor units (fen for CNY) or goods units");
    flags.AddString("yuan", &yuan, "amount in yuan, e.g. 12.34 (instead of --amount)");
    flags.AddString("asset", &asset, "asset code: CNY or item:<code>");
  }

  absl::StatusOr<int64_t> Resolve(const FlagSet& flags) const {
    const bool has_amount = flags.Seen("amount");
    const bool has_yuan = flags.Seen("yuan");
    if (has_amount && has_yuan) return UsageError("give --amount or --yuan, not both");
    if (!has_amount && !has_yuan) return UsageError("missing --amount (or --yuan)");
    if (has_amount) return amount;
    if (asset.substr(0, 5) == "item:") {
      return UsageError("--yuan is for money; give goods as --amount units");
    }
    absl::StatusOr<int64_t> fen = ParseYuanToFen(yuan);
    if (!fen.ok()) return UsageError(absl::StrCat("--yuan: ", fen.status().message()));
    return fen;
  }
};

// A point in time: at most one of --NAME (a day in China time or RFC 3339,
// see ParseTimeUs) and --NAME_us (microseconds since the epoch, like the
// other *_us flags).
struct TimeFlags {
  std::string name;
  std::string text;
  int64_t us = 0;

  explicit TimeFlags(std::string flag_name) : name(std::move(flag_name)) {}

  void Register(FlagSet& flags, std::string_view help) {
    flags.AddString(name, &text,
                    absl::StrCat(ToAbsl(help), ": YYYY-MM-DD (00:00 China time) or RFC 3339, ",
                                 "e.g. 2024-09-01T18:30:00+08:00"));
    flags.AddInt64(name + "_us", &us,
                   absl::StrCat(ToAbsl(help), ", in microseconds since the epoch (instead of --",
                                name, ")"));
  }

  bool Seen(const FlagSet& flags) const {
    return flags.Seen(name) || flags.Seen(name + "_us");
  }

  // The time given, or nullopt when neither flag was.
  absl::StatusOr<std::optional<int64_t>> Resolve(const FlagSet& flags) const {
    const bool has_text = flags.Seen(name);
    const bool has_us = flags.Seen(name + "_us");
    if (has_text && has_us) {
      return UsageError(absl::StrCat("give --", name, " or --", name, "_us, not both"));
    }
    if (has_us) {
      if (us < 0) return UsageError(absl::StrCat("--", name, "_us must not be negative"));
      return std::optional<int64_t>(us);
    }
    if (!has_text) return std::optional<int64_t>();
    absl::StatusOr<int64_t> parsed = ParseTimeUs(text);
    if (!parsed.ok()) return UsageError(absl::StrCat("--", name, ": ", parsed.status().message()));
    return std::optional<int64_t>(*parsed);
  }
};

// A money amount other than the main --amount (a price, proceeds, an
// appraised value): at most one of --NAME (minor units) and --NAME_yuan
// (yuan, converted exactly).
struct MoneyAmountFlags {
  std::string name;
  int64_t minor = 0;
  std::string yuan;

  explicit MoneyAmountFlags(std::string flag_name) : name(std::move(flag_name)) {}

  void Register(FlagSet& flags, std::string_view help) {
    flags.AddInt64(name, &minor, absl::StrCat(ToAbsl(help), " in minor units (fen for CNY)"));
    flags.AddString(name + "_yuan", &yuan,
                    absl::StrCat(ToAbsl(help), " in yuan, e.g. 12.34 (instead of --", name, ")"));
  }

  bool Seen(const FlagSet& flags) const {
    return flags.Seen(name) || flags.Seen(name + "_yuan");
  }

  // The amount given, or nullopt when neither flag was.
  absl::StatusOr<std::optional<int64_t>> Resolve(const FlagSet& flags) const {
    const bool has_minor = flags.Seen(name);
    const bool has_yuan = flags.Seen(name + "_yuan");
    if (has_minor && has_yuan) {
      return UsageError(absl::StrCat("give --", name, " or --", name, "_yuan, not both"));
    }
    if (has_minor) return std::optional<int64_t>(minor);
    if (!has_yuan) return std::optional<int64_t>();
    absl::StatusOr<int64_t> fen = ParseYuanToFen(yuan);
    if (!fen.ok()) return UsageError(absl::StrCat("--", name, "_yuan: ", fen.status().message()));
    return std::optional<int64_t>(*fen);
  }

  // As Resolve, but one of the two is required.
  absl::StatusOr<int64_t> Required(const FlagSet& flags) const {
    WL_ASSIGN_OR_RETURN(const std::optional<int64_t> value, Resolve(flags));
    if (!value.has_value()) {
      return UsageError(absl::StrCat("missing --", name, " (or --", name, "_yuan)"));
    }
    return *value;
  }
};

bool IsLoopback(std::string_view server) {
  if (server.substr(0, 5) == "unix:") return true;
  std::string_view host = server;
  if (host.substr(0, 5) == "ipv4:") host.remove_prefix(5);
  if (host.substr(0, 5) == "ipv6:") host.remove_prefix(5);
  return host.substr(0, 4) == "127." || host.substr(0, 9) == "localhost" ||
         host.substr(0, 5) == "[::1]";
}

// ---------------------------------------------------------------- invocation

// One run of one subcommand: its arguments, the global options and the lazily
// created stubs.
class Invocation {
 public:
  Invocation(std::string command, std::vector<std::string> args, const CliEnvironment& env,
             const CliStreams& streams)
      : command_(std::move(command)), args_(std::move(args)), env_(env), streams_(streams) {}

  std::istream& in() { return streams_.in; }
  std::ostream& out() { return streams_.out; }
  std::ostream& err() { return streams_.err; }
  bool json() const { return json_; }
  const ClientOptions& options() const { return options_; }
  const std::string& command() const { return command_; }

  // Adds the global flags, parses, and applies the environment. Returns false
  // when --help was asked for (the usage text is then already printed).
  absl::StatusOr<bool> Parse(FlagSet& flags) {
    AddGlobalFlags(flags, &options_, &json_);
    absl::Status status = flags.Parse(args_);
    if (!status.ok()) return UsageError(status.message());
    if (flags.help_requested()) {
      out() << flags.Usage();
      return false;
    }
    if (!flags.Seen("server") && !env_.server.empty()) options_.server = env_.server;
    if (!flags.Seen("token") && !env_.token.empty()) options_.token = env_.token;
    if (options_.deadline_ms <= 0) return UsageError("--deadline_ms must be positive");
    if (options_.tls_cert.empty() != options_.tls_key.empty()) {
      return UsageError("--tls_cert and --tls_key go together");
    }
    return true;
  }

  static void AddGlobalFlags(FlagSet& flags, ClientOptions* options, bool* json) {
    constexpr auto kOpt = FlagRequirement::kOptional;
    constexpr auto kGlobal = FlagScope::kGlobal;
    flags.AddString("server", &options->server, "server HOST:PORT (env WARMLEDGER_SERVER)", kOpt,
                    kGlobal);
    flags.AddString("token", &options->token, "bearer token (env WARMLEDGER_TOKEN, preferred)",
                    kOpt, kGlobal);
    flags.AddString("tls_ca", &options->tls_ca, "PEM root CAs; turns on TLS", kOpt, kGlobal);
    flags.AddString("tls_cert", &options->tls_cert, "PEM client certificate (mutual TLS)", kOpt,
                    kGlobal);
    flags.AddString("tls_key", &options->tls_key, "PEM client private key (mutual TLS)", kOpt,
                    kGlobal);
    flags.AddString("tls_server_name", &options->tls_server_name,
                    "name expected in the server certificate", kOpt, kGlobal);
    flags.AddInt64("deadline_ms", &options->deadline_ms, "deadline of each call", kOpt, kGlobal);
    flags.AddBool("json", json, "print responses as proto JSON, one object per line", kGlobal);
  }

  absl::Status Connect() {
    if (channel_ != nullptr) return absl::OkStatus();
    if (!options_.token.empty() && !UsesTls(options_) && !IsLoopback(options_.server)) {
      err() << "warning: sending a token to " << options_.server
            << " without TLS; anyone on the path can read it\n";
    }
    WL_ASSIGN_OR_RETURN(channel_, CreateChannel(options_));
    ledger_ = v1::Ledger::NewStub(channel_);
    export_ = v1::Export::NewStub(channel_);
    admin_ = v1::Admin::NewStub(channel_);
    transparency_ = v1::Transparency::NewStub(channel_);
    checkout_ = v1::Checkout::NewStub(channel_);
    vouchers_ = v1::Vouchers::NewStub(channel_);
    goods_ = v1::Goods::NewStub(channel_);
    aid_ = v1::Aid::NewStub(channel_);
    return absl::OkStatus();
  }

  const std::shared_ptr<grpc::Channel>& channel() const { return channel_; }
  v1::Ledger::Stub& ledger() { return *ledger_; }
  v1::Export::Stub& exporter() { return *export_; }
  v1::Admin::Stub& admin() { return *admin_; }
  v1::Transparency::Stub& transparency() { return *transparency_; }
  v1::Checkout::Stub& checkout() { return *checkout_; }
  v1::Vouchers::Stub& vouchers() { return *vouchers_; }
  v1::Goods::Stub& goods() { return *goods_; }
  v1::Aid::Stub& aid() { return *aid_; }

  // For the few commands with one operand (`verify-receipt FILE`): removes
  // the first argument that is neither a flag nor a flag's value and returns
  // it ("" if there is none). `add_flags` registers the command's flags on a
  // scratch set, so that "--key VALUE" is told apart from an operand. Every
  // mistake (a second operand, an unknown flag) is left for Parse to report.
  std::string TakeOperand(const std::function<void(FlagSet&)>& add_flags) {
    FlagSet scratch("", "");
    add_flags(scratch);
    ClientOptions options;
    bool json = false;
    AddGlobalFlags(scratch, &options, &json);
    absl::StatusOr<size_t> index = scratch.ParseUntilPositional(args_);
    if (!index.ok() || *index >= args_.size() || args_[*index] == "--" ||
        (*index > 0 && args_[*index - 1] == "--")) {
      return "";
    }
    std::string operand = args_[*index];
    args_.erase(args_.begin() + static_cast<long>(*index));
    return operand;
  }

  // Runs one unary call with the deadline and token.
  absl::Status Unary(const std::function<grpc::Status(grpc::ClientContext*)>& call) {
    WL_RETURN_IF_ERROR(Connect());
    grpc::ClientContext context;
    PrepareContext(options_, DeadlinePolicy::kApply, &context);
    return FromGrpcStatus(call(&context));
  }

  absl::Status PrintJson(const google::protobuf::Message& message) {
    google::protobuf::util::JsonPrintOptions print_options;
    print_options.always_print_primitive_fields = true;
    std::string json;
    const auto status = google::protobuf::util::MessageToJsonString(message, &json, print_options);
    if (!status.ok()) {
      return absl::InternalError(absl::StrCat("cannot print JSON: ", status.ToString()));
    }
    out() << json << '\n';
    return absl::OkStatus();
  }

 private:
  std::string command_;
  std::vector<std::string> args_;
  CliEnvironment env_;
  CliStreams streams_;
  ClientOptions options_;
  bool json_ = false;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::Ledger::Stub> ledger_;
  std::unique_ptr<v1::Export::Stub> export_;
  std::unique_ptr<v1::Admin::Stub> admin_;
  std::unique_ptr<v1::Transparency::Stub> transparency_;
  std::unique_ptr<v1::Checkout::Stub> checkout_;
  std::unique_ptr<v1::Vouchers::Stub> vouchers_;
  std::unique_ptr<v1::Goods::Stub> goods_;
  std::unique_ptr<v1::Aid::Stub> aid_;
};

// Parses; on --help returns from the command with OK.
#define WL_PARSE_FLAGS(inv, flags)                                   \
  do {                                                               \
    WL_ASSIGN_OR_RETURN(const bool wl_proceed_, (inv).Parse(flags)); \
    if (!wl_proceed_) return absl::OkStatus();                       \
  } while (0)

std::string Usage(std::string_view command, std::string_view flags) {
  return absl::StrCat("warmledger ", ToAbsl(command), " ", ToAbsl(flags));
}

std::vector<std::pair<std::string, std::string>> WriteFields(const v1::WriteResult& r) {
  std::vector<std::pair<std::string, std::string>> fields = {
      {"seq", absl::StrCat(r.seq())},
      {"time", FormatTimeUs(r.time_us(), true)},
  };
  if (r.duplicate())
    fields.push_back({"duplicate", "yes: a retry, answered with the original result"});
  return fields;
}

absl::Status PrintWriteResult(Invocation& inv, const v1::WriteResult& result) {
  if (inv.json()) return inv.PrintJson(result);
  PrintFields(inv.out(), WriteFields(result));
  return absl::OkStatus();
}

// The --override flag of the writes that aid rules watch (disburse,
// voucher-issue, handout).
void AddOverrideFlag(FlagSet& flags, std::string* reason, std::string_view what) {
  flags.AddString(
      "override", reason,
      absl::StrCat("why ", ToAbsl(what), " despite an aid rule (recorded in the entry)"));
}

// Adds the recorded override reason to a write's printed fields.
void AddOverrideField(std::vector<std::pair<std::string, std::string>>* fields,
                      const std::string& reason) {
  if (!reason.empty()) fields->push_back({"override", reason});
}

// ---------------------------------------------------------------- writes

absl::Status CmdDonate(Invocation& inv) {
  FlagSet flags(
      Usage("donate", "--client_id=ID --donor=ACCOUNT --to=ACCOUNT --amount=FEN|--yuan=Y [flags]"),
      "Records a donation from a donor (or merchant) into a fund, project or stock.\n"
      "Creates a lot and prints its number and the trace code to give the donor.\n"
      "With --receipt, waits (up to 5 s) for a signed checkpoint covering the gift and\n"
      "saves the donor's receipt, which anyone can check offline with verify-receipt.");
  v1::DonateRequest req;
  std::string client_id, donor, to, channel, memo, donor_name, receipt_path;
  bool anonymous = false, create_donor = false;
  AmountFlags amount;
  flags.AddString("client_id", &client_id, "idempotency id; reuse it to retry safely",
                  FlagRequirement::kRequired);
  flags.AddString("donor", &donor, "donor or merchant account", FlagRequirement::kRequired);
  flags.AddString("to", &to, "fund, project or stock account", FlagRequirement::kRequired);
  amount.Register(flags);
  flags.AddString("channel", &channel, "counter, online, bank or company");
  flags.AddBool("anonymous", &anonymous, "public views never show the donor");
  flags.AddString("memo", &memo, "free text");
  flags.AddBool("create_donor", &create_donor, "open the donor account if it does not exist");
  flags.AddString("donor_name", &donor_name, "display name for --create_donor");
  flags.AddString("receipt", &receipt_path, "wait for the donor's receipt and write it to FILE");
  WL_PARSE_FLAGS(inv, flags);
  WL_ASSIGN_OR_RETURN(const int64_t value, amount.Resolve(flags));
  WL_ASSIGN_OR_RETURN(const v1::DonationChannel ch, ParseChannel(channel));
  if (!donor_name.empty() && !create_donor) {
    return UsageError("--donor_name only applies with --create_donor");
  }
  if (flags.Seen("receipt") && receipt_path.empty()) {
    return UsageError("--receipt needs a file name");
  }
  req.set_client_id(client_id);
  req.set_donor(donor);
  req.set_to(to);
  req.set_asset(amount.asset);
  req.set_amount(value);
  req.set_channel(ch);
  req.set_anonymous(anonymous);
  req.set_memo(memo);
  req.set_create_donor(create_donor);
  req.set_donor_name(donor_name);
  req.set_wait_for_receipt(!receipt_path.empty());

  v1::DonateResponse resp;
  WL_RETURN_IF_ERROR(
      inv.Unary([&](grpc::ClientContext* c) { return inv.ledger().Donate(c, req, &resp); }));
  // The donation is recorded: show it before anything about the receipt.
  if (inv.json()) {
    WL_RETURN_IF_ERROR(inv.PrintJson(resp));
  } else {
    auto fields = WriteFields(resp.result());
    fields.insert(fields.begin() + 1, {"lot", absl::StrCat(resp.lot())});
    fields.insert(fields.begin() + 2, {"trace code", resp.trace_code()});
    fields.insert(
        fields.begin() + 3,
        {"amount", absl::StrCat(FormatAmount(req.asset(), req.amount()), " ", req.asset())});
    PrintFields(inv.out(), fields);
  }
  if (receipt_path.empty()) return absl::OkStatus();
  inv.out().flush();
  const std::string later = absl::StrCat("warmledger receipt --code=", Printable(resp.trace_code()),
                                         " --out=", receipt_path);
  if (resp.receipt().empty()) {
    inv.err() << "notice: the donation is recorded, but no checkpoint covered it in time for a "
                 "receipt; fetch it later with\n  "
              << later << "\n";
    return absl::OkStatus();
  }
  if (absl::Status written = WriteFileAtomically(receipt_path, resp.receipt()); !written.ok()) {
    inv.err() << "notice: the donation is recorded, but its receipt could not be saved; fetch it "
                 "again with\n  "
              << later << "\n";
    return written;
  }
  inv.err() << "wrote the donor's receipt to " << receipt_path << "\n";
  return absl::OkStatus();
}

absl::Status CmdOpenAccount(Invocation& inv) {
  FlagSet flags(Usage("open-account", "--client_id=ID --account=ACCOUNT --kind=KIND [flags]"),
                "Opens an account. Recipients are registered with register-recipient instead.");
  std::string client_id, account, kind, asset, name;
  bool restricted = false;
  flags.AddString("client_id", &client_id, "idempotency id", FlagRequirement::kRequired);
  flags.AddString("account", &account, "account id, e.g. fund/general", FlagRequirement::kRequired);
  flags.AddString("kind", &kind,
                  "fund, project, donor, supplier, expense, merchant, voucher or stock",
                  FlagRequirement::kRequired);
  flags.AddString("asset", &asset, "asset (required for fund, project, voucher, stock)");
  flags.AddBool("restricted", &restricted, "funds only: money leaves only by disbursement");
  flags.AddString("name", &name, "display name");
  WL_PARSE_FLAGS(inv, flags);
  WL_ASSIGN_OR_RETURN(const v1::AccountKind k, ParseKind(kind, /*allow_recipient=*/false));
  v1::OpenAccountRequest req;
  req.set_client_id(client_id);
  req.set_account(account);
  req.set_kind(k);
  req.set_asset(asset);
  req.set_restricted(restricted);
  req.set_name(name);
  v1::WriteResult resp;
  WL_RETURN_IF_ERROR(
      inv.Unary([&](grpc::ClientContext* c) { return inv.ledger().OpenAccount(c, req, &resp); }));
  return PrintWriteResult(inv, resp);
}

absl::Status CmdCloseAccount(Invocation& inv) {
  FlagSet flags(Usage("close-account", "--client_id=ID --account=ACCOUNT --reason=TEXT"),
                "Closes an empty account.");
  std::string client_id, account, reason;
  flags.AddString("client_id", &client_id, "idempotency id", FlagRequirement::kRequired);
  flags.AddString("account", &account, "account id", FlagRequirement::kRequired);
  flags.AddString("reason", &reason, "why it is closed", FlagRequirement::kRequired);
  WL_PARSE_FLAGS(inv, flags);
  v1::CloseAccountRequest req;
  req.set_client_id(client_id);
  req.set_account(account);
  req.set_reason(reason);
  v1::WriteResult resp;
  WL_RETURN_IF_ERROR(
      inv.Unary([&](grpc::ClientContext* c) { return inv.ledger().CloseAccount(c, req, &resp); }));
  return PrintWriteResult(inv, resp);
}

absl::Status CmdRegisterRecipient(Invocation& inv) {
  FlagSet flags(
      Usage("register-recipient",
            "--client_id=ID --id_number=NUMBER|- --category=CODE --community=CODE"),
      "Registers a person who receives aid. The server turns the 18-character resident ID\n"
      "number into a pseudonymous account id and forgets it. Give --id_number=- to read the\n"
      "number from stdin, which keeps it out of shell history and the process list.");
  std::string client_id, id_number, category, community;
  flags.AddString("client_id", &client_id, "idempotency id", FlagRequirement::kRequired);
  flags.AddString("id_number", &id_number, "resident ID number, or - for stdin",
                  FlagRequirement::kRequired);
  flags.AddString("category", &category, "category code (see registry)",
                  FlagRequirement::kRequired);
  flags.AddString("community", &community, "community code (see registry)",
                  FlagRequirement::kRequired);
  WL_PARSE_FLAGS(inv, flags);
  if (id_number == "-") {
    std::string line;
    char c;
    while (inv.in().get(c) && c != '\n') {
      if (line.size() >= kIdNumberLineBytesMax)
        return UsageError("--id_number from stdin is too long");
      line.push_back(c);
    }
    id_number = std::string(absl::StripAsciiWhitespace(line));
    if (id_number.empty()) return UsageError("no ID number on stdin");
  }
  v1::RegisterRecipientRequest req;
  req.set_client_id(client_id);
  req.set_id_number(id_number);
  req.set_category(category);
  req.set_community(community);
  v1::RegisterRecipientResponse resp;
  const absl::Status status = inv.Unary(
      [&](grpc::ClientContext* c) { return inv.ledger().RegisterRecipient(c, req, &resp); });
  // Keep the number no longer than needed.
  std::fill(id_number.begin(), id_number.end(), '\0');
  req.mutable_id_number()->assign(req.id_number().size(), '\0');
  WL_RETURN_IF_ERROR(status);
  if (inv.json()) return inv.PrintJson(resp);
  auto fields = WriteFields(resp.result());
  fields.insert(fields.begin() + 1, {"recipient", resp.recipient()});
  PrintFields(inv.out(), fields);
  return absl::OkStatus();
}

absl::Status CmdAllocate(Invocation& inv) {
  FlagSet flags(
      Usage("allocate", "--client_id=ID --from=ACCOUNT --to=ACCOUNT --amount=FEN|--yuan=Y [flags]"),
      "Moves money between funds and projects (not out of restricted ones).");
  std::string client_id, from, to, reason;
  AmountFlags amount;
  flags.AddString("client_id", &client_id, "idempotency id", FlagRequirement::kRequired);
  flags.AddString("from", &from, "source fund or project", FlagRequirement::kRequired);
  flags.AddString("to", &to, "target fund or project", FlagRequirement::kRequired);
  amount.Register(flags);
  flags.AddString("reason", &reason, "why");
  WL_PARSE_FLAGS(inv, flags);
  WL_ASSIGN_OR_RETURN(const int64_t value, amount.Resolve(flags));
  v1::AllocateRequest req;
  req.set_client_id(client_id);
  req.set_from(from);
  req.set_to(to);
  req.set_asset(amount.asset);
  req.set_amount(value);
  req.set_reason(reason);
  v1::WriteResult resp;
  WL_RETURN_IF_ERROR(
      inv.Unary([&](grpc::ClientContext* c) { return inv.ledger().Allocate(c, req, &resp); }));
  return PrintWriteResult(inv, resp);
}

absl::Status CmdDisburse(Invocation& inv) {
  FlagSet flags(
      Usage("disburse", "--client_id=ID --from=ACCOUNT --to=ACCOUNT --amount=FEN|--yuan=Y [flags]"),
      "Pays a recipient, supplier or expense from a fund or project. A payment to a\n"
      "recipient that an aid rule forbids (see aid-rules) is refused naming the earlier\n"
      "entry; repeat it with the same --client_id and --override=REASON to pay anyway.");
  std::string client_id, from, to, purpose, override_reason;
  AmountFlags amount;
  flags.AddString("client_id", &client_id, "idempotency id", FlagRequirement::kRequired);
  flags.AddString("from", &from, "fund or project", FlagRequirement::kRequired);
  flags.AddString("to", &to, "recipient, supplier or expense account", FlagRequirement::kRequired);
  amount.Register(flags);
  flags.AddString("purpose", &purpose, "what it pays for");
  AddOverrideFlag(flags, &override_reason, "the recipient is paid");
  WL_PARSE_FLAGS(inv, flags);
  WL_ASSIGN_OR_RETURN(const int64_t value, amount.Resolve(flags));
  v1::DisburseRequest req;
  req.set_client_id(client_id);
  req.set_from(from);
  req.set_to(to);
  req.set_asset(amount.asset);
  req.set_amount(value);
  req.set_purpose(purpose);
  req.set_override_reason(override_reason);
  v1::WriteResult resp;
  WL_RETURN_IF_ERROR(
      inv.Unary([&](grpc::ClientContext* c) { return inv.ledger().Disburse(c, req, &resp); }));
  if (inv.json()) return inv.PrintJson(resp);
  auto fields = WriteFields(resp);
  AddOverrideField(&fields, override_reason);
  PrintFields(inv.out(), fields);
  return absl::OkStatus();
}

absl::Status CmdCorrect(Invocation& inv) {
  FlagSet flags(
      Usage("correct", "--client_id=ID --ref_seq=SEQ --mode=reverse|adjust --reason=TEXT [flags]"),
      "Corrects an earlier entry. reverse undoes a donation, allocation, disbursement\n"
      "or voucher redemption exactly (a redemption's value goes back to its voucher\n"
      "while the voucher is active); adjust moves --amount from --from to --to with\n"
      "the reason.");
  std::string client_id, mode, reason, from, to;
  uint64_t ref_seq = 0;
  AmountFlags amount;
  flags.AddString("client_id", &client_id, "idempotency id", FlagRequirement::kRequired);
  flags.AddUint64("ref_seq", &ref_seq, "the entry corrected", FlagRequirement::kRequired);
  flags.AddString("mode", &mode, "reverse or adjust", FlagRequirement::kRequired);
  flags.AddString("reason", &reason, "why", FlagRequirement::kRequired);
  flags.AddString("from", &from, "adjust: source account");
  flags.AddString("to", &to, "adjust: target account");
  amount.Register(flags);
  WL_PARSE_FLAGS(inv, flags);
  v1::CorrectRequest req;
  req.set_client_id(client_id);
  req.set_ref_seq(ref_seq);
  req.set_reason(reason);
  if (mode == "reverse") {
    for (const char* f : {"from", "to", "amount", "yuan", "asset"}) {
      if (flags.Seen(f)) return UsageError(absl::StrCat("--", f, " only applies to --mode=adjust"));
    }
    req.set_mode(v1::REVERSE);
  } else if (mode == "adjust") {
    if (from.empty() || to.empty()) return UsageError("--mode=adjust needs --from and --to");
    WL_ASSIGN_OR_RETURN(const int64_t value, amount.Resolve(flags));
    req.set_mode(v1::ADJUST);
    req.set_from(from);
    req.set_to(to);
    req.set_asset(amount.asset);
    req.set_amount(value);
  } else {
    return UsageError(absl::StrCat("--mode must be reverse or adjust (not \"", mode, "\")"));
  }
  v1::WriteResult resp;
  WL_RETURN_IF_ERROR(
      inv.Unary([&](grpc::ClientContext* c) { return inv.ledger().Correct(c, req, &resp); }));
  return PrintWriteResult(inv, resp);
}

// ---------------------------------------------------------------- checkout

// "12.34 CNY": an amount with its asset; an empty asset is the API's CNY.
std::string MoneyText(std::string_view asset, int64_t amount) {
  const std::string_view shown = asset.empty() ? std::string_view("CNY") : asset;
  return absl::StrCat(FormatAmount(shown, amount), " ", ToAbsl(shown));
}

absl::Status CmdPurchase(Invocation& inv) {
  FlagSet flags(
      Usage("purchase", "--store=ACCOUNT --order=ID --amount=FEN|--yuan=Y [flags]"),
      "Records a sale at a store (mall, admin). The server sends its contribution rate\n"
      "(default 2%, rounded half up to the fen) of the amount to its charity fund as a\n"
      "lot whose donor is the store. Idempotent by (store, order): repeating the same\n"
      "purchase returns the original result; the same order with another amount is\n"
      "ALREADY_EXISTS. --trace_code asks for a trace code for the shopper's slip.");
  std::string store, order, member;
  bool trace_code = false;
  AmountFlags amount;
  TimeFlags sale_time("sale_time");
  flags.AddString("store", &store, "the store's merchant account, e.g. store/main-street",
                  FlagRequirement::kRequired);
  flags.AddString("order", &order, "the store's order number, unique per store",
                  FlagRequirement::kRequired);
  amount.Register(flags);
  flags.AddString("member", &member, "the shopper's member id, credited with the contribution");
  sale_time.Register(flags, "the store's time of sale");
  flags.AddBool("trace_code", &trace_code,
                "return a trace code (part of the request: repeat it on a retry)");
  WL_PARSE_FLAGS(inv, flags);
  WL_ASSIGN_OR_RETURN(const int64_t value, amount.Resolve(flags));
  WL_ASSIGN_OR_RETURN(const std::optional<int64_t> sale_time_us, sale_time.Resolve(flags));
  v1::PurchaseRequest req;
  req.set_store(store);
  req.set_order_id(order);
  req.set_asset(amount.asset);
  req.set_amount(value);
  req.set_member(member);
  req.set_sale_time_us(sale_time_us.value_or(0));
  req.set_want_trace_code(trace_code);
  v1::PurchaseResult resp;
  WL_RETURN_IF_ERROR(inv.Unary(
      [&](grpc::ClientContext* c) { return inv.checkout().RecordPurchase(c, req, &resp); }));
  if (inv.json()) return inv.PrintJson(resp);
  auto fields = WriteFields(resp.result());
  std::vector<std::pair<std::string, std::string>> more = {
      {"amount", MoneyText(req.asset(), req.amount())},
      {"contribution", absl::StrCat(MoneyText(req.asset(), resp.contribution()), " at ",
                                    resp.rate_bp(), " bp")},
      {"lot", resp.lot() == 0 ? "- (the contribution rounds to nothing)"
                              : absl::StrCat(resp.lot())},
  };
  if (!resp.trace_code().empty()) more.push_back({"trace code", resp.trace_code()});
  fields.insert(fields.begin() + 1, more.begin(), more.end());
  PrintFields(inv.out(), fields);
  return absl::OkStatus();
}

absl::Status CmdRefund(Invocation& inv) {
  FlagSet flags(
      Usage("refund", "--store=ACCOUNT --order=ID --refund_id=ID --amount=FEN|--yuan=Y"),
      "Records a full or partial refund of a purchase (mall, admin). The contribution is\n"
      "reversed in proportion; all refunds of an order together never reverse more than\n"
      "its contribution, and never refund more than its amount. Idempotent by (store,\n"
      "refund id).");
  std::string store, order, refund_id;
  AmountFlags amount;
  flags.AddString("store", &store, "the store's merchant account", FlagRequirement::kRequired);
  flags.AddString("order", &order, "the order refunded", FlagRequirement::kRequired);
  flags.AddString("refund_id", &refund_id, "the refund's id, unique per store",
                  FlagRequirement::kRequired);
  amount.Register(flags);
  WL_PARSE_FLAGS(inv, flags);
  WL_ASSIGN_OR_RETURN(const int64_t value, amount.Resolve(flags));
  if (flags.Seen("asset")) return UsageError("--asset: a refund is in the purchase's asset");
  v1::RefundRequest req;
  req.set_store(store);
  req.set_order_id(order);
  req.set_refund_id(refund_id);
  req.set_amount(value);
  v1::RefundResult resp;
  WL_RETURN_IF_ERROR(inv.Unary(
      [&](grpc::ClientContext* c) { return inv.checkout().RecordRefund(c, req, &resp); }));
  if (inv.json()) return inv.PrintJson(resp);
  auto fields = WriteFields(resp.result());
  fields.insert(fields.begin() + 1,
                {{"refunded", MoneyText("", req.amount())},
                 {"reversal", MoneyText("", resp.reversal())},
                 {"from fund", resp.covered_by_fund() == 0
                                   ? std::string("- (all from the purchase's own lot)")
                                   : absl::StrCat(MoneyText("", resp.covered_by_fund()),
                                                  " (the lot was spent; oldest money)")}});
  PrintFields(inv.out(), fields);
  return absl::OkStatus();
}

absl::Status CmdRedeem(Invocation& inv) {
  FlagSet flags(
      Usage("redeem", "--store=ACCOUNT --order=ID --code=VOUCHER_CODE --amount=FEN|--yuan=Y"),
      "Redeems an aid voucher at a store's till, fully or in part (mall, admin): never\n"
      "more than it holds, never at or after its expiry, only at its stores. Idempotent\n"
      "by (store, order, code). Spaces and hyphens in the code are ignored.");
  std::string store, order, code;
  AmountFlags amount;
  flags.AddString("store", &store, "the store's merchant account", FlagRequirement::kRequired);
  flags.AddString("order", &order, "the order paid with the voucher", FlagRequirement::kRequired);
  flags.AddString("code", &code, "the 26-character voucher code", FlagRequirement::kRequired);
  amount.Register(flags);
  WL_PARSE_FLAGS(inv, flags);
  WL_ASSIGN_OR_RETURN(const int64_t value, amount.Resolve(flags));
  if (flags.Seen("asset")) return UsageError("--asset: a voucher is redeemed in its own asset");
  absl::StatusOr<std::string> normalized = NormalizeVoucherCode(code);
  if (!normalized.ok()) return UsageError(absl::StrCat("--code: ", normalized.status().message()));
  v1::RedeemRequest req;
  req.set_store(store);
  req.set_order_id(order);
  req.set_code(*normalized);
  req.set_amount(value);
  v1::RedemptionResult resp;
  WL_RETURN_IF_ERROR(inv.Unary(
      [&](grpc::ClientContext* c) { return inv.checkout().RedeemVoucher(c, req, &resp); }));
  if (inv.json()) return inv.PrintJson(resp);
  auto fields = WriteFields(resp.result());
  fields.insert(fields.begin() + 1, {{"voucher", absl::StrCat(resp.voucher())},
                                     {"redeemed", MoneyText("", resp.amount())},
                                     {"remaining", MoneyText("", resp.remaining())}});
  PrintFields(inv.out(), fields);
  return absl::OkStatus();
}

absl::Status CmdSettlement(Invocation& inv) {
  FlagSet flags(
      Usage("settlement", "[--store=ACCOUNT] (--day=YYYY-MM-DD | --from=TIME [--to=TIME])"),
      "Shows what each store and the charity office reconcile for a period of ledger\n"
      "time: purchases, contributions, refunds, reversals and vouchers redeemed (mall,\n"
      "clerk, auditor, admin). Days are in China time (UTC+08:00): --day=2024-09-01 is\n"
      "2024-09-01T00:00:00+08:00 up to, not including, the next midnight. --to defaults\n"
      "to now.");
  std::string store, day;
  TimeFlags from("from"), to("to");
  flags.AddString("store", &store, "only this store; default every store");
  flags.AddString("day", &day, "one day in China time, YYYY-MM-DD");
  from.Register(flags, "from this time, inclusive");
  to.Register(flags, "until this time, exclusive");
  WL_PARSE_FLAGS(inv, flags);
  v1::SettlementRequest req;
  req.set_store(store);
  if (flags.Seen("day")) {
    if (from.Seen(flags) || to.Seen(flags)) {
      return UsageError("give --day or --from/--to, not both");
    }
    absl::StatusOr<TimeRangeUs> range = ChinaDayRangeUs(day);
    if (!range.ok()) return UsageError(absl::StrCat("--day: ", range.status().message()));
    req.set_from_time_us(range->from_us);
    req.set_to_time_us(range->to_us);
  } else {
    WL_ASSIGN_OR_RETURN(const std::optional<int64_t> from_us, from.Resolve(flags));
    WL_ASSIGN_OR_RETURN(const std::optional<int64_t> to_us, to.Resolve(flags));
    if (!from_us.has_value()) return UsageError("give --day=YYYY-MM-DD or --from=TIME");
    if (to_us.has_value() && *to_us <= *from_us) return UsageError("--to must be after --from");
    req.set_from_time_us(*from_us);
    req.set_to_time_us(to_us.value_or(0));
  }
  v1::Settlement settlement;
  WL_RETURN_IF_ERROR(inv.Unary([&](grpc::ClientContext* c) {
    return inv.checkout().GetStoreSettlement(c, req, &settlement);
  }));
  if (inv.json()) return inv.PrintJson(settlement);
  // In China time, the time of --day and of dates given without an offset.
  inv.out() << "settlement from " << FormatChinaTimeUs(settlement.from_time_us()) << " to "
            << (settlement.to_time_us() == 0 ? std::string("now")
                                             : FormatChinaTimeUs(settlement.to_time_us()))
            << " (China time, UTC+08:00; end excluded)\n\n";
  Table table({{"STORE"},
               {"ASSET"},
               {"PURCHASES", Align::kRight},
               {"SALES", Align::kRight},
               {"CONTRIB", Align::kRight},
               {"REFUNDS", Align::kRight},
               {"REFUNDED", Align::kRight},
               {"REVERSED", Align::kRight},
               {"NET-CONTRIB", Align::kRight},
               {"REDEMPTIONS", Align::kRight},
               {"REDEEMED", Align::kRight},
               {"TAKEN-BACK", Align::kRight},
               {"AMOUNT", Align::kRight}});
  for (const v1::StoreSettlement& s : settlement.stores()) {
    const std::string& a = s.asset();
    table.AddRow({s.store(), a, absl::StrCat(s.purchases()), FormatAmount(a, s.purchase_amount()),
                  FormatAmount(a, s.contributions()), absl::StrCat(s.refunds()),
                  FormatAmount(a, s.refund_amount()), FormatAmount(a, s.reversals()),
                  FormatAmount(a, s.net_contribution()), absl::StrCat(s.redemptions()),
                  FormatAmount(a, s.redeemed()), absl::StrCat(s.redemptions_reversed()),
                  FormatAmount(a, s.redeemed_reversed())});
  }
  table.Print(inv.out());
  inv.out() << "TAKEN-BACK: voucher redemptions reversed by a correction in the period\n";
  return absl::OkStatus();
}

// ---------------------------------------------------------------- vouchers

std::string VoucherStatusName(v1::VoucherStatus status) {
  if (status == v1::VOUCHER_STATUS_UNSPECIFIED) return "-";
  return LowerName(v1::VoucherStatus_Name(status), static_cast<int>(status), "status-");
}

absl::Status CmdVoucherIssue(Invocation& inv) {
  FlagSet flags(
      Usage("voucher-issue",
            "--client_id=ID --from=ACCOUNT --recipient=ACCOUNT --amount=FEN|--yuan=Y "
            "--expires=TIME [--store=ACCOUNT ...] [flags]"),
      "Issues an aid voucher to a registered recipient (clerk, admin): its face value\n"
      "leaves the fund or project with its provenance. Prints the 26-character code the\n"
      "recipient presents at the till; a retry with the same --client_id prints the\n"
      "same code. Redeemable while the ledger time is before --expires, at the given\n"
      "stores only (default: any store); what is left returns to the fund at expiry.\n"
      "An issue that an aid rule forbids is refused naming the earlier entry; repeat it\n"
      "with the same --client_id and --override=REASON to issue anyway.");
  std::string client_id, from, recipient, memo, override_reason;
  std::vector<std::string> stores;
  AmountFlags amount;
  TimeFlags expires("expires");
  flags.AddString("client_id", &client_id, "idempotency id; reuse it to retry safely",
                  FlagRequirement::kRequired);
  flags.AddString("from", &from, "the funding fund or project", FlagRequirement::kRequired);
  flags.AddString("recipient", &recipient, "a registered recipient account",
                  FlagRequirement::kRequired);
  amount.Register(flags);
  expires.Register(flags, "end of validity, excluded");
  flags.AddStringList("store", &stores, "a merchant account where it is accepted");
  flags.AddString("memo", &memo, "free text");
  AddOverrideFlag(flags, &override_reason, "the voucher is issued");
  WL_PARSE_FLAGS(inv, flags);
  WL_ASSIGN_OR_RETURN(const int64_t value, amount.Resolve(flags));
  WL_ASSIGN_OR_RETURN(const std::optional<int64_t> expires_us, expires.Resolve(flags));
  if (!expires_us.has_value()) return UsageError("missing --expires (or --expires_us)");
  v1::IssueVoucherRequest req;
  req.set_client_id(client_id);
  req.set_from(from);
  req.set_recipient(recipient);
  req.set_asset(amount.asset);
  req.set_amount(value);
  req.set_expires_us(*expires_us);
  for (const std::string& store : stores) req.add_stores(store);
  req.set_memo(memo);
  req.set_override_reason(override_reason);
  v1::IssueVoucherResponse resp;
  WL_RETURN_IF_ERROR(inv.Unary(
      [&](grpc::ClientContext* c) { return inv.vouchers().IssueVoucher(c, req, &resp); }));
  if (inv.json()) return inv.PrintJson(resp);
  auto fields = WriteFields(resp.result());
  fields.insert(fields.begin() + 1,
                {{"voucher", absl::StrCat(resp.voucher())},
                 {"account", resp.account()},
                 {"code", resp.code()},
                 {"face value", MoneyText(req.asset(), req.amount())},
                 {"expires", FormatTimeUs(req.expires_us())},
                 {"stores",
                  stores.empty() ? std::string("any store") : absl::StrJoin(stores, ", ")}});
  AddOverrideField(&fields, override_reason);
  PrintFields(inv.out(), fields);
  return absl::OkStatus();
}

absl::Status CmdVoucherVoid(Invocation& inv) {
  FlagSet flags(Usage("voucher-void", "--client_id=ID --voucher=N --reason=TEXT"),
                "Voids an active voucher early (clerk, admin); what it still holds returns to\n"
                "the fund or project it came from, with its provenance.");
  std::string client_id, reason;
  uint64_t voucher = 0;
  flags.AddString("client_id", &client_id, "idempotency id", FlagRequirement::kRequired);
  flags.AddUint64("voucher", &voucher, "the voucher number (its issue's seq)",
                  FlagRequirement::kRequired);
  flags.AddString("reason", &reason, "why", FlagRequirement::kRequired);
  WL_PARSE_FLAGS(inv, flags);
  if (voucher == 0) return UsageError("--voucher starts at 1");
  v1::VoidVoucherRequest req;
  req.set_client_id(client_id);
  req.set_voucher(voucher);
  req.set_reason(reason);
  v1::WriteResult resp;
  WL_RETURN_IF_ERROR(inv.Unary(
      [&](grpc::ClientContext* c) { return inv.vouchers().VoidVoucher(c, req, &resp); }));
  return PrintWriteResult(inv, resp);
}

absl::Status CmdVoucher(Invocation& inv) {
  FlagSet flags(Usage("voucher", "--voucher=N | --code=VOUCHER_CODE"),
                "Shows a voucher: face value, what was redeemed and returned, what remains,\n"
                "its expiry and status (clerk, auditor, admin; by --code also mall).");
  std::string code;
  uint64_t voucher = 0;
  flags.AddUint64("voucher", &voucher, "the voucher number");
  flags.AddString("code", &code, "the voucher code");
  WL_PARSE_FLAGS(inv, flags);
  if (flags.Seen("voucher") == flags.Seen("code")) {
    return UsageError("give exactly one of --voucher and --code");
  }
  v1::GetVoucherRequest req;
  if (flags.Seen("code")) {
    absl::StatusOr<std::string> normalized = NormalizeVoucherCode(code);
    if (!normalized.ok()) {
      return UsageError(absl::StrCat("--code: ", normalized.status().message()));
    }
    req.set_code(*normalized);
  } else {
    if (voucher == 0) return UsageError("--voucher starts at 1");
    req.set_voucher(voucher);
  }
  v1::Voucher v;
  WL_RETURN_IF_ERROR(
      inv.Unary([&](grpc::ClientContext* c) { return inv.vouchers().GetVoucher(c, req, &v); }));
  if (inv.json()) return inv.PrintJson(v);
  const std::string& a = v.asset();
  std::vector<std::string> stores(v.stores().begin(), v.stores().end());
  std::vector<std::pair<std::string, std::string>> fields = {
      {"voucher", absl::StrCat(v.voucher())},
      {"account", v.account()},
      {"status", VoucherStatusName(v.status())},
      {"from", v.from()},
      {"recipient", v.recipient().empty() ? "-" : v.recipient()},
      {"category", v.category().empty() ? "-" : v.category()},
      {"community", v.community().empty() ? "-" : v.community()},
      {"face value", MoneyText(a, v.face())},
      {"redeemed", absl::StrCat(MoneyText(a, v.redeemed()), " in ", v.redemptions(),
                                v.redemptions() == 1 ? " redemption" : " redemptions")},
      {"returned", MoneyText(a, v.returned())},
      {"remaining", MoneyText(a, v.remaining())},
      {"issued", FormatTimeUs(v.issued_us())},
      {"expires", FormatTimeUs(v.expires_us())},
      {"stores", stores.empty() ? std::string("any store") : absl::StrJoin(stores, ", ")},
  };
  if (v.closed_seq() != 0) fields.push_back({"closed by seq", absl::StrCat(v.closed_seq())});
  PrintFields(inv.out(), fields);
  return absl::OkStatus();
}

absl::Status CmdVoucherSweep(Invocation& inv) {
  FlagSet flags(Usage("voucher-sweep", "[--max=N]"),
                "Returns what expired vouchers still hold to their funds (clerk, admin); the\n"
                "server also does this on its own. Exits 1 if any voucher could not be swept.");
  uint64_t max = 0;
  flags.AddUint64("max", &max, "vouchers per call; 0 means 8192, the most");
  WL_PARSE_FLAGS(inv, flags);
  if (max > std::numeric_limits<uint32_t>::max()) return UsageError("--max is too large");
  v1::SweepVouchersRequest req;
  req.set_max(static_cast<uint32_t>(max));
  v1::SweepVouchersResponse resp;
  WL_RETURN_IF_ERROR(inv.Unary(
      [&](grpc::ClientContext* c) { return inv.vouchers().SweepExpiredVouchers(c, req, &resp); }));
  absl::Status first_error;
  size_t failed = 0;
  for (const auto& e : resp.expired()) {
    if (e.code() == 0) continue;
    ++failed;
    if (first_error.ok()) {
      first_error = absl::Status(static_cast<absl::StatusCode>(e.code()),
                                 absl::StrCat("voucher ", e.voucher(), ": ", e.message()));
    }
  }
  if (inv.json()) {
    WL_RETURN_IF_ERROR(inv.PrintJson(resp));
  } else {
    Table table({{"VOUCHER", Align::kRight},
                 {"SEQ", Align::kRight},
                 {"RETURNED", Align::kRight},
                 {"RESULT"}});
    for (const auto& e : resp.expired()) {
      table.AddRow({absl::StrCat(e.voucher()),
                    e.code() == 0 ? absl::StrCat(e.result().seq()) : std::string("-"),
                    e.code() == 0 ? FormatFen(e.returned()) : std::string("-"),
                    e.code() == 0 ? std::string(e.result().duplicate() ? "ok (duplicate)" : "ok")
                                  : absl::StrCat(absl::StatusCodeToString(
                                                     static_cast<absl::StatusCode>(e.code())),
                                                 ": ", e.message())});
    }
    table.Print(inv.out());
  }
  if (failed == 0) return absl::OkStatus();
  return absl::Status(first_error.code(),
                      absl::StrCat(failed, " of ", resp.expired_size(),
                                   " expired vouchers were not swept; first: ",
                                   first_error.message()));
}

void AddVoucherTotalsRow(Table& table, const v1::VoucherTotals& t) {
  const std::string& a = t.asset();
  table.AddRow({t.key().empty() ? "(all)" : t.key(), a, absl::StrCat(t.issued()),
                FormatAmount(a, t.issued_amount()), absl::StrCat(t.redemptions()),
                FormatAmount(a, t.redeemed_amount()), absl::StrCat(t.fully_redeemed()),
                absl::StrCat(t.expired()), FormatAmount(a, t.expired_amount()),
                absl::StrCat(t.voided()), FormatAmount(a, t.voided_amount()),
                absl::StrCat(t.outstanding()), FormatAmount(a, t.outstanding_amount()),
                absl::StrCat(t.overdue())});
}

absl::Status CmdVoucherReport(Invocation& inv) {
  FlagSet flags(Usage("voucher-report", ""),
                "Vouchers issued, redeemed, expired, voided and outstanding, by funding fund\n"
                "or project, by recipient category and in total (clerk, auditor, admin).\n"
                "OVERDUE counts outstanding vouchers past their expiry: the sweep is due.");
  WL_PARSE_FLAGS(inv, flags);
  v1::VoucherReport report;
  WL_RETURN_IF_ERROR(inv.Unary([&](grpc::ClientContext* c) {
    return inv.vouchers().GetVoucherReport(c, v1::VoucherReportRequest(), &report);
  }));
  if (inv.json()) return inv.PrintJson(report);
  inv.out() << "vouchers as of " << FormatTimeUs(report.as_of_us()) << "\n";
  const std::pair<const char*, const google::protobuf::RepeatedPtrField<v1::VoucherTotals>*>
      sections[] = {{"by fund or project", &report.by_fund()},
                    {"by recipient category", &report.by_category()},
                    {"total", &report.total()}};
  for (const auto& [title, rows] : sections) {
    inv.out() << "\n" << title << ":\n";
    Table table({{"KEY"},
                 {"ASSET"},
                 {"ISSUED", Align::kRight},
                 {"FACE", Align::kRight},
                 {"REDEMPTIONS", Align::kRight},
                 {"REDEEMED", Align::kRight},
                 {"USED-UP", Align::kRight},
                 {"EXPIRED", Align::kRight},
                 {"EXPIRED-AMT", Align::kRight},
                 {"VOIDED", Align::kRight},
                 {"VOIDED-AMT", Align::kRight},
                 {"OUTSTANDING", Align::kRight},
                 {"OUTST-AMT", Align::kRight},
                 {"OVERDUE", Align::kRight}});
    for (const v1::VoucherTotals& t : *rows) AddVoucherTotalsRow(table, t);
    table.Print(inv.out());
  }
  return absl::OkStatus();
}

// ---------------------------------------------------------------- goods

// "700 item:daily-box": goods with their item code.
std::string GoodsText(std::string_view item, int64_t quantity) {
  return absl::StrCat(FormatAmount(item, quantity), " ", ToAbsl(item));
}

absl::Status CmdItemDefine(Invocation& inv) {
  FlagSet flags(
      Usage("item-define", "--client_id=ID --item=item:CODE --name=TEXT --unit=UNIT"),
      "Adds an item to the goods catalogue (clerk, admin). Goods gifts, purchases,\n"
      "handouts, write-offs and sales name catalogued items only. Keep the goods in a\n"
      "stock account: open-account --kind=stock --asset=item:CODE.");
  std::string client_id, item, name, unit;
  flags.AddString("client_id", &client_id, "idempotency id", FlagRequirement::kRequired);
  flags.AddString("item", &item, "the item's asset code, item:<code>, e.g. item:daily-box",
                  FlagRequirement::kRequired);
  flags.AddString("name", &name, "what it is, e.g. \"Box of daily necessities\"",
                  FlagRequirement::kRequired);
  flags.AddString("unit", &unit, "what one unit is: 1-16 lower-case letters (box, kg, bottle)",
                  FlagRequirement::kRequired);
  WL_PARSE_FLAGS(inv, flags);
  v1::DefineItemRequest req;
  req.set_client_id(client_id);
  req.set_item(item);
  req.set_name(name);
  req.set_unit(unit);
  v1::WriteResult resp;
  WL_RETURN_IF_ERROR(
      inv.Unary([&](grpc::ClientContext* c) { return inv.goods().DefineItem(c, req, &resp); }));
  return PrintWriteResult(inv, resp);
}

absl::Status CmdItems(Invocation& inv) {
  FlagSet flags(Usage("items", "[--item=item:CODE]"),
                "Lists the goods catalogue with what all stocks hold now (public), or one item.");
  std::string item;
  flags.AddString("item", &item, "only this item");
  WL_PARSE_FLAGS(inv, flags);
  v1::Items items;
  if (flags.Seen("item")) {
    v1::GetItemRequest req;
    req.set_item(item);
    WL_RETURN_IF_ERROR(inv.Unary([&](grpc::ClientContext* c) {
      return inv.goods().GetItem(c, req, items.add_items());
    }));
    if (inv.json()) return inv.PrintJson(items.items(0));
  } else {
    WL_RETURN_IF_ERROR(inv.Unary([&](grpc::ClientContext* c) {
      return inv.goods().ListItems(c, v1::ListItemsRequest(), &items);
    }));
    if (inv.json()) return inv.PrintJson(items);
  }
  Table table({{"ITEM"}, {"NAME"}, {"UNIT"}, {"DEFINED", Align::kRight},
               {"IN STOCK", Align::kRight}});
  for (const v1::Item& i : items.items()) {
    table.AddRow({i.item(), i.name(), i.unit(), absl::StrCat(i.defined_seq()),
                  FormatAmount(i.item(), i.in_stock())});
  }
  table.Print(inv.out());
  return absl::OkStatus();
}

absl::Status CmdGoodsGift(Invocation& inv) {
  FlagSet flags(
      Usage("goods-gift",
            "--client_id=ID --donor=ACCOUNT --to=STOCK --item=item:CODE --quantity=N [flags]"),
      "Records a gift in kind (clerk, admin): --quantity units of a catalogued item from\n"
      "a donor (or merchant) into a stock of that item, as a new goods lot. Prints the\n"
      "lot and the trace code to give the donor, who can then follow the goods to the\n"
      "people who received them. The batch may carry a grade, an expiry (handouts take\n"
      "the earliest expiry first) and an appraised value, recorded as given and never\n"
      "counted in money balances.");
  std::string client_id, donor, to, item, grade, value_asset = "CNY", channel, memo, donor_name;
  int64_t quantity = 0;
  bool anonymous = false, create_donor = false;
  TimeFlags expires("expires");
  MoneyAmountFlags value("value");
  flags.AddString("client_id", &client_id, "idempotency id; reuse it to retry safely",
                  FlagRequirement::kRequired);
  flags.AddString("donor", &donor, "donor or merchant account (opened without a fixed asset)",
                  FlagRequirement::kRequired);
  flags.AddString("to", &to, "a stock account of the item", FlagRequirement::kRequired);
  flags.AddString("item", &item, "the item, item:<code>", FlagRequirement::kRequired);
  flags.AddInt64("quantity", &quantity, "units given", FlagRequirement::kRequired);
  flags.AddString("grade", &grade, "the batch's grade, e.g. A");
  expires.Register(flags, "the batch's expiry");
  value.Register(flags, "appraised value of the whole gift");
  flags.AddString("value_asset", &value_asset, "asset of the appraised value");
  flags.AddString("channel", &channel, "counter, online, bank or company");
  flags.AddBool("anonymous", &anonymous, "public views never show the donor");
  flags.AddString("memo", &memo, "free text");
  flags.AddBool("create_donor", &create_donor, "open the donor account if it does not exist");
  flags.AddString("donor_name", &donor_name, "display name for --create_donor");
  WL_PARSE_FLAGS(inv, flags);
  WL_ASSIGN_OR_RETURN(const std::optional<int64_t> expires_us, expires.Resolve(flags));
  WL_ASSIGN_OR_RETURN(const std::optional<int64_t> value_minor, value.Resolve(flags));
  WL_ASSIGN_OR_RETURN(const v1::DonationChannel ch, ParseChannel(channel));
  if (flags.Seen("value_asset") && !value_minor.has_value()) {
    return UsageError("--value_asset only applies with --value or --value_yuan");
  }
  if (!donor_name.empty() && !create_donor) {
    return UsageError("--donor_name only applies with --create_donor");
  }
  v1::GiveGoodsRequest req;
  req.set_client_id(client_id);
  req.set_donor(donor);
  req.set_to(to);
  req.set_item(item);
  req.set_quantity(quantity);
  req.set_grade(grade);
  req.set_expires_us(expires_us.value_or(0));
  if (value_minor.has_value()) {
    req.set_value_asset(value_asset);
    req.set_value(*value_minor);
  }
  req.set_channel(ch);
  req.set_anonymous(anonymous);
  req.set_memo(memo);
  req.set_create_donor(create_donor);
  req.set_donor_name(donor_name);
  v1::GiveGoodsResponse resp;
  WL_RETURN_IF_ERROR(
      inv.Unary([&](grpc::ClientContext* c) { return inv.goods().GiveGoods(c, req, &resp); }));
  if (inv.json()) return inv.PrintJson(resp);
  auto fields = WriteFields(resp.result());
  std::vector<std::pair<std::string, std::string>> more = {
      {"lot", absl::StrCat(resp.lot())},
      {"trace code", resp.trace_code()},
      {"quantity", GoodsText(item, quantity)},
  };
  if (expires_us.has_value()) more.push_back({"expires", FormatTimeUs(*expires_us)});
  if (value_minor.has_value()) more.push_back({"appraised", MoneyText(value_asset, *value_minor)});
  fields.insert(fields.begin() + 1, more.begin(), more.end());
  PrintFields(inv.out(), fields);
  return absl::OkStatus();
}

absl::Status CmdGoodsBuy(Invocation& inv) {
  FlagSet flags(
      Usage("goods-buy",
            "--client_id=ID --from=FUND --supplier=ACCOUNT --to=STOCK --item=item:CODE "
            "--quantity=N --price=FEN|--price_yuan=Y [flags]"),
      "Buys goods with fund money in one entry (clerk, admin): the price leaves the fund\n"
      "or project, oldest money first, for the supplier, and the goods enter the stock\n"
      "as a new lot whose parents are the money lots that paid. Each donor's trace then\n"
      "shows what their money bought and, once handed out, who received it (by category\n"
      "and community).");
  std::string client_id, from, supplier, to, item, asset = "CNY", grade, memo;
  int64_t quantity = 0;
  TimeFlags expires("expires");
  MoneyAmountFlags price("price");
  flags.AddString("client_id", &client_id, "idempotency id", FlagRequirement::kRequired);
  flags.AddString("from", &from, "the paying fund or project", FlagRequirement::kRequired);
  flags.AddString("supplier", &supplier, "a supplier account (opened without a fixed asset)",
                  FlagRequirement::kRequired);
  flags.AddString("to", &to, "a stock account of the item", FlagRequirement::kRequired);
  flags.AddString("item", &item, "the item, item:<code>", FlagRequirement::kRequired);
  flags.AddInt64("quantity", &quantity, "units bought", FlagRequirement::kRequired);
  price.Register(flags, "the price of all of them");
  flags.AddString("asset", &asset, "the money asset of the price");
  flags.AddString("grade", &grade, "the batch's grade");
  expires.Register(flags, "the batch's expiry");
  flags.AddString("memo", &memo, "invoice number, what was bought");
  WL_PARSE_FLAGS(inv, flags);
  WL_ASSIGN_OR_RETURN(const int64_t price_minor, price.Required(flags));
  WL_ASSIGN_OR_RETURN(const std::optional<int64_t> expires_us, expires.Resolve(flags));
  v1::BuyGoodsRequest req;
  req.set_client_id(client_id);
  req.set_from(from);
  req.set_supplier(supplier);
  req.set_asset(asset);
  req.set_price(price_minor);
  req.set_to(to);
  req.set_item(item);
  req.set_quantity(quantity);
  req.set_grade(grade);
  req.set_expires_us(expires_us.value_or(0));
  req.set_memo(memo);
  v1::BuyGoodsResponse resp;
  WL_RETURN_IF_ERROR(
      inv.Unary([&](grpc::ClientContext* c) { return inv.goods().BuyGoods(c, req, &resp); }));
  if (inv.json()) return inv.PrintJson(resp);
  auto fields = WriteFields(resp.result());
  fields.insert(fields.begin() + 1, {{"lot", absl::StrCat(resp.lot())},
                                     {"quantity", GoodsText(item, resp.quantity())},
                                     {"price", MoneyText(asset, price_minor)}});
  PrintFields(inv.out(), fields);
  return absl::OkStatus();
}

// One handout line from its two parts; `where` names it in errors.
absl::StatusOr<v1::HandoutLine> MakeHandoutLine(absl::string_view recipient,
                                                absl::string_view quantity,
                                                const std::string& where) {
  recipient = absl::StripAsciiWhitespace(recipient);
  if (recipient.empty()) return UsageError(absl::StrCat(where, ": no recipient"));
  absl::StatusOr<int64_t> parsed = ParseInt64(std::string(absl::StripAsciiWhitespace(quantity)));
  if (!parsed.ok()) {
    return UsageError(absl::StrCat(where, ": quantity: ", parsed.status().message()));
  }
  v1::HandoutLine line;
  line.set_recipient(std::string(recipient));
  line.set_quantity(*parsed);
  return line;
}

// A --line value, RECIPIENT:QUANTITY. Account ids may hold ':' themselves;
// the quantity is after the last one.
absl::StatusOr<v1::HandoutLine> ParseHandoutFlag(const std::string& text) {
  const std::string where = absl::StrCat("--line=", Printable(text));
  const size_t colon = text.rfind(':');
  if (colon == std::string::npos) {
    return UsageError(absl::StrCat(where, ": expected RECIPIENT:QUANTITY"));
  }
  const absl::string_view all(text);
  return MakeHandoutLine(all.substr(0, colon), all.substr(colon + 1), where);
}

// The lines of a --lines_file: "RECIPIENT QUANTITY" per line, separated by
// spaces or tabs; blank lines and lines starting with '#' are skipped.
absl::Status ReadHandoutLinesFile(const std::string& path, v1::HandOutRequest* req) {
  WL_ASSIGN_OR_RETURN(const std::string text,
                      ReadFileCapped(path, kHandoutLinesFileBytesMax, "lines file"));
  size_t line_no = 0;
  absl::string_view rest(text);
  while (!rest.empty()) {
    const size_t newline = rest.find('\n');
    const absl::string_view line = absl::StripAsciiWhitespace(rest.substr(0, newline));
    rest = newline == absl::string_view::npos ? absl::string_view() : rest.substr(newline + 1);
    ++line_no;
    if (line.empty() || line.front() == '#') continue;
    const std::string where = absl::StrCat("--lines_file ", path, " line ", line_no);
    const size_t gap = line.find_last_of(" \t");
    if (gap == absl::string_view::npos) {
      return UsageError(absl::StrCat(where, ": expected RECIPIENT QUANTITY, got \"",
                                     Printable(std::string(line)), "\""));
    }
    WL_ASSIGN_OR_RETURN(*req->add_lines(),
                        MakeHandoutLine(line.substr(0, gap), line.substr(gap + 1), where));
  }
  return absl::OkStatus();
}

absl::Status CmdHandout(Invocation& inv) {
  FlagSet flags(
      Usage("handout",
            "--client_id=ID --from=STOCK --item=item:CODE (--line=RECIPIENT:QTY ... | "
            "--lines_file=FILE) [flags]"),
      absl::StrCat(
          "Hands goods out from a stock to registered recipients in one entry (clerk,\n"
          "admin), earliest expiry first. Each --line is RECIPIENT:QUANTITY (repeat it, or\n"
          "separate lines by commas); FILE holds one \"RECIPIENT QUANTITY\" per line (blank\n"
          "lines and lines starting with # are skipped). Both may be given. At most ",
          kHandoutLinesMax,
          "\nrecipients, each once; split a longer list into several handouts. A line that an\n"
          "aid rule forbids refuses the whole handout, naming the line and the earlier\n"
          "entry; repeat it with the same --client_id and --override=REASON to hand out anyway."));
  std::string client_id, from, item, lines_file, purpose, override_reason;
  std::vector<std::string> lines;
  flags.AddString("client_id", &client_id, "idempotency id", FlagRequirement::kRequired);
  flags.AddString("from", &from, "a stock account of the item", FlagRequirement::kRequired);
  flags.AddString("item", &item, "the item, item:<code>", FlagRequirement::kRequired);
  flags.AddStringList("line", &lines, "RECIPIENT:QUANTITY");
  flags.AddString("lines_file", &lines_file, "a file of \"RECIPIENT QUANTITY\" lines");
  flags.AddString("purpose", &purpose, "what the handout is for");
  AddOverrideFlag(flags, &override_reason, "the goods are handed out");
  WL_PARSE_FLAGS(inv, flags);
  v1::HandOutRequest req;
  req.set_client_id(client_id);
  req.set_from(from);
  req.set_item(item);
  req.set_purpose(purpose);
  req.set_override_reason(override_reason);
  for (const std::string& line : lines) {
    WL_ASSIGN_OR_RETURN(*req.add_lines(), ParseHandoutFlag(line));
  }
  if (flags.Seen("lines_file")) {
    if (lines_file.empty()) return UsageError("--lines_file needs a file name");
    WL_RETURN_IF_ERROR(ReadHandoutLinesFile(lines_file, &req));
  }
  if (req.lines().empty()) return UsageError("give at least one --line or a --lines_file");
  if (static_cast<size_t>(req.lines_size()) > kHandoutLinesMax) {
    return UsageError(absl::StrCat(req.lines_size(), " recipients; one handout takes at most ",
                                   kHandoutLinesMax, ": split the list"));
  }
  v1::HandOutResponse resp;
  WL_RETURN_IF_ERROR(
      inv.Unary([&](grpc::ClientContext* c) { return inv.goods().HandOut(c, req, &resp); }));
  if (inv.json()) return inv.PrintJson(resp);
  auto fields = WriteFields(resp.result());
  fields.insert(fields.begin() + 1, {{"recipients", absl::StrCat(req.lines_size())},
                                     {"handed out", GoodsText(item, resp.quantity())}});
  AddOverrideField(&fields, override_reason);
  PrintFields(inv.out(), fields);
  return absl::OkStatus();
}

absl::Status CmdWriteOff(Invocation& inv) {
  FlagSet flags(
      Usage("write-off",
            "--client_id=ID --from=STOCK --to=EXPENSE --item=item:CODE --quantity=N "
            "--reason=TEXT [--lot=N]"),
      "Writes goods off a stock (spoiled, damaged, lost) to an expense account, with a\n"
      "reason (clerk, admin): from --lot only when given (a spoiled batch), otherwise\n"
      "earliest expiry first.");
  std::string client_id, from, to, item, reason;
  int64_t quantity = 0;
  uint64_t lot = 0;
  flags.AddString("client_id", &client_id, "idempotency id", FlagRequirement::kRequired);
  flags.AddString("from", &from, "a stock account of the item", FlagRequirement::kRequired);
  flags.AddString("to", &to, "an expense account (opened without a fixed asset)",
                  FlagRequirement::kRequired);
  flags.AddString("item", &item, "the item, item:<code>", FlagRequirement::kRequired);
  flags.AddInt64("quantity", &quantity, "units written off", FlagRequirement::kRequired);
  flags.AddString("reason", &reason, "why", FlagRequirement::kRequired);
  flags.AddUint64("lot", &lot, "only from this lot (its entry's seq)");
  WL_PARSE_FLAGS(inv, flags);
  if (flags.Seen("lot") && lot == 0) return UsageError("--lot starts at 1");
  v1::WriteOffGoodsRequest req;
  req.set_client_id(client_id);
  req.set_from(from);
  req.set_to(to);
  req.set_item(item);
  req.set_quantity(quantity);
  req.set_lot(lot);
  req.set_reason(reason);
  v1::WriteOffGoodsResponse resp;
  WL_RETURN_IF_ERROR(inv.Unary(
      [&](grpc::ClientContext* c) { return inv.goods().WriteOffGoods(c, req, &resp); }));
  if (inv.json()) return inv.PrintJson(resp);
  auto fields = WriteFields(resp.result());
  fields.insert(fields.begin() + 1, {"written off", GoodsText(item, resp.quantity())});
  PrintFields(inv.out(), fields);
  return absl::OkStatus();
}

absl::Status CmdGoodsSale(Invocation& inv) {
  FlagSet flags(
      Usage("goods-sale",
            "--client_id=ID --from=STOCK --buyer=MERCHANT --item=item:CODE --quantity=N "
            "--to=FUND --proceeds=FEN|--proceeds_yuan=Y [flags]"),
      "Sells goods from a stock to a buyer such as the charity supermarket (clerk,\n"
      "admin), earliest expiry first. The proceeds enter the fund or project as a new\n"
      "money lot whose parents are the goods lots sold, so the goods' donors can follow\n"
      "their gift into the money it became.");
  std::string client_id, from, buyer, item, to, asset = "CNY", memo;
  int64_t quantity = 0;
  MoneyAmountFlags proceeds("proceeds");
  flags.AddString("client_id", &client_id, "idempotency id", FlagRequirement::kRequired);
  flags.AddString("from", &from, "a stock account of the item", FlagRequirement::kRequired);
  flags.AddString("buyer", &buyer, "a merchant account (opened without a fixed asset)",
                  FlagRequirement::kRequired);
  flags.AddString("item", &item, "the item, item:<code>", FlagRequirement::kRequired);
  flags.AddInt64("quantity", &quantity, "units sold", FlagRequirement::kRequired);
  flags.AddString("to", &to, "the fund or project receiving the proceeds",
                  FlagRequirement::kRequired);
  proceeds.Register(flags, "what the buyer pays for all of them");
  flags.AddString("asset", &asset, "the money asset of the proceeds");
  flags.AddString("memo", &memo, "free text");
  WL_PARSE_FLAGS(inv, flags);
  WL_ASSIGN_OR_RETURN(const int64_t proceeds_minor, proceeds.Required(flags));
  v1::SellGoodsRequest req;
  req.set_client_id(client_id);
  req.set_from(from);
  req.set_buyer(buyer);
  req.set_item(item);
  req.set_quantity(quantity);
  req.set_to(to);
  req.set_asset(asset);
  req.set_proceeds(proceeds_minor);
  req.set_memo(memo);
  v1::SellGoodsResponse resp;
  WL_RETURN_IF_ERROR(
      inv.Unary([&](grpc::ClientContext* c) { return inv.goods().SellGoods(c, req, &resp); }));
  if (inv.json()) return inv.PrintJson(resp);
  auto fields = WriteFields(resp.result());
  fields.insert(fields.begin() + 1, {{"lot", absl::StrCat(resp.lot())},
                                     {"sold", GoodsText(item, quantity)},
                                     {"proceeds", MoneyText(asset, resp.proceeds())}});
  PrintFields(inv.out(), fields);
  return absl::OkStatus();
}

// ---------------------------------------------------------------- aid supervision

// The words of the aid commands for the entries a rule counts.
constexpr std::pair<std::string_view, v1::EntryType> kAidTypes[] = {
    {"disbursement", v1::DISBURSEMENT},
    {"voucher", v1::VOUCHER_ISSUE},
    {"handout", v1::HANDOUT},
};

std::string AidTypeName(v1::EntryType type) {
  for (const auto& [name, t] : kAidTypes) {
    if (t == type) return std::string(name);
  }
  return TypeName(type);
}

// "day" ... "year"; "period-N" for a value this client does not know.
std::string AidPeriodText(v1::AidPeriod period) {
  const int value = static_cast<int>(period);
  if (value < 1 || value > kAidPeriodMax) return absl::StrCat("period-", value);
  return AidPeriodName(static_cast<AidPeriod>(value));
}

absl::Status CmdAidRule(Invocation& inv) {
  FlagSet flags(
      Usage("aid-rule",
            "--client_id=ID --aid=NAME --type=disbursement|voucher|handout --max=N "
            "--period=day|week|month|quarter|year [--source=ACCOUNT] [--asset=CODE] "
            "[--memo=TEXT]"),
      "Sets the rule of one kind of aid (clerk, admin): each recipient may receive it\n"
      "at most --max times per calendar --period in China time (weeks from Monday).\n"
      "It counts the disbursements to a recipient, the voucher issues or the handout\n"
      "lines (--type) that leave --source (default: any fund, project or stock) in\n"
      "--asset (default: any), and have not been reversed. An operation that would\n"
      "break it is refused naming the earlier entry, unless it carries --override.\n"
      "Setting a rule with the same --aid replaces it; --max=0 lifts it.");
  std::string client_id, aid, type, source, asset, period, memo;
  int64_t max = -1;
  flags.AddString("client_id", &client_id, "idempotency id", FlagRequirement::kRequired);
  flags.AddString("aid", &aid, "names the kind of aid, e.g. cash-aid, daily-box",
                  FlagRequirement::kRequired);
  flags.AddString("type", &type, "what counts: disbursement, voucher or handout",
                  FlagRequirement::kRequired);
  flags.AddString("source", &source, "only aid leaving this fund, project or stock");
  flags.AddString("asset", &asset, "only aid in this asset (CNY, item:<code>)");
  flags.AddInt64("max", &max, "times per period and recipient; 0 lifts the rule",
                 FlagRequirement::kRequired);
  flags.AddString("period", &period, "day, week, month, quarter or year",
                  FlagRequirement::kRequired);
  flags.AddString("memo", &memo, "free text: the policy behind the rule");
  WL_PARSE_FLAGS(inv, flags);
  v1::SetAidRuleRequest req;
  req.set_client_id(client_id);
  req.set_aid(aid);
  for (const auto& [name, t] : kAidTypes) {
    if (name == type) req.set_type(t);
  }
  if (req.type() == v1::ENTRY_TYPE_UNSPECIFIED) {
    return UsageError(absl::StrCat("--type must be disbursement, voucher or handout (not \"",
                                   Printable(type), "\")"));
  }
  const std::optional<AidPeriod> parsed_period = AidPeriodFromName(period);
  if (!parsed_period.has_value()) {
    return UsageError(absl::StrCat(
        "--period must be day, week, month, quarter or year (not \"", Printable(period), "\")"));
  }
  req.set_period(static_cast<v1::AidPeriod>(*parsed_period));
  if (max < 0 || max > std::numeric_limits<uint32_t>::max()) {
    return UsageError(absl::StrCat("--max must be 0 (lift the rule) .. ",
                                   std::numeric_limits<uint32_t>::max()));
  }
  req.set_max_count(static_cast<uint32_t>(max));
  req.set_source(source);
  req.set_asset(asset);
  req.set_memo(memo);
  v1::WriteResult resp;
  WL_RETURN_IF_ERROR(
      inv.Unary([&](grpc::ClientContext* c) { return inv.aid().SetAidRule(c, req, &resp); }));
  if (inv.json()) return inv.PrintJson(resp);
  auto fields = WriteFields(resp);
  fields.insert(
      fields.begin() + 1,
      {"rule", max == 0 ? absl::StrCat(aid, " lifted")
                        : absl::StrCat(aid, ": at most ", max, " ", type, max == 1 ? "" : "s",
                                       " per ", period, " to each recipient from ",
                                       source.empty() ? std::string("any source") : source,
                                       asset.empty() ? "" : absl::StrCat(" in ", asset))});
  PrintFields(inv.out(), fields);
  return absl::OkStatus();
}

absl::Status CmdAidRules(Invocation& inv) {
  FlagSet flags(Usage("aid-rules", ""),
                "Lists the aid rules in force (clerk, auditor, admin): what each counts, how\n"
                "often a recipient may receive it per period, and the entry that set it.");
  WL_PARSE_FLAGS(inv, flags);
  v1::AidRules rules;
  WL_RETURN_IF_ERROR(inv.Unary([&](grpc::ClientContext* c) {
    return inv.aid().ListAidRules(c, v1::ListAidRulesRequest(), &rules);
  }));
  if (inv.json()) return inv.PrintJson(rules);
  Table table({{"AID"},
               {"COUNTS"},
               {"SOURCE"},
               {"ASSET"},
               {"MAX", Align::kRight},
               {"PER"},
               {"SEQ", Align::kRight},
               {"MEMO"}});
  for (const v1::AidRule& r : rules.rules()) {
    table.AddRow({r.aid(), AidTypeName(r.type()), r.source().empty() ? "(any)" : r.source(),
                  r.asset().empty() ? "(any)" : r.asset(), absl::StrCat(r.max_count()),
                  AidPeriodText(r.period()), absl::StrCat(r.seq()),
                  r.memo().empty() ? "-" : r.memo()});
  }
  table.Print(inv.out());
  return absl::OkStatus();
}

absl::Status CmdAidReport(Invocation& inv) {
  FlagSet flags(
      Usage("aid-report", "--from=TIME [--to=TIME] [--public]"),
      absl::StrCat(
          "Aid to recipients in a period of ledger time, by category, community, type\n"
          "(cash aid, voucher, goods handout) and asset: how many people, how many\n"
          "entries, how much; reversed aid is left out. The office view needs a clerk,\n"
          "auditor or admin token. --public asks for the public view, open to anyone:\n"
          "it leaves out every cell of fewer than ",
          kAidReportMinPeople,
          " people, so that no one can be singled\n"
          "out, and says how many it left out. Days are in China time (UTC+08:00):\n"
          "--from=2024-01-01 --to=2024-04-01 is the first quarter. --to defaults to now."));
  TimeFlags from("from"), to("to");
  bool public_view = false;
  from.Register(flags, "from this time, inclusive");
  to.Register(flags, "until this time, exclusive");
  flags.AddBool("public", &public_view, "the public view: only cells of enough people");
  WL_PARSE_FLAGS(inv, flags);
  WL_ASSIGN_OR_RETURN(const std::optional<int64_t> from_us, from.Resolve(flags));
  WL_ASSIGN_OR_RETURN(const std::optional<int64_t> to_us, to.Resolve(flags));
  if (!from_us.has_value()) return UsageError("give --from=TIME (e.g. --from=2024-01-01)");
  if (to_us.has_value() && *to_us <= *from_us) return UsageError("--to must be after --from");
  v1::AidReportRequest req;
  req.set_from_time_us(*from_us);
  req.set_to_time_us(to_us.value_or(0));
  req.set_public_view(public_view);
  v1::AidReport report;
  WL_RETURN_IF_ERROR(inv.Unary(
      [&](grpc::ClientContext* c) { return inv.aid().GetAidReport(c, req, &report); }));
  if (inv.json()) return inv.PrintJson(report);
  inv.out() << (report.public_view() ? "public" : "office") << " aid report from "
            << FormatChinaTimeUs(report.from_time_us()) << " to "
            << FormatChinaTimeUs(report.to_time_us())
            << " (China time, UTC+08:00; end excluded)\n\n";
  Table table({{"CATEGORY"},
               {"COMMUNITY"},
               {"AID"},
               {"ASSET"},
               {"PEOPLE", Align::kRight},
               {"ENTRIES", Align::kRight},
               {"AMOUNT", Align::kRight}});
  for (const v1::AidCell& c : report.cells()) {
    table.AddRow({c.category(), c.community(), AidTypeName(c.type()), c.asset(),
                  absl::StrCat(c.people()), absl::StrCat(c.entries()),
                  FormatAmount(c.asset(), c.amount())});
  }
  table.Print(inv.out());
  if (report.public_view()) {
    inv.out() << report.suppressed_cells()
              << (report.suppressed_cells() == 1 ? " cell" : " cells") << " of fewer than "
              << report.min_people() << " people left out\n";
  }
  return absl::OkStatus();
}

// ---------------------------------------------------------------- traces

// What the parts of a lot that went into a conversion became: the goods
// its money bought (and who received them, by category and community), or
// the money its goods were sold for. Checks each conversion's sums.
absl::Status PrintConversions(std::ostream& out, const v1::Trace& t) {
  for (const v1::LotConversion& c : t.conversions()) {
    const std::string& made = c.asset();
    out << "\n" << FormatAmount(t.asset(), c.consumed()) << " " << Printable(t.asset())
        << " of this lot went into " << TypeName(c.type()) << " " << c.seq()
        << ", which made lot " << c.seq() << " of " << FormatAmount(made, c.lot_amount()) << " "
        << Printable(made) << "; this lot's share, " << FormatAmount(made, c.share()) << " "
        << Printable(made) << ", is now:\n";
    Table places({{"PLACE"},
                  {"KIND"},
                  {"CATEGORY"},
                  {"COMMUNITY"},
                  {"AMOUNT", Align::kRight},
                  {"OF THIS LOT", Align::kRight}});
    __int128 amount_sum = 0, source_sum = 0;
    for (int i = 0; i < c.places_size(); ++i) {
      const v1::ConversionPlace& p = c.places(i);
      amount_sum += p.amount();
      source_sum += p.source_amount();
      if (i >= kTraceRowsShownMax) continue;
      places.AddRow({p.account().empty() ? "recipients" : p.account(), KindName(p.kind()),
                     p.category().empty() ? "-" : p.category(),
                     p.community().empty() ? "-" : p.community(), FormatAmount(made, p.amount()),
                     FormatAmount(t.asset(), p.source_amount())});
    }
    places.Print(out);
    if (c.places_size() > kTraceRowsShownMax) {
      out << "... " << c.places_size() - kTraceRowsShownMax << " more places (--json shows all)\n";
    }
    if (amount_sum != c.share() || source_sum != c.consumed()) {
      return absl::DataLossError(absl::StrCat("the conversion ", c.seq(), " in the trace of lot ",
                                              t.lot(), " does not sum to its share"));
    }
  }
  return absl::OkStatus();
}

// Prints one forward trace and checks that it accounts for the whole lot.
absl::Status PrintTrace(std::ostream& out, const v1::Trace& t) {
  const std::string& asset = t.asset();
  std::vector<std::pair<std::string, std::string>> fields = {
      {"lot", absl::StrCat(t.lot())},
      {"donor", DonorText(t.donor(), t.anonymous())},
      {"to", t.to()},
      {"amount", absl::StrCat(FormatAmount(asset, t.amount()), " ", asset)},
      {"time", FormatTimeUs(t.time_us())},
  };
  // A purchase contribution: the store is the donor; the order and the
  // member credited (absent from public views) say which sale it was.
  if (!t.order_id().empty()) fields.push_back({"order", t.order_id()});
  if (!t.member().empty()) fields.push_back({"member", t.member()});
  // Lots not made by a donation: goods given or bought, a sale's proceeds.
  if (t.created_by() != v1::ENTRY_TYPE_UNSPECIFIED && t.created_by() != v1::DONATION) {
    fields.push_back({"made by", TypeName(t.created_by())});
  }
  if (!t.grade().empty()) fields.push_back({"grade", t.grade()});
  if (t.expires_us() != 0) fields.push_back({"expires", FormatTimeUs(t.expires_us())});
  if (!t.value_asset().empty()) {
    fields.push_back({"appraised", absl::StrCat(MoneyText(t.value_asset(), t.value()),
                                                " (as given; not in balances)")});
  }
  PrintFields(out, fields);
  if (t.parent_count() > 0) {
    // What paid for the goods (or which goods the proceeds came from).
    out << "\nlots behind this one:\n";
    Table parents({{"LOT", Align::kRight},
                   {"DONOR"},
                   {"CONSUMED", Align::kRight},
                   {"SHARE", Align::kRight}});
    for (int i = 0; i < t.parents_size() && i < kTraceRowsShownMax; ++i) {
      const v1::LotParent& p = t.parents(i);
      parents.AddRow({absl::StrCat(p.lot()), DonorText(p.donor(), p.anonymous()),
                      absl::StrCat(FormatAmount(p.asset(), p.consumed()), " ", p.asset()),
                      FormatAmount(asset, p.share())});
    }
    parents.Print(out);
    if (t.parent_count() > static_cast<uint64_t>(std::min(t.parents_size(), kTraceRowsShownMax))) {
      out << "... " << t.parent_count() - std::min(t.parents_size(), kTraceRowsShownMax)
          << " more lots (--json shows the first 10,000)\n";
    }
  }
  out << "\nmovements:\n";
  Table hops({{"SEQ", Align::kRight},
              {"TIME"},
              {"TYPE"},
              {"FROM"},
              {"TO"},
              {"AMOUNT", Align::kRight},
              {"DETAIL"}});
  for (const v1::TraceHop& h : t.hops()) {
    // Voucher issues name the recipient's category and community (never the
    // person); redemptions and refunds name the store's order.
    std::string detail = "-";
    if (!h.order_id().empty()) {
      detail = absl::StrCat("order ", h.order_id());
    } else if (!h.category().empty() || !h.community().empty()) {
      detail = absl::StrCat(h.category().empty() ? "-" : h.category(), " / ",
                            h.community().empty() ? "-" : h.community());
    }
    hops.AddRow({absl::StrCat(h.seq()), FormatTimeUs(h.time_us()), TypeName(h.type()), h.from(),
                 h.to(), FormatAmount(asset, h.amount()), detail});
  }
  hops.Print(out);

  __int128 held_sum = 0, reached_sum = 0;
  out << "\nstill held:\n";
  {
    Table held({{"ACCOUNT"}, {"KIND"}, {"AMOUNT", Align::kRight}});
    for (const v1::TracePlace& p : t.held()) {
      held.AddRow({p.account(), KindName(p.kind()), FormatAmount(asset, p.amount())});
      held_sum += p.amount();
    }
    held.Print(out);
  }
  out << "\nreached:\n";
  {
    Table reached({{"ACCOUNT"}, {"KIND"}, {"CATEGORY"}, {"COMMUNITY"}, {"AMOUNT", Align::kRight}});
    for (const v1::TracePlace& p : t.reached()) {
      reached.AddRow({p.account(), KindName(p.kind()), p.category().empty() ? "-" : p.category(),
                      p.community().empty() ? "-" : p.community(),
                      FormatAmount(asset, p.amount())});
      reached_sum += p.amount();
    }
    reached.Print(out);
  }
  const __int128 total = held_sum + reached_sum;
  const bool fits = total >= INT64_MIN && total <= INT64_MAX && held_sum >= INT64_MIN &&
                    held_sum <= INT64_MAX && reached_sum >= INT64_MIN && reached_sum <= INT64_MAX;
  if (!fits || static_cast<int64_t>(total) != t.amount()) {
    return absl::DataLossError(
        absl::StrCat("the trace of lot ", t.lot(), " does not sum to the lot's amount"));
  }
  out << "\naccounted for: " << FormatAmount(asset, static_cast<int64_t>(total)) << " of "
      << FormatAmount(asset, t.amount()) << " " << Printable(asset) << " (held "
      << FormatAmount(asset, static_cast<int64_t>(held_sum)) << ", reached "
      << FormatAmount(asset, static_cast<int64_t>(reached_sum)) << ")\n";
  return PrintConversions(out, t);
}

absl::Status CmdTrace(Invocation& inv) {
  FlagSet flags(Usage("trace", "--code=TRACE_CODE | --lot=N"),
                "Shows where a donation (or a gift of goods) went: every movement of the lot,\n"
                "where its value is now and, when it bought goods or was sold, what it became\n"
                "and who received that, by category and community. --code works without a\n"
                "token (public view); --lot needs clerk or auditor.");
  std::string code;
  uint64_t lot = 0;
  flags.AddString("code", &code, "trace code given to the donor");
  flags.AddUint64("lot", &lot, "lot number (the donation's seq)");
  WL_PARSE_FLAGS(inv, flags);
  if (flags.Seen("code") == flags.Seen("lot"))
    return UsageError("give exactly one of --code and --lot");
  v1::Trace trace;
  if (flags.Seen("code")) {
    v1::TraceByCodeRequest req;
    req.set_trace_code(code);
    WL_RETURN_IF_ERROR(inv.Unary(
        [&](grpc::ClientContext* c) { return inv.ledger().TraceByCode(c, req, &trace); }));
  } else {
    v1::TraceDonationRequest req;
    req.set_lot(lot);
    WL_RETURN_IF_ERROR(inv.Unary(
        [&](grpc::ClientContext* c) { return inv.ledger().TraceDonation(c, req, &trace); }));
  }
  if (inv.json()) return inv.PrintJson(trace);
  return PrintTrace(inv.out(), trace);
}

absl::Status CmdTraceEntry(Invocation& inv) {
  FlagSet flags(Usage("trace-entry", "--seq=SEQ [--offset=N] [--limit=N]"),
                "Shows which lots (and donors) paid for an entry's outflow, paged.");
  uint64_t seq = 0, offset = 0, limit = 0;
  flags.AddUint64("seq", &seq, "entry", FlagRequirement::kRequired);
  flags.AddUint64("offset", &offset, "first source (0-based)");
  flags.AddUint64("limit", &limit, "sources per page; 0 means 100, at most 10000");
  WL_PARSE_FLAGS(inv, flags);
  v1::TraceEntryRequest req;
  req.set_seq(seq);
  req.set_offset(offset);
  req.set_limit(limit);
  v1::EntryTrace trace;
  WL_RETURN_IF_ERROR(
      inv.Unary([&](grpc::ClientContext* c) { return inv.ledger().TraceEntry(c, req, &trace); }));
  if (inv.json()) return inv.PrintJson(trace);
  // EntryTrace carries no asset; the entry's postings do.
  v1::GetEntryRequest entry_req;
  entry_req.set_seq(seq);
  v1::Entry entry;
  WL_RETURN_IF_ERROR(inv.Unary(
      [&](grpc::ClientContext* c) { return inv.ledger().GetEntry(c, entry_req, &entry); }));
  const auto asset_of = [&](uint32_t posting_index) -> std::string {
    if (posting_index < static_cast<uint32_t>(entry.postings_size())) {
      return entry.postings(static_cast<int>(posting_index)).asset();
    }
    return "";
  };
  const std::string main_asset = entry.postings_size() > 0 ? entry.postings(0).asset() : "";
  PrintFields(
      inv.out(),
      {
          {"entry", absl::StrCat(trace.seq())},
          {"type", TypeName(trace.type())},
          {"outflow", absl::StrCat(FormatAmount(main_asset, trace.outflow()), " ", main_asset)},
          {"sources", absl::StrCat(trace.total_count())},
      });
  inv.out() << '\n';
  Table table(
      {{"POSTING", Align::kRight}, {"LOT", Align::kRight}, {"DONOR"}, {"AMOUNT", Align::kRight}});
  for (const v1::TraceSource& s : trace.sources()) {
    table.AddRow({absl::StrCat(s.posting_index()), absl::StrCat(s.lot()),
                  DonorText(s.donor(), s.anonymous()),
                  FormatAmount(asset_of(s.posting_index()), s.amount())});
  }
  table.Print(inv.out());
  // Lots made by a conversion (goods bought with gifts, a sale's proceeds):
  // the lots behind them, listed with the first source of each.
  for (const v1::TraceSource& s : trace.sources()) {
    if (s.behind_size() == 0) continue;
    const std::string a = asset_of(s.posting_index());
    inv.out() << "\nlots behind lot " << s.lot() << " (shares of the whole lot, in "
              << Printable(a) << "):\n";
    Table behind({{"LOT", Align::kRight},
                  {"DONOR"},
                  {"CONSUMED", Align::kRight},
                  {"SHARE", Align::kRight}});
    for (int i = 0; i < s.behind_size() && i < kTraceRowsShownMax; ++i) {
      const v1::LotParent& p = s.behind(i);
      behind.AddRow({absl::StrCat(p.lot()), DonorText(p.donor(), p.anonymous()),
                     absl::StrCat(FormatAmount(p.asset(), p.consumed()), " ", p.asset()),
                     FormatAmount(a, p.share())});
    }
    behind.Print(inv.out());
    if (s.behind_count() > static_cast<uint64_t>(std::min(s.behind_size(), kTraceRowsShownMax))) {
      inv.out() << "... " << s.behind_count() - std::min(s.behind_size(), kTraceRowsShownMax)
                << " more lots (--json shows more)\n";
    }
  }
  if (static_cast<uint64_t>(trace.sources_size()) < trace.total_count()) {
    inv.out() << "\nshowing " << trace.offset() + (trace.sources_size() > 0 ? 1 : 0) << ".."
              << trace.offset() + trace.sources_size() << " of " << trace.total_count()
              << " sources (--offset, --limit)\n";
  }
  return absl::OkStatus();
}

absl::Status CmdDonorStatement(Invocation& inv) {
  FlagSet flags(Usage("donor-statement", "--donor=ACCOUNT [--offset=N] [--limit=N]"),
                "Shows a donor's lots, each with its trace, paged.");
  std::string donor;
  uint64_t offset = 0, limit = 0;
  flags.AddString("donor", &donor, "donor account", FlagRequirement::kRequired);
  flags.AddUint64("offset", &offset, "first lot (0-based)");
  flags.AddUint64("limit", &limit, "lots per page; 0 means 100, at most 10000");
  WL_PARSE_FLAGS(inv, flags);
  v1::DonorStatementRequest req;
  req.set_donor(donor);
  req.set_offset(offset);
  req.set_limit(limit);
  v1::DonorStatement statement;
  WL_RETURN_IF_ERROR(inv.Unary(
      [&](grpc::ClientContext* c) { return inv.ledger().GetDonorStatement(c, req, &statement); }));
  if (inv.json()) return inv.PrintJson(statement);
  inv.out() << "donor " << Printable(statement.donor()) << ": " << statement.total_lots()
            << " lots";
  if (statement.lots_size() > 0) {
    inv.out() << ", showing " << statement.offset() + 1 << ".."
              << statement.offset() + statement.lots_size();
  }
  inv.out() << '\n';
  absl::Status first_error;
  for (const v1::Trace& t : statement.lots()) {
    inv.out() << "\n";
    absl::Status s = PrintTrace(inv.out(), t);
    if (!s.ok() && first_error.ok()) first_error = s;
  }
  return first_error;
}

// ---------------------------------------------------------------- reads

absl::Status CmdStatement(Invocation& inv) {
  FlagSet flags(
      Usage("statement", "--account=ACCOUNT [--from_us=T] [--to_us=T] [--offset=N] [--limit=N]"),
      "Lists the entries that touched an account, with the running balance.");
  std::string account;
  int64_t from_us = 0, to_us = 0;
  uint64_t offset = 0, limit = 0;
  flags.AddString("account", &account, "account id", FlagRequirement::kRequired);
  flags.AddInt64("from_us", &from_us, "from this time, inclusive (microseconds since epoch)");
  flags.AddInt64("to_us", &to_us, "until this time, exclusive (microseconds since epoch)");
  flags.AddUint64("offset", &offset, "first line (0-based)");
  flags.AddUint64("limit", &limit, "lines per page; 0 means 100, at most 10000");
  WL_PARSE_FLAGS(inv, flags);
  v1::StatementRequest req;
  req.set_account(account);
  req.set_from_time_us(from_us);
  req.set_to_time_us(to_us);
  req.set_offset(offset);
  req.set_limit(limit);
  v1::Statement statement;
  WL_RETURN_IF_ERROR(inv.Unary(
      [&](grpc::ClientContext* c) { return inv.ledger().GetStatement(c, req, &statement); }));
  if (inv.json()) return inv.PrintJson(statement);
  inv.out() << "account " << Printable(statement.account()) << ": " << statement.total_count()
            << " lines";
  if (statement.lines_size() > 0) {
    inv.out() << ", showing " << statement.offset() + 1 << ".."
              << statement.offset() + statement.lines_size();
  }
  inv.out() << "\n\n";
  Table table({{"SEQ", Align::kRight},
               {"TIME"},
               {"TYPE"},
               {"COUNTERPARTY"},
               {"ASSET"},
               {"DELTA", Align::kRight},
               {"BALANCE", Align::kRight}});
  for (const v1::StatementLine& l : statement.lines()) {
    table.AddRow({absl::StrCat(l.seq()), FormatTimeUs(l.time_us()), TypeName(l.type()),
                  l.counterparty().empty() ? "-" : l.counterparty(), l.asset(),
                  SignedAmount(l.asset(), l.delta()), FormatAmount(l.asset(), l.balance_after())});
  }
  table.Print(inv.out());
  return absl::OkStatus();
}

void AddFundRow(Table& table, const v1::FundSummary& f) {
  const std::string& a = f.asset();
  table.AddRow({f.account(), f.name(), KindName(f.kind()) + (f.restricted() ? " (r)" : ""), a,
                FormatAmount(a, f.raised()), FormatAmount(a, f.allocated_in()),
                FormatAmount(a, f.allocated_out()), FormatAmount(a, f.spent()),
                FormatAmount(a, f.corrected_in()), FormatAmount(a, f.corrected_out()),
                FormatAmount(a, f.held())});
}

Table FundTable() {
  return Table({{"ACCOUNT"},
                {"NAME"},
                {"KIND"},
                {"ASSET"},
                {"RAISED", Align::kRight},
                {"ALLOC-IN", Align::kRight},
                {"ALLOC-OUT", Align::kRight},
                {"SPENT", Align::kRight},
                {"CORR-IN", Align::kRight},
                {"CORR-OUT", Align::kRight},
                {"HELD", Align::kRight}});
}

absl::Status CmdFunds(Invocation& inv) {
  FlagSet flags(Usage("funds", ""), "Lists every fund and project with its totals (public).");
  WL_PARSE_FLAGS(inv, flags);
  v1::ListFundSummariesRequest req;
  v1::FundSummaries funds;
  WL_RETURN_IF_ERROR(inv.Unary(
      [&](grpc::ClientContext* c) { return inv.ledger().ListFundSummaries(c, req, &funds); }));
  if (inv.json()) return inv.PrintJson(funds);
  Table table = FundTable();
  for (const v1::FundSummary& f : funds.funds()) AddFundRow(table, f);
  table.Print(inv.out());
  return absl::OkStatus();
}

absl::Status CmdFund(Invocation& inv) {
  FlagSet flags(Usage("fund", "--account=ACCOUNT"),
                "Shows one fund's or project's totals (public).");
  std::string account;
  flags.AddString("account", &account, "fund or project", FlagRequirement::kRequired);
  WL_PARSE_FLAGS(inv, flags);
  v1::FundSummaryRequest req;
  req.set_account(account);
  v1::FundSummary f;
  WL_RETURN_IF_ERROR(
      inv.Unary([&](grpc::ClientContext* c) { return inv.ledger().GetFundSummary(c, req, &f); }));
  if (inv.json()) return inv.PrintJson(f);
  const std::string& a = f.asset();
  PrintFields(inv.out(), {
                             {"account", f.account()},
                             {"name", f.name()},
                             {"kind", KindName(f.kind())},
                             {"asset", a},
                             {"restricted", YesNo(f.restricted())},
                             {"raised", FormatAmount(a, f.raised())},
                             {"allocated in", FormatAmount(a, f.allocated_in())},
                             {"allocated out", FormatAmount(a, f.allocated_out())},
                             {"spent", FormatAmount(a, f.spent())},
                             {"corrected in", FormatAmount(a, f.corrected_in())},
                             {"corrected out", FormatAmount(a, f.corrected_out())},
                             {"goods bought", FormatAmount(a, f.goods_bought())},
                             {"goods sales", FormatAmount(a, f.goods_sales())},
                             {"held", FormatAmount(a, f.held())},
                         });
  return absl::OkStatus();
}

absl::Status CmdAccount(Invocation& inv) {
  FlagSet flags(Usage("account", "--account=ACCOUNT"),
                "Shows an account with its balances and flow totals by entry type.");
  std::string account;
  flags.AddString("account", &account, "account id", FlagRequirement::kRequired);
  WL_PARSE_FLAGS(inv, flags);
  v1::GetAccountRequest req;
  req.set_account(account);
  v1::Account a;
  WL_RETURN_IF_ERROR(
      inv.Unary([&](grpc::ClientContext* c) { return inv.ledger().GetAccount(c, req, &a); }));
  if (inv.json()) return inv.PrintJson(a);
  std::vector<std::pair<std::string, std::string>> fields = {
      {"account", a.account()},
      {"kind", KindName(a.kind())},
      {"name", a.name().empty() ? "-" : a.name()},
      {"asset", a.asset().empty() ? "(any)" : a.asset()},
      {"restricted", YesNo(a.restricted())},
      {"closed", YesNo(a.closed())},
      {"opened seq", absl::StrCat(a.opened_seq())},
      {"entries", absl::StrCat(a.entry_count())},
      {"slices", absl::StrCat(a.slice_count())},
  };
  if (!a.category().empty()) fields.push_back({"category", a.category()});
  if (!a.community().empty()) fields.push_back({"community", a.community()});
  PrintFields(inv.out(), fields);
  inv.out() << "\nbalances:\n";
  Table balances({{"ASSET"}, {"BALANCE", Align::kRight}});
  for (const v1::Balance& b : a.balances())
    balances.AddRow({b.asset(), FormatAmount(b.asset(), b.amount())});
  balances.Print(inv.out());
  // Flows carry no asset: they are in the account's asset, or in its only
  // balance's asset. An any-asset account with several assets gets raw units.
  std::string flow_asset = a.asset();
  if (flow_asset.empty() && a.balances_size() == 1) flow_asset = a.balances(0).asset();
  const bool raw = flow_asset.empty() && a.balances_size() > 1;
  inv.out() << "\nflows" << (raw ? " (raw units, several assets)" : "") << ":\n";
  Table flows({{"TYPE"}, {"IN", Align::kRight}, {"OUT", Align::kRight}});
  for (const v1::Flow& f : a.flows()) {
    flows.AddRow({TypeName(f.type()), raw ? absl::StrCat(f.in()) : FormatAmount(flow_asset, f.in()),
                  raw ? absl::StrCat(f.out()) : FormatAmount(flow_asset, f.out())});
  }
  flows.Print(inv.out());
  return absl::OkStatus();
}

absl::Status CmdAccounts(Invocation& inv) {
  FlagSet flags(Usage("accounts", "[--kind=KIND] [--offset=N] [--limit=N]"),
                "Lists account ids, one per line.");
  std::string kind;
  uint64_t offset = 0, limit = 0;
  flags.AddString("kind", &kind, "only this kind (fund, project, donor, recipient, ...)");
  flags.AddUint64("offset", &offset, "first account (0-based)");
  flags.AddUint64("limit", &limit, "accounts per page; 0 means 100, at most 10000");
  WL_PARSE_FLAGS(inv, flags);
  v1::ListAccountsRequest req;
  if (!kind.empty()) {
    WL_ASSIGN_OR_RETURN(const v1::AccountKind k, ParseKind(kind, /*allow_recipient=*/true));
    req.set_kind(k);
  }
  req.set_offset(offset);
  req.set_limit(limit);
  v1::AccountList list;
  WL_RETURN_IF_ERROR(
      inv.Unary([&](grpc::ClientContext* c) { return inv.ledger().ListAccounts(c, req, &list); }));
  if (inv.json()) return inv.PrintJson(list);
  for (const std::string& a : list.accounts()) inv.out() << Printable(a) << '\n';
  if (offset + static_cast<uint64_t>(list.accounts_size()) < list.total_count() || offset > 0) {
    inv.err() << "showing " << list.accounts_size() << " from offset " << offset << " of "
              << list.total_count() << " accounts (--offset, --limit)\n";
  }
  return absl::OkStatus();
}

absl::Status CmdEntry(Invocation& inv) {
  FlagSet flags(Usage("entry", "--seq=SEQ"),
                "Shows one entry with its postings and checks its hash against its bytes.");
  uint64_t seq = 0;
  flags.AddUint64("seq", &seq, "entry", FlagRequirement::kRequired);
  WL_PARSE_FLAGS(inv, flags);
  v1::GetEntryRequest req;
  req.set_seq(seq);
  v1::Entry e;
  WL_RETURN_IF_ERROR(
      inv.Unary([&](grpc::ClientContext* c) { return inv.ledger().GetEntry(c, req, &e); }));
  const absl::Status verified = VerifyEntry(e, nullptr);
  if (inv.json()) {
    WL_RETURN_IF_ERROR(inv.PrintJson(e));
    return verified;
  }
  PrintFields(inv.out(), {
                             {"seq", absl::StrCat(e.seq())},
                             {"time", FormatTimeUs(e.time_us(), true)},
                             {"type", TypeName(e.type())},
                             {"client id", e.client_id()},
                             {"policy", e.policy()},
                             {"summary", e.summary()},
                             {"prev hash", HexEncode(e.prev_hash())},
                             {"hash", HexEncode(e.hash())},
                             {"verified", verified.ok() ? "hash matches the entry bytes" : "NO"},
                         });
  if (!e.postings().empty()) {
    inv.out() << "\npostings:\n";
    Table postings({{"#", Align::kRight},
                    {"FROM"},
                    {"TO"},
                    {"ASSET"},
                    {"AMOUNT", Align::kRight},
                    {"SLICES", Align::kRight}});
    for (int i = 0; i < e.postings_size(); ++i) {
      const v1::Posting& p = e.postings(i);
      postings.AddRow({absl::StrCat(i), p.from(), p.to(), p.asset(),
                       FormatAmount(p.asset(), p.amount()), absl::StrCat(p.slices_size())});
    }
    postings.Print(inv.out());
    for (int i = 0; i < e.postings_size(); ++i) {
      const v1::Posting& p = e.postings(i);
      if (p.slices().empty()) continue;
      inv.out() << "\nslices of posting " << i << ":\n";
      Table slices({{"LOT", Align::kRight}, {"AMOUNT", Align::kRight}});
      for (int k = 0; k < p.slices_size() && k < kSlicesShownMax; ++k) {
        slices.AddRow(
            {absl::StrCat(p.slices(k).lot()), FormatAmount(p.asset(), p.slices(k).amount())});
      }
      slices.Print(inv.out());
      if (p.slices_size() > kSlicesShownMax) {
        inv.out() << "... " << p.slices_size() - kSlicesShownMax << " more (--json shows all)\n";
      }
    }
  }
  return verified;
}

absl::Status CmdHead(Invocation& inv) {
  FlagSet flags(Usage("head", ""), "Shows the chain head: the last seq and its hash (public).");
  WL_PARSE_FLAGS(inv, flags);
  v1::GetHeadRequest req;
  v1::Head head;
  WL_RETURN_IF_ERROR(
      inv.Unary([&](grpc::ClientContext* c) { return inv.ledger().GetHead(c, req, &head); }));
  if (inv.json()) return inv.PrintJson(head);
  PrintFields(inv.out(), {{"seq", absl::StrCat(head.seq())}, {"hash", HexEncode(head.hash())}});
  return absl::OkStatus();
}

absl::Status CmdRegistry(Invocation& inv) {
  FlagSet flags(Usage("registry", ""),
                "Lists the configured recipient categories and communities (public).");
  WL_PARSE_FLAGS(inv, flags);
  v1::GetRegistryRequest req;
  v1::Registry registry;
  WL_RETURN_IF_ERROR(inv.Unary(
      [&](grpc::ClientContext* c) { return inv.ledger().GetRegistry(c, req, &registry); }));
  if (inv.json()) return inv.PrintJson(registry);
  Table categories({{"CATEGORY"}, {"NAME"}});
  for (const v1::Code& c : registry.categories()) categories.AddRow({c.code(), c.name()});
  categories.Print(inv.out());
  inv.out() << '\n';
  Table communities({{"COMMUNITY"}, {"NAME"}});
  for (const v1::Code& c : registry.communities()) communities.AddRow({c.code(), c.name()});
  communities.Print(inv.out());
  return absl::OkStatus();
}

absl::Status CmdBackup(Invocation& inv) {
  FlagSet flags(Usage("backup", "--dir=DIR"),
                "Makes the server write a consistent copy of its database into a new directory\n"
                "on the server's machine (admin).");
  std::string dir;
  flags.AddString("dir", &dir, "directory on the server; must not exist yet",
                  FlagRequirement::kRequired);
  WL_PARSE_FLAGS(inv, flags);
  v1::BackupRequest req;
  req.set_dir(dir);
  v1::BackupResponse resp;
  WL_RETURN_IF_ERROR(
      inv.Unary([&](grpc::ClientContext* c) { return inv.admin().Backup(c, req, &resp); }));
  if (inv.json()) return inv.PrintJson(resp);
  PrintFields(inv.out(), {{"dir", resp.dir()}, {"entries", absl::StrCat(resp.seq())}});
  return absl::OkStatus();
}

absl::Status CmdHealth(Invocation& inv) {
  FlagSet flags(Usage("health", "[--service=NAME]"),
                "Asks the server's grpc.health.v1 service whether it is serving. Exits 1\n"
                "unless the answer is SERVING.");
  std::string service;
  flags.AddString("service", &service, "service name; empty means the whole server");
  WL_PARSE_FLAGS(inv, flags);
  WL_RETURN_IF_ERROR(inv.Connect());
  WL_ASSIGN_OR_RETURN(const HealthState state, CheckHealth(inv.channel(), inv.options(), service));
  const std::string_view name = HealthStateName(state);
  if (inv.json()) {
    inv.out() << "{\"status\":\"" << name << "\"}\n";
  } else {
    inv.out() << name << '\n';
  }
  if (state != HealthState::kServing) {
    return absl::UnavailableError(absl::StrCat("server reports ", ToAbsl(name)));
  }
  return absl::OkStatus();
}

// ---------------------------------------------------------------- streams

// One line per entry for people: seq, time, type, summary. Streams cannot
// measure their columns first, so the widths are fixed.
void PrintEntryLine(std::ostream& out, const v1::Entry& e) {
  constexpr size_t kSeqWidth = 8;
  constexpr size_t kTypeWidth = 14;  // "goods-purchase"
  const std::string seq = absl::StrCat(e.seq());
  const std::string type = TypeName(e.type());
  out << std::string(kSeqWidth > seq.size() ? kSeqWidth - seq.size() : 0, ' ') << seq << "  "
      << FormatTimeUs(e.time_us()) << "  " << type
      << std::string(kTypeWidth > type.size() ? kTypeWidth - type.size() : 0, ' ') << "  "
      << Printable(e.summary()) << '\n';
}

// Checks each streamed entry and the links between consecutive ones.
class ChainChecker {
 public:
  absl::Status Check(const v1::Entry& e) {
    if (have_prev_ && e.seq() != prev_seq_ + 1) {
      return absl::DataLossError(
          absl::StrCat("expected entry ", prev_seq_ + 1, " in the stream, got ", e.seq()));
    }
    WL_RETURN_IF_ERROR(VerifyEntry(e, have_prev_ ? &prev_hash_ : nullptr));
    have_prev_ = true;
    prev_seq_ = e.seq();
    prev_hash_ = e.hash();
    return absl::OkStatus();
  }

 private:
  bool have_prev_ = false;
  uint64_t prev_seq_ = 0;
  std::string prev_hash_;
};

// The export file written by `entries --out=FILE`:
//
//   file   := record*
//   record := length:u32 entry:byte[length]
//
// `length` is little-endian and at most 16 MiB (the API's message limit);
// `entry` is one serialized warmledger.v1.Entry. Records follow in seq order
// without gaps, each verified against its entry_bytes and its predecessor's
// hash before it was written. There is no header: an empty file is an empty
// export. The file is written as FILE.partial, fsynced, then renamed, so a
// file under the final name is always complete.
class ExportFile {
 public:
  static absl::StatusOr<std::unique_ptr<ExportFile>> Create(const std::string& path) {
    const std::string partial = path + ".partial";
    const int fd = ::open(partial.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
      return absl::PermissionDeniedError(
          absl::StrCat("cannot create ", partial, ": ", std::strerror(errno)));
    }
    return std::unique_ptr<ExportFile>(new ExportFile(path, partial, fd));
  }
  ~ExportFile() {
    if (fd_ >= 0) ::close(fd_);
  }

  absl::Status Append(const v1::Entry& e) {
    std::string bytes;
    if (!e.SerializeToString(&bytes)) return absl::InternalError("cannot serialize an entry");
    const uint32_t n = static_cast<uint32_t>(bytes.size());
    const char len[4] = {static_cast<char>(n), static_cast<char>(n >> 8),
                         static_cast<char>(n >> 16), static_cast<char>(n >> 24)};
    buffer_.append(len, 4);
    buffer_ += bytes;
    if (buffer_.size() >= kExportBufferBytes) return Flush();
    return absl::OkStatus();
  }

  // Flushes, fsyncs and renames to the final name.
  absl::Status Commit() {
    WL_RETURN_IF_ERROR(Flush());
    if (::fsync(fd_) != 0) return Errno("cannot fsync", partial_);
    ::close(fd_);
    fd_ = -1;
    if (::rename(partial_.c_str(), path_.c_str()) != 0) return Errno("cannot rename to", path_);
    const size_t slash = path_.rfind('/');
    const std::string dir =
        slash == std::string::npos ? "." : (slash == 0 ? "/" : path_.substr(0, slash));
    const int dir_fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir_fd >= 0) {
      const int rc = ::fsync(dir_fd);
      ::close(dir_fd);
      if (rc != 0) return Errno("cannot fsync directory", dir);
    }
    return absl::OkStatus();
  }

 private:
  ExportFile(std::string path, std::string partial, int fd)
      : path_(std::move(path)), partial_(std::move(partial)), fd_(fd) {}

  static absl::Status Errno(std::string_view what, const std::string& path) {
    return absl::InternalError(absl::StrCat(ToAbsl(what), " ", path, ": ", std::strerror(errno)));
  }

  absl::Status Flush() {
    std::string_view data = buffer_;
    while (!data.empty()) {
      const ssize_t n = ::write(fd_, data.data(), data.size());
      if (n < 0) {
        if (errno == EINTR) continue;
        return Errno("cannot write", partial_);
      }
      data.remove_prefix(static_cast<size_t>(n));
    }
    buffer_.clear();
    return absl::OkStatus();
  }

  std::string path_;
  std::string partial_;
  int fd_;
  std::string buffer_;
};

absl::Status CmdEntries(Invocation& inv) {
  FlagSet flags(Usage("entries", "[--from=SEQ] [--count=N] [--out=FILE]"),
                "Exports entries (auditor, admin), checking every hash and chain link on the\n"
                "way. Prints one line per entry, or with --out writes a binary export file:\n"
                "records of a 4-byte little-endian length and one serialized\n"
                "warmledger.v1.Entry, in seq order, renamed into place only when complete.");
  uint64_t from = 0, count = 0;
  std::string out_path;
  flags.AddUint64("from", &from, "first seq; 0 means 1");
  flags.AddUint64("count", &count, "at most this many; 0 means up to the current head");
  flags.AddString("out", &out_path, "write a binary export file instead of printing");
  WL_PARSE_FLAGS(inv, flags);
  if (flags.Seen("out") && out_path.empty()) return UsageError("--out needs a file name");
  if (from == 0) from = 1;

  // Fix the end at the head now so the export is a well-defined range, then
  // fetch it in bounded calls, each with its own deadline.
  v1::Head head;
  WL_RETURN_IF_ERROR(inv.Unary([&](grpc::ClientContext* c) {
    return inv.ledger().GetHead(c, v1::GetHeadRequest(), &head);
  }));
  uint64_t last = head.seq();
  if (count > 0 && from <= last && count - 1 < last - from) last = from + count - 1;

  std::unique_ptr<ExportFile> file;
  if (!out_path.empty()) {
    WL_ASSIGN_OR_RETURN(file, ExportFile::Create(out_path));
  }
  ChainChecker checker;
  uint64_t next = from;
  uint64_t written = 0;
  while (next <= last) {
    const uint64_t want = std::min(kExportEntriesPerCall, last - next + 1);
    v1::ListEntriesRequest req;
    req.set_from_seq(next);
    req.set_count_max(want);
    grpc::ClientContext context;
    PrepareContext(inv.options(), DeadlinePolicy::kApply, &context);
    std::unique_ptr<grpc::ClientReader<v1::Entry>> reader =
        inv.exporter().ListEntries(&context, req);
    v1::Entry e;
    absl::Status local;
    uint64_t got = 0;
    while (reader->Read(&e)) {
      if (got == want) {
        local =
            absl::InternalError(absl::StrCat("server sent more than count_max=", want, " entries"));
        context.TryCancel();
        break;
      }
      local = checker.Check(e);
      if (local.ok() && e.seq() != next) {
        local = absl::DataLossError(absl::StrCat("expected entry ", next, ", got ", e.seq()));
      }
      if (local.ok()) local = file ? file->Append(e) : absl::OkStatus();
      if (!local.ok()) {
        context.TryCancel();
        break;
      }
      if (!file) {
        if (inv.json()) {
          local = inv.PrintJson(e);
          if (!local.ok()) {
            context.TryCancel();
            break;
          }
        } else {
          PrintEntryLine(inv.out(), e);
        }
      }
      ++got;
      ++next;
      ++written;
    }
    while (reader->Read(&e)) {
    }
    const absl::Status finished = FromGrpcStatus(reader->Finish());
    WL_RETURN_IF_ERROR(local);
    WL_RETURN_IF_ERROR(finished);
    if (got < want) {
      return absl::DataLossError(absl::StrCat("the stream ended at entry ", next,
                                              " before the head at the start (", last, ")"));
    }
  }
  if (file) {
    WL_RETURN_IF_ERROR(file->Commit());
    if (written == 0) {
      inv.err() << "wrote no entries to " << out_path << "\n";
    } else {
      inv.err() << "wrote entries " << from << ".." << last << " (" << written << ") to "
                << out_path << ", chain checked\n";
    }
  }
  return absl::OkStatus();
}

absl::Status CmdTail(Invocation& inv) {
  FlagSet flags(Usage("tail", "[--from=SEQ]"),
                "Prints entries as they are committed, one line each, until interrupted\n"
                "(auditor, admin). Every entry's hash and chain link is checked. No deadline.");
  uint64_t from = 0;
  flags.AddUint64("from", &from, "first seq; 0 means the next entry after the current head");
  WL_PARSE_FLAGS(inv, flags);
  WL_RETURN_IF_ERROR(inv.Connect());
  v1::TailEntriesRequest req;
  req.set_from_seq(from);
  grpc::ClientContext context;
  PrepareContext(inv.options(), DeadlinePolicy::kNone, &context);
  std::unique_ptr<grpc::ClientReader<v1::Entry>> reader = inv.exporter().TailEntries(&context, req);
  ChainChecker checker;
  v1::Entry e;
  absl::Status local;
  while (reader->Read(&e)) {
    local = checker.Check(e);
    if (local.ok() && from > 0 && e.seq() < from) {
      local = absl::DataLossError(absl::StrCat("asked for entries from ", from, ", got ", e.seq()));
    }
    if (local.ok()) {
      if (inv.json()) {
        local = inv.PrintJson(e);
      } else {
        PrintEntryLine(inv.out(), e);
      }
    }
    if (!local.ok()) {
      context.TryCancel();
      break;
    }
    inv.out().flush();
  }
  while (reader->Read(&e)) {
  }
  const absl::Status finished = FromGrpcStatus(reader->Finish());
  WL_RETURN_IF_ERROR(local);
  return finished;
}

// ---------------------------------------------------------------- transparency

// --key: the verifier key text ("name+hexid+base64"), or @PATH of a file that
// holds it (trailing newlines dropped). A key that does not parse is a usage
// mistake; a key file that cannot be read is an error.
absl::StatusOr<NoteVerifier> LoadVerifierKey(const std::string& flag) {
  std::string text = flag;
  if (!text.empty() && text.front() == '@') {
    WL_ASSIGN_OR_RETURN(text,
                        ReadFileCapped(text.substr(1), kVerifierKeyFileBytesMax, "verifier key"));
    text.erase(text.find_last_not_of("\r\n") + 1);
  }
  absl::StatusOr<NoteVerifier> verifier = NoteVerifier::Parse(text);
  if (!verifier.ok()) return UsageError(absl::StrCat("--key: ", verifier.status().message()));
  return verifier;
}

absl::Status CmdVerifierKey(Invocation& inv) {
  FlagSet flags(Usage("verifier-key", "[--out=FILE]"),
                "Shows the key that signs the server's checkpoints and the origin (first line)\n"
                "of every checkpoint (public). Compare it with the key the charity publishes\n"
                "elsewhere before trusting it. --out also saves it, one line, for --key=@FILE.");
  std::string out_path;
  flags.AddString("out", &out_path, "also write the verifier key to FILE");
  WL_PARSE_FLAGS(inv, flags);
  if (flags.Seen("out") && out_path.empty()) return UsageError("--out needs a file name");
  v1::VerifierKey key;
  WL_RETURN_IF_ERROR(inv.Unary([&](grpc::ClientContext* c) {
    return inv.transparency().GetVerifierKey(c, v1::GetVerifierKeyRequest(), &key);
  }));
  if (!out_path.empty()) {
    if (absl::Status parsed = NoteVerifier::Parse(key.verifier_key()).status(); !parsed.ok()) {
      return absl::DataLossError(
          absl::StrCat("the server's verifier key does not parse: ", parsed.message()));
    }
    WL_RETURN_IF_ERROR(WriteFileAtomically(out_path, key.verifier_key() + "\n"));
    inv.err() << "wrote the verifier key to " << out_path << "\n";
  }
  if (inv.json()) return inv.PrintJson(key);
  PrintFields(inv.out(), {{"verifier key", key.verifier_key()}, {"origin", key.origin()}});
  return absl::OkStatus();
}

absl::Status CmdCheckpoint(Invocation& inv) {
  FlagSet flags(Usage("checkpoint", "[--size=N] [--out=FILE]"),
                "Prints the server's newest signed checkpoint, or the one of --size entries\n"
                "(public): a C2SP signed note of the origin, the tree size and the Merkle root.\n"
                "With --out writes it to FILE instead. watch checks checkpoints continuously.");
  uint64_t size = 0;
  std::string out_path;
  flags.AddUint64("size", &size, "the checkpoint of this many entries; 0 means the newest");
  flags.AddString("out", &out_path, "write the note to FILE instead of printing it");
  WL_PARSE_FLAGS(inv, flags);
  if (flags.Seen("out") && out_path.empty()) return UsageError("--out needs a file name");
  v1::GetCheckpointRequest req;
  req.set_tree_size(size);
  v1::SignedCheckpoint checkpoint;
  WL_RETURN_IF_ERROR(inv.Unary([&](grpc::ClientContext* c) {
    return inv.transparency().GetCheckpoint(c, req, &checkpoint);
  }));
  if (!out_path.empty()) {
    WL_RETURN_IF_ERROR(WriteFileAtomically(out_path, checkpoint.note()));
    inv.err() << "wrote the checkpoint of " << checkpoint.tree_size() << " entries to " << out_path
              << "\n";
  }
  if (inv.json()) return inv.PrintJson(checkpoint);
  if (out_path.empty()) {
    WL_RETURN_IF_ERROR(CheckPrintableText(checkpoint.note(), "checkpoint note"));
    inv.out() << checkpoint.note();
  }
  return absl::OkStatus();
}

absl::Status CmdReceipt(Invocation& inv) {
  FlagSet flags(
      Usage("receipt", "--code=TRACE_CODE | --seq=N [--wait_ms=N] [--out=FILE]"),
      "Fetches a receipt: an entry, its Merkle inclusion proof and the signed checkpoint\n"
      "it is proved against, which anyone can check offline with verify-receipt. By the\n"
      "donation's trace code (public) or by --seq (readers). Printed, or written to FILE.");
  std::string code, out_path;
  uint64_t seq = 0;
  int64_t wait_ms = 0;
  flags.AddString("code", &code, "the donation's trace code");
  flags.AddUint64("seq", &seq, "the entry's seq (readers)");
  flags.AddInt64("wait_ms", &wait_ms,
                 "wait up to this long (at most 5000) for a checkpoint covering the entry");
  flags.AddString("out", &out_path, "write the receipt to FILE instead of printing it");
  WL_PARSE_FLAGS(inv, flags);
  if (flags.Seen("code") == flags.Seen("seq")) {
    return UsageError("give exactly one of --code and --seq");
  }
  if (flags.Seen("code") && code.empty()) return UsageError("--code is empty");
  if (flags.Seen("seq") && seq == 0) return UsageError("--seq starts at 1");
  if (wait_ms < 0 || wait_ms > kReceiptWaitMsMax) {
    return UsageError(absl::StrCat("--wait_ms must be 0..", kReceiptWaitMsMax));
  }
  if (wait_ms >= inv.options().deadline_ms) {
    return UsageError(
        absl::StrCat("--wait_ms must be below --deadline_ms (", inv.options().deadline_ms, ")"));
  }
  if (flags.Seen("out") && out_path.empty()) return UsageError("--out needs a file name");
  v1::GetReceiptRequest req;
  req.set_trace_code(code);
  req.set_seq(seq);
  req.set_wait_ms(wait_ms);
  v1::Receipt receipt;
  WL_RETURN_IF_ERROR(inv.Unary(
      [&](grpc::ClientContext* c) { return inv.transparency().GetReceipt(c, req, &receipt); }));
  if (!out_path.empty()) {
    WL_RETURN_IF_ERROR(WriteFileAtomically(out_path, receipt.text()));
    inv.err() << "wrote the receipt of entry " << receipt.seq() << " (checkpoint of "
              << receipt.tree_size() << " entries) to " << out_path << "\n";
  }
  if (inv.json()) return inv.PrintJson(receipt);
  if (out_path.empty()) {
    WL_RETURN_IF_ERROR(CheckPrintableText(receipt.text(), "receipt"));
    inv.out() << receipt.text();
  }
  return absl::OkStatus();
}

// ---- watch

// Set by SIGINT and SIGTERM while `watch` loops.
volatile std::sig_atomic_t g_stop_requested = 0;
void RequestStop(int) { g_stop_requested = 1; }

// Catches SIGINT and SIGTERM while it lives (restoring the previous handlers
// after), so that `watch` finishes its round and exits 0.
class StopSignals {
 public:
  StopSignals() {
    g_stop_requested = 0;
    struct sigaction action = {};
    action.sa_handler = RequestStop;
    sigemptyset(&action.sa_mask);
    ::sigaction(SIGINT, &action, &old_int_);
    ::sigaction(SIGTERM, &action, &old_term_);
  }
  ~StopSignals() {
    ::sigaction(SIGINT, &old_int_, nullptr);
    ::sigaction(SIGTERM, &old_term_, nullptr);
  }
  StopSignals(const StopSignals&) = delete;
  StopSignals& operator=(const StopSignals&) = delete;

  bool requested() const { return g_stop_requested != 0; }

  // Sleeps `ms` milliseconds, or less if a stop is requested.
  void Sleep(int64_t ms) const {
    const auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
    while (!requested()) {
      const auto left = end - std::chrono::steady_clock::now();
      if (left <= std::chrono::steady_clock::duration::zero()) return;
      std::this_thread::sleep_for(std::min<std::chrono::steady_clock::duration>(
          left, std::chrono::milliseconds(kWatchSignalPollMs)));
    }
  }

 private:
  struct sigaction old_int_ = {};
  struct sigaction old_term_ = {};
};

// The last checkpoint `watch` verified: the signed note as saved in --state,
// and what it says.
struct WatchState {
  std::string note;
  Checkpoint checkpoint;
};

// Reads --state: nothing if the file does not exist yet (the first round
// trusts the server's checkpoint). A file that exists must verify.
absl::StatusOr<std::optional<WatchState>> LoadWatchState(const std::string& path,
                                                         const NoteVerifier& verifier) {
  absl::StatusOr<std::string> note = ReadFileCapped(path, kStateFileBytesMax, "state");
  if (absl::IsNotFound(note.status())) return std::optional<WatchState>();
  WL_RETURN_IF_ERROR(note.status());
  absl::StatusOr<Checkpoint> checkpoint = OpenCheckpoint(verifier, *note);
  if (!checkpoint.ok()) {
    return absl::Status(checkpoint.status().code(),
                        absl::StrCat("state file ", path, " (the last verified checkpoint): ",
                                     checkpoint.status().message()));
  }
  return std::optional<WatchState>(WatchState{*std::move(note), *std::move(checkpoint)});
}

// One round of `watch`: fetch, verify, compare with *state, save, print.
// Sets *call_failed when a call failed (worth retrying), as opposed to a
// check (the server misbehaves: stop).
absl::Status WatchRound(Invocation& inv, const NoteVerifier& verifier,
                        const std::string& state_path, std::optional<WatchState>* state,
                        bool* call_failed) {
  *call_failed = false;
  v1::SignedCheckpoint signed_checkpoint;
  absl::Status called = inv.Unary([&](grpc::ClientContext* c) {
    return inv.transparency().GetCheckpoint(c, v1::GetCheckpointRequest(), &signed_checkpoint);
  });
  if (!called.ok()) {
    *call_failed = true;
    return called;
  }
  absl::StatusOr<Checkpoint> now = OpenCheckpoint(verifier, signed_checkpoint.note());
  if (!now.ok()) {
    return absl::Status(now.status().code(),
                        absl::StrCat("the server's newest checkpoint: ", now.status().message()));
  }
  if (state->has_value()) {
    const Checkpoint& old = (*state)->checkpoint;
    std::vector<Hash> proof;
    if (now->origin == old.origin && old.size > 0 && now->size > old.size) {
      v1::ConsistencyProofRequest req;
      req.set_old_size(old.size);
      req.set_new_size(now->size);
      v1::ConsistencyProof resp;
      called = inv.Unary([&](grpc::ClientContext* c) {
        return inv.transparency().GetConsistencyProof(c, req, &resp);
      });
      if (!called.ok()) {
        *call_failed = true;
        return called;
      }
      for (int i = 0; i < resp.hashes_size(); ++i) {
        absl::StatusOr<Hash> hash =
            HashFromBytes(resp.hashes(i), absl::StrCat("consistency proof hash ", i + 1));
        if (!hash.ok()) {
          return absl::DataLossError(absl::StrCat(
              "FORK: checkpoint of ", now->size, " entries does not extend the verified ",
              "checkpoint of ", old.size, " entries: ", hash.status().message()));
        }
        proof.push_back(*hash);
      }
    }
    WL_RETURN_IF_ERROR(CheckAdvance(old, *now, proof));
  }
  if (!state->has_value() || (*state)->note != signed_checkpoint.note()) {
    WL_RETURN_IF_ERROR(WriteFileAtomically(state_path, signed_checkpoint.note()));
  }
  // The size of the checkpoint seen before (0: none; a checkpoint has at
  // least one entry).
  const uint64_t previous = state->has_value() ? (*state)->checkpoint.size : 0;
  if (inv.json()) {
    JsonObject json;
    json.Add("treeSize", absl::StrCat(now->size)).Add("rootHash", HashToBase64(now->root));
    if (previous > 0) json.Add("consistentWith", absl::StrCat(previous));
    inv.out() << json.Text() << '\n';
  } else {
    inv.out() << "verified checkpoint " << now->size << " (root " << HashToBase64(now->root) << ")";
    if (previous > 0) inv.out() << ", consistent with " << previous;
    inv.out() << '\n';
  }
  inv.out().flush();
  *state = WatchState{signed_checkpoint.note(), *std::move(now)};
  return absl::OkStatus();
}

absl::Status CmdWatch(Invocation& inv) {
  FlagSet flags(
      Usage("watch", "--state=FILE --key=VERIFIER_KEY [--interval_ms=N] [--once]"),
      "Monitors the server's checkpoints (public). Each round fetches the newest one,\n"
      "checks its signature with --key and, by a consistency proof, that it extends the\n"
      "last checkpoint verified, which FILE keeps (the first round, without FILE, trusts\n"
      "what it gets). Fewer entries than before (ROLLBACK) or another history (FORK)\n"
      "stops the watch with exit code 1. Runs until SIGINT or SIGTERM (exit 0), reporting\n"
      "and retrying failed calls; --once does one round and exits 1 on any failure.");
  std::string state_path, key;
  int64_t interval_ms = 5000;
  bool once = false;
  flags.AddString("state", &state_path, "the last verified checkpoint note; created if missing",
                  FlagRequirement::kRequired);
  flags.AddString("key", &key, "the verifier key (name+id+key), or @FILE holding it",
                  FlagRequirement::kRequired);
  flags.AddInt64("interval_ms", &interval_ms, "time between rounds");
  flags.AddBool("once", &once, "one round, then exit");
  WL_PARSE_FLAGS(inv, flags);
  if (state_path.empty()) return UsageError("--state needs a file name");
  if (interval_ms <= 0) return UsageError("--interval_ms must be positive");
  WL_ASSIGN_OR_RETURN(const NoteVerifier verifier, LoadVerifierKey(key));
  WL_ASSIGN_OR_RETURN(std::optional<WatchState> state, LoadWatchState(state_path, verifier));
  if (!state.has_value()) {
    inv.err() << "no " << state_path << " yet: trusting the server's current checkpoint\n";
  }
  bool call_failed = false;
  if (once) return WatchRound(inv, verifier, state_path, &state, &call_failed);
  const StopSignals stop;
  while (!stop.requested()) {
    const absl::Status round = WatchRound(inv, verifier, state_path, &state, &call_failed);
    if (!round.ok()) {
      if (!call_failed) return round;
      PrintError(inv.err(), round);
      inv.err().flush();
    }
    stop.Sleep(interval_ms);
  }
  return absl::OkStatus();
}

// ---------------------------------------------------------------- offline

absl::Status CmdCreateToken(Invocation& inv) {
  FlagSet flags(Usage("create-token", "--auth_file=FILE --role=ROLE --name=NAME"),
                "Creates a token (offline, no server) and appends its SHA-256 to the auth file\n"
                "(created with mode 0600). The token is printed once and stored nowhere.\n"
                "Roles: admin, clerk, mall, auditor. The server reads the file when it starts.");
  std::string auth_file, role, name;
  flags.AddString("auth_file", &auth_file, "the server's auth file", FlagRequirement::kRequired);
  flags.AddString("role", &role, "admin, clerk, mall or auditor", FlagRequirement::kRequired);
  flags.AddString("name", &name, "who holds it: 1-64 of A-Z a-z 0-9 . _ -",
                  FlagRequirement::kRequired);
  WL_PARSE_FLAGS(inv, flags);
  if (absl::Status s = ValidateRole(role); !s.ok()) return UsageError(s.message());
  if (absl::Status s = ValidateTokenName(name); !s.ok()) return UsageError(s.message());
  WL_ASSIGN_OR_RETURN(const std::string token, AppendToken(auth_file, role, name));
  if (inv.json()) {
    inv.out() << "{\"token\":\"" << token << "\",\"role\":\"" << role << "\",\"name\":\"" << name
              << "\"}\n";
  } else {
    inv.out() << token << '\n';
  }
  inv.err() << "appended the hash of a new token (role " << role << ", name " << name << ") to "
            << auth_file << "; the token is shown only now and stored nowhere\n";
  return absl::OkStatus();
}

// What an entry records, for people (label, text) and for --json (name,
// encoded JSON value); a field with an empty label is shown in JSON only.
struct EntryField {
  std::string label;
  std::string text;
  std::string name;
  std::string json;
};

std::vector<EntryField> EntryFields(const Entry& e) {
  std::vector<EntryField> fields;
  // `raw` is the JSON string value when it differs from `text`.
  const auto add = [&](std::string label, std::string text, std::string name,
                       std::optional<std::string> raw = std::nullopt) {
    std::string json = JsonString(raw.has_value() ? *raw : text);
    fields.push_back({std::move(label), std::move(text), std::move(name), std::move(json)});
  };
  const auto text_or_dash = [](const std::string& s) { return s.empty() ? std::string("-") : s; };
  const auto add_amount = [&](const std::string& asset, int64_t amount) {
    add("amount", absl::StrCat(FormatAmount(asset, amount), " ", asset), "amount",
        absl::StrCat(amount));
    add("", "", "asset", asset);
  };
  add("seq", absl::StrCat(e.seq), "seq");
  add("time", FormatTimeUs(e.time_us, true), "timeUs", absl::StrCat(e.time_us));
  add("type", TypeName(static_cast<v1::EntryType>(e.type())), "type");
  if (const auto* op = std::get_if<DonationOp>(&e.body)) {
    const bool anonymous = (op->flags & kDonationAnonymous) != 0;
    add("donor", DonorText(op->donor, anonymous), "donor", op->donor);
    fields.push_back({"", "", "anonymous", anonymous ? "true" : "false"});
    add("to", op->to, "to");
    add_amount(op->asset, op->amount);
    add("memo", text_or_dash(op->memo), "memo", op->memo);
    add("channel", ChannelName(static_cast<int>(op->channel)), "channel");
  } else if (const auto* op = std::get_if<OpenAccountOp>(&e.body)) {
    add("account", op->account, "account");
    add("kind", KindName(static_cast<v1::AccountKind>(op->kind)), "kind");
    add("asset", op->asset.empty() ? "(any)" : op->asset, "asset", op->asset);
    add("name", text_or_dash(op->name), "name", op->name);
  } else if (const auto* op = std::get_if<CloseAccountOp>(&e.body)) {
    add("account", op->account, "account");
    add("reason", op->reason, "reason");
  } else if (const auto* op = std::get_if<AllocationOp>(&e.body)) {
    add("from", op->from, "from");
    add("to", op->to, "to");
    add_amount(op->asset, op->amount);
    add("reason", text_or_dash(op->reason), "reason", op->reason);
  } else if (const auto* op = std::get_if<DisbursementOp>(&e.body)) {
    add("from", op->from, "from");
    add("to", op->to, "to");
    add_amount(op->asset, op->amount);
    add("purpose", text_or_dash(op->purpose), "purpose", op->purpose);
    add("override", text_or_dash(op->override_reason), "overrideReason", op->override_reason);
  } else if (const auto* op = std::get_if<CorrectionOp>(&e.body)) {
    add("corrects seq", absl::StrCat(op->ref_seq), "refSeq");
    add("mode", op->mode == CorrectionMode::kReverse ? "reverse" : "adjust", "mode");
    add("reason", op->reason, "reason");
    if (op->mode == CorrectionMode::kAdjust) {
      add("from", op->from, "from");
      add("to", op->to, "to");
      add_amount(op->asset, op->amount);
    }
  } else if (const auto* op = std::get_if<PurchaseOp>(&e.body)) {
    add("store", op->store, "store");
    add("order", op->order_id, "orderId");
    add_amount(op->asset, op->amount);
    add("member", text_or_dash(op->member), "member", op->member);
    add("sale time", FormatTimeUs(op->sale_time_us), "saleTimeUs", absl::StrCat(op->sale_time_us));
    add("rate", absl::StrCat(op->rate_bp, " bp"), "rateBp", absl::StrCat(op->rate_bp));
    add("fund", op->fund, "fund");
  } else if (const auto* op = std::get_if<RefundOp>(&e.body)) {
    add("store", op->store, "store");
    add("order", op->order_id, "orderId");
    add("refund id", op->refund_id, "refundId");
    add("amount", FormatFen(op->amount), "amount", absl::StrCat(op->amount));
  } else if (const auto* op = std::get_if<VoucherIssueOp>(&e.body)) {
    add("from", op->from, "from");
    add("recipient", op->recipient, "recipient");
    add_amount(op->asset, op->amount);
    add("expires", FormatTimeUs(op->expires_us), "expiresUs", absl::StrCat(op->expires_us));
    add("stores", op->stores.empty() ? "any store" : absl::StrJoin(op->stores, ", "), "stores",
        absl::StrJoin(op->stores, ","));
    add("memo", text_or_dash(op->memo), "memo", op->memo);
    add("override", text_or_dash(op->override_reason), "overrideReason", op->override_reason);
  } else if (const auto* op = std::get_if<RedemptionOp>(&e.body)) {
    add("store", op->store, "store");
    add("order", op->order_id, "orderId");
    add("amount", FormatFen(op->amount), "amount", absl::StrCat(op->amount));
  } else if (const auto* op = std::get_if<VoucherCloseOp>(&e.body)) {
    add("voucher", op->voucher, "voucher");
    add("mode", op->mode == VoucherCloseMode::kVoid ? "void" : "expire", "mode");
    add("reason", text_or_dash(op->reason), "reason", op->reason);
  } else if (const auto* op = std::get_if<ItemOp>(&e.body)) {
    add("item", op->item, "item");
    add("name", op->name, "name");
    add("unit", op->unit, "unit");
  } else if (const auto* op = std::get_if<GoodsGiftOp>(&e.body)) {
    const bool anonymous = (op->flags & kDonationAnonymous) != 0;
    add("donor", DonorText(op->donor, anonymous), "donor", op->donor);
    fields.push_back({"", "", "anonymous", anonymous ? "true" : "false"});
    add("to", op->to, "to");
    add("quantity", GoodsText(op->item, op->quantity), "quantity", absl::StrCat(op->quantity));
    add("", "", "item", op->item);
    add("grade", text_or_dash(op->grade), "grade", op->grade);
    add("expires", FormatTimeUs(op->expires_us), "expiresUs", absl::StrCat(op->expires_us));
    add("appraised",
        op->value_asset.empty() ? std::string("-") : MoneyText(op->value_asset, op->value),
        "value", absl::StrCat(op->value));
    add("", "", "valueAsset", op->value_asset);
    add("memo", text_or_dash(op->memo), "memo", op->memo);
    add("channel", ChannelName(static_cast<int>(op->channel)), "channel");
  } else if (const auto* op = std::get_if<GoodsPurchaseOp>(&e.body)) {
    add("from", op->from, "from");
    add("supplier", op->supplier, "supplier");
    add("price", MoneyText(op->asset, op->price), "price", absl::StrCat(op->price));
    add("", "", "asset", op->asset);
    add("to", op->to, "to");
    add("quantity", GoodsText(op->item, op->quantity), "quantity", absl::StrCat(op->quantity));
    add("", "", "item", op->item);
    add("grade", text_or_dash(op->grade), "grade", op->grade);
    add("expires", FormatTimeUs(op->expires_us), "expiresUs", absl::StrCat(op->expires_us));
    add("memo", text_or_dash(op->memo), "memo", op->memo);
  } else if (const auto* op = std::get_if<HandoutOp>(&e.body)) {
    int64_t total = 0;
    for (const HandoutLine& line : op->lines) total += line.quantity;
    add("from", op->from, "from");
    add("handed out", GoodsText(op->item, total), "quantity", absl::StrCat(total));
    add("", "", "item", op->item);
    add("recipients", absl::StrCat(op->lines.size()), "recipients",
        absl::StrCat(op->lines.size()));
    add("purpose", text_or_dash(op->purpose), "purpose", op->purpose);
    add("override", text_or_dash(op->override_reason), "overrideReason", op->override_reason);
  } else if (const auto* op = std::get_if<WriteOffOp>(&e.body)) {
    add("from", op->from, "from");
    add("to", op->to, "to");
    add("quantity", GoodsText(op->item, op->quantity), "quantity", absl::StrCat(op->quantity));
    add("", "", "item", op->item);
    add("lot", op->lot == 0 ? std::string("-") : absl::StrCat(op->lot), "lot",
        absl::StrCat(op->lot));
    add("reason", op->reason, "reason");
  } else if (const auto* op = std::get_if<GoodsSaleOp>(&e.body)) {
    add("from", op->from, "from");
    add("buyer", op->buyer, "buyer");
    add("quantity", GoodsText(op->item, op->quantity), "quantity", absl::StrCat(op->quantity));
    add("", "", "item", op->item);
    add("to", op->to, "to");
    add("proceeds", MoneyText(op->asset, op->proceeds), "proceeds", absl::StrCat(op->proceeds));
    add("", "", "asset", op->asset);
    add("memo", text_or_dash(op->memo), "memo", op->memo);
  } else if (const auto* op = std::get_if<AidRuleOp>(&e.body)) {
    add("aid", op->aid, "aid");
    add("counts", AidTypeName(static_cast<v1::EntryType>(op->type)), "ruleType");
    add("source", op->source.empty() ? "(any)" : op->source, "source", op->source);
    add("asset", op->asset.empty() ? "(any)" : op->asset, "asset", op->asset);
    add("at most", op->max_count == 0 ? std::string("(lifted)") : absl::StrCat(op->max_count),
        "maxCount", absl::StrCat(op->max_count));
    add("per", AidPeriodName(op->period), "period");
    add("memo", text_or_dash(op->memo), "memo", op->memo);
  }
  return fields;
}

absl::Status CmdVerifyReceipt(Invocation& inv) {
  const auto add_flags = [](FlagSet& flags, std::string* key) {
    flags.AddString("key", key, "the verifier key (name+id+key), or @FILE holding it",
                    FlagRequirement::kRequired);
  };
  std::string scratch_key;
  const std::string path = inv.TakeOperand([&](FlagSet& f) { add_flags(f, &scratch_key); });
  FlagSet flags(Usage("verify-receipt", "FILE --key=VERIFIER_KEY"),
                "Checks a receipt file offline, contacting no server: the checkpoint's signature\n"
                "by --key, the Merkle inclusion proof of the entry in the signed tree, and the\n"
                "entry's seq; then shows what the entry records. Exits 1 naming the failed step.\n"
                "Take the key from the charity's published notice, not from the receipt's sender.");
  std::string key;
  add_flags(flags, &key);
  WL_PARSE_FLAGS(inv, flags);
  if (path.empty()) return UsageError("missing the receipt FILE");
  WL_ASSIGN_OR_RETURN(const NoteVerifier verifier, LoadVerifierKey(key));
  WL_ASSIGN_OR_RETURN(const std::string text,
                      ReadFileCapped(path, kReceiptFileBytesMax, "receipt"));
  WL_ASSIGN_OR_RETURN(const VerifiedReceipt verified, VerifyReceipt(text, verifier));
  const Checkpoint& checkpoint = verified.checkpoint;
  const std::vector<EntryField> fields = EntryFields(verified.entry);
  if (inv.json()) {
    JsonObject json;
    json.AddBool("verified", true);
    for (const EntryField& f : fields) json.AddEncoded(f.name, f.json);
    json.Add("origin", checkpoint.origin)
        .Add("treeSize", absl::StrCat(checkpoint.size))
        .Add("rootHash", HashToBase64(checkpoint.root))
        .Add("keyName", verified.key_name);
    inv.out() << json.Text() << '\n';
    return absl::OkStatus();
  }
  std::vector<std::pair<std::string, std::string>> shown;
  for (const EntryField& f : fields) {
    if (!f.label.empty()) shown.emplace_back(f.label, f.text);
  }
  PrintFields(inv.out(), shown);
  inv.out() << "checkpoint: " << Printable(checkpoint.origin) << " size " << checkpoint.size
            << ", signed by " << Printable(verified.key_name) << "\n"
            << "receipt verified\n";
  return absl::OkStatus();
}

// ---------------------------------------------------------------- dispatch

struct Command {
  std::string_view name;
  std::string_view summary;
  absl::Status (*run)(Invocation&);
};

constexpr Command kCommands[] = {
    {"donate", "record a donation into a fund, project or stock", CmdDonate},
    {"open-account", "open a fund, project, donor, ... account", CmdOpenAccount},
    {"close-account", "close an empty account", CmdCloseAccount},
    {"register-recipient", "register a person who receives aid (pseudonymised)",
     CmdRegisterRecipient},
    {"allocate", "move money between funds and projects", CmdAllocate},
    {"disburse", "pay a recipient, supplier or expense", CmdDisburse},
    {"correct", "reverse or adjust an earlier entry", CmdCorrect},
    {"purchase", "record a sale at a store; 2% goes to the charity fund", CmdPurchase},
    {"refund", "refund (part of) a purchase; its contribution is reversed", CmdRefund},
    {"redeem", "redeem (part of) an aid voucher at a store", CmdRedeem},
    {"settlement", "per-store totals for a day (China time) or a period", CmdSettlement},
    {"voucher-issue", "issue an aid voucher to a recipient; prints its code", CmdVoucherIssue},
    {"voucher-void", "void a voucher early; the rest returns to its fund", CmdVoucherVoid},
    {"voucher", "one voucher (--voucher or --code)", CmdVoucher},
    {"voucher-sweep", "return what expired vouchers hold to their funds", CmdVoucherSweep},
    {"voucher-report", "vouchers by fund, category and in total", CmdVoucherReport},
    {"item-define", "add an item to the goods catalogue", CmdItemDefine},
    {"items", "the goods catalogue with what the stocks hold", CmdItems},
    {"goods-gift", "record a gift in kind into a stock; prints its trace code", CmdGoodsGift},
    {"goods-buy", "buy goods with fund money from a supplier", CmdGoodsBuy},
    {"handout", "hand goods out to recipients (--line or --lines_file)", CmdHandout},
    {"write-off", "write spoiled, damaged or lost goods off a stock", CmdWriteOff},
    {"goods-sale", "sell goods to a buyer; the proceeds go into a fund", CmdGoodsSale},
    {"aid-rule", "set or lift a rule: how often one person may get one aid", CmdAidRule},
    {"aid-rules", "the aid rules in force", CmdAidRules},
    {"aid-report", "aid by category and community (--public: small cells left out)",
     CmdAidReport},
    {"trace", "where a donation or gift of goods went (--code or --lot)", CmdTrace},
    {"trace-entry", "which donations paid for an entry", CmdTraceEntry},
    {"statement", "an account's entries with running balance", CmdStatement},
    {"donor-statement", "a donor's lots with their traces", CmdDonorStatement},
    {"funds", "every fund and project with totals", CmdFunds},
    {"fund", "one fund's or project's totals", CmdFund},
    {"account", "an account with balances and flows", CmdAccount},
    {"accounts", "list account ids", CmdAccounts},
    {"entry", "one entry, its postings and hash", CmdEntry},
    {"entries", "export entries (print or --out=FILE)", CmdEntries},
    {"tail", "follow new entries until interrupted", CmdTail},
    {"head", "the chain head", CmdHead},
    {"registry", "recipient categories and communities", CmdRegistry},
    {"backup", "checkpoint the server's database (admin)", CmdBackup},
    {"health", "grpc.health.v1 check", CmdHealth},
    {"verifier-key", "the key that signs checkpoints, and their origin", CmdVerifierKey},
    {"checkpoint", "the newest signed checkpoint (or --size=N)", CmdCheckpoint},
    {"receipt", "a donation's receipt (--code or --seq)", CmdReceipt},
    {"watch", "monitor checkpoints for rollbacks and forks", CmdWatch},
    {"create-token", "create a token and append its hash to an auth file (offline)",
     CmdCreateToken},
    {"verify-receipt", "check a receipt file against a verifier key (offline)", CmdVerifyReceipt},
};

const Command* FindCommand(std::string_view name) {
  for (const Command& c : kCommands) {
    if (c.name == name) return &c;
  }
  return nullptr;
}

std::string MainUsage() {
  std::string description =
      "The command-line client of a warmledger server. Amounts are exact: --amount in\n"
      "fen (or goods units), or --yuan=12.34. Times are shown in local time; times\n"
      "given as YYYY-MM-DD (settlement --day, --expires, ...) are days in China time\n"
      "(UTC+08:00).\n\ncommands:\n";
  for (const Command& c : kCommands) {
    absl::StrAppend(&description, "  ", ToAbsl(c.name), std::string(20 - c.name.size(), ' '),
                    ToAbsl(c.summary), "\n");
  }
  absl::StrAppend(&description, "  help [COMMAND]      this text, or a command's flags\n\n",
                  "Run 'warmledger COMMAND --help' for a command's flags. Errors print\n",
                  "'error: CODE: message' and exit 1; usage errors exit 2.");
  FlagSet flags("warmledger [global flags] COMMAND [flags]", description);
  ClientOptions options;
  bool json = false;
  Invocation::AddGlobalFlags(flags, &options, &json);
  return flags.Usage();
}

}  // namespace

int RunCli(const std::vector<std::string>& args, const CliEnvironment& env,
           const CliStreams& streams) {
  // Global flags may come before the command; they are replayed after it so
  // that one parse sees them all (and catches a flag given twice).
  FlagSet globals("warmledger", "");
  ClientOptions scratch_options;
  bool scratch_json = false;
  Invocation::AddGlobalFlags(globals, &scratch_options, &scratch_json);
  absl::StatusOr<size_t> command_index = globals.ParseUntilPositional(args);
  if (!command_index.ok()) {
    PrintError(streams.err, command_index.status());
    streams.err << "run 'warmledger help' for usage\n";
    return kExitUsage;
  }
  if (*command_index >= args.size()) {
    if (globals.help_requested()) {
      streams.out << MainUsage();
      return kExitOk;
    }
    streams.err << MainUsage();
    return kExitUsage;
  }
  const std::string& name = args[*command_index];
  std::vector<std::string> rest(args.begin(), args.begin() + static_cast<long>(*command_index));
  rest.insert(rest.end(), args.begin() + static_cast<long>(*command_index) + 1, args.end());

  if (name == "help") {
    if (rest.empty() || (rest.size() == 1 && (rest[0] == "--help" || rest[0] == "-h"))) {
      streams.out << MainUsage();
      return kExitOk;
    }
    const Command* c = rest.size() == 1 ? FindCommand(rest[0]) : nullptr;
    if (c == nullptr) {
      PrintError(streams.err, absl::InvalidArgumentError(
                                  absl::StrCat("no command \"", absl::StrJoin(rest, " "), "\"")));
      return kExitUsage;
    }
    Invocation inv(std::string(c->name), {"--help"}, env, streams);
    return c->run(inv).ok() ? kExitOk : kExitError;
  }
  const Command* command = FindCommand(name);
  if (command == nullptr) {
    PrintError(streams.err,
               absl::InvalidArgumentError(absl::StrCat("unknown command \"", name, "\"")));
    streams.err << "run 'warmledger help' for the list of commands\n";
    return kExitUsage;
  }
  Invocation inv(std::string(command->name), std::move(rest), env, streams);
  const absl::Status status = command->run(inv);
  streams.out.flush();
  if (status.ok()) return kExitOk;
  PrintError(streams.err, status);
  if (IsUsageError(status)) {
    streams.err << "run 'warmledger " << command->name << " --help' for usage\n";
    return kExitUsage;
  }
  return kExitError;
}

}  // namespace warmledger::client

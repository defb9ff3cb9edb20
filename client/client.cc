#include "client/client.h"

#include <fcntl.h>
#include <grpcpp/create_channel.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/security/credentials.h>
#include <grpcpp/support/byte_buffer.h>
#include <grpcpp/support/channel_arguments.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <limits>
#include <optional>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"
#include "ledger/entry_codec.h"
#include "ledger/merkle.h"
#include "ledger/status_macros.h"

namespace warmledger::client {
namespace {

// Token layout: a fixed prefix that makes tokens recognisable in configs and
// secret scanners, then 32 random bytes as hex.
constexpr std::string_view kTokenPrefix = "wl_";
constexpr size_t kTokenRandomBytes = 32;
constexpr size_t kTokenNameBytesMax = 64;

// A PEM file (CA bundle, certificate or key) larger than this is not one.
constexpr size_t kPemBytesMax = 1024 * 1024;

constexpr std::string_view kEntryHashDomain{"warmledger/entry/v1\0", 20};
// docs/format.md: version:u8 type:u8 seq:u64 time_us:i64 prev_hash:hash ...
constexpr size_t kEntryVersionOffset = 0;
constexpr size_t kEntryTypeOffset = 1;
constexpr size_t kEntrySeqOffset = 2;
constexpr size_t kEntryTimeOffset = 10;
constexpr size_t kEntryPrevHashOffset = 18;
constexpr size_t kHashBytes = 32;
constexpr size_t kEntryHeaderBytes = kEntryPrevHashOffset + kHashBytes;
// Entry versions this client reads: 1, and 2 (ledger/entry_codec.h).
constexpr uint8_t kEntryVersionMin = 1;
constexpr uint8_t kEntryVersionMax = 2;

absl::StatusOr<std::string> ReadPemFile(const std::string& path, std::string_view what) {
  WL_ASSIGN_OR_RETURN(std::string text, ReadFileCapped(path, kPemBytesMax, what));
  if (text.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(ToAbsl(what), " file ", path, " is empty"));
  }
  return text;
}

std::string Sha256(std::string_view a, std::string_view b) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int digest_len = 0;
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  // These calls fail only on allocation failure or a broken OpenSSL; a
  // ledger client cannot continue without SHA-256.
  WL_CHECK(ctx != nullptr);
  WL_CHECK(EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr) == 1);
  WL_CHECK(EVP_DigestUpdate(ctx, a.data(), a.size()) == 1);
  WL_CHECK(EVP_DigestUpdate(ctx, b.data(), b.size()) == 1);
  WL_CHECK(EVP_DigestFinal_ex(ctx, digest, &digest_len) == 1);
  EVP_MD_CTX_free(ctx);
  return std::string(reinterpret_cast<const char*>(digest), digest_len);
}

uint64_t LoadU64(std::string_view bytes, size_t offset) {
  uint64_t v = 0;
  for (size_t i = 0; i < 8; ++i) {
    v |= static_cast<uint64_t>(static_cast<unsigned char>(bytes[offset + i])) << (8 * i);
  }
  return v;
}

absl::Status ErrnoStatus(std::string_view what, const std::string& path) {
  const int err = errno;
  std::string msg = absl::StrCat(ToAbsl(what), " ", path, ": ", std::strerror(err));
  if (err == ENOENT) return absl::NotFoundError(msg);
  if (err == EACCES || err == EPERM) return absl::PermissionDeniedError(msg);
  return absl::InternalError(msg);
}

// Writes all of `data` (retrying short writes and EINTR).
absl::Status WriteAll(int fd, std::string_view data, const std::string& path) {
  while (!data.empty()) {
    const ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus("cannot write", path);
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return absl::OkStatus();
}

std::string ParentDir(const std::string& path) {
  const size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

// Minimal protobuf wire reading for the health response.
bool ReadVarint(std::string_view& in, uint64_t* value) {
  uint64_t v = 0;
  for (int shift = 0; shift < 64; shift += 7) {
    if (in.empty()) return false;
    const auto byte = static_cast<unsigned char>(in.front());
    in.remove_prefix(1);
    v |= static_cast<uint64_t>(byte & 0x7f) << shift;
    if ((byte & 0x80) == 0) {
      *value = v;
      return true;
    }
  }
  return false;
}

}  // namespace

// ---------------------------------------------------------------- channel

bool UsesTls(const ClientOptions& options) {
  return !options.tls_ca.empty() || !options.tls_cert.empty() || !options.tls_key.empty() ||
         !options.tls_server_name.empty();
}

absl::StatusOr<std::shared_ptr<grpc::Channel>> CreateChannel(const ClientOptions& options) {
  if (options.server.empty()) return absl::InvalidArgumentError("server address is empty");
  if (options.deadline_ms <= 0) {
    return absl::InvalidArgumentError("deadline_ms must be positive");
  }
  if (options.tls_cert.empty() != options.tls_key.empty()) {
    return absl::InvalidArgumentError("tls_cert and tls_key must be given together");
  }
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(kMessageBytesMax);
  args.SetMaxSendMessageSize(kMessageBytesMax);

  std::shared_ptr<grpc::ChannelCredentials> credentials;
  if (!UsesTls(options)) {
    credentials = grpc::InsecureChannelCredentials();
  } else {
    grpc::SslCredentialsOptions ssl;
    if (!options.tls_ca.empty()) {
      WL_ASSIGN_OR_RETURN(ssl.pem_root_certs, ReadPemFile(options.tls_ca, "tls_ca"));
    }
    if (!options.tls_cert.empty()) {
      WL_ASSIGN_OR_RETURN(ssl.pem_cert_chain, ReadPemFile(options.tls_cert, "tls_cert"));
      WL_ASSIGN_OR_RETURN(ssl.pem_private_key, ReadPemFile(options.tls_key, "tls_key"));
    }
    if (!options.tls_server_name.empty()) {
      args.SetSslTargetNameOverride(options.tls_server_name);
    }
    credentials = grpc::SslCredentials(ssl);
  }
  std::shared_ptr<grpc::Channel> channel =
      grpc::CreateCustomChannel(options.server, credentials, args);
  if (channel == nullptr) {
    return absl::InternalError(absl::StrCat("cannot create a channel to ", options.server));
  }
  return channel;
}

void PrepareContext(const ClientOptions& options, DeadlinePolicy deadline,
                    grpc::ClientContext* context) {
  if (deadline == DeadlinePolicy::kApply) {
    context->set_deadline(std::chrono::system_clock::now() +
                          std::chrono::milliseconds(options.deadline_ms));
  }
  if (!options.token.empty()) {
    context->AddMetadata("authorization", "Bearer " + options.token);
  }
}

absl::Status FromGrpcStatus(const grpc::Status& status) {
  if (status.ok()) return absl::OkStatus();
  const int code = static_cast<int>(status.error_code());
  // Both enumerations are google.rpc.Code; anything unexpected is kUnknown.
  if (code < 0 || code > static_cast<int>(absl::StatusCode::kUnauthenticated)) {
    return absl::UnknownError(status.error_message());
  }
  return absl::Status(static_cast<absl::StatusCode>(code), status.error_message());
}

std::string_view HealthStateName(HealthState state) {
  switch (state) {
    case HealthState::kUnknown:
      return "UNKNOWN";
    case HealthState::kServing:
      return "SERVING";
    case HealthState::kNotServing:
      return "NOT_SERVING";
    case HealthState::kServiceUnknown:
      return "SERVICE_UNKNOWN";
  }
  return "UNKNOWN";
}

absl::StatusOr<HealthState> CheckHealth(const std::shared_ptr<grpc::Channel>& channel,
                                        const ClientOptions& options, std::string_view service) {
  // HealthCheckRequest { string service = 1; }: tag 0x0a, length, bytes.
  if (service.size() > 127) return absl::InvalidArgumentError("service name too long");
  std::string request;
  if (!service.empty()) {
    request.push_back('\x0a');
    request.push_back(static_cast<char>(service.size()));
    request.append(service);
  }
  grpc::Slice slice(request);
  grpc::ByteBuffer request_buffer(&slice, 1);

  grpc::ClientContext context;
  PrepareContext(options, DeadlinePolicy::kApply, &context);
  grpc::CompletionQueue cq;
  grpc::GenericStub stub(channel);
  std::unique_ptr<grpc::GenericClientAsyncResponseReader> call =
      stub.PrepareUnaryCall(&context, "/grpc.health.v1.Health/Check", request_buffer, &cq);
  if (call == nullptr) return absl::InternalError("cannot start the health call");
  call->StartCall();
  grpc::ByteBuffer response_buffer;
  grpc::Status status;
  int tag = 1;
  call->Finish(&response_buffer, &status, &tag);
  void* got_tag = nullptr;
  bool ok = false;
  const bool next = cq.Next(&got_tag, &ok);
  cq.Shutdown();
  // Drain the queue as gRPC requires before it is destroyed.
  void* ignored_tag = nullptr;
  bool ignored_ok = false;
  while (cq.Next(&ignored_tag, &ignored_ok)) {
  }
  if (!next || got_tag != &tag || !ok) return absl::InternalError("health call did not complete");
  WL_RETURN_IF_ERROR(FromGrpcStatus(status));

  std::vector<grpc::Slice> slices;
  if (!response_buffer.Dump(&slices).ok()) {
    return absl::InternalError("cannot read the health response");
  }
  std::string bytes;
  for (const grpc::Slice& s : slices) {
    bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
  }
  // HealthCheckResponse { ServingStatus status = 1; }: skip anything else.
  std::string_view in = bytes;
  uint64_t state = 0;
  while (!in.empty()) {
    uint64_t key = 0;
    if (!ReadVarint(in, &key)) return absl::DataLossError("malformed health response");
    const uint64_t wire_type = key & 7;
    uint64_t value = 0;
    if (wire_type == 0) {
      if (!ReadVarint(in, &value)) return absl::DataLossError("malformed health response");
      if ((key >> 3) == 1) state = value;
    } else if (wire_type == 2) {
      if (!ReadVarint(in, &value) || value > in.size()) {
        return absl::DataLossError("malformed health response");
      }
      in.remove_prefix(static_cast<size_t>(value));
    } else if (wire_type == 1 || wire_type == 5) {
      const size_t n = wire_type == 1 ? 8 : 4;
      if (in.size() < n) return absl::DataLossError("malformed health response");
      in.remove_prefix(n);
    } else {
      return absl::DataLossError("malformed health response");
    }
  }
  if (state > 3) return HealthState::kUnknown;
  return static_cast<HealthState>(state);
}

// ---------------------------------------------------------------- tokens

std::string HexEncode(std::string_view bytes) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (char c : bytes) {
    const auto b = static_cast<unsigned char>(c);
    out.push_back(kHex[b >> 4]);
    out.push_back(kHex[b & 15]);
  }
  return out;
}

absl::StatusOr<std::string> GenerateToken() {
  unsigned char random[kTokenRandomBytes];
  if (RAND_bytes(random, sizeof random) != 1) {
    return absl::InternalError("OpenSSL RAND_bytes failed");
  }
  std::string token(kTokenPrefix);
  token += HexEncode(std::string_view(reinterpret_cast<const char*>(random), sizeof random));
  OPENSSL_cleanse(random, sizeof random);
  return token;
}

std::string TokenHash(std::string_view token) { return HexEncode(Sha256(token, {})); }

absl::Status ValidateRole(std::string_view role) {
  if (role == "admin" || role == "clerk" || role == "mall" || role == "auditor") {
    return absl::OkStatus();
  }
  return absl::InvalidArgumentError(
      absl::StrCat("role must be admin, clerk, mall or auditor, not \"", ToAbsl(role), "\""));
}

absl::Status ValidateTokenName(std::string_view name) {
  if (name.empty() || name.size() > kTokenNameBytesMax) {
    return absl::InvalidArgumentError("name must be 1 to 64 characters");
  }
  for (char c : name) {
    const bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == '-';
    if (!ok) {
      return absl::InvalidArgumentError("name may contain only A-Z a-z 0-9 . _ -");
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> AppendToken(const std::string& auth_file, std::string_view role,
                                        std::string_view name) {
  WL_RETURN_IF_ERROR(ValidateRole(role));
  WL_RETURN_IF_ERROR(ValidateTokenName(name));
  if (auth_file.empty()) return absl::InvalidArgumentError("auth_file is empty");

  // Create exclusively first so that we know whether the directory entry is
  // new (and must be made durable) and never widen an existing file's mode.
  bool created = true;
  int fd = ::open(auth_file.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0 && errno == EEXIST) {
    created = false;
    fd = ::open(auth_file.c_str(), O_RDWR | O_APPEND | O_CLOEXEC);
  }
  if (fd < 0) return ErrnoStatus("cannot open auth file", auth_file);
  struct FdCloser {
    int fd;
    ~FdCloser() { ::close(fd); }
  } closer{fd};

  struct stat st;
  if (::fstat(fd, &st) != 0) return ErrnoStatus("cannot stat auth file", auth_file);
  if (!S_ISREG(st.st_mode)) {
    return absl::FailedPreconditionError(
        absl::StrCat("auth file ", auth_file, " is not a regular file"));
  }
  if ((st.st_mode & 0077) != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("auth file ", auth_file, " is accessible to group or others (mode ",
                     absl::StrFormat("%04o", st.st_mode & 07777), "); run chmod 600 on it first"));
  }

  WL_ASSIGN_OR_RETURN(std::string token, GenerateToken());
  std::string line;
  // A hand-edited file may lack its final newline; never glue our line to it.
  if (!created && st.st_size > 0) {
    char last = '\n';
    if (::pread(fd, &last, 1, st.st_size - 1) != 1) {
      return ErrnoStatus("cannot read auth file", auth_file);
    }
    if (last != '\n') line.push_back('\n');
  }
  absl::StrAppend(&line, TokenHash(token), " ", ToAbsl(role), " ", ToAbsl(name), "\n");
  // One write() of a short line to an O_APPEND file: concurrent appenders do
  // not interleave within it.
  WL_RETURN_IF_ERROR(WriteAll(fd, line, auth_file));
  if (::fsync(fd) != 0) return ErrnoStatus("cannot fsync auth file", auth_file);
  if (created) {
    const std::string dir = ParentDir(auth_file);
    const int dir_fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir_fd < 0) return ErrnoStatus("cannot open directory", dir);
    const int rc = ::fsync(dir_fd);
    ::close(dir_fd);
    if (rc != 0) return ErrnoStatus("cannot fsync directory", dir);
  }
  return token;
}

// ---------------------------------------------------------------- amounts

absl::StatusOr<int64_t> ParseYuanToFen(std::string_view text) {
  const auto invalid = [&] {
    return absl::InvalidArgumentError(absl::StrCat(
        "\"", ToAbsl(text), "\" is not a yuan amount (digits, optionally '.' and 1-2 decimals)"));
  };
  const size_t dot = text.find('.');
  const std::string_view whole = text.substr(0, dot);
  const std::string_view frac =
      dot == std::string_view::npos ? std::string_view() : text.substr(dot + 1);
  if (whole.empty()) return invalid();
  if (dot != std::string_view::npos && (frac.empty() || frac.size() > 2)) return invalid();
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  int64_t fen = 0;
  for (char c : whole) {
    if (c < '0' || c > '9') return invalid();
    const int64_t digit = c - '0';
    if (fen > (kMax - digit) / 10) {
      return absl::OutOfRangeError(absl::StrCat("\"", ToAbsl(text), "\" yuan is too large"));
    }
    fen = fen * 10 + digit;
  }
  int64_t cents = 0;
  for (size_t i = 0; i < 2; ++i) {
    int64_t digit = 0;
    if (i < frac.size()) {
      if (frac[i] < '0' || frac[i] > '9') return invalid();
      digit = frac[i] - '0';
    }
    cents = cents * 10 + digit;
  }
  if (fen > (kMax - cents) / 100) {
    return absl::OutOfRangeError(absl::StrCat("\"", ToAbsl(text), "\" yuan is too large"));
  }
  return fen * 100 + cents;
}

std::string FormatFen(int64_t fen) {
  // Work on the magnitude as unsigned so that INT64_MIN is exact.
  const bool negative = fen < 0;
  const uint64_t magnitude =
      negative ? static_cast<uint64_t>(0) - static_cast<uint64_t>(fen) : static_cast<uint64_t>(fen);
  const uint64_t cents = magnitude % 100;
  std::string out = negative ? "-" : "";
  absl::StrAppend(&out, magnitude / 100, ".", cents < 10 ? "0" : "", cents);
  return out;
}

std::string FormatAmount(std::string_view asset, int64_t amount) {
  if (asset.substr(0, 5) == "item:") return absl::StrCat(amount);
  return FormatFen(amount);
}

absl::StatusOr<uint64_t> ParseUint64(std::string_view text) {
  if (text.empty()) return absl::InvalidArgumentError("empty number");
  uint64_t v = 0;
  for (char c : text) {
    if (c < '0' || c > '9') {
      return absl::InvalidArgumentError(
          absl::StrCat("\"", ToAbsl(text), "\" is not a non-negative integer"));
    }
    const uint64_t digit = static_cast<uint64_t>(c - '0');
    if (v > (std::numeric_limits<uint64_t>::max() - digit) / 10) {
      return absl::OutOfRangeError(absl::StrCat("\"", ToAbsl(text), "\" is too large"));
    }
    v = v * 10 + digit;
  }
  return v;
}

absl::StatusOr<int64_t> ParseInt64(std::string_view text) {
  const bool negative = !text.empty() && text.front() == '-';
  const std::string_view digits = negative ? text.substr(1) : text;
  if (digits.empty() || digits.front() == '-') {
    return absl::InvalidArgumentError(absl::StrCat("\"", ToAbsl(text), "\" is not an integer"));
  }
  auto magnitude = ParseUint64(digits);
  if (!magnitude.ok()) {
    if (absl::IsOutOfRange(magnitude.status())) {
      return absl::OutOfRangeError(absl::StrCat("\"", ToAbsl(text), "\" is out of range"));
    }
    return absl::InvalidArgumentError(absl::StrCat("\"", ToAbsl(text), "\" is not an integer"));
  }
  const uint64_t limit = negative ? static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) + 1
                                  : static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
  if (*magnitude > limit) {
    return absl::OutOfRangeError(absl::StrCat("\"", ToAbsl(text), "\" is out of range"));
  }
  if (negative) return static_cast<int64_t>(static_cast<uint64_t>(0) - *magnitude);
  return static_cast<int64_t>(*magnitude);
}

// ---------------------------------------------------------------- times

namespace {

// Reads exactly `count` decimal digits at text[*pos]; nullopt otherwise.
std::optional<int64_t> FixedDigits(std::string_view text, size_t* pos, size_t count) {
  if (*pos + count > text.size()) return std::nullopt;
  int64_t v = 0;
  for (size_t i = 0; i < count; ++i) {
    const char c = text[*pos + i];
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + (c - '0');
  }
  *pos += count;
  return v;
}

bool Expect(std::string_view text, size_t* pos, std::string_view chars) {
  if (*pos >= text.size() || chars.find(text[*pos]) == std::string_view::npos) return false;
  ++*pos;
  return true;
}

bool IsLeapYear(int64_t y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

// Days from 1970-01-01 to y-m-d of the proleptic Gregorian calendar (Howard
// Hinnant's days_from_civil), for a valid date.
int64_t DaysFromCivil(int64_t y, int64_t m, int64_t d) {
  y -= m <= 2 ? 1 : 0;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const int64_t yoe = y - era * 400;
  const int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

// "YYYY-MM-DD" at text[*pos]: the day's number since the epoch.
std::optional<int64_t> ParseDate(std::string_view text, size_t* pos) {
  const std::optional<int64_t> y = FixedDigits(text, pos, 4);
  if (!y || !Expect(text, pos, "-")) return std::nullopt;
  const std::optional<int64_t> m = FixedDigits(text, pos, 2);
  if (!m || !Expect(text, pos, "-")) return std::nullopt;
  const std::optional<int64_t> d = FixedDigits(text, pos, 2);
  if (!d || *m < 1 || *m > 12 || *d < 1) return std::nullopt;
  static constexpr int64_t kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  const int64_t days_in_month = kDays[*m - 1] + (*m == 2 && IsLeapYear(*y) ? 1 : 0);
  if (*d > days_in_month) return std::nullopt;
  return DaysFromCivil(*y, *m, *d);
}

constexpr int64_t kMicrosPerSecond = 1'000'000;
constexpr int64_t kSecondsPerDay = 86'400;

absl::Status BadTime(std::string_view text) {
  return absl::InvalidArgumentError(
      absl::StrCat("\"", ToAbsl(text),
                   "\" is not a time: give YYYY-MM-DD (China time) or RFC 3339 with an offset, "
                   "e.g. 2024-09-01T18:30:00+08:00"));
}

}  // namespace

absl::StatusOr<int64_t> ParseTimeUs(std::string_view text) {
  size_t pos = 0;
  const std::optional<int64_t> day = ParseDate(text, &pos);
  if (!day) return BadTime(text);
  int64_t seconds = *day * kSecondsPerDay;
  int64_t micros = 0;
  if (pos == text.size()) {
    seconds -= kChinaUtcOffsetSeconds;
  } else {
    if (!Expect(text, &pos, "Tt")) return BadTime(text);
    const std::optional<int64_t> hh = FixedDigits(text, &pos, 2);
    if (!hh || !Expect(text, &pos, ":")) return BadTime(text);
    const std::optional<int64_t> mm = FixedDigits(text, &pos, 2);
    if (!mm || !Expect(text, &pos, ":")) return BadTime(text);
    const std::optional<int64_t> ss = FixedDigits(text, &pos, 2);
    // 60 is a leap second, which the ledger's clock never shows.
    if (!ss || *hh > 23 || *mm > 59 || *ss > 59) return BadTime(text);
    if (pos < text.size() && text[pos] == '.') {
      ++pos;
      size_t digits = 0;
      while (pos < text.size() && text[pos] >= '0' && text[pos] <= '9') {
        if (digits < 6) micros = micros * 10 + (text[pos] - '0');
        ++digits;
        ++pos;
      }
      if (digits == 0) return BadTime(text);
      for (size_t k = digits; k < 6; ++k) micros *= 10;
    }
    int64_t offset_seconds = 0;
    if (Expect(text, &pos, "Zz")) {
      offset_seconds = 0;
    } else if (pos < text.size() && (text[pos] == '+' || text[pos] == '-')) {
      const bool negative = text[pos] == '-';
      ++pos;
      const std::optional<int64_t> oh = FixedDigits(text, &pos, 2);
      if (!oh || !Expect(text, &pos, ":")) return BadTime(text);
      const std::optional<int64_t> om = FixedDigits(text, &pos, 2);
      if (!om || *oh > 23 || *om > 59) return BadTime(text);
      offset_seconds = (*oh * 3600 + *om * 60) * (negative ? -1 : 1);
    } else {
      return BadTime(text);
    }
    if (pos != text.size()) return BadTime(text);
    seconds += *hh * 3600 + *mm * 60 + *ss - offset_seconds;
  }
  if (seconds < 0) {
    return absl::OutOfRangeError(absl::StrCat("\"", ToAbsl(text), "\" is before 1970"));
  }
  // Four-digit years end in 9999: far inside int64 microseconds.
  return seconds * kMicrosPerSecond + micros;
}

absl::StatusOr<TimeRangeUs> ChinaDayRangeUs(std::string_view day) {
  size_t pos = 0;
  const std::optional<int64_t> days = ParseDate(day, &pos);
  if (!days || pos != day.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("\"", ToAbsl(day), "\" is not a day: give YYYY-MM-DD"));
  }
  const int64_t from_s = *days * kSecondsPerDay - kChinaUtcOffsetSeconds;
  if (from_s < 0) {
    return absl::OutOfRangeError(absl::StrCat("\"", ToAbsl(day), "\" is before 1970"));
  }
  return TimeRangeUs{from_s * kMicrosPerSecond, (from_s + kSecondsPerDay) * kMicrosPerSecond};
}

// ---------------------------------------------------------------- vouchers

// ---------------------------------------------------------------- entries

std::string EntryHash(std::string_view entry_bytes) {
  return Sha256(kEntryHashDomain, entry_bytes);
}

absl::Status VerifyEntry(const warmledger::v1::Entry& entry, const std::string* prev_hash) {
  const std::string_view bytes = entry.entry_bytes();
  const auto fail = [&](std::string_view what) {
    return absl::DataLossError(absl::StrCat("entry ", entry.seq(), ": ", ToAbsl(what)));
  };
  if (bytes.size() < kEntryHeaderBytes) return fail("entry_bytes shorter than the header");
  const auto version = static_cast<uint8_t>(bytes[kEntryVersionOffset]);
  if (version < kEntryVersionMin || version > kEntryVersionMax) {
    return fail("unknown entry version");
  }
  if (entry.hash() != EntryHash(bytes)) return fail("hash does not match entry_bytes");
  if (static_cast<uint8_t>(bytes[kEntryTypeOffset]) != static_cast<uint32_t>(entry.type())) {
    return fail("type differs from entry_bytes");
  }
  if (LoadU64(bytes, kEntrySeqOffset) != entry.seq()) return fail("seq differs from entry_bytes");
  if (static_cast<int64_t>(LoadU64(bytes, kEntryTimeOffset)) != entry.time_us()) {
    return fail("time_us differs from entry_bytes");
  }
  if (bytes.substr(kEntryPrevHashOffset, kHashBytes) != entry.prev_hash()) {
    return fail("prev_hash differs from entry_bytes");
  }
  if (prev_hash != nullptr && *prev_hash != entry.prev_hash()) {
    return fail("prev_hash is not the hash of the previous entry (broken chain)");
  }
  return absl::OkStatus();
}

// ---------------------------------------------------------------- files

absl::StatusOr<std::string> ReadFileCapped(const std::string& path, size_t max_bytes,
                                           std::string_view what) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoStatus(absl::StrCat("cannot read ", ToAbsl(what), " file"), path);
  struct FdCloser {
    int fd;
    ~FdCloser() { ::close(fd); }
  } closer{fd};
  std::string text;
  char buf[64 * 1024];
  while (true) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus(absl::StrCat("cannot read ", ToAbsl(what), " file"), path);
    }
    if (n == 0) break;
    if (static_cast<size_t>(n) > max_bytes - text.size()) {
      return absl::InvalidArgumentError(
          absl::StrCat(ToAbsl(what), " file ", path, " is larger than ", max_bytes, " bytes"));
    }
    text.append(buf, static_cast<size_t>(n));
  }
  return text;
}

absl::Status WriteFileAtomically(const std::string& path, std::string_view contents) {
  if (path.empty()) return absl::InvalidArgumentError("no file name to write");
  const std::string tmp = path + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return ErrnoStatus("cannot create", tmp);
  absl::Status status = WriteAll(fd, contents, tmp);
  if (status.ok() && ::fsync(fd) != 0) status = ErrnoStatus("cannot fsync", tmp);
  if (::close(fd) != 0 && status.ok()) status = ErrnoStatus("cannot close", tmp);
  if (status.ok() && ::rename(tmp.c_str(), path.c_str()) != 0) {
    status = ErrnoStatus("cannot rename to", path);
  }
  if (!status.ok()) {
    ::unlink(tmp.c_str());
    return status;
  }
  const std::string dir = ParentDir(path);
  const int dir_fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd < 0) return ErrnoStatus("cannot open directory", dir);
  const int rc = ::fsync(dir_fd);
  ::close(dir_fd);
  if (rc != 0) return ErrnoStatus("cannot fsync directory", dir);
  return absl::OkStatus();
}

// ---------------------------------------------------------------- transparency

namespace {

std::string_view HashChars(const Hash& hash) {
  return {reinterpret_cast<const char*>(hash.data()), hash.size()};
}

// Keeps the code, puts `step` in front of the message.
absl::Status InStep(std::string_view step, const absl::Status& status) {
  return absl::Status(status.code(), absl::StrCat(ToAbsl(step), ": ", status.message()));
}

}  // namespace

std::string HashToBase64(const Hash& hash) { return Base64Encode(HashChars(hash)); }

absl::StatusOr<Hash> HashFromBytes(std::string_view bytes, std::string_view what) {
  Hash hash;
  if (bytes.size() != hash.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat(ToAbsl(what), " is ", bytes.size(), " bytes, expected ", hash.size()));
  }
  std::memcpy(hash.data(), bytes.data(), hash.size());
  return hash;
}

absl::StatusOr<Checkpoint> OpenCheckpoint(const NoteVerifier& verifier, std::string_view note) {
  absl::StatusOr<std::string> text = verifier.Open(note);
  if (!text.ok()) return InStep("signature", text.status());
  return ParseCheckpoint(*text);
}

absl::StatusOr<VerifiedReceipt> VerifyReceipt(std::string_view receipt_text,
                                              const NoteVerifier& verifier) {
  WL_ASSIGN_OR_RETURN(Receipt receipt, ParseReceipt(receipt_text));
  VerifiedReceipt verified;
  WL_ASSIGN_OR_RETURN(verified.checkpoint, OpenCheckpoint(verifier, receipt.checkpoint));
  verified.key_name = verifier.name();
  const Checkpoint& checkpoint = verified.checkpoint;
  if (receipt.index >= checkpoint.size) {
    return absl::FailedPreconditionError(
        absl::StrCat("inclusion proof: the receipt's index ", receipt.index,
                     " is not inside the checkpoint's tree of ", checkpoint.size, " entries"));
  }
  const absl::Status included =
      merkle::VerifyInclusion(receipt.index, checkpoint.size, merkle::LeafHash(receipt.entry_bytes),
                              receipt.proof, checkpoint.root);
  if (!included.ok()) {
    absl::string_view why = included.message();
    absl::ConsumePrefix(&why, "inclusion proof: ");
    return absl::FailedPreconditionError(
        absl::StrCat("inclusion proof: the entry is not leaf ", receipt.index,
                     " of the checkpoint's tree of ", checkpoint.size, " entries: ", why));
  }
  absl::StatusOr<Entry> entry = DecodeEntry(receipt.entry_bytes);
  if (!entry.ok()) return absl::DataLossError(absl::StrCat("entry: ", entry.status().message()));
  if (entry->seq != receipt.index + 1) {
    return absl::DataLossError(absl::StrCat("entry: its bytes say seq ", entry->seq,
                                            ", but it is proved as leaf index ", receipt.index,
                                            " (seq ", receipt.index + 1, ")"));
  }
  verified.entry = *std::move(entry);
  return verified;
}

absl::Status CheckAdvance(const Checkpoint& verified, const Checkpoint& now,
                          const std::vector<Hash>& consistency_proof) {
  if (now.origin != verified.origin) {
    return absl::FailedPreconditionError(absl::StrCat("origin: the server's checkpoint is for \"",
                                                      now.origin, "\", the verified one for \"",
                                                      verified.origin, "\""));
  }
  if (now.size < verified.size) {
    return absl::DataLossError(absl::StrCat("ROLLBACK: the server's newest checkpoint has ",
                                            now.size, " entries, fewer than the ", verified.size,
                                            " already verified"));
  }
  if (now.size == verified.size) {
    if (now.root != verified.root) {
      return absl::DataLossError(
          absl::StrCat("FORK: two different checkpoints of ", now.size, " entries (verified root ",
                       HashToBase64(verified.root), ", now ", HashToBase64(now.root), ")"));
    }
    return absl::OkStatus();
  }
  // An empty tree is a prefix of every tree (RFC 9162 has no proof for it).
  if (verified.size == 0) return absl::OkStatus();
  const absl::Status consistent = merkle::VerifyConsistency(verified.size, now.size, verified.root,
                                                            now.root, consistency_proof);
  if (!consistent.ok()) {
    return absl::DataLossError(absl::StrCat("FORK: checkpoint of ", now.size,
                                            " entries does not extend the verified checkpoint of ",
                                            verified.size, " entries: ", consistent.message()));
  }
  return absl::OkStatus();
}

}  // namespace warmledger::client

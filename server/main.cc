// warmledgerd: serves a warmledger over gRPC. Flags are parsed here; the
// server itself is server/server.h.
#include <signal.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <limits>
#include <string>

#include "server/server.h"

namespace {

constexpr char kUsage[] = R"(usage: warmledgerd --data_dir=DIR [flags]

  --data_dir=DIR        server folder: database in DIR/db, keys in DIR/keys (required)
  --listen=HOST:PORT    address to serve (default 127.0.0.1:7420; port 0 picks one)
  --port_file=PATH      write the bound port to PATH once serving
  --tls_cert=PEM        server certificate chain (with --tls_key)
  --tls_key=PEM         server private key
  --tls_client_ca=PEM   require client certificates signed by this CA (mutual TLS)
  --auth_file=PATH      bearer tokens (required unless --dev; see docs/api.md)
  --registry_file=PATH  categories and communities (default: the built-in district)
  --key_file=PATH       32-byte pseudonym/trace-code key (default DIR/keys/pseudonym.key)
  --checkpoint_key_file=PATH   Ed25519 checkpoint signing key (default DIR/keys/checkpoint.key;
                        created on first start, mode 0600)
  --checkpoint_origin=NAME     checkpoint origin and key name (default warmledger.local/ledger)
  --checkpoint_every_entries=N a checkpoint at least every N entries (default 10000)
  --checkpoint_every_ms=N      ...and at least every N ms while entries arrive (default 1000)
  --contribution_rate_bp=N     purchases give N basis points of the sale to the charity fund
                        (0..10000, default 200 = 2%)
  --charity_fund=ACCOUNT       the fund or project purchase contributions enter
                        (default fund/general)
  --voucher_sweep_ms=N  return expired vouchers' value to their funds every N ms
                        (default 60000; 0 turns the sweep off)
  --dev                 development mode: loopback only, authentication OFF
)";

bool Flag(const std::string& arg, const char* name, std::string* out) {
  std::string prefix = std::string("--") + name + "=";
  if (arg.rfind(prefix, 0) != 0) return false;
  *out = arg.substr(prefix.size());
  return true;
}

// An integer flag of at least `min` (0 or 1); exits with a message on a bad
// value. Upper bounds are the server's to check (Server::Start).
template <typename Int>
bool IntFlag(const std::string& arg, const char* name, long long min, Int* out) {
  std::string text;
  if (!Flag(arg, name, &text)) return false;
  char* end = nullptr;
  errno = 0;
  long long v = std::strtoll(text.c_str(), &end, 10);
  if (text.empty() || *end != '\0' || errno != 0 || v < min ||
      static_cast<unsigned long long>(v) > std::numeric_limits<Int>::max()) {
    std::fprintf(stderr, "warmledgerd: --%s must be a%s integer, got '%s'\n", name,
                 min > 0 ? " positive" : " non-negative", text.c_str());
    std::exit(2);
  }
  *out = static_cast<Int>(v);
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  // gRPC's threads lock often (its mutexes are absl::Mutex); absl's
  // deadlock-graph bookkeeping would cost more than the work under the locks.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  warmledger::server::ServerOptions options;
  std::string port_file;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--help" || a == "-h") {
      std::fputs(kUsage, stdout);
      return 0;
    }
    if (a == "--dev") {
      options.dev = true;
    } else if (!(Flag(a, "data_dir", &options.data_dir) || Flag(a, "listen", &options.listen) ||
                 Flag(a, "port_file", &port_file) || Flag(a, "tls_cert", &options.tls_cert) ||
                 Flag(a, "tls_key", &options.tls_key) ||
                 Flag(a, "tls_client_ca", &options.tls_client_ca) ||
                 Flag(a, "auth_file", &options.auth_file) ||
                 Flag(a, "registry_file", &options.registry_file) ||
                 Flag(a, "key_file", &options.key_file) ||
                 Flag(a, "checkpoint_key_file", &options.checkpoint_key_file) ||
                 Flag(a, "checkpoint_origin", &options.checkpoint_origin) ||
                 IntFlag(a, "checkpoint_every_entries", 1, &options.checkpoint_every_entries) ||
                 IntFlag(a, "checkpoint_every_ms", 1, &options.checkpoint_every_ms) ||
                 IntFlag(a, "contribution_rate_bp", 0, &options.contribution_rate_bp) ||
                 Flag(a, "charity_fund", &options.charity_fund) ||
                 IntFlag(a, "voucher_sweep_ms", 0, &options.voucher_sweep_ms))) {
      std::fprintf(stderr, "warmledgerd: unknown flag '%s'\n\n%s", a.c_str(), kUsage);
      return 2;
    }
  }
  if (options.data_dir.empty()) {
    std::fprintf(stderr, "warmledgerd: --data_dir is required\n\n%s", kUsage);
    return 2;
  }

  // Block the stop signals in every thread; this one waits for them.
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGINT);
  sigaddset(&stop, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);

  if (options.dev) {
    std::fprintf(stderr,
                 "\n"
                 "  *****************************************************************\n"
                 "  *  warmledgerd --dev: DEVELOPMENT MODE. AUTHENTICATION IS OFF:  *\n"
                 "  *  every caller may do everything. Loopback only. Never use     *\n"
                 "  *  this mode for a real charity's books.                        *\n"
                 "  *****************************************************************\n\n");
  }
  auto server = warmledger::server::Server::Start(options);
  if (!server.ok()) {
    std::fprintf(stderr, "warmledgerd: %s\n", server.status().ToString().c_str());
    return 1;
  }
  int port = (*server)->port();
  if (!port_file.empty()) {
    std::string tmp = port_file + ".tmp";
    std::ofstream(tmp) << port << "\n";
    std::rename(tmp.c_str(), port_file.c_str());
  }
  auto head = (*server)->ledger().Head();
  std::fprintf(stderr, "warmledgerd: serving %s on port %d (%llu entries, verified)\n",
               options.data_dir.c_str(), port, static_cast<unsigned long long>(head.seq));
  std::fprintf(stderr, "warmledgerd: checkpoint verifier key: %s\n",
               (*server)->verifier_key().c_str());

  int sig = 0;
  sigwait(&stop, &sig);
  // The lines of the calls answered so far come before this one.
  (*server)->FlushLog();
  std::fprintf(stderr, "warmledgerd: %s received; finishing in-flight calls\n",
               sig == SIGTERM ? "SIGTERM" : "SIGINT");
  (*server)->Shutdown();
  std::fprintf(stderr, "warmledgerd: stopped cleanly\n");
  return 0;
}

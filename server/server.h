// warmledgerd as a library: the gRPC services over one Ledger, with
// authentication, TLS, health checking and reflection. main.cc only parses
// flags and waits for a signal; tests start the same server on 127.0.0.1:0.
//
// Thread contract: Start() and Shutdown() from one thread; everything else is
// internal to gRPC's threads and the voucher sweep's thread.
#ifndef WARMLEDGER_SERVER_SERVER_H_
#define WARMLEDGER_SERVER_SERVER_H_

#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "ledger/clock.h"
#include "ledger/ledger.h"

namespace warmledger::server {

struct ServerOptions {
  // The server's folder: the database lives in <data_dir>/db, the pseudonym
  // key in <data_dir>/keys/pseudonym.key unless key_file says otherwise.
  std::string data_dir;
  // HOST:PORT; port 0 picks a free port (see Server::port()).
  std::string listen = "127.0.0.1:7420";
  // TLS: both or neither. With tls_client_ca, clients must present a
  // certificate signed by it (mutual TLS).
  std::string tls_cert;
  std::string tls_key;
  std::string tls_client_ca;
  // Bearer tokens (docs/api.md). Required unless dev.
  std::string auth_file;
  // Categories and communities; empty means the built-in district tables.
  std::string registry_file;
  // 32-byte secret for recipient pseudonyms and trace codes.
  std::string key_file;
  // Ed25519 key that signs checkpoints (C2SP signing-key text), created on
  // first start with mode 0600; default <data_dir>/keys/checkpoint.key. Its
  // verifier key is written beside it, with the extension .vkey.
  std::string checkpoint_key_file;
  // Origin line of every checkpoint, also the signing key's name. Must stay
  // the same for the life of the ledger.
  std::string checkpoint_origin = "warmledger.local/ledger";
  // A checkpoint at least every this many entries or milliseconds.
  uint64_t checkpoint_every_entries = 10'000;
  int64_t checkpoint_every_ms = 1'000;
  // Checkout: purchases contribute round_half_up(amount × contribution_rate_bp
  // / 10,000) of the sale (basis points: 200 = 2%, at most 10,000) to
  // charity_fund, a fund or project. Both are recorded in every purchase
  // entry, so a purchase retried after a change of either is ALREADY_EXISTS
  // naming purchase.rate_bp or purchase.fund.
  uint32_t contribution_rate_bp = 200;
  std::string charity_fund = "fund/general";
  // Every this many milliseconds a background sweep returns what expired
  // vouchers still hold to the funds they came from (at most 8,192 vouchers
  // per sweep); 0 turns the sweep off (Vouchers.SweepExpiredVouchers still
  // runs one on request).
  int64_t voucher_sweep_ms = 60'000;
  // Development mode: loopback only, authentication off.
  bool dev = false;
  // Stamps entries; null means the system clock. Must outlive the server.
  Clock* clock = nullptr;
  // Receives one structured line per RPC (and per voucher sweep that
  // expired something); null means stderr.
  std::function<void(std::string_view)> log;
};

class Server {
 public:
  static absl::StatusOr<std::unique_ptr<Server>> Start(ServerOptions options);
  // Stops accepting calls, lets in-flight ones finish (writes complete and
  // are durable), ends tails, closes the database.
  void Shutdown();
  ~Server();

  // Writes the RPC log lines gathered for stderr so far, so that whatever
  // the caller prints to stderr next comes after them.
  void FlushLog();

  int port() const;
  Ledger& ledger();
  // The checkpoint signer's verifier key (signed-note text form).
  std::string verifier_key() const;

  class Impl;

 private:
  explicit Server(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// True for 127.0.0.0/8, localhost and [::1] listen addresses.
bool IsLoopbackListen(std::string_view listen);

}  // namespace warmledger::server

#endif  // WARMLEDGER_SERVER_SERVER_H_

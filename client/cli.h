// The `warmledger` command line: subcommands, their flags, and how responses
// are shown (aligned tables for people, proto JSON lines with --json). The
// executable's main() only gathers the environment and calls RunCli, so every
// path short of a live server can be tested in-process.
#ifndef WARMLEDGER_CLIENT_CLI_H_
#define WARMLEDGER_CLIENT_CLI_H_

#include <iosfwd>
#include <string>
#include <vector>

namespace warmledger::client {

// Exit codes of the CLI.
inline constexpr int kExitOk = 0;
inline constexpr int kExitError = 1;  // the call or the local operation failed
inline constexpr int kExitUsage = 2;  // the command line can never work as given

// What the CLI reads from its environment; empty means unset. Flags win over
// these.
struct CliEnvironment {
  std::string server;  // WARMLEDGER_SERVER
  std::string token;   // WARMLEDGER_TOKEN
};

struct CliStreams {
  std::istream& in;   // read only by `register-recipient --id_number=-`
  std::ostream& out;  // results
  std::ostream& err;  // "error: CODE: message", warnings, notices
};

// Runs one command line (`args` excludes the program name) and returns the
// process exit code. Errors are printed to streams.err as
// "error: <CODE>: <message>".
int RunCli(const std::vector<std::string>& args, const CliEnvironment& env,
           const CliStreams& streams);

}  // namespace warmledger::client

#endif  // WARMLEDGER_CLIENT_CLI_H_

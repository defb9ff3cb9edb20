// The `warmledger` command-line client. Everything but reading the process
// environment lives in client/cli.cc, where it can be tested.
#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

#include "client/cli.h"

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  warmledger::client::CliEnvironment env;
  if (const char* server = std::getenv("WARMLEDGER_SERVER")) env.server = server;
  if (const char* token = std::getenv("WARMLEDGER_TOKEN")) env.token = token;
  return warmledger::client::RunCli(args, env, {std::cin, std::cout, std::cerr});
}

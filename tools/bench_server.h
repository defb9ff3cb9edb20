// warmledger-bench's mode against a running server (--server=HOST:PORT).
#ifndef WARMLEDGER_TOOLS_BENCH_SERVER_H_
#define WARMLEDGER_TOOLS_BENCH_SERVER_H_

#include <string>
#include <vector>

namespace warmledger::bench {

// Runs the server benchmark with the program's arguments (argv[1..]) and
// returns the process exit code (0 ok, 1 failure, 2 usage error). Its last
// line of output is one JSON object.
int RunServerBench(const std::vector<std::string>& args);

}  // namespace warmledger::bench

#endif  // WARMLEDGER_TOOLS_BENCH_SERVER_H_

// Helpers both modes of warmledger-bench share: formatting, timing, memory
// and the one-line JSON report.
#ifndef WARMLEDGER_TOOLS_BENCH_UTIL_H_
#define WARMLEDGER_TOOLS_BENCH_UTIL_H_

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

namespace warmledger::bench {

std::string Format(const char* format, ...) __attribute__((format(printf, 1, 2)));

double SecondsSince(std::chrono::steady_clock::time_point start);
int64_t NanosSince(std::chrono::steady_clock::time_point start);
inline double Micros(double ns) { return ns / 1e3; }
inline double Millis(double ns) { return ns / 1e6; }

// This process's peak resident set in MiB; NaN if it cannot be read.
double PeakRssMib();

// Builds one JSON object, field by field, in the order written.
class JsonLine {
 public:
  // A value that is not finite (nothing was measured) is written as null.
  void Number(const char* name, double value, int decimals);
  void Integer(const char* name, uint64_t value) { Field(name, std::to_string(value)); }
  void Null(const char* name) { Field(name, "null"); }
  void Bool(const char* name, bool value) { Field(name, value ? "true" : "false"); }
  void String(const char* name, std::string_view value);
  std::string Done() const { return text_ + "}"; }

 private:
  void Field(const char* name, const std::string& value);
  std::string text_ = "{";
};

}  // namespace warmledger::bench

#endif  // WARMLEDGER_TOOLS_BENCH_UTIL_H_

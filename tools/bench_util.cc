#include "tools/bench_util.h"

#include <sys/resource.h>

#include <cmath>
#include <cstdarg>
#include <cstdio>

namespace warmledger::bench {

std::string Format(const char* format, ...) {
  va_list args;
  va_start(args, format);
  va_list copy;
  va_copy(copy, args);
  const int size = std::vsnprintf(nullptr, 0, format, copy);
  va_end(copy);
  std::string text(size > 0 ? static_cast<size_t>(size) : 0, '\0');
  if (size > 0) std::vsnprintf(text.data(), text.size() + 1, format, args);
  va_end(args);
  return text;
}

double SecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

int64_t NanosSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now() - start)
      .count();
}

double PeakRssMib() {
  rusage usage{};
  if (getrusage(RUSAGE_SELF, &usage) != 0) return std::nan("");
  return static_cast<double>(usage.ru_maxrss) / 1024.0;  // ru_maxrss is KiB on Linux
}

void JsonLine::Number(const char* name, double value, int decimals) {
  Field(name, std::isfinite(value) ? Format("%.*f", decimals, value) : "null");
}

void JsonLine::String(const char* name, std::string_view value) {
  std::string quoted = "\"";
  for (char c : value) {
    if (c == '"' || c == '\\') {
      quoted += '\\';
      quoted += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      quoted += Format("\\u%04x", static_cast<unsigned>(c));
    } else {
      quoted += c;
    }
  }
  Field(name, quoted + "\"");
}

void JsonLine::Field(const char* name, const std::string& value) {
  text_ += text_.size() == 1 ? "\"" : ",\"";
  text_ += name;
  text_ += "\":";
  text_ += value;
}

}  // namespace warmledger::bench

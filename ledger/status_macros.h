// Error-propagation and invariant-check macros. Debian's Abseil (20220623) has
// neither absl/log nor ABSL_RETURN_IF_ERROR, so the project defines them once.
#ifndef WARMLEDGER_LEDGER_STATUS_MACROS_H_
#define WARMLEDGER_LEDGER_STATUS_MACROS_H_

#include <cstdio>
#include <cstdlib>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

#define WL_CONCAT_INNER_(a, b) a##b
#define WL_CONCAT_(a, b) WL_CONCAT_INNER_(a, b)

// Returns the status from the enclosing function if it is not OK.
#define WL_RETURN_IF_ERROR(expr)                      \
  do {                                                \
    ::absl::Status wl_status_ = (expr);               \
    if (!wl_status_.ok()) return wl_status_;          \
  } while (0)

// `WL_ASSIGN_OR_RETURN(auto x, F());` assigns the value or returns the error.
#define WL_ASSIGN_OR_RETURN(lhs, expr) \
  WL_ASSIGN_OR_RETURN_IMPL_(WL_CONCAT_(wl_statusor_, __LINE__), lhs, expr)
#define WL_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                              \
  if (!tmp.ok()) return tmp.status();             \
  lhs = std::move(tmp).value()

namespace warmledger::internal {
[[noreturn]] inline void CheckFailed(const char* file, int line,
                                     const char* expr) {
  std::fprintf(stderr, "%s:%d: invariant violated: %s\n", file, line, expr);
  std::abort();
}
}  // namespace warmledger::internal

// Always-on check for invariants whose violation would corrupt the ledger
// (the previous hash of a new entry, balanced postings). Crashes before
// anything is written. Never use it on client input or on bytes read from disk.
#define WL_CHECK(cond)                                                  \
  do {                                                                  \
    if (!(cond)) ::warmledger::internal::CheckFailed(__FILE__, __LINE__, #cond); \
  } while (0)

// Debug-only variant for expensive checks.
#ifdef NDEBUG
#define WL_DCHECK(cond) \
  do {                  \
  } while (0)
#else
#define WL_DCHECK(cond) WL_CHECK(cond)
#endif

namespace warmledger {
// Debian's absl::string_view is not std::string_view; convert in one place.
inline std::string_view ToStd(absl::string_view s) { return {s.data(), s.size()}; }
inline absl::string_view ToAbsl(std::string_view s) { return {s.data(), s.size()}; }
}  // namespace warmledger

#endif  // WARMLEDGER_LEDGER_STATUS_MACROS_H_

// The one place RocksDB statuses become absl statuses, for the engine and
// for the tools that open its database themselves (warmledger-audit).
#ifndef WARMLEDGER_LEDGER_ROCKS_STATUS_H_
#define WARMLEDGER_LEDGER_ROCKS_STATUS_H_

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "rocksdb/status.h"

namespace warmledger {

// OK for OK; otherwise "`what`: <RocksDB's message>" with the code a caller
// can act on: NotFound → kNotFound, Corruption → kDataLoss, InvalidArgument
// → kInvalidArgument, Busy, TryAgain, TimedOut and IOError → kUnavailable,
// anything else → kInternal.
absl::Status FromRocks(const rocksdb::Status& s, absl::string_view what);

}  // namespace warmledger

#endif  // WARMLEDGER_LEDGER_ROCKS_STATUS_H_

// Encoding, decoding and hashing of entries exactly as docs/format.md defines
// them, and the RocksDB keys they are stored under.
#ifndef WARMLEDGER_LEDGER_ENTRY_CODEC_H_
#define WARMLEDGER_LEDGER_ENTRY_CODEC_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "ledger/types.h"

namespace warmledger {

inline constexpr uint8_t kEntryVersion = 1;
// Domain-separation prefix of entry_hash, including the trailing 0x00.
inline constexpr std::string_view kEntryHashDomain{"warmledger/entry/v1\0", 20};

// Key prefixes of the default column family.
inline constexpr char kEntryKeyPrefix = 'E';
inline constexpr std::string_view kFormatKey = "Mformat";
inline constexpr uint32_t kFormatVersion = 1;

// 'E' followed by seq as 8 bytes big-endian.
std::string EntryKey(uint64_t seq);
// The seq of an entry key, or 0 if `key` is not one.
uint64_t SeqFromEntryKey(std::string_view key);

// Appends the entry bytes of `entry` to `out`. Requires every string to fit
// its u16 length prefix (the engine validates lengths before encoding).
void EncodeEntry(const Entry& entry, std::string* out);
std::string EncodeEntry(const Entry& entry);

// Decodes entry bytes. Malformed bytes are kDataLoss naming what was wrong.
absl::StatusOr<Entry> DecodeEntry(std::string_view bytes);

// SHA-256(kEntryHashDomain || bytes).
Hash EntryHash(std::string_view entry_bytes);

// entry_bytes || entry_hash.
std::string MakeStoredValue(std::string_view entry_bytes, const Hash& hash);

// Splits and verifies a stored value read under key seq `expected_seq`: the
// trailer must equal the recomputed hash, the bytes must decode, and the
// decoded seq must equal `expected_seq`. Errors are kDataLoss naming the seq.
absl::StatusOr<StoredEntry> ParseStoredValue(std::string_view value,
                                             uint64_t expected_seq);

}  // namespace warmledger

#endif  // WARMLEDGER_LEDGER_ENTRY_CODEC_H_

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

// The version written into new entries. 2 adds `override` to the bodies of
// DISBURSEMENT and VOUCHER_ISSUE; version 1 entries read (and replay) as
// they were written.
inline constexpr uint8_t kEntryVersion = 2;
// Domain-separation prefix of entry_hash, including the trailing 0x00.
inline constexpr std::string_view kEntryHashDomain{"warmledger/entry/v1\0", 20};

// Key prefixes of the default column family.
inline constexpr char kEntryKeyPrefix = 'E';
inline constexpr char kTileKeyPrefix = 'T';
inline constexpr char kCheckpointKeyPrefix = 'C';
inline constexpr std::string_view kFormatKey = "Mformat";
inline constexpr std::string_view kSnapshotKey = "Sbalances";
// 1: entries only. 2: entries, Merkle tiles and checkpoints. A version 1
// ledger is upgraded on open (its tiles are built from the entries).
inline constexpr uint32_t kFormatVersion = 2;

// 'E' followed by seq as 8 bytes big-endian.
std::string EntryKey(uint64_t seq);
// The seq of an entry key, or 0 if `key` is not one.
uint64_t SeqFromEntryKey(std::string_view key);

// 'T' tile_level:u8 tile_index:u64 big-endian (ledger/merkle.h).
std::string TileKey(int tile_level, uint64_t tile_index);
// 'C' tree_size:u64 big-endian.
std::string CheckpointKey(uint64_t tree_size);
// The tree size of a checkpoint key, or 0 if `key` is not one.
uint64_t SizeFromCheckpointKey(std::string_view key);

// The entry bytes of a stored value (without its 32-byte entry_hash
// trailer): the bytes a Merkle leaf hashes. Requires value.size() >= 32.
std::string_view EntryBytesOf(std::string_view stored_value);

// The balance snapshot encoding (docs/format.md); decoding errors are
// kDataLoss naming the field.
std::string EncodeSnapshot(const BalanceSnapshot& snapshot);
absl::StatusOr<BalanceSnapshot> DecodeSnapshot(std::string_view bytes);

// Appends the entry bytes of `entry` to `out`. Requires every string to fit
// its u16 length prefix (the engine validates lengths before encoding).
void EncodeEntry(const Entry& entry, std::string* out);
std::string EncodeEntry(const Entry& entry);

// Decodes entry bytes. Malformed bytes are kDataLoss naming what was wrong.
absl::StatusOr<Entry> DecodeEntry(std::string_view bytes);
// Like DecodeEntry, into `*entry`, whose strings and vectors are reused:
// decoding many entries into one allocates little once it is warm. On
// failure `*entry` holds a partial decode.
absl::Status DecodeEntryInto(std::string_view bytes, Entry* entry);

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

// The ledger's idempotency index: client id → seq of the entry that used it.
//
// Every entry has a client id, so the index holds as many ids as the ledger
// has entries, and every applied operation looks one up and adds one. A
// hash map keyed by std::string kept each id in its own heap allocation
// behind a 40-byte slot, and its probes missed the cache twice (the slot,
// then the key's bytes). Here:
//
//   arena     the ids' bytes back to back in seq order, [len][bytes] each, in
//             1 MiB blocks; offsets_[seq - 1] is where id `seq` starts
//   slots_    an open-addressing table (linear probing, at most half full)
//             of 8-byte slots: the seq (low 40 bits) and the top 24 bits of
//             the id's hash as a tag; 0 is empty
//
// about 25 bytes per id in the arena and 16 to 32 in the table. A lookup
// reads one slot line (a probe run rarely leaves it; Prefetch fetches it
// ahead) and, only when a tag matches, the id's bytes to confirm: equal
// hashes never make two ids one. Growing rebuilds the table from the arena.
//
// The hash is Abseil's, seeded per process: which ids collide cannot be
// chosen from outside, and nothing that depends on it is stored.
//
// Ids are added in seq order (seq = size() + 1) and removed newest first,
// as a linked chain is undone.

#ifndef WARMLEDGER_LEDGER_CLIENT_ID_INDEX_H_
#define WARMLEDGER_LEDGER_CLIENT_ID_INDEX_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "absl/strings/string_view.h"
#include "ledger/segmented_vector.h"

namespace warmledger {

class ClientIdIndex {
 public:
  using HashFn = uint64_t (*)(absl::string_view);
  static uint64_t DefaultHash(absl::string_view id);

  // `hash` is for tests that force collisions.
  explicit ClientIdIndex(HashFn hash = &DefaultHash) : hash_(hash) {}
  ClientIdIndex(ClientIdIndex&&) = default;
  ClientIdIndex& operator=(ClientIdIndex&&) = default;

  // The seq of the entry whose client id is `id`, if there is one.
  std::optional<uint64_t> Find(absl::string_view id) const;
  // Starts fetching the slots that Find(id) or Insert(id, ...) will read.
  void Prefetch(absl::string_view id) const {
    if (mask_ != 0) __builtin_prefetch(&slots_[hash_(id) & mask_]);
  }
  // Records that entry `seq` has client id `id`. Requires seq == size() + 1,
  // seq <= kSeqMax, Find(id) empty and id.size() <= kIdBytesMax.
  void Insert(absl::string_view id, uint64_t seq);
  // Removes the id of the newest entry; requires seq == size().
  void PopBack(uint64_t seq);
  // The client id of entry `seq`, 1 <= seq <= size().
  absl::string_view IdOf(uint64_t seq) const;
  // The number of ids held, which is also the newest seq.
  uint64_t size() const { return offsets_.size(); }
  // Sizes the table for `ids` ids, so that it does not grow before.
  void Reserve(uint64_t ids);

  static constexpr size_t kIdBytesMax = 255;
  static constexpr int kSeqBits = 40;
  static constexpr uint64_t kSeqMax = (uint64_t{1} << kSeqBits) - 1;

 private:
  static constexpr int kBlockShift = 20;  // 1 MiB blocks
  static constexpr uint64_t kBlockBytes = uint64_t{1} << kBlockShift;

  static uint64_t Tag(uint64_t hash) { return hash >> kSeqBits; }
  // Puts `seq` in the first empty slot of its probe run.
  void Place(uint64_t hash, uint64_t seq);
  // Makes the table `capacity` slots (a power of two) and re-adds every id.
  void Rebuild(uint64_t capacity);

  HashFn hash_;
  std::unique_ptr<uint64_t[]> slots_;
  uint64_t mask_ = 0;  // capacity - 1, or 0 while there is no table
  std::vector<std::unique_ptr<char[]>> blocks_;
  internal::SegmentedVector<uint64_t, 12> offsets_;  // where id seq starts, by seq - 1
  uint64_t end_ = 0;                                 // where the next id goes
};

}  // namespace warmledger

#endif  // WARMLEDGER_LEDGER_CLIENT_ID_INDEX_H_

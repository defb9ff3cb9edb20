// The ledger's idempotency index: client id → seq of the entry that used it.
//
// Every entry has a client id, so the index holds as many ids as the ledger
// has entries. A hash map keyed by std::string kept each id in its own heap
// allocation behind a 32-byte slot: about 90 bytes per entry, and a cache
// miss on the key's bytes for every probe that compared it. Here:
//
//   by_hash_   hash(id) → seq                       16-byte slots, no strings
//   overflow_  id → seq, only for an id whose hash   (empty in practice)
//              another id already holds
//   arena_     the ids' bytes back to back in seq order, [len][bytes] each,
//              in fixed blocks; offsets_[seq - 1] is where id `seq` starts
//
// about 50 bytes per entry. Exact: a hash hit counts only if the id stored
// for that seq is the same string; a different id with the same hash goes to
// overflow_, so equal hashes never make two ids one.
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
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
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
  // Starts fetching the slot that Find(id) or Insert(id, ...) will read.
  void Prefetch(absl::string_view id) const { by_hash_.prefetch(hash_(id)); }
  // Records that entry `seq` has client id `id`. Requires seq == size() + 1,
  // Find(id) empty and id.size() <= kIdBytesMax.
  void Insert(absl::string_view id, uint64_t seq);
  // Removes the id of the newest entry; requires seq == size().
  void PopBack(uint64_t seq);
  // The client id of entry `seq`, 1 <= seq <= size().
  absl::string_view IdOf(uint64_t seq) const;
  // The number of ids held, which is also the newest seq.
  uint64_t size() const { return offsets_.size(); }
  // Sizes the hash table for about `ids` ids.
  void Reserve(uint64_t ids);

  static constexpr size_t kIdBytesMax = 255;

 private:
  static constexpr int kBlockShift = 20;  // 1 MiB blocks
  static constexpr uint64_t kBlockBytes = uint64_t{1} << kBlockShift;

  HashFn hash_;
  absl::flat_hash_map<uint64_t, uint64_t> by_hash_;
  absl::flat_hash_map<std::string, uint64_t> overflow_;
  std::vector<std::unique_ptr<char[]>> blocks_;
  internal::SegmentedVector<uint64_t, 12> offsets_;  // where id seq starts, by seq - 1
  uint64_t end_ = 0;               // where the next id goes
};

}  // namespace warmledger

#endif  // WARMLEDGER_LEDGER_CLIENT_ID_INDEX_H_

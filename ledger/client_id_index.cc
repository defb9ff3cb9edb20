#include "ledger/client_id_index.h"

#include <algorithm>
#include <bit>
#include <cstring>

#include "absl/hash/hash.h"
#include "ledger/status_macros.h"

namespace warmledger {
namespace {

constexpr uint64_t kCapacityMin = 1024;

}  // namespace

uint64_t ClientIdIndex::DefaultHash(absl::string_view id) { return absl::HashOf(id); }

absl::string_view ClientIdIndex::IdOf(uint64_t seq) const {
  WL_DCHECK(seq >= 1 && seq <= size());
  const uint64_t at = offsets_[seq - 1];
  const char* p = blocks_[at >> kBlockShift].get() + (at & (kBlockBytes - 1));
  return absl::string_view(p + 1, static_cast<unsigned char>(p[0]));
}

std::optional<uint64_t> ClientIdIndex::Find(absl::string_view id) const {
  if (mask_ == 0) return std::nullopt;
  const uint64_t hash = hash_(id);
  const uint64_t tag = Tag(hash);
  for (uint64_t i = hash & mask_;; i = (i + 1) & mask_) {
    const uint64_t slot = slots_[i];
    if (slot == 0) return std::nullopt;
    const uint64_t seq = slot & kSeqMax;
    if (Tag(slot) == tag && IdOf(seq) == id) return seq;
  }
}

void ClientIdIndex::Place(uint64_t hash, uint64_t seq) {
  uint64_t i = hash & mask_;
  while (slots_[i] != 0) i = (i + 1) & mask_;
  slots_[i] = (Tag(hash) << kSeqBits) | seq;
}

void ClientIdIndex::Rebuild(uint64_t capacity) {
  slots_ = std::make_unique<uint64_t[]>(capacity);  // zeroed: all empty
  mask_ = capacity - 1;
  for (uint64_t seq = 1; seq <= size(); ++seq) Place(hash_(IdOf(seq)), seq);
}

void ClientIdIndex::Reserve(uint64_t ids) {
  const uint64_t capacity = std::bit_ceil(std::max(kCapacityMin, 2 * ids));
  if (capacity > mask_ + 1) Rebuild(capacity);
}

void ClientIdIndex::Insert(absl::string_view id, uint64_t seq) {
  WL_CHECK(seq == size() + 1);
  WL_CHECK(seq <= kSeqMax);
  WL_CHECK(id.size() <= kIdBytesMax);
  // The bytes first: [len][id], never across a block boundary.
  uint64_t at = end_;
  if ((at & (kBlockBytes - 1)) + 1 + id.size() > kBlockBytes) {
    at = ((at >> kBlockShift) + 1) << kBlockShift;
  }
  const uint64_t block = at >> kBlockShift;
  while (blocks_.size() <= block) blocks_.push_back(std::make_unique<char[]>(kBlockBytes));
  char* p = blocks_[block].get() + (at & (kBlockBytes - 1));
  p[0] = static_cast<char>(id.size());
  std::memcpy(p + 1, id.data(), id.size());
  end_ = at + 1 + id.size();
  offsets_.push_back(at);

  // At most half full: probe runs stay short.
  if (2 * seq > mask_ + 1) {
    Rebuild(std::max(kCapacityMin, 2 * (mask_ + 1)));  // re-adds `seq` too
  } else {
    Place(hash_(id), seq);
  }
}

void ClientIdIndex::PopBack(uint64_t seq) {
  WL_CHECK(seq >= 1 && seq == size());
  // Removing the newest id needs no shifting of the others: the table is
  // always what adding its ids in seq order gives (a rebuild adds them in
  // that order), so emptying the newest one's slot gives the table as it
  // was before it was added.
  uint64_t i = hash_(IdOf(seq)) & mask_;
  while ((slots_[i] & kSeqMax) != seq) {
    WL_CHECK(slots_[i] != 0);
    i = (i + 1) & mask_;
  }
  slots_[i] = 0;
  end_ = offsets_[seq - 1];
  offsets_.pop_back();
}

}  // namespace warmledger

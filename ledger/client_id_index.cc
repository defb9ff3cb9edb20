#include "ledger/client_id_index.h"

#include <cstring>

#include "absl/hash/hash.h"
#include "ledger/status_macros.h"

namespace warmledger {

uint64_t ClientIdIndex::DefaultHash(absl::string_view id) { return absl::HashOf(id); }

absl::string_view ClientIdIndex::IdOf(uint64_t seq) const {
  WL_DCHECK(seq >= 1 && seq <= size());
  const uint64_t at = offsets_[seq - 1];
  const char* p = blocks_[at >> kBlockShift].get() + (at & (kBlockBytes - 1));
  return absl::string_view(p + 1, static_cast<unsigned char>(p[0]));
}

std::optional<uint64_t> ClientIdIndex::Find(absl::string_view id) const {
  if (auto it = by_hash_.find(hash_(id)); it != by_hash_.end() && IdOf(it->second) == id) {
    return it->second;
  }
  if (!overflow_.empty()) {
    if (auto it = overflow_.find(id); it != overflow_.end()) return it->second;
  }
  return std::nullopt;
}

void ClientIdIndex::Insert(absl::string_view id, uint64_t seq) {
  WL_CHECK(seq == size() + 1);
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

  const auto [it, inserted] = by_hash_.try_emplace(hash_(id), seq);
  if (!inserted) {
    // Another id holds this hash (Find(id) was empty, so it is not `id`).
    WL_DCHECK(IdOf(it->second) != id);
    overflow_.emplace(std::string(id), seq);
  }
}

void ClientIdIndex::PopBack(uint64_t seq) {
  WL_CHECK(seq >= 1 && seq == size());
  const absl::string_view id = IdOf(seq);
  const uint64_t h = hash_(id);
  auto it = by_hash_.find(h);
  if (it != by_hash_.end() && it->second == seq) {
    by_hash_.erase(it);
  } else {
    // Its hash was taken when it was added: it is in overflow_.
    const size_t erased = overflow_.erase(std::string(id));
    WL_CHECK(erased == 1);
  }
  end_ = offsets_[seq - 1];
  offsets_.pop_back();
}

void ClientIdIndex::Reserve(uint64_t ids) { by_hash_.reserve(ids); }

}  // namespace warmledger

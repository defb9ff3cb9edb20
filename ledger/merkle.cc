#include "ledger/merkle.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "ledger/sha256.h"
#include "ledger/status_macros.h"

namespace warmledger::merkle {
namespace {

constexpr size_t kHashBytes = sizeof(Hash);
// Tile heights TileBuilder and NodesFromTiles accept: a full tile of height
// 20 is already 32 MiB.
constexpr int kMaxTileHeight = 20;

// One hasher per thread: leaf and node hashing run on every append.
Sha256Hasher& ThreadHasher() {
  thread_local Sha256Hasher hasher;
  return hasher;
}

std::string_view Bytes(const Hash& hash) {
  return {reinterpret_cast<const char*>(hash.data()), hash.size()};
}

Hash HashAt(const char* data) {
  Hash hash;
  std::memcpy(hash.data(), data, kHashBytes);
  return hash;
}

// x >> shift, where shifting by 64 or more leaves nothing.
uint64_t ShiftRight(uint64_t x, int shift) { return shift >= 64 ? 0 : x >> shift; }

// The root of the perfect subtree over `count` (a power of two) consecutive
// hashes at `data`: merged left to right like a binary counter, so at most
// log2(count) + 1 hashes are pending at any time.
Hash PerfectRoot(const char* data, uint64_t count) {
  WL_DCHECK(std::has_single_bit(count));
  std::array<Hash, 64> pending;
  int depth = 0;
  for (uint64_t i = 0; i < count; ++i) {
    pending[depth++] = HashAt(data + i * kHashBytes);
    for (uint64_t done = i + 1; (done & 1) == 0; done >>= 1) {
      pending[depth - 2] = NodeHash(pending[depth - 2], pending[depth - 1]);
      --depth;
    }
  }
  WL_DCHECK(depth == 1);
  return pending[0];
}

// The leaf range [begin, end) of one node of the RFC 9162 tree.
struct Range {
  uint64_t begin;
  uint64_t end;
};

// MTH(D[begin:end]) (RFC 9162 2.1.1) from complete nodes. A perfect aligned
// range is one NodeSource call; any other is split at the largest power of
// two below its length. For the ranges RFC 9162 proofs use (nodes of the
// tree of some size), every left part is perfect and aligned, so this makes
// at most one call per set bit of the length.
absl::StatusOr<Hash> RangeRoot(Range range, const NodeSource& nodes) {
  const uint64_t length = range.end - range.begin;
  WL_DCHECK(length > 0);
  if (std::has_single_bit(length) && range.begin % length == 0) {
    const int level = std::countr_zero(length);
    return nodes(level, range.begin >> level);
  }
  const uint64_t split = range.begin + std::bit_floor(length - 1);
  WL_ASSIGN_OR_RETURN(Hash left, RangeRoot({range.begin, split}, nodes));
  WL_ASSIGN_OR_RETURN(Hash right, RangeRoot({split, range.end}, nodes));
  return NodeHash(left, right);
}

// The nodes whose roots make up PATH(index, D[size]) (RFC 9162 2.1.3.1), in
// proof order (deepest first). Needs index < size.
std::vector<Range> InclusionRanges(uint64_t index, uint64_t size) {
  std::vector<Range> ranges;
  uint64_t begin = 0;
  uint64_t end = size;
  // Walks down from the root towards the leaf; each step's sibling is one
  // proof node, the topmost last.
  while (end - begin > 1) {
    const uint64_t split = begin + std::bit_floor(end - begin - 1);
    if (index < split) {
      ranges.push_back({split, end});
      end = split;
    } else {
      ranges.push_back({begin, split});
      begin = split;
    }
  }
  std::reverse(ranges.begin(), ranges.end());
  return ranges;
}

// The nodes whose roots make up PROOF(old_size, D[new_size]) (RFC 9162
// 2.1.4.1), in proof order. Needs 0 < old_size <= new_size.
std::vector<Range> ConsistencyRanges(uint64_t old_size, uint64_t new_size) {
  std::vector<Range> siblings;  // top down
  uint64_t begin = 0;
  uint64_t end = new_size;
  // SUBPROOF's flag b: whether D[begin:old_size] is still the whole old tree.
  bool whole_old_tree = true;
  while (old_size != end) {
    const uint64_t split = begin + std::bit_floor(end - begin - 1);
    if (old_size <= split) {
      siblings.push_back({split, end});
      end = split;
    } else {
      siblings.push_back({begin, split});
      begin = split;
      whole_old_tree = false;
    }
  }
  // SUBPROOF(m, D[m], b): nothing if b, else MTH(D[m]).
  std::vector<Range> ranges;
  ranges.reserve(siblings.size() + 1);
  if (!whole_old_tree) ranges.push_back({begin, end});
  ranges.insert(ranges.end(), siblings.rbegin(), siblings.rend());
  return ranges;
}

absl::StatusOr<std::vector<Hash>> RangeRoots(const std::vector<Range>& ranges,
                                             const NodeSource& nodes) {
  std::vector<Hash> roots;
  roots.reserve(ranges.size());
  for (const Range& range : ranges) {
    WL_ASSIGN_OR_RETURN(Hash root, RangeRoot(range, nodes));
    roots.push_back(root);
  }
  return roots;
}

// MTH over leaves[0, count).
Hash ReferenceRange(const Hash* leaves, uint64_t count) {
  if (count == 0) return EmptyRoot();
  if (count == 1) return leaves[0];
  const uint64_t split = std::bit_floor(count - 1);
  return NodeHash(ReferenceRange(leaves, split),
                  ReferenceRange(leaves + split, count - split));
}

// Right-shifts fn and sn together until fn is odd or zero (RFC 9162
// 2.1.3.2 step 4.b.ii and 2.1.4.2 step 6.b.iii).
void ShiftUntilOddOrZero(uint64_t& fn, uint64_t& sn) {
  while (fn != 0 && (fn & 1) == 0) {
    fn >>= 1;
    sn >>= 1;
  }
}

}  // namespace

std::string TileName(const TileId& id) {
  return absl::StrCat("tile ", id.level, "/", id.index);
}

uint64_t TileCount(uint64_t tree_size, int tile_height) {
  const uint64_t width = uint64_t{1} << tile_height;
  uint64_t count = 0;
  for (uint64_t hashes = tree_size; hashes > 0; hashes >>= tile_height) {
    count += (hashes + width - 1) / width;
    if (hashes < width) break;
  }
  return count;
}

Hash LeafHash(std::string_view leaf_bytes) {
  static constexpr char kLeafPrefix = 0x00;
  Sha256Hasher& hasher = ThreadHasher();
  hasher.Update(std::string_view(&kLeafPrefix, 1));
  hasher.Update(leaf_bytes);
  return hasher.Finish();
}

Hash NodeHash(const Hash& left, const Hash& right) {
  static constexpr char kNodePrefix = 0x01;
  Sha256Hasher& hasher = ThreadHasher();
  hasher.Update(std::string_view(&kNodePrefix, 1));
  hasher.Update(Bytes(left));
  hasher.Update(Bytes(right));
  return hasher.Finish();
}

Hash EmptyRoot() {
  static const Hash kEmptyRoot = Sha256(std::string_view());
  return kEmptyRoot;
}

absl::StatusOr<Hash> RootAt(uint64_t size, const NodeSource& nodes) {
  if (size == 0) return EmptyRoot();
  return RangeRoot({0, size}, nodes);
}

absl::StatusOr<std::vector<Hash>> InclusionProof(uint64_t index, uint64_t size,
                                                 const NodeSource& nodes) {
  if (index >= size) {
    return absl::InvalidArgumentError(absl::StrCat(
        "inclusion proof: index ", index, " is not below the tree size ", size));
  }
  return RangeRoots(InclusionRanges(index, size), nodes);
}

absl::StatusOr<std::vector<Hash>> ConsistencyProof(uint64_t old_size, uint64_t new_size,
                                                   const NodeSource& nodes) {
  if (old_size == 0) {
    return absl::InvalidArgumentError(
        "consistency proof: old_size must be at least 1 (the empty tree needs no proof)");
  }
  if (old_size > new_size) {
    return absl::InvalidArgumentError(absl::StrCat(
        "consistency proof: old_size ", old_size, " exceeds new_size ", new_size));
  }
  return RangeRoots(ConsistencyRanges(old_size, new_size), nodes);
}

absl::Status VerifyInclusion(uint64_t index, uint64_t size, const Hash& leaf_hash,
                             const std::vector<Hash>& proof, const Hash& root) {
  if (index >= size) {
    return absl::InvalidArgumentError(absl::StrCat(
        "inclusion proof: index ", index, " is not below the tree size ", size));
  }
  const size_t expected = InclusionRanges(index, size).size();
  if (proof.size() != expected) {
    return absl::FailedPreconditionError(
        absl::StrCat("inclusion proof has ", proof.size(), " hashes, expected ", expected,
                     " for index ", index, " in a tree of size ", size));
  }
  // RFC 9162 2.1.3.2.
  uint64_t fn = index;
  uint64_t sn = size - 1;
  Hash r = leaf_hash;
  for (const Hash& p : proof) {
    if (sn == 0) {
      return absl::FailedPreconditionError("inclusion proof: more hashes than the path has");
    }
    if ((fn & 1) != 0 || fn == sn) {
      r = NodeHash(p, r);
      ShiftUntilOddOrZero(fn, sn);
    } else {
      r = NodeHash(r, p);
    }
    fn >>= 1;
    sn >>= 1;
  }
  if (sn != 0) {
    return absl::FailedPreconditionError("inclusion proof: fewer hashes than the path has");
  }
  if (r != root) {
    return absl::FailedPreconditionError(
        "inclusion proof: computed root differs from the expected root");
  }
  return absl::OkStatus();
}

absl::Status VerifyConsistency(uint64_t old_size, uint64_t new_size, const Hash& old_root,
                               const Hash& new_root, const std::vector<Hash>& proof) {
  if (old_size > new_size) {
    return absl::InvalidArgumentError(absl::StrCat(
        "consistency proof: old_size ", old_size, " exceeds new_size ", new_size));
  }
  if (old_size == 0 || old_size == new_size) {
    if (!proof.empty()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "consistency proof has ", proof.size(), " hashes, expected 0 from size ", old_size,
          " to size ", new_size));
    }
    if (old_size != 0 && old_root != new_root) {
      return absl::FailedPreconditionError(absl::StrCat(
          "consistency proof: the old and new roots of the same size ", old_size, " differ"));
    }
    return absl::OkStatus();
  }
  const size_t expected = ConsistencyRanges(old_size, new_size).size();
  if (proof.size() != expected) {
    return absl::FailedPreconditionError(
        absl::StrCat("consistency proof has ", proof.size(), " hashes, expected ", expected,
                     " from size ", old_size, " to size ", new_size));
  }
  // RFC 9162 2.1.4.2. When old_size is a power of two, the old root is the
  // proof's implicit first hash.
  size_t next = 0;
  const Hash seed = std::has_single_bit(old_size) ? old_root : proof[next++];
  uint64_t fn = old_size - 1;
  uint64_t sn = new_size - 1;
  while ((fn & 1) != 0) {
    fn >>= 1;
    sn >>= 1;
  }
  Hash fr = seed;
  Hash sr = seed;
  for (; next < proof.size(); ++next) {
    const Hash& c = proof[next];
    if (sn == 0) {
      return absl::FailedPreconditionError(
          "consistency proof: more hashes than the trees need");
    }
    if ((fn & 1) != 0 || fn == sn) {
      fr = NodeHash(c, fr);
      sr = NodeHash(c, sr);
      ShiftUntilOddOrZero(fn, sn);
    } else {
      sr = NodeHash(sr, c);
    }
    fn >>= 1;
    sn >>= 1;
  }
  if (sn != 0) {
    return absl::FailedPreconditionError("consistency proof: fewer hashes than the trees need");
  }
  if (fr != old_root) {
    return absl::FailedPreconditionError(
        "consistency proof: computed old root differs from the expected old root");
  }
  if (sr != new_root) {
    return absl::FailedPreconditionError(
        "consistency proof: computed new root differs from the expected new root");
  }
  return absl::OkStatus();
}

NodeSource NodesFromTiles(TileSource tiles, int tile_height) {
  WL_CHECK(tile_height >= 1 && tile_height <= kMaxTileHeight);
  return [tiles = std::move(tiles), tile_height](int level,
                                                 uint64_t index) -> absl::StatusOr<Hash> {
    if (level < 0 || level > 63) {
      return absl::InvalidArgumentError(absl::StrCat("node level ", level, " is out of range"));
    }
    if (ShiftRight(index, 64 - level) != 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("node (", level, ", ", index, ") lies beyond 2^64 leaves"));
    }
    // Node (level, index) is the root over 2^rise hashes of tile level
    // `id.level`, starting at `first`, all in one tile.
    const int rise = level % tile_height;
    const uint64_t count = uint64_t{1} << rise;
    const uint64_t first = index << rise;
    const uint64_t offset = first & ((uint64_t{1} << tile_height) - 1);
    const uint64_t min_width = offset + count;
    const TileId id{level / tile_height, first >> tile_height};
    WL_ASSIGN_OR_RETURN(TileData tile, tiles(id, min_width));
    const uint64_t width = tile.size() / kHashBytes;
    if (tile.size() % kHashBytes != 0) {
      return absl::DataLossError(absl::StrCat("tile ", id.level, "/", id.index, ": ",
                                              tile.size(),
                                              " bytes is not a whole number of hashes"));
    }
    if (width < min_width) {
      return absl::DataLossError(absl::StrCat("tile ", id.level, "/", id.index, ": has ",
                                              width, " hashes, need at least ", min_width));
    }
    if (width > (uint64_t{1} << tile_height)) {
      return absl::DataLossError(absl::StrCat("tile ", id.level, "/", id.index, ": has ",
                                              width, " hashes, more than a tile of height ",
                                              tile_height, " holds"));
    }
    return PerfectRoot(tile.data() + offset * kHashBytes, count);
  };
}

TileBuilder::TileBuilder(int tile_height) : height_(tile_height) {
  WL_CHECK(tile_height >= 1 && tile_height <= kMaxTileHeight);
}

void TileBuilder::Append(const Hash& leaf_hash) {
  WL_CHECK(size_ != UINT64_MAX);
  const uint64_t old_size = size_;
  ++size_;  // AddToTile numbers tiles from the new size
  AddToTile(0, leaf_hash);
  int depth = std::popcount(old_size);
  stack_[depth++] = leaf_hash;
  // Each set low bit of old_size is a perfect subtree the new one completes.
  for (int level = 0; ((old_size >> level) & 1) != 0; ++level) {
    stack_[depth - 2] = NodeHash(stack_[depth - 2], stack_[depth - 1]);
    --depth;
    if ((level + 1) % height_ == 0) AddToTile((level + 1) / height_, stack_[depth - 1]);
  }
}

void TileBuilder::AddToTile(int level, const Hash& hash) {
  const size_t tile_bytes = kHashBytes << height_;
  if (static_cast<size_t>(level) == edge_.size()) {
    edge_.emplace_back().reserve(tile_bytes);
    edge_changed_.push_back(false);
  }
  TileData& tile = edge_[level];
  tile.append(Bytes(hash));
  if (tile.size() < tile_bytes) {
    edge_changed_[level] = true;
    return;
  }
  // Full: this tile is final; the level's next tile starts empty.
  const uint64_t index = ShiftRight(size_, (level + 1) * height_) - 1;
  completed_.emplace_back(TileId{level, index}, std::move(tile));
  tile = TileData();
  tile.reserve(tile_bytes);
  edge_changed_[level] = false;
}

Hash TileBuilder::Root() const {
  if (size_ == 0) return EmptyRoot();
  // MTH folds the perfect subtrees from the right.
  int depth = std::popcount(size_);
  Hash root = stack_[depth - 1];
  for (int i = depth - 2; i >= 0; --i) root = NodeHash(stack_[i], root);
  return root;
}

std::vector<std::pair<TileId, TileData>> TileBuilder::TakeChanged() {
  // Within a level, tiles complete in index order and the partial tile comes
  // after all of them; only the levels need ordering.
  std::stable_sort(completed_.begin(), completed_.end(),
                   [](const auto& a, const auto& b) { return a.first.level < b.first.level; });
  std::vector<std::pair<TileId, TileData>> changed;
  changed.reserve(completed_.size() + edge_.size());
  auto next_completed = completed_.begin();
  for (size_t level = 0; level < edge_.size(); ++level) {
    for (; next_completed != completed_.end() &&
           static_cast<size_t>(next_completed->first.level) == level;
         ++next_completed) {
      changed.push_back(std::move(*next_completed));
    }
    if (edge_changed_[level] && !edge_[level].empty()) {
      const int tile_level = static_cast<int>(level);
      changed.emplace_back(
          TileId{tile_level, ShiftRight(size_, (tile_level + 1) * height_)}, edge_[level]);
    }
    edge_changed_[level] = false;
  }
  WL_DCHECK(next_completed == completed_.end());
  completed_.clear();
  return changed;
}

const TileData* TileBuilder::RightEdge(const TileId& id) const {
  if (id.level < 0 || static_cast<size_t>(id.level) >= edge_.size()) return nullptr;
  const TileData& tile = edge_[id.level];
  if (tile.empty() || id.index != ShiftRight(size_, (id.level + 1) * height_)) return nullptr;
  return &tile;
}

Hash ReferenceRoot(const std::vector<Hash>& leaves) {
  return ReferenceRange(leaves.data(), leaves.size());
}

}  // namespace warmledger::merkle

// The Merkle tree over all entries, exactly as RFC 9162 (Certificate
// Transparency v2) section 2.1 defines it, and its storage in tiles.
//
//   leaf hash   = SHA-256(0x00 || leaf bytes)       (leaf bytes: entry_bytes as stored)
//   node hash   = SHA-256(0x01 || left || right)
//   empty tree  = SHA-256("")
//   MTH(D[n])   splits at k, the largest power of two smaller than n.
//
// Tree positions: a "node (level, index)" is the root of the perfect subtree
// of 2^level leaves covering leaves [index << level, (index + 1) << level).
// Level 0 nodes are leaf hashes. Only complete nodes ((index + 1) << level
// <= size) are ever stored; every root and proof of any tree size is computed
// from complete nodes alone.
#ifndef WARMLEDGER_LEDGER_MERKLE_H_
#define WARMLEDGER_LEDGER_MERKLE_H_

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "ledger/types.h"

namespace warmledger::merkle {

Hash LeafHash(std::string_view leaf_bytes);
Hash NodeHash(const Hash& left, const Hash& right);
Hash EmptyRoot();

// Supplies the hash of complete node (level, index). Errors pass through.
using NodeSource = std::function<absl::StatusOr<Hash>(int level, uint64_t index)>;

// MTH of the first `size` leaves (RFC 9162 2.1.1).
absl::StatusOr<Hash> RootAt(uint64_t size, const NodeSource& nodes);
// PATH(index, D[size]) (RFC 9162 2.1.3.1). kInvalidArgument unless index < size.
absl::StatusOr<std::vector<Hash>> InclusionProof(uint64_t index, uint64_t size,
                                                 const NodeSource& nodes);
// PROOF(old_size, D[new_size]) (RFC 9162 2.1.4.1). kInvalidArgument unless
// 0 < old_size <= new_size; empty when old_size == new_size.
absl::StatusOr<std::vector<Hash>> ConsistencyProof(uint64_t old_size, uint64_t new_size,
                                                   const NodeSource& nodes);

// RFC 9162 2.1.3.2. OK or kFailedPrecondition saying what did not hold;
// kInvalidArgument unless index < size.
absl::Status VerifyInclusion(uint64_t index, uint64_t size, const Hash& leaf_hash,
                             const std::vector<Hash>& proof, const Hash& root);
// RFC 9162 2.1.4.2. OK or kFailedPrecondition saying what did not hold;
// kInvalidArgument if old_size > new_size. old_size == new_size needs an
// empty proof and equal roots; old_size == 0 is consistent with anything
// (empty proof).
absl::Status VerifyConsistency(uint64_t old_size, uint64_t new_size, const Hash& old_root,
                               const Hash& new_root, const std::vector<Hash>& proof);

// ---- Tiles: how complete nodes are stored. ----
//
// A tile of height h at tile level L, index N holds the hashes of nodes
// (L * h, N * 2^h + i) for i in [0, width), width <= 2^h, in order; a tile
// whose width is below 2^h is partial and is rewritten, wider, as the tree
// grows (its stored hashes never change). Node (level, index) with
// level = L * h + r is computed from the 2^r hashes of tile level L starting
// at index << r, which all lie in one tile. Production uses h = 8 (256
// hashes, 8 KiB per full tile); tests use smaller heights.
inline constexpr int kTileHeight = 8;

struct TileId {
  int level = 0;       // tile level L
  uint64_t index = 0;  // tile index N
  bool operator==(const TileId&) const = default;
};

// "tile L/N", for messages.
std::string TileName(const TileId& id);
// How many tiles a tree of `tree_size` leaves has: every non-empty level of
// hashes at tile levels 0, 1, ..., each in ceil(count / 2^h) tiles.
uint64_t TileCount(uint64_t tree_size, int tile_height = kTileHeight);

// Concatenated 32-byte hashes of one tile.
using TileData = std::string;

// Reads a stored tile; must return at least `min_width` hashes (kNotFound or
// kDataLoss otherwise; errors pass through).
using TileSource =
    std::function<absl::StatusOr<TileData>(const TileId& id, uint64_t min_width)>;

// A NodeSource over stored tiles of the given height.
NodeSource NodesFromTiles(TileSource tiles, int tile_height = kTileHeight);

// Builds tiles as leaves are appended, keeping only the right edge (one
// partial tile per tile level) in memory.
class TileBuilder {
 public:
  explicit TileBuilder(int tile_height = kTileHeight);

  // Appends the next leaf hash.
  void Append(const Hash& leaf_hash);
  uint64_t size() const { return size_; }
  // Root of all leaves appended so far.
  Hash Root() const;

  // The tiles that changed since the last call (each with its full current
  // contents, complete or partial), in tile-level then index order; clears
  // the set.
  std::vector<std::pair<TileId, TileData>> TakeChanged();

  // The current contents of a tile on the right edge (its partial tile at
  // each level), if `id` is one; used to answer reads without storage.
  const TileData* RightEdge(const TileId& id) const;

 private:
  // Appends `hash` to the partial tile of tile level `level`; a tile that
  // fills moves to completed_ and the level starts its next tile.
  void AddToTile(int level, const Hash& hash);

  int height_;
  uint64_t size_ = 0;
  // The roots of the perfect subtrees that make up the tree, one per set bit
  // of size_, largest (leftmost) first: stack_[0, popcount(size_)). Append
  // merges them like a binary counter, and every merged node whose level is a
  // multiple of height_ is the next hash of the tile level above, so each leaf
  // costs one leaf hash plus one node hash on average, and Root() needs at
  // most 63 node hashes.
  std::array<Hash, 64> stack_{};
  // Per tile level: the partial tile (never full; reserved to a full tile's
  // bytes so appending does not allocate), and whether it gained hashes
  // since TakeChanged.
  std::vector<TileData> edge_;
  std::vector<bool> edge_changed_;
  // Tiles that filled since TakeChanged, in the order they filled.
  std::vector<std::pair<TileId, TileData>> completed_;
};

// Reference implementation straight from RFC 9162's recursive definitions,
// over all leaf hashes in memory. For tests and small trees.
Hash ReferenceRoot(const std::vector<Hash>& leaves);

}  // namespace warmledger::merkle

#endif  // WARMLEDGER_LEDGER_MERKLE_H_

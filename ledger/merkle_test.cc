#include "ledger/merkle.h"

#include <openssl/sha.h>

#include <cstdint>
#include <map>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "ledger/sha256.h"

namespace warmledger::merkle {
namespace {

using ::testing::HasSubstr;

// ---- Independent references, written from RFC 9162 2.1's definitions. ----

std::string HashBytes(const Hash& hash) {
  return std::string(reinterpret_cast<const char*>(hash.data()), hash.size());
}

// One-shot OpenSSL SHA-256, independent of Sha256Hasher.
Hash OpenSslSha256(const std::string& bytes) {
  Hash out;
  SHA256(reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size(), out.data());
  return out;
}

Hash RfcLeafHash(const std::string& bytes) { return OpenSslSha256(std::string(1, '\0') + bytes); }

Hash RfcNodeHash(const Hash& left, const Hash& right) {
  return OpenSslSha256("\x01" + HashBytes(left) + HashBytes(right));
}

// The largest power of two smaller than n (n > 1).
uint64_t SplitPoint(uint64_t n) {
  uint64_t k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}

// MTH(D[begin:end]).
Hash NaiveMth(const std::vector<Hash>& d, uint64_t begin, uint64_t end) {
  const uint64_t n = end - begin;
  if (n == 0) return OpenSslSha256("");
  if (n == 1) return d[begin];
  const uint64_t k = SplitPoint(n);
  return RfcNodeHash(NaiveMth(d, begin, begin + k), NaiveMth(d, begin + k, end));
}

// PATH(m, D[begin:end]), m relative to begin.
std::vector<Hash> NaivePath(uint64_t m, const std::vector<Hash>& d, uint64_t begin,
                            uint64_t end) {
  const uint64_t n = end - begin;
  if (n == 1) return {};
  const uint64_t k = SplitPoint(n);
  std::vector<Hash> path;
  if (m < k) {
    path = NaivePath(m, d, begin, begin + k);
    path.push_back(NaiveMth(d, begin + k, end));
  } else {
    path = NaivePath(m - k, d, begin + k, end);
    path.push_back(NaiveMth(d, begin, begin + k));
  }
  return path;
}

// SUBPROOF(m, D[begin:end], b), m relative to begin.
std::vector<Hash> NaiveSubproof(uint64_t m, const std::vector<Hash>& d, uint64_t begin,
                                uint64_t end, bool b) {
  const uint64_t n = end - begin;
  if (m == n) {
    if (b) return {};
    return {NaiveMth(d, begin, end)};
  }
  const uint64_t k = SplitPoint(n);
  std::vector<Hash> proof;
  if (m <= k) {
    proof = NaiveSubproof(m, d, begin, begin + k, b);
    proof.push_back(NaiveMth(d, begin + k, end));
  } else {
    proof = NaiveSubproof(m - k, d, begin + k, end, false);
    proof.push_back(NaiveMth(d, begin, begin + k));
  }
  return proof;
}

std::vector<Hash> MakeLeaves(uint64_t count) {
  std::vector<Hash> leaves;
  leaves.reserve(count);
  for (uint64_t i = 0; i < count; ++i) leaves.push_back(LeafHash(absl::StrCat("entry ", i)));
  return leaves;
}

std::vector<Hash> Prefix(const std::vector<Hash>& leaves, uint64_t size) {
  return std::vector<Hash>(leaves.begin(), leaves.begin() + size);
}

bool IsComplete(int level, uint64_t index, uint64_t size) {
  return level >= 0 && level < 63 && index < (uint64_t{1} << (63 - level)) &&
         ((index + 1) << level) <= size;
}

// A NodeSource that computes each node from the leaves, and fails the test
// when asked for a node that is not complete in a tree of `size` leaves.
NodeSource NaiveNodes(const std::vector<Hash>& leaves, uint64_t size) {
  return [&leaves, size](int level, uint64_t index) -> absl::StatusOr<Hash> {
    if (!IsComplete(level, index, size)) {
      ADD_FAILURE() << "asked for node (" << level << ", " << index << ") of a tree of size "
                    << size;
      return absl::InternalError("incomplete node");
    }
    return NaiveMth(leaves, index << level, (index + 1) << level);
  };
}

// Every complete node over a fixed set of leaves, precomputed level by level
// (for the larger tile tests, where NaiveNodes would be slow).
class NodeTable {
 public:
  explicit NodeTable(const std::vector<Hash>& leaves) {
    levels_.push_back(leaves);
    while (levels_.back().size() > 1) {
      const std::vector<Hash>& below = levels_.back();
      std::vector<Hash> above;
      for (size_t i = 0; i + 1 < below.size(); i += 2) {
        above.push_back(RfcNodeHash(below[i], below[i + 1]));
      }
      levels_.push_back(std::move(above));
    }
  }

  // Nodes of the tree of the first `size` leaves only.
  NodeSource Source(uint64_t size) const {
    return [this, size](int level, uint64_t index) -> absl::StatusOr<Hash> {
      if (!IsComplete(level, index, size)) {
        ADD_FAILURE() << "asked for node (" << level << ", " << index
                      << ") of a tree of size " << size;
        return absl::InternalError("incomplete node");
      }
      return levels_[level][index];
    };
  }

 private:
  std::vector<std::vector<Hash>> levels_;
};

// A NodeSource that must not be used.
NodeSource NoNodes() {
  return [](int level, uint64_t index) -> absl::StatusOr<Hash> {
    ADD_FAILURE() << "unexpected read of node (" << level << ", " << index << ")";
    return absl::InternalError("unexpected read");
  };
}

Hash Flipped(Hash hash, size_t byte) {
  hash[byte] ^= 0x01;
  return hash;
}

struct TileIdLess {
  bool operator()(const TileId& a, const TileId& b) const {
    return std::tie(a.level, a.index) < std::tie(b.level, b.index);
  }
};
using TileMap = std::map<TileId, TileData, TileIdLess>;

void Store(TileMap& stored, std::vector<std::pair<TileId, TileData>> changed) {
  for (auto& [id, data] : changed) stored[id] = std::move(data);
}

TileSource MapTiles(const TileMap& stored) {
  return [&stored](const TileId& id, uint64_t min_width) -> absl::StatusOr<TileData> {
    auto it = stored.find(id);
    if (it == stored.end()) {
      return absl::NotFoundError(absl::StrCat("tile ", id.level, "/", id.index, " not stored"));
    }
    return it->second;
  };
}

// ---- Known answers. ----

TEST(MerkleTest, EmptyRootIsTheSha256OfNothing) {
  EXPECT_EQ(HashToHex(EmptyRoot()),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  auto root = RootAt(0, NoNodes());
  ASSERT_TRUE(root.ok()) << root.status();
  EXPECT_EQ(*root, EmptyRoot());
  EXPECT_EQ(ReferenceRoot({}), EmptyRoot());
  EXPECT_EQ(TileBuilder(2).Root(), EmptyRoot());
}

TEST(MerkleTest, LeafHashIsSha256OfZeroByteThenLeaf) {
  EXPECT_EQ(LeafHash(""), OpenSslSha256(std::string(1, '\0')));
  EXPECT_EQ(HashToHex(LeafHash("")),
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d");
  EXPECT_EQ(LeafHash("abc"), OpenSslSha256(std::string("\0abc", 4)));
  EXPECT_EQ(LeafHash("abc"), RfcLeafHash("abc"));
  // Bytes after a NUL count too.
  EXPECT_EQ(LeafHash(std::string_view("a\0b", 3)), OpenSslSha256(std::string("\0a\0b", 4)));
}

TEST(MerkleTest, NodeHashIsSha256OfOneByteThenBothChildren) {
  const Hash left = LeafHash("left");
  const Hash right = LeafHash("right");
  EXPECT_EQ(NodeHash(left, right),
            OpenSslSha256("\x01" + HashBytes(left) + HashBytes(right)));
  EXPECT_NE(NodeHash(left, right), NodeHash(right, left));
}

TEST(MerkleTest, RootOfOneLeafIsItsLeafHash) {
  const std::vector<Hash> leaves = {LeafHash("a")};
  EXPECT_EQ(ReferenceRoot(leaves), LeafHash("a"));
  auto root = RootAt(1, NaiveNodes(leaves, 1));
  ASSERT_TRUE(root.ok()) << root.status();
  EXPECT_EQ(*root, LeafHash("a"));
}

TEST(MerkleTest, RootOfTwoAndThreeLeavesSplitsAfterThePowerOfTwo) {
  const std::vector<Hash> leaves = {LeafHash("a"), LeafHash("b"), LeafHash("c")};
  const Hash two = NodeHash(LeafHash("a"), LeafHash("b"));
  const Hash three = NodeHash(NodeHash(LeafHash("a"), LeafHash("b")), LeafHash("c"));
  EXPECT_EQ(ReferenceRoot(Prefix(leaves, 2)), two);
  EXPECT_EQ(ReferenceRoot(leaves), three);
  EXPECT_EQ(*RootAt(2, NaiveNodes(leaves, 2)), two);
  EXPECT_EQ(*RootAt(3, NaiveNodes(leaves, 3)), three);
  TileBuilder builder(1);
  builder.Append(leaves[0]);
  builder.Append(leaves[1]);
  EXPECT_EQ(builder.Root(), two);
  builder.Append(leaves[2]);
  EXPECT_EQ(builder.Root(), three);
}

// The seven-leaf example tree of RFC 9162 2.1.5 (and RFC 6962 2.1.3).
TEST(MerkleTest, ProofsOfTheRfcSevenLeafExampleMatchTheRfc) {
  std::vector<Hash> d;
  for (int i = 0; i < 7; ++i) d.push_back(LeafHash(absl::StrCat("d", i)));
  const Hash& a = d[0];
  const Hash& b = d[1];
  const Hash& c = d[2];
  const Hash& dd = d[3];
  const Hash& e = d[4];
  const Hash& f = d[5];
  const Hash& j = d[6];
  const Hash g = NodeHash(a, b);
  const Hash h = NodeHash(c, dd);
  const Hash i = NodeHash(e, f);
  const Hash k = NodeHash(g, h);
  const Hash l = NodeHash(i, j);
  const Hash root = NodeHash(k, l);
  const NodeSource nodes = NaiveNodes(d, 7);
  EXPECT_EQ(*RootAt(7, nodes), root);
  EXPECT_EQ(*InclusionProof(0, 7, nodes), (std::vector<Hash>{b, h, l}));
  EXPECT_EQ(*InclusionProof(3, 7, nodes), (std::vector<Hash>{c, g, l}));
  EXPECT_EQ(*InclusionProof(4, 7, nodes), (std::vector<Hash>{f, j, k}));
  EXPECT_EQ(*InclusionProof(6, 7, nodes), (std::vector<Hash>{i, k}));
  EXPECT_EQ(*ConsistencyProof(3, 7, nodes), (std::vector<Hash>{c, dd, g, l}));
  EXPECT_EQ(*ConsistencyProof(4, 7, nodes), (std::vector<Hash>{l}));
  EXPECT_EQ(*ConsistencyProof(6, 7, nodes), (std::vector<Hash>{i, j, k}));
}

// ---- Inclusion. ----

TEST(MerkleTest, InclusionProofOfEveryLeafIsTheRfcPathAndVerifies) {
  constexpr uint64_t kMaxSize = 70;
  const std::vector<Hash> leaves = MakeLeaves(kMaxSize);
  for (uint64_t size = 1; size <= kMaxSize; ++size) {
    const Hash root = ReferenceRoot(Prefix(leaves, size));
    for (uint64_t index = 0; index < size; ++index) {
      SCOPED_TRACE(absl::StrCat("index ", index, " size ", size));
      auto proof = InclusionProof(index, size, NaiveNodes(leaves, size));
      ASSERT_TRUE(proof.ok()) << proof.status();
      const std::vector<Hash> expected = NaivePath(index, leaves, 0, size);
      EXPECT_EQ(proof->size(), expected.size());
      EXPECT_EQ(*proof, expected);
      EXPECT_TRUE(VerifyInclusion(index, size, leaves[index], *proof, root).ok());
    }
  }
}

TEST(MerkleTest, InclusionProofFailsWhenAnyPartIsChanged) {
  constexpr uint64_t kMaxSize = 70;
  const std::vector<Hash> leaves = MakeLeaves(kMaxSize);
  const Hash stranger = LeafHash("not in the tree");
  const auto failed = [](const absl::Status& status) {
    return status.code() == absl::StatusCode::kFailedPrecondition;
  };
  for (uint64_t size = 1; size <= kMaxSize; ++size) {
    const Hash root = ReferenceRoot(Prefix(leaves, size));
    for (uint64_t index = 0; index < size; ++index) {
      SCOPED_TRACE(absl::StrCat("index ", index, " size ", size));
      const std::vector<Hash> proof = *InclusionProof(index, size, NaiveNodes(leaves, size));
      const Hash& leaf = leaves[index];
      // Any flipped byte of any proof hash.
      for (size_t p = 0; p < proof.size(); ++p) {
        for (size_t byte = 0; byte < sizeof(Hash); ++byte) {
          std::vector<Hash> bad = proof;
          bad[p] = Flipped(bad[p], byte);
          EXPECT_TRUE(failed(VerifyInclusion(index, size, leaf, bad, root)))
              << "hash " << p << " byte " << byte;
        }
      }
      // Another index.
      for (uint64_t other = 0; other < size; ++other) {
        if (other == index) continue;
        EXPECT_TRUE(failed(VerifyInclusion(other, size, leaf, proof, root))) << other;
      }
      // Another leaf, another root.
      EXPECT_TRUE(failed(VerifyInclusion(index, size, stranger, proof, root)));
      if (size > 1) {
        const Hash& neighbour = leaves[(index + 1) % size];
        EXPECT_TRUE(failed(VerifyInclusion(index, size, neighbour, proof, root)));
      }
      EXPECT_TRUE(failed(VerifyInclusion(index, size, leaf, proof, Flipped(root, 31))));
      // Truncated at either end, or extended at either end.
      if (!proof.empty()) {
        std::vector<Hash> bad(proof.begin(), proof.end() - 1);
        EXPECT_TRUE(failed(VerifyInclusion(index, size, leaf, bad, root)));
        bad.assign(proof.begin() + 1, proof.end());
        EXPECT_TRUE(failed(VerifyInclusion(index, size, leaf, bad, root)));
      }
      std::vector<Hash> longer = proof;
      longer.push_back(root);
      EXPECT_TRUE(failed(VerifyInclusion(index, size, leaf, longer, root)));
      longer = proof;
      longer.insert(longer.begin(), leaf);
      EXPECT_TRUE(failed(VerifyInclusion(index, size, leaf, longer, root)));
    }
  }
}

TEST(MerkleTest, InclusionProofEdgeCasesHaveTheRfcLengths) {
  struct Case {
    uint64_t index;
    uint64_t size;
    size_t length;
  };
  const Case cases[] = {
      {0, 1, 0},    // size 1: the leaf is the root
      {0, 2, 1},  {1, 2, 1},    // smallest split
      {0, 64, 6}, {63, 64, 6},  // power of two, first and last leaf
      {31, 64, 6},
      {64, 65, 1},  // last leaf alone on the right of a power of two
      {0, 65, 7},   {69, 70, 3},  // index = size - 1
      {4, 7, 3},    {6, 7, 2},
  };
  const std::vector<Hash> leaves = MakeLeaves(70);
  for (const Case& c : cases) {
    SCOPED_TRACE(absl::StrCat("index ", c.index, " size ", c.size));
    auto proof = InclusionProof(c.index, c.size, NaiveNodes(leaves, c.size));
    ASSERT_TRUE(proof.ok()) << proof.status();
    EXPECT_EQ(proof->size(), c.length);
    EXPECT_EQ(*proof, NaivePath(c.index, leaves, 0, c.size));
    EXPECT_TRUE(VerifyInclusion(c.index, c.size, leaves[c.index], *proof,
                                ReferenceRoot(Prefix(leaves, c.size)))
                    .ok());
  }
}

TEST(MerkleTest, InclusionVerificationSaysWhatMismatched) {
  const std::vector<Hash> leaves = MakeLeaves(10);
  const Hash root = ReferenceRoot(leaves);
  const std::vector<Hash> proof = *InclusionProof(3, 10, NaiveNodes(leaves, 10));
  absl::Status status = VerifyInclusion(3, 10, leaves[4], proof, root);
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(status.message()), HasSubstr("computed root differs"));
  status = VerifyInclusion(3, 10, leaves[3], Prefix(proof, 2), root);
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(status.message()),
              HasSubstr(absl::StrCat("has 2 hashes, expected ", proof.size())));
}

// ---- Consistency. ----

TEST(MerkleTest, ConsistencyProofOfEveryPairIsTheRfcSubproofAndVerifies) {
  constexpr uint64_t kMaxSize = 70;
  const std::vector<Hash> leaves = MakeLeaves(kMaxSize);
  std::vector<Hash> roots;
  for (uint64_t size = 0; size <= kMaxSize; ++size) {
    roots.push_back(ReferenceRoot(Prefix(leaves, size)));
  }
  for (uint64_t new_size = 1; new_size <= kMaxSize; ++new_size) {
    for (uint64_t old_size = 1; old_size <= new_size; ++old_size) {
      SCOPED_TRACE(absl::StrCat("old_size ", old_size, " new_size ", new_size));
      auto proof = ConsistencyProof(old_size, new_size, NaiveNodes(leaves, new_size));
      ASSERT_TRUE(proof.ok()) << proof.status();
      EXPECT_EQ(*proof, NaiveSubproof(old_size, leaves, 0, new_size, true));
      EXPECT_TRUE(
          VerifyConsistency(old_size, new_size, roots[old_size], roots[new_size], *proof)
              .ok());
    }
  }
}

TEST(MerkleTest, ConsistencyProofFailsWhenAnyPartIsChanged) {
  constexpr uint64_t kMaxSize = 70;
  const std::vector<Hash> leaves = MakeLeaves(kMaxSize);
  std::vector<Hash> roots;
  for (uint64_t size = 0; size <= kMaxSize; ++size) {
    roots.push_back(ReferenceRoot(Prefix(leaves, size)));
  }
  const auto failed = [](const absl::Status& status) {
    return status.code() == absl::StatusCode::kFailedPrecondition;
  };
  for (uint64_t n = 1; n <= kMaxSize; ++n) {
    for (uint64_t m = 1; m <= n; ++m) {
      SCOPED_TRACE(absl::StrCat("old_size ", m, " new_size ", n));
      const std::vector<Hash> proof = *ConsistencyProof(m, n, NaiveNodes(leaves, n));
      for (size_t p = 0; p < proof.size(); ++p) {
        for (size_t byte = 0; byte < sizeof(Hash); ++byte) {
          std::vector<Hash> bad = proof;
          bad[p] = Flipped(bad[p], byte);
          EXPECT_TRUE(failed(VerifyConsistency(m, n, roots[m], roots[n], bad)))
              << "hash " << p << " byte " << byte;
        }
      }
      EXPECT_TRUE(failed(VerifyConsistency(m, n, Flipped(roots[m], 0), roots[n], proof)));
      EXPECT_TRUE(failed(VerifyConsistency(m, n, roots[m], Flipped(roots[n], 0), proof)));
      EXPECT_TRUE(failed(VerifyConsistency(m, n, roots[m - 1], roots[n], proof)));
      if (m < n) {
        EXPECT_TRUE(failed(VerifyConsistency(m, n, roots[n], roots[m], proof)));
        EXPECT_EQ(VerifyConsistency(n, m, roots[n], roots[m], proof).code(),
                  absl::StatusCode::kInvalidArgument);
        // The proof for one more or one fewer old leaf.
        EXPECT_TRUE(failed(VerifyConsistency(m + 1, n, roots[m + 1], roots[n], proof)));
      }
      if (!proof.empty()) {
        std::vector<Hash> bad(proof.begin(), proof.end() - 1);
        EXPECT_TRUE(failed(VerifyConsistency(m, n, roots[m], roots[n], bad)));
        bad.assign(proof.begin() + 1, proof.end());
        EXPECT_TRUE(failed(VerifyConsistency(m, n, roots[m], roots[n], bad)));
      }
      std::vector<Hash> longer = proof;
      longer.push_back(roots[n]);
      EXPECT_TRUE(failed(VerifyConsistency(m, n, roots[m], roots[n], longer)));
      longer = proof;
      longer.insert(longer.begin(), roots[m]);
      EXPECT_TRUE(failed(VerifyConsistency(m, n, roots[m], roots[n], longer)));
    }
  }
}

TEST(MerkleTest, ConsistencyProofEdgeCasesHaveTheRfcLengths) {
  struct Case {
    uint64_t old_size;
    uint64_t new_size;
    size_t length;
  };
  const Case cases[] = {
      {1, 1, 0},   {64, 64, 0}, {70, 70, 0},  // m == n
      {1, 2, 1},   {1, 70, 7},                // size 1
      {2, 4, 1},   {4, 8, 1},   {64, 70, 1},  // m a power of two
      {32, 70, 2}, {3, 4, 3},   {3, 7, 4},   {4, 7, 1}, {6, 7, 3},
      {69, 70, 4}, {65, 70, 5},
  };
  const std::vector<Hash> leaves = MakeLeaves(70);
  for (const Case& c : cases) {
    SCOPED_TRACE(absl::StrCat("old_size ", c.old_size, " new_size ", c.new_size));
    auto proof = ConsistencyProof(c.old_size, c.new_size, NaiveNodes(leaves, c.new_size));
    ASSERT_TRUE(proof.ok()) << proof.status();
    EXPECT_EQ(proof->size(), c.length);
    EXPECT_EQ(*proof, NaiveSubproof(c.old_size, leaves, 0, c.new_size, true));
    EXPECT_TRUE(VerifyConsistency(c.old_size, c.new_size,
                                  ReferenceRoot(Prefix(leaves, c.old_size)),
                                  ReferenceRoot(Prefix(leaves, c.new_size)), *proof)
                    .ok());
  }
}

TEST(MerkleTest, ConsistencyOfEqualSizesNeedsEqualRootsAndNoHashes) {
  const std::vector<Hash> leaves = MakeLeaves(5);
  const Hash root = ReferenceRoot(leaves);
  EXPECT_TRUE(VerifyConsistency(5, 5, root, root, {}).ok());
  absl::Status status = VerifyConsistency(5, 5, root, Flipped(root, 3), {});
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(status.message()), HasSubstr("differ"));
  status = VerifyConsistency(5, 5, root, root, {root});
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(status.message()), HasSubstr("has 1 hashes, expected 0"));
}

TEST(MerkleTest, EmptyTreeIsConsistentWithAnyTreeGivenNoHashes) {
  const std::vector<Hash> leaves = MakeLeaves(5);
  const Hash root = ReferenceRoot(leaves);
  EXPECT_TRUE(VerifyConsistency(0, 5, EmptyRoot(), root, {}).ok());
  EXPECT_TRUE(VerifyConsistency(0, 0, EmptyRoot(), EmptyRoot(), {}).ok());
  EXPECT_EQ(VerifyConsistency(0, 5, EmptyRoot(), root, {root}).code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST(MerkleTest, ConsistencyVerificationSaysWhichRootMismatched) {
  const std::vector<Hash> leaves = MakeLeaves(10);
  const Hash old_root = ReferenceRoot(Prefix(leaves, 3));
  const Hash new_root = ReferenceRoot(leaves);
  const std::vector<Hash> proof = *ConsistencyProof(3, 10, NaiveNodes(leaves, 10));
  EXPECT_THAT(
      std::string(VerifyConsistency(3, 10, Flipped(old_root, 0), new_root, proof).message()),
      HasSubstr("computed old root differs"));
  EXPECT_THAT(
      std::string(VerifyConsistency(3, 10, old_root, Flipped(new_root, 0), proof).message()),
      HasSubstr("computed new root differs"));
  EXPECT_THAT(std::string(VerifyConsistency(3, 10, old_root, new_root, {}).message()),
              HasSubstr(absl::StrCat("has 0 hashes, expected ", proof.size())));
}

// ---- Arguments out of range. ----

TEST(MerkleTest, InclusionArgumentsOutOfRangeAreInvalidArgument) {
  for (auto [index, size] : std::vector<std::pair<uint64_t, uint64_t>>{
           {0, 0}, {5, 5}, {6, 5}, {UINT64_MAX, 5}}) {
    SCOPED_TRACE(absl::StrCat("index ", index, " size ", size));
    auto proof = InclusionProof(index, size, NoNodes());
    EXPECT_EQ(proof.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(proof.status().message()), HasSubstr("index"));
    const absl::Status status = VerifyInclusion(index, size, LeafHash("x"), {}, EmptyRoot());
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(status.message()), HasSubstr("index"));
  }
}

TEST(MerkleTest, ConsistencyArgumentsOutOfRangeAreInvalidArgument) {
  for (auto [old_size, new_size] : std::vector<std::pair<uint64_t, uint64_t>>{
           {0, 0}, {0, 5}, {6, 5}, {UINT64_MAX, 5}}) {
    SCOPED_TRACE(absl::StrCat("old_size ", old_size, " new_size ", new_size));
    auto proof = ConsistencyProof(old_size, new_size, NoNodes());
    EXPECT_EQ(proof.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(proof.status().message()), HasSubstr("old_size"));
  }
  const absl::Status status = VerifyConsistency(6, 5, EmptyRoot(), EmptyRoot(), {});
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(status.message()), HasSubstr("old_size 6 exceeds new_size 5"));
}

TEST(MerkleTest, NodeSourceErrorsPassThrough) {
  const NodeSource broken = [](int, uint64_t) -> absl::StatusOr<Hash> {
    return absl::UnavailableError("disk on fire");
  };
  const absl::Status expected = absl::UnavailableError("disk on fire");
  EXPECT_EQ(RootAt(5, broken).status(), expected);
  EXPECT_EQ(InclusionProof(2, 5, broken).status(), expected);
  EXPECT_EQ(ConsistencyProof(3, 5, broken).status(), expected);
}

// ---- Tiles. ----

TEST(MerkleTest, NodesFromTilesReadsTheOneTileHoldingTheNode) {
  // Height 3: node (5, 3) = tile level 1, rising 2 levels from the hashes of
  // tile level 1 at [12, 16): tile 1/1, offsets 4..7.
  std::vector<Hash> hashes;
  TileData tile;
  for (int i = 0; i < 8; ++i) {
    hashes.push_back(LeafHash(absl::StrCat("h", i)));
    tile += HashBytes(hashes.back());
  }
  std::vector<std::pair<TileId, uint64_t>> reads;
  const NodeSource nodes = NodesFromTiles(
      [&](const TileId& id, uint64_t min_width) -> absl::StatusOr<TileData> {
        reads.emplace_back(id, min_width);
        return tile;
      },
      3);
  auto node = nodes(5, 3);
  ASSERT_TRUE(node.ok()) << node.status();
  EXPECT_EQ(*node, NodeHash(NodeHash(hashes[4], hashes[5]), NodeHash(hashes[6], hashes[7])));
  ASSERT_EQ(reads.size(), 1u);
  EXPECT_EQ(reads[0].first, (TileId{1, 1}));
  EXPECT_EQ(reads[0].second, 8u);

  // Node (3, 1) is stored as is: tile level 1, tile 0, offset 1.
  reads.clear();
  node = nodes(3, 1);
  ASSERT_TRUE(node.ok()) << node.status();
  EXPECT_EQ(*node, hashes[1]);
  ASSERT_EQ(reads.size(), 1u);
  EXPECT_EQ(reads[0].first, (TileId{1, 0}));
  EXPECT_EQ(reads[0].second, 2u);
}

TEST(MerkleTest, TileNarrowerThanNeededIsDataLossNamingTheTile) {
  const Hash one = LeafHash("one");
  const NodeSource nodes = NodesFromTiles(
      [&](const TileId&, uint64_t) -> absl::StatusOr<TileData> { return HashBytes(one); }, 2);
  // Node (1, 3) needs hashes 6 and 7 of tile level 0: tile 0/1, width 4.
  auto node = nodes(1, 3);
  EXPECT_EQ(node.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(std::string(node.status().message()), HasSubstr("tile 0/1"));
  EXPECT_THAT(std::string(node.status().message()), HasSubstr("need at least 4"));
  // And through a root that needs it.
  auto root = RootAt(8, nodes);
  EXPECT_EQ(root.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(std::string(root.status().message()), HasSubstr("tile 1/0"));
}

TEST(MerkleTest, TileOfPartialHashesOrTooWideIsDataLoss) {
  TileData ragged = HashBytes(LeafHash("a")) + "x";
  const NodeSource ragged_nodes = NodesFromTiles(
      [&](const TileId&, uint64_t) -> absl::StatusOr<TileData> { return ragged; }, 2);
  auto node = ragged_nodes(0, 5);
  EXPECT_EQ(node.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(std::string(node.status().message()), HasSubstr("tile 0/1: 33 bytes"));

  TileData wide;
  for (int i = 0; i < 5; ++i) wide += HashBytes(LeafHash(absl::StrCat(i)));
  const NodeSource wide_nodes = NodesFromTiles(
      [&](const TileId&, uint64_t) -> absl::StatusOr<TileData> { return wide; }, 2);
  node = wide_nodes(2, 0);
  EXPECT_EQ(node.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(std::string(node.status().message()), HasSubstr("tile 1/0: has 5 hashes"));
}

TEST(MerkleTest, TileSourceErrorsPassThrough) {
  const NodeSource nodes = NodesFromTiles(
      [](const TileId&, uint64_t) -> absl::StatusOr<TileData> {
        return absl::NotFoundError("no tile here");
      },
      2);
  const absl::Status expected = absl::NotFoundError("no tile here");
  EXPECT_EQ(nodes(0, 0).status(), expected);
  EXPECT_EQ(RootAt(9, nodes).status(), expected);
  EXPECT_EQ(InclusionProof(4, 9, nodes).status(), expected);
  EXPECT_EQ(ConsistencyProof(4, 9, nodes).status(), expected);
}

TEST(MerkleTest, NodesFromTilesRejectsNodesBeyondTheTree) {
  const NodeSource nodes = NodesFromTiles(
      [](const TileId&, uint64_t) -> absl::StatusOr<TileData> {
        ADD_FAILURE() << "unexpected tile read";
        return absl::InternalError("unexpected");
      },
      8);
  EXPECT_EQ(nodes(-1, 0).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(nodes(64, 0).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(nodes(1, uint64_t{1} << 63).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(nodes(63, 2).status().code(), absl::StatusCode::kInvalidArgument);
}

enum class Proofs { kNone, kSample, kAll };

// Appends leaves one at a time, storing TakeChanged() after each, and checks
// roots and proofs from the stored tiles against the tree in memory: every
// size's root (against ReferenceRoot below 600 leaves and every
// `reference_every` sizes), and the proofs `proofs(size)` says.
void CheckTilesAgainstTree(int height, uint64_t leaf_count, Proofs (*proofs)(uint64_t size),
                           uint64_t reference_every) {
  SCOPED_TRACE(absl::StrCat("tile height ", height));
  const std::vector<Hash> leaves = MakeLeaves(leaf_count);
  const NodeTable table(leaves);
  TileBuilder builder(height);
  TileMap stored;
  const NodeSource from_tiles = NodesFromTiles(MapTiles(stored), height);
  EXPECT_EQ(*RootAt(0, from_tiles), EmptyRoot());
  for (uint64_t size = 1; size <= leaf_count; ++size) {
    SCOPED_TRACE(absl::StrCat("size ", size));
    builder.Append(leaves[size - 1]);
    Store(stored, builder.TakeChanged());
    ASSERT_EQ(builder.size(), size);
    const NodeSource in_memory = table.Source(size);
    const Hash root = *RootAt(size, in_memory);
    if (size % reference_every == 0 || size < 600) {
      ASSERT_EQ(root, ReferenceRoot(Prefix(leaves, size)));
    }
    ASSERT_EQ(builder.Root(), root);
    auto tile_root = RootAt(size, from_tiles);
    ASSERT_TRUE(tile_root.ok()) << tile_root.status();
    ASSERT_EQ(*tile_root, root);

    std::vector<uint64_t> indices;
    std::vector<uint64_t> old_sizes;
    const Proofs which = proofs(size);
    if (which == Proofs::kNone) continue;
    if (which == Proofs::kAll) {
      for (uint64_t i = 0; i < size; ++i) indices.push_back(i);
      for (uint64_t m = 1; m <= size; ++m) old_sizes.push_back(m);
    } else {
      indices = {0, size / 3, size / 2, size - 1, 7919 % size};
      old_sizes = {1, size / 2 + 1, size - 1 + (size == 1), size, 104729 % size + 1};
      for (uint64_t p = 1; p <= size; p *= 2) old_sizes.push_back(p);
    }
    for (uint64_t index : indices) {
      auto proof = InclusionProof(index, size, from_tiles);
      ASSERT_TRUE(proof.ok()) << "index " << index << ": " << proof.status();
      ASSERT_EQ(*proof, *InclusionProof(index, size, in_memory)) << "index " << index;
    }
    for (uint64_t old_size : old_sizes) {
      auto proof = ConsistencyProof(old_size, size, from_tiles);
      ASSERT_TRUE(proof.ok()) << "old_size " << old_size << ": " << proof.status();
      ASSERT_EQ(*proof, *ConsistencyProof(old_size, size, in_memory)) << "old_size " << old_size;
    }
  }
  // The final tiles still answer for every earlier tree.
  for (uint64_t size = 0; size <= leaf_count; ++size) {
    auto tile_root = RootAt(size, from_tiles);
    ASSERT_TRUE(tile_root.ok()) << "size " << size << ": " << tile_root.status();
    ASSERT_EQ(*tile_root, *RootAt(size, table.Source(size))) << "size " << size;
  }
}

Proofs Sample(uint64_t) { return Proofs::kSample; }
Proofs AllUpTo300(uint64_t size) { return size <= 300 ? Proofs::kAll : Proofs::kSample; }
// Small trees, tile boundaries, and every 17th size.
Proofs SampleHeightEight(uint64_t size) {
  const uint64_t in_tile = size % 256;
  return size < 600 || in_tile <= 1 || in_tile == 255 || size % 17 == 0 ? Proofs::kSample
                                                                         : Proofs::kNone;
}

TEST(MerkleTest, TilesOfHeightOneGiveTheTreesRootsAndProofs) {
  CheckTilesAgainstTree(1, 600, Sample, 1);
}

TEST(MerkleTest, TilesOfHeightTwoGiveEveryProofOfEverySizeUpTo300) {
  CheckTilesAgainstTree(2, 600, AllUpTo300, 1);
}

TEST(MerkleTest, TilesOfHeightThreeGiveTheTreesRootsAndProofs) {
  CheckTilesAgainstTree(3, 600, Sample, 1);
}

TEST(MerkleTest, TilesOfHeightEightGiveTheTreesRootsAndProofs) {
  // Past 4096 leaves the level-1 tiles gain their second tile.
  CheckTilesAgainstTree(8, 4500, SampleHeightEight, 97);
}

TEST(MerkleTest, TakeChangedListsEachChangedTileOnceInLevelThenIndexOrder) {
  const std::vector<Hash> leaves = MakeLeaves(24);
  const NodeTable table(leaves);
  TileBuilder builder(2);
  for (int i = 0; i < 21; ++i) builder.Append(leaves[i]);
  std::vector<std::pair<TileId, TileData>> changed = builder.TakeChanged();
  // Level 0: 21 leaves = tiles 0..4 full, tile 5 with 1; level 1 (nodes of
  // level 2): 5 = tile 0 full, tile 1 with 1; level 2 (level 4): 1.
  const std::vector<std::pair<TileId, size_t>> expected = {
      {{0, 0}, 4}, {{0, 1}, 4}, {{0, 2}, 4}, {{0, 3}, 4}, {{0, 4}, 4},
      {{0, 5}, 1}, {{1, 0}, 4}, {{1, 1}, 1}, {{2, 0}, 1}};
  ASSERT_EQ(changed.size(), expected.size());
  for (size_t i = 0; i < expected.size(); ++i) {
    EXPECT_EQ(changed[i].first, expected[i].first) << i;
    EXPECT_EQ(changed[i].second.size(), expected[i].second * sizeof(Hash)) << i;
  }
  // Contents: tile 1/1 holds node (2, 4), tile 2/0 node (4, 0).
  const NodeSource nodes = table.Source(21);
  EXPECT_EQ(changed[7].second, HashBytes(*nodes(2, 4)));
  EXPECT_EQ(changed[8].second, HashBytes(*nodes(4, 0)));

  EXPECT_TRUE(builder.TakeChanged().empty());

  builder.Append(leaves[21]);
  changed = builder.TakeChanged();
  ASSERT_EQ(changed.size(), 1u);
  EXPECT_EQ(changed[0].first, (TileId{0, 5}));
  EXPECT_EQ(changed[0].second, HashBytes(leaves[20]) + HashBytes(leaves[21]));

  // Tile 0/5 fills; tile 0/6 is empty and not listed; tile 1/1 gains node
  // (2, 5); tile 2/0 is unchanged.
  builder.Append(leaves[22]);
  builder.Append(leaves[23]);
  changed = builder.TakeChanged();
  ASSERT_EQ(changed.size(), 2u);
  EXPECT_EQ(changed[0].first, (TileId{0, 5}));
  EXPECT_EQ(changed[0].second.size(), 4 * sizeof(Hash));
  EXPECT_EQ(changed[1].first, (TileId{1, 1}));
  EXPECT_EQ(changed[1].second,
            HashBytes(*table.Source(24)(2, 4)) + HashBytes(*table.Source(24)(2, 5)));
}

TEST(MerkleTest, RightEdgeIsThePartialTileOfEachLevel) {
  const std::vector<Hash> leaves = MakeLeaves(24);
  const NodeTable table(leaves);
  TileBuilder builder(2);
  EXPECT_EQ(builder.RightEdge({0, 0}), nullptr);
  for (int i = 0; i < 21; ++i) builder.Append(leaves[i]);
  ASSERT_NE(builder.RightEdge({0, 5}), nullptr);
  EXPECT_EQ(*builder.RightEdge({0, 5}), HashBytes(leaves[20]));
  ASSERT_NE(builder.RightEdge({1, 1}), nullptr);
  EXPECT_EQ(*builder.RightEdge({1, 1}), HashBytes(*table.Source(21)(2, 4)));
  ASSERT_NE(builder.RightEdge({2, 0}), nullptr);
  EXPECT_EQ(*builder.RightEdge({2, 0}), HashBytes(*table.Source(21)(4, 0)));
  EXPECT_EQ(builder.RightEdge({0, 4}), nullptr);  // full, no longer on the edge
  EXPECT_EQ(builder.RightEdge({0, 6}), nullptr);
  EXPECT_EQ(builder.RightEdge({1, 0}), nullptr);
  EXPECT_EQ(builder.RightEdge({3, 0}), nullptr);
  EXPECT_EQ(builder.RightEdge({-1, 0}), nullptr);
  for (int i = 21; i < 24; ++i) builder.Append(leaves[i]);
  EXPECT_EQ(builder.RightEdge({0, 6}), nullptr);  // empty partial tile
  EXPECT_EQ(builder.RightEdge({0, 5}), nullptr);
  ASSERT_NE(builder.RightEdge({1, 1}), nullptr);
  EXPECT_EQ(builder.RightEdge({1, 1})->size(), 2 * sizeof(Hash));
}

TEST(MerkleTest, TakingChangesInBurstsStoresTheSameTiles) {
  constexpr uint64_t kLeaves = 2600;
  const std::vector<Hash> leaves = MakeLeaves(kLeaves);
  for (int height : {1, 2, 3, 8}) {
    SCOPED_TRACE(absl::StrCat("tile height ", height));
    TileMap one_at_a_time;
    {
      TileBuilder builder(height);
      for (const Hash& leaf : leaves) {
        builder.Append(leaf);
        Store(one_at_a_time, builder.TakeChanged());
      }
      EXPECT_EQ(builder.Root(), ReferenceRoot(leaves));
    }
    for (uint64_t burst : {7, 256, 1000}) {
      SCOPED_TRACE(absl::StrCat("burst ", burst));
      TileBuilder builder(height);
      TileMap stored;
      for (uint64_t i = 0; i < kLeaves; ++i) {
        builder.Append(leaves[i]);
        if ((i + 1) % burst == 0) {
          std::vector<std::pair<TileId, TileData>> changed = builder.TakeChanged();
          for (size_t j = 1; j < changed.size(); ++j) {
            EXPECT_TRUE(TileIdLess()(changed[j - 1].first, changed[j].first))
                << TileName(changed[j - 1].first) << " then " << TileName(changed[j].first);
          }
          for (const auto& [id, data] : changed) {
            EXPECT_FALSE(data.empty()) << TileName(id);
          }
          Store(stored, std::move(changed));
        }
      }
      Store(stored, builder.TakeChanged());
      EXPECT_TRUE(stored == one_at_a_time);
      EXPECT_EQ(stored.size(), one_at_a_time.size());
    }
  }
}

TEST(MerkleTest, TileCountIsTheNumberOfTilesTheBuilderWrites) {
  for (int height : {1, 2, 3, 8}) {
    TileBuilder builder(height);
    std::map<std::pair<int, uint64_t>, bool> tiles;
    EXPECT_EQ(TileCount(0, height), 0u);
    for (uint64_t size = 1; size <= 1100; ++size) {
      builder.Append(LeafHash(std::to_string(size)));
      for (const auto& [id, data] : builder.TakeChanged()) tiles[{id.level, id.index}] = true;
      ASSERT_EQ(TileCount(size, height), tiles.size()) << "height " << height << " size " << size;
    }
  }
}

}  // namespace
}  // namespace warmledger::merkle

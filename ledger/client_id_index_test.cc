#include "ledger/client_id_index.h"

#include <algorithm>
#include <cstdint>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace warmledger {
namespace {

using ::testing::Eq;
using ::testing::Optional;

// Every id collides with every other.
uint64_t OneHash(absl::string_view) { return 42; }
// Ids collide in a handful of classes (by length and first byte).
uint64_t FewHashes(absl::string_view id) {
  return id.size() * 31 + (id.empty() ? 0 : static_cast<unsigned char>(id[0])) % 3;
}

// Adds `ids` as seqs 1, 2, ...; expects each found at its seq and each of
// `absent` not found.
void ExpectFoundAtTheirSeqs(ClientIdIndex& index, const std::vector<std::string>& ids,
                            const std::vector<std::string>& absent) {
  for (size_t i = 0; i < ids.size(); ++i) index.Insert(ids[i], i + 1);
  for (size_t i = 0; i < ids.size(); ++i) {
    EXPECT_THAT(index.Find(ids[i]), Optional(Eq(i + 1))) << ids[i];
    EXPECT_EQ(index.IdOf(i + 1), ids[i]);
  }
  for (const std::string& id : absent) EXPECT_EQ(index.Find(id), std::nullopt) << id;
  EXPECT_EQ(index.size(), ids.size());
}

TEST(ClientIdIndexTest, FindsEachIdAtItsSeqAndNothingElse) {
  ClientIdIndex index;
  ExpectFoundAtTheirSeqs(index, {"don-1", "don-2", "p/store-1/order-9"}, {"don-3", ""});
}

TEST(ClientIdIndexTest, IdsWithTheSameHashStayDistinct) {
  ClientIdIndex index(&OneHash);
  ExpectFoundAtTheirSeqs(index, {"a", "b", "c"}, {"d"});
}

TEST(ClientIdIndexTest, PopBackRemovesTheNewestIdWhetherItsHashWasTakenOrNot) {
  ClientIdIndex index(&OneHash);
  index.Insert("a", 1);
  index.Insert("b", 2);  // hash taken by "a"
  index.PopBack(2);
  EXPECT_EQ(index.Find("b"), std::nullopt);
  EXPECT_THAT(index.Find("a"), Optional(Eq(1u)));
  index.PopBack(1);
  EXPECT_EQ(index.Find("a"), std::nullopt);
  EXPECT_EQ(index.size(), 0u);
  // The seqs are free again, and the hash too.
  index.Insert("b", 1);
  index.Insert("a", 2);
  EXPECT_THAT(index.Find("b"), Optional(Eq(1u)));
  EXPECT_THAT(index.Find("a"), Optional(Eq(2u)));
}

TEST(ClientIdIndexTest, IdsOfTheLongestAllowedLengthCrossNoBlockBoundary) {
  // 1 MiB blocks: 255-byte ids (256 with their length) fill one exactly after
  // 4096, and ids of other lengths leave a gap at its end.
  ClientIdIndex index;
  std::vector<std::string> ids;
  for (uint64_t seq = 1; seq <= 20000; ++seq) {
    const size_t len = seq % 7 == 0 ? ClientIdIndex::kIdBytesMax : 1 + seq % 200;
    std::string id = std::to_string(seq);
    id.resize(std::max(len, id.size()), 'x');
    ids.push_back(id);
    index.Insert(id, seq);
  }
  for (uint64_t seq = 1; seq <= ids.size(); ++seq) {
    ASSERT_EQ(index.IdOf(seq), ids[seq - 1]) << seq;
    ASSERT_THAT(index.Find(ids[seq - 1]), Optional(Eq(seq))) << seq;
  }
}

TEST(ClientIdIndexTest, KeepsEveryIdThroughGrowthReserveAndUndo) {
  for (ClientIdIndex::HashFn hash : {&FewHashes, &ClientIdIndex::DefaultHash}) {
    ClientIdIndex index(hash);
    auto id_of = [](uint64_t seq) { return "client-" + std::to_string(seq * 7919); };
    uint64_t seq = 0;
    for (; seq < 3000; ++seq) index.Insert(id_of(seq + 1), seq + 1);
    index.Reserve(20000);  // a larger table, rebuilt from the ids
    for (; seq < 5000; ++seq) index.Insert(id_of(seq + 1), seq + 1);
    index.Reserve(10);  // never shrinks
    for (; seq > 4000; --seq) index.PopBack(seq);
    ASSERT_EQ(index.size(), 4000u);
    for (uint64_t s = 1; s <= 5000; ++s) {
      ASSERT_EQ(index.Find(id_of(s)), s <= 4000 ? std::optional<uint64_t>(s) : std::nullopt)
          << s;
    }
  }
}

TEST(ClientIdIndexDeathTest, InsertOutOfSeqOrderDies) {
  ClientIdIndex index;
  index.Insert("a", 1);
  EXPECT_DEATH(index.Insert("b", 3), "seq == size\\(\\) \\+ 1");
  EXPECT_DEATH(index.PopBack(2), "seq == size\\(\\)");
}

// Random inserts and undos against a std::map, with colliding and real hashes.
TEST(ClientIdIndexTest, AgreesWithAMapUnderRandomInsertsAndUndos) {
  for (ClientIdIndex::HashFn hash : {&OneHash, &FewHashes, &ClientIdIndex::DefaultHash}) {
    for (uint32_t seed = 1; seed <= 5; ++seed) {
      SCOPED_TRACE(testing::Message() << "seed " << seed);
      std::mt19937 rng(seed);
      ClientIdIndex index(hash);
      std::map<std::string, uint64_t> want;
      std::vector<std::string> by_seq;
      auto random_id = [&] {
        return "id-" + std::to_string(rng() % 600);  // reuses ids once undone
      };
      const int steps = hash == &OneHash ? 1500 : 6000;
      for (int step = 0; step < steps; ++step) {
        if (!by_seq.empty() && rng() % 4 == 0) {
          // Undo the newest few, as a failed linked chain does.
          for (uint32_t n = 1 + rng() % 3; n > 0 && !by_seq.empty(); --n) {
            index.PopBack(by_seq.size());
            want.erase(by_seq.back());
            by_seq.pop_back();
          }
        } else {
          const std::string id = random_id();
          if (want.contains(id)) continue;
          const uint64_t seq = by_seq.size() + 1;
          index.Insert(id, seq);
          want[id] = seq;
          by_seq.push_back(id);
        }
        const std::string probe = random_id();
        const auto it = want.find(probe);
        ASSERT_EQ(index.Find(probe),
                  it == want.end() ? std::nullopt : std::optional<uint64_t>(it->second))
            << "step " << step << " probe " << probe;
      }
      ASSERT_EQ(index.size(), by_seq.size());
      for (const auto& [id, seq] : want) {
        ASSERT_THAT(index.Find(id), Optional(Eq(seq))) << id;
        ASSERT_EQ(index.IdOf(seq), id);
      }
    }
  }
}

}  // namespace
}  // namespace warmledger

// Deterministic pseudo-random numbers for the demo and the benchmark:
// xoshiro256** seeded through splitmix64. Unlike the standard library's
// distributions these give the same stream on every platform, so a seed
// names its data.
#ifndef WARMLEDGER_TOOLS_RNG_H_
#define WARMLEDGER_TOOLS_RNG_H_

#include <cstdint>

namespace warmledger {

inline constexpr uint64_t kGoldenGamma = 0x9e3779b97f4a7c15ull;

// splitmix64's output function: mixes all 64 bits, one to one.
constexpr uint64_t MixBits(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// One splitmix64 step from state `x`: a value that depends only on `x`.
constexpr uint64_t SplitMix64(uint64_t x) { return MixBits(x + kGoldenGamma); }

// xoshiro256**, its state filled by splitmix64 from `seed`.
class Xoshiro256 {
 public:
  explicit Xoshiro256(uint64_t seed) {
    for (uint64_t& word : state_) {
      seed += kGoldenGamma;
      word = MixBits(seed);
    }
  }
  uint64_t Next() {
    const uint64_t result = Rotl(state_[1] * 5, 7) * 9;
    const uint64_t t = state_[1] << 17;
    state_[2] ^= state_[0];
    state_[3] ^= state_[1];
    state_[1] ^= state_[2];
    state_[0] ^= state_[3];
    state_[2] ^= t;
    state_[3] = Rotl(state_[3], 45);
    return result;
  }
  // Uniform in [0, n); n > 0.
  uint64_t Below(uint64_t n) {
    return static_cast<uint64_t>((static_cast<unsigned __int128>(Next()) * n) >> 64);
  }
  // Uniform in [lo, hi].
  int64_t Between(int64_t lo, int64_t hi) {
    return lo + static_cast<int64_t>(Below(static_cast<uint64_t>(hi - lo) + 1));
  }

 private:
  static uint64_t Rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  uint64_t state_[4];
};

}  // namespace warmledger

#endif  // WARMLEDGER_TOOLS_RNG_H_

// internal::SegmentedVector, used by the derived state and its indexes.

#ifndef WARMLEDGER_LEDGER_SEGMENTED_VECTOR_H_
#define WARMLEDGER_LEDGER_SEGMENTED_VECTOR_H_

#include <bit>
#include <cstddef>
#include <memory>
#include <type_traits>
#include <utility>
#include <vector>

namespace warmledger::internal {

// An append-only list stored in blocks of doubling size (2^kShift elements
// first). Unlike std::vector it never copies its elements to grow, nor asks
// malloc for ever larger blocks: a fund's statement lines or the lots of a
// big ledger reach millions, and each doubling of a vector copied them all.
// Elements never move, indexing is a few register operations.
template <typename T, int kShift>
class SegmentedVector {
  static_assert(std::is_trivially_copyable_v<T> && std::is_trivially_destructible_v<T>);

 public:
  SegmentedVector() = default;
  SegmentedVector(SegmentedVector&& other) noexcept
      : blocks_(std::move(other.blocks_)), size_(std::exchange(other.size_, 0)) {
    other.blocks_.clear();
  }
  SegmentedVector& operator=(SegmentedVector&& other) noexcept {
    if (this != &other) {
      Release();
      blocks_ = std::move(other.blocks_);
      other.blocks_.clear();
      size_ = std::exchange(other.size_, 0);
    }
    return *this;
  }
  ~SegmentedVector() { Release(); }

  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  T& operator[](size_t i) {
    const size_t b = BlockOf(i);
    return blocks_[b][i - BlockStart(b)];
  }
  const T& operator[](size_t i) const {
    const size_t b = BlockOf(i);
    return blocks_[b][i - BlockStart(b)];
  }
  T& back() { return (*this)[size_ - 1]; }
  // Hints that push_back() will follow: starts fetching its slot.
  void PrefetchEnd() const {
    const size_t b = BlockOf(size_);
    if (b < blocks_.size()) __builtin_prefetch(blocks_[b] + (size_ - BlockStart(b)), 1);
  }
  void push_back(const T& v) {
    const size_t b = BlockOf(size_);
    if (b == blocks_.size()) blocks_.push_back(std::allocator<T>().allocate(BlockSize(b)));
    std::construct_at(blocks_[b] + (size_ - BlockStart(b)), v);
    ++size_;
  }
  void pop_back() { --size_; }

 private:
  static size_t BlockOf(size_t i) { return std::bit_width((i >> kShift) + 1) - 1; }
  static size_t BlockStart(size_t b) { return ((size_t{1} << b) - 1) << kShift; }
  static size_t BlockSize(size_t b) { return size_t{1} << (b + kShift); }
  void Release() {
    for (size_t b = 0; b < blocks_.size(); ++b) {
      std::allocator<T>().deallocate(blocks_[b], BlockSize(b));
    }
    blocks_.clear();
    size_ = 0;
  }

  std::vector<T*> blocks_;  // block b holds BlockSize(b) elements
  size_t size_ = 0;
};

}  // namespace warmledger::internal

#endif  // WARMLEDGER_LEDGER_SEGMENTED_VECTOR_H_

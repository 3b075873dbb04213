#include "engine/cuda/caching_allocator.h"

#include <algorithm>
#include <bit>

#include "engine/core/error.h"

namespace pneuma::cuda {

namespace {
constexpr size_t kGranularity = 512;
}

size_t CachingAllocator::size_class(size_t nbytes) {
  const size_t n = std::max<size_t>(nbytes, 1);
  if (n <= 4 * kGranularity) return (n + kGranularity - 1) / kGranularity * kGranularity;
  // Four classes per power of two: 1, 1.25, 1.5, 1.75 times 2^k.
  const size_t power = std::bit_floor(n);
  const size_t quarter = power / 4;
  const size_t rounded = (n + quarter - 1) / quarter * quarter;
  return (rounded + kGranularity - 1) / kGranularity * kGranularity;
}

CachingAllocator::CachingAllocator(RawAllocate raw_allocate, RawFree raw_free)
    : raw_allocate_(std::move(raw_allocate)), raw_free_(std::move(raw_free)) {}

CachingAllocator::~CachingAllocator() {
  std::lock_guard<std::mutex> lock(mutex_);
  release_cached_locked();
  // Live blocks at destruction belong to tensors that outlive the allocator (static
  // tensors at exit); they are left to the driver's own teardown.
}

void* CachingAllocator::allocate(size_t nbytes) {
  const size_t size = size_class(nbytes);
  std::lock_guard<std::mutex> lock(mutex_);
  void* block = nullptr;
  auto it = free_lists_.find(size);
  if (it != free_lists_.end() && !it->second.empty()) {
    block = it->second.back();
    it->second.pop_back();
    ++stats_.cache_hits;
  } else {
    block = raw_allocate_(size);
    if (block == nullptr) {
      release_cached_locked();
      block = raw_allocate_(size);
    }
    PNEUMA_CHECK(block != nullptr, "device allocation of ", nbytes, " bytes failed (", stats_.allocated,
                 " bytes allocated, ", stats_.reserved, " reserved)");
    ++stats_.device_allocations;
    stats_.reserved += size;
    stats_.peak_reserved = std::max(stats_.peak_reserved, stats_.reserved);
  }
  live_.emplace(block, size);
  stats_.allocated += size;
  stats_.peak_allocated = std::max(stats_.peak_allocated, stats_.allocated);
  return block;
}

void CachingAllocator::deallocate(void* block) {
  if (block == nullptr) return;
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = live_.find(block);
  PNEUMA_CHECK(it != live_.end(), "caching allocator: free of a block it did not allocate");
  stats_.allocated -= it->second;
  free_lists_[it->second].push_back(block);
  live_.erase(it);
}

void CachingAllocator::empty_cache() {
  std::lock_guard<std::mutex> lock(mutex_);
  release_cached_locked();
}

void CachingAllocator::release_cached_locked() {
  for (auto& [size, blocks] : free_lists_) {
    for (void* block : blocks) {
      raw_free_(block);
      ++stats_.device_frees;
      stats_.reserved -= size;
    }
    blocks.clear();
  }
}

AllocatorStats CachingAllocator::stats() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return stats_;
}

}  // namespace pneuma::cuda

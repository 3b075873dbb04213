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

size_t CachingAllocator::block_size(size_t nbytes) const {
  if (policy_.granularity == 0) return size_class(nbytes);
  const size_t n = std::max<size_t>(nbytes, 1);
  return (n + policy_.granularity - 1) / policy_.granularity * policy_.granularity;
}

CachingAllocator::CachingAllocator(RawAllocate raw_allocate, RawFree raw_free, CachePolicy policy)
    : raw_allocate_(std::move(raw_allocate)), raw_free_(std::move(raw_free)), policy_(policy) {}

CachingAllocator::~CachingAllocator() {
  std::lock_guard<std::mutex> lock(mutex_);
  release_cached_locked();
  // Live blocks at destruction belong to tensors that outlive the allocator (static
  // tensors at exit); they are left to the driver's own teardown.
}

void* CachingAllocator::allocate(size_t nbytes) {
  const size_t size = block_size(nbytes);
  std::lock_guard<std::mutex> lock(mutex_);
  void* block = nullptr;
  auto it = free_lists_.find(size);
  if (it != free_lists_.end() && !it->second.empty()) {
    // The most recently freed block of the size: its pages are the likeliest to be warm.
    block = it->second.back()->second;
    cached_.erase(it->second.back());
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
  const size_t size = it->second;
  stats_.allocated -= size;
  live_.erase(it);
  if (size > policy_.max_cached_bytes) {  // a block the cache may never hold
    raw_free_(block);
    ++stats_.device_frees;
    stats_.reserved -= size;
    return;
  }
  free_lists_[size].push_back(cached_.emplace(cached_.end(), size, block));
  while (stats_.reserved - stats_.allocated > policy_.max_cached_bytes) release_oldest_locked();
}

void CachingAllocator::empty_cache() {
  std::lock_guard<std::mutex> lock(mutex_);
  release_cached_locked();
}

void CachingAllocator::release_cached_locked() {
  for (const auto& [size, block] : cached_) {
    raw_free_(block);
    ++stats_.device_frees;
    stats_.reserved -= size;
  }
  cached_.clear();
  free_lists_.clear();
}

void CachingAllocator::release_oldest_locked() {
  const auto [size, block] = cached_.front();
  std::vector<CachedBlocks::iterator>& blocks = free_lists_.at(size);
  blocks.erase(std::find(blocks.begin(), blocks.end(), cached_.begin()));
  if (blocks.empty()) free_lists_.erase(size);
  cached_.pop_front();
  raw_free_(block);
  ++stats_.device_frees;
  stats_.reserved -= size;
}

AllocatorStats CachingAllocator::stats() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return stats_;
}

}  // namespace pneuma::cuda

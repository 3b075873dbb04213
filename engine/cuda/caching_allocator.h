#pragma once
// Caching allocator for device memory: blocks are kept on per-size-class free lists
// and reused, so a training loop whose shapes repeat makes no cudaMalloc/cudaFree after
// its first step. The raw allocation functions are injected, so the bookkeeping is
// plain host code, tested on the CPU.
#include <cstddef>
#include <cstdint>
#include <functional>
#include <list>
#include <map>
#include <mutex>
#include <unordered_map>
#include <vector>

namespace pneuma::cuda {

struct AllocatorStats {
  size_t allocated = 0;       // bytes handed out and not yet returned (rounded sizes)
  size_t reserved = 0;        // bytes held from the device: allocated + cached
  size_t peak_allocated = 0;
  size_t peak_reserved = 0;
  int64_t device_allocations = 0;  // raw allocations (cudaMalloc calls)
  int64_t device_frees = 0;
  int64_t cache_hits = 0;
};

// How blocks are sized and how many free ones are kept. The default suits device memory:
// 25% size classes (few distinct sizes, so blocks are shared between nearby requests) and
// no bound. The CPU cache (engine/cpu/host_allocator.h) rounds to a fixed granularity
// instead, because up to 25% over every activation would show in peak RSS.
struct CachePolicy {
  size_t granularity = 0;              // 0: size_class(); otherwise requests round up to a multiple
  size_t max_cached_bytes = SIZE_MAX;  // free blocks beyond this go back, oldest first
};

class CachingAllocator {
 public:
  using RawAllocate = std::function<void*(size_t)>;  // returns nullptr when out of memory
  using RawFree = std::function<void(void*)>;

  CachingAllocator(RawAllocate raw_allocate, RawFree raw_free, CachePolicy policy = {});
  ~CachingAllocator();
  CachingAllocator(const CachingAllocator&) = delete;
  CachingAllocator& operator=(const CachingAllocator&) = delete;

  // Never returns nullptr: on a failed raw allocation the cache is emptied and the
  // allocation retried once; a second failure throws pneuma::Error with the stats.
  void* allocate(size_t nbytes);
  void deallocate(void* block);
  // Returns every cached (free) block to the device.
  void empty_cache();
  AllocatorStats stats() const;

  // The size class of a request: at most 25% over the request, 512-byte granularity.
  static size_t size_class(size_t nbytes);
  // The size of the block that serves a request under this allocator's policy.
  size_t block_size(size_t nbytes) const;

 private:
  using CachedBlocks = std::list<std::pair<size_t, void*>>;  // (size, block), oldest first

  void release_cached_locked();
  // Returns the oldest cached block to the device.
  void release_oldest_locked();

  RawAllocate raw_allocate_;
  RawFree raw_free_;
  CachePolicy policy_;
  mutable std::mutex mutex_;
  std::unordered_map<void*, size_t> live_;  // block -> its size class
  CachedBlocks cached_;                     // every free block, in the order they were freed
  std::map<size_t, std::vector<CachedBlocks::iterator>> free_lists_;  // size class -> its cached blocks
  AllocatorStats stats_;
};

}  // namespace pneuma::cuda

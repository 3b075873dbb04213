#pragma once
// The cache behind host_allocate (engine/cpu/host_allocator.h): freed blocks are kept and
// serve later requests of any size up to theirs. A request takes the smallest free block
// that fits and splits off the rest; a freed block merges with free neighbours from the
// same raw allocation (a segment). So one 50 MB activation's memory can hold four 12 MB
// ones later in the step, where a cache of exact sizes kept a block of every size the step
// ever used (a ResNet-18 inference held 3x the memory its tensors needed at any time).
// A training loop whose requests repeat finds free blocks for all of them after its first
// step: no new raw allocations, hence no page faults. Raw allocation and free are
// injected, so the bookkeeping is tested on its own.
#include <cstddef>
#include <functional>
#include <list>
#include <mutex>
#include <set>
#include <unordered_map>

#include "engine/cuda/caching_allocator.h"

namespace pneuma::cpu {

class HostArena {
 public:
  using RawAllocate = std::function<void*(size_t)>;  // returns nullptr when out of memory
  using RawFree = std::function<void(void*)>;

  // Sizes round up to granularity (which also aligns every block within its segment);
  // at most max_cached_bytes are kept free, by releasing segments with no block in use,
  // those left idle longest first (free space inside a segment in use stays).
  HostArena(RawAllocate raw_allocate, RawFree raw_free, size_t granularity, size_t max_cached_bytes);
  ~HostArena();
  HostArena(const HostArena&) = delete;
  HostArena& operator=(const HostArena&) = delete;

  // Never returns nullptr: on a failed raw allocation the idle segments are released and
  // the allocation retried once; a second failure throws std::bad_alloc.
  void* allocate(size_t nbytes);
  void deallocate(void* block);
  // Returns every segment with no block in use.
  void empty_cache();
  // allocated/reserved count rounded block and segment bytes; device_allocations and
  // device_frees count segments; cache_hits the requests served from free blocks.
  cuda::AllocatorStats stats() const;
  size_t block_size(size_t nbytes) const;

 private:
  struct Segment;
  struct Block {
    char* data;
    size_t size;
    bool free;
    Block* prev;  // neighbours in the segment, by address
    Block* next;
    Segment* segment;
  };
  struct Segment {
    void* base;
    size_t size;
    int64_t blocks_in_use = 0;
    std::list<Segment*>::iterator idle_position;  // valid while blocks_in_use == 0
  };
  struct BySizeThenAddress {
    bool operator()(const Block* a, const Block* b) const {
      return a->size != b->size ? a->size < b->size : a->data < b->data;
    }
  };

  void release_segment_locked(Segment* segment);
  void release_idle_locked();

  RawAllocate raw_allocate_;
  RawFree raw_free_;
  size_t granularity_;
  size_t max_cached_bytes_;
  mutable std::mutex mutex_;
  std::set<Block*, BySizeThenAddress> free_blocks_;
  std::unordered_map<void*, Block*> live_;
  std::list<Segment*> idle_segments_;  // segments with no block in use, oldest first
  cuda::AllocatorStats stats_;
};

}  // namespace pneuma::cpu

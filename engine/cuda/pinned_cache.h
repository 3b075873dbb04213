#pragma once
// A cache of page-locked host blocks for asynchronous host->device copies (the data
// loader's pinned batches). A copy enqueued on a stream reads its source block later, so a
// block freed by its tensor is reused only once every copy that read it has completed: each
// enqueued copy records a fence, and a freed block waits on a pending list until its fences
// have passed. Sizes and free lists are a CachingAllocator's. The raw allocation and the fences
// are injected, so the bookkeeping is plain host code, tested on the CPU.
#include <cstddef>
#include <functional>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "engine/cuda/caching_allocator.h"

namespace pneuma::cuda {

struct FenceHooks {
  std::function<void*(void* stream)> record;  // a fence after the work enqueued so far on stream (a cudaEvent_t)
  std::function<bool(void*)> passed;          // has the work before it completed?
  std::function<void(void*)> destroy;
};

class PinnedHostCache {
 public:
  PinnedHostCache(CachingAllocator::RawAllocate raw_allocate, CachingAllocator::RawFree raw_free, FenceHooks fences);
  ~PinnedHostCache();
  PinnedHostCache(const PinnedHostCache&) = delete;
  PinnedHostCache& operator=(const PinnedHostCache&) = delete;

  void* allocate(size_t nbytes);
  // The block goes back to the cache once the copies recorded for it have passed.
  void deallocate(void* block);
  // Call right after enqueueing, on `stream`, a copy that reads `block` (a pointer allocate()
  // returned).
  void record_use(void* block, void* stream);
  // Frees every cached block whose copies have passed.
  void empty_cache();
  AllocatorStats stats() const { return blocks_.stats(); }
  size_t pending_blocks() const;

 private:
  // Moves freed blocks whose fences have all passed into the cache; mutex_ held.
  void collect_locked();

  CachingAllocator blocks_;
  FenceHooks fences_;
  mutable std::mutex mutex_;
  std::unordered_map<void*, std::vector<void*>> fences_of_;  // live or pending block -> its fences
  std::vector<void*> pending_;                               // freed, copies maybe still running
};

}  // namespace pneuma::cuda

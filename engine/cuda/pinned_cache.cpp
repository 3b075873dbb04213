#include "engine/cuda/pinned_cache.h"

#include <algorithm>

#include "engine/core/error.h"

namespace pneuma::cuda {

PinnedHostCache::PinnedHostCache(CachingAllocator::RawAllocate raw_allocate, CachingAllocator::RawFree raw_free,
                                 FenceHooks fences)
    : blocks_(std::move(raw_allocate), std::move(raw_free)), fences_(std::move(fences)) {}

PinnedHostCache::~PinnedHostCache() {
  std::lock_guard<std::mutex> lock(mutex_);
  for (auto& [block, fences] : fences_of_)
    for (void* fence : fences) fences_.destroy(fence);
  // Pending blocks are left to the driver's teardown: a copy may still read them.
}

void* PinnedHostCache::allocate(size_t nbytes) {
  std::lock_guard<std::mutex> lock(mutex_);
  collect_locked();
  void* block = blocks_.allocate(nbytes);
  fences_of_[block];
  return block;
}

void PinnedHostCache::deallocate(void* block) {
  if (block == nullptr) return;
  std::lock_guard<std::mutex> lock(mutex_);
  PNEUMA_CHECK(fences_of_.count(block), "pinned host cache: free of a block it did not allocate");
  pending_.push_back(block);
  collect_locked();
}

void PinnedHostCache::record_use(void* block, void* stream) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = fences_of_.find(block);
  PNEUMA_CHECK(it != fences_of_.end(), "pinned host cache: a copy from memory it did not allocate");
  it->second.push_back(fences_.record(stream));
}

void PinnedHostCache::empty_cache() {
  std::lock_guard<std::mutex> lock(mutex_);
  collect_locked();
  blocks_.empty_cache();
}

size_t PinnedHostCache::pending_blocks() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return pending_.size();
}

void PinnedHostCache::collect_locked() {
  auto still_running = [&](void* block) {
    std::vector<void*>& fences = fences_of_.at(block);
    std::erase_if(fences, [&](void* fence) {
      if (!fences_.passed(fence)) return false;
      fences_.destroy(fence);
      return true;
    });
    if (!fences.empty()) return true;
    fences_of_.erase(block);
    blocks_.deallocate(block);
    return false;
  };
  std::erase_if(pending_, [&](void* block) { return !still_running(block); });
}

}  // namespace pneuma::cuda

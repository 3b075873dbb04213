#include "engine/cpu/host_arena.h"

#include <algorithm>
#include <new>

#include "engine/core/error.h"

namespace pneuma::cpu {

HostArena::HostArena(RawAllocate raw_allocate, RawFree raw_free, size_t granularity, size_t max_cached_bytes)
    : raw_allocate_(std::move(raw_allocate)), raw_free_(std::move(raw_free)), granularity_(granularity),
      max_cached_bytes_(max_cached_bytes) {
  PNEUMA_CHECK(granularity > 0, "HostArena: granularity must be positive");
}

HostArena::~HostArena() {
  std::lock_guard<std::mutex> lock(mutex_);
  release_idle_locked();
  // Segments with live blocks belong to tensors that outlive the arena (static tensors
  // at exit); the process's teardown takes them.
}

size_t HostArena::block_size(size_t nbytes) const {
  const size_t n = std::max<size_t>(nbytes, 1);
  return (n + granularity_ - 1) / granularity_ * granularity_;
}

void* HostArena::allocate(size_t nbytes) {
  const size_t size = block_size(nbytes);
  std::lock_guard<std::mutex> lock(mutex_);
  Block probe{nullptr, size, true, nullptr, nullptr, nullptr};
  auto it = free_blocks_.lower_bound(&probe);
  Block* block = nullptr;
  if (it != free_blocks_.end()) {
    block = *it;
    free_blocks_.erase(it);
    if (block->size > size) {  // the rest stays free (sizes are multiples of the granularity)
      Block* rest = new Block{block->data + size, block->size - size, true, block, block->next, block->segment};
      if (block->next != nullptr) block->next->prev = rest;
      block->next = rest;
      block->size = size;
      free_blocks_.insert(rest);
    }
    if (block->segment->blocks_in_use == 0) idle_segments_.erase(block->segment->idle_position);
    ++stats_.cache_hits;
  } else {
    void* base = raw_allocate_(size);
    if (base == nullptr) {
      release_idle_locked();
      base = raw_allocate_(size);
    }
    if (base == nullptr) throw std::bad_alloc();
    auto* segment = new Segment{base, size, 0, idle_segments_.end()};
    block = new Block{static_cast<char*>(base), size, true, nullptr, nullptr, segment};
    ++stats_.device_allocations;
    stats_.reserved += size;
    stats_.peak_reserved = std::max(stats_.peak_reserved, stats_.reserved);
  }
  block->free = false;
  ++block->segment->blocks_in_use;
  live_.emplace(block->data, block);
  stats_.allocated += block->size;
  stats_.peak_allocated = std::max(stats_.peak_allocated, stats_.allocated);
  return block->data;
}

void HostArena::deallocate(void* data) {
  if (data == nullptr) return;
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = live_.find(data);
  PNEUMA_CHECK(it != live_.end(), "host allocator: free of a block it did not allocate");
  Block* block = it->second;
  live_.erase(it);
  stats_.allocated -= block->size;
  block->free = true;
  // Merge with free neighbours, so the segment's free space stays in as few blocks as
  // possible and serves the largest requests it can.
  if (Block* next = block->next; next != nullptr && next->free) {
    free_blocks_.erase(next);
    block->size += next->size;
    block->next = next->next;
    if (next->next != nullptr) next->next->prev = block;
    delete next;
  }
  if (Block* prev = block->prev; prev != nullptr && prev->free) {
    free_blocks_.erase(prev);
    prev->size += block->size;
    prev->next = block->next;
    if (block->next != nullptr) block->next->prev = prev;
    delete block;
    block = prev;
  }
  free_blocks_.insert(block);
  Segment* segment = block->segment;
  if (--segment->blocks_in_use == 0)
    segment->idle_position = idle_segments_.insert(idle_segments_.end(), segment);
  while (stats_.reserved - stats_.allocated > max_cached_bytes_ && !idle_segments_.empty())
    release_segment_locked(idle_segments_.front());
}

void HostArena::release_segment_locked(Segment* segment) {
  // An idle segment is one free block: its neighbours all merged into it.
  Block probe{static_cast<char*>(segment->base), segment->size, true, nullptr, nullptr, nullptr};
  auto it = free_blocks_.find(&probe);
  PNEUMA_CHECK(it != free_blocks_.end() && (*it)->segment == segment,
               "host allocator: an idle segment is not one free block");
  Block* block = *it;
  free_blocks_.erase(it);
  delete block;
  idle_segments_.erase(segment->idle_position);
  raw_free_(segment->base);
  ++stats_.device_frees;
  stats_.reserved -= segment->size;
  delete segment;
}

void HostArena::release_idle_locked() {
  while (!idle_segments_.empty()) release_segment_locked(idle_segments_.front());
}

void HostArena::empty_cache() {
  std::lock_guard<std::mutex> lock(mutex_);
  release_idle_locked();
}

cuda::AllocatorStats HostArena::stats() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return stats_;
}

}  // namespace pneuma::cpu

#pragma once
// CPU memory for Storage. Blocks of at least kHostCacheMinBytes come from a cache of freed
// blocks: glibc serves such sizes with mmap and returns them with munmap, so without it a
// training step page-faults in every activation afresh (about 170k faults per ResNet-18
// step at 224x224). Smaller blocks go to malloc, which already recycles them.
// The cache is a HostArena (engine/cpu/host_arena.h: best fit, splitting and merging
// blocks) with sizes rounded to kHostCacheGranularity and at most host_cache_limit() bytes
// kept free.
#include <cstddef>
#include <optional>
#include <string>

#include "engine/cuda/caching_allocator.h"

namespace pneuma::cpu {

constexpr size_t kHostAlignment = 64;              // cache line, and what oneDNN prefers
constexpr size_t kHostCacheMinBytes = size_t{1} << 20;
constexpr size_t kHostCacheGranularity = size_t{64} << 10;
constexpr size_t kDefaultHostCacheLimit = size_t{2} << 30;

// At least nbytes (rounded up to kHostAlignment), aligned to kHostAlignment; never nullptr
// (throws std::bad_alloc or pneuma::Error). Free it with host_free(block, nbytes), the
// same nbytes.
void* host_allocate(size_t nbytes);
void host_free(void* block, size_t nbytes);
// Whether blocks of nbytes come from the cache.
inline bool host_cached_size(size_t nbytes) { return nbytes >= kHostCacheMinBytes; }

// The cache's bytes: allocated (in use), reserved (in use + cached), their peaks, and how
// many requests the cache served.
cuda::AllocatorStats host_cache_stats();
inline size_t host_cached_bytes(const cuda::AllocatorStats& s) { return s.reserved - s.allocated; }
// Returns to the system every raw allocation with no block in use.
void host_empty_cache();

// Free bytes the cache keeps: PNEUMA_CPU_CACHE_BYTES (0 turns caching off), read once;
// kDefaultHostCacheLimit when unset.
size_t host_cache_limit();
// The value of PNEUMA_CPU_CACHE_BYTES: a byte count, optionally with a K, M or G suffix
// (powers of 1024); anything else throws naming the variable.
size_t parse_cache_bytes(const std::string& text);

}  // namespace pneuma::cpu

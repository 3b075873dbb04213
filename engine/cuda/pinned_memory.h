#pragma once
// Page-locked host memory for the data loader's batches, and their asynchronous upload: the
// copy is enqueued on the device's stream (ordered before every op that later runs there) and
// the host call returns at once. Blocks come from one process-wide PinnedHostCache, emptied by
// cuda::shutdown() before the runtime unloads.
#include <cstddef>

namespace pneuma::cuda {

void* pinned_malloc(size_t nbytes);
void pinned_free(void* block) noexcept;
// dst (device memory on `device`) <- nbytes at src_block, a block from pinned_malloc. Does not
// wait; the block is not reused before the copy has completed.
void copy_to_device_async(void* dst, int device, const void* src_block, size_t nbytes);
// Frees the cached pinned blocks (part of shutdown()).
void release_pinned_memory();

}  // namespace pneuma::cuda

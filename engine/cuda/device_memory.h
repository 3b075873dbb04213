#pragma once
// Raw device memory and copies for Storage and Tensor::to(device).
#include <cstddef>

#include "engine/core/device.h"

namespace pneuma::cuda {

// Number of visible CUDA devices; 0 when there is no GPU or no driver.
int device_count();
void* device_malloc(size_t nbytes, int device);
void device_free(void* data, int device) noexcept;
void device_memset_zero(void* data, size_t nbytes, int device);
// Copies nbytes between any two of host and device memory and waits for completion.
void copy_bytes(void* dst, Device dst_device, const void* src, Device src_device, size_t nbytes);

}  // namespace pneuma::cuda

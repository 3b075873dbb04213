#include "engine/cuda/check.h"
#include "engine/cuda/context.h"
#include "engine/cuda/device_memory.h"

namespace pneuma::cuda {

int device_count() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky "no device" error
    return 0;
  }
  return count;
}

void* device_malloc(size_t nbytes, int device) { return DeviceContext::get(device).allocator().allocate(nbytes); }

void device_free(void* data, int device) noexcept {
  try {
    DeviceContext::get(device).allocator().deallocate(data);
  } catch (...) {
    // A tensor freed after shutdown(): its memory went with the context.
  }
}

void device_memset_zero(void* data, size_t nbytes, int device) {
  if (nbytes == 0) return;
  DeviceContext& context = DeviceContext::get(device);
  PNEUMA_CUDA_CHECK(cudaMemsetAsync(data, 0, nbytes, context.stream()));
}

void copy_bytes(void* dst, Device dst_device, const void* src, Device src_device, size_t nbytes) {
  if (nbytes == 0) return;
  DeviceContext& context = DeviceContext::get(dst_device.is_cuda() ? dst_device.index : src_device.index);
  PNEUMA_CUDA_CHECK(cudaSetDevice(context.device()));
  PNEUMA_CUDA_CHECK(cudaMemcpyAsync(dst, src, nbytes, cudaMemcpyDefault, context.stream()));
  PNEUMA_CUDA_CHECK(cudaStreamSynchronize(context.stream()));
}

}  // namespace pneuma::cuda

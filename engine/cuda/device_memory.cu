#include <cstdio>

#include "engine/cuda/check.h"
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

void* device_malloc(size_t nbytes, int device) {
  PNEUMA_CHECK(device < device_count(), "cuda:", device, ": no such CUDA device (", device_count(),
               " visible)");
  PNEUMA_CUDA_CHECK(cudaSetDevice(device));
  void* data = nullptr;
  if (nbytes > 0) PNEUMA_CUDA_CHECK(cudaMalloc(&data, nbytes));
  return data;
}

void device_free(void* data, int device) noexcept {
  if (data == nullptr) return;
  // A destructor must not throw; a failure here means the context is already gone.
  if (cudaSetDevice(device) != cudaSuccess || cudaFree(data) != cudaSuccess)
    std::fprintf(stderr, "pneuma: cudaFree failed on cuda:%d\n", device);
}

void copy_bytes(void* dst, Device dst_device, const void* src, Device src_device, size_t nbytes) {
  if (nbytes == 0) return;
  const cudaMemcpyKind kind = src_device.is_cpu() ? (dst_device.is_cpu() ? cudaMemcpyHostToHost : cudaMemcpyHostToDevice)
                                                  : (dst_device.is_cpu() ? cudaMemcpyDeviceToHost : cudaMemcpyDeviceToDevice);
  PNEUMA_CUDA_CHECK(cudaSetDevice(dst_device.is_cuda() ? dst_device.index : src_device.index));
  PNEUMA_CUDA_CHECK(cudaMemcpy(dst, src, nbytes, kind));
}

}  // namespace pneuma::cuda

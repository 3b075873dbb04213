#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <vector>

#include "engine/cuda/check.h"
#include "engine/cuda/context.h"
#include "engine/cuda/device_memory.h"
#include "engine/cuda/pinned_memory.h"

namespace pneuma::cuda {

namespace {
std::mutex g_contexts_mutex;
bool g_shut_down = false;
std::vector<std::unique_ptr<DeviceContext>>& contexts() {
  static auto* all = new std::vector<std::unique_ptr<DeviceContext>>();  // never destroyed statically
  return *all;
}
}  // namespace

DeviceContext& DeviceContext::get(int device) {
  std::lock_guard<std::mutex> lock(g_contexts_mutex);
  PNEUMA_CHECK(!g_shut_down, "cuda:", device, ": used after pneuma::cuda::shutdown()");
  auto& all = contexts();
  const int count = device_count();
  PNEUMA_CHECK(device >= 0 && device < count, "cuda:", device, ": no such CUDA device (", count, " visible)");
  if (all.empty()) {
    all.resize(count);
    std::atexit(shutdown);
  }
  if (!all[device]) all[device].reset(new DeviceContext(device));
  return *all[device];
}

DeviceContext::DeviceContext(int device) : device_(device) {
  PNEUMA_CUDA_CHECK(cudaSetDevice(device));
  PNEUMA_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
  PNEUMA_CUDNN_CHECK(cudnnCreate(&cudnn_));
  PNEUMA_CUDNN_CHECK(cudnnSetStream(cudnn_, stream_));
  PNEUMA_CUBLAS_CHECK(cublasCreate(&cublas_));
  PNEUMA_CUBLAS_CHECK(cublasSetStream(cublas_, stream_));
  PNEUMA_CUBLAS_CHECK(cublasSetMathMode(cublas_, CUBLAS_PEDANTIC_MATH));
  allocator_ = std::make_unique<CachingAllocator>(
      [device](size_t n) -> void* {
        void* p = nullptr;
        if (cudaSetDevice(device) != cudaSuccess || cudaMalloc(&p, n) != cudaSuccess) {
          cudaGetLastError();  // out of memory is reported by the allocator, after emptying its cache
          return nullptr;
        }
        return p;
      },
      [device](void* p) {
        if (cudaSetDevice(device) != cudaSuccess || cudaFree(p) != cudaSuccess)
          std::fprintf(stderr, "pneuma: cudaFree failed on cuda:%d\n", device);
      });
}

DeviceContext::~DeviceContext() {
  // Teardown must not throw; report and go on.
  if (cudaSetDevice(device_) != cudaSuccess) return;
  cudaStreamSynchronize(stream_);
  if (workspace_ != nullptr) allocator_->deallocate(workspace_);
  allocator_.reset();
  if (cublas_ != nullptr && cublasDestroy(cublas_) != CUBLAS_STATUS_SUCCESS)
    std::fprintf(stderr, "pneuma: cublasDestroy failed\n");
  if (cudnn_ != nullptr && cudnnDestroy(cudnn_) != CUDNN_STATUS_SUCCESS)
    std::fprintf(stderr, "pneuma: cudnnDestroy failed\n");
  if (stream_ != nullptr) cudaStreamDestroy(stream_);
}

void* DeviceContext::workspace(size_t nbytes) {
  if (nbytes > workspace_bytes_) {
    if (workspace_ != nullptr) {
      PNEUMA_CUDA_CHECK(cudaStreamSynchronize(stream_));  // the old one may still be in use
      allocator_->deallocate(workspace_);
    }
    workspace_ = allocator_->allocate(nbytes);
    workspace_bytes_ = nbytes;
  }
  return workspace_;
}

void DeviceContext::set_tf32(bool enabled) {
  tf32_ = enabled;
  PNEUMA_CUBLAS_CHECK(cublasSetMathMode(cublas_, enabled ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_PEDANTIC_MATH));
}

void shutdown() {
  release_pinned_memory();  // its fences are events on the contexts' streams
  std::lock_guard<std::mutex> lock(g_contexts_mutex);
  g_shut_down = true;
  for (auto& context : contexts()) context.reset();
}

}  // namespace pneuma::cuda

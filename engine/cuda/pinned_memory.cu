#include <mutex>

#include "engine/cuda/check.h"
#include "engine/cuda/context.h"
#include "engine/cuda/pinned_cache.h"
#include "engine/cuda/pinned_memory.h"

namespace pneuma::cuda {

namespace {

std::mutex g_pinned_mutex;
PinnedHostCache* g_pinned = nullptr;  // created on first use, deleted by release_pinned_memory()

PinnedHostCache& pinned_cache() {
  std::lock_guard<std::mutex> lock(g_pinned_mutex);
  if (g_pinned == nullptr) {
    FenceHooks fences;
    fences.record = [](void* stream) -> void* {
      cudaEvent_t event = nullptr;
      PNEUMA_CUDA_CHECK(cudaEventCreateWithFlags(&event, cudaEventDisableTiming));
      PNEUMA_CUDA_CHECK(cudaEventRecord(event, static_cast<cudaStream_t>(stream)));
      return event;
    };
    fences.passed = [](void* event) {
      const cudaError_t status = cudaEventQuery(static_cast<cudaEvent_t>(event));
      if (status == cudaErrorNotReady) {
        cudaGetLastError();  // not an error: the copy is still running
        return false;
      }
      PNEUMA_CUDA_CHECK(status);
      return true;
    };
    fences.destroy = [](void* event) { cudaEventDestroy(static_cast<cudaEvent_t>(event)); };
    g_pinned = new PinnedHostCache(
        [](size_t n) -> void* {
          void* p = nullptr;
          if (cudaHostAlloc(&p, n, cudaHostAllocDefault) != cudaSuccess) {
            cudaGetLastError();  // reported by the cache, after emptying it
            return nullptr;
          }
          return p;
        },
        [](void* p) { cudaFreeHost(p); }, std::move(fences));
  }
  return *g_pinned;
}

}  // namespace

void* pinned_malloc(size_t nbytes) { return pinned_cache().allocate(nbytes); }

void pinned_free(void* block) noexcept {
  try {
    std::lock_guard<std::mutex> lock(g_pinned_mutex);
    if (g_pinned != nullptr) g_pinned->deallocate(block);
  } catch (...) {
    // Freed after shutdown: the memory went with the cache.
  }
}

void copy_to_device_async(void* dst, int device, const void* src_block, size_t nbytes) {
  if (nbytes == 0) return;
  DeviceContext& context = DeviceContext::get(device);
  PNEUMA_CUDA_CHECK(cudaSetDevice(device));
  PNEUMA_CUDA_CHECK(cudaMemcpyAsync(dst, src_block, nbytes, cudaMemcpyHostToDevice, context.stream()));
  pinned_cache().record_use(const_cast<void*>(src_block), context.stream());
}

void release_pinned_memory() {
  std::lock_guard<std::mutex> lock(g_pinned_mutex);
  delete g_pinned;
  g_pinned = nullptr;
}

}  // namespace pneuma::cuda

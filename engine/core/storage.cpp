#include "engine/core/storage.h"

#include <algorithm>
#include <cstring>

#include "engine/core/error.h"
#include "engine/cpu/host_allocator.h"

#ifdef PNEUMA_WITH_CUDA
#include "engine/cuda/device_memory.h"
#endif

namespace pneuma {

namespace {
// A deleter gets no size, so each of host_allocate's two kinds of block has its own.
void free_cpu(void* data, Device) { cpu::host_free(data, 0); }
void free_cpu_cached(void* data, Device) { cpu::host_free(data, cpu::kHostCacheMinBytes); }
}  // namespace

std::shared_ptr<Storage> Storage::allocate(size_t nbytes, Device device, bool zero_fill) {
  if (device.is_cpu()) {
    const size_t rounded =
        (std::max<size_t>(nbytes, 1) + cpu::kHostAlignment - 1) / cpu::kHostAlignment * cpu::kHostAlignment;
    void* data = cpu::host_allocate(nbytes);
    if (zero_fill) std::memset(data, 0, rounded);
#ifdef PNEUMA_POISON_EMPTY
    // Sanitizer builds fill unspecified memory with NaN bytes, so code that reads an
    // empty() tensor before writing it fails the tests instead of passing by luck; this
    // covers blocks the CPU cache hands out again.
    else std::memset(data, 0xff, rounded);
#endif
    return std::make_shared<Storage>(data, nbytes, device,
                                     cpu::host_cached_size(nbytes) ? &free_cpu_cached : &free_cpu);
  }
#ifdef PNEUMA_WITH_CUDA
  void* data = cuda::device_malloc(nbytes, device.index);
  if (zero_fill) cuda::device_memset_zero(data, nbytes, device.index);
  return std::make_shared<Storage>(data, nbytes, device,
                                   [](void* p, Device d) { cuda::device_free(p, d.index); });
#else
  PNEUMA_FAIL("allocate ", nbytes, " bytes on ", device.str(),
              ": this build of Pneuma has no CUDA backend (configure with CUDA found)");
#endif
}

Storage::Storage(void* data, size_t nbytes, Device device, void (*deleter)(void*, Device))
    : data_(data), nbytes_(nbytes), device_(device), deleter_(deleter) {}

Storage::~Storage() {
  if (deleter_ != nullptr) deleter_(data_, device_);
}

}  // namespace pneuma

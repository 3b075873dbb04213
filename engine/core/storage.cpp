#include "engine/core/storage.h"

#include <cstdlib>
#include <cstring>
#include <new>

#include "engine/core/error.h"

#ifdef PNEUMA_WITH_CUDA
#include "engine/cuda/device_memory.h"
#endif

namespace pneuma {

namespace {
constexpr size_t kCpuAlignment = 64;  // cache line, and what oneDNN prefers

void free_cpu(void* data, Device) { std::free(data); }
}  // namespace

std::shared_ptr<Storage> Storage::allocate(size_t nbytes, Device device, bool zero_fill) {
  if (device.is_cpu()) {
    const size_t rounded = (std::max<size_t>(nbytes, 1) + kCpuAlignment - 1) / kCpuAlignment * kCpuAlignment;
    void* data = std::aligned_alloc(kCpuAlignment, rounded);
    if (data == nullptr) throw std::bad_alloc();
    if (zero_fill) std::memset(data, 0, rounded);
#ifdef PNEUMA_POISON_EMPTY
    // Sanitizer builds fill unspecified memory with NaN bytes, so code that reads an
    // empty() tensor before writing it fails the tests instead of passing by luck.
    else std::memset(data, 0xff, rounded);
#endif
    return std::make_shared<Storage>(data, nbytes, device, &free_cpu);
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

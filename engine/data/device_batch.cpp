#include "engine/data/device_batch.h"

#ifdef PNEUMA_WITH_CUDA
#include "engine/cuda/device_memory.h"
#include "engine/cuda/pinned_memory.h"
#endif

namespace pneuma::data {

namespace {

#ifdef PNEUMA_WITH_CUDA
Tensor upload_pinned(const Tensor& host, Device device) {
  PNEUMA_CHECK(host.is_contiguous() && host.offset() == 0, "to_device: a pinned batch tensor ", host.str(),
               " must be a whole contiguous block");
  Tensor out = Tensor::empty(host.shape(), host.dtype(), device);
  cuda::copy_to_device_async(out.raw_data(), device.index, host.raw_data(),
                             static_cast<size_t>(host.numel()) * dtype_size(host.dtype()));
  return out;
}
#endif

Tensor upload(const Tensor& host, Device device, bool pinned) {
  if (!host.defined()) return host;
#ifdef PNEUMA_WITH_CUDA
  if (pinned) return upload_pinned(host, device);
#else
  (void)pinned;
#endif
  return host.to(device);
}

}  // namespace

bool pinned_memory_available() {
#ifdef PNEUMA_WITH_CUDA
  return cuda::device_count() > 0;
#else
  return false;
#endif
}

Tensor pinned_empty(const Shape& shape, DType dtype) {
#ifdef PNEUMA_WITH_CUDA
  const char* why = " (none is visible)";
#else
  const char* why = " (this build of Pneuma has no CUDA backend)";
#endif
  PNEUMA_CHECK(pinned_memory_available(), "pinned memory needs a CUDA device", why);
#ifdef PNEUMA_WITH_CUDA
  const size_t nbytes = static_cast<size_t>(numel_of(shape)) * dtype_size(dtype);
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = std::make_shared<Storage>(cuda::pinned_malloc(nbytes), nbytes, Device::cpu(),
                                            [](void* block, Device) { cuda::pinned_free(block); });
  impl->shape = shape;
  impl->strides = contiguous_strides(shape);
  impl->dtype = dtype;
  return Tensor(std::move(impl));
#else
  (void)shape;
  (void)dtype;
  return Tensor();
#endif
}

Batch to_device(const Batch& batch, Device device) {
  if (device.is_cpu()) return batch;
  Batch out = batch;
  out.pinned = false;
  for (Tensor& v : out.views) v = upload(v, device, batch.pinned);
  out.labels = upload(batch.labels, device, batch.pinned);
  out.domains = upload(batch.domains, device, batch.pinned);
  return out;
}

}  // namespace pneuma::data

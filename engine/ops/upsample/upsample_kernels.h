#pragma once
// Tensor-level launches of the upsampling kernels (kernels/upsample/upsample.cuh), signatures of
// upsample_cpu.h plus a stream: compiled by nvcc for upsample_cuda.cu and by the host compiler for
// the emulated kernel tests (see engine/ops/elementwise/elementwise_kernels.h). Tensors are dense in
// u's layout (row-major, or channels-last when u.channels_last).
#include "engine/core/tensor.h"
#include "engine/ops/upsample/upsample_cpu.h"
#include "kernels/upsample/upsample.cuh"

namespace pneuma::kern {
inline namespace PNEUMA_KERNEL_ABI {

inline UpsampleGeometry upsample_geometry(const cpu::Upsample2d& u) {
  return {u.planes, u.ih, u.iw, u.oh, u.ow, u.align_corners, u.scale_h, u.scale_w, u.channels, u.channels_last};
}

// The kernels index raw buffers as u's layout says: a tensor laid out otherwise would be read wrong.
inline void check_upsample_layout(const char* op, const cpu::Upsample2d& u, const Tensor& a, const Tensor& b) {
  const MemoryFormat format = u.channels_last ? MemoryFormat::ChannelsLast : MemoryFormat::Contiguous;
  for (const Tensor* t : {&a, &b})
    PNEUMA_CHECK(t->is_contiguous(format), op, ": expected a ", memory_format_name(format), " tensor, got ", t->str(),
                 " with other strides");
}

inline void run_upsample2d_forward(bool bilinear, const Tensor& x, const cpu::Upsample2d& u, const Tensor& y,
                                   Stream stream) {
  check_upsample_layout("upsample (CUDA)", u, x, y);
  dispatch_floating_and_bfloat16(x.dtype(), "upsample (CUDA)", [&]<class T>() {
    launch_upsample2d_forward<T>(bilinear, x.data<T>(), y.data<T>(), upsample_geometry(u), stream);
  });
}

inline void run_upsample2d_backward(bool bilinear, const Tensor& g, const cpu::Upsample2d& u, const Tensor& dx,
                                    Stream stream) {
  check_upsample_layout("upsample backward (CUDA)", u, g, dx);
  dispatch_floating_and_bfloat16(g.dtype(), "upsample backward (CUDA)", [&]<class T>() {
    launch_upsample2d_backward<T>(bilinear, g.data<T>(), dx.data<T>(), upsample_geometry(u), stream);
  });
}

}  // inline namespace PNEUMA_KERNEL_ABI
}  // namespace pneuma::kern

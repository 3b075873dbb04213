#pragma once
// Tensor-level launches of the pooling kernels (kernels/pool/pool.cuh): compiled by nvcc for
// pool_cuda.cu and by the host compiler for the emulated kernel tests, which therefore run this
// code too (see engine/ops/elementwise/elementwise_kernels.h). Tensors are dense in p's layout
// (row-major, or channels-last when p.channels_last), with the shapes p describes; the signatures
// follow pool_cpu.h. float32, float64 and bfloat16 (computed
// in float, rounded once per output).
#include <initializer_list>

#include "engine/core/tensor.h"
#include "engine/ops/pool/pool_cpu.h"
#include "kernels/pool/pool.cuh"

namespace pneuma::kern {
inline namespace PNEUMA_KERNEL_ABI {

inline AvgPoolOptions avg_pool_options(const cpu::AvgOptions& o) {
  return {o.count_include_pad, o.divisor_override.has_value(), o.divisor_override.value_or(0)};
}

// The kernels index raw buffers as p's layout says: a tensor laid out otherwise would be read wrong.
inline void check_pool_layout(const char* op, const Pool2d& p, std::initializer_list<const Tensor*> tensors) {
  const MemoryFormat format = p.channels_last ? MemoryFormat::ChannelsLast : MemoryFormat::Contiguous;
  for (const Tensor* t : tensors)
    PNEUMA_CHECK(t->is_contiguous(format), op, ": expected a ", memory_format_name(format), " tensor, got ", t->str(),
                 " with other strides");
}

inline void run_max_pool2d_forward(const Tensor& x, const Pool2d& p, const Tensor& y, const Tensor& indices,
                                   Stream stream) {
  check_pool_layout("max_pool2d (CUDA)", p, {&x, &y, &indices});
  dispatch_floating_and_bfloat16(x.dtype(), "max_pool2d (CUDA)", [&]<class T>() {
    launch_max_pool2d_forward<T>(x.data<T>(), y.data<T>(), indices.data<int64_t>(), p, stream);
  });
}

inline void run_max_pool2d_backward(const Tensor& g, const Tensor& indices, const Pool2d& p, const Tensor& dx,
                                    Stream stream) {
  check_pool_layout("max_pool2d backward (CUDA)", p, {&g, &indices, &dx});
  dispatch_floating_and_bfloat16(g.dtype(), "max_pool2d backward (CUDA)", [&]<class T>() {
    launch_max_pool2d_backward<T>(g.data<T>(), indices.data<int64_t>(), dx.data<T>(), p, stream);
  });
}

inline void run_avg_pool2d_forward(const Tensor& x, const Pool2d& p, const cpu::AvgOptions& o, const Tensor& y,
                                   Stream stream) {
  check_pool_layout("avg_pool2d (CUDA)", p, {&x, &y});
  dispatch_floating_and_bfloat16(x.dtype(), "avg_pool2d (CUDA)", [&]<class T>() {
    launch_avg_pool2d_forward<T>(x.data<T>(), y.data<T>(), p, avg_pool_options(o), stream);
  });
}

inline void run_avg_pool2d_backward(const Tensor& g, const Pool2d& p, const cpu::AvgOptions& o, const Tensor& dx,
                                    Stream stream) {
  check_pool_layout("avg_pool2d backward (CUDA)", p, {&g, &dx});
  dispatch_floating_and_bfloat16(g.dtype(), "avg_pool2d backward (CUDA)", [&]<class T>() {
    launch_avg_pool2d_backward<T>(g.data<T>(), dx.data<T>(), p, avg_pool_options(o), stream);
  });
}

inline void run_adaptive_avg_pool2d_forward(const Tensor& x, const Pool2d& p, const Tensor& y, Stream stream) {
  check_pool_layout("adaptive_avg_pool2d (CUDA)", p, {&x, &y});
  dispatch_floating_and_bfloat16(x.dtype(), "adaptive_avg_pool2d (CUDA)", [&]<class T>() {
    launch_adaptive_avg_pool2d_forward<T>(x.data<T>(), y.data<T>(), p, stream);
  });
}

inline void run_adaptive_avg_pool2d_backward(const Tensor& g, const Pool2d& p, const Tensor& dx, Stream stream) {
  check_pool_layout("adaptive_avg_pool2d backward (CUDA)", p, {&g, &dx});
  dispatch_floating_and_bfloat16(g.dtype(), "adaptive_avg_pool2d backward (CUDA)", [&]<class T>() {
    launch_adaptive_avg_pool2d_backward<T>(g.data<T>(), dx.data<T>(), p, stream);
  });
}

}  // inline namespace PNEUMA_KERNEL_ABI
}  // namespace pneuma::kern

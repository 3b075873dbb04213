#pragma once
// Tensor-level launches of the softmax kernels (kernels/softmax/softmax.cuh): compiled by nvcc for
// softmax_cuda.cu and by the host compiler for the emulated kernel tests, which therefore run this
// code too (see engine/ops/elementwise/elementwise_kernels.h).
#include "engine/core/tensor.h"
#include "kernels/softmax/softmax.cuh"

namespace pneuma::kern {
inline namespace PNEUMA_KERNEL_ABI {

// The tensor seen as [outer, n, inner] around the softmax dim.
struct SoftmaxLayout {
  int64_t outer = 1, n = 1, inner = 1;
};

inline SoftmaxLayout softmax_layout(const Shape& shape, int64_t dim) {
  SoftmaxLayout l;
  if (shape.empty()) return l;
  for (int64_t d = 0; d < dim; ++d) l.outer *= shape[d];
  l.n = shape[dim];
  for (size_t d = dim + 1; d < shape.size(); ++d) l.inner *= shape[d];
  return l;
}

// y (contiguous, x's shape) = softmax or log_softmax of x along dim (wrapped).
inline void run_softmax_forward(const Tensor& x, int64_t dim, bool log, const Tensor& y, Stream stream) {
  const Tensor xd = x.detach().contiguous();
  const SoftmaxLayout l = softmax_layout(x.shape(), dim);
  dispatch_floating_and_bfloat16(x.dtype(), log ? "log_softmax (CUDA)" : "softmax (CUDA)", [&]<class T>() {
    launch_softmax<T>(xd.data<T>(), y.data<T>(), l.outer, l.n, l.inner, log, stream);
  });
}

// dx (contiguous) from the saved output y and the output gradient g.
inline void run_softmax_backward(const Tensor& y, const Tensor& g, int64_t dim, bool log, const Tensor& dx,
                                 Stream stream) {
  const Tensor yd = y.detach().contiguous(), gd = g.detach().contiguous();
  const SoftmaxLayout l = softmax_layout(y.shape(), dim);
  const char* op = log ? "log_softmax backward (CUDA)" : "softmax backward (CUDA)";
  dispatch_floating_and_bfloat16(y.dtype(), op, [&]<class T>() {
    launch_softmax_backward<T>(yd.data<T>(), gd.data<T>(), dx.data<T>(), l.outer, l.n, l.inner, log, stream);
  });
}

}  // inline namespace PNEUMA_KERNEL_ABI
}  // namespace pneuma::kern

#pragma once
// Tensor-level launches of the normalize kernels (kernels/normalize/normalize.cuh), signatures of
// normalize_cpu.h plus a stream: compiled by nvcc for normalize_cuda.cu and by the host compiler
// for the emulated kernel tests (see engine/ops/elementwise/elementwise_kernels.h).
#include "engine/core/tensor.h"
#include "engine/ops/softmax/softmax_kernels.h"
#include "kernels/normalize/normalize.cuh"

namespace pneuma::kern {
inline namespace PNEUMA_KERNEL_ABI {

inline void run_normalize_forward(const Tensor& x, int64_t dim, double p, double eps, const Tensor& y,
                                  const Tensor& norm, Stream stream) {
  const Tensor xd = x.detach().contiguous();
  const SoftmaxLayout l = softmax_layout(x.shape(), dim);
  dispatch_floating_and_bfloat16(x.dtype(), "normalize (CUDA)", [&]<class T>() {
    launch_normalize_forward<T>(xd.data<T>(), y.data<T>(), norm.data<opmath_t<T>>(), l.outer, l.n, l.inner, p, eps, stream);
  });
}

inline void run_normalize_backward(const Tensor& x, const Tensor& norm, const Tensor& g, int64_t dim, double p,
                                   double eps, const Tensor& dx, Stream stream) {
  const Tensor xd = x.detach().contiguous(), nd = norm.detach().contiguous(), gd = g.detach().contiguous();
  const SoftmaxLayout l = softmax_layout(x.shape(), dim);
  dispatch_floating_and_bfloat16(x.dtype(), "normalize backward (CUDA)", [&]<class T>() {
    launch_normalize_backward<T>(xd.data<T>(), nd.data<opmath_t<T>>(), gd.data<T>(), dx.data<T>(), l.outer, l.n, l.inner, p, eps,
                                 stream);
  });
}

}  // inline namespace PNEUMA_KERNEL_ABI
}  // namespace pneuma::kern

#pragma once
// Tensor-level launches of the dropout kernels (kernels/dropout/dropout.cuh), signatures of
// dropout_cpu.h plus a stream: compiled by nvcc for dropout_cuda.cu and by the host compiler for
// the emulated kernel tests (see engine/ops/elementwise/elementwise_kernels.h).
#include "engine/core/tensor.h"
#include "kernels/dropout/dropout.cuh"

namespace pneuma::kern {
inline namespace PNEUMA_KERNEL_ABI {

inline void run_dropout_forward(const Tensor& x, double p, uint64_t seed, const Tensor& y, const Tensor& mask,
                                Stream stream) {
  const Tensor xd = x.detach().contiguous();
  dispatch_floating_and_bfloat16(x.dtype(), "dropout (CUDA)", [&]<class T>() {
    launch_dropout_forward<T>(xd.data<T>(), xd.numel(), p, seed, y.data<T>(), mask.data<bool>(), stream);
  });
}

inline void run_dropout_backward(const Tensor& g, const Tensor& mask, double p, const Tensor& dx, Stream stream) {
  const Tensor gd = g.detach().contiguous();
  dispatch_floating_and_bfloat16(g.dtype(), "dropout backward (CUDA)", [&]<class T>() {
    launch_dropout_backward<T>(gd.data<T>(), mask.data<bool>(), gd.numel(), p, dx.data<T>(), stream);
  });
}

}  // inline namespace PNEUMA_KERNEL_ABI
}  // namespace pneuma::kern

#pragma once
// Tensor-level launches of the batch norm kernels (kernels/norm/batch_norm.cuh), with the
// signatures of norm_cpu.h plus a stream: compiled by nvcc for norm_cuda.cu and by the host
// compiler for the emulated kernel tests (see engine/ops/elementwise/elementwise_kernels.h).
// Scratch buffers are temporary tensors on the data's device.
#include "engine/core/tensor.h"
#include "kernels/norm/batch_norm.cuh"

namespace pneuma::kern {
inline namespace PNEUMA_KERNEL_ABI {

template <class T>
T* data_if_defined(const Tensor& t) {
  return t.defined() ? t.data<T>() : nullptr;
}

inline void run_batch_norm_stats(const Tensor& x, int64_t N, int64_t C, int64_t S, const Tensor& mean,
                                 const Tensor& var, Stream stream) {
  dispatch_floating(x.dtype(), "batch_norm (CUDA)", [&]<class T>() {
    launch_batch_norm_stats<T>(x.data<T>(), N, C, S, mean.data<T>(), var.data<T>(), stream);
  });
}

inline void run_batch_norm_apply(const Tensor& x, int64_t N, int64_t C, int64_t S, const Tensor& mean,
                                 const Tensor& var, const Tensor& weight, const Tensor& bias, double eps,
                                 const Tensor& y, Stream stream) {
  const Tensor coefficients = Tensor::empty({2 * C}, x.dtype(), x.device());
  dispatch_floating(x.dtype(), "batch_norm (CUDA)", [&]<class T>() {
    launch_batch_norm_apply<T>(x.data<T>(), N, C, S, mean.data<T>(), var.data<T>(), data_if_defined<T>(weight),
                               data_if_defined<T>(bias), eps, coefficients.data<T>(), y.data<T>(), stream);
  });
}

inline void run_batch_norm_backward(const Tensor& x, const Tensor& g, int64_t N, int64_t C, int64_t S,
                                    const Tensor& mean, const Tensor& var, const Tensor& weight, double eps,
                                    bool training, const Tensor& dx, const Tensor& dweight, const Tensor& dbias,
                                    Stream stream) {
  static_assert(sizeof(BatchNormGradTerms) == 3 * sizeof(double), "terms are stored as float64 triples");
  const Tensor terms = dx.defined() ? Tensor::empty({3 * C}, DType::Float64, g.device()) : Tensor();
  const bool reads_x = dx.defined() || dweight.defined();
  dispatch_floating(g.dtype(), "batch_norm backward (CUDA)", [&]<class T>() {
    launch_batch_norm_backward<T>(
        reads_x ? x.data<T>() : nullptr, g.data<T>(), N, C, S, reads_x ? mean.data<T>() : nullptr,
        reads_x ? var.data<T>() : nullptr, data_if_defined<T>(weight), eps, training, data_if_defined<T>(dx),
        data_if_defined<T>(dweight), data_if_defined<T>(dbias),
        terms.defined() ? reinterpret_cast<BatchNormGradTerms*>(terms.data<double>()) : nullptr, stream);
  });
}

inline void run_batch_norm_update_running(const Tensor& running_mean, const Tensor& running_var, const Tensor& mean,
                                          const Tensor& var, double momentum, int64_t count, Stream stream) {
  dispatch_floating(mean.dtype(), "batch_norm (CUDA)", [&]<class T>() {
    launch_batch_norm_update_running<T>(data_if_defined<T>(running_mean),
                                        running_mean.defined() ? running_mean.strides()[0] : 0,
                                        data_if_defined<T>(running_var),
                                        running_var.defined() ? running_var.strides()[0] : 0, mean.data<T>(),
                                        var.data<T>(), mean.numel(), momentum, count, stream);
  });
}

}  // inline namespace PNEUMA_KERNEL_ABI
}  // namespace pneuma::kern

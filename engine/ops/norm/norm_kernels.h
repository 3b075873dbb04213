#pragma once
// Tensor-level launches of the batch norm kernels (kernels/norm/batch_norm.cuh), with the
// signatures of norm_cpu.h plus a stream: compiled by nvcc for norm_cuda.cu and by the host
// compiler for the emulated kernel tests (see engine/ops/elementwise/elementwise_kernels.h).
// Data and per-channel dtypes as norm_cpu.h (norm_types.h); S == 1 (channels-last data as
// [N * H * W, C, 1], or [N, C]) runs the row kernels. Scratch buffers are temporary tensors on the
// data's device.
#include "engine/core/tensor.h"
#include "engine/ops/norm/norm_types.h"
#include "kernels/norm/batch_norm.cuh"

namespace pneuma::kern {
inline namespace PNEUMA_KERNEL_ABI {

template <class T>
T* data_if_defined(const Tensor& t) {
  return t.defined() ? t.data<T>() : nullptr;
}

// Scratch for the row kernels' per-split partials of an [R, C] input (S == 1).
template <class A>
Tensor row_partials_buffer(int64_t R, int64_t C, Device device) {
  static_assert(sizeof(BatchNormColumnPartial<A>) == 2 * sizeof(A), "partials are stored as pairs of A");
  return Tensor::empty({2 * static_cast<int64_t>(row_splits(R)) * C}, dtype_v<A>, device);
}

template <class A>
BatchNormColumnPartial<A>* row_partials(const Tensor& buffer) {
  return reinterpret_cast<BatchNormColumnPartial<A>*>(buffer.data<A>());
}

inline void run_batch_norm_stats(const Tensor& x, int64_t N, int64_t C, int64_t S, const Tensor& mean,
                                 const Tensor& var, Stream stream) {
  dispatch_floating_and_bfloat16(x.dtype(), "batch_norm (CUDA)", [&]<class T>() {
    using M = opmath_t<T>;
    if (S == 1) {
      // [R, C] rows (channels-last or [N, C] data): column reductions.
      const Tensor partials = row_partials_buffer<batch_norm_acc_t<T>>(N, C, x.device());
      launch_batch_norm_rows_stats<T>(x.data<T>(), N, C, mean.data<M>(), var.data<M>(),
                                      row_partials<batch_norm_acc_t<T>>(partials), stream);
      return;
    }
    launch_batch_norm_stats<T>(x.data<T>(), N, C, S, mean.data<M>(), var.data<M>(), stream);
  });
}

inline void run_batch_norm_apply(const Tensor& x, int64_t N, int64_t C, int64_t S, const Tensor& mean,
                                 const Tensor& var, const Tensor& weight, const Tensor& bias, double eps,
                                 const Tensor& y, Stream stream) {
  const DType params = batch_norm_param_dtype({&weight, &bias}, batch_norm_stats_dtype(x.dtype()));
  dispatch_batch_norm_types(x.dtype(), params, "batch_norm (CUDA)", [&]<class T, class P>() {
    using M = opmath_t<T>;
    const Tensor coefficients = Tensor::empty({2 * C}, dtype_v<M>, x.device());
    launch_batch_norm_apply<T, P>(x.data<T>(), N, C, S, mean.data<M>(), var.data<M>(), data_if_defined<P>(weight),
                                  data_if_defined<P>(bias), eps, coefficients.data<M>(), y.data<T>(), stream);
  });
}

inline void run_batch_norm_backward(const Tensor& x, const Tensor& g, int64_t N, int64_t C, int64_t S,
                                    const Tensor& mean, const Tensor& var, const Tensor& weight, double eps,
                                    bool training, const Tensor& dx, const Tensor& dweight, const Tensor& dbias,
                                    Stream stream) {
  const bool reads_x = dx.defined() || dweight.defined();
  const DType params = batch_norm_param_dtype({&weight, &dweight, &dbias}, batch_norm_stats_dtype(g.dtype()));
  dispatch_batch_norm_types(g.dtype(), params, "batch_norm backward (CUDA)", [&]<class T, class P>() {
    using A = batch_norm_acc_t<T>;
    using M = opmath_t<T>;
    using Terms = BatchNormGradTerms<A>;
    static_assert(sizeof(Terms) == 3 * sizeof(A), "terms are stored as triples of the accumulate type");
    const Tensor terms = dx.defined() ? Tensor::empty({3 * C}, dtype_v<A>, g.device()) : Tensor();
    Terms* terms_data = terms.defined() ? reinterpret_cast<Terms*>(terms.data<A>()) : nullptr;
    if (S == 1) {
      // [R, C] rows (channels-last or [N, C] data): column reductions.
      const Tensor partials = row_partials_buffer<A>(N, C, g.device());
      launch_batch_norm_rows_backward<T, P>(
          reads_x ? x.data<T>() : nullptr, g.data<T>(), N, C, reads_x ? mean.data<M>() : nullptr,
          reads_x ? var.data<M>() : nullptr, data_if_defined<P>(weight), eps, training, data_if_defined<T>(dx),
          data_if_defined<P>(dweight), data_if_defined<P>(dbias), terms_data, row_partials<A>(partials), stream);
      return;
    }
    launch_batch_norm_backward<T, P>(
        reads_x ? x.data<T>() : nullptr, g.data<T>(), N, C, S, reads_x ? mean.data<M>() : nullptr,
        reads_x ? var.data<M>() : nullptr, data_if_defined<P>(weight), eps, training, data_if_defined<T>(dx),
        data_if_defined<P>(dweight), data_if_defined<P>(dbias), terms_data, stream);
  });
}

inline void run_batch_norm_update_running(const Tensor& running_mean, const Tensor& running_var, const Tensor& mean,
                                          const Tensor& var, double momentum, int64_t count, Stream stream) {
  const DType running = batch_norm_param_dtype({&running_mean, &running_var}, mean.dtype());
  dispatch_batch_norm_running_types(running, mean.dtype(), "batch_norm (CUDA)", [&]<class P, class M>() {
    launch_batch_norm_update_running<P, M>(data_if_defined<P>(running_mean),
                                           running_mean.defined() ? running_mean.strides()[0] : 0,
                                           data_if_defined<P>(running_var),
                                           running_var.defined() ? running_var.strides()[0] : 0, mean.data<M>(),
                                           var.data<M>(), mean.numel(), momentum, count, stream);
  });
}

}  // inline namespace PNEUMA_KERNEL_ABI
}  // namespace pneuma::kern

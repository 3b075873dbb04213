#pragma once
// Tensor-level launches of the sum and max/min kernels (kernels/reduce/reduce.cuh): compiled by nvcc for
// reduce_cuda.cu and by the host compiler for the emulated kernel tests, which therefore run this
// code too (see engine/ops/elementwise/elementwise_kernels.h).
#include <algorithm>
#include <vector>

#include "engine/core/tensor.h"
#include "kernels/reduce/reduce.cuh"

namespace pneuma::kern {
inline namespace PNEUMA_KERNEL_ABI {

// out (contiguous, one element per combination of x's kept dims, in order) = scale times x summed
// over `dims` (sorted, distinct, in range): scale 1 for sum, 1/count for mean, applied before the
// result is rounded to x's dtype. Partial sums, when the plan splits rows, live in a temporary
// tensor of the accumulator type (float64, float32 for bfloat16) on x's device.
inline void run_sum(const Tensor& x, const std::vector<int64_t>& dims, const Tensor& out, Stream stream,
                    double scale = 1.0) {
  Shape row_shape, col_shape;
  Strides row_strides, col_strides;
  for (int64_t d = 0; d < x.dim(); ++d) {
    const bool reduced = std::binary_search(dims.begin(), dims.end(), d);
    (reduced ? col_shape : row_shape).push_back(x.shape()[d]);
    (reduced ? col_strides : row_strides).push_back(x.strides()[d]);
  }
  const int64_t rows = numel_of(row_shape), cols = numel_of(col_shape);
  PNEUMA_CHECK(out.numel() == rows && out.is_contiguous(), "sum (CUDA): output ", out.str(), " does not hold the ",
               rows, " sums of ", x.str());
  const auto row_offsets = make_offset_calculator<1>(row_shape, {row_strides});
  const auto col_offsets = make_offset_calculator<1>(col_shape, {col_strides});
  const SumLaunchPlan plan = plan_sum(rows, cols);
  dispatch_floating_and_bfloat16(x.dtype(), "sum (CUDA)", [&]<class T>() {
    using Acc = sum_accumulator_t<T>;
    const Tensor partials =
        !plan.serial && plan.splits > 1 ? Tensor::empty({rows * plan.splits}, dtype_v<Acc>, x.device()) : Tensor();
    launch_sum_rows<T>(x.data<T>(), row_offsets, col_offsets, rows, cols, out.data<T>(),
                       partials.defined() ? partials.data<Acc>() : nullptr, stream, scale);
  });
}

// values/indices (indices may be undefined) of each row of rows ([outer, inner], contiguous,
// inner > 0), as cpu::minmax_rows; any dtype but the 16-bit floats.
inline void run_minmax_rows(const Tensor& rows, bool is_max, const Tensor& values, const Tensor& indices,
                            Stream stream) {
  const int64_t outer = rows.shape()[0], inner = rows.shape()[1];
  dispatch_all(rows.dtype(), is_max ? "max (CUDA)" : "min (CUDA)", [&]<class T>() {
    launch_minmax_rows<T>(rows.data<T>(), outer, inner, is_max, values.data<T>(),
                          indices.defined() ? indices.data<int64_t>() : nullptr, stream);
  });
}

}  // inline namespace PNEUMA_KERNEL_ABI
}  // namespace pneuma::kern

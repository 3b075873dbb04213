// The batch norm row kernels (kernels/norm/batch_norm.cuh) on channels-last data, executed by the
// CPU emulator through the Tensor-level launch code of the CUDA dispatch (norm_kernels.h): an NHWC
// tensor is the [N * H * W, C, 1] array batch_norm hands both backends, and with S == 1 the
// launchers run the row kernels (coalesced along C). Compared with the CPU row loops on the same
// memory. Both sum in the accumulate type in other orders (the kernels by splits of rows and
// threads with a shift, the loops by row blocks): float32 and float64 results agree to the
// rounding of double sums (kernel_check.h's require_close); bfloat16 data sum in float, so float32
// results agree within 1e-5 (statistics) and 1e-4 (gradients, which cancel) of the value plus of
// the tensor's largest magnitude, and bf16 results, each side rounding its own float result once,
// within one bf16 ulp (2^-7 of the value) plus 1e-3 of the largest magnitude.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "engine/ops/norm/norm_cpu.h"
#include "engine/ops/norm/norm_kernels.h"
#include "engine/pneuma.h"
#include "tests/kernels/kernel_check.h"
#include "tests/support/gradcheck.h"

using namespace pneuma;
using pneuma::testing::require_close;
using pneuma::testing::uniform_values;

namespace {

// Several splits of 64 rows with a shorter last one, channel tiles of 32 with a partial one, fewer
// rows than a split's thread rows, [N, C, 1, 1].
const Shape kShapes[] = {{2, 40, 5, 7}, {3, 7, 9, 10}, {4, 33, 2, 1}, {5, 3, 1, 1}};

Tensor channels_last(const Tensor& t) { return t.clone(MemoryFormat::ChannelsLast); }

Tensor empty_channels_last(const Shape& shape, DType dtype) {
  return Tensor::empty(shape, dtype, Device::cpu(), MemoryFormat::ChannelsLast);
}

// |expected - actual| <= relative * |expected| + fraction * max|expected| per element.
void require_near(const Tensor& expected, const Tensor& actual, double relative, double fraction, const char* what) {
  REQUIRE(expected.dtype() == actual.dtype());
  pneuma::testing::require_near_scaled(expected, actual, relative, fraction, what);
}

// The comparison for a result of the given data dtype: float32/float64 data to double-sum
// rounding; bfloat16 data as described above (`statistics`: the 1e-5 bound of float32 sums).
void require_agree(DType data, const Tensor& expected, const Tensor& actual, const char* what, bool statistics = false) {
  if (data != DType::BFloat16) return require_close(expected, actual, what);
  if (expected.dtype() == DType::BFloat16) return require_near(expected, actual, 0x1p-7, 1e-3, what);
  const double tolerance = statistics ? 1e-5 : 1e-4;
  require_near(expected, actual, tolerance, tolerance, what);
}

// One geometry, training or evaluation, with or without affine parameters of param_dtype: the
// emulated kernels against the CPU loops, forward, backward and the bias-only backward.
void check_rows(const Shape& shape, DType data, DType param_dtype, bool affine, bool training) {
  CAPTURE(shape_str(shape));
  CAPTURE(affine);
  CAPTURE(training);
  const int64_t C = shape[1], R = shape[0] * shape[2] * shape[3];
  const DType stats = data == DType::BFloat16 ? DType::Float32 : data;
  // A mean offset of 100 against a spread of 10: the variance must not cancel.
  const Tensor x = channels_last(uniform_values(shape, 1, DType::Float64, 95, 105).to(data));
  const Tensor weight = affine ? uniform_values({C}, 2, DType::Float64, 0.5, 1.5).to(param_dtype) : Tensor();
  const Tensor bias = affine ? uniform_values({C}, 3, DType::Float64, -1, 1).to(param_dtype) : Tensor();
  Tensor mean = Tensor::empty({C}, stats), var = Tensor::empty({C}, stats);
  if (training) {
    cpu::batch_norm_stats(x, R, C, 1, mean, var);
    const Tensor mean_k = Tensor::empty({C}, stats), var_k = Tensor::empty({C}, stats);
    kern::run_batch_norm_stats(x, R, C, 1, mean_k, var_k, kern::Stream{});
    require_agree(data, mean, mean_k, "mean", true);
    require_agree(data, var, var_k, "var", true);
  } else {
    mean = uniform_values({C}, 4, stats, 95, 105);
    var = uniform_values({C}, 5, stats, 0.5, 9);
  }
  const double eps = 1e-5;
  const Tensor y = empty_channels_last(shape, data), y_k = empty_channels_last(shape, data);
  cpu::batch_norm_apply(x, R, C, 1, mean, var, weight, bias, eps, y);
  kern::run_batch_norm_apply(x, R, C, 1, mean, var, weight, bias, eps, y_k, kern::Stream{});
  require_agree(data, y, y_k, "y");

  const Tensor grad = channels_last(uniform_values(shape, 6, DType::Float64, -1, 1).to(data));
  const Tensor dx = empty_channels_last(shape, data), dx_k = empty_channels_last(shape, data);
  const Tensor dw = affine ? Tensor::empty({C}, param_dtype) : Tensor();
  const Tensor dw_k = affine ? Tensor::empty({C}, param_dtype) : Tensor();
  const Tensor db = Tensor::empty({C}, param_dtype), db_k = Tensor::empty({C}, param_dtype);
  cpu::batch_norm_backward(x, grad, R, C, 1, mean, var, weight, eps, training, dx, dw, db);
  kern::run_batch_norm_backward(x, grad, R, C, 1, mean, var, weight, eps, training, dx_k, dw_k, db_k, kern::Stream{});
  require_agree(data, dx, dx_k, "dx");
  if (affine) require_agree(data, dw, dw_k, "dweight");
  require_agree(data, db, db_k, "dbias");

  // The weight gradient without the input's: the sums kernel runs, the input kernel does not.
  if (affine) {
    const Tensor dw_only = Tensor::empty({C}, param_dtype);
    kern::run_batch_norm_backward(x, grad, R, C, 1, mean, var, weight, eps, training, Tensor(), dw_only, Tensor(),
                                  kern::Stream{});
    require_agree(data, dw, dw_only, "dweight only");
  }
  // Only the bias gradient: x and the statistics are not read.
  const Tensor db_only = Tensor::empty({C}, param_dtype);
  kern::run_batch_norm_backward(Tensor(), grad, R, C, 1, Tensor(), Tensor(), Tensor(), eps, training, Tensor(),
                                Tensor(), db_only, kern::Stream{});
  require_agree(data, db, db_only, "dbias only");
}

}  // namespace

TEST_SUITE("kernels") {

TEST_CASE_TEMPLATE("emulated batch_norm channels last", T, float, double) {
  const DType dtype = dtype_v<T>;
  for (const Shape& shape : kShapes)
    for (const bool affine : {true, false})
      for (const bool training : {true, false}) check_rows(shape, dtype, dtype, affine, training);
}

TEST_CASE("emulated batch_norm channels last bfloat16") {
  for (const DType params : {DType::Float32, DType::BFloat16}) {
    const std::string param_dtype = dtype_name(params);
    CAPTURE(param_dtype);
    for (const Shape& shape : kShapes)
      for (const bool training : {true, false}) check_rows(shape, DType::BFloat16, params, true, training);
  }
}

// Splits of rows as row_splits never makes them at these sizes: more splits than the rows fill
// (empty last splits) and a single split; the launch shape is fixed (kRowTileChannels x
// kRowTileRows), the grid is not.
TEST_CASE("emulated batch_norm channels last: any split count") {
  const kern::RowRange tail = kern::row_split_range(9, 7, 6);
  CHECK(tail.begin == 9);
  CHECK(tail.end == 9);
  const int64_t R = 9, C = 35;
  const Tensor x = uniform_values({R, C}, 7, DType::Float64, -3, 3);
  const Tensor mean = Tensor::empty({C}, DType::Float64), var = Tensor::empty({C}, DType::Float64);
  cpu::batch_norm_stats(x, R, C, 1, mean, var);
  for (const unsigned splits : {1u, 2u, 7u, 12u}) {
    CAPTURE(splits);
    using Partial = kern::BatchNormColumnPartial<double>;
    std::vector<Partial> partials(static_cast<size_t>(splits * C));
    const Tensor mean_k = Tensor::empty({C}, DType::Float64), var_k = Tensor::empty({C}, DType::Float64);
    auto moments = &kern::batch_norm_rows_moments_kernel<double>;
    PNEUMA_LAUNCH(moments, kern::dim3(kern::row_channel_tiles(C), splits),
                  kern::dim3(kern::kRowTileChannels, kern::kRowTileRows), 0, kern::Stream{}, x.data<double>(), R, C,
                  partials.data());
    auto finish = &kern::batch_norm_rows_stats_kernel<double>;
    PNEUMA_LAUNCH(finish, 1u, 64u, 0, kern::Stream{}, static_cast<const Partial*>(partials.data()), R, C,
                  static_cast<int64_t>(splits), mean_k.data<double>(), var_k.data<double>());
    require_close(mean, mean_k, "mean");
    require_close(var, var_k, "var");
  }
  CHECK_THROWS_AS(kern::launch_batch_norm_rows_stats<float>(nullptr, -1, 2, nullptr, nullptr, nullptr, kern::Stream{}),
                  std::invalid_argument);
}

}  // TEST_SUITE

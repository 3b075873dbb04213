// The batch norm kernels on bfloat16 data, executed by the CPU emulator through the Tensor-level
// launch code of the CUDA dispatch (engine/ops/norm/norm_kernels.h), against the CPU reference
// loops on the same data (which tests/ops/test_bf16_norm.cpp checks against the float32 oracle).
// Both sum in float, in other orders: float32 results (statistics, float32 parameter gradients)
// agree to float rounding of the sums, 1e-5 (statistics) and 1e-4 (gradients, which cancel) of the
// value plus of the tensor's largest magnitude; bf16 results may round to neighbouring bf16 values
// when the float results straddle a rounding boundary, so they agree within one bf16 ulp (2^-8 of
// the value) plus 1e-3 of the tensor's largest magnitude.
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
using pneuma::testing::uniform_values;

namespace {

struct Geometry {
  int64_t N, C, S;
};

// Rows (S = 1), images, long channels (several block strides), odd sizes.
const Geometry kGeometries[] = {{8, 5, 1}, {4, 3, 30}, {2, 2, 1000}, {3, 7, 17}};

// |expected - actual| <= relative * |expected| + fraction * max|expected| per element, both of
// `dtype`.
void require_near(const Tensor& expected, const Tensor& actual, DType dtype, double relative, double fraction,
                  const char* what) {
  REQUIRE(expected.dtype() == dtype);
  REQUIRE(actual.dtype() == dtype);
  pneuma::testing::require_near_scaled(expected, actual, relative, fraction, what);
}

void require_near_as(const Tensor& expected, const Tensor& actual, const char* what) {
  if (expected.dtype() == DType::BFloat16) require_near(expected, actual, DType::BFloat16, 1.0 / 256, 1e-3, what);
  else require_near(expected, actual, DType::Float32, 1e-4, 1e-4, what);
}

// bf16 data, rounded from uniform values in [lo, hi).
Tensor bf16_values(const Shape& shape, uint64_t seed, double lo, double hi) {
  return uniform_values(shape, seed, DType::Float32, lo, hi).to(DType::BFloat16);
}

}  // namespace

TEST_SUITE("kernels") {

TEST_CASE("emulated batch_norm bfloat16") {
  const DType stats = DType::Float32;  // statistics of bf16 data, whatever the parameters' dtype
  for (const DType params : {DType::Float32, DType::BFloat16}) {
    for (const Geometry g : kGeometries) {
      for (const bool affine : {true, false}) {
        for (const bool training : {true, false}) {
          const std::string param_dtype = dtype_name(params);
          CAPTURE(param_dtype);
          CAPTURE(g.N);
          CAPTURE(g.C);
          CAPTURE(g.S);
          CAPTURE(affine);
          CAPTURE(training);
          // A mean offset of 100 against a spread of 10 exercises the two-pass variance.
          const Tensor x = bf16_values({g.N, g.C, g.S}, 1, 95, 105);
          const Tensor weight = affine ? uniform_values({g.C}, 2, DType::Float32, 0.5, 1.5).to(params) : Tensor();
          const Tensor bias = affine ? uniform_values({g.C}, 3, DType::Float32, -1, 1).to(params) : Tensor();
          Tensor mean = Tensor::empty({g.C}, stats), var = Tensor::empty({g.C}, stats);
          if (training) {
            cpu::batch_norm_stats(x, g.N, g.C, g.S, mean, var);
            const Tensor mean_k = Tensor::empty({g.C}, stats), var_k = Tensor::empty({g.C}, stats);
            kern::run_batch_norm_stats(x, g.N, g.C, g.S, mean_k, var_k, kern::Stream{});
            require_near(mean, mean_k, stats, 1e-5, 1e-5, "mean");
            require_near(var, var_k, stats, 1e-5, 1e-5, "var");
          } else {
            mean = uniform_values({g.C}, 4, stats, 95, 105);
            var = uniform_values({g.C}, 5, stats, 0.5, 9);
          }
          const double eps = 1e-5;
          const Tensor y = Tensor::empty(x.shape(), DType::BFloat16), y_k = Tensor::empty(x.shape(), DType::BFloat16);
          cpu::batch_norm_apply(x, g.N, g.C, g.S, mean, var, weight, bias, eps, y);
          kern::run_batch_norm_apply(x, g.N, g.C, g.S, mean, var, weight, bias, eps, y_k, kern::Stream{});
          require_near_as(y, y_k, "y");

          const Tensor grad = bf16_values(x.shape(), 6, -1, 1);
          const Tensor dx = Tensor::empty(x.shape(), DType::BFloat16), dx_k = Tensor::empty(x.shape(), DType::BFloat16);
          const Tensor dw = affine ? Tensor::empty({g.C}, params) : Tensor();
          const Tensor dw_k = affine ? Tensor::empty({g.C}, params) : Tensor();
          const Tensor db = Tensor::empty({g.C}, params), db_k = Tensor::empty({g.C}, params);
          cpu::batch_norm_backward(x, grad, g.N, g.C, g.S, mean, var, weight, eps, training, dx, dw, db);
          kern::run_batch_norm_backward(x, grad, g.N, g.C, g.S, mean, var, weight, eps, training, dx_k, dw_k, db_k,
                                        kern::Stream{});
          require_near_as(dx, dx_k, "dx");
          if (affine) require_near_as(dw, dw_k, "dweight");
          require_near_as(db, db_k, "dbias");

          // Only the bias gradient: x and the statistics are not read.
          const Tensor db_only = Tensor::empty({g.C}, params);
          kern::run_batch_norm_backward(Tensor(), grad, g.N, g.C, g.S, Tensor(), Tensor(), Tensor(), eps, training,
                                        Tensor(), Tensor(), db_only, kern::Stream{});
          require_near_as(db, db_only, "dbias only");
        }
      }
    }
  }
}

TEST_CASE("emulated batch_norm running statistics bfloat16") {
  // Float32 batch statistics (those of bf16 data) into float32 running statistics (autocast) and
  // into bfloat16 ones (a bf16 model); a strided running mean (every other element of a buffer).
  const Tensor mean = uniform_values({6}, 1, DType::Float32, -1, 1), var = uniform_values({6}, 2, DType::Float32, 0.5, 2);
  for (const DType running : {DType::Float32, DType::BFloat16}) {
    const std::string running_dtype = dtype_name(running);
    CAPTURE(running_dtype);
    const Tensor mean_buffer = uniform_values({12}, 3, DType::Float32, -1, 1).to(running);
    const Tensor var_buffer = uniform_values({6}, 4, DType::Float32, 1, 2).to(running);
    const Tensor running_mean = mean_buffer.clone().slice(0, 0, 12, 2), running_var = var_buffer.clone();
    const Tensor running_mean_k = mean_buffer.clone().slice(0, 0, 12, 2), running_var_k = var_buffer.clone();
    cpu::batch_norm_update_running(running_mean, running_var, mean, var, 0.1, 40);
    kern::run_batch_norm_update_running(running_mean_k, running_var_k, mean, var, 0.1, 40, kern::Stream{});
    // The same per-channel expression on both sides: equal bits.
    pneuma::testing::require_same_bits(running_mean, running_mean_k);
    pneuma::testing::require_same_bits(running_var, running_var_k);
    // And the update itself, in double here: within one bf16 (or float) rounding.
    const std::vector<double> before = var_buffer.to_vector(), v = var.to_vector(), after = running_var.to_vector();
    const double rounding = running == DType::BFloat16 ? 1.0 / 256 : 1e-6;
    for (size_t c = 0; c < before.size(); ++c) {
      const double expected = 0.9 * before[c] + 0.1 * v[c] * 40.0 / 39.0;
      CHECK(std::fabs(after[c] - expected) <= rounding * std::fabs(expected));
    }
  }
}

}  // TEST_SUITE

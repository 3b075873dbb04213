// The pooling kernels on bfloat16 data, executed by the CPU emulator through the Tensor-level launch
// code of the CUDA dispatch (engine/ops/pool/pool_kernels.h), against the CPU reference loops. Both
// load bfloat16, compute in float (opmath_t) in the same order and round each output once, so the
// results are bitwise equal; the loops themselves are checked against the float32 oracle in
// tests/ops/test_bf16_conv_pool.cpp.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "engine/ops/pool/pool_kernels.h"
#include "engine/pneuma.h"
#include "tests/kernels/kernel_check.h"

using namespace pneuma;
using kern::Pool2d;
using pneuma::testing::require_same_bits;
using pneuma::testing::uniform_values;

namespace {

Pool2d window_pool(int64_t N, int64_t C, int64_t ih, int64_t iw, int64_t k, int64_t s, int64_t pad, bool ceil_mode) {
  Pool2d p;
  p.N = N, p.C = C, p.ih = ih, p.iw = iw;
  p.kh = p.kw = k, p.sh = p.sw = s, p.ph = p.pw = pad;
  p.oh = kern::pool_output_size(ih, k, pad, s, 1, ceil_mode);
  p.ow = kern::pool_output_size(iw, k, pad, s, 1, ceil_mode);
  return p;
}

Tensor planes(const Pool2d& p, bool output) {
  return Tensor::empty(output ? Shape{p.N * p.C, p.oh, p.ow} : Shape{p.N * p.C, p.ih, p.iw}, DType::BFloat16);
}

// bfloat16 values in [-2, 2); on a grid of 1/8 when `ties`, so that windows hold equal maxima.
Tensor bf16_values(const Shape& shape, uint64_t seed, bool ties) {
  return uniform_values(shape, seed, DType::Float32, -2, 2, ties ? 0.125 : 0).to(DType::BFloat16);
}

// ResNet's max pool (3x3 s2 p1), a ceil-mode window, and overlapping 3x3 s1 windows (the backward
// sums several output gradients into one input element: a float sum, rounded once).
const Pool2d kGeometries[] = {
    window_pool(2, 3, 16, 16, 3, 2, 1, false),
    window_pool(1, 2, 11, 10, 3, 2, 1, true),
    window_pool(1, 2, 9, 9, 3, 1, 1, false),
};

}  // namespace

TEST_SUITE("kernels") {

TEST_CASE("emulated max_pool2d bfloat16") {
  for (const Pool2d& p : kGeometries) {
    for (const bool ties : {false, true}) {
      CAPTURE(p.ih);
      CAPTURE(p.sh);
      CAPTURE(ties);
      Tensor x = bf16_values({p.N * p.C, p.ih, p.iw}, 3, ties);
      if (ties) {  // a NaN wins its windows, on both sides
        x = x.to(DType::Float32);
        x.data<float>()[5] = std::numeric_limits<float>::quiet_NaN();
        x = x.to(DType::BFloat16);
      }
      const Tensor y_ref = planes(p, true), y = planes(p, true);
      const Tensor i_ref = Tensor::empty(y.shape(), DType::Int64), i = Tensor::empty(y.shape(), DType::Int64);
      cpu::max_pool2d_forward(x, p, y_ref, i_ref);
      kern::run_max_pool2d_forward(x, p, y, i, kern::Stream{});
      require_same_bits(y_ref, y);
      require_same_bits(i_ref, i);
      const Tensor g = bf16_values(y.shape(), 4, false);
      const Tensor dx_ref = planes(p, false), dx = planes(p, false);
      cpu::max_pool2d_backward(g, i_ref, p, dx_ref);
      kern::run_max_pool2d_backward(g, i_ref, p, dx, kern::Stream{});
      require_same_bits(dx_ref, dx);
    }
  }
}

TEST_CASE("emulated avg_pool2d bfloat16") {
  const cpu::AvgOptions options[] = {{true, std::nullopt}, {false, std::nullopt}, {true, 5}};
  for (const Pool2d& p : kGeometries) {
    for (const cpu::AvgOptions& o : options) {
      CAPTURE(p.ih);
      CAPTURE(p.sh);
      CAPTURE(o.count_include_pad);
      CAPTURE(o.divisor_override.has_value());
      const Tensor x = bf16_values({p.N * p.C, p.ih, p.iw}, 5, false);
      const Tensor y_ref = planes(p, true), y = planes(p, true);
      cpu::avg_pool2d_forward(x, p, o, y_ref);
      kern::run_avg_pool2d_forward(x, p, o, y, kern::Stream{});
      require_same_bits(y_ref, y);
      const Tensor g = bf16_values(y.shape(), 6, false);
      const Tensor dx_ref = planes(p, false), dx = planes(p, false);
      cpu::avg_pool2d_backward(g, p, o, dx_ref);
      kern::run_avg_pool2d_backward(g, p, o, dx, kern::Stream{});
      require_same_bits(dx_ref, dx);
    }
  }
}

TEST_CASE("emulated adaptive_avg_pool2d bfloat16") {
  struct Sizes {
    int64_t ih, iw, oh, ow;
  };
  // ResNet's global pooling, uneven bins, and overlapping bins (more outputs than inputs).
  for (const Sizes s : {Sizes{7, 7, 1, 1}, Sizes{10, 7, 3, 4}, Sizes{3, 5, 7, 6}}) {
    CAPTURE(s.ih);
    CAPTURE(s.oh);
    Pool2d p;
    p.N = 2, p.C = 3, p.ih = s.ih, p.iw = s.iw, p.oh = s.oh, p.ow = s.ow;
    const Tensor x = bf16_values({p.N * p.C, p.ih, p.iw}, 7, false);
    const Tensor y_ref = planes(p, true), y = planes(p, true);
    cpu::adaptive_avg_pool2d_forward(x, p, y_ref);
    kern::run_adaptive_avg_pool2d_forward(x, p, y, kern::Stream{});
    require_same_bits(y_ref, y);
    const Tensor g = bf16_values(y.shape(), 8, false);
    const Tensor dx_ref = planes(p, false), dx = planes(p, false);
    cpu::adaptive_avg_pool2d_backward(g, p, dx_ref);
    kern::run_adaptive_avg_pool2d_backward(g, p, dx, kern::Stream{});
    require_same_bits(dx_ref, dx);
  }
}

TEST_CASE("emulated pooling bfloat16 rounds a float sum once") {
  // 49 copies of 1 + 2^-7 (bf16's next value after 1): their float sum and mean are exact, while a
  // bfloat16 running sum (ulp 0.25 past 32) would drop most of each 2^-7 and lose the mean.
  Pool2d p;
  p.N = 1, p.C = 1, p.ih = 7, p.iw = 7, p.oh = 1, p.ow = 1;
  const float value = 1.0f + 1.0f / 128;
  const Tensor x = Tensor::full({1, 7, 7}, value, DType::Float32).to(DType::BFloat16);
  const Tensor y = planes(p, true);
  kern::run_adaptive_avg_pool2d_forward(x, p, y, kern::Stream{});
  CHECK(y.to(DType::Float32).to_vector() == std::vector<double>{value});
}

}  // TEST_SUITE

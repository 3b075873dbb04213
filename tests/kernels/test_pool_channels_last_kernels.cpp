// The pooling kernels on channels-last (NHWC in memory) tensors, executed by the CPU emulator through
// the Tensor-level launch code of the CUDA dispatch (engine/ops/pool/pool_kernels.h). Each thread
// takes one element in memory order, so the NHWC indexing is exercised on its own: the results must
// equal, bit for bit, the CPU reference on the same channels-last tensors (its loops run on
// row-major copies) and the kernels on row-major tensors; max-pool indices stay h * W + w.
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

Pool2d window_pool(int64_t N, int64_t C, int64_t ih, int64_t iw, int64_t k, int64_t s, int64_t pad, int64_t dilation,
                   bool ceil_mode) {
  Pool2d p;
  p.N = N, p.C = C, p.ih = ih, p.iw = iw;
  p.kh = p.kw = k, p.sh = p.sw = s, p.ph = p.pw = pad, p.dh = p.dw = dilation;
  p.oh = kern::pool_output_size(ih, k, pad, s, dilation, ceil_mode);
  p.ow = kern::pool_output_size(iw, k, pad, s, dilation, ceil_mode);
  p.channels_last = true;
  return p;
}

// ResNet's max pool (3x3 s2 p1) with C = 5 (no multiple of anything), overlapping 3x3 s1 windows,
// dilation with ceil mode, and C = 1 (both layouts are the same memory).
const Pool2d kGeometries[] = {
    window_pool(2, 5, 9, 8, 3, 2, 1, 1, false),
    window_pool(1, 3, 7, 7, 3, 1, 1, 1, false),
    window_pool(2, 4, 9, 10, 3, 2, 1, 2, true),
    window_pool(2, 1, 6, 6, 2, 2, 0, 1, false),
};

Pool2d row_major(Pool2d p) {
  p.channels_last = false;
  return p;
}

Shape input_shape(const Pool2d& p) { return {p.N, p.C, p.ih, p.iw}; }
Shape output_shape(const Pool2d& p) { return {p.N, p.C, p.oh, p.ow}; }

Tensor empty_cl(const Shape& shape, DType dtype) {
  return Tensor::empty(shape, dtype, Device::cpu(), MemoryFormat::ChannelsLast);
}

// Values on a grid of 1/8 (windows hold equal maxima) with a NaN, as a channels-last tensor.
Tensor values_cl(const Shape& shape, uint64_t seed, DType dtype, bool with_nan) {
  Tensor t = uniform_values(shape, seed, DType::Float64, -2, 2, 0.125);
  if (with_nan) {
    std::vector<double> v = t.to_vector();
    v[v.size() / 3] = std::numeric_limits<double>::quiet_NaN();
    t = Tensor::from_vector(v, shape, DType::Float64);
  }
  return t.to(dtype).contiguous(MemoryFormat::ChannelsLast);
}

}  // namespace

TEST_SUITE("kernels") {
  TEST_CASE_TEMPLATE("emulated max_pool2d channels last", T, float, double, bfloat16) {
    const DType dtype = dtype_v<T>;
    for (const Pool2d& p : kGeometries) {
      for (const bool with_nan : {false, true}) {
        CAPTURE(p.C);
        CAPTURE(p.sh);
        CAPTURE(with_nan);
        const Tensor x = values_cl(input_shape(p), 3, dtype, with_nan);
        const Tensor y_ref = empty_cl(output_shape(p), dtype), i_ref = empty_cl(output_shape(p), DType::Int64);
        const Tensor y = empty_cl(output_shape(p), dtype), i = empty_cl(output_shape(p), DType::Int64);
        cpu::max_pool2d_forward(x, p, y_ref, i_ref);
        kern::run_max_pool2d_forward(x, p, y, i, kern::Stream{});
        require_same_bits(y_ref, y);
        require_same_bits(i_ref, i);
        // The row-major kernels on the same values: the same outputs and plane indices.
        const Tensor y_rows = Tensor::empty(output_shape(p), dtype),
                     i_rows = Tensor::empty(output_shape(p), DType::Int64);
        kern::run_max_pool2d_forward(x.contiguous(), row_major(p), y_rows, i_rows, kern::Stream{});
        require_same_bits(y_rows, y);
        require_same_bits(i_rows, i);

        const Tensor g =
            Tensor::randn(output_shape(p), 4, DType::Float32).to(dtype).contiguous(MemoryFormat::ChannelsLast);
        const Tensor dx_ref = empty_cl(input_shape(p), dtype), dx = empty_cl(input_shape(p), dtype);
        cpu::max_pool2d_backward(g, i_ref, p, dx_ref);
        kern::run_max_pool2d_backward(g, i, p, dx, kern::Stream{});
        require_same_bits(dx_ref, dx);
      }
    }
  }

  TEST_CASE_TEMPLATE("emulated avg_pool2d channels last", T, float, double, bfloat16) {
    const DType dtype = dtype_v<T>;
    const cpu::AvgOptions options[] = {{true, std::nullopt}, {false, std::nullopt}, {true, 3}};
    for (const Pool2d& base : kGeometries) {
      Pool2d p = base;  // avg pooling has no dilation; ceil mode in w lets windows hang past the padding
      p.dh = p.dw = 1;
      p.oh = kern::pool_output_size(p.ih, p.kh, p.ph, p.sh, 1, false);
      p.ow = kern::pool_output_size(p.iw, p.kw, p.pw, p.sw, 1, true);
      for (const cpu::AvgOptions& o : options) {
        CAPTURE(p.C);
        CAPTURE(p.sh);
        CAPTURE(o.count_include_pad);
        CAPTURE(o.divisor_override.has_value());
        const Tensor x = values_cl(input_shape(p), 5, dtype, false);
        const Tensor y_ref = empty_cl(output_shape(p), dtype), y = empty_cl(output_shape(p), dtype);
        cpu::avg_pool2d_forward(x, p, o, y_ref);
        kern::run_avg_pool2d_forward(x, p, o, y, kern::Stream{});
        require_same_bits(y_ref, y);
        const Tensor g =
            Tensor::randn(output_shape(p), 6, DType::Float32).to(dtype).contiguous(MemoryFormat::ChannelsLast);
        const Tensor dx_ref = empty_cl(input_shape(p), dtype), dx = empty_cl(input_shape(p), dtype);
        cpu::avg_pool2d_backward(g, p, o, dx_ref);
        kern::run_avg_pool2d_backward(g, p, o, dx, kern::Stream{});
        require_same_bits(dx_ref, dx);
        const Tensor dx_rows = Tensor::empty(input_shape(p), dtype);
        kern::run_avg_pool2d_backward(g.contiguous(), row_major(p), o, dx_rows, kern::Stream{});
        require_same_bits(dx_rows, dx);
      }
    }
  }

  TEST_CASE_TEMPLATE("emulated adaptive_avg_pool2d channels last", T, float, double, bfloat16) {
    const DType dtype = dtype_v<T>;
    struct Sizes {
      int64_t C, ih, iw, oh, ow;
    };
    // Global pooling (ResNet's head), uneven bins, and more outputs than inputs (overlapping bins).
    for (const Sizes s : {Sizes{6, 7, 7, 1, 1}, Sizes{3, 10, 7, 3, 4}, Sizes{5, 3, 5, 7, 6}}) {
      CAPTURE(s.C);
      CAPTURE(s.ih);
      CAPTURE(s.oh);
      Pool2d p;
      p.N = 2, p.C = s.C, p.ih = s.ih, p.iw = s.iw, p.oh = s.oh, p.ow = s.ow, p.channels_last = true;
      const Tensor x = values_cl(input_shape(p), 7, dtype, false);
      const Tensor y_ref = empty_cl(output_shape(p), dtype), y = empty_cl(output_shape(p), dtype);
      cpu::adaptive_avg_pool2d_forward(x, p, y_ref);
      kern::run_adaptive_avg_pool2d_forward(x, p, y, kern::Stream{});
      require_same_bits(y_ref, y);
      const Tensor g =
          Tensor::randn(output_shape(p), 8, DType::Float32).to(dtype).contiguous(MemoryFormat::ChannelsLast);
      const Tensor dx_ref = empty_cl(input_shape(p), dtype), dx = empty_cl(input_shape(p), dtype);
      cpu::adaptive_avg_pool2d_backward(g, p, dx_ref);
      kern::run_adaptive_avg_pool2d_backward(g, p, dx, kern::Stream{});
      require_same_bits(dx_ref, dx);
    }
  }

  TEST_CASE("emulated pooling channels last: launches check the layout") {
    // A row-major tensor handed to a channels-last launch would be read with the wrong strides.
    const Pool2d p = kGeometries[0];
    const Tensor x = Tensor::randn(input_shape(p), 9);
    const Tensor y = empty_cl(output_shape(p), DType::Float32);
    CHECK_THROWS_WITH_AS(kern::run_avg_pool2d_forward(x, p, {}, y, kern::Stream{}),
                         doctest::Contains("expected a channels_last tensor"), Error);
  }

}  // TEST_SUITE

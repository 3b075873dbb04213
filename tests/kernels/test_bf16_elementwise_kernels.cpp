// The bfloat16 elementwise, conversion and sum kernels, executed by the CPU emulator through the
// Tensor-level launch code of the CUDA dispatch, against the CPU loops. Elementwise kernels and
// conversions evaluate the same per-element math (float32 compute, one rounding) as the CPU loops:
// bitwise equal. Sums add in float32 in another order: within one bfloat16 rounding.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <vector>

#include "engine/cpu/copy.h"
#include "engine/ops/elementwise/elementwise_cpu.h"
#include "engine/ops/elementwise/elementwise_kernels.h"
#include "engine/ops/reduce/reduce_kernels.h"
#include "engine/pneuma.h"
#include "tests/kernels/elementwise_cases.h"
#include "tests/kernels/kernel_check.h"

using namespace pneuma;
using kern::BinaryOp;
using kern::UnaryOp;
using pneuma::testing::kShapes;
using pneuma::testing::kUnaryCases;
using pneuma::testing::layouts;
using pneuma::testing::require_same_bits;
using pneuma::testing::UnaryCase;

namespace {


// The float32 result of a unary op on x's values, rounded to bfloat16: what the bfloat16 kernel
// must produce.
Tensor rounded_float32_unary(UnaryOp op, const Tensor& x, const kern::UnaryParams& p) {
  const Tensor x32 = x.to(DType::Float32);
  const Tensor y32 = Tensor::empty(x.shape(), DType::Float32);
  cpu::unary_forward(op, x32, y32, p);
  return y32.to(DType::BFloat16);
}

}  // namespace

TEST_SUITE("kernels") {

TEST_CASE("emulated elementwise unary bfloat16") {
  for (const UnaryCase& c : kUnaryCases) {
    for (const Shape& shape : kShapes) {
      for (const Tensor& x : layouts(shape, 10, c.lo, c.hi, DType::BFloat16)) {
        CAPTURE(static_cast<int>(c.op));
        CAPTURE(shape_str(shape));
        CAPTURE(shape_str(x.strides()));
        const Tensor expected = Tensor::empty(shape, DType::BFloat16);
        cpu::unary_forward(c.op, x, expected, c.params);
        // The CPU loop computes in float32 and rounds once.
        require_same_bits(rounded_float32_unary(c.op, x, c.params), expected);
        const Tensor actual = Tensor::empty(shape, DType::BFloat16);
        kern::run_unary_forward(c.op, x, actual, c.params, kern::Stream{});
        require_same_bits(expected, actual);
      }
    }
  }
}

TEST_CASE("emulated elementwise unary backward bfloat16") {
  for (const UnaryCase& c : kUnaryCases) {
    for (const Shape& shape : kShapes) {
      CAPTURE(static_cast<int>(c.op));
      CAPTURE(shape_str(shape));
      const std::vector<Tensor> xs = layouts(shape, 20, c.lo, c.hi, DType::BFloat16);
      const std::vector<Tensor> gs = layouts(shape, 30, -1, 1, DType::BFloat16);
      for (size_t k = 0; k < xs.size(); ++k) {
        const Tensor& x = xs[k];
        const Tensor& g = gs[(k + 1) % gs.size()];
        const Tensor y = Tensor::empty(shape, DType::BFloat16);
        cpu::unary_forward(c.op, x, y, c.params);
        const Tensor expected = Tensor::empty(shape, DType::BFloat16);
        cpu::unary_backward(c.op, x, y, g, expected, c.params);
        // The float32 formula on the same (bfloat16) x, y and g, rounded once.
        const Tensor expected32 = Tensor::empty(shape, DType::Float32);
        cpu::unary_backward(c.op, x.to(DType::Float32), y.to(DType::Float32), g.to(DType::Float32), expected32,
                            c.params);
        require_same_bits(expected32.to(DType::BFloat16), expected);
        const Tensor actual = Tensor::empty(shape, DType::BFloat16);
        kern::run_unary_backward(c.op, x, y.transpose(0, -1).contiguous().transpose(0, -1), g, actual, c.params,
                                 kern::Stream{});
        require_same_bits(expected, actual);
      }
    }
  }
}

TEST_CASE("emulated elementwise binary bfloat16") {
  struct Operands {
    Shape a, b;
  };
  const Operands shapes[] = {{{37}, {37}}, {{5, 7}, {7}}, {{2, 1, 5}, {4, 1}}, {{3, 4, 91}, {}}, {{4, 1, 6}, {4, 3, 1}}};
  const BinaryOp ops[] = {BinaryOp::Add, BinaryOp::Sub, BinaryOp::Mul, BinaryOp::Div, BinaryOp::Pow,
                          BinaryOp::Gt,  BinaryOp::Lt,  BinaryOp::Ge,  BinaryOp::Le,  BinaryOp::Eq};
  for (const BinaryOp op : ops) {
    for (const Operands& s : shapes) {
      CAPTURE(static_cast<int>(op));
      CAPTURE(shape_str(s.a));
      CAPTURE(shape_str(s.b));
      const Shape out_shape = broadcast_shapes(s.a, s.b, "test");
      const bool comparison = op >= BinaryOp::Gt;
      const DType out_dtype = comparison ? DType::Bool : DType::BFloat16;
      auto operand = [&](const Shape& shape, uint64_t seed) {
        if (shape.empty()) return testing::uniform_values(shape, seed, DType::BFloat16, 0.5, 2, 0.25);
        const std::vector<Tensor> all = layouts(shape, seed, 0.5, 2, DType::BFloat16, 0.25);
        return all[seed % all.size()];
      };
      for (uint64_t seed = 40; seed < 44; ++seed) {
        const Tensor a = operand(s.a, seed), b = operand(s.b, seed + 5);
        const Tensor expected = Tensor::empty(out_shape, out_dtype);
        cpu::binary_forward(op, a, b, expected);
        const Tensor expected32 = Tensor::empty(out_shape, comparison ? DType::Bool : DType::Float32);
        cpu::binary_forward(op, a.to(DType::Float32), b.to(DType::Float32), expected32);
        require_same_bits(comparison ? expected32 : expected32.to(DType::BFloat16), expected);
        const Tensor actual = Tensor::empty(out_shape, out_dtype);
        kern::run_binary_forward(op, a, b, actual, kern::Stream{});
        require_same_bits(expected, actual);
      }
    }
  }
}

TEST_CASE("emulated elementwise copy bfloat16") {
  // Conversions between bfloat16 and every dtype with a C++ type, both ways, any layout: the kernel
  // against the CPU copy. Values with more bits than bfloat16 holds exercise the rounding.
  const DType others[] = {DType::Float32, DType::Float64, DType::Int64, DType::UInt8, DType::Bool};
  for (const DType other : others) {
    for (const Shape& shape : kShapes) {
      CAPTURE(dtype_name(other));
      CAPTURE(shape_str(shape));
      const bool is_float = other == DType::Float32 || other == DType::Float64;
      // Integers in [0, 250) (uint8 holds them), floats in [-300, 300) with all their bits.
      for (const Tensor& source : layouts(shape, 50, is_float ? -300 : 0, is_float ? 300 : 250, other, is_float ? 0 : 1)) {
        for (const auto& [from, to] : {std::pair{source, DType::BFloat16},
                                       std::pair{source.to(DType::BFloat16), other}}) {
          const Tensor expected = Tensor::empty(shape, to);
          cpu::copy_strided(from, expected);
          const Tensor actual = Tensor::empty(shape, to);
          kern::run_copy(from, actual, kern::Stream{});
          require_same_bits(expected, actual);
        }
      }
    }
  }
  // float32 -> bfloat16 rounds to nearest even: 1 + 2^-8 is a tie (to 1), 1 + 3 * 2^-8 too (to 1 + 2^-6).
  const Tensor ties = Tensor::from_vector({1 + 0x1p-8, 1 + 3 * 0x1p-8, 1 + 0x1p-8 + 0x1p-20}, {3});
  const Tensor rounded = Tensor::empty({3}, DType::BFloat16);
  kern::run_copy(ties, rounded, kern::Stream{});
  CHECK(rounded.to_vector() == std::vector<double>{1, 1 + 0x1p-6, 1 + 0x1p-7});
  // A strided output.
  const Tensor x = testing::uniform_values({6, 5}, 61, DType::Float32, -1, 1);
  const Tensor transposed_dst = Tensor::empty({5, 6}, DType::BFloat16).transpose(0, 1);
  kern::run_copy(x, transposed_dst, kern::Stream{});
  require_same_bits(x.to(DType::BFloat16), transposed_dst);
}

TEST_CASE("emulated sum bfloat16") {
  struct Case {
    Shape shape;
    std::vector<int64_t> dims;
  };
  // Short rows (serial kernel), block rows, and few long rows (split into float partial sums).
  const Case cases[] = {{{7}, {}},          {{3, 5}, {1}},      {{4, 6, 5}, {0, 2}}, {{33, 70}, {0}},
                        {{2, 9000}, {1}},   {{3, 2, 5000}, {}}, {{5, 0, 3}, {1}},    {{2, 16, 3, 3}, {0, 2, 3}}};
  for (const Case& c : cases) {
    for (const bool average : {false, true}) {
      CAPTURE(shape_str(c.shape));
      CAPTURE(average);
      const Tensor x = testing::uniform_values(c.shape, 5, DType::BFloat16, -1, 2);
      const std::vector<int64_t> dims = ops::reduction_dims(x, c.dims, "sum");
      int64_t count = 1;
      for (int64_t d : dims) count *= x.shape()[d];
      const double scale = average ? 1.0 / static_cast<double>(count) : 1.0;
      const Tensor expected = average ? mean(x, c.dims) : sum(x, c.dims);
      const Tensor actual = Tensor::empty(expected.shape(), DType::BFloat16);
      kern::run_sum(x, dims, actual, kern::Stream{}, scale);
      // Both accumulate in float32 (in different orders, |terms| <= 2: at most count * 2 * 2^-24
      // apart before scaling) and round once: the results may sit on either side of a rounding
      // boundary, one bfloat16 ulp (2^-7 relative) apart.
      const std::vector<double> e = expected.to_vector(), a = actual.to_vector();
      for (size_t i = 0; i < e.size(); ++i) {
        CAPTURE(i);
        if (std::isnan(e[i])) {  // the mean of nothing
          REQUIRE(std::isnan(a[i]));
          continue;
        }
        REQUIRE(std::fabs(e[i] - a[i]) <= 0x1p-7 * std::fabs(e[i]) + count * 2 * 0x1p-24 * scale);
      }
    }
  }
}

}  // TEST_SUITE

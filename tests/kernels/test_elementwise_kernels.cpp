// The elementwise kernels, executed by the CPU emulator through the same Tensor-level launch code
// the CUDA dispatch uses (engine/ops/elementwise/elementwise_kernels.h), against the CPU loops.
// Both sides evaluate the shared per-element math on the host, so results must be bitwise equal.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <vector>

#include "engine/cpu/copy.h"
#include "engine/ops/elementwise/elementwise_cpu.h"
#include "engine/ops/elementwise/elementwise_kernels.h"
#include "engine/ops/index/index_cpu.h"
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

TEST_SUITE("kernels") {

TEST_CASE_TEMPLATE("emulated elementwise unary", T, float, double) {
  const DType dtype = dtype_v<T>;
  for (const UnaryCase& c : kUnaryCases) {
    for (const Shape& shape : kShapes) {
      uint64_t seed = 10;
      for (const Tensor& x : layouts(shape, seed++, c.lo, c.hi, dtype)) {
        CAPTURE(static_cast<int>(c.op));
        CAPTURE(shape_str(shape));
        CAPTURE(shape_str(x.strides()));
        const Tensor expected = Tensor::empty(shape, dtype);
        cpu::unary_forward(c.op, x, expected, c.params);
        const Tensor actual = Tensor::empty(shape, dtype);
        kern::run_unary_forward(c.op, x, actual, c.params, kern::Stream{});
        require_same_bits(expected, actual);

        // A transposed output: the kernel writes through strides too.
        if (shape.size() > 1) {
          Shape swapped = shape;
          std::swap(swapped.front(), swapped.back());
          const Tensor strided_out = Tensor::empty(swapped, dtype).transpose(0, -1);
          kern::run_unary_forward(c.op, x, strided_out, c.params, kern::Stream{});
          require_same_bits(expected, strided_out);
        }
      }
    }
  }
}

TEST_CASE_TEMPLATE("emulated elementwise unary backward", T, float, double) {
  const DType dtype = dtype_v<T>;
  for (const UnaryCase& c : kUnaryCases) {
    for (const Shape& shape : kShapes) {
      CAPTURE(static_cast<int>(c.op));
      CAPTURE(shape_str(shape));
      const std::vector<Tensor> xs = layouts(shape, 20, c.lo, c.hi, dtype);
      const std::vector<Tensor> gs = layouts(shape, 30, -1, 1, dtype);
      for (size_t k = 0; k < xs.size(); ++k) {
        const Tensor& x = xs[k];
        const Tensor& g = gs[(k + 1) % gs.size()];  // a different layout than x
        const Tensor y = Tensor::empty(shape, dtype);
        cpu::unary_forward(c.op, x, y, c.params);
        const Tensor y_view = y.transpose(0, -1).contiguous().transpose(0, -1);  // same values, other strides
        const Tensor expected = Tensor::empty(shape, dtype);
        cpu::unary_backward(c.op, x, y, g, expected, c.params);
        const Tensor actual = Tensor::empty(shape, dtype);
        kern::run_unary_backward(c.op, x, y_view, g, actual, c.params, kern::Stream{});
        require_same_bits(expected, actual);
      }
    }
  }
  // Ops whose formula does not read x (or y) get an undefined tensor and a null pointer.
  const Tensor x = testing::uniform_values({50}, 3, DType::Float32, -2, 2);
  const Tensor g = testing::uniform_values({50}, 4, DType::Float32, -1, 1);
  const Tensor y = Tensor::empty({50}, DType::Float32);
  cpu::unary_forward(UnaryOp::Sigmoid, x, y, {});
  const Tensor expected = Tensor::empty({50}, DType::Float32), actual = Tensor::empty({50}, DType::Float32);
  cpu::unary_backward(UnaryOp::Sigmoid, Tensor(), y, g, expected, {});
  kern::run_unary_backward(UnaryOp::Sigmoid, Tensor(), y, g, actual, {}, kern::Stream{});
  require_same_bits(expected, actual);
}

TEST_CASE_TEMPLATE("emulated elementwise binary", T, float, double) {
  const DType dtype = dtype_v<T>;
  struct Operands {
    Shape a, b;
  };
  const Operands shapes[] = {{{37}, {37}}, {{5, 7}, {7}}, {{2, 1, 5}, {4, 1}}, {{3, 4, 91}, {}}, {{1}, {2, 3, 5, 7}},
                             {{4, 1, 6}, {4, 3, 1}}};
  const BinaryOp ops[] = {BinaryOp::Add, BinaryOp::Sub, BinaryOp::Mul, BinaryOp::Div, BinaryOp::Pow,
                          BinaryOp::Gt,  BinaryOp::Lt,  BinaryOp::Ge,  BinaryOp::Le,  BinaryOp::Eq};
  for (const BinaryOp op : ops) {
    for (const Operands& s : shapes) {
      CAPTURE(static_cast<int>(op));
      CAPTURE(shape_str(s.a));
      CAPTURE(shape_str(s.b));
      const Shape out_shape = broadcast_shapes(s.a, s.b, "test");
      const DType out_dtype = op >= BinaryOp::Gt ? DType::Bool : dtype;
      // Positive bases keep pow real; values on a grid of quarters make comparisons meet equal elements.
      auto operand = [&](const Shape& shape, uint64_t seed) {
        if (shape.empty()) return testing::uniform_values(shape, seed, dtype, 0.5, 2, 0.25);
        const std::vector<Tensor> all = layouts(shape, seed, 0.5, 2, dtype, 0.25);
        return all[seed % all.size()];
      };
      for (uint64_t seed = 40; seed < 44; ++seed) {
        const Tensor a = operand(s.a, seed), b = operand(s.b, seed + 5);
        const Tensor expected = Tensor::empty(out_shape, out_dtype);
        cpu::binary_forward(op, a, b, expected);
        const Tensor actual = Tensor::empty(out_shape, out_dtype);
        kern::run_binary_forward(op, a, b, actual, kern::Stream{});
        require_same_bits(expected, actual);
      }
    }
  }
}

TEST_CASE("emulated elementwise binary: comparisons see equal elements") {
  const Tensor a = Tensor::from_vector({1, 2, 3, 4}, {4});
  const Tensor b = Tensor::from_vector({1, 5, 3, 0}, {4});
  const Tensor out = Tensor::empty({4}, DType::Bool);
  kern::run_binary_forward(BinaryOp::Eq, a, b, out, kern::Stream{});
  CHECK(out.to_vector() == std::vector<double>{1, 0, 1, 0});
  kern::run_binary_forward(BinaryOp::Ge, a, b, out, kern::Stream{});
  CHECK(out.to_vector() == std::vector<double>{1, 0, 1, 1});
}

TEST_CASE("emulated elementwise copy") {
  const DType dtypes[] = {DType::Float32, DType::Float64, DType::Int64, DType::UInt8, DType::Bool};
  for (const DType from : dtypes) {
    for (const DType to : dtypes) {
      for (const Shape& shape : kShapes) {
        CAPTURE(dtype_name(from));
        CAPTURE(dtype_name(to));
        CAPTURE(shape_str(shape));
        // Halves in [0, 4): conversions to integers truncate, and bool sees some zeros.
        for (const Tensor& source : layouts(shape, 50, 0, 4, from, 0.5)) {
          const Tensor expected = Tensor::empty(shape, to);
          cpu::copy_strided(source, expected);
          const Tensor actual = Tensor::empty(shape, to);
          kern::run_copy(source, actual, kern::Stream{});
          require_same_bits(expected, actual);
        }
      }
    }
  }
  // Same-dtype copies move raw 16-bit elements (float16 has no conversion kernel; bfloat16's are
  // tested in test_bf16_elementwise_kernels.cpp).
  const Tensor half_src = testing::uniform_values({6, 5}, 60, DType::Float32, -1, 1).to(DType::BFloat16);
  const Tensor transposed_dst = Tensor::empty({5, 6}, DType::BFloat16).transpose(0, 1);
  kern::run_copy(half_src, transposed_dst, kern::Stream{});
  require_same_bits(half_src, transposed_dst);
  CHECK_THROWS_AS(kern::run_copy(half_src, Tensor::empty({6, 5}, DType::Float16), kern::Stream{}), Error);
}

TEST_CASE("emulated elementwise where and masked_fill") {
  for (const DType dtype : {DType::Float32, DType::Float64, DType::Int64}) {
    CAPTURE(dtype_name(dtype));
    // condition [5, 1, 7] (transposed storage), a [4, 7] (strided), b [1] (broadcast scalar).
    const Tensor condition = gt(testing::uniform_values({7, 1, 5}, 70, DType::Float32, 0, 1), 0.4).transpose(0, 2);
    const Tensor a = testing::uniform_values({4, 15}, 71, DType::Float64, -50, 50).to(dtype).slice(1, 0, 14, 2);
    const Tensor b = testing::uniform_values({1}, 72, DType::Float64, -50, 50).to(dtype);
    const Shape shape{5, 4, 7};
    const Tensor expected = Tensor::empty(shape, dtype), actual = Tensor::empty(shape, dtype);
    cpu::where(condition, a, b, expected);
    kern::run_where(condition, a, b, actual, kern::Stream{});
    require_same_bits(expected, actual);

    // x [3, 4, 5] transposed storage, mask [4, 1].
    const Tensor x = testing::uniform_values({5, 4, 3}, 73, DType::Float64, -50, 50).to(dtype).permute({2, 1, 0});
    const Tensor mask = lt(testing::uniform_values({4, 1}, 74, DType::Float64, 0, 1), 0.5);
    const Tensor filled_expected = Tensor::empty({3, 4, 5}, dtype), filled = Tensor::empty({3, 4, 5}, dtype);
    cpu::masked_fill(x, mask, -7.0, filled_expected);
    kern::run_masked_fill(x, mask, -7.0, filled, kern::Stream{});
    require_same_bits(filled_expected, filled);
  }
}

TEST_CASE("emulated elementwise kernels: any grid and block shape") {
  // Fewer threads than elements (grid-stride loops), partial warps, one thread, many blocks.
  const Tensor x = testing::uniform_values({3, 333}, 80, DType::Float32, -2, 2).transpose(0, 1);
  const Tensor b = testing::uniform_values({3, 1}, 81, DType::Float32, -2, 2).transpose(0, 1);
  const Shape shape = x.shape();
  const int64_t n = x.numel();
  const Tensor expected = Tensor::empty(shape), expected_sum = Tensor::empty(shape);
  cpu::unary_forward(UnaryOp::Tanh, x, expected, {});
  cpu::binary_forward(BinaryOp::Add, x, b, expected_sum);
  const auto unary_offsets = kern::make_offset_calculator<2>(shape, {contiguous_strides(shape), x.strides()});
  const auto binary_offsets = kern::make_offset_calculator<3>(
      shape, {contiguous_strides(shape), x.strides(), cpu::broadcast_strides(b, shape)});
  struct Launch {
    unsigned blocks, threads;
  };
  for (const Launch launch : {Launch{1, 1}, Launch{1, 33}, Launch{3, 64}, Launch{7, 100}, Launch{40, 32},
                              Launch{2000, 1}}) {
    CAPTURE(launch.blocks);
    CAPTURE(launch.threads);
    const Tensor y = Tensor::empty(shape), sum = Tensor::empty(shape);
    auto tanh_kernel = &kern::unary_forward_kernel<UnaryOp::Tanh, float>;
    PNEUMA_LAUNCH(tanh_kernel, launch.blocks, launch.threads, 0, kern::Stream{}, n, unary_offsets, x.data<float>(),
                  y.data<float>(), kern::UnaryParams{});
    require_same_bits(expected, y);
    auto add_kernel = &kern::binary_forward_kernel<BinaryOp::Add, float>;
    PNEUMA_LAUNCH(add_kernel, launch.blocks, launch.threads, 0, kern::Stream{}, n, binary_offsets, x.data<float>(),
                  b.data<float>(), sum.data<float>());
    require_same_bits(expected_sum, sum);
  }
}

TEST_CASE("emulated elementwise channels last walks memory order") {
  // Channels-last operands and output: the dims are taken in the output's memory order, so the
  // whole tensor merges into one flat dim (coalesced on a GPU), and the values are the CPU's.
  const Shape shape{2, 3, 4, 5};
  const Strides cl = strides_for(shape, MemoryFormat::ChannelsLast, "test");
  const auto flat = kern::make_memory_order_offset_calculator<3>(shape, {cl, cl, cl});
  CHECK(flat.dims == 1);
  CHECK(flat.sizes[0] == 120);
  // Row-major operands walked in the channels-last output's order still land on the right elements.
  const auto mixed = kern::make_memory_order_offset_calculator<2>(shape, {cl, contiguous_strides(shape)});
  for (int64_t i = 0; i < 120; ++i) {
    const auto o = mixed.at(i);
    const int64_t c = i % 3, w = (i / 3) % 5, h = (i / 15) % 4, n = i / 60;
    CHECK(o.operand[0] == i);
    CHECK(o.operand[1] == ((n * 3 + c) * 4 + h) * 5 + w);
  }

  const Tensor a = Tensor::randn(shape, 21).contiguous(MemoryFormat::ChannelsLast);
  const Tensor b = Tensor::randn(shape, 22);
  const Tensor bias = Tensor::randn({1, 3, 1, 1}, 23);
  for (const Tensor& other : {b, bias}) {
    const Tensor expected = Tensor::empty_like(a);
    cpu::binary_forward(BinaryOp::Mul, a, other, expected);
    const Tensor actual = Tensor::empty_like(a);
    kern::run_binary_forward(BinaryOp::Mul, a, other, actual, kern::Stream{});
    require_same_bits(expected, actual);
    CHECK(expected.to_vector() == mul(a.contiguous(), other).to_vector());
  }
  const Tensor copied = Tensor::empty_like(a);
  kern::run_copy(b, copied, kern::Stream{});
  CHECK(copied.to_vector() == b.to_vector());
}

TEST_CASE("emulated elementwise offset calculator merges dims") {
  // Contiguous operands collapse to one dim.
  auto contiguous = kern::make_offset_calculator<2>({2, 3, 4}, {Strides{12, 4, 1}, Strides{12, 4, 1}});
  CHECK(contiguous.dims == 1);
  CHECK(contiguous.sizes[0] == 24);
  // A transposed operand keeps two dims; size-1 dims vanish.
  auto transposed = kern::make_offset_calculator<2>({3, 1, 4}, {Strides{4, 4, 1}, Strides{1, 99, 3}});
  CHECK(transposed.dims == 2);
  for (int64_t i = 0; i < 12; ++i) {
    const auto o = transposed.at(i);
    CHECK(o.operand[0] == i);
    CHECK(o.operand[1] == (i / 4) + 3 * (i % 4));
  }
  // A broadcast (stride 0) dim merges with another broadcast dim only.
  auto broadcast = kern::make_offset_calculator<2>({2, 3, 4}, {Strides{12, 4, 1}, Strides{0, 0, 1}});
  CHECK(broadcast.dims == 2);
  CHECK(broadcast.at(13).operand[1] == 1);
  // A scalar: no dims, offset 0.
  auto scalar = kern::make_offset_calculator<1>({}, {Strides{}});
  CHECK(scalar.dims == 0);
  CHECK(scalar.at(0).operand[0] == 0);
  // More unmergeable dims than the kernels carry is an error, not a wrong answer.
  Shape many(kern::kMaxElementwiseDims + 1, 2);
  Strides spread(many.size());
  for (size_t d = 0; d < many.size(); ++d) spread[d] = int64_t{3} << (2 * (many.size() - d));  // never mergeable
  CHECK_THROWS_AS(kern::make_offset_calculator<1>(many, {spread}), std::invalid_argument);
  CHECK_THROWS_AS(kern::make_offset_calculator<1>({2, 3}, {Strides{1}}), std::invalid_argument);
}

}  // TEST_SUITE

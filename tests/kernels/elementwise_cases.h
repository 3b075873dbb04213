#pragma once
// What the emulated elementwise kernel tests sweep (float32/float64 in test_elementwise_kernels.cpp,
// bfloat16 in test_bf16_elementwise_kernels.cpp): operand layouts, unary ops with their domains, shapes.
#include <doctest/doctest.h>

#include <utility>
#include <vector>

#include "engine/core/tensor.h"
#include "kernels/elementwise/elementwise_math.cuh"
#include "tests/kernels/kernel_check.h"

namespace pneuma::testing {

// The same values laid out four ways: contiguous, transposed, a strided slice and an expanded
// (stride 0) view, each with `shape` as its logical shape.
inline std::vector<Tensor> layouts(const Shape& shape, uint64_t seed, double lo, double hi, DType dtype,
                            double quantum = 0) {
  std::vector<Tensor> out;
  out.push_back(uniform_values(shape, seed, dtype, lo, hi, quantum));
  Shape swapped = shape;
  std::swap(swapped.front(), swapped.back());
  out.push_back(uniform_values(swapped, seed + 1, dtype, lo, hi, quantum).transpose(0, -1));
  Shape wide = shape;
  wide.back() = 2 * shape.back() + 1;
  out.push_back(uniform_values(wide, seed + 2, dtype, lo, hi, quantum).slice(-1, 1, wide.back(), 2));
  Shape row = shape;
  row.front() = 1;
  out.push_back(uniform_values(row, seed + 3, dtype, lo, hi, quantum).expand(shape));
  for (const Tensor& t : out) REQUIRE(t.shape() == shape);
  return out;
}

struct UnaryCase {
  kern::UnaryOp op;
  kern::UnaryParams params;
  double lo, hi;  // input range where the op is defined
};

inline const UnaryCase kUnaryCases[] = {
    {kern::UnaryOp::Neg, {}, -3, 3},
    {kern::UnaryOp::Exp, {}, -3, 3},
    {kern::UnaryOp::Log, {}, 0.1, 4},
    {kern::UnaryOp::Sqrt, {}, 0.1, 4},
    {kern::UnaryOp::Abs, {}, -3, 3},
    {kern::UnaryOp::Relu, {}, -3, 3},
    {kern::UnaryOp::Sigmoid, {}, -6, 6},
    {kern::UnaryOp::Tanh, {}, -3, 3},
    {kern::UnaryOp::LeakyRelu, {0.2, 0, true, false}, -3, 3},
    {kern::UnaryOp::Softplus, {2.0, 3.0, true, true}, -3, 3},  // beta 2, threshold 3: both branches
    {kern::UnaryOp::Clamp, {-0.5, 0.7, true, true}, -2, 2},
    {kern::UnaryOp::Clamp, {0, 0.25, false, true}, -2, 2},
    {kern::UnaryOp::AddScalar, {1.75, 0, true, false}, -3, 3},
    {kern::UnaryOp::MulScalar, {-2.5, 0, true, false}, -3, 3},
    {kern::UnaryOp::PowScalar, {-1.5, 0, true, false}, 0.2, 3},
    {kern::UnaryOp::PowScalar, {3.0, 0, true, false}, -2, 2},
};

// Shapes whose element counts are not multiples of the 256-thread block, with 1 to 4 dims.
inline const Shape kShapes[] = {{1}, {37}, {5, 7}, {3, 4, 91}, {2, 3, 5, 7}};

}  // namespace pneuma::testing

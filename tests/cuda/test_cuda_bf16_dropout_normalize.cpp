// bfloat16 dropout and normalize on CUDA tensors against the same bfloat16 ops on the CPU. Skipped
// without a GPU.
//
// Each function takes float32 inputs (holding bfloat16 values), casts them to bfloat16 on the
// device, runs the op and casts the result back, so the float32 parity harness checks the forward
// kernels and (through the casts' gradients) the backward kernels. dropout draws the CPU's mask and
// computes the same float expression: equal. normalize sums rows in float in another order, which
// can move a result across a bfloat16 rounding boundary: one bfloat16 ulp (2^-7 relative).
#include <doctest/doctest.h>

#include "tests/cuda/cuda_parity.h"

using namespace pneuma;
using pneuma::testing::check_cuda_parity;

namespace {

constexpr double kBf16Tolerance = 0x1p-7;

Tensor bf16_values(const Shape& shape, uint64_t seed, double lo = -1, double hi = 1) {
  return pneuma::testing::parity_input(shape, seed, DType::Float32, lo, hi).to(DType::BFloat16).to(DType::Float32);
}

Tensor bf16(const Tensor& t) { return t.to(DType::BFloat16); }
Tensor f32(const Tensor& t) { return t.to(DType::Float32); }

}  // namespace

TEST_SUITE("cuda") {

TEST_CASE("parity cuda dropout bfloat16") {
  PNEUMA_REQUIRE_GPU();
  for (const double p : {0.3, 0.8}) {
    CAPTURE(p);
    check_cuda_parity([p](const auto& t) { return f32(dropout(bf16(t[0]), p, true, 42)); },
                      {bf16_values({4, 33, 7}, 1, -3, 3)}, 0);
    check_cuda_parity([p](const auto& t) { return f32(dropout(bf16(t[0]).transpose(0, 2), p, true, 43)); },
                      {bf16_values({4, 33, 7}, 2, -3, 3)}, 0);
  }
  // The device's mask for a seed is the CPU's, whatever the dtype.
  const Tensor x = bf16_values({64, 129}, 3, 0.5, 2);
  const Tensor on_device = dropout(bf16(x).to(Device::cuda()), 0.4, true, 7).to(Device::cpu());
  const Tensor float32 = dropout(x, 0.4, true, 7);
  pneuma::testing::require_close_to(float32.to(DType::BFloat16).to(DType::Float64), on_device.to(DType::Float64), 0,
                                    "dropout bfloat16 on CUDA against float32 on the CPU");
}

TEST_CASE("parity cuda normalize bfloat16") {
  PNEUMA_REQUIRE_GPU();
  const Tensor x = bf16_values({4, 3, 5}, 4);
  check_cuda_parity([](const auto& t) { return f32(normalize(bf16(t[0]), 2.0, 1)); }, {x}, kBf16Tolerance);
  check_cuda_parity([](const auto& t) { return f32(normalize(bf16(t[0]), 1.0, -1)); }, {x}, kBf16Tolerance);
  check_cuda_parity([](const auto& t) { return f32(normalize(bf16(t[0]), 3.0, 0)); }, {x}, kBf16Tolerance);
  // A projection head's rows: 16 x 300 (rows longer than a block).
  check_cuda_parity([](const auto& t) { return f32(normalize(bf16(t[0]), 2.0, 1)); }, {bf16_values({16, 300}, 5)},
                    kBf16Tolerance);
}

}  // TEST_SUITE

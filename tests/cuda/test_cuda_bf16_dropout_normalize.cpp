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
using pneuma::testing::bf16_exact_input;
using pneuma::testing::check_cuda_parity;
using pneuma::testing::kBf16ParityTolerance;
using pneuma::testing::to_bf16;
using pneuma::testing::to_f32;

TEST_SUITE("cuda") {

TEST_CASE("parity cuda dropout bfloat16") {
  PNEUMA_REQUIRE_GPU();
  for (const double p : {0.3, 0.8}) {
    CAPTURE(p);
    check_cuda_parity([p](const auto& t) { return to_f32(dropout(to_bf16(t[0]), p, true, 42)); },
                      {bf16_exact_input({4, 33, 7}, 1, -3, 3)}, 0);
    check_cuda_parity([p](const auto& t) { return to_f32(dropout(to_bf16(t[0]).transpose(0, 2), p, true, 43)); },
                      {bf16_exact_input({4, 33, 7}, 2, -3, 3)}, 0);
  }
  // The device's mask for a seed is the CPU's, whatever the dtype.
  const Tensor x = bf16_exact_input({64, 129}, 3, 0.5, 2);
  const Tensor on_device = dropout(to_bf16(x).to(Device::cuda()), 0.4, true, 7).to(Device::cpu());
  const Tensor float32 = dropout(x, 0.4, true, 7);
  pneuma::testing::require_close_to(float32.to(DType::BFloat16).to(DType::Float64), on_device.to(DType::Float64), 0,
                                    "dropout bfloat16 on CUDA against float32 on the CPU");
}

TEST_CASE("parity cuda normalize bfloat16") {
  PNEUMA_REQUIRE_GPU();
  const Tensor x = bf16_exact_input({4, 3, 5}, 4);
  check_cuda_parity([](const auto& t) { return to_f32(normalize(to_bf16(t[0]), 2.0, 1)); }, {x}, kBf16ParityTolerance);
  check_cuda_parity([](const auto& t) { return to_f32(normalize(to_bf16(t[0]), 1.0, -1)); }, {x}, kBf16ParityTolerance);
  check_cuda_parity([](const auto& t) { return to_f32(normalize(to_bf16(t[0]), 3.0, 0)); }, {x}, kBf16ParityTolerance);
  // A projection head's rows: 16 x 300 (rows longer than a block).
  check_cuda_parity([](const auto& t) { return to_f32(normalize(to_bf16(t[0]), 2.0, 1)); }, {bf16_exact_input({16, 300}, 5)},
                    kBf16ParityTolerance);
}

}  // TEST_SUITE

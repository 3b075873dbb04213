// bfloat16 elementwise ops, casts and sum/mean on CUDA tensors against the same bfloat16 ops on the
// CPU. Skipped without a GPU.
//
// Each function takes float32 inputs (holding bfloat16 values), casts them to bfloat16 on the
// device, runs the op and casts the result back, so the float32 parity harness checks the cast
// kernels, the bfloat16 forward kernels and (through the casts' gradients) the bfloat16 backward
// kernels. Both sides compute in float32 and round once; CUDA's expf/tanhf may differ from libm by
// an ulp of float32, which can move a result across a bfloat16 rounding boundary: one bfloat16 ulp
// (2^-7 relative) is the tolerance, and sums add in another order (float32, same bound).
#include <doctest/doctest.h>

#include "tests/cuda/cuda_parity.h"
#include "tests/support/unary_ops.h"

using namespace pneuma;
using pneuma::testing::bf16_exact_input;
using pneuma::testing::check_cuda_parity;
using pneuma::testing::kBf16ParityTolerance;
using pneuma::testing::to_bf16;
using pneuma::testing::to_f32;

TEST_SUITE("cuda") {

TEST_CASE("parity cuda unary elementwise ops bfloat16") {
  PNEUMA_REQUIRE_GPU();
  for (const testing::UnaryFunction& u : testing::kUnaryOps) {
    CAPTURE(u.name);
    check_cuda_parity([&](const auto& x) { return to_f32(u.f(to_bf16(x[0]))); }, {bf16_exact_input({3, 67}, 1, u.lo, u.hi)},
                      kBf16ParityTolerance);
    check_cuda_parity([&](const auto& x) { return to_f32(u.f(to_bf16(x[0]).transpose(0, 1))); },
                      {bf16_exact_input({67, 3}, 2, u.lo, u.hi)}, kBf16ParityTolerance);
  }
}

TEST_CASE("parity cuda binary elementwise ops bfloat16") {
  PNEUMA_REQUIRE_GPU();
  const Tensor a = bf16_exact_input({2, 1, 5}, 3, 0.5, 2), b = bf16_exact_input({4, 1}, 4, 0.5, 2);
  check_cuda_parity([](const auto& x) { return to_f32(add(to_bf16(x[0]), to_bf16(x[1]))); }, {a, b}, kBf16ParityTolerance);
  check_cuda_parity([](const auto& x) { return to_f32(sub(to_bf16(x[0]), to_bf16(x[1]))); }, {a, b}, kBf16ParityTolerance);
  check_cuda_parity([](const auto& x) { return to_f32(mul(to_bf16(x[0]), to_bf16(x[1]))); }, {a, b}, kBf16ParityTolerance);
  check_cuda_parity([](const auto& x) { return to_f32(div(to_bf16(x[0]), to_bf16(x[1]))); }, {a, b}, kBf16ParityTolerance);
  check_cuda_parity([](const auto& x) { return gt(to_bf16(x[0]), to_bf16(x[1])); }, {a, b}, 0);
  // A residual add of a bfloat16 activation used twice (gradient accumulation on the device).
  check_cuda_parity(
      [](const auto& x) {
        const Tensor h = relu(to_bf16(x[0]));
        return to_f32(add(mul(h, to_bf16(x[1])), h));
      },
      {bf16_exact_input({4, 3, 5}, 5, -1, 1), bf16_exact_input({3, 1}, 6, -1, 1)}, kBf16ParityTolerance);
}

TEST_CASE("parity cuda casts bfloat16") {
  PNEUMA_REQUIRE_GPU();
  // float32 / float64 values with more bits than bfloat16 holds: the device rounds them as the CPU.
  for (const DType dtype : {DType::Float32, DType::Float64}) {
    CAPTURE(dtype_name(dtype));
    const Tensor x = pneuma::testing::parity_input({37, 29}, 7, dtype, -300, 300);
    for (const Tensor& view : {x, x.transpose(0, 1)}) {
      const Tensor on_device = view.to(Device::cuda()).to(DType::BFloat16);
      pneuma::testing::require_close_to(view.to(DType::BFloat16).to(DType::Float64),
                                        on_device.to(Device::cpu()).to(DType::Float64), 0, "to bfloat16");
      pneuma::testing::require_close_to(on_device.to(Device::cpu()).to(dtype), on_device.to(dtype).to(Device::cpu()),
                                        0, "from bfloat16");
    }
  }
}

TEST_CASE("parity cuda sum and mean bfloat16") {
  PNEUMA_REQUIRE_GPU();
  const Tensor x = bf16_exact_input({6, 50, 7}, 8, -1, 1.5);
  check_cuda_parity([](const auto& t) { return to_f32(sum(to_bf16(t[0]))); }, {x}, kBf16ParityTolerance);
  check_cuda_parity([](const auto& t) { return to_f32(mean(to_bf16(t[0]))); }, {x}, kBf16ParityTolerance);
  check_cuda_parity([](const auto& t) { return to_f32(sum(to_bf16(t[0]), {1})); }, {x}, kBf16ParityTolerance);
  check_cuda_parity([](const auto& t) { return to_f32(mean(to_bf16(t[0]), {0, 2}, true)); }, {x}, kBf16ParityTolerance);
  const Tensor long_rows = bf16_exact_input({3, 20000}, 9, -1, 1);
  check_cuda_parity([](const auto& t) { return to_f32(sum(to_bf16(t[0]), {1})); }, {long_rows}, kBf16ParityTolerance);
}

}  // TEST_SUITE

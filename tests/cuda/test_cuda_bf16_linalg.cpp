// bfloat16 matmul/linear (cuBLAS, CUDA_R_16BF with float32 accumulation), cat, softmax and
// upsampling on CUDA tensors against the same ops on the CPU in bfloat16, forward and backward.
// Both sides compute in float32 and round once; their float32 sums add in other orders, so a
// result may sit one bfloat16 ulp apart (the tolerance allows two). Skipped without a GPU.
#include <doctest/doctest.h>

#include <functional>
#include <vector>

#include "tests/cuda/cuda_parity.h"

using namespace pneuma;
using pneuma::testing::parity_input;
using pneuma::testing::require_close_to;

namespace {

constexpr double kBf16Tolerance = 1.6e-2;  // 2 bfloat16 ulps, relative to 1 + |expected|

Tensor bf16_input(const Shape& shape, uint64_t seed, double lo = -1, double hi = 1) {
  return parity_input(shape, seed, DType::Float32, lo, hi).to(DType::BFloat16);
}

using Op = std::function<Tensor(const std::vector<Tensor>&)>;

// f on CPU bfloat16 leaves and on CUDA copies; the outputs and, after backpropagating the same
// bfloat16 output gradient, every input gradient must agree and stay bfloat16.
void check_bf16_cuda_parity(const Op& f, const std::vector<Tensor>& inputs) {
  std::vector<Tensor> cpu_inputs, cuda_inputs;
  for (const Tensor& t : inputs) {
    Tensor c = t.detach().clone(), g = t.detach().to(Device::cuda());
    c.set_requires_grad(true);
    g.set_requires_grad(true);
    cpu_inputs.push_back(c);
    cuda_inputs.push_back(g);
  }
  const Tensor expected = f(cpu_inputs), actual = f(cuda_inputs);
  REQUIRE(actual.device() == Device::cuda());
  REQUIRE(actual.dtype() == DType::BFloat16);
  require_close_to(expected, actual.to(Device::cpu()), kBf16Tolerance, "output");
  const Tensor g = bf16_input(expected.shape(), 99);
  expected.backward(g);
  actual.backward(g.to(Device::cuda()));
  for (size_t i = 0; i < inputs.size(); ++i) {
    CAPTURE(i);
    REQUIRE(cuda_inputs[i].grad().defined());
    CHECK(cuda_inputs[i].grad().dtype() == DType::BFloat16);
    require_close_to(cpu_inputs[i].grad(), cuda_inputs[i].grad().to(Device::cpu()), kBf16Tolerance, "gradient");
  }
}

}  // namespace

TEST_SUITE("cuda") {

TEST_CASE("parity cuda matmul bfloat16") {
  PNEUMA_REQUIRE_GPU();
  const Op mm = [](const auto& t) { return matmul(t[0], t[1]); };
  check_bf16_cuda_parity(mm, {bf16_input({5, 37}, 1), bf16_input({37, 6}, 2)});
  check_bf16_cuda_parity(mm, {bf16_input({37}, 3), bf16_input({37}, 4)});
  check_bf16_cuda_parity(mm, {bf16_input({4, 5, 19}, 5), bf16_input({19, 3}, 6)});
  check_bf16_cuda_parity(mm, {bf16_input({2, 1, 5, 19}, 7), bf16_input({3, 19, 3}, 8)});
  check_bf16_cuda_parity([](const auto& t) { return matmul(t[0].transpose(-2, -1), t[1]); },
                         {bf16_input({4, 19, 5}, 9), bf16_input({4, 19, 3}, 10)});
}

TEST_CASE("parity cuda linear bfloat16") {
  PNEUMA_REQUIRE_GPU();
  check_bf16_cuda_parity([](const auto& t) { return linear(t[0], t[1], t[2]); },
                         {bf16_input({6, 40}, 1), bf16_input({4, 40}, 2), bf16_input({4}, 3)});
  check_bf16_cuda_parity([](const auto& t) { return linear(t[0], t[1]); },
                         {bf16_input({2, 3, 40}, 4), bf16_input({4, 40}, 5)});
}

TEST_CASE("parity cuda cat bfloat16") {
  PNEUMA_REQUIRE_GPU();
  check_bf16_cuda_parity([](const auto& t) { return cat({t[0], t[1].transpose(1, 2)}, 1); },
                         {bf16_input({2, 3, 4}, 1), bf16_input({2, 4, 5}, 2)});
}

TEST_CASE("parity cuda softmax and log_softmax bfloat16") {
  PNEUMA_REQUIRE_GPU();
  for (const int64_t dim : {1, -1}) {
    CAPTURE(dim);
    check_bf16_cuda_parity([dim](const auto& t) { return softmax(t[0], dim); }, {bf16_input({3, 300, 4}, 1, -4, 4)});
    check_bf16_cuda_parity([dim](const auto& t) { return log_softmax(t[0], dim); },
                           {bf16_input({3, 30, 4}, 2, -4, 4)});
  }
}

TEST_CASE("parity cuda upsample bfloat16") {
  PNEUMA_REQUIRE_GPU();
  check_bf16_cuda_parity([](const auto& t) { return upsample_nearest2d(t[0], {13, 7}); },
                         {bf16_input({2, 3, 5, 3}, 1)});
  check_bf16_cuda_parity([](const auto& t) { return upsample_bilinear2d(t[0], {13, 7}, false); },
                         {bf16_input({2, 3, 5, 3}, 2)});
  check_bf16_cuda_parity([](const auto& t) { return upsample_bilinear2d(t[0], {13, 7}, true); },
                         {bf16_input({2, 3, 5, 3}, 3)});
}

}  // TEST_SUITE

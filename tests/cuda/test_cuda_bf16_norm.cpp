// bfloat16 batch norm on CUDA tensors against the CPU on the same bf16 data: float32 parameters
// (autocast) and bfloat16 ones, training and evaluation, forward, backward and running
// statistics. Skipped without a GPU.
//
// Both sides compute in float and sum in other orders: bf16 results may land on neighbouring bf16
// values, so they agree within one bf16 ulp (2^-8 of the value) plus 1e-3 of the tensor's largest
// magnitude; float32 results (statistics, float32 parameter gradients) within 1e-4.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "tests/cuda/cuda_parity.h"
#include "tests/support/gradcheck.h"

using namespace pneuma;
using pneuma::testing::parity_input;

namespace {

void require_bf16_parity(const Tensor& expected, const Tensor& actual, const char* what) {
  REQUIRE(actual.defined());
  REQUIRE(actual.device() == Device::cpu());
  REQUIRE(actual.dtype() == expected.dtype());
  const bool bf16 = expected.dtype() == DType::BFloat16;
  pneuma::testing::require_near_scaled(expected, actual, bf16 ? 1.0 / 256 : 1e-4, bf16 ? 1e-3 : 1e-4, what);
}

}  // namespace

TEST_SUITE("cuda") {

TEST_CASE("parity cuda batch_norm bfloat16") {
  PNEUMA_REQUIRE_GPU();
  for (const DType params : {DType::Float32, DType::BFloat16}) {
    for (const bool training : {true, false}) {
      const std::string param_dtype = dtype_name(params);
      CAPTURE(param_dtype);
      CAPTURE(training);
      const Shape shape{4, 3, 5, 6};
      const Tensor x = parity_input(shape, 3, DType::Float32, 2, 4).to(DType::BFloat16);
      const Tensor g = parity_input(shape, 6, DType::Float32).to(DType::BFloat16);
      const Tensor weight = parity_input({3}, 4, DType::Float32, 0.5, 1.5).to(params);
      const Tensor bias = parity_input({3}, 5, DType::Float32).to(params);
      const Tensor running_mean = parity_input({3}, 1, DType::Float32, 2, 4).to(params);
      const Tensor running_var = parity_input({3}, 2, DType::Float32, 0.5, 2).to(params);

      struct Run {
        Tensor x, weight, bias, running_mean, running_var, y;
      };
      const auto run = [&](Device device) {
        Run r;
        r.x = x.to(device).detach().set_requires_grad(true);
        r.weight = weight.to(device).detach().set_requires_grad(true);
        r.bias = bias.to(device).detach().set_requires_grad(true);
        r.running_mean = running_mean.to(device).detach().clone();
        r.running_var = running_var.to(device).detach().clone();
        r.y = batch_norm(r.x, r.running_mean, r.running_var, r.weight, r.bias, training, 0.1, 1e-5);
        r.y.backward(g.to(device));
        return r;
      };
      const Run cpu = run(Device::cpu()), gpu = run(Device::cuda());
      REQUIRE(gpu.y.device() == Device::cuda());
      CHECK(gpu.y.dtype() == DType::BFloat16);
      require_bf16_parity(cpu.y, gpu.y.to(Device::cpu()), "output");
      require_bf16_parity(cpu.x.grad(), gpu.x.grad().to(Device::cpu()), "input gradient");
      require_bf16_parity(cpu.weight.grad(), gpu.weight.grad().to(Device::cpu()), "weight gradient");
      require_bf16_parity(cpu.bias.grad(), gpu.bias.grad().to(Device::cpu()), "bias gradient");
      require_bf16_parity(cpu.running_mean, gpu.running_mean.to(Device::cpu()), "running_mean");
      require_bf16_parity(cpu.running_var, gpu.running_var.to(Device::cpu()), "running_var");
    }
  }
}

}  // TEST_SUITE

// Whole models moved to the GPU with Module::to and run there against the same weights on the CPU.
#include <doctest/doctest.h>

#include <cstring>

#include "engine/pneuma.h"
#include "models/registry.h"
#include "tests/cuda/cuda_parity.h"

using namespace pneuma;

namespace {
// forward in training mode (batch statistics) and the gradient of every parameter
void check_model_parity(const std::string& name, int64_t img_size, int64_t in_channels) {
  CAPTURE(name);
  auto cpu_model = models::create_model(name, 2);
  auto gpu_model = models::create_model(name, 2);
  const auto cpu_state = cpu_model->state_dict();
  const auto gpu_state = gpu_model->state_dict();
  REQUIRE(cpu_state.size() == gpu_state.size());
  for (size_t i = 0; i < cpu_state.size(); ++i) {
    const Tensor& from = cpu_state[i].second;
    std::memcpy(gpu_state[i].second.raw_data(), from.raw_data(), from.numel() * dtype_size(from.dtype()));
  }
  gpu_model->to(Device::cuda());
  for (const auto& [key, t] : gpu_model->state_dict()) REQUIRE(t.device() == Device::cuda());
  const Tensor x = testing::parity_input({2, in_channels, img_size, img_size}, 5, DType::Float32);
  const Tensor y_cpu = models::forward_any(*cpu_model, x);
  const Tensor y_gpu = models::forward_any(*gpu_model, x.to(Device::cuda()));
  testing::require_close_to(y_cpu.detach(), y_gpu.detach().to(Device::cpu()), 1e-3, "logits");
  sum(y_cpu).backward();
  sum(y_gpu).backward();
  const auto cpu_params = cpu_model->named_parameters();
  const auto gpu_params = gpu_model->named_parameters();
  for (size_t i = 0; i < cpu_params.size(); ++i) {
    CAPTURE(cpu_params[i].first);
    testing::require_close_to(cpu_params[i].second.grad(), gpu_params[i].second.grad().to(Device::cpu()), 2e-3, "grad");
  }
}
}  // namespace

TEST_SUITE("cuda") {
  TEST_CASE("parity cuda resnet18 forward and backward") {
    PNEUMA_REQUIRE_GPU();
    check_model_parity("resnet18", 64, 3);
  }
  TEST_CASE("parity cuda densenet121 forward and backward") {
    PNEUMA_REQUIRE_GPU();
    check_model_parity("densenet121", 64, 3);
  }
  TEST_CASE("parity cuda unet forward and backward") {
    PNEUMA_REQUIRE_GPU();
    check_model_parity("unet", 64, 1);
  }
}

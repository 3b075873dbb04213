// Whole models laid out channels-last on the GPU (nn::Module::to(MemoryFormat::ChannelsLast), input
// contiguous(ChannelsLast), as torch's channels_last training) against the same weights in NCHW on
// the CPU: float32 outputs and gradients (in the parameters' layout), the fused AdamW step, and
// autocast bfloat16, the resnet50 b256 bf16 channels-last workload at test size.
#include <doctest/doctest.h>

#include "engine/optim/optimizer.h"
#include "tests/cuda/cuda_model_parity.h"

using namespace pneuma;

TEST_SUITE("cuda") {
  TEST_CASE("parity cuda resnet18 channels last forward backward and fused AdamW") {
    PNEUMA_REQUIRE_GPU();
    const testing::ModelsOnBothDevices models = testing::check_model_parity("resnet18", 64, 3, MemoryFormat::ChannelsLast);
    // The fused CUDA AdamW walks the channels-last parameters, gradients and moments flat: from
    // the CPU model's gradients (laid out as each GPU parameter) both land on the same values.
    const auto cpu_params = models.cpu->named_parameters(), gpu_params = models.gpu->named_parameters();
    optim::Adam cpu_adam(models.cpu->parameters(), optim::adamw_options(1e-3, 1e-2));
    optim::Adam gpu_adam(models.gpu->parameters(), optim::adamw_options(1e-3, 1e-2));
    for (int step = 0; step < 2; ++step) {
      CAPTURE(step);
      for (size_t i = 0; i < cpu_params.size(); ++i) {
        const Tensor& gpu_p = gpu_params[i].second;
        gpu_p.set_grad(cpu_params[i].second.grad().to(Device::cuda()).laid_out_like(gpu_p));
      }
      cpu_adam.step();
      gpu_adam.step();
      for (size_t i = 0; i < cpu_params.size(); ++i) {
        CAPTURE(cpu_params[i].first);
        const Tensor& gpu_p = gpu_params[i].second;
        if (gpu_p.dim() == 4) CHECK(gpu_p.is_contiguous(MemoryFormat::ChannelsLast));
        testing::require_close_to(cpu_params[i].second.detach(), gpu_p.detach().to(Device::cpu()), 1e-6, "parameter");
      }
    }
  }
  TEST_CASE("parity cuda resnet18 channels last autocast bfloat16") {
    PNEUMA_REQUIRE_GPU();
    testing::check_autocast_parity("resnet18", 64, MemoryFormat::ChannelsLast);
  }
  TEST_CASE("parity cuda resnet50 channels last autocast bfloat16") {
    PNEUMA_REQUIRE_GPU();
    testing::check_autocast_parity("resnet50", 64, MemoryFormat::ChannelsLast);
  }
  TEST_CASE("parity cuda unet channels last forward and backward") {
    PNEUMA_REQUIRE_GPU();
    testing::check_model_parity("unet", 64, 1, MemoryFormat::ChannelsLast);
  }
}

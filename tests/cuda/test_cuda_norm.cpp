// Batch norm on CUDA tensors against the CPU, training and evaluation, forward, backward and
// running statistics. Skipped without a GPU.
#include <doctest/doctest.h>

#include "tests/cuda/cuda_parity.h"

using namespace pneuma;
using pneuma::testing::check_cuda_parity;
using pneuma::testing::parity_input;
using pneuma::testing::require_close_to;

TEST_SUITE("cuda") {

TEST_CASE("parity cuda batch_norm") {
  PNEUMA_REQUIRE_GPU();
  for (const DType dtype : {DType::Float32, DType::Float64}) {
    for (const bool training : {true, false}) {
      CAPTURE(dtype_name(dtype));
      CAPTURE(training);
      const Tensor running_mean = parity_input({3}, 1, dtype), running_var = parity_input({3}, 2, dtype, 0.5, 2);
      Tensor cpu_mean = running_mean.clone(), cpu_var = running_var.clone();
      Tensor gpu_mean = running_mean.to(Device::cuda()), gpu_var = running_var.to(Device::cuda());
      int call = 0;
      check_cuda_parity(
          [&](const auto& t) {
            const bool on_gpu = call++ == 1;
            return batch_norm(t[0], on_gpu ? gpu_mean : cpu_mean, on_gpu ? gpu_var : cpu_var, t[1], t[2], training,
                              0.1, 1e-5);
          },
          {parity_input({4, 3, 5, 6}, 3, dtype, 2, 4), parity_input({3}, 4, dtype), parity_input({3}, 5, dtype)});
      const double tol = pneuma::testing::parity_tolerance(dtype);
      require_close_to(cpu_mean, gpu_mean.to(Device::cpu()), tol, "running_mean");
      require_close_to(cpu_var, gpu_var.to(Device::cpu()), tol, "running_var");
    }
  }
}

}  // TEST_SUITE

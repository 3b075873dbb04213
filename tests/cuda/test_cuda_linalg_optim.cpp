// matmul/linear (cuBLAS) and the fused optimizer steps on CUDA tensors against the CPU.
// Skipped without a GPU.
#include <doctest/doctest.h>

#include "engine/optim/optimizer.h"
#include "tests/cuda/cuda_parity.h"

#ifdef PNEUMA_WITH_CUDA
#include "engine/cuda/context.h"
#endif

using namespace pneuma;
using pneuma::testing::check_cuda_parity;
using pneuma::testing::parity_input;
using pneuma::testing::require_close_to;

TEST_SUITE("cuda") {

TEST_CASE("parity cuda matmul") {
  PNEUMA_REQUIRE_GPU();
  for (const DType dtype : {DType::Float32, DType::Float64}) {
    CAPTURE(dtype_name(dtype));
    const auto mm = [](const auto& t) { return matmul(t[0], t[1]); };
    check_cuda_parity(mm, {parity_input({5, 7}, 1, dtype), parity_input({7, 3}, 2, dtype)});
    check_cuda_parity(mm, {parity_input({7}, 3, dtype), parity_input({7}, 4, dtype)});
    check_cuda_parity(mm, {parity_input({4, 5, 7}, 5, dtype), parity_input({7, 3}, 6, dtype)});
    check_cuda_parity(mm, {parity_input({2, 1, 5, 7}, 7, dtype), parity_input({3, 7, 3}, 8, dtype)});
    check_cuda_parity([](const auto& t) { return matmul(t[0].transpose(-2, -1), t[1]); },
                      {parity_input({4, 7, 5}, 9, dtype), parity_input({4, 7, 3}, 10, dtype)});
  }
}

TEST_CASE("parity cuda linear") {
  PNEUMA_REQUIRE_GPU();
  for (const DType dtype : {DType::Float32, DType::Float64}) {
    CAPTURE(dtype_name(dtype));
    check_cuda_parity([](const auto& t) { return linear(t[0], t[1], t[2]); },
                      {parity_input({6, 10}, 1, dtype), parity_input({4, 10}, 2, dtype), parity_input({4}, 3, dtype)});
    check_cuda_parity([](const auto& t) { return linear(t[0], t[1]); },
                      {parity_input({2, 3, 10}, 4, dtype), parity_input({4, 10}, 5, dtype)});
  }
}

TEST_CASE("parity cuda matmul: TF32 only when switched on") {
  PNEUMA_REQUIRE_GPU();
#ifdef PNEUMA_WITH_CUDA  // the device context exists only there
  cuda::DeviceContext& context = cuda::DeviceContext::get(0);
  CHECK_FALSE(context.tf32());
  const Tensor a = parity_input({64, 256}, 1, DType::Float32), b = parity_input({256, 64}, 2, DType::Float32);
  const Tensor expected = matmul(a.to(DType::Float64), b.to(DType::Float64));
  const Tensor full = matmul(a.to(Device::cuda()), b.to(Device::cuda())).to(Device::cpu());
  require_close_to(expected, full.to(DType::Float64), 1e-5, "float32");
  context.set_tf32(true);
  const Tensor tf32 = matmul(a.to(Device::cuda()), b.to(Device::cuda())).to(Device::cpu());
  context.set_tf32(false);
  require_close_to(expected, tf32.to(DType::Float64), 5e-2, "tf32");  // 10-bit mantissas: visibly coarser
#endif
}

TEST_CASE("parity cuda optimizers: fused SGD - Adam and AdamW steps") {
  PNEUMA_REQUIRE_GPU();
  auto run = [](auto make_optimizer, Device device) {
    std::vector<Tensor> params;
    for (const auto& shape : std::vector<Shape>{{3}, {64, 129}, {20001}}) {
      Tensor p = Tensor::randn(shape, 7 + shape.size(), DType::Float32).to(device);
      p.set_requires_grad(true);
      params.push_back(p);
    }
    auto optimizer = make_optimizer(params);
    for (uint64_t step = 0; step < 3; ++step) {
      for (size_t i = 0; i < params.size(); ++i)
        params[i].set_grad(Tensor::randn(params[i].shape(), 100 * step + i, DType::Float32).to(device));
      optimizer->step();
    }
    std::vector<Tensor> out;
    for (const Tensor& p : params) out.push_back(p.detach().to(Device::cpu()));
    return out;
  };
  const auto sgd = [](std::vector<Tensor> p) {
    return std::make_unique<optim::SGD>(std::move(p), optim::SgdOptions{0.1, 0.9, 0, 1e-2, true});
  };
  const auto adam = [](std::vector<Tensor> p) { return std::make_unique<optim::Adam>(std::move(p), optim::AdamOptions{}); };
  const auto adamw = [](std::vector<Tensor> p) { return std::make_unique<optim::Adam>(std::move(p), optim::adamw_options(1e-2)); };
  for (const auto& [expected, actual] :
       {std::pair{run(sgd, Device::cpu()), run(sgd, Device::cuda())}, std::pair{run(adam, Device::cpu()), run(adam, Device::cuda())},
        std::pair{run(adamw, Device::cpu()), run(adamw, Device::cuda())}}) {
    for (size_t i = 0; i < expected.size(); ++i) require_close_to(expected[i], actual[i], 1e-6, "parameter");
  }
}

}  // TEST_SUITE

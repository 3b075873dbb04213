#include <doctest/doctest.h>

#include <cstring>
#include <functional>
#include <memory>

#include "engine/cpu/parallel.h"
#include "engine/optim/optimizer.h"

using namespace pneuma;

namespace {
// Parameters and their state after a few steps on `threads` CPU threads: the tensors are
// large enough for the optimizer's update to split over threads.
std::vector<Tensor> run_steps(int threads, DType dtype,
                              const std::function<std::unique_ptr<optim::Optimizer>(std::vector<Tensor>)>& make) {
  const int previous = cpu::num_threads();
  cpu::set_num_threads(threads);
  std::vector<Tensor> params{Tensor::randn({3, 100003}, 1, dtype), Tensor::randn({7}, 2, dtype)};
  for (Tensor& p : params) p.set_requires_grad(true);
  auto optimizer = make(params);
  for (uint64_t step = 0; step < 3; ++step) {
    for (size_t i = 0; i < params.size(); ++i) params[i].set_grad(Tensor::randn(params[i].shape(), 10 * step + i, dtype));
    optimizer->step();
  }
  cpu::set_num_threads(previous);
  std::vector<Tensor> out = params;
  for (const auto& [name, state] : optimizer->state_tensors()) out.push_back(state);
  return out;
}

void check_bitwise_equal(const std::vector<Tensor>& a, const std::vector<Tensor>& b) {
  REQUIRE(a.size() == b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    REQUIRE(a[i].shape() == b[i].shape());
    CHECK(std::memcmp(a[i].raw_data(), b[i].raw_data(), a[i].numel() * dtype_size(a[i].dtype())) == 0);
  }
}
}  // namespace

TEST_CASE("optimizers: a step on two threads equals the one-thread step bit for bit") {
  for (DType dtype : {DType::Float32, DType::Float64}) {
    const char* dtype_tested = dtype_name(dtype);
    CAPTURE(dtype_tested);
    const auto sgd = [](std::vector<Tensor> ps) -> std::unique_ptr<optim::Optimizer> {
      return std::make_unique<optim::SGD>(std::move(ps), optim::SgdOptions{0.1, 0.9, 0, 0.01, true});
    };
    const auto adamw = [](std::vector<Tensor> ps) -> std::unique_ptr<optim::Optimizer> {
      return std::make_unique<optim::Adam>(std::move(ps), optim::adamw_options(1e-3, 1e-2));
    };
    const auto adam = [](std::vector<Tensor> ps) -> std::unique_ptr<optim::Optimizer> {
      return std::make_unique<optim::Adam>(std::move(ps), optim::AdamOptions{0.01, 0.8, 0.95, 1e-8, 0.1, false});
    };
    check_bitwise_equal(run_steps(1, dtype, sgd), run_steps(2, dtype, sgd));
    check_bitwise_equal(run_steps(1, dtype, adamw), run_steps(2, dtype, adamw));
    check_bitwise_equal(run_steps(1, dtype, adam), run_steps(2, dtype, adam));
  }
}

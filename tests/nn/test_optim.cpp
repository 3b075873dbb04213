#include <doctest/doctest.h>

#include "engine/optim/optimizer.h"
#include "tests/support/parity.h"

using namespace pneuma;
using pneuma::testing::check_parity;

namespace {
// Replays the golden's gradients through an optimizer and returns the parameter.
template <class MakeOptimizer>
Tensor trajectory(const std::vector<Tensor>& x, MakeOptimizer make) {
  Tensor p = x[0].clone().detach();
  p.set_requires_grad(true);
  auto opt = make(std::vector<Tensor>{p});
  for (int64_t k = 0; k < x[1].size(0); ++k) {
    p.set_grad(x[1].select(0, k).clone());
    opt.step();
  }
  return p;
}
}  // namespace

TEST_SUITE("parity") {
  TEST_CASE("parity optimizers") {
    check_parity("optim_sgd_momentum_nesterov", [](const auto& x) {
      return trajectory(x, [](auto ps) { return optim::SGD(ps, {0.1, 0.9, 0, 0.01, true}); });
    });
    check_parity("optim_sgd_dampening", [](const auto& x) {
      return trajectory(x, [](auto ps) { return optim::SGD(ps, {0.05, 0.5, 0.3, 0, false}); });
    });
    check_parity("optim_adam", [](const auto& x) {
      return trajectory(x, [](auto ps) { return optim::Adam(ps, {0.01, 0.8, 0.95, 1e-8, 0.1, false}); });
    });
    check_parity("optim_adamw", [](const auto& x) {
      return trajectory(x, [](auto ps) { return optim::Adam(ps, optim::adamw_options(1e-3, 1e-2)); });
    });
  }
}

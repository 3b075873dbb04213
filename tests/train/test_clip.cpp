#include <doctest/doctest.h>

#include <cmath>
#include <limits>

#include "engine/train/clip.h"
#include "tests/train/train_util.h"

using namespace pneuma;

TEST_SUITE("parity") {
  TEST_CASE("clip_grad_norm equals torch.nn.utils.clip_grad_norm_") {
    const nlohmann::json& ref = testing::torch_reference();
    REQUIRE(ref.at("clip").size() == 5);
    for (const auto& [name, c] : ref.at("clip").items()) {
      INFO("case ", name);
      std::vector<Tensor> params;
      const auto shapes = c.at("shapes").get<std::vector<Shape>>();
      const auto before = c.at("before").get<std::vector<std::vector<double>>>();
      const auto after = c.at("after").get<std::vector<std::vector<double>>>();
      for (size_t i = 0; i < shapes.size(); ++i) {
        Tensor p = Tensor::zeros(shapes[i]).set_requires_grad(true);
        p.set_grad(Tensor::from_vector(before[i], shapes[i]));
        params.push_back(p);
      }
      // A parameter without a gradient (frozen, or unused in the forward) is skipped.
      params.push_back(Tensor::zeros({7}).set_requires_grad(true));
      const double norm_type =
          c.at("norm_type").is_string() ? std::numeric_limits<double>::infinity() : c.at("norm_type").get<double>();
      const double total = train::clip_grad_norm(params, c.at("max_norm").get<double>(), norm_type);
      CHECK(total == doctest::Approx(c.at("total").get<double>()).epsilon(1e-5));
      for (size_t i = 0; i < shapes.size(); ++i) {
        const std::vector<double> got = params[i].grad().to_vector();
        for (size_t j = 0; j < got.size(); ++j) CHECK(got[j] == doctest::Approx(after[i][j]).epsilon(1e-5).scale(1e-7));
      }
      CHECK_FALSE(params.back().grad().defined());
    }
  }
}

TEST_CASE("clip_grad_norm: clipped gradients have the requested norm - no gradients give 0") {
  Tensor p = Tensor::zeros({4}).set_requires_grad(true);
  p.set_grad(Tensor::from_vector({3, 4, 0, 0}, {4}));
  CHECK(train::clip_grad_norm({p}, 1.0) == doctest::Approx(5.0));
  const auto g = p.grad().to_vector();
  CHECK(std::sqrt(g[0] * g[0] + g[1] * g[1]) == doctest::Approx(1.0).epsilon(1e-5));
  Tensor q = Tensor::zeros({2}).set_requires_grad(true);
  CHECK(train::clip_grad_norm({q}, 1.0) == 0.0);
  CHECK_THROWS_AS(train::clip_grad_norm({p}, 1.0, 0.0), Error);
}

TEST_CASE("clip_grad_norm: a NaN gradient makes the inf-norm NaN wherever it is - gradients stay unscaled") {
  // torch.linalg.vector_norm(ord=inf) propagates NaN; a maximum that dropped a NaN found after a
  // larger value would report a finite norm and clip.
  Tensor p = Tensor::zeros({3}).set_requires_grad(true);
  p.set_grad(Tensor::from_vector({5, std::nan(""), 1}, {3}));
  CHECK(std::isnan(train::clip_grad_norm({p}, 1.0, std::numeric_limits<double>::infinity())));
  const auto g = p.grad().to_vector();
  CHECK(g[0] == 5.0);
  CHECK(g[2] == 1.0);
}

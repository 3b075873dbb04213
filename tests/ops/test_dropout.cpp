#include <doctest/doctest.h>

#include <cmath>

#include "engine/core/random.h"
#include "tests/support/gradcheck.h"
#include "tests/support/parity.h"

using namespace pneuma;
using pneuma::testing::check_parity;
using pneuma::testing::gradcheck;
using pneuma::testing::random_input;

namespace {
double drop_fraction(const Tensor& y) {
  int64_t zeros = 0;
  for (double v : y.to_vector()) zeros += v == 0.0;
  return static_cast<double>(zeros) / static_cast<double>(y.numel());
}
}  // namespace

TEST_SUITE("gradcheck") {
  TEST_CASE("gradcheck dropout") {
    gradcheck([](const auto& x) { return dropout(x[0], 0.3, true, 42); }, {random_input({4, 5}, 1)});
    gradcheck([](const auto& x) { return dropout(x[0].transpose(0, 1), 0.6, true, 7); }, {random_input({3, 6}, 2)});
    gradcheck([](const auto& x) { return dropout(x[0], 1.0, true, 7); }, {random_input({5}, 3)});
    gradcheck([](const auto& x) { return dropout(x[0], 0.5, false, 7); }, {random_input({5}, 4)});
  }
}

TEST_CASE("dropout: mask from the counter-based RNG - inverted scaling") {
  const double p = 0.3;
  const uint64_t seed = 1234;
  for (DType dtype : {DType::Float32, DType::Float64}) {
    const Tensor x = Tensor::randn({50, 40}, 5, dtype);
    const std::vector<double> xs = x.to_vector(), ys = dropout(x, p, true, seed).to_vector();
    for (size_t i = 0; i < xs.size(); ++i) {
      const bool keep = random::uniform(seed, i) >= p;
      const double expected = keep ? xs[i] * (dtype == DType::Float32 ? double(1.0f / float(1 - p)) : 1 / (1 - p)) : 0.0;
      if (dtype == DType::Float32) REQUIRE(ys[i] == doctest::Approx(expected).epsilon(1e-6));
      else REQUIRE(ys[i] == expected);
    }
  }
  // Backward multiplies by the same mask and scale.
  Tensor x = Tensor::randn({30}, 6, DType::Float64);
  x.set_requires_grad(true);
  const Tensor y = dropout(x, 0.5, true, 9);
  const Tensor g = Tensor::randn({30}, 8, DType::Float64);
  y.backward(g);
  const std::vector<double> gx = x.grad().to_vector(), gs = g.to_vector(), yv = y.to_vector();
  for (size_t i = 0; i < gx.size(); ++i) CHECK(gx[i] == (yv[i] == 0 ? 0.0 : gs[i] * 2.0));
}

TEST_CASE("dropout: identity - zeros and errors") {
  const Tensor x = Tensor::randn({4, 4}, 1);
  CHECK(dropout(x, 0.0, true, 1).same(x));
  CHECK(dropout(x, 0.7, false, 1).same(x));
  CHECK(dropout(x, 1.0, true, 1).to_vector() == std::vector<double>(16, 0.0));
  CHECK_THROWS_WITH_AS(dropout(x, 1.5, true, 1), "dropout: probability has to be between 0 and 1, but got 1.5", Error);
  CHECK_THROWS_WITH_AS(dropout(x, -0.1, false, 1), "dropout: probability has to be between 0 and 1, but got -0.1", Error);
  CHECK_THROWS_AS(dropout(Tensor::zeros({3}, DType::Int64), 0.5, true, 1), Error);
}

TEST_SUITE("parity") {
  TEST_CASE("parity dropout") {
    // The masks of PyTorch's generator cannot be reproduced; compared here: what is
    // deterministic (eval mode, p = 1, the scale of kept values) and the drop fraction.
    check_parity("dropout_eval", [](const auto& x) { return dropout(x[0], 0.5, false, 3); });
    check_parity("dropout_p1", [](const auto& x) { return dropout(x[0], 1.0, true, 3); });
    for (DType dtype : {DType::Float64, DType::Float32})
      check_parity("dropout_kept_scale", [](const auto& x) { return max(dropout(x[0], 0.25, true, 3)); }, dtype);
    // Both fractions are within a few standard deviations (0.001) of p = 0.3.
    check_parity("dropout_drop_fraction", [](const auto& x) {
      return Tensor::scalar(drop_fraction(dropout(x[0], 0.3, true, 11)), DType::Float64);
    }, DType::Float64, 0.0, 0.01);
    for (double p : {0.1, 0.5, 0.9}) {
      CAPTURE(p);
      CHECK(std::abs(drop_fraction(dropout(Tensor::ones({200000}), p, true, 5)) - p) < 0.005);
    }
  }
  TEST_CASE("parity dropout: float32 and float64 draw the same mask for one seed") {
    const Tensor x64 = Tensor::rand({64, 129}, 3, DType::Float64);
    for (uint64_t seed : {0ull, 1ull, 987654321ull}) {
      const std::vector<double> a = dropout(x64, 0.4, true, seed).to_vector();
      const std::vector<double> b = dropout(x64.to(DType::Float32), 0.4, true, seed).to_vector();
      int64_t mismatches = 0;
      for (size_t i = 0; i < a.size(); ++i) mismatches += (a[i] == 0) != (b[i] == 0);
      CHECK(mismatches == 0);
      const std::vector<double> c = dropout(x64, 0.4, true, seed + 1).to_vector();
      int64_t differ = 0;
      for (size_t i = 0; i < a.size(); ++i) differ += (a[i] == 0) != (c[i] == 0);
      CHECK(differ > 0);  // another seed, another mask
    }
  }
}

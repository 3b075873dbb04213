#include <doctest/doctest.h>

#include <cmath>

#include "tests/support/gradcheck.h"
#include "tests/support/parity.h"

using namespace pneuma;
using pneuma::testing::check_close;
using pneuma::testing::check_parity;
using pneuma::testing::gradcheck;
using pneuma::testing::random_input;

TEST_SUITE("gradcheck") {
  TEST_CASE("gradcheck normalize") {
    gradcheck([](const auto& x) { return normalize(x[0]); }, {random_input({4, 5, 3}, 1)});
    gradcheck([](const auto& x) { return normalize(x[0], 2.0, 0); }, {random_input({4, 5}, 2)});
    gradcheck([](const auto& x) { return normalize(x[0], 3.0, -1); }, {random_input({3, 6}, 3)});
    gradcheck([](const auto& x) { return normalize(x[0], 1.0, 1); },
              {pneuma::testing::away_from_kinks(random_input({3, 4}, 4), {0.0})});
    gradcheck([](const auto& x) { return normalize(x[0].transpose(0, 1), 2.0, 1); }, {random_input({5, 3}, 5)});
    SUBCASE("rows with norm below eps take the clamped branch") {
      // rows 0 and 2 have norms of about 0.1, below eps = 0.5: y = x / eps there
      std::vector<double> v = random_input({3, 4}, 6).to_vector();
      for (int j = 0; j < 4; ++j) {
        v[j] *= 0.1;
        v[8 + j] *= 0.1;
      }
      Tensor x = Tensor::from_vector(v, {3, 4}, DType::Float64);
      x.set_requires_grad(true);
      gradcheck([](const auto& in) { return normalize(in[0], 2.0, 1, 0.5); }, {x});
      const std::vector<double> y = normalize(x, 2.0, 1, 0.5).to_vector();
      for (int j = 0; j < 4; ++j) CHECK(y[j] == doctest::Approx(v[j] / 0.5));
    }
  }
}

TEST_CASE("normalize values - zero rows and errors") {
  for (DType dtype : {DType::Float32, DType::Float64}) {
    const Tensor x = Tensor::from_vector({3, 4, 0, 0}, {2, 2}, dtype);
    const std::vector<double> y = normalize(x).to_vector();
    CHECK(y[0] == doctest::Approx(0.6));
    CHECK(y[1] == doctest::Approx(0.8));
    CHECK(y[2] == 0.0);
    CHECK(y[3] == 0.0);
    const std::vector<double> l1 = normalize(x, 1.0, 0).to_vector();
    CHECK(l1[0] == 1.0);
    CHECK(l1[1] == 1.0);
  }
  // A zero row gets the clamped gradient g / eps (no NaN).
  Tensor x = Tensor::from_vector({0, 0, 3, 4}, {2, 2}, DType::Float64);
  x.set_requires_grad(true);
  normalize(x, 2.0, 1, 1e-3).backward(Tensor::from_vector({1, -2, 0, 0}, {2, 2}, DType::Float64));
  CHECK(x.grad().to_vector()[0] == doctest::Approx(1000));
  CHECK(x.grad().to_vector()[1] == doctest::Approx(-2000));
  CHECK_THROWS_WITH_AS(normalize(Tensor::zeros({3})), "normalize: dim 1 out of range for a 1-d tensor", Error);
  CHECK_THROWS_WITH_AS(normalize(Tensor::zeros({3, 2}), INFINITY),
                       "normalize: p must be a finite positive number, got inf", Error);
}

TEST_SUITE("parity") {
  TEST_CASE("parity normalize") {
    for (DType dtype : {DType::Float64, DType::Float32}) {
      const double rtol = dtype == DType::Float64 ? 1e-10 : 1e-4, atol = dtype == DType::Float64 ? 1e-12 : 1e-5;
      check_parity("normalize_default", [](const auto& x) { return normalize(x[0]); }, dtype, rtol, atol);
      check_parity("normalize_p1_dim0", [](const auto& x) { return normalize(x[0], 1.0, 0); }, dtype, rtol, atol);
      check_parity("normalize_p3_dim_last", [](const auto& x) { return normalize(x[0], 3.0, -1); }, dtype, rtol, atol);
      check_parity("normalize_zero_and_small_rows", [](const auto& x) { return normalize(x[0], 2.0, 1, 0.01); }, dtype,
                   rtol, atol);
    }
    // Gradients of about 1e12 / |g| on the zero row: compared relatively.
    check_parity("normalize_zero_row_default_eps", [](const auto& x) { return normalize(x[0]); }, DType::Float64, 1e-10,
                 1e-12);
  }
}

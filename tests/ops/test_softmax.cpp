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
  TEST_CASE("gradcheck softmax") {
    for (int64_t dim : {0, 1, -1}) {
      CAPTURE(dim);
      gradcheck([dim](const auto& x) { return softmax(x[0], dim); }, {random_input({3, 4, 5}, 1, -3, 3)});
    }
    gradcheck([](const auto& x) { return softmax(x[0], 0); }, {random_input({6}, 2, -3, 3)});
    gradcheck([](const auto& x) { return softmax(x[0].transpose(0, 1), 1); }, {random_input({4, 3}, 3, -3, 3)});
  }
  TEST_CASE("gradcheck log_softmax") {
    for (int64_t dim : {0, 1, -1}) {
      CAPTURE(dim);
      gradcheck([dim](const auto& x) { return log_softmax(x[0], dim); }, {random_input({3, 4, 5}, 1, -3, 3)});
    }
    gradcheck([](const auto& x) { return log_softmax(x[0].transpose(0, 1), 0); }, {random_input({4, 3}, 3, -3, 3)});
  }
}

TEST_CASE("softmax is stable for large logits and sums to one") {
  for (DType dtype : {DType::Float32, DType::Float64}) {
    const Tensor x = Tensor::from_vector({1000, 1001, 1002, -1000, 0, 1000}, {2, 3}, dtype);
    const std::vector<double> y = softmax(x, 1).to_vector();
    const double e1 = std::exp(-1.0), e2 = std::exp(-2.0), s = 1 + e1 + e2;
    CHECK(y[0] == doctest::Approx(e2 / s));
    CHECK(y[2] == doctest::Approx(1 / s));
    CHECK(y[5] == doctest::Approx(1.0));
    CHECK(y[3] == 0.0);
    const std::vector<double> ly = log_softmax(x, 1).to_vector();
    CHECK(ly[2] == doctest::Approx(-std::log(s)));
    CHECK(ly[3] == doctest::Approx(-2000.0));  // finite, not -inf
    for (double v : ly) CHECK(std::isfinite(v));
    // along dim 0 of a [2, 3]: every column sums to one
    const std::vector<double> c = softmax(x, 0).to_vector();
    for (int j = 0; j < 3; ++j) CHECK(c[j] + c[3 + j] == doctest::Approx(1.0));
  }
  CHECK(softmax(Tensor::scalar(3.0), 0).item() == 1.0);
  CHECK(std::isnan(softmax(Tensor::from_vector({1, NAN, 2}, {3}), 0).to_vector()[0]));
}

TEST_CASE("softmax errors") {
  CHECK_THROWS_WITH_AS(softmax(Tensor::zeros({2, 3}), 2), "softmax: dim 2 out of range for a 2-d tensor", Error);
  CHECK_THROWS_WITH_AS(log_softmax(Tensor::zeros({2}, DType::Int64), 0),
                       "log_softmax: expected a floating-point tensor (float32, float64 or bfloat16), got int64[2] on cpu", Error);
}

TEST_SUITE("parity") {
  TEST_CASE("parity softmax") {
    for (DType dtype : {DType::Float64, DType::Float32}) {
      const double rtol = dtype == DType::Float64 ? 1e-10 : 1e-4, atol = dtype == DType::Float64 ? 1e-12 : 1e-5;
      check_parity("softmax_dim1", [](const auto& x) { return softmax(x[0], 1); }, dtype, rtol, atol);
      check_parity("softmax_dim0_large_logits", [](const auto& x) { return softmax(x[0], 0); }, dtype,
                   dtype == DType::Float64 ? 1e-10 : 1e-3, dtype == DType::Float64 ? 1e-12 : 1e-4);
    }
  }
  TEST_CASE("parity log_softmax") {
    for (DType dtype : {DType::Float64, DType::Float32}) {
      const double rtol = dtype == DType::Float64 ? 1e-10 : 1e-4, atol = dtype == DType::Float64 ? 1e-12 : 1e-5;
      check_parity("log_softmax_dim_last", [](const auto& x) { return log_softmax(x[0], -1); }, dtype, rtol, atol);
      check_parity("log_softmax_dim0", [](const auto& x) { return log_softmax(x[0], 0); }, dtype, rtol, atol);
    }
  }
}

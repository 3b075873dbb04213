#include <doctest/doctest.h>

#include "tests/support/parity.h"

using namespace pneuma;
using pneuma::testing::check_parity;

TEST_SUITE("parity") {
  TEST_CASE("parity elementwise") {
    for (DType dtype : {DType::Float64, DType::Float32}) {
      const double rtol = dtype == DType::Float64 ? 1e-10 : 1e-4, atol = dtype == DType::Float64 ? 1e-12 : 1e-5;
      check_parity("add_broadcast", [](const auto& x) { return add(x[0], x[1]); }, dtype, rtol, atol);
      check_parity("sub_broadcast", [](const auto& x) { return sub(x[0], x[1]); }, dtype, rtol, atol);
      check_parity("mul_broadcast", [](const auto& x) { return mul(x[0], x[1]); }, dtype, rtol, atol);
      check_parity("div_broadcast", [](const auto& x) { return div(x[0], x[1]); }, dtype, rtol, atol);
      check_parity("pow_tensor", [](const auto& x) { return pow(x[0], x[1]); }, dtype, rtol, atol);
      check_parity("pow_zero_exponent_and_base", [](const auto& x) { return pow(x[0], x[1]); }, dtype, rtol, atol);
      check_parity("unary_chain", [](const auto& v) {
        const Tensor& x = v[0];
        return exp(x) + log(abs(x) + 0.5) + sqrt(abs(x) + 0.1) + relu(x) + leaky_relu(x, 0.2) + sigmoid(x) +
               tanh(x) + softplus(x, 2, 3) + clamp(x, -0.5, 0.7) + pow(x, 3.0) - x * 2.5 + 1.25;
      }, dtype, rtol, atol);
    }
  }
  TEST_CASE("parity sum") {
    check_parity("sum_mean_dims", [](const auto& v) {
      return sum(v[0], {0, 2}, true) * 2.0 + sum(mean(v[0], {1}, true), {2}, true);
    });
  }
}

#include <doctest/doctest.h>

#include <cmath>

#include "tests/support/gradcheck.h"
#include "tests/support/parity.h"

using namespace pneuma;
using pneuma::testing::check_parity;
using pneuma::testing::gradcheck;
using pneuma::testing::random_input;

// Random inputs hold no ties (with probability 1), so max/min are differentiable there.
TEST_SUITE("gradcheck") {
  TEST_CASE("gradcheck max") {
    gradcheck([](const auto& x) { return max(x[0]); }, {random_input({3, 4}, 1)});
    for (bool keepdim : {false, true}) {
      CAPTURE(keepdim);
      gradcheck([keepdim](const auto& x) { return max(x[0], 1, keepdim).first; }, {random_input({3, 4, 2}, 2)});
      gradcheck([keepdim](const auto& x) { return max(x[0], -1, keepdim).first; }, {random_input({3, 4}, 3)});
    }
    gradcheck([](const auto& x) { return max(x[0].transpose(0, 1), 0).first; }, {random_input({4, 3}, 4)});
  }
  TEST_CASE("gradcheck min") {
    gradcheck([](const auto& x) { return min(x[0]); }, {random_input({5}, 1)});
    gradcheck([](const auto& x) { return min(x[0], 0).first; }, {random_input({3, 4}, 2)});
    gradcheck([](const auto& x) { return min(x[0], 2, true).first; }, {random_input({2, 3, 4}, 3)});
  }
  TEST_CASE("gradcheck amax") {
    gradcheck([](const auto& x) { return amax(x[0], {0, 2}); }, {random_input({3, 4, 5}, 1)});
    gradcheck([](const auto& x) { return amax(x[0], {-1}, true); }, {random_input({3, 4}, 2)});
    gradcheck([](const auto& x) { return amax(x[0], {}); }, {random_input({3, 4}, 3)});
  }
  TEST_CASE("gradcheck amin") {
    gradcheck([](const auto& x) { return amin(x[0], {1}); }, {random_input({3, 4, 5}, 1)});
    gradcheck([](const auto& x) { return amin(x[0], {0, 1}, true); }, {random_input({3, 4}, 2)});
  }
}

TEST_CASE("max/min values - indices and tie rules") {
  for (DType dtype : {DType::Float32, DType::Float64}) {
    const Tensor x = Tensor::from_vector({1, 3, 3, 2, 5, 5, 1, 0}, {2, 4}, dtype);
    CHECK(max(x).item() == 5);
    CHECK(min(x).item() == 0);
    auto [values, indices] = max(x, 1);
    CHECK(values.to_vector() == std::vector<double>{3, 5});
    CHECK(indices.dtype() == DType::Int64);
    CHECK(indices.to_indices() == std::vector<int64_t>{1, 0});  // first of the tied maxima
    auto [mins, argmins] = min(x, 1, true);
    CHECK(mins.shape() == Shape{2, 1});
    CHECK(argmins.to_indices() == std::vector<int64_t>{0, 3});
    CHECK(amax(x, {0}).to_vector() == std::vector<double>{5, 5, 3, 2});
  }
  // Integer tensors reduce too (labels, indices).
  CHECK(max(Tensor::from_indices({4, 9, 2}, {3})).item() == 9);
  // 0-d input: dim 0 / -1 is accepted, the index is 0.
  auto [v, i] = max(Tensor::scalar(2.5), 0);
  CHECK(v.item() == 2.5);
  CHECK(i.to_indices() == std::vector<int64_t>{0});
}

TEST_CASE("max/min gradients: full and amax reductions split ties evenly - the dim form picks the index") {
  Tensor x = Tensor::from_vector({1, 3, 3, 2, 5, 5, 1, 5}, {2, 4}, DType::Float64);
  x.set_requires_grad(true);
  max(x).backward();
  CHECK(x.grad().to_vector() == std::vector<double>{0, 0, 0, 0, 1.0 / 3, 1.0 / 3, 0, 1.0 / 3});

  x.set_grad(Tensor());
  amax(x, {1}).backward(Tensor::from_vector({2, 3}, {2}, DType::Float64));
  CHECK(x.grad().to_vector() == std::vector<double>{0, 1, 1, 0, 1, 1, 0, 1});

  x.set_grad(Tensor());
  max(x, 1).first.backward(Tensor::from_vector({2, 3}, {2}, DType::Float64));
  CHECK(x.grad().to_vector() == std::vector<double>{0, 2, 0, 0, 3, 0, 0, 0});

  x.set_grad(Tensor());
  min(x).backward();
  CHECK(x.grad().to_vector() == std::vector<double>{0.5, 0, 0, 0, 0, 0, 0.5, 0});
}

TEST_CASE("max/min propagate NaN") {
  Tensor x = Tensor::from_vector({1, NAN, 3, NAN, 0, 2}, {2, 3}, DType::Float64);
  CHECK(std::isnan(max(x).item()));
  CHECK(std::isnan(min(x).item()));
  auto [values, indices] = max(x, 1);
  CHECK(std::isnan(values.to_vector()[0]));
  CHECK(std::isnan(values.to_vector()[1]));
  CHECK(indices.to_indices() == std::vector<int64_t>{1, 0});
  CHECK(amin(x, {0}).to_vector()[2] == 2);
  // The gradient of a NaN maximum goes to the NaN elements, as PyTorch's.
  x.set_requires_grad(true);
  max(x).backward();
  CHECK(x.grad().to_vector() == std::vector<double>{0, 0.5, 0, 0.5, 0, 0});
}

TEST_CASE("max/min errors") {
  CHECK_THROWS_WITH_AS(max(Tensor::zeros({0, 3})), "max: cannot reduce the empty tensor float32[0, 3] on cpu without a dim",
                       Error);
  CHECK_THROWS_WITH_AS(min(Tensor::zeros({2, 0}), 1), "min: cannot reduce over dim 1 of size 0 in float32[2, 0] on cpu",
                       Error);
  CHECK(max(Tensor::zeros({0, 3}), 1).first.shape() == Shape{0});
  CHECK_THROWS_WITH_AS(amax(Tensor::zeros({2, 3}), {2}), "amax: dim 2 out of range for a 2-d tensor", Error);
  CHECK_THROWS_WITH_AS(amin(Tensor::zeros({2, 3}), {1, -1}), "amin: dim repeated in the dim list", Error);
}

TEST_SUITE("parity") {
  TEST_CASE("parity max") {
    for (DType dtype : {DType::Float64, DType::Float32}) {
      check_parity("max_full_ties", [](const auto& x) { return max(x[0]); }, dtype);
      check_parity("max_dim_values_ties", [](const auto& x) { return max(x[0], 1, true).first; }, dtype);
      check_parity("max_dim_indices_ties", [](const auto& x) { return max(x[0], 1).second; }, dtype);
      check_parity("amax_dims_ties", [](const auto& x) { return amax(x[0], {0, 2}); }, dtype);
    }
  }
  TEST_CASE("parity min") {
    for (DType dtype : {DType::Float64, DType::Float32}) {
      check_parity("min_full", [](const auto& x) { return min(x[0]); }, dtype, 1e-6, 1e-7);
      check_parity("min_dim_values_ties", [](const auto& x) { return min(x[0], -1).first; }, dtype);
      check_parity("min_dim_indices_ties", [](const auto& x) { return min(x[0], 0).second; }, dtype);
      check_parity("amin_dims_keepdim_ties", [](const auto& x) { return amin(x[0], {1}, true); }, dtype);
    }
  }
}

#include <doctest/doctest.h>

#include <cmath>
#include <limits>

#include "tests/support/gradcheck.h"

using namespace pneuma;
using pneuma::testing::away_from_kinks;
using pneuma::testing::gradcheck;
using pneuma::testing::random_input;

TEST_SUITE("gradcheck") {
  TEST_CASE("gradcheck add") {
    gradcheck([](const auto& x) { return add(x[0], x[1]); }, {random_input({2, 3}, 1), random_input({2, 3}, 2)});
    // broadcasting both ways: [2,1,3] + [4,1]
    gradcheck([](const auto& x) { return add(x[0], x[1]); }, {random_input({2, 1, 3}, 3), random_input({4, 1}, 4)});
    gradcheck([](const auto& x) { return add(x[0], 2.5); }, {random_input({5}, 5)});
  }
  TEST_CASE("gradcheck sub") {
    gradcheck([](const auto& x) { return sub(x[0], x[1]); }, {random_input({3, 4}, 1), random_input({4}, 2)});
    gradcheck([](const auto& x) { return sub(x[0], 1.5); }, {random_input({3}, 3)});
  }
  TEST_CASE("gradcheck mul") {
    gradcheck([](const auto& x) { return mul(x[0], x[1]); }, {random_input({2, 3, 1}, 1), random_input({1, 4}, 2)});
    gradcheck([](const auto& x) { return mul(x[0], -3.0); }, {random_input({3}, 3)});
  }
  TEST_CASE("gradcheck div") {
    gradcheck([](const auto& x) { return div(x[0], x[1]); }, {random_input({3, 4}, 1), random_input({3, 1}, 2, 0.5, 2.0)});
    gradcheck([](const auto& x) { return div(x[0], 4.0); }, {random_input({3}, 3)});
  }
  TEST_CASE("gradcheck pow") {
    gradcheck([](const auto& x) { return pow(x[0], 3.0); }, {random_input({4, 3}, 1)});
    gradcheck([](const auto& x) { return pow(x[0], -0.5); }, {random_input({4}, 2, 0.5, 2.0)});
    gradcheck([](const auto& x) { return pow(x[0], x[1]); }, {random_input({2, 3}, 3, 0.5, 2.0), random_input({3}, 4)});
  }
  TEST_CASE("gradcheck neg") { gradcheck([](const auto& x) { return neg(x[0]); }, {random_input({7}, 1)}); }
  TEST_CASE("gradcheck exp") { gradcheck([](const auto& x) { return exp(x[0]); }, {random_input({3, 5}, 1)}); }
  TEST_CASE("gradcheck log") { gradcheck([](const auto& x) { return log(x[0]); }, {random_input({3, 5}, 1, 0.2, 3.0)}); }
  TEST_CASE("gradcheck sqrt") { gradcheck([](const auto& x) { return sqrt(x[0]); }, {random_input({3, 5}, 1, 0.2, 3.0)}); }
  TEST_CASE("gradcheck abs") {
    gradcheck([](const auto& x) { return abs(x[0]); }, {away_from_kinks(random_input({4, 5}, 1), {0.0})});
  }
  TEST_CASE("gradcheck relu") {
    gradcheck([](const auto& x) { return relu(x[0]); }, {away_from_kinks(random_input({4, 5}, 1), {0.0})});
  }
  TEST_CASE("gradcheck leaky_relu") {
    gradcheck([](const auto& x) { return leaky_relu(x[0], 0.2); }, {away_from_kinks(random_input({4, 5}, 1), {0.0})});
  }
  TEST_CASE("gradcheck sigmoid") { gradcheck([](const auto& x) { return sigmoid(x[0]); }, {random_input({4, 5}, 1, -4, 4)}); }
  TEST_CASE("gradcheck tanh") { gradcheck([](const auto& x) { return tanh(x[0]); }, {random_input({4, 5}, 1, -3, 3)}); }
  TEST_CASE("gradcheck softplus") {
    gradcheck([](const auto& x) { return softplus(x[0]); }, {random_input({4, 5}, 1, -5, 5)});
    // beta 2, threshold 3: elements with beta*x > threshold take the linear branch
    gradcheck([](const auto& x) { return softplus(x[0], 2.0, 3.0); }, {away_from_kinks(random_input({4, 5}, 2, -3, 3), {1.5})});
  }
  TEST_CASE("gradcheck clamp") {
    gradcheck([](const auto& x) { return clamp(x[0], -0.5, 0.5); }, {away_from_kinks(random_input({4, 5}, 1), {-0.5, 0.5})});
    gradcheck([](const auto& x) { return clamp(x[0], std::nullopt, 0.2); }, {away_from_kinks(random_input({6}, 2), {0.2})});
  }
}

TEST_CASE("elementwise values match closed forms - float32 and float64") {
  for (DType dtype : {DType::Float32, DType::Float64}) {
    const Tensor a = Tensor::from_vector({-2, -0.5, 0, 1.5}, {4}, dtype);
    CHECK(relu(a).to_vector() == std::vector<double>{0, 0, 0, 1.5});
    CHECK(leaky_relu(a, 0.1).to_vector()[0] == doctest::Approx(-0.2));
    CHECK(clamp(a, -1.0, 1.0).to_vector() == std::vector<double>{-1, -0.5, 0, 1});
    CHECK(sigmoid(a).to_vector()[2] == doctest::Approx(0.5));
    CHECK(softplus(Tensor::from_vector({30}, {1}, dtype)).item() == doctest::Approx(30));  // linear above threshold
    const Tensor b = Tensor::from_vector({1, 2}, {2, 1}, dtype);
    const Tensor c = add(a, b);  // [4] + [2,1] -> [2,4]
    CHECK(c.shape() == Shape{2, 4});
    CHECK(c.to_vector() == std::vector<double>{-1, 0.5, 1, 2.5, 0, 1.5, 2, 3.5});
    CHECK(gt(a, 0.0).to_vector() == std::vector<double>{0, 0, 0, 1});
  }
}

TEST_CASE("relu lets NaN and -0 through and keeps NaN's gradient - as torch.relu") {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  for (const DType dtype : {DType::Float32, DType::Float64}) {
    Tensor x = Tensor::from_vector({nan, -0.0, -1.0, 2.0}, {4}, dtype);
    x.set_requires_grad(true);
    const Tensor y = relu(x);
    const std::vector<double> v = y.to_vector();
    CHECK(std::isnan(v[0]));
    CHECK(v[1] == 0.0);
    CHECK(std::signbit(v[1]));
    CHECK(v[2] == 0.0);
    CHECK(v[3] == 2.0);
    y.backward(Tensor::ones({4}, dtype));
    CHECK(x.grad().to_vector() == std::vector<double>{1, 0, 0, 1});
  }
}

TEST_CASE("relu of a tensor given up reuses its memory only where no one else sees it") {
  const Tensor a = Tensor::from_vector({-2, -0.5, 0, 1.5, 3}, {5});
  const std::vector<double> expected{0, 0, 0, 3, 6};
  // a temporary: relu writes over it
  Tensor t = mul(a, 2.0);
  const void* data = t.raw_data();
  const Tensor y = relu(std::move(t));
  CHECK(y.raw_data() == data);
  CHECK(y.to_vector() == expected);
  // another handle to the same tensor, or a view of its storage: left as it was
  Tensor u = mul(a, 2.0);
  const Tensor other = u;
  CHECK(relu(std::move(u)).to_vector() == expected);
  CHECK(other.to_vector() == std::vector<double>{-4, -1, 0, 3, 6});
  Tensor whole = mul(a, 2.0);
  const Tensor view = whole.reshape({5, 1});
  CHECK(relu(std::move(whole)).to_vector() == expected);
  CHECK(view.to_vector() == std::vector<double>{-4, -1, 0, 3, 6});
  // tanh saves its output for backward: relu(tanh(x)) must not overwrite it
  Tensor x = a.clone();
  x.set_requires_grad(true);
  sum(relu(tanh(x))).backward();
  const std::vector<double> grad = x.grad().to_vector(), values = a.to_vector();
  for (size_t i = 0; i < values.size(); ++i) {
    const double th = std::tanh(values[i]);
    CHECK(grad[i] == doctest::Approx(th > 0 ? 1 - th * th : 0.0).epsilon(1e-6));
  }
  // mul saves its operands, not its output: relu runs in place and the gradient is the same
  Tensor w = a.clone();
  w.set_requires_grad(true);
  sum(relu(mul(w, 2.0))).backward();
  CHECK(w.grad().to_vector() == std::vector<double>{0, 0, 0, 2, 2});
}

TEST_CASE("elementwise errors name the op and both operands") {
  const Tensor a = Tensor::zeros({2, 3});
  const Tensor b = Tensor::zeros({4});
  CHECK_THROWS_WITH_AS(add(a, b), "add: shapes [2, 3] and [4] cannot be broadcast together", Error);
  CHECK_THROWS_WITH_AS(mul(a, Tensor::zeros({2, 3}, DType::Float64)),
                       "mul: dtype mismatch: float32[2, 3] on cpu vs float64[2, 3] on cpu", Error);
  CHECK_THROWS_AS(relu(Tensor::zeros({2}, DType::Int64)), Error);
}

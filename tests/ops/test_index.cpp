#include <doctest/doctest.h>

#include "tests/support/gradcheck.h"
#include "tests/support/parity.h"

using namespace pneuma;
using pneuma::testing::check_parity;
using pneuma::testing::gradcheck;
using pneuma::testing::random_input;

namespace {
Tensor mask_of(const std::vector<double>& v, const Shape& shape) { return Tensor::from_vector(v, shape, DType::Bool); }
}  // namespace

TEST_SUITE("gradcheck") {
  TEST_CASE("gradcheck cat") {
    const std::vector<Tensor> three{random_input({2, 3, 2}, 1), random_input({2, 1, 2}, 2), random_input({2, 4, 2}, 3)};
    gradcheck([](const auto& x) { return cat({x[0], x[1], x[2]}, 1); }, three);
    gradcheck([](const auto& x) { return cat({x[0], x[1], x[2]}, -1); },
              {random_input({2, 3}, 4), random_input({2, 1}, 5), random_input({2, 2}, 6)});
    // an input used twice, a legacy empty [0] tensor skipped, one input without grad
    gradcheck([](const auto& x) { return cat({x[0], Tensor::zeros({0}, DType::Float64), x[1], x[0]}, 0); },
              {random_input({2, 3}, 7), random_input({1, 3}, 8, -1, 1, false)});
  }
  TEST_CASE("gradcheck stack") {
    gradcheck([](const auto& x) { return stack({x[0], x[1], x[2]}, 1); },
              {random_input({2, 3}, 1), random_input({2, 3}, 2), random_input({2, 3}, 3)});
    gradcheck([](const auto& x) { return stack({x[0], x[1]}, -1); }, {random_input({4}, 4), random_input({4}, 5)});
  }
  TEST_CASE("gradcheck index_select") {
    const Tensor index = Tensor::from_indices({4, 0, 4, 2, 4}, {5});
    gradcheck([index](const auto& x) { return index_select(x[0], 1, index); }, {random_input({3, 5, 2}, 1)});
    gradcheck([index](const auto& x) { return index_select(x[0], 0, index); }, {random_input({5}, 2)});
    gradcheck([](const auto& x) { return index_select(x[0].transpose(0, 1), -1, Tensor::from_indices({1, 1}, {2})); },
              {random_input({3, 4}, 3)});
  }
  TEST_CASE("gradcheck gather") {
    const Tensor index = Tensor::from_indices({0, 4, 4, 1, 2, 2, 3, 0}, {2, 4});
    gradcheck([index](const auto& x) { return gather(x[0], 1, index); }, {random_input({3, 5}, 1)});
    const Tensor index0 = Tensor::from_indices({2, 0, 2, 1, 1, 1}, {2, 3});
    gradcheck([index0](const auto& x) { return gather(x[0], 0, index0); }, {random_input({3, 4}, 2)});
  }
  TEST_CASE("gradcheck scatter_add") {
    const Tensor index = Tensor::from_indices({3, 0, 3, 1, 1, 2}, {3, 2});
    gradcheck([index](const auto& x) { return scatter_add(x[0], 0, index, x[1]); },
              {random_input({4, 3}, 1), random_input({3, 3}, 2)});  // index smaller than src: the rest gets zero
  }
  TEST_CASE("gradcheck where") {
    const Tensor cond = mask_of({1, 0, 0, 1, 1, 0, 1, 0}, {2, 1, 4});
    gradcheck([cond](const auto& x) { return where(cond, x[0], x[1]); }, {random_input({3, 1}, 1), random_input({2, 3, 4}, 2)});
    gradcheck([cond](const auto& x) { return where(cond, x[0], x[1]); }, {random_input({2, 3, 4}, 3), random_input({}, 4)});
  }
  TEST_CASE("gradcheck masked_fill") {
    const Tensor mask = mask_of({1, 0, 0, 1}, {4});
    gradcheck([mask](const auto& x) { return masked_fill(x[0], mask, 7.0); }, {random_input({3, 4}, 1)});
    // x broadcast against a larger mask, as torch.masked_fill
    gradcheck([](const auto& x) { return masked_fill(x[0], mask_of({1, 0, 1, 1, 0, 0}, {2, 3, 1}), -1.0); },
              {random_input({3, 4}, 2)});
  }
  TEST_CASE("gradcheck flatten (free function)") {
    gradcheck([](const auto& x) { return flatten(x[0], 1); }, {random_input({2, 3, 4}, 1)});
    gradcheck([](const auto& x) { return flatten(x[0]); }, {random_input({2, 3}, 2)});
  }
}

TEST_CASE("index ops: values") {
  const Tensor x = Tensor::from_vector({0, 1, 2, 3, 4, 5}, {2, 3});
  CHECK(cat({x, x}, 0).shape() == Shape{4, 3});
  CHECK(cat({x, x.slice(1, 0, 1)}, 1).to_vector() == std::vector<double>{0, 1, 2, 0, 3, 4, 5, 3});
  CHECK(cat({Tensor::zeros({0}), x}, 1).shape() == Shape{2, 3});  // legacy empty skipped
  CHECK(cat({Tensor::from_indices({1, 2}, {2}), Tensor::from_indices({3}, {1})}).to_indices() ==
        std::vector<int64_t>{1, 2, 3});
  CHECK(stack({x, x}, 2).shape() == Shape{2, 3, 2});
  CHECK(stack({Tensor::scalar(1.0), Tensor::scalar(2.0)}).to_vector() == std::vector<double>{1, 2});
  CHECK(index_select(x, 1, Tensor::from_indices({2, 0, 2}, {3})).to_vector() == std::vector<double>{2, 0, 2, 5, 3, 5});
  CHECK(index_select(x, 0, Tensor::from_indices({1}, {})).shape() == Shape{1, 3});
  CHECK(gather(x, 1, Tensor::from_indices({2, 2, 0, 1}, {2, 2})).to_vector() == std::vector<double>{2, 2, 3, 4});
  CHECK(scatter_add(Tensor::zeros({3}), 0, Tensor::from_indices({0, 2, 0}, {3}), Tensor::ones({3})).to_vector() ==
        std::vector<double>{2, 0, 1});
  const Tensor cond = mask_of({1, 0, 1}, {3});
  CHECK(where(cond, x, Tensor::full({}, -1.0)).to_vector() == std::vector<double>{0, -1, 2, 3, -1, 5});
  CHECK(masked_fill(x, cond, 9.0).to_vector() == std::vector<double>{9, 1, 9, 9, 4, 9});
  CHECK(masked_fill(Tensor::from_indices({1, 2, 3}, {3}), cond, 0).to_indices() == std::vector<int64_t>{0, 2, 0});
  CHECK(flatten(Tensor::zeros({2, 3, 4}), 0, 1).shape() == Shape{6, 4});
}

TEST_CASE("index ops: errors name the op - the index value and the dim size") {
  const Tensor x = Tensor::zeros({2, 3});
  CHECK_THROWS_WITH_AS(index_select(x, 1, Tensor::from_indices({0, 5}, {2})),
                       "index_select: index 5 is out of bounds for dim 1 with size 3", Error);
  CHECK_THROWS_WITH_AS(index_select(x, 0, Tensor::from_indices({-1}, {1})),
                       "index_select: index -1 is out of bounds for dim 0 with size 2", Error);
  CHECK_THROWS_WITH_AS(index_select(x, 0, Tensor::zeros({1})),
                       "index_select: index must be an int64 tensor, got float32[1] on cpu", Error);
  CHECK_THROWS_WITH_AS(gather(x, 1, Tensor::from_indices({3}, {1, 1})),
                       "gather: index 3 is out of bounds for dim 1 with size 3", Error);
  CHECK_THROWS_WITH_AS(gather(x, 1, Tensor::from_indices({0, 0, 0}, {3, 1})),
                       "gather: index int64[3, 1] on cpu is larger than input float32[2, 3] on cpu at dim 0 (only dim 1 "
                       "may differ)",
                       Error);
  CHECK_THROWS_WITH_AS(scatter_add(x, 0, Tensor::from_indices({2}, {1, 1}), Tensor::ones({1, 1})),
                       "scatter_add: index 2 is out of bounds for dim 0 with size 2", Error);
  CHECK_THROWS_WITH_AS(cat({x, Tensor::zeros({2, 3, 1})}, 0),
                       "cat: tensors must have the same number of dimensions, got float32[2, 3] on cpu and float32[2, 3, "
                       "1] on cpu (tensor 1)",
                       Error);
  CHECK_THROWS_WITH_AS(cat({x, Tensor::zeros({3, 3}), Tensor::zeros({2, 4})}, 0),
                       "cat: sizes of tensors must match except in dim 0: expected size 3 but got size 4 at dim 1 for "
                       "tensor 2 float32[2, 4] on cpu",
                       Error);
  CHECK_THROWS_WITH_AS(cat({}, 0), "cat: expected a non-empty list of tensors", Error);
  CHECK_THROWS_WITH_AS(stack({x, Tensor::zeros({2, 4})}, 0),
                       "stack: expects each tensor to be equal size, but got [2, 3] at entry 0 and [2, 4] at entry 1", Error);
  CHECK_THROWS_WITH_AS(where(Tensor::zeros({2, 3}), x, x),
                       "where: condition must be a bool tensor, got float32[2, 3] on cpu", Error);
  CHECK_THROWS_WITH_AS(where(mask_of({1, 0}, {2}), x, x), "where: shapes [2] and [2, 3] cannot be broadcast together",
                       Error);
  CHECK_THROWS_WITH_AS(masked_fill(x, mask_of({1, 0}, {2}), 1.0),
                       "masked_fill: shapes [2, 3] and [2] cannot be broadcast together", Error);
}

TEST_CASE("pow backward masks log(0) with masked_fill") {
  // d/db a^b at a == 0 is 0 (PyTorch), and the other elements are b a^b log a.
  Tensor a = Tensor::from_vector({0, 2}, {2}, DType::Float64);
  Tensor b = Tensor::from_vector({2, 3}, {2}, DType::Float64);
  b.set_requires_grad(true);
  pow(a, b).backward(Tensor::ones({2}, DType::Float64));
  const std::vector<double> g = b.grad().to_vector();
  CHECK(g[0] == 0.0);
  CHECK(g[1] == doctest::Approx(8 * std::log(2.0)));
}

TEST_SUITE("parity") {
  TEST_CASE("parity cat") {
    check_parity("cat_dim1", [](const auto& x) { return cat({x[0], x[1], x[2]}, 1); });
    check_parity("cat_dim_last", [](const auto& x) { return cat({x[0], x[1], x[2]}, -1); }, DType::Float32);
  }
  TEST_CASE("parity stack") { check_parity("stack_dim1", [](const auto& x) { return stack({x[0], x[1], x[2]}, 1); }); }
  TEST_CASE("parity index_select") {
    check_parity("index_select_repeated", [](const auto& x) { return index_select(x[0], 1, x[1]); });
  }
  TEST_CASE("parity gather") { check_parity("gather_dim1", [](const auto& x) { return gather(x[0], 1, x[1]); }); }
  TEST_CASE("parity scatter_add") {
    check_parity("scatter_add_dim0", [](const auto& x) { return scatter_add(x[0], 0, x[1], x[2]); });
  }
  TEST_CASE("parity where") {
    check_parity("where_broadcast", [](const auto& x) { return where(x[0], x[1], x[2]); });
  }
  TEST_CASE("parity masked_fill") {
    check_parity("masked_fill_broadcast", [](const auto& x) { return masked_fill(x[0], x[1], -2.5); });
    check_parity("pow_zero_base", [](const auto& x) { return pow(x[0], x[1]); }, DType::Float64, 1e-10, 1e-12);
  }
}

#include <doctest/doctest.h>

#include <optional>

#include "engine/cpu/fast_path.h"
#include "engine/ops/linalg/linalg_cpu.h"
#include "engine/ops/reduce/reduce.h"
#include "tests/support/gradcheck.h"
#include "tests/support/parity.h"

using namespace pneuma;
using pneuma::testing::check_close;
using pneuma::testing::check_parity;
using pneuma::testing::gradcheck;
using pneuma::testing::random_input;

namespace {

// Forward and input gradients of f on float32 copies of `inputs`, through the fast path
// (BLAS) or the reference loops.
std::vector<Tensor> run_f32(const pneuma::testing::Function& f, const std::vector<Tensor>& inputs, bool fast) {
  std::optional<cpu::FastPathGuard> reference;
  if (!fast) reference.emplace();
  std::vector<Tensor> xs;
  for (const Tensor& t : inputs) {
    Tensor c = t.detach().to(DType::Float32).clone();
    c.set_requires_grad(true);
    xs.push_back(c);
  }
  const Tensor y = f(xs);
  y.backward(Tensor::randn(y.shape(), 99, DType::Float32));
  std::vector<Tensor> results{y};
  for (const Tensor& x : xs) results.push_back(x.grad());
  return results;
}

void check_fast_path(const pneuma::testing::Function& f, const std::vector<Tensor>& inputs) {
  const auto fast = run_f32(f, inputs, true);
  const auto reference = run_f32(f, inputs, false);
  for (size_t i = 0; i < fast.size(); ++i) {
    INFO("result ", i, " (0 = output, then input gradients)");
    check_close(fast[i], reference[i], 1e-4, 1e-5);
  }
}

Tensor mm(const std::vector<Tensor>& x) { return matmul(x[0], x[1]); }

}  // namespace

TEST_SUITE("gradcheck") {
  TEST_CASE("gradcheck matmul") {
    SUBCASE("1-d . 1-d") { gradcheck(mm, {random_input({5}, 1), random_input({5}, 2)}); }
    SUBCASE("2-d") { gradcheck(mm, {random_input({3, 4}, 1), random_input({4, 2}, 2)}); }
    SUBCASE("1-d promoted") {
      gradcheck(mm, {random_input({4}, 1), random_input({4, 3}, 2)});
      gradcheck(mm, {random_input({3, 4}, 3), random_input({4}, 4)});
      gradcheck(mm, {random_input({4}, 5), random_input({2, 4, 3}, 6)});
      gradcheck(mm, {random_input({2, 3, 4}, 7), random_input({4}, 8)});
    }
    SUBCASE("batched") { gradcheck(mm, {random_input({2, 3, 4}, 1), random_input({2, 4, 5}, 2)}); }
    SUBCASE("batched with a shared right or left operand") {
      gradcheck(mm, {random_input({2, 3, 4}, 1), random_input({4, 5}, 2)});
      gradcheck(mm, {random_input({3, 4}, 3), random_input({2, 4, 5}, 4)});
    }
    SUBCASE("broadcast batch dims") {
      gradcheck(mm, {random_input({2, 1, 3, 4}, 1), random_input({3, 4, 2}, 2)});
      gradcheck(mm, {random_input({1, 3, 2}, 3), random_input({4, 1, 2, 3}, 4)});
    }
    SUBCASE("transposed operands") {
      gradcheck([](const auto& x) { return matmul(x[0].transpose(0, 1), x[1].transpose(-1, -2)); },
                {random_input({4, 3}, 1), random_input({2, 5, 4}, 2)});
    }
  }
  TEST_CASE("gradcheck linear") {
    SUBCASE("bias") {
      gradcheck([](const auto& x) { return linear(x[0], x[1], x[2]); },
                {random_input({4, 3}, 1), random_input({5, 3}, 2), random_input({5}, 3)});
    }
    SUBCASE("no bias") {
      gradcheck([](const auto& x) { return linear(x[0], x[1]); }, {random_input({4, 3}, 1), random_input({2, 3}, 2)});
    }
    SUBCASE("3-d input") {
      gradcheck([](const auto& x) { return linear(x[0], x[1], x[2]); },
                {random_input({2, 3, 4}, 1), random_input({5, 4}, 2), random_input({5}, 3)});
    }
    SUBCASE("1-d input, transposed weight") {
      gradcheck([](const auto& x) { return linear(x[0], x[1].transpose(0, 1), x[2]); },
                {random_input({4}, 1), random_input({4, 3}, 2), random_input({3}, 3)});
    }
    SUBCASE("only the weight requires grad") {
      gradcheck([](const auto& x) { return linear(x[0], x[1]); },
                {random_input({3, 4}, 1, -1, 1, false), random_input({2, 4}, 2)});
    }
  }
}

TEST_SUITE("fastpath") {
  TEST_CASE("fastpath matmul") {
    check_fast_path(mm, {random_input({7}, 1), random_input({7}, 2)});
    check_fast_path(mm, {random_input({9, 17}, 1), random_input({17, 13}, 2)});
    check_fast_path(mm, {random_input({17}, 3), random_input({17, 6}, 4)});
    check_fast_path(mm, {random_input({3, 5, 8}, 5), random_input({8, 6}, 6)});
    check_fast_path(mm, {random_input({2, 1, 5, 8}, 7), random_input({3, 8, 4}, 8)});
    // transposed and sliced operands: BLAS transpose flags and leading dimensions
    check_fast_path([](const auto& x) { return matmul(x[0].transpose(0, 1), x[1].slice(1, 1, 7, 2)); },
                    {random_input({8, 5}, 9), random_input({8, 9}, 10)});
    check_fast_path([](const auto& x) { return matmul(x[0].slice(0, 0, 6, 2), x[1].transpose(-1, -2)); },
                    {random_input({6, 4, 5}, 11), random_input({3, 7, 5}, 12)});
    // an operand BLAS cannot read in place (both strides non-unit) is copied
    check_fast_path([](const auto& x) { return matmul(x[0].slice(0, 0, 8, 2).slice(1, 0, 9, 3), x[1]); },
                    {random_input({8, 9}, 13), random_input({3, 4}, 14)});
  }
  TEST_CASE("fastpath linear") {
    check_fast_path([](const auto& x) { return linear(x[0], x[1], x[2]); },
                    {random_input({2, 7, 11}, 1), random_input({5, 11}, 2), random_input({5}, 3)});
    check_fast_path([](const auto& x) { return linear(x[0], x[1]); }, {random_input({9, 6}, 4), random_input({4, 6}, 5)});
    check_fast_path([](const auto& x) { return linear(x[0].transpose(0, 1), x[1], x[2]); },
                    {random_input({6, 9}, 6), random_input({4, 6}, 7), random_input({4}, 8)});
  }
  TEST_CASE("fastpath matmul: BLAS gemm against the loops directly - float32 and float64") {
    for (DType dtype : {DType::Float32, DType::Float64}) {
      const Tensor a = Tensor::randn({3, 4, 6}, 1, dtype), b = Tensor::randn({6, 5}, 2, dtype);
      Tensor fast = Tensor::full({3, 4, 5}, 0.5, dtype), ref = Tensor::full({3, 4, 5}, 0.5, dtype);
      cpu::gemm_blas(a, b, fast, /*accumulate=*/true);
      cpu::gemm_reference(a, b, ref, /*accumulate=*/true);
      check_close(fast, ref, 1e-5, 1e-5);
    }
  }
}

TEST_CASE("matmul backward when only one operand requires grad") {
  // Each operand's gradient needs only the other one saved; the other's shape must still be known.
  for (const bool left : {true, false}) {
    for (const auto& [sa, sb] : {std::pair<Shape, Shape>{{3, 4}, {4, 2}}, {{2, 3, 4}, {4, 5}}, {{4}, {2, 4, 3}}}) {
      Tensor a = Tensor::randn(sa, 1, DType::Float64), b = Tensor::randn(sb, 2, DType::Float64);
      (left ? a : b).set_requires_grad(true);
      sum(matmul(a, b)).backward();
      Tensor a_ref = a.detach().clone(), b_ref = b.detach().clone();
      a_ref.set_requires_grad(true);
      b_ref.set_requires_grad(true);
      sum(matmul(a_ref, b_ref)).backward();
      if (left) {
        CHECK(!b.grad().defined());
        check_close(a.grad(), a_ref.grad(), 0, 0);
      } else {
        CHECK(!a.grad().defined());
        check_close(b.grad(), b_ref.grad(), 0, 0);
      }
    }
  }
}

TEST_CASE("matmul values - shapes and zero-size operands") {
  const Tensor a = Tensor::from_vector({1, 2, 3, 4, 5, 6}, {2, 3});
  const Tensor b = Tensor::from_vector({1, 0, 0, 1, 1, 1}, {3, 2});
  CHECK(matmul(a, b).to_vector() == std::vector<double>{4, 5, 10, 11});
  CHECK(matmul(Tensor::from_vector({1, 2, 3}, {3}), Tensor::from_vector({4, 5, 6}, {3})).shape() == Shape{});
  CHECK(matmul(Tensor::from_vector({1, 2, 3}, {3}), Tensor::from_vector({4, 5, 6}, {3})).item() == 32);
  CHECK(matmul(Tensor::zeros({2, 3, 4}), Tensor::zeros({4})).shape() == Shape{2, 3});
  CHECK(matmul(Tensor::zeros({4}), Tensor::zeros({5, 4, 2})).shape() == Shape{5, 2});
  CHECK(matmul(Tensor::zeros({2, 1, 3, 4}), Tensor::zeros({5, 4, 6})).shape() == Shape{2, 5, 3, 6});
  // k = 0: a sum over nothing is zero
  CHECK(matmul(Tensor::ones({2, 0}), Tensor::ones({0, 3})).to_vector() == std::vector<double>(6, 0.0));
  CHECK(matmul(Tensor::ones({0, 4}), Tensor::ones({4, 3})).shape() == Shape{0, 3});
  CHECK(linear(Tensor::ones({2, 3}), Tensor::ones({4, 3}), Tensor::full({4}, 0.5)).to_vector() ==
        std::vector<double>(8, 3.5));
}

TEST_CASE("matmul and linear errors name the op and the shapes") {
  CHECK_THROWS_WITH_AS(matmul(Tensor::zeros({2, 3}), Tensor::zeros({4, 5})),
                       "matmul: shapes [2, 3] and [4, 5] cannot be multiplied (3 != 4)", Error);
  CHECK_THROWS_WITH_AS(matmul(Tensor::zeros({3}), Tensor::zeros({4})),
                       "matmul: shapes [3] and [4] cannot be multiplied (3 != 4)", Error);
  CHECK_THROWS_WITH_AS(matmul(Tensor::zeros({2, 2, 3}), Tensor::zeros({3, 3, 4})),
                       "matmul: batch dims of [2, 2, 3] and [3, 3, 4] cannot be broadcast together (2 vs 3)", Error);
  CHECK_THROWS_WITH_AS(matmul(Tensor::zeros({}), Tensor::zeros({3})),
                       "matmul: both arguments need to be at least 1-d, got [] and [3]", Error);
  CHECK_THROWS_WITH_AS(matmul(Tensor::zeros({2, 3}), Tensor::zeros({3, 2}, DType::Float64)),
                       "matmul: dtype mismatch: float32[2, 3] on cpu vs float64[3, 2] on cpu", Error);
  CHECK_THROWS_WITH_AS(linear(Tensor::zeros({4, 3}), Tensor::zeros({5, 2})),
                       "linear: input float32[4, 3] on cpu has 3 features but weight float32[5, 2] on cpu expects 2",
                       Error);
  CHECK_THROWS_WITH_AS(linear(Tensor::zeros({4, 3}), Tensor::zeros({5, 3}), Tensor::zeros({4})),
                       "linear: bias float32[4] on cpu must be 1-d with out_features = 5 elements (weight float32[5, 3] "
                       "on cpu)",
                       Error);
}

TEST_SUITE("parity") {
  TEST_CASE("parity matmul") {
    for (DType dtype : {DType::Float64, DType::Float32}) {
      const double rtol = dtype == DType::Float64 ? 1e-10 : 1e-4, atol = dtype == DType::Float64 ? 1e-12 : 1e-5;
      for (const char* name : {"matmul_1d_1d", "matmul_2d_2d", "matmul_1d_2d", "matmul_2d_1d", "matmul_3d_2d",
                               "matmul_2d_3d", "matmul_1d_3d", "matmul_3d_1d", "matmul_batched_broadcast"})
        check_parity(name, mm, dtype, rtol, atol);
    }
  }
  TEST_CASE("parity linear") {
    for (DType dtype : {DType::Float64, DType::Float32}) {
      const double rtol = dtype == DType::Float64 ? 1e-10 : 1e-4, atol = dtype == DType::Float64 ? 1e-12 : 1e-5;
      check_parity("linear_bias_3d", [](const auto& x) { return linear(x[0], x[1], x[2]); }, dtype, rtol, atol);
      check_parity("linear_no_bias_1d", [](const auto& x) { return linear(x[0], x[1]); }, dtype, rtol, atol);
    }
  }
}

// bfloat16 matmul, linear, cat, softmax/log_softmax and upsampling on the CPU, forward and
// backward, against the float32 oracle: the same op in float32 on the bfloat16 values widened
// (exactly) to float32. The bfloat16 ops compute in float32 and round once on store, so their
// results lie within a bfloat16 rounding (half an ulp, 2^-9 relative) of the oracle's plus the
// float32 differences of another summation order; the checks allow 2 ulps (rtol 1.6e-2).
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/cpu/fast_path.h"
#include "engine/ops/softmax/softmax_cpu.h"
#include "engine/pneuma.h"
#include "tests/data/data_util.h"
#include "tests/kernels/kernel_check.h"
#include "tests/ops/bf16_check.h"

using namespace pneuma;
using pneuma::testing::bf16_values;
using pneuma::testing::require_bf16_close;
using pneuma::testing::require_same_bits;

namespace {

Tensor leaf(Tensor t) {
  t.set_requires_grad(true);
  return t;
}

using Op = std::function<Tensor(const std::vector<Tensor>&)>;

// Runs f on bfloat16 leaves and on their float32 widenings, backpropagates the same output
// gradient (bfloat16 values) through both, and compares the output and every input gradient.
// atol scales with the data: the caller's bound on the float32 differences near zero.
void check_against_float32(const Op& f, const std::vector<Tensor>& bf16_inputs, double atol, uint64_t seed = 77) {
  std::vector<Tensor> low, wide;
  for (const Tensor& t : bf16_inputs) {
    REQUIRE(t.dtype() == DType::BFloat16);
    low.push_back(leaf(t.detach().clone()));
    wide.push_back(leaf(t.detach().to(DType::Float32)));
  }
  const Tensor y = f(low), y32 = f(wide);
  REQUIRE(y.dtype() == DType::BFloat16);
  require_bf16_close(y32, y, atol, "output");
  const Tensor g = bf16_values(y.shape(), seed);
  y.backward(g);
  y32.backward(g.to(DType::Float32));
  for (size_t i = 0; i < low.size(); ++i) {
    CAPTURE(i);
    REQUIRE(low[i].grad().defined());
    CHECK(low[i].grad().dtype() == DType::BFloat16);
    require_bf16_close(wide[i].grad(), low[i].grad(), atol, "gradient");
  }
}

}  // namespace

TEST_SUITE("bfloat16") {

TEST_CASE("bfloat16 matmul forward and backward") {
  // Inputs in [-1, 1): a k-term dot product's float32 differences stay below k * 2^-24 * k,
  // far under the atol; near-zero results are relative in bfloat16 too.
  const double atol = 1e-5;
  const Op mm = [](const auto& t) { return matmul(t[0], t[1]); };
  SUBCASE("2-d") { check_against_float32(mm, {bf16_values({5, 37}, 1), bf16_values({37, 6}, 2)}, atol); }
  SUBCASE("vector operands") {
    check_against_float32(mm, {bf16_values({37}, 3), bf16_values({37}, 4)}, atol);
    check_against_float32(mm, {bf16_values({37}, 5), bf16_values({37, 6}, 6)}, atol);
    check_against_float32(mm, {bf16_values({5, 37}, 7), bf16_values({37}, 8)}, atol);
  }
  SUBCASE("batched with a shared right operand") {
    check_against_float32(mm, {bf16_values({3, 4, 19}, 9), bf16_values({19, 6}, 10)}, atol);
  }
  SUBCASE("broadcast batch dims") {
    check_against_float32(mm, {bf16_values({2, 1, 5, 19}, 11), bf16_values({3, 19, 4}, 12)}, atol);
  }
  SUBCASE("transposed operands") {
    check_against_float32([](const auto& t) { return matmul(t[0].transpose(-2, -1), t[1].transpose(-2, -1)); },
                          {bf16_values({4, 19, 5}, 13), bf16_values({4, 6, 19}, 14)}, atol);
  }
  SUBCASE("the reference loops") {
    cpu::FastPathGuard reference;
    check_against_float32(mm, {bf16_values({2, 5, 37}, 15), bf16_values({2, 37, 6}, 16)}, atol);
  }
}

TEST_CASE("bfloat16 matmul rounds the float32 product once") {
  // Same operands, same BLAS call: the bfloat16 product is the float32 one rounded to nearest even.
  const Tensor a = bf16_values({7, 300}, 21), b = bf16_values({300, 9}, 22);
  const Tensor y = matmul(a, b);
  const Tensor y32 = matmul(a.to(DType::Float32), b.to(DType::Float32));
  require_same_bits(y32.to(DType::BFloat16), y);
}

TEST_CASE("bfloat16 linear forward and backward") {
  const double atol = 1e-5;
  SUBCASE("with bias") {
    check_against_float32([](const auto& t) { return linear(t[0], t[1], t[2]); },
                          {bf16_values({6, 40}, 1), bf16_values({5, 40}, 2), bf16_values({5}, 3)}, atol);
  }
  SUBCASE("3-d input with bias") {
    // The bias gradient sums 2 * 7 rows of bfloat16 gradients in float32 and rounds once.
    check_against_float32([](const auto& t) { return linear(t[0], t[1], t[2]); },
                          {bf16_values({2, 7, 40}, 4), bf16_values({5, 40}, 5), bf16_values({5}, 6)}, atol);
  }
  SUBCASE("1-d input without bias") {
    check_against_float32([](const auto& t) { return linear(t[0], t[1]); },
                          {bf16_values({40}, 7), bf16_values({5, 40}, 8)}, atol);
  }
}

TEST_CASE("bfloat16 matmul and linear errors name the op") {
  CHECK_THROWS_WITH_AS(matmul(bf16_values({2, 3}, 1), Tensor::zeros({3, 2})),
                       doctest::Contains("matmul"), Error);
  CHECK_THROWS_WITH_AS(linear(bf16_values({2, 3}, 1), bf16_values({4, 5}, 2)),
                       doctest::Contains("linear: input bfloat16[2, 3]"), Error);
}

TEST_CASE("bfloat16 cat forward and backward") {
  // A pure copy: bit for bit the float32 result rounded, and so are the gradient slices.
  const Op cat1 = [](const auto& t) { return cat({t[0], t[1], t[2]}, 1); };
  check_against_float32(cat1, {bf16_values({2, 3, 4}, 1), bf16_values({2, 5, 4}, 2), bf16_values({2, 1, 4}, 3)}, 0);
  // A strided (transposed) part, as DenseNet's and U-Net's channel concatenations may get.
  const Tensor a = bf16_values({2, 3, 4}, 4), b = bf16_values({2, 2, 3}, 5).transpose(1, 2);
  const Tensor y = cat({a, b}, -1);
  require_same_bits(cat({a.to(DType::Float32), b.to(DType::Float32)}, -1).to(DType::BFloat16), y);
}

TEST_CASE("bfloat16 softmax and log_softmax forward and backward") {
  for (const bool log : {false, true}) {
    CAPTURE(log);
    for (const int64_t dim : {1, -1, 0}) {
      CAPTURE(dim);
      const Tensor x = bf16_values({4, 13, 6}, 31 + dim, -4, 4);
      const auto f = [&](const Tensor& t) { return log ? log_softmax(t, dim) : softmax(t, dim); };
      const int64_t d = dim < 0 ? dim + x.dim() : dim;
      const Tensor xl = leaf(x.detach().clone()), x32 = leaf(x.to(DType::Float32));
      const Tensor y = f(xl), y32 = f(x32);
      // Outputs: probabilities in (0, 1] or log-probabilities; rounded once from float.
      require_bf16_close(y32, y, 1e-6, "output");

      const Tensor g = bf16_values(y.shape(), 41 + dim);
      y.backward(g);
      y32.backward(g.to(DType::Float32));
      const Tensor dx = xl.grad();
      REQUIRE(dx.dtype() == DType::BFloat16);
      // Like PyTorch, the backward reads the saved bfloat16 output: against the float32 formula
      // on those same saved values the gradient is one rounding away.
      const Tensor expected = Tensor::empty(y.shape());
      cpu::softmax_backward(y.detach().to(DType::Float32), g.to(DType::Float32), d, log, expected);
      require_bf16_close(expected, dx, 1e-6, "gradient from the saved output");
      // Against the float32 autograd the saved output's rounding (relative 2^-9) shows: softmax
      // dx_i = y_i (g_i - sum_j g_j y_j) moves by at most 3 * 2^-9 * max|g| (|g| < 1); log_softmax
      // dx_i = g_i - exp(y_i) sum_j g_j moves by p_i |log p_i| 2^-9 |sum g| <= 2^-9 n / e.
      const int64_t n = y.size(d);
      const double atol = (log ? 0.37 * static_cast<double>(n) + 0.1 : 3.1) * std::ldexp(1.0, -9);
      require_bf16_close(x32.grad(), dx, atol, "gradient against float32 autograd");
    }
  }
}

TEST_CASE("bfloat16 upsample forward and backward") {
  // Taps, weights and gradient sums are float32, in the float32 loops' order: the bfloat16
  // results are the float32 ones rounded once, bit for bit.
  struct Case {
    std::string name;
    std::function<Tensor(const Tensor&)> f;
  };
  const Case cases[] = {
      {"nearest 2x", [](const Tensor& t) { return upsample_nearest2d(t, {8, 10}); }},
      {"nearest 13x7", [](const Tensor& t) { return upsample_nearest2d(t, {13, 7}); }},
      {"bilinear", [](const Tensor& t) { return upsample_bilinear2d(t, {11, 9}, false); }},
      {"bilinear align_corners", [](const Tensor& t) { return upsample_bilinear2d(t, {11, 9}, true); }},
      {"bilinear downsampling", [](const Tensor& t) { return upsample_bilinear2d(t, {3, 2}, false); }},
      {"interpolate scale 2.5", [](const Tensor& t) { return interpolate(t, std::nullopt, {{2.5, 2.5}}, "bilinear"); }},
  };
  for (const Case& c : cases) {
    CAPTURE(c.name);
    const Tensor x = bf16_values({2, 3, 4, 5}, 51);
    const Tensor xl = leaf(x.detach().clone()), x32 = leaf(x.to(DType::Float32));
    const Tensor y = c.f(xl), y32 = c.f(x32);
    REQUIRE(y.dtype() == DType::BFloat16);
    require_same_bits(y32.detach().to(DType::BFloat16), y);
    const Tensor g = bf16_values(y.shape(), 52);
    y.backward(g);
    y32.backward(g.to(DType::Float32));
    REQUIRE(xl.grad().dtype() == DType::BFloat16);
    require_same_bits(x32.grad().to(DType::BFloat16), xl.grad());
  }
}

TEST_CASE("bfloat16 ops against torch") {
  const nlohmann::json none = nlohmann::json::object();
  // torch 1.13's CPU bfloat16 GEMM accumulates in bfloat16 below 16 rows or columns (outside
  // oneDNN), visibly less exact than float32 accumulation; the products here are >= 16 x 16, where
  // it runs oneDNN with float32 accumulation as we do.
  const std::vector<testing::TorchBf16Case> cases = {
      {"matmul", none, [](const auto& t) { return matmul(t[0], t[1]); },
       {bf16_values({16, 37}, 1), bf16_values({37, 16}, 2)}, 1e-5, 1e-5},
      // The gradients of broadcast operands: torch sums the batch's products rounded to bfloat16 (3
      // for a, 2 for b), we round once. Inputs in [-1/16, 1/16) and |g| < 1 keep every product's
      // 16-term entries below 1, so each rounding moves it by at most 2^-9: 3 * 2^-9 in all.
      {"matmul", none, [](const auto& t) { return matmul(t[0], t[1]); },
       {bf16_values({2, 1, 16, 19}, 3, -0.0625, 0.0625), bf16_values({3, 19, 16}, 4, -0.0625, 0.0625)}, 1e-6,
       3 * std::ldexp(1.0, -9)},
      {"linear", none, [](const auto& t) { return linear(t[0], t[1], t[2]); },
       {bf16_values({2, 8, 40}, 5), bf16_values({16, 40}, 6), bf16_values({16}, 7)}, 1e-5, 1e-5},
      // Both backwards read their own saved bfloat16 outputs, which may sit an ulp apart (exp and sums
      // in another order). softmax: dx_i = y_i (g_i - sum_j g_j y_j) then moves by at most
      // 3 * 2^-8 (sum_j y_j = 1, |g| < 1). log_softmax: torch rounds exp(y) * sum(g) to bfloat16
      // before the subtraction (half an ulp of up to n = 13), and an ulp of y moves exp(y) sum(g)
      // by p |log p| 2^-8 n <= 2^-8 n / e: 1.4 * 2^-8 * n in all.
      {"softmax", {{"dim", 1}}, [](const auto& t) { return softmax(t[0], 1); }, {bf16_values({4, 13, 6}, 8, -4, 4)},
       1e-6, 3 * std::ldexp(1.0, -8)},
      {"log_softmax", {{"dim", -1}}, [](const auto& t) { return log_softmax(t[0], -1); },
       {bf16_values({4, 6, 13}, 9, -4, 4)}, 1e-6, 1.4 * 13 * std::ldexp(1.0, -8)},
      {"cat", {{"dim", 1}}, [](const auto& t) { return cat({t[0], t[1]}, 1); },
       {bf16_values({2, 3, 4}, 10), bf16_values({2, 5, 4}, 11)}, 0, 0},
      {"upsample_nearest2d", {{"size", {13, 7}}}, [](const auto& t) { return upsample_nearest2d(t[0], {13, 7}); },
       {bf16_values({2, 3, 5, 3}, 12)}, 0, 0},
      // torch 1.13 interpolates bfloat16 in bfloat16 arithmetic (weights, products and partial sums
      // each rounded; ours round once, see "bfloat16 upsample forward and backward"). Forward: <= 8
      // roundings of values below 1, 8 * 2^-9. Backward: an input gathers <= 6 outputs, 3 roundings
      // each, of partial sums below 3: 18 * 3 * 2^-9. Wrong taps or weights would be off by ~1.
      {"upsample_bilinear2d", {{"size", {11, 9}}, {"align_corners", false}},
       [](const auto& t) { return upsample_bilinear2d(t[0], {11, 9}, false); }, {bf16_values({2, 3, 4, 5}, 13)},
       8 * std::ldexp(1.0, -9), 54 * std::ldexp(1.0, -9)},
      {"upsample_bilinear2d", {{"size", {11, 9}}, {"align_corners", true}},
       [](const auto& t) { return upsample_bilinear2d(t[0], {11, 9}, true); }, {bf16_values({2, 3, 4, 5}, 14)},
       8 * std::ldexp(1.0, -9), 54 * std::ldexp(1.0, -9)},
  };
  testing::require_close_to_torch("bf16_torch_ops.py", cases, 90);
}

}  // TEST_SUITE

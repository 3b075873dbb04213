// bfloat16 elementwise ops, casts, sums/means and gradient accumulation on the CPU, against the
// float32 oracle: the same op in float32 on the bfloat16 values (see the tolerances below).
//
// An elementwise op on bfloat16 computes in float32 and rounds once, so its forward result is
// exactly the float32 oracle rounded to bfloat16: those checks are bitwise. Backward passes read
// bfloat16-rounded saved values and gradients, and sums add rounded terms, so they are compared
// with a tolerance derived per check.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/pneuma.h"
#include "tests/data/data_util.h"
#include "tests/kernels/kernel_check.h"
#include "tests/ops/bf16_check.h"
#include "tests/support/unary_ops.h"

using namespace pneuma;
using pneuma::testing::bf16_values;
using pneuma::testing::f32;
using pneuma::testing::kHalfUlp;
using pneuma::testing::max_abs;
using pneuma::testing::require_bf16_close;
using pneuma::testing::require_rounded_oracle;
using pneuma::testing::require_same_bits;

TEST_SUITE("bfloat16") {

TEST_CASE("bfloat16 unary ops forward and backward") {
  for (const testing::UnaryFunction& u : testing::kUnaryOps) {
    for (const bool transposed : {false, true}) {
      CAPTURE(u.name);
      CAPTURE(transposed);
      Tensor x = bf16_values({37, 4}, 1, u.lo, u.hi);
      if (transposed) x = x.transpose(0, 1);
      x.set_requires_grad(true);
      Tensor x32 = f32(x);
      x32.set_requires_grad(true);
      const Tensor y = u.f(x), y32 = u.f(x32);
      require_rounded_oracle(y, y32.detach());

      const Tensor g = bf16_values(y.shape(), 2, -1, 1);
      y.backward(g);
      y32.backward(f32(g));
      REQUIRE(x.grad().dtype() == DType::BFloat16);
      // The bfloat16 backward reads the bfloat16 output y (exp, sqrt, sigmoid, tanh), off the
      // float32 one by up to half an ulp; g*y*(1-y) and g*(1-y^2) turn that into an absolute error
      // of at most 2 * |g| * half an ulp, plus the rounding of the result (rtol).
      require_bf16_close(x32.grad(), x.grad(), 2 * kHalfUlp * max_abs(g), "gradient");
    }
  }
}

TEST_CASE("bfloat16 relu over a temporary writes in place and keeps its gradient") {
  Tensor x = bf16_values({3, 50}, 3, -2, 2);
  x.set_requires_grad(true);
  Tensor x32 = f32(x);
  x32.set_requires_grad(true);
  // relu(Tensor&&) overwrites the temporary sum (the only handle to its storage).
  const Tensor y = relu(add(x, 0.25)), y32 = relu(add(x32, 0.25));
  require_rounded_oracle(y, y32.detach());
  const Tensor g = bf16_values(y.shape(), 4, -1, 1);
  y.backward(g);
  y32.backward(f32(g));
  require_bf16_close(x32.grad(), x.grad(), 0, "gradient", 0);  // g or 0: exact
}

TEST_CASE("bfloat16 binary ops forward and backward with broadcasting") {
  struct Binary {
    const char* name;
    Tensor (*f)(const Tensor&, const Tensor&);
  };
  const Binary ops[] = {
      {"add", [](const Tensor& a, const Tensor& b) { return add(a, b); }},
      {"sub", [](const Tensor& a, const Tensor& b) { return sub(a, b); }},
      {"mul", [](const Tensor& a, const Tensor& b) { return mul(a, b); }},
      {"div", [](const Tensor& a, const Tensor& b) { return div(a, b); }},
  };
  struct Shapes {
    Shape a, b;
  };
  for (const Binary& op : ops) {
    for (const Shapes& s : {Shapes{{4, 37}, {4, 37}}, Shapes{{2, 1, 5}, {4, 1}}, Shapes{{6, 9}, {}}}) {
      CAPTURE(op.name);
      CAPTURE(shape_str(s.a));
      CAPTURE(shape_str(s.b));
      Tensor a = bf16_values(s.a, 5, 0.5, 2), b = bf16_values(s.b, 6, 0.5, 2);
      a.set_requires_grad(true);
      b.set_requires_grad(true);
      Tensor a32 = f32(a), b32 = f32(b);
      a32.set_requires_grad(true);
      b32.set_requires_grad(true);
      const Tensor y = op.f(a, b), y32 = op.f(a32, b32);
      require_rounded_oracle(y, y32.detach());

      const Tensor g = bf16_values(y.shape(), 7, -1, 1);
      y.backward(g);
      y32.backward(f32(g));
      // Each gradient term (g, g*b, g/b, g*y/b with operands in [0.5, 2]) is rounded to bfloat16
      // before a broadcast operand's terms are summed (in float32): half an ulp of |term| <= 8|g|
      // per summed term, and y itself (read by div) is rounded too.
      for (const auto& [grad, grad32, count] :
           {std::tuple{a.grad(), a32.grad(), y.numel() / a.numel()}, std::tuple{b.grad(), b32.grad(), y.numel() / b.numel()}}) {
        REQUIRE(grad.dtype() == DType::BFloat16);
        require_bf16_close(grad32, grad, 2 * kHalfUlp * 8 * max_abs(g) * static_cast<double>(count), "gradient");
      }
    }
  }
}

TEST_CASE("bfloat16 pow forward and backward") {
  Tensor a = bf16_values({5, 7}, 8, 0.2, 2), b = bf16_values({7}, 9, -2, 2);
  require_rounded_oracle(pow(a, b), pow(f32(a), f32(b)));
  Tensor a32 = f32(a), b32 = f32(b);
  for (Tensor* t : {&a, &b, &a32, &b32}) t->set_requires_grad(true);
  const Tensor g = bf16_values({5, 7}, 12, -1, 1);
  pow(a, b).backward(g);
  pow(a32, b32).backward(f32(g));
  // The backward is composed of bfloat16 ops (b * a^(b-1) * g; a^b * log(a) * g), each rounding
  // once: a few ulps of the largest term; b's gradient sums 5 such terms per element.
  require_bf16_close(a32.grad(), a.grad(), 8 * kHalfUlp * 4 * max_abs(a32.grad()), "grad a");
  require_bf16_close(b32.grad(), b.grad(), 5 * 8 * kHalfUlp * 4 * max_abs(b32.grad()), "grad b");
}

TEST_CASE("bfloat16 comparisons give bool") {
  const Tensor a = bf16_values({4, 9}, 10, -1, 1), b = bf16_values({9}, 11, -1, 1);
  const Tensor a32 = f32(a), b32 = f32(b);
  for (const auto& [got, want] : {std::pair{gt(a, b), gt(a32, b32)}, std::pair{lt(a, b), lt(a32, b32)},
                                  std::pair{ge(a, b), ge(a32, b32)}, std::pair{le(a, b), le(a32, b32)},
                                  std::pair{eq(a, a.transpose(0, 0)), eq(a32, a32)}}) {
    REQUIRE(got.dtype() == DType::Bool);
    CHECK(got.to_vector() == want.to_vector());
  }
  // A scalar is rounded to bfloat16 first, as torch does: bf16(0.3) = 0.30078125, so a tensor
  // holding 0.30078125 is not greater than 0.3 (torch: tensor([0.30078125]).bfloat16() > 0.3 is False).
  const Tensor x = Tensor::from_vector({0.30078125, 0.3125, 0.296875}, {3}).to(DType::BFloat16);
  CHECK(gt(x, 0.3).to_vector() == std::vector<double>{0, 1, 0});
  CHECK(lt(x, 0.3).to_vector() == std::vector<double>{0, 0, 1});
}

TEST_CASE("bfloat16 casts round to nearest even and keep NaN inf and subnormals") {
  const float inf = std::numeric_limits<float>::infinity();
  // Expected bits from torch 1.13: torch.tensor(v).bfloat16().view(torch.int16).
  const std::vector<double> values = {1.0, 1 + 0x1p-8, 1 + 0x1p-7, 1 + 3 * 0x1p-8, inf, 3.4028235e38, -0.0, 1e-40,
                                      -2.5, 0x1p-133};
  const std::vector<uint16_t> expected_bits = {16256, 16256, 16257, 16258, 32640, 32640, 32768, 1, 49184, 1};
  for (const DType source : {DType::Float32, DType::Float64}) {
    CAPTURE(dtype_name(source));
    const Tensor b = Tensor::from_vector(values, {static_cast<int64_t>(values.size())}, source).to(DType::BFloat16);
    REQUIRE(b.dtype() == DType::BFloat16);
    const uint16_t* bits = static_cast<const uint16_t*>(b.raw_data());
    for (size_t i = 0; i < values.size(); ++i) {
      CAPTURE(values[i]);
      CHECK(bits[i] == expected_bits[i]);
    }
  }
  const Tensor nan = Tensor::from_vector({std::nan(""), -std::nan("")}, {2}).to(DType::BFloat16);
  for (double v : nan.to_vector()) CHECK(std::isnan(v));
  // Widening is exact: bfloat16 -> float32 / float64 -> bfloat16 gives the same bits.
  const Tensor x = bf16_values({33, 17}, 12, -1e3, 1e3);
  require_same_bits(x, x.to(DType::Float32).to(DType::BFloat16));
  require_same_bits(x, x.to(DType::Float64).to(DType::BFloat16));
  CHECK(x.to(DType::Float32).to_vector() == x.to(DType::Float64).to_vector());
}

TEST_CASE("bfloat16 casts of strided tensors match the contiguous cast") {
  const Tensor x = testing::uniform_values({23, 41}, 13, DType::Float32, -5, 5);
  const Tensor view = x.transpose(0, 1).slice(0, 1, 41, 3);
  require_same_bits(view.contiguous().to(DType::BFloat16), view.to(DType::BFloat16));
  const Tensor b = view.contiguous().to(DType::BFloat16);
  const Tensor bview = x.to(DType::BFloat16).transpose(0, 1).slice(0, 1, 41, 3);
  require_same_bits(b, bview.contiguous());  // a strided bfloat16 -> bfloat16 copy moves the bits
  require_same_bits(b.to(DType::Float32), bview.to(DType::Float32));
  // Integers and bools convert through float like the other dtypes.
  const Tensor ints = Tensor::from_indices({-3, 0, 7, 257}, {4});
  CHECK(ints.to(DType::BFloat16).to_vector() == std::vector<double>{-3, 0, 7, 256});  // 257 rounds to even
  CHECK(Tensor::from_vector({0.0, 0.5, -2.0}, {3}).to(DType::BFloat16).to(DType::Bool).to_vector() ==
        std::vector<double>{0, 1, 1});
}

TEST_CASE("bfloat16 sum and mean forward and backward") {
  struct Case {
    Shape shape;
    std::vector<int64_t> dims;
    bool keepdim;
  };
  const Case cases[] = {{{6, 50, 7}, {}, false}, {{6, 50, 7}, {1}, false}, {{6, 50, 7}, {0, 2}, true},
                        {{5, 3000}, {1}, false}, {{3, 4}, {0}, true},      {{2, 16, 3, 3}, {0, 2, 3}, false}};
  for (const Case& c : cases) {
    for (const bool average : {false, true}) {
      CAPTURE(shape_str(c.shape));
      CAPTURE(c.dims.size());
      CAPTURE(average);
      Tensor x = bf16_values(c.shape, 14, -1, 1.5);
      x.set_requires_grad(true);
      Tensor x32 = f32(x);
      x32.set_requires_grad(true);
      const Tensor y = average ? mean(x, c.dims, c.keepdim) : sum(x, c.dims, c.keepdim);
      const Tensor y32 = average ? mean(x32, c.dims, c.keepdim) : sum(x32, c.dims, c.keepdim);
      REQUIRE(y.dtype() == DType::BFloat16);
      const int64_t count = x.numel() / std::max<int64_t>(y.numel(), 1);
      // One rounding of a float32 sum: half an ulp, plus the float32 accumulation error of
      // `count` terms of at most 1.5 (2^-24 each, scaled by 1/count for a mean).
      const double accumulation = count * 0x1p-24 * 1.5 * (average ? 1.0 / count : 1.0);
      require_bf16_close(y32.detach(), y, accumulation, "output", kHalfUlp * 1.01);

      const Tensor g = bf16_values(y.shape(), 15, -1, 1);
      y.backward(g);
      y32.backward(f32(g));
      REQUIRE(x.grad().dtype() == DType::BFloat16);
      // g broadcast (sum: exact) or g/count rounded once (mean).
      require_bf16_close(x32.grad(), x.grad(), 0, "gradient", kHalfUlp * 1.01);
    }
  }
}

TEST_CASE("bfloat16 mean divides before it rounds") {
  // The sum 4.265625 of these bfloat16 values rounds to 4.25 (ulp 2^-5 at 4); 4.25 / 3 would round
  // to 1.4140625, the exact mean 1.421875 is a bfloat16 itself. Found by a search with torch; torch
  // on the CPU divides the rounded sum (1.4140625), torch on CUDA the float32 one, as we do.
  const Tensor x = Tensor::from_vector({1.765625, 1.1953125, 1.3046875}, {3}).to(DType::BFloat16);
  CHECK(sum(x).item() == 4.25);
  CHECK(mean(x).item() == 1.421875);
  CHECK(mean(x, {0}, true).item() == 1.421875);
}

TEST_CASE("bfloat16 gradients of a tensor used twice accumulate") {
  // A ResNet identity branch: out = relu(h * w + h) with h = relu(x), so h's gradient is the sum
  // of two paths, added by the autograd engine with the bfloat16 add.
  Tensor x = bf16_values({4, 3, 5}, 16, -1, 1), w = bf16_values({3, 1}, 17, -1, 1);
  x.set_requires_grad(true);
  w.set_requires_grad(true);
  Tensor x32 = f32(x), w32 = f32(w);
  x32.set_requires_grad(true);
  w32.set_requires_grad(true);
  const auto forward = [](const Tensor& input, const Tensor& weight) {
    const Tensor h = relu(input);
    return relu(add(mul(h, weight), h));
  };
  const Tensor y = forward(x, w), y32 = forward(x32, w32);
  const Tensor g = bf16_values(y.shape(), 18, -1, 1);
  y.backward(g);
  y32.backward(f32(g));
  REQUIRE(x.grad().dtype() == DType::BFloat16);
  // Each path's gradient is rounded (g*w and g: |.| <= 1) before the two are added and rounded.
  require_bf16_close(x32.grad(), x.grad(), 4 * kHalfUlp, "input gradient");
  // w's gradient sums 4 * 5 = 20 rounded terms g*h (|.| <= 1) per element.
  require_bf16_close(w32.grad(), w.grad(), 20 * kHalfUlp, "weight gradient");

  // A second backward adds into the bfloat16 .grad of the leaves.
  const Tensor first = x.grad().detach().clone();
  forward(x, w).backward(g);
  require_same_bits(add(first, first), x.grad());
}

TEST_CASE("bfloat16 elementwise ops and reductions against torch") {
  // torch 1.13 on bfloat16 leaves (tests/ops/bf16_torch_ops.py): torch computes these ops in
  // float32 and rounds once too, but its vectorized exp/tanh may differ from libm by a float32 ulp
  // and its CPU mean divides the rounded sum (ours divides first): within the 2-ulp rtol. Gradient
  // tolerances as in the float32-oracle cases above: a broadcast operand's gradient sums `count`
  // rounded terms (count <= 10 here, |term| <= 2 for mul, <= 8 for div).
  const nlohmann::json none = nlohmann::json::object();
  const Tensor a = bf16_values({2, 4, 5}, 20, 0.5, 2), b = bf16_values({4, 1}, 21, 0.5, 2);
  const Tensor x = bf16_values({4, 13}, 22, -3, 3), r = bf16_values({3, 4, 5}, 23, -1, 1.5);
  const std::vector<testing::TorchBf16Case> cases = {
      {"relu", none, [](const auto& t) { return relu(t[0]); }, {x}, 0, 0},
      {"sigmoid", none, [](const auto& t) { return sigmoid(t[0]); }, {x}, 0, 2 * kHalfUlp},
      {"tanh", none, [](const auto& t) { return tanh(t[0]); }, {x}, 0, 2 * kHalfUlp},
      {"exp", none, [](const auto& t) { return exp(t[0]); }, {x}, 0, 2 * kHalfUlp},
      {"mul_scalar", none, [](const auto& t) { return mul(t[0], 0.1); }, {x}, 0, 0},
      {"add", none, [](const auto& t) { return add(t[0], t[1]); }, {a, b}, 0, 1e-6},
      {"mul", none, [](const auto& t) { return mul(t[0], t[1]); }, {a, b}, 0, 2 * kHalfUlp * 2 * 10},
      {"div", none, [](const auto& t) { return div(t[0], t[1]); }, {a, b}, 0, 2 * kHalfUlp * 8 * 10},
      {"sum_dims", none, [](const auto& t) { return sum(t[0], {0, 2}, true); }, {r}, 15 * 1.5 * 0x1p-24, 0},
      {"mean_dim", none, [](const auto& t) { return mean(t[0], {1}); }, {r}, 0, 0},
      {"residual", none,
       [](const auto& t) {
         const Tensor h = relu(t[0]);
         return relu(add(mul(h, t[1]), h));
       },
       {bf16_values({4, 3, 5}, 24), bf16_values({3, 1}, 25)}, 0, 20 * kHalfUlp},
  };
  testing::require_close_to_torch("bf16_torch_ops.py", cases, 26);
}

TEST_CASE("bfloat16 ops refuse float16 with a clear message") {
  const Tensor h = Tensor::from_vector({1.0, 2.0}, {2}).to(DType::Float16);
  CHECK_THROWS_WITH(relu(h), doctest::Contains("float16"));
  CHECK_THROWS_WITH(add(h, h), doctest::Contains("float16"));
}

}  // TEST_SUITE

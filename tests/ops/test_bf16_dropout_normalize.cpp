// bfloat16 dropout and normalize on the CPU, forward and backward, against the float32 oracle (the
// same op in float32 on the bfloat16 values), and normalize against torch 1.13 on bfloat16.
//
// dropout: the mask is a function of (seed, element index) only, and kept values are scaled in
// float by float32's scale and rounded once, so output and gradient are the float32 oracle's
// rounded to bfloat16, bit for bit.
//
// normalize: computed in float (sums, norm, gradient) and rounded once per output; the oracle sums
// in double. Forward on values on a 1/64 grid in [-2, 2) with p = 1 or 2: each |x|^p is a multiple
// of 2^-12 below 4 and a row of n <= 1000 sums to below 2^12, so every sum is exact in float (24
// bits) as in double, the norm is the correctly rounded root on both sides (sqrt rounded through
// double to float rounds as sqrtf), and the division is the same float division: bit for bit the
// rounded oracle. Elsewhere (arbitrary bfloat16 values, p = 3) the float sums of n positive terms
// carry a relative error of at most n * 2^-24 (powf and the root a few 2^-24 more), which the
// tolerances below add to the one rounding (half an ulp: 2^-8 of the value).
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/core/random.h"
#include "engine/ops/autocast.h"
#include "engine/ops/dropout/dropout_cpu.h"
#include "engine/ops/normalize/normalize_cpu.h"
#include "engine/pneuma.h"
#include "models/simple_cnn.h"
#include "tests/kernels/kernel_check.h"
#include "tests/ops/bf16_check.h"

using namespace pneuma;
using pneuma::testing::bf16_values;
using pneuma::testing::f32;
using pneuma::testing::kHalfUlp;
using pneuma::testing::max_abs;
using pneuma::testing::require_bf16_close;
using pneuma::testing::require_rounded_oracle;
using pneuma::testing::require_same_bits;

namespace {

// Values on a 1/64 grid in [lo, hi), as bfloat16 (exactly: 7 bits and a sign).
Tensor grid_values(const Shape& shape, uint64_t seed, double lo = -2, double hi = 2) {
  return testing::uniform_values(shape, seed, DType::Float32, lo, hi, 1.0 / 64).to(DType::BFloat16);
}

// Relative error of a float sum of n positive terms and what follows it (root, powf, division):
// (n + 8) * 2^-24, doubled for margin.
double float_noise(int64_t n) { return 2.0 * static_cast<double>(n + 8) * 0x1p-24; }

struct NormalizeCase {
  Shape shape;
  int64_t dim;
  double p;
  bool transposed;  // x built as the transpose of a [shape[1], shape[0]] tensor
};

// Rows (inner = 1), strided rows (inner > 1), a short dim over long inner, long rows, p = 1 and 3,
// a non-contiguous input.
const NormalizeCase kNormalizeCases[] = {
    {{8, 64}, 1, 2.0, false},  {{4, 5, 6}, 1, 2.0, false},   {{6, 128}, 0, 2.0, false},
    {{3, 300}, -1, 1.0, false}, {{5, 7, 3}, 2, 3.0, false}, {{8, 40}, 1, 2.0, true},
};

Tensor normalize_input(const NormalizeCase& c, bool on_grid, uint64_t seed) {
  const Shape built = c.transposed ? Shape{c.shape[1], c.shape[0]} : c.shape;
  const Tensor x = on_grid ? grid_values(built, seed) : bf16_values(built, seed);
  return c.transposed ? x.transpose(0, 1) : x;
}

// The smallest max(||row||_p, eps) of x along dim, in float64: the scale of the gradient terms.
double smallest_denominator(const Tensor& x, int64_t dim, double p, double eps) {
  const Tensor x64 = x.detach().to(DType::Float64);
  const Tensor norms = pow(sum(pow(abs(x64), p), {dim}, true), 1.0 / p);
  return std::max(min(norms).item(), eps);
}

// Tolerance on normalize's input gradient from float arithmetic: each dx = g / d + c * dnorm/dx
// has terms of at most max|g| / d and max|g| * n^(1 - 1/p) / d (|sum g x| <= max|g| * ||x||_1 <=
// max|g| * n^(1-1/p) * d, and |dnorm/dx| <= 1), each off by the float noise of its sums.
double gradient_atol(const Tensor& x, const Tensor& g, int64_t dim, double p, double eps) {
  const int64_t n = x.shape()[wrap_dim(dim, x.dim(), "test")];
  const double terms = max_abs(g) * (1 + std::pow(static_cast<double>(n), 1 - 1 / p));
  return float_noise(n) * terms / smallest_denominator(x, dim, p, eps);
}

struct NormalizeRun {
  Tensor y, y32, dx, dx32;
};

NormalizeRun run_normalize(const Tensor& x, const Tensor& g, double p, int64_t dim, double eps) {
  Tensor leaf = x.detach(), leaf32 = f32(x);
  leaf.set_requires_grad(true);
  leaf32.set_requires_grad(true);
  NormalizeRun r;
  r.y = normalize(leaf, p, dim, eps);
  r.y32 = normalize(leaf32, p, dim, eps);
  r.y.backward(g);
  r.y32.backward(f32(g));
  r.dx = leaf.grad();
  r.dx32 = leaf32.grad();
  REQUIRE(r.y.dtype() == DType::BFloat16);
  REQUIRE(r.dx.dtype() == DType::BFloat16);
  return r;
}

}  // namespace

TEST_SUITE("bfloat16") {

TEST_CASE("bfloat16 dropout forward and backward") {
  for (const double p : {0.1, 0.3, 0.5, 0.9}) {
    for (const bool transposed : {false, true}) {
      CAPTURE(p);
      CAPTURE(transposed);
      Tensor x = bf16_values({37, 21}, 1, -3, 3);
      if (transposed) x = x.transpose(0, 1);
      x.set_requires_grad(true);
      Tensor x32 = f32(x);
      x32.set_requires_grad(true);
      const Tensor y = dropout(x, p, true, 1234), y32 = dropout(x32, p, true, 1234);
      require_rounded_oracle(y, y32.detach());
      const Tensor g = bf16_values(y.shape(), 2, -1, 1);
      y.backward(g);
      y32.backward(f32(g));
      REQUIRE(x.grad().dtype() == DType::BFloat16);
      require_rounded_oracle(x.grad(), x32.grad());
    }
  }
  // The kept values really are scaled (in float, by float32's 1 / (1 - p)), not copied.
  const Tensor ones = Tensor::ones({64}, DType::BFloat16);
  const Tensor y = dropout(ones, 0.3, true, 5);
  const double scaled = static_cast<float>(bfloat16(1.0f / static_cast<float>(1.0 - 0.3)));
  for (double v : y.to_vector()) CHECK((v == 0 || v == scaled));
}

TEST_CASE("bfloat16 dropout draws the float32 mask for a seed") {
  const Shape shape{64, 129};
  const Tensor x = bf16_values(shape, 3, 0.5, 2);  // no zeros: a zero output is a dropped element
  for (const uint64_t seed : {0ull, 1ull, 987654321ull}) {
    CAPTURE(seed);
    Tensor masks[3];
    const DType dtypes[] = {DType::BFloat16, DType::Float32, DType::Float64};
    for (int k = 0; k < 3; ++k) {
      masks[k] = Tensor::empty(shape, DType::Bool);
      cpu::dropout_forward(x.to(dtypes[k]), 0.4, seed, Tensor::empty(shape, dtypes[k]), masks[k]);
    }
    require_same_bits(masks[1], masks[0]);
    require_same_bits(masks[2], masks[0]);
    // The mask is the generator's stream, element by element, and the op drops exactly there.
    const std::vector<double> kept = masks[0].to(DType::Float32).to_vector();
    const std::vector<double> y = dropout(x, 0.4, true, seed).to_vector();
    for (size_t i = 0; i < kept.size(); ++i) {
      CAPTURE(i);
      REQUIRE((kept[i] != 0) == (random::uniform(seed, i) >= 0.4));
      REQUIRE((y[i] != 0) == (kept[i] != 0));
    }
  }
  // Another seed, another mask.
  const std::vector<double> a = dropout(x, 0.4, true, 7).to_vector(), b = dropout(x, 0.4, true, 8).to_vector();
  int64_t differ = 0;
  for (size_t i = 0; i < a.size(); ++i) differ += (a[i] == 0) != (b[i] == 0);
  CHECK(differ > 0);
}

TEST_CASE("bfloat16 dropout: identity and p = 1") {
  const Tensor x = bf16_values({4, 6}, 4);
  CHECK(dropout(x, 0.0, true, 1).same(x));
  CHECK(dropout(x, 0.5, false, 1).same(x));
  const Tensor zeros = dropout(x, 1.0, true, 1);
  CHECK(zeros.dtype() == DType::BFloat16);
  CHECK(zeros.to_vector() == std::vector<double>(24, 0.0));
  CHECK_THROWS_WITH_AS(dropout(Tensor::zeros({3}, DType::Float16), 0.5, true, 1),
                       doctest::Contains("dropout"), Error);
}

TEST_CASE("bfloat16 normalize forward and backward") {
  const double eps = 1e-12;
  for (const NormalizeCase& c : kNormalizeCases) {
    for (const bool on_grid : {true, false}) {
      CAPTURE(shape_str(c.shape));
      CAPTURE(c.dim);
      CAPTURE(c.p);
      CAPTURE(c.transposed);
      CAPTURE(on_grid);
      const Tensor x = normalize_input(c, on_grid, 5);
      const Tensor g = bf16_values(c.shape, 6);
      const NormalizeRun r = run_normalize(x, g, c.p, c.dim, eps);
      const int64_t n = c.shape[wrap_dim(c.dim, static_cast<int64_t>(c.shape.size()), "test")];
      if (on_grid && c.p != 3.0) require_rounded_oracle(r.y, r.y32.detach());
      else require_bf16_close(r.y32.detach(), r.y, 0, "output", kHalfUlp + float_noise(n));
      require_bf16_close(r.dx32, r.dx, gradient_atol(x, g, c.dim, c.p, eps), "input gradient", kHalfUlp);
    }
  }
}

TEST_CASE("bfloat16 normalize keeps the forward's float norm for backward") {
  // The norm saved for backward is float32 (unrounded); the output is bfloat16.
  const Tensor x = grid_values({4, 50}, 7);
  const Tensor y = Tensor::empty({4, 50}, DType::BFloat16), norm = Tensor::empty({4, 1}, DType::Float32);
  CHECK(cpu::normalize_norm_dtype(DType::BFloat16) == DType::Float32);
  CHECK(cpu::normalize_norm_dtype(DType::Float32) == DType::Float32);
  CHECK(cpu::normalize_norm_dtype(DType::Float64) == DType::Float64);
  cpu::normalize_forward(x, 1, 2.0, 1e-12, y, norm);
  const Tensor y32 = Tensor::empty({4, 50}), norm32 = Tensor::empty({4, 1});
  cpu::normalize_forward(f32(x), 1, 2.0, 1e-12, y32, norm32);
  require_same_bits(norm32, norm);  // exact sums on the grid: the same correctly rounded root
  require_rounded_oracle(y, y32);
}

TEST_CASE("bfloat16 normalize: rows below eps and zero rows") {
  // Rows 0 and 2 scaled far below eps = 0.5 take the clamped branch (y = x / eps, gradient g / eps);
  // row 3 is zero.
  std::vector<double> v = grid_values({4, 6}, 8).to(DType::Float32).to_vector();
  for (int j = 0; j < 6; ++j) {
    v[j] *= 1.0 / 16;
    v[12 + j] *= 1.0 / 16;
    v[18 + j] = 0;
  }
  const Tensor x = Tensor::from_vector(v, {4, 6}, DType::Float32).to(DType::BFloat16);
  const Tensor g = grid_values({4, 6}, 9, -1, 1);
  const NormalizeRun r = run_normalize(x, g, 2.0, 1, 0.5);
  require_rounded_oracle(r.y, r.y32.detach());
  require_bf16_close(r.dx32, r.dx, gradient_atol(x, g, 1, 2.0, 0.5), "input gradient", kHalfUlp);
  const std::vector<double> y = r.y.to_vector(), dx = r.dx.to_vector(), gs = g.to_vector();
  for (int j = 0; j < 6; ++j) {
    CHECK(y[j] == v[j] / 0.5);  // exact: a 1/1024 grid value times 2
    CHECK(y[18 + j] == 0.0);
    CHECK(dx[j] == gs[j] / 0.5);
    CHECK(dx[18 + j] == gs[18 + j] / 0.5);
  }
  // The default eps on a zero row: the gradient g / 1e-12 (rounded once), no NaN.
  Tensor zero = Tensor::zeros({1, 4}, DType::BFloat16);
  zero.set_requires_grad(true);
  normalize(zero).backward(Tensor::full({1, 4}, 0.5, DType::BFloat16));
  for (double d : zero.grad().to_vector()) CHECK(d == static_cast<float>(bfloat16(0.5f / 1e-12f)));
}

TEST_CASE("bfloat16 dropout and normalize under autocast") {
  // What failed before these ops took bfloat16: a classifier with Dropout, and an L2-normalized
  // projection, on the bfloat16 activations autocast produces; float32 master weights get float32
  // gradients.
  models::SimpleCnnOptions options;
  options.channels = {4, 8};
  options.hidden = 16;
  options.dropout = 0.5;
  options.num_classes = 3;
  models::SimpleCnn model(options);
  model.train();
  const Tensor images = testing::uniform_values({4, 3, 16, 16}, 10, DType::Float32, -1, 1);
  const Tensor labels = Tensor::from_vector({0, 2, 1, 2}, {4}, DType::Int64);
  Tensor projection = testing::uniform_values({5, model.feature_dim()}, 11, DType::Float32, -0.5, 0.5);
  projection.set_requires_grad(true);
  Tensor loss;
  {
    autocast::Guard guard(DType::BFloat16);
    const Tensor logits = model.forward(images);
    REQUIRE(logits.dtype() == DType::BFloat16);
    const Tensor pooled = static_cast<const models::ImageClassifier&>(model).features(images);
    const Tensor embedded = normalize(linear(pooled, projection), 2.0, 1);
    REQUIRE(embedded.dtype() == DType::BFloat16);
    // No type promotion in the engine: the bfloat16 term is widened for the sum.
    loss = add(cross_entropy(logits, labels), mean(mul(embedded, embedded)).to(DType::Float32));
  }
  REQUIRE(loss.dtype() == DType::Float32);
  loss.backward();
  for (const auto& [name, parameter] : model.named_parameters()) {
    CAPTURE(name);
    REQUIRE(parameter.grad().defined());
    CHECK(parameter.grad().dtype() == DType::Float32);
    for (double v : parameter.grad().to_vector()) REQUIRE(std::isfinite(v));
  }
  REQUIRE(projection.grad().defined());
  CHECK(projection.grad().dtype() == DType::Float32);
}

TEST_CASE("bfloat16 normalize against torch") {
  // torch 1.13 rounds the norm to bfloat16 before dividing (half an ulp of the norm: 2^-9 of the
  // output), both round the output once: the outputs agree within 2 ulps (rtol). torch's backward
  // rounds each intermediate to bfloat16 (g / d, g * x / d^2, their row sum, the norm's backward):
  // each off by half an ulp of a term of at most (1 + n^(1 - 1/p)) max|g| / d (max|g| <= 1), and
  // the two terms' errors add: grad_atol is two such half ulps (the observed differences stay
  // within a quarter of it).
  struct Case {
    Shape shape;
    int64_t dim;
    double p;
  };
  const Case shapes[] = {{{8, 64}, 1, 2.0}, {{4, 5, 6}, 1, 2.0}, {{5, 7, 3}, 2, 3.0}, {{3, 100}, -1, 1.0}};
  std::vector<testing::TorchBf16Case> cases;
  uint64_t seed = 40;
  for (const Case& c : shapes) {
    const Tensor x = bf16_values(c.shape, seed++);
    const int64_t n = c.shape[wrap_dim(c.dim, static_cast<int64_t>(c.shape.size()), "test")];
    const double terms = (1 + std::pow(static_cast<double>(n), 1 - 1 / c.p)) / smallest_denominator(x, c.dim, c.p, 1e-12);
    const double p = c.p;
    const int64_t dim = c.dim;
    cases.push_back({"normalize", {{"p", p}, {"dim", dim}},
                     [p, dim](const std::vector<Tensor>& t) { return normalize(t[0], p, dim); }, {x}, 1e-6,
                     2 * kHalfUlp * terms});
  }
  testing::require_close_to_torch("bf16_torch_ops.py", cases, 60);
}

}  // TEST_SUITE

// The dropout and normalize kernels on bfloat16 data, executed by the CPU emulator through the
// Tensor-level launch code of the CUDA dispatch (engine/ops/dropout/dropout_kernels.h,
// engine/ops/normalize/normalize_kernels.h), against the CPU loops on the same bfloat16 data.
//
// dropout: the same counter-based mask and the same float expression: bit for bit, and bit for bit
// the float32 loops' result rounded to bfloat16.
// normalize: the block reductions add in another order than the CPU loops. On values on a 1/64 grid
// (|x| < 2, |g| < 1) and p = 1 or 2 every term and every row sum (n <= 1000) is exact in float, so
// the order does not matter: norm, output and input gradient are bit for bit the loops'. Otherwise
// the float sums differ by at most n * 2^-24 of the sum of |terms|, which may move a result across a
// bfloat16 rounding boundary: one ulp (2^-7 of the value) plus that noise.
#include <doctest/doctest.h>

#include <cmath>
#include <string>
#include <vector>

#include "engine/ops/dropout/dropout_cpu.h"
#include "engine/ops/dropout/dropout_kernels.h"
#include "engine/ops/normalize/normalize_cpu.h"
#include "engine/ops/normalize/normalize_kernels.h"
#include "engine/pneuma.h"
#include "tests/kernels/kernel_check.h"
#include "tests/ops/bf16_check.h"

using namespace pneuma;
using pneuma::testing::bf16_values;
using pneuma::testing::require_bf16_close;
using pneuma::testing::require_same_bits;

namespace {

constexpr double kOneUlp = 0x1p-7;

Tensor grid_values(const Shape& shape, uint64_t seed, double lo, double hi) {
  return testing::uniform_values(shape, seed, DType::Float32, lo, hi, 1.0 / 64).to(DType::BFloat16);
}

double float_noise(int64_t n) { return 2.0 * static_cast<double>(n + 8) * 0x1p-24; }

struct NormalizeCase {
  Shape shape;
  int64_t dim;
};

// A row per block (inner = 1), strided rows, a short dim, rows longer than a block (300 > 256), n = 1.
const NormalizeCase kNormalizeCases[] = {{{6, 128}, 1}, {{6, 128}, 0}, {{2, 5, 3, 4}, 1}, {{3, 300}, -1}, {{4, 1}, 1}};

struct NormalizeResult {
  Tensor y, norm, dx;
};

// normalize forward and backward of bfloat16 x by the CPU loops or by the emulated kernels.
NormalizeResult run_normalize(bool kernel, const Tensor& x, const Tensor& g, int64_t dim, double p, double eps) {
  Shape norm_shape = x.shape();
  norm_shape[dim] = 1;
  NormalizeResult r{Tensor::empty(x.shape(), DType::BFloat16), Tensor::empty(norm_shape, DType::Float32),
                    Tensor::empty(x.shape(), DType::BFloat16)};
  if (kernel) {
    kern::run_normalize_forward(x, dim, p, eps, r.y, r.norm, kern::Stream{});
    kern::run_normalize_backward(x, r.norm, g, dim, p, eps, r.dx, kern::Stream{});
  } else {
    cpu::normalize_forward(x, dim, p, eps, r.y, r.norm);
    cpu::normalize_backward(x, r.norm, g, dim, p, eps, r.dx);
  }
  return r;
}

}  // namespace

TEST_SUITE("kernels") {

TEST_CASE("emulated dropout bfloat16") {
  for (const double p : {0.1, 0.5, 0.9}) {
    for (const Shape& shape : {Shape{1}, Shape{37}, Shape{3, 4, 91}}) {
      CAPTURE(p);
      CAPTURE(shape_str(shape));
      // A permuted input when 3-d: the launch code packs it first, as the CPU loop does.
      Tensor x = bf16_values(shape, 1, -3, 3);
      if (shape.size() == 3) x = bf16_values({shape[2], shape[1], shape[0]}, 1, -3, 3).permute({2, 1, 0});
      const Tensor y = Tensor::empty(shape, DType::BFloat16), y_k = Tensor::empty(shape, DType::BFloat16);
      const Tensor mask = Tensor::empty(shape, DType::Bool), mask_k = Tensor::empty(shape, DType::Bool);
      cpu::dropout_forward(x, p, 1234, y, mask);
      kern::run_dropout_forward(x, p, 1234, y_k, mask_k, kern::Stream{});
      require_same_bits(mask, mask_k);
      require_same_bits(y, y_k);
      const Tensor g = bf16_values(shape, 2, -1, 1);
      const Tensor dx = Tensor::empty(shape, DType::BFloat16), dx_k = Tensor::empty(shape, DType::BFloat16);
      cpu::dropout_backward(g, mask, p, dx);
      kern::run_dropout_backward(g, mask, p, dx_k, kern::Stream{});
      require_same_bits(dx, dx_k);

      // The float32 loops on the widened values, rounded once: the bfloat16 math is float32's.
      const Tensor y32 = Tensor::empty(shape), mask32 = Tensor::empty(shape, DType::Bool), dx32 = Tensor::empty(shape);
      cpu::dropout_forward(x.to(DType::Float32), p, 1234, y32, mask32);
      cpu::dropout_backward(g.to(DType::Float32), mask32, p, dx32);
      require_same_bits(mask32, mask_k);
      require_same_bits(y32.to(DType::BFloat16), y_k);
      require_same_bits(dx32.to(DType::BFloat16), dx_k);
    }
  }
  // Launch shape does not change the mask: it is a function of (seed, index).
  const Tensor x = bf16_values({1000}, 3, -1, 1);
  const Tensor y = Tensor::empty({1000}, DType::BFloat16), mask = Tensor::empty({1000}, DType::Bool);
  cpu::dropout_forward(x, 0.3, 77, y, mask);
  for (const unsigned blocks : {1u, 3u, 50u}) {
    CAPTURE(blocks);
    const Tensor y_k = Tensor::empty({1000}, DType::BFloat16), mask_k = Tensor::empty({1000}, DType::Bool);
    auto kernel = &kern::dropout_forward_kernel<bfloat16>;
    PNEUMA_LAUNCH(kernel, blocks, 33u, 0, kern::Stream{}, x.data<bfloat16>(), int64_t{1000}, 0.3, uint64_t{77},
                  kern::dropout_scale<bfloat16>(0.3), y_k.data<bfloat16>(), mask_k.data<bool>());
    require_same_bits(mask, mask_k);
    require_same_bits(y, y_k);
  }
}

TEST_CASE("emulated normalize bfloat16") {
  const double eps = 1e-12;
  for (const NormalizeCase& c : kNormalizeCases) {
    for (const double p : {2.0, 1.0, 3.0}) {
      for (const bool on_grid : {true, false}) {
        CAPTURE(shape_str(c.shape));
        CAPTURE(c.dim);
        CAPTURE(p);
        CAPTURE(on_grid);
        const int64_t dim = wrap_dim(c.dim, static_cast<int64_t>(c.shape.size()), "test");
        const int64_t n = c.shape[dim];
        Tensor x = on_grid ? grid_values(c.shape, 1, -2, 2) : bf16_values(c.shape, 1, -2, 2);
        // A row of zeros: the clamp to eps and the zero-norm rule of the backward.
        if (c.shape == Shape{6, 128} && c.dim == 1) {
          x = masked_fill(x, lt(Tensor::arange(6).unsqueeze(1), 0.5), 0.0);
        }
        const Tensor g = on_grid ? grid_values(c.shape, 2, -1, 1) : bf16_values(c.shape, 2, -1, 1);
        const NormalizeResult loops = run_normalize(false, x, g, dim, p, eps);
        const NormalizeResult kernel = run_normalize(true, x, g, dim, p, eps);
        if (on_grid && p != 3.0) {
          require_same_bits(loops.norm, kernel.norm);
          require_same_bits(loops.y, kernel.y);
          require_same_bits(loops.dx, kernel.dx);
        } else {
          // The norm: a float sum of n positive terms and its root, in another order.
          const std::vector<double> a = loops.norm.to_vector(), b = kernel.norm.to_vector();
          for (size_t i = 0; i < a.size(); ++i) REQUIRE(std::fabs(a[i] - b[i]) <= float_noise(n) * std::fabs(a[i]));
          require_bf16_close(loops.y.to(DType::Float32), kernel.y, 0, "y", kOneUlp + float_noise(n));
          // dx = g / d + c * dnorm/dx, its terms at most (1 + n) max|g| / d with max|g| <= 1; the
          // sum g * x differs by float noise of the same size.
          double smallest = 1e30;
          for (double v : a) smallest = std::max(std::min(smallest, v), eps);
          require_bf16_close(loops.dx.to(DType::Float32), kernel.dx, float_noise(n) * (1 + n) / smallest, "dx",
                             kOneUlp);
        }
      }
    }
  }
}

TEST_CASE("emulated normalize bfloat16: any grid and block shape") {
  // Grid values: exact float sums, so every launch shape gives the loops' bits.
  const Tensor x = grid_values({3, 50, 4}, 3, -2, 2), g = grid_values({3, 50, 4}, 4, -1, 1);
  const NormalizeResult loops = run_normalize(false, x, g, 1, 2.0, 1e-12);
  for (const unsigned threads : {1u, 33u, 64u}) {
    for (const unsigned blocks : {1u, 5u, 12u}) {
      CAPTURE(threads);
      CAPTURE(blocks);
      const Tensor y_k = Tensor::empty(x.shape(), DType::BFloat16), norm_k = Tensor::empty({3, 1, 4});
      const Tensor dx_k = Tensor::empty(x.shape(), DType::BFloat16);
      auto forward = &kern::normalize_forward_kernel<bfloat16>;
      PNEUMA_LAUNCH(forward, blocks, threads, 0, kern::Stream{}, x.data<bfloat16>(), y_k.data<bfloat16>(),
                    norm_k.data<float>(), int64_t{3}, int64_t{50}, int64_t{4}, 2.0, 1e-12);
      require_same_bits(loops.y, y_k);
      require_same_bits(loops.norm, norm_k);
      auto backward = &kern::normalize_backward_kernel<bfloat16>;
      PNEUMA_LAUNCH(backward, blocks, threads, 0, kern::Stream{}, x.data<bfloat16>(), loops.norm.data<float>(),
                    g.data<bfloat16>(), dx_k.data<bfloat16>(), int64_t{3}, int64_t{50}, int64_t{4}, 2.0, 1e-12);
      require_same_bits(loops.dx, dx_k);
    }
  }
}

}  // TEST_SUITE

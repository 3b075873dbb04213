// The normalize kernels, executed by the CPU emulator through the Tensor-level launch code of the
// CUDA dispatch (engine/ops/normalize/normalize_kernels.h), against the CPU loops. Row sums are
// double on both sides, added in other orders: results agree to rounding.
#include <doctest/doctest.h>

#include <cmath>
#include <vector>

#include "engine/ops/normalize/normalize_cpu.h"
#include "engine/ops/normalize/normalize_kernels.h"
#include "engine/pneuma.h"
#include "tests/kernels/kernel_check.h"

using namespace pneuma;
using pneuma::testing::require_close;

namespace {

struct Case {
  Shape shape;
  int64_t dim;
};

const Case kCases[] = {{{6, 128}, 1}, {{6, 128}, 0}, {{2, 5, 3, 4}, 1}, {{3, 1000}, -1}, {{4, 1}, 1}};

}  // namespace

TEST_SUITE("kernels") {

TEST_CASE_TEMPLATE("emulated normalize", T, float, double) {
  for (const Case& c : kCases) {
    for (const double p : {2.0, 1.0, 3.0}) {
      CAPTURE(shape_str(c.shape));
      CAPTURE(c.dim);
      CAPTURE(p);
      const int64_t dim = wrap_dim(c.dim, static_cast<int64_t>(c.shape.size()), "test");
      Tensor x = Tensor::randn(c.shape, 1, dtype_v<T>);
      if (c.shape.size() == 2) x = Tensor::randn({c.shape[1], c.shape[0]}, 1, dtype_v<T>).transpose(0, 1);
      // A row of zeros: the clamp to eps and the zero-norm rule of the backward.
      if (c.shape == Shape{6, 128} && c.dim == 1) x = masked_fill(x, lt(Tensor::arange(6, dtype_v<T>).unsqueeze(1), 0.5), 0.0);
      Shape norm_shape = c.shape;
      norm_shape[dim] = 1;
      const double eps = 1e-12;
      const Tensor y = Tensor::empty(c.shape, dtype_v<T>), y_k = Tensor::empty(c.shape, dtype_v<T>);
      const Tensor norm = Tensor::empty(norm_shape, dtype_v<T>), norm_k = Tensor::empty(norm_shape, dtype_v<T>);
      cpu::normalize_forward(x, dim, p, eps, y, norm);
      kern::run_normalize_forward(x, dim, p, eps, y_k, norm_k, kern::Stream{});
      require_close(norm, norm_k, "norm");
      require_close(y, y_k, "y");
      const Tensor g = Tensor::randn(c.shape, 2, dtype_v<T>);
      const Tensor dx = Tensor::empty(c.shape, dtype_v<T>), dx_k = Tensor::empty(c.shape, dtype_v<T>);
      cpu::normalize_backward(x, norm, g, dim, p, eps, dx);
      kern::run_normalize_backward(x, norm, g, dim, p, eps, dx_k, kern::Stream{});
      require_close(dx, dx_k, "dx");
    }
  }
}

TEST_CASE("emulated normalize: any grid and block shape") {
  const Tensor x = Tensor::randn({3, 50, 4}, 3, DType::Float64), g = Tensor::randn({3, 50, 4}, 4, DType::Float64);
  const Tensor y = Tensor::empty(x.shape(), DType::Float64), norm = Tensor::empty({3, 1, 4}, DType::Float64);
  const Tensor dx = Tensor::empty(x.shape(), DType::Float64);
  cpu::normalize_forward(x, 1, 2.0, 1e-12, y, norm);
  cpu::normalize_backward(x, norm, g, 1, 2.0, 1e-12, dx);
  for (const unsigned threads : {1u, 33u, 64u}) {
    for (const unsigned blocks : {1u, 5u, 12u}) {
      CAPTURE(threads);
      CAPTURE(blocks);
      const Tensor y_k = Tensor::empty(x.shape(), DType::Float64), norm_k = Tensor::empty({3, 1, 4}, DType::Float64);
      const Tensor dx_k = Tensor::empty(x.shape(), DType::Float64);
      auto forward = &kern::normalize_forward_kernel<double>;
      PNEUMA_LAUNCH(forward, blocks, threads, 0, kern::Stream{}, x.data<double>(), y_k.data<double>(),
                    norm_k.data<double>(), int64_t{3}, int64_t{50}, int64_t{4}, 2.0, 1e-12);
      require_close(y, y_k, "y");
      require_close(norm, norm_k, "norm");
      auto backward = &kern::normalize_backward_kernel<double>;
      PNEUMA_LAUNCH(backward, blocks, threads, 0, kern::Stream{}, x.data<double>(), norm.data<double>(),
                    g.data<double>(), dx_k.data<double>(), int64_t{3}, int64_t{50}, int64_t{4}, 2.0, 1e-12);
      require_close(dx, dx_k, "dx");
    }
  }
}

}  // TEST_SUITE

// The dropout and upsampling kernels, executed by the CPU emulator through the Tensor-level launch
// code of the CUDA dispatch (engine/ops/dropout/dropout_kernels.h,
// engine/ops/upsample/upsample_kernels.h), against the CPU loops: bitwise equal (dropout draws the
// same counter-based mask; upsampling gathers in the loops' scatter order).
#include <doctest/doctest.h>

#include <cstring>
#include <vector>

#include "engine/ops/dropout/dropout_cpu.h"
#include "engine/ops/dropout/dropout_kernels.h"
#include "engine/ops/upsample/upsample_kernels.h"
#include "engine/pneuma.h"
#include "tests/kernels/kernel_check.h"

using namespace pneuma;
using pneuma::testing::require_same_bits;

namespace {

cpu::Upsample2d problem(int64_t planes, int64_t ih, int64_t iw, int64_t oh, int64_t ow, bool align_corners,
                        double scale_h = 0, double scale_w = 0) {
  cpu::Upsample2d u;
  u.planes = planes, u.ih = ih, u.iw = iw, u.oh = oh, u.ow = ow;
  u.align_corners = align_corners;
  u.scale_h = scale_h, u.scale_w = scale_w;
  return u;
}

// Doubling (nearest's shift path), odd ratios, downsampling, one row, a user scale factor.
const cpu::Upsample2d kProblems[] = {
    problem(3, 4, 5, 8, 10, false), problem(2, 5, 3, 13, 7, false), problem(2, 5, 3, 13, 7, true),
    problem(1, 9, 8, 4, 3, false),  problem(2, 1, 6, 3, 11, true),  problem(1, 6, 6, 15, 15, false, 2.5, 2.5),
    problem(1, 7, 5, 7, 5, false),
};

}  // namespace

TEST_SUITE("kernels") {

TEST_CASE_TEMPLATE("emulated dropout", T, float, double) {
  for (const double p : {0.1, 0.5, 0.9}) {
    for (const Shape& shape : {Shape{1}, Shape{37}, Shape{3, 4, 91}}) {
      CAPTURE(p);
      CAPTURE(shape_str(shape));
      // A transposed input when 3-d: the launch code packs it first, as the CPU loop does.
      Tensor x = Tensor::randn(shape, 1, dtype_v<T>);
      if (shape.size() == 3) x = Tensor::randn({shape[2], shape[1], shape[0]}, 1, dtype_v<T>).permute({2, 1, 0});
      const Tensor y = Tensor::empty(shape, dtype_v<T>), y_k = Tensor::empty(shape, dtype_v<T>);
      const Tensor mask = Tensor::empty(shape, DType::Bool), mask_k = Tensor::empty(shape, DType::Bool);
      cpu::dropout_forward(x, p, 1234, y, mask);
      kern::run_dropout_forward(x, p, 1234, y_k, mask_k, kern::Stream{});
      require_same_bits(mask, mask_k);
      require_same_bits(y, y_k);
      const Tensor g = Tensor::randn(shape, 2, dtype_v<T>);
      const Tensor dx = Tensor::empty(shape, dtype_v<T>), dx_k = Tensor::empty(shape, dtype_v<T>);
      cpu::dropout_backward(g, mask, p, dx);
      kern::run_dropout_backward(g, mask, p, dx_k, kern::Stream{});
      require_same_bits(dx, dx_k);
    }
  }
  // Launch shape does not change the mask: it is a function of (seed, index).
  const Tensor x = Tensor::randn({1000}, 3, dtype_v<T>);
  const Tensor y = Tensor::empty({1000}, dtype_v<T>), mask = Tensor::empty({1000}, DType::Bool);
  cpu::dropout_forward(x, 0.3, 77, y, mask);
  for (const unsigned blocks : {1u, 3u, 50u}) {
    const Tensor y_k = Tensor::empty({1000}, dtype_v<T>), mask_k = Tensor::empty({1000}, DType::Bool);
    auto kernel = &kern::dropout_forward_kernel<T>;
    PNEUMA_LAUNCH(kernel, blocks, 33u, 0, kern::Stream{}, x.data<T>(), int64_t{1000}, 0.3, uint64_t{77},
                  kern::dropout_scale<T>(0.3), y_k.data<T>(), mask_k.data<bool>());
    require_same_bits(mask, mask_k);
    require_same_bits(y, y_k);
  }
}

TEST_CASE_TEMPLATE("emulated upsample_nearest2d and upsample_bilinear2d", T, float, double) {
  for (const cpu::Upsample2d& u : kProblems) {
    for (const bool bilinear : {false, true}) {
      if (!bilinear && u.align_corners) continue;  // nearest has no corner alignment
      CAPTURE(u.ih);
      CAPTURE(u.iw);
      CAPTURE(u.oh);
      CAPTURE(u.ow);
      CAPTURE(bilinear);
      const Tensor x = Tensor::randn({u.planes, u.ih, u.iw}, 4, dtype_v<T>);
      const Tensor y = Tensor::empty({u.planes, u.oh, u.ow}, dtype_v<T>), y_k = Tensor::empty(y.shape(), dtype_v<T>);
      if (bilinear) cpu::upsample_bilinear2d_forward(x, u, y);
      else cpu::upsample_nearest2d_forward(x, u, y);
      kern::run_upsample2d_forward(bilinear, x, u, y_k, kern::Stream{});
      require_same_bits(y, y_k);
      const Tensor g = Tensor::randn(y.shape(), 5, dtype_v<T>);
      const Tensor dx = Tensor::empty(x.shape(), dtype_v<T>), dx_k = Tensor::empty(x.shape(), dtype_v<T>);
      if (bilinear) cpu::upsample_bilinear2d_backward(g, u, dx);
      else cpu::upsample_nearest2d_backward(g, u, dx);
      kern::run_upsample2d_backward(bilinear, g, u, dx_k, kern::Stream{});
      require_same_bits(dx, dx_k);
    }
  }
}

TEST_CASE("emulated upsample: any grid and block shape") {
  const cpu::Upsample2d u = problem(2, 5, 3, 13, 7, false);
  const kern::UpsampleGeometry geometry = kern::upsample_geometry(u);
  const Tensor g = Tensor::randn({u.planes, u.oh, u.ow}, 6);
  const Tensor dx = Tensor::empty({u.planes, u.ih, u.iw});
  cpu::upsample_bilinear2d_backward(g, u, dx);
  for (const unsigned threads : {1u, 7u, 64u}) {
    for (const unsigned blocks : {1u, 4u, 31u}) {
      CAPTURE(threads);
      CAPTURE(blocks);
      const Tensor dx_k = Tensor::empty(dx.shape());
      auto kernel = &kern::upsample_bilinear2d_backward_kernel<float>;
      PNEUMA_LAUNCH(kernel, blocks, threads, 0, kern::Stream{}, g.data<float>(), dx_k.data<float>(), geometry);
      require_same_bits(dx, dx_k);
    }
  }
  // The binary search over a never-decreasing key.
  const auto key = [](int64_t o) { return o / 3; };  // 0 0 0 1 1 1 2 ...
  CHECK(kern::first_output_at_least(10, 1, key) == 3);
  CHECK(kern::first_output_at_least(10, 0, key) == 0);
  CHECK(kern::first_output_at_least(10, 4, key) == 10);
}

}  // TEST_SUITE

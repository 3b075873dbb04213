// The softmax and upsampling kernels on bfloat16 data, executed by the CPU emulator through the
// Tensor-level launch code of the CUDA dispatch (engine/ops/softmax/softmax_kernels.h,
// engine/ops/upsample/upsample_kernels.h). Upsampling: bit for bit the CPU loops' bfloat16 result
// (same float math in the same order, one rounding). Softmax: the block reductions add in another
// order than the CPU loops, so the kernel is checked against the float32 loops on the widened
// values: one rounding of a float result within float32 noise of the oracle, i.e. 1 bfloat16 ulp.
#include <doctest/doctest.h>

#include <cmath>
#include <string>

#include "engine/ops/softmax/softmax_cpu.h"
#include "engine/ops/softmax/softmax_kernels.h"
#include "engine/ops/upsample/upsample_kernels.h"
#include "engine/pneuma.h"
#include "tests/kernels/kernel_check.h"
#include "tests/ops/bf16_check.h"

using namespace pneuma;
using pneuma::testing::bf16_values;
using pneuma::testing::require_bf16_close;
using pneuma::testing::require_same_bits;

namespace {

// Within one bfloat16 ulp (2^-8 relative) of the float32 oracle, plus atol near zero.
void require_within_one_ulp(const Tensor& expected, const Tensor& actual, double atol, const std::string& what) {
  require_bf16_close(expected, actual, atol, what, std::ldexp(1.0, -8));
}

}  // namespace

TEST_SUITE("kernels") {

TEST_CASE("emulated softmax bfloat16") {
  struct Case {
    Shape shape;
    int64_t dim;
  };
  // A row per block (inner = 1), strided rows (inner > 1), rows longer than a block (300 > 256).
  const Case cases[] = {{{5, 37}, 1}, {{3, 7, 4}, 1}, {{2, 300}, 1}, {{6, 3, 5}, 0}, {{1, 1}, 0}};
  for (const Case& c : cases) {
    for (const bool log : {false, true}) {
      CAPTURE(shape_str(c.shape));
      CAPTURE(c.dim);
      CAPTURE(log);
      const Tensor x = bf16_values(c.shape, 3, -6, 6);
      const Tensor y = Tensor::empty(c.shape, DType::BFloat16), y32 = Tensor::empty(c.shape);
      kern::run_softmax_forward(x, c.dim, log, y, kern::Stream{});
      cpu::softmax_forward(x.to(DType::Float32), c.dim, log, y32);
      require_within_one_ulp(y32, y, 1e-7, "forward");

      const Tensor g = bf16_values(c.shape, 4, -1, 1);
      const Tensor dx = Tensor::empty(c.shape, DType::BFloat16), dx32 = Tensor::empty(c.shape);
      kern::run_softmax_backward(y, g, c.dim, log, dx, kern::Stream{});
      cpu::softmax_backward(y.to(DType::Float32), g.to(DType::Float32), c.dim, log, dx32);
      // dx sums a row of n terms (float32 in the kernel, double in the loops): their difference is
      // ~n * 2^-24 * sum|terms| <= 1e-7 * n, far inside atol.
      require_within_one_ulp(dx32, dx, 1e-5, "backward");
    }
  }
}

TEST_CASE("emulated softmax bfloat16 agrees with the CPU bfloat16 loops") {
  // Both round a float result once; their float sums differ only in order, so at most an
  // occasional 1-ulp tie flip, never more.
  const Tensor x = bf16_values({8, 50}, 5, -3, 3);
  const Tensor y = Tensor::empty({8, 50}, DType::BFloat16), y_k = Tensor::empty({8, 50}, DType::BFloat16);
  cpu::softmax_forward(x, 1, false, y);
  kern::run_softmax_forward(x, 1, false, y_k, kern::Stream{});
  require_within_one_ulp(y.to(DType::Float32), y_k, 0, "forward");
}

TEST_CASE("emulated upsample_nearest2d and upsample_bilinear2d bfloat16") {
  struct Problem {
    int64_t planes, ih, iw, oh, ow;
    bool align_corners;
    double scale = 0;
  };
  // Doubling (nearest's shift path), odd ratios, downsampling, align_corners, a user scale factor.
  const Problem problems[] = {{3, 4, 5, 8, 10, false}, {2, 5, 3, 13, 7, false}, {2, 5, 3, 13, 7, true},
                              {1, 9, 8, 4, 3, false},  {1, 6, 6, 15, 15, false, 2.5}};
  for (const Problem& p : problems) {
    cpu::Upsample2d u;
    u.planes = p.planes, u.ih = p.ih, u.iw = p.iw, u.oh = p.oh, u.ow = p.ow;
    u.align_corners = p.align_corners;
    u.scale_h = u.scale_w = p.scale;
    for (const bool bilinear : {false, true}) {
      CAPTURE(bilinear);
      CAPTURE(p.oh);
      CAPTURE(p.ow);
      const Tensor x = bf16_values({u.planes, u.ih, u.iw}, 6, -2, 2);
      const Tensor y = Tensor::empty({u.planes, u.oh, u.ow}, DType::BFloat16);
      const Tensor y_k = Tensor::empty({u.planes, u.oh, u.ow}, DType::BFloat16);
      if (bilinear) cpu::upsample_bilinear2d_forward(x, u, y);
      else cpu::upsample_nearest2d_forward(x, u, y);
      kern::run_upsample2d_forward(bilinear, x, u, y_k, kern::Stream{});
      require_same_bits(y, y_k);

      const Tensor g = bf16_values({u.planes, u.oh, u.ow}, 7, -1, 1);
      const Tensor dx = Tensor::empty({u.planes, u.ih, u.iw}, DType::BFloat16);
      const Tensor dx_k = Tensor::empty({u.planes, u.ih, u.iw}, DType::BFloat16);
      if (bilinear) cpu::upsample_bilinear2d_backward(g, u, dx);
      else cpu::upsample_nearest2d_backward(g, u, dx);
      kern::run_upsample2d_backward(bilinear, g, u, dx_k, kern::Stream{});
      require_same_bits(dx, dx_k);

      // And the float32 loops on the widened values, rounded once: the bfloat16 math is float32's.
      const Tensor y32 = Tensor::empty({u.planes, u.oh, u.ow}), dx32 = Tensor::empty({u.planes, u.ih, u.iw});
      if (bilinear) {
        cpu::upsample_bilinear2d_forward(x.to(DType::Float32), u, y32);
        cpu::upsample_bilinear2d_backward(g.to(DType::Float32), u, dx32);
      } else {
        cpu::upsample_nearest2d_forward(x.to(DType::Float32), u, y32);
        cpu::upsample_nearest2d_backward(g.to(DType::Float32), u, dx32);
      }
      require_same_bits(y32.to(DType::BFloat16), y_k);
      require_same_bits(dx32.to(DType::BFloat16), dx_k);
    }
  }
}

}  // TEST_SUITE

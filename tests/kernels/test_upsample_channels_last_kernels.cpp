// The upsampling kernels on channels-last (NHWC in memory) tensors, executed by the CPU emulator
// through the Tensor-level launch code (engine/ops/upsample/upsample_kernels.h), against the CPU
// reference on the same tensors (its loops run on row-major copies) and the row-major kernels:
// bit for bit, forward and backward, float, double and bfloat16.
#include <doctest/doctest.h>

#include "engine/ops/upsample/upsample_kernels.h"
#include "engine/pneuma.h"
#include "tests/kernels/kernel_check.h"

using namespace pneuma;
using pneuma::testing::require_same_bits;

namespace {

struct Problem {
  int64_t N, C, ih, iw, oh, ow;
  bool align_corners;
  double scale = 0;
};

cpu::Upsample2d geometry(const Problem& p, bool channels_last) {
  cpu::Upsample2d u;
  u.planes = p.N * p.C, u.channels = p.C, u.channels_last = channels_last;
  u.ih = p.ih, u.iw = p.iw, u.oh = p.oh, u.ow = p.ow;
  u.align_corners = p.align_corners;
  u.scale_h = u.scale_w = p.scale;
  return u;
}

// The U-Net's doubling, odd ratios, downsampling, one row, a user scale factor; C = 1 and C = 5.
const Problem kProblems[] = {
    {2, 3, 4, 5, 8, 10, false}, {1, 5, 5, 3, 13, 7, false}, {2, 2, 5, 3, 13, 7, true},
    {1, 5, 9, 8, 4, 3, false},  {2, 1, 1, 6, 3, 11, true},  {1, 3, 6, 6, 15, 15, false, 2.5},
};

Tensor channels_last(const Tensor& t) { return t.contiguous(MemoryFormat::ChannelsLast); }

}  // namespace

TEST_SUITE("kernels") {
  TEST_CASE_TEMPLATE("emulated upsample channels last", T, float, double, bfloat16) {
    const DType dtype = dtype_v<T>;
    for (const Problem& p : kProblems) {
      for (const bool bilinear : {false, true}) {
        if (!bilinear && p.align_corners) continue;  // nearest has no corner alignment
        CAPTURE(p.C);
        CAPTURE(p.ih);
        CAPTURE(p.oh);
        CAPTURE(bilinear);
        const cpu::Upsample2d u = geometry(p, true), rows = geometry(p, false);
        const Shape in_shape{p.N, p.C, p.ih, p.iw}, out_shape{p.N, p.C, p.oh, p.ow};
        const Tensor x = channels_last(Tensor::randn(in_shape, 4, DType::Float32).to(dtype));
        const Tensor y = Tensor::empty(out_shape, dtype, Device::cpu(), MemoryFormat::ChannelsLast);
        const Tensor y_k = Tensor::empty(out_shape, dtype, Device::cpu(), MemoryFormat::ChannelsLast);
        const Tensor y_rows = Tensor::empty(out_shape, dtype);
        if (bilinear)
          cpu::upsample_bilinear2d_forward(x, u, y);
        else
          cpu::upsample_nearest2d_forward(x, u, y);
        kern::run_upsample2d_forward(bilinear, x, u, y_k, kern::Stream{});
        kern::run_upsample2d_forward(bilinear, x.contiguous(), rows, y_rows, kern::Stream{});
        require_same_bits(y, y_k);
        require_same_bits(y_rows, y_k);
        const Tensor g = channels_last(Tensor::randn(out_shape, 5, DType::Float32).to(dtype));
        const Tensor dx = Tensor::empty(in_shape, dtype, Device::cpu(), MemoryFormat::ChannelsLast);
        const Tensor dx_k = Tensor::empty(in_shape, dtype, Device::cpu(), MemoryFormat::ChannelsLast);
        const Tensor dx_rows = Tensor::empty(in_shape, dtype);
        if (bilinear)
          cpu::upsample_bilinear2d_backward(g, u, dx);
        else
          cpu::upsample_nearest2d_backward(g, u, dx);
        kern::run_upsample2d_backward(bilinear, g, u, dx_k, kern::Stream{});
        kern::run_upsample2d_backward(bilinear, g.contiguous(), rows, dx_rows, kern::Stream{});
        require_same_bits(dx, dx_k);
        require_same_bits(dx_rows, dx_k);
      }
    }
  }

}  // TEST_SUITE

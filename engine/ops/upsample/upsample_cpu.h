#pragma once
// Reference loops of 2-d upsampling (float32/float64/bfloat16) over contiguous [planes, h, w].
// bfloat16 is computed in float (taps, weights and gradient sums) and rounded once on store. A
// channels-last problem (u.channels_last, both tensors channels-last) runs the same loops on
// row-major copies, its result copied back.
#include <cstdint>

#include "engine/core/tensor.h"

namespace pneuma::cpu {

struct Upsample2d {
  int64_t planes = 0, ih = 0, iw = 0, oh = 0, ow = 0;
  bool align_corners = false;       // bilinear only
  double scale_h = 0, scale_w = 0;  // the user's scale factors; <= 0 when none was given
  int64_t channels = 1;             // C of planes = N * C
  bool channels_last = false;       // the tensors' layout: row-major NCHW, or NHWC in memory
};

void upsample_nearest2d_forward(const Tensor& x, const Upsample2d& u, const Tensor& y);
void upsample_nearest2d_backward(const Tensor& g, const Upsample2d& u, const Tensor& dx);
void upsample_bilinear2d_forward(const Tensor& x, const Upsample2d& u, const Tensor& y);
void upsample_bilinear2d_backward(const Tensor& g, const Upsample2d& u, const Tensor& dx);

}  // namespace pneuma::cpu

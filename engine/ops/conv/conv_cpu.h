#pragma once
// CPU convolution kernels. The entry points pick oneDNN for float32 and bfloat16 (unless
// the fast path is switched off) and the reference loops otherwise; the reference namespace
// is the ground truth the fast path is tested against. bfloat16 computes in float and rounds
// each output once, on either path.
//
// Every tensor but the 1-d bias is contiguous in g.memory_format (NCHW/OIHW or NHWC/OHWI), all
// share one dtype, and outputs are preallocated with the geometry's shapes (x [N, C, H, W],
// w [O, C/groups, kH, kW], y [N, O, OH, OW]).
#include "engine/core/tensor.h"
#include "engine/ops/conv/conv_geometry.h"

namespace pneuma::cpu {

using ops::ConvGeometry;

// y = conv(x, w) + b; b may be undefined.
void conv2d_forward(const Tensor& x, const Tensor& w, const Tensor& b, const Tensor& y, const ConvGeometry& g);
// Gradients of conv2d given gy = dL/dy. gx, gw, gb are each optional (undefined when
// not wanted); x is read only for gw and w only for gx.
void conv2d_backward(const Tensor& x, const Tensor& w, const Tensor& gy, const Tensor& gx, const Tensor& gw,
                     const Tensor& gb, const ConvGeometry& g);
// y[:, c] += b[c] for y [N, C, H, W] (conv_transpose2d's bias), y contiguous or channels-last.
void add_channel_bias(const Tensor& y, const Tensor& b);
// gb[c] = sum of gy[:, c] over batch and space, gy contiguous or channels-last.
void channel_sum(const Tensor& gy, const Tensor& gb);

// How many calls oneDNN has served so far; tests use it to make sure a comparison of
// the fast path with the reference did not silently run the reference twice.
int64_t onednn_conv_calls();

// The plain loops over NCHW/OIHW float32/float64 data; other problems (channels-last,
// bfloat16) run them on contiguous float copies and copy the results into the outputs.
namespace reference {
void conv2d_forward(const Tensor& x, const Tensor& w, const Tensor& b, const Tensor& y, const ConvGeometry& g);
void conv2d_backward(const Tensor& x, const Tensor& w, const Tensor& gy, const Tensor& gx, const Tensor& gw,
                     const Tensor& gb, const ConvGeometry& g);
}  // namespace reference

}  // namespace pneuma::cpu

#pragma once
// oneDNN float32 and bfloat16 convolutions (every tensor of a call in one of the two dtypes;
// bfloat16 accumulates in f32 inside oneDNN): primitives cached per problem and dtype, one
// engine, blocked layouts chosen by oneDNN with reorders from/to the plain tensors (NCHW/OIHW,
// or NHWC/OHWI for channels-last problems), or the plain layouts themselves where faster.
// Each call returns false when oneDNN has no implementation for the problem, and the
// caller runs the reference loops instead.
#include "engine/core/tensor.h"
#include "engine/ops/conv/conv_geometry.h"

namespace pneuma::cpu::onednn {

bool conv2d_forward(const Tensor& x, const Tensor& w, const Tensor& b, const Tensor& y,
                    const ops::ConvGeometry& g);
bool conv2d_backward(const Tensor& x, const Tensor& w, const Tensor& gy, const Tensor& gx, const Tensor& gw,
                     const Tensor& gb, const ops::ConvGeometry& g);

}  // namespace pneuma::cpu::onednn

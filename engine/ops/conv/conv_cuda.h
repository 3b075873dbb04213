#pragma once
// CUDA entry points of the convolutions, with the signatures of their CPU twins in conv_cpu.h:
// cuDNN forward, backward data and backward filter, the algorithm of each problem chosen once per
// device (engine/cuda/conv_plan.h). Every tensor but the 1-d bias is contiguous in g.memory_format
// (NCHW/OIHW, or NHWC/OHWI run by cuDNN's channels-last kernels). Defined in conv_cudnn.cu
// with the CUDA backend, in engine/cuda/without_cuda.cpp otherwise.
#include "engine/core/tensor.h"
#include "engine/ops/conv/conv_geometry.h"

namespace pneuma::cuda {

// y = conv(x, w) + b; b may be undefined.
void conv2d_forward(const Tensor& x, const Tensor& w, const Tensor& b, const Tensor& y, const ops::ConvGeometry& g);
// Gradients given gy; gx, gw, gb each optional. x is read only for gw and w only for gx.
void conv2d_backward(const Tensor& x, const Tensor& w, const Tensor& gy, const Tensor& gx, const Tensor& gw,
                     const Tensor& gb, const ops::ConvGeometry& g);
// y[:, c] += b[c] for y [N, C, H, W], contiguous or channels-last.
void add_channel_bias(const Tensor& y, const Tensor& b);
// gb[c] = sum of gy[:, c] over batch and space, gy contiguous or channels-last.
void channel_sum(const Tensor& gy, const Tensor& gb);

}  // namespace pneuma::cuda

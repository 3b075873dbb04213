#pragma once
// oneDNN pooling (float32 and bfloat16, the CPU fast path) over dense NCHW or channels-last (nhwc)
// data, as p.channels_last says; bfloat16 averages accumulate in f32 inside oneDNN. Cached
// primitives are keyed by dtype and layout. oneDNN has no
// ceil mode: the right padding is grown until its output size equals PyTorch's, as
// PyTorch's own oneDNN path does.
#include "engine/core/tensor.h"
#include "engine/ops/pool/pool_cpu.h"

namespace pneuma::cpu {

// Whether oneDNN accepts the problem in dtype (float32 or bfloat16; the reference loops take what
// it rejects).
bool max_pool2d_onednn_supported(const kern::Pool2d& p, bool training, DType dtype = DType::Float32);
// Fills y; with training, also returns the workspace (UInt8) that the backward needs
// (oneDNN's own encoding of the argmax, not PyTorch's indices). Ties between equal
// maxima and NaN inputs are resolved by oneDNN, not by PyTorch's rule.
Tensor max_pool2d_forward_onednn(const Tensor& x, const kern::Pool2d& p, const Tensor& y, bool training);
void max_pool2d_backward_onednn(const Tensor& g, const Tensor& workspace, const kern::Pool2d& p, const Tensor& dx);

// oneDNN's average pooling agrees with PyTorch except for a divisor override and for
// count_include_pad windows that ceil mode extends past the padded input.
bool avg_pool2d_onednn_supported(const kern::Pool2d& p, const AvgOptions& o, DType dtype = DType::Float32);
void avg_pool2d_forward_onednn(const Tensor& x, const kern::Pool2d& p, const AvgOptions& o, const Tensor& y);
void avg_pool2d_backward_onednn(const Tensor& g, const kern::Pool2d& p, const AvgOptions& o, const Tensor& dx);

}  // namespace pneuma::cpu

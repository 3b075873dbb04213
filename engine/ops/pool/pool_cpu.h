#pragma once
// Reference loops of the pooling ops (float32, float64, bfloat16) over contiguous [planes, h, w]
// data, planes = N * C; outputs are written whole. bfloat16 computes in float (opmath_t) and rounds
// each output once. A channels-last problem (p.channels_last, all tensors channels-last) runs the
// same loops on row-major copies, its results copied back.
#include <optional>

#include "engine/core/tensor.h"
#include "engine/ops/pool/pool_math.cuh"

namespace pneuma::cpu {

// y and indices (int64, flat h * iw + w within the plane, as PyTorch) have the output shape.
void max_pool2d_forward(const Tensor& x, const kern::Pool2d& p, const Tensor& y, const Tensor& indices);
// dx (zeroed here) receives each output gradient at its saved index.
void max_pool2d_backward(const Tensor& g, const Tensor& indices, const kern::Pool2d& p, const Tensor& dx);

struct AvgOptions {
  bool count_include_pad = true;
  std::optional<int64_t> divisor_override;
};
void avg_pool2d_forward(const Tensor& x, const kern::Pool2d& p, const AvgOptions& o, const Tensor& y);
void avg_pool2d_backward(const Tensor& g, const kern::Pool2d& p, const AvgOptions& o, const Tensor& dx);

// p.kh/kw.. are unused; bins follow kern::adaptive_start/end.
void adaptive_avg_pool2d_forward(const Tensor& x, const kern::Pool2d& p, const Tensor& y);
void adaptive_avg_pool2d_backward(const Tensor& g, const kern::Pool2d& p, const Tensor& dx);

}  // namespace pneuma::cpu

#pragma once
#include "engine/core/tensor.h"

namespace pneuma::cpu {

// The dtype of the saved norm for data of dtype x: its math type (float32 for bfloat16, so the
// backward reads the forward's unrounded norm; else x's own).
inline DType normalize_norm_dtype(DType x) {
  return dispatch_floating_and_bfloat16(x, "normalize", []<class T>() { return dtype_v<opmath_t<T>>; });
}

// norm (contiguous, x's shape with 1 at dim; float32 for bfloat16 x, else x's dtype: see
// normalize_norm_dtype) = ||x||_p along dim; y (contiguous) = x / max(norm, eps).
void normalize_forward(const Tensor& x, int64_t dim, double p, double eps, const Tensor& y, const Tensor& norm);
// dx from x, the saved norm and g, with PyTorch's derivative of x / clamp_min(norm, eps):
// the norm's share of the gradient is dropped where norm < eps (and where norm == 0).
void normalize_backward(const Tensor& x, const Tensor& norm, const Tensor& g, int64_t dim, double p, double eps,
                        const Tensor& dx);

}  // namespace pneuma::cpu

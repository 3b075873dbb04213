#pragma once
// F.normalize: x / max(||x||_p, eps) along dim, for any finite p > 0. float32, float64 and
// bfloat16 (computed in float, norm included, each output rounded once: see
// kernels/normalize/normalize.cuh for how that differs from torch 1.13).
#include "engine/core/tensor.h"

namespace pneuma {

Tensor normalize(const Tensor& x, double p = 2.0, int64_t dim = 1, double eps = 1e-12);

}  // namespace pneuma

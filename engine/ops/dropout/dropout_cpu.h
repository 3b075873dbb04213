#pragma once
#include <cstdint>

#include "engine/core/tensor.h"

namespace pneuma::cpu {

// mask[i] = random::uniform(seed, i) >= p; y[i] = mask[i] ? x[i] * (1 / (1 - p)) : 0.
// y (x's dtype) and mask (bool) are contiguous with x's shape. float32, float64 and bfloat16 (scaled
// in float, rounded once); the mask depends on neither the dtype nor the device.
void dropout_forward(const Tensor& x, double p, uint64_t seed, const Tensor& y, const Tensor& mask);
// dx[i] = mask[i] ? g[i] * (1 / (1 - p)) : 0; dx contiguous.
void dropout_backward(const Tensor& g, const Tensor& mask, double p, const Tensor& dx);

}  // namespace pneuma::cpu

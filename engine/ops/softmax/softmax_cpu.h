#pragma once
#include "engine/core/tensor.h"

namespace pneuma::cpu {

// y (contiguous, x's shape) = softmax or log_softmax of x along dim.
void softmax_forward(const Tensor& x, int64_t dim, bool log, const Tensor& y);
// dx (contiguous) from the saved output y and the output gradient g:
// softmax: y * (g - sum(g * y)); log_softmax: g - exp(y) * sum(g).
void softmax_backward(const Tensor& y, const Tensor& g, int64_t dim, bool log, const Tensor& dx);

}  // namespace pneuma::cpu

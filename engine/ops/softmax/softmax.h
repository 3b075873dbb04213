#pragma once
// softmax / log_softmax along one dim (negative dims allowed), numerically stable:
// the max of each slice is subtracted before exponentiating. float32, float64 and bfloat16
// (computed in float, rounded once on store, as PyTorch does).
#include "engine/core/tensor.h"

namespace pneuma {

Tensor softmax(const Tensor& x, int64_t dim);
Tensor log_softmax(const Tensor& x, int64_t dim);

}  // namespace pneuma

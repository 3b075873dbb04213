#pragma once
// softmax / log_softmax along one dim (negative dims allowed), numerically stable:
// the max of each slice is subtracted before exponentiating.
#include "engine/core/tensor.h"

namespace pneuma {

Tensor softmax(const Tensor& x, int64_t dim);
Tensor log_softmax(const Tensor& x, int64_t dim);

}  // namespace pneuma

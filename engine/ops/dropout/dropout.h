#pragma once
// Inverted dropout: in training each element is kept with probability 1 - p and
// scaled by 1 / (1 - p). The mask is a pure function of (seed, element index in
// row-major order): element i is kept iff random::uniform(seed, i) >= p, so float32, float64 and
// bfloat16 calls, CPU and CUDA draw identical masks for the same seed. bfloat16 is scaled in float
// and rounded once: its result is the float32 result on the same values, rounded to bfloat16.
#include <cstdint>

#include "engine/core/tensor.h"

namespace pneuma {

// p = 0 or !training returns x itself; p = 1 gives zeros; p outside [0, 1] is an error.
Tensor dropout(const Tensor& x, double p, bool training, uint64_t seed);

}  // namespace pneuma

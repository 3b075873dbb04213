// The type a sum of T accumulates in, shared by the CPU sum loop and the CUDA sum kernels so that
// both round alike: double for float32 and float64 (long float32 sums stay accurate), float for
// bfloat16 (PyTorch's opmath: a bfloat16 sum accumulates in float32, and no float64 is involved in
// the bfloat16 paths).
#pragma once

#include <type_traits>

#include "engine/core/bfloat16.h"

namespace pneuma::kern {

template <class T>
using sum_accumulator_t = std::conditional_t<std::is_same_v<T, bfloat16>, float, double>;

}  // namespace pneuma::kern

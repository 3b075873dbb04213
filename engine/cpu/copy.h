#pragma once
#include "engine/core/tensor.h"

namespace pneuma::cpu {

// dst[i] = convert(src[i]) for tensors of equal shape, any strides and dtypes
// (float32/float64/int64/uint8/bool; bfloat16/float16 convert through float32).
void copy_strided(const Tensor& src, const Tensor& dst);

}  // namespace pneuma::cpu

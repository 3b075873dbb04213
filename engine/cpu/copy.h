#pragma once
#include "engine/core/tensor.h"

namespace pneuma::cpu {

// dst[i] = convert(src[i]) for tensors of equal shape, any strides and dtypes
// (float32/float64/bfloat16/int64/uint8/bool convert as kern::convert_element; float16
// converts through float32).
void copy_strided(const Tensor& src, const Tensor& dst);

// Calls fn.template operator()<U>() with U the unsigned integer of t's element size: a copy within
// one dtype moves the bits as they are (so the 16-bit float types need no conversion either).
template <class Fn>
decltype(auto) dispatch_element_bits(DType t, const char* op, Fn&& fn) {
  switch (dtype_size(t)) {
    case 1: return fn.template operator()<uint8_t>();
    case 2: return fn.template operator()<uint16_t>();
    case 4: return fn.template operator()<uint32_t>();
    case 8: return fn.template operator()<uint64_t>();
    default: break;
  }
  PNEUMA_FAIL(op, ": no copy for elements of ", dtype_size(t), " bytes");
}

}  // namespace pneuma::cpu

#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

#include "engine/core/bfloat16.h"
#include "engine/core/error.h"

namespace pneuma {

// Float32/Float64 carry math, BFloat16 the mixed-precision path (autocast); the others exist as
// storage types for checkpoints, data and indices (Int64 indices, Bool masks, UInt8 images).
enum class DType : uint8_t { Float32, Float64, BFloat16, Float16, Int64, UInt8, Bool };

constexpr size_t dtype_size(DType t) {
  switch (t) {
    case DType::Float32: return 4;
    case DType::Float64: return 8;
    case DType::BFloat16: return 2;
    case DType::Float16: return 2;
    case DType::Int64: return 8;
    case DType::UInt8: return 1;
    case DType::Bool: return 1;
  }
  return 0;
}

constexpr const char* dtype_name(DType t) {
  switch (t) {
    case DType::Float32: return "float32";
    case DType::Float64: return "float64";
    case DType::BFloat16: return "bfloat16";
    case DType::Float16: return "float16";
    case DType::Int64: return "int64";
    case DType::UInt8: return "uint8";
    case DType::Bool: return "bool";
  }
  return "?";
}

// Floating-point dtypes with kernels: float32 and float64 everywhere, bfloat16 in the ops that
// mixed precision runs through (each dispatches with dispatch_floating_and_bfloat16; the others
// name the op and the dtype they refuse). float16 is a storage dtype only.
constexpr bool is_floating(DType t) { return t == DType::Float32 || t == DType::Float64 || t == DType::BFloat16; }

template <class T> struct dtype_of;
template <> struct dtype_of<float> { static constexpr DType value = DType::Float32; };
template <> struct dtype_of<double> { static constexpr DType value = DType::Float64; };
template <> struct dtype_of<bfloat16> { static constexpr DType value = DType::BFloat16; };
template <> struct dtype_of<int64_t> { static constexpr DType value = DType::Int64; };
template <> struct dtype_of<uint8_t> { static constexpr DType value = DType::UInt8; };
template <> struct dtype_of<bool> { static constexpr DType value = DType::Bool; };
template <class T> inline constexpr DType dtype_v = dtype_of<T>::value;

// Calls fn.template operator()<T>() with T = float or double; other dtypes are an
// error naming the op, because the math ops are defined for floating types only.
template <class Fn>
decltype(auto) dispatch_floating(DType t, const char* op, Fn&& fn) {
  switch (t) {
    case DType::Float32: return fn.template operator()<float>();
    case DType::Float64: return fn.template operator()<double>();
    default: break;
  }
  PNEUMA_FAIL(op, ": expected a float32 or float64 tensor, got ", dtype_name(t));
}

// As dispatch_floating, plus T = bfloat16 for the ops that have bfloat16 kernels.
template <class Fn>
decltype(auto) dispatch_floating_and_bfloat16(DType t, const char* op, Fn&& fn) {
  switch (t) {
    case DType::Float32: return fn.template operator()<float>();
    case DType::Float64: return fn.template operator()<double>();
    case DType::BFloat16: return fn.template operator()<bfloat16>();
    default: break;
  }
  PNEUMA_FAIL(op, ": expected a float32, float64 or bfloat16 tensor, got ", dtype_name(t));
}

// As dispatch_floating, over every dtype with a C++ type (copies, index ops; float16 has none).
template <class Fn>
decltype(auto) dispatch_all(DType t, const char* op, Fn&& fn) {
  switch (t) {
    case DType::Float32: return fn.template operator()<float>();
    case DType::Float64: return fn.template operator()<double>();
    case DType::BFloat16: return fn.template operator()<bfloat16>();
    case DType::Int64: return fn.template operator()<int64_t>();
    case DType::UInt8: return fn.template operator()<uint8_t>();
    case DType::Bool: return fn.template operator()<bool>();
    default: break;
  }
  PNEUMA_FAIL(op, ": unsupported dtype ", dtype_name(t));
}

}  // namespace pneuma

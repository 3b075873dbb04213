#include "engine/cpu/copy.h"

#include <cstring>

#include "engine/cpu/loops.h"
#include "engine/core/half.h"

namespace pneuma::cpu {

namespace {
// Reads/writes one element of a storage dtype as double; the 16-bit float types
// have no native C++ type, so they go through the converters of half.h.
double load(const void* base, DType t, int64_t i) {
  switch (t) {
    case DType::Float32: return static_cast<const float*>(base)[i];
    case DType::Float64: return static_cast<const double*>(base)[i];
    case DType::Int64: return static_cast<double>(static_cast<const int64_t*>(base)[i]);
    case DType::UInt8: return static_cast<const uint8_t*>(base)[i];
    case DType::Bool: return static_cast<const bool*>(base)[i] ? 1.0 : 0.0;
    case DType::BFloat16: return bfloat16_to_float(static_cast<const uint16_t*>(base)[i]);
    case DType::Float16: return half_to_float(static_cast<const uint16_t*>(base)[i]);
  }
  return 0;
}

void store(void* base, DType t, int64_t i, double v) {
  switch (t) {
    case DType::Float32: static_cast<float*>(base)[i] = static_cast<float>(v); break;
    case DType::Float64: static_cast<double*>(base)[i] = v; break;
    case DType::Int64: static_cast<int64_t*>(base)[i] = static_cast<int64_t>(v); break;
    case DType::UInt8: static_cast<uint8_t*>(base)[i] = static_cast<uint8_t>(v); break;
    case DType::Bool: static_cast<bool*>(base)[i] = v != 0; break;
    case DType::BFloat16: static_cast<uint16_t*>(base)[i] = float_to_bfloat16(static_cast<float>(v)); break;
    case DType::Float16: static_cast<uint16_t*>(base)[i] = float_to_half(static_cast<float>(v)); break;
  }
}
}  // namespace

void copy_strided(const Tensor& src, const Tensor& dst) {
  PNEUMA_CHECK(src.shape() == dst.shape(), "copy: shape ", shape_str(src.shape()), " vs ",
               shape_str(dst.shape()));
  PNEUMA_CHECK(src.device().is_cpu() && dst.device().is_cpu(), "copy_strided: CPU tensors only");
  if (src.dtype() == dst.dtype() && src.is_contiguous() && dst.is_contiguous()) {
    std::memcpy(dst.raw_data(), src.raw_data(), src.numel() * dtype_size(src.dtype()));
    return;
  }
  const void* s = src.raw_data();
  void* d = dst.raw_data();
  if (src.dtype() == dst.dtype() && src.dtype() != DType::BFloat16 && src.dtype() != DType::Float16) {
    dispatch_all(src.dtype(), "copy", [&]<class T>() {
      const T* sp = static_cast<const T*>(s);
      T* dp = static_cast<T*>(d);
      for_each_offset<2>(src.shape(), {dst.strides(), src.strides()},
                         [&](const std::array<int64_t, 2>& o) { dp[o[0]] = sp[o[1]]; });
    });
    return;
  }
  const DType st = src.dtype(), dt = dst.dtype();
  for_each_offset<2>(src.shape(), {dst.strides(), src.strides()},
                     [&](const std::array<int64_t, 2>& o) { store(d, dt, o[0], load(s, st, o[1])); });
}

}  // namespace pneuma::cpu

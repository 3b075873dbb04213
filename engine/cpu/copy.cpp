#include "engine/cpu/copy.h"

#include <cstring>
#include <type_traits>

#include "engine/core/half.h"
#include "engine/cpu/loops.h"
#include "engine/cpu/parallel.h"
#include "kernels/elementwise/elementwise_math.cuh"

namespace pneuma::cpu {

namespace {
// Reads/writes one element of a storage dtype as double, for float16, which has no C++ type
// (its converters are in half.h); every other conversion is a typed loop.
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

// The casts autocast makes of every conv weight each step (PNEUMA_BF16_LOOP: with an AVX2 clone).
PNEUMA_BF16_LOOP void narrow_to_bfloat16(const float* s, bfloat16* d, int64_t n) {
  for (int64_t i = 0; i < n; ++i) d[i] = kern::convert_element<bfloat16, float>(s[i]);
}
PNEUMA_BF16_LOOP void widen_from_bfloat16(const bfloat16* s, float* d, int64_t n) {
  for (int64_t i = 0; i < n; ++i) d[i] = kern::convert_element<float, bfloat16>(s[i]);
}

// Whether src and dst hold their elements in the same order in numel consecutive slots (both
// row-major, or both dense with equal strides, as two channels-last tensors): a flat loop copies them.
bool same_dense_layout(const Tensor& src, const Tensor& dst) {
  if (src.is_contiguous() && dst.is_contiguous()) return true;
  return src.strides() == dst.strides() && src.is_non_overlapping_and_dense();
}

// dst = src element by element, D and S being the dtypes' C++ types. Operands in the same dense
// layout run a flat loop that the compiler vectorizes; others walk their strides.
template <class D, class S>
void convert(const Tensor& src, const Tensor& dst) {
  const S* s = static_cast<const S*>(src.raw_data());
  D* d = static_cast<D*>(dst.raw_data());
  if (same_dense_layout(src, dst)) {
    parallel_for(src.numel(), [&](int64_t begin, int64_t end) {
      if constexpr (std::is_same_v<S, float> && std::is_same_v<D, bfloat16>) {
        narrow_to_bfloat16(s + begin, d + begin, end - begin);
      } else if constexpr (std::is_same_v<S, bfloat16> && std::is_same_v<D, float>) {
        widen_from_bfloat16(s + begin, d + begin, end - begin);
      } else {
        for (int64_t i = begin; i < end; ++i) d[i] = kern::convert_element<D, S>(s[i]);
      }
    });
    return;
  }
  for_each_offset<2>(src.shape(), {dst.strides(), src.strides()},
                     [&](const std::array<int64_t, 2>& o) { d[o[0]] = kern::convert_element<D, S>(s[o[1]]); });
}
}  // namespace

void copy_strided(const Tensor& src, const Tensor& dst) {
  PNEUMA_CHECK(src.shape() == dst.shape(), "copy: shape ", shape_str(src.shape()), " vs ",
               shape_str(dst.shape()));
  PNEUMA_CHECK(src.device().is_cpu() && dst.device().is_cpu(), "copy_strided: CPU tensors only");
  if (src.dtype() == dst.dtype() && same_dense_layout(src, dst)) {
    std::memcpy(dst.raw_data(), src.raw_data(), src.numel() * dtype_size(src.dtype()));
    return;
  }
  if (src.dtype() == dst.dtype()) {
    return dispatch_element_bits(src.dtype(), "copy", [&]<class U>() { convert<U, U>(src, dst); });
  }
  if (src.dtype() == DType::Float16 || dst.dtype() == DType::Float16) {
    const void* s = src.raw_data();
    void* d = dst.raw_data();
    const DType st = src.dtype(), dt = dst.dtype();
    for_each_offset<2>(src.shape(), {dst.strides(), src.strides()},
                       [&](const std::array<int64_t, 2>& o) { store(d, dt, o[0], load(s, st, o[1])); });
    return;
  }
  dispatch_all(src.dtype(), "copy", [&]<class S>() {
    dispatch_all(dst.dtype(), "copy", [&]<class D>() { convert<D, S>(src, dst); });
  });
}

}  // namespace pneuma::cpu

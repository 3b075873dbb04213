#pragma once
// bfloat16: the storage type of DType::BFloat16, usable in host code, in CUDA kernels and in
// their CPU emulation. Arithmetic goes through float (opmath_t), as in PyTorch: a value widens
// exactly to float, and narrowing rounds to nearest even with NaN kept NaN.
#include <cstdint>
#include <cstring>

#if defined(__CUDACC__)
#define PNEUMA_BF16_HD __host__ __device__ __forceinline__
#else
#define PNEUMA_BF16_HD inline
#endif

namespace pneuma {

struct bfloat16 {
  uint16_t bits;

  bfloat16() = default;
  PNEUMA_BF16_HD bfloat16(float value) : bits(round_to_bits(value)) {}
  PNEUMA_BF16_HD operator float() const { return from_float_bits(static_cast<uint32_t>(bits) << 16); }

  static PNEUMA_BF16_HD bfloat16 from_bits(uint16_t raw) {
    bfloat16 v;
    v.bits = raw;
    return v;
  }

  static PNEUMA_BF16_HD uint16_t round_to_bits(float value) {
    const uint32_t f = to_float_bits(value);
    if ((f & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((f >> 16) | 0x40u);  // quiet NaN
    const uint32_t rounding = 0x7fffu + ((f >> 16) & 1u);
    return static_cast<uint16_t>((f + rounding) >> 16);
  }

 private:
  static PNEUMA_BF16_HD uint32_t to_float_bits(float value) {
#if defined(__CUDA_ARCH__)
    return __float_as_uint(value);
#else
    uint32_t f;
    std::memcpy(&f, &value, 4);
    return f;
#endif
  }
  static PNEUMA_BF16_HD float from_float_bits(uint32_t f) {
#if defined(__CUDA_ARCH__)
    return __uint_as_float(f);
#else
    float value;
    std::memcpy(&value, &f, 4);
    return value;
#endif
  }
};
static_assert(sizeof(bfloat16) == 2, "bfloat16 must be 16 bits, the layout of torch.bfloat16 and __nv_bfloat16");

// The type a kernel computes in for storage type T: float for bfloat16 (its products and sums
// would lose bits at every step), T itself otherwise.
template <class T> struct opmath { using type = T; };
template <> struct opmath<bfloat16> { using type = float; };
template <class T> using opmath_t = typename opmath<T>::type;

}  // namespace pneuma

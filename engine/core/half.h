#pragma once
// IEEE binary16 and bfloat16 conversions (round to nearest even) for storage types.
#include <cstdint>
#include <cstring>

#include "engine/core/bfloat16.h"

namespace pneuma {

inline float bits_to_float(uint32_t bits) {
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

inline uint32_t float_to_bits(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  return bits;
}

inline float bfloat16_to_float(uint16_t v) { return bfloat16::from_bits(v); }

inline uint16_t float_to_bfloat16(float f) { return bfloat16::round_to_bits(f); }

inline float half_to_float(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exponent = (h >> 10) & 0x1fu;
  uint32_t mantissa = h & 0x3ffu;
  if (exponent == 0) {
    if (mantissa == 0) return bits_to_float(sign);
    int e = -1;  // subnormal: normalise
    do {
      ++e;
      mantissa <<= 1;
    } while ((mantissa & 0x400u) == 0);
    return bits_to_float(sign | static_cast<uint32_t>(127 - 15 - e) << 23 | (mantissa & 0x3ffu) << 13);
  }
  if (exponent == 0x1f) return bits_to_float(sign | 0x7f800000u | mantissa << 13);
  return bits_to_float(sign | (exponent + 127 - 15) << 23 | mantissa << 13);
}

inline uint16_t float_to_half(float f) {
  const uint32_t bits = float_to_bits(f);
  const uint16_t sign = static_cast<uint16_t>((bits >> 16) & 0x8000u);
  const uint32_t abs = bits & 0x7fffffffu;
  if (abs > 0x7f800000u) return sign | 0x7e00u;  // NaN
  if (abs >= 0x477ff000u) return sign | 0x7c00u;  // overflow to inf
  if (abs < 0x38800000u) {                        // subnormal or zero
    const float scaled = bits_to_float(abs) * 16777216.0f;  // * 2^24: exact integer of half ulps
    const uint32_t m = static_cast<uint32_t>(scaled);
    const float rest = scaled - static_cast<float>(m);
    const uint32_t rounded = m + (rest > 0.5f || (rest == 0.5f && (m & 1u)) ? 1u : 0u);
    return sign | static_cast<uint16_t>(rounded);
  }
  const uint32_t rounding = 0xfffu + ((abs >> 13) & 1u);
  return sign | static_cast<uint16_t>((abs - 0x38000000u + rounding) >> 13);
}

}  // namespace pneuma

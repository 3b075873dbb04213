#pragma once
// Inputs and the float32-oracle comparison of the bfloat16 op tests (tests/ops/test_bf16_linalg.cpp,
// tests/kernels/test_bf16_softmax_upsample_kernels.cpp).
#include <doctest/doctest.h>

#include <cmath>
#include <string>
#include <vector>

#include "engine/core/tensor.h"
#include "tests/kernels/kernel_check.h"

namespace pneuma::testing {

inline constexpr double kBf16TwoUlps = 1.6e-2;  // 2 bfloat16 ulps (2^-7 relative, rounded up)

// Values uniform in [lo, hi) rounded to bfloat16.
inline Tensor bf16_values(const Shape& shape, uint64_t seed, double lo = -1, double hi = 1) {
  return uniform_values(shape, seed, DType::Float32, lo, hi).to(DType::BFloat16);
}

// |actual - expected| <= atol + rtol * |expected| for every element; actual is bfloat16 and
// expected the float32 oracle.
inline void require_bf16_close(const Tensor& expected, const Tensor& actual, double atol, const std::string& what,
                               double rtol = kBf16TwoUlps) {
  CAPTURE(what);
  REQUIRE(actual.dtype() == DType::BFloat16);
  REQUIRE(expected.dtype() == DType::Float32);
  REQUIRE(actual.shape() == expected.shape());
  const std::vector<double> e = expected.to_vector(), a = actual.to_vector();
  for (size_t i = 0; i < e.size(); ++i) {
    CAPTURE(i);
    CAPTURE(e[i]);
    CAPTURE(a[i]);
    REQUIRE(std::isfinite(a[i]));
    REQUIRE(std::fabs(a[i] - e[i]) <= atol + rtol * std::fabs(e[i]));
  }
}

}  // namespace pneuma::testing

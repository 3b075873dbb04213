#pragma once
// Comparisons and inputs shared by the emulated kernel tests: bitwise equality for kernels that
// evaluate the CPU loops' expressions in the same order, closeness for those whose double sums
// add in another order, and uniform inputs (optionally on a grid, to make ties and equal values).
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "engine/core/tensor.h"

namespace pneuma::testing {

// Every element (in logical order) has the same bits, NaN payloads included; any dtype.
inline void require_same_bits(const Tensor& expected, const Tensor& actual) {
  REQUIRE(expected.shape() == actual.shape());
  REQUIRE(expected.dtype() == actual.dtype());
  const Tensor e = expected.contiguous(), a = actual.contiguous();
  const size_t element = dtype_size(e.dtype());
  const auto* eb = static_cast<const unsigned char*>(e.raw_data());
  const auto* ab = static_cast<const unsigned char*>(a.raw_data());
  for (int64_t i = 0; i < e.numel(); ++i) {
    CAPTURE(i);
    REQUIRE(std::memcmp(eb + i * element, ab + i * element, element) == 0);
  }
}

// |expected - actual| <= tolerance * (1 + |expected|) per element: 2e-6 for float32 data, 1e-12
// for float64 (sums rounded to the data's precision after adding in another order).
inline void require_close(const Tensor& expected, const Tensor& actual, const char* what = "") {
  CAPTURE(what);
  REQUIRE(expected.shape() == actual.shape());
  const std::vector<double> e = expected.to_vector(), a = actual.to_vector();
  const double relative = expected.dtype() == DType::Float32 ? 2e-6 : 1e-12;
  for (size_t i = 0; i < e.size(); ++i) {
    CAPTURE(i);
    REQUIRE(std::fabs(e[i] - a[i]) <= relative * (1 + std::fabs(e[i])));
  }
}

// Uniform values in [lo, hi) as `dtype`; rounded down to multiples of `quantum` when it is
// positive, so that tensors share values (ties, equal elements, zeros).
inline Tensor uniform_values(const Shape& shape, uint64_t seed, DType dtype, double lo, double hi,
                             double quantum = 0) {
  std::vector<double> v = Tensor::rand(shape, seed, DType::Float64).to_vector();
  for (double& x : v) {
    x = lo + (hi - lo) * x;
    if (quantum > 0) x = std::floor(x / quantum) * quantum;
  }
  return Tensor::from_vector(v, shape, dtype);
}

}  // namespace pneuma::testing

#pragma once
// Strided iteration for the CPU reference loops: visits every index of `shape` in
// row-major order and calls fn with the element offset of each operand.
#include <array>
#include <cstdint>
#include <vector>

#include "engine/core/tensor.h"

// The flat bfloat16 loops (elementwise ops, casts, sums): each element widens to float, is
// computed on and rounds back with integer shifts and masks, which run at half speed or less in
// SSE2 vectors. GCC compiles them twice on x86-64, for x86-64-v3 (AVX2) and for the baseline, the
// loader picking one for the machine once. GCC fuses a * b + c into an FMA in the AVX2 clone
// (C++ defaults to -ffp-contract=fast); the formulas they evaluate (elementwise_math.cuh) are
// written without such a pattern, so both clones give the same bits.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define PNEUMA_BF16_LOOP __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define PNEUMA_BF16_LOOP
#endif

namespace pneuma::cpu {

// Strides of t as seen from a broadcast output of rank `rank` (0 on broadcast dims).
inline Strides broadcast_strides(const Tensor& t, const Shape& out_shape) {
  const size_t rank = out_shape.size();
  Strides s(rank, 0);
  const size_t lead = rank - t.shape().size();
  for (size_t i = 0; i < t.shape().size(); ++i)
    s[lead + i] = t.shape()[i] == 1 && out_shape[lead + i] != 1 ? 0 : t.strides()[i];
  return s;
}

template <size_t N, class Fn>
void for_each_offset(const Shape& shape, const std::array<Strides, N>& strides, Fn&& fn) {
  const size_t rank = shape.size();
  for (int64_t s : shape)
    if (s == 0) return;
  std::array<int64_t, N> offset{};
  if (rank == 0) {
    fn(offset);
    return;
  }
  const int64_t inner = shape[rank - 1];
  std::array<int64_t, N> inner_stride;
  for (size_t k = 0; k < N; ++k) inner_stride[k] = strides[k][rank - 1];
  std::vector<int64_t> index(rank, 0);
  while (true) {
    std::array<int64_t, N> o = offset;
    for (int64_t i = 0; i < inner; ++i) {
      fn(o);
      for (size_t k = 0; k < N; ++k) o[k] += inner_stride[k];
    }
    // Odometer over the outer dims.
    size_t d = rank - 1;
    while (true) {
      if (d == 0) return;
      --d;
      ++index[d];
      for (size_t k = 0; k < N; ++k) offset[k] += strides[k][d];
      if (index[d] < shape[d]) break;
      for (size_t k = 0; k < N; ++k) offset[k] -= strides[k][d] * shape[d];
      index[d] = 0;
    }
  }
}

}  // namespace pneuma::cpu

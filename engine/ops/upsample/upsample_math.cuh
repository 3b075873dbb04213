#pragma once
// Source-index rules of nearest and bilinear upsampling, shared by the CPU reference
// loops and the CUDA kernels to come. They reproduce PyTorch 1.13's UpSample.h
// (nearest_idx, area_pixel_compute_scale, area_pixel_compute_source_index,
// compute_source_index_and_lambda) including its float arithmetic, so the sampled
// positions agree with PyTorch's to the bit.
#include <cmath>
#include <cstdint>

#if defined(__CUDACC__)
#define PNEUMA_UPSAMPLE_HD __host__ __device__ inline
#else
#define PNEUMA_UPSAMPLE_HD inline
#endif

namespace pneuma::kern {

// scale > 0: the user's scale_factor (PyTorch then samples with 1 / scale_factor, not
// in / out); scale <= 0: none given.
PNEUMA_UPSAMPLE_HD int64_t nearest_source_index(int64_t dst, int64_t in, int64_t out, double scale) {
  if (out == in) return dst;
  if (out == 2 * in) return dst >> 1;
  // PyTorch computes nearest indices in float whatever the tensor's dtype.
  const float s = scale > 0 ? static_cast<float>(1.0 / scale) : static_cast<float>(in) / static_cast<float>(out);
  const int64_t src = static_cast<int64_t>(floorf(static_cast<float>(dst) * s));
  return src < in - 1 ? src : in - 1;
}

// Source positions per destination position, in the op's math type T.
template <class T>
PNEUMA_UPSAMPLE_HD T area_pixel_scale(int64_t in, int64_t out, bool align_corners, double scale) {
  if (align_corners) return out > 1 ? static_cast<T>(in - 1) / static_cast<T>(out - 1) : T(0);
  return scale > 0 ? static_cast<T>(1.0 / scale) : static_cast<T>(in) / static_cast<T>(out);
}

// The two taps of linear interpolation and their weights.
template <class T>
struct LinearTaps {
  int64_t i0, i1;
  T l0, l1;
};

template <class T>
PNEUMA_UPSAMPLE_HD LinearTaps<T> linear_taps(int64_t dst, int64_t in, int64_t out, bool align_corners, T scale) {
  if (out == in) return {dst, dst, T(1), T(0)};
  T real;
  if (align_corners) {
    real = scale * static_cast<T>(dst);
  } else {
    // Half-pixel centers; positions left of the first center clamp to it.
    real = scale * (static_cast<T>(dst) + T(0.5)) - T(0.5);
    if (real < T(0)) real = T(0);
  }
  int64_t i0 = static_cast<int64_t>(real);
  if (i0 > in - 1) i0 = in - 1;
  const int64_t i1 = i0 + (i0 < in - 1 ? 1 : 0);
  T l1 = real - static_cast<T>(i0);
  l1 = l1 < T(0) ? T(0) : (l1 > T(1) ? T(1) : l1);
  return {i0, i1, T(1) - l1, l1};
}

}  // namespace pneuma::kern

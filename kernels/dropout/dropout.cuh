// Dropout over contiguous buffers. The mask comes from the counter-based generator of
// engine/core/random.h, a pure function of (seed, element index): the kernels draw exactly the
// CPU loops' mask for a seed, in any launch shape, whatever the dtype.
//
// The kept values are scaled in opmath_t<T>: float32 and float64 in their own precision, bfloat16
// in float (x widened exactly, times float32's scale, rounded once on store, as torch's CUDA
// dropout does), so a bfloat16 result is the float32 result on the same values rounded to bfloat16.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>

#include "../elementwise/elementwise.cuh"
#include "../portable.cuh"
#include "engine/core/bfloat16.h"
#include "engine/core/random.h"

namespace pneuma::kern {

// 1 / (1 - p) in the math type of T (T itself for float32 and float64, as PyTorch computes it;
// float for bfloat16).
template <class T>
PNEUMA_HD inline opmath_t<T> dropout_scale(double p) {
    using M = opmath_t<T>;
    return M(1) / static_cast<M>(1.0 - p);
}

// One element of dropout's forward and backward: v * scale where kept, else 0.
template <class T>
PNEUMA_HD inline T dropout_value(T v, bool keep, opmath_t<T> scale) {
    return keep ? static_cast<T>(static_cast<opmath_t<T>>(v) * scale) : static_cast<T>(0.0f);
}

inline namespace PNEUMA_KERNEL_ABI {

template <class T>
__global__ void dropout_forward_kernel(const T* x, std::int64_t n, double p, std::uint64_t seed, opmath_t<T> scale,
                                       T* y, bool* mask) {
    for (std::int64_t i = grid_stride_begin(); i < n; i += grid_stride_step()) {
        const bool keep = random::uniform(seed, static_cast<std::uint64_t>(i)) >= p;
        mask[i] = keep;
        y[i] = dropout_value(x[i], keep, scale);
    }
}

template <class T>
__global__ void dropout_backward_kernel(const T* g, const bool* mask, std::int64_t n, opmath_t<T> scale, T* dx) {
    for (std::int64_t i = grid_stride_begin(); i < n; i += grid_stride_step()) dx[i] = dropout_value(g[i], mask[i], scale);
}

template <class T>
void launch_dropout_forward(const T* x, std::int64_t n, double p, std::uint64_t seed, T* y, bool* mask, Stream stream) {
    check_element_count("launch_dropout_forward", n);
    if (n == 0) return;
    auto kernel = &dropout_forward_kernel<T>;
    PNEUMA_LAUNCH(kernel, elementwise_blocks(n), kElementwiseThreads, 0, stream, x, n, p, seed, dropout_scale<T>(p), y,
                  mask);
}

template <class T>
void launch_dropout_backward(const T* g, const bool* mask, std::int64_t n, double p, T* dx, Stream stream) {
    check_element_count("launch_dropout_backward", n);
    if (n == 0) return;
    auto kernel = &dropout_backward_kernel<T>;
    PNEUMA_LAUNCH(kernel, elementwise_blocks(n), kElementwiseThreads, 0, stream, g, mask, n, dropout_scale<T>(p), dx);
}

}  // inline namespace PNEUMA_KERNEL_ABI

}  // namespace pneuma::kern

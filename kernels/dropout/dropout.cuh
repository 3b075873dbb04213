// Dropout over contiguous buffers. The mask comes from the counter-based generator of
// engine/core/random.h, a pure function of (seed, element index): the kernels draw exactly the
// CPU loops' mask for a seed, in any launch shape.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>

#include "../elementwise/elementwise.cuh"
#include "../portable.cuh"
#include "engine/core/random.h"

namespace pneuma::kern {

// 1 / (1 - p) in the tensor's own precision, as PyTorch computes it.
template <class T>
PNEUMA_HD inline T dropout_scale(double p) {
    return T(1) / static_cast<T>(1.0 - p);
}

inline namespace PNEUMA_KERNEL_ABI {

template <class T>
__global__ void dropout_forward_kernel(const T* x, std::int64_t n, double p, std::uint64_t seed, T scale, T* y,
                                       bool* mask) {
    for (std::int64_t i = grid_stride_begin(); i < n; i += grid_stride_step()) {
        const bool keep = random::uniform(seed, static_cast<std::uint64_t>(i)) >= p;
        mask[i] = keep;
        y[i] = keep ? x[i] * scale : T(0);
    }
}

template <class T>
__global__ void dropout_backward_kernel(const T* g, const bool* mask, std::int64_t n, T scale, T* dx) {
    for (std::int64_t i = grid_stride_begin(); i < n; i += grid_stride_step()) dx[i] = mask[i] ? g[i] * scale : T(0);
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

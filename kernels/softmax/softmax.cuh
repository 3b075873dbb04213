// Softmax and log_softmax, forward and backward, along one dim of a contiguous tensor seen as
// [outer, n, inner] (the softmax dim in the middle); a plain [rows, cols] matrix is inner = 1.
//
// One block per row (a row: the n elements of one (outer, inner) position, inner apart): each
// thread walks the row with a block-sized stride, the row maximum and the sums come from the block
// reductions, and every element is written once. Subtracting the row maximum keeps exp() from
// overflowing for large logits. Row sums accumulate in double, as the CPU loops do.
//
// bfloat16 data is loaded into float (opmath_t), computed there, row sums included (float64 never
// enters a bfloat16 path), and rounded to bfloat16 once on store, as PyTorch does.
//
// Per-element math is PNEUMA_HD so that the CPU reference loops compute exactly the same
// expressions as the kernel.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>

#include "../portable.cuh"
#include "../reduce/sum_accumulator.cuh"
#include "engine/core/bfloat16.h"

namespace pneuma::kern {

// ---- Math shared with CPU reference loops ----

// The type a row sum accumulates in: double for float32 and float64 data, float for bfloat16.
template <class T>
using softmax_acc_t = sum_accumulator_t<T>;

PNEUMA_HD inline float exp_of(float x) { return ::expf(x); }
PNEUMA_HD inline double exp_of(double x) { return ::exp(x); }
PNEUMA_HD inline float log_of(float x) { return ::logf(x); }
PNEUMA_HD inline double log_of(double x) { return ::log(x); }

// exp(x - row_max): summed over the row it gives the softmax denominator, never above cols.
template <class T>
PNEUMA_HD inline T softmax_shifted_exp(T x, T row_max) {
    return exp_of(x - row_max);
}

template <class T>
PNEUMA_HD inline T softmax_value(T x, T row_max, T shifted_exp_sum) {
    return softmax_shifted_exp(x, row_max) / shifted_exp_sum;
}

// log(softmax(x)) without the cancellation of log(exp(...)): x - max - log(sum exp(x - max)).
template <class T>
PNEUMA_HD inline T log_softmax_value(T x, T row_max, T log_shifted_exp_sum) {
    return x - row_max - log_shifted_exp_sum;
}

// One element of the softmax backward: the row sum's term (g * y for softmax, g for log_softmax)
// in the accumulator type Acc, and the gradient given the row's sum of those terms. y and g are
// in the math type (opmath_t of the data).
template <class Acc, class T>
PNEUMA_HD inline Acc softmax_backward_term(T y, T g, bool log) {
    return log ? static_cast<Acc>(g) : static_cast<Acc>(g) * y;
}

template <class T, class Acc>
PNEUMA_HD inline T softmax_backward_value(T y, T g, Acc row_sum, bool log) {
    return log ? static_cast<T>(g - exp_of(y) * row_sum) : static_cast<T>(y * (g - row_sum));
}

inline namespace PNEUMA_KERNEL_ABI {

// ---- Kernels ----

// The softmax of one row of `cols` (> 0) elements spaced `stride` apart, by the whole block: every
// thread of the block must call it (the block reductions hold barriers). x and y may be the same
// buffer: each element is read for the last time by the thread that then overwrites it.
template <class T>
PNEUMA_DEVICE void softmax_row(const T* x_row, T* y_row, std::int64_t cols, std::int64_t stride, bool log) {
    using M = opmath_t<T>;
    // Any element of the row is a valid start for a maximum, also for threads with no column.
    M local_max = x_row[0];
    for (std::int64_t c = threadIdx.x; c < cols; c += blockDim.x) {
        local_max = MaxOp{}(local_max, static_cast<M>(x_row[c * stride]));
    }
    const M row_max = block_reduce_max(local_max);

    softmax_acc_t<T> local_sum = 0;
    for (std::int64_t c = threadIdx.x; c < cols; c += blockDim.x) {
        local_sum += softmax_shifted_exp(static_cast<M>(x_row[c * stride]), row_max);
    }
    const M row_sum = static_cast<M>(block_reduce_sum(local_sum));

    if (log) {
        const M log_row_sum = log_of(row_sum);
        for (std::int64_t c = threadIdx.x; c < cols; c += blockDim.x) {
            const M x = x_row[c * stride];
            y_row[c * stride] = static_cast<T>(log_softmax_value(x, row_max, log_row_sum));
        }
    } else {
        for (std::int64_t c = threadIdx.x; c < cols; c += blockDim.x) {
            const M x = x_row[c * stride];
            y_row[c * stride] = static_cast<T>(softmax_value(x, row_max, row_sum));
        }
    }
}

template <class T>
PNEUMA_DEVICE void softmax_backward_row(const T* y_row, const T* g_row, T* dx_row, std::int64_t cols,
                                        std::int64_t stride, bool log) {
    using M = opmath_t<T>;
    using Acc = softmax_acc_t<T>;
    Acc local_sum = 0;
    for (std::int64_t c = threadIdx.x; c < cols; c += blockDim.x) {
        const M y = y_row[c * stride], g = g_row[c * stride];
        local_sum += softmax_backward_term<Acc>(y, g, log);
    }
    const Acc row_sum = block_reduce_sum(local_sum);
    for (std::int64_t c = threadIdx.x; c < cols; c += blockDim.x) {
        const M y = y_row[c * stride], g = g_row[c * stride];
        dx_row[c * stride] = static_cast<T>(softmax_backward_value(y, g, row_sum, log));
    }
}

// Grid-stride over rows (gridDim.x may be smaller than rows), block-stride over columns. The row
// loop is uniform across a block, so the barriers inside the reductions are reached by all.
template <class T>
__global__ void softmax_rows_kernel(const T* x, T* y, std::int64_t rows, std::int64_t cols, bool log) {
    for (std::int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
        softmax_row(x + row * cols, y + row * cols, cols, 1, log);
    }
}

// [outer, n, inner]: row r is (r / inner, r % inner), its elements inner apart.
template <class T>
__global__ void softmax_kernel(const T* x, T* y, std::int64_t outer, std::int64_t n, std::int64_t inner, bool log) {
    for (std::int64_t row = blockIdx.x; row < outer * inner; row += gridDim.x) {
        const std::int64_t base = (row / inner) * n * inner + row % inner;
        softmax_row(x + base, y + base, n, inner, log);
    }
}

template <class T>
__global__ void softmax_backward_kernel(const T* y, const T* g, T* dx, std::int64_t outer, std::int64_t n,
                                        std::int64_t inner, bool log) {
    for (std::int64_t row = blockIdx.x; row < outer * inner; row += gridDim.x) {
        const std::int64_t base = (row / inner) * n * inner + row % inner;
        softmax_backward_row(y + base, g + base, dx + base, n, inner, log);
    }
}

// ---- Launchers ----

inline constexpr unsigned kSoftmaxMaxBlockThreads = 256;
inline constexpr std::int64_t kMaxGridBlocksX = 2147483647;

// Enough warps to give every thread a column, at most 256 threads: wider rows loop instead.
inline unsigned softmax_block_threads(std::int64_t cols) {
    const std::int64_t warps = (cols + kWarpSize - 1) / kWarpSize;
    const std::int64_t threads = (warps < 1 ? 1 : warps) * kWarpSize;
    return threads < kSoftmaxMaxBlockThreads ? static_cast<unsigned>(threads) : kSoftmaxMaxBlockThreads;
}

// y[r, :] = softmax(x[r, :]) (or log_softmax when `log`), for contiguous [rows, cols] buffers.
// In place (x == y) is allowed. Asynchronous on the GPU, like any launch on `stream`.
template <class T>
void launch_softmax_rows(const T* x, T* y, std::int64_t rows, std::int64_t cols, bool log, Stream stream) {
    if (rows < 0 || cols < 0) {
        throw std::invalid_argument("launch_softmax_rows: negative shape [" + std::to_string(rows) + ", " +
                                    std::to_string(cols) + "]");
    }
    if (rows == 0 || cols == 0) return;
    const dim3 grid(static_cast<unsigned>(rows < kMaxGridBlocksX ? rows : kMaxGridBlocksX));
    const dim3 block(softmax_block_threads(cols));
    PNEUMA_LAUNCH(softmax_rows_kernel<T>, grid, block, 0, stream, x, y, rows, cols, log);
}

inline void check_softmax_shape(const char* launcher, std::int64_t outer, std::int64_t n, std::int64_t inner) {
    if (outer < 0 || n < 0 || inner < 0) {
        throw std::invalid_argument(std::string(launcher) + ": negative shape [" + std::to_string(outer) + ", " +
                                    std::to_string(n) + ", " + std::to_string(inner) + "]");
    }
}

inline unsigned softmax_grid(std::int64_t rows) {
    return static_cast<unsigned>(rows < kMaxGridBlocksX ? rows : kMaxGridBlocksX);
}

// y = softmax (or log_softmax) of x along the middle dim of contiguous [outer, n, inner] buffers.
template <class T>
void launch_softmax(const T* x, T* y, std::int64_t outer, std::int64_t n, std::int64_t inner, bool log,
                    Stream stream) {
    check_softmax_shape("launch_softmax", outer, n, inner);
    if (outer == 0 || n == 0 || inner == 0) return;
    auto kernel = &softmax_kernel<T>;
    PNEUMA_LAUNCH(kernel, softmax_grid(outer * inner), softmax_block_threads(n), 0, stream, x, y, outer, n, inner, log);
}

// dx from the forward's output y and the output gradient g, same layout as launch_softmax.
template <class T>
void launch_softmax_backward(const T* y, const T* g, T* dx, std::int64_t outer, std::int64_t n, std::int64_t inner,
                             bool log, Stream stream) {
    check_softmax_shape("launch_softmax_backward", outer, n, inner);
    if (outer == 0 || n == 0 || inner == 0) return;
    auto kernel = &softmax_backward_kernel<T>;
    PNEUMA_LAUNCH(kernel, softmax_grid(outer * inner), softmax_block_threads(n), 0, stream, y, g, dx, outer, n, inner,
                  log);
}

}  // inline namespace PNEUMA_KERNEL_ABI

}  // namespace pneuma::kern

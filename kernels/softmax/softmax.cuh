// Row-wise softmax and log_softmax forward over a contiguous [rows, cols] matrix.
//
// One block per row: each thread walks the row with a block-sized stride, the row maximum and
// the sum of shifted exponentials come from the block reductions, and every element is written
// once. Subtracting the row maximum keeps exp() from overflowing for large logits.
//
// Per-element math is PNEUMA_HD so that the CPU reference loops compute exactly the same
// expressions as the kernel.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>

#include "../portable.cuh"

namespace pneuma::kern {

// ---- Math shared with CPU reference loops ----

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

// ---- Kernel ----

// Grid-stride over rows (gridDim.x may be smaller than rows), block-stride over columns. The row
// loop is uniform across a block, so the barriers inside the reductions are reached by all.
// x and y may be the same buffer: each element is read for the last time by the thread that
// then overwrites it.
template <class T>
__global__ void softmax_rows_kernel(const T* x, T* y, std::int64_t rows, std::int64_t cols, bool log) {
    const std::int64_t col_stride = blockDim.x;
    for (std::int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
        const T* x_row = x + row * cols;
        T* y_row = y + row * cols;

        // Any element of the row is a valid start for a maximum, also for threads with no column.
        T local_max = x_row[0];
        for (std::int64_t c = threadIdx.x; c < cols; c += col_stride) local_max = MaxOp{}(local_max, x_row[c]);
        const T row_max = block_reduce_max(local_max);

        T local_sum = 0;
        for (std::int64_t c = threadIdx.x; c < cols; c += col_stride) {
            local_sum += softmax_shifted_exp(x_row[c], row_max);
        }
        const T row_sum = block_reduce_sum(local_sum);

        if (log) {
            const T log_row_sum = log_of(row_sum);
            for (std::int64_t c = threadIdx.x; c < cols; c += col_stride) {
                y_row[c] = log_softmax_value(x_row[c], row_max, log_row_sum);
            }
        } else {
            for (std::int64_t c = threadIdx.x; c < cols; c += col_stride) {
                y_row[c] = softmax_value(x_row[c], row_max, row_sum);
            }
        }
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

}  // namespace pneuma::kern

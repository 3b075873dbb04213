// Sum reductions over any set of dims of a strided tensor.
//
// The input is seen as a matrix [rows, cols]: a row is one element of the output (the kept dims,
// row-major) and its columns are the reduced elements (the reduced dims, row-major). Two offset
// calculators, one per side, give an element's offset as row_offset + col_offset, so no transposed
// copy is made. Sums accumulate in sum_accumulator_t<T> (double for float32/float64, float for
// bfloat16 as PyTorch), as the CPU reference does, and a mean's 1/count scales the accumulated sum
// before the one rounding to T. The order of additions is fixed by the launch shape alone: results
// are deterministic (no atomics).
//
// Three kernels share the work:
//   - sum_rows_serial_kernel: one thread per row, for rows of a few elements;
//   - sum_rows_kernel: one block per (row, split); the block's threads stride over the row's
//     columns and meet in a block reduction. With one split it writes the row's sum; with several
//     (few long rows, e.g. a sum of everything) each block writes an accumulator-typed partial sum of its
//     slice and a second sum_rows_kernel pass over the partials finishes the rows.
//
// max/min (with the index of the first extreme) run one block per row of a contiguous [rows, cols]
// matrix: a block reduction finds the extreme (a NaN wins), a second one the lowest index holding
// it, so ties resolve to the first index as in PyTorch and on the CPU.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>

#include "../elementwise/elementwise.cuh"
#include "../portable.cuh"
#include "sum_accumulator.cuh"

namespace pneuma::kern {

// Rows at most this long get a thread each instead of a block.
inline constexpr std::int64_t kSerialRowMaxCols = 16;
inline constexpr unsigned kReduceMaxBlockThreads = 256;
// A split row gives each block at least this many columns.
inline constexpr std::int64_t kReduceColsPerSplit = 4096;
// Enough blocks in flight to fill a large GPU when there are few rows.
inline constexpr std::int64_t kReduceTargetBlocks = 1024;
inline constexpr std::int64_t kReduceMaxGridX = 2147483647;

struct SumLaunchPlan {
    bool serial = false;     // one thread per row
    std::int64_t splits = 1;  // blocks per row (then a second pass over the partial sums)
    unsigned threads = 1;    // per block
};

// How a [rows, cols] sum is launched; depends only on the sizes, so results do too.
inline SumLaunchPlan plan_sum(std::int64_t rows, std::int64_t cols) {
    SumLaunchPlan plan;
    if (cols <= kSerialRowMaxCols) {
        plan.serial = true;
        plan.threads = kReduceMaxBlockThreads;
        return plan;
    }
    if (rows < kReduceTargetBlocks && cols > kReduceColsPerSplit) {
        const std::int64_t by_size = (cols + kReduceColsPerSplit - 1) / kReduceColsPerSplit;
        const std::int64_t by_occupancy = (kReduceTargetBlocks + rows - 1) / rows;
        plan.splits = by_size < by_occupancy ? by_size : by_occupancy;
    }
    const std::int64_t cols_per_block = (cols + plan.splits - 1) / plan.splits;
    const std::int64_t warps = (cols_per_block + kWarpSize - 1) / kWarpSize;
    const std::int64_t threads = warps * kWarpSize;
    plan.threads = threads < kReduceMaxBlockThreads ? static_cast<unsigned>(threads) : kReduceMaxBlockThreads;
    return plan;
}

inline unsigned reduce_grid(std::int64_t blocks) {
    return static_cast<unsigned>(blocks < 1 ? 1 : (blocks < kReduceMaxGridX ? blocks : kReduceMaxGridX));
}

inline namespace PNEUMA_KERNEL_ABI {

// ---- Kernels ----

// out[r] = scale * sum over c of x[row_offsets(r) + col_offsets(c)], one thread per row, columns in
// order, added in Acc.
template <class In, class Out, class Acc>
__global__ void sum_rows_serial_kernel(const In* x, OffsetCalculator<1> row_offsets, OffsetCalculator<1> col_offsets,
                                       std::int64_t rows, std::int64_t cols, Out* out, Acc scale) {
    for (std::int64_t r = grid_stride_begin(); r < rows; r += grid_stride_step()) {
        const std::int64_t base = row_offsets.at(r).operand[0];
        Acc sum = 0;
        for (std::int64_t c = 0; c < cols; ++c) sum += static_cast<Acc>(x[base + col_offsets.at(c).operand[0]]);
        out[r] = static_cast<Out>(sum * scale);
    }
}

// Block b (grid-stride over rows * splits) sums columns [split * chunk, (split + 1) * chunk) of
// row b / splits, split = b % splits, in Acc and writes scale times that to out[b]. The loop over
// blocks is uniform across a block, so every thread reaches the barriers of the block reduction.
template <class In, class Out, class Acc>
__global__ void sum_rows_kernel(const In* x, OffsetCalculator<1> row_offsets, OffsetCalculator<1> col_offsets,
                                std::int64_t rows, std::int64_t cols, std::int64_t splits, Out* out, Acc scale) {
    const std::int64_t chunk = (cols + splits - 1) / splits;
    for (std::int64_t b = blockIdx.x; b < rows * splits; b += gridDim.x) {
        const std::int64_t row = b / splits;
        const std::int64_t begin = (b % splits) * chunk;
        const std::int64_t end = begin + chunk < cols ? begin + chunk : cols;
        const std::int64_t base = row_offsets.at(row).operand[0];
        Acc local = 0;
        for (std::int64_t c = begin + threadIdx.x; c < end; c += blockDim.x) {
            local += static_cast<Acc>(x[base + col_offsets.at(c).operand[0]]);
        }
        const Acc total = block_reduce_sum(local);
        if (threadIdx.x == 0) out[b] = static_cast<Out>(total * scale);
    }
}

// ---- Launcher ----

// out[r] = scale * sum of row r of x seen as [rows, cols] through the two offset calculators (scale
// 1 for a sum, 1/cols for a mean); out is contiguous with `rows` elements. `partials` holds
// plan_sum(rows, cols).splits * rows accumulators when that is more than one split (else it may be
// nullptr). An empty row sums to 0.
template <class T>
void launch_sum_rows(const T* x, const OffsetCalculator<1>& row_offsets, const OffsetCalculator<1>& col_offsets,
                     std::int64_t rows, std::int64_t cols, T* out, sum_accumulator_t<T>* partials, Stream stream,
                     double scale = 1.0) {
    using Acc = sum_accumulator_t<T>;
    const Acc acc_scale = static_cast<Acc>(scale);
    if (rows < 0 || cols < 0) {
        throw std::invalid_argument("launch_sum_rows: negative shape [" + std::to_string(rows) + ", " +
                                    std::to_string(cols) + "]");
    }
    if (rows == 0) return;
    const SumLaunchPlan plan = plan_sum(rows, cols);
    if (plan.serial) {
        auto kernel = &sum_rows_serial_kernel<T, T, Acc>;
        const std::int64_t blocks = (rows + plan.threads - 1) / plan.threads;
        PNEUMA_LAUNCH(kernel, reduce_grid(blocks), plan.threads, 0, stream, x, row_offsets, col_offsets, rows, cols,
                      out, acc_scale);
        return;
    }
    if (plan.splits == 1) {
        auto kernel = &sum_rows_kernel<T, T, Acc>;
        PNEUMA_LAUNCH(kernel, reduce_grid(rows), plan.threads, 0, stream, x, row_offsets, col_offsets, rows, cols,
                      std::int64_t{1}, out, acc_scale);
        return;
    }
    if (partials == nullptr) throw std::invalid_argument("launch_sum_rows: a split sum needs a partials buffer");
    auto first = &sum_rows_kernel<T, Acc, Acc>;
    PNEUMA_LAUNCH(first, reduce_grid(rows * plan.splits), plan.threads, 0, stream, x, row_offsets, col_offsets, rows,
                  cols, plan.splits, partials, Acc(1));
    // The partial sums are a contiguous [rows, splits] matrix.
    const OffsetCalculator<1> partial_rows = make_offset_calculator<1>({rows}, {{{plan.splits}}});
    const OffsetCalculator<1> partial_cols = make_offset_calculator<1>({plan.splits}, {{{1}}});
    const SumLaunchPlan second_plan = plan_sum(rows, plan.splits);
    if (second_plan.serial) {
        auto second = &sum_rows_serial_kernel<Acc, T, Acc>;
        PNEUMA_LAUNCH(second, reduce_grid((rows + second_plan.threads - 1) / second_plan.threads),
                      second_plan.threads, 0, stream, partials, partial_rows, partial_cols, rows, plan.splits, out,
                      acc_scale);
    } else {
        auto second = &sum_rows_kernel<Acc, T, Acc>;
        PNEUMA_LAUNCH(second, reduce_grid(rows), second_plan.threads, 0, stream, partials, partial_rows, partial_cols,
                      rows, plan.splits, std::int64_t{1}, out, acc_scale);
    }
}

// ---- max / min ----

// The smaller of two values, a NaN winning (MaxOp's mirror).
struct MinOp {
    template <class T>
    PNEUMA_HD T operator()(const T& a, const T& b) const {
        return (a < b || a != a) ? a : b;
    }
};

template <class T>
PNEUMA_HD inline bool same_extreme(T value, T extreme) {
    return extreme != extreme ? value != value : value == extreme;
}

// values[r] = max (or min) of row r, indices[r] (when not nullptr) = the first column holding it.
template <class T>
__global__ void minmax_rows_kernel(const T* x, std::int64_t rows, std::int64_t cols, bool is_max, T* values,
                                   std::int64_t* indices) {
    for (std::int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
        const T* row = x + r * cols;
        T local = row[0];
        for (std::int64_t c = threadIdx.x; c < cols; c += blockDim.x) {
            local = is_max ? MaxOp{}(local, row[c]) : MinOp{}(local, row[c]);
        }
        const T extreme = is_max ? block_reduce(local, MaxOp{}) : block_reduce(local, MinOp{});
        std::int64_t first = cols;
        for (std::int64_t c = threadIdx.x; c < cols && first == cols; c += blockDim.x) {
            if (same_extreme(row[c], extreme)) first = c;
        }
        first = block_reduce(first, MinOp{});
        if (threadIdx.x == 0) {
            values[r] = extreme;
            if (indices != nullptr) indices[r] = first;
        }
    }
}

template <class T>
void launch_minmax_rows(const T* x, std::int64_t rows, std::int64_t cols, bool is_max, T* values,
                        std::int64_t* indices, Stream stream) {
    if (rows < 0 || cols <= 0) {
        throw std::invalid_argument("launch_minmax_rows: shape [" + std::to_string(rows) + ", " + std::to_string(cols) +
                                    "] needs rows >= 0 and cols > 0");
    }
    if (rows == 0) return;
    const std::int64_t warps = (cols + kWarpSize - 1) / kWarpSize;
    const unsigned threads = warps * kWarpSize < kReduceMaxBlockThreads ? static_cast<unsigned>(warps * kWarpSize)
                                                                          : kReduceMaxBlockThreads;
    auto kernel = &minmax_rows_kernel<T>;
    PNEUMA_LAUNCH(kernel, reduce_grid(rows), threads, 0, stream, x, rows, cols, is_max, values, indices);
}

}  // inline namespace PNEUMA_KERNEL_ABI

}  // namespace pneuma::kern

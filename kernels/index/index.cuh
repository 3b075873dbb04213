// Indexing kernels: index_select and its adjoint index_add, gather and its adjoint scatter_add,
// and the check that every index of an int64 index tensor lies in [0, bound).
//
// index_select/index_add see their tensors as contiguous [outer, n, inner] (the indexed dim in the
// middle; the source of index_add and the result of index_select have k = index.numel() rows
// there). gather/scatter_add walk the positions of the index tensor with an OffsetCalculator
// (kernels/elementwise/elementwise.cuh), so any strides work; the indexed operand's offset
// calculator has a zero stride along dim and the index value times that dim's stride is added.
//
// Every kernel is a grid-stride loop, so any grid and block size computes the same result; the
// launchers pick a default and the emulated tests try others. index_add and scatter_add add with
// atomicAdd, because repeated indices send several source elements to one destination: on a GPU
// the order of those float additions is not fixed (as in PyTorch's CUDA scatter_add_/index_add_).
//
// The kernels read only indices already known to be in range: the tensor-level code
// (engine/ops/index/index_kernels.h) runs find_bad_index first where the CPU path would check.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>

#include "../elementwise/elementwise.cuh"
#include "../portable.cuh"

namespace pneuma::kern {

// A grid and block size for one launch; 0 picks the launcher's default.
struct IndexLaunch {
    unsigned blocks = 0;
    unsigned threads = 0;
};

inline unsigned index_threads(const IndexLaunch& shape) {
    return shape.threads != 0 ? shape.threads : kElementwiseThreads;
}

inline unsigned index_blocks(const IndexLaunch& shape, std::int64_t n) {
    if (shape.blocks != 0) return shape.blocks;
    const std::int64_t threads = index_threads(shape);
    const std::int64_t blocks = (n + threads - 1) / threads;
    return static_cast<unsigned>(blocks < 1 ? 1 : (blocks < kElementwiseMaxBlocks ? blocks : kElementwiseMaxBlocks));
}

// A contiguous tensor seen as [outer, n, inner] around the indexed dim; k indices select along it.
struct IndexRows {
    std::int64_t outer = 1, n = 1, k = 0, inner = 1;
};

inline void check_index_rows(const char* launcher, const IndexRows& rows) {
    if (rows.outer < 0 || rows.n < 0 || rows.k < 0 || rows.inner < 0) {
        throw std::invalid_argument(std::string(launcher) + ": negative extent in [" + std::to_string(rows.outer) +
                                    ", " + std::to_string(rows.n) + " (k " + std::to_string(rows.k) + "), " +
                                    std::to_string(rows.inner) + "]");
    }
}

// Offset, in the [outer, n, inner] tensor, of element `e` of the [outer, k, inner] one when row i
// of that is row index[i] of this.
PNEUMA_DEVICE std::int64_t indexed_row_offset(std::int64_t e, const std::int64_t* index, const IndexRows& rows) {
    const std::int64_t j = e % rows.inner;
    const std::int64_t r = e / rows.inner;
    const std::int64_t i = r % rows.k;
    const std::int64_t b = r / rows.k;
    return (b * rows.n + index[i]) * rows.inner + j;
}

inline namespace PNEUMA_KERNEL_ABI {

// ---- Kernels ----

// first_bad (zero before the launch) ends as count - p for the smallest position p whose index is
// outside [0, bound), or stays zero: a maximum of count - p is a minimum of p, so the host reports
// the same (first) bad index as the CPU loops whichever thread found which.
__global__ void find_bad_index_kernel(const std::int64_t* index, std::int64_t count, std::int64_t bound,
                                      unsigned long long* first_bad) {
    for (std::int64_t p = grid_stride_begin(); p < count; p += grid_stride_step()) {
        const std::int64_t v = index[p];
        if (v < 0 || v >= bound) atomicMax(first_bad, static_cast<unsigned long long>(count - p));
    }
}

// out [outer, k, inner] = x [outer, n, inner] with row i of out taken from row index[i].
template <class T>
__global__ void index_select_kernel(const T* x, const std::int64_t* index, T* out, IndexRows rows,
                                    std::int64_t total) {
    for (std::int64_t e = grid_stride_begin(); e < total; e += grid_stride_step()) {
        out[e] = x[indexed_row_offset(e, index, rows)];
    }
}

// out [outer, n, inner] row index[i] += src [outer, k, inner] row i.
template <class T>
__global__ void index_add_kernel(T* out, const std::int64_t* index, const T* src, IndexRows rows, std::int64_t total) {
    for (std::int64_t e = grid_stride_begin(); e < total; e += grid_stride_step()) {
        atomicAdd(out + indexed_row_offset(e, index, rows), src[e]);
    }
}

// Operands: 0 = out, 1 = index, 2 = x without dim. step: x's stride along dim.
template <class T>
__global__ void gather_kernel(const T* x, const std::int64_t* index, T* out, OffsetCalculator<3> offsets,
                              std::int64_t step, std::int64_t total) {
    for (std::int64_t e = grid_stride_begin(); e < total; e += grid_stride_step()) {
        const ElementOffsets<3> o = offsets.at(e);
        out[o.operand[0]] = x[o.operand[2] + index[o.operand[1]] * step];
    }
}

// Operands: 0 = out without dim, 1 = index, 2 = src. step: out's stride along dim.
template <class T>
__global__ void scatter_add_kernel(T* out, const std::int64_t* index, const T* src, OffsetCalculator<3> offsets,
                                   std::int64_t step, std::int64_t total) {
    for (std::int64_t e = grid_stride_begin(); e < total; e += grid_stride_step()) {
        const ElementOffsets<3> o = offsets.at(e);
        atomicAdd(out + o.operand[0] + index[o.operand[1]] * step, src[o.operand[2]]);
    }
}

// ---- Launchers ----

// first_bad: one zeroed unsigned long long in memory the kernel can write (see the kernel).
inline void launch_find_bad_index(const std::int64_t* index, std::int64_t count, std::int64_t bound,
                                  unsigned long long* first_bad, Stream stream, const IndexLaunch& shape = {}) {
    check_element_count("launch_find_bad_index", count);
    if (count == 0) return;
    PNEUMA_LAUNCH(find_bad_index_kernel, index_blocks(shape, count), index_threads(shape), 0, stream, index, count,
                  bound, first_bad);
}

template <class T>
void launch_index_select(const T* x, const std::int64_t* index, T* out, const IndexRows& rows, Stream stream,
                         const IndexLaunch& shape = {}) {
    check_index_rows("launch_index_select", rows);
    const std::int64_t total = rows.outer * rows.k * rows.inner;
    if (total == 0) return;
    auto kernel = &index_select_kernel<T>;
    PNEUMA_LAUNCH(kernel, index_blocks(shape, total), index_threads(shape), 0, stream, x, index, out, rows, total);
}

template <class T>
void launch_index_add(T* out, const std::int64_t* index, const T* src, const IndexRows& rows, Stream stream,
                      const IndexLaunch& shape = {}) {
    check_index_rows("launch_index_add", rows);
    const std::int64_t total = rows.outer * rows.k * rows.inner;
    if (total == 0) return;
    auto kernel = &index_add_kernel<T>;
    PNEUMA_LAUNCH(kernel, index_blocks(shape, total), index_threads(shape), 0, stream, out, index, src, rows, total);
}

// total: the number of index positions the offset calculator was built for.
template <class T>
void launch_gather(const T* x, const std::int64_t* index, T* out, const OffsetCalculator<3>& offsets,
                   std::int64_t step, std::int64_t total, Stream stream, const IndexLaunch& shape = {}) {
    check_element_count("launch_gather", total);
    if (total == 0) return;
    auto kernel = &gather_kernel<T>;
    PNEUMA_LAUNCH(kernel, index_blocks(shape, total), index_threads(shape), 0, stream, x, index, out, offsets, step,
                  total);
}

template <class T>
void launch_scatter_add(T* out, const std::int64_t* index, const T* src, const OffsetCalculator<3>& offsets,
                        std::int64_t step, std::int64_t total, Stream stream, const IndexLaunch& shape = {}) {
    check_element_count("launch_scatter_add", total);
    if (total == 0) return;
    auto kernel = &scatter_add_kernel<T>;
    PNEUMA_LAUNCH(kernel, index_blocks(shape, total), index_threads(shape), 0, stream, out, index, src, offsets,
                  step, total);
}

}  // inline namespace PNEUMA_KERNEL_ABI

}  // namespace pneuma::kern

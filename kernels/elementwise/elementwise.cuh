// Elementwise kernels over operands of any strides, with broadcasting: unary ops and their
// backward, binary ops (arithmetic and comparisons), dtype-converting copies, where and
// masked_fill.
//
// Every kernel is a grid-stride loop over the elements of the output, in row-major order. An
// OffsetCalculator turns the linear index of an element into the element offset of each operand;
// broadcasting is a stride of 0. The host builds it once per launch and merges dims that are
// contiguous for every operand, so contiguous operands cost one multiply per element and
// broadcasting or transposed ones a few divisions.
//
// The per-element math is kernels/elementwise/elementwise_math.cuh, shared with the CPU loops.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include "../portable.cuh"
#include "elementwise_math.cuh"

namespace pneuma::kern {

// Dims left after merging; a tensor needs more only when nearly every one of its dims breaks
// contiguity for some operand.
inline constexpr int kMaxElementwiseDims = 12;

template <int N>
struct ElementOffsets {
    std::int64_t operand[N];
};

// Maps the linear (row-major) index of an element of the iteration shape to the element offset of
// each of N operands.
template <int N>
struct OffsetCalculator {
    int dims = 0;                                       // 0: a single element
    std::int64_t sizes[kMaxElementwiseDims] = {};       // innermost dim first
    std::int64_t strides[kMaxElementwiseDims][N] = {};  // [dim][operand], in elements

    PNEUMA_HD ElementOffsets<N> at(std::int64_t linear) const {
        ElementOffsets<N> offsets;
        for (int k = 0; k < N; ++k) offsets.operand[k] = 0;
        for (int d = 0; d < dims; ++d) {
            // The outermost dim takes what is left: no division for a single merged dim.
            const std::int64_t index = d + 1 < dims ? linear % sizes[d] : linear;
            if (d + 1 < dims) linear /= sizes[d];
            for (int k = 0; k < N; ++k) offsets.operand[k] += index * strides[d][k];
        }
        return offsets;
    }
};

// shape: the iteration shape, outermost dim first (as a tensor's shape). strides[k]: operand k's
// element strides over that shape, 0 along broadcast dims. Size-1 dims are dropped and an outer
// dim merges into the dim inside it when every operand steps over the inner one contiguously.
template <int N>
OffsetCalculator<N> make_offset_calculator(const std::vector<std::int64_t>& shape,
                                           const std::array<std::vector<std::int64_t>, N>& strides) {
    for (int k = 0; k < N; ++k) {
        if (strides[k].size() != shape.size()) {
            throw std::invalid_argument("make_offset_calculator: operand " + std::to_string(k) + " has " +
                                        std::to_string(strides[k].size()) + " strides for a " +
                                        std::to_string(shape.size()) + "-d shape");
        }
    }
    OffsetCalculator<N> calculator;
    for (std::size_t i = shape.size(); i-- > 0;) {
        if (shape[i] == 1) continue;
        if (calculator.dims > 0) {
            const int inner = calculator.dims - 1;
            bool mergeable = true;
            for (int k = 0; k < N; ++k) {
                mergeable = mergeable && strides[k][i] == calculator.strides[inner][k] * calculator.sizes[inner];
            }
            if (mergeable) {
                calculator.sizes[inner] *= shape[i];
                continue;
            }
        }
        if (calculator.dims == kMaxElementwiseDims) {
            throw std::invalid_argument("elementwise kernel: the operands' strides leave more than " +
                                        std::to_string(kMaxElementwiseDims) +
                                        " dims that cannot be merged; make an operand contiguous first");
        }
        const int d = calculator.dims++;
        calculator.sizes[d] = shape[i];
        for (int k = 0; k < N; ++k) calculator.strides[d][k] = strides[k][i];
    }
    return calculator;
}

// make_offset_calculator over the dims put in operand 0's memory order (largest stride outermost),
// for kernels whose elements are independent: a channels-last output is then walked in memory
// order, which merges its dims and keeps a warp's accesses coalesced, as contiguous ones are.
template <int N>
OffsetCalculator<N> make_memory_order_offset_calculator(const std::vector<std::int64_t>& shape,
                                                        const std::array<std::vector<std::int64_t>, N>& strides) {
    if (strides[0].size() != shape.size()) return make_offset_calculator<N>(shape, strides);  // it names the error
    std::vector<std::size_t> order(shape.size());
    for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::stable_sort(order.begin(), order.end(),
                     [&](std::size_t a, std::size_t b) { return strides[0][a] > strides[0][b]; });
    std::vector<std::int64_t> ordered_shape;
    std::array<std::vector<std::int64_t>, N> ordered_strides;
    for (std::size_t d : order) {
        ordered_shape.push_back(shape[d]);
        for (int k = 0; k < N; ++k) {
            if (d < strides[k].size()) ordered_strides[k].push_back(strides[k][d]);
        }
    }
    return make_offset_calculator<N>(ordered_shape, ordered_strides);
}

template <BinaryOp OP, class T>
using binary_result_t = decltype(binary_forward<OP, T>(T(), T()));

PNEUMA_DEVICE std::int64_t grid_stride_begin() {
    return static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
}
PNEUMA_DEVICE std::int64_t grid_stride_step() { return static_cast<std::int64_t>(gridDim.x) * blockDim.x; }

inline constexpr unsigned kElementwiseThreads = 256;
// A grid-stride loop needs no more blocks than the GPU runs at once; more only add scheduling.
inline constexpr std::int64_t kElementwiseMaxBlocks = 65536;

inline unsigned elementwise_blocks(std::int64_t n) {
    const std::int64_t blocks = (n + kElementwiseThreads - 1) / kElementwiseThreads;
    return static_cast<unsigned>(blocks < 1 ? 1 : (blocks < kElementwiseMaxBlocks ? blocks : kElementwiseMaxBlocks));
}

inline void check_element_count(const char* launcher, std::int64_t n) {
    if (n < 0) throw std::invalid_argument(std::string(launcher) + ": negative element count " + std::to_string(n));
}

inline namespace PNEUMA_KERNEL_ABI {

// ---- Kernels ----

// Operands: 0 = y, 1 = x.
template <UnaryOp OP, class T>
__global__ void unary_forward_kernel(std::int64_t n, OffsetCalculator<2> offsets, const T* x, T* y, UnaryParams p) {
    for (std::int64_t i = grid_stride_begin(); i < n; i += grid_stride_step()) {
        const ElementOffsets<2> o = offsets.at(i);
        y[o.operand[0]] = unary_forward<OP, T>(x[o.operand[1]], p);
    }
}

// Operands: 0 = dx, 1 = x, 2 = y, 3 = g. x or y is nullptr when the formula does not read it.
template <UnaryOp OP, class T>
__global__ void unary_backward_kernel(std::int64_t n, OffsetCalculator<4> offsets, const T* x, const T* y,
                                      const T* g, T* dx, UnaryParams p) {
    for (std::int64_t i = grid_stride_begin(); i < n; i += grid_stride_step()) {
        const ElementOffsets<4> o = offsets.at(i);
        const T xi = x != nullptr ? x[o.operand[1]] : T(0);
        const T yi = y != nullptr ? y[o.operand[2]] : T(0);
        dx[o.operand[0]] = unary_backward<OP, T>(xi, yi, g[o.operand[3]], p);
    }
}

// Operands: 0 = out, 1 = a, 2 = b.
template <BinaryOp OP, class T>
__global__ void binary_forward_kernel(std::int64_t n, OffsetCalculator<3> offsets, const T* a, const T* b,
                                      binary_result_t<OP, T>* out) {
    for (std::int64_t i = grid_stride_begin(); i < n; i += grid_stride_step()) {
        const ElementOffsets<3> o = offsets.at(i);
        out[o.operand[0]] = binary_forward<OP, T>(a[o.operand[1]], b[o.operand[2]]);
    }
}

// Operands: 0 = dst, 1 = src.
template <class D, class S>
__global__ void convert_kernel(std::int64_t n, OffsetCalculator<2> offsets, const S* src, D* dst) {
    for (std::int64_t i = grid_stride_begin(); i < n; i += grid_stride_step()) {
        const ElementOffsets<2> o = offsets.at(i);
        dst[o.operand[0]] = convert_element<D, S>(src[o.operand[1]]);
    }
}

// Operands: 0 = out, 1 = condition, 2 = a, 3 = b.
template <class T>
__global__ void where_kernel(std::int64_t n, OffsetCalculator<4> offsets, const bool* condition, const T* a,
                             const T* b, T* out) {
    for (std::int64_t i = grid_stride_begin(); i < n; i += grid_stride_step()) {
        const ElementOffsets<4> o = offsets.at(i);
        out[o.operand[0]] = condition[o.operand[1]] ? a[o.operand[2]] : b[o.operand[3]];
    }
}

// Operands: 0 = out, 1 = x, 2 = mask.
template <class T>
__global__ void masked_fill_kernel(std::int64_t n, OffsetCalculator<3> offsets, const T* x, const bool* mask,
                                   T value, T* out) {
    for (std::int64_t i = grid_stride_begin(); i < n; i += grid_stride_step()) {
        const ElementOffsets<3> o = offsets.at(i);
        out[o.operand[0]] = mask[o.operand[2]] ? value : x[o.operand[1]];
    }
}

// ---- Launchers: n elements of the iteration shape the offset calculator was built for ----

template <UnaryOp OP, class T>
void launch_unary_forward(const T* x, T* y, const OffsetCalculator<2>& offsets, std::int64_t n,
                          const UnaryParams& p, Stream stream) {
    check_element_count("launch_unary_forward", n);
    if (n == 0) return;
    auto kernel = &unary_forward_kernel<OP, T>;
    PNEUMA_LAUNCH(kernel, elementwise_blocks(n), kElementwiseThreads, 0, stream, n, offsets, x, y, p);
}

template <UnaryOp OP, class T>
void launch_unary_backward(const T* x, const T* y, const T* g, T* dx, const OffsetCalculator<4>& offsets,
                           std::int64_t n, const UnaryParams& p, Stream stream) {
    check_element_count("launch_unary_backward", n);
    if (n == 0) return;
    auto kernel = &unary_backward_kernel<OP, T>;
    PNEUMA_LAUNCH(kernel, elementwise_blocks(n), kElementwiseThreads, 0, stream, n, offsets, x, y, g, dx, p);
}

template <BinaryOp OP, class T>
void launch_binary_forward(const T* a, const T* b, binary_result_t<OP, T>* out, const OffsetCalculator<3>& offsets,
                           std::int64_t n, Stream stream) {
    check_element_count("launch_binary_forward", n);
    if (n == 0) return;
    auto kernel = &binary_forward_kernel<OP, T>;
    PNEUMA_LAUNCH(kernel, elementwise_blocks(n), kElementwiseThreads, 0, stream, n, offsets, a, b, out);
}

template <class D, class S>
void launch_convert(const S* src, D* dst, const OffsetCalculator<2>& offsets, std::int64_t n, Stream stream) {
    check_element_count("launch_convert", n);
    if (n == 0) return;
    auto kernel = &convert_kernel<D, S>;
    PNEUMA_LAUNCH(kernel, elementwise_blocks(n), kElementwiseThreads, 0, stream, n, offsets, src, dst);
}

template <class T>
void launch_where(const bool* condition, const T* a, const T* b, T* out, const OffsetCalculator<4>& offsets,
                  std::int64_t n, Stream stream) {
    check_element_count("launch_where", n);
    if (n == 0) return;
    auto kernel = &where_kernel<T>;
    PNEUMA_LAUNCH(kernel, elementwise_blocks(n), kElementwiseThreads, 0, stream, n, offsets, condition, a, b, out);
}

template <class T>
void launch_masked_fill(const T* x, const bool* mask, T value, T* out, const OffsetCalculator<3>& offsets,
                        std::int64_t n, Stream stream) {
    check_element_count("launch_masked_fill", n);
    if (n == 0) return;
    auto kernel = &masked_fill_kernel<T>;
    PNEUMA_LAUNCH(kernel, elementwise_blocks(n), kElementwiseThreads, 0, stream, n, offsets, x, mask, value, out);
}

}  // inline namespace PNEUMA_KERNEL_ABI

}  // namespace pneuma::kern

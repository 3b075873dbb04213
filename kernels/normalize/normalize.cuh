// Lp normalization along one dim of a contiguous tensor seen as [outer, n, inner]:
// y = x / max(||x||_p, eps), the norm kept for backward. One block per row (the n elements of one
// (outer, inner) position, inner apart) sums |x|^p, and in backward g * x, in double through the
// block reduction. The per-element math below is shared with the CPU loops
// (engine/ops/normalize/normalize_cpu.cpp).
#pragma once

#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "../portable.cuh"
#include "../softmax/softmax.cuh"

namespace pneuma::kern {

// |v|^p, with the common powers spelled out (exact and fast).
PNEUMA_HD inline double norm_power(double v, double p) {
    if (p == 2.0) return v * v;
    if (p == 1.0) return ::fabs(v);
    return ::pow(::fabs(v), p);
}

PNEUMA_HD inline double norm_root(double sum, double p) {
    if (p == 2.0) return ::sqrt(sum);
    if (p == 1.0) return sum;
    return ::pow(sum, 1.0 / p);
}

// d||x||_p / dx_i for norm > 0 (PyTorch's norm_backward).
PNEUMA_HD inline double norm_derivative(double v, double norm, double p) {
    if (p == 2.0) return v / norm;
    if (p == 1.0) return (v > 0) - (v < 0);
    return v * ::pow(::fabs(v), p - 2.0) / ::pow(norm, p - 1.0);
}

// d(loss)/d(norm) of a row given sum(g * x): -sum / max(norm, eps)^2, and zero where the clamp
// is active or the norm is 0 (PyTorch's derivative of x / clamp_min(norm, eps)).
template <class T>
PNEUMA_HD inline double normalize_norm_gradient(double sum_gx, T norm, double eps) {
    const double n = norm, e = static_cast<double>(static_cast<T>(eps)), denom = n < e ? e : n;  // std::max
    return norm >= static_cast<T>(eps) && n != 0 ? -sum_gx / (denom * denom) : 0.0;
}

template <class T>
PNEUMA_HD inline T normalize_input_gradient(T g, T x, T norm, double norm_gradient, double eps, double p) {
    const double n = norm, e = static_cast<double>(static_cast<T>(eps)), denom = n < e ? e : n;  // std::max
    double v = g / denom;
    if (norm_gradient != 0.0) v += norm_gradient * norm_derivative(x, n, p);
    return static_cast<T>(v);
}

inline namespace PNEUMA_KERNEL_ABI {

template <class T>
__global__ void normalize_forward_kernel(const T* x, T* y, T* norm, std::int64_t outer, std::int64_t n,
                                         std::int64_t inner, double p, double eps) {
    const T floor = static_cast<T>(eps);
    for (std::int64_t row = blockIdx.x; row < outer * inner; row += gridDim.x) {
        const std::int64_t base = (row / inner) * n * inner + row % inner;
        double local = 0;
        for (std::int64_t j = threadIdx.x; j < n; j += blockDim.x) local += norm_power(x[base + j * inner], p);
        const T row_norm = static_cast<T>(norm_root(block_reduce_sum(local), p));
        const T denom = row_norm < floor ? floor : row_norm;  // std::max, NaN kept
        for (std::int64_t j = threadIdx.x; j < n; j += blockDim.x) y[base + j * inner] = x[base + j * inner] / denom;
        if (threadIdx.x == 0) norm[row] = row_norm;
    }
}

template <class T>
__global__ void normalize_backward_kernel(const T* x, const T* norm, const T* g, T* dx, std::int64_t outer,
                                          std::int64_t n, std::int64_t inner, double p, double eps) {
    for (std::int64_t row = blockIdx.x; row < outer * inner; row += gridDim.x) {
        const std::int64_t base = (row / inner) * n * inner + row % inner;
        double local = 0;
        for (std::int64_t j = threadIdx.x; j < n; j += blockDim.x) {
            local += static_cast<double>(g[base + j * inner]) * x[base + j * inner];
        }
        const double norm_gradient = normalize_norm_gradient(block_reduce_sum(local), norm[row], eps);
        for (std::int64_t j = threadIdx.x; j < n; j += blockDim.x) {
            const std::int64_t k = base + j * inner;
            dx[k] = normalize_input_gradient(g[k], x[k], norm[row], norm_gradient, eps, p);
        }
    }
}

// norm holds outer * inner elements (the [outer, 1, inner] result).
template <class T>
void launch_normalize_forward(const T* x, T* y, T* norm, std::int64_t outer, std::int64_t n, std::int64_t inner,
                              double p, double eps, Stream stream) {
    check_softmax_shape("launch_normalize_forward", outer, n, inner);
    if (outer == 0 || inner == 0) return;
    auto kernel = &normalize_forward_kernel<T>;
    PNEUMA_LAUNCH(kernel, softmax_grid(outer * inner), softmax_block_threads(n), 0, stream, x, y, norm, outer, n, inner,
                  p, eps);
}

template <class T>
void launch_normalize_backward(const T* x, const T* norm, const T* g, T* dx, std::int64_t outer, std::int64_t n,
                               std::int64_t inner, double p, double eps, Stream stream) {
    check_softmax_shape("launch_normalize_backward", outer, n, inner);
    if (outer == 0 || n == 0 || inner == 0) return;
    auto kernel = &normalize_backward_kernel<T>;
    PNEUMA_LAUNCH(kernel, softmax_grid(outer * inner), softmax_block_threads(n), 0, stream, x, norm, g, dx, outer, n,
                  inner, p, eps);
}

}  // inline namespace PNEUMA_KERNEL_ABI

}  // namespace pneuma::kern

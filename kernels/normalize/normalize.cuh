// Lp normalization along one dim of a contiguous tensor seen as [outer, n, inner]:
// y = x / max(||x||_p, eps), the norm kept for backward. One block per row (the n elements of one
// (outer, inner) position, inner apart) sums |x|^p, and in backward g * x, through the block
// reduction. The per-element math below is shared with the CPU loops
// (engine/ops/normalize/normalize_cpu.cpp).
//
// Precision: float32 and float64 data sum and compute the gradient in double (normalize_acc_t);
// the norm is kept in the data's type. bfloat16 data computes in float throughout (float64 never
// enters a bfloat16 path): the norm is summed and kept in float (the saved norm is a float32
// tensor) and each output is rounded to bfloat16 once. torch 1.13 rounds the bfloat16 norm to
// bfloat16 before dividing (its norm op returns bfloat16), which moves outputs by up to half a
// bfloat16 ulp of the norm; this op does not, as batch_norm keeps its bfloat16 statistics in float.
#pragma once

#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "../portable.cuh"
#include "../reduce/sum_accumulator.cuh"
#include "../softmax/softmax.cuh"
#include "engine/core/bfloat16.h"

namespace pneuma::kern {

// The type row sums and gradients are computed in: double for float32 and float64 data, float for
// bfloat16. The norm of T data is stored as opmath_t<T> (T, or float for bfloat16).
template <class T>
using normalize_acc_t = sum_accumulator_t<T>;

PNEUMA_HD inline float abs_of(float v) { return ::fabsf(v); }
PNEUMA_HD inline double abs_of(double v) { return ::fabs(v); }
PNEUMA_HD inline float pow_of(float v, float e) { return ::powf(v, e); }
PNEUMA_HD inline double pow_of(double v, double e) { return ::pow(v, e); }
PNEUMA_HD inline float sqrt_of(float v) { return ::sqrtf(v); }
PNEUMA_HD inline double sqrt_of(double v) { return ::sqrt(v); }

// Arguments converted to A (never deduced from them): A is double unless given, so callers that
// pass float data and a double p compute in double as before.
template <class A>
using NormMath = std::type_identity_t<A>;

// |v|^p, with the common powers spelled out (exact and fast).
template <class A = double>
PNEUMA_HD inline A norm_power(NormMath<A> v, NormMath<A> p) {
    if (p == A(2)) return v * v;
    if (p == A(1)) return abs_of(v);
    return pow_of(abs_of(v), p);
}

template <class A = double>
PNEUMA_HD inline A norm_root(NormMath<A> sum, NormMath<A> p) {
    if (p == A(2)) return sqrt_of(sum);
    if (p == A(1)) return sum;
    return pow_of(sum, A(1) / p);
}

// d||x||_p / dx_i for norm > 0 (PyTorch's norm_backward).
template <class A = double>
PNEUMA_HD inline A norm_derivative(NormMath<A> v, NormMath<A> norm, NormMath<A> p) {
    if (p == A(2)) return v / norm;
    if (p == A(1)) return A((v > 0) - (v < 0));
    return v * pow_of(abs_of(v), p - A(2)) / pow_of(norm, p - A(1));
}

// d(loss)/d(norm) of a row given sum(g * x): -sum / max(norm, eps)^2, and zero where the clamp
// is active or the norm is 0 (PyTorch's derivative of x / clamp_min(norm, eps)). N: the norm's
// type; A: the math type (double unless given).
template <class N, class A = double>
PNEUMA_HD inline A normalize_norm_gradient(NormMath<A> sum_gx, N norm, double eps) {
    const A n = norm, e = static_cast<A>(static_cast<N>(eps)), denom = n < e ? e : n;  // std::max
    return norm >= static_cast<N>(eps) && n != A(0) ? -sum_gx / (denom * denom) : A(0);
}

template <class T, class N = T, class A = double>
PNEUMA_HD inline T normalize_input_gradient(T g, T x, NormMath<N> norm, NormMath<A> norm_gradient, double eps,
                                            double p) {
    const A n = norm, e = static_cast<A>(static_cast<N>(eps)), denom = n < e ? e : n;  // std::max
    A v = static_cast<A>(g) / denom;
    if (norm_gradient != A(0)) v += norm_gradient * norm_derivative<A>(static_cast<A>(x), n, static_cast<A>(p));
    return static_cast<T>(v);
}

// One output of the forward: x / max(norm, eps) in the norm's type, rounded once to T.
template <class T, class N>
PNEUMA_HD inline T normalize_value(T x, N norm, N floor) {
    const N denom = norm < floor ? floor : norm;  // std::max, NaN kept
    return static_cast<T>(static_cast<N>(x) / denom);
}

inline namespace PNEUMA_KERNEL_ABI {

template <class T>
__global__ void normalize_forward_kernel(const T* x, T* y, opmath_t<T>* norm, std::int64_t outer, std::int64_t n,
                                         std::int64_t inner, double p, double eps) {
    using N = opmath_t<T>;
    using A = normalize_acc_t<T>;
    const N floor = static_cast<N>(eps);
    for (std::int64_t row = blockIdx.x; row < outer * inner; row += gridDim.x) {
        const std::int64_t base = (row / inner) * n * inner + row % inner;
        A local = 0;
        for (std::int64_t j = threadIdx.x; j < n; j += blockDim.x) {
            local += norm_power<A>(static_cast<A>(x[base + j * inner]), static_cast<A>(p));
        }
        const N row_norm = static_cast<N>(norm_root<A>(block_reduce_sum(local), static_cast<A>(p)));
        for (std::int64_t j = threadIdx.x; j < n; j += blockDim.x) {
            y[base + j * inner] = normalize_value(x[base + j * inner], row_norm, floor);
        }
        if (threadIdx.x == 0) norm[row] = row_norm;
    }
}

template <class T>
__global__ void normalize_backward_kernel(const T* x, const opmath_t<T>* norm, const T* g, T* dx, std::int64_t outer,
                                          std::int64_t n, std::int64_t inner, double p, double eps) {
    using N = opmath_t<T>;
    using A = normalize_acc_t<T>;
    for (std::int64_t row = blockIdx.x; row < outer * inner; row += gridDim.x) {
        const std::int64_t base = (row / inner) * n * inner + row % inner;
        A local = 0;
        for (std::int64_t j = threadIdx.x; j < n; j += blockDim.x) {
            local += static_cast<A>(g[base + j * inner]) * static_cast<A>(x[base + j * inner]);
        }
        const A norm_gradient = normalize_norm_gradient<N, A>(block_reduce_sum(local), norm[row], eps);
        for (std::int64_t j = threadIdx.x; j < n; j += blockDim.x) {
            const std::int64_t k = base + j * inner;
            dx[k] = normalize_input_gradient<T, N, A>(g[k], x[k], norm[row], norm_gradient, eps, p);
        }
    }
}

// norm holds outer * inner elements (the [outer, 1, inner] result), in opmath_t<T>.
template <class T>
void launch_normalize_forward(const T* x, T* y, std::type_identity_t<opmath_t<T>>* norm, std::int64_t outer,
                              std::int64_t n, std::int64_t inner, double p, double eps, Stream stream) {
    check_softmax_shape("launch_normalize_forward", outer, n, inner);
    if (outer == 0 || inner == 0) return;
    auto kernel = &normalize_forward_kernel<T>;
    PNEUMA_LAUNCH(kernel, softmax_grid(outer * inner), softmax_block_threads(n), 0, stream, x, y, norm, outer, n, inner,
                  p, eps);
}

template <class T>
void launch_normalize_backward(const T* x, const std::type_identity_t<opmath_t<T>>* norm, const T* g, T* dx,
                               std::int64_t outer, std::int64_t n, std::int64_t inner, double p, double eps,
                               Stream stream) {
    check_softmax_shape("launch_normalize_backward", outer, n, inner);
    if (outer == 0 || n == 0 || inner == 0) return;
    auto kernel = &normalize_backward_kernel<T>;
    PNEUMA_LAUNCH(kernel, softmax_grid(outer * inner), softmax_block_threads(n), 0, stream, x, norm, g, dx, outer, n,
                  inner, p, eps);
}

}  // inline namespace PNEUMA_KERNEL_ABI

}  // namespace pneuma::kern

// Batch norm kernels over a contiguous input seen as [N, C, S] (S: the product of the spatial
// dims), statistics per channel; float32, float64 or bfloat16 data, the per-channel tensors of
// the data's type or float32 for bfloat16 data.
//   - statistics: one block per channel, two passes (mean, then squared deviations) summed in
//     batch_norm_acc_t (double, float for bfloat16) by block reductions: deterministic, and
//     accurate when |mean| >> std;
//   - apply: per-channel coefficients (alpha, beta) first, then y = x * alpha + beta per element;
//   - backward: one block per channel sums g and g * (x - mean), writes the weight and bias
//     gradients and the channel's input-gradient terms; an elementwise kernel then writes dx;
//   - running statistics: momentum update per channel.
// Math: kernels/norm/batch_norm_math.cuh (the CPU loops' expressions).
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "../elementwise/elementwise.cuh"
#include "../portable.cuh"
#include "batch_norm_math.cuh"

namespace pneuma::kern {

inline constexpr unsigned kBatchNormChannelThreads = 256;

inline void check_batch_norm_geometry(const char* launcher, std::int64_t N, std::int64_t C, std::int64_t S) {
    if (N < 0 || C < 0 || S < 0) {
        throw std::invalid_argument(std::string(launcher) + ": negative geometry [" + std::to_string(N) + ", " +
                                    std::to_string(C) + ", " + std::to_string(S) + "]");
    }
}

inline unsigned channel_grid(std::int64_t C) {
    return static_cast<unsigned>(C < 1 ? 1 : (C < 2147483647 ? C : 2147483647));
}

inline namespace PNEUMA_KERNEL_ABI {

// ---- Kernels ----
// T: the data's type (x, y, g, dx); opmath_t<T>: the statistics' (mean, var) and the per-element
// multiply-add's; P: the parameters' (weight, bias and their gradients, running statistics), T or
// float for bfloat16 data; sums and per-channel terms in A = batch_norm_acc_t<T>.

template <class T>
__global__ void batch_norm_stats_kernel(const T* x, std::int64_t N, std::int64_t C, std::int64_t S, opmath_t<T>* mean,
                                        opmath_t<T>* var) {
    using A = batch_norm_acc_t<T>;
    const std::int64_t per_channel = N * S;
    const A count = static_cast<A>(per_channel);
    for (std::int64_t c = blockIdx.x; c < C; c += gridDim.x) {
        A local = 0;
        for (std::int64_t i = threadIdx.x; i < per_channel; i += blockDim.x) {
            local += static_cast<A>(x[((i / S) * C + c) * S + i % S]);
        }
        const A mu = block_reduce_sum(local) / count;
        A squares = 0;
        for (std::int64_t i = threadIdx.x; i < per_channel; i += blockDim.x) {
            const A d = static_cast<A>(x[((i / S) * C + c) * S + i % S]) - mu;
            squares += d * d;
        }
        const A total = block_reduce_sum(squares);
        if (threadIdx.x == 0) {
            mean[c] = static_cast<opmath_t<T>>(mu);
            var[c] = static_cast<opmath_t<T>>(total / count);
        }
    }
}

// coefficients: [alpha_0 .. alpha_{C-1}, beta_0 .. beta_{C-1}] in opmath_t<T>. weight/bias may be
// nullptr.
template <class T, class P = T>
__global__ void batch_norm_coefficients_kernel(const opmath_t<T>* mean, const opmath_t<T>* var, const P* weight,
                                               const P* bias,
                                               std::int64_t C, double eps, opmath_t<T>* coefficients) {
    using A = batch_norm_acc_t<T>;
    for (std::int64_t c = grid_stride_begin(); c < C; c += grid_stride_step()) {
        const BatchNormCoefficients<A> k = batch_norm_coefficients<A>(mean[c], var[c], weight, bias, c, eps);
        coefficients[c] = static_cast<opmath_t<T>>(k.alpha);
        coefficients[C + c] = static_cast<opmath_t<T>>(k.beta);
    }
}

template <class T>
__global__ void batch_norm_apply_kernel(const T* x, const opmath_t<T>* coefficients, std::int64_t N, std::int64_t C,
                                        std::int64_t S, T* y) {
    const std::int64_t n = N * C * S;
    for (std::int64_t i = grid_stride_begin(); i < n; i += grid_stride_step()) {
        const std::int64_t c = (i / S) % C;
        y[i] = static_cast<T>(static_cast<opmath_t<T>>(x[i]) * coefficients[c] + coefficients[C + c]);
    }
}

// Per channel: sum(g) and, when x is given, sum(g * (x - mean)); writes dweight/dbias (each may be
// nullptr) and, when terms is given, the input-gradient terms.
template <class T, class P = T>
__global__ void batch_norm_backward_reduce_kernel(const T* x, const T* g, std::int64_t N, std::int64_t C,
                                                  std::int64_t S, const opmath_t<T>* mean, const opmath_t<T>* var,
                                                  const P* weight,
                                                  double eps, bool training, P* dweight, P* dbias,
                                                  BatchNormGradTerms<batch_norm_acc_t<T>>* terms) {
    using A = batch_norm_acc_t<T>;
    const std::int64_t per_channel = N * S;
    for (std::int64_t c = blockIdx.x; c < C; c += gridDim.x) {
        const A mu = x != nullptr ? static_cast<A>(mean[c]) : A(0);
        A local_g = 0, local_dot = 0;
        for (std::int64_t i = threadIdx.x; i < per_channel; i += blockDim.x) {
            const std::int64_t at = ((i / S) * C + c) * S + i % S;
            const A gi = static_cast<A>(g[at]);
            local_g += gi;
            if (x != nullptr) local_dot += gi * (static_cast<A>(x[at]) - mu);
        }
        const A sum_g = block_reduce_sum(local_g);
        const A dot = block_reduce_sum(local_dot);
        if (threadIdx.x == 0) {
            if (dbias != nullptr) dbias[c] = static_cast<P>(sum_g);
            if (dweight != nullptr) dweight[c] = static_cast<P>(dot * batch_norm_invstd<A>(var[c], eps));
            if (terms != nullptr) {
                terms[c] = batch_norm_grad_terms<A>(var[c], weight, c, eps, training, sum_g, dot,
                                                    static_cast<A>(per_channel));
            }
        }
    }
}

template <class T>
__global__ void batch_norm_backward_input_kernel(const T* x, const T* g, const opmath_t<T>* mean,
                                                 const BatchNormGradTerms<batch_norm_acc_t<T>>* terms, std::int64_t N,
                                                 std::int64_t C, std::int64_t S, bool training, T* dx) {
    const std::int64_t n = N * C * S;
    for (std::int64_t i = grid_stride_begin(); i < n; i += grid_stride_step()) {
        const std::int64_t c = (i / S) % C;
        dx[i] = batch_norm_grad_input(g[i], x[i], mean[c], terms[c], training);
    }
}

// running = (1 - momentum) * running + momentum * batch (var scaled by unbias), in the running
// statistics' accumulate type; M: the batch statistics' type (P, or float for bfloat16 P). Either
// running tensor may be nullptr, and each has its own element stride.
template <class P, class M = P>
__global__ void batch_norm_update_running_kernel(P* running_mean, std::int64_t mean_stride, P* running_var,
                                                 std::int64_t var_stride, const M* mean, const M* var, std::int64_t C,
                                                 double momentum, double unbias) {
    using A = batch_norm_acc_t<P>;
    const A keep = static_cast<A>(1 - momentum), take = static_cast<A>(momentum), scale = static_cast<A>(unbias);
    for (std::int64_t c = grid_stride_begin(); c < C; c += grid_stride_step()) {
        if (running_mean != nullptr) {
            P& r = running_mean[c * mean_stride];
            r = static_cast<P>(keep * static_cast<A>(r) + take * static_cast<A>(mean[c]));
        }
        if (running_var != nullptr) {
            P& r = running_var[c * var_stride];
            r = static_cast<P>(keep * static_cast<A>(r) + take * static_cast<A>(var[c]) * scale);
        }
    }
}

// ---- Launchers ----
// P is never deduced from the pointers (nullptr has no pointee type): it is T unless given.
template <class P>
using NoDeduce = std::type_identity_t<P>;

template <class T>
void launch_batch_norm_stats(const T* x, std::int64_t N, std::int64_t C, std::int64_t S,
                             NoDeduce<opmath_t<T>>* mean, NoDeduce<opmath_t<T>>* var, Stream stream) {
    check_batch_norm_geometry("launch_batch_norm_stats", N, C, S);
    if (C == 0) return;
    auto kernel = &batch_norm_stats_kernel<T>;
    PNEUMA_LAUNCH(kernel, channel_grid(C), kBatchNormChannelThreads, 0, stream, x, N, C, S, mean, var);
}

// coefficients: 2 * C elements of scratch.
template <class T, class P = T>
void launch_batch_norm_apply(const T* x, std::int64_t N, std::int64_t C, std::int64_t S,
                             NoDeduce<const opmath_t<T>>* mean, NoDeduce<const opmath_t<T>>* var, NoDeduce<const P>* weight, NoDeduce<const P>* bias, double eps,
                             opmath_t<T>* coefficients, T* y, Stream stream) {
    check_batch_norm_geometry("launch_batch_norm_apply", N, C, S);
    if (C == 0) return;
    auto coefficients_kernel = &batch_norm_coefficients_kernel<T, P>;
    PNEUMA_LAUNCH(coefficients_kernel, elementwise_blocks(C), kElementwiseThreads, 0, stream, mean, var, weight, bias, C,
                  eps, coefficients);
    const std::int64_t n = N * C * S;
    if (n == 0) return;
    auto apply_kernel = &batch_norm_apply_kernel<T>;
    PNEUMA_LAUNCH(apply_kernel, elementwise_blocks(n), kElementwiseThreads, 0, stream, x,
                  static_cast<const opmath_t<T>*>(coefficients), N, C, S, y);
}

// x, mean, var are read only for dx or dweight (nullptr otherwise); terms: C entries of scratch
// when dx is wanted.
template <class T, class P = T>
void launch_batch_norm_backward(const T* x, const T* g, std::int64_t N, std::int64_t C, std::int64_t S,
                                NoDeduce<const opmath_t<T>>* mean, NoDeduce<const opmath_t<T>>* var,
                                NoDeduce<const P>* weight, double eps,
                                bool training, T* dx, NoDeduce<P>* dweight, NoDeduce<P>* dbias,
                                BatchNormGradTerms<batch_norm_acc_t<T>>* terms, Stream stream) {
    check_batch_norm_geometry("launch_batch_norm_backward", N, C, S);
    if (C == 0) return;
    if (dx != nullptr && terms == nullptr) {
        throw std::invalid_argument("launch_batch_norm_backward: the input gradient needs a terms buffer");
    }
    auto reduce = &batch_norm_backward_reduce_kernel<T, P>;
    PNEUMA_LAUNCH(reduce, channel_grid(C), kBatchNormChannelThreads, 0, stream, x, g, N, C, S, mean, var, weight, eps,
                  training, dweight, dbias, dx != nullptr ? terms : nullptr);
    const std::int64_t n = N * C * S;
    if (dx == nullptr || n == 0) return;
    auto input = &batch_norm_backward_input_kernel<T>;
    PNEUMA_LAUNCH(input, elementwise_blocks(n), kElementwiseThreads, 0, stream, x, g, mean,
                  static_cast<const BatchNormGradTerms<batch_norm_acc_t<T>>*>(terms), N, C, S, training, dx);
}

template <class P, class M = P>
void launch_batch_norm_update_running(P* running_mean, std::int64_t mean_stride, P* running_var, std::int64_t var_stride,
                                      NoDeduce<const M>* mean, NoDeduce<const M>* var, std::int64_t C, double momentum,
                                      std::int64_t count, Stream stream) {
    if (C <= 0 || (running_mean == nullptr && running_var == nullptr)) return;
    // PyTorch divides by count - 1 as is; count > 1 is checked in training.
    const double unbias = static_cast<double>(count) / static_cast<double>(count - 1);
    auto kernel = &batch_norm_update_running_kernel<P, M>;
    PNEUMA_LAUNCH(kernel, elementwise_blocks(C), kElementwiseThreads, 0, stream, running_mean, mean_stride, running_var,
                  var_stride, mean, var, C, momentum, unbias);
}

}  // inline namespace PNEUMA_KERNEL_ABI

}  // namespace pneuma::kern

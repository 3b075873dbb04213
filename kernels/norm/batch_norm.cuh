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
// An input with S == 1 is a contiguous [R, C] array of rows: a channels-last (NHWC) input, R =
// N * H * W, or an [N, C] one. Its statistics and gradient sums are column reductions, which the
// row kernels below compute with coalesced reads along C (the launchers taking R and C); apply and
// the input gradient are the elementwise kernels above with S = 1.
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

// ---- Row geometry ([R, C] inputs)
// Thread blocks of kRowTileChannels x kRowTileRows: threadIdx.x walks consecutive channels, so a
// warp reads 32 adjacent elements of a row, and threadIdx.y interleaves the rows of the block's
// split. blockIdx.x picks the tile of channels, blockIdx.y the split of the rows, so that a few
// channels over many rows (64 channels of 256 x 112 x 112 positions) still fill the GPU. Each block
// writes one partial per channel for its split; a second kernel adds the splits per channel in
// order: deterministic, as the one-block-per-channel reductions.
inline constexpr unsigned kRowTileChannels = 32;
inline constexpr unsigned kRowTileRows = 8;
inline constexpr std::int64_t kRowsPerSplit = 64;
inline constexpr std::int64_t kMaxRowSplits = 512;

inline unsigned row_splits(std::int64_t R) {
    const std::int64_t splits = (R + kRowsPerSplit - 1) / kRowsPerSplit;
    return static_cast<unsigned>(splits < 1 ? 1 : (splits < kMaxRowSplits ? splits : kMaxRowSplits));
}

inline unsigned row_channel_tiles(std::int64_t C) {
    return static_cast<unsigned>((C + kRowTileChannels - 1) / kRowTileChannels);
}

struct RowRange {
    std::int64_t begin, end;
};

// The rows of split `split` of R rows cut into `splits` (the last ones may be empty).
PNEUMA_HD inline RowRange row_split_range(std::int64_t R, std::int64_t splits, std::int64_t split) {
    const std::int64_t per = (R + splits - 1) / splits;
    const std::int64_t begin = split * per < R ? split * per : R;
    return {begin, begin + per < R ? begin + per : R};
}

// How many rows of a split thread row `t` (threadIdx.y) visits.
PNEUMA_HD inline std::int64_t rows_of_thread(const RowRange& range, unsigned t) {
    const std::int64_t n = range.end - range.begin - static_cast<std::int64_t>(t);
    return n > 0 ? (n + kRowTileRows - 1) / kRowTileRows : 0;
}

// One split's partial of a column: for the statistics, the sum of its values and of their squared
// deviations from its own mean; for the backward, sum(g) and sum(g * (x - mean)).
template <class A>
struct BatchNormColumnPartial {
    A first, second;
};

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

// ---- Row kernels ([R, C] inputs; launched with kRowTileChannels x kRowTileRows threads) ----

// Per split and channel: the sum of the values and of their squared deviations from the split's
// mean. Each thread shifts its values by its first one, so that its sums of squares do not cancel
// when |mean| >> std; the threads of a column then combine as the splits do in
// batch_norm_rows_stats_kernel.
template <class T>
__global__ void batch_norm_rows_moments_kernel(const T* x, std::int64_t R, std::int64_t C,
                                               BatchNormColumnPartial<batch_norm_acc_t<T>>* partials) {
    using A = batch_norm_acc_t<T>;
    PNEUMA_SHARED(A, thread_sums, kRowTileRows * kRowTileChannels);
    PNEUMA_SHARED(A, thread_squares, kRowTileRows * kRowTileChannels);
    const std::int64_t c = static_cast<std::int64_t>(blockIdx.x) * kRowTileChannels + threadIdx.x;
    const RowRange range = row_split_range(R, gridDim.y, blockIdx.y);
    A shift = 0, sum = 0, squares = 0;
    std::int64_t count = 0;
    if (c < C) {
        std::int64_t r = range.begin + threadIdx.y;
        if (r < range.end) shift = static_cast<A>(x[r * C + c]);
        for (; r < range.end; r += kRowTileRows) {
            const A d = static_cast<A>(x[r * C + c]) - shift;
            sum += d;
            squares += d * d;
            ++count;
        }
    }
    const unsigned slot = threadIdx.y * kRowTileChannels + threadIdx.x;
    thread_sums[slot] = static_cast<A>(count) * shift + sum;
    thread_squares[slot] = count > 0 ? squares - sum * sum / static_cast<A>(count) : A(0);
    __syncthreads();
    if (threadIdx.y != 0 || c >= C) return;
    A total = 0;
    for (unsigned t = 0; t < kRowTileRows; ++t) total += thread_sums[t * kRowTileChannels + threadIdx.x];
    const std::int64_t rows = range.end - range.begin;
    const A mean = rows > 0 ? total / static_cast<A>(rows) : A(0);
    A deviation = 0;
    for (unsigned t = 0; t < kRowTileRows; ++t) {
        const std::int64_t n = rows_of_thread(range, t);
        if (n == 0) continue;
        const A d = thread_sums[t * kRowTileChannels + threadIdx.x] / static_cast<A>(n) - mean;
        deviation += thread_squares[t * kRowTileChannels + threadIdx.x] + static_cast<A>(n) * d * d;
    }
    partials[static_cast<std::int64_t>(blockIdx.y) * C + c] = {total, deviation};
}

// Mean and biased variance per channel from the splits' partials, added in split order: the mean
// is the total over R, the squared deviations from it each split's own plus n_s (mean_s - mean)^2
// (Chan et al.), as the CPU loops combine their blocks.
template <class T>
__global__ void batch_norm_rows_stats_kernel(const BatchNormColumnPartial<batch_norm_acc_t<T>>* partials,
                                             std::int64_t R, std::int64_t C, std::int64_t splits, opmath_t<T>* mean,
                                             opmath_t<T>* var) {
    using A = batch_norm_acc_t<T>;
    for (std::int64_t c = grid_stride_begin(); c < C; c += grid_stride_step()) {
        A total = 0;
        for (std::int64_t s = 0; s < splits; ++s) total += partials[s * C + c].first;
        const A mu = total / static_cast<A>(R);
        A deviation = 0;
        for (std::int64_t s = 0; s < splits; ++s) {
            const RowRange range = row_split_range(R, splits, s);
            const std::int64_t n = range.end - range.begin;
            if (n == 0) continue;
            const A d = partials[s * C + c].first / static_cast<A>(n) - mu;
            deviation += partials[s * C + c].second + static_cast<A>(n) * d * d;
        }
        mean[c] = static_cast<opmath_t<T>>(mu);
        var[c] = static_cast<opmath_t<T>>(deviation / static_cast<A>(R));
    }
}

// Per split and channel: sum(g) and, when x is given, sum(g * (x - mean)).
template <class T>
__global__ void batch_norm_rows_grad_sums_kernel(const T* x, const T* g, std::int64_t R, std::int64_t C,
                                                 const opmath_t<T>* mean,
                                                 BatchNormColumnPartial<batch_norm_acc_t<T>>* partials) {
    using A = batch_norm_acc_t<T>;
    PNEUMA_SHARED(A, thread_g, kRowTileRows * kRowTileChannels);
    PNEUMA_SHARED(A, thread_dot, kRowTileRows * kRowTileChannels);
    const std::int64_t c = static_cast<std::int64_t>(blockIdx.x) * kRowTileChannels + threadIdx.x;
    const RowRange range = row_split_range(R, gridDim.y, blockIdx.y);
    A sum_g = 0, dot = 0;
    if (c < C) {
        const A mu = x != nullptr ? static_cast<A>(mean[c]) : A(0);
        for (std::int64_t r = range.begin + threadIdx.y; r < range.end; r += kRowTileRows) {
            const A gv = static_cast<A>(g[r * C + c]);
            sum_g += gv;
            if (x != nullptr) dot += gv * (static_cast<A>(x[r * C + c]) - mu);
        }
    }
    const unsigned slot = threadIdx.y * kRowTileChannels + threadIdx.x;
    thread_g[slot] = sum_g;
    thread_dot[slot] = dot;
    __syncthreads();
    if (threadIdx.y != 0 || c >= C) return;
    A total_g = 0, total_dot = 0;
    for (unsigned t = 0; t < kRowTileRows; ++t) {
        total_g += thread_g[t * kRowTileChannels + threadIdx.x];
        total_dot += thread_dot[t * kRowTileChannels + threadIdx.x];
    }
    partials[static_cast<std::int64_t>(blockIdx.y) * C + c] = {total_g, total_dot};
}

// The splits' gradient sums added in order per channel; writes what batch_norm_backward_reduce_kernel
// writes. with_x: the partials hold sum(g * (x - mean)) and var is read.
template <class T, class P = T>
__global__ void batch_norm_rows_backward_kernel(const BatchNormColumnPartial<batch_norm_acc_t<T>>* partials,
                                                std::int64_t R, std::int64_t C, std::int64_t splits,
                                                const opmath_t<T>* var, const P* weight, double eps, bool training,
                                                bool with_x, P* dweight, P* dbias,
                                                BatchNormGradTerms<batch_norm_acc_t<T>>* terms) {
    using A = batch_norm_acc_t<T>;
    for (std::int64_t c = grid_stride_begin(); c < C; c += grid_stride_step()) {
        A sum_g = 0, dot = 0;
        for (std::int64_t s = 0; s < splits; ++s) {
            sum_g += partials[s * C + c].first;
            dot += partials[s * C + c].second;
        }
        if (dbias != nullptr) dbias[c] = static_cast<P>(sum_g);
        if (!with_x) continue;
        if (dweight != nullptr) dweight[c] = static_cast<P>(dot * batch_norm_invstd<A>(var[c], eps));
        if (terms != nullptr) {
            terms[c] = batch_norm_grad_terms<A>(var[c], weight, c, eps, training, sum_g, dot, static_cast<A>(R));
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

// Statistics of a contiguous [R, C] input (S == 1); partials: row_splits(R) * C entries of scratch.
template <class T>
void launch_batch_norm_rows_stats(const T* x, std::int64_t R, std::int64_t C, NoDeduce<opmath_t<T>>* mean,
                                  NoDeduce<opmath_t<T>>* var,
                                  BatchNormColumnPartial<batch_norm_acc_t<T>>* partials, Stream stream) {
    check_batch_norm_geometry("launch_batch_norm_rows_stats", R, C, 1);
    if (C == 0) return;
    const unsigned splits = row_splits(R);
    auto moments = &batch_norm_rows_moments_kernel<T>;
    PNEUMA_LAUNCH(moments, dim3(row_channel_tiles(C), splits), dim3(kRowTileChannels, kRowTileRows), 0, stream, x, R, C,
                  partials);
    auto stats = &batch_norm_rows_stats_kernel<T>;
    PNEUMA_LAUNCH(stats, elementwise_blocks(C), kElementwiseThreads, 0, stream,
                  static_cast<const BatchNormColumnPartial<batch_norm_acc_t<T>>*>(partials), R, C,
                  static_cast<std::int64_t>(splits), mean, var);
}

// launch_batch_norm_backward for a contiguous [R, C] input (S == 1), with row_splits(R) * C
// partials of scratch besides the terms.
template <class T, class P = T>
void launch_batch_norm_rows_backward(const T* x, const T* g, std::int64_t R, std::int64_t C,
                                     NoDeduce<const opmath_t<T>>* mean, NoDeduce<const opmath_t<T>>* var,
                                     NoDeduce<const P>* weight, double eps, bool training, T* dx, NoDeduce<P>* dweight,
                                     NoDeduce<P>* dbias, BatchNormGradTerms<batch_norm_acc_t<T>>* terms,
                                     BatchNormColumnPartial<batch_norm_acc_t<T>>* partials, Stream stream) {
    check_batch_norm_geometry("launch_batch_norm_rows_backward", R, C, 1);
    if (C == 0) return;
    if (dx != nullptr && terms == nullptr) {
        throw std::invalid_argument("launch_batch_norm_rows_backward: the input gradient needs a terms buffer");
    }
    const unsigned splits = row_splits(R);
    auto sums = &batch_norm_rows_grad_sums_kernel<T>;
    PNEUMA_LAUNCH(sums, dim3(row_channel_tiles(C), splits), dim3(kRowTileChannels, kRowTileRows), 0, stream, x, g, R,
                  C, mean, partials);
    auto finish = &batch_norm_rows_backward_kernel<T, P>;
    PNEUMA_LAUNCH(finish, elementwise_blocks(C), kElementwiseThreads, 0, stream,
                  static_cast<const BatchNormColumnPartial<batch_norm_acc_t<T>>*>(partials), R, C,
                  static_cast<std::int64_t>(splits), var, weight, eps, training, x != nullptr, dweight, dbias,
                  dx != nullptr ? terms : nullptr);
    const std::int64_t n = R * C;
    if (dx == nullptr || n == 0) return;
    auto input = &batch_norm_backward_input_kernel<T>;
    PNEUMA_LAUNCH(input, elementwise_blocks(n), kElementwiseThreads, 0, stream, x, g, mean,
                  static_cast<const BatchNormGradTerms<batch_norm_acc_t<T>>*>(terms), R, C, std::int64_t{1}, training,
                  dx);
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

// Fused soft Dice loss on logits (U-Net masks): per sample n, with p = sigmoid(x),
// dice_n = 1 - (2 sum(p t) + smooth) / (sum(p) + sum(t) + smooth), reduced over samples.
//
// Forward: each sample's features are split into chunks, one block per (sample, chunk) summing
// p t, p and t with block reductions in one read of x and t; a one-block kernel adds each
// sample's chunks in a fixed order (deterministic), keeps the three sums per sample for the
// backward and writes the loss. Backward: one elementwise kernel, d/dx and d/dt together, from
// the saved sums (loss_math.cuh's dice_factors) and one sigmoid per element.
//
// The sigmoid and the per-sample math are loss_math.cuh's, shared with the CPU loops.
#pragma once

#include <cstdint>

#include "loss_kernel_common.cuh"

namespace pneuma::kern::losses {

template <class T>
struct DiceParams {
    LossReduction reduction;
    std::int64_t samples, features;  // x and t seen as [samples, features]
    std::int64_t chunks;             // blocks per sample in the forward (dice_chunks)
    T smooth;
};

inline constexpr std::int64_t kDiceChunkElements = 16384;  // features per forward block

inline std::int64_t dice_chunks(std::int64_t features) {
    const std::int64_t chunks = (features + kDiceChunkElements - 1) / kDiceChunkElements;
    return chunks < 1 ? 1 : chunks;
}

// Elements of T the forward needs as workspace: the chunks' partial sums.
inline std::int64_t dice_workspace_size(std::int64_t samples, std::int64_t chunks) {
    return samples * chunks * kDiceSums;
}

inline namespace PNEUMA_KERNEL_ABI {

template <class T>
__global__ void dice_partials_kernel(DiceParams<T> p, const T* x, const T* t, T* partials) {
    const std::int64_t blocks = p.samples * p.chunks;
    const std::int64_t span = (p.features + p.chunks - 1) / p.chunks;
    for (std::int64_t b = blockIdx.x; b < blocks; b += gridDim.x) {
        const std::int64_t sample = b / p.chunks, chunk = b % p.chunks;
        const std::int64_t begin = chunk * span;
        const std::int64_t end = begin + span < p.features ? begin + span : p.features;
        const T* xs = x + sample * p.features;
        const T* ts = t + sample * p.features;
        T intersection = T(0), prob_sum = T(0), target_sum = T(0);
        for (std::int64_t k = begin + threadIdx.x; k < end; k += blockDim.x) {
            const T prob = logistic_parts(xs[k]).sigmoid;
            intersection += prob * ts[k];
            prob_sum += prob;
            target_sum += ts[k];
        }
        intersection = block_reduce_sum(intersection);
        prob_sum = block_reduce_sum(prob_sum);
        target_sum = block_reduce_sum(target_sum);
        if (threadIdx.x == 0) {
            partials[b * kDiceSums + 0] = intersection;
            partials[b * kDiceSums + 1] = prob_sum;
            partials[b * kDiceSums + 2] = target_sum;
        }
    }
}

// One block. sums: [samples, 3] kept for the backward; out: [samples] (none) or one element.
template <class T>
__global__ void dice_finalize_kernel(DiceParams<T> p, const T* partials, T* sums, T* out) {
    double total = 0;  // thread 0's
    for (std::int64_t s = 0; s < p.samples; ++s) {
        const T* ps = partials + s * p.chunks * kDiceSums;
        const T intersection = block_strided_sum(ps, p.chunks, kDiceSums, 0);
        const T prob_sum = block_strided_sum(ps, p.chunks, kDiceSums, 1);
        const T target_sum = block_strided_sum(ps, p.chunks, kDiceSums, 2);
        if (threadIdx.x == 0) {
            sums[s * kDiceSums + 0] = intersection;
            sums[s * kDiceSums + 1] = prob_sum;
            sums[s * kDiceSums + 2] = target_sum;
            const T loss = dice_value(intersection, prob_sum, target_sum, p.smooth);
            if (p.reduction == LossReduction::None) out[s] = loss;
            total += loss;
        }
    }
    if (threadIdx.x == 0 && p.reduction != LossReduction::None) {
        // An empty mean is NaN, as torch's.
        out[0] = static_cast<T>(p.reduction == LossReduction::Mean ? total / static_cast<double>(p.samples) : total);
    }
}

// grad_out: samples elements (none) or one. dx / dt may be nullptr when not needed.
template <class T>
__global__ void dice_backward_kernel(DiceParams<T> p, const T* x, const T* t, const T* sums, const T* grad_out, T* dx,
                                     T* dt) {
    const std::int64_t n = p.samples * p.features;
    const std::int64_t step = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
    for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += step) {
        const std::int64_t s = i / p.features;
        const T g = p.reduction == LossReduction::None
                        ? grad_out[s]
                        : (p.reduction == LossReduction::Mean ? grad_out[0] / static_cast<T>(p.samples) : grad_out[0]);
        const T* ss = sums + s * kDiceSums;
        const DiceFactors<T> f = dice_factors(ss[0], ss[1], ss[2], p.smooth);
        const T prob = logistic_parts(x[i]).sigmoid;
        if (dx) dx[i] = g * dice_derivative(t[i], f) * (prob * (T(1) - prob));
        if (dt) dt[i] = g * dice_derivative(prob, f);
    }
}

// x, t: contiguous [samples, features]. p.chunks must be dice_chunks(p.features); workspace:
// dice_workspace_size(samples, chunks) elements. sums: [samples, 3]; out: samples (none) or one.
template <class T>
void launch_dice_forward(const DiceParams<T>& p, const T* x, const T* t, T* sums, T* out, T* workspace,
                         Stream stream) {
    check_size("launch_dice_forward", "sample count", p.samples);
    check_size("launch_dice_forward", "feature count", p.features);
    if (p.samples > 0) {
        PNEUMA_LAUNCH(dice_partials_kernel<T>, dim3(row_grid(p.samples * p.chunks)), dim3(kElementBlockThreads), 0,
                      stream, p, x, t, workspace);
    } else if (p.reduction == LossReduction::None) {
        return;
    }
    PNEUMA_LAUNCH(dice_finalize_kernel<T>, dim3(1), dim3(kRowBlockThreads), 0, stream, p,
                  static_cast<const T*>(workspace), sums, out);
}

template <class T>
void launch_dice_backward(const DiceParams<T>& p, const T* x, const T* t, const T* sums, const T* grad_out, T* dx,
                          T* dt, Stream stream) {
    check_size("launch_dice_backward", "sample count", p.samples);
    check_size("launch_dice_backward", "feature count", p.features);
    const std::int64_t n = p.samples * p.features;
    if (n == 0 || (dx == nullptr && dt == nullptr)) return;
    PNEUMA_LAUNCH(dice_backward_kernel<T>, dim3(static_cast<unsigned>(element_blocks(n))), dim3(kElementBlockThreads),
                  0, stream, p, x, t, sums, grad_out, dx, dt);
}

}  // inline namespace PNEUMA_KERNEL_ABI

}  // namespace pneuma::kern::losses

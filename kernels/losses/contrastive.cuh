// Fused kernels of the contrastive family (NT-Xent, StableRep's multi-positive contrastive loss,
// SupCon) over a similarity matrix S = Z Z^T that the caller computes with one GEMM (cuBLAS on
// the GPU).
//
// Forward, one block per anchor row i: the masked row maximum (j != i), the sum of shifted
// exponentials, the number of positives (group_j == group_i, j != i) and the sum of their
// logits, all with block reductions in one read of the row; thread 0 writes the row's
// log-sum-exp, positive count and loss. A one-block kernel then sums the anchors' losses in a
// fixed order and writes the scalar loss.
//
// Backward, one block per row i: the gradient of the total with respect to S_ij is
// a_i / tau (softmax_ij - [j in P_i] / |P_i|), recomputed from S_ij and the saved log-sum-exp.
// Because S is symmetric, block i can also form the mirrored term that row j contributes to
// S_ji = S_ij from row j's saved statistics alone, and write G = dS + dS^T directly: the gradient
// with respect to Z is then one more GEMM, G Z. Block i reads only row i of S and writes only
// row i of G, so G may overwrite S: the whole loss keeps a single N x N buffer.
//
// Per-element math is kernels/losses/loss_math.cuh, shared with the CPU reference loops.
#pragma once

#include <cstdint>

#include "loss_kernel_common.cuh"

namespace pneuma::kern::losses {

template <class T>
struct ContrastiveParams {
    ContrastiveMean mean;
    std::int64_t anchors;  // M: S is [M, M]
    T inv_tau;
    T scale;  // MeanOverAnchorsWithPositives only (SupCon's tau / base_tau)
};

inline namespace PNEUMA_KERNEL_ABI {

// lse, positives, row_loss: [M] each.
template <class T>
__global__ void contrastive_forward_kernel(ContrastiveParams<T> p, const T* s, const std::int64_t* groups, T* lse,
                                           T* positives, T* row_loss) {
    const std::int64_t m = p.anchors;
    for (std::int64_t i = blockIdx.x; i < m; i += gridDim.x) {
        const T* row = s + i * m;
        const std::int64_t gi = groups[i];
        T local_max = -static_cast<T>(INFINITY);
        T local_positive_sum = T(0);
        T local_count = T(0);
        for (std::int64_t j = threadIdx.x; j < m; j += blockDim.x) {
            if (j == i) continue;
            const T l = row[j] * p.inv_tau;
            local_max = nan_max(local_max, l);
            if (groups[j] == gi) {
                local_positive_sum += l;
                local_count += T(1);
            }
        }
        const T row_max = block_reduce_max(local_max);
        const T count = block_reduce_sum(local_count);
        const T positive_sum = block_reduce_sum(local_positive_sum);
        // count is uniform across the block, so the reduction below is reached by all or none.
        T row_lse = T(0);
        if (count > T(0)) {
            T local_sum = T(0);
            for (std::int64_t j = threadIdx.x; j < m; j += blockDim.x) {
                if (j != i) local_sum += lexp(row[j] * p.inv_tau - row_max);
            }
            row_lse = row_max + llog(block_reduce_sum(local_sum));
        }
        if (threadIdx.x == 0) {
            lse[i] = row_lse;
            positives[i] = count;
            row_loss[i] = contrastive_row_loss(row_lse, positive_sum, count);
        }
    }
}

// One block: totals[0] = sum of the anchors' losses, totals[1] = anchors with a positive;
// out[0] = the loss.
template <class T>
__global__ void contrastive_finalize_kernel(ContrastiveParams<T> p, const T* row_loss, const T* positives, T* totals,
                                            T* out) {
    T local_loss = T(0), local_with = T(0);
    for (std::int64_t i = threadIdx.x; i < p.anchors; i += blockDim.x) {
        local_loss += row_loss[i];
        local_with += positives[i] > T(0) ? T(1) : T(0);
    }
    const T loss_sum = block_reduce_sum(local_loss);
    const T with_positives = block_reduce_sum(local_with);
    if (threadIdx.x == 0) {
        totals[0] = loss_sum;
        totals[1] = with_positives;
        out[0] = contrastive_anchor_weight(p.mean, p.anchors, with_positives, p.scale) * loss_sum;
    }
}

// grad_s = d(loss)/dS * grad_out[0] (symmetric: plus its transpose). grad_s may equal s.
template <class T>
__global__ void contrastive_backward_kernel(ContrastiveParams<T> p, const T* s, const std::int64_t* groups,
                                            const T* lse, const T* positives, const T* totals, const T* grad_out,
                                            bool symmetric, T* grad_s) {
    const std::int64_t m = p.anchors;
    const T coefficient = grad_out[0] * contrastive_anchor_weight(p.mean, m, totals[1], p.scale) * p.inv_tau;
    for (std::int64_t i = blockIdx.x; i < m; i += gridDim.x) {
        const T* row = s + i * m;
        T* out = grad_s + i * m;
        const std::int64_t gi = groups[i];
        const ContrastiveAnchorGrad<T> anchor_i = contrastive_anchor_grad(positives[i], coefficient);
        for (std::int64_t j = threadIdx.x; j < m; j += blockDim.x) {
            T d = T(0);
            if (j != i) {
                const T s_ij = row[j];
                const bool positive = groups[j] == gi;
                d = contrastive_row_grad(s_ij, p.inv_tau, lse[i], positive, anchor_i);
                if (symmetric) {
                    d += contrastive_row_grad(s_ij, p.inv_tau, lse[j], positive,
                                              contrastive_anchor_grad(positives[j], coefficient));
                }
            }
            out[j] = d;
        }
    }
}

// Workspace of the forward, in elements of T: the anchors' losses.
inline std::int64_t contrastive_workspace_size(std::int64_t anchors) { return anchors; }

// s: contiguous [M, M]; groups: [M]. out: one element; lse, positives: [M]; totals: 2 — the
// last three are kept for the backward.
template <class T>
void launch_contrastive_forward(const ContrastiveParams<T>& p, const T* s, const std::int64_t* groups, T* out, T* lse,
                                T* positives, T* totals, T* workspace, Stream stream) {
    check_size("launch_contrastive_forward", "anchor count", p.anchors);
    if (p.anchors > 0) {
        PNEUMA_LAUNCH(contrastive_forward_kernel<T>, dim3(row_grid(p.anchors)), dim3(row_block_threads(p.anchors)), 0,
                      stream, p, s, groups, lse, positives, workspace);
    }
    PNEUMA_LAUNCH(contrastive_finalize_kernel<T>, dim3(1), dim3(kRowBlockThreads), 0, stream, p,
                  static_cast<const T*>(workspace), static_cast<const T*>(positives), totals, out);
}

// With symmetric (S = Z Z^T), grad_s receives dS + dS^T, and d(loss)/dZ = grad_s Z.
template <class T>
void launch_contrastive_backward(const ContrastiveParams<T>& p, const T* s, const std::int64_t* groups, const T* lse,
                                 const T* positives, const T* totals, const T* grad_out, bool symmetric, T* grad_s,
                                 Stream stream) {
    check_size("launch_contrastive_backward", "anchor count", p.anchors);
    if (p.anchors == 0) return;
    PNEUMA_LAUNCH(contrastive_backward_kernel<T>, dim3(row_grid(p.anchors)), dim3(row_block_threads(p.anchors)), 0,
                  stream, p, s, groups, lse, positives, totals, grad_out, symmetric, grad_s);
}

}  // inline namespace PNEUMA_KERNEL_ABI

}  // namespace pneuma::kern::losses

// Fused kernels of the classification and pair losses:
//   - binary losses on logits (BCE with logits with weight / pos_weight, torchvision's sigmoid
//     focal loss): one elementwise forward kernel (per-element loss, or per-block partial sums
//     for mean/sum) and one elementwise backward kernel (d/dinput and d/dtarget together);
//   - class rows (cross-entropy with class indices, weights, ignore_index and label smoothing;
//     softmax focal loss with per-class alpha): one block per row computes the row's log-sum-exp
//     and loss terms in one pass over the logits; the backward recomputes softmax from the saved
//     log-sum-exp and writes the row's gradient;
//   - cosine embedding loss: one block per pair of rows, forward and backward.
// A reduced loss (mean/sum) finishes with a one-block kernel that sums the per-block or per-row
// partial results in a fixed order, so results are deterministic. Nothing leaves the device:
// the backward kernels read the upstream gradient and the forward's totals through pointers.
//
// Per-element math is kernels/losses/loss_math.cuh, shared with the CPU reference loops.
#pragma once

#include <cstdint>

#include "loss_kernel_common.cuh"

namespace pneuma::kern::losses {

// ================================================================================================
// Binary losses on logits

enum class BinaryKind : int { BceWithLogits = 0, SigmoidFocal = 1 };

template <class T>
struct BinaryLossParams {
    BinaryKind kind;
    LossReduction reduction;
    T alpha;  // focal; < 0 disables the alpha term
    T gamma;  // focal
};

template <class T>
PNEUMA_LOSS_HD BinaryTerms<T> binary_loss_terms(const BinaryLossParams<T>& p, T x, T t, T pos_weight) {
    if (p.kind == BinaryKind::SigmoidFocal) return sigmoid_focal_terms(x, t, p.alpha, p.gamma);
    return bce_with_logits_terms(x, t, pos_weight);
}

inline namespace PNEUMA_KERNEL_ABI {

// weight and pos_weight: nullptr or n elements (already broadcast to the input's shape).
// Reduction none writes out[i]; mean/sum write one partial sum per block to partials.
template <class T>
__global__ void binary_loss_forward_kernel(BinaryLossParams<T> p, const T* x, const T* t, const T* weight,
                                           const T* pos_weight, std::int64_t n, T* out, T* partials) {
    T local = T(0);
    const std::int64_t step = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
    for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += step) {
        T loss = binary_loss_terms(p, x[i], t[i], pos_weight ? pos_weight[i] : T(1)).loss;
        if (weight) loss *= weight[i];
        if (p.reduction == LossReduction::None) {
            out[i] = loss;
        } else {
            local += loss;
        }
    }
    if (p.reduction != LossReduction::None) {
        const T block_sum = block_reduce_sum(local);
        if (threadIdx.x == 0) partials[blockIdx.x] = block_sum;
    }
}

// One block: out[0] = sum of the partials (divided by n for the mean; an empty mean is NaN).
template <class T>
__global__ void binary_loss_finalize_kernel(LossReduction reduction, const T* partials, std::int64_t blocks,
                                            std::int64_t n, T* out) {
    const T total = block_strided_sum(partials, blocks, 1, 0);
    if (threadIdx.x == 0) out[0] = reduction == LossReduction::Mean ? total / static_cast<T>(n) : total;
}

// grad_out: n elements (reduction none) or one. dx / dt may be nullptr when not needed.
template <class T>
__global__ void binary_loss_backward_kernel(BinaryLossParams<T> p, const T* x, const T* t, const T* weight,
                                            const T* pos_weight, std::int64_t n, const T* grad_out, T* dx, T* dt) {
    const bool per_element = p.reduction == LossReduction::None;
    const T scale = per_element ? T(0)
                                : (p.reduction == LossReduction::Mean ? grad_out[0] / static_cast<T>(n) : grad_out[0]);
    const std::int64_t step = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
    for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += step) {
        const BinaryTerms<T> r = binary_loss_terms(p, x[i], t[i], pos_weight ? pos_weight[i] : T(1));
        T c = per_element ? grad_out[i] : scale;
        if (weight) c *= weight[i];
        if (dx) dx[i] = c * r.dx;
        if (dt) dt[i] = c * r.dt;
    }
}

// Elements of T the forward needs as workspace (partial sums; unused for reduction none).
inline std::int64_t binary_loss_workspace_size(std::int64_t n) { return element_blocks(n); }

// out: n elements (reduction none) or one. Asynchronous on the GPU, like any launch on `stream`.
template <class T>
void launch_binary_loss_forward(const BinaryLossParams<T>& p, const T* x, const T* t, const T* weight,
                                const T* pos_weight, std::int64_t n, T* out, T* workspace, Stream stream) {
    check_size("launch_binary_loss_forward", "element count", n);
    if (p.reduction == LossReduction::None && n == 0) return;
    const std::int64_t blocks = element_blocks(n);
    PNEUMA_LAUNCH(binary_loss_forward_kernel<T>, dim3(static_cast<unsigned>(blocks)), dim3(kElementBlockThreads), 0,
                  stream, p, x, t, weight, pos_weight, n, out, workspace);
    if (p.reduction != LossReduction::None) {
        PNEUMA_LAUNCH(binary_loss_finalize_kernel<T>, dim3(1), dim3(kElementBlockThreads), 0, stream, p.reduction,
                      static_cast<const T*>(workspace), blocks, n, out);
    }
}

template <class T>
void launch_binary_loss_backward(const BinaryLossParams<T>& p, const T* x, const T* t, const T* weight,
                                 const T* pos_weight, std::int64_t n, const T* grad_out, T* dx, T* dt, Stream stream) {
    check_size("launch_binary_loss_backward", "element count", n);
    if (n == 0 || (dx == nullptr && dt == nullptr)) return;
    PNEUMA_LAUNCH(binary_loss_backward_kernel<T>, dim3(static_cast<unsigned>(element_blocks(n))),
                  dim3(kElementBlockThreads), 0, stream, p, x, t, weight, pos_weight, n, grad_out, dx, dt);
}

}  // inline namespace PNEUMA_KERNEL_ABI

// ================================================================================================
// Class rows: cross-entropy with class indices, softmax focal

template <class T>
struct ClassLossParams {
    ClassLossKind kind;
    LossReduction reduction;
    std::int64_t outer, classes, inner;  // logits seen as [outer, classes, inner]
    std::int64_t ignore_index;           // cross-entropy
    T label_smoothing;                   // cross-entropy
    T gamma;                             // focal
    PNEUMA_LOSS_HD std::int64_t rows() const { return outer * inner; }
};

inline constexpr std::int64_t kClassRowStats = 4;  // nll, smooth, weight, valid per row

inline namespace PNEUMA_KERNEL_ABI {

// One block per row (grid-stride over rows). weight: [classes] class weights (cross-entropy) or
// alpha (focal), nullptr for ones. Writes lse[row], row_stats[row * 4 + (nll, smooth, weight,
// valid)], and for reduction none out[row].
template <class T>
__global__ void class_loss_forward_kernel(ClassLossParams<T> p, const T* x, const std::int64_t* target,
                                          const T* weight, T* out, T* lse, T* row_stats) {
    const bool focal = p.kind == ClassLossKind::SoftmaxFocal;
    for (std::int64_t row = blockIdx.x; row < p.rows(); row += gridDim.x) {
        const std::int64_t y = target[row];
        T* stats = row_stats + row * kClassRowStats;
        // Uniform across the block: every thread skips the reductions together.
        if (!focal && y == p.ignore_index) {
            if (threadIdx.x == 0) {
                lse[row] = T(0);
                stats[0] = stats[1] = stats[2] = stats[3] = T(0);
                if (p.reduction == LossReduction::None) out[row] = T(0);
            }
            continue;
        }
        const std::int64_t base = (row / p.inner) * p.classes * p.inner + row % p.inner;
        const T* xr = x + base;
        T local_max = -static_cast<T>(INFINITY);
        for (std::int64_t c = threadIdx.x; c < p.classes; c += blockDim.x) local_max = nan_max(local_max, xr[c * p.inner]);
        const T row_max = block_reduce_max(local_max);
        T local_sum = T(0);
        for (std::int64_t c = threadIdx.x; c < p.classes; c += blockDim.x) local_sum += lexp(xr[c * p.inner] - row_max);
        const T row_lse = row_max + llog(block_reduce_sum(local_sum));
        T smooth = T(0);
        if (!focal && p.label_smoothing > T(0)) {
            T local = T(0);
            for (std::int64_t c = threadIdx.x; c < p.classes; c += blockDim.x) {
                local += (weight ? weight[c] : T(1)) * (xr[c * p.inner] - row_lse);
            }
            smooth = -block_reduce_sum(local);
        }
        if (threadIdx.x == 0) {
            ClassRowStats<T> s{row_lse, T(0), smooth, T(1)};
            const T w_y = weight ? weight[y] : T(1);
            const T log_p_y = xr[y * p.inner] - row_lse;
            if (focal) {
                s.nll = softmax_focal_value(log_p_y, w_y, p.gamma);
            } else {
                s.nll = -w_y * log_p_y;
                s.weight = w_y;
            }
            lse[row] = row_lse;
            stats[0] = s.nll;
            stats[1] = s.smooth;
            stats[2] = s.weight;
            stats[3] = T(1);
            if (p.reduction == LossReduction::None) out[row] = class_loss_row(p.kind, s, p.label_smoothing, p.classes);
        }
    }
}

// One block: totals[0..3] = column sums of row_stats; for mean/sum, out[0] = the reduced loss.
template <class T>
__global__ void class_loss_finalize_kernel(ClassLossParams<T> p, const T* row_stats, T* totals, T* out) {
    ClassTotals<T> t;
    t.nll = block_strided_sum(row_stats, p.rows(), kClassRowStats, 0);
    t.smooth = block_strided_sum(row_stats, p.rows(), kClassRowStats, 1);
    t.weight = block_strided_sum(row_stats, p.rows(), kClassRowStats, 2);
    t.valid = block_strided_sum(row_stats, p.rows(), kClassRowStats, 3);
    if (threadIdx.x == 0) {
        totals[0] = t.nll;
        totals[1] = t.smooth;
        totals[2] = t.weight;
        totals[3] = t.valid;
        if (p.reduction != LossReduction::None) out[0] = class_loss_reduced(p.kind, p.reduction, t, p.label_smoothing, p.classes);
    }
}

// dx (x's layout) from the saved lse and totals; grad_out: rows elements (none) or one.
template <class T>
__global__ void class_loss_backward_kernel(ClassLossParams<T> p, const T* x, const std::int64_t* target,
                                           const T* weight, const T* lse, const T* totals, const T* grad_out, T* dx) {
    const ClassTotals<T> t{totals[0], totals[1], totals[2], totals[3]};
    const bool focal = p.kind == ClassLossKind::SoftmaxFocal;
    for (std::int64_t row = blockIdx.x; row < p.rows(); row += gridDim.x) {
        const std::int64_t base = (row / p.inner) * p.classes * p.inner + row % p.inner;
        const T* xr = x + base;
        T* dr = dx + base;
        const std::int64_t y = target[row];
        if (!focal && y == p.ignore_index) {
            for (std::int64_t c = threadIdx.x; c < p.classes; c += blockDim.x) dr[c * p.inner] = T(0);
            continue;
        }
        const T g = p.reduction == LossReduction::None ? grad_out[row] : grad_out[0];
        const T w_y = weight ? weight[y] : T(1);
        const ClassRowGrad<T> k = class_row_grad(p.kind, p.reduction, g, xr[y * p.inner] - lse[row], w_y, w_y, p.gamma,
                                                 t, p.label_smoothing, p.classes);
        // k.b is the same for the whole block, so the barrier inside the sum is uniform.
        const T weight_sum = k.b == T(0) ? T(0)
                                         : (weight ? block_strided_sum(weight, p.classes, 1, 0) : static_cast<T>(p.classes));
        for (std::int64_t c = threadIdx.x; c < p.classes; c += blockDim.x) {
            const T prob = lexp(xr[c * p.inner] - lse[row]);
            T d = k.a * (prob - (c == y ? T(1) : T(0)));
            if (k.b != T(0)) d += k.b * (prob * weight_sum - (weight ? weight[c] : T(1)));
            dr[c * p.inner] = d;
        }
    }
}

// Workspace of the forward, in elements of T: the per-row statistics.
template <class T>
std::int64_t class_loss_workspace_size(const ClassLossParams<T>& p) {
    return p.rows() * kClassRowStats;
}

// x: contiguous logits [outer, classes, inner]; target: rows() class indices, each in
// [0, classes) or ignore_index (validated by the caller). out: rows() elements (none) or one;
// lse: rows(); totals: 4 — both kept for the backward.
template <class T>
void launch_class_loss_forward(const ClassLossParams<T>& p, const T* x, const std::int64_t* target, const T* weight,
                               T* out, T* lse, T* totals, T* workspace, Stream stream) {
    check_size("launch_class_loss_forward", "row count", p.rows());
    check_size("launch_class_loss_forward", "class count", p.classes);
    if (p.rows() > 0) {
        PNEUMA_LAUNCH(class_loss_forward_kernel<T>, dim3(row_grid(p.rows())), dim3(row_block_threads(p.classes)), 0,
                      stream, p, x, target, weight, out, lse, workspace);
    }
    PNEUMA_LAUNCH(class_loss_finalize_kernel<T>, dim3(1), dim3(kRowBlockThreads), 0, stream, p,
                  static_cast<const T*>(workspace), totals, out);
}

template <class T>
void launch_class_loss_backward(const ClassLossParams<T>& p, const T* x, const std::int64_t* target, const T* weight,
                                const T* lse, const T* totals, const T* grad_out, T* dx, Stream stream) {
    check_size("launch_class_loss_backward", "row count", p.rows());
    if (p.rows() == 0 || p.classes == 0) return;
    PNEUMA_LAUNCH(class_loss_backward_kernel<T>, dim3(row_grid(p.rows())), dim3(row_block_threads(p.classes)), 0,
                  stream, p, x, target, weight, lse, totals, grad_out, dx);
}

}  // inline namespace PNEUMA_KERNEL_ABI

// ================================================================================================
// Cosine embedding loss: rows of a and b ([n, d]) with targets [n]

template <class T>
struct CosineRowSums {
    T dot, sq1, sq2;
};

inline namespace PNEUMA_KERNEL_ABI {

template <class T>
PNEUMA_DEVICE CosineRowSums<T> cosine_row_sums(const T* a, const T* b, std::int64_t d) {
    T dot = T(0), sq1 = T(0), sq2 = T(0);
    for (std::int64_t k = threadIdx.x; k < d; k += blockDim.x) {
        dot += a[k] * b[k];
        sq1 += a[k] * a[k];
        sq2 += b[k] * b[k];
    }
    CosineRowSums<T> s;
    s.dot = block_reduce_sum(dot);
    s.sq1 = block_reduce_sum(sq1);
    s.sq2 = block_reduce_sum(sq2);
    return s;
}

// Reduction none writes out[row]; otherwise row_values[row] for the finalize kernel.
template <class T>
__global__ void cosine_embedding_forward_kernel(LossReduction reduction, T margin, const T* a, const T* b,
                                                const T* target, std::int64_t n, std::int64_t d, T* out,
                                                T* row_values) {
    for (std::int64_t row = blockIdx.x; row < n; row += gridDim.x) {
        const CosineRowSums<T> s = cosine_row_sums(a + row * d, b + row * d, d);
        if (threadIdx.x == 0) {
            const T value = cosine_embedding_value(cosine_of(s.dot, s.sq1, s.sq2), target[row], margin);
            (reduction == LossReduction::None ? out : row_values)[row] = value;
        }
    }
}

template <class T>
__global__ void cosine_embedding_finalize_kernel(LossReduction reduction, const T* row_values, std::int64_t n, T* out) {
    const T total = block_strided_sum(row_values, n, 1, 0);
    if (threadIdx.x == 0) out[0] = reduction == LossReduction::Mean ? total / static_cast<T>(n) : total;
}

template <class T>
__global__ void cosine_embedding_backward_kernel(LossReduction reduction, T margin, const T* a, const T* b,
                                                 const T* target, std::int64_t n, std::int64_t d, const T* grad_out,
                                                 T* da, T* db) {
    const T scale = reduction == LossReduction::Mean ? grad_out[0] / static_cast<T>(n) : grad_out[0];
    for (std::int64_t row = blockIdx.x; row < n; row += gridDim.x) {
        const T* ar = a + row * d;
        const T* br = b + row * d;
        const CosineRowSums<T> s = cosine_row_sums(ar, br, d);
        const T cos = cosine_of(s.dot, s.sq1, s.sq2);
        const T g = reduction == LossReduction::None ? grad_out[row] : scale;
        const T c = g * cosine_embedding_dcos(cos, target[row], margin);
        const CosineRowFactors<T> f = cosine_row_factors(cos, s.sq1, s.sq2);
        for (std::int64_t k = threadIdx.x; k < d; k += blockDim.x) {
            if (da) da[row * d + k] = c * cosine_derivative(ar[k], br[k], f.inv_denominator, f.cos_over_sq1);
            if (db) db[row * d + k] = c * cosine_derivative(br[k], ar[k], f.inv_denominator, f.cos_over_sq2);
        }
    }
}

inline std::int64_t cosine_embedding_workspace_size(std::int64_t n) { return n; }

// a, b: contiguous [n, d]; target: [n] in T (1 / -1). out: n elements (none) or one.
template <class T>
void launch_cosine_embedding_forward(LossReduction reduction, T margin, const T* a, const T* b, const T* target,
                                     std::int64_t n, std::int64_t d, T* out, T* workspace, Stream stream) {
    check_size("launch_cosine_embedding_forward", "row count", n);
    check_size("launch_cosine_embedding_forward", "dim", d);
    if (n > 0) {
        PNEUMA_LAUNCH(cosine_embedding_forward_kernel<T>, dim3(row_grid(n)), dim3(row_block_threads(d)), 0, stream,
                      reduction, margin, a, b, target, n, d, out, workspace);
    }
    if (reduction != LossReduction::None) {
        PNEUMA_LAUNCH(cosine_embedding_finalize_kernel<T>, dim3(1), dim3(kRowBlockThreads), 0, stream, reduction,
                      static_cast<const T*>(workspace), n, out);
    }
}

template <class T>
void launch_cosine_embedding_backward(LossReduction reduction, T margin, const T* a, const T* b, const T* target,
                                      std::int64_t n, std::int64_t d, const T* grad_out, T* da, T* db, Stream stream) {
    check_size("launch_cosine_embedding_backward", "row count", n);
    if (n == 0 || (da == nullptr && db == nullptr)) return;
    PNEUMA_LAUNCH(cosine_embedding_backward_kernel<T>, dim3(row_grid(n)), dim3(row_block_threads(d)), 0, stream,
                  reduction, margin, a, b, target, n, d, grad_out, da, db);
}

}  // inline namespace PNEUMA_KERNEL_ABI

}  // namespace pneuma::kern::losses

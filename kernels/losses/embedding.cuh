// Fused kernels of the three-branch framework's class-wise embedding losses (Zunaed et al.,
// Eq. 12-13) and of their common first step, the per-class mean of L2-normalized embeddings:
//   - class means, one block per class: the class's count, and the sum of its rows, each divided
//     by max(|z_i|, 1e-12) (normalize's block reduction), scaled by 1 / count;
//   - the loss, one block: the C x d means are small, so one block walks the class pairs with
//     block reductions (norms with F.cosine_similarity's eps 1e-8, dot products) and writes the
//     scalar; its backward writes d(loss)/d(means) in the same walk;
//   - the class means' backward, one block per embedding row: the mean's gradient / count,
//     through normalize's backward.
// Absent classes (count 0) are skipped, as the CPU composition (engine/ops/loss/embedding.cpp)
// skips them. Norms and dot products accumulate in double, as normalize and sum do.
#pragma once

#include <cstdint>

#include "../normalize/normalize.cuh"
#include "loss_kernel_common.cuh"

namespace pneuma::kern::losses {

template <class T>
struct RowNorm {
    T norm;     // |row|
    T divisor;  // max(|row|, eps): row / divisor is normalize(row)
};

PNEUMA_HD inline std::int64_t embedding_loss_paths(EmbeddingLossKind kind) {
    return kind == EmbeddingLossKind::Similarity ? kSimilarityPaths : 1;
}

inline namespace PNEUMA_KERNEL_ABI {

// The L2 norm of row[0, d) by the whole block, as normalize computes it. Every thread must call it.
template <class T>
PNEUMA_DEVICE RowNorm<T> block_row_norm(const T* row, std::int64_t d, double eps) {
    double local = 0;
    for (std::int64_t k = threadIdx.x; k < d; k += blockDim.x) local += norm_power(row[k], 2.0);
    const T norm = static_cast<T>(norm_root(block_reduce_sum(local), 2.0));
    const T floor = static_cast<T>(eps);
    return {norm, norm < floor ? floor : norm};  // std::max, NaN kept
}

// out[k] = d(loss)/d(row_k) of row / max(|row|, eps), given d(loss)/d(normalized row) = g[k] * g_scale
// (normalize's backward). Each thread reads and writes only its own k, so out may equal g.
template <class T>
PNEUMA_DEVICE void block_normalize_backward(const T* row, T norm, const T* g, T g_scale, T* out, std::int64_t d,
                                            double eps) {
    double local = 0;
    for (std::int64_t k = threadIdx.x; k < d; k += blockDim.x) local += static_cast<double>(g[k] * g_scale) * row[k];
    const double norm_gradient = normalize_norm_gradient(block_reduce_sum(local), norm, eps);
    for (std::int64_t k = threadIdx.x; k < d; k += blockDim.x) {
        out[k] = normalize_input_gradient(static_cast<T>(g[k] * g_scale), row[k], norm, norm_gradient, eps, 2.0);
    }
}

// sum_k (a_k / a_divisor)(b_k / b_divisor): the dot product of the normalized rows.
template <class T>
PNEUMA_DEVICE T block_normalized_dot(const T* a, T a_divisor, const T* b, T b_divisor, std::int64_t d) {
    double local = 0;
    for (std::int64_t k = threadIdx.x; k < d; k += blockDim.x) local += static_cast<double>((a[k] / a_divisor) * (b[k] / b_divisor));
    return static_cast<T>(block_reduce_sum(local));
}

// means: [classes, d]; counts: [classes] (as T). Labels are in [0, classes) (checked by the caller).
template <class T>
__global__ void class_means_kernel(const T* z, const std::int64_t* labels, std::int64_t n, std::int64_t d,
                                   std::int64_t classes, T* means, T* counts) {
    for (std::int64_t c = blockIdx.x; c < classes; c += gridDim.x) {
        T* mean = means + c * d;
        T local_count = T(0);
        for (std::int64_t i = threadIdx.x; i < n; i += blockDim.x) local_count += labels[i] == c ? T(1) : T(0);
        const T count = block_reduce_sum(local_count);
        for (std::int64_t k = threadIdx.x; k < d; k += blockDim.x) mean[k] = T(0);
        for (std::int64_t i = 0; i < n; ++i) {
            if (labels[i] != c) continue;  // uniform: every thread reads the same label
            const T* row = z + i * d;
            const RowNorm<T> r = block_row_norm(row, d, kClassMeanNormEps);
            for (std::int64_t k = threadIdx.x; k < d; k += blockDim.x) mean[k] += row[k] / r.divisor;
        }
        const T inv_count = count > T(0) ? T(1) / count : T(0);
        for (std::int64_t k = threadIdx.x; k < d; k += blockDim.x) mean[k] *= inv_count;
        if (threadIdx.x == 0) counts[c] = count;
    }
}

// dz (z's layout) from d(loss)/d(means), one block per row of z.
template <class T>
__global__ void class_means_backward_kernel(const T* z, const std::int64_t* labels, std::int64_t n, std::int64_t d,
                                            const T* counts, const T* grad_means, T* dz) {
    for (std::int64_t i = blockIdx.x; i < n; i += gridDim.x) {
        const std::int64_t c = labels[i];
        const T inv_count = T(1) / counts[c];  // row i is one of class c's, so count >= 1
        const T* row = z + i * d;
        const RowNorm<T> r = block_row_norm(row, d, kClassMeanNormEps);
        block_normalize_backward(row, r.norm, grad_means + c * d, inv_count, dz + i * d, d, kClassMeanNormEps);
    }
}

// One block. means: [paths, classes, d] (paths: embedding_loss_paths), counts: [paths, classes].
// Every thread accumulates the same total; thread 0 writes it.
template <class T>
__global__ void embedding_loss_forward_kernel(EmbeddingLossConfig config, std::int64_t classes, std::int64_t d,
                                              const T* means, const T* counts, T* out) {
    double total = 0;
    if (config.kind == EmbeddingLossKind::Similarity) {
        for (std::int64_t c = 0; c < classes; ++c) {
            if (!(counts[c] > T(0))) continue;  // uniform branches: the block's barriers stay matched
            const T* common = means + c * d;
            const RowNorm<T> common_norm = block_row_norm(common, d, kClassCosineEps);
            for (std::int64_t path = 1; path < kSimilarityPaths; ++path) {
                if (!(counts[path * classes + c] > T(0))) continue;
                const T* other = means + (path * classes + c) * d;
                const RowNorm<T> other_norm = block_row_norm(other, d, kClassCosineEps);
                total += 1.0 - block_normalized_dot(common, common_norm.divisor, other, other_norm.divisor, d);
            }
        }
    } else {
        std::int64_t present = 0;
        for (std::int64_t c = 0; c < classes; ++c) present += counts[c] > T(0) ? 1 : 0;
        for (std::int64_t i = 0; i < classes; ++i) {
            if (!(counts[i] > T(0))) continue;
            const RowNorm<T> ni = block_row_norm(means + i * d, d, kClassCosineEps);
            for (std::int64_t j = i + 1; j < classes; ++j) {
                if (!(counts[j] > T(0))) continue;
                const RowNorm<T> nj = block_row_norm(means + j * d, d, kClassCosineEps);
                const T cos = block_normalized_dot(means + i * d, ni.divisor, means + j * d, nj.divisor, d);
                total += 2.0 * static_cast<double>(dissimilarity_value(cos, config.hinge));  // (i, j) and (j, i)
            }
        }
        if (config.reduction == LossReduction::Mean) {
            total = present >= 2 ? total / static_cast<double>(present * (present - 1)) : 0.0;
        }
    }
    if (threadIdx.x == 0) out[0] = static_cast<T>(total);
}

// One block: grad_means ([paths, classes, d], zero for absent classes) = d(loss)/d(means) * grad_out[0].
// Each thread owns the columns k = threadIdx.x + m * blockDim.x of every row, so the gradient of
// a normalized mean accumulates in place before normalize's backward turns it into the mean's.
template <class T>
__global__ void embedding_loss_backward_kernel(EmbeddingLossConfig config, std::int64_t classes, std::int64_t d,
                                               const T* means, const T* counts, const T* grad_out, T* grad_means) {
    const T g = grad_out[0];
    const std::int64_t rows = embedding_loss_paths(config.kind) * classes;
    for (std::int64_t r = 0; r < rows; ++r) {
        for (std::int64_t k = threadIdx.x; k < d; k += blockDim.x) grad_means[r * d + k] = T(0);
    }
    if (config.kind == EmbeddingLossKind::Similarity) {
        for (std::int64_t c = 0; c < classes; ++c) {
            if (!(counts[c] > T(0))) continue;
            const T* common = means + c * d;
            T* grad_common = grad_means + c * d;
            const RowNorm<T> common_norm = block_row_norm(common, d, kClassCosineEps);
            for (std::int64_t path = 1; path < kSimilarityPaths; ++path) {
                if (!(counts[path * classes + c] > T(0))) continue;
                const T* other = means + (path * classes + c) * d;
                T* grad_other = grad_means + (path * classes + c) * d;
                const RowNorm<T> other_norm = block_row_norm(other, d, kClassCosineEps);
                // The term 1 - a_n . b_n: d/d(a_n) = -b_n, d/d(b_n) = -a_n.
                for (std::int64_t k = threadIdx.x; k < d; k += blockDim.x) {
                    grad_common[k] -= g * (other[k] / other_norm.divisor);
                    grad_other[k] = -g * (common[k] / common_norm.divisor);
                }
                block_normalize_backward(other, other_norm.norm, grad_other, T(1), grad_other, d, kClassCosineEps);
            }
            block_normalize_backward(common, common_norm.norm, grad_common, T(1), grad_common, d, kClassCosineEps);
        }
        return;
    }
    std::int64_t present = 0;
    for (std::int64_t c = 0; c < classes; ++c) present += counts[c] > T(0) ? 1 : 0;
    if (present < 2) return;
    const T scale = config.reduction == LossReduction::Mean ? g / static_cast<T>(present * (present - 1)) : g;
    for (std::int64_t i = 0; i < classes; ++i) {
        if (!(counts[i] > T(0))) continue;
        const T* wi = means + i * d;
        T* grad_i = grad_means + i * d;
        const RowNorm<T> ni = block_row_norm(wi, d, kClassCosineEps);
        for (std::int64_t j = 0; j < classes; ++j) {
            if (j == i || !(counts[j] > T(0))) continue;
            const T* wj = means + j * d;
            const RowNorm<T> nj = block_row_norm(wj, d, kClassCosineEps);
            const T cos = block_normalized_dot(wi, ni.divisor, wj, nj.divisor, d);
            // cos_ij appears in the pairs (i, j) and (j, i), each d/d(w_i_n) = w_j_n.
            const T coefficient = T(2) * scale * dissimilarity_dcos(cos, config.hinge);
            for (std::int64_t k = threadIdx.x; k < d; k += blockDim.x) grad_i[k] += coefficient * (wj[k] / nj.divisor);
        }
        block_normalize_backward(wi, ni.norm, grad_i, T(1), grad_i, d, kClassCosineEps);
    }
}

// z: contiguous [n, d]; labels: [n] in [0, classes). means: [classes, d]; counts: [classes].
template <class T>
void launch_class_means(const T* z, const std::int64_t* labels, std::int64_t n, std::int64_t d, std::int64_t classes,
                        T* means, T* counts, Stream stream) {
    check_size("launch_class_means", "row count", n);
    check_size("launch_class_means", "dim", d);
    check_size("launch_class_means", "class count", classes);
    if (classes == 0) return;
    PNEUMA_LAUNCH(class_means_kernel<T>, dim3(row_grid(classes)), dim3(row_block_threads(d)), 0, stream, z, labels, n,
                  d, classes, means, counts);
}

template <class T>
void launch_class_means_backward(const T* z, const std::int64_t* labels, std::int64_t n, std::int64_t d,
                                 const T* counts, const T* grad_means, T* dz, Stream stream) {
    check_size("launch_class_means_backward", "row count", n);
    check_size("launch_class_means_backward", "dim", d);
    if (n == 0) return;
    PNEUMA_LAUNCH(class_means_backward_kernel<T>, dim3(row_grid(n)), dim3(row_block_threads(d)), 0, stream, z, labels,
                  n, d, counts, grad_means, dz);
}

// means / counts as written by launch_class_means, one [classes, d] / [classes] block per path
// (embedding_loss_paths(config.kind)). out: one element.
template <class T>
void launch_embedding_loss_forward(const EmbeddingLossConfig& config, std::int64_t classes, std::int64_t d,
                                   const T* means, const T* counts, T* out, Stream stream) {
    check_size("launch_embedding_loss_forward", "class count", classes);
    check_size("launch_embedding_loss_forward", "dim", d);
    PNEUMA_LAUNCH(embedding_loss_forward_kernel<T>, dim3(1), dim3(row_block_threads(d)), 0, stream, config, classes, d,
                  means, counts, out);
}

template <class T>
void launch_embedding_loss_backward(const EmbeddingLossConfig& config, std::int64_t classes, std::int64_t d,
                                    const T* means, const T* counts, const T* grad_out, T* grad_means, Stream stream) {
    check_size("launch_embedding_loss_backward", "class count", classes);
    check_size("launch_embedding_loss_backward", "dim", d);
    PNEUMA_LAUNCH(embedding_loss_backward_kernel<T>, dim3(1), dim3(row_block_threads(d)), 0, stream, config, classes,
                  d, means, counts, grad_out, grad_means);
}

}  // inline namespace PNEUMA_KERNEL_ABI

}  // namespace pneuma::kern::losses

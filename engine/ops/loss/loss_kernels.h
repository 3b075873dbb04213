#pragma once
// Tensor-level launches of the fused loss kernels (kernels/losses/*.cuh), with the signatures of
// loss_cpu.h plus a stream: compiled by nvcc for loss_cuda.cu and by the host compiler for the
// emulated kernel tests, which therefore run this code too (see
// engine/ops/elementwise/elementwise_kernels.h). Callers (engine/ops/loss/*.cpp) pass contiguous
// tensors of one dtype on one device; workspaces live on the outputs' device (the caching
// allocator on a GPU: stream-ordered, so they may be freed once the launches are queued).
#include "engine/core/tensor.h"
#include "engine/ops/loss/loss_cpu.h"
#include "kernels/losses/classification.cuh"
#include "kernels/losses/contrastive.cuh"
#include "kernels/losses/dice.cuh"
#include "kernels/losses/embedding.cuh"

namespace pneuma::kern {
inline namespace PNEUMA_KERNEL_ABI {

namespace loss_launch {

template <class T>
T* data_or_null(const Tensor& t) {
  return t.defined() ? t.data<T>() : nullptr;
}

template <class T>
losses::BinaryLossParams<T> binary_params(const cpu::BinaryLossConfig& c) {
  return {c.kind == cpu::BinaryLossKind::SigmoidFocal ? losses::BinaryKind::SigmoidFocal
                                                      : losses::BinaryKind::BceWithLogits,
          c.reduction, static_cast<T>(c.alpha), static_cast<T>(c.gamma)};
}

template <class T>
losses::ClassLossParams<T> class_params(const cpu::ClassLossConfig& c) {
  return {c.kind,        c.reduction,    c.outer, c.classes, c.inner, c.ignore_index, static_cast<T>(c.label_smoothing),
          static_cast<T>(c.gamma)};
}

template <class T>
losses::ContrastiveParams<T> contrastive_params(const cpu::ContrastiveConfig& c, int64_t anchors) {
  return {c.mean, anchors, static_cast<T>(c.inv_tau), static_cast<T>(c.scale)};
}

// x seen as [samples, features] (dim 0 against the rest).
template <class T>
losses::DiceParams<T> dice_params(losses::LossReduction reduction, double smooth, const Tensor& x) {
  const int64_t samples = x.size(0), features = samples == 0 ? 0 : x.numel() / samples;
  return {reduction, samples, features, losses::dice_chunks(features), static_cast<T>(smooth)};
}

}  // namespace loss_launch

// ---- BCE with logits / sigmoid focal: out is x's shape (reduction none) or 0-d.

inline void run_binary_loss_forward(const cpu::BinaryLossConfig& config, const Tensor& x, const Tensor& t,
                                    const Tensor& weight, const Tensor& pos_weight, const Tensor& out, Stream stream) {
  const int64_t n = x.numel();
  const Tensor workspace = Tensor::empty(Shape{losses::binary_loss_workspace_size(n)}, x.dtype(), out.device());
  dispatch_floating(x.dtype(), "binary loss (CUDA)", [&]<class T>() {
    losses::launch_binary_loss_forward<T>(loss_launch::binary_params<T>(config), x.data<T>(), t.data<T>(),
                                          loss_launch::data_or_null<T>(weight),
                                          loss_launch::data_or_null<T>(pos_weight), n, out.data<T>(),
                                          workspace.data<T>(), stream);
  });
}

// dx / dt (x's shape) may be undefined when not needed; g: out's shape.
inline void run_binary_loss_backward(const cpu::BinaryLossConfig& config, const Tensor& x, const Tensor& t,
                                     const Tensor& weight, const Tensor& pos_weight, const Tensor& g, const Tensor& dx,
                                     const Tensor& dt, Stream stream) {
  const Tensor gd = g.detach().contiguous();
  dispatch_floating(x.dtype(), "binary loss backward (CUDA)", [&]<class T>() {
    losses::launch_binary_loss_backward<T>(loss_launch::binary_params<T>(config), x.data<T>(), t.data<T>(),
                                           loss_launch::data_or_null<T>(weight),
                                           loss_launch::data_or_null<T>(pos_weight), x.numel(), gd.data<T>(),
                                           loss_launch::data_or_null<T>(dx), loss_launch::data_or_null<T>(dt), stream);
  });
}

// ---- cross-entropy with class indices / softmax focal: lse [rows] and totals [4] for the backward.

inline void run_class_loss_forward(const cpu::ClassLossConfig& config, const Tensor& x, const Tensor& target,
                                   const Tensor& weight, const Tensor& out, const Tensor& lse, const Tensor& totals,
                                   Stream stream) {
  dispatch_floating(x.dtype(), "class loss (CUDA)", [&]<class T>() {
    const losses::ClassLossParams<T> p = loss_launch::class_params<T>(config);
    const Tensor workspace = Tensor::empty(Shape{losses::class_loss_workspace_size(p)}, x.dtype(), out.device());
    losses::launch_class_loss_forward<T>(p, x.data<T>(), target.data<int64_t>(), loss_launch::data_or_null<T>(weight),
                                         out.data<T>(), lse.data<T>(), totals.data<T>(), workspace.data<T>(), stream);
  });
}

inline void run_class_loss_backward(const cpu::ClassLossConfig& config, const Tensor& x, const Tensor& target,
                                    const Tensor& weight, const Tensor& lse, const Tensor& totals, const Tensor& g,
                                    const Tensor& dx, Stream stream) {
  const Tensor gd = g.detach().contiguous();
  dispatch_floating(x.dtype(), "class loss backward (CUDA)", [&]<class T>() {
    losses::launch_class_loss_backward<T>(loss_launch::class_params<T>(config), x.data<T>(), target.data<int64_t>(),
                                          loss_launch::data_or_null<T>(weight), lse.data<T>(), totals.data<T>(),
                                          gd.data<T>(), dx.data<T>(), stream);
  });
}

// ---- contrastive family over S ([M, M]); groups: int64 [M].

inline void run_contrastive_forward(const cpu::ContrastiveConfig& config, const Tensor& s, const Tensor& groups,
                                    const Tensor& out, const Tensor& lse, const Tensor& positives, const Tensor& totals,
                                    Stream stream) {
  const int64_t m = s.size(0);
  const Tensor workspace = Tensor::empty(Shape{losses::contrastive_workspace_size(m)}, s.dtype(), out.device());
  dispatch_floating(s.dtype(), "contrastive loss (CUDA)", [&]<class T>() {
    losses::launch_contrastive_forward<T>(loss_launch::contrastive_params<T>(config, m), s.data<T>(),
                                          groups.data<int64_t>(), out.data<T>(), lse.data<T>(), positives.data<T>(),
                                          totals.data<T>(), workspace.data<T>(), stream);
  });
}

// grad_s = d(out)/dS * g (symmetric: plus its transpose); grad_s may be s.
inline void run_contrastive_backward(const cpu::ContrastiveConfig& config, const Tensor& s, const Tensor& groups,
                                     const Tensor& lse, const Tensor& positives, const Tensor& totals, const Tensor& g,
                                     bool symmetric, const Tensor& grad_s, Stream stream) {
  const Tensor gd = g.detach().contiguous();
  dispatch_floating(s.dtype(), "contrastive loss backward (CUDA)", [&]<class T>() {
    losses::launch_contrastive_backward<T>(loss_launch::contrastive_params<T>(config, s.size(0)), s.data<T>(),
                                           groups.data<int64_t>(), lse.data<T>(), positives.data<T>(), totals.data<T>(),
                                           gd.data<T>(), symmetric, grad_s.data<T>(), stream);
  });
}

// The whole loss on embeddings z ([M, d], contiguous) with the one N x N buffer s: s = z z^T by
// gemm(a, b, out) (cuBLAS on a GPU), then the fused row kernel, which leaves s as it is.
template <class Gemm>
void run_contrastive_embeddings_forward(const cpu::ContrastiveConfig& config, const Tensor& z, const Tensor& groups,
                                        const Tensor& out, const Tensor& s, const Tensor& lse, const Tensor& positives,
                                        const Tensor& totals, Gemm&& gemm, Stream stream) {
  gemm(z, z.transpose(0, 1), s);
  run_contrastive_forward(config, s, groups, out, lse, positives, totals, stream);
}

// dz = (dS + dS^T) z. The symmetric gradient overwrites s (its block reads and writes only its own
// row), so s no longer holds z z^T afterwards.
template <class Gemm>
void run_contrastive_embeddings_backward(const cpu::ContrastiveConfig& config, const Tensor& z, const Tensor& s,
                                         const Tensor& groups, const Tensor& lse, const Tensor& positives,
                                         const Tensor& totals, const Tensor& g, const Tensor& dz, Gemm&& gemm,
                                         Stream stream) {
  run_contrastive_backward(config, s, groups, lse, positives, totals, g, /*symmetric=*/true, s, stream);
  gemm(s, z, dz);
}

// ---- cosine embedding: x1, x2 [N, D]; target [N] of x1's dtype; out [N] (none) or one element.

inline void run_cosine_embedding_forward(losses::LossReduction reduction, double margin, const Tensor& x1,
                                         const Tensor& x2, const Tensor& target, const Tensor& out, Stream stream) {
  const int64_t n = x1.size(0), d = x1.size(1);
  const Tensor workspace = Tensor::empty(Shape{losses::cosine_embedding_workspace_size(n)}, x1.dtype(), out.device());
  dispatch_floating(x1.dtype(), "cosine_embedding_loss (CUDA)", [&]<class T>() {
    losses::launch_cosine_embedding_forward<T>(reduction, static_cast<T>(margin), x1.data<T>(), x2.data<T>(),
                                               target.data<T>(), n, d, out.data<T>(), workspace.data<T>(), stream);
  });
}

inline void run_cosine_embedding_backward(losses::LossReduction reduction, double margin, const Tensor& x1,
                                          const Tensor& x2, const Tensor& target, const Tensor& g, const Tensor& dx1,
                                          const Tensor& dx2, Stream stream) {
  const Tensor gd = g.detach().contiguous();
  dispatch_floating(x1.dtype(), "cosine_embedding_loss backward (CUDA)", [&]<class T>() {
    losses::launch_cosine_embedding_backward<T>(reduction, static_cast<T>(margin), x1.data<T>(), x2.data<T>(),
                                                target.data<T>(), x1.size(0), x1.size(1), gd.data<T>(),
                                                loss_launch::data_or_null<T>(dx1), loss_launch::data_or_null<T>(dx2),
                                                stream);
  });
}

// ---- class-wise embedding losses

// means ([C, d]) and counts ([C], z's dtype) of z's ([n, d]) L2-normalized rows per class; labels
// int64 [n] in [0, C).
inline void run_class_means(const Tensor& z, const Tensor& labels, const Tensor& means, const Tensor& counts,
                            Stream stream) {
  dispatch_floating(z.dtype(), "class_mean_embeddings (CUDA)", [&]<class T>() {
    losses::launch_class_means<T>(z.data<T>(), labels.data<int64_t>(), z.size(0), z.size(1), means.size(0),
                                  means.data<T>(), counts.data<T>(), stream);
  });
}

// dz ([n, d]) from d(loss)/d(means) ([C, d]).
inline void run_class_means_backward(const Tensor& z, const Tensor& labels, const Tensor& counts,
                                     const Tensor& grad_means, const Tensor& dz, Stream stream) {
  const Tensor gd = grad_means.detach().contiguous();
  dispatch_floating(z.dtype(), "class_mean_embeddings backward (CUDA)", [&]<class T>() {
    losses::launch_class_means_backward<T>(z.data<T>(), labels.data<int64_t>(), z.size(0), z.size(1), counts.data<T>(),
                                           gd.data<T>(), dz.data<T>(), stream);
  });
}

// means: [paths, C, d] and counts: [paths, C] (paths: losses::embedding_loss_paths), out: 0-d.
inline void run_embedding_loss_forward(const losses::EmbeddingLossConfig& config, const Tensor& means,
                                       const Tensor& counts, const Tensor& out, Stream stream) {
  dispatch_floating(means.dtype(), "embedding loss (CUDA)", [&]<class T>() {
    losses::launch_embedding_loss_forward<T>(config, means.size(1), means.size(2), means.data<T>(), counts.data<T>(),
                                             out.data<T>(), stream);
  });
}

// grad_means: means' shape.
inline void run_embedding_loss_backward(const losses::EmbeddingLossConfig& config, const Tensor& means,
                                        const Tensor& counts, const Tensor& g, const Tensor& grad_means,
                                        Stream stream) {
  const Tensor gd = g.detach().contiguous();
  dispatch_floating(means.dtype(), "embedding loss backward (CUDA)", [&]<class T>() {
    losses::launch_embedding_loss_backward<T>(config, means.size(1), means.size(2), means.data<T>(), counts.data<T>(),
                                              gd.data<T>(), grad_means.data<T>(), stream);
  });
}

// ---- soft Dice on logits: x, t [N, ...]; sums [N, 3] kept for the backward; out [N] or 0-d.

inline void run_dice_forward(losses::LossReduction reduction, double smooth, const Tensor& x, const Tensor& t,
                             const Tensor& out, const Tensor& sums, Stream stream) {
  dispatch_floating(x.dtype(), "dice_loss (CUDA)", [&]<class T>() {
    const losses::DiceParams<T> p = loss_launch::dice_params<T>(reduction, smooth, x);
    const Tensor workspace = Tensor::empty(Shape{losses::dice_workspace_size(p.samples, p.chunks)}, x.dtype(), out.device());
    losses::launch_dice_forward<T>(p, x.data<T>(), t.data<T>(), sums.data<T>(), out.data<T>(), workspace.data<T>(),
                                   stream);
  });
}

// dx / dt (x's shape) may be undefined when not needed; g: out's shape.
inline void run_dice_backward(losses::LossReduction reduction, double smooth, const Tensor& x, const Tensor& t,
                              const Tensor& sums, const Tensor& g, const Tensor& dx, const Tensor& dt, Stream stream) {
  const Tensor gd = g.detach().contiguous();
  dispatch_floating(x.dtype(), "dice_loss backward (CUDA)", [&]<class T>() {
    losses::launch_dice_backward<T>(loss_launch::dice_params<T>(reduction, smooth, x), x.data<T>(), t.data<T>(),
                                    sums.data<T>(), gd.data<T>(), loss_launch::data_or_null<T>(dx),
                                    loss_launch::data_or_null<T>(dt), stream);
  });
}

}  // inline namespace PNEUMA_KERNEL_ABI
}  // namespace pneuma::kern

#pragma once
// CPU reference loops of the fused losses, float32 and float64. Every per-element and
// per-row expression is the kernels' (kernels/losses/loss_math.cuh); sums over rows and
// elements accumulate in double in a fixed order.
#include "engine/core/tensor.h"
#include "kernels/losses/loss_math.cuh"

namespace pneuma::cpu {

using kern::losses::ClassLossKind;
using kern::losses::ContrastiveMean;
using kern::losses::LossReduction;

// ---- binary losses on logits (BCE with logits, sigmoid focal)

enum class BinaryLossKind { BceWithLogits, SigmoidFocal };

struct BinaryLossConfig {
  BinaryLossKind kind = BinaryLossKind::BceWithLogits;
  LossReduction reduction = LossReduction::Mean;
  double alpha = 0.25;  // focal only; < 0 disables the alpha term
  double gamma = 2.0;   // focal only
};

// x, t: contiguous, same shape and dtype; weight, pos_weight: contiguous with x's shape or
// undefined. out: x's shape (reduction none) or 0-d. unit_dx / unit_dt (x's shape, or undefined):
// each element's d(weighted loss)/dx and /dt, written in the same pass, so that the backward is a
// scaling (binary_loss_backward_saved) instead of a second evaluation of the transcendentals.
void binary_loss_forward(const BinaryLossConfig& config, const Tensor& x, const Tensor& t, const Tensor& weight,
                         const Tensor& pos_weight, const Tensor& out, const Tensor& unit_dx = Tensor(),
                         const Tensor& unit_dt = Tensor());
// grad = unit * g (reduction none: elementwise; mean: g / numel; sum: g).
void binary_loss_backward_saved(LossReduction reduction, const Tensor& unit, const Tensor& g, const Tensor& grad);
// The backward from the inputs alone, as the fused kernel computes it: g is the gradient of
// out; dx / dt (x's shape, contiguous) may be undefined when not needed.
void binary_loss_backward(const BinaryLossConfig& config, const Tensor& x, const Tensor& t, const Tensor& weight,
                          const Tensor& pos_weight, const Tensor& g, const Tensor& dx, const Tensor& dt);

// ---- class rows (cross-entropy with class indices, softmax focal)

// Logits seen as [outer, classes, inner]; a row is one (outer, inner) pair, its target at
// row = outer_index * inner + inner_index.
struct ClassLossConfig {
  ClassLossKind kind = ClassLossKind::CrossEntropy;
  LossReduction reduction = LossReduction::Mean;
  int64_t outer = 1, classes = 1, inner = 1;
  int64_t ignore_index = -100;  // cross-entropy only
  double label_smoothing = 0;   // cross-entropy only
  double gamma = 2.0;           // focal only
  int64_t rows() const { return outer * inner; }
};

// x: contiguous logits; target: contiguous int64 with rows() entries, each in [0, classes) or
// ignore_index (checked by the caller); weight: [classes] class weights (cross-entropy) or
// alpha (focal), or undefined for ones. Writes out (rows() values or 0-d), lse ([rows]) and
// totals ([4]: the kern::losses::ClassTotals fields in order) for the backward.
// When probabilities (x's layout) is defined, the rows' softmax is written there too (not for
// ignored rows) and the backward reads it instead of recomputing it from lse.
void class_loss_forward(const ClassLossConfig& config, const Tensor& x, const Tensor& target, const Tensor& weight,
                        const Tensor& out, const Tensor& lse, const Tensor& totals,
                        const Tensor& probabilities = Tensor());
void class_loss_backward(const ClassLossConfig& config, const Tensor& x, const Tensor& target, const Tensor& weight,
                         const Tensor& lse, const Tensor& totals, const Tensor& g, const Tensor& dx,
                         const Tensor& probabilities = Tensor());

// ---- contrastive rows over a similarity matrix

struct ContrastiveConfig {
  ContrastiveMean mean = ContrastiveMean::MeanOverAnchors;
  double inv_tau = 10;
  double scale = 1;  // MeanOverAnchorsWithPositives only (SupCon's tau / base_tau)
};

// s: contiguous [M, M] similarities; groups: contiguous int64 [M] (anchors i, j are positives
// when groups match, i != j). Writes out (0-d), lse and positives ([M] each), totals ([2]: sum of
// anchor losses, number of anchors with a positive) and probabilities ([M, M], may alias s): row i
// holds softmax_ij over j != i (0 on the diagonal, and everywhere for an anchor without positives),
// all that the backward needs.
void contrastive_forward(const ContrastiveConfig& config, const Tensor& s, const Tensor& groups, const Tensor& out,
                         const Tensor& lse, const Tensor& positives, const Tensor& totals, const Tensor& probabilities);
// grad_s ([M, M], contiguous; may alias probabilities) = d(out)/d(s) * g, or, when symmetric,
// that plus its transpose: the gradient with respect to Z of S = Z Z^T is then grad_s @ Z.
void contrastive_backward(const ContrastiveConfig& config, const Tensor& probabilities, const Tensor& groups,
                          const Tensor& positives, const Tensor& totals, const Tensor& g, bool symmetric,
                          const Tensor& grad_s);

// The whole CPU contrastive loss on embeddings z ([M, d], contiguous): s = z z^T by GEMM into
// probabilities ([M, M]), then contrastive_forward in place. The backward forms the symmetric
// gradient of S and needs one more GEMM: dz = (dS + dS^T) z.
void contrastive_embeddings_forward(const ContrastiveConfig& config, const Tensor& z, const Tensor& groups,
                                    const Tensor& out, const Tensor& probabilities, const Tensor& lse,
                                    const Tensor& positives, const Tensor& totals);
void contrastive_embeddings_backward(const ContrastiveConfig& config, const Tensor& z, const Tensor& probabilities,
                                     const Tensor& groups, const Tensor& positives, const Tensor& totals,
                                     const Tensor& g, const Tensor& dz);

// ---- cosine embedding loss

// x1, x2: contiguous [N, D]; target: contiguous [N] of x1's dtype. out: [N] (none) or 0-d.
void cosine_embedding_forward(LossReduction reduction, double margin, const Tensor& x1, const Tensor& x2,
                              const Tensor& target, const Tensor& out);
void cosine_embedding_backward(LossReduction reduction, double margin, const Tensor& x1, const Tensor& x2,
                               const Tensor& target, const Tensor& g, const Tensor& dx1, const Tensor& dx2);

}  // namespace pneuma::cpu

#pragma once
// Losses: classification (BCE with logits, cross-entropy, sigmoid and softmax focal), the
// contrastive family (NT-Xent, StableRep's multi-positive contrastive loss, SupCon), cosine
// embedding, the three-branch framework's class-wise embedding losses, and soft Dice.
//
// Where PyTorch has the loss, semantics equal torch 1.13 (torchvision 0.14 for the focal loss),
// argument for argument and in the same order; the others follow the reference implementation
// named at each function. Float32/float64. Labels and class targets are int64. CPU or CUDA tensors
// (the fused kernels of kernels/losses/), every argument on one device: mixing devices is an error.
#include <cstdint>
#include <string_view>
#include <vector>

#include "engine/core/tensor.h"

namespace pneuma {

enum class Reduction { None, Mean, Sum };

// "none" / "mean" / "sum"; anything else throws, naming op and the value.
Reduction reduction_from_string(std::string_view name, const char* op = "loss");
const char* reduction_name(Reduction reduction);

// ---- classification

// torchvision.ops.sigmoid_focal_loss: inputs are logits, targets in [0, 1] of the same shape.
// alpha < 0 disables the class-balancing term. Differentiable in inputs and targets.
Tensor sigmoid_focal_loss(const Tensor& inputs, const Tensor& targets, double alpha = 0.25, double gamma = 2.0,
                          Reduction reduction = Reduction::None);

// Multi-class focal loss on softmax probabilities: -alpha[y] (1 - p_y)^gamma log p_y per sample,
// input [N, C] (or [N, C, d1, ...]), target int64 [N] ([N, d1, ...]) in [0, C), alpha [C] per-class
// weights (undefined: all 1). The mean is over samples (not weighted by alpha).
Tensor softmax_focal_loss(const Tensor& input, const Tensor& target, const Tensor& alpha = Tensor(),
                          double gamma = 2.0, Reduction reduction = Reduction::Mean);

// torch.nn.functional.binary_cross_entropy_with_logits: target has input's shape; weight and
// pos_weight broadcast to it (pos_weight typically [C] over the last dim). Differentiable in
// input and target; weight and pos_weight are not (as in torch).
Tensor binary_cross_entropy_with_logits(const Tensor& input, const Tensor& target, const Tensor& weight = Tensor(),
                                        Reduction reduction = Reduction::Mean, const Tensor& pos_weight = Tensor());

// torch.nn.functional.cross_entropy: input [C], [N, C] or [N, C, d1, ...]; target either class
// indices (int64 with input's shape minus the class dim; ignore_index allowed) or class
// probabilities (floating, input's shape). weight: [C]. The weighted mean divides by the sum of
// the targets' weights over non-ignored samples, label smoothing included (torch 1.13).
Tensor cross_entropy(const Tensor& input, const Tensor& target, const Tensor& weight = Tensor(),
                     int64_t ignore_index = -100, Reduction reduction = Reduction::Mean, double label_smoothing = 0.0);

// Inverse-frequency class weights n / (C * count_c) (sklearn's "balanced", the Keras class_weight
// of the seeds), from int64 labels in [0, num_classes) or from the counts themselves. A class
// with no samples is an error (its weight would be infinite).
Tensor class_weights_from_labels(const Tensor& labels, int64_t num_classes, DType dtype = DType::Float32);
Tensor class_weights_from_counts(const std::vector<int64_t>& counts, DType dtype = DType::Float32);

// ---- contrastive family (similarity S = Z Z^T, one GEMM, then fused row losses)

// SimCLR's NT-Xent: z [2N, d] holds both views, rows i and i + N are positives; cosine
// similarity / temperature, self excluded; mean over the 2N anchors. The two-tensor form takes
// the views [N, d] each (z = cat(z1, z2)).
Tensor nt_xent_loss(const Tensor& z, double temperature = 0.1);
Tensor nt_xent_loss(const Tensor& z1, const Tensor& z2, double temperature = 0.1);

// StableRep's MultiPosConLoss: features [N, d] are L2-normalized, logits z z^T / temperature with
// self masked out, target p_ij = 1[label_i == label_j, i != j] / #positives of i, loss
// -(1/N) sum_ij p_ij log softmax_ij. Anchors without positives contribute 0 (and count in N).
Tensor multi_pos_con_loss(const Tensor& features, const Tensor& labels, double temperature = 0.1);

// Khosla et al.'s SupConLoss, contrast_mode "all": features [bsz, n_views, d] (or [N, d], one
// view), not normalized here (as in the reference); labels [bsz] (undefined: each sample is its
// own class, SimCLR). Per anchor, -(temperature / base_temperature) times the mean log-probability
// of its positives; averaged over the anchors that have at least one positive (0 if none has).
Tensor supcon_loss(const Tensor& features, const Tensor& labels = Tensor(), double temperature = 0.07,
                   double base_temperature = 0.07);

// ---- embedding losses

// torch.nn.functional.cosine_embedding_loss: input1, input2 [N, D] with target [N] (or [D] with a
// 0-d target); target 1: 1 - cos, target -1: max(0, cos - margin).
Tensor cosine_embedding_loss(const Tensor& input1, const Tensor& input2, const Tensor& target, double margin = 0.0,
                             Reduction reduction = Reduction::Mean);

// The mean of the L2-normalized rows of z per class: [num_classes, d]; classes without a
// sample get a zero row. Differentiable in z.
Tensor class_mean_embeddings(const Tensor& z, const Tensor& labels, int64_t num_classes);

// Three-branch framework (Zunaed et al., Eq. 12), embeddings of the common, adult and pediatric
// paths with their labels: sum over classes j of (1 - cos(w_c^j, w_a^j)) + (1 - cos(w_c^j, w_p^j)),
// w = class_mean_embeddings, cos with eps 1e-8 on each norm. A pair term is skipped when the
// class is absent from either of its two batches. Falls as the paths agree.
Tensor embedding_similarity_loss(const Tensor& z_common, const Tensor& labels_common, const Tensor& z_adult,
                                 const Tensor& labels_adult, const Tensor& z_pediatric,
                                 const Tensor& labels_pediatric, int64_t num_classes);

// Eq. 13: over ordered pairs (i, j), i != j, of classes present in the common batch,
// max(0, cos(w_c^i, w_c^j)) (hinge = false: cos itself); reduction mean (over the pairs) or sum
// (the paper's form). 0 with fewer than two classes present.
Tensor embedding_dissimilarity_loss(const Tensor& z_common, const Tensor& labels_common, int64_t num_classes,
                                    bool hinge = true, Reduction reduction = Reduction::Mean);

// ---- segmentation

// Soft Dice on logits: p = sigmoid(input), per sample (dim 0) over all other dims,
// 1 - (2 sum(p t) + smooth) / (sum(p) + sum(t) + smooth); reduction over samples.
Tensor dice_loss(const Tensor& input, const Tensor& target, double smooth = 1.0, Reduction reduction = Reduction::Mean);
// bce_weight * BCE with logits (mean) + dice_weight * dice_loss (mean).
Tensor dice_bce_loss(const Tensor& input, const Tensor& target, double smooth = 1.0, double dice_weight = 1.0,
                     double bce_weight = 1.0);

}  // namespace pneuma

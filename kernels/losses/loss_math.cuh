// Per-element and per-row math of the losses, written once for the CPU reference loops
// (engine/ops/loss/*_cpu.cpp), the emulated kernels and the CUDA kernels (kernels/losses/*.cuh).
//
// This header deliberately does not include kernels/portable.cuh: engine .cpp files include it,
// and portable.cuh turns threadIdx/blockIdx/... into macros on the host. It therefore has its own
// host/device marker, defined like portable.cuh's PNEUMA_HD (__host__ __device__ under nvcc,
// nothing on the host) but under its own name, so that including this header before or after
// portable.cuh can never redefine a macro differently.
//
// Formulas follow torch 1.13 / torchvision 0.14 expression for expression where a reference
// exists (sigmoid focal, BCE with logits, cross-entropy, cosine embedding), so that float64
// results agree with PyTorch to rounding.
#pragma once

#include <cmath>
#include <cstdint>

#ifndef PNEUMA_LOSS_HD
#if defined(__CUDACC__)
#define PNEUMA_LOSS_HD __host__ __device__ inline
#else
#define PNEUMA_LOSS_HD inline
#endif
#endif

namespace pneuma::kern::losses {

// ---- float/double overloads of the C math functions (device code cannot rely on std::)

PNEUMA_LOSS_HD float lexp(float x) { return ::expf(x); }
PNEUMA_LOSS_HD double lexp(double x) { return ::exp(x); }
PNEUMA_LOSS_HD float llog(float x) { return ::logf(x); }
PNEUMA_LOSS_HD double llog(double x) { return ::log(x); }
PNEUMA_LOSS_HD float lpow(float x, float y) { return ::powf(x, y); }
PNEUMA_LOSS_HD double lpow(double x, double y) { return ::pow(x, y); }
PNEUMA_LOSS_HD float lsqrt(float x) { return ::sqrtf(x); }
PNEUMA_LOSS_HD double lsqrt(double x) { return ::sqrt(x); }
template <class T>
PNEUMA_LOSS_HD T lmax(T a, T b) {
  return a > b ? a : b;
}
// The maximum that keeps a NaN from either side (as torch.max and kern::MaxOp), for row maxima.
template <class T>
PNEUMA_LOSS_HD T nan_max(T a, T b) {
  return (a > b || a != a) ? a : b;
}

// Reductions as in torch (none / mean / sum), shared by every loss with a reduction argument.
enum class LossReduction : int { None = 0, Mean = 1, Sum = 2 };

// ---- Binary losses on logits: BCE with logits and torchvision's sigmoid focal loss

// Value and derivatives of one element. dx/dt are d(loss)/d(input) and d(loss)/d(target) for a
// unit upstream gradient, before per-sample weights and reductions.
template <class T>
struct BinaryTerms {
  T loss;
  T dx;
  T dt;
};

// softplus(-x) = log(1 + exp(-x)) and sigmoid(x) from a single exponential e = exp(-|x|), which
// never overflows: softplus(-x) = max(-x, 0) + log(1 + e) (torch's max_val + log(exp(-max_val) +
// exp(-x - max_val)) with one exponential fewer; log rather than log1p, as torch, and because
// glibc's log1pf is several times slower than logf) and sigmoid(x) = 1 / (1 + e) or e / (1 + e).
template <class T>
struct LogisticParts {
  T softplus_neg;
  T sigmoid;
};

template <class T>
PNEUMA_LOSS_HD LogisticParts<T> logistic_parts(T x) {
  const T e = lexp(x < T(0) ? x : -x);
  LogisticParts<T> r;
  r.softplus_neg = lmax(-x, T(0)) + llog(T(1) + e);
  r.sigmoid = (x >= T(0) ? T(1) : e) / (T(1) + e);
  return r;
}

// torch's binary_cross_entropy_with_logits: (1 - t) x + lw softplus(-x), lw = (pos_weight - 1) t + 1.
// pos_weight is 1 when there is none.
template <class T>
PNEUMA_LOSS_HD BinaryTerms<T> bce_with_logits_terms(T x, T t, T pos_weight, const LogisticParts<T>& parts) {
  const T log_weight = (pos_weight - T(1)) * t + T(1);
  BinaryTerms<T> r;
  r.loss = (T(1) - t) * x + log_weight * parts.softplus_neg;
  // torch: (pos_weight t + 1 - t) sigmoid(x) - pos_weight t; sigmoid(x) - t without pos_weight.
  const T pt = pos_weight * t;
  r.dx = (pt + T(1) - t) * parts.sigmoid - pt;
  // log_sigmoid(-x) - pos_weight log_sigmoid(x) == -x + (pos_weight - 1) softplus(-x).
  r.dt = -x + (pos_weight - T(1)) * parts.softplus_neg;
  return r;
}

template <class T>
PNEUMA_LOSS_HD BinaryTerms<T> bce_with_logits_terms(T x, T t, T pos_weight) {
  return bce_with_logits_terms(x, t, pos_weight, logistic_parts(x));
}

// q^gamma, with the exponents the focal losses use in practice (0, 1, 2) as products, as torch's
// pow does for 2.
template <class T>
PNEUMA_LOSS_HD T focal_power(T q, T gamma) {
  if (gamma == T(2)) return q * q;
  if (gamma == T(1)) return q;
  if (gamma == T(0)) return T(1);
  return lpow(q, gamma);
}

// gamma * q^(gamma - 1), the derivative of q^gamma. torch's pow backward gives 0 for gamma == 0;
// at q == 0 with gamma < 1 it gives inf, which the focal loss multiplies by a derivative that is
// itself 0 there (or by a loss term that vanishes faster); the limit, 0, is returned instead of
// torch's NaN.
template <class T>
PNEUMA_LOSS_HD T pow_derivative(T q, T gamma) {
  if (gamma == T(0)) return T(0);
  if (gamma == T(2)) return T(2) * q;
  if (gamma == T(1)) return T(1);
  if (q == T(0) && gamma < T(1)) return T(0);
  return gamma * lpow(q, gamma - T(1));
}

// torchvision.ops.sigmoid_focal_loss, one element:
//   p = sigmoid(x), ce = bce_with_logits(x, t), p_t = p t + (1 - p)(1 - t),
//   loss = ce (1 - p_t)^gamma, times alpha_t = alpha t + (1 - alpha)(1 - t) when alpha >= 0.
template <class T>
PNEUMA_LOSS_HD BinaryTerms<T> sigmoid_focal_terms(T x, T t, T alpha, T gamma, const LogisticParts<T>& parts) {
  const BinaryTerms<T> ce = bce_with_logits_terms(x, t, T(1), parts);
  const T p = parts.sigmoid;
  const T p_t = p * t + (T(1) - p) * (T(1) - t);
  const T q = T(1) - p_t;
  const T modulator = focal_power(q, gamma);
  const T dmod = pow_derivative(q, gamma);
  const T dq_dx = -(p * (T(1) - p)) * (t - (T(1) - t));
  const T dq_dt = T(1) - T(2) * p;
  BinaryTerms<T> r;
  r.loss = ce.loss * modulator;
  r.dx = ce.dx * modulator + ce.loss * dmod * dq_dx;
  r.dt = ce.dt * modulator + ce.loss * dmod * dq_dt;
  if (alpha >= T(0)) {
    const T alpha_t = alpha * t + (T(1) - alpha) * (T(1) - t);
    r.dt = alpha_t * r.dt + (T(2) * alpha - T(1)) * r.loss;
    r.dx = alpha_t * r.dx;
    r.loss = alpha_t * r.loss;
  }
  return r;
}

template <class T>
PNEUMA_LOSS_HD BinaryTerms<T> sigmoid_focal_terms(T x, T t, T alpha, T gamma) {
  return sigmoid_focal_terms(x, t, alpha, gamma, logistic_parts(x));
}

// ---- Class rows: cross-entropy with class indices, and the softmax focal loss

// What one row (sample) of a classification loss contributes, computed from its logits:
// lse = log(sum_c exp(x_c)); nll = -w_y log p_y; smooth = -sum_c w_c log p_c (label smoothing);
// weight = w_y, the row's share of a weighted mean's denominator; all 0 for an ignored row.
template <class T>
struct ClassRowStats {
  T lse;
  T nll;
  T smooth;
  T weight;
};

enum class ClassLossKind : int { CrossEntropy = 0, SoftmaxFocal = 1 };

// Softmax focal loss of one row: -alpha_y (1 - p_y)^gamma log p_y.
template <class T>
PNEUMA_LOSS_HD T softmax_focal_value(T log_p_y, T alpha_y, T gamma) {
  const T p = lexp(log_p_y);
  return -alpha_y * focal_power(T(1) - p, gamma) * log_p_y;
}

// d(softmax focal)/d(x_c) = K (delta_cy - p_c); this is K.
template <class T>
PNEUMA_LOSS_HD T softmax_focal_coefficient(T log_p_y, T alpha_y, T gamma) {
  const T p = lexp(log_p_y);
  const T q = T(1) - p;
  const T dmod = pow_derivative(q, gamma);
  return alpha_y * (dmod * p * log_p_y - focal_power(q, gamma));
}

// Totals over the rows that the reductions need (summed in a fixed order, hence deterministic).
template <class T>
struct ClassTotals {
  T nll;      // sum of nll (or of focal losses)
  T smooth;   // sum of smooth
  T weight;   // sum of w_y over rows that are not ignored
  T valid;    // number of rows that are not ignored
};

// torch 1.13 CrossEntropyLoss with class indices:
//   (1 - eps) nll_loss(log_softmax(x), y, weight) + eps / C * smoothing term, where the mean
// divides both terms by sum(w_y) over non-ignored rows (by their count without weights).
// For the softmax focal loss the mean divides by the number of (non-ignored) rows.
template <class T>
PNEUMA_LOSS_HD T class_loss_reduced(ClassLossKind kind, LossReduction reduction, const ClassTotals<T>& totals,
                                    T label_smoothing, std::int64_t classes) {
  if (kind == ClassLossKind::SoftmaxFocal) {
    return reduction == LossReduction::Mean ? totals.nll / totals.valid : totals.nll;
  }
  const T keep = T(1) - label_smoothing;
  const T spread = label_smoothing / T(classes);
  if (reduction == LossReduction::Mean) {
    return keep * (totals.nll / totals.weight) + (label_smoothing > T(0) ? spread * (totals.smooth / totals.weight) : T(0));
  }
  return keep * totals.nll + (label_smoothing > T(0) ? spread * totals.smooth : T(0));
}

// Unreduced loss of one row (reduction none).
template <class T>
PNEUMA_LOSS_HD T class_loss_row(ClassLossKind kind, const ClassRowStats<T>& row, T label_smoothing,
                                std::int64_t classes) {
  if (kind == ClassLossKind::SoftmaxFocal) return row.nll;
  return (T(1) - label_smoothing) * row.nll +
         (label_smoothing > T(0) ? (label_smoothing / T(classes)) * row.smooth : T(0));
}

// The gradient of a row, for upstream gradient g (of the reduced loss, or of this row for
// reduction none), is
//   dx_c = a * (p_c - delta_cy) + b * (p_c * sum_k w_k - w_c)
// for cross-entropy (a multiplies the nll term, b the smoothing term), and
//   dx_c = a * (p_c - delta_cy) with a = -K for the focal loss. These are a and b.
template <class T>
struct ClassRowGrad {
  T a;
  T b;
};

template <class T>
PNEUMA_LOSS_HD ClassRowGrad<T> class_row_grad(ClassLossKind kind, LossReduction reduction, T g, T log_p_y, T w_y,
                                              T alpha_y, T gamma, const ClassTotals<T>& totals, T label_smoothing,
                                              std::int64_t classes) {
  ClassRowGrad<T> r{T(0), T(0)};
  if (kind == ClassLossKind::SoftmaxFocal) {
    const T scale = reduction == LossReduction::Mean ? g / totals.valid : g;
    r.a = -scale * softmax_focal_coefficient(log_p_y, alpha_y, gamma);
    return r;
  }
  const T scale = reduction == LossReduction::Mean ? g / totals.weight : g;
  r.a = scale * (T(1) - label_smoothing) * w_y;
  r.b = label_smoothing > T(0) ? scale * (label_smoothing / T(classes)) : T(0);
  return r;
}

// ---- Contrastive rows over a similarity matrix S (row i against every j != i)

// One anchor i: logits l_ij = S_ij / tau for j != i, positives P_i = {j != i : group_j == group_i}.
//   lse = log sum_{j != i} exp(l_ij), positives = |P_i|,
//   loss = lse - (1 / |P_i|) sum_{j in P_i} l_ij   (0 when P_i is empty: the anchor is skipped).
template <class T>
struct ContrastiveRowStats {
  T lse;
  T positives;
  T loss;
};

// How the anchors' losses are combined:
//   MeanOverAnchors: (1 / M) sum_i loss_i, anchors without positives counting as 0
//                    (NT-Xent, StableRep's MultiPosConLoss);
//   MeanOverAnchorsWithPositives: scale * sum_i loss_i / #{i : P_i nonempty} (SupCon, with
//                    scale = tau / base_tau); 0 when no anchor has a positive.
enum class ContrastiveMean : int { MeanOverAnchors = 0, MeanOverAnchorsWithPositives = 1 };

template <class T>
PNEUMA_LOSS_HD T contrastive_row_loss(T lse, T positive_logit_sum, T positives) {
  return positives > T(0) ? lse - positive_logit_sum / positives : T(0);
}

// The weight a_i of anchor i's loss in the total (the same for every anchor with positives).
template <class T>
PNEUMA_LOSS_HD T contrastive_anchor_weight(ContrastiveMean mean, std::int64_t anchors, T anchors_with_positives,
                                           T scale) {
  if (mean == ContrastiveMean::MeanOverAnchors) return T(1) / T(anchors);
  return anchors_with_positives > T(0) ? scale / anchors_with_positives : T(0);
}

// Anchor i's share of d(total)/dS: d(total)/d(S_ij) = coefficient_i (softmax_ij - [j in P_i] inv_positives_i)
// for j != i, with coefficient_i = a_i / tau times the upstream gradient; both 0 when P_i is empty.
template <class T>
struct ContrastiveAnchorGrad {
  T coefficient;
  T inv_positives;
};

template <class T>
PNEUMA_LOSS_HD ContrastiveAnchorGrad<T> contrastive_anchor_grad(T positives_i, T coefficient) {
  ContrastiveAnchorGrad<T> r{T(0), T(0)};
  if (positives_i > T(0)) {
    r.coefficient = coefficient;
    r.inv_positives = T(1) / positives_i;
  }
  return r;
}

template <class T>
PNEUMA_LOSS_HD T contrastive_grad_term(T softmax_ij, bool positive, const ContrastiveAnchorGrad<T>& anchor) {
  return anchor.coefficient * (softmax_ij - (positive ? anchor.inv_positives : T(0)));
}

// The same from S_ij and the anchor's log-sum-exp (the kernels keep no softmax matrix). An anchor
// without positives has no log-sum-exp, so its softmax is not formed.
template <class T>
PNEUMA_LOSS_HD T contrastive_row_grad(T s_ij, T inv_tau, T lse_i, bool positive, const ContrastiveAnchorGrad<T>& anchor) {
  if (anchor.inv_positives == T(0)) return T(0);
  return contrastive_grad_term(lexp(s_ij * inv_tau - lse_i), positive, anchor);
}

// ---- Cosine embedding loss (torch.nn.CosineEmbeddingLoss), one pair of rows

inline constexpr double kCosineEmbeddingEps = 1e-12;  // torch's EPSILON in cosine_embedding_loss

// cos = dot / sqrt((|x1|^2 + eps)(|x2|^2 + eps)); loss = 1 - cos for target 1,
// max(0, cos - margin) for target -1, 0 for any other target.
template <class T>
PNEUMA_LOSS_HD T cosine_of(T dot, T sq1, T sq2) {
  return dot / lsqrt((sq1 + T(kCosineEmbeddingEps)) * (sq2 + T(kCosineEmbeddingEps)));
}

template <class T>
PNEUMA_LOSS_HD T cosine_embedding_value(T cos, T target, T margin) {
  if (target == T(1)) return T(1) - cos;
  if (target == T(-1)) return lmax(cos - margin, T(0));
  return T(0);
}

// d(loss)/d(cos); torch's clamp_min passes the gradient where cos - margin >= 0.
template <class T>
PNEUMA_LOSS_HD T cosine_embedding_dcos(T cos, T target, T margin) {
  if (target == T(1)) return T(-1);
  if (target == T(-1)) return cos - margin >= T(0) ? T(1) : T(0);
  return T(0);
}

// d(cos)/d(x1_k) = x2_k / denominator - x1_k cos / (|x1|^2 + eps); swap the roles for x2. The
// two row factors are computed once per row; these are they.
template <class T>
struct CosineRowFactors {
  T inv_denominator;  // 1 / sqrt((|x1|^2 + eps)(|x2|^2 + eps))
  T cos_over_sq1;     // cos / (|x1|^2 + eps)
  T cos_over_sq2;     // cos / (|x2|^2 + eps)
};

template <class T>
PNEUMA_LOSS_HD CosineRowFactors<T> cosine_row_factors(T cos, T sq1, T sq2) {
  const T e1 = sq1 + T(kCosineEmbeddingEps), e2 = sq2 + T(kCosineEmbeddingEps);
  return {T(1) / lsqrt(e1 * e2), cos / e1, cos / e2};
}

template <class T>
PNEUMA_LOSS_HD T cosine_derivative(T own, T other, T inv_denominator, T cos_over_own_sq) {
  return other * inv_denominator - own * cos_over_own_sq;
}

// ---- Three-branch class-wise embedding losses (Zunaed et al., Eq. 12-13), on per-class means

// Similarity: sum over classes of (1 - cos(w_c, w_a)) + (1 - cos(w_c, w_p)); dissimilarity: over
// ordered pairs of distinct classes present on the common path, cos(w_c^i, w_c^j) (hinged at 0).
enum class EmbeddingLossKind : int { Similarity = 0, Dissimilarity = 1 };

// Which loss, and the dissimilarity's options (hinge at 0; reduction mean over the ordered pairs or sum).
struct EmbeddingLossConfig {
  EmbeddingLossKind kind = EmbeddingLossKind::Similarity;
  LossReduction reduction = LossReduction::Mean;
  bool hinge = true;
};

// The similarity loss's paths, in this order in its means [3, C, d] and counts [3, C].
inline constexpr std::int64_t kSimilarityPaths = 3;  // common, adult, pediatric

inline constexpr double kClassMeanNormEps = 1e-12;  // normalize(z, 2, 1, 1e-12) of each embedding
inline constexpr double kClassCosineEps = 1e-8;     // F.cosine_similarity's eps, on each mean's norm

// max(0, cos) that keeps a NaN, as clamp does; cos itself without the hinge.
template <class T>
PNEUMA_LOSS_HD T dissimilarity_value(T cos, bool hinge) {
  return hinge && cos < T(0) ? T(0) : cos;
}

// d/dcos of dissimilarity_value: clamp's backward passes the gradient where cos >= min.
template <class T>
PNEUMA_LOSS_HD T dissimilarity_dcos(T cos, bool hinge) {
  return !hinge || cos >= T(0) ? T(1) : T(0);
}

// ---- Soft Dice on probabilities p = sigmoid(x) against targets t, one sample

// The sums a sample's loss and gradient need: I = sum p t, P = sum p, T = sum t, in this order.
inline constexpr std::int64_t kDiceSums = 3;

// 1 - (2 I + smooth) / (P + T + smooth).
template <class T>
PNEUMA_LOSS_HD T dice_value(T intersection, T prob_sum, T target_sum, T smooth) {
  return T(1) - (T(2) * intersection + smooth) / (prob_sum + target_sum + smooth);
}

// With ratio = (2 I + smooth) / D and D = P + T + smooth: d(dice)/dp_k = (ratio - 2 t_k) / D and
// d(dice)/dt_k = (ratio - 2 p_k) / D. These are the sample's two factors.
template <class T>
struct DiceFactors {
  T ratio;
  T inv_denominator;
};

template <class T>
PNEUMA_LOSS_HD DiceFactors<T> dice_factors(T intersection, T prob_sum, T target_sum, T smooth) {
  const T denominator = prob_sum + target_sum + smooth;
  return {(T(2) * intersection + smooth) / denominator, T(1) / denominator};
}

// d(dice)/dp_k given the other factor of the product p_k t_k (t_k; p_k for d/dt_k).
template <class T>
PNEUMA_LOSS_HD T dice_derivative(T other, const DiceFactors<T>& f) {
  return (f.ratio - T(2) * other) * f.inv_denominator;
}

}  // namespace pneuma::kern::losses

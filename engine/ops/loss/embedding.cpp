// The three-branch framework's class-wise embedding losses (Zunaed et al., Eq. 12-13), composed
// from ops: they act on C x d class means, so the work is in the (already fused) normalize and
// matmul, and autograd through the composition is exact.
#include <optional>
#include <vector>

#include "engine/core/profiler.h"
#include "engine/ops/checks.h"
#include "engine/ops/elementwise/elementwise.h"
#include "engine/ops/index/index.h"
#include "engine/ops/linalg/linalg.h"
#include "engine/ops/loss/loss.h"
#include "engine/ops/loss/loss_checks.h"
#include "engine/ops/normalize/normalize.h"
#include "engine/ops/reduce/reduce.h"

namespace pneuma {

namespace {

constexpr double kCosineEps = 1e-8;  // F.cosine_similarity's eps, applied to each norm

struct ClassMeans {
  Tensor means;                 // [C, d]
  std::vector<int64_t> counts;  // per class
};

ClassMeans class_means(const char* op, const Tensor& z, const Tensor& labels, int64_t num_classes, const char* what,
                       const char* labels_what) {
  ops::check_loss_input(op, z, what);
  PNEUMA_CHECK(z.dim() == 2, op, ": expected ", what, " of shape [batch, dim], got ", z.str());
  ops::check_labels(op, labels, z.size(0), z, labels_what);
  ops::check_label_range(op, labels, num_classes, labels_what);
  const std::vector<int64_t> y = labels.contiguous().to_indices();
  const int64_t n = z.size(0);
  ClassMeans r;
  r.counts.assign(static_cast<size_t>(num_classes), 0);
  for (int64_t v : y) ++r.counts[static_cast<size_t>(v)];
  // The averaging matrix A[c, i] = 1 / count_c where label_i == c: the means are one GEMM,
  // (zn^T A^T)^T. Written with the constant on the right because matmul's backward currently
  // fails when only its right operand requires grad (reported; engine/ops/linalg is not ours).
  std::vector<double> a_t(static_cast<size_t>(n * num_classes), 0.0);
  for (int64_t i = 0; i < n; ++i) {
    const int64_t c = y[static_cast<size_t>(i)];
    a_t[static_cast<size_t>(i * num_classes + c)] = 1.0 / static_cast<double>(r.counts[static_cast<size_t>(c)]);
  }
  const Tensor zn = normalize(z, 2.0, 1, 1e-12);
  r.means = matmul(zn.transpose(0, 1), Tensor::from_vector(a_t, {n, num_classes}, z.dtype())).transpose(0, 1);
  return r;
}

Tensor present_rows(const Tensor& means, const std::vector<int64_t>& classes) {
  return index_select(means, 0, Tensor::from_indices(classes, {static_cast<int64_t>(classes.size())}));
}

// sum over the listed classes of 1 - cos(a_c, b_c).
Tensor one_minus_cos_sum(const Tensor& a, const Tensor& b, const std::vector<int64_t>& classes) {
  const Tensor an = normalize(present_rows(a, classes), 2.0, 1, kCosineEps);
  const Tensor bn = normalize(present_rows(b, classes), 2.0, 1, kCosineEps);
  return static_cast<double>(classes.size()) - sum(an * bn);
}

// A zero that stays on the graph of z, so that backward() works when no term exists.
Tensor connected_zero(const Tensor& z) { return sum(z) * 0.0; }

void check_num_classes(const char* op, int64_t num_classes) {
  PNEUMA_CHECK(num_classes > 0, op, ": num_classes must be positive, got ", num_classes);
}

}  // namespace

Tensor class_mean_embeddings(const Tensor& z, const Tensor& labels, int64_t num_classes) {
  const char* op = "class_mean_embeddings";
  profiler::Scope profile_scope("loss", op);
  check_num_classes(op, num_classes);
  return class_means(op, z, labels, num_classes, "z", "labels").means;
}

Tensor embedding_similarity_loss(const Tensor& z_common, const Tensor& labels_common, const Tensor& z_adult,
                                 const Tensor& labels_adult, const Tensor& z_pediatric,
                                 const Tensor& labels_pediatric, int64_t num_classes) {
  const char* op = "embedding_similarity_loss";
  profiler::Scope profile_scope("loss", op);
  check_num_classes(op, num_classes);
  const ClassMeans c = class_means(op, z_common, labels_common, num_classes, "z_common", "labels_common");
  const ClassMeans a = class_means(op, z_adult, labels_adult, num_classes, "z_adult", "labels_adult");
  const ClassMeans p = class_means(op, z_pediatric, labels_pediatric, num_classes, "z_pediatric", "labels_pediatric");
  ops::check_same_dtype(op, z_common, z_adult);
  ops::check_same_dtype(op, z_common, z_pediatric);
  PNEUMA_CHECK(z_adult.size(1) == z_common.size(1) && z_pediatric.size(1) == z_common.size(1), op,
               ": the three paths' embeddings must have the same dim, got ", z_common.str(), ", ", z_adult.str(),
               " and ", z_pediatric.str());
  std::vector<int64_t> with_adult, with_pediatric;
  for (int64_t k = 0; k < num_classes; ++k) {
    const size_t i = static_cast<size_t>(k);
    if (c.counts[i] > 0 && a.counts[i] > 0) with_adult.push_back(k);
    if (c.counts[i] > 0 && p.counts[i] > 0) with_pediatric.push_back(k);
  }
  Tensor loss;
  if (!with_adult.empty()) loss = one_minus_cos_sum(c.means, a.means, with_adult);
  if (!with_pediatric.empty()) {
    const Tensor term = one_minus_cos_sum(c.means, p.means, with_pediatric);
    loss = loss.defined() ? loss + term : term;
  }
  return loss.defined() ? loss : connected_zero(c.means);
}

Tensor embedding_dissimilarity_loss(const Tensor& z_common, const Tensor& labels_common, int64_t num_classes,
                                    bool hinge, Reduction reduction) {
  const char* op = "embedding_dissimilarity_loss";
  profiler::Scope profile_scope("loss", op);
  check_num_classes(op, num_classes);
  PNEUMA_CHECK(reduction != Reduction::None, op, ": reduction must be 'mean' or 'sum' (the loss is one number)");
  const ClassMeans c = class_means(op, z_common, labels_common, num_classes, "z_common", "labels_common");
  std::vector<int64_t> present;
  for (int64_t k = 0; k < num_classes; ++k)
    if (c.counts[static_cast<size_t>(k)] > 0) present.push_back(k);
  const int64_t k = static_cast<int64_t>(present.size());
  if (k < 2) return connected_zero(c.means);
  const Tensor wn = normalize(present_rows(c.means, present), 2.0, 1, kCosineEps);
  Tensor cos = matmul(wn, wn.transpose(0, 1));
  if (hinge) cos = clamp(cos, 0.0, std::nullopt);
  std::vector<double> eye(static_cast<size_t>(k * k), 0.0);
  for (int64_t i = 0; i < k; ++i) eye[static_cast<size_t>(i * k + i)] = 1.0;
  const Tensor off_diagonal = masked_fill(cos, Tensor::from_vector(eye, {k, k}, DType::Bool), 0.0);
  const Tensor total = sum(off_diagonal);
  return reduction == Reduction::Mean ? total / static_cast<double>(k * (k - 1)) : total;
}

}  // namespace pneuma

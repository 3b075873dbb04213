// The three-branch framework's class-wise embedding losses (Zunaed et al., Eq. 12-13). On the CPU
// composed from ops: they act on C x d class means, so the work is in the (already fused)
// normalize and matmul, and autograd through the composition is exact; that composition is the
// reference. On CUDA tensors: the fused kernels of kernels/losses/embedding.cuh (class means,
// the loss over the means, and their backwards), with one autograd node per loss.
#include <optional>
#include <vector>

#include "engine/autograd/node.h"
#include "engine/core/profiler.h"
#include "engine/ops/autocast.h"
#include "engine/ops/checks.h"
#include "engine/ops/elementwise/elementwise.h"
#include "engine/ops/index/index.h"
#include "engine/ops/linalg/linalg.h"
#include "engine/ops/loss/loss.h"
#include "engine/ops/loss/loss_checks.h"
#include "engine/ops/loss/loss_cuda.h"
#include "engine/ops/normalize/normalize.h"
#include "engine/ops/reduce/reduce.h"

namespace pneuma {

namespace {

constexpr double kCosineEps = kern::losses::kClassCosineEps;  // F.cosine_similarity's eps, on each norm

struct ClassMeans {
  Tensor means;                 // [C, d]
  std::vector<int64_t> counts;  // per class
};

void check_embeddings(const char* op, const Tensor& z, const Tensor& labels, int64_t num_classes, const char* what,
                      const char* labels_what) {
  ops::check_loss_input(op, z, what);
  PNEUMA_CHECK(z.dim() == 2, op, ": expected ", what, " of shape [batch, dim], got ", z.str());
  ops::check_labels(op, labels, z.size(0), z, labels_what);
  ops::check_label_range(op, labels, num_classes, labels_what);
}

ClassMeans class_means(const char* op, const Tensor& z, const Tensor& labels, int64_t num_classes, const char* what,
                       const char* labels_what) {
  check_embeddings(op, z, labels, num_classes, what, labels_what);
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

// ---- CUDA tensors: the fused kernels

// One embedding batch of a CUDA loss: z and labels contiguous and detached, and the input z as
// given until the autograd node is recorded.
struct Path {
  Tensor input, z, labels;
};

Path cuda_path(const char* op, const Tensor& z, const Tensor& labels, int64_t num_classes, const char* what,
               const char* labels_what) {
  check_embeddings(op, z, labels, num_classes, what, labels_what);
  return {z, z.detach().contiguous(), labels.contiguous()};
}

// means [paths, C, d] and counts [paths, C] of the paths, on their device.
struct DeviceMeans {
  Tensor means, counts;
};

DeviceMeans device_class_means(const std::vector<Path>& paths, int64_t num_classes) {
  const Tensor& z0 = paths.front().z;
  const int64_t n_paths = static_cast<int64_t>(paths.size());
  DeviceMeans r{Tensor::empty({n_paths, num_classes, z0.size(1)}, z0.dtype(), z0.device()),
                Tensor::empty({n_paths, num_classes}, z0.dtype(), z0.device())};
  for (int64_t p = 0; p < n_paths; ++p)
    cuda::class_means(paths[static_cast<size_t>(p)].z, paths[static_cast<size_t>(p)].labels, r.means.select(0, p),
                      r.counts.select(0, p));
  return r;
}

// d(out)/d(z) of every path, from d(out)/d(means) ([paths, C, d]).
std::vector<Tensor> class_means_backward(const std::vector<Path>& paths, const DeviceMeans& m,
                                         const std::vector<std::shared_ptr<autograd::Node>>& next,
                                         const Tensor& grad_means) {
  std::vector<Tensor> grads(paths.size());
  for (size_t p = 0; p < paths.size(); ++p) {
    if (!next[p]) continue;
    const Tensor& z = paths[p].z;
    grads[p] = Tensor::empty(z.shape(), z.dtype(), z.device());
    const int64_t index = static_cast<int64_t>(p);
    cuda::class_means_backward(z, paths[p].labels, m.counts.select(0, index), grad_means.select(0, index), grads[p]);
  }
  return grads;
}

// class_mean_embeddings (no config) or an embedding loss over the paths' class means.
class EmbeddingCudaBackward final : public autograd::Node {
 public:
  EmbeddingCudaBackward(const char* op, std::optional<kern::losses::EmbeddingLossConfig> config,
                        std::vector<Path> paths, DeviceMeans means)
      : op_(op), config_(config), paths_(std::move(paths)), means_(std::move(means)) {}
  const char* name() const override { return op_; }
  std::vector<Tensor> apply(const Tensor& g) override {
    ops::check_same_device(name(), means_.means, g);
    if (!config_) return class_means_backward(paths_, means_, next, g.reshape(means_.means.shape()));
    const Tensor grad_means = Tensor::empty(means_.means.shape(), means_.means.dtype(), means_.means.device());
    cuda::embedding_loss_backward(*config_, means_.means, means_.counts, g, grad_means);
    return class_means_backward(paths_, means_, next, grad_means);
  }
  void release_saved() override {
    paths_.clear();
    means_ = DeviceMeans();
  }

 private:
  const char* op_;
  std::optional<kern::losses::EmbeddingLossConfig> config_;
  std::vector<Path> paths_;
  DeviceMeans means_;
};

Tensor embedding_loss_cuda(const char* op, const kern::losses::EmbeddingLossConfig& config, std::vector<Path> paths,
                           int64_t num_classes) {
  DeviceMeans m = device_class_means(paths, num_classes);
  Tensor out = Tensor::empty({}, m.means.dtype(), m.means.device());
  cuda::embedding_loss_forward(config, m.means, m.counts, out);
  std::vector<Tensor> inputs;
  for (Path& p : paths) {
    inputs.push_back(p.input);
    p.input = Tensor();  // the node keeps detached tensors only
  }
  if (autograd::needs_grad(inputs))
    autograd::record(std::make_shared<EmbeddingCudaBackward>(op, config, std::move(paths), std::move(m)), inputs, out);
  return out;
}

}  // namespace

Tensor class_mean_embeddings(const Tensor& z_in, const Tensor& labels, int64_t num_classes) {
  const Tensor z = autocast::to_float32(z_in);
  const char* op = "class_mean_embeddings";
  profiler::Scope profile_scope("loss", op);
  check_num_classes(op, num_classes);
  if (z.defined() && z.device().is_cuda()) {
    std::vector<Path> paths{cuda_path(op, z, labels, num_classes, "z", "labels")};
    paths[0].input = Tensor();  // the node keeps detached tensors only
    DeviceMeans m = device_class_means(paths, num_classes);
    const Tensor means = m.means.select(0, 0);
    if (autograd::needs_grad({&z}))
      autograd::record(std::make_shared<EmbeddingCudaBackward>(op, std::nullopt, std::move(paths), std::move(m)), {z},
                       means);
    return means;
  }
  return class_means(op, z, labels, num_classes, "z", "labels").means;
}

Tensor embedding_similarity_loss(const Tensor& z_common_in, const Tensor& labels_common, const Tensor& z_adult_in,
                                 const Tensor& labels_adult, const Tensor& z_pediatric_in,
                                 const Tensor& labels_pediatric, int64_t num_classes) {
  const Tensor z_common = autocast::to_float32(z_common_in);
  const Tensor z_adult = autocast::to_float32(z_adult_in);
  const Tensor z_pediatric = autocast::to_float32(z_pediatric_in);
  const char* op = "embedding_similarity_loss";
  profiler::Scope profile_scope("loss", op);
  check_num_classes(op, num_classes);
  check_embeddings(op, z_common, labels_common, num_classes, "z_common", "labels_common");
  check_embeddings(op, z_adult, labels_adult, num_classes, "z_adult", "labels_adult");
  check_embeddings(op, z_pediatric, labels_pediatric, num_classes, "z_pediatric", "labels_pediatric");
  ops::check_same_dtype(op, z_common, z_adult);
  ops::check_same_dtype(op, z_common, z_pediatric);
  ops::check_loss_devices(op, z_common, {&z_adult, &z_pediatric});
  PNEUMA_CHECK(z_adult.size(1) == z_common.size(1) && z_pediatric.size(1) == z_common.size(1), op,
               ": the three paths' embeddings must have the same dim, got ", z_common.str(), ", ", z_adult.str(),
               " and ", z_pediatric.str());
  if (z_common.device().is_cuda()) {
    kern::losses::EmbeddingLossConfig config;
    config.kind = kern::losses::EmbeddingLossKind::Similarity;
    return embedding_loss_cuda(op, config,
                               {cuda_path(op, z_common, labels_common, num_classes, "z_common", "labels_common"),
                                cuda_path(op, z_adult, labels_adult, num_classes, "z_adult", "labels_adult"),
                                cuda_path(op, z_pediatric, labels_pediatric, num_classes, "z_pediatric",
                                          "labels_pediatric")},
                               num_classes);
  }
  const ClassMeans c = class_means(op, z_common, labels_common, num_classes, "z_common", "labels_common");
  const ClassMeans a = class_means(op, z_adult, labels_adult, num_classes, "z_adult", "labels_adult");
  const ClassMeans p = class_means(op, z_pediatric, labels_pediatric, num_classes, "z_pediatric", "labels_pediatric");
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

Tensor embedding_dissimilarity_loss(const Tensor& z_common_in, const Tensor& labels_common, int64_t num_classes,
                                    bool hinge, Reduction reduction) {
  const Tensor z_common = autocast::to_float32(z_common_in);
  const char* op = "embedding_dissimilarity_loss";
  profiler::Scope profile_scope("loss", op);
  check_num_classes(op, num_classes);
  PNEUMA_CHECK(reduction != Reduction::None, op, ": reduction must be 'mean' or 'sum' (the loss is one number)");
  if (z_common.defined() && z_common.device().is_cuda()) {
    kern::losses::EmbeddingLossConfig config;
    config.kind = kern::losses::EmbeddingLossKind::Dissimilarity;
    config.reduction = ops::to_kernel(reduction);
    config.hinge = hinge;
    return embedding_loss_cuda(op, config,
                               {cuda_path(op, z_common, labels_common, num_classes, "z_common", "labels_common")},
                               num_classes);
  }
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

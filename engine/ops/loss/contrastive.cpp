// The contrastive family (NT-Xent, multi-positive contrastive, SupCon): one autograd node over the
// embeddings that computes S = Z Z^T, the fused masked row softmax and loss, and in the backward
// the symmetric gradient of S and one GEMM. The three losses differ only in which anchors are
// positives of each other (a group id per row), in whether the embeddings are normalized first,
// and in how the anchors' losses are averaged. On CUDA tensors S comes from cuBLAS and the rows
// from the fused kernels (kernels/losses/contrastive.cuh); either way one N x N buffer is kept.
#include <cmath>

#include "engine/autograd/node.h"
#include "engine/core/profiler.h"
#include "engine/ops/autocast.h"
#include "engine/ops/checks.h"
#include "engine/ops/index/index.h"
#include "engine/ops/loss/loss.h"
#include "engine/ops/loss/loss_checks.h"
#include "engine/ops/loss/loss_cpu.h"
#include "engine/ops/loss/loss_cuda.h"
#include "engine/ops/normalize/normalize.h"

namespace pneuma {

namespace {

using cpu::ContrastiveConfig;

// The N x N buffer holds the row softmax on the CPU and S = Z Z^T on CUDA, where the kernels
// recompute the softmax from S and the saved log-sum-exp (lse, undefined on the CPU).
class ContrastiveBackward final : public autograd::Node {
 public:
  ContrastiveBackward(const char* op, ContrastiveConfig config, Tensor z, Tensor matrix, Tensor groups, Tensor lse,
                      Tensor positives, Tensor totals)
      : op_(op), config_(config), z_(std::move(z)), matrix_(std::move(matrix)), groups_(std::move(groups)),
        lse_(std::move(lse)), positives_(std::move(positives)), totals_(std::move(totals)) {}
  const char* name() const override { return op_; }
  std::vector<Tensor> apply(const Tensor& g) override {
    ops::check_same_device(name(), z_, g);
    Tensor dz = Tensor::empty(z_.shape(), z_.dtype(), z_.device());
    if (!z_.device().is_cuda()) {
      cpu::contrastive_embeddings_backward(config_, z_, matrix_, groups_, positives_, totals_, g, dz);
      return {dz};
    }
    // The kernel writes the gradient of S over S: a second backward (retain_graph) forms S again.
    if (!matrix_holds_similarity_) cuda::similarity_matrix(z_, matrix_);
    cuda::contrastive_embeddings_backward(config_, z_, matrix_, groups_, lse_, positives_, totals_, g, dz);
    matrix_holds_similarity_ = false;
    return {dz};
  }
  void release_saved() override { z_ = matrix_ = groups_ = lse_ = positives_ = totals_ = Tensor(); }

 private:
  const char* op_;
  ContrastiveConfig config_;
  Tensor z_, matrix_, groups_, lse_, positives_, totals_;
  bool matrix_holds_similarity_ = true;
};

// z: [M, d] embeddings as the loss sees them (already normalized where the loss normalizes).
Tensor contrastive(const char* op, const Tensor& z, const Tensor& groups, ContrastiveConfig config) {
  const int64_t m = z.size(0);
  const Device device = z.device();
  const Tensor zd = z.detach().contiguous();
  const Tensor gd = groups.to(device).contiguous();
  Tensor out = Tensor::empty({}, z.dtype(), device);
  // S = Z Z^T, overwritten on the CPU by the forward with the row softmax: the one N x N buffer,
  // kept for the backward.
  Tensor matrix = Tensor::empty({m, m}, z.dtype(), device);
  Tensor lse = Tensor::empty({m}, z.dtype(), device);
  Tensor positives = Tensor::empty({m}, z.dtype(), device);
  Tensor totals = Tensor::empty({2}, z.dtype(), device);
  if (device.is_cuda()) cuda::contrastive_embeddings_forward(config, zd, gd, out, matrix, lse, positives, totals);
  else cpu::contrastive_embeddings_forward(config, zd, gd, out, matrix, lse, positives, totals);
  if (autograd::needs_grad({&z}))
    autograd::record(std::make_shared<ContrastiveBackward>(op, config, autograd::save(zd), matrix, gd,
                                                           device.is_cuda() ? lse : Tensor(), positives, totals),
                     {z}, out);
  return out;
}

void check_embeddings(const char* op, const Tensor& z, const char* what) {
  ops::check_loss_input(op, z, what);
  PNEUMA_CHECK(z.dim() == 2, op, ": expected ", what, " of shape [batch, dim], got ", z.str());
  PNEUMA_CHECK(z.size(0) > 0 && z.size(1) > 0, op, ": ", what, " ", z.str(), " is empty");
}

}  // namespace

Tensor nt_xent_loss(const Tensor& z_in, double temperature) {
  const Tensor z = autocast::to_float32(z_in);
  profiler::Scope profile_scope("loss", "nt_xent_loss");
  const char* op = "nt_xent_loss";
  check_embeddings(op, z, "z");
  ops::check_temperature(op, temperature, "temperature");
  PNEUMA_CHECK(z.size(0) % 2 == 0, op, ": z must stack two views of the same batch ([2N, d]), got an odd batch ",
               z.str());
  const int64_t n = z.size(0) / 2;
  std::vector<int64_t> groups(static_cast<size_t>(2 * n));
  for (int64_t i = 0; i < 2 * n; ++i) groups[static_cast<size_t>(i)] = i % n;
  ContrastiveConfig c;
  c.mean = cpu::ContrastiveMean::MeanOverAnchors;
  c.inv_tau = 1.0 / temperature;
  return contrastive(op, normalize(z, 2.0, 1, 1e-12), Tensor::from_indices(groups, {2 * n}), c);
}

Tensor nt_xent_loss(const Tensor& z1_in, const Tensor& z2_in, double temperature) {
  const Tensor z1 = autocast::to_float32(z1_in);
  const Tensor z2 = autocast::to_float32(z2_in);
  const char* op = "nt_xent_loss";
  check_embeddings(op, z1, "z1");
  check_embeddings(op, z2, "z2");
  ops::check_same_dtype(op, z1, z2);
  ops::check_loss_devices(op, z1, {&z2});
  PNEUMA_CHECK(z1.shape() == z2.shape(), op, ": the two views must have the same shape, got ", z1.str(), " and ",
               z2.str());
  return nt_xent_loss(cat({z1, z2}, 0), temperature);
}

Tensor multi_pos_con_loss(const Tensor& features_in, const Tensor& labels, double temperature) {
  const Tensor features = autocast::to_float32(features_in);
  const char* op = "multi_pos_con_loss";
  profiler::Scope profile_scope("loss", op);
  check_embeddings(op, features, "features");
  ops::check_labels(op, labels, features.size(0), features, "labels");
  ops::check_temperature(op, temperature, "temperature");
  ContrastiveConfig c;
  c.mean = cpu::ContrastiveMean::MeanOverAnchors;
  c.inv_tau = 1.0 / temperature;
  return contrastive(op, normalize(features, 2.0, 1, 1e-12), labels, c);
}

Tensor supcon_loss(const Tensor& features_in, const Tensor& labels, double temperature, double base_temperature) {
  const Tensor features = autocast::to_float32(features_in);
  const char* op = "supcon_loss";
  profiler::Scope profile_scope("loss", op);
  ops::check_loss_input(op, features, "features");
  PNEUMA_CHECK(features.dim() >= 2, op, ": features must be [bsz, n_views, ...] (or [N, d]), got ", features.str());
  ops::check_temperature(op, temperature, "temperature");
  ops::check_temperature(op, base_temperature, "base_temperature");
  const int64_t bsz = features.size(0);
  const int64_t views = features.dim() == 2 ? 1 : features.size(1);
  const int64_t dim = bsz * views == 0 ? 0 : features.numel() / (bsz * views);
  PNEUMA_CHECK(bsz > 0 && views > 0 && dim > 0, op, ": features ", features.str(), " is empty");
  std::vector<int64_t> sample_labels;
  if (labels.defined()) {
    ops::check_labels(op, labels, bsz, features, "labels");
    sample_labels = labels.contiguous().to_indices();
  } else {
    for (int64_t b = 0; b < bsz; ++b) sample_labels.push_back(b);
  }
  // Row b * views + v of the flattened features is view v of sample b. The reference orders the
  // anchors view-major instead; the loss is a mean over anchors, so the order does not matter.
  std::vector<int64_t> groups(static_cast<size_t>(bsz * views));
  for (int64_t b = 0; b < bsz; ++b)
    for (int64_t v = 0; v < views; ++v) groups[static_cast<size_t>(b * views + v)] = sample_labels[static_cast<size_t>(b)];
  ContrastiveConfig c;
  c.mean = cpu::ContrastiveMean::MeanOverAnchorsWithPositives;
  c.inv_tau = 1.0 / temperature;
  c.scale = temperature / base_temperature;
  return contrastive(op, features.reshape({bsz * views, dim}), Tensor::from_indices(groups, {bsz * views}), c);
}

}  // namespace pneuma

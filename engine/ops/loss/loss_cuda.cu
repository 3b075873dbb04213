// The losses on CUDA tensors: our fused kernels on the device context's stream, cuBLAS for the
// contrastive family's GEMMs.
#include "engine/cuda/op_stream.h"
#include "engine/ops/linalg/linalg_cuda.h"
#include "engine/ops/loss/loss_cuda.h"
#include "engine/ops/loss/loss_kernels.h"

namespace pneuma::cuda {

namespace {

void cublas_gemm(const Tensor& a, const Tensor& b, const Tensor& out) { gemm(a, b, out); }

}  // namespace

void binary_loss_forward(const cpu::BinaryLossConfig& config, const Tensor& x, const Tensor& t, const Tensor& weight,
                         const Tensor& pos_weight, const Tensor& out) {
  kern::run_binary_loss_forward(config, x, t, weight, pos_weight, out, op_stream(out.device()));
}

void binary_loss_backward(const cpu::BinaryLossConfig& config, const Tensor& x, const Tensor& t, const Tensor& weight,
                          const Tensor& pos_weight, const Tensor& g, const Tensor& dx, const Tensor& dt) {
  kern::run_binary_loss_backward(config, x, t, weight, pos_weight, g, dx, dt, op_stream(x.device()));
}

void class_loss_forward(const cpu::ClassLossConfig& config, const Tensor& x, const Tensor& target, const Tensor& weight,
                        const Tensor& out, const Tensor& lse, const Tensor& totals) {
  kern::run_class_loss_forward(config, x, target, weight, out, lse, totals, op_stream(out.device()));
}

void class_loss_backward(const cpu::ClassLossConfig& config, const Tensor& x, const Tensor& target, const Tensor& weight,
                         const Tensor& lse, const Tensor& totals, const Tensor& g, const Tensor& dx) {
  kern::run_class_loss_backward(config, x, target, weight, lse, totals, g, dx, op_stream(dx.device()));
}

void contrastive_embeddings_forward(const cpu::ContrastiveConfig& config, const Tensor& z, const Tensor& groups,
                                    const Tensor& out, const Tensor& s, const Tensor& lse, const Tensor& positives,
                                    const Tensor& totals) {
  kern::run_contrastive_embeddings_forward(config, z, groups, out, s, lse, positives, totals, cublas_gemm,
                                           op_stream(out.device()));
}

void contrastive_embeddings_backward(const cpu::ContrastiveConfig& config, const Tensor& z, const Tensor& s,
                                     const Tensor& groups, const Tensor& lse, const Tensor& positives,
                                     const Tensor& totals, const Tensor& g, const Tensor& dz) {
  kern::run_contrastive_embeddings_backward(config, z, s, groups, lse, positives, totals, g, dz, cublas_gemm,
                                            op_stream(dz.device()));
}

void similarity_matrix(const Tensor& z, const Tensor& s) { gemm(z, z.transpose(0, 1), s); }

void cosine_embedding_forward(kern::losses::LossReduction reduction, double margin, const Tensor& x1, const Tensor& x2,
                              const Tensor& target, const Tensor& out) {
  kern::run_cosine_embedding_forward(reduction, margin, x1, x2, target, out, op_stream(out.device()));
}

void cosine_embedding_backward(kern::losses::LossReduction reduction, double margin, const Tensor& x1,
                               const Tensor& x2, const Tensor& target, const Tensor& g, const Tensor& dx1,
                               const Tensor& dx2) {
  kern::run_cosine_embedding_backward(reduction, margin, x1, x2, target, g, dx1, dx2, op_stream(x1.device()));
}

void class_means(const Tensor& z, const Tensor& labels, const Tensor& means, const Tensor& counts) {
  kern::run_class_means(z, labels, means, counts, op_stream(means.device()));
}

void class_means_backward(const Tensor& z, const Tensor& labels, const Tensor& counts, const Tensor& grad_means,
                          const Tensor& dz) {
  kern::run_class_means_backward(z, labels, counts, grad_means, dz, op_stream(dz.device()));
}

void embedding_loss_forward(const kern::losses::EmbeddingLossConfig& config, const Tensor& means, const Tensor& counts,
                            const Tensor& out) {
  kern::run_embedding_loss_forward(config, means, counts, out, op_stream(out.device()));
}

void embedding_loss_backward(const kern::losses::EmbeddingLossConfig& config, const Tensor& means,
                             const Tensor& counts, const Tensor& g, const Tensor& grad_means) {
  kern::run_embedding_loss_backward(config, means, counts, g, grad_means, op_stream(grad_means.device()));
}

void dice_forward(kern::losses::LossReduction reduction, double smooth, const Tensor& x, const Tensor& t,
                  const Tensor& out, const Tensor& sums) {
  kern::run_dice_forward(reduction, smooth, x, t, out, sums, op_stream(out.device()));
}

void dice_backward(kern::losses::LossReduction reduction, double smooth, const Tensor& x, const Tensor& t,
                   const Tensor& sums, const Tensor& g, const Tensor& dx, const Tensor& dt) {
  kern::run_dice_backward(reduction, smooth, x, t, sums, g, dx, dt, op_stream(x.device()));
}

}  // namespace pneuma::cuda

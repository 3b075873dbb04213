#pragma once
// CUDA entry points of the losses: the fused kernels of kernels/losses/ (through loss_kernels.h),
// cuBLAS for the contrastive family's similarity GEMMs. Signatures follow loss_cpu.h; tensors are
// contiguous and on one device. Defined in loss_cuda.cu with the CUDA backend, in
// engine/cuda/without_cuda.cpp otherwise.
#include "engine/core/tensor.h"
#include "engine/ops/loss/loss_cpu.h"

namespace pneuma::cuda {

void binary_loss_forward(const cpu::BinaryLossConfig& config, const Tensor& x, const Tensor& t, const Tensor& weight,
                         const Tensor& pos_weight, const Tensor& out);
void binary_loss_backward(const cpu::BinaryLossConfig& config, const Tensor& x, const Tensor& t, const Tensor& weight,
                          const Tensor& pos_weight, const Tensor& g, const Tensor& dx, const Tensor& dt);

void class_loss_forward(const cpu::ClassLossConfig& config, const Tensor& x, const Tensor& target, const Tensor& weight,
                        const Tensor& out, const Tensor& lse, const Tensor& totals);
void class_loss_backward(const cpu::ClassLossConfig& config, const Tensor& x, const Tensor& target, const Tensor& weight,
                         const Tensor& lse, const Tensor& totals, const Tensor& g, const Tensor& dx);

// s ([M, M]) = z z^T by cuBLAS, then the fused rows; s is kept for the backward, which overwrites
// it with the symmetric gradient of S before dz = G z.
void contrastive_embeddings_forward(const cpu::ContrastiveConfig& config, const Tensor& z, const Tensor& groups,
                                    const Tensor& out, const Tensor& s, const Tensor& lse, const Tensor& positives,
                                    const Tensor& totals);
void contrastive_embeddings_backward(const cpu::ContrastiveConfig& config, const Tensor& z, const Tensor& s,
                                     const Tensor& groups, const Tensor& lse, const Tensor& positives,
                                     const Tensor& totals, const Tensor& g, const Tensor& dz);
// s = z z^T again (a second backward through the same graph finds s overwritten).
void similarity_matrix(const Tensor& z, const Tensor& s);

void cosine_embedding_forward(kern::losses::LossReduction reduction, double margin, const Tensor& x1, const Tensor& x2,
                              const Tensor& target, const Tensor& out);
void cosine_embedding_backward(kern::losses::LossReduction reduction, double margin, const Tensor& x1,
                               const Tensor& x2, const Tensor& target, const Tensor& g, const Tensor& dx1,
                               const Tensor& dx2);

void class_means(const Tensor& z, const Tensor& labels, const Tensor& means, const Tensor& counts);
void class_means_backward(const Tensor& z, const Tensor& labels, const Tensor& counts, const Tensor& grad_means,
                          const Tensor& dz);
void embedding_loss_forward(const kern::losses::EmbeddingLossConfig& config, const Tensor& means, const Tensor& counts,
                            const Tensor& out);
void embedding_loss_backward(const kern::losses::EmbeddingLossConfig& config, const Tensor& means,
                             const Tensor& counts, const Tensor& g, const Tensor& grad_means);

void dice_forward(kern::losses::LossReduction reduction, double smooth, const Tensor& x, const Tensor& t,
                  const Tensor& out, const Tensor& sums);
void dice_backward(kern::losses::LossReduction reduction, double smooth, const Tensor& x, const Tensor& t,
                   const Tensor& sums, const Tensor& g, const Tensor& dx, const Tensor& dt);

}  // namespace pneuma::cuda

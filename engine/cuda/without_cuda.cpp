// A build without the CUDA backend still links every CUDA entry point the ops dispatch to
// (declared in engine/ops/<op>/<op>_cuda.h). No CUDA tensor can exist in such a build
// (Storage refuses to allocate one), so these only say what is missing if reached anyway.
#ifndef PNEUMA_WITH_CUDA

#include "engine/core/error.h"
#include "engine/ops/conv/conv_cuda.h"
#include "engine/ops/dropout/dropout_cuda.h"
#include "engine/ops/elementwise/elementwise_cuda.h"
#include "engine/ops/index/index_cuda.h"
#include "engine/ops/linalg/linalg_cuda.h"
#include "engine/ops/loss/loss_cuda.h"
#include "engine/ops/norm/norm_cuda.h"
#include "engine/ops/normalize/normalize_cuda.h"
#include "engine/ops/pool/pool_cuda.h"
#include "engine/ops/reduce/reduce_cuda.h"
#include "engine/ops/softmax/softmax_cuda.h"
#include "engine/ops/upsample/upsample_cuda.h"
#include "engine/optim/optimizer_cuda.h"

namespace pneuma::cuda {

namespace {
[[noreturn]] void built_without_cuda(const char* op) {
  PNEUMA_FAIL(op, ": this build of Pneuma has no CUDA backend (configure with nvcc, cuDNN and cuBLAS found)");
}
}  // namespace

void unary_forward(kern::UnaryOp, const Tensor&, const Tensor&, const kern::UnaryParams&) {
  built_without_cuda("elementwise");
}
void unary_backward(kern::UnaryOp, const Tensor&, const Tensor&, const Tensor&, const Tensor&,
                    const kern::UnaryParams&) {
  built_without_cuda("elementwise backward");
}
void binary_forward(kern::BinaryOp, const Tensor&, const Tensor&, const Tensor&) { built_without_cuda("elementwise"); }
void copy_strided(const Tensor&, const Tensor&) { built_without_cuda("copy"); }

void cat(const std::vector<Tensor>&, int64_t, const Tensor&) { built_without_cuda("cat"); }
void index_select(const Tensor&, int64_t, const Tensor&, const Tensor&, bool) { built_without_cuda("index_select"); }
void index_add(const Tensor&, int64_t, const Tensor&, const Tensor&, bool) { built_without_cuda("index_add"); }
void gather(const Tensor&, int64_t, const Tensor&, const Tensor&, const char* op, bool) { built_without_cuda(op); }
void scatter_add(const Tensor&, int64_t, const Tensor&, const Tensor&, const char* op, bool) {
  built_without_cuda(op);
}
void where(const Tensor&, const Tensor&, const Tensor&, const Tensor&) { built_without_cuda("where"); }
void masked_fill(const Tensor&, const Tensor&, double, const Tensor&) { built_without_cuda("masked_fill"); }

Tensor sum(const Tensor&, const std::vector<int64_t>&, bool, double) { built_without_cuda("sum"); }
void minmax_rows(const Tensor&, bool, const Tensor&, const Tensor&) { built_without_cuda("max/min"); }

void gemm(const Tensor&, const Tensor&, const Tensor&, bool) { built_without_cuda("matmul"); }

void batch_norm_stats(const Tensor&, int64_t, int64_t, int64_t, const Tensor&, const Tensor&) {
  built_without_cuda("batch_norm");
}
void batch_norm_apply(const Tensor&, int64_t, int64_t, int64_t, const Tensor&, const Tensor&, const Tensor&,
                      const Tensor&, double, const Tensor&) {
  built_without_cuda("batch_norm");
}
void batch_norm_backward(const Tensor&, const Tensor&, int64_t, int64_t, int64_t, const Tensor&, const Tensor&,
                         const Tensor&, double, bool, const Tensor&, const Tensor&, const Tensor&) {
  built_without_cuda("batch_norm backward");
}
void batch_norm_update_running(const Tensor&, const Tensor&, const Tensor&, const Tensor&, double, int64_t) {
  built_without_cuda("batch_norm");
}

void normalize_forward(const Tensor&, int64_t, double, double, const Tensor&, const Tensor&) {
  built_without_cuda("normalize");
}
void normalize_backward(const Tensor&, const Tensor&, const Tensor&, int64_t, double, double, const Tensor&) {
  built_without_cuda("normalize backward");
}

void max_pool2d_forward(const Tensor&, const kern::Pool2d&, const Tensor&, const Tensor&) {
  built_without_cuda("max_pool2d");
}
void max_pool2d_backward(const Tensor&, const Tensor&, const kern::Pool2d&, const Tensor&) {
  built_without_cuda("max_pool2d backward");
}
void avg_pool2d_forward(const Tensor&, const kern::Pool2d&, const cpu::AvgOptions&, const Tensor&) {
  built_without_cuda("avg_pool2d");
}
void avg_pool2d_backward(const Tensor&, const kern::Pool2d&, const cpu::AvgOptions&, const Tensor&) {
  built_without_cuda("avg_pool2d backward");
}
void adaptive_avg_pool2d_forward(const Tensor&, const kern::Pool2d&, const Tensor&) {
  built_without_cuda("adaptive_avg_pool2d");
}
void adaptive_avg_pool2d_backward(const Tensor&, const kern::Pool2d&, const Tensor&) {
  built_without_cuda("adaptive_avg_pool2d backward");
}

void dropout_forward(const Tensor&, double, uint64_t, const Tensor&, const Tensor&) { built_without_cuda("dropout"); }
void dropout_backward(const Tensor&, const Tensor&, double, const Tensor&) { built_without_cuda("dropout backward"); }

void upsample_nearest2d_forward(const Tensor&, const cpu::Upsample2d&, const Tensor&) {
  built_without_cuda("upsample_nearest2d");
}
void upsample_nearest2d_backward(const Tensor&, const cpu::Upsample2d&, const Tensor&) {
  built_without_cuda("upsample_nearest2d backward");
}
void upsample_bilinear2d_forward(const Tensor&, const cpu::Upsample2d&, const Tensor&) {
  built_without_cuda("upsample_bilinear2d");
}
void upsample_bilinear2d_backward(const Tensor&, const cpu::Upsample2d&, const Tensor&) {
  built_without_cuda("upsample_bilinear2d backward");
}

void binary_loss_forward(const cpu::BinaryLossConfig&, const Tensor&, const Tensor&, const Tensor&, const Tensor&,
                         const Tensor&) {
  built_without_cuda("binary loss");
}
void binary_loss_backward(const cpu::BinaryLossConfig&, const Tensor&, const Tensor&, const Tensor&, const Tensor&,
                          const Tensor&, const Tensor&, const Tensor&) {
  built_without_cuda("binary loss backward");
}
void class_loss_forward(const cpu::ClassLossConfig&, const Tensor&, const Tensor&, const Tensor&, const Tensor&,
                        const Tensor&, const Tensor&) {
  built_without_cuda("cross_entropy");
}
void class_loss_backward(const cpu::ClassLossConfig&, const Tensor&, const Tensor&, const Tensor&, const Tensor&,
                         const Tensor&, const Tensor&, const Tensor&) {
  built_without_cuda("cross_entropy backward");
}
void contrastive_embeddings_forward(const cpu::ContrastiveConfig&, const Tensor&, const Tensor&, const Tensor&,
                                    const Tensor&, const Tensor&, const Tensor&, const Tensor&) {
  built_without_cuda("contrastive loss");
}
void contrastive_embeddings_backward(const cpu::ContrastiveConfig&, const Tensor&, const Tensor&, const Tensor&,
                                     const Tensor&, const Tensor&, const Tensor&, const Tensor&, const Tensor&) {
  built_without_cuda("contrastive loss backward");
}
void similarity_matrix(const Tensor&, const Tensor&) { built_without_cuda("contrastive loss backward"); }
void cosine_embedding_forward(kern::losses::LossReduction, double, const Tensor&, const Tensor&, const Tensor&,
                              const Tensor&) {
  built_without_cuda("cosine_embedding_loss");
}
void cosine_embedding_backward(kern::losses::LossReduction, double, const Tensor&, const Tensor&, const Tensor&,
                               const Tensor&, const Tensor&, const Tensor&) {
  built_without_cuda("cosine_embedding_loss backward");
}
void class_means(const Tensor&, const Tensor&, const Tensor&, const Tensor&) { built_without_cuda("class means"); }
void class_means_backward(const Tensor&, const Tensor&, const Tensor&, const Tensor&, const Tensor&) {
  built_without_cuda("class means backward");
}
void embedding_loss_forward(const kern::losses::EmbeddingLossConfig&, const Tensor&, const Tensor&, const Tensor&) {
  built_without_cuda("embedding loss");
}
void embedding_loss_backward(const kern::losses::EmbeddingLossConfig&, const Tensor&, const Tensor&, const Tensor&,
                             const Tensor&) {
  built_without_cuda("embedding loss backward");
}
void dice_forward(kern::losses::LossReduction, double, const Tensor&, const Tensor&, const Tensor&, const Tensor&) {
  built_without_cuda("dice_loss");
}
void dice_backward(kern::losses::LossReduction, double, const Tensor&, const Tensor&, const Tensor&, const Tensor&,
                   const Tensor&, const Tensor&) {
  built_without_cuda("dice_loss backward");
}

void softmax_forward(const Tensor&, int64_t, bool, const Tensor&) { built_without_cuda("softmax"); }
void softmax_backward(const Tensor&, const Tensor&, int64_t, bool, const Tensor&) {
  built_without_cuda("softmax backward");
}

void conv2d_forward(const Tensor&, const Tensor&, const Tensor&, const Tensor&, const ops::ConvGeometry&) {
  built_without_cuda("conv2d");
}
void conv2d_backward(const Tensor&, const Tensor&, const Tensor&, const Tensor&, const Tensor&, const Tensor&,
                     const ops::ConvGeometry&) {
  built_without_cuda("conv2d backward");
}
void add_channel_bias(const Tensor&, const Tensor&) { built_without_cuda("conv_transpose2d"); }
void channel_sum(const Tensor&, const Tensor&) { built_without_cuda("conv_transpose2d backward"); }
void fill_rows(const Tensor&, const Tensor&) { built_without_cuda("linear"); }

void sgd_step(const std::vector<Tensor>&, std::vector<Tensor>&, const optim::SgdOptions&, double) {
  built_without_cuda("SGD");
}
void adam_step(const std::vector<Tensor>&, std::vector<Tensor>&, std::vector<Tensor>&, const optim::AdamOptions&, double,
               int64_t) {
  built_without_cuda("Adam");
}

}  // namespace pneuma::cuda

#endif  // PNEUMA_WITH_CUDA

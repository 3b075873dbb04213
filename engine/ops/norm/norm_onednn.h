#pragma once
// oneDNN batch normalization. Same contracts as the reference loops in norm_cpu.h; data are
// contiguous NCHW float32 or bfloat16, the per-channel tensors (mean, var, weight, bias and their
// gradients) float32.
//
// Float32 is not dispatched to by batch_norm: for plain NCHW data oneDNN 2.6 picks its generic
// "ncsp" implementation, which measured no faster than the reference loops in training
// and several times slower in evaluation (2-core AVX-512 machine, e.g. [16, 64, 56, 56]
// eval 3.3 ms vs 0.55 ms single-threaded). Its JIT kernels need channels-last or blocked
// layouts; this is the entry point once such a layout exists. Tested against the
// reference by "fastpath batch_norm". Bfloat16 data likewise: on NCHW its bf16 kernels measured
// 5-16x slower than the reference loops computing in float (AVX512-BF16 machine, 2 threads,
// [16, 64, 56, 56]: training forward 32 ms vs 2.0 ms, eval 19 vs 1.4, backward 31 vs 8.4;
// [16, 256, 14, 14] backward 12 vs 1.0), so batch_norm runs bf16 through the loops too; tested by
// "fastpath batch_norm bfloat16".
#include <cstdint>

#include "engine/core/tensor.h"

namespace pneuma::cpu {

// training: computes the batch statistics into mean/var (biased variance) and
// normalizes with them; otherwise normalizes with the given mean/var.
void batch_norm_forward_onednn(const Tensor& x, int64_t N, int64_t C, int64_t S, const Tensor& mean,
                               const Tensor& var, const Tensor& weight, const Tensor& bias, double eps,
                               bool training, const Tensor& y);

// dx is required; dweight/dbias are written when given. shift: the forward used a bias.
void batch_norm_backward_onednn(const Tensor& x, const Tensor& g, int64_t N, int64_t C, int64_t S,
                                const Tensor& mean, const Tensor& var, const Tensor& weight, bool shift, double eps,
                                bool training, const Tensor& dx, const Tensor& dweight,
                                const Tensor& dbias);

}  // namespace pneuma::cpu

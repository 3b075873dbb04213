#pragma once
// oneDNN batch normalization on channels-last data. Same contracts as the reference loops in
// norm_cpu.h, but x, y, g, dx are NHWC memory (a channels-last [N, C, H, W] tensor) seen as
// [N, C, S] with S = H * W; float32 or bfloat16 data, the per-channel tensors (mean, var, weight,
// bias and their gradients) float32.
//
// batch_norm runs channels-last float32, and bfloat16 with float32 parameters (autocast), here on
// the CPU: oneDNN 2.6 picks its JIT kernels (bnorm_jit:avx512_core, avx512_core_bf16) for nhwc,
// which measured faster than the row loops of norm_cpu.cpp, one thread, ms (row loops / oneDNN;
// 2-core AVX-512 machine, others' builds running, best of 5-50; a second run kept every ordering):
//   [16, 64, 56, 56]  float32  train 1.31 / 0.77   eval 0.48 / 0.46   backward 3.34 / 1.29
//                     bf16     train 1.04 / 0.61   eval 0.71 / 0.45   backward 1.34 / 0.99
//   [8, 256, 56, 56]  float32  train 8.63 / 2.45   eval 1.77 / 1.32   backward 10.8 / 5.28
//                     bf16     train 2.55 / 1.63   eval 1.37 / 1.02   backward 7.95 / 5.00
//   [16, 512, 7, 7]   float32  train 0.13 / 0.09   eval 0.05 / 0.06   backward 0.19 / 0.13
//                     bf16     train 0.13 / 0.07   eval 0.08 / 0.06   backward 0.17 / 0.12
// (torch 1.13's own channels-last CPU batch norm, one thread: [16, 64, 56, 56] float32 train
// 1.15, train + backward 16.0.) Two-thread runs on that loaded machine were dominated by
// scheduling (oneDNN's phases and the loops' parallel regions alike, 10-50 ms), so the choice
// rests on the one-thread numbers. For plain NCHW data oneDNN picks its generic "ncsp" kernels,
// measured slower than the NCHW loops (several times in evaluation, 5-16x in bfloat16), so
// row-major data never come here. Tested against the row loops on the same NHWC memory by
// "fastpath batch_norm" and "fastpath batch_norm bfloat16".
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

#pragma once
// CUDA entry points of batch norm, with the signatures of norm_cpu.h: our kernels
// (kernels/norm/batch_norm.cuh), deterministic per-channel reductions. Defined in norm_cuda.cu
// with the CUDA backend, in engine/cuda/without_cuda.cpp otherwise.
#include <cstdint>

#include "engine/core/tensor.h"

namespace pneuma::cuda {

void batch_norm_stats(const Tensor& x, int64_t N, int64_t C, int64_t S, const Tensor& mean, const Tensor& var);
void batch_norm_apply(const Tensor& x, int64_t N, int64_t C, int64_t S, const Tensor& mean, const Tensor& var,
                      const Tensor& weight, const Tensor& bias, double eps, const Tensor& y);
void batch_norm_backward(const Tensor& x, const Tensor& g, int64_t N, int64_t C, int64_t S, const Tensor& mean,
                         const Tensor& var, const Tensor& weight, double eps, bool training, const Tensor& dx,
                         const Tensor& dweight, const Tensor& dbias);
void batch_norm_update_running(const Tensor& running_mean, const Tensor& running_var, const Tensor& mean,
                               const Tensor& var, double momentum, int64_t count);

}  // namespace pneuma::cuda

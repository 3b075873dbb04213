#pragma once
// CUDA entry points of the pooling ops, with the signatures of the reference loops in pool_cpu.h:
// our kernels (kernels/pool/pool.cuh), which give PyTorch's max-pool indices and deterministic
// backward passes. Defined in pool_cuda.cu with the CUDA backend, in engine/cuda/without_cuda.cpp
// otherwise.
#include "engine/core/tensor.h"
#include "engine/ops/pool/pool_cpu.h"

namespace pneuma::cuda {

void max_pool2d_forward(const Tensor& x, const kern::Pool2d& p, const Tensor& y, const Tensor& indices);
void max_pool2d_backward(const Tensor& g, const Tensor& indices, const kern::Pool2d& p, const Tensor& dx);
void avg_pool2d_forward(const Tensor& x, const kern::Pool2d& p, const cpu::AvgOptions& o, const Tensor& y);
void avg_pool2d_backward(const Tensor& g, const kern::Pool2d& p, const cpu::AvgOptions& o, const Tensor& dx);
void adaptive_avg_pool2d_forward(const Tensor& x, const kern::Pool2d& p, const Tensor& y);
void adaptive_avg_pool2d_backward(const Tensor& g, const kern::Pool2d& p, const Tensor& dx);

}  // namespace pneuma::cuda

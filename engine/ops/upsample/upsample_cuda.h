#pragma once
// CUDA entry points of nearest/bilinear upsampling, with the signatures of upsample_cpu.h: our
// kernels (kernels/upsample/upsample.cuh). Contiguous [planes, h, w] data. Defined in
// upsample_cuda.cu with the CUDA backend, in engine/cuda/without_cuda.cpp otherwise.
#include "engine/core/tensor.h"
#include "engine/ops/upsample/upsample_cpu.h"

namespace pneuma::cuda {

void upsample_nearest2d_forward(const Tensor& x, const cpu::Upsample2d& u, const Tensor& y);
void upsample_nearest2d_backward(const Tensor& g, const cpu::Upsample2d& u, const Tensor& dx);
void upsample_bilinear2d_forward(const Tensor& x, const cpu::Upsample2d& u, const Tensor& y);
void upsample_bilinear2d_backward(const Tensor& g, const cpu::Upsample2d& u, const Tensor& dx);

}  // namespace pneuma::cuda

#pragma once
// CUDA entry points of dropout, with the signatures of dropout_cpu.h; the mask for a seed is the
// CPU's. Defined in dropout_cuda.cu with the CUDA backend, in engine/cuda/without_cuda.cpp otherwise.
#include <cstdint>

#include "engine/core/tensor.h"

namespace pneuma::cuda {

void dropout_forward(const Tensor& x, double p, uint64_t seed, const Tensor& y, const Tensor& mask);
void dropout_backward(const Tensor& g, const Tensor& mask, double p, const Tensor& dx);

}  // namespace pneuma::cuda

#pragma once
// CUDA entry points of normalize, with the signatures of normalize_cpu.h: our kernels
// (kernels/normalize/normalize.cuh). Defined in normalize_cuda.cu with the CUDA backend, in
// engine/cuda/without_cuda.cpp otherwise.
#include "engine/core/tensor.h"

namespace pneuma::cuda {

void normalize_forward(const Tensor& x, int64_t dim, double p, double eps, const Tensor& y, const Tensor& norm);
void normalize_backward(const Tensor& x, const Tensor& norm, const Tensor& g, int64_t dim, double p, double eps,
                        const Tensor& dx);

}  // namespace pneuma::cuda

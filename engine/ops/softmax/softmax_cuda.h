#pragma once
// CUDA entry points of softmax/log_softmax, with the signatures of softmax_cpu.h: our kernels
// (kernels/softmax/softmax.cuh). Defined in softmax_cuda.cu with the CUDA backend, in
// engine/cuda/without_cuda.cpp otherwise.
#include "engine/core/tensor.h"

namespace pneuma::cuda {

// y (contiguous, x's shape) = softmax or log_softmax of x along dim.
void softmax_forward(const Tensor& x, int64_t dim, bool log, const Tensor& y);
// dx (contiguous) from the saved output y and the output gradient g.
void softmax_backward(const Tensor& y, const Tensor& g, int64_t dim, bool log, const Tensor& dx);

}  // namespace pneuma::cuda

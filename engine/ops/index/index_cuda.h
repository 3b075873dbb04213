#pragma once
// CUDA entry points of the joining/indexing ops that have one, with the signatures of their CPU
// twins in index_cpu.h. where, masked_fill and cat are elementwise kernels
// (kernels/elementwise/elementwise.cuh); the gather/scatter family has no CUDA path yet.
// Defined in index_cuda.cu with the CUDA backend, in engine/cuda/without_cuda.cpp otherwise.
#include <vector>

#include "engine/core/tensor.h"

namespace pneuma::cuda {

// Copies each input into its slice of out along dim (inputs listed in order).
void cat(const std::vector<Tensor>& inputs, int64_t dim, const Tensor& out);
// out = condition ? a : b with broadcasting; out has the broadcast shape.
void where(const Tensor& condition, const Tensor& a, const Tensor& b, const Tensor& out);
// out = mask ? value : x with broadcasting; out has the broadcast shape.
void masked_fill(const Tensor& x, const Tensor& mask, double value, const Tensor& out);

}  // namespace pneuma::cuda

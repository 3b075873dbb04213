#pragma once
// CUDA entry points of the reductions, with the signatures of the CPU loops in reduce.cpp.
// Defined in reduce_cuda.cu with the CUDA backend, in engine/cuda/without_cuda.cpp otherwise.
#include <vector>

#include "engine/core/tensor.h"

namespace pneuma::cuda {

// scale times x summed over dims (sorted, distinct, wrapped): scale 1 for sum, 1/count for mean.
// Accumulated like the CPU (double; float for bfloat16) and rounded once to x's dtype.
Tensor sum(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim, double scale);
// As cpu::minmax_rows (engine/ops/reduce/minmax_cpu.h).
void minmax_rows(const Tensor& rows, bool is_max, const Tensor& values, const Tensor& indices);

}  // namespace pneuma::cuda
